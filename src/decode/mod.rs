//! Decoding: link layer, VLAN/QinQ, MPLS, PPPoE, IPv4/IPv6 (with extension headers), IP fragment reassembly
//! and tunnels, into a [`PacketView`].
//!
//! Contract: `Decoder::decode` never panics and never reads past the captured bytes, whatever the input.
//! A packet it cannot use is counted in [`DecodeStats`] by cause and yields `None`. Fragments are held in a
//! bounded table (count, bytes, fragments-per-datagram and timeout caps; timeouts on packet time).
//!
//! Tunnels are peeled in a loop, at most `DecodeConfig::max_tunnel_depth` layers, each recorded in the
//! packet's [`Encap`]. A tunnel whose inner packet does not parse is counted and the outer packet is
//! returned as it is, so nothing is lost to a misdetected port. The non-fragment path allocates nothing.
//! Tunnels: VXLAN, VXLAN-GPE, GENEVE, GRE (also over UDP and PPTP's enhanced GRE), ERSPAN I/II/III,
//! IP-in-IP, Teredo, GTP-U, AYIYA; UDP tunnels are recognised on either port. The tunnel id is the VNI,
//! GRE key or ERSPAN session; GTP TEIDs are left out unless `gtpu_teid_as_id` (they differ per direction).
//!
//! Fragments: one reassembly per packet (a fragment inside a reassembled datagram is dropped, counted);
//! a fragment cut by the snaplen is dropped (counted). Overlaps are first-wins.
//!
//! Link types: Ethernet (with 802.3 LLC/SNAP), Linux SLL/SLL2, raw IP, NULL/LOOP, PPP, PPP-in-HDLC, PPPoE,
//! Cisco HDLC, NFLOG, 802.11 data frames (plain or radiotap); VLAN/QinQ, MPLS (with Ethernet pseudowires),
//! PPPoE, NSH and Cisco MetaData on Ethernet. Not decoded: ARP and other non-IP ethertypes, encrypted
//! 802.11 and A-MSDU, ESP payloads, IPv4 options content, GRE source routing.

// Every read of packet bytes goes through `get`: a slip here would be a remote panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod fragment;
pub mod ip;
pub mod link;
pub mod tunnel;
pub mod view;

use std::collections::BTreeMap;

pub use fragment::{FragmentConfig, FragmentStats};
pub use view::*;

use crate::capture::{RawPacket, Timestamp};
use fragment::{FragKey, FragTable, Outcome};
use ip::IpProto;
use tunnel::{Inner, Peel};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// VLAN tags followed per frame; a deeper stack drops the packet (counted). Only `view::MAX_VLANS`
    /// ids are kept in the `Encap`.
    pub max_vlan_depth: usize,
    /// Tunnel layers peeled per packet (clamped to `view::MAX_TUNNELS`); one more drops the packet.
    pub max_tunnel_depth: usize,
    /// MPLS labels popped per stack.
    pub max_mpls_labels: usize,
    /// UDP ports (either side) carrying VXLAN (4789 IANA, 8472 Linux default).
    pub vxlan_ports: Vec<u16>,
    /// UDP port (either side) carrying VXLAN-GPE.
    pub vxlan_gpe_port: u16,
    /// UDP port (either side) carrying GENEVE.
    pub geneve_port: u16,
    /// Decode Teredo (UDP 3544).
    pub teredo: bool,
    /// Also recognise Teredo on other UDP ports, by content (an IPv6 packet filling the datagram, with a
    /// 2001:0::/32 address), as Zeek does: after qualification, Teredo peers use arbitrary ports.
    pub teredo_any_port: bool,
    /// Decode GTP-U G-PDUs on `gtpu_port` (either side).
    pub gtpu: bool,
    /// UDP port of GTP-U (2152).
    pub gtpu_port: u16,
    /// Use the GTP TEID as the tunnel id. Off by default: TEIDs differ per direction, so with them in the
    /// flow key a connection's two directions would never meet.
    pub gtpu_teid_as_id: bool,
    /// Decode GRE over UDP (RFC 8086, port 4754).
    pub gre_over_udp: bool,
    /// Decode AYIYA (UDP 5072).
    pub ayiya: bool,
    /// IP fragment reassembly caps (`[decode.fragments]`).
    pub fragments: FragmentConfig,
    /// Packet time between opportunistic fragment timeout sweeps from `decode`.
    #[serde(with = "crate::config::duration")]
    pub expire_interval: std::time::Duration,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_vlan_depth: 8,
            max_tunnel_depth: 4,
            max_mpls_labels: 8,
            vxlan_ports: vec![4789, 8472],
            vxlan_gpe_port: 4790,
            geneve_port: 6081,
            teredo: true,
            teredo_any_port: true,
            gtpu: true,
            gtpu_port: 2152,
            gtpu_teid_as_id: false,
            gre_over_udp: true,
            ayiya: true,
            fragments: FragmentConfig::default(),
            expire_interval: std::time::Duration::from_secs(1),
        }
    }
}

/// Why a packet was not decoded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DropCause {
    TruncatedLink,
    UnsupportedLinkType,
    /// A link header we know announcing a payload we do not (non-IP PPP, AF family, 802.11 management...).
    UnsupportedLinkProto,
    UnsupportedEtherType,
    VlanDepth,
    MplsDepth,
    BadIpHeader,
    BadIpVersion,
    BadIpv6Ext,
    BadTcpHeader,
    BadUdpHeader,
}

/// Packets dropped, by cause.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DecodeErrors {
    pub truncated_link_header: u64,
    pub unsupported_linktype: u64,
    pub unsupported_link_proto: u64,
    pub unsupported_ethertype: u64,
    pub vlan_depth_exceeded: u64,
    pub mpls_depth_exceeded: u64,
    pub bad_ip_header: u64,
    pub bad_ip_version: u64,
    pub bad_ipv6_ext: u64,
    pub bad_tcp_header: u64,
    pub bad_udp_header: u64,
    pub tunnel_depth_exceeded: u64,
    /// A fragment cut by the snaplen: it cannot be reassembled.
    pub truncated_fragment: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DecodeStats {
    pub packets: u64,
    /// Wire bytes of all packets.
    pub bytes: u64,
    pub by_linktype: BTreeMap<&'static str, u64>,
    /// Packets returned as a view (fragments count once, when their datagram completes).
    pub decoded: u64,
    /// Views whose IP length announces more than was captured.
    pub truncated: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub tcp: u64,
    pub udp: u64,
    pub other_proto: u64,
    pub vlan_tags: u64,
    /// VLAN tags beyond `view::MAX_VLANS`: decoded, not kept in the key.
    pub vlan_overflow: u64,
    pub mpls: u64,
    pub pppoe: u64,
    /// Tunnel layers peeled, by kind.
    pub tunnels: BTreeMap<&'static str, u64>,
    /// Tunnel headers that were malformed or unsupported: the outer packet is returned.
    pub tunnel_bad: u64,
    /// Tunnel headers whose inner packet did not decode: the outer packet is returned.
    pub tunnel_inner_bad: u64,
    pub errors: DecodeErrors,
    pub fragments: FragmentStats,
}

impl DecodeStats {
    fn count(&mut self, cause: DropCause) {
        let e = &mut self.errors;
        let c = match cause {
            DropCause::TruncatedLink => &mut e.truncated_link_header,
            DropCause::UnsupportedLinkType => &mut e.unsupported_linktype,
            DropCause::UnsupportedLinkProto => &mut e.unsupported_link_proto,
            DropCause::UnsupportedEtherType => &mut e.unsupported_ethertype,
            DropCause::VlanDepth => &mut e.vlan_depth_exceeded,
            DropCause::MplsDepth => &mut e.mpls_depth_exceeded,
            DropCause::BadIpHeader => &mut e.bad_ip_header,
            DropCause::BadIpVersion => &mut e.bad_ip_version,
            DropCause::BadIpv6Ext => &mut e.bad_ipv6_ext,
            DropCause::BadTcpHeader => &mut e.bad_tcp_header,
            DropCause::BadUdpHeader => &mut e.bad_udp_header,
        };
        *c += 1;
    }
}

pub struct Decoder {
    cfg: DecodeConfig,
    stats: DecodeStats,
    frags: FragTable,
    last_sweep: Timestamp,
}

impl Decoder {
    pub fn new(mut cfg: DecodeConfig) -> Self {
        cfg.max_tunnel_depth = cfg.max_tunnel_depth.min(MAX_TUNNELS);
        Decoder {
            frags: FragTable::new(cfg.fragments.clone()),
            cfg,
            stats: DecodeStats::default(),
            last_sweep: Timestamp::default(),
        }
    }

    /// None = not a usable IP packet (counted by cause) or a fragment still waiting for its siblings.
    pub fn decode<'a>(&'a mut self, pkt: RawPacket<'a>) -> Option<PacketView<'a>> {
        if pkt.ts.saturating_sub(self.last_sweep) >= self.cfg.expire_interval {
            self.expire(pkt.ts);
        }
        let Decoder { cfg, stats, frags, .. } = self;
        stats.packets += 1;
        stats.bytes += pkt.orig_len as u64;
        *stats.by_linktype.entry(pkt.linktype.name()).or_default() += 1;

        let mut encap = Encap::default();
        let mut ip = match link::strip(pkt.linktype, pkt.data, &mut encap, cfg, stats).and_then(ip::parse) {
            Ok(ip) => ip,
            Err(cause) => {
                stats.count(cause);
                return None;
            }
        };
        // One reassembly per packet: the reassembled bytes live in the table's output buffer.
        let mut frags = Some(frags);
        let mut truncated = false;
        let mut depth = 0usize;
        let mut wire_len = pkt.orig_len;
        loop {
            truncated |= ip.truncated;
            let (proto, payload, wire_payload_len) = match ip.frag {
                None => (ip.proto, ip.payload, ip.wire_payload_len),
                Some(fi) => {
                    let Some(table) = frags.take() else {
                        stats.fragments.nested_dropped += 1;
                        return None;
                    };
                    if ip.truncated {
                        stats.errors.truncated_fragment += 1;
                        return None;
                    }
                    let key = FragKey { src: ip.src, dst: ip.dst, id: fi.id, proto: ip.proto.0, encap };
                    let buf = match table.insert(key, fi, ip.payload, pkt.orig_len, pkt.ts, &mut stats.fragments) {
                        Outcome::Complete(buf, wire_bytes) => {
                            wire_len = wire_bytes;
                            buf
                        }
                        Outcome::Held | Outcome::Dropped => return None,
                    };
                    if ip.v6 {
                        // Extension headers may follow the fragment header, in the fragmentable part.
                        match ip::ext_headers(ip.proto, buf) {
                            Ok((proto, off, None)) => {
                                let p = buf.get(off..).unwrap_or(&[]);
                                (proto, p, p.len() as u32)
                            }
                            Ok((_, _, Some(_))) | Err(_) => {
                                stats.count(DropCause::BadIpv6Ext);
                                return None;
                            }
                        }
                    } else {
                        (ip.proto, buf, buf.len() as u32)
                    }
                }
            };

            let mut udp = None;
            let peel = match proto {
                IpProto::UDP => match ip::udp(payload) {
                    Ok((sport, dport, data)) => {
                        udp = Some((sport, dport, data));
                        tunnel::over_udp(sport, dport, data, cfg)
                    }
                    Err(cause) => {
                        stats.count(cause);
                        return None;
                    }
                },
                IpProto::GRE | IpProto::IPIP | IpProto::IPV6 => tunnel::over_ip(proto, payload),
                _ => Peel::NotTunnel,
            };
            match peel {
                Peel::NotTunnel => {}
                Peel::Bad(_) => stats.tunnel_bad += 1,
                Peel::Tunnel(t, inner) => {
                    if depth >= cfg.max_tunnel_depth {
                        stats.errors.tunnel_depth_exceeded += 1;
                        return None;
                    }
                    let mut inner_encap = encap;
                    let inner_ip = match inner {
                        Inner::Ethernet(d) => link::ethernet(d, &mut inner_encap, cfg, stats),
                        Inner::EtherType(et, d) => link::ethertype(et, d, &mut inner_encap, cfg, stats),
                        Inner::Ip(d) => Ok(d),
                        Inner::Ppp(d) => link::ppp(d),
                    }
                    .and_then(ip::parse);
                    match inner_ip {
                        Ok(inner) => {
                            // Depth is capped at MAX_TUNNELS, so the push always has room.
                            inner_encap.push_tunnel(t);
                            *stats.tunnels.entry(t.kind.name()).or_default() += 1;
                            encap = inner_encap;
                            ip = inner;
                            depth += 1;
                            continue;
                        }
                        Err(_) => stats.tunnel_inner_bad += 1,
                    }
                }
            }

            let transport = match (proto, udp) {
                (IpProto::TCP, _) => match ip::tcp(payload) {
                    Ok((hdr, data, doff)) => {
                        stats.tcp += 1;
                        Transport::Tcp {
                            hdr,
                            payload: data,
                            wire_payload_len: wire_payload_len.saturating_sub(doff as u32),
                        }
                    }
                    Err(cause) => {
                        stats.count(cause);
                        return None;
                    }
                },
                (IpProto::UDP, Some((src_port, dst_port, payload))) => {
                    stats.udp += 1;
                    Transport::Udp { src_port, dst_port, payload }
                }
                (IpProto(p), _) => {
                    stats.other_proto += 1;
                    Transport::Other { proto: p }
                }
            };
            if ip.v6 {
                stats.ipv6 += 1;
            } else {
                stats.ipv4 += 1;
            }
            if truncated {
                stats.truncated += 1;
            }
            stats.decoded += 1;
            return Some(PacketView { ts: pkt.ts, encap, src: ip.src, dst: ip.dst, transport, wire_len, truncated });
        }
    }

    /// Expires fragment state older than the configured timeout, on packet time.
    pub fn expire(&mut self, now: Timestamp) {
        self.last_sweep = now;
        self.frags.expire(now, &mut self.stats.fragments);
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Datagrams and bytes held for reassembly.
    pub fn fragment_usage(&self) -> (usize, usize) {
        (self.frags.len(), self.frags.mem_bytes())
    }
}

#[cfg(test)]
mod corpus_tests {
    //! Every capture in the shared corpus decodes without panic, and tunnel/VLAN/MPLS/fragment cases yield
    //! the inner TCP conversations tshark shows (`tshark -r X -Y tcp`, computed once and written here).

    use std::collections::BTreeSet;
    use std::net::IpAddr;
    use std::path::{Path, PathBuf};

    use pcap_parser::pcapng::Block;
    use pcap_parser::traits::PcapNGPacketBlock;
    use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

    use super::*;
    use crate::capture::LinkType;

    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

    pub struct Frame {
        pub ts: Timestamp,
        pub linktype: LinkType,
        pub data: Vec<u8>,
        pub orig_len: u32,
    }

    /// Reads a pcap or pcapng file (per-interface link types and timestamp resolutions).
    pub fn read_capture(path: &Path) -> Vec<Frame> {
        let file = std::fs::File::open(path).expect("open capture");
        let mut reader = create_reader(1 << 20, file).expect("pcap reader");
        let mut frames = Vec::new();
        let mut legacy = (LinkType(1), false);
        // (linktype, ticks per second) per interface.
        let mut ifaces: Vec<(LinkType, u64)> = Vec::new();
        let mut stalled = 0;
        loop {
            match reader.next() {
                Ok((offset, block)) => {
                    stalled = 0;
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            legacy = (LinkType(h.network.0 as u32), h.is_nanosecond_precision());
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let frac = if legacy.1 { b.ts_usec as u64 } else { b.ts_usec as u64 * 1000 };
                            frames.push(Frame {
                                ts: Timestamp(b.ts_sec as u64 * 1_000_000_000 + frac),
                                linktype: legacy.0,
                                data: b.data.to_vec(),
                                orig_len: b.origlen,
                            });
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            let r = idb.if_tsresol;
                            let tps = if r & 0x80 != 0 {
                                1u64.checked_shl((r & 0x7f) as u32).unwrap_or(1)
                            } else {
                                10u64.checked_pow(r as u32).unwrap_or(1)
                            };
                            ifaces.push((LinkType(idb.linktype.0 as u32), tps.max(1)));
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let (lt, tps) = ifaces.get(epb.if_id as usize).copied().unwrap_or((LinkType(1), 1_000_000));
                            let ticks = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                            let ns = (ticks as u128 * 1_000_000_000 / tps as u128) as u64;
                            frames.push(Frame {
                                ts: Timestamp(ns),
                                linktype: lt,
                                data: epb.packet_data().to_vec(),
                                orig_len: epb.origlen,
                            });
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            let lt = ifaces.first().map(|i| i.0).unwrap_or(LinkType(1));
                            frames.push(Frame {
                                ts: frames.last().map(|f| f.ts).unwrap_or_default(),
                                linktype: lt,
                                data: spb.packet_data().to_vec(),
                                orig_len: spb.origlen,
                            });
                        }
                        PcapBlockOwned::NG(_) => {}
                    }
                    reader.consume(offset);
                }
                // A capture cut mid-record ends there.
                Err(PcapError::Eof | PcapError::UnexpectedEof) => break,
                Err(PcapError::Incomplete(_)) => {
                    stalled += 1;
                    if stalled > 2 || reader.refill().is_err() {
                        break;
                    }
                }
                Err(e) => panic!("{}: {e:?}", path.display()),
            }
        }
        frames
    }

    pub fn corpus_dir() -> Option<PathBuf> {
        let p = PathBuf::from(CORPUS);
        if p.is_dir() {
            Some(p)
        } else {
            assert!(std::env::var_os("CI").is_none(), "corpus missing at {CORPUS} and CI is set");
            eprintln!("skipping: corpus not found at {CORPUS}");
            None
        }
    }

    type Conv = ((IpAddr, u16), (IpAddr, u16));

    struct Summary {
        convs: BTreeSet<Conv>,
        tcp_packets: usize,
        stacks: BTreeSet<Vec<(TunnelKind, u32)>>,
        vlans: BTreeSet<Vec<u16>>,
        stats: DecodeStats,
    }

    fn summarize(name: &str) -> Option<Summary> {
        let dir = corpus_dir()?;
        let frames = read_capture(&dir.join(name));
        let mut dec = Decoder::new(DecodeConfig::default());
        let mut s = Summary {
            convs: BTreeSet::new(),
            tcp_packets: 0,
            stacks: BTreeSet::new(),
            vlans: BTreeSet::new(),
            stats: DecodeStats::default(),
        };
        for f in &frames {
            let raw = RawPacket { ts: f.ts, linktype: f.linktype, data: &f.data, orig_len: f.orig_len };
            let Some(v) = dec.decode(raw) else { continue };
            if let Transport::Tcp { hdr, .. } = v.transport {
                let a = (v.src, hdr.src_port);
                let b = (v.dst, hdr.dst_port);
                s.convs.insert(if a <= b { (a, b) } else { (b, a) });
                s.tcp_packets += 1;
                s.stacks.insert(v.encap.tunnels().iter().map(|t| (t.kind, t.id)).collect());
                s.vlans.insert(v.encap.vlans().to_vec());
            }
        }
        s.stats = dec.stats().clone();
        Some(s)
    }

    fn conv(a: &str, ap: u16, b: &str, bp: u16) -> Conv {
        let a = (a.parse().unwrap(), ap);
        let b = (b.parse().unwrap(), bp);
        if a <= b { (a, b) } else { (b, a) }
    }

    #[test]
    fn every_capture_decodes_without_panic() {
        let Some(dir) = corpus_dir() else { return };
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")))
            .collect();
        names.sort();
        assert!(!names.is_empty());
        for p in names {
            let frames = read_capture(&p);
            let mut dec = Decoder::new(DecodeConfig::default());
            let mut decoded = 0usize;
            for f in &frames {
                let raw = RawPacket { ts: f.ts, linktype: f.linktype, data: &f.data, orig_len: f.orig_len };
                decoded += dec.decode(raw).is_some() as usize;
            }
            let st = dec.stats();
            if decoded < frames.len() {
                eprintln!(
                    "{}: {}/{} decoded, errors {:?}, frag {:?}, tunnel_bad {} inner_bad {}",
                    p.file_name().unwrap().to_string_lossy(),
                    decoded,
                    frames.len(),
                    st.errors,
                    st.fragments,
                    st.tunnel_bad,
                    st.tunnel_inner_bad
                );
            }
        }
    }

    /// (file, TCP frames tshark shows, conversations, tunnel stacks seen on TCP packets).
    #[allow(clippy::type_complexity)]
    fn cases() -> Vec<(&'static str, usize, Vec<Conv>, Vec<Vec<(TunnelKind, u32)>>)> {
        use TunnelKind as K;
        vec![
            (
                "zeek-tunnels-vxlan-encapsulated-http.pcap",
                12,
                vec![conv("172.16.11.201", 40354, "54.86.237.188", 80)],
                vec![vec![(K::VXLAN, 1)]],
            ),
            (
                "sv-vxlan-non-zero-reserved-fields.pcap",
                10,
                vec![conv("218.94.93.34", 51252, "192.168.1.134", 80)],
                vec![vec![(K::VXLAN, 11)]],
            ),
            (
                "sv-bug-5437-01.pcap",
                2,
                vec![
                    conv("183.171.100.129", 59938, "1.19.8.213", 80),
                    conv("183.171.100.129", 59938, "213.39.205.178", 80),
                ],
                vec![vec![(K::ERSPAN2, 2)], vec![(K::ERSPAN2, 6)]],
            ),
            (
                "sv-bug-5437-02.pcap",
                60,
                vec![
                    conv("126.203.57.64", 80, "41.108.52.138", 34048),
                    conv("126.203.57.64", 80, "41.108.52.138", 54520),
                    conv("126.203.57.64", 80, "41.108.52.138", 54530),
                    conv("156.0.248.112", 38844, "41.108.52.138", 54530),
                    conv("196.25.212.207", 80, "41.108.52.138", 54520),
                    conv("196.25.212.207", 80, "41.108.52.138", 54530),
                    conv("233.62.247.35", 36309, "41.108.52.138", 54530),
                    conv("40.110.35.23", 80, "41.108.52.138", 34048),
                    conv("40.110.35.23", 80, "41.108.52.138", 54520),
                    conv("40.110.35.23", 80, "41.108.52.138", 54530),
                ],
                vec![vec![(K::ERSPAN2, 2)], vec![(K::ERSPAN2, 5)], vec![(K::ERSPAN2, 6)], vec![(K::ERSPAN2, 7)]],
            ),
            (
                "sv-bug-6402-01.pcap",
                12,
                vec![conv("10.2.0.1", 39198, "10.2.0.2", 1234)],
                vec![vec![(K::GENEVE, 0), (K::GRE, 0)]],
            ),
            (
                "zeek-tunnels-geneve-many-options.pcap",
                10,
                vec![conv("10.0.0.226", 39088, "95.217.228.176", 80)],
                vec![vec![(K::GENEVE, 0x0c012e)]],
            ),
            (
                "zeek-tunnels-gre-over-udp-4754.pcap",
                10,
                vec![conv("172.17.0.2", 36518, "192.0.78.150", 80)],
                vec![vec![(K::GRE, 0)]],
            ),
            (
                "zeek-tunnels-gtp-gtp1-gn-normal-incl-fragmentation.pcap",
                68,
                vec![conv("10.131.47.185", 1923, "79.101.110.141", 80)],
                vec![vec![(K::GTPU, 0)]],
            ),
            (
                "zeek-tunnels-gtp-gtp2-different-udp-port.pcap",
                78,
                vec![conv("10.131.17.170", 51803, "173.199.115.168", 80)],
                vec![vec![(K::GTPU, 0)]],
            ),
            ("zeek-vlan-qinqinq.pcap", 14, vec![conv("141.142.228.5", 59856, "192.150.187.43", 80)], vec![vec![]]),
            (
                "zeek-mpls-in-vlan.pcap",
                3,
                vec![
                    conv("65.65.65.65", 80, "65.65.65.65", 19244),
                    conv("65.65.65.65", 80, "65.65.65.65", 32828),
                    conv("65.65.65.65", 80, "65.65.65.65", 61193),
                ],
                vec![vec![]],
            ),
            ("arkime-socks5-http-302-frag.pcap", 14, vec![conv("10.0.0.1", 1637, "10.0.0.2", 21477)], vec![vec![]]),
            ("sv-bug-4810.pcap", 30, vec![conv("10.100.0.0", 57013, "142.250.179.131", 80)], vec![vec![]]),
            ("sv-decode-chdlc-01.pcap", 17, vec![conv("192.168.2.7", 4938, "65.55.116.183", 80)], vec![vec![]]),
            ("arkime-nflog.pcap", 10, vec![conv("10.10.10.10", 54064, "52.43.228.156", 80)], vec![vec![]]),
            ("arkime-80211http.pcap", 26, vec![conv("14.17.32.211", 80, "172.5.5.113", 49417)], vec![vec![]]),
            ("zeek-http-qinq-0.pcap", 14, vec![conv("141.142.228.5", 59856, "192.150.187.43", 80)], vec![vec![]]),
            ("arkime-twovlan.pcap", 6, vec![conv("10.0.0.1", 54422, "10.0.0.2", 80)], vec![vec![]]),
            ("sv-decode-sll2-01.pcap", 5, vec![conv("192.168.1.21", 80, "192.168.1.253", 56478)], vec![vec![]]),
            ("zeek-tcp-payload-synack.pcap", 6, vec![conv("192.168.0.1", 80, "192.168.0.2", 80)], vec![vec![]]),
            (
                "zeek-tcp-http-with-padding.pcap",
                25,
                vec![conv("167.221.30.181", 59406, "217.207.159.63", 27272)],
                vec![vec![]],
            ),
        ]
    }

    #[test]
    fn inner_conversations_match_tshark() {
        if corpus_dir().is_none() {
            return;
        }
        let mut failures = Vec::new();
        for (name, tcp_packets, convs, stacks) in cases() {
            let s = summarize(name).unwrap();
            let convs: BTreeSet<Conv> = convs.into_iter().collect();
            let stacks: BTreeSet<_> = stacks.into_iter().collect();
            if s.convs != convs || s.tcp_packets != tcp_packets || s.stacks != stacks {
                failures.push(format!(
                    "{name}: tcp packets {} (want {tcp_packets}), convs {:?} (want {convs:?}), stacks {:?} (want {stacks:?}), errors {:?}, frags {:?}",
                    s.tcp_packets, s.convs, s.stacks, s.stats.errors, s.stats.fragments
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn synthetic_capture_tunnel_counts_match_tshark() {
        let Some(s) = summarize("arkime-arkime-synthetic.pcap") else { return };
        let want: BTreeMap<&str, u64> = [
            ("vxlan", 2),
            ("vxlan-gpe", 2),
            ("geneve", 4),
            ("gtp-u", 1),
            ("gre", 2),
            // IPv4 in IPv4 behind an AH, IPv4 and IPv6 in IPv6 behind destination options.
            ("ip-in-ip", 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(s.stats.tunnels, want);
        // ERSPAN carrying a non-SNAP LLC frame: the outer GRE packet is kept.
        assert_eq!(s.stats.tunnel_inner_bad, 1);
        // ARP x2, LLDP, LLC, an unknown ethertype.
        assert_eq!(s.stats.errors.unsupported_ethertype, 5);
        assert_eq!(s.stats.decoded, 913);
    }

    #[test]
    fn snaplen_truncated_captures() {
        for (name, tcp_packets, truncated, c) in [
            ("zeek-communityid-tcp.pcap", 12, 3, conv("128.232.110.120", 34855, "66.35.250.204", 80)),
            // Frames shorter than their wire length, but with IP lengths rewritten to what was kept: the IP
            // header is what counts, so nothing is flagged.
            ("sv-tcp-rst-unacked-stream-10.pcap", 75, 0, conv("10.3.11.101", 49309, "174.56.47.59", 80)),
            ("arkime-websocket.pcap", 19, 0, conv("192.168.43.1", 50999, "192.168.43.135", 12345)),
            ("arkime-v6-http.pcap", 10, 0, conv("2001:6f8:102d:0:2d0:9ff:fee3:e8de", 59201, "2001:6f8:900:7c0::2", 80)),
        ] {
            let Some(s) = summarize(name) else { return };
            assert_eq!((s.tcp_packets, s.stats.truncated), (tcp_packets, truncated), "{name}");
            assert_eq!(s.convs, BTreeSet::from([c]), "{name}");
        }
    }

    /// Rough throughput over the whole corpus: `cargo test --release --lib decode_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn decode_throughput() {
        let Some(dir) = corpus_dir() else { return };
        let mut frames = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")) {
                frames.extend(read_capture(&p));
            }
        }
        let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
        let mut dec = Decoder::new(DecodeConfig::default());
        let rounds = 20;
        let start = std::time::Instant::now();
        let mut n = 0usize;
        for _ in 0..rounds {
            for f in &frames {
                let raw = RawPacket { ts: f.ts, linktype: f.linktype, data: &f.data, orig_len: f.orig_len };
                n += dec.decode(raw).is_some() as usize;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{} packets ({} decoded) in {secs:.3}s: {:.0} packets/s, {:.2} Gbit/s",
            frames.len() * rounds,
            n,
            (frames.len() * rounds) as f64 / secs,
            (bytes * rounds * 8) as f64 / secs / 1e9
        );
    }

    #[test]
    fn ayiya_tunnel() {
        let Some(s) = summarize("zeek-tunnels-ayiya3.pcap") else { return };
        assert_eq!(s.tcp_packets, 21);
        assert_eq!(s.convs, BTreeSet::from([conv("2001:4860:b002::68", 80, "2001:4978:f:4c::2", 53382)]));
        assert_eq!(s.stacks, BTreeSet::from([vec![(TunnelKind::AYIYA, 0)]]));
    }

    #[test]
    fn vlan_stacks_are_recorded_outermost_first() {
        let Some(q) = summarize("zeek-vlan-qinqinq.pcap") else {
            return;
        };
        assert_eq!(q.vlans, BTreeSet::from([vec![30, 20, 10]]));
        let t = summarize("arkime-twovlan.pcap").unwrap();
        assert_eq!(t.vlans, BTreeSet::from([vec![201, 200]]));
        let m = summarize("zeek-mpls-in-vlan.pcap").unwrap();
        assert_eq!(m.stats.mpls, 2);
    }
}

/// Hand-built packets for the unit tests of this module's files.
#[cfg(test)]
pub(crate) mod testpkt {
    pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut v = vec![0x45, 0];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0]);
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        v.extend_from_slice(payload);
        v
    }

    pub fn ipv6(src: u8, dst: u8, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[15] = src;
        v.extend_from_slice(&a);
        a[15] = dst;
        v.extend_from_slice(&a);
        v.extend_from_slice(payload);
        v
    }

    pub fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        // Data offset 6 words: one 4-byte option (MSS) to check options are skipped.
        v.extend_from_slice(&[0x60, flags, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 5, 0xb4]);
        v.extend_from_slice(payload);
        v
    }

    pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    pub fn vlan(id: u16, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = id.to_be_bytes().to_vec();
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// A TCP segment from 10.0.0.1:1234 to 10.0.0.2:80 in IPv4.
    pub fn tcp4(payload: &[u8]) -> Vec<u8> {
        ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, 1, 0x4000, &tcp(1234, 80, 1000, 0x18, payload))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::testpkt::*;
    use super::*;
    use crate::capture::LinkType;

    fn raw(linktype: LinkType, data: &[u8]) -> RawPacket<'_> {
        RawPacket { ts: Timestamp::from_secs(100), linktype, data, orig_len: data.len() as u32 }
    }

    fn at(secs: u64, data: &[u8]) -> RawPacket<'_> {
        RawPacket { ts: Timestamp::from_secs(secs), linktype: LinkType::ETHERNET, data, orig_len: data.len() as u32 }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// (src, dst, sport, dport, payload) of a TCP view.
    fn tcp_of<'a>(v: &PacketView<'a>) -> (IpAddr, IpAddr, u16, u16, &'a [u8]) {
        match v.transport {
            Transport::Tcp { hdr, payload, .. } => (v.src, v.dst, hdr.src_port, hdr.dst_port, payload),
            t => panic!("not tcp: {t:?}"),
        }
    }

    fn tunnels(v: &PacketView<'_>) -> Vec<(TunnelKind, u32)> {
        v.encap.tunnels().iter().map(|t| (t.kind, t.id)).collect()
    }

    #[test]
    fn ethernet_ipv4_tcp_built_by_etherparse() {
        let payload = b"GET / HTTP/1.1\r\n\r\n";
        let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(42).unwrap())
            .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .tcp(40000, 80, 7, 1024);
        let mut frame = Vec::new();
        b.write(&mut frame, payload).unwrap();
        let mut d = Decoder::new(DecodeConfig::default());
        let v = d.decode(raw(LinkType::ETHERNET, &frame)).unwrap();
        assert_eq!(tcp_of(&v), (ip("192.0.2.1"), ip("192.0.2.2"), 40000, 80, &payload[..]));
        assert_eq!(v.encap.vlans(), &[42]);
        let Transport::Tcp { hdr, wire_payload_len, .. } = v.transport else { panic!() };
        assert_eq!((hdr.seq, wire_payload_len), (7, payload.len() as u32));
        assert!(!v.truncated);
        assert_eq!(d.stats().tcp, 1);
        assert_eq!(d.stats().by_linktype.get("ethernet"), Some(&1));
    }

    #[test]
    fn ipv6_udp_and_other_protocols() {
        let mut d = Decoder::new(DecodeConfig::default());
        let f = eth(0x86DD, &ipv6(1, 2, 17, &udp(53, 5353, b"dns")));
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(v.transport, Transport::Udp { src_port: 53, dst_port: 5353, payload: b"dns" });
        assert_eq!(v.src, ip("2001::1"));
        let f = eth(0x0800, &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 1, 0, 0, &[8, 0, 0, 0]));
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(v.transport, Transport::Other { proto: 1 });
        assert_eq!((d.stats().ipv4, d.stats().ipv6, d.stats().udp, d.stats().other_proto), (1, 1, 1, 1));
    }

    #[test]
    fn snaplen_truncated_packet_keeps_captured_payload() {
        let full = eth(0x0800, &tcp4(&[b'x'; 100]));
        let cut = &full[..full.len() - 60];
        let mut d = Decoder::new(DecodeConfig::default());
        let pkt = RawPacket { orig_len: full.len() as u32, ..raw(LinkType::ETHERNET, cut) };
        let v = d.decode(pkt).unwrap();
        let Transport::Tcp { payload, wire_payload_len, .. } = v.transport else { panic!() };
        assert_eq!((payload.len(), wire_payload_len), (40, 100));
        assert!(v.truncated);
        assert_eq!(v.wire_len, full.len() as u32);
        assert_eq!(d.stats().truncated, 1);
    }

    #[test]
    fn ethernet_padding_is_cut_off() {
        let mut f = eth(0x0800, &tcp4(b"hi"));
        f.extend_from_slice(&[0; 10]);
        let mut d = Decoder::new(DecodeConfig::default());
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(tcp_of(&v).4, b"hi");
        assert!(!v.truncated);
    }

    #[test]
    fn unusable_packets_are_counted_by_cause() {
        let mut d = Decoder::new(DecodeConfig::default());
        assert!(d.decode(raw(LinkType(9999), &[0; 40])).is_none());
        assert!(d.decode(raw(LinkType::ETHERNET, &eth(0x0806, &[0; 28]))).is_none());
        assert!(d.decode(raw(LinkType::ETHERNET, &[0; 10])).is_none());
        assert!(d.decode(raw(LinkType::ETHERNET, &eth(0x0800, &[0x45, 0, 0]))).is_none());
        assert!(d.decode(raw(LinkType::ETHERNET, &eth(0x0800, &[0x55; 40]))).is_none());
        let mut bad_tcp = tcp4(b"");
        bad_tcp[20 + 12] = 0x40; // data offset 16 bytes
        assert!(d.decode(raw(LinkType::ETHERNET, &eth(0x0800, &bad_tcp))).is_none());
        let e = &d.stats().errors;
        assert_eq!(
            (
                e.unsupported_linktype,
                e.unsupported_ethertype,
                e.truncated_link_header,
                e.bad_ip_header,
                e.bad_ip_version,
                e.bad_tcp_header
            ),
            (1, 1, 1, 1, 1, 1)
        );
        assert_eq!(d.stats().packets, 6);
        assert_eq!(d.stats().decoded, 0);
    }

    fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0];
        v.extend_from_slice(&(vni << 8).to_be_bytes());
        v.extend_from_slice(inner);
        v
    }

    fn outer_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        eth(0x0800, &ipv4([172, 16, 0, 1], [172, 16, 0, 2], 17, 9, 0, &udp(50000, dport, payload)))
    }

    #[test]
    fn vxlan_inner_ethernet_with_vlan() {
        let inner = eth(0x8100, &vlan(7, 0x0800, &tcp4(b"in")));
        let f = outer_udp(4789, &vxlan(0x123456, &inner));
        let mut d = Decoder::new(DecodeConfig::default());
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(tcp_of(&v), (ip("10.0.0.1"), ip("10.0.0.2"), 1234, 80, &b"in"[..]));
        assert_eq!(tunnels(&v), [(TunnelKind::VXLAN, 0x123456)]);
        assert_eq!(v.encap.vlans(), &[7]);
        // Linux's default port too.
        let f = outer_udp(8472, &vxlan(5, &eth(0x0800, &tcp4(b""))));
        assert_eq!(tunnels(&d.decode(raw(LinkType::ETHERNET, &f)).unwrap()), [(TunnelKind::VXLAN, 5)]);
        assert_eq!(d.stats().tunnels.get("vxlan"), Some(&2));
    }

    #[test]
    fn geneve_with_options_ethernet_and_ip_payloads() {
        let mut g = vec![0x02, 0, 0x65, 0x58, 0, 0, 0x2a, 0];
        g.extend_from_slice(&[0xaa; 8]); // two words of options
        g.extend_from_slice(&eth(0x0800, &tcp4(b"g")));
        let f = outer_udp(6081, &g);
        let mut d = Decoder::new(DecodeConfig::default());
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(tunnels(&v), [(TunnelKind::GENEVE, 0x2a)]);
        assert_eq!(tcp_of(&v).4, b"g");
        let mut g = vec![0x00, 0, 0x08, 0x00, 0, 0, 1, 0];
        g.extend_from_slice(&tcp4(b"h"));
        let f = outer_udp(6081, &g);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::GENEVE, 1)], &b"h"[..]));
    }

    fn outer_gre(gre: &[u8]) -> Vec<u8> {
        eth(0x0800, &ipv4([172, 16, 0, 1], [172, 16, 0, 2], 47, 9, 0, gre))
    }

    #[test]
    fn gre_with_key_checksum_and_sequence() {
        // C, K and S set: checksum+reserved, key, sequence.
        let mut g = vec![0xb0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0x30, 0x39, 0, 0, 0, 1];
        g.extend_from_slice(&tcp4(b"gre"));
        let mut d = Decoder::new(DecodeConfig::default());
        let f = outer_gre(&g);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::GRE, 12345)], &b"gre"[..]));
        // Transparent Ethernet bridging, no key.
        let mut g = vec![0, 0, 0x65, 0x58];
        g.extend_from_slice(&eth(0x86DD, &ipv6(1, 2, 6, &tcp(1, 2, 3, 0x02, b""))));
        let f = outer_gre(&g);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), v.src), (vec![(TunnelKind::GRE, 0)], ip("2001::1")));
        // GRE over UDP (RFC 8086).
        let mut g = vec![0, 0, 0x08, 0x00];
        g.extend_from_slice(&tcp4(b"u"));
        let f = outer_udp(4754, &g);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::GRE, 0)], &b"u"[..]));
    }

    #[test]
    fn erspan_types_one_two_three() {
        let inner = eth(0x0800, &tcp4(b"mirror"));
        let mut d = Decoder::new(DecodeConfig::default());
        // Type I: no sequence, no header.
        let mut g = vec![0, 0, 0x88, 0xbe];
        g.extend_from_slice(&inner);
        let f = outer_gre(&g);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::ERSPAN1, 0)], &b"mirror"[..]));
        // Type II: sequence present, version 1, session 0x3ff & 0x1234.
        let mut g = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 9];
        g.extend_from_slice(&[0x10, 0x00, 0x12, 0x34, 0, 0, 0, 0]);
        g.extend_from_slice(&inner);
        let f = outer_gre(&g);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::ERSPAN2, 0x234)], &b"mirror"[..]));
        // Type III without and with the platform subheader (O flag).
        for o in [false, true] {
            let mut g = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 9];
            g.extend_from_slice(&[0x20, 0x00, 0x00, 0x07, 0, 0, 0, 0, 0, 0, 0, o as u8]);
            if o {
                g.extend_from_slice(&[0xee; 8]);
            }
            g.extend_from_slice(&inner);
            let f = outer_gre(&g);
            let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
            assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::ERSPAN3, 7)], &b"mirror"[..]));
        }
    }

    #[test]
    fn vxlan_gpe_next_protocols() {
        let mut d = Decoder::new(DecodeConfig::default());
        let f = outer_udp(4790, &[&[0x0c, 0, 0, 1, 0, 0, 9, 0][..], &tcp4(b"gpe")].concat());
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::VXLAN_GPE, 9)], &b"gpe"[..]));
        let f = outer_udp(4790, &[&[0x0c, 0, 0, 3, 0, 0, 9, 0][..], &eth(0x0800, &tcp4(b"e"))].concat());
        assert_eq!(tcp_of(&d.decode(raw(LinkType::ETHERNET, &f)).unwrap()).4, b"e");
    }

    #[test]
    fn ipv4_authentication_header_nsh_and_cisco_metadata() {
        let mut d = Decoder::new(DecodeConfig::default());
        // AH: next header TCP, length 4 -> (4+2)*4 = 24 bytes.
        let ah = [&[6u8, 4, 0, 0][..], &[0; 20], &tcp(1, 80, 0, 0x18, b"ah")].concat();
        let f = eth(0x0800, &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 51, 0, 0, &ah));
        assert_eq!(tcp_of(&d.decode(raw(LinkType::ETHERNET, &f)).unwrap()).4, b"ah");
        // NSH, MD type 2 without metadata: 2 words, next protocol IPv4.
        let f = eth(0x894F, &[&[0x0f, 0xc2, 0x02, 0x01, 0, 0, 1, 0xff][..], &tcp4(b"nsh")].concat());
        assert_eq!(tcp_of(&d.decode(raw(LinkType::ETHERNET, &f)).unwrap()).4, b"nsh");
        // Cisco MetaData then IPv4.
        let f = eth(0x8909, &[&[1, 1, 0, 1, 0, 0x10, 0x08, 0x00][..], &tcp4(b"cmd")].concat());
        assert_eq!(tcp_of(&d.decode(raw(LinkType::ETHERNET, &f)).unwrap()).4, b"cmd");
    }

    #[test]
    fn ip_in_ip_and_ipv6_in_ipv4() {
        let mut d = Decoder::new(DecodeConfig::default());
        let f = eth(0x0800, &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 4, 0, 0, &tcp4(b"4in4")));
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).0), (vec![(TunnelKind::IPIP, 0)], ip("10.0.0.1")));
        let f = eth(0x0800, &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 41, 0, 0, &ipv6(5, 6, 17, &udp(1, 2, b""))));
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), v.dst), (vec![(TunnelKind::IPIP, 0)], ip("2001::6")));
    }

    #[test]
    fn teredo_on_any_port_by_content() {
        let t = ipv6(1, 2, 6, &tcp(1286, 80, 0, 0x02, b""));
        let mut d = Decoder::new(DecodeConfig::default());
        let f = outer_udp(32900, &t);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(tunnels(&v), vec![(TunnelKind::TEREDO, 0)]);
        // One byte more than the IPv6 length says: not Teredo, the datagram stays UDP.
        let mut longer = t.clone();
        longer.push(0);
        let f = outer_udp(32900, &longer);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert!(matches!(v.transport, Transport::Udp { dst_port: 32900, .. }));
        let off = DecodeConfig { teredo_any_port: false, ..Default::default() };
        let mut d = Decoder::new(off);
        let f = outer_udp(32900, &t);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert!(matches!(v.transport, Transport::Udp { dst_port: 32900, .. }));
    }

    #[test]
    fn teredo_with_origin_indication() {
        let mut t = vec![0, 0, 0x12, 0x34, 1, 2, 3, 4];
        t.extend_from_slice(&ipv6(1, 2, 6, &tcp(1, 80, 0, 0x02, b"")));
        let mut d = Decoder::new(DecodeConfig::default());
        let f = outer_udp(3544, &t);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), v.src), (vec![(TunnelKind::TEREDO, 0)], ip("2001::1")));
        // Not IPv6 on the Teredo port: plain UDP.
        let f = outer_udp(3544, b"qualification");
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert!(matches!(v.transport, Transport::Udp { dst_port: 3544, .. }));
    }

    #[test]
    fn gtpu_with_extension_header() {
        // Version 1, PT, E flag; G-PDU; TEID; seq/npdu/next-ext = 0x85 (PDU session container), one word.
        let mut g = vec![0x34, 0xff, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0x85, 1, 0x10, 0x05, 0x00];
        g.extend_from_slice(&tcp4(b"gtp"));
        let mut d = Decoder::new(DecodeConfig::default());
        let f = outer_udp(2152, &g);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::GTPU, 0)], &b"gtp"[..]));
        let mut d = Decoder::new(DecodeConfig { gtpu_teid_as_id: true, ..DecodeConfig::default() });
        let f = outer_udp(2152, &g);
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(tunnels(&v), [(TunnelKind::GTPU, 0xdeadbeef)]);
        // Echo request: plain UDP.
        let echo = [0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0];
        assert!(matches!(
            d.decode(raw(LinkType::ETHERNET, &outer_udp(2152, &echo))).unwrap().transport,
            Transport::Udp { .. }
        ));
    }

    #[test]
    fn nested_tunnels_up_to_the_depth_cap() {
        // GENEVE(IP) -> GRE -> IP -> TCP, as in sv-bug-6402.
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend_from_slice(&tcp4(b"deep"));
        let mut g = vec![0, 0, 0x08, 0x00, 0, 0, 3, 0];
        g.extend_from_slice(&ipv4([9, 9, 9, 1], [9, 9, 9, 2], 47, 0, 0, &gre));
        let f = outer_udp(6081, &g);
        let mut d = Decoder::new(DecodeConfig::default());
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(tunnels(&v), [(TunnelKind::GENEVE, 3), (TunnelKind::GRE, 0)]);
        let mut d = Decoder::new(DecodeConfig { max_tunnel_depth: 1, ..DecodeConfig::default() });
        assert!(d.decode(raw(LinkType::ETHERNET, &f)).is_none());
        assert_eq!(d.stats().errors.tunnel_depth_exceeded, 1);
        // Five IP-in-IP layers against the default depth of 4.
        let mut p = tcp4(b"x");
        for _ in 0..5 {
            p = ipv4([1, 1, 1, 1], [2, 2, 2, 2], 4, 0, 0, &p);
        }
        let mut d = Decoder::new(DecodeConfig { max_tunnel_depth: 99, ..DecodeConfig::default() });
        assert!(d.decode(raw(LinkType::RAW, &p)).is_none());
        assert_eq!(d.stats().errors.tunnel_depth_exceeded, 1);
    }

    #[test]
    fn tunnel_with_bad_inner_packet_returns_the_outer_packet() {
        let f = outer_udp(4789, &vxlan(1, &eth(0x0806, &[0; 28])));
        let mut d = Decoder::new(DecodeConfig::default());
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert!(matches!(v.transport, Transport::Udp { dst_port: 4789, .. }));
        assert!(v.encap.tunnels().is_empty());
        assert_eq!(d.stats().tunnel_inner_bad, 1);
        // Flags without the I bit: malformed VXLAN header.
        let f = outer_udp(4789, &[0; 8]);
        assert!(d.decode(raw(LinkType::ETHERNET, &f)).is_some());
        assert_eq!(d.stats().tunnel_bad, 1);
    }

    fn frag4(id: u16, off: u16, more: bool, data: &[u8]) -> Vec<u8> {
        let flags = (off / 8) | if more { 0x2000 } else { 0 };
        eth(0x0800, &ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, id, flags, data))
    }

    #[test]
    fn ipv4_fragments_in_order_and_reversed() {
        let seg = tcp(1234, 80, 1, 0x18, &[b'a'; 100]);
        let (a, b) = seg.split_at(64);
        for reversed in [false, true] {
            let mut d = Decoder::new(DecodeConfig::default());
            let (f1, f2) = (frag4(7, 0, true, a), frag4(7, 64, false, b));
            let (first, second) = if reversed { (&f2, &f1) } else { (&f1, &f2) };
            assert!(d.decode(at(1, first)).is_none());
            let v = d.decode(at(1, second)).unwrap();
            assert_eq!(tcp_of(&v).4, &[b'a'; 100]);
            assert_eq!(v.wire_len as usize, f1.len() + f2.len());
            assert_eq!(d.stats().fragments.reassembled, 1);
            assert_eq!(d.fragment_usage(), (0, 0));
        }
    }

    #[test]
    fn ipv6_fragments_reassemble() {
        let seg = udp(53, 53, &[b'z'; 50]);
        let (a, b) = seg.split_at(32);
        let fh = |off: u16, more: bool| {
            let mut h = vec![17, 0];
            h.extend_from_slice(&(off | more as u16).to_be_bytes());
            h.extend_from_slice(&0xabcdu32.to_be_bytes());
            h
        };
        let p1 = eth(0x86DD, &ipv6(1, 2, 44, &[fh(0, true), a.to_vec()].concat()));
        let p2 = eth(0x86DD, &ipv6(1, 2, 44, &[fh(32, false), b.to_vec()].concat()));
        let mut d = Decoder::new(DecodeConfig::default());
        assert!(d.decode(at(1, &p1)).is_none());
        let v = d.decode(at(1, &p2)).unwrap();
        assert_eq!(v.transport, Transport::Udp { src_port: 53, dst_port: 53, payload: &[b'z'; 50] });
        // An atomic fragment (offset 0, M clear) is a whole packet.
        let p = eth(0x86DD, &ipv6(1, 2, 44, &[fh(0, false), udp(1, 2, b"at")].concat()));
        assert!(matches!(d.decode(at(1, &p)).unwrap().transport, Transport::Udp { payload: b"at", .. }));
    }

    #[test]
    fn fragmented_tunnel_outer_packet_is_reassembled_then_peeled() {
        let payload = udp(50000, 2152, &[vec![0x30, 0xff, 0, 0, 0, 0, 0, 1], tcp4(&[b'q'; 60])].concat());
        let (a, b) = payload.split_at(48);
        let f1 = eth(0x0800, &ipv4([9, 9, 9, 1], [9, 9, 9, 2], 17, 3, 0x2000, a));
        let f2 = eth(0x0800, &ipv4([9, 9, 9, 1], [9, 9, 9, 2], 17, 3, 48 / 8, b));
        let mut d = Decoder::new(DecodeConfig::default());
        assert!(d.decode(at(1, &f1)).is_none());
        let v = d.decode(at(1, &f2)).unwrap();
        assert_eq!((tunnels(&v), tcp_of(&v).4), (vec![(TunnelKind::GTPU, 0)], &[b'q'; 60][..]));
    }

    #[test]
    fn fragment_timeout_runs_on_packet_time() {
        let mut d = Decoder::new(DecodeConfig::default());
        assert!(d.decode(at(100, &frag4(1, 0, true, &[0; 32]))).is_none());
        assert_eq!(d.fragment_usage().0, 1);
        // 29 s later the datagram is still waiting; 31 s later an unrelated packet sweeps it.
        assert!(d.decode(at(129, &eth(0x0806, &[0; 28]))).is_none());
        assert_eq!(d.fragment_usage().0, 1);
        assert!(d.decode(at(131, &eth(0x0806, &[0; 28]))).is_none());
        assert_eq!(d.fragment_usage(), (0, 0));
        assert_eq!(d.stats().fragments.timed_out, 1);
        // The late sibling now starts a new, incomplete datagram.
        assert!(d.decode(at(131, &frag4(1, 32, false, &[0; 8]))).is_none());
    }

    #[test]
    fn truncated_fragment_is_not_reassembled() {
        let f = frag4(1, 0, true, &[0; 64]);
        let mut d = Decoder::new(DecodeConfig::default());
        let pkt = RawPacket { orig_len: f.len() as u32, ..at(1, &f[..f.len() - 10]) };
        assert!(d.decode(pkt).is_none());
        assert_eq!(d.stats().errors.truncated_fragment, 1);
        assert_eq!(d.fragment_usage().0, 0);
    }

    #[test]
    fn vlan_stack_depth_and_overflow() {
        let mut p = tcp4(b"");
        let mut et = 0x0800;
        for id in (1..=6).rev() {
            p = vlan(id, et, &p);
            et = 0x8100;
        }
        let f = eth(0x88A8, &p);
        let mut d = Decoder::new(DecodeConfig::default());
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(v.encap.vlans(), &[1, 2, 3, 4]);
        assert_eq!((d.stats().vlan_tags, d.stats().vlan_overflow), (6, 2));
        let mut d = Decoder::new(DecodeConfig { max_vlan_depth: 5, ..DecodeConfig::default() });
        assert!(d.decode(raw(LinkType::ETHERNET, &f)).is_none());
        assert_eq!(d.stats().errors.vlan_depth_exceeded, 1);
    }

    #[test]
    fn mpls_label_stack_then_ip_or_pseudowire() {
        let label = |bos: bool| [0x00, 0x01, 0x40 | bos as u8, 64];
        let mut d = Decoder::new(DecodeConfig::default());
        let f = eth(0x8847, &[&label(false)[..], &label(true), &tcp4(b"m")].concat());
        assert_eq!(tcp_of(&d.decode(raw(LinkType::ETHERNET, &f)).unwrap()).4, b"m");
        // Ethernet pseudowire with a control word.
        let f = eth(0x8847, &[&label(true)[..], &[0; 4], &eth(0x0800, &tcp4(b"pw"))].concat());
        assert_eq!(tcp_of(&d.decode(raw(LinkType::ETHERNET, &f)).unwrap()).4, b"pw");
        // Never a bottom of stack.
        let f = eth(0x8847, &label(false).repeat(20));
        assert!(d.decode(raw(LinkType::ETHERNET, &f)).is_none());
        assert_eq!(d.stats().errors.mpls_depth_exceeded, 1);
        // Pseudowires nested without end are cut.
        let mut p = tcp4(b"");
        for _ in 0..10 {
            p = eth(0x8847, &[&label(true)[..], &[0; 4], &p].concat());
        }
        assert!(d.decode(raw(LinkType::ETHERNET, &p)).is_none());
    }

    #[test]
    fn pppoe_session() {
        let f = eth(0x8864, &[&[0x11, 0, 0, 1, 0, 40, 0x00, 0x21][..], &tcp4(b"p")].concat());
        let mut d = Decoder::new(DecodeConfig::default());
        assert_eq!(tcp_of(&d.decode(raw(LinkType::ETHERNET, &f)).unwrap()).4, b"p");
        assert_eq!(d.stats().pppoe, 1);
        let lcp = eth(0x8864, &[0x11, 0, 0, 1, 0, 4, 0xc0, 0x21, 1, 1]);
        assert!(d.decode(raw(LinkType::ETHERNET, &lcp)).is_none());
    }

    #[test]
    fn link_types() {
        let ip4 = tcp4(b"L");
        let ip6 = ipv6(1, 2, 6, &tcp(1, 80, 0, 0x18, b"L"));
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip4);
        let mut sll2 = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
        sll2.extend_from_slice(&ip6);
        let cases: Vec<(LinkType, Vec<u8>)> = vec![
            (LinkType::RAW, ip4.clone()),
            (LinkType::IPV6, ip6.clone()),
            (LinkType::LINUX_SLL, sll),
            (LinkType::LINUX_SLL2, sll2),
            (LinkType::NULL, [&2u32.to_le_bytes()[..], &ip4].concat()),
            (LinkType::NULL, [&30u32.to_be_bytes()[..], &ip6].concat()),
            (LinkType::LOOP, [&24u32.to_be_bytes()[..], &ip6].concat()),
            (LinkType::PPP, [&[0xff, 0x03, 0x00, 0x21][..], &ip4].concat()),
            (LinkType::PPP, [&[0x57][..], &ip6].concat()),
            (LinkType::PPP_HDLC, [&[0xff, 0x03, 0x00, 0x57][..], &ip6].concat()),
            (LinkType::C_HDLC, [&[0x0f, 0x00, 0x08, 0x00][..], &ip4].concat()),
            (LinkType::ETHERNET, [&eth(60, &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00])[..], &ip4].concat()),
        ];
        for (lt, data) in cases {
            let mut d = Decoder::new(DecodeConfig::default());
            let got = d.decode(raw(lt, &data)).map(|v| tcp_of(&v).4.to_vec());
            assert_eq!(got.as_deref(), Some(&b"L"[..]), "{lt:?}: {:?}", d.stats().errors);
        }
    }

    #[test]
    fn nflog_payload_tlv() {
        let tlv = |t: u16, v: &[u8]| {
            let mut x = ((4 + v.len()) as u16).to_le_bytes().to_vec();
            x.extend_from_slice(&t.to_le_bytes());
            x.extend_from_slice(v);
            x.resize((x.len() + 3) & !3, 0);
            x
        };
        let ip4 = tcp4(b"nf");
        let f = [&[2u8, 0, 0, 1][..], &tlv(1, &[8, 0, 1, 0]), &tlv(10, b"pfx"), &tlv(9, &ip4)].concat();
        let mut d = Decoder::new(DecodeConfig::default());
        assert_eq!(tcp_of(&d.decode(raw(LinkType::NFLOG, &f)).unwrap()).4, b"nf");
        let no_payload = [&[2u8, 0, 0, 1][..], &tlv(1, &[8, 0, 1, 0])].concat();
        assert!(d.decode(raw(LinkType::NFLOG, &no_payload)).is_none());
    }

    #[test]
    fn wifi_data_frames() {
        let mut qos_data = vec![0x88, 0x01, 0, 0];
        qos_data.extend_from_slice(&[0; 18]);
        qos_data.extend_from_slice(&[0, 0]); // sequence control
        qos_data.extend_from_slice(&[0, 0]); // QoS control
        qos_data.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        qos_data.extend_from_slice(&tcp4(b"w"));
        let mut d = Decoder::new(DecodeConfig::default());
        assert_eq!(tcp_of(&d.decode(raw(LinkType::IEEE802_11, &qos_data)).unwrap()).4, b"w");
        let radiotap = [&[0u8, 0, 8, 0, 0, 0, 0, 0][..], &qos_data].concat();
        assert_eq!(tcp_of(&d.decode(raw(LinkType::IEEE802_11_RADIOTAP, &radiotap)).unwrap()).4, b"w");
        let mut protected = qos_data.clone();
        protected[1] |= 0x40;
        assert!(d.decode(raw(LinkType::IEEE802_11, &protected)).is_none());
        let beacon = [0x80u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(d.decode(raw(LinkType::IEEE802_11, &beacon)).is_none());
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> TCP.
        let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&tcp(5, 80, 0, 0x18, b"ext"));
        let f = eth(0x86DD, &ipv6(1, 2, 0, &ext));
        let mut d = Decoder::new(DecodeConfig::default());
        let v = d.decode(raw(LinkType::ETHERNET, &f)).unwrap();
        let Transport::Tcp { payload, wire_payload_len, .. } = v.transport else { panic!() };
        assert_eq!((payload, wire_payload_len), (&b"ext"[..], 3));
        // ESP: opaque.
        let f = eth(0x86DD, &ipv6(1, 2, 50, &[0; 16]));
        assert_eq!(d.decode(raw(LinkType::ETHERNET, &f)).unwrap().transport, Transport::Other { proto: 50 });
        // A header running past the packet.
        let f = eth(0x86DD, &ipv6(1, 2, 0, &[6, 9, 0, 0, 0, 0, 0, 0]));
        assert!(d.decode(raw(LinkType::ETHERNET, &f)).is_none());
        assert_eq!(d.stats().errors.bad_ipv6_ext, 1);
    }

    const ALL_LINKTYPES: [LinkType; 17] = [
        LinkType::NULL,
        LinkType::ETHERNET,
        LinkType::PPP,
        LinkType::RAW_OPENBSD,
        LinkType::RAW_DLT,
        LinkType::PPP_HDLC,
        LinkType::PPP_ETHER,
        LinkType::RAW,
        LinkType::C_HDLC,
        LinkType::IEEE802_11,
        LinkType::LOOP,
        LinkType::LINUX_SLL,
        LinkType::IEEE802_11_RADIOTAP,
        LinkType::NFLOG,
        LinkType::IPV4,
        LinkType::IPV6,
        LinkType::LINUX_SLL2,
    ];

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256), lt in 0usize..17) {
            let mut d = Decoder::new(DecodeConfig::default());
            let _ = d.decode(raw(ALL_LINKTYPES[lt], &data));
        }

        /// Random bytes behind valid headers reach the deeper parsers (tunnels, ext headers, fragments).
        #[test]
        fn arbitrary_payloads_behind_valid_headers_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            proto in prop_oneof![Just(4u8), Just(6), Just(17), Just(41), Just(47), Just(0), Just(44)],
            dport in prop_oneof![Just(4789u16), Just(6081), Just(2152), Just(3544), Just(4754), Just(5072)],
            frag in any::<u16>(),
        ) {
            let mut d = Decoder::new(DecodeConfig::default());
            let inner = if proto == 17 { udp(1, dport, &body) } else { body.clone() };
            let f4 = eth(0x0800, &ipv4([1, 1, 1, 1], [2, 2, 2, 2], proto, 1, frag, &inner));
            let _ = d.decode(raw(LinkType::ETHERNET, &f4));
            let f6 = eth(0x86DD, &ipv6(1, 2, proto, &inner));
            let _ = d.decode(raw(LinkType::ETHERNET, &f6));
            for et in [0x8100u16, 0x8847, 0x8864, 0x894F, 0x8909] {
                let _ = d.decode(raw(LinkType::ETHERNET, &eth(et, &body)));
            }
        }
    }
}
