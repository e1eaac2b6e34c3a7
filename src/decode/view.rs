//! `PacketView`: what decoding hands to the flow stage. Borrowed payload, small copied metadata.

use std::net::IpAddr;

use crate::capture::Timestamp;

/// VLAN ids kept per packet (and in the flow key). Deeper stacks are decoded but only this many are kept;
/// the overflow is counted in `DecodeStats::vlan_overflow`.
pub const MAX_VLANS: usize = 4;
/// Tunnel layers kept per packet; decoding stops at `DecodeConfig::max_tunnel_depth` (never above this).
pub const MAX_TUNNELS: usize = 4;

/// Tunnel type. An open newtype so new encapsulations never change the output schema's shape.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelKind(pub u8);

impl TunnelKind {
    pub const NONE: TunnelKind = TunnelKind(0);
    pub const VXLAN: TunnelKind = TunnelKind(1);
    pub const GENEVE: TunnelKind = TunnelKind(2);
    pub const GRE: TunnelKind = TunnelKind(3);
    pub const ERSPAN2: TunnelKind = TunnelKind(4);
    pub const ERSPAN3: TunnelKind = TunnelKind(5);
    pub const IPIP: TunnelKind = TunnelKind(6);
    pub const TEREDO: TunnelKind = TunnelKind(7);
    pub const GTPU: TunnelKind = TunnelKind(8);
    pub const AYIYA: TunnelKind = TunnelKind(9);
    /// ERSPAN type I: GRE protocol 0x88BE without a sequence number and without an ERSPAN header.
    pub const ERSPAN1: TunnelKind = TunnelKind(10);
    /// VXLAN Generic Protocol Extension (UDP 4790): VXLAN with a next-protocol field.
    pub const VXLAN_GPE: TunnelKind = TunnelKind(11);

    pub fn name(self) -> &'static str {
        match self {
            Self::VXLAN => "vxlan",
            Self::GENEVE => "geneve",
            Self::GRE => "gre",
            Self::ERSPAN2 => "erspan2",
            Self::ERSPAN3 => "erspan3",
            Self::IPIP => "ip-in-ip",
            Self::TEREDO => "teredo",
            Self::GTPU => "gtp-u",
            Self::AYIYA => "ayiya",
            Self::ERSPAN1 => "erspan1",
            Self::VXLAN_GPE => "vxlan-gpe",
            _ => "none",
        }
    }
}

/// One peeled tunnel layer: its type and identifier (VXLAN/GENEVE VNI, ERSPAN session id, GRE key,
/// GTP TEID; 0 when the encapsulation carries none). The id is a tenant key: it is part of the flow key.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub id: u32,
}

/// Encapsulation context of a packet: VLAN ids (outermost first) and tunnel layers (outermost first).
/// Fixed-size so it is `Copy` and hashes cheaply as part of a flow key.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Encap {
    vlan_len: u8,
    vlans: [u16; MAX_VLANS],
    tunnel_len: u8,
    tunnels: [Tunnel; MAX_TUNNELS],
}

impl Encap {
    /// Records a VLAN id; false when `MAX_VLANS` are already kept (the caller counts the overflow).
    pub fn push_vlan(&mut self, id: u16) -> bool {
        match self.vlans.get_mut(self.vlan_len as usize) {
            Some(slot) => {
                *slot = id;
                self.vlan_len += 1;
                true
            }
            None => false,
        }
    }
    /// Records a tunnel layer; false when `MAX_TUNNELS` are already kept.
    pub fn push_tunnel(&mut self, t: Tunnel) -> bool {
        match self.tunnels.get_mut(self.tunnel_len as usize) {
            Some(slot) => {
                *slot = t;
                self.tunnel_len += 1;
                true
            }
            None => false,
        }
    }
    pub fn vlans(&self) -> &[u16] {
        self.vlans.get(..self.vlan_len as usize).unwrap_or(&[])
    }
    pub fn tunnels(&self) -> &[Tunnel] {
        self.tunnels.get(..self.tunnel_len as usize).unwrap_or(&[])
    }
    /// Drops the VLAN ids, e.g. when `flow.vlan_in_key` is off.
    pub fn without_vlans(mut self) -> Self {
        self.vlan_len = 0;
        self.vlans = [0; MAX_VLANS];
        self
    }
}

/// TCP flag bits (RFC 9293 §3.1), as in the header's 13th byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// See [`tcp_flags`].
    pub flags: u8,
    pub window: u16,
}

impl TcpHeader {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp {
        hdr: TcpHeader,
        /// The payload bytes captured.
        payload: &'a [u8],
        /// The payload length the IP header announces; larger than `payload.len()` when the frame was cut by
        /// the snaplen. Reassembly reports the missing part as a gap instead of inventing bytes.
        wire_payload_len: u32,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
    /// Any other IP protocol (ICMP, SCTP, ...): counted, carried as a flow without payload.
    Other { proto: u8 },
}

/// A decoded packet: the innermost IP header's addresses and its transport, plus the encapsulation it came in.
#[derive(Copy, Clone, Debug)]
pub struct PacketView<'a> {
    pub ts: Timestamp,
    pub encap: Encap,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport<'a>,
    /// Bytes of the frame on the wire (for per-flow byte counters).
    pub wire_len: u32,
    /// The capture cut this packet short of what its headers announce.
    pub truncated: bool,
}

impl PacketView<'_> {
    pub fn ip_proto(&self) -> u8 {
        match self.transport {
            Transport::Tcp { .. } => 6,
            Transport::Udp { .. } => 17,
            Transport::Other { proto } => proto,
        }
    }
    pub fn ports(&self) -> (u16, u16) {
        match self.transport {
            Transport::Tcp { hdr, .. } => (hdr.src_port, hdr.dst_port),
            Transport::Udp { src_port, dst_port, .. } => (src_port, dst_port),
            Transport::Other { .. } => (0, 0),
        }
    }
}
