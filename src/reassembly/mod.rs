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
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig { policy: OverlapPolicy::FirstWins }
    }
}

/// Global reassembly memory budget of one shard, shared by all its connections.
#[derive(Debug, Default)]
pub struct MemBudget {}

#[derive(Debug, Default)]
pub struct TcpConnection {}

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
}
