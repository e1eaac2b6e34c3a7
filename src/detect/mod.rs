//! Detections: attacks, access-control and authentication gaps, abuse, data exposure and misconfiguration,
//! as alerts mapped to the OWASP API Security Top 10 (2023) and MITRE ATT&CK, written to the `alerts`
//! stream (`DIR/alerts.jsonl`).
//!
//! One analyzer (`detect`) runs every [`Detector`] family on each transaction, after the inventory (which
//! fills `ctx.endpoint`) and the sensitive-data analyzer (which fills `ctx.data_classes`). The detectors
//! and their state are shared by all workers (one [`Engine`] behind an `Arc`); state lives in
//! [`state::Bounded`] maps with entry caps (`max_tracked_keys`), whose refusals are counted.
//!
//! **Aggregation.** A rule firing for the same actor on the same endpoint (method + path template) within
//! `dedup_window` (packet time, default 300 s) is one alert: it is held from its first hit and emitted
//! when the window since that hit has passed (on the next tick) or at the end of the run, with `count`,
//! `first_seen`, `last_seen` and up to ten transaction references. Holding (rather than emitting the first
//! hit at once and updating later) keeps one line per alert for the SIEM; the cost is up to one window
//! of latency in live mode. `dedup_window = "0s"` emits every hit at once. When the pending table is full
//! (`max_pending_alerts`) a new alert is emitted at once, unaggregated, never dropped.
//!
//! **Actors** are the client address plus the credential presented (see [`Actor`]): the users behind one
//! NAT or proxy address are not one client. **Posture findings** ([`Hit::once`]: missing security headers,
//! personal data in query strings, CORS, versions, cleartext credentials) are properties of an operation or
//! service and are reported once, with one example transaction.
//!
//! **Evidence** never holds a credential: tokens, keys and passwords are described (kind, length), not
//! shown. Attack payloads are shown cut to `evidence_bytes` with non-printable bytes escaped.

pub mod abuse;
pub mod access;
pub mod attacks;
pub mod drift;
pub mod input;
pub mod misconfig;
pub mod rules;
pub mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::analyzer::{AnalysisSettings, Analyzer, Record, Registry, SetupError, TxContext};
use crate::capture::Timestamp;
use crate::http::Transaction;

pub use rules::{RuleId, RuleMeta, RuleSettings, Rules, Severity};

/// `[detect]` in the config file. Every key optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Run the detections at all. Default: true.
    pub enabled: bool,
    /// Hits of one rule for one actor on one endpoint within this packet-time window are one alert.
    /// Default: "5m". "0s" emits every hit at once.
    #[serde(with = "crate::config::duration")]
    pub dedup_window: Duration,
    /// Alerts held for aggregation at once; beyond, alerts are emitted unaggregated. Default: 50000.
    pub max_pending_alerts: usize,
    /// Entries per detector state table (actors, endpoints, ...); new keys beyond are not tracked (counted).
    /// Default: 100000.
    pub max_tracked_keys: usize,
    /// Request values scanned for attacks per transaction. Default: 512.
    pub max_values_per_transaction: usize,
    /// Bytes of one value scanned for attacks (longer values are cut). Default: 8192.
    pub max_value_bytes: usize,
    /// Rounds of percent-decoding applied to a value (double encoding is an evasion). Default: 3.
    pub max_decode_rounds: u8,
    /// Bytes of an attack payload shown in `evidence`. Default: 64.
    pub evidence_bytes: usize,
    /// Requests an operation must have had before it has a baseline (unauthenticated access, response
    /// size). Default: 20.
    pub warmup_requests: u64,
    /// An attack rule pack replacing the compiled-in `signatures/attacks.toml`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack_signatures: Option<PathBuf>,
    /// Per-rule overrides: `[detect.rules.<rule_id>] enabled / severity / threshold / window`.
    pub rules: BTreeMap<String, RuleSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            dedup_window: Duration::from_secs(300),
            max_pending_alerts: 50_000,
            max_tracked_keys: 100_000,
            max_values_per_transaction: 512,
            max_value_bytes: 8192,
            max_decode_rounds: 3,
            evidence_bytes: 64,
            warmup_requests: 20,
            attack_signatures: None,
            rules: BTreeMap::new(),
        }
    }
}

/// Adds the `detect` analyzer to the chain (unless `[detect] enabled = false`).
pub fn register(reg: &mut Registry, settings: &AnalysisSettings) -> Result<(), SetupError> {
    if !settings.detect.enabled {
        return Ok(());
    }
    let engine = Arc::new(Engine::new(&settings.detect)?);
    if let Some(dir) = &settings.state_dir {
        // Baselines learnt by earlier runs: a file that does not load is a warning, and learning starts over.
        let path = dir.join("detect-baselines.json");
        if path.exists() {
            match engine.drift.load(&path) {
                Ok(n) => tracing::info!(operations = n, path = %path.display(), "Detection baselines loaded."),
                Err(e) => tracing::warn!(error = %e, "Detection baselines not loaded; learning from scratch."),
            }
        }
        let drift = engine.drift.clone();
        reg.on_conclude("detect", move |_out: &std::path::Path| drift.save(&path));
    }
    reg.register("detect", move || Box::new(DetectAnalyzer::new(engine.clone())));
    Ok(())
}

/// One detector family. Shared by all workers: state behind `&self` lives in bounded, locked maps.
pub trait Detector: Send + Sync {
    fn name(&self) -> &'static str;
    /// Looks at one transaction; raises hits through `em`.
    fn on_transaction(&self, tx: &Transaction, ctx: &TxContext, em: &mut Emitter<'_>);
    /// Hits that depend on the transaction alone (no state, no facts from the inventory): found before the
    /// detections' turn in the chain, on any worker, so that the ordered part stays short.
    fn scan(&self, _tx: &Transaction, _rules: &Rules, _hits: &mut Vec<Hit>) {}
    /// About once a second of packet time: expire state older than the windows.
    fn on_tick(&self, _now: f64) {}
    /// New keys refused by this family's full state tables.
    fn cap_hits(&self) -> u64 {
        0
    }
}

/// Who did it: the client address plus, when the request carried one, an identity: `jwt:<sub>`,
/// `basic:<user>`, or a per-run keyed hash of the credential (never the credential itself): `apikey:<h>`,
/// `bearer:<h>` (a token without a decodable subject), `basic:#<h>` (no decodable user), `cookie:<h>` (a
/// session cookie).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// A decoded bearer JWT (header and claims); the signature only for the weak-secret check.
#[derive(Clone, Debug)]
pub struct Jwt {
    pub header: serde_json::Map<String, serde_json::Value>,
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `header.payload` as sent (what HS256 signs).
    pub signing_input: String,
    pub signature: Vec<u8>,
}

/// What every detector wants to know about a transaction, computed once. Borrowed from the transaction
/// and its context where possible: it is built for every transaction, and most raise nothing.
#[derive(Clone, Debug, Default)]
pub struct Facts<'a> {
    pub ts: f64,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// The credential's identity (see [`Actor`]), shared with the credential cache.
    pub identity: Option<Arc<str>>,
    /// State key of the actor: address and identity; without credentials, address and User-Agent, so
    /// that the anonymous clients behind one NAT or proxy address are not one client.
    pub actor_id: u64,
    /// State key of the client address alone (rules that attackers evade by rotating credentials).
    pub ip_id: u64,
    /// The Host header (shown in alerts).
    pub host: std::borrow::Cow<'a, str>,
    /// The API service: the inventory's (`ctx.service`), else the host without a default port.
    pub service: std::borrow::Cow<'a, str>,
    /// `ctx.endpoint`, or a local template (numeric, UUID and long hex segments as `{id}`).
    pub template: std::borrow::Cow<'a, str>,
    pub method: &'a str,
    /// State key of the operation: service, method and template.
    pub op_id: u64,
    /// The request carried credentials (Authorization, an API-key header, a session cookie or a token in
    /// the query).
    pub authenticated: bool,
    /// `bearer`, `basic`, other Authorization schemes lower-cased.
    pub auth_scheme: Option<std::borrow::Cow<'static, str>>,
    pub jwt: Option<Arc<Jwt>>,
    pub status: Option<u16>,
    /// Request path segments (the first 64) the sensitive-data analyzer flagged: written as `***`.
    pub flagged_path: u64,
}

impl Facts<'_> {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
    /// `METHOD template`.
    pub fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
    /// The actor as alerts show it.
    pub fn actor(&self) -> Actor {
        Actor { ip: self.src.map(|s| s.ip().to_string()), identity: self.identity.as_deref().map(str::to_owned) }
    }
}

/// How hits of a rule are grouped into one alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Same actor, same endpoint (the default).
    ActorEndpoint,
    /// Same actor, any endpoint (bursts, scanners).
    Actor,
    /// Same endpoint, any actor (error spikes, exposure of one operation).
    Endpoint,
    /// Same server host, any actor (version disclosure).
    Host,
    /// Same client address, any credential (rules keyed by address: failed-auth bursts, probes).
    Address,
}

/// One rule firing on the current transaction.
#[derive(Clone, Debug)]
pub struct Hit {
    pub rule: RuleId,
    pub scope: Scope,
    pub location: Option<&'static str>,
    pub field: Option<String>,
    pub evidence: Option<String>,
    /// Raise the rule's severity one step (e.g. the attack was answered 2xx).
    pub raise: bool,
    /// Replaces the rule's confidence.
    pub confidence: Option<f64>,
    /// `possible_success`, `rejected`, `redirected`, `no_response`.
    pub outcome: Option<&'static str>,
    /// Events this hit stands for (a burst rule counts the events in its window).
    pub events: u64,
    /// A posture finding (a property of the endpoint or host, not of a request): reported once per rule,
    /// scope and field for the life of the engine, with one example transaction. The value tells apart
    /// findings of the same field (e.g. a new software version); 0 when there is nothing to tell.
    pub once: Option<u64>,
}

impl Hit {
    pub fn new(rule: RuleId) -> Self {
        Hit {
            rule,
            scope: Scope::ActorEndpoint,
            location: None,
            field: None,
            evidence: None,
            raise: false,
            confidence: None,
            outcome: None,
            events: 1,
            once: None,
        }
    }
    pub fn scope(mut self, s: Scope) -> Self {
        self.scope = s;
        self
    }
    pub fn at(mut self, location: &'static str, field: impl Into<String>) -> Self {
        let f = field.into();
        self.location = Some(location);
        self.field = (!f.is_empty()).then_some(f);
        self
    }
    pub fn evidence(mut self, e: impl Into<String>) -> Self {
        self.evidence = Some(e.into());
        self
    }
    pub fn raise(mut self, yes: bool) -> Self {
        self.raise = yes;
        self
    }
    pub fn confidence(mut self, c: f64) -> Self {
        self.confidence = Some(c.clamp(0.0, 1.0));
        self
    }
    pub fn outcome(mut self, o: &'static str) -> Self {
        self.outcome = Some(o);
        self
    }
    pub fn events(mut self, n: u64) -> Self {
        self.events = n.max(1);
        self
    }
    /// Marks a posture finding (see [`Hit::once`]).
    pub fn once(mut self, discriminator: u64) -> Self {
        self.once = Some(discriminator);
        self
    }
}

/// What a detector gets to raise hits: the transaction's [`Facts`] and the run's rules.
pub struct Emitter<'a> {
    pub facts: &'a Facts<'a>,
    pub rules: &'a Rules,
    pub limits: &'a Settings,
    hits: Vec<Hit>,
}

impl<'a> Emitter<'a> {
    pub fn new(facts: &'a Facts<'a>, rules: &'a Rules, limits: &'a Settings) -> Self {
        Emitter { facts, rules, limits, hits: Vec::new() }
    }
    /// Whether `rule` runs (detectors skip work for disabled rules).
    pub fn on(&self, rule: RuleId) -> bool {
        self.rules.enabled(rule)
    }
    pub fn raise(&mut self, hit: Hit) {
        if self.rules.enabled(hit.rule) {
            self.hits.push(hit);
        }
    }
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }
    pub fn into_hits(self) -> Vec<Hit> {
        self.hits
    }
}

/// A reference to one transaction of an alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TxRef {
    pub uid: String,
    pub trans_depth: u64,
}

/// One line of `alerts.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// UUID v7.
    pub id: String,
    /// Packet time of the first hit, seconds.
    pub ts: f64,
    pub rule_id: String,
    pub r#type: String,
    pub title: String,
    pub severity: Severity,
    pub confidence: f64,
    pub owasp: String,
    pub mitre: String,
    pub actor: Actor,
    pub src_ip: Option<String>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<String>,
    pub dst_port: Option<u16>,
    pub method: String,
    pub host: String,
    pub path: String,
    /// The inventory's template (`ctx.endpoint`) or the local one.
    pub endpoint: String,
    pub location: Option<&'static str>,
    pub field: Option<String>,
    pub evidence: Option<String>,
    pub outcome: Option<&'static str>,
    pub status: Option<u16>,
    pub transactions: Vec<TxRef>,
    pub count: u64,
    pub first_seen: f64,
    pub last_seen: f64,
}

/// A credential decoded once: the JWT (bearer tokens) and the identity.
type Credential = (Option<Arc<Jwt>>, Option<Arc<str>>);

/// Transactions referenced by one alert.
const MAX_TX_REFS: usize = 10;

struct Pending {
    alert: Alert,
    /// Window end (packet time).
    due: f64,
}

/// Counters of the detect analyzer.
#[derive(Debug, Default)]
pub struct DetectStats {
    pub transactions: AtomicU64,
    pub hits: AtomicU64,
    pub alerts: AtomicU64,
    /// Alerts emitted unaggregated because `max_pending_alerts` was reached.
    pub pending_cap_hits: AtomicU64,
    /// Request values not scanned because of `max_values_per_transaction`.
    pub values_skipped: AtomicU64,
}

/// The detectors, the rules and the pending alerts of a run, shared by every worker's [`DetectAnalyzer`].
pub struct Engine {
    pub rules: Rules,
    pub settings: Settings,
    detectors: Vec<Box<dyn Detector>>,
    /// The drift detector (also in `detectors`), whose baselines are saved across runs.
    pub drift: Arc<drift::Drift>,
    /// Alerts held for aggregation, by rule and scope key.
    pending: state::Bounded<(RuleId, u64), Pending>,
    /// Posture findings already reported (see [`Hit::once`]).
    posture: state::Bounded<u64, bool>,
    pub stats: DetectStats,
    /// HMAC-SHA256 keyed with the per-run key (for `apikey:` and other hashed identities), its key blocks
    /// hashed once: each identity clones it. `None` cannot happen (HMAC takes any key length).
    mac: Option<hmac::Hmac<sha2::Sha256>>,
    live_workers: AtomicUsize,
    last_tick: AtomicU64,
    /// Decoded credentials by hash of the header value: (JWT, identity).
    creds: state::Bounded<u64, Credential>,
    /// Hashes state keys (actors, operations) and credential-cache keys; seeded per run.
    hasher: foldhash::fast::RandomState,
}

impl Engine {
    pub fn new(s: &Settings) -> Result<Self, SetupError> {
        let text;
        let (name, text) = match &s.attack_signatures {
            Some(p) => {
                text = std::fs::read_to_string(p)
                    .map_err(|e| SetupError(format!("[detect] attack_signatures = {}: {e}", p.display())))?;
                (p.display().to_string(), text.as_str())
            }
            None => ("signatures/attacks.toml (built in)".to_owned(), rules::DEFAULT_ATTACK_PACK),
        };
        if s.max_values_per_transaction == 0 || s.max_value_bytes < 64 || s.max_tracked_keys == 0 {
            return Err(SetupError(
                "[detect] max_values_per_transaction and max_tracked_keys must be > 0, max_value_bytes >= 64"
                    .to_owned(),
            ));
        }
        let pack = rules::load_attack_pack(&name, text)?;
        let (rules, _) = rules::build_rules(&pack, &s.rules)?;
        let key = {
            let a = uuid::Uuid::new_v4().into_bytes();
            let b = uuid::Uuid::new_v4().into_bytes();
            let mut k = [0u8; 32];
            for (d, x) in k.iter_mut().zip(a.iter().chain(b.iter())) {
                *d = *x;
            }
            k
        };
        let drift = Arc::new(drift::Drift::new(&rules, s));
        let detectors: Vec<Box<dyn Detector>> = vec![
            Box::new(attacks::Attacks::new(&pack, &rules, s)),
            Box::new(access::Access::new(&rules, s)),
            Box::new(abuse::Abuse::new(&rules, s)),
            Box::new(misconfig::Misconfig::new(&rules, s)),
            Box::new(drift.clone()),
        ];
        Ok(Engine {
            rules,
            settings: s.clone(),
            detectors,
            drift,
            pending: state::Bounded::new(s.max_pending_alerts.max(1), "[detect] max_pending_alerts"),
            stats: DetectStats::default(),
            mac: <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&key).ok(),
            live_workers: AtomicUsize::new(0),
            last_tick: AtomicU64::new(0),
            posture: state::Bounded::new(s.max_tracked_keys, "[detect] max_tracked_keys"),
            creds: state::Bounded::new(s.max_tracked_keys, "[detect] max_tracked_keys"),
            hasher: foldhash::fast::RandomState::default(),
        })
    }

    /// Runs every detector on `tx`; alerts due now (no aggregation, or the pending table full) go to `out`.
    pub fn process(&self, tx: &Transaction, ctx: &TxContext, out: &mut Vec<Record>) {
        self.process_scanned(tx, ctx, None, out);
    }

    /// The hits of every detector's [`Detector::scan`] of `tx`.
    pub fn scan(&self, tx: &Transaction) -> Vec<Hit> {
        let mut hits = Vec::new();
        for d in &self.detectors {
            d.scan(tx, &self.rules, &mut hits);
        }
        hits
    }

    /// `process`, with the hits `scan` found in `tx` when it ran already.
    pub fn process_scanned(&self, tx: &Transaction, ctx: &TxContext, scanned: Option<Vec<Hit>>, out: &mut Vec<Record>) {
        self.stats.transactions.fetch_add(1, Ordering::Relaxed);
        let facts = self.facts(tx, ctx);
        let mut em = Emitter::new(&facts, &self.rules, &self.settings);
        em.hits = scanned.unwrap_or_else(|| self.scan(tx));
        for d in &self.detectors {
            d.on_transaction(tx, ctx, &mut em);
        }
        for hit in em.into_hits() {
            self.add(tx, &facts, hit, out);
        }
    }

    /// Time-based work, at most once per second of packet time whichever worker calls.
    pub fn tick(&self, now: f64, out: &mut Vec<Record>) {
        let sec = now.max(0.0) as u64;
        let prev = self.last_tick.load(Ordering::Relaxed);
        if sec <= prev || self.last_tick.compare_exchange(prev, sec, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        for d in &self.detectors {
            d.on_tick(now);
        }
        let mut due = self.pending.drain_where(|p| p.due <= now);
        self.emit_all(&mut due, out);
    }

    /// Emits every pending alert.
    pub fn flush(&self, out: &mut Vec<Record>) {
        let mut all = self.pending.drain_where(|_| true);
        self.emit_all(&mut all, out);
    }

    /// New keys refused by full state tables, all detectors together.
    pub fn cap_hits(&self) -> u64 {
        self.detectors.iter().map(|d| d.cap_hits()).sum::<u64>()
            + self.pending.cap_hits()
            + self.creds.cap_hits()
            + self.posture.cap_hits()
    }

    fn emit_all(&self, alerts: &mut [Pending], out: &mut Vec<Record>) {
        alerts.sort_by(|a, b| a.alert.first_seen.total_cmp(&b.alert.first_seen));
        for p in alerts.iter() {
            self.emit(&p.alert, out);
        }
    }

    fn emit(&self, a: &Alert, out: &mut Vec<Record>) {
        self.stats.alerts.fetch_add(1, Ordering::Relaxed);
        if let Ok(json) = serde_json::to_vec(a) {
            out.push(Record { stream: "alerts", json });
        }
    }

    fn add(&self, tx: &Transaction, f: &Facts<'_>, hit: Hit, out: &mut Vec<Record>) {
        use std::hash::BuildHasher as _;
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        let Some(meta) = self.rules.get(hit.rule) else { return };
        let mut scope_key = match hit.scope {
            Scope::ActorEndpoint => self.hasher.hash_one((1u8, f.actor_id, f.op_id)),
            Scope::Actor => self.hasher.hash_one((2u8, f.actor_id)),
            Scope::Endpoint => self.hasher.hash_one((3u8, f.op_id)),
            Scope::Host => self.hasher.hash_one((4u8, &*f.service)),
            Scope::Address => self.hasher.hash_one((5u8, f.ip_id)),
        };
        let mut repeat = false;
        if let Some(d) = hit.once {
            scope_key = self.hasher.hash_one((scope_key, hit.field.as_deref(), d));
            // `None`: the table is full and the finding untracked; it is then aggregated like any other
            // hit, never lost.
            repeat = self.posture.update(scope_key, || false, |seen| std::mem::replace(seen, true)).unwrap_or(false);
        }
        if repeat {
            // Reported already: it still counts in its alert while that is pending, naming no more
            // transactions; once emitted, it is not reported again.
            self.pending.get_mut(&(hit.rule, scope_key), |p| {
                p.alert.count += 1;
                p.alert.last_seen = p.alert.last_seen.max(f.ts);
            });
            return;
        }
        let window = self.settings.dedup_window.as_secs_f64();
        let txref =
            TxRef { uid: tx.flow.as_ref().map(|fl| fl.uid.clone()).unwrap_or_default(), trans_depth: tx.trans_depth };
        let severity = if hit.raise { meta.severity.raised() } else { meta.severity };
        let confidence = hit.confidence.unwrap_or(meta.confidence);
        let make = || Alert {
            id: String::new(),
            ts: f.ts,
            rule_id: meta.id.clone(),
            r#type: meta.kind.clone(),
            title: meta.title.clone(),
            severity,
            confidence,
            owasp: meta.owasp.clone(),
            mitre: meta.mitre.clone(),
            actor: f.actor(),
            src_ip: f.src.map(|a| a.ip().to_string()),
            src_port: f.src.map(|a| a.port()),
            dst_ip: f.dst.map(|a| a.ip().to_string()),
            dst_port: f.dst.map(|a| a.port()),
            method: tx.method.clone(),
            host: f.host.to_string(),
            path: truncate_escaped(
                crate::http::secrets::redact_path_and(&tx.path, |k| k < 64 && f.flagged_path & (1 << k) != 0)
                    .as_bytes(),
                256,
            ),
            endpoint: f.template.to_string(),
            location: hit.location,
            field: hit.field.clone(),
            evidence: hit.evidence.clone(),
            outcome: hit.outcome,
            status: f.status,
            transactions: vec![txref.clone()],
            count: hit.events,
            first_seen: f.ts,
            last_seen: f.ts,
        };
        if window <= 0.0 {
            let mut a = make();
            a.id = new_id(f.ts);
            self.emit(&a, out);
            return;
        }
        let stored = self.pending.update(
            (hit.rule, scope_key),
            || Pending { alert: Alert { id: new_id(f.ts), ..make() }, due: f.ts + window },
            |p| {
                let a = &mut p.alert;
                if a.transactions.last() == Some(&txref) {
                    return;
                }
                if a.transactions.len() < MAX_TX_REFS && hit.once.is_none() {
                    a.transactions.push(txref.clone());
                }
                if hit.events > 1 {
                    // A counting rule: its latest hit describes the whole burst so far.
                    a.count = a.count.max(hit.events);
                    a.evidence = hit.evidence.clone();
                } else {
                    a.count += 1;
                }
                a.first_seen = a.first_seen.min(f.ts);
                a.last_seen = a.last_seen.max(f.ts);
                // The worst outcome seen is the one to report.
                if severity > a.severity {
                    a.severity = severity;
                    a.outcome = hit.outcome;
                    a.status = f.status;
                }
                a.confidence = a.confidence.max(confidence);
            },
        );
        if stored.is_none() {
            self.stats.pending_cap_hits.fetch_add(1, Ordering::Relaxed);
            let mut a = make();
            a.id = new_id(f.ts);
            self.emit(&a, out);
        }
    }

    /// The per-transaction facts: actor and identity, service, template, credentials, JWT.
    pub fn facts<'a>(&self, tx: &'a Transaction, ctx: &'a TxContext) -> Facts<'a> {
        use std::borrow::Cow;
        use std::hash::BuildHasher as _;
        let (src, dst) = tx.endpoints().map_or((None, None), |(c, s)| (Some(c), Some(s)));
        let host: Cow<'a, str> = match tx.host() {
            Some(h) if h.len() <= 128 && h.bytes().all(|b| b.is_ascii_graphic()) => Cow::Borrowed(h),
            Some(h) => Cow::Owned(truncate_escaped(h.as_bytes(), 128)),
            None => Cow::Owned(dst.map(|d| d.to_string()).unwrap_or_default()),
        };
        let service: Cow<'a, str> = match (ctx.service.as_deref(), &host) {
            (Some(s), _) => Cow::Borrowed(s),
            (None, Cow::Borrowed(h)) => Cow::Borrowed(without_default_port(h)),
            (None, Cow::Owned(h)) => Cow::Owned(without_default_port(h).to_owned()),
        };
        let template = match ctx.endpoint.as_deref() {
            Some(t) => Cow::Borrowed(t),
            None => local_template(&tx.path),
        };
        let op_id = self.hasher.hash_one((&*service, tx.method.as_str(), &*template));
        let mut identity: Option<Arc<str>> = None;
        let mut auth_scheme = None;
        let mut jwt = None;
        let mut authenticated = false;
        // One pass over the request headers (lookups by name are linear scans).
        let (mut authz, mut api_key, mut session) = (None, None, None);
        for (n, v) in tx.request_headers.iter() {
            if n.eq_ignore_ascii_case("authorization") {
                authz = authz.or(Some(v));
            } else if n.eq_ignore_ascii_case("cookie") {
                session = session.or_else(|| session_cookie(v));
            } else if API_KEY_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)) {
                api_key = api_key.or(Some(v));
            }
        }
        if let Some(a) = authz {
            authenticated = true;
            let (scheme, cred) = a.trim().split_once(' ').unwrap_or((a.trim(), ""));
            let cred = cred.trim();
            if scheme.eq_ignore_ascii_case("bearer") {
                // Clients repeat their token on every request: decode it once.
                let (j, id) = self.credential(0, cred, |cred| {
                    let j = parse_jwt(cred);
                    let sub = j.as_ref().and_then(|j| j.claims.get("sub")).and_then(|s| match s {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    });
                    let id = match sub {
                        Some(s) => format!("jwt:{}", truncate_escaped(s.as_bytes(), 64)),
                        // An opaque token (or a JWT without a subject) is its own identity.
                        None => format!("bearer:{}", self.keyed_hash(cred)),
                    };
                    (j, Some(id))
                });
                jwt = j;
                identity = id;
                auth_scheme = Some(Cow::Borrowed("bearer"));
            } else if scheme.eq_ignore_ascii_case("basic") {
                let (_, id) = self.credential(2, cred, |cred| {
                    let id = match basic_user(cred) {
                        Some(u) => format!("basic:{}", truncate_escaped(u.as_bytes(), 64)),
                        None => format!("basic:#{}", self.keyed_hash(cred)),
                    };
                    (None, Some(id))
                });
                identity = id;
                auth_scheme = Some(Cow::Borrowed("basic"));
            } else {
                auth_scheme = Some(Cow::Owned(truncate_escaped(scheme.to_ascii_lowercase().as_bytes(), 16)));
            }
        }
        if let Some(k) = api_key {
            authenticated = true;
            if identity.is_none() {
                let k = k.trim();
                identity = self.credential(1, k, |k| (None, Some(format!("apikey:{}", self.keyed_hash(k))))).1;
            }
        }
        if let Some(c) = session {
            authenticated = true;
            if identity.is_none() {
                identity = self.credential(3, c, |c| (None, Some(format!("cookie:{}", self.keyed_hash(c))))).1;
            }
        }
        if !authenticated {
            authenticated = tx.query_params.iter().any(|(k, _)| access::is_credential_param(k));
        }
        let ip = src.map(|s| s.ip());
        let ip_id = self.hasher.hash_one(ip);
        let actor_id = match &identity {
            Some(id) => self.hasher.hash_one((ip, 1u8, &**id)),
            None => self.hasher.hash_one((ip, 2u8, tx.user_agent().unwrap_or(""))),
        };
        Facts {
            ts: tx.ts,
            src,
            dst,
            identity,
            actor_id,
            ip_id,
            host,
            service,
            template,
            method: tx.method.as_str(),
            op_id,
            authenticated,
            auth_scheme,
            jwt,
            status: tx.status,
            flagged_path: flagged_segments(ctx),
        }
    }

    /// A credential's decoded form and identity, from the cache or computed by `make` and cached.
    fn credential(&self, tag: u8, cred: &str, make: impl FnOnce(&str) -> (Option<Jwt>, Option<String>)) -> Credential {
        use std::hash::BuildHasher as _;
        let key = self.hasher.hash_one((tag, cred));
        if let Some(c) = self.creds.get(&key, |c| c.clone()) {
            return c;
        }
        let (j, id) = make(cred);
        let c = (j.map(Arc::new), id.map(Arc::from));
        self.creds.update(key, || c.clone(), |_| ());
        c
    }

    /// First 12 hex digits of HMAC-SHA256(per-run key, value): stable within a run, useless outside it.
    pub fn keyed_hash(&self, v: &str) -> String {
        use hmac::Mac as _;
        let Some(mut m) = self.mac.clone() else { return String::new() };
        m.update(v.as_bytes());
        m.finalize().into_bytes().iter().take(6).map(|b| format!("{b:02x}")).collect()
    }
}

const API_KEY_HEADERS: &[&str] = &["x-api-key", "api-key", "x-auth-token", "x-access-token", "apikey"];

/// The first session-like cookie (`name=value`, trimmed) of a Cookie header.
fn session_cookie(c: &str) -> Option<&str> {
    c.split(';').map(str::trim).find(|p| {
        let name = p.split_once('=').map_or(*p, |(k, _)| k).trim();
        ["session", "sid", "token", "auth", "jwt", "jsessionid", "phpsessid", "connect.sid"]
            .iter()
            .any(|s| contains_ignore_ascii_case(name, s))
    })
}

use crate::http::contains_ignore_ascii_case;

/// `host:80` and `host:443` are `host`: one service whichever way clients write it.
fn without_default_port(host: &str) -> &str {
    host.strip_suffix(":80").or_else(|| host.strip_suffix(":443")).unwrap_or(host)
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Largest JWT decoded: a token is a header value, already capped by the HTTP parser; this bounds JSON work.
const MAX_JWT_BYTES: usize = 8192;

pub fn parse_jwt(token: &str) -> Option<Jwt> {
    if token.len() > MAX_JWT_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = serde_json::from_slice::<serde_json::Value>(&b64url(h)?).ok()?;
    let claims = serde_json::from_slice::<serde_json::Value>(&b64url(p)?).ok()?;
    let (serde_json::Value::Object(header), serde_json::Value::Object(claims)) = (header, claims) else {
        return None;
    };
    Some(Jwt {
        header,
        claims,
        signing_input: format!("{h}.{p}"),
        signature: if s.is_empty() { Vec::new() } else { b64url(s)? },
    })
}

fn basic_user(cred: &str) -> Option<String> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(cred).ok()?;
    let text = String::from_utf8_lossy(&raw);
    text.split_once(':').map(|(u, _)| u.to_owned())
}

/// A path template when the inventory gave none: numeric, UUID, long hex and prefixed-id segments become
/// `{id}`.
/// The request path segments (the first 64) the sensitive-data analyzer flagged, as bits.
fn flagged_segments(ctx: &TxContext) -> u64 {
    ctx.data_classes
        .iter()
        .filter(|d| d.location == "request.path")
        .filter_map(|d| crate::http::secrets::segment_index(&d.field))
        .filter(|k| *k < 64)
        .fold(0, |m, k| m | (1u64 << k))
}

pub fn local_template(path: &str) -> std::borrow::Cow<'_, str> {
    // Most paths have nothing to fold: no copy for them.
    let plain = |seg: &str| {
        !is_id_segment(seg)
            && seg.len() <= 64
            && seg.bytes().all(|b| b.is_ascii_graphic())
            && !crate::http::secrets::secret_like(seg)
    };
    if path.split('/').take(33).count() <= 32 && path.split('/').all(plain) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len().min(256));
    for (i, seg) in path.split('/').enumerate().take(32) {
        if i > 0 {
            out.push('/');
        }
        if is_id_segment(seg) || crate::http::secrets::secret_like(seg) {
            out.push_str("{id}");
        } else if seg.len() <= 64 && seg.bytes().all(|b| b.is_ascii_graphic()) {
            out.push_str(seg);
        } else {
            out.push_str(&truncate_escaped(seg.as_bytes(), 64));
        }
    }
    std::borrow::Cow::Owned(out)
}

pub fn is_id_segment(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let b = seg.as_bytes();
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
    {
        return true;
    }
    if b.len() >= 16 && hex(b) && b.iter().any(u8::is_ascii_digit) {
        return true;
    }
    // `pay_0123abcd...`, `po_...`: a short alphabetic prefix and a long alphanumeric tail with digits.
    if let Some((pre, tail)) = seg.split_once('_') {
        return pre.len() <= 8
            && pre.bytes().all(|c| c.is_ascii_alphabetic())
            && tail.len() >= 8
            && tail.bytes().all(|c| c.is_ascii_alphanumeric())
            && tail.bytes().any(|c| c.is_ascii_digit());
    }
    false
}

/// `b` cut to about `max` bytes (on a character boundary), control and invalid bytes escaped as `\xNN`,
/// with `…` when cut.
pub fn truncate_escaped(b: &[u8], max: usize) -> String {
    let cut = b.len() > max;
    let mut end = b.len().min(max);
    // Back off to a character boundary when the cut falls inside a UTF-8 sequence.
    while end > 0 && end < b.len() && b.get(end).is_some_and(|c| (c & 0xc0) == 0x80) {
        end -= 1;
    }
    let mut s = String::with_capacity(end + 8);
    for chunk in b.get(..end).unwrap_or(b).utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                s.push_str(&format!("\\x{:02x}", c as u32 & 0xff));
            } else {
                s.push(c);
            }
        }
        for x in chunk.invalid() {
            s.push_str(&format!("\\x{x:02x}"));
        }
    }
    if cut {
        s.push('…');
    }
    s
}

fn new_id(ts: f64) -> String {
    let secs = ts.max(0.0) as u64;
    let nanos = ((ts.max(0.0).fract()) * 1e9) as u32;
    let t = uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos);
    uuid::Uuid::new_v7(t).to_string()
}

/// The `detect` analyzer of one worker: a handle on the shared [`Engine`].
pub struct DetectAnalyzer {
    engine: Arc<Engine>,
    finished: bool,
    /// Scan hits prepared for the batch, in call order.
    prepared: crate::analyzer::Prepared<Vec<Hit>>,
}

impl DetectAnalyzer {
    pub fn new(engine: Arc<Engine>) -> Self {
        engine.live_workers.fetch_add(1, Ordering::AcqRel);
        DetectAnalyzer { engine, finished: false, prepared: Default::default() }
    }
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

impl Analyzer for DetectAnalyzer {
    fn name(&self) -> &'static str {
        "detect"
    }

    /// Windows, first sightings and aggregation all depend on what came before.
    fn ordered(&self) -> bool {
        true
    }

    fn prepare(&mut self, tx: &Arc<Transaction>, _ctx: &mut TxContext) {
        self.prepared.push(self.engine.scan(tx));
    }

    fn on_transaction(&mut self, tx: &Arc<Transaction>, ctx: &mut TxContext, out: &mut Vec<Record>) {
        let scanned = self.prepared.take();
        self.engine.process_scanned(tx, ctx, scanned, out);
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        self.engine.tick(now.as_secs_f64(), out);
    }

    /// The last worker to finish emits what is still pending, so that an alert split across workers is
    /// still one line.
    fn finish(&mut self, out: &mut Vec<Record>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if self.engine.live_workers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.engine.flush(out);
            let s = &self.engine.stats;
            tracing::info!(
                transactions = s.transactions.load(Ordering::Relaxed),
                hits = s.hits.load(Ordering::Relaxed),
                alerts = s.alerts.load(Ordering::Relaxed),
                pending_cap_hits = s.pending_cap_hits.load(Ordering::Relaxed),
                values_skipped = s.values_skipped.load(Ordering::Relaxed),
                state_cap_hits = self.engine.cap_hits(),
                "Detections finished."
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// A transaction from 10.0.0.1:40000 to 10.9.9.9:80 at `ts`.
    pub fn tx(method: &str, uri: &str, headers: &[(&str, &str)], body: &str, status: u16, ts: f64) -> Transaction {
        let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
        let query_params = query
            .map(|q| {
                q.split('&')
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        let d = |s: &str| input::percent_decode(&s.replace('+', " ")).into_owned();
                        (d(k), d(v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut h: Vec<(&str, &str)> = vec![("Host", "api.example")];
        h.extend_from_slice(headers);
        Transaction {
            has_request: true,
            has_response: status > 0,
            ts,
            method: method.into(),
            uri: uri.into(),
            path: path.into(),
            query: query.map(str::to_owned),
            query_params,
            request_headers: h.into_iter().collect(),
            request_body: body.as_bytes().to_vec(),
            status: (status > 0).then_some(status),
            flow: Some(Arc::new(crate::flow::FlowInfo {
                uid: "Ctest".into(),
                community_id: String::new(),
                client: "10.0.0.1:40000".parse().unwrap(),
                server: "10.9.9.9:80".parse().unwrap(),
                encap: Default::default(),
            })),
            ..Default::default()
        }
    }

    pub fn with_response(mut t: Transaction, headers: &[(&str, &str)], body: &str) -> Transaction {
        t.response_headers = headers.iter().copied().collect();
        t.response_body = body.as_bytes().to_vec();
        t.response_body_len = body.len() as u64;
        t
    }

    pub fn engine(settings: Settings) -> Engine {
        Engine::new(&Settings { dedup_window: Duration::ZERO, ..settings }).unwrap()
    }

    /// The rule ids raised by one transaction (no aggregation).
    pub fn fired(e: &Engine, t: &Transaction) -> Vec<serde_json::Value> {
        fired_ctx(e, t, &TxContext::default())
    }

    pub fn fired_ctx(e: &Engine, t: &Transaction, ctx: &TxContext) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        e.process(t, ctx, &mut out);
        out.iter().map(|r| serde_json::from_slice(&r.json).unwrap()).collect()
    }

    pub fn ids(alerts: &[serde_json::Value]) -> Vec<String> {
        alerts.iter().map(|a| a["rule_id"].as_str().unwrap().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn templates_replace_ids() {
        assert_eq!(local_template("/api/v1/users/1001"), "/api/v1/users/{id}");
        assert_eq!(
            local_template("/v2/users/3f2a9c1e-1b2c-4d5e-8f90-0123456789ab/addresses"),
            "/v2/users/{id}/addresses"
        );
        assert_eq!(local_template("/v1/payments/pay_0123456789abcdef"), "/v1/payments/{id}");
        assert_eq!(local_template("/v1/users/me"), "/v1/users/me");
        assert_eq!(local_template("/api/v2"), "/api/v2");
    }

    #[test]
    fn actor_identity_from_jwt_basic_and_api_key() {
        let e = engine(Settings::default());
        let ctx = TxContext::default();
        let identity = |headers: &[(&str, &str)]| {
            let t = tx("GET", "/", headers, "", 200, 1.0);
            let f = e.facts(&t, &ctx);
            (f.actor().identity, f.authenticated, f.actor_id)
        };
        let jwt = format!("Bearer {}", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2ln");
        assert_eq!(identity(&[("Authorization", &jwt)]).0.as_deref(), Some("jwt:42"));
        assert!(identity(&[("Authorization", &jwt)]).1);
        assert_eq!(identity(&[("Authorization", "Basic dXNlcjpwdw==")]).0.as_deref(), Some("basic:user"));
        // Credentials without a readable identity are identified by a keyed hash, never shown.
        for (h, v, prefix) in [
            ("X-API-Key", "pk_live_secret", "apikey:"),
            ("Authorization", "Bearer opaque-secret-token", "bearer:"),
            ("Authorization", "Basic !!secret!!", "basic:#"),
            ("Cookie", "_ga=1; session=secret", "cookie:"),
        ] {
            let (id, authed, _) = identity(&[(h, v)]);
            let id = id.unwrap();
            assert!(id.starts_with(prefix) && !id.contains("secret") && id.len() == prefix.len() + 12, "{id}");
            assert!(authed);
            assert_eq!(identity(&[(h, v)]).0.unwrap(), id, "stable within a run");
        }
        let (id, authed, a) = identity(&[]);
        assert!(!authed && id.is_none());
        let t = tx("GET", "/", &[], "", 200, 1.0);
        assert_eq!(e.facts(&t, &ctx).actor().ip.as_deref(), Some("10.0.0.1"));
        // Two tokens from one address are two actors; without credentials, two User-Agents are two.
        assert_ne!(identity(&[("Authorization", "Bearer a")]).2, identity(&[("Authorization", "Bearer b")]).2);
        assert_ne!(identity(&[("User-Agent", "curl/8")]).2, a);
        assert_eq!(identity(&[("User-Agent", "curl/8")]).2, identity(&[("User-Agent", "curl/8")]).2);
    }

    #[test]
    fn service_drops_the_default_port_and_templates_borrow_when_plain() {
        let e = engine(Settings::default());
        let ctx = TxContext::default();
        let mut a = tx("GET", "/v1/items", &[], "", 200, 1.0);
        a.request_headers = [("Host", "api.example:80")].into_iter().collect();
        let mut b = tx("GET", "/v1/items", &[], "", 200, 1.0);
        b.request_headers = [("Host", "api.example")].into_iter().collect();
        let (fa, fb) = (e.facts(&a, &ctx), e.facts(&b, &ctx));
        assert_eq!((&*fa.service, fa.op_id), (&*fb.service, fb.op_id));
        assert!(matches!(local_template("/v1/items"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn hits_aggregate_per_rule_actor_endpoint_until_the_window_ends() {
        let e = Engine::new(&Settings::default()).unwrap();
        let mut out = Vec::new();
        for i in 0..5u32 {
            let mut t = tx("GET", &format!("/api/items?q=1%27%20OR%201=1--&n={i}"), &[], "", 400, 100.0 + f64::from(i));
            t.trans_depth = u64::from(i) + 1;
            e.process(&t, &TxContext::default(), &mut out);
        }
        assert!(out.is_empty(), "held until the window ends");
        e.tick(200.0, &mut out);
        assert!(out.is_empty());
        e.tick(401.0, &mut out);
        let a: Vec<serde_json::Value> = out.iter().map(|r| serde_json::from_slice(&r.json).unwrap()).collect();
        assert_eq!(ids(&a), ["sqli"]);
        assert_eq!(a[0]["count"], 5);
        assert_eq!((a[0]["first_seen"].as_f64(), a[0]["last_seen"].as_f64()), (Some(100.0), Some(104.0)));
        assert_eq!(a[0]["transactions"].as_array().unwrap().len(), 5);
        assert_eq!(a[0]["id"].as_str().unwrap().len(), 36);
        assert_eq!(a[0]["id"].as_str().unwrap().as_bytes()[14], b'7');
    }

    /// The bench capture's traffic shape without the capture (CI has none): one load-generator address,
    /// 128 bearer tokens, random object ids (some missing), a few per-request random credentials and
    /// credential-less calls, public login and health endpoints. With the shipped settings, at most 0.1%
    /// of these benign transactions may be referenced by an alert.
    #[test]
    fn one_address_many_clients_benign_rate() {
        let e = Engine::new(&Settings::default()).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut r = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        let uas = ["curl/8.5.0", "okhttp/4.12.0", "python-requests/2.31.0", "ShopApp/4.12.1"];
        let (mut out, n) = (Vec::new(), 8000u32);
        for i in 0..n {
            let a = r(100);
            let cred = match a {
                0..90 => Some(("Authorization", format!("Bearer tok-{}", r(128)))),
                90..94 => Some(("Authorization", format!("Basic {:x}", r(u64::MAX)))),
                94..96 => Some(("X-API-Key", format!("sk_{:x}", r(u64::MAX)))),
                _ => None,
            };
            let (method, path, public) = match r(10) {
                0..4 => ("GET", format!("/api/v1/users/{}", 1 + r(2100)), false),
                4..6 => ("GET", format!("/api/v2/products/{}", r(520)), false),
                6 => ("PUT", format!("/api/v1/users/{}", 1 + r(2000)), false),
                7 => ("GET", "/api/v2/products".to_owned(), false),
                8 => ("POST", "/api/v1/auth/login".to_owned(), true),
                _ => ("GET", "/health".to_owned(), true),
            };
            let missing = path
                .rsplit('/')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|id| id > 2000 || (path.contains("products") && id > 500));
            let status = match (&cred, public, missing) {
                (None, false, _) => 401,
                (_, _, true) => 404,
                _ => 200,
            };
            let mut headers = vec![("User-Agent", uas[r(4) as usize].to_owned())];
            headers.extend(cred);
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut t = tx(method, &path, &h, "", status, 1000.0 + f64::from(i) * 0.0002);
            t.trans_depth = u64::from(i) + 1;
            e.process(&t, &TxContext::default(), &mut out);
        }
        e.flush(&mut out);
        let mut referenced = std::collections::BTreeSet::new();
        let mut rules = BTreeMap::new();
        for rec in &out {
            let a: serde_json::Value = serde_json::from_slice(&rec.json).unwrap();
            for t in a["transactions"].as_array().unwrap() {
                referenced.insert(t["trans_depth"].as_u64().unwrap());
            }
            *rules.entry(a["rule_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        assert!(referenced.len() as u32 * 1000 <= n, "{} of {n} alerted: {rules:?}", referenced.len());
    }

    #[test]
    fn last_worker_flushes_at_finish() {
        let e = Arc::new(Engine::new(&Settings::default()).unwrap());
        let mut a = DetectAnalyzer::new(e.clone());
        let mut b = DetectAnalyzer::new(e.clone());
        let mut out = Vec::new();
        e.process(
            &tx("GET", "/x?a=%3Cscript%3Ealert(1)%3C/script%3E", &[], "", 200, 5.0),
            &TxContext::default(),
            &mut out,
        );
        a.finish(&mut out);
        assert!(out.is_empty());
        b.finish(&mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn full_pending_table_emits_at_once() {
        let e = Engine::new(&Settings { max_pending_alerts: 1, ..Settings::default() }).unwrap();
        let mut out = Vec::new();
        for i in 0..200 {
            e.process(
                &tx("GET", &format!("/p{i}?a=..%2F..%2Fetc%2Fpasswd"), &[], "", 404, 1.0),
                &TxContext::default(),
                &mut out,
            );
        }
        assert!(!out.is_empty());
        assert!(e.stats.pending_cap_hits.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn evidence_is_cut_and_escaped() {
        assert_eq!(truncate_escaped(b"ab\x00c\xff", 64), "ab\\x00c\\xff");
        assert_eq!(truncate_escaped("ééé".as_bytes(), 3), "é…");
    }

    #[test]
    fn settings_reject_zero_caps() {
        assert!(Engine::new(&Settings { max_values_per_transaction: 0, ..Settings::default() }).is_err());
        let s = Settings { attack_signatures: Some("/nonexistent/attacks.toml".into()), ..Settings::default() };
        assert!(Engine::new(&s).err().unwrap().0.contains("/nonexistent/attacks.toml"));
    }
}
