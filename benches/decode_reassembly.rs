//! Decode + flow table + TCP reassembly (+ HTTP framing) throughput on a generated REST API capture.
//!
//!     cargo bench --bench decode_reassembly
//!
//! Criterion reports bytes/s: multiply by 8 for bit/s. Inputs are generated in memory once, outside the
//! timed loop, so the bench needs nothing from outside the repo.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirador::capture::{LinkType, RawPacket};
use mirador::decode::{DecodeConfig, Decoder};
use mirador::flow::table::{FlowOutput, FlowRecord};
use mirador::http::Transaction;
use mirador::pipeline::{Sensor, SensorConfig};
use mirador::synth::{self, Wrap};

struct Null(u64);
impl FlowOutput for Null {
    fn flow_closed(&mut self, _rec: FlowRecord) {}
    fn transaction(&mut self, _tx: Transaction) {
        self.0 += 1;
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
