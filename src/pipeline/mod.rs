//! The sensor's threads: the shard (decode → flow table → reassembly → HTTP) on the reading thread, analyzer
//! workers behind a bounded channel, and one output thread that owns the files.
//!
//! ```text
//! packets ─► shard ──Arc<Transaction>──► workers (N, analyzers, JSON) ──lines──► output thread ─► DIR/*.jsonl
//!              └────────────── flow records ─────────────────────────────────────┘
//! ```
//!
//! Every queue is bounded. Downstream of the packet source, sends block: replay is lossless by
//! back-pressure, and in live mode the only place that drops is the capture queue in `capture::live`
//! (counted as `queue_full`), so the capture threads never wait. With one shard the reading thread is the
//! shard; there are no locks on the per-packet path.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

mod worker;
use worker::{Gates, Sequencer, WorkItem, worker_loop};

use crate::analyzer::Registry;
use crate::capture::file::{FileError, FileProblem, FileSource};
use crate::capture::{RawPacket, Timestamp};
use crate::decode::{DecodeConfig, DecodeStats, Decoder};
use crate::flow::table::{FlowConfig, FlowOutput, FlowRecord, FlowStats, FlowTable};
use crate::http::{HttpConfig, HttpStats, Transaction};
use crate::metrics::{AnalyzerCounters, PipelineCounters, QueueCounters, RecordTypeCount, Telemetry};
use crate::output::{JsonlFile, OutputError, write_json_file};
use crate::reassembly::ReassemblyConfig;

#[derive(Clone, Debug, Default)]
pub struct SensorConfig {
    pub decode: DecodeConfig,
    pub flow: FlowConfig,
    pub reassembly: ReassemblyConfig,
    pub http: HttpConfig,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CaptureStats {
    pub packets: u64,
    pub bytes: u64,
    /// Packets whose timestamp is earlier than the previous packet's (kept, processed at the later time).
    pub out_of_order_timestamps: u64,
    /// Live capture: packets the kernel dropped (`ps_drop`) and the interface dropped (`ps_ifdrop`).
    pub kernel_drops: u64,
    pub interface_drops: u64,
    /// Live capture: frames dropped because processing fell behind (the capture thread never blocks).
    pub queue_full_drops: u64,
    pub file_errors: Vec<FileProblem>,
    /// Packet time of the first and the last packet (seconds; 0 without packets): the span the traffic
    /// covers, which a live run's throughput is measured over.
    pub first_packet_ts: f64,
    pub last_packet_ts: f64,
}

impl CaptureStats {
    /// Counts a packet and keeps packet time monotonic: a packet older than `clock` is processed at `clock`,
    /// so timeouts never run backwards when merged inputs or a TAP's two directions interleave unevenly.
    fn admit<'a>(&mut self, clock: &mut Timestamp, mut pkt: RawPacket<'a>) -> RawPacket<'a> {
        self.packets += 1;
        self.bytes += u64::from(pkt.orig_len);
        let ts = pkt.ts.as_secs_f64();
        if self.packets == 1 {
            self.first_packet_ts = ts;
        }
        self.last_packet_ts = self.last_packet_ts.max(ts);
        if pkt.ts < *clock {
            self.out_of_order_timestamps += 1;
            pkt.ts = *clock;
        } else {
            *clock = pkt.ts;
        }
        pkt
    }
}

/// Everything counted during a run: `stats.json`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub capture: CaptureStats,
    pub decode: DecodeStats,
    pub flows: FlowStats,
    pub http: HttpStats,
    /// Time and transactions per analyzer (filled at the end of a run; empty in live snapshots).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub analyzers: Vec<AnalyzerCounters>,
}

/// One shard: owns its decoder and flow table; no locks.
pub struct Sensor {
    decoder: Decoder,
    table: FlowTable,
    capture: CaptureStats,
    clock: Timestamp,
}

/// Drawn once per process and mixed into every flow uid: a SIEM that deduplicates on `uid` must not merge
/// the records of two runs or two sensors (Zeek draws its uids at random too). Within a run the uids still
/// follow the flow table's order.
fn run_key() -> u64 {
    static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *KEY.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0)
}

impl Sensor {
    pub fn new(cfg: SensorConfig) -> Self {
        let mut table = FlowTable::new(cfg.flow, cfg.reassembly, Arc::new(cfg.http));
        table.set_uid_seed(run_key());
        Sensor { decoder: Decoder::new(cfg.decode), table, capture: CaptureStats::default(), clock: Timestamp(0) }
    }

    pub fn process(&mut self, pkt: RawPacket<'_>, out: &mut impl FlowOutput) {
        let pkt = self.capture.admit(&mut self.clock, pkt);
        if let Some(view) = self.decoder.decode(pkt) {
            self.table.process(&view, out);
        }
    }

    /// Closes every flow and emits what they still hold (end of input, shutdown).
    pub fn finish(&mut self, out: &mut impl FlowOutput) {
        self.table.flush_all(self.clock, out);
    }

    /// Reassembly memory held now.
    pub fn reassembly_memory(&self) -> usize {
        self.table.reassembly_memory()
    }

    pub fn capture_stats_mut(&mut self) -> &mut CaptureStats {
        &mut self.capture
    }

    pub fn stats(&self) -> Stats {
        Stats {
            capture: self.capture.clone(),
            decode: self.decoder.stats().clone(),
            flows: self.table.stats(),
            http: self.table.http_stats().clone(),
            analyzers: Vec::new(),
        }
    }
}

/// How the threads are laid out, and what runs in them.
pub struct PipelineOptions {
    pub sensor: SensorConfig,
    /// Flow-table shards: 1 = the reading thread is the shard; more = shard threads fed by it.
    pub shards: usize,
    /// Analyzer worker threads (at least 1).
    pub workers: usize,
    /// Transactions in flight between the shard and the workers.
    pub queue_transactions: usize,
    pub registry: Arc<Registry>,
    pub telemetry: Option<Arc<Telemetry>>,
    /// SIEM sinks fed alerts, findings and inventory records by the output thread; shut down (flushed or
    /// spooled) by the end of the run.
    pub sinks: Option<Arc<crate::sink::SinkManager>>,
}

impl PipelineOptions {
    pub fn new(sensor: SensorConfig) -> Self {
        PipelineOptions {
            sensor,
            shards: 1,
            workers: 1,
            queue_transactions: 4096,
            registry: Arc::new(crate::analyzer::Registry::new()),
            telemetry: None,
            sinks: None,
        }
    }
}

/// Items cross threads in batches: one channel operation (and at most one wake-up) per batch instead of per
/// transaction. A batch is sent when full, or flushed (every few thousand packets, on idle, at the end).
pub(crate) const BATCH: usize = 64;

enum OutItem {
    Flows(Vec<FlowRecord>),
    /// Complete lines (each ending in `\n`) for one stream, and how many.
    Lines(&'static str, Vec<u8>, u64),
}

/// Queue and analyzer counters shared by the threads (relaxed atomics, touched once per transaction).
struct Shared {
    tx_enqueued: AtomicU64,
    tx_dequeued: AtomicU64,
    lost: AtomicU64,
    analyzers: Vec<(&'static str, AtomicU64, AtomicU64)>,
    records: HashMap<&'static str, AtomicU64>,
    /// Alerts and findings by (stream, `type` field), at most [`MAX_RECORD_TYPES`] keys.
    by_type: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Numbers the work queue's items (see `worker`).
    sequencer: Sequencer,
}

/// Distinct record types counted separately (operator signature packs can add types); the rest are
/// counted under `other`.
const MAX_RECORD_TYPES: usize = 256;

impl Shared {
    /// Counts an alert or finding under its `type` (read from the record itself, so analyzers need no
    /// separate bookkeeping).
    fn count_type(&self, stream: &'static str, json: &[u8]) {
        if stream != "alerts" && stream != "findings" {
            return;
        }
        #[derive(serde::Deserialize)]
        struct TypeOnly<'a> {
            #[serde(borrow, rename = "type")]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        let kind = serde_json::from_slice::<TypeOnly>(json).ok().and_then(|t| t.kind);
        let kind = kind.as_deref().unwrap_or("unknown");
        let mut m = self.by_type.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = if m.len() < MAX_RECORD_TYPES || m.contains_key(&(stream, kind.to_owned())) {
            (stream, kind.to_owned())
        } else {
            (stream, "other".to_owned())
        };
        *m.entry(key).or_insert(0) += 1;
    }
}

impl Shared {
    fn counters(&self) -> PipelineCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PipelineCounters {
            transaction_queue: QueueCounters {
                enqueued_total: get(&self.tx_enqueued),
                dequeued_total: get(&self.tx_dequeued),
            },
            queue_full_drops: get(&self.lost),
            analyzers: self
                .analyzers
                .iter()
                .map(|(n, t, ns)| AnalyzerCounters { name: (*n).to_owned(), transactions: get(t), nanos: get(ns) })
                .collect(),
            alerts_total: self.records.get("alerts").map_or(0, get),
            findings_total: self.records.get("findings").map_or(0, get),
            by_type: self
                .by_type
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|((stream, kind), n)| RecordTypeCount { stream, kind: kind.clone(), count: *n })
                .collect(),
            transactions_total: get(&self.tx_enqueued),
            ..Default::default()
        }
    }
}

/// Output streams analyzers may write (each becomes `DIR/<stream>.jsonl` when first used).
const STREAMS: &[&str] = &["transactions", "findings", "alerts", "inventory"];

/// The worker and output threads, fed by the shard through [`Pipeline::output`].
struct Pipeline {
    work: Sender<WorkItem>,
    out: Sender<OutItem>,
    workers: Vec<JoinHandle<()>>,
    writer: JoinHandle<Result<HashMap<&'static str, u64>, OutputError>>,
    shared: Arc<Shared>,
}

impl Pipeline {
    /// `deferred`: streams the sinks get from their files once the run is concluded instead of as they are
    /// written (see [`DEFERRED_IN_REPLAY`]).
    fn start(
        opts: &PipelineOptions,
        out_dir: &Path,
        deferred: &'static [&'static str],
    ) -> Result<Pipeline, OutputError> {
        std::fs::create_dir_all(out_dir).map_err(|source| OutputError::Io { path: out_dir.to_owned(), source })?;
        let flows = JsonlFile::create(out_dir.join("flows.jsonl"))?;
        let transactions = JsonlFile::create(out_dir.join("transactions.jsonl"))?;
        let shared = Arc::new(Shared {
            tx_enqueued: AtomicU64::new(0),
            tx_dequeued: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            analyzers: opts.registry.names().into_iter().map(|n| (n, AtomicU64::new(0), AtomicU64::new(0))).collect(),
            records: STREAMS.iter().map(|s| (*s, AtomicU64::new(0))).collect(),
            by_type: Mutex::new(BTreeMap::new()),
            sequencer: Sequencer::new(),
        });
        // The queues carry batches: `queue_transactions` bounds transactions in flight (and so the bodies they
        // hold from the HTTP budget), not batches of them.
        let queue = opts.queue_transactions.div_ceil(BATCH).max(2);
        let (work, work_rx) = bounded::<WorkItem>(queue);
        // Lines queue deeper than transactions: a transaction may yield several lines.
        let (out, out_rx) = bounded::<OutItem>(queue * 2);
        let dir = out_dir.to_owned();
        let sinks = opts.sinks.clone();
        let writer = std::thread::Builder::new()
            .name("output".into())
            .spawn(move || output_loop(out_rx, dir, flows, transactions, sinks, deferred))
            .map_err(|e| OutputError::Io { path: out_dir.to_owned(), source: e })?;
        let mut workers = Vec::new();
        let gates = Arc::new(Gates::new(opts.registry.names().len()));
        for i in 0..opts.workers.max(1) {
            let (rx, out, shared, registry) = (work_rx.clone(), out.clone(), shared.clone(), opts.registry.clone());
            let gates = gates.clone();
            let t = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || worker_loop(rx, out, &shared, &registry, &gates))
                .map_err(|e| OutputError::Io { path: out_dir.to_owned(), source: e })?;
            workers.push(t);
        }
        Ok(Pipeline { work, out, workers, writer, shared })
    }

    fn output(&self) -> ShardOutput {
        ShardOutput {
            work: self.work.clone(),
            out: self.out.clone(),
            shared: self.shared.clone(),
            txs: Vec::with_capacity(BATCH),
            flows: Vec::new(),
        }
    }

    /// Time for the analyzers' time-based work. In replay (`wait`) a tick is part of the input's order and
    /// waits for room; live, it is best-effort: the shard never blocks for one.
    fn tick(&self, now: Timestamp, wait: bool) {
        self.shared.sequencer.send_tick(&self.work, now, wait);
    }

    /// Closes the queues, waits for every thread, and flushes the files.
    fn finish(self) -> Result<(HashMap<&'static str, u64>, PipelineCounters), OutputError> {
        let Pipeline { work, out, workers, writer, shared } = self;
        drop(work);
        for w in workers {
            if w.join().is_err() {
                tracing::error!("An analyzer worker panicked; its transactions in flight are lost.");
            }
        }
        drop(out);
        let lines = match writer.join() {
            Ok(r) => r?,
            Err(_) => {
                return Err(OutputError::Io {
                    path: PathBuf::from("output thread"),
                    source: std::io::Error::other("output thread panicked"),
                });
            }
        };
        Ok((lines, shared.counters()))
    }
}

/// What the shard writes to: transactions to the workers, flow records to the output thread. Sends block
/// when a queue is full (back-pressure); a send fails only when the receiving threads are gone.
struct ShardOutput {
    work: Sender<WorkItem>,
    out: Sender<OutItem>,
    shared: Arc<Shared>,
    txs: Vec<Arc<Transaction>>,
    flows: Vec<FlowRecord>,
}

impl ShardOutput {
    /// Hands the pending batches on.
    fn flush(&mut self) {
        if !self.txs.is_empty() {
            let batch = std::mem::replace(&mut self.txs, Vec::with_capacity(BATCH));
            let n = batch.len() as u64;
            if self.shared.sequencer.send_batch(&self.work, batch).is_err() {
                self.shared.lost.fetch_add(n, Ordering::Relaxed);
            }
        }
        if !self.flows.is_empty() {
            let batch = std::mem::take(&mut self.flows);
            let n = batch.len() as u64;
            if self.out.send(OutItem::Flows(batch)).is_err() {
                self.shared.lost.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for ShardOutput {
    fn drop(&mut self) {
        self.flush();
    }
}

impl FlowOutput for ShardOutput {
    fn flow_closed(&mut self, rec: FlowRecord) {
        self.flows.push(rec);
        if self.flows.len() >= BATCH {
            self.flush();
        }
    }
    fn transaction(&mut self, tx: Transaction) {
        self.shared.tx_enqueued.fetch_add(1, Ordering::Relaxed);
        self.txs.push(Arc::new(tx));
        if self.txs.len() >= BATCH {
            self.flush();
        }
    }
}

fn output_loop(
    rx: Receiver<OutItem>,
    dir: PathBuf,
    mut flows: JsonlFile,
    transactions: JsonlFile,
    sinks: Option<Arc<crate::sink::SinkManager>>,
    deferred: &'static [&'static str],
) -> Result<HashMap<&'static str, u64>, OutputError> {
    let mut files: HashMap<&'static str, JsonlFile> = HashMap::new();
    files.insert("transactions", transactions);
    let mut open_error: Option<OutputError> = None;
    for item in rx {
        match item {
            OutItem::Flows(recs) => {
                for rec in &recs {
                    flows.write(rec);
                }
            }
            OutItem::Lines(stream, json, n) => {
                if let Some(s) = &sinks
                    && !deferred.contains(&stream)
                {
                    s.offer(stream, &json);
                }
                if !files.contains_key(stream) {
                    match JsonlFile::create(dir.join(format!("{stream}.jsonl"))) {
                        Ok(f) => {
                            files.insert(stream, f);
                        }
                        Err(e) => {
                            open_error.get_or_insert(e);
                            continue;
                        }
                    }
                }
                if let Some(f) = files.get_mut(stream) {
                    f.write_lines(&json, n);
                }
            }
        }
    }
    let mut lines = HashMap::new();
    lines.insert("flows", flows.finish()?);
    for (stream, f) in files {
        lines.insert(stream, f.finish()?);
    }
    match open_error {
        Some(e) => Err(e),
        None => Ok(lines),
    }
}

/// A decoded packet copied out of the capture buffer, to hand to a shard thread. Boxes are recycled.
struct OwnedPacket {
    ts: Timestamp,
    encap: crate::decode::Encap,
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    transport: OwnedTransport,
    payload: Vec<u8>,
    wire_len: u32,
    truncated: bool,
}

#[derive(Copy, Clone)]
enum OwnedTransport {
    Tcp(crate::decode::TcpHeader, u32),
    Udp(u16, u16),
    Other(u8),
}

impl OwnedPacket {
    fn fill(&mut self, v: &crate::decode::PacketView<'_>) {
        use crate::decode::Transport;
        self.ts = v.ts;
        self.encap = v.encap;
        self.src = v.src;
        self.dst = v.dst;
        self.wire_len = v.wire_len;
        self.truncated = v.truncated;
        self.payload.clear();
        self.transport = match v.transport {
            Transport::Tcp { hdr, payload, wire_payload_len } => {
                self.payload.extend_from_slice(payload);
                OwnedTransport::Tcp(hdr, wire_payload_len)
            }
            Transport::Udp { src_port, dst_port, payload } => {
                self.payload.extend_from_slice(payload);
                OwnedTransport::Udp(src_port, dst_port)
            }
            Transport::Other { proto } => OwnedTransport::Other(proto),
        };
    }

    fn view(&self) -> crate::decode::PacketView<'_> {
        use crate::decode::Transport;
        let transport = match self.transport {
            OwnedTransport::Tcp(hdr, wire_payload_len) => {
                Transport::Tcp { hdr, payload: &self.payload, wire_payload_len }
            }
            OwnedTransport::Udp(src_port, dst_port) => Transport::Udp { src_port, dst_port, payload: &self.payload },
            OwnedTransport::Other(proto) => Transport::Other { proto },
        };
        crate::decode::PacketView {
            ts: self.ts,
            encap: self.encap,
            src: self.src,
            dst: self.dst,
            transport,
            wire_len: self.wire_len,
            truncated: self.truncated,
        }
    }
}

/// Packets queued per shard.
const SHARD_QUEUE_PACKETS: usize = 4096;

/// A shard thread's input queue and its handle (which returns the shard's final counters).
type ShardThread = (Sender<Box<OwnedPacket>>, JoinHandle<(FlowStats, HttpStats)>);

/// Several flow tables on their own threads, fed by the reading thread, which decodes (fragments included)
/// and routes each packet by the symmetric hash of its flow key: one thread owns each flow, no locks.
struct Sharded {
    decoder: Decoder,
    capture: CaptureStats,
    clock: Timestamp,
    vlan_in_key: bool,
    shards: Vec<ShardThread>,
    pool: Receiver<Box<OwnedPacket>>,
    live: Vec<Arc<std::sync::Mutex<(FlowStats, HttpStats, usize)>>>,
}

impl Sharded {
    fn start(cfg: &SensorConfig, n: usize, pipeline: &Pipeline) -> std::io::Result<Sharded> {
        let (recycle, pool) = bounded::<Box<OwnedPacket>>(SHARD_QUEUE_PACKETS * n);
        let mut shards = Vec::with_capacity(n);
        let mut live = Vec::with_capacity(n);
        let http = Arc::new(cfg.http.clone());
        for i in 0..n {
            let (tx, rx) = bounded::<Box<OwnedPacket>>(SHARD_QUEUE_PACKETS);
            // The caps are the process's (a sensor is sized by its memory, not its cores): each shard gets its share.
            let mut flow = cfg.flow.clone();
            flow.memcap_bytes = (flow.memcap_bytes / n).max(1);
            flow.max_flows = (flow.max_flows / n).max(1);
            let mut reasm = cfg.reassembly.clone();
            reasm.memcap_bytes = (reasm.memcap_bytes / n).max(reasm.max_buffered_bytes_per_dir);
            let mut table = FlowTable::new(flow, reasm, http.clone());
            // Distinct uid streams per shard.
            table.set_uid_seed(run_key() ^ (i as u64 + 1).wrapping_mul(0xff51_afd7_ed55_8ccd));
            let mut out = pipeline.output();
            let recycle = recycle.clone();
            let snapshot = Arc::new(std::sync::Mutex::new((FlowStats::default(), HttpStats::default(), 0usize)));
            live.push(snapshot.clone());
            let t = std::thread::Builder::new().name(format!("shard-{i}")).spawn(move || {
                let mut last = Timestamp(0);
                let mut n = 0u64;
                loop {
                    let pkt = match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(p) => p,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            out.flush();
                            continue;
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                    };
                    last = last.max(pkt.ts);
                    table.process(&pkt.view(), &mut out);
                    let _ = recycle.try_send(pkt);
                    n += 1;
                    if n.is_multiple_of(CLOCK_EVERY_PACKETS)
                        && let Ok(mut s) = snapshot.try_lock()
                    {
                        *s = (table.stats(), table.http_stats().clone(), table.reassembly_memory());
                    }
                }
                table.flush_all(last, &mut out);
                out.flush();
                (table.stats(), table.http_stats().clone())
            })?;
            shards.push((tx, t));
        }
        Ok(Sharded {
            decoder: Decoder::new(cfg.decode.clone()),
            capture: CaptureStats::default(),
            clock: Timestamp(0),
            vlan_in_key: cfg.flow.vlan_in_key,
            shards,
            pool,
            live,
        })
    }

    fn process(&mut self, pkt: RawPacket<'_>) {
        let pkt = self.capture.admit(&mut self.clock, pkt);
        let Some(view) = self.decoder.decode(pkt) else { return };
        let (key, _) = crate::flow::key::FlowKey::of(&view, self.vlan_in_key);
        let i = (key.shard_hash() % self.shards.len() as u64) as usize;
        let mut owned = self.pool.try_recv().unwrap_or_else(|_| {
            Box::new(OwnedPacket {
                ts: Timestamp(0),
                encap: Default::default(),
                src: std::net::Ipv4Addr::UNSPECIFIED.into(),
                dst: std::net::Ipv4Addr::UNSPECIFIED.into(),
                transport: OwnedTransport::Other(0),
                payload: Vec::new(),
                wire_len: 0,
                truncated: false,
            })
        });
        owned.fill(&view);
        if let Some((tx, _)) = self.shards.get(i) {
            // Blocks when the shard is behind: back-pressure, never a silent drop.
            let _ = tx.send(owned);
        }
    }

    fn finish(&mut self) -> (FlowStats, HttpStats) {
        let mut flows = FlowStats::default();
        let mut http = HttpStats::default();
        for (tx, t) in self.shards.drain(..) {
            drop(tx);
            match t.join() {
                Ok((f, h)) => {
                    flows.merge(&f);
                    http.merge(&h);
                }
                Err(_) => tracing::error!("A shard thread panicked; its flows are lost."),
            }
        }
        (flows, http)
    }

    fn snapshot(&self) -> (FlowStats, HttpStats, usize) {
        let mut flows = FlowStats::default();
        let mut http = HttpStats::default();
        let mut mem = 0;
        for s in &self.live {
            if let Ok(s) = s.lock() {
                flows.merge(&s.0);
                http.merge(&s.1);
                mem += s.2;
            }
        }
        (flows, http, mem)
    }
}

/// The shard layout of a run: the reading thread is the only shard, or it feeds several.
enum Engine {
    Single(Box<Sensor>, Box<ShardOutput>),
    Sharded(Box<Sharded>, Option<Box<(FlowStats, HttpStats)>>),
}

impl Engine {
    fn start(cfg: &SensorConfig, shards: usize, pipeline: &Pipeline) -> Result<Engine, OutputError> {
        if shards <= 1 {
            return Ok(Engine::Single(Box::new(Sensor::new(cfg.clone())), Box::new(pipeline.output())));
        }
        Sharded::start(cfg, shards, pipeline)
            .map(|s| Engine::Sharded(Box::new(s), None))
            .map_err(|source| OutputError::Io { path: PathBuf::from("shard thread"), source })
    }

    fn process(&mut self, pkt: RawPacket<'_>) {
        match self {
            Engine::Single(s, out) => s.process(pkt, out.as_mut()),
            Engine::Sharded(s, _) => s.process(pkt),
        }
    }

    /// Hands pending batches on (the shard threads of a sharded engine flush on their own).
    fn flush(&mut self) {
        if let Engine::Single(_, out) = self {
            out.flush();
        }
    }

    fn finish(&mut self) {
        match self {
            Engine::Single(s, out) => {
                s.finish(out.as_mut());
                out.flush();
            }
            Engine::Sharded(s, done) => *done = Some(Box::new(s.finish())),
        }
    }

    fn capture_stats_mut(&mut self) -> &mut CaptureStats {
        match self {
            Engine::Single(s, _) => s.capture_stats_mut(),
            Engine::Sharded(s, _) => &mut s.capture,
        }
    }

    fn stats(&self) -> (Stats, usize) {
        match self {
            Engine::Single(s, _) => (s.stats(), s.reassembly_memory()),
            Engine::Sharded(s, done) => {
                let (flows, http, mem) = match done {
                    Some(fh) => (fh.0.clone(), fh.1.clone(), 0),
                    None => s.snapshot(),
                };
                let st = Stats {
                    capture: s.capture.clone(),
                    decode: s.decoder.stats().clone(),
                    flows,
                    http,
                    analyzers: Vec::new(),
                };
                (st, mem)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Input(#[from] FileError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What a run produced.
#[derive(Debug)]
pub struct ReplaySummary {
    pub stats: Stats,
    pub pipeline: PipelineCounters,
    /// Lines written per output stream (`flows`, `transactions`, analyzers' streams).
    pub lines: HashMap<&'static str, u64>,
    pub flows: u64,
    pub transactions: u64,
    pub out_dir: PathBuf,
    pub wall: Duration,
}

/// Progress of a running replay, for a progress bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub packets: u64,
    pub bytes_read: u64,
    pub transactions: u64,
}

/// Packets between two looks at the wall clock (progress, telemetry, ticks).
const CLOCK_EVERY_PACKETS: u64 = 4096;

/// Replays capture files into `out_dir` (`flows.jsonl`, `transactions.jsonl`, `stats.json`, analyzer
/// streams). Damaged files are read as far as possible; `summary.stats.capture.file_errors` says where they
/// stopped.
pub fn replay<P: AsRef<Path>>(
    paths: &[P],
    out_dir: &Path,
    opts: PipelineOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ReplaySummary, ReplayError> {
    let started = Instant::now();
    let mut source = FileSource::open(paths)?;
    let pipeline = Pipeline::start(&opts, out_dir, DEFERRED_IN_REPLAY)?;
    let mut sensor = Engine::start(&opts.sensor, opts.shards, &pipeline)?;
    let mut last = Instant::now();
    let mut last_tick = Timestamp(0);
    let mut n = 0u64;
    {
        while let Some(pkt) = source.next_packet() {
            let ts = pkt.ts;
            sensor.process(pkt);
            n += 1;
            if n.is_multiple_of(CLOCK_EVERY_PACKETS) {
                sensor.flush();
                // Analyzer ticks follow packet time in replay.
                if ts.0 >= last_tick.0.saturating_add(1_000_000_000) {
                    last_tick = ts;
                    pipeline.tick(ts, true);
                }
                if last.elapsed() >= Duration::from_millis(250) {
                    last = Instant::now();
                    progress(Progress {
                        packets: n,
                        bytes_read: source.bytes_read(),
                        transactions: pipeline.shared.tx_enqueued.load(Ordering::Relaxed),
                    });
                    publish(&opts, &sensor, &pipeline.shared);
                }
            }
        }
        sensor.finish();
    }
    sensor.capture_stats_mut().file_errors = source.errors().to_vec();
    Ok(conclude(sensor, pipeline, &opts, out_dir, started, DEFERRED_IN_REPLAY)?)
}

/// Streams a replay hands the sinks at its end, from the files: findings and alerts are filed under their
/// operations' final templates once the run is over (the inventory rewrites them), and the SIEM gets what
/// the files hold. A live sensor sends them as they are raised.
const DEFERRED_IN_REPLAY: &[&str] = &["alerts", "findings"];

/// Offers the lines of `path` to the sinks, a bounded chunk at a time.
fn offer_file(sinks: &crate::sink::SinkManager, stream: &str, path: &Path) {
    use std::io::BufRead as _;
    let Ok(f) = std::fs::File::open(path) else { return };
    let mut chunk = Vec::new();
    for line in std::io::BufReader::new(f).split(b'\n') {
        let Ok(line) = line else {
            tracing::error!(file = %path.display(), "Reading the records back for the sinks failed; the rest stays in the file only.");
            break;
        };
        chunk.extend_from_slice(&line);
        chunk.push(b'\n');
        if chunk.len() >= 1 << 20 {
            sinks.offer(stream, &chunk);
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        sinks.offer(stream, &chunk);
    }
}

/// Ends a run whose input is exhausted and whose engine is finished: waits for the workers and the output
/// thread, concludes the analyzers, hands the sinks the `deferred` streams, publishes the final counters
/// and writes `stats.json`.
fn conclude(
    sensor: Engine,
    pipeline: Pipeline,
    opts: &PipelineOptions,
    out_dir: &Path,
    started: Instant,
    deferred: &[&str],
) -> Result<ReplaySummary, OutputError> {
    let stats = sensor.stats().0;
    // The engine holds senders into the pipeline: they must be gone before the pipeline can drain.
    drop(sensor);
    let finished = pipeline.finish();
    let concluded = match &finished {
        Ok(_) => opts.registry.conclude(out_dir),
        Err(_) => Ok(()),
    };
    // Before any early return: what the sinks hold in memory is delivered or spooled, never lost.
    if let Some(s) = &opts.sinks {
        for stream in deferred {
            offer_file(s, stream, &out_dir.join(format!("{stream}.jsonl")));
        }
        s.shutdown();
    }
    let (lines, counters) = finished?;
    concluded.map_err(|(name, source)| OutputError::Io { path: out_dir.join(name), source })?;
    if let Some(t) = &opts.telemetry {
        t.publish(&stats, &counters);
    }
    let mut stats = stats;
    stats.analyzers = counters.analyzers.clone();
    write_json_file(&out_dir.join("stats.json"), &stats)?;
    Ok(ReplaySummary {
        flows: lines.get("flows").copied().unwrap_or(0),
        transactions: lines.get("transactions").copied().unwrap_or(0),
        stats,
        pipeline: counters,
        lines,
        out_dir: out_dir.to_owned(),
        wall: started.elapsed(),
    })
}

fn publish(opts: &PipelineOptions, sensor: &Engine, shared: &Shared) {
    if let Some(t) = &opts.telemetry {
        let mut pc = shared.counters();
        let (stats, mem) = sensor.stats();
        pc.reassembly_memory_bytes = mem as u64;
        t.publish(&stats, &pc);
    }
}

/// Hooks of a live run into its service manager.
#[derive(Default)]
pub struct LiveHooks {
    /// Set by SIGHUP; the run clears it and calls `reload`.
    pub reload_requested: Option<Arc<AtomicBool>>,
    pub reload: Option<Box<dyn FnMut() + Send>>,
    /// Tell systemd (Type=notify) when ready, keep its watchdog fed, say when stopping.
    pub systemd_notify: bool,
}

/// Live capture into `out_dir` until `stop` is set (SIGINT/SIGTERM) or, with `duration`, until that much
/// wall-clock time has passed. Everything in flight is flushed through the analyzers and outputs first.
#[cfg(feature = "live-pcap")]
pub fn run_live(
    live: &crate::capture::live::LiveConfig,
    out_dir: &Path,
    opts: PipelineOptions,
    stop: Arc<AtomicBool>,
    duration: Option<Duration>,
    mut hooks: LiveHooks,
) -> Result<ReplaySummary, LiveRunError> {
    use sd_notify::NotifyState;
    let started = Instant::now();
    let mut source = crate::capture::live::LiveSource::open(live, stop.clone())?;
    let pipeline = Pipeline::start(&opts, out_dir, &[])?;
    let mut sensor = Engine::start(&opts.sensor, opts.shards, &pipeline)?;
    let notify = |s: &[NotifyState<'_>]| {
        if hooks.systemd_notify {
            let _ = sd_notify::notify(s);
        }
    };
    let watchdog = if hooks.systemd_notify { sd_notify::watchdog_enabled() } else { None };
    notify(&[NotifyState::Ready]);
    tracing::info!(interfaces = ?live.interfaces, out = %out_dir.display(), "Capture started.");
    let mut last_second = Instant::now();
    let mut last_watchdog = Instant::now();
    let mut stopping = false;
    {
        loop {
            if duration.is_some_and(|d| started.elapsed() >= d) {
                stop.store(true, Ordering::SeqCst);
            }
            if stop.load(Ordering::Relaxed) && !stopping {
                stopping = true;
                source.stop();
                notify(&[NotifyState::Stopping]);
                tracing::info!("Stopping: flushing flows and transactions in flight.");
            }
            if let Some(pkt) = source.next_packet(Duration::from_millis(100)) {
                sensor.process(pkt);
            } else if source.finished() {
                break;
            } else {
                // A quiet link: nothing waits in a half-full batch.
                sensor.flush();
            }
            if last_second.elapsed() >= Duration::from_secs(1) {
                last_second = Instant::now();
                sensor.flush();
                pipeline.tick(
                    Timestamp(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos() as u64),
                    ),
                    false,
                );
                let (_, kernel, iface, queue_full) = source.totals();
                let c = sensor.capture_stats_mut();
                (c.kernel_drops, c.interface_drops, c.queue_full_drops) = (kernel, iface, queue_full);
                publish(&opts, &sensor, &pipeline.shared);
                if let Some(flag) = &hooks.reload_requested
                    && flag.swap(false, Ordering::SeqCst)
                {
                    notify(&[NotifyState::Reloading]);
                    if let Some(reload) = hooks.reload.as_mut() {
                        reload();
                    }
                    notify(&[NotifyState::Ready]);
                }
            }
            // Fed from the processing loop itself, so a wedged pipeline is restarted by systemd.
            if let Some(w) = watchdog
                && last_watchdog.elapsed() >= w / 2
            {
                last_watchdog = Instant::now();
                notify(&[NotifyState::Watchdog]);
            }
        }
        source.join();
        while let Some(pkt) = source.next_packet(Duration::ZERO) {
            sensor.process(pkt);
        }
        sensor.finish();
    }
    let (_, kernel, iface, queue_full) = source.totals();
    let c = sensor.capture_stats_mut();
    (c.kernel_drops, c.interface_drops, c.queue_full_drops) = (kernel, iface, queue_full);
    let summary = conclude(sensor, pipeline, &opts, out_dir, started, &[])?;
    tracing::info!(
        flows = summary.flows,
        transactions = summary.transactions,
        kernel_drops = kernel,
        queue_full_drops = queue_full,
        "Capture stopped."
    );
    Ok(summary)
}

#[cfg(feature = "live-pcap")]
#[derive(Debug, thiserror::Error)]
pub enum LiveRunError {
    #[error(transparent)]
    Capture(#[from] crate::capture::live::LiveError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            tx_enqueued: AtomicU64::new(0),
            tx_dequeued: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            analyzers: Vec::new(),
            records: HashMap::new(),
            by_type: Mutex::new(BTreeMap::new()),
            sequencer: Sequencer::new(),
        }
    }

    #[test]
    fn records_are_counted_by_type_with_a_cap() {
        let s = shared();
        s.count_type("alerts", br#"{"id":"x","type":"sqli","title":"a \"quoted\" title"}"#);
        s.count_type("alerts", br#"{"type":"sqli"}"#);
        s.count_type("findings", br#"{"type":"email"}"#);
        s.count_type("findings", br#"{"no_type":1}"#);
        s.count_type("findings", b"not json");
        s.count_type("transactions", br#"{"type":"ignored"}"#);
        let by = |st: &str, k: &str| {
            s.counters().by_type.iter().find(|t| t.stream == st && t.kind == k).map_or(0, |t| t.count)
        };
        assert_eq!((by("alerts", "sqli"), by("findings", "email"), by("findings", "unknown")), (2, 1, 2));
        assert_eq!(by("transactions", "ignored"), 0);
        for i in 0..MAX_RECORD_TYPES * 2 {
            s.count_type("alerts", format!(r#"{{"type":"t{i}"}}"#).as_bytes());
        }
        let c = s.counters();
        assert_eq!(c.by_type.len(), MAX_RECORD_TYPES + 1, "capped, plus the `other` key");
        assert!(by("alerts", "other") > 0);
        assert_eq!(by("alerts", "sqli"), 2, "a known type keeps counting past the cap");
        s.count_type("alerts", br#"{"type":"sqli"}"#);
        assert_eq!(by("alerts", "sqli"), 3);
    }
}
