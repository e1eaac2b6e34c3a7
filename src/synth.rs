//! Synthetic captures: TCP conversations as real frames (Ethernet, optional VLAN or VXLAN, IPv4/IPv6, TCP
//! with correct checksums) written as pcap. Used by the sample generator (`examples/gen-pcaps.rs`), the tests
//! and the benches, so none of them needs a capture from elsewhere.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

use crate::capture::{LinkType, Timestamp};
use crate::reassembly::Dir;

/// Writes a classic pcap file with nanosecond timestamps.
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut w: W, linktype: LinkType) -> std::io::Result<Self> {
        w.write_all(&0xa1b2_3c4du32.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&0i32.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&262_144u32.to_le_bytes())?;
        w.write_all(&linktype.0.to_le_bytes())?;
        Ok(PcapWriter { w })
    }

    pub fn write_packet(&mut self, ts: Timestamp, data: &[u8]) -> std::io::Result<()> {
        let secs = (ts.0 / 1_000_000_000) as u32;
        let nanos = (ts.0 % 1_000_000_000) as u32;
        self.w.write_all(&secs.to_le_bytes())?;
        self.w.write_all(&nanos.to_le_bytes())?;
        self.w.write_all(&(data.len() as u32).to_le_bytes())?;
        self.w.write_all(&(data.len() as u32).to_le_bytes())?;
        self.w.write_all(data)
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// How frames are wrapped on the capture link.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Wrap {
    #[default]
    None,
    Vlan(u16),
    /// VXLAN (UDP 4789) between two tunnel endpoints, as AWS and Azure traffic mirroring deliver it.
    Vxlan {
        vni: u32,
    },
}

/// A TCP segment of a conversation, before it is turned into a frame.
#[derive(Clone, Debug)]
pub struct Segment {
    pub ts: Timestamp,
    pub dir: Dir,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: Vec<u8>,
}

/// Builds one TCP connection segment by segment; `frames()` renders them.
#[derive(Clone, Debug)]
pub struct TcpConv {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub wrap: Wrap,
    pub mss: usize,
    /// Time between consecutive segments.
    pub step_ns: u64,
    ts: Timestamp,
    next_seq: [u32; 2],
    pub segments: Vec<Segment>,
}

impl TcpConv {
    pub fn new(client: SocketAddr, server: SocketAddr, start: Timestamp) -> Self {
        // Deterministic ISNs that differ per connection (and cross 2^32 for some ports).
        let isn_c = (u32::from(client.port())).wrapping_mul(2_654_435_761);
        let isn_s = (u32::from(server.port()) ^ u32::from(client.port())).wrapping_mul(40_503).wrapping_add(7);
        TcpConv {
            client,
            server,
            wrap: Wrap::None,
            mss: 1448,
            step_ns: 50_000,
            ts: start,
            next_seq: [isn_c, isn_s],
            segments: Vec::new(),
        }
    }

    pub fn with_isn(mut self, client: u32, server: u32) -> Self {
        self.next_seq = [client, server];
        self
    }

    fn tick(&mut self) -> Timestamp {
        self.ts = Timestamp(self.ts.0 + self.step_ns);
        self.ts
    }

    pub fn now(&self) -> Timestamp {
        self.ts
    }

    /// Advances the conversation clock (think time between requests).
    pub fn wait(&mut self, ns: u64) {
        self.ts = Timestamp(self.ts.0 + ns);
    }

    fn push(&mut self, dir: Dir, syn: bool, fin: bool, rst: bool, payload: &[u8]) {
        let ts = self.tick();
        let i = dir.idx();
        let seq = self.next_seq[i];
        let ack = self.next_seq[1 - i];
        self.segments.push(Segment { ts, dir, seq, ack, syn, fin, rst, payload: payload.to_vec() });
        let adv = payload.len() as u32 + u32::from(syn) + u32::from(fin);
        self.next_seq[i] = seq.wrapping_add(adv);
    }

    pub fn handshake(&mut self) -> &mut Self {
        self.push(Dir::ToServer, true, false, false, b"");
        self.push(Dir::ToClient, true, false, false, b"");
        self.push(Dir::ToServer, false, false, false, b"");
        self
    }

    /// Sends `data` in MSS-sized segments, each acknowledged by the peer.
    pub fn send(&mut self, dir: Dir, data: &[u8]) -> &mut Self {
        for chunk in data.chunks(self.mss.max(1)) {
            self.push(dir, false, false, false, chunk);
            self.push(dir.other(), false, false, false, b"");
        }
        self
    }

    /// Orderly close: FIN from the client, FIN from the server, final ACK.
    pub fn close(&mut self) -> &mut Self {
        self.push(Dir::ToServer, false, true, false, b"");
        self.push(Dir::ToClient, false, true, false, b"");
        self.push(Dir::ToServer, false, false, false, b"");
        self
    }

    pub fn reset(&mut self, dir: Dir) -> &mut Self {
        self.push(dir, false, false, true, b"");
        self
    }

    /// Renders every segment as a link-layer frame (Ethernet, wrapped as configured).
    pub fn frames(&self) -> Vec<(Timestamp, Vec<u8>)> {
        self.segments.iter().map(|s| (s.ts, self.frame(s))).collect()
    }

    pub fn frame(&self, s: &Segment) -> Vec<u8> {
        let (src, dst) = match s.dir {
            Dir::ToServer => (self.client, self.server),
            Dir::ToClient => (self.server, self.client),
        };
        let inner = tcp_frame(src, dst, self.wrap, s);
        match self.wrap {
            Wrap::Vxlan { vni } => vxlan_wrap(vni, &inner),
            _ => inner,
        }
    }
}

const MAC_CLIENT: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MAC_SERVER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn tcp_frame(src: SocketAddr, dst: SocketAddr, wrap: Wrap, s: &Segment) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_CLIENT, MAC_SERVER);
    let ip = match (src.ip(), dst.ip(), wrap) {
        (IpAddr::V4(a), IpAddr::V4(b), Wrap::Vlan(id)) => eth
            .single_vlan(etherparse::VlanId::try_new(id & 0x0fff).unwrap_or_default())
            .ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V4(a), IpAddr::V4(b), _) => eth.ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b), Wrap::Vlan(id)) => eth
            .single_vlan(etherparse::VlanId::try_new(id & 0x0fff).unwrap_or_default())
            .ipv6(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b), _) => eth.ipv6(a.octets(), b.octets(), 64),
        // Mixed families cannot form a packet; callers never do this.
        _ => return Vec::new(),
    };
    let mut tcp = ip.tcp(src.port(), dst.port(), s.seq, 64_240);
    if !(s.syn && s.dir == Dir::ToServer) {
        tcp = tcp.ack(s.ack);
    }
    if s.syn {
        tcp = tcp.syn();
    }
    if s.fin {
        tcp = tcp.fin();
    }
    if s.rst {
        tcp = tcp.rst();
    }
    if !s.payload.is_empty() {
        tcp = tcp.psh();
    }
    let mut out = Vec::with_capacity(tcp.size(s.payload.len()));
    // Writing into a Vec cannot fail; a builder error would mean a payload over 64 KiB, which `send` prevents.
    let _ = tcp.write(&mut out, &s.payload);
    out
}

fn vxlan_wrap(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(inner.len() + 8);
    payload.extend_from_slice(&[0x08, 0, 0, 0]);
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    let b = PacketBuilder::ethernet2([0x02, 0, 0, 0, 0xaa, 1], [0x02, 0, 0, 0, 0xaa, 2])
        .ipv4([172, 31, 0, 10], [172, 31, 0, 20], 64)
        .udp(49_152 + (vni % 1000) as u16, 4789);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    let _ = b.write(&mut out, &payload);
    out
}

/// Writes frames to a pcap file in `ts` order.
pub fn write_pcap(path: &std::path::Path, frames: &mut [(Timestamp, Vec<u8>)]) -> std::io::Result<()> {
    frames.sort_by_key(|(ts, _)| *ts);
    let f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = PcapWriter::new(f, LinkType::ETHERNET)?;
    for (ts, data) in frames.iter() {
        w.write_packet(*ts, data)?;
    }
    w.into_inner().flush()
}

/// HTTP/1.1 request bytes.
pub fn http_request(method: &str, path: &str, host: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut v = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
    for (k, val) in headers {
        v.extend_from_slice(format!("{k}: {val}\r\n").as_bytes());
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        v.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(body);
    v
}

/// HTTP/1.1 response bytes with a Content-Length body.
pub fn http_response(status: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    for (k, val) in headers {
        v.extend_from_slice(format!("{k}: {val}\r\n").as_bytes());
    }
    v.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    v.extend_from_slice(body);
    v
}

/// Deterministic pseudo-random numbers for generators and tests (splitmix64; no dependency, same output on
/// every platform).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A REST API conversation between `clients` clients and a few services: keep-alive connections carrying
/// JSON requests and responses (ids in paths, personal-looking data, bearer tokens, some errors). Every
/// transaction is complete and framed by Content-Length, so a sensor must report exactly
/// `requests_per_conn * conns` transactions.
pub fn api_traffic(conns: usize, requests_per_conn: usize, seed: u64, wrap: Wrap) -> Vec<(Timestamp, Vec<u8>)> {
    const HOSTS: [&str; 3] = ["api.shop.example", "users.internal.example", "pay.shop.example"];
    let mut rng = Rng(seed);
    let mut frames = Vec::new();
    let start = Timestamp::from_secs(1_767_225_600);
    for c in 0..conns {
        let client =
            SocketAddr::new(IpAddr::from([10, 1, (c / 250) as u8, (c % 250) as u8 + 1]), 40_000 + (c % 20_000) as u16);
        let host_i = rng.below(HOSTS.len() as u64) as usize;
        let server = SocketAddr::new(IpAddr::from([10, 2, 0, host_i as u8 + 10]), 80);
        let mut conv = TcpConv::new(client, server, Timestamp(start.0 + c as u64 * 3_000_000));
        conv.wrap = wrap;
        conv.handshake();
        for _ in 0..requests_per_conn {
            let id = 1 + rng.below(5000);
            let token = format!("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLXtpZH0ifQ.{:016x}", rng.next_u64());
            let (req, resp) = match rng.below(5) {
                0 => {
                    let body = format!(
                        "{{\"id\":{id},\"name\":\"User {id}\",\"email\":\"user{id}@example.com\",\"phone\":\"+1-202-555-{:04}\",\"orders\":[{{\"id\":\"{:08x}-0000-4000-8000-{:012x}\",\"total\":{}.{:02}}}]}}",
                        id % 10_000,
                        rng.next_u64() as u32,
                        rng.next_u64() & 0xffff_ffff_ffff,
                        rng.below(900) + 10,
                        rng.below(100)
                    );
                    (
                        http_request(
                            "GET",
                            &format!("/api/v1/users/{id}"),
                            HOSTS[host_i],
                            &[("Authorization", &token), ("Accept", "application/json")],
                            b"",
                        ),
                        http_response(200, "OK", &[("Content-Type", "application/json")], body.as_bytes()),
                    )
                }
                1 => {
                    let body = format!(
                        "{{\"name\":\"New User\",\"email\":\"new{id}@example.org\",\"password\":\"s3cret-{id}\"}}"
                    );
                    (
                        http_request(
                            "POST",
                            "/api/v1/users",
                            HOSTS[host_i],
                            &[("Authorization", &token), ("Content-Type", "application/json")],
                            body.as_bytes(),
                        ),
                        http_response(
                            201,
                            "Created",
                            &[("Content-Type", "application/json"), ("Location", &format!("/api/v1/users/{id}"))],
                            format!("{{\"id\":{id}}}").as_bytes(),
                        ),
                    )
                }
                2 => {
                    let items: Vec<String> = (0..1 + rng.below(40))
                        .map(|i| {
                            format!(
                                "{{\"sku\":\"SKU-{i:05}\",\"price\":{}.99,\"name\":\"Product {i}\"}}",
                                rng.below(500)
                            )
                        })
                        .collect();
                    (
                        http_request(
                            "GET",
                            &format!("/api/v2/products?category=c{}&page={}", rng.below(20), rng.below(5)),
                            HOSTS[host_i],
                            &[("Accept", "application/json")],
                            b"",
                        ),
                        http_response(
                            200,
                            "OK",
                            &[("Content-Type", "application/json")],
                            format!("[{}]", items.join(",")).as_bytes(),
                        ),
                    )
                }
                3 => (
                    http_request(
                        "DELETE",
                        &format!(
                            "/api/v1/orders/{:08x}-1111-4222-8333-{:012x}",
                            rng.next_u64() as u32,
                            rng.next_u64() & 0xffff_ffff_ffff
                        ),
                        HOSTS[host_i],
                        &[("Authorization", &token)],
                        b"",
                    ),
                    http_response(
                        404,
                        "Not Found",
                        &[("Content-Type", "application/json")],
                        b"{\"error\":\"not found\"}",
                    ),
                ),
                _ => (
                    http_request("GET", "/api/v1/accounts/me", HOSTS[host_i], &[], b""),
                    http_response(
                        401,
                        "Unauthorized",
                        &[("WWW-Authenticate", "Bearer")],
                        b"{\"error\":\"unauthorized\"}",
                    ),
                ),
            };
            conv.send(Dir::ToServer, &req);
            conv.wait(200_000 + rng.below(800_000));
            conv.send(Dir::ToClient, &resp);
            conv.wait(1_000_000);
        }
        conv.close();
        frames.extend(conv.frames());
    }
    frames.sort_by_key(|(ts, _)| *ts);
    frames
}
