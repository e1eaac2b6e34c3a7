//! Helpers shared by the integration tests: run the binary, read its outputs, find the shared corpus.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn pcap(name: &str) -> PathBuf {
    repo().join("pcaps").join(name)
}

/// `../shared/corpus`, or `None` with a message. Under CI its absence is a failure, not a skip.
pub fn corpus() -> Option<PathBuf> {
    let dir = repo().join("../shared/corpus");
    if dir.join("given.jsonl").exists() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("../shared/corpus is missing but CI is set: the corpus tests must run in CI");
    }
    eprintln!("skipping: ../shared/corpus not found (the shared test corpus is not checked out beside the repo)");
    None
}

pub struct Run {
    pub out: tempfile::TempDir,
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn jsonl(&self, name: &str) -> Vec<Value> {
        read_jsonl(&self.out.path().join(name))
    }
    pub fn stats(&self) -> Value {
        let s = std::fs::read_to_string(self.out.path().join("stats.json")).expect("stats.json");
        serde_json::from_str(&s).expect("stats.json is JSON")
    }
}

pub fn replay(pcaps: &[&Path], extra: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("mirador")
        .unwrap()
        .arg("replay")
        .args(pcaps)
        .arg("--out")
        .arg(out.path())
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    Run { out, output }
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    s.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()))).collect()
}
