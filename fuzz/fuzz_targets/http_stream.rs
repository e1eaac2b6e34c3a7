//! A conversation in the HTTP fixture format (`>>>` client chunk, `<<<` server chunk, `><>` gap) through the
//! HTTP framer, with small caps. Every fixture in src/http/testdata is a seed.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mirador::http::HttpConfig;
use mirador::http::fixture::run_fixture;

fuzz_target!(|data: &[u8]| {
    let cfg = HttpConfig { body_capture_bytes: 512, max_header_bytes: 1024, max_headers: 16, ..Default::default() };
    for tx in run_fixture(data, Arc::new(cfg)) {
        let _ = serde_json::to_vec(&tx.record());
    }
});
