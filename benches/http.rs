//! HTTP/1.x framer throughput (transactions/s and bytes/s) on generated keep-alive conversations, and the cost
//! of writing a transaction line (`write_json` against `record()` + serde_json).
//!
//!     cargo bench --bench http
//!
//! Streams are built in memory with `mirador::synth` once, outside the timed loop, and fed in MSS-sized pieces
//! the way reassembly delivers them.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mirador::capture::Timestamp;
use mirador::http::fixture::fixture_flow;
use mirador::http::{HttpConfig, HttpParser, Transaction};
use mirador::reassembly::{Dir, StreamEvent};
use mirador::synth::{Rng, http_request, http_response};

const MSS: usize = 1448;

/// One connection's worth of exchanges: (request bytes, response bytes) per transaction.
fn conversation(kind: &str, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = Rng(11);
    (0..n)
        .map(|i| {
            let id = rng.below(100_000);
            let token = format!("Bearer eyJhbGciOiJIUzI1NiJ9.{:016x}", rng.next_u64());
            let req = http_request(
                "GET",
                &format!("/api/v1/users/{id}?fields=name,email&page={i}"),
                "api.shop.example",
                &[
                    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"),
                    ("Accept", "application/json"),
                    ("Accept-Encoding", "gzip, deflate, br"),
                    ("Authorization", &token),
                    ("Cookie", "session=4f1c2a9e; theme=dark"),
                    ("X-Request-Id", &format!("{:032x}", rng.next_u64())),
                ],
                b"",
            );
            let body = format!(
                "{{\"id\":{id},\"name\":\"User {id}\",\"email\":\"user{id}@example.com\",\"orders\":[{}]}}",
                (0..rng.below(20))
                    .map(|k| format!("{{\"n\":{k},\"total\":{}}}", rng.below(1000)))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let headers = [
                ("Server", "nginx/1.24.0"),
                ("Date", "Mon, 23 Nov 2026 18:00:00 GMT"),
                ("Content-Type", "application/json"),
                ("Connection", "keep-alive"),
                ("Cache-Control", "no-store"),
            ];
            let resp = match kind {
                "chunked" => {
                    let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n".to_vec();
                    for (k, val) in headers {
                        v.extend_from_slice(format!("{k}: {val}\r\n").as_bytes());
                    }
                    v.extend_from_slice(b"\r\n");
                    for c in body.as_bytes().chunks(100) {
                        v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                        v.extend_from_slice(c);
                        v.extend_from_slice(b"\r\n");
                    }
                    v.extend_from_slice(b"0\r\n\r\n");
                    v
                }
                _ => http_response(200, "OK", &headers, body.as_bytes()),
            };
            (req, resp)
        })
        .collect()
}

fn run(conv: &[(Vec<u8>, Vec<u8>)], cfg: &Arc<HttpConfig>) -> usize {
    let mut p = HttpParser::new(cfg.clone(), fixture_flow());
    let mut out = Vec::new();
    let mut n = 0;
    let ts = Timestamp(1_000_000_000);
    for (req, resp) in conv {
        for (dir, bytes) in [(Dir::ToServer, req), (Dir::ToClient, resp)] {
            for piece in bytes.chunks(MSS) {
                p.on_stream(dir, ts, StreamEvent::Data(piece), &mut out);
            }
        }
        n += out.len();
        out.clear();
    }
    p.finish(ts, &mut out);
    n + out.len()
}

fn bench(c: &mut Criterion) {
    let cfg = Arc::new(HttpConfig::default());
    for kind in ["content_length", "chunked"] {
        let conv = conversation(kind, 2000);
        let bytes: u64 = conv.iter().map(|(a, b)| (a.len() + b.len()) as u64).sum();
        assert_eq!(run(&conv, &cfg), conv.len());
        let mut g = c.benchmark_group(format!("http_framer_{kind}"));
        g.sample_size(20);
        g.throughput(Throughput::Elements(conv.len() as u64));
        g.bench_function("transactions", |b| b.iter(|| run(&conv, &cfg)));
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function("bytes", |b| b.iter(|| run(&conv, &cfg)));
        g.finish();
    }

    // Output: the same transactions serialized both ways.
    let conv = conversation("content_length", 2000);
    let mut p = HttpParser::new(cfg.clone(), fixture_flow());
    let mut txs: Vec<Transaction> = Vec::new();
    for (req, resp) in &conv {
        p.on_stream(Dir::ToServer, Timestamp(1), StreamEvent::Data(req), &mut txs);
        p.on_stream(Dir::ToClient, Timestamp(2), StreamEvent::Data(resp), &mut txs);
    }
    p.finish(Timestamp(3), &mut txs);
    let mut g = c.benchmark_group("transaction_json");
    g.sample_size(20);
    g.throughput(Throughput::Elements(txs.len() as u64));
    let mut buf = Vec::with_capacity(1 << 20);
    g.bench_function("write_json", |b| {
        b.iter(|| {
            buf.clear();
            for t in &txs {
                t.write_json(&mut buf);
                buf.push(b'\n');
            }
            buf.len()
        })
    });
    g.bench_function("record_serde", |b| {
        b.iter(|| {
            buf.clear();
            for t in &txs {
                serde_json::to_writer(&mut buf, &t.record()).unwrap_or_default();
                buf.push(b'\n');
            }
            buf.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
