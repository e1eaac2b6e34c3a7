//! Hostile captures (see `mirador::hostile`) replayed with the default configuration: each run exits 0, stays
//! under the memory a sensor is given (peak RSS of the child, from wait4), and counts what it dropped or
//! evicted in stats.json. Sizes are CI's: large enough to fill the table each capture targets under the default
//! caps. `benches/hostile.sh` runs the full sizes.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use mirador::hostile::{self, Kind};
use serde_json::Value;

/// The bound for the whole process on every hostile capture.
const MAX_RSS_BYTES: u64 = 256 << 20;

struct Outcome {
    peak_rss: u64,
    stats: Value,
}

/// Writes `kind` at size `n`, replays it in a child process and returns its peak RSS and stats.json.
fn replay(kind: Kind, n: u64) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join(format!("{}.pcap", kind.name()));
    let f = std::io::BufWriter::new(std::fs::File::create(&pcap).unwrap());
    hostile::write(kind, n, f).unwrap();
    let out = dir.path().join("out");
    let (status, peak_rss) = run_measured(&pcap, &out);
    assert!(status.success(), "{}: exit {status:?}", kind.name());
    let stats = serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    eprintln!("{} n={n}: peak RSS {} MiB", kind.name(), peak_rss >> 20);
    assert!(peak_rss <= MAX_RSS_BYTES, "{}: peak RSS {} MiB", kind.name(), peak_rss >> 20);
    Outcome { peak_rss, stats }
}

// The child is reaped by wait4 (for its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn run_measured(pcap: &Path, out: &Path) -> (std::process::ExitStatus, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_mirador"))
        .arg("replay")
        .arg(pcap)
        .arg("--out")
        .arg(out)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut status = 0i32;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers; the Child is not waited for elsewhere.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    // ru_maxrss is in KiB on Linux.
    (std::process::ExitStatus::from_raw(status), usage.ru_maxrss as u64 * 1024)
}

fn num(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or_else(|| panic!("{path} missing in stats.json"))
}

#[test]
fn syn_flood_evicts_embryonic_flows_first() {
    let o = replay(Kind::SynFlood, 300_000);
    let f = "/flows";
    assert_eq!(num(&o.stats, &format!("{f}/flows_created")), 300_000);
    // The default memcap holds far fewer than 300,000 flows: the oldest embryonic ones were evicted, no other.
    let evicted = num(&o.stats, &format!("{f}/evicted"));
    assert!(evicted > 100_000, "{evicted}");
    assert_eq!(num(&o.stats, &format!("{f}/evicted_embryonic")), evicted);
    assert_eq!(num(&o.stats, &format!("{f}/evicted_active")), 0);
    assert_eq!(num(&o.stats, &format!("{f}/flow_cap_hits")), evicted);
    assert!(num(&o.stats, &format!("{f}/memory_peak_bytes")) <= 64 << 20);
    assert!(o.peak_rss > 0);
}

#[test]
fn pending_heads_are_bounded() {
    let o = replay(Kind::PendingHeads, 40_000);
    let evicted = num(&o.stats, "/flows/evicted");
    assert!(evicted > 0, "40,000 connections with data exceed the default flow memcap");
    assert_eq!(num(&o.stats, "/flows/evicted_active"), evicted);
    // Every unfinished head is still reported, once, when its flow is evicted or the input ends.
    assert_eq!(num(&o.stats, "/http/transactions"), 40_000);
    assert_eq!(num(&o.stats, "/flows/evicted_embryonic"), 0);
}

#[test]
fn missing_first_segment_hits_the_reassembly_memcap() {
    let o = replay(Kind::MissingFirst, 400);
    // 400 connections x 200 KB held behind their holes is more than the default 64 MiB.
    assert!(num(&o.stats, "/flows/reassembly_memcap_hits") > 0);
    assert!(num(&o.stats, "/flows/reassembly_peak_bytes") <= 64 << 20);
    assert_eq!(num(&o.stats, "/flows/evicted"), 0);
}

#[test]
fn incomplete_fragments_are_dropped_by_cap() {
    let o = replay(Kind::Fragments, 50_000);
    let fr = "/decode/fragments";
    assert_eq!(num(&o.stats, &format!("{fr}/seen")), 50_000);
    let dropped = num(&o.stats, &format!("{fr}/dropped_count_cap")) + num(&o.stats, &format!("{fr}/dropped_memcap"));
    assert!(dropped > 40_000, "{dropped}");
}

#[test]
fn gzip_bomb_is_stopped() {
    let o = replay(Kind::GzipBomb, 64);
    assert_eq!(num(&o.stats, "/http/transactions"), 1);
    assert_eq!(num(&o.stats, "/http/decompression_bombs"), 1);
}
