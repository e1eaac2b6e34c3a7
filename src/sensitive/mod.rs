//! Sensitive data: personal data and secrets in requests and responses, found with one Aho-Corasick
//! pass over anchors plus key-name lookups, confirmed by regex and validators, reported with redacted
//! evidence only.
//!
//! Input: every transaction, after the inventory (which sets the endpoint template). Output: one line of
//! `DIR/findings.jsonl` per (type, location, field, value) in a transaction, with a `count` when the same
//! value repeats; one [`DataClassHit`] per finding in the transaction context (the inventory records them per
//! operation, and `transactions.jsonl` masks the flagged query parameters, path segments and headers).
//! Raw values never leave the sensor unless `[sensitive] emit_raw_values = true`: findings carry a masked
//! rendering and a keyed hash. Caps ([`Settings`]) bound the work per transaction; every cap hit is
//! counted in `DIR/sensitive_stats.json` and logged once.

pub mod json;
pub mod keys;
pub mod redact;
pub mod scanner;
pub mod signatures;
pub mod validators;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::analyzer::{AnalysisSettings, Analyzer, DataClassHit, Record, Registry, SetupError, TxContext};
use crate::http::Transaction;
use scanner::{Found, Limits, ScanCounts, Scanner};
use signatures::{LoadSpec, Normalize, SharedSignatures, SignatureSet};

/// `[sensitive]` in the config file. Every key optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Scan transactions for personal data and secrets.
    pub enabled: bool,
    /// Use the signature packs compiled into the binary (pii, financial, secrets, health).
    pub builtin_signatures: bool,
    /// Directory of operator packs (`*.toml` with `kind = "data"`); None: `/etc/mirador/signatures` when it
    /// exists.
    pub signatures_dir: Option<PathBuf>,
    /// Signature ids to switch off (built-in or operator).
    pub disabled: Vec<String>,
    /// Secret for the keyed hash of detected values. None: a random key per process (hashes then correlate
    /// within one run only) and a warning at start.
    pub hash_key: Option<String>,
    /// Put the raw detected value in each finding (`value`). Off: only masked evidence and the hash leave
    /// the sensor.
    pub emit_raw_values: bool,
    /// Bytes of each body scanned (the rest is not looked at).
    pub max_scan_bytes: usize,
    /// JSON nesting followed; deeper values are skipped.
    pub max_json_depth: usize,
    /// JSON strings and numbers looked at per body.
    pub max_json_values: usize,
    /// Findings kept per transaction (before grouping repeats).
    pub max_findings_per_transaction: usize,
    /// Regex matches taken from one value.
    pub max_matches_per_value: usize,
    /// Lines of a text body (or pairs of a form) looked at.
    pub max_text_lines: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let l = Limits::default();
        Settings {
            enabled: true,
            builtin_signatures: true,
            signatures_dir: None,
            disabled: Vec::new(),
            hash_key: None,
            emit_raw_values: false,
            max_scan_bytes: l.max_scan_bytes,
            max_json_depth: l.max_json_depth,
            max_json_values: l.max_json_values,
            max_findings_per_transaction: l.max_findings,
            max_matches_per_value: l.max_matches_per_value,
            max_text_lines: l.max_text_lines,
        }
    }
}

impl Settings {
    pub fn limits(&self) -> Limits {
        Limits {
            max_scan_bytes: self.max_scan_bytes,
            max_json_depth: self.max_json_depth,
            max_json_values: self.max_json_values,
            max_matches_per_value: self.max_matches_per_value,
            max_text_lines: self.max_text_lines,
            max_findings: self.max_findings_per_transaction,
        }
    }

    pub fn load_spec(&self) -> LoadSpec {
        LoadSpec {
            builtin: self.builtin_signatures,
            dir: Some(self.signatures_dir.clone().unwrap_or_else(|| signatures::DEFAULT_DIR.into())),
            dir_explicit: self.signatures_dir.is_some(),
            disabled: self.disabled.clone(),
        }
    }
}

/// Counters shared by the workers, written to `DIR/sensitive_stats.json` at the end.
#[derive(Debug, Default)]
struct Stats {
    transactions: AtomicU64,
    findings: AtomicU64,
    scan: Mutex<ScanCounts>,
}

#[derive(Serialize)]
struct StatsFile {
    signatures: usize,
    transactions: u64,
    findings: u64,
    bodies: u64,
    bodies_clean: u64,
    bodies_walked: u64,
    bodies_binary: u64,
    bytes_scanned: u64,
    values: u64,
    regex_runs: u64,
    caps: CapsFile,
}

#[derive(Serialize)]
struct CapsFile {
    max_scan_bytes: u64,
    max_json_depth: u64,
    max_json_values: u64,
    max_text_lines: u64,
    max_findings_per_transaction: u64,
}

struct Shared {
    sigs: Arc<SharedSignatures>,
    key: [u8; 32],
    emit_raw: bool,
    limits: Limits,
    stats: Stats,
}

/// Adds the sensitive-data analyzer to the chain.
pub fn register(reg: &mut Registry, settings: &AnalysisSettings) -> Result<(), SetupError> {
    let s = &settings.sensitive;
    if !s.enabled {
        return Ok(());
    }
    for (name, v) in [
        ("max_scan_bytes", s.max_scan_bytes),
        ("max_json_depth", s.max_json_depth),
        ("max_json_values", s.max_json_values),
        ("max_findings_per_transaction", s.max_findings_per_transaction),
        ("max_matches_per_value", s.max_matches_per_value),
        ("max_text_lines", s.max_text_lines),
    ] {
        if v == 0 {
            return Err(SetupError(format!("[sensitive] {name} = 0: must be at least 1")));
        }
    }
    let sigs = Arc::new(SharedSignatures::load(s.load_spec()).map_err(|e| SetupError(e.to_string()))?);
    // SIGHUP: the packs are read again (same directory and disabled list as at start); a bad pack keeps the
    // running set.
    let live = Arc::clone(&sigs);
    reg.on_reload("sensitive", move |_| {
        live.reload()
            .map(|n| tracing::info!(signatures = n, "Signature packs reloaded."))
            .map_err(|e| SetupError(e.to_string()))
    });
    let key = match s.hash_key.as_deref() {
        Some(k) if !k.is_empty() => redact::derive_key(k),
        _ => {
            tracing::warn!(
                "No [sensitive] hash_key set: finding hashes use a random per-process key and correlate within this run only."
            );
            redact::random_key()
        }
    };
    if s.emit_raw_values {
        tracing::warn!("[sensitive] emit_raw_values = true: findings carry the raw detected values.");
    }
    tracing::info!(signatures = sigs.current().len(), "Sensitive-data signatures loaded.");
    let shared =
        Arc::new(Shared { sigs, key, emit_raw: s.emit_raw_values, limits: s.limits(), stats: Stats::default() });
    let f = shared.clone();
    reg.register("sensitive", move || Box::new(Sensitive::new(f.clone())));
    reg.on_conclude("sensitive", move |dir| {
        let c = shared.stats.scan.lock().map(|c| c.clone()).unwrap_or_default();
        for (n, key) in [
            (c.cap_scan_bytes, "max_scan_bytes"),
            (c.cap_json_depth, "max_json_depth"),
            (c.cap_json_values, "max_json_values"),
            (c.cap_text_lines, "max_text_lines"),
            (c.cap_findings, "max_findings_per_transaction"),
        ] {
            if n > 0 {
                tracing::warn!(
                    hits = n,
                    "Sensitive-data scan cut short by a cap; raise [sensitive] {key} to look further."
                );
            }
        }
        let file = StatsFile {
            signatures: shared.sigs.current().len(),
            transactions: shared.stats.transactions.load(Ordering::Relaxed),
            findings: shared.stats.findings.load(Ordering::Relaxed),
            bodies: c.bodies,
            bodies_clean: c.bodies_clean,
            bodies_walked: c.bodies_walked,
            bodies_binary: c.bodies_binary,
            bytes_scanned: c.bytes_scanned,
            values: c.values,
            regex_runs: c.regex_runs,
            caps: CapsFile {
                max_scan_bytes: c.cap_scan_bytes,
                max_json_depth: c.cap_json_depth,
                max_json_values: c.cap_json_values,
                max_text_lines: c.cap_text_lines,
                max_findings_per_transaction: c.cap_findings,
            },
        };
        crate::output::write_json_file(&dir.join("sensitive_stats.json"), &file).map_err(std::io::Error::other)
    });
    Ok(())
}

/// One finding of a transaction after grouping repeats of the same value in the same place.
struct Agg {
    sig: u16,
    location: &'static str,
    field: String,
    hash: String,
    evidence: String,
    raw: Option<String>,
    confidence: f32,
    count: u32,
}

#[derive(Serialize)]
struct FindingRecord<'a> {
    ts: f64,
    uid: &'a str,
    trans_depth: u64,
    r#type: &'a str,
    category: &'a str,
    signature_id: &'a str,
    severity: &'a str,
    method: Option<&'a str>,
    host: Option<&'a str>,
    path: &'a str,
    endpoint: Option<&'a str>,
    location: &'a str,
    field: &'a str,
    evidence: &'a str,
    hash: &'a str,
    confidence: f64,
    count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
}

struct Sensitive {
    shared: Arc<Shared>,
    scanner: Scanner,
    found: Vec<Found>,
    aggs: Vec<Agg>,
}

impl Sensitive {
    fn new(shared: Arc<Shared>) -> Self {
        let scanner = Scanner::new(shared.limits.clone());
        Sensitive { shared, scanner, found: Vec::new(), aggs: Vec::new() }
    }
}

fn normalize(v: &[u8], how: Normalize) -> Vec<u8> {
    match how {
        Normalize::None => v.to_vec(),
        Normalize::Digits => v.iter().copied().filter(u8::is_ascii_digit).collect(),
        Normalize::Lowercase => v.to_ascii_lowercase(),
        Normalize::Alnum => v.iter().filter(|b| b.is_ascii_alphanumeric()).map(u8::to_ascii_uppercase).collect(),
    }
}

/// Groups raw detections by (type, location, field, value hash) and masks them; the raw bytes are dropped
/// here unless the operator asked for them.
fn aggregate(set: &SignatureSet, key: &[u8; 32], emit_raw: bool, found: &mut Vec<Found>, aggs: &mut Vec<Agg>) {
    aggs.clear();
    for f in found.drain(..) {
        let Some(sig) = set.sigs.get(usize::from(f.sig)) else { continue };
        let hash = redact::keyed_hash(key, &normalize(&f.value, sig.normalize));
        let same = aggs.iter_mut().find(|a| {
            a.location == f.location
                && a.field == f.field
                && a.hash == hash
                && set.sigs.get(usize::from(a.sig)).is_some_and(|s| s.ty == sig.ty)
        });
        match same {
            Some(a) => {
                a.count += 1;
                if f.confidence > a.confidence {
                    a.confidence = f.confidence;
                    a.sig = f.sig;
                }
            }
            None => aggs.push(Agg {
                sig: f.sig,
                location: f.location,
                evidence: redact::mask(&f.value, sig.mask, sig.mask_prefix),
                raw: emit_raw.then(|| String::from_utf8_lossy(&f.value).into_owned()),
                field: f.field,
                hash,
                confidence: f.confidence,
                count: 1,
            }),
        }
    }
}

/// The request path with flagged segments replaced by their masked evidence.
fn masked_path(path: &str, aggs: &[Agg]) -> String {
    let mut out = String::with_capacity(path.len());
    let mut k = 0usize;
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.is_empty() {
            continue;
        }
        let field = format!("segment[{k}]");
        k += 1;
        match aggs.iter().find(|a| a.location == "request.path" && a.field == field) {
            Some(a) => out.push_str(&a.evidence),
            None => out.push_str(seg),
        }
    }
    out
}

impl Analyzer for Sensitive {
    fn name(&self) -> &'static str {
        "sensitive"
    }

    fn on_transaction(&mut self, tx: &Arc<Transaction>, ctx: &mut TxContext, out: &mut Vec<Record>) {
        let set = self.shared.sigs.current();
        self.shared.stats.transactions.fetch_add(1, Ordering::Relaxed);
        self.found.clear();
        self.scanner.scan_transaction(&set, tx, &mut self.found);
        if self.found.is_empty() {
            return;
        }
        aggregate(&set, &self.shared.key, self.shared.emit_raw, &mut self.found, &mut self.aggs);
        self.shared.stats.findings.fetch_add(self.aggs.len() as u64, Ordering::Relaxed);
        let path = if self.aggs.iter().any(|a| a.location == "request.path") {
            masked_path(&tx.path, &self.aggs)
        } else {
            tx.path.clone()
        };
        let uid = tx.flow.as_ref().map_or("", |f| f.uid.as_str());
        for a in &self.aggs {
            let Some(sig) = set.sigs.get(usize::from(a.sig)) else { continue };
            let rec = FindingRecord {
                ts: tx.ts,
                uid,
                trans_depth: tx.trans_depth,
                r#type: &sig.ty,
                category: sig.category.name(),
                signature_id: &sig.id,
                severity: sig.severity.name(),
                method: tx.has_request.then_some(tx.method.as_str()),
                host: tx.host(),
                path: &path,
                endpoint: ctx.endpoint.as_deref(),
                location: a.location,
                field: &a.field,
                evidence: &a.evidence,
                hash: &a.hash,
                confidence: (f64::from(a.confidence) * 100.0).round() / 100.0,
                count: a.count,
                value: a.raw.as_deref(),
            };
            if let Ok(json) = serde_json::to_vec(&rec) {
                out.push(Record { stream: "findings", json });
            }
            ctx.data_classes.push(DataClassHit {
                location: a.location,
                field: a.field.clone(),
                class: sig.ty.clone(),
                category: sig.category.name().to_owned(),
            });
        }
    }

    fn finish(&mut self, _out: &mut Vec<Record>) {
        let c = std::mem::take(&mut self.scanner.counts);
        if let Ok(mut s) = self.shared.stats.scan.lock() {
            s.bodies += c.bodies;
            s.bodies_clean += c.bodies_clean;
            s.bodies_walked += c.bodies_walked;
            s.bodies_binary += c.bodies_binary;
            s.bytes_scanned += c.bytes_scanned;
            s.values += c.values;
            s.regex_runs += c.regex_runs;
            s.cap_scan_bytes += c.cap_scan_bytes;
            s.cap_json_depth += c.cap_json_depth;
            s.cap_json_values += c.cap_json_values;
            s.cap_text_lines += c.cap_text_lines;
            s.cap_findings += c.cap_findings;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tx: Transaction, settings: Settings) -> (Vec<serde_json::Value>, TxContext) {
        let mut reg = Registry::new();
        let a = AnalysisSettings { sensitive: settings, ..AnalysisSettings::default() };
        register(&mut reg, &a).unwrap();
        let mut an = reg.build();
        let mut ctx = TxContext { endpoint: Some("/v1/users/{email}".into()), ..TxContext::default() };
        let mut out = Vec::new();
        an[0].on_transaction(&Arc::new(tx), &mut ctx, &mut out);
        (out.iter().map(|r| serde_json::from_slice(&r.json).unwrap()).collect(), ctx)
    }

    fn tx() -> Transaction {
        Transaction {
            has_request: true,
            has_response: true,
            method: "GET".into(),
            uri: "/v1/users/jane.doe@example.com?card=4111111111111111&page=1".into(),
            path: "/v1/users/jane.doe@example.com".into(),
            query_params: vec![("card".into(), "4111111111111111".into()), ("page".into(), "1".into())],
            request_headers: vec![("Host".to_owned(), "api.example".to_owned())].into(),
            response_headers: vec![("Content-Type".to_owned(), "application/json".to_owned())].into(),
            response_body: br#"{"cards":["4111111111111111","4111 1111 1111 1111"],"email":"jane.doe@example.com"}"#
                .to_vec(),
            ..Transaction::default()
        }
    }

    #[test]
    fn findings_are_masked_hashed_grouped() {
        let s = Settings { hash_key: Some("test".into()), ..Settings::default() };
        let (recs, ctx) = run(tx(), s);
        let text = serde_json::to_string(&recs).unwrap();
        assert!(!text.contains("4111111111111111") && !text.contains("jane.doe"), "{text}");
        let path = recs.iter().find(|r| r["location"] == "request.path").unwrap();
        assert_eq!(path["path"], "/v1/users/j***@e***.com");
        assert_eq!(path["endpoint"], "/v1/users/{email}");
        assert_eq!(path["evidence"], "j***@e***.com");
        assert_eq!(path["field"], "segment[2]");
        // The two spellings of one card in one array are distinct fields; the same value hashes the same.
        let cards: Vec<_> = recs.iter().filter(|r| r["type"] == "credit_card").collect();
        assert_eq!(cards.len(), 3, "{cards:?}");
        assert!(cards.iter().all(|c| c["hash"] == cards[0]["hash"]));
        assert_eq!(ctx.data_classes.len(), recs.len());
        // transactions.jsonl masks what was flagged.
        let mut line = Vec::new();
        tx().write_json_masked(&mut line, &ctx.data_classes);
        let line = String::from_utf8(line).unwrap();
        assert!(line.contains(r#""uri":"/v1/users/***?card=***&page=1""#), "{line}");
    }

    #[test]
    fn repeats_count_and_raw_only_on_request() {
        let mut t = tx();
        t.response_body = br#"{"note":"a@example.com, a@example.com and A@example.com"}"#.to_vec();
        let (recs, _) = run(t.clone(), Settings::default());
        let r = recs.iter().find(|r| r["field"] == "$.note").unwrap();
        assert_eq!(r["count"], 3);
        assert!(r.get("value").is_none());
        let (recs, _) = run(t, Settings { emit_raw_values: true, ..Settings::default() });
        let r = recs.iter().find(|r| r["field"] == "$.note").unwrap();
        assert_eq!(r["value"], "a@example.com");
    }

    #[test]
    fn bad_settings_are_setup_errors() {
        let mut reg = Registry::new();
        let a = AnalysisSettings {
            sensitive: Settings { disabled: vec!["no.such".into()], ..Settings::default() },
            ..AnalysisSettings::default()
        };
        assert!(register(&mut reg, &a).unwrap_err().to_string().contains("no.such"));
        let a = AnalysisSettings {
            sensitive: Settings { max_json_depth: 0, ..Settings::default() },
            ..AnalysisSettings::default()
        };
        assert!(register(&mut reg, &a).unwrap_err().to_string().contains("max_json_depth"));
    }

    #[test]
    fn sighup_reloads_the_packs_and_keeps_them_when_a_pack_turns_bad() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("extra.toml");
        let good = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/signatures/secrets.toml")).unwrap();
        // The operator's directory holds a copy of a built-in pack under other ids: valid.
        std::fs::write(&pack, good.replace("id = \"", "id = \"op.")).unwrap();
        let a = AnalysisSettings {
            sensitive: Settings { signatures_dir: Some(dir.path().to_owned()), ..Settings::default() },
            ..AnalysisSettings::default()
        };
        let mut reg = Registry::new();
        register(&mut reg, &a).unwrap();
        assert_eq!(reg.reload(&a), 0);
        std::fs::write(&pack, "kind = \"data\"\n[[signature]]\nid = ").unwrap();
        assert_eq!(reg.reload(&a), 1, "a bad pack is refused");
    }
}
