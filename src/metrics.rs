//! Observability: Prometheus `/metrics`, `/healthz`, cap hits logged once, and the logging setup.
//!
//! The hot path never touches a metric. Every stage keeps its plain `u64` counters ([`Stats`]); once a second
//! and at shutdown the pipeline hands a snapshot to [`Telemetry::publish`], which copies each counter into a
//! handle registered once in [`Telemetry::new`] (`Counter::absolute`, Vector's pattern). Scrapes read the
//! handles through the recorder's [`PrometheusHandle`], never the stages.
//!
//! The recorder is local to each [`Telemetry`] (never installed globally), so several can live in one process
//! (tests, several sensors) without fighting over `metrics::set_global_recorder`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::capture::LinkType;
use crate::decode::view::TunnelKind;
use crate::http::Flag;
use crate::pipeline::Stats;

/// Analyzer label values registered at most; more analyzers are summed under `analyzer="other"` so a
/// misconfiguration cannot grow the series set without bound.
pub const MAX_ANALYZERS: usize = 32;
/// Longest analyzer label value kept (longer names are cut on a char boundary).
const MAX_ANALYZER_NAME: usize = 64;
/// A request head larger than this is answered 431 and the connection closed.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Whole time a client gets to send its request head (a slow client cannot hold the serving thread longer).
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After answering, unread request bytes are drained for at most this long and this much.
const LINGER: Duration = Duration::from_millis(200);
const MAX_LINGER_BYTES: usize = 256 * 1024;
/// Longest unhealthy reason kept for the `/healthz` body.
const MAX_REASON: usize = 256;

/// Counters the pipeline keeps outside [`Stats`]: queues between threads and analyzer work. Filled by the
/// pipeline thread, published with [`Telemetry::publish`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PipelineCounters {
    /// Capture threads → shards.
    pub packet_queue: QueueCounters,
    /// Shards → analyzer workers.
    pub transaction_queue: QueueCounters,
    /// Items dropped because a queue was full, other than the capture queue (already in
    /// `CaptureStats::queue_full_drops`). Both are published as `mirador_drops_total{reason="queue_full"}`.
    pub queue_full_drops: u64,
    pub analyzers: Vec<AnalyzerCounters>,
    pub alerts_total: u64,
    pub findings_total: u64,
    /// Alerts and findings by type.
    pub by_type: Vec<RecordTypeCount>,
    /// Transactions handed to the analyzers.
    pub transactions_total: u64,
    /// Reassembly memory held now (the shards' `MemBudget::used()` summed); 0 when not known.
    pub reassembly_memory_bytes: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordTypeCount {
    /// `alerts` or `findings`.
    pub stream: &'static str,
    /// The record's `type` (rule or data type); `other` past the pipeline's cap on distinct types.
    pub kind: String,
    pub count: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct QueueCounters {
    pub enqueued_total: u64,
    pub dequeued_total: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AnalyzerCounters {
    pub name: String,
    pub transactions: u64,
    /// Wall time spent in the analyzer, nanoseconds.
    pub nanos: u64,
}

/// Why data was dropped: the bounded `reason` label of `mirador_drops_total`, and the causes logged once.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    Kernel,
    Interface,
    QueueFull,
    FlowMemcap,
    ReassemblyMemcap,
    FragmentMemcap,
    DecodeError,
    BodyCap,
    DecompressCap,
    HttpMemcap,
}

/// The style guide's name for a cause that is counted every time and logged once.
pub type Cap = DropReason;

impl DropReason {
    pub const ALL: [DropReason; 10] = [
        DropReason::Kernel,
        DropReason::Interface,
        DropReason::QueueFull,
        DropReason::FlowMemcap,
        DropReason::ReassemblyMemcap,
        DropReason::FragmentMemcap,
        DropReason::DecodeError,
        DropReason::BodyCap,
        DropReason::DecompressCap,
        DropReason::HttpMemcap,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::Kernel => "kernel",
            DropReason::Interface => "interface",
            DropReason::QueueFull => "queue_full",
            DropReason::FlowMemcap => "flow_memcap",
            DropReason::ReassemblyMemcap => "reassembly_memcap",
            DropReason::FragmentMemcap => "fragment_memcap",
            DropReason::DecodeError => "decode_error",
            DropReason::BodyCap => "body_cap",
            DropReason::DecompressCap => "decompress_cap",
            DropReason::HttpMemcap => "http_memcap",
        }
    }

    /// The setting that raises this cap; `None` when no mirador setting does.
    pub fn config_key(self) -> Option<&'static str> {
        match self {
            DropReason::Kernel => Some("capture.buffer_bytes"),
            DropReason::Interface => None,
            DropReason::QueueFull => Some("capture.queue_packets"),
            DropReason::FlowMemcap => Some("flow.max_flows"),
            DropReason::ReassemblyMemcap => Some("reassembly.memcap_bytes"),
            DropReason::FragmentMemcap => Some("decode.fragments.memcap_bytes"),
            DropReason::DecodeError => None,
            DropReason::BodyCap => Some("http.body_capture_bytes"),
            DropReason::DecompressCap => Some("http.decompress.max_output_bytes"),
            DropReason::HttpMemcap => Some("http.memcap_bytes"),
        }
    }

    /// Causes whose stage already logs its first hit itself (flow table, reassembly, live capture queue):
    /// [`Telemetry::publish`] does not log them a second time.
    pub fn logged_by_stage(self) -> bool {
        matches!(self, DropReason::FlowMemcap | DropReason::ReassemblyMemcap | DropReason::QueueFull)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One flag per cause: the first hit is logged, later ones only counted.
pub struct LogOnce([AtomicBool; DropReason::ALL.len()]);

impl Default for LogOnce {
    fn default() -> Self {
        Self::new()
    }
}

impl LogOnce {
    pub const fn new() -> Self {
        LogOnce([const { AtomicBool::new(false) }; DropReason::ALL.len()])
    }

    /// True the first time for `cause` (the caller logs), false afterwards.
    pub fn first(&self, cause: DropReason) -> bool {
        self.0.get(cause.index()).is_some_and(|f| !f.swap(true, Ordering::Relaxed))
    }

    /// Logs `cause` the first time it is seen; `count` is the counter's value at that point.
    pub fn log(&self, cause: DropReason, count: u64) -> bool {
        if !self.first(cause) {
            return false;
        }
        emit(cause, count);
        true
    }
}

static GLOBAL_LOG_ONCE: LogOnce = LogOnce::new();

/// Logs the first hit of `cause` in this process, naming the setting that raises it. Count every hit in the
/// stage's stats; call this on each one (it is a relaxed atomic swap after the first).
pub fn log_once(cause: Cap, count: u64) -> bool {
    GLOBAL_LOG_ONCE.log(cause, count)
}

fn emit(cause: DropReason, count: u64) {
    let cause_label = cause.label();
    let config_key = cause.config_key().unwrap_or("");
    match cause {
        DropReason::Kernel => tracing::warn!(
            cause = cause_label,
            config_key,
            count,
            "Kernel dropped packets: the capture buffer overflowed (raise capture.buffer_bytes, --buffer-bytes)."
        ),
        DropReason::Interface => tracing::warn!(
            cause = cause_label,
            count,
            "Interface dropped packets before the kernel saw them (grow the NIC ring with ethtool -G)."
        ),
        DropReason::QueueFull => tracing::warn!(
            cause = cause_label,
            config_key,
            count,
            "Queue full: dropping data because processing is slower than the link (raise capture.queue_packets or add shards)."
        ),
        DropReason::FlowMemcap => tracing::warn!(
            cause = cause_label,
            config_key,
            count,
            "Flow table full: evicting flows that never carried data first, then the least recently active (raise flow.memcap_bytes or flow.max_flows)."
        ),
        DropReason::ReassemblyMemcap => tracing::warn!(
            cause = cause_label,
            config_key,
            count,
            "Reassembly memory budget full: holes are skipped as gaps (raise reassembly.memcap_bytes)."
        ),
        DropReason::FragmentMemcap => tracing::warn!(
            cause = cause_label,
            config_key,
            count,
            "Fragment table full: datagrams dropped (raise decode.fragments.memcap_bytes or decode.fragments.max_datagrams)."
        ),
        DropReason::DecodeError => tracing::info!(
            cause = cause_label,
            count,
            "Packets that do not decode are dropped (by cause in mirador_decode_errors_total)."
        ),
        DropReason::BodyCap => tracing::info!(
            cause = cause_label,
            config_key,
            count,
            "Body bytes beyond the capture cap are counted, not kept (raise http.body_capture_bytes)."
        ),
        DropReason::DecompressCap => tracing::warn!(
            cause = cause_label,
            config_key,
            count,
            "Decompression stopped at its cap: body flagged decompression_bomb (raise http.decompress.max_output_bytes)."
        ),
        DropReason::HttpMemcap => tracing::warn!(
            cause = cause_label,
            config_key,
            count,
            "HTTP memory budget spent: bodies are counted but not captured, flag http_memcap (raise http.memcap_bytes)."
        ),
    }
}

type Get = fn(&Stats, &PipelineCounters) -> u64;
type Section = Box<dyn Fn() -> String + Send + Sync>;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One fixed series: a name, at most one label from a fixed set, and where its value comes from.
struct Series {
    name: &'static str,
    label: Option<(&'static str, &'static str)>,
    get: Get,
}

/// One metric family: its type and description, registered once.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

const fn s(name: &'static str, get: Get) -> Series {
    Series { name, label: None, get }
}

const fn l(name: &'static str, key: &'static str, value: &'static str, get: Get) -> Series {
    Series { name, label: Some((key, value)), get }
}

const fn c(name: &'static str, help: &'static str) -> Family {
    Family { name, kind: Kind::Counter, help }
}

const fn g(name: &'static str, help: &'static str) -> Family {
    Family { name, kind: Kind::Gauge, help }
}

const PACKETS: &str = "mirador_packets_total";
const BYTES: &str = "mirador_bytes_total";
const DROPS: &str = "mirador_drops_total";
const DECODE_ERRORS: &str = "mirador_decode_errors_total";
const TUNNELS: &str = "mirador_tunnels_total";
const LINKTYPES: &str = "mirador_packets_by_linktype_total";
const FRAGMENTS: &str = "mirador_fragments_total";
const DECODED: &str = "mirador_decoded_packets_total";
const DECODED_PROTO: &str = "mirador_decoded_by_proto_total";
const ENCAP: &str = "mirador_encapsulations_total";
const FLOWS: &str = "mirador_flows_total";
const FLOWS_CLOSED: &str = "mirador_flows_closed_total";
const HTTP_ANOMALIES: &str = "mirador_http_anomalies_total";
const QUEUE_IN: &str = "mirador_queue_enqueued_total";
const QUEUE_OUT: &str = "mirador_queue_dequeued_total";
const ANALYZER_TX: &str = "mirador_analyzer_transactions_total";
const ANALYZER_SECONDS: &str = "mirador_analyzer_seconds_total";

const FAMILIES: &[Family] = &[
    c(PACKETS, "Packets captured (all sources)."),
    c(BYTES, "Wire bytes of the packets captured."),
    c(
        DROPS,
        "Data dropped or cut, by reason. Units differ by reason: packets (kernel, interface, queue_full, decode_error), flows evicted (flow_memcap), refused reassembly reservations (reassembly_memcap), fragment datagrams (fragment_memcap), body bytes not kept (body_cap), bodies stopped (decompress_cap).",
    ),
    c(
        "mirador_capture_out_of_order_timestamps_total",
        "Packets older than the previous one (processed at the later time).",
    ),
    c("mirador_capture_file_errors_total", "Capture files that stopped early because they are damaged."),
    c(DECODE_ERRORS, "Packets dropped by the decoder, by cause."),
    c(LINKTYPES, "Packets decoded, by link type."),
    c(TUNNELS, "Tunnel layers peeled, by type."),
    c(
        "mirador_tunnel_errors_total",
        "Tunnel headers that were malformed (kind=header) or whose inner packet did not decode (kind=inner); the outer packet is kept.",
    ),
    c(DECODED, "Packets returned as a view to the flow stage (fragments count once, when their datagram completes)."),
    c("mirador_decoded_truncated_total", "Decoded packets whose IP length announces more than was captured."),
    c(DECODED_PROTO, "Decoded packets by network (ipv4, ipv6) and transport (tcp, udp, other) protocol."),
    c(ENCAP, "VLAN tags, VLAN tags beyond the kept depth (vlan_overflow), MPLS labels and PPPoE headers seen."),
    c(
        FRAGMENTS,
        "IP fragments received (outcome=seen) and their outcomes; reassembled, dropped_* and timed_out count datagrams, the others fragments.",
    ),
    c(FLOWS, "Flows created, by transport protocol."),
    c(FLOWS_CLOSED, "Flows closed, by reason (evicted = to stay under the flow cap or memcap)."),
    c(
        "mirador_flows_evicted_total",
        "Flows evicted to stay under flow.memcap_bytes or flow.max_flows, by kind: embryonic (never carried a byte, evicted first) or active (the least recently active of the others).",
    ),
    c(
        "mirador_flows_emergency_total",
        "Times the flow table entered emergency mode (memory above 3/4 of its cap: shorter timeouts).",
    ),
    g(
        "mirador_flows_memory_peak_bytes",
        "Most bytes the flow tables held (entries, identities, connection and parser state).",
    ),
    g("mirador_flows_active", "Flows held now (created minus closed)."),
    g("mirador_flows_peak", "Most flows held at once."),
    c("mirador_flows_midstream_total", "TCP flows picked up without their handshake."),
    c(
        "mirador_flows_midstream_ignored_packets_total",
        "Packets of connections without a handshake, ignored because midstream pickup is off.",
    ),
    c("mirador_flows_one_sided_total", "Flows with traffic in one direction only."),
    c("mirador_tcp_gaps_total", "Holes in TCP streams (bytes never captured), skipped."),
    c("mirador_tcp_gap_bytes_total", "Bytes missing in TCP stream gaps."),
    c("mirador_tcp_overlaps_total", "TCP segments overlapping bytes already received."),
    c(
        "mirador_tcp_overlaps_different_data_total",
        "TCP overlaps whose bytes differ from those received first (an evasion signal).",
    ),
    c("mirador_tcp_retransmissions_total", "TCP segments carrying only bytes already delivered."),
    c("mirador_tcp_payload_bytes_total", "TCP payload bytes delivered in order to the HTTP parser."),
    g("mirador_reassembly_memory_bytes", "Reassembly memory held now."),
    g("mirador_reassembly_memory_peak_bytes", "Most reassembly memory held at once."),
    c("mirador_http_transactions_total", "HTTP transactions framed."),
    c("mirador_http_messages_total", "HTTP requests and responses seen, by kind (request, response, interim = 1xx)."),
    c("mirador_http_gaps_total", "Capture gaps inside HTTP streams."),
    c("mirador_http_gap_bytes_total", "Bytes missing inside HTTP streams."),
    c("mirador_http_resyncs_total", "Times a direction lost HTTP framing and searched for the next start line."),
    c("mirador_http_resync_skipped_bytes_total", "Bytes discarded while resyncing."),
    c("mirador_http_body_skipped_bytes_total", "Body bytes beyond http.body_capture_bytes, counted and not kept."),
    c("mirador_http_tunnel_ignored_bytes_total", "Bytes after an upgrade, CONNECT or HTTP/0.9 exchange, ignored."),
    c("mirador_http_decompression_bombs_total", "Bodies whose decompression stopped at a cap."),
    c("mirador_http_decompression_errors_total", "Bodies that failed to decompress."),
    c(
        "mirador_http_roles_swapped_total",
        "Connections whose client and server roles were swapped from the HTTP content.",
    ),
    c("mirador_http2_connections_total", "Connections starting with the HTTP/2 preface, ignored."),
    c(
        "mirador_http_responses_to_invalid_requests_total",
        "Responses that followed invalid request data: framed, not reported.",
    ),
    c("mirador_http_raw_lines_cut_total", "Malformed start lines whose copy in the record was cut at 1 KiB."),
    c("mirador_websocket_frames_total", "WebSocket frames after an upgrade, by direction."),
    c("mirador_websocket_messages_total", "WebSocket text messages handed to the analyzers."),
    c("mirador_websocket_lost_total", "WebSocket streams abandoned (reserved opcode or gap)."),
    c(HTTP_ANOMALIES, "HTTP transactions carrying each flag (anomalies and outcomes)."),
    c(QUEUE_IN, "Items put on a queue between threads, by queue."),
    c(QUEUE_OUT, "Items taken from a queue between threads, by queue."),
    c(ANALYZER_TX, "Transactions processed, by analyzer."),
    c(ANALYZER_SECONDS, "Wall time spent in each analyzer, seconds."),
    c("mirador_transactions_total", "Transactions handed to the analyzers."),
    c("mirador_alerts_total", "Alerts raised."),
    c("mirador_findings_total", "Findings reported."),
    c(BY_TYPE, "Alerts and findings by stream and type (rule or data type)."),
];

const BY_TYPE: &str = "mirador_records_by_type_total";

fn decode_error_sum(st: &Stats) -> u64 {
    let e = &st.decode.errors;
    [
        e.truncated_link_header,
        e.unsupported_linktype,
        e.unsupported_link_proto,
        e.unsupported_ethertype,
        e.vlan_depth_exceeded,
        e.mpls_depth_exceeded,
        e.bad_ip_header,
        e.bad_ip_version,
        e.bad_ipv6_ext,
        e.bad_tcp_header,
        e.bad_udp_header,
        e.tunnel_depth_exceeded,
        e.truncated_fragment,
    ]
    .iter()
    .fold(0u64, |a, b| a.saturating_add(*b))
}

fn flows_closed(st: &Stats) -> u64 {
    let f = &st.flows;
    [f.closed_fin, f.closed_rst, f.closed_idle, f.closed_end_of_input, f.evicted]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
}

/// Drop reason → value: every reason in [`DropReason::ALL`] has exactly one arm.
fn drop_value(reason: DropReason, st: &Stats, pc: &PipelineCounters) -> u64 {
    match reason {
        DropReason::Kernel => st.capture.kernel_drops,
        DropReason::Interface => st.capture.interface_drops,
        DropReason::QueueFull => st.capture.queue_full_drops.saturating_add(pc.queue_full_drops),
        DropReason::FlowMemcap => st.flows.flow_cap_hits,
        DropReason::ReassemblyMemcap => st.flows.reassembly_memcap_hits,
        DropReason::FragmentMemcap => {
            st.decode.fragments.dropped_memcap.saturating_add(st.decode.fragments.dropped_count_cap)
        }
        DropReason::DecodeError => decode_error_sum(st),
        DropReason::BodyCap => st.http.body_bytes_skipped,
        DropReason::DecompressCap => st.http.decompression_bombs,
        DropReason::HttpMemcap => st.http.memcap_hits,
    }
}

/// Every fixed series. Label sets that come from open enums (link types, tunnel types, HTTP flags) and the
/// analyzers are registered separately from their known names.
const SERIES: &[Series] = &[
    s(PACKETS, |st, _| st.capture.packets),
    s(BYTES, |st, _| st.capture.bytes),
    s("mirador_capture_out_of_order_timestamps_total", |st, _| st.capture.out_of_order_timestamps),
    s("mirador_capture_file_errors_total", |st, _| st.capture.file_errors.len() as u64),
    l(DECODE_ERRORS, "cause", "truncated_link_header", |st, _| st.decode.errors.truncated_link_header),
    l(DECODE_ERRORS, "cause", "unsupported_linktype", |st, _| st.decode.errors.unsupported_linktype),
    l(DECODE_ERRORS, "cause", "unsupported_link_proto", |st, _| st.decode.errors.unsupported_link_proto),
    l(DECODE_ERRORS, "cause", "unsupported_ethertype", |st, _| st.decode.errors.unsupported_ethertype),
    l(DECODE_ERRORS, "cause", "vlan_depth_exceeded", |st, _| st.decode.errors.vlan_depth_exceeded),
    l(DECODE_ERRORS, "cause", "mpls_depth_exceeded", |st, _| st.decode.errors.mpls_depth_exceeded),
    l(DECODE_ERRORS, "cause", "bad_ip_header", |st, _| st.decode.errors.bad_ip_header),
    l(DECODE_ERRORS, "cause", "bad_ip_version", |st, _| st.decode.errors.bad_ip_version),
    l(DECODE_ERRORS, "cause", "bad_ipv6_ext", |st, _| st.decode.errors.bad_ipv6_ext),
    l(DECODE_ERRORS, "cause", "bad_tcp_header", |st, _| st.decode.errors.bad_tcp_header),
    l(DECODE_ERRORS, "cause", "bad_udp_header", |st, _| st.decode.errors.bad_udp_header),
    l(DECODE_ERRORS, "cause", "tunnel_depth_exceeded", |st, _| st.decode.errors.tunnel_depth_exceeded),
    l(DECODE_ERRORS, "cause", "truncated_fragment", |st, _| st.decode.errors.truncated_fragment),
    l("mirador_tunnel_errors_total", "kind", "header", |st, _| st.decode.tunnel_bad),
    l("mirador_tunnel_errors_total", "kind", "inner", |st, _| st.decode.tunnel_inner_bad),
    s(DECODED, |st, _| st.decode.decoded),
    s("mirador_decoded_truncated_total", |st, _| st.decode.truncated),
    l(DECODED_PROTO, "proto", "ipv4", |st, _| st.decode.ipv4),
    l(DECODED_PROTO, "proto", "ipv6", |st, _| st.decode.ipv6),
    l(DECODED_PROTO, "proto", "tcp", |st, _| st.decode.tcp),
    l(DECODED_PROTO, "proto", "udp", |st, _| st.decode.udp),
    l(DECODED_PROTO, "proto", "other", |st, _| st.decode.other_proto),
    l(ENCAP, "type", "vlan", |st, _| st.decode.vlan_tags),
    l(ENCAP, "type", "vlan_overflow", |st, _| st.decode.vlan_overflow),
    l(ENCAP, "type", "mpls", |st, _| st.decode.mpls),
    l(ENCAP, "type", "pppoe", |st, _| st.decode.pppoe),
    l(FRAGMENTS, "outcome", "seen", |st, _| st.decode.fragments.seen),
    l(FRAGMENTS, "outcome", "reassembled", |st, _| st.decode.fragments.reassembled),
    l(FRAGMENTS, "outcome", "overlapping", |st, _| st.decode.fragments.overlapping),
    l(FRAGMENTS, "outcome", "dropped_memcap", |st, _| st.decode.fragments.dropped_memcap),
    l(FRAGMENTS, "outcome", "dropped_count_cap", |st, _| st.decode.fragments.dropped_count_cap),
    l(FRAGMENTS, "outcome", "dropped_too_many_fragments", |st, _| st.decode.fragments.dropped_too_many_fragments),
    l(FRAGMENTS, "outcome", "invalid", |st, _| st.decode.fragments.invalid),
    l(FRAGMENTS, "outcome", "timed_out", |st, _| st.decode.fragments.timed_out),
    l(FRAGMENTS, "outcome", "nested_dropped", |st, _| st.decode.fragments.nested_dropped),
    l(FLOWS, "proto", "tcp", |st, _| st.flows.tcp_flows),
    l(FLOWS, "proto", "udp", |st, _| st.flows.udp_flows),
    l(FLOWS, "proto", "other", |st, _| st.flows.other_flows),
    l(FLOWS_CLOSED, "reason", "fin", |st, _| st.flows.closed_fin),
    l(FLOWS_CLOSED, "reason", "rst", |st, _| st.flows.closed_rst),
    l(FLOWS_CLOSED, "reason", "idle_timeout", |st, _| st.flows.closed_idle),
    l(FLOWS_CLOSED, "reason", "end_of_input", |st, _| st.flows.closed_end_of_input),
    l(FLOWS_CLOSED, "reason", "evicted", |st, _| st.flows.evicted),
    l("mirador_flows_evicted_total", "kind", "embryonic", |st, _| st.flows.evicted_embryonic),
    l("mirador_flows_evicted_total", "kind", "active", |st, _| st.flows.evicted_active),
    s("mirador_flows_emergency_total", |st, _| st.flows.emergency_entries),
    s("mirador_flows_memory_peak_bytes", |st, _| st.flows.memory_peak_bytes),
    s("mirador_flows_active", |st, _| st.flows.flows_created.saturating_sub(flows_closed(st))),
    s("mirador_flows_peak", |st, _| st.flows.peak_flows),
    s("mirador_flows_midstream_total", |st, _| st.flows.midstream_flows),
    s("mirador_flows_midstream_ignored_packets_total", |st, _| st.flows.midstream_ignored_packets),
    s("mirador_flows_one_sided_total", |st, _| st.flows.one_sided_flows),
    s("mirador_tcp_gaps_total", |st, _| st.flows.gaps),
    s("mirador_tcp_gap_bytes_total", |st, _| st.flows.gap_bytes),
    s("mirador_tcp_overlaps_total", |st, _| st.flows.overlaps),
    s("mirador_tcp_overlaps_different_data_total", |st, _| st.flows.overlaps_with_different_data),
    s("mirador_tcp_retransmissions_total", |st, _| st.flows.retransmissions),
    s("mirador_tcp_payload_bytes_total", |st, _| st.flows.payload_bytes_delivered),
    s("mirador_reassembly_memory_bytes", |_, pc| pc.reassembly_memory_bytes),
    s("mirador_reassembly_memory_peak_bytes", |st, _| st.flows.reassembly_peak_bytes),
    s("mirador_http_transactions_total", |st, _| st.http.transactions),
    l("mirador_http_messages_total", "kind", "request", |st, _| st.http.requests),
    l("mirador_http_messages_total", "kind", "response", |st, _| st.http.responses),
    l("mirador_http_messages_total", "kind", "interim", |st, _| st.http.interim_responses),
    s("mirador_http_gaps_total", |st, _| st.http.gaps),
    s("mirador_http_gap_bytes_total", |st, _| st.http.gap_bytes),
    s("mirador_http_resyncs_total", |st, _| st.http.resyncs),
    s("mirador_http_resync_skipped_bytes_total", |st, _| st.http.resync_bytes_skipped),
    s("mirador_http_body_skipped_bytes_total", |st, _| st.http.body_bytes_skipped),
    s("mirador_http_tunnel_ignored_bytes_total", |st, _| st.http.tunnel_bytes_ignored),
    s("mirador_http_decompression_bombs_total", |st, _| st.http.decompression_bombs),
    s("mirador_http_decompression_errors_total", |st, _| st.http.decompression_errors),
    s("mirador_http_roles_swapped_total", |st, _| st.http.roles_swapped),
    s("mirador_http2_connections_total", |st, _| st.http.http2_connections),
    s("mirador_http_responses_to_invalid_requests_total", |st, _| st.http.responses_to_invalid_requests),
    s("mirador_http_raw_lines_cut_total", |st, _| st.http.raw_lines_cut),
    l("mirador_websocket_frames_total", "direction", "client", |st, _| st.http.websocket_frames_client),
    l("mirador_websocket_frames_total", "direction", "server", |st, _| st.http.websocket_frames_server),
    s("mirador_websocket_messages_total", |st, _| st.http.websocket_messages),
    s("mirador_websocket_lost_total", |st, _| st.http.websocket_lost),
    l(QUEUE_IN, "queue", "packets", |_, pc| pc.packet_queue.enqueued_total),
    l(QUEUE_IN, "queue", "transactions", |_, pc| pc.transaction_queue.enqueued_total),
    l(QUEUE_OUT, "queue", "packets", |_, pc| pc.packet_queue.dequeued_total),
    l(QUEUE_OUT, "queue", "transactions", |_, pc| pc.transaction_queue.dequeued_total),
    s("mirador_transactions_total", |_, pc| pc.transactions_total),
    s("mirador_alerts_total", |_, pc| pc.alerts_total),
    s("mirador_findings_total", |_, pc| pc.findings_total),
];

/// The label value used for names outside a registered set.
const OTHER: &str = "other";

/// A handle that is either a counter or a gauge (gauges are set from the same `u64` snapshots).
enum Handle {
    Counter(Counter),
    Gauge(Gauge),
}

impl Handle {
    fn set(&self, v: u64) {
        match self {
            Handle::Counter(c) => c.absolute(v),
            // Precision loss above 2^53 is irrelevant for memory and flow counts.
            Handle::Gauge(g) => g.set(v as f64),
        }
    }
}

/// Counters for an open set of names (link types, tunnel types): the known names each have a series, the
/// rest are summed under `other`.
struct NamedSet {
    known: Vec<(&'static str, Counter)>,
    other: Counter,
}

impl NamedSet {
    fn publish(&self, values: &BTreeMap<&'static str, u64>) {
        let mut other = 0u64;
        for (name, v) in values {
            if !self.known.iter().any(|(k, _)| k == name) {
                other = other.saturating_add(*v);
            }
        }
        for (name, c) in &self.known {
            c.absolute(values.get(name).copied().unwrap_or(0));
        }
        self.other.absolute(other);
    }
}

struct AnalyzerSeries {
    name: String,
    transactions: Counter,
    nanos: u64,
}

#[derive(Default)]
struct Analyzers {
    series: Vec<AnalyzerSeries>,
    /// Analyzers beyond `MAX_ANALYZERS`, summed.
    other_transactions: Option<Counter>,
    other_nanos: u64,
}

struct Health {
    unhealthy: Option<String>,
    last_publish: Instant,
    /// `/healthz` fails when no publish came for this long (the pipeline thread is stuck).
    stale_after: Option<Duration>,
}

/// The registered handles and the recorder that renders them. Share it as `Arc<Telemetry>` between the
/// pipeline thread (publish, set_unhealthy) and the server thread (render, health).
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    fixed: Vec<(Handle, Get)>,
    drops: Vec<(DropReason, Counter)>,
    linktypes: NamedSet,
    tunnels: NamedSet,
    /// One counter per flag index; indexes without a name share the `other` series.
    flags: Vec<(Flag, Counter)>,
    flags_other: Counter,
    analyzers: Mutex<Analyzers>,
    /// Text appended to the exposition by [`Telemetry::add_section`].
    sections: Mutex<Vec<Section>>,
    /// `BY_TYPE` series, registered as types appear (the pipeline caps how many).
    by_type: Mutex<Vec<((&'static str, String), Counter)>>,
    health: Mutex<Health>,
    healthy: AtomicBool,
    log: &'static LogOnce,
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain counters behind: still good to render.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Builds a local recorder (not installed globally) and registers and describes every series once.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        for f in FAMILIES {
            let help = SharedString::const_str(f.help);
            match f.kind {
                Kind::Counter => recorder.describe_counter(KeyName::from_const_str(f.name), None, help),
                Kind::Gauge => recorder.describe_gauge(KeyName::from_const_str(f.name), None, help),
            }
        }
        let kind_of = |name: &str| FAMILIES.iter().find(|f| f.name == name).map_or(Kind::Counter, |f| f.kind);
        let fixed = SERIES
            .iter()
            .map(|sr| {
                let key = match sr.label {
                    Some((k, v)) => Key::from_parts(sr.name, vec![Label::from_static_parts(k, v)]),
                    None => Key::from_static_name(sr.name),
                };
                let h = match kind_of(sr.name) {
                    Kind::Counter => Handle::Counter(recorder.register_counter(&key, &METADATA)),
                    Kind::Gauge => Handle::Gauge(recorder.register_gauge(&key, &METADATA)),
                };
                (h, sr.get)
            })
            .collect();
        let counter = |name: &'static str, label: &'static str, value: &'static str| {
            recorder.register_counter(&Key::from_parts(name, vec![Label::from_static_parts(label, value)]), &METADATA)
        };
        let drops = DropReason::ALL.iter().map(|r| (*r, counter(DROPS, "reason", r.label()))).collect();
        let named = |family: &'static str, label: &'static str, names: Vec<&'static str>| NamedSet {
            known: names.into_iter().map(|n| (n, counter(family, label, n))).collect(),
            other: counter(family, label, OTHER),
        };
        let linktypes = named(LINKTYPES, "linktype", linktype_names());
        let tunnels = named(TUNNELS, "type", tunnel_names());
        let flags = (0..64u8)
            .map(Flag)
            .filter(|f| f.name() != OTHER)
            .map(|f| (f, counter(HTTP_ANOMALIES, "flag", f.name())))
            .collect();
        let flags_other = counter(HTTP_ANOMALIES, "flag", OTHER);
        Telemetry {
            recorder,
            handle,
            fixed,
            drops,
            linktypes,
            tunnels,
            flags,
            flags_other,
            analyzers: Mutex::new(Analyzers::default()),
            health: Mutex::new(Health { unhealthy: None, last_publish: Instant::now(), stale_after: None }),
            healthy: AtomicBool::new(true),
            by_type: Mutex::new(Vec::new()),
            sections: Mutex::new(Vec::new()),
            log: &GLOBAL_LOG_ONCE,
        }
    }

    /// Copies a snapshot into the registered handles. Call it from the pipeline's own thread once a second and
    /// once more at shutdown, with the totals since start (counters are set, not added). Logs the first hit of
    /// each drop reason that its stage does not log itself.
    pub fn publish(&self, stats: &Stats, pc: &PipelineCounters) {
        lock(&self.health).last_publish = Instant::now();
        for (h, get) in &self.fixed {
            h.set(get(stats, pc));
        }
        for (reason, c) in &self.drops {
            let v = drop_value(*reason, stats, pc);
            c.absolute(v);
            if v > 0 && !reason.logged_by_stage() {
                self.log.log(*reason, v);
            }
        }
        self.linktypes.publish(&stats.decode.by_linktype);
        self.tunnels.publish(&stats.decode.tunnels);
        for (f, c) in &self.flags {
            c.absolute(stats.http.flags.get(*f));
        }
        let other = (0..64u8)
            .map(Flag)
            .filter(|f| f.name() == OTHER)
            .fold(0u64, |a, f| a.saturating_add(stats.http.flags.get(f)));
        self.flags_other.absolute(other);
        self.publish_analyzers(&pc.analyzers);
        self.publish_by_type(&pc.by_type);
    }

    fn publish_by_type(&self, list: &[RecordTypeCount]) {
        let mut series = lock(&self.by_type);
        for rc in list {
            let kind = truncate(&rc.kind, MAX_ANALYZER_NAME);
            let pos = series.iter().position(|((st, k), _)| *st == rc.stream && k == kind);
            let i = match pos {
                Some(i) => i,
                None => {
                    let labels = vec![Label::new("stream", rc.stream), Label::new("type", kind.to_string())];
                    let c = self.recorder.register_counter(&Key::from_parts(BY_TYPE, labels), &METADATA);
                    series.push(((rc.stream, kind.to_string()), c));
                    series.len() - 1
                }
            };
            if let Some((_, c)) = series.get(i) {
                c.absolute(rc.count);
            }
        }
    }

    fn publish_analyzers(&self, list: &[AnalyzerCounters]) {
        let mut a = lock(&self.analyzers);
        let mut other_tx = 0u64;
        let mut other_nanos = 0u64;
        for ac in list {
            let name = truncate(&ac.name, MAX_ANALYZER_NAME);
            let idx = match a.series.iter().position(|s| s.name == name) {
                Some(i) => Some(i),
                None if a.series.len() < MAX_ANALYZERS && name != OTHER => {
                    let key = Key::from_parts(ANALYZER_TX, vec![Label::new("analyzer", name.to_string())]);
                    let transactions = self.recorder.register_counter(&key, &METADATA);
                    a.series.push(AnalyzerSeries { name: name.to_string(), transactions, nanos: 0 });
                    Some(a.series.len() - 1)
                }
                None => None,
            };
            match idx.and_then(|i| a.series.get_mut(i)) {
                Some(s) => {
                    s.transactions.absolute(ac.transactions);
                    s.nanos = ac.nanos;
                }
                None => {
                    other_tx = other_tx.saturating_add(ac.transactions);
                    other_nanos = other_nanos.saturating_add(ac.nanos);
                }
            }
        }
        if other_tx > 0 || other_nanos > 0 || a.other_transactions.is_some() {
            let c = a.other_transactions.get_or_insert_with(|| {
                let key = Key::from_parts(ANALYZER_TX, vec![Label::from_static_parts("analyzer", OTHER)]);
                self.recorder.register_counter(&key, &METADATA)
            });
            c.absolute(other_tx);
            a.other_nanos = other_nanos;
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = self.handle.render();
        // `metrics` counters are integers; seconds are fractional, so this family is written here, still
        // typed as a counter.
        let a = lock(&self.analyzers);
        let help = FAMILIES.iter().find(|f| f.name == ANALYZER_SECONDS).map_or("", |f| f.help);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("# HELP {ANALYZER_SECONDS} {help}\n# TYPE {ANALYZER_SECONDS} counter\n"));
        for s in &a.series {
            out.push_str(&format!(
                "{ANALYZER_SECONDS}{{analyzer=\"{}\"}} {}\n",
                escape_label(&s.name),
                nanos_to_secs(s.nanos)
            ));
        }
        if a.other_transactions.is_some() {
            out.push_str(&format!("{ANALYZER_SECONDS}{{analyzer=\"{OTHER}\"}} {}\n", nanos_to_secs(a.other_nanos)));
        }
        drop(a);
        for section in lock(&self.sections).iter() {
            out.push_str(&section());
        }
        out
    }

    /// Adds families rendered by another component at scrape time (complete `# HELP`/`# TYPE` blocks), e.g.
    /// the SIEM sinks' per-sink counters.
    pub fn add_section(&self, render: impl Fn() -> String + Send + Sync + 'static) {
        lock(&self.sections).push(Box::new(render));
    }

    /// `/healthz` answers 503 with `reason` from now on (a capture thread died, an output failed).
    pub fn set_unhealthy(&self, reason: &str) {
        lock(&self.health).unhealthy = Some(truncate(reason, MAX_REASON).to_string());
        self.healthy.store(false, Ordering::Release);
    }

    pub fn set_healthy(&self) {
        lock(&self.health).unhealthy = None;
        self.healthy.store(true, Ordering::Release);
    }

    /// Makes `/healthz` fail when [`Telemetry::publish`] has not been called for `after` (a stuck pipeline
    /// thread); `None` (the default) turns the check off. Counted from now when nothing was published yet.
    pub fn set_stale_after(&self, after: Option<Duration>) {
        let mut h = lock(&self.health);
        h.stale_after = after;
        h.last_publish = Instant::now();
    }

    /// `None` while healthy, else why not: the reason given to [`Telemetry::set_unhealthy`], or stale stats.
    pub fn unhealthy_reason(&self) -> Option<String> {
        let h = lock(&self.health);
        if !self.healthy.load(Ordering::Acquire) {
            return Some(h.unhealthy.clone().unwrap_or_default());
        }
        let age = h.last_publish.elapsed();
        match h.stale_after {
            Some(limit) if age > limit => {
                Some(format!("no stats published for {} s (pipeline stalled)", age.as_secs()))
            }
            _ => None,
        }
    }
}

fn nanos_to_secs(n: u64) -> f64 {
    n as f64 / 1e9
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Label value escaping of the text format: backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Every link type name the capture layer can report, except `other` (the catch-all series).
fn linktype_names() -> Vec<&'static str> {
    // Link type numbers we name are all below 300 (LINUX_SLL2 = 276); unnamed ones map to "other".
    let mut v: Vec<&'static str> = (0..1024u32).map(|n| LinkType(n).name()).filter(|n| *n != OTHER).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Every tunnel type name, except `none` (no tunnel), which is never counted.
fn tunnel_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> =
        (0..=u8::MAX).map(|n| TunnelKind(n).name()).filter(|n| *n != "none" && *n != OTHER).collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for /metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the /metrics server thread: {0}")]
    Spawn(std::io::Error),
    #[error("invalid log level {level:?}: {message}")]
    LogLevel { level: String, message: String },
    #[error("logging is already set up")]
    LoggingInstalled,
}

/// The `/metrics` and `/healthz` responder; stops and joins its thread when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let wake = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.addr.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), self.addr.port()),
            _ => self.addr,
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_and_join();
        }
    }
}

/// Binds `listen` and answers `GET /metrics` and `GET /healthz` on a dedicated thread, one connection at a
/// time (a scraper, a probe): each request head is capped at 8 KiB and must arrive within 2 s.
pub fn serve(listen: SocketAddr, telemetry: Arc<Telemetry>) -> Result<MetricsServer, MetricsError> {
    let listener = TcpListener::bind(listen).map_err(|source| MetricsError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| MetricsError::Bind { addr: listen, source })?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || accept_loop(listener, &telemetry, &stop2))
        .map_err(MetricsError::Spawn)?;
    tracing::info!(%addr, "Serving /metrics and /healthz.");
    Ok(MetricsServer { addr, stop, thread: Some(thread) })
}

fn accept_loop(listener: TcpListener, telemetry: &Telemetry, stop: &AtomicBool) {
    let mut accept_error_logged = false;
    loop {
        let conn = listener.accept();
        if stop.load(Ordering::Acquire) {
            return;
        }
        match conn {
            Ok((stream, _)) => {
                // A client that vanished mid-request is its own problem, not the server's.
                let _ = handle_connection(stream, telemetry);
            }
            Err(e) => {
                if !accept_error_logged {
                    accept_error_logged = true;
                    tracing::warn!(error = %e, "Metrics listener accept failed; retrying.");
                }
                // Out of descriptors and the like: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What a request head asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Get { path: String, head_only: bool },
    BadMethod,
    Malformed,
    TooLarge,
    TimedOut,
}

/// Reads until the blank line ending the head, at most `MAX_REQUEST_BYTES`, within `REQUEST_DEADLINE`.
fn read_request(stream: &mut TcpStream) -> Request {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if memchr::memmem::find(&buf, b"\r\n\r\n").is_some() || memchr::memmem::find(&buf, b"\n\n").is_some() {
            return parse_request_line(&buf);
        }
        if buf.len() >= MAX_REQUEST_BYTES {
            return Request::TooLarge;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Request::TimedOut;
        }
        let room = (MAX_REQUEST_BYTES - buf.len()).min(chunk.len());
        match stream.read(chunk.get_mut(..room).unwrap_or(&mut [])) {
            // The client closed before finishing its head: answer what we have if it is a full line.
            Ok(0) => return if buf.contains(&b'\n') { parse_request_line(&buf) } else { Request::Malformed },
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Request::TimedOut,
        }
    }
}

fn parse_request_line(head: &[u8]) -> Request {
    let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
    let line = head.get(..line_end).unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else { return Request::Malformed };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Request::Malformed;
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Request::Malformed;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::BadMethod,
    };
    let path = target.split('?').next().unwrap_or(target).to_string();
    Request::Get { path, head_only }
}

fn handle_connection(mut stream: TcpStream, telemetry: &Telemetry) -> std::io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let (status, ctype, body, head_only): (&str, &str, String, bool) = match read_request(&mut stream) {
        Request::Get { path, head_only } => match path.as_str() {
            "/metrics" => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", telemetry.render(), head_only),
            "/healthz" => match telemetry.unhealthy_reason() {
                None => ("200 OK", "text/plain; charset=utf-8", "ok\n".into(), head_only),
                Some(r) => {
                    ("503 Service Unavailable", "text/plain; charset=utf-8", format!("unhealthy: {r}\n"), head_only)
                }
            },
            _ => ("404 Not Found", "text/plain; charset=utf-8", "not found\n".into(), head_only),
        },
        Request::BadMethod => ("405 Method Not Allowed", "text/plain; charset=utf-8", "GET only\n".into(), false),
        Request::Malformed => ("400 Bad Request", "text/plain; charset=utf-8", "bad request\n".into(), false),
        Request::TooLarge => {
            ("431 Request Header Fields Too Large", "text/plain; charset=utf-8", "request too large\n".into(), false)
        }
        Request::TimedOut => ("408 Request Timeout", "text/plain; charset=utf-8", "timeout\n".into(), false),
    };
    let allow = if status.starts_with("405") { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()?;
    // Closing with unread request bytes sends a RST that can destroy the response before the client reads
    // it (oversized requests): finish our side, then drain a bounded amount for a bounded time.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    let until = Instant::now() + LINGER;
    while drained < MAX_LINGER_BYTES && Instant::now() < until {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

/// Log output format.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise (systemd, containers).
    #[default]
    Auto,
    Text,
    Json,
}

/// Installs the `tracing` subscriber writing to stderr. `RUST_LOG`, when set and valid, overrides `level`.
pub fn init_logging(level: &str, format: LogFormat) -> Result<(), MetricsError> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => EnvFilter::try_new(&v)
            .map_err(|e| MetricsError::LogLevel { level: format!("RUST_LOG={v}"), message: e.to_string() })?,
        None => EnvFilter::try_new(level)
            .map_err(|e| MetricsError::LogLevel { level: level.to_string(), message: e.to_string() })?,
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    result.map_err(|_| MetricsError::LoggingInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `line_prefix` (name and labels exactly as rendered).
    fn value(text: &str, series: &str) -> Option<String> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).map(str::to_string))
    }

    fn stats_with_distinct_values() -> Stats {
        let mut st = Stats::default();
        let c = &mut st.capture;
        (c.packets, c.bytes, c.out_of_order_timestamps, c.kernel_drops, c.interface_drops, c.queue_full_drops) =
            (1001, 1002, 1003, 1004, 1005, 1006);
        let d = &mut st.decode;
        (d.packets, d.bytes, d.decoded, d.truncated, d.ipv4, d.ipv6, d.tcp, d.udp, d.other_proto) =
            (2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009);
        (d.vlan_tags, d.vlan_overflow, d.mpls, d.pppoe, d.tunnel_bad, d.tunnel_inner_bad) =
            (2010, 2011, 2012, 2013, 2014, 2015);
        d.by_linktype.insert("ethernet", 2016);
        d.by_linktype.insert("linux_sll2", 2017);
        d.by_linktype.insert("other", 2018);
        d.tunnels.insert("vxlan", 2019);
        d.tunnels.insert("gtp-u", 2020);
        let e = &mut d.errors;
        (e.truncated_link_header, e.unsupported_linktype, e.unsupported_link_proto, e.unsupported_ethertype) =
            (3001, 3002, 3003, 3004);
        (e.vlan_depth_exceeded, e.mpls_depth_exceeded, e.bad_ip_header, e.bad_ip_version, e.bad_ipv6_ext) =
            (3005, 3006, 3007, 3008, 3009);
        (e.bad_tcp_header, e.bad_udp_header, e.tunnel_depth_exceeded, e.truncated_fragment) = (3010, 3011, 3012, 3013);
        let fr = &mut d.fragments;
        (fr.seen, fr.reassembled, fr.overlapping, fr.dropped_memcap, fr.dropped_count_cap) =
            (4001, 4002, 4003, 4004, 4005);
        (fr.dropped_too_many_fragments, fr.invalid, fr.timed_out, fr.nested_dropped) = (4006, 4007, 4008, 4009);
        let f = &mut st.flows;
        (f.flows_created, f.tcp_flows, f.udp_flows, f.other_flows) = (50000, 5002, 5003, 5004);
        (f.closed_fin, f.closed_rst, f.closed_idle, f.closed_end_of_input, f.evicted) = (5005, 5006, 5007, 5008, 5009);
        (f.flow_cap_hits, f.midstream_flows, f.midstream_ignored_packets, f.one_sided_flows) = (5010, 5011, 5012, 5013);
        (f.reassembly_memcap_hits, f.reassembly_peak_bytes, f.gaps, f.gap_bytes, f.overlaps) =
            (5014, 5015, 5016, 5017, 5018);
        (f.overlaps_with_different_data, f.retransmissions, f.payload_bytes_delivered) = (5019, 5020, 5021);
        (f.http_transactions, f.peak_flows) = (5022, 5023);
        (f.evicted_embryonic, f.evicted_active, f.emergency_entries, f.memory_peak_bytes) = (5024, 5025, 5026, 5027);
        let h = &mut st.http;
        (h.transactions, h.requests, h.responses, h.interim_responses, h.gaps, h.gap_bytes) =
            (6001, 6002, 6003, 6004, 6005, 6006);
        (h.resyncs, h.resync_bytes_skipped, h.body_bytes_skipped, h.tunnel_bytes_ignored) = (6007, 6008, 6009, 6010);
        (h.decompression_bombs, h.decompression_errors, h.roles_swapped, h.http2_connections) =
            (6011, 6012, 6013, 6014);
        h.responses_to_invalid_requests = 6015;
        let mut flags = crate::http::Flags::default();
        flags.set(Flag::BARE_LF);
        flags.set(Flag::GAP);
        h.flags.add(flags);
        h.flags.add(flags);
        let mut only_gap = crate::http::Flags::default();
        only_gap.set(Flag::GAP);
        h.flags.add(only_gap);
        st
    }

    fn counters() -> PipelineCounters {
        PipelineCounters {
            packet_queue: QueueCounters { enqueued_total: 7001, dequeued_total: 7002 },
            transaction_queue: QueueCounters { enqueued_total: 7003, dequeued_total: 7004 },
            queue_full_drops: 10,
            analyzers: vec![
                AnalyzerCounters { name: "inventory".into(), transactions: 7005, nanos: 1_500_000_000 },
                AnalyzerCounters { name: "sensitive".into(), transactions: 7006, nanos: 250_000_000 },
            ],
            alerts_total: 7007,
            findings_total: 7008,
            by_type: vec![
                RecordTypeCount { stream: "alerts", kind: "sqli".into(), count: 7011 },
                RecordTypeCount { stream: "findings", kind: "email".into(), count: 7012 },
            ],
            transactions_total: 7009,
            reassembly_memory_bytes: 7010,
        }
    }

    fn rendered_with(pc: &PipelineCounters) -> String {
        let t = Telemetry::new();
        t.publish(&stats_with_distinct_values(), pc);
        t.render()
    }

    fn rendered() -> String {
        rendered_with(&counters())
    }

    #[test]
    fn every_stats_field_maps_to_its_series() {
        let text = rendered();
        let expect = [
            ("mirador_packets_total", "1001"),
            ("mirador_bytes_total", "1002"),
            ("mirador_capture_out_of_order_timestamps_total", "1003"),
            ("mirador_capture_file_errors_total", "0"),
            ("mirador_drops_total{reason=\"kernel\"}", "1004"),
            ("mirador_drops_total{reason=\"interface\"}", "1005"),
            ("mirador_drops_total{reason=\"queue_full\"}", "1016"),
            ("mirador_drops_total{reason=\"flow_memcap\"}", "5010"),
            ("mirador_drops_total{reason=\"reassembly_memcap\"}", "5014"),
            ("mirador_drops_total{reason=\"fragment_memcap\"}", "8009"),
            ("mirador_drops_total{reason=\"decode_error\"}", "39091"),
            ("mirador_drops_total{reason=\"body_cap\"}", "6009"),
            ("mirador_drops_total{reason=\"decompress_cap\"}", "6011"),
            ("mirador_decoded_packets_total", "2003"),
            ("mirador_decoded_truncated_total", "2004"),
            ("mirador_decoded_by_proto_total{proto=\"ipv4\"}", "2005"),
            ("mirador_decoded_by_proto_total{proto=\"ipv6\"}", "2006"),
            ("mirador_decoded_by_proto_total{proto=\"tcp\"}", "2007"),
            ("mirador_decoded_by_proto_total{proto=\"udp\"}", "2008"),
            ("mirador_decoded_by_proto_total{proto=\"other\"}", "2009"),
            ("mirador_encapsulations_total{type=\"vlan\"}", "2010"),
            ("mirador_encapsulations_total{type=\"vlan_overflow\"}", "2011"),
            ("mirador_encapsulations_total{type=\"mpls\"}", "2012"),
            ("mirador_encapsulations_total{type=\"pppoe\"}", "2013"),
            ("mirador_tunnel_errors_total{kind=\"header\"}", "2014"),
            ("mirador_tunnel_errors_total{kind=\"inner\"}", "2015"),
            ("mirador_packets_by_linktype_total{linktype=\"ethernet\"}", "2016"),
            ("mirador_packets_by_linktype_total{linktype=\"linux_sll2\"}", "2017"),
            ("mirador_packets_by_linktype_total{linktype=\"other\"}", "2018"),
            ("mirador_packets_by_linktype_total{linktype=\"ppp\"}", "0"),
            ("mirador_tunnels_total{type=\"vxlan\"}", "2019"),
            ("mirador_tunnels_total{type=\"gtp-u\"}", "2020"),
            ("mirador_tunnels_total{type=\"geneve\"}", "0"),
            ("mirador_decode_errors_total{cause=\"truncated_link_header\"}", "3001"),
            ("mirador_decode_errors_total{cause=\"unsupported_linktype\"}", "3002"),
            ("mirador_decode_errors_total{cause=\"unsupported_link_proto\"}", "3003"),
            ("mirador_decode_errors_total{cause=\"unsupported_ethertype\"}", "3004"),
            ("mirador_decode_errors_total{cause=\"vlan_depth_exceeded\"}", "3005"),
            ("mirador_decode_errors_total{cause=\"mpls_depth_exceeded\"}", "3006"),
            ("mirador_decode_errors_total{cause=\"bad_ip_header\"}", "3007"),
            ("mirador_decode_errors_total{cause=\"bad_ip_version\"}", "3008"),
            ("mirador_decode_errors_total{cause=\"bad_ipv6_ext\"}", "3009"),
            ("mirador_decode_errors_total{cause=\"bad_tcp_header\"}", "3010"),
            ("mirador_decode_errors_total{cause=\"bad_udp_header\"}", "3011"),
            ("mirador_decode_errors_total{cause=\"tunnel_depth_exceeded\"}", "3012"),
            ("mirador_decode_errors_total{cause=\"truncated_fragment\"}", "3013"),
            ("mirador_fragments_total{outcome=\"seen\"}", "4001"),
            ("mirador_fragments_total{outcome=\"reassembled\"}", "4002"),
            ("mirador_fragments_total{outcome=\"overlapping\"}", "4003"),
            ("mirador_fragments_total{outcome=\"dropped_memcap\"}", "4004"),
            ("mirador_fragments_total{outcome=\"dropped_count_cap\"}", "4005"),
            ("mirador_fragments_total{outcome=\"dropped_too_many_fragments\"}", "4006"),
            ("mirador_fragments_total{outcome=\"invalid\"}", "4007"),
            ("mirador_fragments_total{outcome=\"timed_out\"}", "4008"),
            ("mirador_fragments_total{outcome=\"nested_dropped\"}", "4009"),
            ("mirador_flows_total{proto=\"tcp\"}", "5002"),
            ("mirador_flows_total{proto=\"udp\"}", "5003"),
            ("mirador_flows_total{proto=\"other\"}", "5004"),
            ("mirador_flows_closed_total{reason=\"fin\"}", "5005"),
            ("mirador_flows_closed_total{reason=\"rst\"}", "5006"),
            ("mirador_flows_closed_total{reason=\"idle_timeout\"}", "5007"),
            ("mirador_flows_closed_total{reason=\"end_of_input\"}", "5008"),
            ("mirador_flows_closed_total{reason=\"evicted\"}", "5009"),
            // 50000 created - (5005 + 5006 + 5007 + 5008 + 5009) closed.
            ("mirador_flows_active", "24965"),
            ("mirador_flows_peak", "5023"),
            ("mirador_flows_midstream_total", "5011"),
            ("mirador_flows_midstream_ignored_packets_total", "5012"),
            ("mirador_flows_one_sided_total", "5013"),
            ("mirador_reassembly_memory_peak_bytes", "5015"),
            ("mirador_tcp_gaps_total", "5016"),
            ("mirador_tcp_gap_bytes_total", "5017"),
            ("mirador_tcp_overlaps_total", "5018"),
            ("mirador_tcp_overlaps_different_data_total", "5019"),
            ("mirador_tcp_retransmissions_total", "5020"),
            ("mirador_tcp_payload_bytes_total", "5021"),
            ("mirador_http_transactions_total", "6001"),
            ("mirador_http_messages_total{kind=\"request\"}", "6002"),
            ("mirador_http_messages_total{kind=\"response\"}", "6003"),
            ("mirador_http_messages_total{kind=\"interim\"}", "6004"),
            ("mirador_http_gaps_total", "6005"),
            ("mirador_http_gap_bytes_total", "6006"),
            ("mirador_http_resyncs_total", "6007"),
            ("mirador_http_resync_skipped_bytes_total", "6008"),
            ("mirador_http_body_skipped_bytes_total", "6009"),
            ("mirador_http_tunnel_ignored_bytes_total", "6010"),
            ("mirador_http_decompression_bombs_total", "6011"),
            ("mirador_http_decompression_errors_total", "6012"),
            ("mirador_http_roles_swapped_total", "6013"),
            ("mirador_http2_connections_total", "6014"),
            ("mirador_http_responses_to_invalid_requests_total", "6015"),
            ("mirador_http_anomalies_total{flag=\"gap\"}", "3"),
            ("mirador_http_anomalies_total{flag=\"bare_lf\"}", "2"),
            ("mirador_http_anomalies_total{flag=\"bare_cr\"}", "0"),
            ("mirador_http_anomalies_total{flag=\"other\"}", "0"),
            ("mirador_queue_enqueued_total{queue=\"packets\"}", "7001"),
            ("mirador_queue_dequeued_total{queue=\"packets\"}", "7002"),
            ("mirador_queue_enqueued_total{queue=\"transactions\"}", "7003"),
            ("mirador_queue_dequeued_total{queue=\"transactions\"}", "7004"),
            ("mirador_analyzer_transactions_total{analyzer=\"inventory\"}", "7005"),
            ("mirador_analyzer_transactions_total{analyzer=\"sensitive\"}", "7006"),
            ("mirador_analyzer_seconds_total{analyzer=\"inventory\"}", "1.5"),
            ("mirador_analyzer_seconds_total{analyzer=\"sensitive\"}", "0.25"),
            ("mirador_alerts_total", "7007"),
            ("mirador_findings_total", "7008"),
            ("mirador_transactions_total", "7009"),
            ("mirador_reassembly_memory_bytes", "7010"),
            ("mirador_records_by_type_total{stream=\"alerts\",type=\"sqli\"}", "7011"),
            ("mirador_records_by_type_total{stream=\"findings\",type=\"email\"}", "7012"),
        ];
        let mut missing = Vec::new();
        for (series, v) in expect {
            if value(&text, series).as_deref() != Some(v) {
                missing.push(format!("{series} = {v:?}, got {:?}", value(&text, series)));
            }
        }
        assert!(missing.is_empty(), "{missing:#?}\n---\n{text}");
    }

    /// Every numeric leaf of `stats.json` shows up as some series' value, so a counter added to a stats
    /// struct without a metric fails here (apart from the few that duplicate another counter).
    #[test]
    fn no_stats_counter_is_forgotten() {
        let text = rendered_with(&PipelineCounters::default());
        let values: std::collections::HashSet<&str> =
            text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.rsplit(' ').next()).collect();
        let json = serde_json::to_value(stats_with_distinct_values()).unwrap_or_default();
        // Duplicates of another series: decode.packets/bytes = capture.packets/bytes in one process, and the
        // flow table's HTTP transaction count = the HTTP parsers' count.
        let duplicates = ["/decode/packets", "/decode/bytes", "/flows/flows_created", "/flows/http_transactions"];
        let mut missing = Vec::new();
        fn walk(v: &serde_json::Value, path: String, out: &mut Vec<(String, u64)>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        walk(v, format!("{path}/{k}"), out);
                    }
                }
                serde_json::Value::Number(n) => out.extend(n.as_u64().map(|n| (path, n))),
                _ => {}
            }
        }
        let mut leaves = Vec::new();
        walk(&json, String::new(), &mut leaves);
        assert!(leaves.len() > 80, "{}", leaves.len());
        for (path, v) in leaves {
            if !duplicates.contains(&path.as_str()) && !values.contains(v.to_string().as_str()) {
                missing.push(path);
            }
        }
        assert!(missing.is_empty(), "stats fields without a metric: {missing:?}");
    }

    #[test]
    fn every_family_is_described_and_typed() {
        let text = rendered();
        for f in FAMILIES {
            assert!(text.contains(&format!("# HELP {} ", f.name)), "{} has no HELP", f.name);
            let ty = if f.kind == Kind::Counter { "counter" } else { "gauge" };
            assert!(text.contains(&format!("# TYPE {} {ty}\n", f.name)), "{} not typed {ty}", f.name);
            assert!(f.name.starts_with("mirador_"));
            assert_eq!(f.kind == Kind::Counter, f.name.ends_with("_total"), "{}", f.name);
        }
        for sr in SERIES {
            assert!(FAMILIES.iter().any(|f| f.name == sr.name), "{} has no family", sr.name);
        }
    }

    #[test]
    fn publish_sets_absolute_values_not_increments() {
        let t = Telemetry::new();
        let mut st = Stats::default();
        st.capture.packets = 5;
        t.publish(&st, &PipelineCounters::default());
        t.publish(&st, &PipelineCounters::default());
        assert_eq!(value(&t.render(), "mirador_packets_total").as_deref(), Some("5"));
        st.capture.packets = 9;
        t.publish(&st, &PipelineCounters::default());
        assert_eq!(value(&t.render(), "mirador_packets_total").as_deref(), Some("9"));
    }

    #[test]
    fn two_telemetries_do_not_share_series() {
        let (a, b) = (Telemetry::new(), Telemetry::new());
        let mut st = Stats::default();
        st.capture.kernel_drops = 3;
        a.publish(&st, &PipelineCounters::default());
        assert_eq!(value(&a.render(), "mirador_drops_total{reason=\"kernel\"}").as_deref(), Some("3"));
        assert_eq!(value(&b.render(), "mirador_drops_total{reason=\"kernel\"}").as_deref(), Some("0"));
    }

    #[test]
    fn analyzers_beyond_the_cap_are_summed_under_other() {
        let t = Telemetry::new();
        let pc = PipelineCounters {
            analyzers: (0..MAX_ANALYZERS + 3)
                .map(|i| AnalyzerCounters { name: format!("a\"{i}"), transactions: 1, nanos: 1_000_000_000 })
                .collect(),
            ..Default::default()
        };
        t.publish(&Stats::default(), &pc);
        let text = t.render();
        assert_eq!(value(&text, "mirador_analyzer_transactions_total{analyzer=\"other\"}").as_deref(), Some("3"));
        assert_eq!(value(&text, "mirador_analyzer_seconds_total{analyzer=\"other\"}").as_deref(), Some("3"));
        assert_eq!(value(&text, "mirador_analyzer_seconds_total{analyzer=\"a\\\"0\"}").as_deref(), Some("1"));
        let series = text.lines().filter(|l| l.starts_with("mirador_analyzer_transactions_total{")).count();
        assert_eq!(series, MAX_ANALYZERS + 1);
    }

    #[test]
    fn label_sets_are_bounded_and_known() {
        let lt = linktype_names();
        assert!(lt.contains(&"ethernet") && lt.contains(&"linux_sll2") && lt.contains(&"nflog"));
        assert!(!lt.contains(&"other"));
        let tn = tunnel_names();
        assert!(tn.contains(&"vxlan") && tn.contains(&"erspan3") && tn.contains(&"gtp-u"));
        assert!(!tn.contains(&"none"));
        // A name outside the set (cannot come from `name()`, but a map could carry one) goes to `other`.
        let t = Telemetry::new();
        let mut st = Stats::default();
        st.decode.tunnels.insert("wireguard", 4);
        t.publish(&st, &PipelineCounters::default());
        assert_eq!(value(&t.render(), "mirador_tunnels_total{type=\"other\"}").as_deref(), Some("4"));
    }

    #[test]
    fn log_once_fires_once_per_cause() {
        let l = LogOnce::new();
        assert!(l.log(DropReason::FragmentMemcap, 1));
        assert!(!l.log(DropReason::FragmentMemcap, 2));
        assert!(l.log(DropReason::BodyCap, 1));
        for r in DropReason::ALL {
            l.first(r);
            assert!(!l.first(r));
        }
    }

    #[test]
    fn drop_reasons_have_labels_and_keys() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(seen.insert(r.label()));
        }
        assert_eq!(DropReason::FlowMemcap.config_key(), Some("flow.max_flows"));
        assert_eq!(DropReason::ReassemblyMemcap.config_key(), Some("reassembly.memcap_bytes"));
        assert_eq!(DropReason::BodyCap.config_key(), Some("http.body_capture_bytes"));
        assert_eq!(DropReason::Interface.config_key(), None);
    }

    #[test]
    fn request_line_parsing() {
        let get = |p: &str| Request::Get { path: p.into(), head_only: false };
        assert_eq!(parse_request_line(b"GET /metrics HTTP/1.1\r\n\r\n"), get("/metrics"));
        assert_eq!(parse_request_line(b"GET /healthz?x=1 HTTP/1.0\n\n"), get("/healthz"));
        assert_eq!(
            parse_request_line(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Request::Get { path: "/metrics".into(), head_only: true }
        );
        assert_eq!(parse_request_line(b"POST /metrics HTTP/1.1\r\n\r\n"), Request::BadMethod);
        assert_eq!(parse_request_line(b"GET /metrics\r\n\r\n"), Request::Malformed);
        assert_eq!(parse_request_line(b"GET metrics HTTP/1.1\r\n\r\n"), Request::Malformed);
        assert_eq!(parse_request_line(b"\xff\xfe /x HTTP/1.1\r\n\r\n"), Request::Malformed);
        assert_eq!(parse_request_line(b""), Request::Malformed);
    }

    #[test]
    fn health_follows_flag_and_staleness() {
        let t = Telemetry::new();
        assert_eq!(t.unhealthy_reason(), None);
        t.set_unhealthy("output disk full");
        assert_eq!(t.unhealthy_reason().as_deref(), Some("output disk full"));
        t.set_healthy();
        t.set_stale_after(Some(Duration::ZERO));
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.unhealthy_reason().is_some_and(|r| r.contains("stalled")));
        t.set_stale_after(Some(Duration::from_secs(60)));
        t.publish(&Stats::default(), &PipelineCounters::default());
        assert_eq!(t.unhealthy_reason(), None);
    }

    #[test]
    fn logging_installs_once() {
        let first = init_logging("info", LogFormat::Json);
        assert!(matches!(first, Ok(()) | Err(MetricsError::LoggingInstalled)));
        assert!(matches!(init_logging("debug", LogFormat::Text), Err(MetricsError::LoggingInstalled)));
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
