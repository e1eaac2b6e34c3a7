//! Link layer: strips the frame header of each supported link type, then VLAN/QinQ, MPLS and PPPoE, down to
//! the first byte of an IP header. Never indexes: every read goes through `get`.

use super::{DecodeConfig, DecodeStats, DropCause, Encap};
use crate::capture::LinkType;

/// An Ethernet type (IEEE 802 "EtherType"). Open newtype: an unknown value is data.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const IPV6: EtherType = EtherType(0x86DD);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const QINQ: EtherType = EtherType(0x88A8);
    pub const QINQ_9100: EtherType = EtherType(0x9100);
    pub const QINQ_9200: EtherType = EtherType(0x9200);
    pub const MPLS_UC: EtherType = EtherType(0x8847);
    pub const MPLS_MC: EtherType = EtherType(0x8848);
    pub const PPPOE_SESSION: EtherType = EtherType(0x8864);
    /// Transparent Ethernet bridging (GRE, GENEVE payload type).
    pub const TEB: EtherType = EtherType(0x6558);
    pub const ERSPAN2: EtherType = EtherType(0x88BE);
    pub const ERSPAN3: EtherType = EtherType(0x22EB);
    pub const PPP: EtherType = EtherType(0x880B);
    /// Cisco MetaData (SGT tag).
    pub const CISCO_METADATA: EtherType = EtherType(0x8909);
    /// Network Service Header (RFC 8300).
    pub const NSH: EtherType = EtherType(0x894F);
}

/// Ethernet frames nested inside MPLS pseudowires or NSH per frame: each level recurses, so crafted input
/// must not chain them without bound.
const MAX_NESTED_ETHERNET: u8 = 3;

pub(crate) fn be16(d: &[u8], off: usize) -> Option<u16> {
    let b = d.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

pub(crate) fn le16(d: &[u8], off: usize) -> Option<u16> {
    be16(d, off).map(u16::swap_bytes)
}

pub(crate) fn be32(d: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

pub(crate) fn byte(d: &[u8], off: usize) -> Option<u8> {
    d.get(off).copied()
}

/// Bytes after `n`, or a truncated-link-header drop.
fn skip(d: &[u8], n: usize) -> Result<&[u8], DropCause> {
    d.get(n..).ok_or(DropCause::TruncatedLink)
}

/// Strips the link header of `linktype` and everything down to an IP header.
pub(crate) fn strip<'a>(
    linktype: LinkType,
    data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
) -> Result<&'a [u8], DropCause> {
    match linktype {
        LinkType::ETHERNET => ethernet(data, encap, cfg, stats),
        LinkType::RAW | LinkType::RAW_DLT | LinkType::RAW_OPENBSD | LinkType::IPV4 | LinkType::IPV6 => Ok(data),
        LinkType::LINUX_SLL => {
            let et = be16(data, 14).ok_or(DropCause::TruncatedLink)?;
            ethertype(EtherType(et), skip(data, 16)?, encap, cfg, stats)
        }
        LinkType::LINUX_SLL2 => {
            let et = be16(data, 0).ok_or(DropCause::TruncatedLink)?;
            ethertype(EtherType(et), skip(data, 20)?, encap, cfg, stats)
        }
        LinkType::NULL | LinkType::LOOP => {
            let b: [u8; 4] =
                data.get(..4).ok_or(DropCause::TruncatedLink)?.try_into().map_err(|_| DropCause::TruncatedLink)?;
            // The family is in the writer's byte order for NULL and network order for LOOP, but captures
            // mislabel both, so accept either order.
            let fam = match u32::from_le_bytes(b) {
                f if f > 0xffff => u32::from_be_bytes(b),
                f => f,
            };
            match fam {
                // AF_INET; AF_INET6 on BSD (24), FreeBSD (28), macOS (30), Linux (10).
                2 | 24 | 28 | 30 | 10 => Ok(skip(data, 4)?),
                _ => Err(DropCause::UnsupportedLinkProto),
            }
        }
        LinkType::PPP | LinkType::PPP_HDLC => ppp(data),
        LinkType::PPP_ETHER => pppoe(data, stats),
        LinkType::C_HDLC => {
            let et = be16(data, 2).ok_or(DropCause::TruncatedLink)?;
            ethertype(EtherType(et), skip(data, 4)?, encap, cfg, stats)
        }
        LinkType::NFLOG => nflog(data),
        LinkType::IEEE802_11 => wifi(data, encap, cfg, stats),
        LinkType::IEEE802_11_RADIOTAP => {
            // Radiotap: version, pad, little-endian header length.
            let len = le16(data, 2).ok_or(DropCause::TruncatedLink)?;
            wifi(skip(data, len as usize)?, encap, cfg, stats)
        }
        _ => Err(DropCause::UnsupportedLinkType),
    }
}

/// An Ethernet II frame (or 802.3 with LLC/SNAP), down to IP.
pub(crate) fn ethernet<'a>(
    data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
) -> Result<&'a [u8], DropCause> {
    ethernet_nested(data, encap, cfg, stats, 0)
}

fn ethernet_nested<'a>(
    data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
    nest: u8,
) -> Result<&'a [u8], DropCause> {
    if nest > MAX_NESTED_ETHERNET {
        return Err(DropCause::MplsDepth);
    }
    let et = be16(data, 12).ok_or(DropCause::TruncatedLink)?;
    let rest = skip(data, 14)?;
    if et < 0x0600 {
        // 802.3 length field: only LLC/SNAP carries something we can use.
        return snap(rest, encap, cfg, stats, nest);
    }
    ethertype_nested(EtherType(et), rest, encap, cfg, stats, nest)
}

/// LLC/SNAP header (AA AA 03, OUI, ethertype) as in 802.3 and 802.11 data frames.
fn snap<'a>(
    data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
    nest: u8,
) -> Result<&'a [u8], DropCause> {
    match data.get(..3) {
        Some([0xAA, 0xAA, 0x03]) => {
            let et = be16(data, 6).ok_or(DropCause::TruncatedLink)?;
            ethertype_nested(EtherType(et), skip(data, 8)?, encap, cfg, stats, nest)
        }
        Some(_) => Err(DropCause::UnsupportedEtherType),
        None => Err(DropCause::TruncatedLink),
    }
}

/// Follows an ethertype through VLAN tags, MPLS labels and PPPoE down to IP.
pub(crate) fn ethertype<'a>(
    et: EtherType,
    data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
) -> Result<&'a [u8], DropCause> {
    ethertype_nested(et, data, encap, cfg, stats, 0)
}

fn ethertype_nested<'a>(
    mut et: EtherType,
    mut data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
    nest: u8,
) -> Result<&'a [u8], DropCause> {
    let mut vlans = 0usize;
    loop {
        match et {
            EtherType::IPV4 | EtherType::IPV6 => return Ok(data),
            EtherType::VLAN | EtherType::QINQ | EtherType::QINQ_9100 | EtherType::QINQ_9200 => {
                vlans += 1;
                if vlans > cfg.max_vlan_depth {
                    return Err(DropCause::VlanDepth);
                }
                let tci = be16(data, 0).ok_or(DropCause::TruncatedLink)?;
                et = EtherType(be16(data, 2).ok_or(DropCause::TruncatedLink)?);
                data = skip(data, 4)?;
                stats.vlan_tags += 1;
                if !encap.push_vlan(tci & 0x0fff) {
                    stats.vlan_overflow += 1;
                }
            }
            EtherType::MPLS_UC | EtherType::MPLS_MC => return mpls(data, encap, cfg, stats, nest),
            EtherType::PPPOE_SESSION => return pppoe(data, stats),
            EtherType::CISCO_METADATA => {
                // Version, length, option type and SGT (6 bytes), then the next ethertype.
                et = EtherType(be16(data, 6).ok_or(DropCause::TruncatedLink)?);
                data = skip(data, 8)?;
            }
            EtherType::NSH => return nsh(data, encap, cfg, stats, nest),
            _ => return Err(DropCause::UnsupportedEtherType),
        }
    }
}

/// MPLS label stack (RFC 3032): pops to bottom-of-stack, then guesses the payload from its first nibble.
fn mpls<'a>(
    mut data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
    nest: u8,
) -> Result<&'a [u8], DropCause> {
    stats.mpls += 1;
    let mut labels = 0usize;
    loop {
        labels += 1;
        if labels > cfg.max_mpls_labels {
            return Err(DropCause::MplsDepth);
        }
        let bos = byte(data, 2).ok_or(DropCause::TruncatedLink)? & 0x01 != 0;
        data = skip(data, 4)?;
        if bos {
            break;
        }
    }
    match byte(data, 0).ok_or(DropCause::TruncatedLink)? >> 4 {
        4 | 6 => Ok(data),
        // RFC 4385 pseudowire control word (first nibble 0) before an Ethernet frame.
        0 if data.len() >= 4 + 14 && byte(data, 0) == Some(0) && byte(data, 1) == Some(0) => {
            ethernet_nested(skip(data, 4)?, encap, cfg, stats, nest + 1)
        }
        _ => ethernet_nested(data, encap, cfg, stats, nest + 1),
    }
}

/// Network Service Header (RFC 8300 §2.2): length in 4-byte words, next protocol 1 IPv4, 2 IPv6, 3 Ethernet.
fn nsh<'a>(
    data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
    nest: u8,
) -> Result<&'a [u8], DropCause> {
    let words = byte(data, 1).ok_or(DropCause::TruncatedLink)? & 0x3f;
    let next = byte(data, 3).ok_or(DropCause::TruncatedLink)?;
    let inner = skip(data, (words as usize * 4).max(8))?;
    match next {
        1 | 2 => Ok(inner),
        3 => ethernet_nested(inner, encap, cfg, stats, nest + 1),
        _ => Err(DropCause::UnsupportedEtherType),
    }
}

/// PPPoE session header (RFC 2516: 6 bytes) then the PPP protocol.
fn pppoe<'a>(data: &'a [u8], stats: &mut DecodeStats) -> Result<&'a [u8], DropCause> {
    stats.pppoe += 1;
    ppp_proto(skip(data, 6)?)
}

/// PPP with optional HDLC address/control bytes (RFC 1662).
pub(crate) fn ppp(data: &[u8]) -> Result<&[u8], DropCause> {
    let data = match data.get(..2) {
        Some([0xff, 0x03]) => skip(data, 2)?,
        _ => data,
    };
    ppp_proto(data)
}

/// PPP protocol field, 1 byte when compressed (odd first byte, RFC 1661 §6.5) or 2.
fn ppp_proto(data: &[u8]) -> Result<&[u8], DropCause> {
    let first = byte(data, 0).ok_or(DropCause::TruncatedLink)?;
    let (proto, len) =
        if first & 1 == 1 { (first as u16, 1) } else { (be16(data, 0).ok_or(DropCause::TruncatedLink)?, 2) };
    match proto {
        0x0021 | 0x0057 => skip(data, len),
        _ => Err(DropCause::UnsupportedLinkProto),
    }
}

/// NFLOG: 4-byte header then TLVs (length and type in host order, little-endian in practice); the packet is
/// the payload TLV (type 9).
fn nflog(data: &[u8]) -> Result<&[u8], DropCause> {
    const NFULA_PAYLOAD: u16 = 9;
    let mut rest = skip(data, 4)?;
    // Each TLV is at least 4 bytes, so this loop is bounded by the packet length.
    while rest.len() >= 4 {
        let len = le16(rest, 0).ok_or(DropCause::TruncatedLink)? as usize;
        let typ = le16(rest, 2).ok_or(DropCause::TruncatedLink)? & 0x7fff;
        if len < 4 {
            return Err(DropCause::TruncatedLink);
        }
        if typ == NFULA_PAYLOAD {
            return rest.get(4..len).ok_or(DropCause::TruncatedLink);
        }
        let padded = len.checked_add(3).ok_or(DropCause::TruncatedLink)? & !3;
        rest = rest.get(padded..).ok_or(DropCause::TruncatedLink)?;
    }
    Err(DropCause::UnsupportedLinkProto)
}

/// An 802.11 data frame carrying LLC/SNAP. Management, control, null and protected frames are not IP.
fn wifi<'a>(
    data: &'a [u8],
    encap: &mut Encap,
    cfg: &DecodeConfig,
    stats: &mut DecodeStats,
) -> Result<&'a [u8], DropCause> {
    let fc0 = byte(data, 0).ok_or(DropCause::TruncatedLink)?;
    let fc1 = byte(data, 1).ok_or(DropCause::TruncatedLink)?;
    let ftype = (fc0 >> 2) & 0x3;
    let subtype = fc0 >> 4;
    if ftype != 2 || subtype & 0x4 != 0 || fc1 & 0x40 != 0 {
        return Err(DropCause::UnsupportedLinkProto);
    }
    let mut hdr = 24usize;
    if fc1 & 0x03 == 0x03 {
        hdr += 6;
    }
    let qos = subtype & 0x8 != 0;
    if qos {
        hdr += 2;
        if fc1 & 0x80 != 0 {
            hdr += 4;
        }
    }
    snap(skip(data, hdr)?, encap, cfg, stats, 0)
}
