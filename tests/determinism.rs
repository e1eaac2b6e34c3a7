//! The same capture gives the same answer: replays with 1, 2 and 4 analyzer workers write the same records
//! (line order aside), after blanking what differs between two runs by design (alert ids, the keyed hashes of
//! values and credentials). The capture is the synthetic REST traffic of the benches: templates that change
//! as ids arrive (`/users/u1` before `/users/{id}`), personal data, bearer tokens and bursts that raise alerts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::replay;
use mirador::synth::{self, Wrap};
use serde_json::Value;

/// Fields whose values are drawn or keyed per run (alert ids, flow uids, hashes of values).
const VOLATILE: &[&str] = &["id", "uid", "hash", "hashes"];
/// Files that measure the run itself (timings, per-worker caches), not what was observed.
const RUN_METRICS: &[&str] = &["stats.json", "sensitive_stats.json"];

fn blank(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if VOLATILE.contains(&k.as_str()) {
                    *x = Value::Null;
                } else {
                    blank(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(blank),
        // Identities without a subject are a keyed hash of the credential (`bearer:<hex>`).
        Value::String(s) => {
            if let Some((scheme, rest)) = s.split_once(':')
                && ["bearer", "basic", "apikey", "cookie"].contains(&scheme)
                && rest.trim_start_matches('#').len() >= 8
                && rest.trim_start_matches('#').bytes().all(|b| b.is_ascii_hexdigit())
            {
                *s = "<keyed>".to_owned();
            }
        }
        _ => {}
    }
}

/// Every output file, normalised: JSON lines blanked and sorted, JSON documents blanked.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if RUN_METRICS.contains(&rel.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let mut lines: Vec<String> = if rel.ends_with(".jsonl") {
                text.lines()
                    .map(|l| {
                        let mut v: Value = serde_json::from_str(l).unwrap();
                        blank(&mut v);
                        v.to_string()
                    })
                    .collect()
            } else if rel.ends_with(".json") {
                let mut v: Value = serde_json::from_str(&text).unwrap();
                blank(&mut v);
                vec![serde_json::to_string_pretty(&v).unwrap()]
            } else {
                vec![text]
            };
            lines.sort();
            files.insert(rel, lines);
        }
    }
    files
}

#[test]
fn one_two_and_four_workers_write_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("api.pcap");
    let mut frames = synth::api_traffic(300, 12, 7, Wrap::None);
    synth::write_pcap(&pcap, &mut frames).unwrap();
    // One flow-table shard: with several, the order in which shards hand their batches over varies.
    let runs: Vec<_> = ["1", "2", "4"].iter().map(|w| replay(&[&pcap], &["--workers", w, "--shards", "1"])).collect();
    for r in &runs {
        assert_eq!(r.code(), 0, "{}", r.stderr());
    }
    let reference = outputs(runs[0].out.path());
    for name in ["transactions.jsonl", "alerts.jsonl", "findings.jsonl", "inventory.jsonl", "inventory.json"] {
        assert!(reference.get(name).is_some_and(|l| !l.is_empty()), "{name} is missing or empty: nothing compared");
    }
    assert!(reference.keys().any(|k| k.starts_with("openapi/")), "no OpenAPI document");
    for (w, run) in [(2, &runs[1]), (4, &runs[2])] {
        let other = outputs(run.out.path());
        assert_eq!(reference.keys().collect::<Vec<_>>(), other.keys().collect::<Vec<_>>(), "files, {w} workers");
        for (name, lines) in &reference {
            let theirs = &other[name];
            let only_one: Vec<_> = lines.iter().filter(|l| !theirs.contains(l)).take(3).collect();
            let only_w: Vec<_> = theirs.iter().filter(|l| !lines.contains(l)).take(3).collect();
            assert!(
                lines == theirs,
                "{name} differs with {w} workers:\n1 worker: {only_one:#?}\n{w} workers: {only_w:#?}"
            );
        }
    }
}
