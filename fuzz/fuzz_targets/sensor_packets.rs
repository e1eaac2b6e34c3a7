//! A sequence of frames (2-byte length prefixes, advancing timestamps) through the whole chain: decode,
//! fragments, flow table, TCP reassembly and HTTP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirador::capture::{LinkType, RawPacket, Timestamp};
use mirador::flow::table::{FlowOutput, FlowRecord};
use mirador::http::Transaction;
use mirador::pipeline::{Sensor, SensorConfig};

struct Sink;
impl FlowOutput for Sink {
    fn flow_closed(&mut self, rec: FlowRecord) {
        let _ = serde_json::to_vec(&rec);
    }
    fn transaction(&mut self, tx: Transaction) {
        let _ = serde_json::to_vec(&tx.record());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let linktype = if sel & 1 == 0 { LinkType::ETHERNET } else { LinkType::RAW };
    let mut cfg = SensorConfig::default();
    // Small caps so the fuzzer reaches them.
    cfg.flow.max_flows = 8;
    cfg.reassembly.memcap_bytes = 64 << 10;
    let mut sensor = Sensor::new(cfg);
    let mut ts = 1_000_000_000u64;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % 2048;
        let step = u64::from(rest[2]);
        rest = &rest[3..];
        let take = len.min(rest.len());
        let (frame, tail) = rest.split_at(take);
        rest = tail;
        ts += step * step * 10_000_000;
        sensor.process(RawPacket { ts: Timestamp(ts), linktype, data: frame, orig_len: frame.len() as u32 }, &mut Sink);
    }
    sensor.finish(&mut Sink);
    let _ = serde_json::to_vec(&sensor.stats());
});
