//! Spec diff: the owner's OpenAPI/Swagger spec compared with what the inventory observed.
//!
//! - [`load_spec`] reads Swagger 2.0, OpenAPI 3.0 or 3.1 (JSON or YAML) into one model ([`Spec`]); errors
//!   name the file, the line and the field.
//! - [`diff`] compares a spec with an observed OpenAPI document (the inventory's `openapi/<service>.json`)
//!   at the document level: shadow (seen, undocumented), zombie (deprecated, still called), orphan
//!   (documented, never seen) and drift (undocumented parameters, fields, status codes, content types;
//!   type mismatches). Templates match by structure: `/users/{id}` is `/users/{userId}`, and the spec's
//!   server or `basePath` prefix is taken into account.
//! - [`completeness`] judges the spec alone: missing schemas, untyped or unconstrained parameters,
//!   missing security requirements.
//! - [`register`] loads `[inventory] specs` at start and writes `DIR/spec-diff.json` at the end of a run.

mod diff;
mod load;
mod locate;
mod model;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

pub use diff::{
    Diff, Documented, Drift, DriftKind, Incomplete, IncompleteKind, MAX_DRIFT, Matched, Shadow, Summary, completeness,
    coverage, diff, diff_specs, match_score, observed_spec,
};
pub use load::{MAX_OPERATIONS, MAX_SCHEMA_DEPTH, MAX_SCHEMA_NODES, MAX_SPEC_BYTES, SpecError, load_spec, parse_spec};
pub use model::{
    Additional, Content, Defect, Dialect, LoadStats, Operation, Param, ParamIn, Response, Schema, SecurityScheme,
    Segment, Spec, Types,
};

use crate::analyzer::{AnalysisSettings, Registry, SetupError};

/// Observed documents read from `DIR/openapi/`; more are left out (and counted).
pub const MAX_OBSERVED_DOCUMENTS: usize = 10_000;
/// Observed documents larger than this are skipped (and named).
pub const MAX_OBSERVED_BYTES: u64 = 64 << 20;

/// Loads the specs named in `[inventory] specs` (`--spec`) and, when there are any, writes
/// `DIR/spec-diff.json` at the end of the run, after the inventory wrote `DIR/openapi/`.
pub fn register(reg: &mut Registry, settings: &AnalysisSettings) -> Result<Arc<Vec<Spec>>, SetupError> {
    if settings.inventory.specs.is_empty() {
        return Ok(Arc::new(Vec::new()));
    }
    let specs = settings
        .inventory
        .specs
        .iter()
        .map(|p| load_spec(p).map_err(|e| SetupError(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    for s in &specs {
        tracing::info!(spec = %s.source, operations = s.operations.len(), "Spec loaded for the spec diff.");
        if let Some(first) = s.defects.first() {
            tracing::warn!(
                spec = %s.source,
                defects = s.defects.len(),
                first = %format!("line {}: at {}: {}", first.line.unwrap_or(0), first.pointer, first.what),
                "Spec has defects that were read past; spec-diff.json lists them under `defects`."
            );
        }
    }
    let specs = Arc::new(specs);
    let for_report = Arc::clone(&specs);
    reg.on_conclude("specdiff", move |dir: &Path| write_report(dir, &for_report));
    Ok(specs)
}

/// One spec in the report: what it is, where it applied, and how complete it is.
#[derive(Debug, Serialize)]
pub struct SpecReport {
    pub file: String,
    pub dialect: Dialect,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub base_paths: Vec<String>,
    pub operations: usize,
    /// The services it was compared with (empty: no observed service matched it).
    pub applied_to: Vec<String>,
    pub completeness: Vec<Incomplete>,
    /// What the document gets wrong but was read past (with pointer and line).
    pub defects: Vec<Defect>,
    pub load: LoadStats,
}

/// One service compared with the spec(s) that apply to it.
#[derive(Debug, Serialize)]
pub struct ServiceReport {
    /// `None`: the spec matched no observed service, so every operation is an orphan.
    pub service: Option<String>,
    pub specs: Vec<String>,
    #[serde(flatten)]
    pub diff: Diff,
}

/// `DIR/spec-diff.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub specs: Vec<SpecReport>,
    pub services: Vec<ServiceReport>,
    /// Observed services no spec applies to (not compared).
    pub services_without_spec: Vec<String>,
    /// Observed documents that could not be read or parsed.
    pub unreadable_observed: Vec<String>,
    /// Observed documents beyond [`MAX_OBSERVED_DOCUMENTS`].
    pub observed_documents_dropped: u64,
}

/// Builds the report from loaded specs and observed documents `(service, document)`.
pub fn build_report(specs: &[Spec], observed: &[(String, Value)]) -> Report {
    let mut unreadable = Vec::new();
    let mut obs: Vec<(String, Spec)> = Vec::new();
    for (name, doc) in observed {
        match observed_spec(doc, name) {
            Some(s) => obs.push((name.clone(), s)),
            None => unreadable.push(name.clone()),
        }
    }
    // Which services each spec applies to: the one service there is, else the best-covered ones.
    let mut per_service: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut spec_reports = Vec::new();
    let mut unapplied = Vec::new();
    for (si, spec) in specs.iter().enumerate() {
        let applied: Vec<usize> = if obs.len() == 1 {
            vec![0]
        } else {
            let cov: Vec<usize> = obs.iter().map(|(_, o)| coverage(spec, o)).collect();
            let max = cov.iter().copied().max().unwrap_or(0);
            if max == 0 { Vec::new() } else { (0..cov.len()).filter(|&i| cov.get(i) == Some(&max)).collect() }
        };
        for &svc in &applied {
            per_service.entry(svc).or_default().push(si);
        }
        if applied.is_empty() {
            unapplied.push(si);
        }
        spec_reports.push(SpecReport {
            file: spec.source.clone(),
            dialect: spec.dialect,
            title: spec.title.clone(),
            base_paths: spec.base_paths.clone(),
            operations: spec.operations.len(),
            applied_to: applied.iter().filter_map(|&i| obs.get(i)).map(|(n, _)| n.clone()).collect(),
            completeness: completeness(spec),
            defects: spec.defects.clone(),
            load: spec.stats.clone(),
        });
    }
    let mut services = Vec::new();
    for (svc, spec_ids) in &per_service {
        let Some((name, o)) = obs.get(*svc) else { continue };
        let merged = merge(specs, spec_ids);
        services.push(ServiceReport {
            service: Some(name.clone()),
            specs: spec_ids.iter().filter_map(|&i| specs.get(i)).map(|s| s.source.clone()).collect(),
            diff: diff_specs(&merged, o),
        });
    }
    for si in unapplied {
        let Some(spec) = specs.get(si) else { continue };
        services.push(ServiceReport {
            service: None,
            specs: vec![spec.source.clone()],
            diff: diff(spec, &serde_json::json!({"openapi": "3.1.0", "paths": {}})),
        });
    }
    let services_without_spec =
        obs.iter().enumerate().filter(|(i, _)| !per_service.contains_key(i)).map(|(_, (n, _))| n.clone()).collect();
    Report {
        specs: spec_reports,
        services,
        services_without_spec,
        unreadable_observed: unreadable,
        observed_documents_dropped: 0,
    }
}

/// Several specs applying to one service act as one (a spec split across files).
fn merge(specs: &[Spec], ids: &[usize]) -> Spec {
    let mut it = ids.iter().filter_map(|&i| specs.get(i));
    let Some(first) = it.next() else {
        return Spec {
            source: String::new(),
            dialect: Dialect::OpenApi31,
            title: None,
            base_paths: Vec::new(),
            operations: Vec::new(),
            security_schemes: BTreeMap::new(),
            stats: LoadStats::default(),
            defects: Vec::new(),
        };
    };
    let mut m = first.clone();
    for s in it {
        for b in &s.base_paths {
            if !m.base_paths.contains(b) {
                m.base_paths.push(b.clone());
            }
        }
        m.operations.extend(s.operations.iter().cloned());
        for (k, v) in &s.security_schemes {
            m.security_schemes.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    m
}

/// Reads `dir/openapi/*.json` (service = file stem) and writes `dir/spec-diff.json`.
pub fn write_report(dir: &Path, specs: &[Spec]) -> io::Result<()> {
    let mut observed = Vec::new();
    let mut unreadable = Vec::new();
    let mut dropped = 0u64;
    let odir = dir.join("openapi");
    if odir.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&odir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for p in files {
            if observed.len() >= MAX_OBSERVED_DOCUMENTS {
                dropped += 1;
                continue;
            }
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let too_big = std::fs::metadata(&p).map(|m| m.len() > MAX_OBSERVED_BYTES).unwrap_or(true);
            let doc = if too_big {
                None
            } else {
                std::fs::read(&p).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            };
            match doc {
                Some(d) => observed.push((name, d)),
                None => unreadable.push(name),
            }
        }
    }
    let mut report = build_report(specs, &observed);
    report.unreadable_observed.extend(unreadable);
    report.observed_documents_dropped = dropped;
    let json = serde_json::to_vec_pretty(&report).map_err(io::Error::other)?;
    let tmp = dir.join(".spec-diff.json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, dir.join("spec-diff.json"))?;
    append_alerts(dir, &report)
}

/// Alerts written per run at most (shadow and zombie operations of every service together).
const MAX_SPEC_ALERTS: usize = 1000;

/// Shadow and zombie operations as alerts (OWASP API9:2023, improper inventory management), appended to
/// `DIR/alerts.jsonl`: the diff needs the whole run's inventory, so it runs after the streaming outputs closed
/// (these alerts reach the files, not the SIEM sinks; `spec-diff.json` has every detail).
fn append_alerts(dir: &Path, report: &Report) -> io::Result<()> {
    use std::io::Write as _;
    let stats = |observed: Option<&Value>| {
        let st = observed.and_then(|o| o.get("x-mirador-stats"));
        let num = |k: &str| st.and_then(|s| s.get(k)).cloned().unwrap_or(Value::Null);
        (num("count"), num("first_seen"), num("last_seen"))
    };
    let mut lines = Vec::new();
    for sr in &report.services {
        let Some(service) = &sr.service else { continue };
        let shadows = sr.diff.shadow.iter().map(|sh| {
            let (count, first, last) = stats(Some(&Value::Object(sh.observed.clone())));
            ("shadow_api", "Undocumented API operation in use (shadow API)", &sh.method, &sh.path, count, first, last)
        });
        let zombies = sr.diff.zombie.iter().map(|z| {
            let (count, first, last) = stats(z.observed.first());
            (
                "zombie_api",
                "Deprecated API operation still called (zombie API)",
                &z.method,
                &z.template,
                count,
                first,
                last,
            )
        });
        for (rule, title, method, endpoint, count, first, last) in shadows.chain(zombies) {
            if lines.len() >= MAX_SPEC_ALERTS {
                tracing::warn!(cap = MAX_SPEC_ALERTS, "Spec-diff alerts capped; spec-diff.json lists every operation.");
                break;
            }
            let line = serde_json::json!({
                "id": uuid::Uuid::now_v7().to_string(),
                "ts": last,
                "rule_id": rule,
                "type": rule,
                "title": title,
                "severity": "medium",
                "confidence": 0.9,
                "owasp": "API9:2023",
                "host": service,
                "method": method.to_ascii_uppercase(),
                "endpoint": endpoint,
                "location": "spec",
                "evidence": format!("{} {endpoint} against {}", method.to_ascii_uppercase(), sr.specs.join(", ")),
                "count": count,
                "first_seen": first,
                "last_seen": last,
            });
            lines.push(line);
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    let mut f =
        std::io::BufWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(dir.join("alerts.jsonl"))?);
    for l in &lines {
        serde_json::to_writer(&mut f, l).map_err(io::Error::other)?;
        f.write_all(b"\n")?;
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(text: &str, name: &str) -> Spec {
        parse_spec(text, name, false).unwrap()
    }

    const USERS: &str = "openapi: 3.0.0\npaths:\n  /users/{id}:\n    get: {responses: {'200': {description: x}}}\n  /users:\n    get: {responses: {'200': {description: x}}}\n";
    const SHOP: &str = "openapi: 3.0.0\nservers: [{url: /shop}]\npaths:\n  /orders:\n    get: {responses: {'200': {description: x}}}\n";

    fn doc(paths: &[&str]) -> Value {
        let mut p = serde_json::Map::new();
        for path in paths {
            p.insert((*path).to_owned(), json!({"get": {"responses": {"200": {"description": "seen"}}}}));
        }
        json!({"openapi": "3.1.0", "paths": p})
    }

    #[test]
    fn each_spec_goes_to_its_best_service() {
        let specs = [spec(USERS, "users.yaml"), spec(SHOP, "shop.yaml")];
        let observed = vec![
            ("api.example.com".to_owned(), doc(&["/users/{userId}", "/users", "/health"])),
            ("shop.example.com".to_owned(), doc(&["/shop/orders", "/shop/cart"])),
            ("cdn.example.com".to_owned(), doc(&["/img/{name}"])),
        ];
        let r = build_report(&specs, &observed);
        assert_eq!(r.specs[0].applied_to, ["api.example.com"]);
        assert_eq!(r.specs[1].applied_to, ["shop.example.com"]);
        assert_eq!(r.services_without_spec, ["cdn.example.com"]);
        let api = r.services.iter().find(|s| s.service.as_deref() == Some("api.example.com")).unwrap();
        assert_eq!(api.diff.shadow.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["/health"]);
        let shop = r.services.iter().find(|s| s.service.as_deref() == Some("shop.example.com")).unwrap();
        assert_eq!(shop.diff.shadow.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["/shop/cart"]);
        assert!(shop.diff.orphan.is_empty());
    }

    #[test]
    fn one_service_takes_every_spec_and_split_specs_merge() {
        let specs = [spec(USERS, "users.yaml"), spec(SHOP, "shop.yaml")];
        let observed = vec![("only".to_owned(), doc(&["/users", "/shop/orders", "/other"]))];
        let r = build_report(&specs, &observed);
        assert_eq!(r.services.len(), 1);
        let s = &r.services[0];
        assert_eq!(s.specs, ["users.yaml", "shop.yaml"]);
        // /shop/orders is documented by the second file: not a shadow of the merged spec.
        assert_eq!(s.diff.shadow.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["/other"]);
        assert_eq!(s.diff.orphan.iter().map(|o| o.template.as_str()).collect::<Vec<_>>(), ["/users/{id}"]);
    }

    #[test]
    fn a_spec_matching_nothing_is_all_orphans() {
        let specs = [spec(USERS, "users.yaml")];
        let r = build_report(&specs, &[("a".to_owned(), doc(&["/x"])), ("b".to_owned(), doc(&["/y"]))]);
        assert!(r.specs[0].applied_to.is_empty());
        let s = r.services.iter().find(|s| s.service.is_none()).unwrap();
        assert_eq!(s.diff.orphan.len(), 2);
        assert_eq!(r.services_without_spec, ["a", "b"]);
        // No observed documents at all: the same.
        let r = build_report(&specs, &[]);
        assert_eq!(r.services[0].diff.orphan.len(), 2);
    }

    #[test]
    fn writes_spec_diff_json_from_the_openapi_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("openapi")).unwrap();
        std::fs::write(dir.path().join("openapi/api.json"), doc(&["/users/{u}", "/admin"]).to_string()).unwrap();
        std::fs::write(dir.path().join("openapi/broken.json"), "{not json").unwrap();
        std::fs::write(dir.path().join("openapi/notes.txt"), "ignored").unwrap();
        write_report(dir.path(), &[spec(USERS, "users.yaml")]).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(dir.path().join("spec-diff.json")).unwrap()).unwrap();
        assert_eq!(v["unreadable_observed"], json!(["broken"]));
        // Two documents (one unreadable): the spec goes to the one it covers.
        assert_eq!(v["specs"][0]["applied_to"], json!(["api"]));
        let svc = &v["services"][0];
        assert_eq!(svc["service"], "api");
        assert_eq!(svc["summary"]["shadow"], 1);
        assert_eq!(svc["shadow"][0]["path"], "/admin");
        assert_eq!(svc["orphan"][0]["template"], "/users");
        assert!(v["specs"][0]["completeness"].as_array().unwrap().iter().any(|c| c["kind"] == "missing_security"));
        // No openapi/ directory (inventory off): still a report, every operation an orphan.
        let empty = tempfile::tempdir().unwrap();
        write_report(empty.path(), &[spec(USERS, "users.yaml")]).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(empty.path().join("spec-diff.json")).unwrap()).unwrap();
        assert_eq!(v["services"][0]["summary"]["orphan"], 2);
    }

    #[test]
    fn register_loads_specs_or_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, USERS).unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: x, in: nowhere}\n  /b: [\n",
        )
        .unwrap();
        let mut settings = AnalysisSettings::default();
        let mut reg = Registry::new();
        register(&mut reg, &settings).unwrap();
        settings.inventory.specs = vec![good.clone()];
        register(&mut reg, &settings).unwrap();
        reg.conclude(dir.path()).unwrap();
        assert!(dir.path().join("spec-diff.json").exists());
        settings.inventory.specs = vec![good, bad.clone()];
        let e = register(&mut Registry::new(), &settings).unwrap_err().to_string();
        assert!(e.contains("bad.yaml") && e.contains("line 7") && e.contains("invalid YAML"), "{e}");
        // A defect is read past: the spec loads, and the report lists it.
        std::fs::write(
            &bad,
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: x, in: nowhere}\n",
        )
        .unwrap();
        settings.inventory.specs = vec![bad];
        let specs = register(&mut Registry::new(), &settings).unwrap();
        assert_eq!(specs[0].defects.len(), 1);
        assert_eq!(specs[0].defects[0].line, Some(6));
    }
}
