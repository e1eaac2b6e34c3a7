//! The sensor's processing chain for one shard: decode → flow table → reassembly → HTTP, and the offline
//! replay driver. (Threads, channels and workers come with the analyzers.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::capture::file::{FileError, FileProblem, FileSource};
use crate::capture::{RawPacket, Timestamp};
use crate::decode::{DecodeConfig, DecodeStats, Decoder};
use crate::flow::table::{FlowConfig, FlowOutput, FlowStats, FlowTable};
use crate::http::{HttpConfig, HttpStats};
use crate::output::{OutputDir, OutputError, write_json_file};
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
}

/// Everything counted during a run: `stats.json`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub capture: CaptureStats,
    pub decode: DecodeStats,
    pub flows: FlowStats,
    pub http: HttpStats,
}

/// One shard: owns its decoder and flow table; no locks.
pub struct Sensor {
    decoder: Decoder,
    table: FlowTable,
    capture: CaptureStats,
    clock: Timestamp,
}

impl Sensor {
    pub fn new(cfg: SensorConfig) -> Self {
        Sensor {
            decoder: Decoder::new(cfg.decode),
            table: FlowTable::new(cfg.flow, cfg.reassembly, Arc::new(cfg.http)),
            capture: CaptureStats::default(),
            clock: Timestamp(0),
        }
    }

    pub fn process(&mut self, pkt: RawPacket<'_>, out: &mut impl FlowOutput) {
        self.capture.packets += 1;
        self.capture.bytes += u64::from(pkt.orig_len);
        // Time never goes backwards for timeouts: a packet older than the clock is processed at the clock.
        let mut pkt = pkt;
        if pkt.ts < self.clock {
            self.capture.out_of_order_timestamps += 1;
            pkt.ts = self.clock;
        } else {
            self.clock = pkt.ts;
        }
        if let Some(view) = self.decoder.decode(pkt) {
            self.table.process(&view, out);
        }
    }

    /// Closes every flow and emits what they still hold (end of input, shutdown).
    pub fn finish(&mut self, out: &mut impl FlowOutput) {
        self.table.flush_all(self.clock, out);
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

/// What a replay produced.
#[derive(Debug)]
pub struct ReplaySummary {
    pub stats: Stats,
    pub flows: u64,
    pub transactions: u64,
    pub out_dir: PathBuf,
}

/// Replays capture files into `out_dir` (`flows.jsonl`, `transactions.jsonl`, `stats.json`). Damaged files are
/// read as far as possible; `summary.stats.capture.file_errors` says where they stopped.
pub fn replay<P: AsRef<Path>>(paths: &[P], out_dir: &Path, cfg: SensorConfig) -> Result<ReplaySummary, ReplayError> {
    let mut source = FileSource::open(paths)?;
    let mut out = OutputDir::create(out_dir)?;
    let mut sensor = Sensor::new(cfg);
    while let Some(pkt) = source.next_packet() {
        sensor.process(pkt, &mut out);
    }
    sensor.finish(&mut out);
    sensor.capture_stats_mut().file_errors = source.errors().to_vec();
    let stats = sensor.stats();
    let (flows, transactions) = out.finish()?;
    write_json_file(&out_dir.join("stats.json"), &stats)?;
    Ok(ReplaySummary { stats, flows, transactions, out_dir: out_dir.to_owned() })
}

/// Live capture into `out_dir` until `stop` is set (SIGINT/SIGTERM) or, with `duration`, until that much
/// wall-clock time has passed. Everything in flight is flushed before returning.
#[cfg(feature = "live-pcap")]
pub fn run_live(
    live: &crate::capture::live::LiveConfig,
    out_dir: &Path,
    cfg: SensorConfig,
    stop: Arc<std::sync::atomic::AtomicBool>,
    duration: Option<std::time::Duration>,
) -> Result<ReplaySummary, LiveRunError> {
    use std::sync::atomic::Ordering;
    let mut source = crate::capture::live::LiveSource::open(live, stop.clone())?;
    let mut out = OutputDir::create(out_dir)?;
    let mut sensor = Sensor::new(cfg);
    let started = std::time::Instant::now();
    tracing::info!(interfaces = ?live.interfaces, "Capture started.");
    loop {
        if duration.is_some_and(|d| started.elapsed() >= d) {
            stop.store(true, Ordering::SeqCst);
        }
        if let Some(pkt) = source.next_packet(std::time::Duration::from_millis(100)) {
            sensor.process(pkt, &mut out);
        } else if source.finished() {
            break;
        }
    }
    source.join();
    while let Some(pkt) = source.next_packet(std::time::Duration::ZERO) {
        sensor.process(pkt, &mut out);
    }
    sensor.finish(&mut out);
    let (_, kernel, iface, queue_full) = source.totals();
    let c = sensor.capture_stats_mut();
    c.kernel_drops = kernel;
    c.interface_drops = iface;
    c.queue_full_drops = queue_full;
    let stats = sensor.stats();
    let (flows, transactions) = out.finish()?;
    write_json_file(&out_dir.join("stats.json"), &stats)?;
    tracing::info!(flows, transactions, kernel_drops = kernel, queue_full_drops = queue_full, "Capture stopped.");
    Ok(ReplaySummary { stats, flows, transactions, out_dir: out_dir.to_owned() })
}

#[cfg(feature = "live-pcap")]
#[derive(Debug, thiserror::Error)]
pub enum LiveRunError {
    #[error(transparent)]
    Capture(#[from] crate::capture::live::LiveError),
    #[error(transparent)]
    Output(#[from] OutputError),
}
