//! Hostile captures: traffic shaped to grow one table of the sensor without bound (a SYN flood, connections
//! that never finish their request head, streams with a hole that never fills, IP fragments that never
//! complete, a decompression bomb). Deterministic for a given size and written packet by packet in time order,
//! so a ten-million-packet capture costs no memory to produce. Used by `examples/gen-hostile.rs`, the
//! integration test `tests/hostile.rs` and `benches/hostile.sh`.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::capture::{LinkType, Timestamp};
use crate::reassembly::Dir;
use crate::synth::{PcapWriter, Rng, Segment, TcpConv, http_request};

/// The kinds of hostile capture, by the table each one grows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `n` SYNs from random sources to one server, none answered: embryonic flows.
    SynFlood,
    /// `n` connections, each sending ~1.2 KB of a request head that never ends: pending heads.
    PendingHeads,
    /// `n` connections, each sending 200 segments after a first segment the capture never sees: reassembly
    /// holes holding everything after them.
    MissingFirst,
    /// `n` first fragments of IPv4 datagrams whose other fragments never come: the fragment table.
    Fragments,
    /// One chunked, gzip-encoded response that inflates to `n` MiB of zeros: the decompressor.
    GzipBomb,
}

impl Kind {
    pub const ALL: [Kind; 5] =
        [Kind::SynFlood, Kind::PendingHeads, Kind::MissingFirst, Kind::Fragments, Kind::GzipBomb];

    pub fn name(self) -> &'static str {
        match self {
            Kind::SynFlood => "syn-flood",
            Kind::PendingHeads => "pending-heads",
            Kind::MissingFirst => "missing-first",
            Kind::Fragments => "fragments",
            Kind::GzipBomb => "gzip-bomb",
        }
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The size of the table for each kind (the 10 M SYN version is `SynFlood` at 10,000,000).
    pub fn full_size(self) -> u64 {
        match self {
            Kind::SynFlood => 1_000_000,
            Kind::PendingHeads => 200_000,
            Kind::MissingFirst => 2_000,
            Kind::Fragments => 500_000,
            Kind::GzipBomb => 256,
        }
    }
}

/// Segments per connection in [`Kind::MissingFirst`] (after the missing one).
pub const MISSING_FIRST_SEGMENTS: u32 = 200;
const SEGMENT_BYTES: usize = 1000;
const START: Timestamp = Timestamp::from_secs(1_767_225_600);
const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 80), 80);

/// Writes capture `kind` of size `n` (see [`Kind`]) as a pcap to `w`; returns the number of packets.
pub fn write<W: Write>(kind: Kind, n: u64, w: W) -> std::io::Result<u64> {
    let mut out = Out { w: PcapWriter::new(w, LinkType::ETHERNET)?, packets: 0 };
    let mut rng = Rng(0x4d69_7261_646f_7221 ^ n);
    match kind {
        Kind::SynFlood => syn_flood(&mut out, &mut rng, n)?,
        Kind::PendingHeads => pending_heads(&mut out, &mut rng, n)?,
        Kind::MissingFirst => missing_first(&mut out, &mut rng, n)?,
        Kind::Fragments => fragments(&mut out, &mut rng, n)?,
        Kind::GzipBomb => gzip_bomb(&mut out, n)?,
    }
    out.w.into_inner().flush()?;
    Ok(out.packets)
}

struct Out<W: Write> {
    w: PcapWriter<W>,
    packets: u64,
}

impl<W: Write> Out<W> {
    fn put(&mut self, ts: Timestamp, frame: &[u8]) -> std::io::Result<()> {
        self.packets += 1;
        self.w.write_packet(ts, frame)
    }

    /// Writes the conversation's segments from index `from` on.
    fn conv(&mut self, c: &TcpConv, from: usize) -> std::io::Result<()> {
        for s in c.segments.get(from..).unwrap_or(&[]) {
            self.put(s.ts, &c.frame(s))?;
        }
        Ok(())
    }
}

/// A client address outside the server's: 10.0.0.0/8 and a port from the ephemeral range.
fn random_client(rng: &mut Rng) -> SocketAddr {
    let ip = 0x0a00_0000 | (rng.next_u64() as u32 & 0x00ff_ffff);
    let port = 1024 + rng.below(64_000) as u16;
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

/// The i-th of many distinct clients (distinct 5-tuples, so each is its own flow).
fn nth_client(i: u64) -> SocketAddr {
    let ip = 0x0a00_0000 | ((i / 50_000) as u32 & 0x00ff_ffff);
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), 10_000 + (i % 50_000) as u16))
}

fn syn_flood<W: Write>(out: &mut Out<W>, rng: &mut Rng, n: u64) -> std::io::Result<()> {
    // One SYN a microsecond: 1 M SYNs span one second, faster than any timeout can drain them.
    for i in 0..n {
        let c = TcpConv::new(random_client(rng), SocketAddr::V4(SERVER), START);
        let seg = Segment {
            ts: Timestamp(START.0 + i * 1_000),
            dir: Dir::ToServer,
            seq: rng.next_u64() as u32,
            ack: 0,
            syn: true,
            fin: false,
            rst: false,
            payload: Vec::new(),
        };
        out.put(seg.ts, &c.frame(&seg))?;
    }
    Ok(())
}

/// A request head of about 1.2 KB with no blank line at its end.
fn unfinished_head(rng: &mut Rng, i: u64) -> Vec<u8> {
    let cookie: String = (0..1000).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
    let mut h = http_request("GET", &format!("/items/{i}"), "shop.example", &[("Cookie", &cookie)], b"");
    // Drop the final CRLF: the head never ends.
    h.truncate(h.len() - 2);
    h
}

fn pending_heads<W: Write>(out: &mut Out<W>, rng: &mut Rng, n: u64) -> std::io::Result<()> {
    for i in 0..n {
        let mut c = TcpConv::new(nth_client(i), SocketAddr::V4(SERVER), Timestamp(START.0 + i * 20_000));
        c.step_ns = 1_000;
        c.handshake();
        let head = unfinished_head(rng, i);
        c.send(Dir::ToServer, &head);
        out.conv(&c, 0)?;
    }
    Ok(())
}

fn missing_first<W: Write>(out: &mut Out<W>, rng: &mut Rng, n: u64) -> std::io::Result<()> {
    // Connections are opened first, then their segments are sent round-robin so that every hole is open at
    // once; the server never acknowledges, so nothing reveals the hole before the end.
    let mut convs = Vec::with_capacity(n as usize);
    let mut t = START.0;
    for i in 0..n {
        let mut c = TcpConv::new(nth_client(i), SocketAddr::V4(SERVER), Timestamp(t));
        c.step_ns = 1_000;
        c.handshake();
        out.conv(&c, 0)?;
        t += 10_000;
        convs.push(c);
    }
    let mut payload = vec![0u8; SEGMENT_BYTES];
    for k in 0..=MISSING_FIRST_SEGMENTS {
        for c in convs.iter_mut() {
            for b in payload.iter_mut() {
                *b = b'a' + rng.below(26) as u8;
            }
            let seq = c.segments[2].seq.wrapping_add(k * SEGMENT_BYTES as u32);
            t += 1_000;
            let seg = Segment {
                ts: Timestamp(t),
                dir: Dir::ToServer,
                seq,
                ack: c.segments[1].seq.wrapping_add(1),
                syn: false,
                fin: false,
                rst: false,
                payload: payload.clone(),
            };
            // Segment 0 is the one the capture missed.
            if k > 0 {
                out.put(seg.ts, &c.frame(&seg))?;
            }
        }
    }
    Ok(())
}

/// An Ethernet/IPv4 frame carrying the first fragment (more-fragments set, offset 0) of a UDP datagram.
fn first_fragment(src: Ipv4Addr, dst: Ipv4Addr, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 20 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    let total = (20 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = 0x20; // more fragments, offset 0
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    f
}

fn fragments<W: Write>(out: &mut Out<W>, rng: &mut Rng, n: u64) -> std::io::Result<()> {
    // 1,200 bytes of a datagram (a multiple of 8, as a first fragment must be): UDP header, then data.
    let mut payload = vec![0u8; 1200];
    for i in 0..n {
        let src = Ipv4Addr::from(0x0a00_0000 | (rng.next_u64() as u32 & 0x00ff_ffff));
        payload[0..2].copy_from_slice(&(1024 + (i % 60_000) as u16).to_be_bytes());
        payload[2..4].copy_from_slice(&53u16.to_be_bytes());
        payload[4..6].copy_from_slice(&4000u16.to_be_bytes());
        for b in payload[8..].iter_mut().step_by(97) {
            *b = rng.next_u64() as u8;
        }
        let frame = first_fragment(src, *SERVER.ip(), i as u16, &payload);
        out.put(Timestamp(START.0 + i * 2_000), &frame)?;
    }
    Ok(())
}

fn gzip_bomb<W: Write>(out: &mut Out<W>, mib: u64) -> std::io::Result<()> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        gz.write_all(&zeros)?;
    }
    let body = gz.finish()?;
    let mut c = TcpConv::new(nth_client(1), SocketAddr::V4(SERVER), START);
    c.handshake();
    c.send(Dir::ToServer, &http_request("GET", "/export", "shop.example", &[("Accept-Encoding", "gzip")], b""));
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n\
                     Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for chunk in body.chunks(8192) {
        resp.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        resp.extend_from_slice(chunk);
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"0\r\n\r\n");
    c.send(Dir::ToClient, &resp);
    c.close();
    out.conv(&c, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        for k in Kind::ALL {
            let n = if k == Kind::GzipBomb { 1 } else { 10 };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let pa = write(k, n, &mut a).unwrap();
            write(k, n, &mut b).unwrap();
            assert_eq!(a, b, "{}", k.name());
            assert!(pa >= n.min(10), "{}: {pa} packets", k.name());
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
    }
}
