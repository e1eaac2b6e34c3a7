//! Detection throughput (transactions/s) of the `detect` analyzer on the demo capture's transactions, next
//! to the capture-to-transaction pipeline on the same capture, so the two rates can be compared.
//!
//!     cargo bench --bench detect
//!
//! The demo capture (`mirador::synth::demo_traffic`) is built in memory and parsed once outside the timed
//! loops.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirador::analyzer::{Record, TxContext};
use mirador::capture::{LinkType, RawPacket};
use mirador::detect::{Engine, Settings};
use mirador::flow::table::{FlowOutput, FlowRecord};
use mirador::http::Transaction;
use mirador::pipeline::{Sensor, SensorConfig};
use mirador::synth::{DEMO_SEED, demo_traffic};

#[derive(Default)]
struct Collect(Vec<Arc<Transaction>>);
impl FlowOutput for Collect {
    fn flow_closed(&mut self, _rec: FlowRecord) {}
    fn transaction(&mut self, tx: Transaction) {
        self.0.push(Arc::new(tx));
    }
}

fn parse(frames: &[(mirador::capture::Timestamp, Vec<u8>)]) -> Vec<Arc<Transaction>> {
    let mut s = Sensor::new(SensorConfig::default());
    let mut out = Collect::default();
    for (ts, f) in frames {
        let pkt = RawPacket { ts: *ts, linktype: LinkType::ETHERNET, data: f, orig_len: f.len() as u32 };
        s.process(pkt, &mut out);
    }
    s.finish(&mut out);
    out.0
}

fn bench(c: &mut Criterion) {
    let frames = demo_traffic(DEMO_SEED);
    let txs = parse(&frames);
    let mut g = c.benchmark_group("demo");
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.sample_size(20);
    g.bench_function("pipeline_to_transactions", |b| b.iter(|| parse(&frames).len()));
    // One engine for the whole run, as in the sensor: its regexes' lazy DFAs warm up once. Learned state
    // (windows, baselines) carries over between iterations; pending alerts are flushed each time.
    let engine = Engine::new(&Settings::default()).expect("default detection settings");
    g.bench_function("detect", |b| {
        b.iter(|| {
            let mut out: Vec<Record> = Vec::new();
            let ctx = TxContext::default();
            for tx in &txs {
                engine.process(tx, &ctx, &mut out);
            }
            engine.flush(&mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
