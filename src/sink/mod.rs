//! SIEM sinks: alerts, findings and inventory changes (optionally transactions) streamed to files, stdout,
//! syslog, HTTP collectors (Splunk HEC, Elastic `_bulk`, webhooks) and Kafka, each in its own format with its
//! own filter.
//!
//! ```text
//! output thread ──offer──► per-sink bounded queue ──► sink task (tokio, manager thread) ──► transport
//!        └─ queue full ──► per-sink disk spool ◄── failed after retries / sink down / shutdown
//! ```
//!
//! Delivery is at-least-once: a record leaves the spool only after the transport accepted it, so a crash or a
//! timeout between the two sends it again. The output thread never waits on a sink: a full queue sends the
//! record to the spool. A sink that fails is retried with capped exponential backoff and jitter; its records
//! go to the spool, which is replayed in order once the sink answers again, and on the next start if the
//! run ends first. [`SinkManager::shutdown`] (end of replay, SIGTERM) delivers what is in flight within
//! `[sink] flush_timeout` and spools the rest.

pub mod format;
pub mod spool;
pub mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

pub use format::{Format, Observer, Severity, Stream, SyslogProtocol};
use spool::{Spool, Spooled};
use transport::{Event, Transport};

/// `[sink]`: settings shared by every sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkGlobal {
    /// Records waiting in memory per sink; when full, records go to the spool. Default: 10000.
    pub queue_records: usize,
    /// Disk spool cap per sink; past it the oldest records are dropped (counted, logged once).
    /// Default: 268435456 (256 MiB).
    pub spool_max_bytes: u64,
    /// Spool segment size (the unit dropped when the cap is hit). Default: 4194304 (4 MiB).
    pub spool_segment_bytes: u64,
    /// At the end of a run, time given to deliver what is in flight before spooling it. Default: "10s".
    #[serde(with = "crate::config::duration")]
    pub flush_timeout: Duration,
    /// First retry delay; doubles per failure up to `retry_max`, with jitter. Default: "500ms".
    #[serde(with = "crate::config::duration")]
    pub retry_initial: Duration,
    /// Longest delay between two tries of a sink that is down. Default: "30s".
    #[serde(with = "crate::config::duration")]
    pub retry_max: Duration,
    /// Tries of one batch before it is spooled. Default: 3.
    pub retry_attempts: u32,
    /// Time allowed to one network request or connection. Default: "10s".
    #[serde(with = "crate::config::duration")]
    pub request_timeout: Duration,
}

impl Default for SinkGlobal {
    fn default() -> Self {
        SinkGlobal {
            queue_records: 10_000,
            spool_max_bytes: 256 << 20,
            spool_segment_bytes: 4 << 20,
            flush_timeout: Duration::from_secs(10),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            retry_attempts: 3,
            request_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkType {
    #[default]
    Stdout,
    File,
    Syslog,
    Http,
    Kafka,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpFlavor {
    /// Splunk HTTP Event Collector (`/services/collector/event`).
    Hec,
    /// Elasticsearch / OpenSearch `_bulk`.
    Bulk,
    /// Any URL taking a JSON array (or text lines for CEF).
    #[default]
    Webhook,
}

fn default_kinds() -> Vec<Stream> {
    vec![Stream::Alerts, Stream::Findings, Stream::Inventory]
}

/// One `[sinks.NAME]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// The table's NAME: the spool directory and the metrics label. Letters, digits, `-`, `_`.
    #[serde(skip)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SinkType,
    pub format: Format,
    /// Records below this severity are not sent (inventory and transactions count as `info`).
    pub min_severity: Severity,
    /// Streams sent: "alerts", "findings", "inventory", "transactions".
    pub kinds: Vec<Stream>,
    /// file: the file written; rotated to `path.1` .. `path.<rotate_keep>` past `rotate_bytes`.
    pub path: Option<PathBuf>,
    pub rotate_bytes: u64,
    pub rotate_keep: u32,
    /// syslog: "host:port" of the receiver.
    pub address: Option<String>,
    pub transport: SyslogTransport,
    pub protocol: SyslogProtocol,
    /// syslog facility number 0..=23. Default: 16 (local0).
    pub facility: u8,
    pub app_name: String,
    /// syslog HOSTNAME field; default: this machine's host name.
    pub hostname: Option<String>,
    /// syslog TLS and https: PEM file of the CA(s) to trust instead of the system store.
    pub ca_file: Option<PathBuf>,
    /// syslog TLS: name the certificate must carry; default: the host of `address`.
    pub server_name: Option<String>,
    /// http: the collector URL.
    pub url: Option<String>,
    pub flavor: HttpFlavor,
    /// http: token sent as `Authorization: Splunk <token>` (hec), `ApiKey <token>` (bulk) or `Bearer <token>`.
    pub token: Option<String>,
    /// http: extra request headers.
    pub headers: BTreeMap<String, String>,
    /// http: Elastic index / data stream, or the HEC index.
    pub index: Option<String>,
    /// http: records per request; kafka and syslog: records per write.
    pub batch_records: usize,
    /// http: time a partial batch waits for more records.
    #[serde(with = "crate::config::duration")]
    pub batch_timeout: Duration,
    pub gzip: bool,
    /// kafka: bootstrap servers "host:9092,host2:9092".
    pub brokers: Option<String>,
    pub topic: Option<String>,
    /// kafka: extra librdkafka properties (security.protocol, sasl.*, ...).
    pub kafka: BTreeMap<String, String>,
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings {
            name: String::new(),
            kind: SinkType::Stdout,
            format: Format::Json,
            min_severity: Severity::Info,
            kinds: default_kinds(),
            path: None,
            rotate_bytes: 100 << 20,
            rotate_keep: 5,
            address: None,
            transport: SyslogTransport::Udp,
            protocol: SyslogProtocol::Rfc5424,
            facility: 16,
            app_name: "mirador".into(),
            hostname: None,
            ca_file: None,
            server_name: None,
            url: None,
            flavor: HttpFlavor::Webhook,
            token: None,
            headers: BTreeMap::new(),
            index: None,
            batch_records: 500,
            batch_timeout: Duration::from_secs(1),
            gzip: true,
            brokers: None,
            topic: None,
            kafka: BTreeMap::new(),
        }
    }
}

impl SinkSettings {
    /// What is wrong with this entry, as (key, message); `None` if it is usable.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Some(("name", "a sink name is 1 to 64 letters, digits, '-' or '_'".into()));
        }
        if self.kinds.is_empty() {
            return Some((
                "kinds",
                "sends nothing: list at least one of alerts, findings, inventory, transactions".into(),
            ));
        }
        if self.batch_records == 0 {
            return Some(("batch_records", "must be greater than 0".into()));
        }
        let visible = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if let Some((k, _)) = self.headers.iter().find(|(k, v)| !visible(k) || k.contains(' ') || !visible(v)) {
            return Some(("headers", format!("header {k:?}: names and values must be printable ASCII")));
        }
        if self.token.as_deref().is_some_and(|t| !visible(t)) {
            return Some(("token", "must be printable ASCII".into()));
        }
        if self.facility > 23 {
            return Some(("facility", "must be between 0 and 23".into()));
        }
        let need =
            |k: &'static str, present: bool, what: &str| (!present).then(|| (k, format!("a {what} sink needs `{k}`")));
        match self.kind {
            SinkType::Stdout => None,
            SinkType::File => need("path", self.path.is_some(), "file")
                .or_else(|| (self.rotate_bytes == 0).then(|| ("rotate_bytes", "must be greater than 0".into()))),
            SinkType::Syslog => {
                need("address", self.address.as_deref().is_some_and(|a| a.contains(':')), "syslog (host:port)")
            }
            SinkType::Http => need(
                "url",
                self.url.as_deref().is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")),
                "http (http:// or https://)",
            ),
            SinkType::Kafka => {
                if cfg!(feature = "kafka") {
                    need("brokers", self.brokers.is_some(), "kafka")
                } else {
                    Some(("type", "this mirador was built without Kafka (cargo feature `kafka`)".into()))
                }
            }
        }
    }
}

/// Everything the manager needs.
#[derive(Clone, Debug, Default)]
pub struct SinkOptions {
    pub global: SinkGlobal,
    pub sinks: Vec<SinkSettings>,
    /// `[state] dir`/spool.
    pub spool_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink {name}: {message}")]
    Setup { name: String, message: String },
    #[error("sink manager thread: {0}")]
    Thread(std::io::Error),
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    dropped: AtomicU64,
    latency_nanos: AtomicU64,
    latency_count: AtomicU64,
    latency_max_nanos: AtomicU64,
}

/// Counters of one sink (monotonic since start, except the gauges).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SinkSnapshot {
    pub name: String,
    pub kind: SinkType,
    /// Records the transport accepted (live and replayed from the spool).
    pub sent: u64,
    /// Failed delivery attempts (batches).
    pub failed: u64,
    /// Retries of a batch (after a failed attempt).
    pub retried: u64,
    /// Records written to the spool.
    pub spooled: u64,
    /// Records delivered from the spool.
    pub replayed: u64,
    /// Records lost: spool cap, spool I/O error, rejected by the collector for good.
    pub dropped: u64,
    /// Gauges: records in the memory queue, in the spool, spool size.
    pub queue_depth: u64,
    pub spool_records: u64,
    pub spool_bytes: u64,
    /// Delivery latency per batch (ms): mean and max.
    pub latency_mean_ms: f64,
    pub latency_max_ms: f64,
}

struct SinkShared {
    settings: SinkSettings,
    tx: mpsc::Sender<Arc<Event>>,
    capacity: usize,
    spool: Mutex<Spool>,
    counters: Counters,
}

impl SinkShared {
    fn wants(&self, stream: Stream, sev: Severity) -> bool {
        self.settings.kinds.contains(&stream)
            && (sev >= self.settings.min_severity
                || matches!(stream, Stream::Inventory | Stream::Transactions)
                    && self.settings.min_severity == Severity::Info)
    }

    fn spool_events(&self, evs: &[Arc<Event>]) {
        if evs.is_empty() {
            return;
        }
        let recs: Vec<Spooled> = evs.iter().map(|e| Spooled { stream: e.stream, json: e.raw.clone() }).collect();
        let mut sp = self.spool.lock().unwrap_or_else(PoisonError::into_inner);
        let before = sp.dropped;
        match sp.append(&recs) {
            Ok(()) => {
                self.counters.spooled.fetch_add(recs.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                if self.counters.dropped.load(Ordering::Relaxed) == 0 {
                    tracing::error!(sink = %self.settings.name, error = %e, "Cannot write the sink spool: records dropped (counted; logged once).");
                }
                self.counters.dropped.fetch_add(recs.len() as u64, Ordering::Relaxed);
            }
        }
        self.counters.dropped.fetch_add(sp.dropped - before, Ordering::Relaxed);
    }

    fn snapshot(&self) -> SinkSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let sp = self.spool.lock().unwrap_or_else(PoisonError::into_inner);
        let n = g(&self.counters.latency_count);
        SinkSnapshot {
            name: self.settings.name.clone(),
            kind: self.settings.kind,
            sent: g(&self.counters.sent),
            failed: g(&self.counters.failed),
            retried: g(&self.counters.retried),
            spooled: g(&self.counters.spooled),
            replayed: g(&self.counters.replayed),
            dropped: g(&self.counters.dropped),
            queue_depth: (self.capacity - self.tx.capacity().min(self.capacity)) as u64,
            spool_records: sp.records,
            spool_bytes: sp.bytes(),
            latency_mean_ms: if n == 0 { 0.0 } else { g(&self.counters.latency_nanos) as f64 / n as f64 / 1e6 },
            latency_max_ms: g(&self.counters.latency_max_nanos) as f64 / 1e6,
        }
    }
}

/// The sink manager: owns a thread running a tokio runtime with one task per sink.
pub struct SinkManager {
    sinks: Vec<Arc<SinkShared>>,
    wants_transactions: bool,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Capped exponential backoff with full jitter in [d/2, d].
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    seed: u64,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish() | 1;
        Backoff { initial, max: max.max(initial), current: initial, seed }
    }

    fn next(&mut self) -> Duration {
        // xorshift64: jitter needs no crypto.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let frac = 0.5 + (self.seed % 1000) as f64 / 2000.0;
        d.mul_f64(frac)
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }
}

impl SinkManager {
    /// Opens every sink's spool and transport and starts the manager thread. A bad CA file, an unwritable
    /// spool or a sink built without its feature is an error here, before any traffic.
    pub fn start(opts: &SinkOptions) -> Result<SinkManager, SinkError> {
        let observer = Observer::local();
        let g = &opts.global;
        let mut sinks = Vec::new();
        let mut tasks = Vec::new();
        for s in &opts.sinks {
            let setup = |message: String| SinkError::Setup { name: s.name.clone(), message };
            if let Some((k, m)) = s.problem() {
                return Err(setup(format!("{k}: {m}")));
            }
            let dir = opts.spool_dir.join(&s.name);
            let spool = Spool::open(&dir, g.spool_max_bytes, g.spool_segment_bytes)
                .map_err(|e| setup(format!("spool {}: {e}", dir.display())))?;
            if !spool.is_empty() {
                tracing::info!(sink = %s.name, records = spool.records, "Sink spool holds records from an earlier run: they are sent first.");
            }
            let cap = g.queue_records.max(1);
            let (tx, rx) = mpsc::channel(cap);
            let shared = Arc::new(SinkShared {
                settings: s.clone(),
                tx,
                capacity: cap,
                spool: Mutex::new(spool),
                counters: Counters::default(),
            });
            sinks.push(shared.clone());
            tasks.push((shared, rx));
        }
        let (stop, stop_rx) = watch::channel(false);
        let global = g.clone();
        // Transports are built inside the runtime (reqwest and tokio sockets need it); errors come back here.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), SinkError>>();
        let thread = std::thread::Builder::new()
            .name("sinks".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(SinkError::Thread(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut built = Vec::new();
                    for (shared, rx) in tasks {
                        match Transport::new(&shared.settings, &global, observer.clone()) {
                            Ok(t) => built.push((shared, rx, t)),
                            Err(message) => {
                                let _ = ready_tx
                                    .send(Err(SinkError::Setup { name: shared.settings.name.clone(), message }));
                                return;
                            }
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    let mut handles = Vec::new();
                    for (shared, rx, t) in built {
                        handles.push(tokio::spawn(run_sink(shared, rx, t, global.clone(), stop_rx.clone())));
                    }
                    for h in handles {
                        let _ = h.await;
                    }
                });
            })
            .map_err(SinkError::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(SinkError::Thread(std::io::Error::other("sink thread ended early")));
            }
        }
        let wants_transactions = sinks.iter().any(|s| s.settings.kinds.contains(&Stream::Transactions));
        Ok(SinkManager { sinks, wants_transactions, stop, thread: Mutex::new(Some(thread)) })
    }

    /// The manager for a configuration's `[sinks.NAME]` tables; `None` when there are none. For the binary:
    /// `opts.sinks = SinkManager::from_config(&cfg)?` before a run (an error is a configuration error).
    pub fn from_config(cfg: &crate::config::Config) -> Result<Option<Arc<SinkManager>>, SinkError> {
        if cfg.sinks.is_empty() {
            return Ok(None);
        }
        SinkManager::start(&cfg.sink_options()).map(|m| Some(Arc::new(m)))
    }

    /// Hands records over (from the output thread): `lines` holds one JSON record per line. Never blocks on a
    /// sink: a full queue sends the record to that sink's spool.
    pub fn offer(&self, stream: &str, lines: &[u8]) {
        let Some(stream) = Stream::from_name(stream) else { return };
        if stream == Stream::Transactions && !self.wants_transactions {
            return;
        }
        for line in lines.split(|&c| c == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
            let severity = Severity::of(&value);
            let ev = Arc::new(Event { stream, value, raw: line.to_vec(), severity });
            for s in &self.sinks {
                if !s.wants(stream, severity) {
                    continue;
                }
                if let Err(e) = s.tx.try_send(ev.clone()) {
                    let ev = match e {
                        mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
                    };
                    s.spool_events(&[ev]);
                }
            }
        }
    }

    /// Delivers what is in flight (within `[sink] flush_timeout`), spools the rest and stops the thread.
    /// Idempotent; later `offer`s go to the spools.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        let t = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(t) = t
            && t.join().is_err()
        {
            tracing::error!("The sink manager thread panicked; records in flight may be only in the spool.");
        }
    }

    pub fn snapshot(&self) -> Vec<SinkSnapshot> {
        self.sinks.iter().map(|s| s.snapshot()).collect()
    }
}

impl Drop for SinkManager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The per-sink counters in Prometheus text format (to append to `/metrics`).
pub fn render_prometheus(snaps: &[SinkSnapshot]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    type Series = (&'static str, &'static str, fn(&SinkSnapshot) -> f64);
    let counters: [Series; 11] = [
        ("mirador_sink_sent_total", "counter", |s| s.sent as f64),
        ("mirador_sink_failed_total", "counter", |s| s.failed as f64),
        ("mirador_sink_retried_total", "counter", |s| s.retried as f64),
        ("mirador_sink_spooled_total", "counter", |s| s.spooled as f64),
        ("mirador_sink_replayed_total", "counter", |s| s.replayed as f64),
        ("mirador_sink_dropped_total", "counter", |s| s.dropped as f64),
        ("mirador_sink_queue_depth", "gauge", |s| s.queue_depth as f64),
        ("mirador_sink_spool_records", "gauge", |s| s.spool_records as f64),
        ("mirador_sink_spool_bytes", "gauge", |s| s.spool_bytes as f64),
        ("mirador_sink_latency_mean_seconds", "gauge", |s| s.latency_mean_ms / 1e3),
        ("mirador_sink_latency_max_seconds", "gauge", |s| s.latency_max_ms / 1e3),
    ];
    for (name, kind, f) in counters {
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for s in snaps {
            let _ = writeln!(o, "{name}{{sink=\"{}\"}} {}", s.name, f(s));
        }
    }
    o
}

/// Takes up to `max` records from the queue: waits for the first, then up to `linger` for more.
async fn collect(
    rx: &mut mpsc::Receiver<Arc<Event>>,
    first: Arc<Event>,
    max: usize,
    linger: Duration,
) -> Vec<Arc<Event>> {
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        match rx.try_recv() {
            Ok(e) => batch.push(e),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                if linger.is_zero() {
                    break;
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(e)) => batch.push(e),
                    _ => break,
                }
            }
        }
    }
    batch
}

fn spooled_to_events(recs: Vec<Spooled>) -> Vec<Arc<Event>> {
    recs.into_iter()
        .map(|r| {
            let value = serde_json::from_slice(&r.json).unwrap_or(serde_json::Value::Null);
            let severity = Severity::of(&value);
            Arc::new(Event { stream: r.stream, value, raw: r.json, severity })
        })
        .collect()
}

/// One delivery attempt, timed and counted.
async fn attempt(shared: &SinkShared, t: &mut Transport, batch: &[Arc<Event>], timeout: Duration) -> bool {
    let t0 = Instant::now();
    let r = match tokio::time::timeout(timeout, t.send(batch)).await {
        Ok(r) => r,
        Err(_) => Err("timed out".into()),
    };
    let c = &shared.counters;
    match r {
        Ok(()) => {
            let ns = t0.elapsed().as_nanos() as u64;
            c.latency_nanos.fetch_add(ns, Ordering::Relaxed);
            c.latency_count.fetch_add(1, Ordering::Relaxed);
            c.latency_max_nanos.fetch_max(ns, Ordering::Relaxed);
            let rejected = t.take_rejected();
            c.sent.fetch_add((batch.len() as u64).saturating_sub(rejected), Ordering::Relaxed);
            c.dropped.fetch_add(rejected, Ordering::Relaxed);
            true
        }
        Err(e) => {
            if c.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(sink = %shared.settings.name, error = %e, "Sink delivery failed: retrying, then spooling (first failure logged; see mirador_sink_failed_total).");
            } else {
                tracing::debug!(sink = %shared.settings.name, error = %e, "Sink delivery failed.");
            }
            false
        }
    }
}

async fn run_sink(
    shared: Arc<SinkShared>,
    mut rx: mpsc::Receiver<Arc<Event>>,
    mut t: Transport,
    g: SinkGlobal,
    mut stop: watch::Receiver<bool>,
) {
    let s = &shared.settings;
    let max = s.batch_records.max(1);
    let linger = if s.kind == SinkType::Http { s.batch_timeout } else { Duration::ZERO };
    // Per attempt: the request timeout plus room for the transport's own connect.
    let attempt_timeout = g.request_timeout * 2;
    let mut backoff = Backoff::new(g.retry_initial, g.retry_max);
    let mut down_until: Option<tokio::time::Instant> = None;
    let spool_empty = |sh: &SinkShared| sh.spool.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
    loop {
        if *stop.borrow() {
            break;
        }
        if !spool_empty(&shared) {
            // Keep order: while the spool has a backlog, new records queue behind it on disk.
            let mut moved = Vec::new();
            while let Ok(e) = rx.try_recv() {
                moved.push(e);
            }
            shared.spool_events(&moved);
            if let Some(until) = down_until {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = stop.changed() => {}
                }
                down_until = None;
                continue;
            }
            let recs = shared.spool.lock().unwrap_or_else(PoisonError::into_inner).read_batch(max);
            let n = recs.len();
            let batch = spooled_to_events(recs);
            if batch.is_empty() || attempt(&shared, &mut t, &batch, attempt_timeout).await {
                shared.spool.lock().unwrap_or_else(PoisonError::into_inner).commit(n);
                shared.counters.replayed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                backoff.reset();
            } else {
                down_until = Some(tokio::time::Instant::now() + backoff.next());
            }
            continue;
        }
        let first = tokio::select! {
            e = rx.recv() => e,
            _ = stop.changed() => None,
        };
        let Some(first) = first else { break };
        let batch = collect(&mut rx, first, max, linger).await;
        let mut ok = false;
        for i in 0..g.retry_attempts.max(1) {
            if i > 0 {
                shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next();
                let stopped = tokio::select! {
                    _ = tokio::time::sleep(wait) => false,
                    _ = stop.changed() => true,
                };
                if stopped {
                    break;
                }
            }
            if attempt(&shared, &mut t, &batch, attempt_timeout).await {
                ok = true;
                backoff.reset();
                break;
            }
        }
        if !ok {
            shared.spool_events(&batch);
            down_until = Some(tokio::time::Instant::now() + backoff.next());
        }
    }
    // Shutdown: what is queued is delivered within flush_timeout, or spooled.
    let deadline = tokio::time::Instant::now() + g.flush_timeout;
    rx.close();
    let mut rest = Vec::new();
    while let Ok(e) = rx.try_recv() {
        rest.push(e);
    }
    if !spool_empty(&shared) {
        shared.spool_events(&rest);
        rest.clear();
    }
    // Keep trying until the deadline, even a sink that was down: it may be back. Order holds: once a batch
    // fails, everything behind it goes to the spool first.
    let left = |d: tokio::time::Instant| d.saturating_duration_since(tokio::time::Instant::now());
    let mut backoff = Backoff::new(g.retry_initial, g.retry_max);
    while !left(deadline).is_zero() && (!rest.is_empty() || !spool_empty(&shared)) {
        let (batch, from_spool) = if spool_empty(&shared) {
            let n = rest.len().min(max);
            (rest.drain(..n).collect::<Vec<_>>(), None)
        } else {
            let recs = shared.spool.lock().unwrap_or_else(PoisonError::into_inner).read_batch(max);
            let n = recs.len();
            (spooled_to_events(recs), Some(n))
        };
        let ok = batch.is_empty() || attempt(&shared, &mut t, &batch, left(deadline).min(attempt_timeout)).await;
        match (ok, from_spool) {
            (true, Some(n)) => {
                shared.spool.lock().unwrap_or_else(PoisonError::into_inner).commit(n);
                shared.counters.replayed.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            (true, None) => {}
            (false, from_spool) => {
                if from_spool.is_none() {
                    shared.spool_events(&batch);
                    shared.spool_events(&rest);
                    rest.clear();
                }
                tokio::time::sleep(backoff.next().min(left(deadline))).await;
            }
        }
    }
    shared.spool_events(&rest);
    let mut sp = shared.spool.lock().unwrap_or_else(PoisonError::into_inner);
    sp.sync();
    if !sp.is_empty() {
        tracing::warn!(sink = %s.name, records = sp.records, "Sink not reachable at shutdown: records kept in its spool for the next start.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ds: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert!(ds.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(ds.first().is_some_and(|d| *d >= Duration::from_millis(50)));
        assert!(ds.last().is_some_and(|d| *d >= Duration::from_millis(500)));
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }

    #[test]
    fn settings_problems() {
        let mut s = SinkSettings { name: "a b".into(), ..Default::default() };
        assert_eq!(s.problem().map(|p| p.0), Some("name"));
        s.name = "siem".into();
        assert_eq!(s.problem(), None);
        s.kind = SinkType::Syslog;
        assert_eq!(s.problem().map(|p| p.0), Some("address"));
        s.address = Some("127.0.0.1:514".into());
        assert_eq!(s.problem(), None);
        s.kind = SinkType::Http;
        assert_eq!(s.problem().map(|p| p.0), Some("url"));
    }

    #[test]
    fn file_sink_filters_and_flushes_at_shutdown() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.jsonl");
        let opts = SinkOptions {
            global: SinkGlobal::default(),
            sinks: vec![SinkSettings {
                name: "f".into(),
                kind: SinkType::File,
                path: Some(out.clone()),
                min_severity: Severity::High,
                ..Default::default()
            }],
            spool_dir: d.path().join("spool"),
        };
        let m = SinkManager::start(&opts).unwrap();
        m.offer("alerts", b"{\"id\":\"1\",\"severity\":\"high\"}\n{\"id\":\"2\",\"severity\":\"low\"}\n");
        m.offer("findings", b"not json\n");
        m.offer("transactions", b"{\"uid\":\"t\"}\n");
        m.offer("inventory", b"{\"kind\":\"new_service\"}\n");
        m.shutdown();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, "{\"id\":\"1\",\"severity\":\"high\"}\n");
        let snap = m.snapshot();
        assert_eq!(snap.first().map(|s| s.sent), Some(1));
        assert!(render_prometheus(&snap).contains("mirador_sink_sent_total{sink=\"f\"} 1"));
    }

    #[test]
    fn full_queue_overflows_to_the_spool_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let g = SinkGlobal {
            queue_records: 2,
            flush_timeout: Duration::from_millis(200),
            retry_initial: Duration::from_secs(5),
            ..Default::default()
        };
        let http = SinkSettings {
            name: "h".into(),
            kind: SinkType::Http,
            url: Some(format!("http://127.0.0.1:{port}/in")),
            ..Default::default()
        };
        let m = SinkManager::start(&SinkOptions { global: g, sinks: vec![http], spool_dir: d.path().into() }).unwrap();
        let t0 = Instant::now();
        for i in 0..500 {
            m.offer("alerts", format!("{{\"id\":\"{i}\"}}\n").as_bytes());
        }
        // Retries wait 5 s each: only the spool can have taken 500 records this fast.
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        // How many went to the spool at once depends on how many the sink task had already taken into its
        // (retrying) batch: only the total after shutdown is fixed.
        m.shutdown();
        let s = m.snapshot().remove(0);
        assert_eq!((s.sent, s.spool_records, s.dropped), (0, 500, 0), "{s:?}");
    }

    #[test]
    fn down_sink_spools_and_next_start_delivers() {
        let d = tempfile::tempdir().unwrap();
        // A file sink whose directory is a file cannot be opened: use an HTTP sink to a closed port instead.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let g = SinkGlobal {
            flush_timeout: Duration::from_millis(300),
            retry_initial: Duration::from_millis(10),
            request_timeout: Duration::from_millis(200),
            ..Default::default()
        };
        let http = SinkSettings {
            name: "h".into(),
            kind: SinkType::Http,
            url: Some(format!("http://127.0.0.1:{port}/in")),
            batch_timeout: Duration::from_millis(10),
            ..Default::default()
        };
        let opts = SinkOptions { global: g.clone(), sinks: vec![http], spool_dir: d.path().join("spool") };
        let m = SinkManager::start(&opts).unwrap();
        for i in 0..20 {
            m.offer("alerts", format!("{{\"id\":\"{i}\"}}\n").as_bytes());
        }
        m.shutdown();
        let s = m.snapshot();
        assert_eq!(s.first().map(|s| (s.sent, s.spool_records)), Some((0, 20)), "{s:?}");
        drop(m);
        // Next start, the sink is a file: the spool directory is per name, so reuse "h".
        let out = d.path().join("out.jsonl");
        let file =
            SinkSettings { name: "h".into(), kind: SinkType::File, path: Some(out.clone()), ..Default::default() };
        let m = SinkManager::start(&SinkOptions { global: g, sinks: vec![file], spool_dir: d.path().join("spool") })
            .unwrap();
        m.shutdown();
        let text = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<String> = text.lines().map(|l| l.to_owned()).collect();
        assert_eq!(ids.len(), 20);
        assert_eq!(ids.first().map(String::as_str), Some("{\"id\":\"0\"}"));
        assert_eq!(m.snapshot().first().map(|s| (s.replayed, s.spool_records)), Some((20, 0)));
    }
}
