//! Decode + flow table + TCP reassembly (+ HTTP framing) throughput on a generated REST API capture.
//!
//!     cargo bench --bench decode_reassembly
//!
//! Criterion reports bytes/s: multiply by 8 for bit/s. Inputs are generated in memory once, outside the
//! timed loop, so the bench needs nothing from outside the repo.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirador::capture::Timestamp;
use mirador::capture::{LinkType, RawPacket};
use mirador::decode::{DecodeConfig, Decoder, Transport};
use mirador::flow::key::FlowKey;
use mirador::flow::table::{FlowOutput, FlowRecord};
use mirador::http::Transaction;
use mirador::pipeline::{Sensor, SensorConfig};
use mirador::reassembly::{Dir, MemBudget, ReassemblyConfig, StreamEvent, StreamSink, TcpConnection};
use mirador::synth::{self, Wrap};

struct Null(u64);
impl FlowOutput for Null {
    fn flow_closed(&mut self, _rec: FlowRecord) {}
    fn transaction(&mut self, _tx: Transaction) {
        self.0 += 1;
    }
}

struct Bytes(u64);
impl StreamSink for Bytes {
    fn on_stream(&mut self, _dir: Dir, _ts: Timestamp, ev: StreamEvent<'_>) {
        if let StreamEvent::Data(d) = ev {
            self.0 += d.len() as u64;
        }
    }
}

fn bench(c: &mut Criterion) {
    for (name, wrap) in [("plain", Wrap::None), ("vxlan", Wrap::Vxlan { vni: 42 })] {
        let frames = synth::api_traffic(400, 20, 7, wrap);
        let bytes: u64 = frames.iter().map(|(_, f)| f.len() as u64).sum();
        let mut g = c.benchmark_group(format!("api_traffic_{name}"));
        g.throughput(Throughput::Bytes(bytes));
        g.sample_size(20);
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut d = Decoder::new(DecodeConfig::default());
                let mut n = 0u64;
                for (ts, f) in &frames {
                    let pkt = RawPacket { ts: *ts, linktype: LinkType::ETHERNET, data: f, orig_len: f.len() as u32 };
                    if d.decode(pkt).is_some() {
                        n += 1;
                    }
                }
                n
            })
        });
        g.bench_function("decode_reassembly", |b| {
            b.iter(|| {
                let mut d = Decoder::new(DecodeConfig::default());
                let cfg = ReassemblyConfig::default();
                let mut budget = MemBudget::new(cfg.memcap_bytes);
                let mut conns: std::collections::HashMap<FlowKey, TcpConnection> = Default::default();
                let mut sink = Bytes(0);
                for (ts, f) in &frames {
                    let pkt = RawPacket { ts: *ts, linktype: LinkType::ETHERNET, data: f, orig_len: f.len() as u32 };
                    let Some(v) = d.decode(pkt) else { continue };
                    let Transport::Tcp { hdr, payload, wire_payload_len } = v.transport else { continue };
                    let (key, fwd) = FlowKey::of(&v, true);
                    // The generator's clients have the lower addresses: forward = client to server.
                    let dir = if fwd { Dir::ToServer } else { Dir::ToClient };
                    let conn = conns.entry(key).or_default();
                    conn.on_segment(&cfg, &mut budget, v.ts, dir, &hdr, payload, wire_payload_len, &mut sink);
                }
                for conn in conns.values_mut() {
                    conn.close(&cfg, &mut budget, Timestamp(u64::MAX / 2), &mut sink);
                }
                sink.0
            })
        });
        g.bench_function("decode_flow_reassembly_http", |b| {
            b.iter(|| {
                let mut s = Sensor::new(SensorConfig::default());
                let mut out = Null(0);
                for (ts, f) in &frames {
                    let pkt = RawPacket { ts: *ts, linktype: LinkType::ETHERNET, data: f, orig_len: f.len() as u32 };
                    s.process(pkt, &mut out);
                }
                s.finish(&mut out);
                out.0
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
