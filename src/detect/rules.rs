//! The rule catalogue: every rule the detectors can raise, with its OWASP API Security Top 10 (2023) and
//! MITRE ATT&CK mapping, default severity, confidence and threshold; and the attack rule pack format.
//!
//! # Attack rule packs (`signatures/attacks.toml`)
//!
//! The attack family is data: a TOML file of `[[rule]]` tables. The default pack is compiled into the
//! binary (`include_str!`); `[detect] attack_signatures = "/path/attacks.toml"` replaces it. A pack that
//! does not load stops the sensor at start (exit 2) with the file, line and key of the problem.
//!
//! ```toml
//! version = 1                       # format version; only 1 exists
//!
//! [[rule]]
//! id = "sqli"                # unique; also the key under [detect.rules.<id>]
//! kind = "sql_injection"            # the alert's `type`
//! title = "SQL injection attempt"
//! severity = "high"                 # info | low | medium | high | critical (raised one step on a 2xx)
//! confidence = 0.8                  # 0..1, of a regex match being a real attack attempt
//! owasp = "API8:2023"
//! mitre = "T1190"
//! locations = ["path", "query", "header", "cookie", "body"]   # where to look (default: all six)
//! anchors = ["union", "select", "'"]  # literals (ASCII case-insensitive); at least one must occur
//! regex = '''\bunion\b[\s\S]{0,40}?\bselect\b'''             # confirms; case-insensitive, linear time
//! ```
//!
//! Locations: `path`, `query` (values, and names with operator characters), `header`, `cookie`, `body`
//! (JSON string values and `$` keys, form and multipart fields) and `raw_body` (any other body, scanned
//! whole: XML, text; noisy for rules that look for addresses or quotes).
//!
//! How a value is checked: every request input (path, each query parameter value and suspicious name, each
//! header except credentials and plumbing, each cookie, each JSON string value and `$`-key, each form
//! field, or the raw body for other media types) is percent-decoded repeatedly (up to
//! `[detect] max_decode_rounds`), Log4j lookups like `${lower:j}` are resolved, then one Aho-Corasick
//! automaton over all anchors of all rules selects the candidate rules, and only those run their regex. A
//! rule with an empty `anchors` list runs its regex on every value (slow: avoid). Regexes are compiled with
//! size limits (1 MiB program, 64 nesting levels). At most 64 rules per pack.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::analyzer::SetupError;

/// The default attack pack, compiled in.
pub const DEFAULT_ATTACK_PACK: &str = include_str!("../../signatures/attacks.toml");

/// Most rules a pack may hold: candidate rules are a 64-bit mask.
pub const MAX_PACK_RULES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// One step up, saturating at critical.
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Low,
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

/// One rule as it runs: catalogue entry merged with its `[detect.rules.<id>]` settings.
#[derive(Clone, Debug)]
pub struct RuleMeta {
    pub id: String,
    /// The alert's `type`.
    pub kind: String,
    pub title: String,
    pub severity: Severity,
    pub confidence: f64,
    pub owasp: String,
    pub mitre: String,
    pub enabled: bool,
    /// Rule-specific; see the rule's doc in [`BUILTIN`].
    pub threshold: f64,
    /// Rule-specific window (seconds of packet time) for counting rules.
    pub window: f64,
}

/// Index of a rule in [`Rules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u16);

/// Every rule of this run, built-in ones first, then the attack pack's.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub metas: Vec<RuleMeta>,
}

impl Rules {
    pub fn get(&self, id: RuleId) -> Option<&RuleMeta> {
        self.metas.get(usize::from(id.0))
    }
    pub fn find(&self, id: &str) -> Option<RuleId> {
        self.metas.iter().position(|m| m.id == id).and_then(|i| u16::try_from(i).ok()).map(RuleId)
    }
    pub fn enabled(&self, id: RuleId) -> bool {
        self.get(id).is_some_and(|m| m.enabled)
    }
    pub fn threshold(&self, id: RuleId) -> f64 {
        self.get(id).map_or(0.0, |m| m.threshold)
    }
    pub fn window(&self, id: RuleId) -> f64 {
        self.get(id).map_or(60.0, |m| m.window)
    }
}

/// A built-in (code) rule: what it means, its mapping and defaults. `threshold` and `window` are documented
/// per rule in `doc`.
pub struct Builtin {
    pub id: &'static str,
    pub kind: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub confidence: f64,
    pub owasp: &'static str,
    pub mitre: &'static str,
    pub threshold: f64,
    pub window: f64,
    pub doc: &'static str,
}

macro_rules! rule {
    ($id:literal, $kind:literal, $title:literal, $sev:ident, $conf:literal, $owasp:literal, $mitre:literal,
     $thr:literal, $win:literal, $doc:literal) => {
        Builtin {
            id: $id,
            kind: $kind,
            title: $title,
            severity: Severity::$sev,
            confidence: $conf,
            owasp: $owasp,
            mitre: $mitre,
            threshold: $thr,
            window: $win,
            doc: $doc,
        }
    };
}

/// The code rules, by family (auth, access, abuse, exposure, misconfig, recon).
pub const BUILTIN: &[Builtin] = &[
    rule!(
        "failed_auth_burst",
        "credential_stuffing",
        "Burst of failed authentications",
        High,
        0.8,
        "API2:2023",
        "T1110",
        10.0,
        60.0,
        "threshold: 401/403 answers to one actor within window seconds"
    ),
    rule!(
        "jwt_alg_none",
        "jwt_alg_none",
        "JWT with alg none",
        High,
        0.9,
        "API2:2023",
        "T1606",
        0.0,
        0.0,
        "a bearer JWT whose header says alg none (unsigned); critical when answered 2xx"
    ),
    rule!(
        "jwt_expired_accepted",
        "jwt_expired_accepted",
        "Expired JWT accepted",
        High,
        0.8,
        "API2:2023",
        "T1550.001",
        0.0,
        0.0,
        "threshold: grace seconds after exp before a 2xx counts"
    ),
    rule!(
        "jwt_missing_exp",
        "jwt_missing_exp",
        "JWT without expiry accepted",
        Low,
        0.7,
        "API2:2023",
        "T1550.001",
        0.0,
        0.0,
        "a 2xx to a bearer JWT that has no exp claim"
    ),
    rule!(
        "jwt_weak_secret",
        "jwt_weak_secret",
        "JWT signed with a guessable secret",
        Critical,
        0.95,
        "API2:2023",
        "T1606",
        0.0,
        0.0,
        "an HS256 JWT whose signature verifies with a dictionary secret"
    ),
    rule!(
        "cleartext_credentials",
        "cleartext_credentials",
        "Credentials sent over cleartext HTTP",
        Low,
        0.9,
        "API2:2023",
        "T1040",
        0.0,
        0.0,
        "Basic or bearer credentials on plain HTTP; once per service (a posture finding)"
    ),
    rule!(
        "credentials_in_url",
        "credentials_in_url",
        "Credentials or token in the URL",
        Medium,
        0.8,
        "API2:2023",
        "T1552",
        0.0,
        0.0,
        "a query parameter named like a token, key or password"
    ),
    rule!(
        "unauthenticated_access",
        "unauthenticated_access",
        "Unauthenticated request succeeded",
        High,
        0.6,
        "API2:2023",
        "T1190",
        0.95,
        0.0,
        "threshold: fraction of authenticated requests the operation had over its warm-up (warmup_requests); not on operations public by design (login, token, signup, health ...)"
    ),
    rule!(
        "bola_enumeration",
        "bola",
        "Object id enumeration (BOLA)",
        High,
        0.6,
        "API1:2023",
        "T1190",
        20.0,
        300.0,
        "threshold: distinct object ids (answered 2xx/403/404) one actor touches on one template within window seconds; then sequential ids, mostly 403/404, or 4x the ids typical of the template's other actors (when it has 5 or more)"
    ),
    rule!(
        "bfla",
        "bfla",
        "Privileged operation called by a read-only actor",
        Medium,
        0.5,
        "API5:2023",
        "T1190",
        20.0,
        0.0,
        "threshold: reads an actor made (and no write) before a 2xx on a write/admin operation that at most two other actors used"
    ),
    rule!(
        "rate_anomaly",
        "rate_anomaly",
        "Request rate anomaly",
        Medium,
        0.7,
        "API4:2023",
        "T1499",
        600.0,
        60.0,
        "threshold: requests from one actor within window seconds; with 5 or more other actors, also 4x what is typical of them"
    ),
    rule!(
        "not_found_burst",
        "directory_busting",
        "Burst of 404 answers",
        Medium,
        0.8,
        "API8:2023",
        "T1595.003",
        10.0,
        60.0,
        "threshold: distinct literal operations (method and a template without id parameters) answered 404 to one actor within window seconds"
    ),
    rule!(
        "server_error_spike",
        "server_error_spike",
        "Spike of server errors",
        Medium,
        0.6,
        "API4:2023",
        "T1499",
        10.0,
        60.0,
        "threshold: 5xx answers of one operation within window seconds"
    ),
    rule!(
        "pii_in_query",
        "pii_in_url",
        "Personal data in the query string",
        Medium,
        0.8,
        "API3:2023",
        "T1552",
        0.0,
        0.0,
        "a pii/financial/health data class found in request.query; once per operation and parameter (a posture finding)"
    ),
    rule!(
        "new_pii_in_response",
        "new_sensitive_data",
        "Operation returns a kind of sensitive data it did not return before",
        Medium,
        0.6,
        "API3:2023",
        "T1213",
        300.0,
        0.0,
        "threshold: responses of the operation before a response data class (from the sensitive-data analyzer) new to it counts (a class absent from n responses is rarer than 3/n)"
    ),
    rule!(
        "missing_security_headers",
        "missing_security_headers",
        "Sensitive response without protective headers",
        Low,
        0.8,
        "API8:2023",
        "T1213",
        0.0,
        0.0,
        "a response with pii/financial/health/credential data lacks Cache-Control no-store/private or X-Content-Type-Options nosniff; once per operation (a posture finding)"
    ),
    rule!(
        "excessive_response",
        "excessive_data",
        "Response much larger than usual",
        Medium,
        0.5,
        "API3:2023",
        "T1213",
        6.0,
        0.0,
        "threshold: standard deviations above the operation's mean size (also >= 4x mean and >= 16 KiB)"
    ),
    rule!(
        "stack_trace",
        "verbose_error",
        "Stack trace in a response",
        Medium,
        0.9,
        "API8:2023",
        "T1592",
        0.0,
        0.0,
        "Java, Python, .NET, PHP, Node, Go or Ruby trace in the body of a 4xx/5xx answer"
    ),
    rule!(
        "sql_error",
        "verbose_error",
        "SQL error message in a response",
        Medium,
        0.9,
        "API8:2023",
        "T1592",
        0.0,
        0.0,
        "database error text in the body of a 4xx/5xx answer"
    ),
    rule!(
        "version_disclosure",
        "version_disclosure",
        "Server software version disclosed",
        Info,
        0.9,
        "API8:2023",
        "T1592.002",
        0.0,
        0.0,
        "Server / X-Powered-By with a version; once per service, header and value (a posture finding)"
    ),
    rule!(
        "cors_credentials",
        "cors_misconfiguration",
        "CORS allows any origin with credentials",
        Medium,
        0.9,
        "API8:2023",
        "T1190",
        0.0,
        0.0,
        "Access-Control-Allow-Origin * or a reflected foreign origin, with Allow-Credentials true; once per operation (a posture finding)"
    ),
    rule!(
        "debug_endpoint",
        "debug_endpoint_exposed",
        "Debug or admin endpoint reachable",
        High,
        0.8,
        "API8:2023",
        "T1190",
        0.0,
        0.0,
        "2xx on a debug/actuator/.env/phpinfo path, or on /admin without credentials"
    ),
    rule!(
        "sensitive_path_probe",
        "reconnaissance",
        "Probing for well-known sensitive paths",
        Low,
        0.7,
        "API9:2023",
        "T1595.003",
        3.0,
        300.0,
        "threshold: distinct well-known sensitive paths (/.env, /.git/config ...) one actor asks for"
    ),
    rule!(
        "scanner_user_agent",
        "reconnaissance",
        "Known scanner or attack tool",
        Medium,
        0.9,
        "API9:2023",
        "T1595.002",
        0.0,
        0.0,
        "User-Agent of sqlmap, Nikto, nuclei, ZAP, ..."
    ),
    rule!(
        "new_parameter",
        "mass_assignment",
        "Request parameter new to the operation",
        Medium,
        0.5,
        "API3:2023",
        "T1190",
        100.0,
        0.0,
        "threshold: requests (answered) of the operation over which its query parameter and top-level JSON body property names are learnt; then a name never seen, once per operation and name"
    ),
    rule!(
        "schema_violation",
        "schema_violation",
        "Request value of a type the operation never had",
        Medium,
        0.6,
        "API8:2023",
        "T1190",
        0.0,
        0.0,
        "after the new_parameter warm-up, a query or top-level JSON body value whose class (integer, number, string, boolean, object, array) the field never had; once per operation, field and class; null fits any field"
    ),
    rule!(
        "new_operation_after_warmup",
        "shadow_api",
        "Operation appeared after the service's baseline",
        Low,
        0.5,
        "API9:2023",
        "T1190",
        1000.0,
        0.0,
        "threshold: transactions the service had when the operation was first seen; reported when it is first answered 2xx, once per operation (a posture finding)"
    ),
];

/// `[detect.rules.<rule_id>]`: per-rule overrides. Every key optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSettings {
    /// Run the rule (default true).
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    /// The rule's number; its meaning is in the rule list (README, Detections).
    pub threshold: Option<f64>,
    /// Counting window of rules that count, e.g. "60s".
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub window: Option<std::time::Duration>,
}

mod opt_duration {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => crate::config::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        crate::config::duration::deserialize(d).map(Some)
    }
}

/// Where an attack value came from (a bit per location).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    Path = 1,
    Query = 2,
    Header = 4,
    Cookie = 8,
    Body = 16,
    /// A body that is not JSON, a form or multipart (XML, text): scanned whole.
    RawBody = 32,
}

impl Loc {
    pub fn name(self) -> &'static str {
        match self {
            Loc::Path => "request.path",
            Loc::Query => "request.query",
            Loc::Header => "request.header",
            Loc::Cookie => "request.cookie",
            Loc::Body | Loc::RawBody => "request.body",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    version: u32,
    #[serde(default)]
    rule: Vec<PackRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackRule {
    id: toml::Spanned<String>,
    kind: String,
    title: String,
    severity: Severity,
    #[serde(default = "default_confidence")]
    confidence: f64,
    owasp: String,
    mitre: String,
    #[serde(default)]
    locations: Option<Vec<String>>,
    #[serde(default)]
    anchors: Vec<String>,
    regex: toml::Spanned<String>,
}

fn default_confidence() -> f64 {
    0.7
}

/// One compiled attack rule.
#[derive(Clone, Debug)]
pub struct AttackRule {
    pub meta: RuleMeta,
    pub regex: Regex,
    /// Bits of [`Loc`].
    pub locations: u8,
    pub anchors: Vec<String>,
}

/// Loads an attack pack; `name` is the file name used in messages.
pub fn load_attack_pack(name: &str, text: &str) -> Result<Vec<AttackRule>, SetupError> {
    let line_of = |off: usize| text.get(..off).map_or(1, |t| t.bytes().filter(|&b| b == b'\n').count() + 1);
    let pack: PackFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| format!("line {}: ", line_of(s.start))).unwrap_or_default();
        SetupError(format!("{name}: {at}{}", e.message()))
    })?;
    if pack.version != 1 {
        return Err(SetupError(format!("{name}: version = {}: only version 1 is known", pack.version)));
    }
    if pack.rule.len() > MAX_PACK_RULES {
        return Err(SetupError(format!("{name}: {} rules: at most {MAX_PACK_RULES}", pack.rule.len())));
    }
    let mut out: Vec<AttackRule> = Vec::with_capacity(pack.rule.len());
    for r in pack.rule {
        let at = format!("{name}: line {}: rule \"{}\"", line_of(r.id.span().start), r.id.get_ref());
        let id = r.id.into_inner();
        if id.is_empty() || out.iter().any(|o| o.meta.id == id) || BUILTIN.iter().any(|b| b.id == id) {
            return Err(SetupError(format!("{at}: id is empty or not unique")));
        }
        if !(0.0..=1.0).contains(&r.confidence) {
            return Err(SetupError(format!("{at}: confidence = {}: must be between 0 and 1", r.confidence)));
        }
        let mut locations = 0u8;
        match &r.locations {
            None => locations = 0x3f,
            Some(ls) => {
                for l in ls {
                    locations |= match l.as_str() {
                        "path" => Loc::Path as u8,
                        "query" => Loc::Query as u8,
                        "header" => Loc::Header as u8,
                        "cookie" => Loc::Cookie as u8,
                        "body" => Loc::Body as u8,
                        "raw_body" => Loc::RawBody as u8,
                        other => {
                            return Err(SetupError(format!(
                                "{at}: locations: unknown \"{other}\" (path, query, header, cookie, body, raw_body)"
                            )));
                        }
                    }
                }
            }
        }
        if r.anchors.iter().any(String::is_empty) {
            return Err(SetupError(format!("{at}: anchors: an anchor is empty")));
        }
        let regex_line = line_of(r.regex.span().start);
        let regex = RegexBuilder::new(r.regex.get_ref())
            .case_insensitive(true)
            .size_limit(1 << 20)
            .dfa_size_limit(2 << 20)
            .nest_limit(64)
            .build()
            .map_err(|e| SetupError(format!("{name}: line {regex_line}: rule \"{id}\": regex: {e}")))?;
        out.push(AttackRule {
            meta: RuleMeta {
                id,
                kind: r.kind,
                title: r.title,
                severity: r.severity,
                confidence: r.confidence,
                owasp: r.owasp,
                mitre: r.mitre,
                enabled: true,
                threshold: 0.0,
                window: 0.0,
            },
            regex,
            locations,
            anchors: r.anchors,
        });
    }
    Ok(out)
}

/// The run's rules: built-ins then the pack's, with `[detect.rules]` applied. An override for an unknown
/// rule id is an error (a typo must not leave a rule running).
pub fn build_rules(
    pack: &[AttackRule],
    overrides: &BTreeMap<String, RuleSettings>,
) -> Result<(Rules, Vec<RuleMeta>), SetupError> {
    let mut metas: Vec<RuleMeta> = BUILTIN
        .iter()
        .map(|b| RuleMeta {
            id: b.id.to_owned(),
            kind: b.kind.to_owned(),
            title: b.title.to_owned(),
            severity: b.severity,
            confidence: b.confidence,
            owasp: b.owasp.to_owned(),
            mitre: b.mitre.to_owned(),
            enabled: true,
            threshold: b.threshold,
            window: b.window,
        })
        .collect();
    metas.extend(pack.iter().map(|r| r.meta.clone()));
    for (id, o) in overrides {
        let Some(m) = metas.iter_mut().find(|m| &m.id == id) else {
            return Err(SetupError(format!("[detect.rules.{id}]: unknown rule id (see README, Detections)")));
        };
        if let Some(e) = o.enabled {
            m.enabled = e;
        }
        if let Some(s) = o.severity {
            m.severity = s;
        }
        if let Some(t) = o.threshold {
            if !t.is_finite() || t < 0.0 {
                return Err(SetupError(format!("[detect.rules.{id}] threshold = {t}: must be a number >= 0")));
            }
            m.threshold = t;
        }
        if let Some(w) = o.window {
            if w.is_zero() {
                return Err(SetupError(format!("[detect.rules.{id}] window: must be longer than 0s")));
            }
            m.window = w.as_secs_f64();
        }
    }
    let pack_metas = metas.get(BUILTIN.len()..).unwrap_or_default().to_vec();
    Ok((Rules { metas }, pack_metas))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pack_loads() {
        let p = load_attack_pack("attacks.toml", DEFAULT_ATTACK_PACK).unwrap();
        assert!(p.len() >= 9);
        for want in [
            "sqli",
            "xss",
            "path_traversal",
            "command_injection",
            "ssrf",
            "log4shell",
            "xxe",
            "nosql_injection",
            "template_injection",
        ] {
            assert!(p.iter().any(|r| r.meta.id == want), "{want}");
        }
    }

    #[test]
    fn pack_errors_name_file_line_and_rule() {
        let bad = "version = 1\n[[rule]]\nid = \"a\"\nkind = \"k\"\ntitle = \"t\"\nseverity = \"high\"\n\
                   owasp = \"API8:2023\"\nmitre = \"T1190\"\nregex = \"(unclosed\"\n";
        let e = load_attack_pack("p.toml", bad).unwrap_err().0;
        assert!(e.starts_with("p.toml: line 9: rule \"a\": regex:"), "{e}");
        let e = load_attack_pack("p.toml", "version = 1\n[[rule]]\nid = 3\n").unwrap_err().0;
        assert!(e.starts_with("p.toml: line 3"), "{e}");
        let e = load_attack_pack("p.toml", "version = 2\n").unwrap_err().0;
        assert!(e.contains("version = 2"), "{e}");
        let e = load_attack_pack(
            "p.toml",
            &bad.replace("(unclosed", "x").replace("[[rule]]\n", "[[rule]]\nlocations = [\"foot\"]\n"),
        )
        .unwrap_err()
        .0;
        assert!(e.contains("unknown \"foot\""), "{e}");
    }

    #[test]
    fn overrides_apply_and_unknown_ids_fail() {
        let pack = load_attack_pack("a", DEFAULT_ATTACK_PACK).unwrap();
        let mut o = BTreeMap::new();
        o.insert(
            "sqli".to_owned(),
            RuleSettings { enabled: Some(false), severity: Some(Severity::Low), threshold: None, window: None },
        );
        o.insert(
            "failed_auth_burst".to_owned(),
            RuleSettings {
                threshold: Some(3.0),
                window: Some(std::time::Duration::from_secs(10)),
                ..Default::default()
            },
        );
        let (rules, _) = build_rules(&pack, &o).unwrap();
        let s = rules.find("sqli").unwrap();
        assert!(!rules.enabled(s));
        let f = rules.find("failed_auth_burst").unwrap();
        assert_eq!((rules.threshold(f), rules.window(f)), (3.0, 10.0));
        o.insert("sqly".to_owned(), RuleSettings::default());
        assert!(build_rules(&pack, &o).unwrap_err().0.contains("[detect.rules.sqly]"));
    }

    #[test]
    fn severity_raises_and_saturates() {
        assert_eq!(Severity::High.raised(), Severity::Critical);
        assert_eq!(Severity::Critical.raised(), Severity::Critical);
    }
}
