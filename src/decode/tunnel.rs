//! Tunnel headers: VXLAN, GENEVE, GRE (and GRE over UDP), ERSPAN I/II/III, IP-in-IP, Teredo, GTP-U, AYIYA.
//! Each function looks at one layer's payload and says what is inside; `Decoder` peels layers in a loop
//! bounded by `DecodeConfig::max_tunnel_depth`.

use super::DecodeConfig;
use super::ip::IpProto;
use super::link::{EtherType, be16, be32, byte};
use super::view::{Tunnel, TunnelKind};

/// UDP ports with a fixed meaning here (IANA).
pub const TEREDO_PORT: u16 = 3544;
pub const GRE_UDP_PORT: u16 = 4754;
pub const AYIYA_PORT: u16 = 5072;

/// What a tunnel header carries.
#[derive(Copy, Clone, Debug)]
pub enum Inner<'a> {
    Ethernet(&'a [u8]),
    EtherType(EtherType, &'a [u8]),
    Ip(&'a [u8]),
    Ppp(&'a [u8]),
}

#[derive(Copy, Clone, Debug)]
pub enum Peel<'a> {
    /// Not a tunnel: the packet is what it looks like.
    NotTunnel,
    /// Looked like this tunnel but the header is malformed or unsupported.
    Bad(TunnelKind),
    Tunnel(Tunnel, Inner<'a>),
}

fn ip_nibble(d: &[u8]) -> Option<u8> {
    byte(d, 0).map(|b| b >> 4)
}

/// A tunnel carried by IP directly (GRE, IP-in-IP).
pub fn over_ip(proto: IpProto, payload: &[u8]) -> Peel<'_> {
    match proto {
        IpProto::GRE => gre(payload),
        IpProto::IPIP | IpProto::IPV6 => Peel::Tunnel(Tunnel { kind: TunnelKind::IPIP, id: 0 }, Inner::Ip(payload)),
        _ => Peel::NotTunnel,
    }
}

/// A tunnel carried by UDP, recognised by port.
pub fn over_udp<'a>(sport: u16, dport: u16, payload: &'a [u8], cfg: &DecodeConfig) -> Peel<'a> {
    // Either port, as replies from the tunnel endpoint may come from the well-known port to an ephemeral
    // one. A misdetection costs nothing: the inner packet must decode or the outer one is kept.
    let either = |p: u16| dport == p || sport == p;
    if cfg.vxlan_ports.iter().any(|&p| either(p)) {
        return vxlan(payload);
    }
    if either(cfg.vxlan_gpe_port) {
        return vxlan_gpe(payload);
    }
    if either(cfg.geneve_port) {
        return geneve(payload);
    }
    if cfg.gtpu && either(cfg.gtpu_port) {
        return gtpu(payload, cfg);
    }
    if cfg.teredo && either(TEREDO_PORT) {
        return teredo(payload);
    }
    if cfg.gre_over_udp && dport == GRE_UDP_PORT {
        return gre(payload);
    }
    if cfg.ayiya && either(AYIYA_PORT) {
        return ayiya(payload);
    }
    // Teredo clients talk to relays and peers on any port (after the qualification on 3544), so on other
    // ports it is recognised by content, strictly: an IPv6 packet whose length fills the datagram exactly and
    // that has a Teredo (2001:0::/32) address.
    if cfg.teredo && cfg.teredo_any_port && looks_like_teredo(payload) {
        return teredo(payload);
    }
    Peel::NotTunnel
}

fn looks_like_teredo(d: &[u8]) -> bool {
    let mut off = 0usize;
    if be16(d, 0) == Some(0x0001) {
        let (Some(id_len), Some(au_len)) = (byte(d, 2), byte(d, 3)) else { return false };
        off = 4 + id_len as usize + au_len as usize + 8 + 1;
    }
    if be16(d, off) == Some(0x0000) {
        off += 8;
    }
    let Some(ip6) = d.get(off..) else { return false };
    let teredo_addr = |at: usize| ip6.get(at..at + 4) == Some(&[0x20, 0x01, 0x00, 0x00][..]);
    ip_nibble(ip6) == Some(6)
        && be16(ip6, 4).is_some_and(|len| usize::from(len) + 40 == ip6.len())
        && (teredo_addr(8) || teredo_addr(24))
}

/// VXLAN (RFC 7348 §5): 8 bytes, I flag set, 24-bit VNI, then Ethernet. Reserved bits are ignored as
/// receivers must.
fn vxlan(d: &[u8]) -> Peel<'_> {
    let bad = Peel::Bad(TunnelKind::VXLAN);
    let (Some(flags), Some(vni), Some(inner)) = (byte(d, 0), be32(d, 4), d.get(8..)) else {
        return bad;
    };
    if flags & 0x08 == 0 {
        return bad;
    }
    Peel::Tunnel(Tunnel { kind: TunnelKind::VXLAN, id: vni >> 8 }, Inner::Ethernet(inner))
}

/// VXLAN-GPE (draft-ietf-nvo3-vxlan-gpe §3): VXLAN with a next protocol (1 IPv4, 2 IPv6, 3 Ethernet, 4 NSH).
/// Senders do not all set the P flag that announces it, so the field is trusted when it holds a known value.
fn vxlan_gpe(d: &[u8]) -> Peel<'_> {
    let bad = Peel::Bad(TunnelKind::VXLAN_GPE);
    let (Some(next), Some(vni), Some(inner)) = (byte(d, 3), be32(d, 4), d.get(8..)) else {
        return bad;
    };
    let t = Tunnel { kind: TunnelKind::VXLAN_GPE, id: vni >> 8 };
    match next {
        0 | 3 => Peel::Tunnel(t, Inner::Ethernet(inner)),
        1 | 2 => Peel::Tunnel(t, Inner::Ip(inner)),
        4 => Peel::Tunnel(t, Inner::EtherType(EtherType::NSH, inner)),
        _ => bad,
    }
}

/// GENEVE (RFC 8926 §3): version 0, options length in 4-byte words, protocol type, 24-bit VNI.
fn geneve(d: &[u8]) -> Peel<'_> {
    let bad = Peel::Bad(TunnelKind::GENEVE);
    let (Some(b0), Some(proto), Some(vni)) = (byte(d, 0), be16(d, 2), be32(d, 4)) else {
        return bad;
    };
    if b0 >> 6 != 0 {
        return bad;
    }
    let Some(inner) = d.get(8 + (b0 & 0x3f) as usize * 4..) else {
        return bad;
    };
    let t = Tunnel { kind: TunnelKind::GENEVE, id: vni >> 8 };
    match EtherType(proto) {
        EtherType::TEB => Peel::Tunnel(t, Inner::Ethernet(inner)),
        et => Peel::Tunnel(t, Inner::EtherType(et, inner)),
    }
}

/// GRE (RFC 2784/2890; version 1 is PPTP's enhanced GRE, RFC 2637) and ERSPAN I/II/III inside it.
fn gre(d: &[u8]) -> Peel<'_> {
    let bad = Peel::Bad(TunnelKind::GRE);
    let (Some(flags), Some(proto)) = (be16(d, 0), be16(d, 2)) else {
        return bad;
    };
    let (c, r, k, s) = (flags & 0x8000 != 0, flags & 0x4000 != 0, flags & 0x2000 != 0, flags & 0x1000 != 0);
    match flags & 0x7 {
        0 => {}
        1 => {
            // Enhanced GRE: key (payload length + call id) always present, optional sequence and ack.
            if !k || EtherType(proto) != EtherType::PPP {
                return bad;
            }
            let call_id = be16(d, 6).unwrap_or(0) as u32;
            let len = 8 + if s { 4 } else { 0 } + if flags & 0x0080 != 0 { 4 } else { 0 };
            return match d.get(len..) {
                Some(inner) => Peel::Tunnel(Tunnel { kind: TunnelKind::GRE, id: call_id }, Inner::Ppp(inner)),
                None => bad,
            };
        }
        _ => return bad,
    }
    // Source routing (RFC 1701) is deprecated and variable-length: not supported.
    if r {
        return bad;
    }
    let mut off = 4usize;
    if c {
        off += 4;
    }
    let key = if k {
        let key = be32(d, off);
        off += 4;
        key
    } else {
        None
    };
    if s {
        off += 4;
    }
    let Some(payload) = d.get(off..) else {
        return bad;
    };
    let t = Tunnel { kind: TunnelKind::GRE, id: key.unwrap_or(0) };
    match EtherType(proto) {
        EtherType::TEB => Peel::Tunnel(t, Inner::Ethernet(payload)),
        // ERSPAN type I has no header and no GRE sequence number; type II has both.
        EtherType::ERSPAN2 if !s => Peel::Tunnel(Tunnel { kind: TunnelKind::ERSPAN1, id: 0 }, Inner::Ethernet(payload)),
        EtherType::ERSPAN2 => erspan(payload, TunnelKind::ERSPAN2, 1, 8),
        EtherType::ERSPAN3 => {
            // Optional 8-byte platform-specific subheader when the O flag (last bit of the header) is set.
            let o = byte(payload, 11).is_some_and(|b| b & 0x01 != 0);
            erspan(payload, TunnelKind::ERSPAN3, 2, if o { 20 } else { 12 })
        }
        et => Peel::Tunnel(t, Inner::EtherType(et, payload)),
    }
}

/// ERSPAN II/III header (draft-foschiano-erspan): version nibble, 10-bit session id, then Ethernet.
fn erspan(d: &[u8], kind: TunnelKind, version: u8, hdr_len: usize) -> Peel<'_> {
    let (Some(b0), Some(session), Some(inner)) = (byte(d, 0), be16(d, 2), d.get(hdr_len..)) else {
        return Peel::Bad(kind);
    };
    if b0 >> 4 != version {
        return Peel::Bad(kind);
    }
    Peel::Tunnel(Tunnel { kind, id: (session & 0x03ff) as u32 }, Inner::Ethernet(inner))
}

/// GTP-U (3GPP TS 29.281 §5): version 1, PT set, message type 255 (G-PDU) carries user IP packets; other
/// messages (echo, error indication) are plain UDP here.
fn gtpu<'a>(d: &'a [u8], cfg: &DecodeConfig) -> Peel<'a> {
    /// Extension headers followed per packet.
    const MAX_GTP_EXT_HEADERS: usize = 8;
    let bad = Peel::Bad(TunnelKind::GTPU);
    let (Some(flags), Some(msg), Some(teid)) = (byte(d, 0), byte(d, 1), be32(d, 4)) else {
        return Peel::NotTunnel;
    };
    if flags >> 5 != 1 || flags & 0x10 == 0 || msg != 0xff {
        return Peel::NotTunnel;
    }
    let mut off = 8usize;
    if flags & 0x07 != 0 {
        let Some(mut next) = byte(d, 11) else {
            return bad;
        };
        off = 12;
        let mut n = 0;
        while next != 0 {
            n += 1;
            let Some(words) = byte(d, off) else {
                return bad;
            };
            if words == 0 || n > MAX_GTP_EXT_HEADERS {
                return bad;
            }
            off += words as usize * 4;
            let Some(nx) = byte(d, off - 1) else {
                return bad;
            };
            next = nx;
        }
    }
    let Some(inner) = d.get(off..) else {
        return bad;
    };
    if !matches!(ip_nibble(inner), Some(4 | 6)) {
        return bad;
    }
    // TEIDs are chosen per direction, so by default they are left out of the (symmetric) flow key.
    let id = if cfg.gtpu_teid_as_id { teid } else { 0 };
    Peel::Tunnel(Tunnel { kind: TunnelKind::GTPU, id }, Inner::Ip(inner))
}

/// Teredo (RFC 4380 §5.1.1): optional authentication and origin indication headers, then IPv6. Anything
/// else on the port (qualification traffic, another protocol) is plain UDP.
fn teredo(d: &[u8]) -> Peel<'_> {
    let mut off = 0usize;
    if be16(d, 0) == Some(0x0001) {
        let (Some(id_len), Some(au_len)) = (byte(d, 2), byte(d, 3)) else {
            return Peel::NotTunnel;
        };
        off = 4 + id_len as usize + au_len as usize + 8 + 1;
    }
    if be16(d, off) == Some(0x0000) {
        off += 8;
    }
    match d.get(off..) {
        Some(inner) if inner.len() >= 40 && ip_nibble(inner) == Some(6) => {
            Peel::Tunnel(Tunnel { kind: TunnelKind::TEREDO, id: 0 }, Inner::Ip(inner))
        }
        _ => Peel::NotTunnel,
    }
}

/// AYIYA (draft-massar-v6ops-ayiya): identity and signature sizes in the first bytes, opcode 1 (forward)
/// carries an IPv4 or IPv6 packet.
fn ayiya(d: &[u8]) -> Peel<'_> {
    let (Some(b0), Some(b1), Some(b2), Some(next)) = (byte(d, 0), byte(d, 1), byte(d, 2), byte(d, 3)) else {
        return Peel::NotTunnel;
    };
    if b2 & 0x0f != 1 || !matches!(IpProto(next), IpProto::IPIP | IpProto::IPV6) {
        return Peel::NotTunnel;
    }
    let hdr = 8 + (1usize << (b0 >> 4)) + (b1 >> 4) as usize * 4;
    match d.get(hdr..) {
        Some(inner) => Peel::Tunnel(Tunnel { kind: TunnelKind::AYIYA, id: 0 }, Inner::Ip(inner)),
        None => Peel::Bad(TunnelKind::AYIYA),
    }
}
