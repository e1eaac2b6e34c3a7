//! The shard-owned flow table: one entry per flow, roles (client = initiator), timeouts on packet time, a
//! flow-count cap with oldest-first eviction, and the hand-off of TCP payload to reassembly and HTTP.
//!
//! Expiry uses one FIFO queue per timeout class (closing, TCP idle, UDP/other idle). An entry is pushed when a
//! flow is created or enters the closing state and is re-pushed lazily, at sweep time, if the flow saw
//! packets since; so a sweep stops at the first entry that has not expired and costs O(expired + refreshed),
//! never a scan of the whole table.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::capture::Timestamp;
use crate::decode::{PacketView, TcpHeader, Transport, tcp_flags};
use crate::flow::FlowInfo;
use crate::flow::key::{FlowKey, community_id};
use crate::flow::memory;
use crate::http::{HttpConfig, HttpParser, HttpStats, Transaction};
use crate::reassembly::{Dir, MemBudget, ReassemblyConfig, StreamEvent, StreamSink, TcpConnection};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// VLAN ids are part of the flow key (as in Suricata's `vlan.use-for-tracking`). Turn off where a SPAN
    /// puts the two directions of one connection on different VLANs.
    pub vlan_in_key: bool,
    /// Track TCP connections whose handshake was not captured (pickup mid-stream).
    pub midstream: bool,
    /// Packet time without a packet after which a TCP / UDP / other flow is closed (`idle_timeout`).
    #[serde(with = "crate::config::duration")]
    pub tcp_idle_timeout: Duration,
    #[serde(with = "crate::config::duration")]
    pub udp_idle_timeout: Duration,
    #[serde(with = "crate::config::duration")]
    pub other_idle_timeout: Duration,
    /// How long a connection is kept after both FINs or a RST, for late retransmissions and the last ACKs.
    #[serde(with = "crate::config::duration")]
    pub closed_timeout: Duration,
    /// A TCP flow that never carried a byte (a SYN without data, an unanswered probe) is closed after this.
    #[serde(with = "crate::config::duration")]
    pub embryonic_timeout: Duration,
    /// Timeouts while the table is in emergency mode (memory above 3/4 of `memcap_bytes`): embryonic flows,
    /// and idle TCP flows.
    #[serde(with = "crate::config::duration")]
    pub emergency_embryonic_timeout: Duration,
    #[serde(with = "crate::config::duration")]
    pub emergency_tcp_idle_timeout: Duration,
    /// Flows held at once; a new flow beyond it evicts the least valuable one (see `memcap_bytes`).
    pub max_flows: usize,
    /// Memory for flow state in bytes the table really allocates: each flow's entry, key, queue entry and
    /// identity, and for flows that carried data their connection and HTTP parser state (reassembly buffers
    /// and HTTP heads and bodies have their own budgets). Beyond it, embryonic flows are evicted first, then
    /// the least recently active.
    pub memcap_bytes: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            vlan_in_key: true,
            midstream: true,
            tcp_idle_timeout: Duration::from_secs(300),
            udp_idle_timeout: Duration::from_secs(60),
            other_idle_timeout: Duration::from_secs(60),
            closed_timeout: Duration::from_secs(5),
            embryonic_timeout: Duration::from_secs(60),
            emergency_embryonic_timeout: Duration::from_secs(5),
            emergency_tcp_idle_timeout: Duration::from_secs(30),
            max_flows: 1_000_000,
            // ~76,000 embryonic flows, or ~27,000 connections with data (see `memory`).
            memcap_bytes: 64 << 20,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Both sides sent FIN.
    Fin,
    Rst,
    IdleTimeout,
    /// Removed to make room (flow count or memory cap).
    Evicted,
    /// Still open when the input ended.
    EndOfInput,
}

/// One line of `flows.jsonl`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FlowRecord {
    pub uid: String,
    pub community_id: String,
    pub ts_start: f64,
    pub ts_end: f64,
    pub proto: &'static str,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub vlan: Vec<u16>,
    pub tunnel: Vec<TunnelRecord>,
    pub client_packets: u64,
    pub server_packets: u64,
    pub client_bytes: u64,
    pub server_bytes: u64,
    pub client_payload_delivered: u64,
    pub server_payload_delivered: u64,
    pub client_gaps: u64,
    pub client_gap_bytes: u64,
    pub server_gaps: u64,
    pub server_gap_bytes: u64,
    pub overlaps: u64,
    pub overlaps_with_different_data: u64,
    /// Segments that carried only bytes already delivered (or already given up as a gap).
    pub retransmissions: u64,
    /// TCP state summary: `S0` (SYN only), `SF` (normal close), `RST`, `EST` (open at the end), `OTH`.
    pub state: &'static str,
    pub close_reason: CloseReason,
    pub midstream: bool,
    pub one_sided: bool,
    pub http_transactions: u64,
}

#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct TunnelRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u32,
}

pub fn tunnel_records(info: &FlowInfo) -> Vec<TunnelRecord> {
    info.encap.tunnels().iter().map(|t| TunnelRecord { kind: t.kind.name(), id: t.id }).collect()
}

/// Where finished flows and transactions go.
pub trait FlowOutput {
    fn flow_closed(&mut self, rec: FlowRecord);
    fn transaction(&mut self, tx: Transaction);
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FlowStats {
    pub flows_created: u64,
    pub tcp_flows: u64,
    pub udp_flows: u64,
    pub other_flows: u64,
    pub closed_fin: u64,
    pub closed_rst: u64,
    pub closed_idle: u64,
    pub closed_end_of_input: u64,
    pub evicted: u64,
    /// Of `evicted`: flows that never carried a byte, and the others (least recently active first).
    pub evicted_embryonic: u64,
    pub evicted_active: u64,
    /// Times the table entered emergency mode (memory above 3/4 of its cap: shorter timeouts).
    pub emergency_entries: u64,
    /// Most bytes the table held (see `FlowConfig::memcap_bytes`).
    pub memory_peak_bytes: u64,
    /// Times a new flow or a flow starting to carry data found the table at its cap (each evicted a flow).
    pub flow_cap_hits: u64,
    pub midstream_flows: u64,
    pub midstream_ignored_packets: u64,
    pub one_sided_flows: u64,
    pub reassembly_memcap_hits: u64,
    pub reassembly_peak_bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub overlaps: u64,
    pub overlaps_with_different_data: u64,
    pub retransmissions: u64,
    pub payload_bytes_delivered: u64,
    pub http_transactions: u64,
    pub peak_flows: u64,
}

impl FlowStats {
    /// Adds another shard's counters (peaks add too: shards hold disjoint flows at the same time).
    pub fn merge(&mut self, o: &FlowStats) {
        let FlowStats {
            flows_created,
            tcp_flows,
            udp_flows,
            other_flows,
            closed_fin,
            closed_rst,
            closed_idle,
            closed_end_of_input,
            evicted,
            evicted_embryonic,
            evicted_active,
            emergency_entries,
            memory_peak_bytes,
            flow_cap_hits,
            midstream_flows,
            midstream_ignored_packets,
            one_sided_flows,
            reassembly_memcap_hits,
            reassembly_peak_bytes,
            gaps,
            gap_bytes,
            overlaps,
            overlaps_with_different_data,
            retransmissions,
            payload_bytes_delivered,
            http_transactions,
            peak_flows,
        } = o;
        self.flows_created += flows_created;
        self.tcp_flows += tcp_flows;
        self.udp_flows += udp_flows;
        self.other_flows += other_flows;
        self.closed_fin += closed_fin;
        self.closed_rst += closed_rst;
        self.closed_idle += closed_idle;
        self.closed_end_of_input += closed_end_of_input;
        self.evicted += evicted;
        self.evicted_embryonic += evicted_embryonic;
        self.evicted_active += evicted_active;
        self.emergency_entries += emergency_entries;
        self.memory_peak_bytes += memory_peak_bytes;
        self.flow_cap_hits += flow_cap_hits;
        self.midstream_flows += midstream_flows;
        self.midstream_ignored_packets += midstream_ignored_packets;
        self.one_sided_flows += one_sided_flows;
        self.reassembly_memcap_hits += reassembly_memcap_hits;
        self.reassembly_peak_bytes += reassembly_peak_bytes;
        self.gaps += gaps;
        self.gap_bytes = self.gap_bytes.saturating_add(*gap_bytes);
        self.overlaps += overlaps;
        self.overlaps_with_different_data += overlaps_with_different_data;
        self.retransmissions += retransmissions;
        self.payload_bytes_delivered += payload_bytes_delivered;
        self.http_transactions += http_transactions;
        self.peak_flows += peak_flows;
    }
}

pub(super) struct Flow {
    serial: u64,
    info: Arc<FlowInfo>,
    client_is_lo: bool,
    proto: u8,
    ts_start: Timestamp,
    ts_last: Timestamp,
    packets: [u64; 2],
    bytes: [u64; 2],
    midstream: bool,
    syn_seen: bool,
    synack_seen: bool,
    /// Set when both FINs or a RST were seen: the flow now expires on `closed_timeout`.
    closing: Option<CloseReason>,
    /// Reassembly state, allocated at the first segment with something to reassemble (data, FIN or RST): until
    /// then the flow is embryonic and holds only the SYNs it saw, replayed into the connection when it starts.
    tcp: Option<Box<TcpConnection>>,
    early_syn: [Option<TcpHeader>; 2],
    http: Option<Box<HttpParser>>,
    http_transactions: u64,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Queue {
    Closing = 0,
    Tcp = 1,
    Other = 2,
    /// TCP flows that have not carried a byte yet; one that starts to moves to `Tcp` when next looked at.
    Embryonic = 3,
}

const QUEUES: [Queue; 4] = [Queue::Closing, Queue::Tcp, Queue::Other, Queue::Embryonic];

/// Transactions a single packet can complete before they are handed on (reused buffer, not a cap).
const TX_BUF_HINT: usize = 8;

pub struct FlowTable {
    cfg: FlowConfig,
    reasm: ReassemblyConfig,
    http_cfg: Arc<HttpConfig>,
    flows: HashMap<FlowKey, Flow, foldhash::fast::RandomState>,
    /// Per timeout class, flows by (last activity when queued, serial); refreshed lazily at sweep time.
    queues: [BTreeMap<(Timestamp, u64), FlowKey>; 4],
    budget: MemBudget,
    next_serial: u64,
    uid_seed: u64,
    last_sweep: Timestamp,
    stats: FlowStats,
    http_stats: HttpStats,
    tx_buf: Vec<Transaction>,
    cap_logged: bool,
    /// Bytes of the connection and parser state of flows that carried data (see `memory::CONN_BYTES`).
    conn_bytes: usize,
    emergency: bool,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig, reasm: ReassemblyConfig, http_cfg: Arc<HttpConfig>) -> Self {
        let budget = MemBudget::new(reasm.memcap_bytes);
        FlowTable {
            cfg,
            reasm,
            http_cfg,
            flows: HashMap::default(),
            queues: Default::default(),
            budget,
            next_serial: 0,
            uid_seed: 0x9e37_79b9_7f4a_7c15,
            last_sweep: Timestamp(0),
            stats: FlowStats::default(),
            http_stats: HttpStats::default(),
            tx_buf: Vec::with_capacity(TX_BUF_HINT),
            cap_logged: false,
            conn_bytes: 0,
            emergency: false,
        }
    }

    /// Seeds the uids: a per-run key (unique across runs and sensors), mixed with the shard number.
    pub fn set_uid_seed(&mut self, seed: u64) {
        self.uid_seed = seed;
    }

    pub fn stats(&self) -> FlowStats {
        let mut s = self.stats.clone();
        s.reassembly_memcap_hits = self.budget.hits();
        s
    }

    /// Bytes the reassembly budget holds now.
    pub fn reassembly_memory(&self) -> usize {
        self.budget.used()
    }

    pub fn http_stats(&self) -> &HttpStats {
        &self.http_stats
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    fn max_flows(&self) -> usize {
        self.cfg.max_flows.min(self.cfg.memcap_bytes / memory::FLOW_BYTES).max(1)
    }

    /// Bytes the table holds now, by the figures of [`memory`].
    pub fn memory(&self) -> usize {
        self.flows.len() * memory::FLOW_BYTES + self.conn_bytes
    }

    /// Whether `extra` more bytes (or one more flow when `new_flow`) would go over a cap.
    fn over_cap(&self, extra: usize, new_flow: bool) -> bool {
        (new_flow && self.flows.len() >= self.max_flows()) || self.memory() + extra > self.cfg.memcap_bytes
    }

    /// Evicts until `extra` more bytes fit; counts each eviction as a cap hit and logs the first.
    fn make_room(
        &mut self,
        extra: usize,
        new_flow: bool,
        spare: Option<FlowKey>,
        now: Timestamp,
        out: &mut impl FlowOutput,
    ) {
        while self.over_cap(extra, new_flow) {
            self.stats.flow_cap_hits += 1;
            if !self.cap_logged {
                self.cap_logged = true;
                tracing::warn!(
                    max_flows = self.max_flows(),
                    memcap_bytes = self.cfg.memcap_bytes,
                    "Flow table full: evicting flows that never carried data first, then the least recently active (raise flow.memcap_bytes or flow.max_flows)."
                );
            }
            if !self.evict_one(now, spare, out) {
                break;
            }
        }
        self.note_memory();
    }

    /// Tracks the peak and emergency mode (above 3/4 of the cap: shorter timeouts until back under 1/2).
    fn note_memory(&mut self) {
        let used = self.memory();
        self.stats.memory_peak_bytes = self.stats.memory_peak_bytes.max(used as u64);
        let (high, low) = (self.cfg.memcap_bytes / 4 * 3, self.cfg.memcap_bytes / 2);
        if !self.emergency && (used > high || self.flows.len() > self.max_flows() / 4 * 3) {
            self.emergency = true;
            self.stats.emergency_entries += 1;
            if self.stats.emergency_entries == 1 {
                tracing::warn!(
                    used_bytes = used,
                    memcap_bytes = self.cfg.memcap_bytes,
                    "Flow table in emergency mode: shorter timeouts for embryonic and idle TCP flows (flow.emergency_*)."
                );
            }
        } else if self.emergency && used < low && self.flows.len() < self.max_flows() / 2 {
            self.emergency = false;
        }
    }

    pub fn process(&mut self, view: &PacketView<'_>, out: &mut impl FlowOutput) {
        let now = view.ts;
        if now.0 >= self.last_sweep.0.saturating_add(1_000_000_000) {
            self.sweep(now, out);
        }
        let (key, from_lo) = FlowKey::of(view, self.cfg.vlan_in_key);
        // Port reuse: a fresh SYN on a connection that already ended starts a new flow.
        if is_fresh_syn(view) && self.flows.get(&key).is_some_and(|f| f.closing.is_some()) {
            let reason = self.flows.get(&key).and_then(|f| f.closing).unwrap_or(CloseReason::Fin);
            self.close(&key, now, reason, out);
        }
        if !self.flows.contains_key(&key) {
            if !self.cfg.midstream && is_tcp_without_syn(view) {
                self.stats.midstream_ignored_packets += 1;
                return;
            }
            self.make_room(memory::FLOW_BYTES, true, None, now, out);
            let flow = self.new_flow(view, &key, from_lo);
            let q = if flow.proto != 6 {
                Queue::Other
            } else if starts_connection(view) {
                Queue::Tcp
            } else {
                Queue::Embryonic
            };
            self.queues[q as usize].insert((now, flow.serial), key);
            self.flows.insert(key, flow);
            self.stats.peak_flows = self.stats.peak_flows.max(self.flows.len() as u64);
        }
        // Checked only at the cap: one more map lookup per data segment would cost ~0.5% of the whole run.
        if starts_connection(view)
            && self.over_cap(memory::CONN_BYTES, false)
            && self.flows.get(&key).is_some_and(|f| f.proto == 6 && f.tcp.is_none())
        {
            self.make_room(memory::CONN_BYTES, false, Some(key), now, out);
        }
        let Some(flow) = self.flows.get_mut(&key) else { return };
        let dir = if from_lo == flow.client_is_lo { Dir::ToServer } else { Dir::ToClient };
        flow.ts_last = flow.ts_last.max(now);
        flow.packets[dir.idx()] += 1;
        flow.bytes[dir.idx()] += u64::from(view.wire_len);

        let Transport::Tcp { hdr, payload, wire_payload_len } = view.transport else { return };
        if hdr.has(tcp_flags::SYN) {
            if hdr.has(tcp_flags::ACK) {
                flow.synack_seen = true;
            } else {
                flow.syn_seen = true;
            }
        }
        let mut sink = HttpSink { http: &mut flow.http, cfg: &self.http_cfg, info: &flow.info, out: &mut self.tx_buf };
        let tcp = match flow.tcp.as_mut() {
            Some(tcp) => tcp,
            // A handshake segment or a bare ACK has nothing to reassemble: keep the flow embryonic (a SYN flood
            // then costs a flow record per source, not a connection's state).
            None if !starts_connection(view) => {
                if hdr.has(tcp_flags::SYN) {
                    flow.early_syn[dir.idx()].get_or_insert(hdr);
                }
                return;
            }
            None => {
                let mut tcp = Box::<TcpConnection>::default();
                for d in [Dir::ToServer, Dir::ToClient] {
                    if let Some(syn) = flow.early_syn[d.idx()].take() {
                        tcp.on_segment(&self.reasm, &mut self.budget, now, d, &syn, &[], 0, &mut sink);
                    }
                }
                self.conn_bytes += memory::CONN_BYTES;
                flow.tcp.insert(tcp)
            }
        };
        tcp.on_segment(&self.reasm, &mut self.budget, now, dir, &hdr, payload, wire_payload_len, &mut sink);
        self.stats.reassembly_peak_bytes = self.stats.reassembly_peak_bytes.max(self.budget.used() as u64);
        if flow.closing.is_none() {
            let reason = if tcp.saw_rst() {
                Some(CloseReason::Rst)
            } else if tcp.both_fin() {
                Some(CloseReason::Fin)
            } else {
                None
            };
            if reason.is_some() {
                flow.closing = reason;
                self.queues[Queue::Closing as usize].insert((now, flow.serial), key);
            }
        }
        flow.http_transactions += self.tx_buf.len() as u64;
        for tx in self.tx_buf.drain(..) {
            out.transaction(tx);
        }
    }

    fn new_flow(&mut self, view: &PacketView<'_>, key: &FlowKey, from_lo: bool) -> Flow {
        self.next_serial += 1;
        self.stats.flows_created += 1;
        let proto = key.proto;
        match proto {
            6 => self.stats.tcp_flows += 1,
            17 => self.stats.udp_flows += 1,
            _ => self.stats.other_flows += 1,
        }
        let (sp, dp) = view.ports();
        // Who is the client: the SYN's sender, the SYN-ACK's receiver, else the side on a server port.
        let src_is_client = match view.transport {
            Transport::Tcp { hdr, .. } if hdr.has(tcp_flags::SYN) => !hdr.has(tcp_flags::ACK),
            Transport::Tcp { .. } | Transport::Udp { .. } => !likely_server_port(sp, dp),
            Transport::Other { .. } => true,
        };
        let midstream = proto == 6 && !matches!(view.transport, Transport::Tcp { hdr, .. } if hdr.has(tcp_flags::SYN));
        if midstream {
            self.stats.midstream_flows += 1;
        }
        let client_is_lo = src_is_client == from_lo;
        let (client, server) = if client_is_lo { (key.lo, key.hi) } else { (key.hi, key.lo) };
        let info = FlowInfo {
            uid: make_uid(self.uid_seed, self.next_serial),
            community_id: community_id(client, server, proto),
            client: SocketAddr::new(client.0, client.1),
            server: SocketAddr::new(server.0, server.1),
            encap: key.encap,
        };
        Flow {
            serial: self.next_serial,
            info: Arc::new(info),
            client_is_lo,
            proto,
            ts_start: view.ts,
            ts_last: view.ts,
            packets: [0; 2],
            bytes: [0; 2],
            midstream,
            syn_seen: false,
            synack_seen: false,
            closing: None,
            tcp: None,
            early_syn: [None; 2],
            http: None,
            http_transactions: 0,
        }
    }

    /// Closes flows whose timeout passed, on packet time.
    pub fn sweep(&mut self, now: Timestamp, out: &mut impl FlowOutput) {
        self.last_sweep = now;
        self.note_memory();
        for q in QUEUES {
            while let Some((&(ts, serial), &key)) = self.queues[q as usize].first_key_value() {
                let timeout = self.timeout_of(q, &key);
                if now.saturating_sub(ts) < timeout {
                    break;
                }
                self.queues[q as usize].pop_first();
                let Some(flow) = self.flows.get(&key) else { continue };
                if flow.serial != serial {
                    continue;
                }
                if q != Queue::Closing && flow.closing.is_some() {
                    // The closing queue owns it now.
                    continue;
                }
                if q == Queue::Embryonic && flow.tcp.is_some() {
                    // It carried data since: an ordinary connection now.
                    self.queues[Queue::Tcp as usize].insert((flow.ts_last, serial), key);
                    continue;
                }
                let last = if q == Queue::Closing { ts.max(flow.ts_last) } else { flow.ts_last };
                if now.saturating_sub(last) < timeout {
                    self.queues[q as usize].insert((last, serial), key);
                    continue;
                }
                let reason = match (q, flow.closing) {
                    (Queue::Closing, Some(r)) => r,
                    _ => CloseReason::IdleTimeout,
                };
                self.close(&key, last.max(now.min(last.plus(timeout))), reason, out);
            }
        }
        self.compact_queues();
    }

    fn timeout_of(&self, q: Queue, key: &FlowKey) -> Duration {
        match q {
            Queue::Closing => self.cfg.closed_timeout,
            Queue::Tcp if self.emergency => self.cfg.tcp_idle_timeout.min(self.cfg.emergency_tcp_idle_timeout),
            Queue::Tcp => self.cfg.tcp_idle_timeout,
            Queue::Embryonic if self.emergency => self.cfg.embryonic_timeout.min(self.cfg.emergency_embryonic_timeout),
            Queue::Embryonic => self.cfg.embryonic_timeout,
            Queue::Other if key.proto == 17 => self.cfg.udp_idle_timeout,
            Queue::Other => self.cfg.other_idle_timeout,
        }
    }

    /// Stale entries of closed flows wait in the queues until they reach the front; bound them so a burst of
    /// short flows cannot grow the queues without limit.
    fn compact_queues(&mut self) {
        let limit = self.max_flows().saturating_mul(2).max(1024);
        for q in &mut self.queues {
            if q.len() > limit {
                let flows = &self.flows;
                q.retain(|(_, serial), key| flows.get(key).is_some_and(|f| f.serial == *serial));
            }
        }
    }

    /// Evicts the least valuable flow: the oldest that never carried a byte, else the least recently active
    /// one. `spare` (a flow about to carry data) is moved to the ordinary queue instead. False when there is
    /// nothing to evict.
    fn evict_one(&mut self, now: Timestamp, spare: Option<FlowKey>, out: &mut impl FlowOutput) -> bool {
        loop {
            let pick = if self.queues[Queue::Embryonic as usize].is_empty() {
                // The least recently queued entry is at the front of one of the queues.
                [Queue::Closing, Queue::Tcp, Queue::Other]
                    .into_iter()
                    .filter_map(|q| self.queues[q as usize].first_key_value().map(|(e, _)| (e.0, q)))
                    .min_by_key(|(ts, _)| *ts)
                    .map(|(_, q)| q)
            } else {
                Some(Queue::Embryonic)
            };
            let Some(q) = pick else { return false };
            let Some(((ts, serial), key)) = self.queues[q as usize].pop_first() else { return false };
            let Some(flow) = self.flows.get(&key) else { continue };
            if flow.serial != serial || (q != Queue::Closing && flow.closing.is_some()) {
                continue;
            }
            if q == Queue::Embryonic && (flow.tcp.is_some() || spare == Some(key)) {
                self.queues[Queue::Tcp as usize].insert((flow.ts_last, serial), key);
                continue;
            }
            if spare == Some(key) {
                // Only the flow being made room for is left.
                self.queues[q as usize].insert((flow.ts_last.max(ts), serial), key);
                return false;
            }
            if q != Queue::Embryonic && flow.ts_last > ts {
                // Active since it was queued: requeue at its real age and look again.
                self.queues[q as usize].insert((flow.ts_last, serial), key);
                continue;
            }
            self.stats.evicted += 1;
            if q == Queue::Embryonic {
                self.stats.evicted_embryonic += 1;
            } else {
                self.stats.evicted_active += 1;
            }
            self.close(&key, now, CloseReason::Evicted, out);
            return true;
        }
    }

    /// Closes every flow (end of input or shutdown).
    pub fn flush_all(&mut self, now: Timestamp, out: &mut impl FlowOutput) {
        let mut keys: Vec<(u64, FlowKey)> = self.flows.iter().map(|(k, f)| (f.serial, *k)).collect();
        // Oldest first, so output order does not depend on hash order.
        keys.sort_unstable_by_key(|(serial, _)| *serial);
        for (_, key) in keys {
            let reason = match self.flows.get(&key).and_then(|f| f.closing) {
                Some(r) => r,
                None => CloseReason::EndOfInput,
            };
            self.close(&key, now, reason, out);
        }
        for q in &mut self.queues {
            q.clear();
        }
    }

    fn close(&mut self, key: &FlowKey, now: Timestamp, reason: CloseReason, out: &mut impl FlowOutput) {
        let Some(mut flow) = self.flows.remove(key) else { return };
        if flow.tcp.is_some() {
            self.conn_bytes = self.conn_bytes.saturating_sub(memory::CONN_BYTES);
        }
        let end = flow.ts_last.max(flow.ts_start);
        let close_ts = if now > end { end } else { now };
        if let Some(tcp) = flow.tcp.as_mut() {
            let mut sink =
                HttpSink { http: &mut flow.http, cfg: &self.http_cfg, info: &flow.info, out: &mut self.tx_buf };
            tcp.close(&self.reasm, &mut self.budget, close_ts, &mut sink);
        }
        if let Some(http) = flow.http.as_mut() {
            http.finish(close_ts, &mut self.tx_buf);
            self.http_stats.merge(http.stats());
        }
        flow.http_transactions += self.tx_buf.len() as u64;
        self.stats.http_transactions += flow.http_transactions;
        for tx in self.tx_buf.drain(..) {
            out.transaction(tx);
        }
        match reason {
            CloseReason::Fin => self.stats.closed_fin += 1,
            CloseReason::Rst => self.stats.closed_rst += 1,
            CloseReason::IdleTimeout => self.stats.closed_idle += 1,
            CloseReason::EndOfInput => self.stats.closed_end_of_input += 1,
            CloseReason::Evicted => {}
        }
        let rec = self.record(&flow, reason);
        if rec.one_sided {
            self.stats.one_sided_flows += 1;
        }
        self.stats.gaps += rec.client_gaps + rec.server_gaps;
        self.stats.gap_bytes =
            self.stats.gap_bytes.saturating_add(rec.client_gap_bytes.saturating_add(rec.server_gap_bytes));
        self.stats.overlaps += rec.overlaps;
        self.stats.overlaps_with_different_data += rec.overlaps_with_different_data;
        self.stats.retransmissions += rec.retransmissions;
        self.stats.payload_bytes_delivered += rec.client_payload_delivered + rec.server_payload_delivered;
        out.flow_closed(rec);
    }

    fn record(&self, flow: &Flow, reason: CloseReason) -> FlowRecord {
        let info = &flow.info;
        let (c, s) = match flow.tcp.as_deref() {
            Some(tcp) => (tcp.stats(Dir::ToServer).clone(), tcp.stats(Dir::ToClient).clone()),
            None => Default::default(),
        };
        let state = if flow.proto != 6 {
            "OTH"
        } else if flow.tcp.as_deref().is_some_and(|t| t.saw_rst()) {
            "RST"
        } else if flow.tcp.as_deref().is_some_and(|t| t.both_fin()) {
            "SF"
        } else if flow.syn_seen && !flow.synack_seen && flow.packets[1] == 0 {
            "S0"
        } else if matches!(reason, CloseReason::EndOfInput | CloseReason::Evicted | CloseReason::IdleTimeout) {
            "EST"
        } else {
            "OTH"
        };
        FlowRecord {
            uid: info.uid.clone(),
            community_id: info.community_id.clone(),
            ts_start: flow.ts_start.as_secs_f64(),
            ts_end: flow.ts_last.as_secs_f64(),
            proto: match flow.proto {
                6 => "tcp",
                17 => "udp",
                1 => "icmp",
                58 => "icmp6",
                _ => "other",
            },
            src_ip: info.client.ip(),
            src_port: info.client.port(),
            dst_ip: info.server.ip(),
            dst_port: info.server.port(),
            vlan: info.encap.vlans().to_vec(),
            tunnel: tunnel_records(info),
            client_packets: flow.packets[0],
            server_packets: flow.packets[1],
            client_bytes: flow.bytes[0],
            server_bytes: flow.bytes[1],
            client_payload_delivered: c.delivered_bytes,
            server_payload_delivered: s.delivered_bytes,
            client_gaps: c.gaps,
            client_gap_bytes: c.gap_bytes,
            server_gaps: s.gaps,
            server_gap_bytes: s.gap_bytes,
            overlaps: c.overlaps + s.overlaps,
            overlaps_with_different_data: c.overlaps_different_data + s.overlaps_different_data,
            retransmissions: c.retransmissions + s.retransmissions,
            state,
            close_reason: reason,
            midstream: flow.midstream,
            one_sided: flow.proto == 6 && (flow.packets[0] == 0 || flow.packets[1] == 0),
            http_transactions: flow.http_transactions,
        }
    }
}

fn is_fresh_syn(view: &PacketView<'_>) -> bool {
    matches!(view.transport, Transport::Tcp { hdr, .. } if hdr.has(tcp_flags::SYN) && !hdr.has(tcp_flags::ACK))
}

/// A TCP segment with something to reassemble (data, or a FIN or RST to deliver): the end of an embryonic flow.
fn starts_connection(view: &PacketView<'_>) -> bool {
    matches!(view.transport, Transport::Tcp { hdr, payload, wire_payload_len }
        if !payload.is_empty() || wire_payload_len > 0 || hdr.has(tcp_flags::FIN | tcp_flags::RST))
}

fn is_tcp_without_syn(view: &PacketView<'_>) -> bool {
    matches!(view.transport, Transport::Tcp { hdr, .. } if !hdr.has(tcp_flags::SYN))
}

/// Ports servers listen on: decides roles when the handshake was not seen. True when `dp` looks like the
/// server's port (the packet goes client → server).
fn likely_server_port(sp: u16, dp: u16) -> bool {
    const SERVER_PORTS: &[u16] =
        &[80, 443, 8080, 8000, 8008, 8081, 8088, 8443, 8888, 3128, 3000, 5000, 9000, 9200, 1080];
    let s_known = SERVER_PORTS.contains(&sp);
    let d_known = SERVER_PORTS.contains(&dp);
    if s_known != d_known {
        return s_known;
    }
    let (s_low, d_low) = (sp < 1024, dp < 1024);
    if s_low != d_low {
        return s_low;
    }
    // Ephemeral ports are usually the higher ones.
    sp < dp
}

/// Zeek-style uid: `C` and 17 base62 characters from a mixed serial and the run's seed.
fn make_uid(seed: u64, serial: u64) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = splitmix64(seed ^ serial) as u128 | (u128::from(splitmix64(serial.wrapping_add(seed))) << 64);
    let mut s = String::with_capacity(18);
    s.push('C');
    for _ in 0..17 {
        s.push(ALPHABET[(x % 62) as usize] as char);
        x /= 62;
    }
    s
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Feeds reassembled events to the flow's HTTP parser, created on the first event.
struct HttpSink<'a> {
    http: &'a mut Option<Box<HttpParser>>,
    cfg: &'a Arc<HttpConfig>,
    info: &'a Arc<FlowInfo>,
    out: &'a mut Vec<Transaction>,
}

impl StreamSink for HttpSink<'_> {
    fn on_stream(&mut self, dir: Dir, ts: Timestamp, ev: StreamEvent<'_>) {
        let http = self.http.get_or_insert_with(|| Box::new(HttpParser::new(self.cfg.clone(), self.info.clone())));
        http.on_stream(dir, ts, ev, self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::synth::{self, TcpConv};

    struct Collect(Vec<FlowRecord>);
    impl FlowOutput for Collect {
        fn flow_closed(&mut self, rec: FlowRecord) {
            self.0.push(rec);
        }
        fn transaction(&mut self, _tx: Transaction) {}
    }

    /// A flow idle for exactly the timeout closes at the first sweep after it, even when other flows were
    /// refreshed after it was queued (the queue stays ordered by last activity).
    #[test]
    fn idle_timeout_is_exact_despite_refreshed_flows() {
        let cfg = FlowConfig { tcp_idle_timeout: Duration::from_secs(60), ..Default::default() };
        let mut table = FlowTable::new(cfg, ReassemblyConfig::default(), Arc::new(HttpConfig::default()));
        let mut out = Collect(Vec::new());
        let mut decoder = crate::decode::Decoder::new(Default::default());
        let mut feed = |table: &mut FlowTable, conv: &TcpConv, out: &mut Collect| {
            for (ts, f) in conv.frames() {
                let pkt = crate::capture::RawPacket {
                    ts,
                    linktype: crate::capture::LinkType::ETHERNET,
                    data: &f,
                    orig_len: f.len() as u32,
                };
                if let Some(v) = decoder.decode(pkt) {
                    table.process(&v, out);
                }
            }
        };
        // A: opened at t=0, active again at t=30. B: opened at t=50. The sweep at t=61 requeues A at 30,
        // behind B in arrival order: A must still be the first to expire (idle since 30, at 90).
        let a_addr = ("192.0.2.1:1000".parse().unwrap(), "192.0.2.9:80".parse().unwrap());
        let mut a = TcpConv::new(a_addr.0, a_addr.1, Timestamp::from_secs(0));
        a.handshake();
        feed(&mut table, &a, &mut out);
        a.segments.clear();
        a.wait(30_000_000_000);
        a.send(Dir::ToServer, &synth::http_request("GET", "/", "h", &[], b""));
        feed(&mut table, &a, &mut out);
        let mut b = TcpConv::new("192.0.2.2:2000".parse().unwrap(), a_addr.1, Timestamp::from_secs(50));
        b.handshake();
        feed(&mut table, &b, &mut out);
        table.sweep(Timestamp::from_secs(61), &mut out);
        assert!(out.0.is_empty(), "{:?}", out.0);
        table.sweep(Timestamp::from_secs(95), &mut out);
        assert_eq!(out.0.len(), 1, "{:?}", out.0);
        assert_eq!(out.0[0].src_port, 1000);
        assert_eq!(out.0[0].close_reason, CloseReason::IdleTimeout);
        assert_eq!(out.0[0].state, "EST");
        table.sweep(Timestamp::from_secs(111), &mut out);
        assert_eq!(out.0.len(), 2);
    }

    #[test]
    fn server_port_heuristic() {
        assert!(likely_server_port(80, 51000));
        assert!(!likely_server_port(51000, 80));
        assert!(!likely_server_port(51000, 8080));
        assert!(likely_server_port(22, 40000));
        assert!(likely_server_port(40000, 50000));
    }

    #[test]
    fn uids_are_distinct_and_stable() {
        let a = make_uid(1, 1);
        assert_eq!(a, make_uid(1, 1));
        assert_ne!(a, make_uid(1, 2));
        assert_ne!(a, make_uid(2, 1));
        assert_eq!(a.len(), 18);
        assert!(a.starts_with('C'));
    }
}
