//! IPv4 and IPv6 (with extension headers), TCP and UDP headers. Header checksums are not verified: a sensor
//! sees what the endpoints see, and NIC offload leaves many captured checksums wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::DropCause;
use super::link::{be16, be32, byte};
use super::view::TcpHeader;

/// An IP protocol number (IANA). Open newtype.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpProto(pub u8);

impl IpProto {
    pub const HOPOPT: IpProto = IpProto(0);
    pub const IPIP: IpProto = IpProto(4);
    pub const TCP: IpProto = IpProto(6);
    pub const UDP: IpProto = IpProto(17);
    pub const IPV6: IpProto = IpProto(41);
    pub const ROUTING: IpProto = IpProto(43);
    pub const FRAGMENT: IpProto = IpProto(44);
    pub const GRE: IpProto = IpProto(47);
    pub const ESP: IpProto = IpProto(50);
    pub const AH: IpProto = IpProto(51);
    pub const NO_NEXT: IpProto = IpProto(59);
    pub const DSTOPTS: IpProto = IpProto(60);
    pub const MOBILITY: IpProto = IpProto(135);
    pub const HIP: IpProto = IpProto(139);
    pub const SHIM6: IpProto = IpProto(140);
}

/// Extension headers walked per IPv6 packet; a longer chain is malformed for our purposes.
const MAX_IPV6_EXT_HEADERS: usize = 16;

/// Where a fragment sits in its datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FragInfo {
    pub id: u32,
    /// Byte offset of this fragment's data in the datagram payload.
    pub offset: u32,
    pub more: bool,
}

/// A parsed IP header: addresses, the upper protocol and its bytes.
#[derive(Copy, Clone, Debug)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub v6: bool,
    pub proto: IpProto,
    /// Captured payload, cut to the length the header announces (trailing link padding removed).
    pub payload: &'a [u8],
    /// Payload length the header announces.
    pub wire_payload_len: u32,
    /// The header announces more than was captured.
    pub truncated: bool,
    pub frag: Option<FragInfo>,
}

/// Parses an IP header, sniffing the version nibble.
pub fn parse(data: &[u8]) -> Result<IpPacket<'_>, DropCause> {
    match byte(data, 0).ok_or(DropCause::BadIpHeader)? >> 4 {
        4 => parse_v4(data),
        6 => parse_v6(data),
        _ => Err(DropCause::BadIpVersion),
    }
}

fn addr4(d: &[u8], off: usize) -> Option<IpAddr> {
    be32(d, off).map(|a| IpAddr::V4(Ipv4Addr::from(a)))
}

fn addr6(d: &[u8], off: usize) -> Option<IpAddr> {
    let b: [u8; 16] = d.get(off..off + 16)?.try_into().ok()?;
    Some(IpAddr::V6(Ipv6Addr::from(b)))
}

/// Cuts `data[hdr..total]`, or what was captured of it; total 0 (TSO/jumbo) means "as captured".
fn body(data: &[u8], hdr: usize, total: usize) -> Result<(&[u8], u32, bool), DropCause> {
    let captured = data.get(hdr..).ok_or(DropCause::BadIpHeader)?;
    if total == 0 {
        return Ok((captured, captured.len() as u32, false));
    }
    let wire = total.checked_sub(hdr).ok_or(DropCause::BadIpHeader)?;
    match captured.get(..wire) {
        Some(p) => Ok((p, wire as u32, false)),
        None => Ok((captured, wire as u32, true)),
    }
}

fn parse_v4(data: &[u8]) -> Result<IpPacket<'_>, DropCause> {
    let ihl = (byte(data, 0).ok_or(DropCause::BadIpHeader)? & 0x0f) as usize * 4;
    if ihl < 20 || data.len() < ihl {
        return Err(DropCause::BadIpHeader);
    }
    let total = be16(data, 2).ok_or(DropCause::BadIpHeader)? as usize;
    if total != 0 && total < ihl {
        return Err(DropCause::BadIpHeader);
    }
    let (mut payload, mut wire_payload_len, truncated) = body(data, ihl, total)?;
    let flags = be16(data, 6).ok_or(DropCause::BadIpHeader)?;
    let more = flags & 0x2000 != 0;
    let offset = (flags & 0x1fff) as u32 * 8;
    let frag = (more || offset != 0).then(|| FragInfo { id: be16(data, 4).unwrap_or(0) as u32, offset, more });
    let mut proto = IpProto(byte(data, 9).ok_or(DropCause::BadIpHeader)?);
    // An authentication header (RFC 4302) leaves the payload in clear: skip it. In a fragment it is part of
    // the fragmented data and stays there (rare enough not to matter).
    if proto == IpProto::AH && frag.is_none() {
        let len = (byte(payload, 1).ok_or(DropCause::BadIpHeader)? as usize + 2) * 4;
        proto = IpProto(byte(payload, 0).ok_or(DropCause::BadIpHeader)?);
        payload = payload.get(len..).ok_or(DropCause::BadIpHeader)?;
        wire_payload_len = wire_payload_len.saturating_sub(len as u32);
    }
    Ok(IpPacket {
        src: addr4(data, 12).ok_or(DropCause::BadIpHeader)?,
        dst: addr4(data, 16).ok_or(DropCause::BadIpHeader)?,
        v6: false,
        proto,
        payload,
        wire_payload_len,
        truncated,
        frag,
    })
}

fn parse_v6(data: &[u8]) -> Result<IpPacket<'_>, DropCause> {
    if data.len() < 40 {
        return Err(DropCause::BadIpHeader);
    }
    let plen = be16(data, 4).ok_or(DropCause::BadIpHeader)? as usize;
    let next = IpProto(byte(data, 6).ok_or(DropCause::BadIpHeader)?);
    let total = if plen == 0 { 0 } else { plen + 40 };
    let (payload, wire, truncated) = body(data, 40, total)?;
    let (proto, ext_len, frag) = ext_headers(next, payload)?;
    let payload = payload.get(ext_len..).ok_or(DropCause::BadIpv6Ext)?;
    Ok(IpPacket {
        src: addr6(data, 8).ok_or(DropCause::BadIpHeader)?,
        dst: addr6(data, 24).ok_or(DropCause::BadIpHeader)?,
        v6: true,
        proto,
        payload,
        wire_payload_len: wire.saturating_sub(ext_len as u32),
        truncated,
        frag,
    })
}

/// Walks IPv6 extension headers from `next` over `data`: (upper protocol, bytes of extension headers,
/// fragment header). Stops at a fragment header that is a real fragment (the rest is fragment data), at
/// ESP and at "no next header".
pub fn ext_headers(mut next: IpProto, data: &[u8]) -> Result<(IpProto, usize, Option<FragInfo>), DropCause> {
    let mut off = 0usize;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let len = match next {
            IpProto::HOPOPT
            | IpProto::ROUTING
            | IpProto::DSTOPTS
            | IpProto::MOBILITY
            | IpProto::HIP
            | IpProto::SHIM6 => (byte(data, off + 1).ok_or(DropCause::BadIpv6Ext)? as usize + 1) * 8,
            IpProto::AH => (byte(data, off + 1).ok_or(DropCause::BadIpv6Ext)? as usize + 2) * 4,
            IpProto::FRAGMENT => {
                let fo = be16(data, off + 2).ok_or(DropCause::BadIpv6Ext)?;
                let id = be32(data, off + 4).ok_or(DropCause::BadIpv6Ext)?;
                let nh = IpProto(byte(data, off).ok_or(DropCause::BadIpv6Ext)?);
                let frag = FragInfo { id, offset: (fo & 0xfff8) as u32, more: fo & 1 != 0 };
                if frag.more || frag.offset != 0 {
                    return Ok((nh, off + 8, Some(frag)));
                }
                // RFC 6946 atomic fragment: a whole datagram, keep walking.
                8
            }
            _ => return Ok((next, off, None)),
        };
        next = IpProto(byte(data, off).ok_or(DropCause::BadIpv6Ext)?);
        off = off.checked_add(len).ok_or(DropCause::BadIpv6Ext)?;
        if off > data.len() {
            return Err(DropCause::BadIpv6Ext);
        }
    }
    Err(DropCause::BadIpv6Ext)
}

/// TCP header (RFC 9293 §3.1): returns the header and the payload; options are skipped by data offset.
pub fn tcp(data: &[u8]) -> Result<(TcpHeader, &[u8], usize), DropCause> {
    let doff = (byte(data, 12).ok_or(DropCause::BadTcpHeader)? >> 4) as usize * 4;
    if doff < 20 {
        return Err(DropCause::BadTcpHeader);
    }
    let payload = data.get(doff..).ok_or(DropCause::BadTcpHeader)?;
    let hdr = TcpHeader {
        src_port: be16(data, 0).ok_or(DropCause::BadTcpHeader)?,
        dst_port: be16(data, 2).ok_or(DropCause::BadTcpHeader)?,
        seq: be32(data, 4).ok_or(DropCause::BadTcpHeader)?,
        ack: be32(data, 8).ok_or(DropCause::BadTcpHeader)?,
        flags: byte(data, 13).ok_or(DropCause::BadTcpHeader)?,
        window: be16(data, 14).ok_or(DropCause::BadTcpHeader)?,
    };
    Ok((hdr, payload, doff))
}

/// UDP header: (src port, dst port, payload cut to the UDP length when it fits what was captured).
pub fn udp(data: &[u8]) -> Result<(u16, u16, &[u8]), DropCause> {
    let sport = be16(data, 0).ok_or(DropCause::BadUdpHeader)?;
    let dport = be16(data, 2).ok_or(DropCause::BadUdpHeader)?;
    let ulen = be16(data, 4).ok_or(DropCause::BadUdpHeader)? as usize;
    let rest = data.get(8..).ok_or(DropCause::BadUdpHeader)?;
    // A UDP length of 0 (jumbogram) or beyond the capture: keep what we have.
    let payload = match ulen.checked_sub(8) {
        Some(n) => rest.get(..n).unwrap_or(rest),
        None => rest,
    };
    Ok((sport, dport, payload))
}
