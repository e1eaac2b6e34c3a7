//! TCP stream reassembly per direction.
//!
//! Input: the TCP segments of one connection, already oriented (`Dir::ToServer` = client to server), in
//! capture order, through [`TcpConnection::on_segment`]. Output: per direction, [`StreamEvent`]s in stream
//! order: `Data` as soon as it is in order (the packet's own slice when nothing is buffered), `Gap(n)` for
//! every range the capture will never have, `End` once after FIN (or at [`TcpConnection::close`]).
//!
//! Gaps are reported, never hidden: a hole closes when the peer ACKs past it, when buffering would exceed a
//! cap (`max_buffered_bytes_per_dir`, `max_segments_per_dir`, the shard's [`MemBudget`]), when a snaplen cut
//! a segment, or at close. Overlapping bytes follow [`OverlapPolicy`]; overlaps, differing overlaps,
//! retransmissions, cap hits and skipped bytes are counted in [`HalfStats`]. Every held byte is reserved from
//! the shard's [`MemBudget`] first, so the budget's `used()` never exceeds its cap.
//!
//! For the caller (flow table):
//! - An ACK in one direction can emit a `Gap` (and then held data) for the other direction before this
//!   segment's own events: the peer got bytes the capture never will. A capture that shows ACKs before the
//!   data they acknowledge (skewed TAP ports) loses that data this way, as Suricata does.
//! - After `close()` (or once both directions ended) a connection ignores every segment; a SYN on the same
//!   tuple after `saw_rst()` / `both_fin()` is a new connection and needs a new [`TcpConnection`].
//! - A direction is picked up mid-stream from its first data segment (or bare FIN); bytes before that are
//!   never delivered. One-sided flows never wait for the other side: only its ACKs are missing.
//! - `depth_bytes` stops delivery but not `End`, which still comes at FIN or `close()`.

pub mod segments;
pub mod tcp;

pub use tcp::{HalfStats, TcpConnection};

use crate::capture::Timestamp;

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

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    #[default]
    FirstWins,
    LastWins,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReassemblyConfig {
    /// Which copy of overlapping data wins when segments disagree ("first_wins" or "last_wins").
    pub policy: OverlapPolicy,
    /// Out-of-order payload bytes held per direction; beyond it the oldest hole is closed as a gap.
    pub max_buffered_bytes_per_dir: usize,
    /// Out-of-order segments held per direction; beyond it the oldest hole is closed as a gap.
    pub max_segments_per_dir: usize,
    /// Stream bytes delivered per direction; 0 = unlimited. Bytes beyond are counted
    /// (`depth_skipped_bytes`), never delivered; `End` still comes at FIN or close.
    pub depth_bytes: u64,
    /// Reassembly memory of the process, split evenly among shards (each shard's [`MemBudget`] cap).
    pub memcap_bytes: usize,
    /// Recently delivered bytes kept per direction to notice retransmissions carrying different data (an
    /// evasion signal). 0 disables. Allocated at the first delivery and charged to the budget.
    pub recent_window_bytes: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            policy: OverlapPolicy::FirstWins,
            max_buffered_bytes_per_dir: 1 << 20,
            max_segments_per_dir: 2048,
            depth_bytes: 0,
            memcap_bytes: 64 << 20,
            recent_window_bytes: 4096,
        }
    }
}

/// Global reassembly memory budget of one shard, shared (as `&mut`) by all its connections.
#[derive(Debug)]
pub struct MemBudget {
    used: usize,
    cap: usize,
    hits: u64,
}

impl Default for MemBudget {
    fn default() -> Self {
        MemBudget::new(ReassemblyConfig::default().memcap_bytes)
    }
}

impl MemBudget {
    pub fn new(cap_bytes: usize) -> Self {
        MemBudget { used: 0, cap: cap_bytes, hits: 0 }
    }
    pub fn used(&self) -> usize {
        self.used
    }
    pub fn cap(&self) -> usize {
        self.cap
    }
    /// Times a reservation was refused.
    pub fn hits(&self) -> u64 {
        self.hits
    }
    /// Reserves `n` bytes if they fit under the cap; a refusal is counted in `hits`.
    pub fn try_reserve(&mut self, n: usize) -> bool {
        match self.used.checked_add(n) {
            Some(total) if total <= self.cap => {
                self.used = total;
                true
            }
            _ => {
                self.hits += 1;
                false
            }
        }
    }
    pub fn release(&mut self, n: usize) {
        debug_assert!(n <= self.used, "released more than reserved");
        self.used = self.used.saturating_sub(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_over_cap_and_counts() {
        let mut b = MemBudget::new(10);
        assert!(b.try_reserve(6));
        assert!(!b.try_reserve(5));
        assert!(b.try_reserve(4));
        assert!(!b.try_reserve(usize::MAX));
        assert_eq!((b.used(), b.cap(), b.hits()), (10, 10, 2));
        b.release(10);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn dir_helpers() {
        assert_eq!(Dir::ToServer.other(), Dir::ToClient);
        assert_eq!(Dir::ToClient.other().idx(), 0);
    }
}
