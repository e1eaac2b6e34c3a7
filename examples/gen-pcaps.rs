//! Writes the project's sample captures to `pcaps/` (deterministic: the same bytes on every run).
//!
//!     cargo run --example gen-pcaps [-- OUT_DIR]

use std::net::SocketAddr;
use std::path::PathBuf;

use mirador::capture::Timestamp;
use mirador::reassembly::Dir;
use mirador::synth::{self, TcpConv, Wrap};

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "pcaps".into()));
    std::fs::create_dir_all(&dir)?;

    // The demo: REST APIs seen on a plain SPAN port, with an attacker (see `synth::demo_traffic`).
    let mut demo = synth::demo_traffic(synth::DEMO_SEED);
    synth::write_pcap(&dir.join("demo.pcap"), &mut demo)?;

    // The same 5-tuple in two VXLAN tenants (VNI 7 and 9): two flows, not one.
    let mut frames = Vec::new();
    for vni in [7, 9] {
        frames.extend(one_exchange(Wrap::Vxlan { vni }, vni as u64));
    }
    synth::write_pcap(&dir.join("vxlan-two-tenants.pcap"), &mut frames)?;

    // 802.1Q-tagged traffic.
    let mut frames = one_exchange(Wrap::Vlan(100), 3);
    synth::write_pcap(&dir.join("vlan.pcap"), &mut frames)?;

    // Reassembly edge cases on one connection: the second request's segments arrive reversed and
    // duplicated, and one response segment is missing (a 1448-byte gap the ACKs reveal).
    let mut conv = conv(Wrap::None, 4);
    conv.handshake();
    let req = synth::http_request("GET", "/big", "edge.example", &[], b"");
    conv.send(Dir::ToServer, &req);
    let body = vec![b'x'; 5000];
    conv.send(Dir::ToClient, &synth::http_response(200, "OK", &[], &body));
    let mark = conv.segments.len();
    conv.send(Dir::ToServer, &synth::http_request("POST", "/upload", "edge.example", &[], &vec![b'y'; 4000]));
    let tail: Vec<_> = conv.segments.split_off(mark);
    let times: Vec<_> = tail.iter().map(|s| s.ts).collect();
    // Data segments reversed, the last one duplicated, then the ACKs: captured in that order.
    let (mut data, acks): (Vec<_>, Vec<_>) = tail.into_iter().partition(|s| !s.payload.is_empty());
    data.reverse();
    let dup = data.first().cloned();
    let mut reordered: Vec<_> = data.into_iter().chain(dup).chain(acks).collect();
    for (i, s) in reordered.iter_mut().enumerate() {
        s.ts = Timestamp(times[0].0 + i as u64 * 10_000);
    }
    conv.segments.extend(reordered);
    conv.send(Dir::ToClient, &synth::http_response(201, "Created", &[], b"{}"));
    conv.close();
    let mut frames = conv.frames();
    // Drop the second data segment of the first response.
    let lost = conv
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.dir == Dir::ToClient && !s.payload.is_empty())
        .nth(1)
        .map(|(i, _)| i);
    if let Some(i) = lost {
        frames.remove(i);
    }
    synth::write_pcap(&dir.join("reorder-gap.pcap"), &mut frames)?;

    println!("wrote sample captures to {}", dir.display());
    Ok(())
}

fn conv(wrap: Wrap, n: u64) -> TcpConv {
    let client: SocketAddr = "192.0.2.10:51000".parse().unwrap();
    let server: SocketAddr = "198.51.100.20:80".parse().unwrap();
    let mut c = TcpConv::new(client, server, Timestamp::from_secs(1_767_225_600 + n));
    c.wrap = wrap;
    c
}

fn one_exchange(wrap: Wrap, n: u64) -> Vec<(Timestamp, Vec<u8>)> {
    let mut c = conv(wrap, n);
    c.handshake();
    c.send(Dir::ToServer, &synth::http_request("GET", &format!("/tenant/{n}"), "svc.example", &[], b""));
    c.send(Dir::ToClient, &synth::http_response(200, "OK", &[("Content-Type", "text/plain")], b"hello"));
    c.close();
    c.frames()
}
