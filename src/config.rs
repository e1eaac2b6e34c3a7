//! The configuration file (`/etc/mirador/mirador.toml`): [`RawConfig`] mirrors it key for key (serde,
//! `deny_unknown_fields`, every key optional with its default), [`Config`] is the validated form the
//! binary runs with (ripgrep's low-level args -> high-level args).
//!
//! Every error names the file, the line and column, the key and what is wrong, so an operator can fix the
//! file without reading code: `mirador.toml: line 4, column 1: [capture] snaplen = 10: must be between 64
//! and 262144`. `mirador check-config` and `mirador run` go through the same [`Config::load`].
//!
//! Durations are humantime strings ("30s", "5m", "1h"); sizes are bytes with the unit in the key name.

use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use crate::decode::{DecodeConfig, MAX_TUNNELS};
use crate::flow::table::FlowConfig;
use crate::http::HttpConfig;
use crate::pipeline::SensorConfig;
use crate::reassembly::ReassemblyConfig;

/// Where the packaged service reads its configuration.
pub const DEFAULT_PATH: &str = "/etc/mirador/mirador.toml";

/// A configuration file larger than this is refused unread: the real one is a few KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Snaplen bounds: below 64 bytes not even the headers of a tunnelled TCP packet fit; 262144 is libpcap's
/// own maximum (`MAXIMUM_SNAPLEN`).
pub const SNAPLEN_MIN: u32 = 64;
pub const SNAPLEN_MAX: u32 = 262_144;

/// Upper bound of `pipeline.shards` and `pipeline.workers`: a typo guard, far above any real machine.
pub const MAX_THREADS: usize = 1024;

/// `#[serde(with = "crate::config::duration")]`: a `Duration` as a humantime string ("30s", "5m", "1h 30m").
/// A bare number is refused: its unit would be a guess.
pub mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(Visitor)
    }

    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"a duration string such as "30s", "5m" or "1h""#)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            humantime::parse_duration(v.trim()).map_err(|e| {
                E::custom(format_args!(
                    r#"invalid duration "{}": {e} (expected e.g. "30s", "5m", "1h")"#,
                    v.escape_debug()
                ))
            })
        }
    }
}

/// The file as written: `[capture]`, `[decode]`, `[flow]`, `[reassembly]`, `[http]`, `[pipeline]`,
/// `[metrics]`, `[log]`, `[output]`, `[state]`. Every section and key is optional; a missing one takes its
/// default. An unknown key is an error (a typo must not silently leave a default in place).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// Live capture (`mirador run`): interfaces, BPF filter, snaplen, kernel buffer. Defaults: see
    /// [`CaptureSection`].
    pub capture: CaptureSection,
    /// Link/IP/tunnel decoding and IP fragment reassembly (`[decode.fragments]`). Defaults: see
    /// [`DecodeConfig`].
    pub decode: DecodeConfig,
    /// Flow table: key, timeouts (durations), flow count and memory caps. Defaults: see [`FlowConfig`].
    pub flow: FlowConfig,
    /// TCP reassembly: overlap policy ("first_wins" / "last_wins") and per-direction and global caps
    /// (bytes). Defaults: see [`ReassemblyConfig`].
    pub reassembly: ReassemblyConfig,
    /// HTTP/1.x framing caps (bytes, counts) and `[http.decompress]`. Defaults: see [`HttpConfig`].
    pub http: HttpConfig,
    /// Threads and queues. Defaults: see [`PipelineSection`].
    pub pipeline: PipelineSection,
    /// Prometheus endpoint. Defaults: see [`MetricsSection`].
    pub metrics: MetricsSection,
    /// Log level and format. Defaults: see [`LogSection`].
    pub log: LogSection,
    /// Where records are written. Default dir: `/var/lib/mirador/out`.
    pub output: OutputSection,
    /// Where persistent state lives. Default dir: `/var/lib/mirador`.
    pub state: StateSection,
    /// API inventory analyzer. Defaults: see [`crate::inventory::Settings`].
    pub inventory: crate::inventory::Settings,
    /// Sensitive-data analyzer. Defaults: see [`crate::sensitive::Settings`].
    pub sensitive: crate::sensitive::Settings,
    /// Detections. Defaults: see [`crate::detect::Settings`].
    pub detect: crate::detect::Settings,
    /// `[sink]`: delivery settings shared by the SIEM sinks. Defaults: see [`crate::sink::SinkGlobal`].
    pub sink: crate::sink::SinkGlobal,
    /// `[sinks.NAME]`: SIEM sinks by name (none by default). See [`crate::sink::SinkSettings`].
    pub sinks: std::collections::BTreeMap<String, crate::sink::SinkSettings>,
}

/// `[capture]`: live capture with libpcap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureSection {
    /// Interfaces to capture on, one capture thread each (a TAP gives one per direction). `-i` on the
    /// command line replaces this list. Default: `[]` (then `-i` is required).
    pub interfaces: Vec<String>,
    /// BPF filter expression compiled by libpcap and applied in the kernel. `--filter` replaces it.
    /// Default: none (every packet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf_filter: Option<String>,
    /// Bytes kept of each packet, 64..=262144. Longer packets are cut (counted as truncated). Default:
    /// 65535.
    pub snaplen: u32,
    /// Kernel capture buffer per interface in bytes (libpcap `buffer_size`, the TPACKET_V3 ring on Linux),
    /// at least 65536. Default: 67108864 (64 MiB).
    pub buffer_bytes: u32,
    /// Put the interfaces in promiscuous mode. Default: true.
    pub promiscuous: bool,
    /// Frames in flight between the capture threads and processing; when full, frames are dropped and
    /// counted (`queue_full_drops`), the capture thread never blocks. Must be > 0. Default: 65536.
    pub queue_packets: usize,
}

impl Default for CaptureSection {
    fn default() -> Self {
        // Same values as `capture::live::LiveConfig::default()` (checked by a test): that type only exists
        // with the live-pcap feature, the config file always.
        CaptureSection {
            interfaces: Vec::new(),
            bpf_filter: None,
            snaplen: 65535,
            buffer_bytes: 64 << 20,
            promiscuous: true,
            queue_packets: 65536,
        }
    }
}

/// `[pipeline]`: threads and queues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSection {
    /// Flow-table shards (each owns its flows, no locks), up to 1024; 0 = half the cores (at least 1; with
    /// 1 the reading thread is the shard). Default: 0.
    pub shards: usize,
    /// Processing threads, up to 1024; 0 = one per available core. Default: 0.
    pub workers: usize,
    /// HTTP transactions in flight between the shards and the analyzers/outputs; > 0. Default: 4096.
    pub queue_transactions: usize,
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection { shards: 0, workers: 0, queue_transactions: 4096 }
    }
}

impl PipelineSection {
    /// `workers`, with 0 resolved to the number of cores available to this process.
    pub fn resolved_workers(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// `shards`, with 0 resolved to one per worker.
    pub fn resolved_shards(&self) -> usize {
        if self.shards > 0 {
            return self.shards;
        }
        // Half the cores: the reading thread, the workers and the output thread need the rest. On two cores
        // this is one shard (the reading thread itself), which the end-to-end bench shows is fastest there.
        (std::thread::available_parallelism().map_or(1, usize::from) / 2).max(1)
    }
}

/// `[metrics]`: the Prometheus endpoint, as written in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve Prometheus metrics on `listen`. Default: true.
    pub enabled: bool,
    /// Address and port of the metrics endpoint (`ip:port`, IPv6 as `[::1]:9477`). Default:
    /// "127.0.0.1:9477" (local only).
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { enabled: true, listen: "127.0.0.1:9477".to_owned() }
    }
}

/// `[metrics]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
}

/// Log output format.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON when stderr goes to the journal (systemd sets `JOURNAL_STREAM`), text otherwise.
    #[default]
    Auto,
    Text,
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Level ("trace", "debug", "info", "warn", "error", "off") or a tracing filter
    /// ("info,mirador::http=debug"). `RUST_LOG`, when set, overrides it. Default: "info".
    pub level: String,
    /// "auto" (JSON under systemd, text on a terminal), "text" or "json". Default: "auto".
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { level: "info".to_owned(), format: LogFormat::Auto }
    }
}

impl LogSection {
    /// The filter to install: `RUST_LOG` when set and valid, else `level` (validated at load).
    pub fn env_filter(&self) -> tracing_subscriber::EnvFilter {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .or_else(|_| tracing_subscriber::EnvFilter::try_new(&self.level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    }

    /// Whether to log JSON lines (resolves `auto`).
    pub fn json(&self) -> bool {
        match self.format {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
        }
    }
}

/// `[output]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    /// Directory for `flows.jsonl`, `transactions.jsonl` and `stats.json` (created if missing). `--out`
    /// replaces it. Default: "/var/lib/mirador/out".
    pub dir: PathBuf,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection { dir: PathBuf::from("/var/lib/mirador/out") }
    }
}

/// `[state]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSection {
    /// Directory for persistent state (API inventory, spool); systemd's `StateDirectory=mirador` creates it
    /// writable by the service. Default: "/var/lib/mirador".
    pub dir: PathBuf,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection { dir: PathBuf::from("/var/lib/mirador") }
    }
}

/// The validated configuration the binary runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[capture]`; handed to live capture by [`Config::live_config`].
    pub capture: CaptureSection,
    /// `[decode]`, `[flow]`, `[reassembly]`, `[http]`; handed over by [`Config::sensor_config`].
    sensor: SensorConfig,
    pub pipeline: PipelineSection,
    pub metrics: MetricsConfig,
    pub log: LogSection,
    pub output: OutputSection,
    pub state: StateSection,
    pub inventory: crate::inventory::Settings,
    pub sensitive: crate::sensitive::Settings,
    pub detect: crate::detect::Settings,
    pub sink: crate::sink::SinkGlobal,
    /// `[sinks.NAME]`, each with its `name` filled in from the table name.
    pub sinks: Vec<crate::sink::SinkSettings>,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults pass validation (tested); building directly keeps `default()` infallible.
        let raw = RawConfig::default();
        Config {
            capture: raw.capture,
            sensor: SensorConfig { decode: raw.decode, flow: raw.flow, reassembly: raw.reassembly, http: raw.http },
            pipeline: raw.pipeline,
            metrics: MetricsConfig { enabled: raw.metrics.enabled, listen: SocketAddr::from(([127, 0, 0, 1], 9477)) },
            log: raw.log,
            output: raw.output,
            state: raw.state,
            inventory: raw.inventory,
            sensitive: raw.sensitive,
            detect: raw.detect,
            sink: raw.sink,
            sinks: Vec::new(),
        }
    }
}

impl Config {
    /// The analyzers' settings; `keep_state` is false for replay (nothing persisted under `[state] dir`, files
    /// written once at the end) and true for live runs.
    pub fn analysis_settings(&self, keep_state: bool) -> crate::analyzer::AnalysisSettings {
        crate::analyzer::AnalysisSettings {
            inventory: self.inventory.clone(),
            sensitive: self.sensitive.clone(),
            detect: self.detect.clone(),
            state_dir: keep_state.then(|| self.state.dir.clone()),
            live_out_dir: keep_state.then(|| self.output.dir.clone()),
        }
    }

    /// Reads and validates a configuration file. Errors name `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_capped(path)?;
        Config::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` (usually the file path) prefixes every error message.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| parse_error(text, origin, &e))?;
        match validate(&raw) {
            Ok(cfg) => Ok(cfg),
            Err(p) => {
                let (doc, _) = DeTable::parse_recoverable(text);
                let pos = key_span(doc.get_ref(), p.table, p.key).map(|s| line_col(text, s.start));
                Err(p.into_error(origin, pos))
            }
        }
    }

    /// Validates an already parsed [`RawConfig`] (no line numbers in errors: there is no text).
    pub fn from_raw(raw: RawConfig, origin: &str) -> Result<Config, ConfigError> {
        validate(&raw).map_err(|p| p.into_error(origin, None))
    }

    /// The processing chain's configuration: `[decode]`, `[flow]`, `[reassembly]`, `[http]`.
    pub fn sensor_config(&self) -> SensorConfig {
        self.sensor.clone()
    }

    /// `[capture]` as libpcap live capture takes it.
    #[cfg(feature = "live-pcap")]
    pub fn live_config(&self) -> crate::capture::live::LiveConfig {
        let c = &self.capture;
        crate::capture::live::LiveConfig {
            interfaces: c.interfaces.clone(),
            promiscuous: c.promiscuous,
            snaplen: c.snaplen,
            buffer_bytes: c.buffer_bytes,
            filter: c.bpf_filter.clone(),
            queue_packets: c.queue_packets,
        }
    }

    /// Back to the file's shape (for printing the effective configuration as TOML).
    pub fn to_raw(&self) -> RawConfig {
        RawConfig {
            capture: self.capture.clone(),
            decode: self.sensor.decode.clone(),
            flow: self.sensor.flow.clone(),
            reassembly: self.sensor.reassembly.clone(),
            http: self.sensor.http.clone(),
            pipeline: self.pipeline.clone(),
            metrics: MetricsSection { enabled: self.metrics.enabled, listen: self.metrics.listen.to_string() },
            log: self.log.clone(),
            output: self.output.clone(),
            state: self.state.clone(),
            inventory: self.inventory.clone(),
            sensitive: self.sensitive.clone(),
            detect: self.detect.clone(),
            sink: self.sink.clone(),
            sinks: self.sinks.iter().map(|s| (s.name.clone(), s.clone())).collect(),
        }
    }

    /// The SIEM sinks' settings; their spools live under `[state] dir`/spool.
    pub fn sink_options(&self) -> crate::sink::SinkOptions {
        crate::sink::SinkOptions {
            global: self.sink.clone(),
            sinks: self.sinks.clone(),
            spool_dir: self.state.dir.join("spool"),
        }
    }

    /// The effective configuration as TOML (every key, defaults included).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(&self.to_raw()).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

/// What went wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot read: larger than {limit} bytes, not a configuration file", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Parse(Box<Located>),
    /// A well-typed value out of its allowed range.
    #[error("{0}")]
    Invalid(Box<Located>),
}

/// A problem at a place in the file.
#[derive(Debug)]
pub struct Located {
    /// The file (or whatever name the caller gave the text).
    pub origin: String,
    /// 1-based line and column of the offending key or value, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// `[table] key` of the offending key ("" when the error is not inside a key, e.g. bad syntax).
    pub key: String,
    /// The offending value as written in TOML (validation errors only).
    pub value: Option<String>,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: ")?,
            (Some(l), None) => write!(f, "line {l}: ")?,
            _ => {}
        }
        let leaf = self.key.rsplit(' ').next().unwrap_or(&self.key);
        match &self.value {
            Some(v) => write!(f, "{} = {v}: ", self.key)?,
            // serde's "unknown field `bufer`" already names the key.
            None if !self.key.is_empty() && !self.message.contains(&format!("`{leaf}`")) => {
                write!(f, "{}: ", self.key)?
            }
            None => {}
        }
        f.write_str(&self.message)
    }
}

impl ConfigError {
    fn located(&self) -> Option<&Located> {
        match self {
            ConfigError::Parse(l) | ConfigError::Invalid(l) => Some(l),
            _ => None,
        }
    }

    /// Line (1-based) of the offending key or value, when known.
    pub fn line(&self) -> Option<usize> {
        self.located().and_then(|l| l.line)
    }

    /// `[table] key` of the offending key, when known.
    pub fn key(&self) -> Option<&str> {
        self.located().map(|l| l.key.as_str()).filter(|k| !k.is_empty())
    }
}

fn read_capped(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(read_err)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge { path: path.to_owned(), limit: MAX_FILE_BYTES });
    }
    Ok(text)
}

/// 1-based line and column (in characters) of byte offset `pos`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = text.get(..pos).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `[a.b] c` for the path a.b.c; a top-level key stays bare.
fn display_key(path: &[String]) -> String {
    match path.split_last() {
        None => String::new(),
        Some((leaf, [])) => leaf.clone(),
        Some((leaf, tables)) => format!("[{}] {leaf}", tables.join(".")),
    }
}

fn parse_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span();
    let mut path = Vec::new();
    if let Some(s) = &span {
        let (doc, _) = DeTable::parse_recoverable(text);
        path_at(doc.get_ref(), s.start, &mut path);
    }
    let pos = span.map(|s| line_col(text, s.start));
    ConfigError::Parse(Box::new(Located {
        origin: origin.to_owned(),
        line: pos.map(|p| p.0),
        column: pos.map(|p| p.1),
        key: display_key(&path),
        value: None,
        message: e.message().trim_end().to_owned(),
    }))
}

/// Fills `path` with the keys leading to the key or value that covers byte `pos`; true when found.
fn path_at(table: &DeTable<'_>, pos: usize, path: &mut Vec<String>) -> bool {
    for (k, v) in table.iter() {
        path.push(k.get_ref().to_string());
        if k.span().contains(&pos) {
            return true;
        }
        // A table's own span may cover only its header: search inside whatever the span says.
        if let DeValue::Table(t) = v.get_ref()
            && path_at(t, pos, path)
        {
            return true;
        }
        if v.span().contains(&pos) {
            return true;
        }
        path.pop();
    }
    false
}

/// Byte span of `key` inside table `table` ("capture", "decode.fragments"), when the file sets it.
fn key_span(doc: &DeTable<'_>, table: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let mut t = doc;
    for name in table.split('.') {
        let (_, v) = t.iter().find(|(k, _)| k.get_ref() == name)?;
        match v.get_ref() {
            DeValue::Table(inner) => t = inner,
            _ => return None,
        }
    }
    t.iter().find(|(k, _)| k.get_ref() == key).map(|(k, _)| k.span())
}

/// A validation failure before it is placed in the file.
#[derive(Debug)]
struct Problem {
    table: &'static str,
    key: &'static str,
    value: String,
    message: String,
}

impl Problem {
    fn into_error(self, origin: &str, pos: Option<(usize, usize)>) -> ConfigError {
        ConfigError::Invalid(Box::new(Located {
            origin: origin.to_owned(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            key: format!("[{}] {}", self.table, self.key),
            value: Some(self.value),
            message: self.message,
        }))
    }
}

fn problem(table: &'static str, key: &'static str, value: impl fmt::Display, message: impl Into<String>) -> Problem {
    Problem { table, key, value: value.to_string(), message: message.into() }
}

fn in_range<T: PartialOrd + fmt::Display + Copy>(
    table: &'static str,
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), Problem> {
    if v < lo || v > hi { Err(problem(table, key, v, format!("must be between {lo} and {hi}"))) } else { Ok(()) }
}

fn positive<T: PartialOrd + fmt::Display + Copy + Default>(
    table: &'static str,
    key: &'static str,
    v: T,
) -> Result<(), Problem> {
    if v > T::default() { Ok(()) } else { Err(problem(table, key, v, "must be greater than 0")) }
}

fn positive_duration(table: &'static str, key: &'static str, d: Duration) -> Result<(), Problem> {
    if d.is_zero() {
        Err(problem(table, key, format!("\"{}\"", humantime::format_duration(d)), "must be longer than 0s"))
    } else {
        Ok(())
    }
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// The checks types cannot express. The first failure is reported, in file order.
fn validate(raw: &RawConfig) -> Result<Config, Problem> {
    let c = &raw.capture;
    for (i, iface) in c.interfaces.iter().enumerate() {
        if iface.trim().is_empty() {
            return Err(problem("capture", "interfaces", quoted(iface), "an interface name cannot be empty"));
        }
        if c.interfaces.get(..i).is_some_and(|before| before.contains(iface)) {
            return Err(problem("capture", "interfaces", quoted(iface), "listed twice"));
        }
    }
    if let Some(f) = &c.bpf_filter
        && f.trim().is_empty()
    {
        return Err(problem(
            "capture",
            "bpf_filter",
            quoted(f),
            "empty filter: leave the key out to capture everything",
        ));
    }
    in_range("capture", "snaplen", c.snaplen, SNAPLEN_MIN, SNAPLEN_MAX)?;
    in_range("capture", "buffer_bytes", c.buffer_bytes, 65536, u32::MAX)?;
    positive("capture", "queue_packets", c.queue_packets)?;

    let d = &raw.decode;
    in_range("decode", "max_vlan_depth", d.max_vlan_depth, 1, 64)?;
    in_range("decode", "max_tunnel_depth", d.max_tunnel_depth, 0, MAX_TUNNELS)?;
    in_range("decode", "max_mpls_labels", d.max_mpls_labels, 1, 64)?;
    if let Some(p) = d.vxlan_ports.iter().find(|&&p| p == 0) {
        return Err(problem("decode", "vxlan_ports", p, "port 0 is not a UDP port"));
    }
    positive("decode", "vxlan_gpe_port", d.vxlan_gpe_port)?;
    positive("decode", "geneve_port", d.geneve_port)?;
    positive("decode", "gtpu_port", d.gtpu_port)?;
    positive_duration("decode", "expire_interval", d.expire_interval)?;
    let f = &d.fragments;
    positive("decode.fragments", "max_datagrams", f.max_datagrams)?;
    positive("decode.fragments", "memcap_bytes", f.memcap_bytes)?;
    positive("decode.fragments", "max_fragments_per_datagram", f.max_fragments_per_datagram)?;
    positive_duration("decode.fragments", "timeout", f.timeout)?;

    let fl = &raw.flow;
    positive_duration("flow", "tcp_idle_timeout", fl.tcp_idle_timeout)?;
    positive_duration("flow", "udp_idle_timeout", fl.udp_idle_timeout)?;
    positive_duration("flow", "other_idle_timeout", fl.other_idle_timeout)?;
    positive_duration("flow", "closed_timeout", fl.closed_timeout)?;
    positive("flow", "max_flows", fl.max_flows)?;
    positive("flow", "memcap_bytes", fl.memcap_bytes)?;

    let r = &raw.reassembly;
    positive("reassembly", "max_buffered_bytes_per_dir", r.max_buffered_bytes_per_dir)?;
    positive("reassembly", "max_segments_per_dir", r.max_segments_per_dir)?;
    positive("reassembly", "memcap_bytes", r.memcap_bytes)?;
    if r.max_buffered_bytes_per_dir > r.memcap_bytes {
        return Err(problem(
            "reassembly",
            "max_buffered_bytes_per_dir",
            r.max_buffered_bytes_per_dir,
            format!("must not exceed [reassembly] memcap_bytes ({})", r.memcap_bytes),
        ));
    }

    let h = &raw.http;
    positive("http", "max_header_bytes", h.max_header_bytes)?;
    positive("http", "max_headers", h.max_headers)?;
    positive("http", "max_pipelined", h.max_pipelined)?;
    positive("http", "max_line_bytes", h.max_line_bytes)?;
    positive("http", "memcap_bytes", h.memcap_bytes)?;
    let z = &h.decompress;
    positive("http.decompress", "max_output_bytes", z.max_output_bytes)?;
    positive("http.decompress", "max_ratio", z.max_ratio)?;
    in_range("http.decompress", "max_layers", z.max_layers, 1, 8)?;

    let p = &raw.pipeline;
    in_range("pipeline", "shards", p.shards, 0, MAX_THREADS)?;
    in_range("pipeline", "workers", p.workers, 0, MAX_THREADS)?;
    positive("pipeline", "queue_transactions", p.queue_transactions)?;

    let listen: SocketAddr = raw.metrics.listen.trim().parse().map_err(|_| {
        problem("metrics", "listen", quoted(&raw.metrics.listen), "not an address:port such as \"127.0.0.1:9477\"")
    })?;

    let level = raw.log.level.trim();
    let simple = !level.contains(['=', ',', '[']);
    if (simple && !LEVELS.contains(&level.to_ascii_lowercase().as_str()))
        || tracing_subscriber::EnvFilter::try_new(level).is_err()
    {
        return Err(problem(
            "log",
            "level",
            quoted(&raw.log.level),
            "expected one of trace, debug, info, warn, error, off, or a filter such as \"info,mirador::http=debug\"",
        ));
    }

    if raw.output.dir.as_os_str().is_empty() {
        return Err(problem("output", "dir", "\"\"", "must name a directory"));
    }
    if raw.state.dir.as_os_str().is_empty() {
        return Err(problem("state", "dir", "\"\"", "must name a directory"));
    }

    let g = &raw.sink;
    positive("sink", "queue_records", g.queue_records)?;
    positive("sink", "spool_segment_bytes", g.spool_segment_bytes)?;
    if g.spool_max_bytes < g.spool_segment_bytes {
        return Err(problem(
            "sink",
            "spool_max_bytes",
            g.spool_max_bytes,
            format!("must be at least [sink] spool_segment_bytes ({})", g.spool_segment_bytes),
        ));
    }
    positive_duration("sink", "flush_timeout", g.flush_timeout)?;
    positive_duration("sink", "retry_initial", g.retry_initial)?;
    positive_duration("sink", "retry_max", g.retry_max)?;
    positive_duration("sink", "request_timeout", g.request_timeout)?;
    in_range("sink", "retry_attempts", g.retry_attempts, 1, 100)?;
    let mut sinks = Vec::new();
    for (name, s) in &raw.sinks {
        let s = crate::sink::SinkSettings { name: name.clone(), ..s.clone() };
        if let Some((key, message)) = s.problem() {
            return Err(problem("sinks", key, quoted(name), format!("[sinks.{name}]: {message}")));
        }
        sinks.push(s);
    }

    Ok(Config {
        capture: raw.capture.clone(),
        sensor: SensorConfig {
            decode: raw.decode.clone(),
            flow: raw.flow.clone(),
            reassembly: raw.reassembly.clone(),
            http: raw.http.clone(),
        },
        pipeline: raw.pipeline.clone(),
        metrics: MetricsConfig { enabled: raw.metrics.enabled, listen },
        log: raw.log.clone(),
        output: raw.output.clone(),
        state: raw.state.clone(),
        inventory: raw.inventory.clone(),
        sensitive: raw.sensitive.clone(),
        detect: raw.detect.clone(),
        sink: raw.sink.clone(),
        sinks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        Config::from_toml_str(text, "mirador.toml").unwrap_err()
    }

    fn as_toml(raw: &RawConfig) -> toml::Value {
        toml::Value::try_from(raw).unwrap()
    }

    #[test]
    fn defaults_validate_and_round_trip() {
        let raw = RawConfig::default();
        let cfg = Config::from_raw(raw.clone(), "defaults").unwrap();
        assert_eq!(as_toml(&cfg.to_raw()), as_toml(&raw));
        assert_eq!(as_toml(&Config::default().to_raw()), as_toml(&raw));
        let text = Config::default().to_toml_string();
        let back = Config::from_toml_str(&text, "printed").unwrap();
        assert_eq!(as_toml(&back.to_raw()), as_toml(&raw));
        assert_eq!(Config::from_toml_str("", "empty").unwrap().metrics, Config::default().metrics);
    }

    #[cfg(feature = "live-pcap")]
    #[test]
    fn capture_defaults_match_live_config() {
        let live = Config::default().live_config();
        let d = crate::capture::live::LiveConfig::default();
        assert_eq!(
            (live.snaplen, live.buffer_bytes, live.promiscuous, live.queue_packets, live.filter),
            (d.snaplen, d.buffer_bytes, d.promiscuous, d.queue_packets, d.filter)
        );
    }

    #[test]
    fn durations_parse() {
        let cfg = Config::from_toml_str(
            "[flow]\ntcp_idle_timeout = \"30s\"\nudp_idle_timeout = \"5m\"\nother_idle_timeout = \"1h\"\n\
             closed_timeout = \"1m 30s\"\n[decode.fragments]\ntimeout = \"500ms\"\n",
            "t",
        )
        .unwrap();
        let f = cfg.sensor_config().flow;
        assert_eq!(f.tcp_idle_timeout, Duration::from_secs(30));
        assert_eq!(f.udp_idle_timeout, Duration::from_secs(300));
        assert_eq!(f.other_idle_timeout, Duration::from_secs(3600));
        assert_eq!(f.closed_timeout, Duration::from_secs(90));
        assert_eq!(cfg.sensor_config().decode.fragments.timeout, Duration::from_millis(500));
    }

    #[test]
    fn bad_duration_names_key_and_line() {
        let e = err("[flow]\nmax_flows = 10\ntcp_idle_timeout = \"5 parsecs\"\n");
        let msg = e.to_string();
        assert_eq!(e.line(), Some(3), "{msg}");
        assert!(msg.starts_with("mirador.toml: line 3, column "), "{msg}");
        assert!(msg.contains("[flow] tcp_idle_timeout"), "{msg}");
        assert!(msg.contains("invalid duration"), "{msg}");
        let e = err("[flow]\ntcp_idle_timeout = 30\n");
        assert!(e.to_string().contains("[flow] tcp_idle_timeout: invalid type: integer `30`"), "{e}");
    }

    #[test]
    fn zero_duration_is_invalid() {
        let e = err("[decode.fragments]\ntimeout = \"0s\"\n");
        assert_eq!(
            e.to_string(),
            "mirador.toml: line 2, column 1: [decode.fragments] timeout = \"0s\": must be longer than 0s"
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("[capture]\nsnaplen = 1500\n\nbufer = 4\n");
        let msg = e.to_string();
        assert!(msg.starts_with("mirador.toml: line 4, column 1: unknown field `bufer`, expected"), "{msg}");
        assert!(msg.contains("`buffer_bytes`"), "{msg}");
        assert_eq!(e.key(), Some("[capture] bufer"));
        let e = err("[captur]\n");
        assert!(e.to_string().starts_with("mirador.toml: line 1, column 2: unknown field `captur`"), "{e}");
        let e = err("[http.decompress]\nmax_layerz = 2\n");
        assert_eq!(e.key(), Some("[http.decompress] max_layerz"), "{e}");
        assert_eq!(e.line(), Some(2));
    }

    #[test]
    fn wrong_type_names_key() {
        let e = err("[log]\nlevel = \"info\"\n[capture]\nsnaplen = \"big\"\n");
        let msg = e.to_string();
        assert!(msg.starts_with("mirador.toml: line 4, column 11: [capture] snaplen: invalid type: string"), "{msg}");
        let e = err("[capture]\ninterfaces = [\n  \"eth0\",\n  7,\n]\n");
        assert_eq!((e.line(), e.key()), (Some(4), Some("[capture] interfaces")), "{e}");
        let e = err("[reassembly]\npolicy = \"middle_wins\"\n");
        assert!(e.to_string().contains("[reassembly] policy: unknown variant `middle_wins`"), "{e}");
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[capture]\nsnaplen = = 3\n");
        assert_eq!(e.line(), Some(2), "{e}");
        assert!(e.to_string().starts_with("mirador.toml: line 2, column"), "{e}");
    }

    #[test]
    fn validation_errors_name_key_value_and_line() {
        let e = err("# sensor\n[capture]\ninterfaces = [\"eth1\"]\n  snaplen = 10\n");
        assert_eq!(
            e.to_string(),
            "mirador.toml: line 4, column 3: [capture] snaplen = 10: must be between 64 and 262144"
        );
        let cases: &[(&str, &str)] = &[
            ("[capture]\nqueue_packets = 0", "[capture] queue_packets = 0: must be greater than 0"),
            ("[capture]\ninterfaces = [\"eth0\", \"eth0\"]", "[capture] interfaces = \"eth0\": listed twice"),
            ("[capture]\nbuffer_bytes = 1", "[capture] buffer_bytes = 1: must be between 65536"),
            ("[decode]\nmax_tunnel_depth = 5", "[decode] max_tunnel_depth = 5: must be between 0 and 4"),
            ("[decode]\nvxlan_ports = [4789, 0]", "[decode] vxlan_ports = 0: port 0"),
            ("[flow]\nmemcap_bytes = 0", "[flow] memcap_bytes = 0: must be greater than 0"),
            ("[reassembly]\nmemcap_bytes = 0", "[reassembly] memcap_bytes = 0"),
            ("[http.decompress]\nmax_ratio = 0", "[http.decompress] max_ratio = 0"),
            ("[pipeline]\nqueue_transactions = 0", "[pipeline] queue_transactions = 0"),
            ("[pipeline]\nworkers = 5000", "[pipeline] workers = 5000: must be between 0 and 1024"),
            ("[metrics]\nlisten = \"localhost\"", "[metrics] listen = \"localhost\": not an address:port"),
            ("[log]\nlevel = \"verbose\"", "[log] level = \"verbose\": expected one of"),
            ("[log]\nlevel = \"info,mirador=[\"", "[log] level"),
            ("[output]\ndir = \"\"", "[output] dir = \"\": must name a directory"),
        ];
        for (text, want) in cases {
            let e = err(text);
            let msg = e.to_string();
            assert!(msg.starts_with("mirador.toml: line 2, column 1: "), "{text}: {msg}");
            assert!(msg.contains(want), "{text}: {msg}");
        }
    }

    #[test]
    fn log_filters_and_formats() {
        let cfg =
            Config::from_toml_str("[log]\nlevel = \"info,mirador::http=debug\"\nformat = \"json\"\n", "t").unwrap();
        assert!(cfg.log.json());
        assert!(Config::from_toml_str("[log]\nlevel = \"WARN\"\n", "t").is_ok());
        assert!(err("[log]\nformat = \"xml\"\n").to_string().contains("unknown variant `xml`"));
    }

    #[test]
    fn validation_without_text_has_no_line() {
        let mut raw = RawConfig::default();
        raw.capture.snaplen = 1;
        let e = Config::from_raw(raw, "cli").unwrap_err();
        assert_eq!(e.to_string(), "cli: [capture] snaplen = 1: must be between 64 and 262144");
    }

    #[test]
    fn unreadable_and_oversized_files() {
        let e = Config::load(Path::new("/nonexistent/mirador.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/mirador.toml: cannot read: "), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(Config::load(&big), Err(ConfigError::TooLarge { .. })));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("a\nbé c", 5), (2, 3));
        assert_eq!(line_col("", 10), (1, 1));
    }

    #[test]
    fn pipeline_auto_resolves() {
        let p = PipelineSection::default();
        assert!(p.resolved_workers() >= 1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(p.resolved_shards(), (cores / 2).max(1));
        assert_eq!(PipelineSection { shards: 3, workers: 2, queue_transactions: 1 }.resolved_shards(), 3);
    }
}
