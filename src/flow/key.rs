//! Symmetric flow keys and Community ID v1.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::decode::{Encap, PacketView};

/// A flow key that is the same for both directions: the lower (address, port) endpoint first, plus the
/// encapsulation context (VLAN ids and tunnel ids), so the same 5-tuple in two VNIs is two flows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: (IpAddr, u16),
    pub hi: (IpAddr, u16),
    pub proto: u8,
    pub encap: Encap,
}

impl FlowKey {
    /// The key of a packet, and whether the packet goes from `lo` to `hi`.
    pub fn of(view: &PacketView<'_>, vlan_in_key: bool) -> (FlowKey, bool) {
        let (sp, dp) = view.ports();
        let src = (view.src, sp);
        let dst = (view.dst, dp);
        let encap = if vlan_in_key { view.encap } else { view.encap.without_vlans() };
        let forward = src <= dst;
        let (lo, hi) = if forward { (src, dst) } else { (dst, src) };
        (FlowKey { lo, hi, proto: view.ip_proto(), encap }, forward)
    }

    /// Hash used to route a flow to its shard: the same for both directions by construction.
    pub fn shard_hash(&self) -> u64 {
        // Fixed seed: the shard of a flow must not change between runs or threads.
        foldhash::quality::FixedState::with_seed(0x006d_6972_6164_6f72).hash_one(self)
    }
}

use std::hash::BuildHasher as _;

/// Community ID v1 (<https://github.com/corelight/community-id-spec>) for a flow between two endpoints, with
/// the default seed 0. The same for both directions.
pub fn community_id(a: (IpAddr, u16), b: (IpAddr, u16), proto: u8) -> String {
    community_id_seeded(0, a, b, proto)
}

pub fn community_id_seeded(seed: u16, a: (IpAddr, u16), b: (IpAddr, u16), proto: u8) -> String {
    // The spec orders by address first, then port, exactly like a tuple comparison of the raw bytes.
    let (x, y) = if (octets(a.0), a.1) <= (octets(b.0), b.1) { (a, b) } else { (b, a) };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(octets(x.0).as_slice());
    h.update(octets(y.0).as_slice());
    h.update([proto, 0]);
    // ICMP would map type/code here; only port-based protocols and port-less ones (0, 0) are tracked.
    h.update(x.1.to_be_bytes());
    h.update(y.1.to_be_bytes());
    format!("1:{}", base64::engine::general_purpose::STANDARD.encode(h.finalize()))
}

fn octets(ip: IpAddr) -> smallvec::SmallVec<[u8; 16]> {
    match ip {
        IpAddr::V4(v4) => smallvec::SmallVec::from_slice(&v4.octets()),
        IpAddr::V6(v6) => smallvec::SmallVec::from_slice(&v6.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the Community ID spec's baseline (community-id-spec, baseline/baseline_default.json).
    #[test]
    fn community_id_matches_spec_vectors() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            community_id((ip("128.232.110.120"), 34855), (ip("66.35.250.204"), 80), 6),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        // Symmetric.
        assert_eq!(
            community_id((ip("66.35.250.204"), 80), (ip("128.232.110.120"), 34855), 6),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id((ip("192.168.1.52"), 54585), (ip("8.8.8.8"), 53), 17),
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
        );
    }
}
