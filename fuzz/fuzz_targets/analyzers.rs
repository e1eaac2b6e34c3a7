//! Transactions framed from a fuzzed conversation (the HTTP fixture format) through the whole analyzer chain
//! with its default settings (but a small value cache): inventory, sensitive data and detections see hostile
//! heads, bodies and JSON.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mirador::analyzer::{AnalysisSettings, Registry, TxContext, builtin};
use mirador::http::HttpConfig;
use mirador::http::fixture::run_fixture;

fuzz_target!(|data: &[u8]| {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    // One registry for the process: shared analyzer state accumulates across inputs, as it does in a
    // long-running sensor.
    // Default settings but a small value cache: the chain is built anew for every input, and setting up 65,536
    // entries each time slowed every input down; a small cache also evicts often, which is worth fuzzing.
    let registry = REGISTRY.get_or_init(|| {
        let mut s = AnalysisSettings::default();
        s.sensitive.value_cache_entries = 256;
        builtin(&s).expect("built-in analyzers start")
    });
    let cfg = HttpConfig { body_capture_bytes: 4096, max_header_bytes: 2048, max_headers: 32, ..Default::default() };
    let mut analyzers = registry.build();
    let mut ctx = TxContext::default();
    let mut out = Vec::new();
    for tx in run_fixture(data, Arc::new(cfg)) {
        let tx = Arc::new(tx);
        ctx.clear();
        // As the workers run the chain: every analyzer's stateless part first, then the chain in order.
        for a in &mut analyzers {
            a.prepare(&tx, &mut ctx);
        }
        for a in &mut analyzers {
            a.on_transaction(&tx, &mut ctx, &mut out);
        }
        for a in &mut analyzers {
            a.after_transaction(&tx, &ctx);
        }
    }
    for a in &mut analyzers {
        a.finish(&mut out);
    }
    for r in &out {
        assert!(serde_json::from_slice::<serde_json::Value>(&r.json).is_ok(), "a record is not JSON");
    }
});
