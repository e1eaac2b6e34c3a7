//! Sensitive data end to end: the binary on the demo capture finds every planted kind of data, and no
//! planted value appears in any output file; operator packs and raw-value opt-in; the labelled capture
//! (tests/labelled/) scored against its labels when it has been generated.

mod common;

use std::path::Path;

use common::{pcap, replay};
use serde_json::Value;

/// Every file under `dir`, as text.
fn all_outputs(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()));
            }
        }
    }
    out
}

const FIRST: [&str; 16] = [
    "Jane", "John", "Maria", "Ahmed", "Li", "Sofia", "Lukas", "Amara", "Kenji", "Olivia", "Mateo", "Priya", "Noah",
    "Fatima", "Emma", "Diego",
];
const LAST: [&str; 16] = [
    "Doe", "Smith", "Garcia", "Khan", "Wei", "Rossi", "Muller", "Okafor", "Tanaka", "Brown", "Lopez", "Patel",
    "Johnson", "Haddad", "Martin", "Silva",
];

fn write_config(dir: &Path, sensitive: &str) -> std::path::PathBuf {
    let p = dir.join("mirador.toml");
    std::fs::write(&p, format!("[sensitive]\n{sensitive}\n")).unwrap();
    p
}

#[test]
fn demo_capture_findings_and_no_leak() {
    let truth = mirador::synth::demo_expected(mirador::synth::DEMO_SEED);
    let run = replay(&[&pcap("demo.pcap")], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let findings = run.jsonl("findings.jsonl");
    let mut types: Vec<&str> = findings.iter().filter_map(|f| f["type"].as_str()).collect();
    types.sort_unstable();
    types.dedup();
    for t in [
        "aws_access_key_id",
        "aws_secret_access_key",
        "basic_auth",
        "credit_card",
        "date_of_birth",
        "email",
        "iban",
        "jwt",
        "password",
        "phone",
        "session_token",
        "street_address",
        "stripe_key",
        "us_ssn",
    ] {
        assert!(types.contains(&t), "no {t} finding in {types:?}");
    }
    for f in &findings {
        for k in [
            "ts",
            "uid",
            "type",
            "category",
            "signature_id",
            "method",
            "host",
            "path",
            "endpoint",
            "location",
            "field",
            "evidence",
            "hash",
            "confidence",
            "count",
            "tx_count",
            "first_seen",
            "last_seen",
            "transactions",
            "hashes",
        ] {
            assert!(f.get(k).is_some(), "{k} missing in {f}");
        }
        assert!(f.get("value").is_none(), "raw value without opt-in: {f}");
        assert_eq!(f["hash"].as_str().unwrap().len(), 32);
    }

    // Planted values: none may appear in any output file, in any spelling the capture used.
    let mut planted: Vec<String> = truth.secrets.clone();
    for c in [
        "4242 4242 4242 4242",
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "6011 1111 1111 1117",
        "5105105105105100",
        "4242424242424242",
        "6011111111111117",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "FR1420041010050500013M02606",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAZ3EXAMPLE7QWERTY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "sk_live_51HExampleExampleExample",
        // The Basic password; its user name ("partner-acme") is the actor identity alerts report by design.
        "Pa55w0rd!2024",
        "Xk9!vQ2#pL",
        "Summer2024!",
        "s3cr3t-signing-key",
        "IQoJb3JpZ2luX2VjEXAMPLE",
    ] {
        planted.push(c.to_owned());
    }
    for f in FIRST {
        for l in LAST {
            let (f, l) = (f.to_lowercase(), l.to_lowercase());
            planted.push(format!("{f}.{l}@example.com"));
            planted.push(format!("{f}.{l}%40example.com"));
        }
    }
    let ssn = regex::Regex::new(r"\b[1-8][0-9]{2}-[0-9]{2}-[0-9]{4}\b").unwrap();
    let phone = regex::Regex::new(r"\+1-202-555-0[0-9]{3}|\+44 20 7946 0[0-9]{3}|\+49 30 [0-9]{7}").unwrap();
    let files = all_outputs(run.out.path());
    assert!(files.len() >= 4, "{files:?}");
    for (name, text) in &files {
        for p in &planted {
            assert!(!text.contains(p.as_str()), "{name} contains the planted value {p}");
        }
        assert!(ssn.find(text).is_none(), "{name} contains an SSN: {:?}", ssn.find(text));
        assert!(phone.find(text).is_none(), "{name} contains a phone number: {:?}", phone.find(text));
    }

    // transactions.jsonl: the flagged query parameter is masked, the rest of the URI kept.
    let txs = run.jsonl("transactions.jsonl");
    let q: Vec<&str> = txs.iter().filter_map(|t| t["uri"].as_str()).filter(|u| u.starts_with("/v1/users?")).collect();
    assert!(!q.is_empty());
    assert!(q.iter().all(|u| u.starts_with("/v1/users?email=***&page=1")), "{q:?}");
}

#[test]
fn raw_values_only_on_opt_in_and_operator_packs_load() {
    let dir = tempfile::tempdir().unwrap();
    let packs = dir.path().join("packs");
    std::fs::create_dir(&packs).unwrap();
    std::fs::write(
        packs.join("corp.toml"),
        "kind = \"data\"\n[[signature]]\nid = \"corp.sku\"\nname = \"Internal SKU\"\ntype = \"internal_sku\"\ncategory = \"secret\"\nanchors = [\"SKU-\"]\nregex = 'SKU-[0-9]{5}'\n",
    )
    .unwrap();
    // Another helper's attack packs share the directory: skipped, not an error.
    std::fs::write(packs.join("attacks.toml"), "kind = \"attack\"\n[[rule]]\nid = \"a\"\n").unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "emit_raw_values = true\nhash_key = \"k\"\nsignatures_dir = {:?}\ndisabled = [\"pii.ip_value\"]",
            packs.display().to_string()
        ),
    );
    let run = replay(&[&pcap("demo.pcap")], &["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let findings = run.jsonl("findings.jsonl");
    assert!(findings.iter().all(|f| f.get("value").is_some()));
    assert!(findings.iter().any(|f| f["type"] == "internal_sku"));
    // A fixed key gives stable hashes across runs.
    let again = replay(&[&pcap("demo.pcap")], &["--config", cfg.to_str().unwrap()]);
    let h = |v: &[Value]| {
        let mut x: Vec<String> = v.iter().map(|f| f["hash"].as_str().unwrap().to_owned()).collect();
        x.sort();
        x
    };
    assert_eq!(h(&findings), h(&again.jsonl("findings.jsonl")));
}

#[test]
fn bad_pack_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "kind = \"data\"\n\n[[signature]]\nid = \"x\"\nname = \"X\"\ntype = \"t\"\ncategory = \"pii\"\nregex = \"(\"\n",
    )
    .unwrap();
    let cfg = write_config(dir.path(), &format!("signatures_dir = {:?}", dir.path().display().to_string()));
    let run = replay(&[&pcap("demo.pcap")], &["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let err = run.stderr();
    assert!(err.contains("bad.toml: line 3: signature \"x\": regex"), "{err}");
}

/// The labelled capture of tests/labelled/ (real third-party servers, planted values and decoys): every
/// planted value found with its type, no decoy flagged. Skips when the capture has not been generated.
#[test]
fn labelled_capture_precision_and_recall() {
    let root = common::repo();
    let pcap = root.join("pcaps/labelled.pcap");
    let labels = root.join("tests/labelled/labels.jsonl");
    if !pcap.exists() || !labels.exists() {
        eprintln!("skipping: run tests/labelled/generate.sh to create pcaps/labelled.pcap and its labels");
        return;
    }
    // Findings are aggregated across transactions; every transaction a finding names must be listed for
    // score.py to credit it (it reads transactions.jsonl to map references to exchanges).
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "max_finding_transactions = 1000");
    let run = replay(&[&pcap], &["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let out = std::process::Command::new("python3")
        .arg(root.join("tests/labelled/score.py"))
        .arg(&labels)
        .arg(run.out.path().join("findings.jsonl"))
        .arg("--min")
        .arg("0.98")
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
}
