//! Sensitive-data scanner throughput on realistic API JSON bodies: mostly clean listings (ids, prices, ISO
//! timestamps, UUIDs, epoch milliseconds) with a few records carrying personal data. Bodies are generated
//! once outside the timed loop; `Throughput::Bytes` makes criterion report bytes/s.
//!
//! `cargo bench --bench sensitive`

use std::fmt::Write as _;

use criterion::{Criterion, Throughput, criterion_group};
use mirador::sensitive::prefilter;
use mirador::sensitive::scanner::{BodyLoc, Limits, Scanner};
use mirador::sensitive::signatures::{LoadSpec, SignatureSet};

/// Deterministic xorshift so the bodies are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn clean_body(rng: &mut Rng, items: usize) -> String {
    let mut s = String::from("{\"page\":1,\"per_page\":50,\"total\":1243,\"items\":[");
    for i in 0..items {
        if i > 0 {
            s.push(',');
        }
        let a = rng.next();
        let _ = write!(
            s,
            r#"{{"id":{},"uuid":"{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}","sku":"SKU-{:05}","name":"Wireless Headphones X{}","description":"Over-ear, noise cancelling, 30h battery, USB-C charging.","price":{}.99,"currency":"USD","in_stock":{},"rating":4.{},"tags":["audio","bluetooth","sale"],"created_at":"2024-0{}-1{}T08:1{}:00Z","updated_ms":17053128{:05},"images":["https://cdn.shop.example/p/{}/1.jpg"]}}"#,
            10_000 + i,
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (a >> 20) & 0xfff,
            a & 0xffff_ffff_ffff,
            a % 99_999,
            a % 9,
            a % 400,
            a.is_multiple_of(2),
            a % 10,
            1 + a % 9,
            a % 10,
            a % 10,
            a % 100_000,
            10_000 + i
        );
    }
    s.push_str("]}");
    s
}

fn pii_body(rng: &mut Rng) -> String {
    let a = rng.next();
    format!(
        r#"{{"id":{},"first_name":"Jane","last_name":"Doe","email":"jane.doe{}@example.com","phone":"+1-202-555-0{:03}","date_of_birth":"1985-07-23","ssn":"536-22-{:04}","address":{{"line1":"221B Baker Street","city":"London"}},"card":{{"number":"4242 4242 4242 4242","exp":"12/28"}},"created_at":"2024-01-15T08:10:00Z"}}"#,
        a % 10_000,
        a % 100,
        a % 1000,
        1000 + a % 9000
    )
}

fn builtin_set() -> SignatureSet {
    SignatureSet::load(&LoadSpec { builtin: true, ..LoadSpec::default() }).expect("built-in packs compile")
}

/// The mixed workload: 95 clean listings of 20–50 items for 5 bodies with personal data.
fn mixed_bodies(rng: &mut Rng) -> Vec<String> {
    (0..100)
        .map(|i| {
            if i % 20 == 7 {
                pii_body(rng)
            } else {
                let n = 20 + (rng.next() % 31) as usize;
                clean_body(rng, n)
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let set = builtin_set();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let bodies = mixed_bodies(&mut rng);
    let total: usize = bodies.iter().map(String::len).sum();
    let mut g = c.benchmark_group("sensitive");
    g.throughput(Throughput::Bytes(total as u64));
    let mut sc = Scanner::new(Limits::default());
    let mut out = Vec::new();
    g.bench_function("api_json_mixed", |b| {
        b.iter(|| {
            out.clear();
            for body in &bodies {
                sc.body(&set, body.as_bytes(), "application/json", BodyLoc::Response, &mut out);
            }
            out.len()
        })
    });
    let clean: Vec<&String> = bodies.iter().filter(|b| !b.contains("first_name")).collect();
    let clean_total: usize = clean.iter().map(|b| b.len()).sum();
    g.throughput(Throughput::Bytes(clean_total as u64));
    let mut pf = prefilter::Prefilter::default();
    g.bench_function("prefilter", |b| {
        b.iter(|| clean.iter().filter(|body| pf.worth_walking(&set, body.as_bytes())).count())
    });
    g.bench_function("prefilter_anchors", |b| {
        b.iter(|| clean.iter().filter(|body| set.any_anchor(body.as_bytes())).count())
    });
    g.bench_function("prefilter_digits", |b| {
        b.iter(|| clean.iter().filter(|body| prefilter::numeric_candidate(body.as_bytes())).count())
    });
    let pii: Vec<String> = (0..100).map(|_| pii_body(&mut rng)).collect();
    let pii_total: usize = pii.iter().map(String::len).sum();
    g.throughput(Throughput::Bytes(pii_total as u64));
    g.bench_function("pii_json_only", |b| {
        b.iter(|| {
            out.clear();
            for body in &pii {
                sc.body(&set, body.as_bytes(), "application/json", BodyLoc::Response, &mut out);
            }
            out.len()
        })
    });
    g.finish();
}

/// User+system CPU seconds of this thread (Linux), or None.
fn thread_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let f: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The mixed workload timed by CPU time instead of wall time: on a machine shared with other work,
/// wall-clock throughput understates what one core does.
fn cpu_time_figure() {
    let set = builtin_set();
    let bodies = mixed_bodies(&mut Rng(0x9e37_79b9_7f4a_7c15));
    let total: usize = bodies.iter().map(String::len).sum();
    let mut sc = Scanner::new(Limits::default());
    let mut out = Vec::new();
    let Some(c0) = thread_cpu() else { return };
    let mut bytes = 0usize;
    let t0 = std::time::Instant::now();
    while t0.elapsed().as_secs_f64() < 5.0 {
        for body in &bodies {
            out.clear();
            sc.body(&set, body.as_bytes(), "application/json", BodyLoc::Response, &mut out);
        }
        bytes += total;
    }
    let Some(c1) = thread_cpu() else { return };
    let cpu = (c1 - c0).max(0.01);
    println!(
        "sensitive/api_json_mixed by CPU time: {:.0} MiB/s per core ({:.2} s CPU in {:.2} s wall)",
        bytes as f64 / cpu / 1048576.0,
        cpu,
        t0.elapsed().as_secs_f64()
    );
}

criterion_group!(benches, bench);

/// `SENSITIVE_ITERS=N`: only the mixed workload, N times, no criterion: for instruction counts (`perf stat -e
/// instructions`, or `valgrind --tool=cachegrind` on machines without hardware counters), which do not
/// depend on what else the machine runs.
fn fixed_iterations(n: usize) {
    let set = builtin_set();
    let bodies = mixed_bodies(&mut Rng(0x9e37_79b9_7f4a_7c15));
    let total: usize = bodies.iter().map(String::len).sum();
    let mut sc = Scanner::new(Limits::default());
    let mut out = Vec::new();
    for _ in 0..n {
        for body in &bodies {
            out.clear();
            sc.body(&set, body.as_bytes(), "application/json", BodyLoc::Response, &mut out);
        }
    }
    println!("{} bytes scanned", total * n);
}

fn main() {
    if let Some(n) = std::env::var("SENSITIVE_ITERS").ok().and_then(|v| v.parse().ok()) {
        return fixed_iterations(n);
    }
    benches();
    cpu_time_figure();
    Criterion::default().configure_from_args().final_summary();
}
