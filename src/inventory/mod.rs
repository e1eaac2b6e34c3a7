//! API inventory: services, operations with path templates, parameters, JSON schemas, auth and
//! status codes; OpenAPI 3.1 export; a SQLite store that keeps what was learned across restarts.
//!
//! Contract:
//! - input: every transaction with a request; output: `ctx.service` (host, lower case, default port dropped,
//!   or the server `ip:port` when the Host header is missing or unusable; `vni-N/` in front inside a VXLAN or
//!   GENEVE tenant) and `ctx.endpoint` (the path template) for the analyzers after it; records on stream
//!   `inventory` when a service or an operation is first seen; `DIR/openapi/<service>.json` and
//!   `DIR/inventory.json` at the end of the run; `<state_dir>/inventory.sqlite` when a state directory is set.
//! - one model shared by all workers behind one mutex; bodies are parsed before the lock is taken.
//! - caps (all in [`Settings`]): services, nodes and operations per service, literals per path position,
//!   segments per path, parameters, content types, status codes and data classes per operation, schema
//!   depth, width and array items. Every cap hit is counted (`inventory.json` → `stats`) and logged once.

mod evidence;
mod op;
mod openapi;
mod refile;
mod schema;
mod segment;
mod sketch;
mod store;
mod template;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use op::{BodySample, Observation, OpCaps, OpCounters, Operation};
pub use schema::{Schema, SchemaCaps};
pub use segment::{Shape, param_name, secret_like, shape};
pub use template::{Tree, TreeCaps, TreeCounters, check_template};

use crate::analyzer::{AnalysisSettings, Analyzer, Record, Registry, SetupError, TxContext};
use crate::capture::Timestamp;
use crate::decode::TunnelKind;
use crate::http::Transaction;

/// `[inventory]` in the config file. Every key optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Off: no inventory, no spec diff, and the later analyzers see no endpoint template (for measuring the
    /// pipeline without it, or a sensor that only raises alerts).
    pub enabled: bool,
    /// Services (hosts) kept; transactions of further services are not learned (counted).
    pub max_services: usize,
    /// Path-tree nodes per service.
    pub max_nodes_per_service: usize,
    /// Operations (method + template) per service.
    pub max_operations_per_service: usize,
    /// Distinct literal segments at one path position before its words become a parameter (counted).
    pub max_literal_children: usize,
    /// Distinct, mostly rare (seen at most twice) words at one position that make it a parameter.
    pub param_min_distinct: usize,
    /// A literal keeps its own template beside a parameter when seen at least this often ...
    pub stable_min_hits: u64,
    /// ... and in at least this share (percent) of its position's transactions.
    pub stable_share_percent: u64,
    /// Paths with more segments are not learned (counted).
    pub max_segments: usize,
    /// Query, header and cookie parameters kept per operation, each.
    pub max_params: usize,
    pub max_content_types: usize,
    pub max_status_codes: usize,
    pub max_data_classes: usize,
    /// Bodies longer than this are not parsed into schemas.
    pub max_body_bytes: usize,
    /// Every body of an operation (requests) and of each of its status codes (responses) is parsed into
    /// the schema until this many were seen, then one in `body_sample_rate` (1 = all).
    pub body_samples_full: u64,
    pub body_sample_rate: u64,
    pub schema_max_depth: usize,
    pub schema_max_properties: usize,
    /// Elements of each array sampled for its item schema.
    pub schema_max_array_items: usize,
    /// A string field with at most this many distinct values (each seen 3 times or more) is an enum.
    pub enum_max_values: usize,
    /// Samples needed before a field can be an enum.
    pub enum_min_samples: u64,
    /// Saving to `<state_dir>/inventory.sqlite` during a live run, in packet time.
    #[serde(with = "crate::config::duration")]
    pub save_interval: Duration,
    /// Templates that take precedence over learning, in every service: `"/users/{userId}"`.
    pub pinned_templates: Vec<String>,
    /// Templates pinned in one service only: `{ "api.example.com" = ["/v1/items/{sku}"] }`.
    pub pinned_templates_by_service: BTreeMap<String, Vec<String>>,
    /// The owner's API specs (OpenAPI 3.0/3.1 or Swagger 2.0, JSON or YAML) to compare with what is seen;
    /// `--spec FILE` adds to it. Results go to `DIR/spec-diff.json`; the specs' templates are pinned.
    pub specs: Vec<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        let t = TreeCaps::default();
        let o = OpCaps::default();
        Settings {
            enabled: true,
            max_services: 256,
            max_nodes_per_service: t.max_nodes,
            max_operations_per_service: t.max_operations,
            max_literal_children: t.max_literal_children,
            param_min_distinct: t.param_min_distinct,
            stable_min_hits: t.stable_min_hits,
            stable_share_percent: t.stable_share_percent,
            max_segments: t.max_segments,
            max_params: o.max_params,
            max_content_types: o.max_content_types,
            max_status_codes: o.max_status_codes,
            max_data_classes: o.max_data_classes,
            max_body_bytes: o.max_body_bytes,
            body_samples_full: o.body_samples_full,
            body_sample_rate: o.body_sample_rate,
            schema_max_depth: o.schema.max_depth,
            schema_max_properties: o.schema.max_properties,
            schema_max_array_items: o.schema.max_array_items,
            enum_max_values: o.schema.enum_max_values,
            enum_min_samples: o.schema.enum_min_samples,
            save_interval: Duration::from_secs(60),
            pinned_templates: Vec::new(),
            pinned_templates_by_service: BTreeMap::new(),
            specs: Vec::new(),
        }
    }
}

impl Settings {
    fn tree_caps(&self) -> TreeCaps {
        TreeCaps {
            max_nodes: self.max_nodes_per_service.max(1),
            max_literal_children: self.max_literal_children.max(1),
            param_min_distinct: self.param_min_distinct.max(2),
            stable_min_hits: self.stable_min_hits,
            stable_share_percent: self.stable_share_percent,
            max_segments: self.max_segments,
            max_operations: self.max_operations_per_service,
        }
    }
    fn op_caps(&self) -> OpCaps {
        OpCaps {
            schema: SchemaCaps {
                max_depth: self.schema_max_depth,
                max_properties: self.schema_max_properties,
                max_array_items: self.schema_max_array_items,
                enum_max_values: self.enum_max_values,
                enum_min_samples: self.enum_min_samples,
            },
            max_params: self.max_params,
            max_content_types: self.max_content_types,
            max_status_codes: self.max_status_codes,
            max_data_classes: self.max_data_classes,
            max_body_bytes: self.max_body_bytes,
            body_samples_full: self.body_samples_full,
            body_sample_rate: self.body_sample_rate.max(1),
        }
    }
}

/// One API service.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Service {
    pub transactions: u64,
    pub first_seen: f64,
    pub last_seen: f64,
    pub tree: Tree,
    /// Requests the server refused (404, 405, 501) or left unanswered that match no operation, by
    /// `METHOD status /shape` (each segment replaced by its kind: no value is kept), at most
    /// [`MAX_PROBE_KEYS`] keys, the rest under `other`.
    #[serde(default)]
    pub probes: BTreeMap<String, u64>,
}

/// Distinct probe shapes kept per service.
pub const MAX_PROBE_KEYS: usize = 64;

/// `METHOD status /shape` of a refused request: the path as the kinds of its segments (`/word/integer/`),
/// so a probe is counted without keeping anything it carried.
fn probe_key(method: &str, status: Option<u16>, path: &str) -> String {
    let mut k = format!("{method} {} ", status.map_or_else(|| "none".to_owned(), |s| s.to_string()));
    let mut any = false;
    for seg in template::wire_segments(path).take(16) {
        any = true;
        k.push('/');
        if !seg.is_empty() {
            k.push_str(match shape(seg) {
                Shape::Integer => "integer",
                Shape::Uuid => "uuid",
                Shape::Hex => "hex",
                Shape::Date => "date",
                Shape::Email => "email",
                Shape::Token | Shape::Long => "token",
                Shape::Word => "word",
            });
        }
    }
    if !any {
        k.push('/');
    }
    k
}

/// Counters of the inventory as a whole (`inventory.json` → `stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryStats {
    /// Transactions with a request seen.
    pub transactions: u64,
    /// Of those, recorded in an operation.
    pub recorded: u64,
    /// Transactions of services beyond `max_services` (not learned).
    pub services_capped: u64,
    pub templating: TreeCounters,
    /// Store loads and saves that failed (logged).
    pub store_errors: u64,
    /// Bodies counted (content type, presence) but not parsed into the schema: their location already had
    /// `body_samples_full` samples and this one was not the one-in-`body_sample_rate` (by design, not a loss).
    #[serde(default)]
    pub bodies_sampled_out: u64,
    /// Parsed bodies whose template was merged into a broader one before they could be added (rare).
    #[serde(default)]
    pub bodies_lost_to_remerge: u64,
}

/// Services by key.
pub type Services = HashMap<String, Service, foldhash::fast::RandomState>;

#[derive(Default)]
struct Model {
    /// foldhash, seeded per process: looked up several times per transaction (SipHash was a visible cost).
    services: Services,
    stats: InventoryStats,
    /// Pins for every service, existing and future.
    pins: Vec<String>,
    pins_by_service: BTreeMap<String, Vec<String>>,
}

static LITERAL_CAP_LOGGED: AtomicBool = AtomicBool::new(false);
static SERVICE_CAP_LOGGED: AtomicBool = AtomicBool::new(false);

fn log_once(flag: &AtomicBool, f: impl FnOnce()) {
    if !flag.swap(true, Ordering::Relaxed) {
        f();
    }
}

/// The shared inventory: one per run, cloned into every worker's analyzer.
#[derive(Clone)]
pub struct Inventory {
    model: Arc<Mutex<Model>>,
    tree_caps: TreeCaps,
    op_caps: OpCaps,
    max_services: usize,
    save_interval_ns: u64,
    last_save_ns: Arc<AtomicU64>,
    store: Option<Arc<Mutex<store::Store>>>,
    /// Live runs: the output directory the OpenAPI documents and inventory.json are rewritten in every
    /// `save_interval`, so an operator sees the inventory without stopping the sensor.
    export_dir: Option<std::path::PathBuf>,
    /// One worker exports at a time; the others skip.
    exporting: Arc<std::sync::atomic::AtomicBool>,
}

/// The key of a transaction's service (see the module doc).
pub fn service_key(tx: &Transaction) -> String {
    let mut key = String::new();
    if let Some(f) = &tx.flow
        && let Some(t) = f
            .encap
            .tunnels()
            .iter()
            .rev()
            .find(|t| matches!(t.kind, TunnelKind::VXLAN | TunnelKind::VXLAN_GPE | TunnelKind::GENEVE))
    {
        key.push_str(&format!("vni-{}/", t.id));
    }
    match tx.host().and_then(|h| push_host_key(&mut key, h)) {
        Some(()) => {}
        None => match tx.endpoints() {
            Some((_, s)) => key.push_str(&s.to_string()),
            None => key.push_str("unknown"),
        },
    }
    key
}

/// Appends the service key of a `Host` value (lower case, no default port, no trailing dot); `None` when
/// it is no host name.
fn push_host_key(key: &mut String, host: &str) -> Option<()> {
    let h = host.trim();
    let ok = !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'[' | b']'));
    if !ok {
        return None;
    }
    let h = h.strip_suffix(":80").or_else(|| h.strip_suffix(":443")).unwrap_or(h);
    let h = h.trim_end_matches('.');
    // Lower-cased while copied: the allowed bytes are ASCII, and the port and dot suffixes have no letters.
    key.reserve(h.len());
    key.extend(h.chars().map(|c| c.to_ascii_lowercase()));
    Some(())
}

/// Whether the server served a request: an answer other than 404 (no such path), 405 (no such method
/// there) or 501 (no such method at all). A refused or unanswered request matches the operations that exist
/// but never creates one: what the server refused is not an API. A 400 or 422 still does (the route exists
/// and validated the input).
pub fn serves(status: Option<u16>) -> bool {
    status.is_some_and(|s| !matches!(s, 404 | 405 | 501))
}

/// The data classes the chain found in the transaction (the sensitive-data scan runs before the inventory's
/// turn, see `Analyzer::prepare`), filed with it in its operation.
fn file_data_classes(op: &mut Operation, ctx: &TxContext, caps: &OpCaps) {
    for d in &ctx.data_classes {
        op.add_data_class(d.location, &d.field, &d.class, &d.category, 1, caps);
    }
}

/// An HTTP method as a short upper-case token (anything else is `OTHER`).
fn method_key(m: &str) -> &str {
    if !m.is_empty() && m.len() <= 16 && m.bytes().all(|c| c.is_ascii_uppercase() || c == b'-' || c == b'_') {
        m
    } else {
        "OTHER"
    }
}

fn record(stream: &'static str, v: &serde_json::Value) -> Record {
    Record { stream, json: serde_json::to_vec(v).unwrap_or_default() }
}

impl Inventory {
    /// An empty inventory; the pinned templates of `s` are checked (the error names the entry).
    pub fn new(s: &Settings) -> Result<Inventory, SetupError> {
        for (i, t) in s.pinned_templates.iter().enumerate() {
            check_template(t)
                .map_err(|e| SetupError(format!("[inventory] pinned_templates: entry {}: {}", i + 1, e.0)))?;
        }
        for (svc, ts) in &s.pinned_templates_by_service {
            for (i, t) in ts.iter().enumerate() {
                check_template(t).map_err(|e| {
                    SetupError(format!("[inventory] pinned_templates_by_service.\"{svc}\": entry {}: {}", i + 1, e.0))
                })?;
            }
        }
        let model = Model {
            pins: s.pinned_templates.clone(),
            pins_by_service: s.pinned_templates_by_service.clone(),
            ..Model::default()
        };
        Ok(Inventory {
            model: Arc::new(Mutex::new(model)),
            tree_caps: s.tree_caps(),
            op_caps: s.op_caps(),
            max_services: s.max_services,
            save_interval_ns: u64::try_from(s.save_interval.as_nanos()).unwrap_or(u64::MAX).max(1),
            last_save_ns: Arc::new(AtomicU64::new(0)),
            export_dir: None,
            exporting: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            store: None,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        // A worker that panicked mid-update leaves counts, not broken invariants: keep going.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pins `template` in `service`, or in every service (existing and future) when `None`. A spec's
    /// templates are pinned this way so they take precedence over learning.
    pub fn pin(&self, service: Option<&str>, template: &str) -> Result<(), String> {
        check_template(template).map_err(|e| e.0)?;
        let op_caps = self.op_caps;
        let mut m = self.lock();
        match service {
            Some(s) => {
                m.pins_by_service.entry(s.to_owned()).or_default().push(template.to_owned());
                if let Some(svc) = m.services.get_mut(s) {
                    svc.tree.pin(template, &op_caps).map_err(|e| e.0)?;
                }
            }
            None => {
                m.pins.push(template.to_owned());
                for svc in m.services.values_mut() {
                    svc.tree.pin(template, &op_caps).map_err(|e| e.0)?;
                }
            }
        }
        Ok(())
    }

    fn new_service(m: &Model, key: &str, op_caps: &OpCaps) -> Service {
        let mut svc = Service::default();
        for t in m.pins.iter().chain(m.pins_by_service.get(key).into_iter().flatten()) {
            // Checked when configured.
            let _ = svc.tree.pin(t, op_caps);
        }
        svc
    }

    /// Learns one transaction; sets `ctx.service` and `ctx.endpoint`; pushes `new_service` /
    /// `new_operation` records.
    pub fn learn(&self, tx: &Transaction, ctx: &mut TxContext, out: &mut Vec<Record>) {
        self.learn_observed(tx, None, ctx, out);
    }

    /// What `learn` records of a transaction, parsed and typed: done before the inventory's turn (and its
    /// lock), on any worker.
    pub fn observe(&self, tx: &Transaction) -> Option<Observation> {
        tx.has_request.then(|| Observation::from_tx(tx, &self.op_caps))
    }

    /// `learn`, with the observation `observe` made of `tx` when there is one.
    pub fn learn_observed(
        &self,
        tx: &Transaction,
        obs: Option<Observation>,
        ctx: &mut TxContext,
        out: &mut Vec<Record>,
    ) {
        if !tx.has_request {
            return;
        }
        let key = service_key(tx);
        let obs = obs.unwrap_or_else(|| Observation::from_tx(tx, &self.op_caps));
        let learn = serves(tx.status);
        let method = method_key(&tx.method);
        let (tree_caps, op_caps) = (self.tree_caps, self.op_caps);
        let (has_req, has_resp) = (obs.request_body.is_some(), obs.response_body.is_some());
        let status = obs.status;
        let mut new_service = false;
        let mut new_op = false;
        let mut want = (false, false);
        // What the path tree may weigh, gathered before the lock (header lookups are scans).
        let mut ex = evidence::Exchange::new(learn, method, status);
        ex.request_body = tx.decoded_request_body();
        ex.response_body = tx.decoded_response_body();
        ex.response_type = tx.response_headers.get("content-type").unwrap_or("");
        ex.location = tx.response_headers.get("location");
        let endpoint = {
            let mut guard = self.lock();
            let m = &mut *guard;
            m.stats.transactions += 1;
            if !m.services.contains_key(&key) {
                if m.services.len() >= self.max_services {
                    m.stats.services_capped += 1;
                    log_once(&SERVICE_CAP_LOGGED, || {
                        tracing::warn!(
                            max = self.max_services,
                            "Inventory service cap reached; further services are not learned (raise [inventory] max_services)."
                        )
                    });
                    ctx.service = Some(key);
                    return;
                }
                if !learn {
                    ctx.service = Some(key);
                    m.stats.templating.not_found_unmatched += 1;
                    return;
                }
                let svc = Self::new_service(m, &key, &op_caps);
                m.services.insert(key.clone(), svc);
                new_service = true;
            }
            let Model { services, stats, .. } = m;
            let Some(svc) = services.get_mut(&key) else { return };
            if svc.transactions == 0 || tx.ts < svc.first_seen {
                svc.first_seen = tx.ts;
            }
            svc.last_seen = svc.last_seen.max(tx.ts);
            svc.transactions += 1;
            let ops_now = svc.tree.operations;
            let recorded_before = stats.recorded;
            let on_cap = || {
                log_once(&LITERAL_CAP_LOGGED, || {
                    tracing::warn!(
                        max = tree_caps.max_literal_children,
                        "A path position reached the literal cap and now takes parameters (raise [inventory] max_literal_children)."
                    )
                })
            };
            let mut added = 0;
            let found = svc.tree.walk(&tx.path, &ex, &tree_caps, &op_caps, &mut stats.templating, &on_cap);
            let endpoint = match found {
                Some(f) => {
                    let node = f.node;
                    let n_ops = node.ops.len();
                    match node.ops.iter_mut().find(|(m, _)| &**m == method) {
                        Some((_, op)) => {
                            op.observe(obs, &op_caps);
                            file_data_classes(op, ctx, &op_caps);
                            want = op.wants_bodies(has_req, status, has_resp, &op_caps);
                            stats.recorded += 1;
                        }
                        None if learn && ops_now < tree_caps.max_operations && n_ops < 16 => {
                            let mut op = Operation::default();
                            op.observe(obs, &op_caps);
                            file_data_classes(&mut op, ctx, &op_caps);
                            want = op.wants_bodies(has_req, status, has_resp, &op_caps);
                            node.ops.push((method.into(), op));
                            stats.recorded += 1;
                            added = 1;
                            new_op = true;
                        }
                        None if learn => stats.templating.operation_cap_hits += 1,
                        None => {}
                    }
                    Some(f.template)
                }
                None => None,
            };
            svc.tree.operations += added;
            if !learn && stats.recorded == recorded_before {
                let n = svc.probes.len();
                let pk = probe_key(method, status, &tx.path);
                match svc.probes.get_mut(&pk) {
                    Some(c) => *c += 1,
                    None if n < MAX_PROBE_KEYS => {
                        svc.probes.insert(pk, 1);
                    }
                    None => *svc.probes.entry("other".to_owned()).or_default() += 1,
                }
            }
            // Only bodies of a transaction recorded in an operation were eligible for sampling.
            if stats.recorded > recorded_before {
                stats.bodies_sampled_out += u64::from(has_req && !want.0) + u64::from(has_resp && !want.1);
            }
            endpoint
        };
        // Bodies are parsed outside the lock, then merged into the operation found again by its template.
        if (want.0 || want.1)
            && let Some(ep) = &endpoint
        {
            let sample = BodySample::from_tx(tx, want, &op_caps);
            let mut m = self.lock();
            let found = m
                .services
                .get_mut(&key)
                .and_then(|s| s.tree.find_mut(ep))
                .and_then(|node| node.ops.iter_mut().find(|(m, _)| &**m == method));
            match found {
                Some((_, op)) => op.merge_bodies(sample, &op_caps),
                // The template was merged into a broader one between the two locks: this sample is lost.
                None => m.stats.bodies_lost_to_remerge += 1,
            }
        }
        if new_service {
            out.push(record("inventory", &serde_json::json!({"ts": tx.ts, "kind": "new_service", "service": key})));
        }
        if new_op && let Some(e) = &endpoint {
            out.push(record(
                "inventory",
                &serde_json::json!({"ts": tx.ts, "kind": "new_operation", "service": key, "method": method, "endpoint": e}),
            ));
        }
        ctx.service = Some(key);
        ctx.endpoint = endpoint;
    }

    /// The template that what was filed under `endpoint` on the service a record names by `host` (its Host,
    /// or the server address) has now; `None` when no service or node matches, or when tunnel tenants sharing
    /// that host disagree.
    pub fn final_template(&self, host: &str, endpoint: &str) -> Option<String> {
        let mut want = String::new();
        if push_host_key(&mut want, host).is_none() {
            want = host.to_owned();
        }
        let m = self.lock();
        let mut found: Option<String> = None;
        for (k, s) in &m.services {
            let bare = k.split_once('/').filter(|(p, _)| p.starts_with("vni-")).map_or(k.as_str(), |(_, r)| r);
            if bare != want {
                continue;
            }
            let t = s.tree.current_template(endpoint)?;
            if found.as_ref().is_some_and(|f| *f != t) {
                return None;
            }
            found = Some(t);
        }
        found
    }

    /// (service, method, template) of every operation the server answered with something else than 404.
    pub fn operations(&self) -> Vec<(String, String, String)> {
        let m = self.lock();
        let mut out = Vec::new();
        for (k, s) in &m.services {
            for v in s.tree.views(&self.tree_caps) {
                for (meth, op) in &v.node.ops {
                    if op.answered() {
                        out.push((k.clone(), meth.to_string(), v.template.clone()));
                    }
                }
            }
        }
        out.sort();
        out
    }

    pub fn stats(&self) -> InventoryStats {
        self.lock().stats
    }

    /// The OpenAPI 3.1 document of every service, by service key.
    pub fn openapi(&self) -> BTreeMap<String, serde_json::Value> {
        let m = self.lock();
        m.services.iter().map(|(k, s)| (k.clone(), openapi::document(k, s, &self.tree_caps, &self.op_caps))).collect()
    }

    /// `inventory.json`.
    pub fn inventory_json(&self) -> serde_json::Value {
        let m = self.lock();
        openapi::inventory(&m.services, &m.stats, &self.tree_caps)
    }

    /// Writes `DIR/openapi/<service>.json` and `DIR/inventory.json`, and saves the store.
    /// Writes the inventory's files and saves the store; at the end of a replay (no live export), also
    /// files the findings and alerts under their operations' final templates (see [`refile`]).
    pub fn conclude(&self, dir: &Path) -> std::io::Result<()> {
        self.export(dir)?;
        self.save();
        if self.export_dir.is_none() {
            let n = refile::refile(self, dir)?;
            if n > 0 {
                tracing::info!(
                    records = n,
                    "Findings and alerts raised under a template that changed later: filed under the final one."
                );
            }
        }
        Ok(())
    }

    /// Opens (or creates) the store and merges what it holds into this inventory.
    pub fn attach_store(&mut self, path: &Path) -> Result<(), SetupError> {
        let st = store::Store::open(path)
            .map_err(|e| SetupError(format!("{}: cannot open the inventory store: {e}", path.display())))?;
        let loaded =
            st.load().map_err(|e| SetupError(format!("{}: cannot read the inventory store: {e}", path.display())))?;
        {
            let op_caps = self.op_caps;
            let mut m = self.lock();
            for (k, svc) in loaded {
                let n = m.services.len();
                match m.services.get_mut(&k) {
                    Some(mine) => {
                        mine.transactions += svc.transactions;
                        mine.first_seen = mine.first_seen.min(svc.first_seen);
                        mine.last_seen = mine.last_seen.max(svc.last_seen);
                        mine.tree.root.absorb(svc.tree.root, &op_caps);
                        mine.tree.recount();
                    }
                    None if n < self.max_services => {
                        let mut svc = svc;
                        svc.tree.recount();
                        m.services.insert(k, svc);
                    }
                    None => m.stats.services_capped += 1,
                }
            }
            let pins: Vec<(Option<String>, String)> = m
                .pins
                .iter()
                .map(|p| (None, p.clone()))
                .chain(m.pins_by_service.iter().flat_map(|(s, ps)| ps.iter().map(|p| (Some(s.clone()), p.clone()))))
                .collect();
            for (s, p) in pins {
                for (k, svc) in m.services.iter_mut() {
                    if s.as_deref().is_none_or(|s| s == k) {
                        let _ = svc.tree.pin(&p, &op_caps);
                    }
                }
            }
        }
        self.store = Some(Arc::new(Mutex::new(st)));
        Ok(())
    }

    /// Writes the model to the store, if there is one (errors are logged and counted).
    pub fn save(&self) {
        let Some(store) = &self.store else { return };
        let st = store.lock().unwrap_or_else(|e| e.into_inner());
        self.save_locked(&st);
    }

    fn save_locked(&self, st: &store::Store) {
        let snapshot = {
            let m = self.lock();
            store::Snapshot::of(&m.services, &self.tree_caps)
        };
        if let Err(e) = st.save(&snapshot) {
            tracing::error!(error = %e, "Saving the inventory store failed.");
            self.lock().stats.store_errors += 1;
        }
    }

    /// Writes `openapi/<service>.json` and `inventory.json` under `dir` (each file written whole, then renamed
    /// into place, so a reader never sees half a document).
    pub fn export(&self, dir: &Path) -> std::io::Result<()> {
        let docs = self.openapi();
        let odir = dir.join("openapi");
        std::fs::create_dir_all(&odir)?;
        let mut used = std::collections::BTreeSet::new();
        for (k, doc) in &docs {
            let mut name = openapi::file_name(k);
            let mut i = 2;
            while !used.insert(name.clone()) {
                name = format!("{}-{i}", openapi::file_name(k));
                i += 1;
            }
            let mut text = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
            text.push(b'\n');
            write_whole(&odir.join(format!("{name}.json")), &text)?;
        }
        let mut text = serde_json::to_vec_pretty(&self.inventory_json()).map_err(std::io::Error::other)?;
        text.push(b'\n');
        write_whole(&dir.join("inventory.json"), &text)?;
        Ok(())
    }

    /// Live runs: also rewrite the OpenAPI documents and inventory.json in `dir` every `save_interval`.
    pub fn export_periodically_to(&mut self, dir: &Path) {
        self.export_dir = Some(dir.to_owned());
    }

    /// Every `save_interval` of packet time: saves the store and, in live runs, rewrites the exported files;
    /// one worker does it, the others skip.
    pub fn tick(&self, now: Timestamp) {
        if self.store.is_none() && self.export_dir.is_none() {
            return;
        }
        let last = self.last_save_ns.load(Ordering::Relaxed);
        if last == 0 {
            self.last_save_ns.store(now.0, Ordering::Relaxed);
            return;
        }
        if now.0 < last.saturating_add(self.save_interval_ns) || self.exporting.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last_save_ns.store(now.0, Ordering::Relaxed);
        if let Some(store) = &self.store
            && let Ok(st) = store.try_lock()
        {
            self.save_locked(&st);
        }
        if let Some(dir) = &self.export_dir
            && let Err(e) = self.export(dir)
        {
            tracing::error!(dir = %dir.display(), error = %e, "Writing the inventory files failed.");
        }
        self.exporting.store(false, Ordering::Release);
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The analyzer one worker runs.
pub struct InventoryAnalyzer {
    inv: Inventory,
    /// Observations prepared for the batch, in call order.
    prepared: crate::analyzer::Prepared<Option<Observation>>,
}

impl InventoryAnalyzer {
    pub fn new(inv: Inventory) -> Self {
        InventoryAnalyzer { inv, prepared: Default::default() }
    }
}

impl Analyzer for InventoryAnalyzer {
    fn name(&self) -> &'static str {
        "inventory"
    }
    fn ordered(&self) -> bool {
        true
    }
    fn prepare(&mut self, tx: &Arc<Transaction>, _ctx: &mut TxContext) {
        self.prepared.push(self.inv.observe(tx));
    }
    fn on_transaction(&mut self, tx: &Arc<Transaction>, ctx: &mut TxContext, out: &mut Vec<Record>) {
        let obs = self.prepared.take().flatten();
        self.inv.learn_observed(tx, obs, ctx, out);
    }
    fn on_tick(&mut self, now: Timestamp, _out: &mut Vec<Record>) {
        self.inv.tick(now);
    }
}

/// Adds the inventory to the chain and returns the shared inventory (to pin a spec's templates).
pub fn register_inventory(reg: &mut Registry, s: &AnalysisSettings) -> Result<Inventory, SetupError> {
    let mut inv = Inventory::new(&s.inventory)?;
    if let Some(dir) = &s.state_dir {
        inv.attach_store(&dir.join("inventory.sqlite"))?;
    }
    if let Some(dir) = &s.live_out_dir {
        inv.export_periodically_to(dir);
    }
    let a = inv.clone();
    reg.register("inventory", move || Box::new(InventoryAnalyzer::new(a.clone())));
    let b = inv.clone();
    reg.on_conclude("inventory", move |dir: &Path| b.conclude(dir));
    Ok(inv)
}

/// Adds the inventory analyzer to the chain.
pub fn register(reg: &mut Registry, s: &AnalysisSettings) -> Result<(), SetupError> {
    register_inventory(reg, s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::DataClassHit;
    use crate::http::Headers;

    fn tx(method: &str, host: &str, path: &str, status: u16, ts: f64) -> Transaction {
        Transaction {
            ts,
            ts_response: Some(ts + 0.01),
            has_request: true,
            has_response: true,
            method: method.into(),
            path: path.into(),
            uri: path.into(),
            request_headers: [("Host", host), ("Authorization", "Bearer abc")].into_iter().collect::<Headers>(),
            status: Some(status),
            response_headers: [("Content-Type", "application/json")].into_iter().collect(),
            response_body: br#"{"id":1,"email":"someone@example.com"}"#.to_vec(),
            ..Transaction::default()
        }
    }

    fn run(inv: &Inventory, t: &Transaction) -> (TxContext, Vec<Record>) {
        let mut ctx = TxContext::default();
        let mut out = Vec::new();
        inv.learn(t, &mut ctx, &mut out);
        (ctx, out)
    }

    #[test]
    fn service_keys() {
        let t = tx("GET", "API.Example.com:80", "/", 200, 1.0);
        assert_eq!(service_key(&t), "api.example.com");
        let t = tx("GET", "api.example.com:8080", "/", 200, 1.0);
        assert_eq!(service_key(&t), "api.example.com:8080");
        let mut t = tx("GET", "bad host\u{1}", "/", 200, 1.0);
        assert_eq!(service_key(&t), "unknown");
        t.request_headers = Headers::default();
        assert_eq!(service_key(&t), "unknown");
    }

    #[test]
    fn context_and_events() {
        let inv = Inventory::new(&Settings::default()).unwrap();
        let (ctx, out) = run(&inv, &tx("GET", "api.example.com", "/users/1", 200, 1.0));
        assert_eq!(ctx.service.as_deref(), Some("api.example.com"));
        assert_eq!(ctx.endpoint.as_deref(), Some("/users/{userId}"));
        let kinds: Vec<String> = out
            .iter()
            .map(|r| serde_json::from_slice::<serde_json::Value>(&r.json).unwrap()["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["new_service", "new_operation"]);
        let (_, out) = run(&inv, &tx("GET", "api.example.com", "/users/2", 200, 2.0));
        assert!(out.is_empty());
        // 404 on an unknown path: service known, no endpoint, nothing learned.
        let (ctx, out) = run(&inv, &tx("GET", "api.example.com", "/.env", 404, 3.0));
        assert_eq!(ctx.endpoint, None);
        assert!(out.is_empty());
        assert_eq!(inv.operations(), [("api.example.com".into(), "GET".into(), "/users/{userId}".into())]);
    }

    #[test]
    fn data_classes_recorded_per_operation() {
        let inv = Inventory::new(&Settings::default()).unwrap();
        let t = tx("GET", "api.example.com", "/users/1", 200, 1.0);
        // What the sensitive-data scan put in the context before the inventory's turn.
        let mut ctx = TxContext::default();
        ctx.data_classes.push(DataClassHit {
            location: "response.body",
            field: "email".into(),
            class: "email".into(),
            category: "pii".into(),
        });
        for _ in 0..2 {
            let mut c = TxContext { data_classes: ctx.data_classes.clone(), ..TxContext::default() };
            inv.learn(&t, &mut c, &mut Vec::new());
        }
        // A refused request files nothing, its data classes neither.
        let mut c = TxContext { data_classes: ctx.data_classes.clone(), ..TxContext::default() };
        inv.learn(&tx("GET", "api.example.com", "/nothing/here", 404, 2.0), &mut c, &mut Vec::new());
        let inv_json = inv.inventory_json();
        let op = &inv_json["services"][0]["operations"][0];
        assert_eq!(op["data_classes"][0]["class"], "email");
        assert_eq!(op["data_classes"][0]["count"], 2);
        let doc = &inv.openapi()["api.example.com"];
        let get = &doc["paths"]["/users/{userId}"]["get"];
        assert_eq!(get["x-mirador-data-classes"][0]["location"], "response.body");
    }

    #[test]
    fn pins_from_settings_and_api() {
        let s = Settings { pinned_templates: vec!["/people/{name}".into()], ..Settings::default() };
        let inv = Inventory::new(&s).unwrap();
        let (ctx, _) = run(&inv, &tx("GET", "a.example", "/people/alice", 200, 1.0));
        assert_eq!(ctx.endpoint.as_deref(), Some("/people/{name}"));
        inv.pin(Some("a.example"), "/teams/{team}").unwrap();
        let (ctx, _) = run(&inv, &tx("GET", "a.example", "/teams/red", 200, 1.0));
        assert_eq!(ctx.endpoint.as_deref(), Some("/teams/{team}"));
        assert!(inv.pin(None, "nope").is_err());
        let bad = Settings { pinned_templates: vec!["x".into()], ..Settings::default() };
        let e = Inventory::new(&bad).err().unwrap();
        assert!(e.0.contains("[inventory] pinned_templates: entry 1"), "{e}");
    }

    #[test]
    fn vxlan_tenant_in_the_service_key() {
        use crate::decode::{Encap, Tunnel};
        let mut encap = Encap::default();
        assert!(encap.push_tunnel(Tunnel { kind: TunnelKind::VXLAN, id: 123 }));
        let mut t = tx("GET", "api.example.com", "/", 200, 1.0);
        t.flow = Some(Arc::new(crate::flow::FlowInfo {
            uid: "C1".into(),
            community_id: String::new(),
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.2:8080".parse().unwrap(),
            encap,
        }));
        assert_eq!(service_key(&t), "vni-123/api.example.com");
        t.request_headers = Headers::default();
        assert_eq!(service_key(&t), "vni-123/10.0.0.2:8080");
    }

    /// What the server refused is not an API: 405 and 501 (like 404) create no operation, even on a path
    /// that exists; they are counted as probes by shape. A 400 or 422 is the route validating its input.
    #[test]
    fn refusals_create_no_operation_and_are_counted_as_probes() {
        let inv = Inventory::new(&Settings::default()).unwrap();
        run(&inv, &tx("GET", "api.example.com", "/v1/items/7", 200, 1.0));
        for (m, p, s) in [
            ("DELETE", "/v1/items/8", 405),
            ("PATCH", "/v1/items/9", 405),
            ("BREW", "/v1/items/9", 501),
            ("PUT", "/v1/orders/Sup3rS3cret", 405),
            ("TRACE", "/v1/items/", 405),
        ] {
            let (ctx, out) = run(&inv, &tx(m, "api.example.com", p, s, 2.0));
            assert!(out.is_empty(), "{m} {p}: {out:?}");
            assert_eq!(ctx.service.as_deref(), Some("api.example.com"));
        }
        run(&inv, &tx("POST", "api.example.com", "/v1/items/", 422, 3.0));
        let ops: Vec<String> = inv.operations().into_iter().map(|(_, m, t)| format!("{m} {t}")).collect();
        assert_eq!(ops, ["GET /v1/items/{itemId}", "POST /v1/items/"]);
        let j = inv.inventory_json();
        let probes = &j["services"][0]["probes"];
        assert_eq!(probes["DELETE 405 /word/word/integer"], 1);
        assert_eq!(probes["PATCH 405 /word/word/integer"], 1);
        assert_eq!(probes["BREW 501 /word/word/integer"], 1);
        assert_eq!(probes["PUT 405 /word/word/word"], 1);
        assert_eq!(probes["TRACE 405 /word/word/"], 1);
        assert!(!j.to_string().contains("Sup3rS3cret"));
    }

    /// A scanner requesting 100k random paths from a catch-all server (every answer 200) while the real API
    /// is used: memory stays bounded and the real templates survive.
    #[test]
    fn random_path_scanner_through_the_analyzer() {
        let inv = Inventory::new(&Settings::default()).unwrap();
        let mut rng = crate::synth::Rng(3);
        for i in 0..100_000u64 {
            if i % 10 == 0 {
                run(&inv, &tx("GET", "api.example.com", &format!("/v1/users/{}", rng.below(5000)), 200, 1.0));
                run(&inv, &tx("GET", "api.example.com", "/v1/users/me", 200, 1.0));
            }
            let mut p = String::new();
            for _ in 0..1 + rng.below(6) {
                p.push('/');
                for _ in 0..3 + rng.below(8) {
                    p.push(char::from(b'a' + rng.below(26) as u8));
                }
            }
            run(&inv, &tx("GET", "api.example.com", &p, 200, 1.0));
        }
        let m = inv.lock();
        let svc = &m.services["api.example.com"];
        assert!(svc.tree.nodes <= Settings::default().max_nodes_per_service, "{} nodes", svc.tree.nodes);
        assert!(svc.tree.root.children.len() <= Settings::default().max_literal_children);
        drop(m);
        let ops = inv.operations();
        assert!(ops.len() < 50, "{} operations: {:?}", ops.len(), &ops[..10]);
        for t in ["/v1/users/me", "/v1/users/{userId}"] {
            assert!(ops.iter().any(|(_, _, x)| x == t), "{t} lost: {ops:?}");
        }
    }

    #[test]
    fn service_cap() {
        let s = Settings { max_services: 2, ..Settings::default() };
        let inv = Inventory::new(&s).unwrap();
        for i in 0..10 {
            run(&inv, &tx("GET", &format!("h{i}.example"), "/", 200, 1.0));
        }
        assert_eq!(inv.stats().services_capped, 8);
        assert_eq!(inv.openapi().len(), 2);
    }

    #[test]
    fn store_keeps_counts_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.sqlite");
        for round in 1..=2u64 {
            let mut inv = Inventory::new(&Settings::default()).unwrap();
            inv.attach_store(&path).unwrap();
            for i in 0..5 {
                run(
                    &inv,
                    &tx("GET", "api.example.com", &format!("/users/{i}"), 200, round as f64 * 100.0 + f64::from(i)),
                );
            }
            inv.save();
            let j = inv.inventory_json();
            let op = &j["services"][0]["operations"][0];
            assert_eq!(op["count"], 5 * round, "round {round}");
            assert_eq!(op["first_seen"], 100.0);
        }
        // Operators can query it.
        let c = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = c
            .query_row(
                "SELECT transactions FROM operations WHERE service = 'api.example.com' AND method = 'GET'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 10);
    }

    #[test]
    fn live_runs_rewrite_the_inventory_files_every_save_interval() {
        let dir = tempfile::tempdir().unwrap();
        let mut inv = Inventory::new(&Settings::default()).unwrap();
        inv.export_periodically_to(dir.path());
        let s = 1_000_000_000u64;
        run(&inv, &tx("GET", "api.example.com", "/users/1", 200, 1.0));
        inv.tick(Timestamp(1000 * s));
        assert!(!dir.path().join("inventory.json").exists(), "the first tick only starts the clock");
        inv.tick(Timestamp(1030 * s));
        assert!(!dir.path().join("inventory.json").exists(), "not before save_interval (60 s)");
        inv.tick(Timestamp(1061 * s));
        let doc = std::fs::read_to_string(dir.path().join("openapi/api.example.com.json")).unwrap();
        assert!(doc.contains("/users/{userId}") || doc.contains("/users/1"), "{doc}");
        run(&inv, &tx("POST", "api.example.com", "/orders", 201, 2.0));
        inv.tick(Timestamp(1122 * s));
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("inventory.json")).unwrap()).unwrap();
        assert_eq!(j["services"][0]["operations"].as_array().map(Vec::len), Some(2), "{j}");
        assert!(!dir.path().join("inventory.json.tmp").exists());
    }
}
