//! The `mirador` command line: parse arguments, load the config, run, map the outcome to an exit code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use mirador::config::{self, Config, RawConfig};
use mirador::metrics::{self, Telemetry};
use mirador::pipeline::{self, PipelineOptions, Progress, ReplayError, ReplaySummary};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mirador::reassembly::OverlapPolicy;

/// Exit codes (documented in README): 0 ok; 1 runtime failure; 2 bad usage, bad config or unreadable input;
/// 3 a capture file was damaged part-way (outputs hold everything before the damage).
const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_PARTIAL_INPUT: u8 = 3;

#[derive(Parser)]
#[command(
    name = "mirador",
    version,
    about = "Passive API-security sensor: capture or replay traffic, reassemble TCP, log HTTP transactions",
    after_help = "Examples:\n  mirador replay pcaps/demo.pcap --out out/demo\n  mirador run --config /etc/mirador/mirador.toml\n  mirador run -i eth1 --out /var/lib/mirador/out\n  mirador check-config /etc/mirador/mirador.toml"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags shared by `run` and `replay`; each overrides its config key.
#[derive(clap::Args, Clone)]
struct CommonArgs {
    /// Config file (TOML). `run` reads /etc/mirador/mirador.toml when this is not given; `replay` uses the
    /// built-in defaults.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Output directory (created if missing) [config: output.dir].
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Analyzer worker threads [config: pipeline.workers; default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Flow-table shard threads; 1 = the reading thread is the shard [config: pipeline.shards].
    #[arg(long)]
    shards: Option<usize>,
    /// Which copy of overlapping TCP data wins when segments disagree [config: reassembly.policy].
    #[arg(long, value_enum)]
    overlap_policy: Option<Policy>,
    /// Ignore TCP connections whose handshake was not captured [config: flow.midstream = false].
    #[arg(long)]
    no_midstream: bool,
    /// Leave VLAN ids out of the flow key, for SPANs that tag the two directions differently
    /// [config: flow.vlan_in_key = false].
    #[arg(long)]
    no_vlan_in_key: bool,
    /// Serve Prometheus /metrics and /healthz on this address [config: metrics.listen].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// The owner's API spec (OpenAPI 3.0/3.1 or Swagger 2.0, JSON or YAML) to compare with what is seen;
    /// repeat for several. Writes spec-diff.json to the output directory [config: inventory.specs, added to].
    #[arg(long = "spec", value_name = "FILE")]
    specs: Vec<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Policy {
    FirstWins,
    LastWins,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay pcap/pcapng files (merged in timestamp order) into --out: flows.jsonl, transactions.jsonl,
    /// websocket.jsonl, findings.jsonl, alerts.jsonl, inventory.jsonl, inventory.json, openapi/<service>.json,
    /// spec-diff.json (with --spec), stats.json and sensitive_stats.json.
    #[command(
        after_help = "Examples:\n  mirador replay pcaps/demo.pcap --out out/\n  mirador replay capture.pcap --spec openapi.yaml --out out/\n  mirador replay tap-a.pcap tap-b.pcapng --out out/ --workers 2"
    )]
    Replay {
        /// Capture files (pcap or pcapng).
        #[arg(required = true)]
        pcaps: Vec<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
        /// Never draw the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Capture live until SIGINT/SIGTERM, then flush everything in flight and exit 0.
    #[command(
        after_help = "Examples:\n  mirador run --config /etc/mirador/mirador.toml\n  mirador run -i eth1 --out /var/lib/mirador/out\n  mirador run -i tap0 -i tap1 --filter 'tcp' --out out/"
    )]
    Run {
        /// Interface to capture on; repeat for several (a TAP gives one per direction) [config:
        /// capture.interfaces].
        #[arg(long = "interface", short = 'i')]
        interfaces: Vec<String>,
        /// BPF filter expression [config: capture.bpf_filter].
        #[arg(long)]
        filter: Option<String>,
        /// Bytes kept per packet [config: capture.snaplen].
        #[arg(long)]
        snaplen: Option<u32>,
        /// Kernel capture buffer per interface, bytes [config: capture.buffer_bytes].
        #[arg(long)]
        buffer_bytes: Option<u32>,
        /// Do not put the interfaces in promiscuous mode [config: capture.promiscuous = false].
        #[arg(long)]
        no_promisc: bool,
        /// Stop after this many seconds (default: run until signalled). A flag for this run only.
        #[arg(long)]
        duration_secs: Option<u64>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Validate a config file with the same checks `run` makes, and exit 0 (valid) or 2.
    CheckConfig {
        /// The file to check.
        #[arg(default_value = config::DEFAULT_PATH)]
        path: PathBuf,
        /// Print the effective configuration (defaults filled in) as TOML.
        #[arg(long)]
        print: bool,
    },
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
    match cli.cmd {
        Cmd::CheckConfig { path, print } => check_config(&path, print),
        Cmd::Replay { pcaps, common, quiet } => {
            let cfg = match load(&common, false, |_| {}) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging(&cfg);
            replay(&pcaps, &cfg, quiet)
        }
        Cmd::Run { interfaces, filter, snaplen, buffer_bytes, no_promisc, duration_secs, common } => {
            let cfg = match load(&common, true, |raw| {
                if !interfaces.is_empty() {
                    raw.capture.interfaces = interfaces.clone();
                }
                if filter.is_some() {
                    raw.capture.bpf_filter = filter.clone();
                }
                if let Some(s) = snaplen {
                    raw.capture.snaplen = s;
                }
                if let Some(b) = buffer_bytes {
                    raw.capture.buffer_bytes = b;
                }
                if no_promisc {
                    raw.capture.promiscuous = false;
                }
            }) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging(&cfg);
            run(cfg, &common, duration_secs)
        }
    }
}

fn check_config(path: &Path, print: bool) -> ExitCode {
    // The analyzers are built too: their signature packs and specs are part of the configuration.
    match Config::load(path).map_err(|e| e.to_string()).and_then(|cfg| {
        mirador::analyzer::builtin(&cfg.analysis_settings(false)).map(|_| cfg).map_err(|e| e.to_string())
    }) {
        Ok(cfg) => {
            // Spec defects were read past (the configuration is usable): say each, as a review would.
            for spec in &cfg.analysis_settings(false).inventory.specs {
                if let Ok(s) = mirador::specdiff::load_spec(spec) {
                    for d in &s.defects {
                        let line = d.line.map_or_else(String::new, |l| format!(": line {l}"));
                        eprintln!(
                            "mirador: warning: spec {}{line}: at {}: {} (read past)",
                            s.source, d.pointer, d.what
                        );
                    }
                }
            }
            if print {
                print!("{}", cfg.to_toml_string());
            } else {
                println!("{}: OK", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mirador: error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Loads the config (file or defaults), applies the command-line overrides and validates the result once.
fn load(common: &CommonArgs, live: bool, more: impl FnOnce(&mut RawConfig)) -> Result<Config, ExitCode> {
    let path = common.config.clone().or_else(|| live.then(|| PathBuf::from(config::DEFAULT_PATH)));
    let base = match &path {
        // `run` without --config tolerates a missing default file: flags alone can describe a run.
        Some(p) if common.config.is_none() && !p.exists() => Config::default(),
        Some(p) => Config::load(p).map_err(|e| {
            eprintln!("mirador: error: {e}");
            ExitCode::from(EXIT_USAGE)
        })?,
        None => Config::default(),
    };
    let mut raw = base.to_raw();
    if let Some(o) = &common.out {
        raw.output.dir = o.clone();
    } else if !live {
        // Replay writes next to the user, not into the service's state directory.
        raw.output.dir = PathBuf::from("out");
    }
    if let Some(w) = common.workers {
        raw.pipeline.workers = w;
    }
    if let Some(n) = common.shards {
        raw.pipeline.shards = n;
    }
    if let Some(p) = common.overlap_policy {
        raw.reassembly.policy = match p {
            Policy::FirstWins => OverlapPolicy::FirstWins,
            Policy::LastWins => OverlapPolicy::LastWins,
        };
    }
    if common.no_midstream {
        raw.flow.midstream = false;
    }
    if common.no_vlan_in_key {
        raw.flow.vlan_in_key = false;
    }
    if let Some(m) = common.metrics_listen {
        raw.metrics.enabled = true;
        raw.metrics.listen = m.to_string();
    } else if !live {
        // A replay serves metrics only when asked to.
        raw.metrics.enabled = false;
    }
    raw.inventory.specs.extend(common.specs.iter().cloned());
    more(&mut raw);
    Config::from_raw(raw, "command line").map_err(|e| {
        eprintln!("mirador: error: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

fn init_logging(cfg: &Config) {
    let format = match cfg.log.format {
        config::LogFormat::Auto => metrics::LogFormat::Auto,
        config::LogFormat::Text => metrics::LogFormat::Text,
        config::LogFormat::Json => metrics::LogFormat::Json,
    };
    if let Err(e) = metrics::init_logging(&cfg.log.level, format) {
        eprintln!("mirador: warning: {e}");
    }
}

/// Starts the metrics endpoint when enabled; `Err` is the exit code after the message is printed.
fn telemetry(cfg: &Config) -> Result<(Arc<Telemetry>, Option<metrics::MetricsServer>), ExitCode> {
    let t = Arc::new(Telemetry::new());
    if !cfg.metrics.enabled {
        return Ok((t, None));
    }
    match metrics::serve(cfg.metrics.listen, t.clone()) {
        // `metrics::serve` logs where it listens: once.
        Ok(s) => Ok((t, Some(s))),
        Err(e) => {
            eprintln!("mirador: error: {e}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// The pipeline's layout and analyzers; `Err` is the exit code after the message is printed (an analyzer
/// that cannot start, e.g. a bad signature pack, is a configuration error).
fn options(cfg: &Config, telemetry: Arc<Telemetry>, live: bool) -> Result<PipelineOptions, ExitCode> {
    let registry = mirador::analyzer::builtin(&cfg.analysis_settings(live)).map_err(|e| {
        eprintln!("mirador: error: {e}");
        ExitCode::from(EXIT_USAGE)
    })?;
    let mut opts = PipelineOptions::new(cfg.sensor_config());
    opts.registry = Arc::new(registry);
    opts.sinks = mirador::sink::SinkManager::from_config(cfg).map_err(|e| {
        eprintln!("mirador: error: {e}");
        ExitCode::from(EXIT_USAGE)
    })?;
    if let Some(sinks) = &opts.sinks {
        let sinks = Arc::clone(sinks);
        telemetry.add_section(move || mirador::sink::render_prometheus(&sinks.snapshot()));
    }
    opts.workers = cfg.pipeline.resolved_workers();
    opts.shards = cfg.pipeline.resolved_shards();
    opts.queue_transactions = cfg.pipeline.queue_transactions;
    opts.telemetry = Some(telemetry);
    Ok(opts)
}

fn replay(pcaps: &[PathBuf], cfg: &Config, quiet: bool) -> ExitCode {
    let (tel, _server) = match telemetry(cfg) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let total: u64 = pcaps.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = progress_bar(total, quiet);
    let started = std::time::Instant::now();
    let mut on_progress = |p: Progress| {
        if let Some(b) = &bar {
            b.set_position(p.bytes_read.min(total));
            let pps = p.packets as f64 / started.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!("{} packets ({pps:.0}/s), {} transactions", p.packets, p.transactions));
        }
    };
    let opts = match options(cfg, tel, false) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let result = pipeline::replay(pcaps, &cfg.output.dir, opts, &mut on_progress);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Ok(s) => {
            print_summary("replay", &s, pcaps.len());
            if s.stats.capture.file_errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                for p in &s.stats.capture.file_errors {
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

fn progress_bar(total: u64, quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    b.set_style(style);
    Some(b)
}

/// The end-of-run table on stderr.
/// `total (type n, type n, ...)`, the most frequent types first, at most eight.
fn by_type(s: &ReplaySummary, stream: &str, total: u64) -> String {
    let mut types: Vec<_> = s.pipeline.by_type.iter().filter(|t| t.stream == stream).collect();
    types.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
    let mut list: Vec<String> = types.iter().take(8).map(|t| format!("{} {}", t.kind, t.count)).collect();
    if types.len() > 8 {
        list.push(format!("{} more types", types.len() - 8));
    }
    if list.is_empty() { total.to_string() } else { format!("{total}: {}", list.join(", ")) }
}

fn print_summary(what: &str, s: &ReplaySummary, files: usize) {
    let st = &s.stats;
    let c = &st.capture;
    let f = &st.flows;
    // Replay: over the processing time. Live: over the packet-time span of the traffic (the process may have
    // waited long before the first packet and after the last).
    let (secs, over) = if what == "replay" {
        (s.wall.as_secs_f64(), "of processing")
    } else {
        (c.last_packet_ts - c.first_packet_ts, "of traffic (packet time)")
    };
    let secs = secs.max(1e-9);
    let decode_errors: u64 = serde_json::to_value(&st.decode.errors)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.values().filter_map(|x| x.as_u64()).sum()))
        .unwrap_or(0);
    let fr = &st.decode.fragments;
    let rows: Vec<(&str, String)> = vec![
        (
            "input",
            if what == "replay" {
                format!("{files} file(s), {} packets, {} bytes", c.packets, c.bytes)
            } else {
                format!("{} packets, {} bytes", c.packets, c.bytes)
            },
        ),
        (
            "flows",
            format!(
                "{} (tcp {}, udp {}, other {}; midstream {}, one-sided {})",
                f.flows_created, f.tcp_flows, f.udp_flows, f.other_flows, f.midstream_flows, f.one_sided_flows
            ),
        ),
        ("transactions", format!("{} HTTP", s.transactions)),
        (
            "gaps",
            format!(
                "{} ({} bytes); overlaps {} ({} with different data)",
                f.gaps, f.gap_bytes, f.overlaps, f.overlaps_with_different_data
            ),
        ),
        (
            "drops",
            format!(
                "kernel {}, interface {}, queue full {}, flow cap {}, reassembly memcap {}, fragment memcap {}, decode errors {}",
                c.kernel_drops,
                c.interface_drops,
                c.queue_full_drops + s.pipeline.queue_full_drops,
                f.evicted,
                f.reassembly_memcap_hits,
                fr.dropped_memcap,
                decode_errors
            ),
        ),
        ("findings", by_type(s, "findings", s.pipeline.findings_total)),
        ("alerts", by_type(s, "alerts", s.pipeline.alerts_total)),
        (
            "throughput",
            format!(
                "{:.2} Gbit/s, {:.0} packets/s, {:.0} transactions/s over {:.2} s {over}",
                c.bytes as f64 * 8.0 / secs / 1e9,
                c.packets as f64 / secs,
                s.transactions as f64 / secs,
                secs
            ),
        ),
        ("peak memory", peak_rss().map_or("unknown".to_owned(), |kb| format!("{} MiB", kb / 1024))),
        ("output", s.out_dir.display().to_string()),
    ];
    eprintln!("mirador {what}:");
    for (k, v) in rows {
        eprintln!("  {k:<13} {v}");
    }
}

/// Peak resident memory of this process, KiB (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(feature = "live-pcap")]
fn run(cfg: Config, common: &CommonArgs, duration_secs: Option<u64>) -> ExitCode {
    use std::sync::atomic::AtomicBool;
    if cfg.capture.interfaces.is_empty() {
        eprintln!("mirador: error: no interface to capture on: give -i IFACE or set capture.interfaces in the config");
        return ExitCode::from(EXIT_USAGE);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGTERM, &stop),
        // Registered before READY: without a handler SIGHUP would end the process.
        (signal_hook::consts::SIGHUP, &reload),
    ] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            eprintln!("mirador: error: cannot install signal handler: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    let (tel, _server) = match telemetry(&cfg) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let live = cfg.live_config();
    let opts = match options(&cfg, tel.clone(), true) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let config_path = common.config.clone().unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let registry = Arc::clone(&opts.registry);
    let hooks = pipeline::LiveHooks {
        reload_requested: Some(reload),
        reload: Some(Box::new(move || match Config::load(&config_path) {
            // Analyzers swap in their signature packs and rules; capture, flow and HTTP settings need a restart.
            Ok(new) => {
                let failed = registry.reload(&new.analysis_settings(true));
                tracing::info!(
                    path = %config_path.display(),
                    failed,
                    "Configuration reloaded: analyzer signatures and rules swapped in (those that failed keep \
                     the running set); capture, flow and HTTP settings take effect on restart."
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "Reload refused: the configuration is invalid; keeping the running one.")
            }
        })),
        systemd_notify: std::env::var_os("NOTIFY_SOCKET").is_some(),
    };
    match pipeline::run_live(
        &live,
        &cfg.output.dir,
        opts,
        stop,
        duration_secs.map(std::time::Duration::from_secs),
        hooks,
    ) {
        Ok(s) => {
            print_summary("run", &s, 0);
            ExitCode::SUCCESS
        }
        Err(pipeline::LiveRunError::Capture(e)) => {
            eprintln!("mirador: error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            tel.set_unhealthy(&e.to_string());
            eprintln!("mirador: error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

#[cfg(not(feature = "live-pcap"))]
fn run(_cfg: Config, _common: &CommonArgs, _duration_secs: Option<u64>) -> ExitCode {
    eprintln!("mirador: error: built without live capture (feature live-pcap)");
    ExitCode::from(EXIT_USAGE)
}
