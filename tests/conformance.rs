//! The conformance capture (tests/conformance/): malformed and unusual requests sent raw to nginx, Python's
//! http.server, Node's http, gunicorn and uvicorn. Per case (joined by client port), against the servers' own truth: every final
//! status line on the wire is a transaction with that status, every request a server logged is a transaction,
//! and each case's defect is flagged. The capture is not in git: it is read from `MIRADOR_CONFORMANCE_PCAP` or
//! `target/conformance/conformance.pcap`, generated there when run as root with the servers installed, and its
//! absence fails under CI.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// (capture, expected results for it).
fn capture() -> Option<(PathBuf, PathBuf)> {
    let committed = repo().join("tests/conformance/expected.jsonl");
    if let Some(p) = std::env::var_os("MIRADOR_CONFORMANCE_PCAP") {
        return Some((PathBuf::from(p), committed));
    }
    let pcap = repo().join("target/conformance/conformance.pcap");
    if pcap.exists() {
        return Some((pcap, committed));
    }
    if is_root() && ["ip", "tcpdump", "nginx", "node", "python3"].iter().all(|t| have(t)) {
        // A fresh capture comes with the truth of its own run (server versions may differ from the committed).
        let fresh = repo().join("target/conformance/expected.jsonl");
        let st = Command::new(repo().join("tests/conformance/run.sh")).arg(&pcap).arg(&fresh).status().unwrap();
        assert!(st.success(), "tests/conformance/run.sh failed");
        return Some((pcap, fresh));
    }
    if std::env::var_os("CI").is_some() {
        panic!("the conformance capture is missing and cannot be generated here (root, ip, tcpdump, nginx, node)");
    }
    eprintln!("skipping: no conformance capture (run tests/conformance/run.sh as root)");
    None
}

#[test]
fn every_exchange_of_the_conformance_capture_is_logged_and_flagged() {
    let Some((pcap, expected)) = capture() else { return };
    let run = replay(&[&pcap], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let mut by_port: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut all = run.jsonl("transactions.jsonl");
    if run.out.path().join("websocket.jsonl").exists() {
        all.extend(run.jsonl("websocket.jsonl"));
    }
    for t in all {
        by_port.entry(t["src_port"].as_u64().unwrap_or(0)).or_default().push(t);
    }
    let (mut wire_total, mut got_total, mut problems) = (0usize, 0usize, Vec::new());
    let rows = read_jsonl(&expected);
    assert!(rows.len() >= 130, "{} cases in {}", rows.len(), expected.display());
    for r in &rows {
        let name = format!("{} {}", r["server"].as_str().unwrap(), r["case"].as_str().unwrap());
        let txs = by_port.get(&r["client_port"].as_u64().unwrap()).map(Vec::as_slice).unwrap_or(&[]);
        let wire: Vec<u64> = r["status_lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .filter(|c| *c >= 200 || *c == 101)
            .collect();
        let got: Vec<u64> = txs.iter().filter_map(|t| t["status"].as_u64()).collect();
        wire_total += wire.len();
        got_total += got.len();
        let flags: BTreeSet<&str> =
            txs.iter().flat_map(|t| t["flags"].as_array().unwrap()).filter_map(Value::as_str).collect();
        for f in r["flags"].as_array().unwrap() {
            if !flags.contains(f.as_str().unwrap()) {
                problems.push(format!("{name}: flag {f} missing, got {flags:?}"));
            }
        }
        let requests = txs
            .iter()
            .filter(|t| !t["flags"].as_array().unwrap().iter().any(|f| f == "websocket_message"))
            .filter(|t| !t["method"].is_null() || !t["uri"].is_null() || t.get("request_line").is_some())
            .count() as u64;
        if r["divergence"].is_null() {
            if got != wire {
                problems.push(format!("{name}: statuses {got:?}, on the wire {wire:?}"));
            }
            if requests < r["access_log"].as_u64().unwrap() {
                problems.push(format!("{name}: {requests} requests, the server logged {}", r["access_log"]));
            }
        } else {
            let mut it = wire.iter();
            if !got.iter().all(|g| it.any(|w| w == g)) {
                problems.push(format!("{name}: statuses {got:?} not all on the wire {wire:?}"));
            }
        }
    }
    // Responses to binary junk (a refused upgrade's frames) are framed and counted rather than logged.
    let junk = run.stats()["http"]["responses_to_invalid_requests"].as_u64().unwrap() as usize;
    assert_eq!(wire_total, got_total + junk, "final status lines on the wire vs logged + counted");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    // Personal data in websocket messages reaches the analyzers: node's server message carries a phone number,
    // the client's frame (masked on the wire) an e-mail address.
    let findings = run.jsonl("findings.jsonl");
    for (kind, location) in [("phone", "response.body"), ("email", "request.body")] {
        assert!(
            findings.iter().any(|f| f["type"] == kind && f["location"] == location && f["path"] == "/ws"),
            "no {kind} finding in a websocket {location}: {findings:?}"
        );
    }
}
