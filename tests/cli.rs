//! The command line: config validation, overrides, exit codes, the end-of-run summary, and the metrics
//! endpoint of a running sensor.

mod common;

use assert_cmd::Command;
use common::*;

fn mirador() -> Command {
    Command::cargo_bin("mirador").unwrap()
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let out = mirador().arg("check-config").arg(repo().join("systemd/mirador.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mirador.toml: OK"));
}

#[test]
fn check_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[capture]\nsnaplen = 65535\nbufer = 3\n").unwrap();
    let out = mirador().arg("check-config").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("line 3") && err.contains("bufer"), "{err}");
    // The same validation guards `replay --config`.
    let out = mirador().args(["replay"]).arg(pcap("vlan.pcap")).arg("--config").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn workers_and_shards_do_not_change_what_comes_out() {
    let one = replay(&[&pcap("demo.pcap")], &["--workers", "1", "--shards", "1"]);
    let four = replay(&[&pcap("demo.pcap")], &["--workers", "4", "--shards", "3"]);
    assert_eq!(one.code(), 0, "{}", one.stderr());
    assert_eq!(four.code(), 0, "{}", four.stderr());
    // uids differ between layouts (each shard has its own uid stream): key on the connection instead.
    let key = |v: &serde_json::Value| {
        format!(
            "{}:{}|{}|{}|{}|{}",
            v["src_ip"], v["src_port"], v["trans_depth"], v["uri"], v["status"], v["response_body_len"]
        )
    };
    let mut a: Vec<_> = one.jsonl("transactions.jsonl").iter().map(key).collect();
    let mut b: Vec<_> = four.jsonl("transactions.jsonl").iter().map(key).collect();
    a.sort();
    b.sort();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let flows = |r: &Run| {
        let mut f: Vec<_> = r
            .jsonl("flows.jsonl")
            .iter()
            .map(|f| format!("{}:{} {}", f["src_ip"], f["src_port"], f["close_reason"]))
            .collect();
        f.sort();
        f
    };
    assert_eq!(flows(&one), flows(&four));
    // The summary table reports the same count.
    let n = a.len();
    assert!(one.stderr().contains(&format!("transactions  {n} HTTP")), "{}", one.stderr());
    // A replay's throughput is over its processing time; stats.json has the traffic's packet-time span.
    assert!(one.stderr().contains(" s of processing"), "{}", one.stderr());
    let c = &one.stats()["capture"];
    let (first, last) = (c["first_packet_ts"].as_f64().unwrap(), c["last_packet_ts"].as_f64().unwrap());
    assert!(first > 1.0e9 && last > first, "{c}");
}

/// `replay --help` names every file a replay writes (with a spec, so spec-diff.json is among them).
#[test]
fn replay_help_lists_every_output_file() {
    let help = String::from_utf8(mirador().args(["replay", "--help"]).output().unwrap().stdout).unwrap();
    let spec = repo().join("tests/realapi/demo/payments.yaml");
    let run = replay(&[&pcap("demo.pcap")], &["--spec", spec.to_str().unwrap(), "--quiet"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let mut names: Vec<String> = std::fs::read_dir(run.out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for n in names {
        let shown = if n == "openapi" { "openapi/<service>.json".to_owned() } else { n };
        assert!(help.contains(&shown), "`replay --help` does not name {shown}:\n{help}");
    }
}
