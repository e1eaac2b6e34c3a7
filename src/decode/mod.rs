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
//!
//! Link types: Ethernet (with 802.3 LLC/SNAP), Linux SLL/SLL2, raw IP, NULL/LOOP, PPP, PPP-in-HDLC, PPPoE,
//! Cisco HDLC, NFLOG, 802.11 data frames (plain or radiotap). Not decoded: ARP and other non-IP
//! ethertypes, encrypted 802.11, ESP payloads, IPv4 options content, GRE source routing.

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

#[derive(Clone, Debug)]
pub struct DecodeConfig {
    /// VLAN tags followed per frame; a deeper stack drops the packet (counted). Only `view::MAX_VLANS`
    /// ids are kept in the `Encap`.
    pub max_vlan_depth: usize,
    /// Tunnel layers peeled per packet (clamped to `view::MAX_TUNNELS`); one more drops the packet.
    pub max_tunnel_depth: usize,
    /// MPLS labels popped per stack.
    pub max_mpls_labels: usize,
    /// UDP destination ports carrying VXLAN (4789 IANA, 8472 Linux default).
    pub vxlan_ports: Vec<u16>,
    pub geneve_port: u16,
    /// Decode Teredo (UDP 3544).
    pub teredo: bool,
    /// Decode GTP-U G-PDUs on `gtpu_port` (either side).
    pub gtpu: bool,
    pub gtpu_port: u16,
    /// Use the GTP TEID as the tunnel id. Off by default: TEIDs differ per direction, so with them in the
    /// flow key a connection's two directions would never meet.
    pub gtpu_teid_as_id: bool,
    /// Decode GRE over UDP (RFC 8086, port 4754).
    pub gre_over_udp: bool,
    /// Decode AYIYA (UDP 5072).
    pub ayiya: bool,
    pub fragments: FragmentConfig,
    /// Packet time between opportunistic fragment timeout sweeps from `decode`.
    pub expire_interval: std::time::Duration,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_vlan_depth: 8,
            max_tunnel_depth: 4,
            max_mpls_labels: 8,
            vxlan_ports: vec![4789, 8472],
            geneve_port: 6081,
            teredo: true,
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
                    let buf = match table.insert(key, fi, ip.payload, pkt.ts, &mut stats.fragments) {
                        Outcome::Complete(buf) => buf,
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
            return Some(PacketView {
                ts: pkt.ts,
                encap,
                src: ip.src,
                dst: ip.dst,
                transport,
                wire_len: pkt.orig_len,
                truncated,
            });
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
