//! Every capture of `../shared/corpus` (the public test suites of Suricata, Zeek and Arkime) replayed by the
//! binary: no panic, the exit code the file deserves, and (with python3) the HTTP transactions scored against
//! what those projects expect, by the corpus's own `score.py`.

mod common;

use std::path::Path;

use common::*;

/// Captures that really are damaged (capinfos: "cut short in the middle of a packet"): exit 3 expected.
const DAMAGED: &[&str] = &["sv-http-mime-truncated"];

struct Case {
    name: String,
    pcap: String,
    /// Flags that reproduce the peer's configuration for this case (`peer.config_args`).
    flags: Vec<&'static str>,
}

fn cases(corpus: &Path) -> Vec<Case> {
    let manifest = std::fs::read_to_string(corpus.join("given.jsonl")).unwrap();
    manifest
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let args = v["peer"]["config_args"].as_str().unwrap_or("");
            let mut flags = Vec::new();
            // Suricata run with VLANs left out of flow tracking: the two directions sit on different VLANs.
            if args.contains("vlan.use-for-tracking=false") {
                flags.push("--no-vlan-in-key");
            }
            Case { name: v["case"].as_str().unwrap().to_owned(), pcap: v["pcap"].as_str().unwrap().to_owned(), flags }
        })
        .collect()
}

/// Replays each case into `out/<case>/`; returns the failures.
fn replay_all(corpus: &Path, out: &Path) -> Vec<String> {
    let bin = assert_cmd::cargo::cargo_bin("mirador");
    let mut failures = Vec::new();
    for case in cases(corpus) {
        let dir = out.join(&case.name);
        let o = std::process::Command::new(&bin)
            .arg("replay")
            .arg(corpus.join(&case.pcap))
            .arg("--out")
            .arg(&dir)
            .args(&case.flags)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        let code = o.status.code().unwrap_or(-1);
        let want = if DAMAGED.contains(&case.name.as_str()) { 3 } else { 0 };
        let stderr = String::from_utf8_lossy(&o.stderr);
        if code != want {
            failures.push(format!("{}: exit {code}, want {want}: {stderr}", case.name));
        } else if want == 3 && !(stderr.contains(&case.pcap) && stderr.contains("stopped at byte")) {
            failures.push(format!("{}: damaged file reported without its name or position: {stderr}", case.name));
        }
        for f in ["flows.jsonl", "transactions.jsonl", "stats.json"] {
            if !dir.join(f).exists() {
                failures.push(format!("{}: {f} missing", case.name));
            }
        }
    }
    failures
}

#[test]
fn every_corpus_capture_replays() {
    let Some(corpus) = corpus() else { return };
    let out = tempfile::tempdir().unwrap();
    let failures = replay_all(&corpus, out.path());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // Bounded memory: nothing in the corpus comes near the flow or reassembly caps.
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("zeek-web/stats.json")).unwrap()).unwrap();
    assert_eq!(stats["flows"]["flow_cap_hits"], 0);

    // HTTP transactions against what Suricata, Zeek and Arkime expect, scored by the corpus's own script.
    let report = out.path().join("score.json");
    let o = std::process::Command::new("python3")
        .arg(corpus.join("score.py"))
        .arg(corpus.join("given.jsonl"))
        .arg(out.path())
        .arg("--json")
        .arg(&report)
        .arg("--verbose")
        .output();
    let o = match o {
        Ok(o) if o.status.success() => o,
        _ if std::env::var_os("CI").is_none() => {
            eprintln!("skipping the score: python3 could not run score.py");
            return;
        }
        other => panic!("score.py failed: {other:?}"),
    };
    let text = String::from_utf8_lossy(&o.stdout);
    eprintln!("{text}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let t = &r["totals"];
    let frac = |a: &str, b: &str| t[a].as_f64().unwrap_or(0.0) / t[b].as_f64().unwrap_or(1.0);
    let matched = frac("peer_got", "peer_need");
    let counts = frac("count_exact", "count_cases");
    assert!(matched >= 0.985, "peer entries matched {:.1}% < 98.5%:\n{text}", matched * 100.0);
    assert!(counts >= 0.95, "exact expected counts {:.1}% < 95%:\n{text}", counts * 100.0);
    assert_eq!(t["absent_violated"].as_u64().unwrap_or(0), 0, "a transaction the peers say is absent:\n{text}");
}
