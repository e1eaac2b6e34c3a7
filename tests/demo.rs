//! `pcaps/demo.pcap` replayed by the binary must report exactly what `synth::demo_expected` says it contains:
//! every transaction with its method, URI, status and body lengths, de-chunked and decoded bodies, masked
//! credentials and the attacker's requests.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use mirador::synth::{DEMO_SEED, DemoTruth, DemoTx, demo_expected};
use serde_json::Value;

fn run() -> (DemoTruth, Run) {
    let truth = demo_expected(DEMO_SEED);
    let run = replay(&[&pcap("demo.pcap")], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    (truth, run)
}

fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers.as_array()?.iter().find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?[1].as_str()
}

/// Output records and truth paired by connection (client address) and position in the connection.
fn paired(truth: &DemoTruth, records: &[Value]) -> Vec<(DemoTx, Value)> {
    let mut want: BTreeMap<String, Vec<DemoTx>> = BTreeMap::new();
    for t in &truth.transactions {
        want.entry(t.client.to_string()).or_default().push(t.clone());
    }
    let mut got: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in records {
        let key = format!("{}:{}", r["src_ip"].as_str().unwrap(), r["src_port"]);
        got.entry(key).or_default().push(r.clone());
    }
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "connections differ");
    let mut out = Vec::new();
    for (conn, w) in want {
        let mut g = got.remove(&conn).unwrap_or_default();
        g.sort_by_key(|r| r["trans_depth"].as_u64());
        assert_eq!(w.len(), g.len(), "{conn}: transaction count");
        for (i, (t, r)) in w.into_iter().zip(g).enumerate() {
            assert_eq!(r["trans_depth"], i as u64 + 1, "{conn}");
            out.push((t, r));
        }
    }
    out
}

#[test]
fn every_transaction_matches_the_ground_truth() {
    let (truth, run) = run();
    let records = run.jsonl("transactions.jsonl");
    assert_eq!(records.len(), truth.transactions.len());
    let mut masked = 0;
    for (t, r) in paired(&truth, &records) {
        let ctx = format!("{} {} from {}: {r:#}", t.method, t.uri, t.client);
        assert_eq!(r["method"], t.method, "{ctx}");
        masked += uri_matches(r["uri"].as_str().unwrap_or(""), &t.uri, &ctx);
        assert_eq!(r["host"], t.host.as_str(), "{ctx}");
        assert_eq!(r["version"], t.version, "{ctx}");
        assert_eq!(r["user_agent"], t.user_agent.as_str(), "{ctx}");
        assert_eq!(r["dst_ip"], t.server.ip().to_string(), "{ctx}");
        assert_eq!(r["dst_port"], t.server.port(), "{ctx}");
        assert_eq!(r["status"], t.status, "{ctx}");
        assert_eq!(r["request_body_len"], t.request_body_len, "{ctx}");
        assert_eq!(r["response_body_len"], t.response_body_len, "{ctx}");
        assert_eq!(r["response_body_decoded_len"], t.response_body_decoded_len, "{ctx}");
        assert_eq!(r["flags"], serde_json::json!([]), "{ctx}");
    }
    assert!(masked > 0, "the personal data in the demo's query strings is masked in transactions.jsonl");
}

/// The logged URI is the one sent, except query values the sensitive-data analyzer flagged, which read
/// `***`; an email address in a query is always one of them. Returns how many values were masked.
fn uri_matches(got: &str, sent: &str, ctx: &str) -> usize {
    let (gp, gq) = got.split_once('?').unwrap_or((got, ""));
    let (sp, sq) = sent.split_once('?').unwrap_or((sent, ""));
    assert_eq!(gp, sp, "{ctx}");
    let (gq, sq): (Vec<&str>, Vec<&str>) = (gq.split('&').collect(), sq.split('&').collect());
    assert_eq!(gq.len(), sq.len(), "{ctx}");
    let mut masked = 0;
    for (g, s) in gq.iter().zip(&sq) {
        let (gk, gv) = g.split_once('=').unwrap_or((g, ""));
        let (sk, sv) = s.split_once('=').unwrap_or((s, ""));
        assert_eq!(gk, sk, "{ctx}");
        if gv == "***" && sv != "***" {
            masked += 1;
        } else {
            assert_eq!(gv, sv, "{ctx}");
            assert!(!sv.contains("%40"), "an email address in the query is not masked: {ctx}");
        }
    }
    masked
}

#[test]
fn method_and_status_counts() {
    let (truth, run) = run();
    let records = run.jsonl("transactions.jsonl");
    let count = |f: &dyn Fn(&Value) -> String| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in &records {
            *m.entry(f(r)).or_default() += 1;
        }
        m
    };
    let mut methods: BTreeMap<String, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut versions: BTreeMap<String, usize> = BTreeMap::new();
    for t in &truth.transactions {
        *methods.entry(t.method.to_owned()).or_default() += 1;
        *statuses.entry(t.status.to_string()).or_default() += 1;
        *versions.entry(t.version.to_owned()).or_default() += 1;
    }
    assert_eq!(count(&|r| r["method"].as_str().unwrap().to_owned()), methods);
    assert_eq!(count(&|r| r["status"].to_string()), statuses);
    assert_eq!(count(&|r| r["version"].as_str().unwrap().to_owned()), versions);
    // The demo's promised mix is all there.
    for s in ["200", "201", "204", "304", "400", "401", "403", "404", "429", "500"] {
        assert!(statuses.contains_key(s), "no {s} in {statuses:?}");
    }
    for m in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains_key(m), "no {m} in {methods:?}");
    }
    assert!(versions.get("HTTP/1.0").copied().unwrap_or(0) > 0, "{versions:?}");
    let hosts: BTreeSet<_> = records.iter().filter_map(|r| r["host"].as_str()).collect();
    assert_eq!(hosts, ["10.20.3.7:8000", "api.shop.example", "payments.shop.example", "users.internal.example"].into());
}

#[test]
fn gzip_responses_are_decoded_and_chunked_ones_dechunked() {
    let (truth, run) = run();
    let records = run.jsonl("transactions.jsonl");
    let pairs = paired(&truth, &records);
    let gz: Vec<_> = pairs.iter().filter(|(t, _)| t.gzip).collect();
    let chunked: Vec<_> = pairs.iter().filter(|(t, _)| t.chunked).collect();
    assert!(gz.len() >= 10 && chunked.len() >= 10, "gzip {} chunked {}", gz.len(), chunked.len());
    assert!(pairs.iter().any(|(t, _)| t.gzip && t.chunked), "some responses are both");
    for (t, r) in gz {
        assert_eq!(r["content_encoding"], "gzip", "{r:#}");
        let (len, dec) = (r["response_body_len"].as_u64().unwrap(), r["response_body_decoded_len"].as_u64().unwrap());
        assert!(dec > len, "{r:#}");
        assert_eq!((len, dec), (t.response_body_len, t.response_body_decoded_len));
    }
    for (t, r) in chunked {
        assert_eq!(header(&r["response_headers"], "transfer-encoding"), Some("chunked"), "{r:#}");
        assert_eq!(header(&r["response_headers"], "content-length"), None, "{r:#}");
        // De-chunked: the body length counts data bytes only, not the size lines.
        assert_eq!(r["response_body_len"], t.response_body_len, "{r:#}");
    }
    for (t, r) in pairs.iter().filter(|(t, _)| !t.gzip) {
        assert_eq!(r["content_encoding"], Value::Null, "{r:#}");
        assert_eq!(t.response_body_len, t.response_body_decoded_len);
    }
}

#[test]
fn credentials_are_masked() {
    let (truth, run) = run();
    let text = std::fs::read_to_string(run.out.path().join("transactions.jsonl")).unwrap();
    assert!(truth.secrets.len() > 60, "{}", truth.secrets.len());
    for s in &truth.secrets {
        assert!(!text.contains(s.as_str()), "{s} leaked into transactions.jsonl");
    }
    // base64url of {"alg":"HS256","typ":"JWT"}: no JWT at all in the file.
    assert!(!text.contains("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"));
    let records = run.jsonl("transactions.jsonl");
    let values = |name: &str, side: &str| -> BTreeSet<String> {
        records
            .iter()
            .flat_map(|r| r[side].as_array().unwrap().clone())
            .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|h| h[1].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(values("authorization", "request_headers"), ["Basic ***".to_owned(), "Bearer ***".to_owned()].into());
    assert_eq!(values("cookie", "request_headers"), ["***".to_owned()].into());
    assert_eq!(values("set-cookie", "response_headers"), ["***".to_owned()].into());
    assert_eq!(values("x-api-key", "request_headers"), ["***".to_owned()].into());
}

#[test]
fn attacker_requests_are_reported() {
    let (truth, run) = run();
    let records = run.jsonl("transactions.jsonl");
    let attacker = truth.attacker.unwrap().to_string();
    let from_attacker: Vec<_> = records.iter().filter(|r| r["src_ip"] == attacker.as_str()).collect();
    let expected: Vec<_> = truth.transactions.iter().filter(|t| t.client.ip().to_string() == attacker).collect();
    assert_eq!(from_attacker.len(), expected.len());
    assert!(expected.iter().all(|t| t.attack.is_some()));
    let uris: BTreeSet<&str> = from_attacker.iter().map(|r| r["uri"].as_str().unwrap()).collect();
    for t in &expected {
        assert!(uris.contains(t.uri.as_str()), "{} missing", t.uri);
    }
    let has = |needle: &str| uris.iter().any(|u| u.contains(needle));
    assert!(has("'%20OR%201=1--"), "SQL injection: {uris:?}");
    assert!(has("UNION%20SELECT"));
    assert!(has("/../../etc/passwd"));
    assert!(has("url=http://169.254.169.254/latest/meta-data/"));
    let by_uri = |u: &str| from_attacker.iter().filter(move |r| r["uri"] == u).collect::<Vec<_>>();
    for p in ["/admin", "/.env", "/wp-login.php", "/actuator/env"] {
        let r = by_uri(p);
        assert_eq!(r.len(), 1, "{p}");
        assert_eq!(r[0]["status"], 404, "{p}");
    }
    let debug = by_uri("/api/internal/debug/config");
    assert_eq!(debug.len(), 1);
    assert_eq!(debug[0]["status"], 200);
    assert_eq!(header(&debug[0]["request_headers"], "authorization"), None, "unauthenticated");
    assert!(
        from_attacker.iter().any(|r| r["user_agent"].as_str().unwrap().starts_with("${jndi:ldap://")),
        "log4shell in the User-Agent"
    );
    assert!(from_attacker.iter().any(|r| r["method"] == "PATCH" && r["request_body_len"].as_u64().unwrap() > 0), "XSS");
    let failed_logins = from_attacker
        .iter()
        .filter(|r| r["method"] == "POST" && r["uri"] == "/api/v1/auth/login" && r["status"] == 401)
        .count();
    assert_eq!(failed_logins, 15, "credential stuffing burst");

    // BOLA: one client walks sequential user ids on one connection.
    let bola = truth.bola_client.unwrap().to_string();
    // Workers may write transactions out of order: order by request time.
    let mut walk: Vec<(f64, u64)> = records
        .iter()
        .filter(|r| r["src_ip"] == bola.as_str())
        .filter_map(|r| Some((r["ts"].as_f64()?, r["uri"].as_str()?.strip_prefix("/api/v1/users/")?.parse().ok()?)))
        .collect();
    walk.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ids: Vec<u64> = walk.into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, (1001..1031).collect::<Vec<_>>());
}

/// The ground truth describes the committed file only if the file is what the generator writes today.
#[test]
fn committed_demo_pcap_is_the_generator_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("demo.pcap");
    let mut frames = mirador::synth::demo_traffic(DEMO_SEED);
    mirador::synth::write_pcap(&p, &mut frames).unwrap();
    let fresh = std::fs::read(&p).unwrap();
    assert!(fresh.len() < 800 * 1024, "{}", fresh.len());
    assert!(fresh == std::fs::read(pcap("demo.pcap")).unwrap(), "pcaps/demo.pcap is stale: run `make pcaps`");
}
