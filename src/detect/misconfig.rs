//! Misconfiguration and reconnaissance (API8, API9): stack traces and SQL errors in responses, software
//! versions in headers, CORS open to any origin with credentials, debug/admin endpoints answering 2xx,
//! probes of well-known sensitive paths, and known scanner User-Agents.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind};
use regex::Regex;

use super::rules::{RuleId, Rules};
use super::state::Bounded;
use super::{Detector, Emitter, Hit, Scope, Settings, TxContext, truncate_escaped};
use crate::http::Transaction;

/// Bytes of an error response's body searched for traces and SQL errors: they sit near the start.
const MAX_SCAN_BYTES: usize = 64 * 1024;

/// Distinct probed paths remembered per actor.
const MAX_PROBES: usize = 64;

fn re(s: &str) -> Regex {
    // The patterns are constants checked by the unit tests; an invalid one would match nothing.
    Regex::new(s).unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
}

static TRACE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"[\w$.]+\([\w$]+\.java:\d+\)",
        r"|Traceback \(most recent call last\)|File \x22[^\x22]{1,300}\x22, line \d+, in \w+",
        r"| in [A-Za-z]:\\[^:\r\n]{1,300}\.cs:line \d+|\bat [\w.`<>]+\([^)]{0,200}\) in [^\r\n]{1,300}:line \d+",
        r"|(?:PHP )?(?:Fatal error|Parse error)(?:</b>)?:[^\r\n]{0,300} on line (?:<b>)?\d+|Stack trace:\s*#0 ",
        r"|\bat (?:[\w.<>$]+ )?\((?:/|[A-Za-z]:\\|node:)[^)]{1,300}\.(?:js|mjs|cjs|ts):\d+:\d+\)",
        r"|goroutine \d+ \[running\]:|panic: runtime error",
        r"|\.rb:\d+:in `",
    ))
});

/// Literals of stack traces and SQL errors: one pass over a body tells whether either regex needs to run.
static VERBOSE_ANCHORS: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build([
            ".java:",
            "traceback",
            "file \"",
            "exception",
            "stack trace",
            "goroutine",
            "panic:",
            ".rb:",
            ".js:",
            ".cs:line",
            "on line",
            ".php:",
            "sqlstate",
            "sql syntax",
            "ora-",
            "syntax error at or near",
            "unclosed quotation",
            "sqlite",
            "psqlexception",
            "pg::",
            "psycopg2",
            "mysql",
            "odbc",
            "ole db",
            "sqlexception",
            "jdbc",
        ])
        .ok()
});

static SQL_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)\bSQLSTATE\b|syntax error at or near|You have an error in your SQL syntax|\bORA-\d{5}\b",
        r"|Unclosed quotation mark after the character string|\bSQLite3?::|sqlite3\.OperationalError",
        r"|\bPG::\w+Error|psycopg2\.(?:errors\.)?\w+|org\.postgresql\.util\.PSQLException|com\.mysql\.jdbc",
        r"|\bmysqli?_(?:fetch|query|num_rows)\w*\(|valid MySQL result|\[ODBC [^\]]{0,40}Driver\]",
        r"|Microsoft OLE DB Provider for SQL Server|java\.sql\.SQLException",
    ))
});

static VERSION: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z][\w.-]*[/ (]v?\d+\.\d+"));

/// Path segments of debug and diagnostics endpoints: a 2xx on one is an alert whoever asked.
const DEBUG_SEGMENTS: &[&str] = &[
    "debug",
    "actuator",
    ".env",
    "phpinfo",
    "phpinfo.php",
    "info.php",
    ".git",
    "server-status",
    "server-info",
    "heapdump",
    "jolokia",
    "h2-console",
    "_profiler",
    "trace.axd",
    "elmah.axd",
    "__debug__",
    "console",
    ".svn",
    "swagger-resources",
    "env.json",
];
/// Admin segments: an alert when answered 2xx to a request without credentials.
const ADMIN_SEGMENTS: &[&str] = &["admin", "administrator", "wp-admin", "phpmyadmin", "manager", "adminer.php"];

/// Well-known paths scanners ask for (prefix match on the path, lower-cased).
const PROBE_PATHS: &[&str] = &[
    "/.env",
    "/.git/",
    "/.svn/",
    "/.hg/",
    "/.ds_store",
    "/.aws/",
    "/.ssh/",
    "/.htaccess",
    "/.htpasswd",
    "/wp-login.php",
    "/wp-admin",
    "/wp-config",
    "/xmlrpc.php",
    "/phpmyadmin",
    "/pma/",
    "/server-status",
    "/server-info",
    "/actuator",
    "/admin",
    "/administrator",
    "/backup",
    "/config.json",
    "/web.config",
    "/cgi-bin/",
    "/phpinfo",
    "/console",
    "/jolokia",
    "/solr/",
    "/.well-known/security.txt",
    "/vendor/phpunit",
    "/debug",
    "/telescope",
    "/elmah.axd",
];

const SCANNERS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nuclei",
    "nmap",
    "masscan",
    "zgrab",
    "dirbuster",
    "gobuster",
    "ffuf",
    "wfuzz",
    "burp",
    "zaproxy",
    "owasp zap",
    "acunetix",
    "nessus",
    "openvas",
    "w3af",
    "wpscan",
    "hydra",
    "feroxbuster",
    "arachni",
    "whatweb",
    "commix",
    "jaeles",
    "dirsearch",
    "netsparker",
    "qualys",
    "appscan",
    "httpx",
    "interactsh",
];

/// `PROBE_PATHS` by the lower-cased byte after their leading `/`: a request path is compared with the few
/// entries that can match it, not with all of them.
static PROBES_BY_BYTE: LazyLock<Vec<Vec<&'static str>>> = LazyLock::new(|| {
    let mut t = vec![Vec::new(); 256];
    for p in PROBE_PATHS {
        if let Some(v) = p.as_bytes().get(1).and_then(|b| t.get_mut(usize::from(b.to_ascii_lowercase()))) {
            v.push(*p);
        }
    }
    t
});

/// A path starting (ignoring case) with one of `PROBE_PATHS`.
fn probe_path(path: &str) -> bool {
    let Some(c) = path.as_bytes().get(1) else { return false };
    PROBES_BY_BYTE
        .get(usize::from(c.to_ascii_lowercase()))
        .is_some_and(|ps| ps.iter().any(|p| path.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))))
}

/// Bit n set: some entry of `set` is n bytes long (n < 64). Segment names are compared only at those lengths.
const fn lengths(set: &[&str]) -> u64 {
    let mut m = 0u64;
    let mut i = 0;
    while i < set.len() {
        let n = set[i].len();
        if n < 64 {
            m |= 1 << n;
        }
        i += 1;
    }
    m
}
const DEBUG_LENGTHS: u64 = lengths(DEBUG_SEGMENTS);
const ADMIN_LENGTHS: u64 = lengths(ADMIN_SEGMENTS);

static SCANNER_AC: LazyLock<Option<AhoCorasick>> =
    LazyLock::new(|| AhoCorasickBuilder::new().ascii_case_insensitive(true).build(SCANNERS).ok());

fn scan_body(tx: &Transaction) -> &[u8] {
    let b = tx.decoded_response_body();
    // Only error answers: a trace in a 2xx is rare, and scanning every successful body cost more than all
    // the other rules together (bench `detect`).
    if tx.status.is_none_or(|s| s < 400) {
        return &[];
    }
    b.get(..MAX_SCAN_BYTES).unwrap_or(b)
}

fn verbose_candidate(body: &[u8]) -> bool {
    VERBOSE_ANCHORS.as_ref().is_some_and(|ac| ac.is_match(body))
}

fn textual(tx: &Transaction) -> bool {
    match tx.response_headers.get("content-type") {
        None => true,
        Some(ct) => ["json", "text", "html", "xml", "problem"].iter().any(|t| super::contains_ignore_ascii_case(ct, t)),
    }
}

/// The SQL error text in the response, if any (evidence, cut to 64 bytes).
pub fn sql_error(tx: &Transaction) -> Option<String> {
    if !textual(tx) {
        return None;
    }
    let body = scan_body(tx);
    if !verbose_candidate(body) {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    SQL_ERROR.find(&text).map(|m| m.start()).map(|s| truncate_escaped(text.as_bytes().get(s..).unwrap_or_default(), 64))
}

pub struct Misconfig {
    trace: RuleId,
    sql: RuleId,
    version: RuleId,
    cors: RuleId,
    debug: RuleId,
    probe: RuleId,
    scanner: RuleId,
    /// (service, header, value) hashes already reported.
    versions_seen: Bounded<u64, ()>,
    /// By address.
    probes: Bounded<u64, (Vec<u64>, f64)>,
    hasher: foldhash::fast::RandomState,
}

impl Misconfig {
    pub fn new(rules: &Rules, s: &Settings) -> Self {
        let id = |n: &str| rules.find(n).unwrap_or(RuleId(u16::MAX));
        Misconfig {
            trace: id("stack_trace"),
            sql: id("sql_error"),
            version: id("version_disclosure"),
            cors: id("cors_credentials"),
            debug: id("debug_endpoint"),
            probe: id("sensitive_path_probe"),
            scanner: id("scanner_user_agent"),
            versions_seen: Bounded::new(s.max_tracked_keys, "[detect] max_tracked_keys"),
            probes: Bounded::new(s.max_tracked_keys, "[detect] max_tracked_keys"),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn bodies(&self, tx: &Transaction, em: &mut Emitter<'_>) {
        if scan_body(tx).is_empty() || !textual(tx) || !(em.on(self.trace) || em.on(self.sql)) {
            return;
        }
        let body = scan_body(tx);
        // Most bodies carry neither: the byte-level anchor check avoids a UTF-8 copy of every body.
        if !verbose_candidate(body) {
            return;
        }
        let text = String::from_utf8_lossy(body);
        if em.on(self.trace)
            && let Some((s, _)) = TRACE.find(&text).map(|m| (m.start(), m.end()))
        {
            let ev = truncate_escaped(text.as_bytes().get(s..).unwrap_or_default(), 64);
            em.raise(Hit::new(self.trace).scope(Scope::Endpoint).at("response.body", "").evidence(ev));
        }
        if em.on(self.sql)
            && let Some((s, _)) = SQL_ERROR.find(&text).map(|m| (m.start(), m.end()))
        {
            let ev = truncate_escaped(text.as_bytes().get(s..).unwrap_or_default(), 64);
            em.raise(Hit::new(self.sql).scope(Scope::Endpoint).at("response.body", "").evidence(ev));
        }
    }

    fn versions(&self, tx: &Transaction, em: &mut Emitter<'_>) {
        if !em.on(self.version) {
            return;
        }
        for (name, v) in tx.response_headers.iter() {
            let is = |names: &[&str]| names.iter().any(|n| name.eq_ignore_ascii_case(n));
            let disclosing = if is(&["server", "x-powered-by", "x-generator", "x-runtime-version"]) {
                // A version has digits (`\d` is Unicode: any non-ASCII byte may start one): `Server: nginx`
                // on every response needs no regex.
                v.bytes().any(|c| c.is_ascii_digit() || !c.is_ascii()) && VERSION.is_match(v)
            } else {
                is(&["x-aspnet-version", "x-aspnetmvc-version"])
            };
            if !disclosing {
                continue;
            }
            let n = name.to_ascii_lowercase();
            let key = std::hash::BuildHasher::hash_one(&self.hasher, (&*em.facts.service, &n, v));
            if self.versions_seen.get(&key, |_| ()).is_some() {
                continue;
            }
            if self.versions_seen.update(key, || (), |_| ()).is_some() {
                let shown = truncate_escaped(v.as_bytes(), 64);
                em.raise(
                    Hit::new(self.version)
                        .scope(Scope::Host)
                        .once(key)
                        .at("response.header", name)
                        .evidence(format!("{name}: {shown}")),
                );
            }
        }
    }

    fn cors(&self, tx: &Transaction, em: &mut Emitter<'_>) {
        if !em.on(self.cors) {
            return;
        }
        let h = &tx.response_headers;
        let (Some(origin), Some(creds)) =
            (h.get("access-control-allow-origin"), h.get("access-control-allow-credentials"))
        else {
            return;
        };
        if !creds.trim().eq_ignore_ascii_case("true") {
            return;
        }
        let origin = origin.trim();
        let req_origin = tx.request_headers.get("origin").map(str::trim);
        let host = &*em.facts.host;
        let reflected = req_origin.is_some_and(|o| o == origin && !o.ends_with(&format!("//{host}")));
        if origin == "*" || origin.eq_ignore_ascii_case("null") || reflected {
            let what = if reflected { "reflects the request Origin" } else { "allows any origin" };
            em.raise(
                Hit::new(self.cors)
                    .scope(Scope::Endpoint)
                    .once(0)
                    .at("response.header", "Access-Control-Allow-Origin")
                    .evidence(format!("{what} ({}) with credentials", truncate_escaped(origin.as_bytes(), 64))),
            );
        }
    }

    fn debug_endpoints(&self, tx: &Transaction, em: &mut Emitter<'_>) {
        let f = em.facts;
        let path = tx.path.as_str();
        if f.success() && em.on(self.debug) {
            let segs = || path.split('/').filter(|s| !s.is_empty());
            let among = |set: &[&str], lens: u64, s: &str| {
                s.len() < 64 && lens & (1 << s.len()) != 0 && set.iter().any(|d| s.eq_ignore_ascii_case(d))
            };
            let debug = segs().find(|s| among(DEBUG_SEGMENTS, DEBUG_LENGTHS, s));
            let admin = if f.authenticated { None } else { segs().find(|s| among(ADMIN_SEGMENTS, ADMIN_LENGTHS, s)) };
            if let Some(seg) = debug.or(admin) {
                let seg = seg.to_ascii_lowercase();
                em.raise(
                    Hit::new(self.debug)
                        .scope(Scope::Endpoint)
                        .at("request.path", "")
                        .outcome("possible_success")
                        .evidence(format!(
                            "/{seg} answered {}{}",
                            f.status.unwrap_or(0),
                            if f.authenticated { "" } else { " without credentials" }
                        )),
                );
            }
        }
        if em.on(self.probe) && probe_path(path) {
            let window = em.rules.window(self.probe);
            let h = std::hash::BuildHasher::hash_one(&self.hasher, path.to_ascii_lowercase());
            let key = f.ip_id;
            let n = self
                .probes
                .update(
                    key,
                    || (Vec::new(), f.ts),
                    |(seen, last)| {
                        if *last + window < f.ts {
                            seen.clear();
                        }
                        *last = f.ts;
                        if !seen.contains(&h) && seen.len() < MAX_PROBES {
                            seen.push(h);
                        }
                        seen.len()
                    },
                )
                .unwrap_or(0);
            if n as f64 >= em.rules.threshold(self.probe) {
                em.raise(Hit::new(self.probe).scope(Scope::Address).at("request.path", "").events(n as u64).evidence(
                    format!("{n} well-known sensitive paths, e.g. {}", truncate_escaped(tx.path.as_bytes(), 64)),
                ));
            }
        }
    }

    fn scanner(&self, tx: &Transaction, em: &mut Emitter<'_>) {
        if !em.on(self.scanner) {
            return;
        }
        let Some(ua) = tx.user_agent() else { return };
        if let Some(m) = SCANNER_AC.as_ref().and_then(|ac| ac.find(ua)) {
            let tool = SCANNERS.get(m.pattern().as_usize()).copied().unwrap_or("scanner");
            em.raise(
                Hit::new(self.scanner)
                    .scope(Scope::Actor)
                    .at("request.header", "User-Agent")
                    .evidence(format!("{tool}: {}", truncate_escaped(ua.as_bytes(), 64))),
            );
        }
    }
}

impl Detector for Misconfig {
    fn name(&self) -> &'static str {
        "misconfig"
    }

    fn on_transaction(&self, tx: &Transaction, _ctx: &TxContext, em: &mut Emitter<'_>) {
        self.bodies(tx, em);
        self.versions(tx, em);
        self.cors(tx, em);
        self.debug_endpoints(tx, em);
        self.scanner(tx, em);
    }

    fn on_tick(&self, now: f64) {
        self.probes.retain(|_, (_, last)| *last + 3600.0 >= now);
    }

    fn cap_hits(&self) -> u64 {
        self.versions_seen.cap_hits() + self.probes.cap_hits()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::super::testutil::*;

    fn has(a: &[serde_json::Value], id: &str) -> bool {
        ids(a).iter().any(|r| r == id)
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> crate::http::Transaction {
        with_response(tx("GET", "/v1/x", &[], "", status, 1.0), headers, body)
    }

    #[test]
    fn probe_paths_and_segment_lengths_as_a_scan_finds_them() {
        for path in
            ["/.env", "/.ENV.bak", "/admin/x", "/ADMINISTRATOR", "/api/v1", "/", "", "/a", "/wp-login.php", "/x/.env"]
        {
            let scan =
                super::PROBE_PATHS.iter().any(|p| path.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)));
            assert_eq!(super::probe_path(path), scan, "{path}");
        }
        for set in [super::DEBUG_SEGMENTS, super::ADMIN_SEGMENTS] {
            let m = super::lengths(set);
            assert!(set.iter().all(|s| m & (1 << s.len()) != 0));
        }
    }

    #[test]
    fn version_gate_keeps_unicode_digits() {
        let e = engine(Settings::default());
        let a = fired(&e, &resp(200, &[("Server", "nginx/\u{663}.\u{664}")], ""));
        assert!(has(&a, "version_disclosure"));
        assert!(super::VERSION.is_match("nginx/\u{663}.\u{664}"));
    }

    #[test]
    fn regexes_compile() {
        for r in [&*super::TRACE, &*super::SQL_ERROR, &*super::VERSION] {
            assert!(!r.is_match(""), "{r}");
        }
    }

    #[test]
    fn stack_traces() {
        let e = engine(Settings::default());
        for body in [
            r#"{"trace":"java.lang.NullPointerException\n\tat com.example.UserService.toDto(UserService.java:214)\n"}"#,
            "Traceback (most recent call last):\n  File \"/app/views.py\", line 142, in create_refund\n",
            "   at Shop.Api.OrdersController.Get(Int32 id) in C:\\src\\Shop\\OrdersController.cs:line 42",
            "<b>Fatal error</b>:  Uncaught Error in /var/www/index.php on line <b>12</b>",
            "TypeError: x is undefined\n    at Object.handler (/srv/app/routes/users.js:17:9)",
            "panic: runtime error: index out of range\n\ngoroutine 1 [running]:",
        ] {
            assert!(has(&fired(&e, &resp(500, &[], body)), "stack_trace"), "{body}");
        }
        assert!(!has(&fired(&e, &resp(500, &[], r#"{"error":"internal","message":"try again"}"#)), "stack_trace"));
        assert!(!has(&fired(&e, &resp(400, &[], r#"{"name":"Exception handling in Java","pages":3}"#)), "stack_trace"));
        // Successful answers are not searched.
        let java = "at com.example.UserService.toDto(UserService.java:214)";
        assert!(!has(&fired(&e, &resp(200, &[], java)), "stack_trace"));
    }

    #[test]
    fn sql_errors() {
        let e = engine(Settings::default());
        let body = r#"{"detail":"ERROR: syntax error at or near \"OR\" (SQLSTATE 42601)"}"#;
        assert!(has(&fired(&e, &resp(500, &[], body)), "sql_error"));
        assert!(has(
            &fired(&e, &resp(500, &[], "You have an error in your SQL syntax; check the manual")),
            "sql_error"
        ));
        assert!(!has(&fired(&e, &resp(503, &[], r#"{"db":"mysql is down"}"#)), "sql_error"));
    }

    #[test]
    fn version_disclosure_once_per_host_and_value() {
        let e = engine(Settings::default());
        let h = [("Server", "Apache/2.4.1 (Unix)"), ("X-Powered-By", "PHP/7.2.1")];
        let a = fired(&e, &resp(200, &h, ""));
        assert_eq!(a.iter().filter(|a| a["rule_id"] == "version_disclosure").count(), 2);
        assert!(!has(&fired(&e, &resp(200, &h, "")), "version_disclosure"));
        assert!(!has(
            &fired(&engine(Settings::default()), &resp(200, &[("Server", "nginx")], "")),
            "version_disclosure"
        ));
        assert!(has(
            &fired(&engine(Settings::default()), &resp(200, &[("Server", "Jetty(9.4.51.v20230217)")], "")),
            "version_disclosure"
        ));
    }

    #[test]
    fn cors_with_credentials() {
        let e = engine(Settings::default());
        let bad = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true")];
        assert!(has(&fired(&e, &resp(200, &bad, "")), "cors_credentials"));
        // A property of the operation: reported once.
        assert!(!has(&fired(&e, &resp(200, &bad, "")), "cors_credentials"));
        let e = engine(Settings::default());
        let mut t = resp(
            200,
            &[("Access-Control-Allow-Origin", "https://evil.example"), ("Access-Control-Allow-Credentials", "true")],
            "",
        );
        t.request_headers.push("Origin", "https://evil.example");
        assert!(has(&fired(&e, &t), "cors_credentials"));
        let ok = [("Access-Control-Allow-Origin", "https://app.example"), ("Access-Control-Allow-Credentials", "true")];
        assert!(!has(&fired(&e, &resp(200, &ok, "")), "cors_credentials"));
        assert!(!has(&fired(&e, &resp(200, &[("Access-Control-Allow-Origin", "*")], "")), "cors_credentials"));
    }

    #[test]
    fn debug_and_admin_endpoints() {
        let e = engine(Settings::default());
        assert!(has(&fired(&e, &tx("GET", "/api/internal/debug/config", &[], "", 200, 1.0)), "debug_endpoint"));
        assert!(has(&fired(&e, &tx("GET", "/actuator/env", &[], "", 200, 1.0)), "debug_endpoint"));
        assert!(!has(&fired(&e, &tx("GET", "/actuator/env", &[], "", 404, 1.0)), "debug_endpoint"));
        assert!(has(&fired(&e, &tx("GET", "/admin/users", &[], "", 200, 1.0)), "debug_endpoint"));
        let auth = [("Authorization", "Bearer x")];
        assert!(!has(&fired(&e, &tx("GET", "/admin/users", &auth, "", 200, 1.0)), "debug_endpoint"));
        assert!(!has(&fired(&e, &tx("GET", "/api/debugger-tips", &[], "", 200, 1.0)), "debug_endpoint"));
    }

    #[test]
    fn probes_and_scanners() {
        let e = engine(Settings::default());
        let mut n = 0;
        for p in ["/.env", "/.git/config", "/wp-login.php", "/.env"] {
            n += usize::from(has(&fired(&e, &tx("GET", p, &[], "", 404, 1.0)), "sensitive_path_probe"));
        }
        assert_eq!(n, 2);
        let ua = [("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")];
        let a = fired(&e, &tx("GET", "/x", &ua, "", 200, 1.0));
        assert!(has(&a, "scanner_user_agent"));
        let ua = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0")];
        assert!(!has(&fired(&e, &tx("GET", "/x", &ua, "", 200, 1.0)), "scanner_user_agent"));
    }
}
