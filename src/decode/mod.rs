//! Decoding: link layer, VLAN/QinQ, MPLS, PPPoE, IPv4/IPv6 (with extension headers), IP fragment reassembly
//! and tunnels, into a [`PacketView`].
//!
//! Contract: `Decoder::decode` never panics and never reads past the captured bytes, whatever the input.
//! A packet it cannot use is counted in [`DecodeStats`] by cause and yields `None`. Fragments are held in a
//! bounded table (count, bytes and timeout caps; timeouts on packet time).
//!
//! (Stub: filled in by the decode work.)

pub mod view;

pub use view::*;

use crate::capture::{RawPacket, Timestamp};

#[derive(Clone, Debug)]
pub struct DecodeConfig {}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {}
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DecodeStats {}

pub struct Decoder {
    stats: DecodeStats,
}

impl Decoder {
    pub fn new(_cfg: DecodeConfig) -> Self {
        Decoder { stats: DecodeStats::default() }
    }
    pub fn decode<'a>(&'a mut self, _pkt: RawPacket<'a>) -> Option<PacketView<'a>> {
        None
    }
    /// Expires fragment state older than the configured timeout, on packet time.
    pub fn expire(&mut self, _now: Timestamp) {}
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }
}
