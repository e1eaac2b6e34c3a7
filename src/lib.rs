//! mirador: a passive API-security sensor.
//!
//! ```text
//! capture ─► decode ─► flow table ─► TCP reassembly ─► HTTP/1.x framing ─► Transaction
//! ```
//!
//! - [`capture`]: live interfaces and pcap/pcapng files yield raw frames with their packet timestamps.
//! - [`decode`]: link layer, VLAN, MPLS, IP, fragments and tunnels into a [`decode::PacketView`].
//! - [`flow`]: symmetric flow keys, the shard-owned flow table, timeouts on packet time, memcap eviction.
//! - [`reassembly`]: per-direction TCP streams delivered as ordered data, gaps and ends.

#![deny(unsafe_code)]

pub mod analyzer;
pub mod capture;
pub mod config;
pub mod decode;
pub mod detect;
pub mod flow;
pub mod hostile;
pub mod http;
pub mod inventory;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod reassembly;
pub mod sensitive;
pub mod sink;
pub mod specdiff;
pub mod synth;
