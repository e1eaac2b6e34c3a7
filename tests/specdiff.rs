//! `--spec`: the owner's spec compared with the demo capture (spec-diff.json), and a broken spec refused.

mod common;

use std::path::PathBuf;

use common::{pcap, replay, repo};
use serde_json::Value;

fn demo_spec() -> PathBuf {
    repo().join("tests/realapi/demo/payments.yaml")
}

fn spec_diff(run: &common::Run) -> Value {
    let p = run.out.path().join("spec-diff.json");
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}; stderr: {}", p.display(), run.stderr()));
    serde_json::from_str(&s).expect("spec-diff.json is JSON")
}

#[test]
fn broken_spec_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.yaml");
    std::fs::write(
        &bad,
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - name: q\n          in: body\n      responses: {}\n",
    )
    .unwrap();
    // A defect (a parameter `in: body` in OpenAPI 3) is read past, as Swagger UI and Prism do: the run goes
    // on and spec-diff.json lists it with its pointer and line.
    let run = replay(&[&pcap("demo.pcap")], &["--spec", bad.to_str().unwrap(), "--quiet"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let d = &spec_diff(&run)["specs"][0]["defects"][0];
    assert_eq!(d["line"], 7, "{d}");
    assert_eq!(d["pointer"], "/paths/~1a/get/parameters/0/in", "{d}");
    assert!(d["what"].as_str().unwrap().contains("`in` is `body`"), "{d}");

    // No `paths`: nothing to compare with; refused, naming the file.
    std::fs::write(&bad, "openapi: 3.0.0\ninfo: {title: t, version: '1'}\n").unwrap();
    let run = replay(&[&pcap("demo.pcap")], &["--spec", bad.to_str().unwrap(), "--quiet"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("broken.yaml") && run.stderr().contains("no `paths`"), "{}", run.stderr());

    // A YAML syntax error: the parser's line.
    std::fs::write(&bad, "openapi: 3.0.0\npaths:\n  /a: [\n").unwrap();
    let run = replay(&[&pcap("demo.pcap")], &["--spec", bad.to_str().unwrap(), "--quiet"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("broken.yaml: line "), "{}", run.stderr());

    // A missing file.
    let run = replay(&[&pcap("demo.pcap")], &["--spec", "/nonexistent/spec.json", "--quiet"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("/nonexistent/spec.json"), "{}", run.stderr());
}

#[test]
fn check_config_loads_the_specs() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    // A defect: read past, the configuration is usable, the warning names the file, line and pointer.
    std::fs::write(&bad, "{\n  \"swagger\": \"2.0\",\n  \"paths\": {\"/x\": {\"get\": 7}}\n}\n").unwrap();
    let cfg = dir.path().join("mirador.toml");
    std::fs::write(&cfg, format!("[inventory]\nspecs = [{:?}]\n", bad.to_str().unwrap())).unwrap();
    let out = assert_cmd::Command::cargo_bin("mirador").unwrap().arg("check-config").arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("bad.json") && err.contains("line 3") && err.contains("an operation must be an object"),
        "{err}"
    );
    // A syntax error: refused.
    std::fs::write(&bad, "{\n  \"swagger\": \"2.0\",\n  \"paths\": {\"/x\" 7}\n}\n").unwrap();
    let out = assert_cmd::Command::cargo_bin("mirador").unwrap().arg("check-config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json: line 3") && err.contains("invalid JSON"), "{err}");
}

#[test]
fn spec_diff_json_is_written() {
    let run = replay(&[&pcap("demo.pcap")], &["--spec", demo_spec().to_str().unwrap(), "--quiet"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let v = spec_diff(&run);
    let spec = &v["specs"][0];
    assert!(spec["file"].as_str().unwrap().ends_with("payments.yaml"));
    assert_eq!(spec["dialect"], "openapi-3.0");
    assert_eq!(spec["operations"], 4);
    assert_eq!(spec["base_paths"], serde_json::json!(["/v1"]));
    // Every operation inherits the document's security; the only success without a schema is a 204.
    let kinds: Vec<&str> = spec["completeness"].as_array().unwrap().iter().filter_map(|c| c["kind"].as_str()).collect();
    assert!(!kinds.contains(&"missing_security"), "{kinds:?}");
    assert!(!kinds.contains(&"no_response_schema"), "{kinds:?}");
}

/// The spec diff reads the inventory's `DIR/openapi/<service>.json`: this runs both end to end.
#[test]
fn demo_capture_against_its_spec() {
    let run = replay(&[&pcap("demo.pcap")], &["--spec", demo_spec().to_str().unwrap(), "--quiet"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let v = spec_diff(&run);
    let applied = v["specs"][0]["applied_to"].as_array().unwrap();
    assert_eq!(applied.len(), 1, "{v:#}");
    assert!(applied[0].as_str().unwrap().contains("payments"), "{v:#}");
    let svc = v["services"].as_array().unwrap().iter().find(|s| s["service"] == applied[0]).unwrap();
    let paths = |k: &str, field: &str| -> Vec<String> {
        svc[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| format!("{} {}", x["method"].as_str().unwrap(), x[field].as_str().unwrap()))
            .collect()
    };
    // Shadow: the undocumented refunds endpoint (and nothing documented).
    assert_eq!(paths("shadow", "path"), ["POST /v1/refunds"], "{svc:#}");
    // Zombie: the deprecated GET is still called.
    assert_eq!(paths("zombie", "template"), ["GET /payments/{paymentId}"], "{svc:#}");
    // Orphan: DELETE is never called.
    assert_eq!(paths("orphan", "template"), ["DELETE /payments/{paymentId}"], "{svc:#}");
    // Drift: the undocumented request field.
    let drift = svc["drift"].as_array().unwrap();
    assert!(
        drift.iter().any(|d| d["kind"] == "undocumented_field"
            && d["location"] == "request.body"
            && d["name"] == "$.billing_email"
            && d["template"] == "/payments"),
        "{drift:#?}"
    );
    // Every documented field the traffic carries is documented: no other request-body drift.
    assert!(!drift.iter().any(|d| d["location"] == "request.body" && d["name"] != "$.billing_email"), "{drift:#?}");
    // Shadow and zombie operations are alerts too (API9:2023), with the observed statistics.
    let alerts = run.jsonl("alerts.jsonl");
    let inv: Vec<(String, String, u64)> = alerts
        .iter()
        .filter(|a| a["owasp"] == "API9:2023" && a["location"] == "spec")
        .map(|a| {
            assert!(a["id"].as_str().is_some_and(|id| id.len() == 36), "{a}");
            assert_eq!(a["host"], applied[0], "{a}");
            let what = format!("{} {}", a["method"].as_str().unwrap(), a["endpoint"].as_str().unwrap());
            (a["type"].as_str().unwrap().to_owned(), what, a["count"].as_u64().unwrap_or(0))
        })
        .collect();
    assert_eq!(inv.len(), 2, "{inv:?}");
    assert!(inv.iter().any(|(t, w, n)| t == "shadow_api" && w == "POST /v1/refunds" && *n > 0), "{inv:?}");
    assert!(inv.iter().any(|(t, w, n)| t == "zombie_api" && w == "GET /payments/{paymentId}" && *n > 0), "{inv:?}");
}
