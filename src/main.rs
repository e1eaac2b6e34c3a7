//! The `mirador` command line: parse arguments, run, map the outcome to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mirador::pipeline::{self, ReplayError, SensorConfig};
use mirador::reassembly::OverlapPolicy;

/// Exit codes (documented in README): 0 ok; 1 runtime failure; 2 bad usage or unreadable input;
/// 3 a capture file was damaged part-way (outputs hold everything before the damage).
const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_PARTIAL_INPUT: u8 = 3;

#[derive(Parser)]
#[command(name = "mirador", version, about = "Passive API-security sensor", long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct TuningArgs {
    /// Which copy of overlapping TCP data wins when segments disagree.
    #[arg(long, value_enum, default_value = "first-wins")]
    overlap_policy: Policy,
    /// Ignore TCP connections whose handshake was not captured.
    #[arg(long)]
    no_midstream: bool,
    /// Leave VLAN ids out of the flow key (when a SPAN puts the two directions on different VLANs).
    #[arg(long)]
    no_vlan_in_key: bool,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Policy {
    FirstWins,
    LastWins,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay pcap/pcapng files (merged in timestamp order) and write flows.jsonl, transactions.jsonl and
    /// stats.json to --out.
    #[command(
        after_help = "Examples:\n  mirador replay pcaps/demo.pcap --out out/\n  mirador replay tap-a.pcap tap-b.pcapng --out out/"
    )]
    Replay {
        /// Capture files (pcap or pcapng).
        #[arg(required = true)]
        pcaps: Vec<PathBuf>,
        /// Output directory (created if missing).
        #[arg(long, short)]
        out: PathBuf,
        #[command(flatten)]
        tuning: TuningArgs,
    },
    /// Capture live from one or more interfaces until SIGINT/SIGTERM, then flush and write to --out.
    #[command(
        after_help = "Examples:\n  mirador run -i eth1 --out /var/lib/mirador/out\n  mirador run -i tap0 -i tap1 --filter 'tcp port 80' --out out/"
    )]
    Run {
        /// Interface to capture on; repeat for several (a TAP gives one per direction).
        #[arg(long = "interface", short = 'i', required = true)]
        interfaces: Vec<String>,
        #[arg(long, short)]
        out: PathBuf,
        /// BPF filter expression.
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, default_value_t = 65535)]
        snaplen: u32,
        /// Kernel capture buffer per interface, bytes.
        #[arg(long, default_value_t = 64 << 20)]
        buffer_bytes: u32,
        /// Do not put the interface in promiscuous mode.
        #[arg(long)]
        no_promisc: bool,
        /// Stop after this many seconds (default: run until signalled).
        #[arg(long)]
        duration_secs: Option<u64>,
        #[command(flatten)]
        tuning: TuningArgs,
    },
}

fn sensor_config(t: &TuningArgs) -> SensorConfig {
    let mut cfg = SensorConfig::default();
    cfg.reassembly.policy = match t.overlap_policy {
        Policy::FirstWins => OverlapPolicy::FirstWins,
        Policy::LastWins => OverlapPolicy::LastWins,
    };
    cfg.flow.midstream = !t.no_midstream;
    cfg.flow.vlan_in_key = !t.no_vlan_in_key;
    cfg
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.cmd {
        Cmd::Replay { pcaps, out, tuning } => replay(&pcaps, &out, sensor_config(&tuning)),
        Cmd::Run { interfaces, out, filter, snaplen, buffer_bytes, no_promisc, duration_secs, tuning } => {
            run(interfaces, out, filter, snaplen, buffer_bytes, !no_promisc, duration_secs, sensor_config(&tuning))
        }
    }
}

fn replay(pcaps: &[PathBuf], out: &std::path::Path, cfg: SensorConfig) -> ExitCode {
    let started = std::time::Instant::now();
    match pipeline::replay(pcaps, out, cfg) {
        Ok(s) => {
            let secs = started.elapsed().as_secs_f64();
            let c = &s.stats.capture;
            eprintln!(
                "mirador: {} packets, {} bytes, {} flows, {} HTTP transactions in {:.2}s ({:.2} Gbit/s) -> {}",
                c.packets,
                c.bytes,
                s.flows,
                s.transactions,
                secs,
                c.bytes as f64 * 8.0 / secs.max(1e-9) / 1e9,
                s.out_dir.display()
            );
            if c.file_errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                for p in &c.file_errors {
                    eprintln!("mirador: error: {p}");
                }
                ExitCode::from(EXIT_PARTIAL_INPUT)
            }
        }
        Err(ReplayError::Input(e)) => {
            eprintln!("mirador: error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e @ ReplayError::Output(_)) => {
            eprintln!("mirador: error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[cfg(feature = "live-pcap")]
fn run(
    interfaces: Vec<String>,
    out: PathBuf,
    filter: Option<String>,
    snaplen: u32,
    buffer_bytes: u32,
    promiscuous: bool,
    duration_secs: Option<u64>,
    cfg: SensorConfig,
) -> ExitCode {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let live = mirador::capture::live::LiveConfig {
        interfaces,
        promiscuous,
        snaplen,
        buffer_bytes,
        filter,
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("mirador: error: cannot install signal handler: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    match pipeline::run_live(&live, &out, cfg, stop, duration_secs.map(std::time::Duration::from_secs)) {
        Ok(s) => {
            let c = &s.stats.capture;
            eprintln!(
                "mirador: {} packets, {} flows, {} HTTP transactions; drops: kernel {}, interface {}, queue full {} -> {}",
                c.packets,
                s.flows,
                s.transactions,
                c.kernel_drops,
                c.interface_drops,
                c.queue_full_drops,
                s.out_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(pipeline::LiveRunError::Capture(e)) => {
            eprintln!("mirador: error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("mirador: error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[cfg(not(feature = "live-pcap"))]
fn run(
    _interfaces: Vec<String>,
    _out: PathBuf,
    _filter: Option<String>,
    _snaplen: u32,
    _buffer_bytes: u32,
    _promiscuous: bool,
    _duration_secs: Option<u64>,
    _cfg: SensorConfig,
) -> ExitCode {
    eprintln!("mirador: error: built without live capture (feature live-pcap)");
    ExitCode::from(EXIT_USAGE)
}
