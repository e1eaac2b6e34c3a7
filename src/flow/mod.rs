//! Flows: symmetric keys, the shard-owned flow table, timeouts on packet time, memcap eviction.

pub mod key;
pub mod memory;
pub mod table;

use std::net::SocketAddr;

use crate::decode::Encap;

/// What every record about a flow repeats: identity, endpoints (client first) and encapsulation.
/// Shared with `Arc` by the transactions of the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// Zeek-style connection uid, unique within a run.
    pub uid: String,
    /// Community ID v1 (`1:base64`).
    pub community_id: String,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub encap: Encap,
}
