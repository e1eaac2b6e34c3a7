//! Inventory analyzer throughput (transactions/s) on realistic transactions: the demo capture's REST API
//! conversation (`mirador::synth::demo_traffic`: four services, JSON bodies, auth headers, attacks),
//! decoded and framed once outside the timed loop.
//!
//!     cargo bench --bench inventory
//!
//! `learn` runs the analyzer the way a worker does (service key, templating, parameters, body schemas,
//! per-operation statistics) on an inventory that already knows the API (the steady state); `learn_cold`
//! starts from an empty inventory every iteration; `openapi` renders every service's document.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirador::analyzer::TxContext;
use mirador::capture::{LinkType, RawPacket};
use mirador::flow::table::{FlowOutput, FlowRecord};
use mirador::http::Transaction;
use mirador::inventory::{Inventory, Settings};
use mirador::pipeline::{Sensor, SensorConfig};

struct Collect(Vec<Arc<Transaction>>);
impl FlowOutput for Collect {
    fn flow_closed(&mut self, _rec: FlowRecord) {}
    fn transaction(&mut self, tx: Transaction) {
        self.0.push(Arc::new(tx));
    }
}

fn transactions() -> Vec<Arc<Transaction>> {
    let frames = mirador::synth::demo_traffic(mirador::synth::DEMO_SEED);
    let mut sensor = Sensor::new(SensorConfig::default());
    let mut out = Collect(Vec::new());
    for (ts, f) in &frames {
        sensor
            .process(RawPacket { ts: *ts, linktype: LinkType::ETHERNET, data: f, orig_len: f.len() as u32 }, &mut out);
    }
    sensor.finish(&mut out);
    out.0
}

fn run(inv: &Inventory, txs: &[Arc<Transaction>]) -> usize {
    let mut ctx = TxContext::default();
    let mut out = Vec::new();
    let mut n = 0;
    for tx in txs {
        ctx.clear();
        out.clear();
        inv.learn(tx, &mut ctx, &mut out);
        n += usize::from(ctx.endpoint.is_some());
    }
    n
}

fn bench(c: &mut Criterion) {
    let txs = transactions();
    assert!(txs.len() > 300, "{} transactions", txs.len());
    let mut g = c.benchmark_group("inventory");
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.sample_size(30);
    let warm = Inventory::new(&Settings::default()).unwrap();
    run(&warm, &txs);
    g.bench_function("learn", |b| b.iter(|| run(&warm, &txs)));
    g.bench_function("learn_cold", |b| {
        b.iter(|| {
            let inv = Inventory::new(&Settings::default()).unwrap();
            run(&inv, &txs)
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("openapi", |b| b.iter(|| warm.openapi().len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
