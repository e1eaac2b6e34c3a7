//! Arbitrary segment sequences on one connection, both directions, with a small memcap.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mirador::capture::Timestamp;
use mirador::decode::TcpHeader;
use mirador::reassembly::{Dir, MemBudget, OverlapPolicy, ReassemblyConfig, StreamEvent, StreamSink, TcpConnection};

#[derive(Arbitrary, Debug)]
struct Seg {
    to_client: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    len: u16,
    fill: u8,
    truncate: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    last_wins: bool,
    segs: Vec<Seg>,
}

struct Count(u64);
impl StreamSink for Count {
    fn on_stream(&mut self, _dir: Dir, _ts: Timestamp, ev: StreamEvent<'_>) {
        if let StreamEvent::Data(d) = ev {
            self.0 += d.len() as u64;
        }
    }
}

fuzz_target!(|input: Input| {
    let cfg = ReassemblyConfig {
        policy: if input.last_wins { OverlapPolicy::LastWins } else { OverlapPolicy::FirstWins },
        memcap_bytes: 16 << 10,
        ..Default::default()
    };
    let mut budget = MemBudget::new(cfg.memcap_bytes);
    let mut conn = TcpConnection::new();
    let mut sink = Count(0);
    let buf = [0u8; 4096];
    for (i, s) in input.segs.iter().take(4096).enumerate() {
        let len = usize::from(s.len) % buf.len();
        let payload: Vec<u8> = buf[..len].iter().map(|_| s.fill).collect();
        let captured = len.saturating_sub(usize::from(s.truncate));
        let hdr = TcpHeader { src_port: 1, dst_port: 2, seq: s.seq, ack: s.ack, flags: s.flags, window: 1000 };
        let dir = if s.to_client { Dir::ToClient } else { Dir::ToServer };
        conn.on_segment(&cfg, &mut budget, Timestamp(i as u64), dir, &hdr, &payload[..captured], len as u32, &mut sink);
        assert!(budget.used() <= budget.cap());
    }
    conn.close(&cfg, &mut budget, Timestamp(u64::MAX / 2), &mut sink);
    assert_eq!(conn.mem_used(), 0);
    assert_eq!(budget.used(), 0);
});
