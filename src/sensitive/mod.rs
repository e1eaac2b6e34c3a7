//! Sensitive data: personal data and secrets in requests and responses, found with one Aho-Corasick
//! pass over anchors plus key-name lookups, confirmed by regex and validators, reported with redacted
//! evidence only.
//!
//! Input: every transaction, after the inventory (which sets the endpoint template). Output: one
//! [`DataClassHit`] per (type, location, field, value) of a transaction in its context, as found (the
//! inventory records them per operation, and `transactions.jsonl` masks the flagged query parameters, path
//! segments and headers); and `DIR/findings.jsonl`, aggregated: one line per (host, method, endpoint,
//! type, location, field) within `finding_window`, with counts, first/last seen, a bounded list of
//! transaction references and value hashes ([`report`]). Masking and hashing run once per finding, not
//! once per value seen.
//! Raw values never leave the sensor unless `[sensitive] emit_raw_values = true`: findings carry a masked
//! rendering and a keyed hash. Caps ([`Settings`]) bound the work per transaction; every cap hit is
//! counted in `DIR/sensitive_stats.json` and logged once.

pub mod index;
pub mod json;
pub mod keys;
pub mod prefilter;
pub mod redact;
pub mod report;
pub mod scanner;
pub mod signatures;
pub mod validators;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// Verdicts of (place, key, value) kept per worker, so a value seen again is not classified again (ids,
    /// enums, the same record fetched by many clients). About 200 bytes each with the values they hold; used as
    /// the largest power of two not above it.
    pub value_cache_entries: usize,
    /// Detections of one kind of data at one place of one operation within this packet-time window are
    /// one finding, emitted when the window since the first has passed. `"0s"`: one finding per
    /// transaction, type, location and field, emitted at once.
    #[serde(with = "crate::config::duration")]
    pub finding_window: Duration,
    /// Findings held for aggregation at once; beyond, a new finding is emitted at once (counted).
    pub max_held_findings: usize,
    /// Transaction references kept per finding (`transactions`); `tx_count` counts them all.
    pub max_finding_transactions: usize,
    /// Keyed hashes of distinct values kept per finding (`hashes`).
    pub max_finding_hashes: usize,
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
            value_cache_entries: l.value_cache_entries,
            finding_window: Duration::from_secs(300),
            max_held_findings: 10_000,
            max_finding_transactions: 10,
            max_finding_hashes: 10,
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
            value_cache_entries: self.value_cache_entries,
        }
    }

    pub fn report_caps(&self) -> report::Caps {
        report::Caps {
            window: self.finding_window.as_secs_f64(),
            max_held: self.max_held_findings,
            max_transactions: self.max_finding_transactions,
            max_hashes: self.max_finding_hashes,
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
    /// Values found (one per type, location, field and value of a transaction, repeats grouped).
    detections: AtomicU64,
    /// Lines written to findings.jsonl.
    findings: AtomicU64,
    scan: Mutex<ScanCounts>,
}

#[derive(Serialize)]
struct StatsFile {
    signatures: usize,
    transactions: u64,
    detections: u64,
    findings: u64,
    bodies: u64,
    bodies_clean: u64,
    bodies_walked: u64,
    bodies_binary: u64,
    bytes_scanned: u64,
    values: u64,
    regex_runs: u64,
    header_cache_hits: u64,
    value_cache_hits: u64,
    /// Numeric matches dropped because they lie inside an identifier (a UUID group, `ORD-…`).
    numbers_inside_identifiers: u64,
    caps: CapsFile,
}

#[derive(Serialize)]
struct CapsFile {
    max_scan_bytes: u64,
    max_json_depth: u64,
    max_json_values: u64,
    max_text_lines: u64,
    max_findings_per_transaction: u64,
    max_held_findings: u64,
}

struct Shared {
    sigs: Arc<SharedSignatures>,
    key: [u8; 32],
    emit_raw: bool,
    limits: Limits,
    stats: Stats,
    held: report::Held,
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
        ("value_cache_entries", s.value_cache_entries),
        ("max_held_findings", s.max_held_findings),
        ("max_finding_transactions", s.max_finding_transactions),
        ("max_finding_hashes", s.max_finding_hashes),
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
    let shared = Arc::new(Shared {
        sigs,
        key,
        emit_raw: s.emit_raw_values,
        limits: s.limits(),
        stats: Stats::default(),
        held: report::Held::new(s.report_caps()),
    });
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
            (shared.held.cap_hits.load(Ordering::Relaxed), "max_held_findings"),
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
            detections: shared.stats.detections.load(Ordering::Relaxed),
            findings: shared.stats.findings.load(Ordering::Relaxed),
            bodies: c.bodies,
            bodies_clean: c.bodies_clean,
            bodies_walked: c.bodies_walked,
            bodies_binary: c.bodies_binary,
            bytes_scanned: c.bytes_scanned,
            values: c.values,
            regex_runs: c.regex_runs,
            header_cache_hits: c.header_cache_hits,
            value_cache_hits: c.value_cache_hits,
            numbers_inside_identifiers: c.inside_token,
            caps: CapsFile {
                max_scan_bytes: c.cap_scan_bytes,
                max_json_depth: c.cap_json_depth,
                max_json_values: c.cap_json_values,
                max_text_lines: c.cap_text_lines,
                max_findings_per_transaction: c.cap_findings,
                max_held_findings: shared.held.cap_hits.load(Ordering::Relaxed),
            },
        };
        crate::output::write_json_file(&dir.join("sensitive_stats.json"), &file).map_err(std::io::Error::other)
    });
    Ok(())
}

/// One value of a transaction after grouping its repeats (same type, location, field and normalised value).
struct Agg {
    sig: u16,
    location: &'static str,
    field: String,
    norm: Vec<u8>,
    value: Vec<u8>,
    confidence: f32,
    count: u32,
}

/// What the scan of one transaction found, until its report (see [`Analyzer::prepare`]).
struct Scanned {
    set: Arc<SignatureSet>,
    seq: u64,
    aggs: Vec<Agg>,
}

struct Sensitive {
    shared: Arc<Shared>,
    scanner: Scanner,
    found: Vec<Found>,
    /// Scans of the batch, in call order.
    prepared: crate::analyzer::Prepared<Scanned>,
    /// Group key under construction (reused).
    key: Vec<u8>,
    /// Normalised value under comparison (reused).
    norm: Vec<u8>,
    /// Findings of this transaction when nothing is held across transactions (`finding_window = "0s"`).
    local: Vec<(Vec<u8>, report::Group)>,
    finished: bool,
}

impl Sensitive {
    fn new(shared: Arc<Shared>) -> Self {
        let scanner = Scanner::new(shared.limits.clone());
        shared.held.live_workers.fetch_add(1, Ordering::AcqRel);
        Sensitive {
            shared,
            scanner,
            found: Vec::new(),
            prepared: Default::default(),
            key: Vec::new(),
            norm: Vec::new(),
            local: Vec::new(),
            finished: false,
        }
    }
}

fn emit(stats: &Stats, groups: impl IntoIterator<Item = report::Group>, out: &mut Vec<Record>) {
    for g in groups {
        stats.findings.fetch_add(1, Ordering::Relaxed);
        out.push(g.record());
    }
}

fn normalize(v: &[u8], how: Normalize, out: &mut Vec<u8>) {
    out.clear();
    match how {
        Normalize::None => out.extend_from_slice(v),
        Normalize::Digits => out.extend(v.iter().copied().filter(u8::is_ascii_digit)),
        Normalize::Lowercase => out.extend(v.iter().map(u8::to_ascii_lowercase)),
        Normalize::Alnum => out.extend(v.iter().filter(|b| b.is_ascii_alphanumeric()).map(u8::to_ascii_uppercase)),
    }
}

/// Groups raw detections by (type, location, field, normalised value); values are compared, not hashed
/// (hashing is for what leaves the sensor, and only the first values of a finding do).
fn aggregate(set: &SignatureSet, found: &mut Vec<Found>, aggs: &mut Vec<Agg>, norm: &mut Vec<u8>) {
    aggs.clear();
    for f in found.drain(..) {
        let Some(sig) = set.sigs.get(usize::from(f.sig)) else { continue };
        normalize(&f.value, sig.normalize, norm);
        // Cheapest tests first: values mostly differ, fields often share a long prefix.
        let same = aggs.iter_mut().find(|a| {
            a.norm == *norm
                && a.location == f.location
                && set.sigs.get(usize::from(a.sig)).is_some_and(|s| s.ty == sig.ty)
                && a.field == f.field
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
                field: f.field,
                norm: norm.clone(),
                value: f.value,
                confidence: f.confidence,
                count: 1,
            }),
        }
    }
}

/// The request path with flagged segments replaced by their masked evidence.
fn masked_path(path: &str, set: &SignatureSet, aggs: &[Agg]) -> String {
    let mut out = String::with_capacity(path.len());
    let mut k = 0usize;
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.is_empty() {
            continue;
        }
        let hit = aggs
            .iter()
            .find(|a| a.location == "request.path" && crate::http::secrets::segment_index(&a.field) == Some(k));
        k += 1;
        match hit.and_then(|a| set.sigs.get(usize::from(a.sig)).map(|s| (a, s))) {
            Some((a, s)) => out.push_str(&redact::mask(&a.value, s.mask, s.mask_prefix)),
            None => out.push_str(seg),
        }
    }
    out
}

fn hash16(key: &[u8; 32], norm: &[u8]) -> [u8; 16] {
    let h = blake3::keyed_hash(key, norm);
    let mut out = [0u8; 16];
    out.copy_from_slice(h.as_bytes().get(..16).unwrap_or(&[0; 16]));
    out
}

/// `host \xff method \xff endpoint \xff type \xff location \xff field` (0xff never occurs in UTF-8).
fn group_key(key: &mut Vec<u8>, tx: &Transaction, endpoint: &str, ty: &str, location: &str, field: &str) {
    key.clear();
    for part in [tx.host().unwrap_or(""), tx.method.as_str(), endpoint, ty, location, field] {
        key.extend_from_slice(part.as_bytes());
        key.push(0xff);
    }
}

impl Sensitive {
    fn scan(&mut self, tx: &Transaction, ctx: &mut TxContext) -> Scanned {
        let set = Arc::clone(&self.shared.sigs.current());
        let seq = self.shared.stats.transactions.fetch_add(1, Ordering::Relaxed);
        let mut aggs = Vec::new();
        self.found.clear();
        self.scanner.scan_transaction(&set, tx, &mut self.found);
        if self.found.is_empty() {
            return Scanned { set, seq, aggs };
        }
        aggregate(&set, &mut self.found, &mut aggs, &mut self.norm);
        self.shared.stats.detections.fetch_add(aggs.len() as u64, Ordering::Relaxed);
        for a in &aggs {
            let Some(sig) = set.sigs.get(usize::from(a.sig)) else { continue };
            ctx.data_classes.push(DataClassHit {
                location: a.location,
                field: a.field.clone(),
                class: sig.ty.clone(),
                category: sig.category.name().to_owned(),
            });
        }
        Scanned { set, seq, aggs }
    }

    /// Files the transaction's detections into findings (held and aggregated, or emitted now).
    fn report(&mut self, tx: &Transaction, ctx: &TxContext, scanned: &Scanned, out: &mut Vec<Record>) {
        let Scanned { set, seq, aggs } = scanned;
        let (seq, aggs) = (*seq, aggs.as_slice());
        let shared = Arc::clone(&self.shared);
        let caps = &shared.held.caps;
        let uid = tx.flow.as_ref().map_or("", |f| f.uid.as_str());
        let endpoint = ctx.endpoint.as_deref().unwrap_or(&tx.path);
        let mut path: Option<String> = None;
        let mut immediate: Vec<report::Group> = Vec::new();
        let mut held = (caps.window > 0.0).then(|| shared.held.lock_tx());
        self.local.clear();
        for a in aggs {
            let Some(sig) = set.sigs.get(usize::from(a.sig)) else { continue };
            let field = report::group_field(&a.field);
            group_key(&mut self.key, tx, endpoint, &sig.ty, a.location, &field);
            let hit = report::Hit {
                ts: tx.ts,
                uid,
                trans_depth: tx.trans_depth,
                confidence: a.confidence,
                count: a.count,
                seq,
            };
            let key = self.key.as_slice();
            let existing = match held.as_mut() {
                Some(h) => h.get(key),
                None => self.local.iter_mut().find(|(k, _)| k.as_slice() == key).map(|(_, g)| g),
            };
            if let Some(g) = existing
                && !g.is_after(&hit)
            {
                let hash = g.wants_hash(&hit, caps).then(|| hash16(&shared.key, &a.norm));
                g.add(&hit, hash, caps);
                continue;
            }
            let path = path.get_or_insert_with(|| {
                let p = if aggs.iter().any(|a| a.location == "request.path") {
                    masked_path(&tx.path, set, aggs)
                } else {
                    tx.path.clone()
                };
                crate::http::secrets::redact_path(&p).into_owned()
            });
            let evidence = redact::mask(&a.value, sig.mask, sig.mask_prefix);
            let raw = shared.emit_raw.then(|| String::from_utf8_lossy(&a.value));
            let nf = report::NewFinding {
                ty: &sig.ty,
                category: sig.category.name(),
                signature_id: &sig.id,
                severity: sig.severity.name(),
                method: tx.has_request.then_some(tx.method.as_str()),
                host: tx.host(),
                path,
                endpoint: ctx.endpoint.as_deref(),
                location: a.location,
                field: &field,
                evidence: &evidence,
                hash: hash16(&shared.key, &a.norm),
                raw: raw.as_deref(),
            };
            let g = report::Group::new(&nf, &hit, caps.window);
            // A held finding whose first detection comes later (another worker got there first): this one
            // becomes its first, so the line does not depend on how transactions were spread over workers.
            let existing = match held.as_mut() {
                Some(h) => h.get(key),
                None => self.local.iter_mut().find(|(k, _)| k.as_slice() == key).map(|(_, g)| g),
            };
            if let Some(held_g) = existing {
                held_g.take_first(g, &hit, caps);
                continue;
            }
            match held.as_mut() {
                Some(h) => immediate.extend(h.insert(key, g)),
                None => self.local.push((key.to_vec(), g)),
            }
        }
        drop(held);
        emit(&shared.stats, immediate.into_iter().chain(self.local.drain(..).map(|(_, g)| g)), out);
    }
}

impl Analyzer for Sensitive {
    fn name(&self) -> &'static str {
        "sensitive"
    }

    /// The scan: the data classes go into the context at once (the inventory files them with the
    /// transaction, in its turn); the findings are reported in this analyzer's turn.
    fn prepare(&mut self, tx: &Arc<Transaction>, ctx: &mut TxContext) {
        let scanned = self.scan(tx, ctx);
        self.prepared.push(scanned);
    }

    fn on_transaction(&mut self, tx: &Arc<Transaction>, ctx: &mut TxContext, out: &mut Vec<Record>) {
        let scanned = match self.prepared.take() {
            Some(s) => s,
            None => self.scan(tx, ctx),
        };
        if !scanned.aggs.is_empty() {
            self.report(tx, ctx, &scanned, out);
        }
    }
    fn on_tick(&mut self, now: crate::capture::Timestamp, out: &mut Vec<Record>) {
        let due = self.shared.held.take_due(Some(now.as_secs_f64()));
        emit(&self.shared.stats, due, out);
    }

    /// The last worker to finish emits what is still held, so a finding seen by several workers is still
    /// one line.
    fn finish(&mut self, out: &mut Vec<Record>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if self.shared.held.live_workers.fetch_sub(1, Ordering::AcqRel) == 1 {
            let all = self.shared.held.take_due(None);
            emit(&self.shared.stats, all, out);
        }
        let c = std::mem::take(&mut self.scanner.counts);
        if let Ok(mut s) = self.shared.stats.scan.lock() {
            s.bodies += c.bodies;
            s.bodies_clean += c.bodies_clean;
            s.bodies_walked += c.bodies_walked;
            s.bodies_binary += c.bodies_binary;
            s.bytes_scanned += c.bytes_scanned;
            s.values += c.values;
            s.regex_runs += c.regex_runs;
            s.header_cache_hits += c.header_cache_hits;
            s.value_cache_hits += c.value_cache_hits;
            s.inside_token += c.inside_token;
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
        an[0].finish(&mut out);
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
        // The two spellings of one card in one array are one place (`[*]`) and one value: one hash, count 2.
        let cards: Vec<_> = recs.iter().filter(|r| r["type"] == "credit_card").collect();
        assert_eq!(cards.len(), 2, "{cards:?}");
        assert!(cards.iter().all(|c| c["hash"] == cards[0]["hash"]));
        let arr = cards.iter().find(|c| c["field"] == "$.cards[*]").unwrap();
        assert_eq!((arr["count"].as_u64(), arr["tx_count"].as_u64()), (Some(2), Some(1)));
        assert_eq!(arr["hashes"].as_array().unwrap().len(), 1);
        // The data classes stay one per value and exact place (the inventory's input is unchanged).
        assert_eq!(ctx.data_classes.len(), 5, "{:?}", ctx.data_classes);
        assert!(ctx.data_classes.iter().any(|d| d.field == "$.cards[1]"));
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
        assert_eq!(r["hashes"].as_array().unwrap().len(), 1, "one value, three spellings");
        assert!(r.get("value").is_none());
        let (recs, _) = run(t, Settings { emit_raw_values: true, ..Settings::default() });
        let r = recs.iter().find(|r| r["field"] == "$.note").unwrap();
        assert_eq!(r["value"], "a@example.com");
    }

    /// Transactions of one operation within the window are one finding per place; a tick past the window
    /// emits it; `finding_window = "0s"` writes one per transaction at once.
    #[test]
    fn findings_aggregate_across_transactions_within_the_window() {
        let mut reg = Registry::new();
        let a = AnalysisSettings {
            sensitive: Settings { max_finding_transactions: 2, ..Settings::default() },
            ..AnalysisSettings::default()
        };
        register(&mut reg, &a).unwrap();
        let mut an = reg.build();
        let mut out = Vec::new();
        for (i, email) in ["a@example.com", "b@example.com", "a@example.com"].iter().enumerate() {
            let t = Transaction {
                has_response: true,
                ts: 100.0 + i as f64,
                trans_depth: i as u64 + 1,
                path: format!("/v1/users/{i}"),
                response_body: format!(r#"{{"items":[{{"email":"{email}"}}]}}"#).into_bytes(),
                ..Transaction::default()
            };
            let mut ctx = TxContext { endpoint: Some("/v1/users/{id}".into()), ..TxContext::default() };
            an[0].on_transaction(&Arc::new(t), &mut ctx, &mut out);
            assert_eq!(ctx.data_classes.len(), 1);
            assert_eq!(ctx.data_classes[0].field, "$.items[0].email");
        }
        assert!(out.is_empty(), "held");
        an[0].on_tick(crate::capture::Timestamp::from_secs(399), &mut out);
        assert!(out.is_empty(), "window not over");
        an[0].on_tick(crate::capture::Timestamp::from_secs(400), &mut out);
        assert_eq!(out.len(), 1);
        let r: serde_json::Value = serde_json::from_slice(&out[0].json).unwrap();
        assert_eq!(r["field"], "$.items[*].email");
        assert_eq!(r["path"], "/v1/users/0");
        assert_eq!((r["count"].as_u64(), r["tx_count"].as_u64()), (Some(3), Some(3)));
        assert_eq!(r["transactions"].as_array().unwrap().len(), 2);
        assert_eq!(r["hashes"].as_array().unwrap().len(), 2);
        assert_eq!((r["first_seen"].as_f64(), r["last_seen"].as_f64()), (Some(100.0), Some(102.0)));
        out.clear();
        an[0].finish(&mut out);
        assert!(out.is_empty());

        let (recs, _) = run(tx(), Settings { finding_window: Duration::ZERO, ..Settings::default() });
        assert_eq!(recs.len(), 4);
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
