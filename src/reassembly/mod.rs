//! TCP stream reassembly per direction.
//!
//! (Stub: filled in by the reassembly work; the interface below is the contract the flow table and the HTTP
//! stage are written against.)

use crate::capture::Timestamp;
use crate::decode::TcpHeader;

/// Direction within a connection, relative to the client (the initiator).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    ToServer = 0,
    ToClient = 1,
}

impl Dir {
    pub fn other(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// What a consumer of a reassembled direction receives, in stream order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// This many bytes of the stream were never captured; the stream goes on after them.
    Gap(u64),
    /// The sender closed its direction (FIN, after all its data) or the connection ended (RST, timeout,
    /// eviction, end of input). No more events for this direction.
    End,
}

/// Receives reassembled events of both directions, interleaved in packet order.
pub trait StreamSink {
    fn on_stream(&mut self, dir: Dir, ts: Timestamp, ev: StreamEvent<'_>);
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    #[default]
    FirstWins,
    LastWins,
}

#[derive(Clone, Debug)]
pub struct ReassemblyConfig {
    pub policy: OverlapPolicy,
    pub memcap_bytes: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig { policy: OverlapPolicy::FirstWins, memcap_bytes: 256 << 20 }
    }
}

/// Global reassembly memory budget of one shard, shared by all its connections.
#[derive(Debug, Default)]
pub struct MemBudget {}

impl MemBudget {
    pub fn new(_cap: usize) -> Self {
        MemBudget {}
    }
    pub fn used(&self) -> usize {
        0
    }
    pub fn hits(&self) -> u64 {
        0
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HalfStats {
    pub delivered_bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub overlaps: u64,
    pub overlaps_different_data: u64,
}

#[derive(Debug, Default)]
pub struct TcpConnection {
    s: HalfStats,
}

impl TcpConnection {
    #[allow(clippy::too_many_arguments)]
    pub fn on_segment(
        &mut self,
        _cfg: &ReassemblyConfig,
        _budget: &mut MemBudget,
        _ts: Timestamp,
        _dir: Dir,
        _hdr: &TcpHeader,
        _payload: &[u8],
        _wire_payload_len: u32,
        _sink: &mut impl StreamSink,
    ) {
    }
    pub fn close(&mut self, _cfg: &ReassemblyConfig, _budget: &mut MemBudget, _ts: Timestamp, _sink: &mut impl StreamSink) {}
    pub fn stats(&self, _dir: Dir) -> &HalfStats {
        &self.s
    }
    pub fn both_fin(&self) -> bool {
        false
    }
    pub fn saw_rst(&self) -> bool {
        false
    }
}
