//! What a flow costs, in the bytes the allocator really hands out, so that `flow.memcap_bytes` means bytes.
//!
//! Figures come from the types' sizes, not from guesses: an entry of the flow map at the worst load the map
//! keeps after growing (half full, so two slots per flow), one expiry-queue entry in a B-tree node about two
//! thirds full, and the shared identity with its two strings. A flow that carried data adds its boxed TCP
//! connection and HTTP parser; their buffers (segments, heads, bodies) are charged to the reassembly and HTTP
//! budgets where they are allocated.

use std::mem::size_of;

use super::FlowInfo;
use super::key::FlowKey;
use super::table::Flow;
use crate::capture::Timestamp;
use crate::http::HttpParser;
use crate::reassembly::TcpConnection;

/// Per allocation: the allocator's header and rounding.
const ALLOC_OVERHEAD: usize = 16;

/// An embryonic flow: map entry, expiry-queue entry, identity.
pub const FLOW_BYTES: usize = {
    let slot = size_of::<FlowKey>() + size_of::<Flow>() + 1;
    let queue = (size_of::<(Timestamp, u64)>() + size_of::<FlowKey>()) * 3 / 2;
    // The uid (18 bytes) and the Community ID (30) round up to 32 and 48 with their headers.
    let info = size_of::<FlowInfo>() + 16 + ALLOC_OVERHEAD + 32 + 48;
    2 * slot + queue + info
};

/// What a flow adds when it starts carrying data: its TCP connection and HTTP parser, each boxed.
pub const CONN_BYTES: usize = size_of::<TcpConnection>() + size_of::<HttpParser>() + 2 * ALLOC_OVERHEAD;

// The defaults are sized on these figures (README, memory model): a change that grows a flow fails here.
const _: () = assert!(FLOW_BYTES <= 1024 && CONN_BYTES <= 2048);
