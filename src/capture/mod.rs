//! Packet sources: live interfaces (libpcap, feature `live-pcap`) and capture files (pcap and pcapng).
//!
//! A source yields [`RawPacket`]s: the packet's own timestamp, its link type and the captured bytes. Parsing
//! those bytes is `decode`'s job. Every time-based decision downstream uses `RawPacket::ts`, never the wall
//! clock, so a replay gives the same result however fast it runs.

pub mod file;
#[cfg(feature = "live-pcap")]
pub mod live;

/// Nanoseconds since the Unix epoch, as recorded by the capture.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const fn from_secs(s: u64) -> Self {
        Timestamp(s.saturating_mul(1_000_000_000))
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    pub fn saturating_sub(self, other: Timestamp) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.saturating_sub(other.0))
    }
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
    }
}

/// A libpcap data-link type (DLT / LINKTYPE_ value). An open newtype: an unknown value is data, not an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const PPP: LinkType = LinkType(9);
    pub const RAW_OPENBSD: LinkType = LinkType(12);
    pub const RAW_DLT: LinkType = LinkType(14);
    pub const PPP_HDLC: LinkType = LinkType(50);
    pub const PPP_ETHER: LinkType = LinkType(51);
    pub const RAW: LinkType = LinkType(101);
    pub const C_HDLC: LinkType = LinkType(104);
    pub const IEEE802_11: LinkType = LinkType(105);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IEEE802_11_RADIOTAP: LinkType = LinkType(127);
    pub const NFLOG: LinkType = LinkType(239);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    pub fn name(self) -> &'static str {
        match self {
            Self::NULL => "null",
            Self::ETHERNET => "ethernet",
            Self::PPP => "ppp",
            Self::RAW | Self::RAW_OPENBSD | Self::RAW_DLT => "raw",
            Self::PPP_HDLC => "ppp_hdlc",
            Self::PPP_ETHER => "pppoe",
            Self::C_HDLC => "c_hdlc",
            Self::IEEE802_11 => "ieee802_11",
            Self::IEEE802_11_RADIOTAP => "ieee802_11_radiotap",
            Self::LOOP => "loop",
            Self::LINUX_SLL => "linux_sll",
            Self::LINUX_SLL2 => "linux_sll2",
            Self::NFLOG => "nflog",
            Self::IPV4 => "ipv4",
            Self::IPV6 => "ipv6",
            _ => "other",
        }
    }
}

/// One captured frame, borrowed from the source's buffer until the next call.
#[derive(Copy, Clone, Debug)]
pub struct RawPacket<'a> {
    pub ts: Timestamp,
    pub linktype: LinkType,
    /// The bytes captured (at most the snaplen).
    pub data: &'a [u8],
    /// The frame's length on the wire; larger than `data.len()` when the capture truncated it.
    pub orig_len: u32,
}
