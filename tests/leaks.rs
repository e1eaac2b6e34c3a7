//! Never leak what is detected: credentials, e-mails and tokens planted in path segments, query strings,
//! headers and bodies must not appear in any file of the output directory (they may appear only redacted),
//! with a spec given (spec-diff.json and shadow alerts) and without.

mod common;

use std::path::Path;

use common::replay;
use mirador::capture::Timestamp;
use mirador::reassembly::Dir;
use mirador::synth::{self, TcpConv};

/// Values planted in the traffic; none may be written.
const PLANTED: &[&str] = &[
    "Sup3rS3cretPW9",
    "Zq8-rT5_wP3x",
    "planted.person",
    "kT7mQ2xZ9pL4vB8nW",
    "Hunter2Planted",
    "AKIAIOSFODNN7EXAMPLE",
    "4111111111111111",
    "hush-hush-phrase",
    "Tr0ub4dor-Planted",
];

/// Method, target, request headers, request body, status, response body.
type Exchange = (&'static str, String, Vec<(&'static str, &'static str)>, String, u16, String);

fn exchanges() -> Vec<Exchange> {
    let json = |s: &str| s.to_owned();
    let mut v = vec![
        ("GET", "/auth/jdoe/Sup3rS3cretPW9".to_owned(), vec![], String::new(), 200, json(r#"{"authenticated": true}"#)),
        ("POST", "/password/reset/Zq8-rT5_wP3x".to_owned(), vec![], json(r#"{"new": "x"}"#), 200, json("{}")),
        ("GET", "/users/planted.person%40example.org/orders".to_owned(), vec![], String::new(), 200, json("[]")),
        ("GET", "/share/kT7mQ2xZ9pL4vB8nW".to_owned(), vec![], String::new(), 200, json(r#"{"file": "a"}"#)),
        (
            "GET",
            "/api/v1/search?email=planted.person@example.org&password=Hunter2Planted&api_key=AKIAIOSFODNN7EXAMPLE"
                .to_owned(),
            vec![],
            String::new(),
            200,
            json("[]"),
        ),
        (
            "POST",
            "/api/v1/login".to_owned(),
            vec![("Content-Type", "application/json")],
            json(r#"{"username": "jdoe", "password": "hush-hush-phrase", "card": "4111111111111111"}"#),
            200,
            json(r#"{"token": "opaque"}"#),
        ),
        (
            "GET",
            "/api/v1/profile".to_owned(),
            vec![("Authorization", "Basic amRvZTpUcjB1YjRkb3ItUGxhbnRlZA=="), ("X-Api-Key", "Tr0ub4dor-Planted")],
            String::new(),
            200,
            json(r#"{"email": "planted.person@example.org"}"#),
        ),
        // An attack on the secret path, and a method the server refuses there: alerts with `path` fields.
        ("GET", "/auth/jdoe/Sup3rS3cretPW9?q=%27%20OR%201%3D1--".to_owned(), vec![], String::new(), 400, json("{}")),
        ("DELETE", "/share/kT7mQ2xZ9pL4vB8nW".to_owned(), vec![], String::new(), 405, json("{}")),
    ];
    // A burst of refused logins on the secret path (brute-force alerts carry the path).
    for _ in 0..30 {
        v.push(("GET", "/auth/jdoe/Sup3rS3cretPW9".to_owned(), vec![], String::new(), 401, json("{}")));
    }
    v
}

fn capture(dir: &Path) -> std::path::PathBuf {
    let client = "192.0.2.10:40000".parse().unwrap();
    let server = "192.0.2.20:80".parse().unwrap();
    let mut c = TcpConv::new(client, server, Timestamp::from_secs(1_700_000_000));
    c.handshake();
    for (method, path, headers, body, status, resp) in exchanges() {
        let mut h = headers.clone();
        let len = body.len().to_string();
        if !body.is_empty() {
            h.push(("Content-Length", &len));
        }
        c.send(Dir::ToServer, &synth::http_request(method, &path, "api.leaks.example", &h, body.as_bytes()));
        let rlen = resp.len().to_string();
        let reason = if status < 400 { "OK" } else { "Error" };
        c.send(
            Dir::ToClient,
            &synth::http_response(
                status,
                reason,
                &[("Content-Type", "application/json"), ("Content-Length", &rlen)],
                resp.as_bytes(),
            ),
        );
        c.wait(50_000_000);
    }
    c.close();
    let mut frames = c.frames();
    let p = dir.join("leaks.pcap");
    synth::write_pcap(&p, &mut frames).unwrap();
    p
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn assert_no_planted_value(out: &Path) {
    let mut all = Vec::new();
    files(out, &mut all);
    assert!(all.len() >= 5, "{all:?}");
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for v in PLANTED {
            let enc = v.replace('@', "%40");
            assert!(!text.contains(v) && !text.contains(&enc), "{v} written to {}", f.display());
        }
    }
}

#[test]
fn planted_values_appear_in_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = capture(dir.path());
    let run = replay(&[&pcap], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    // The traffic was seen: transactions, findings and alerts exist, so the absence means redaction.
    assert_eq!(run.jsonl("transactions.jsonl").len(), exchanges().len());
    assert!(!run.jsonl("findings.jsonl").is_empty());
    let alerts = run.jsonl("alerts.jsonl");
    assert!(alerts.iter().any(|a| a["path"].as_str().is_some_and(|p| p.starts_with("/auth/jdoe/"))), "{alerts:?}");
    assert_no_planted_value(run.out.path());

    // With a spec: spec-diff.json and the shadow alerts name the operations too.
    let spec = dir.path().join("spec.yaml");
    std::fs::write(
        &spec,
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /api/v1/login:\n    post:\n      responses: {'200': {description: ok}}\n",
    )
    .unwrap();
    let run = replay(&[&pcap], &["--spec", spec.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.out.path().join("spec-diff.json").exists());
    assert!(run.jsonl("alerts.jsonl").iter().any(|a| a["type"] == "shadow_api"));
    assert_no_planted_value(run.out.path());
}
