//! The Kafka sink (cargo feature `kafka`) end to end: the mirador binary replays a capture with a
//! `[sinks.NAME] type = "kafka"` table and a consumer reads the topic back over TCP on loopback.
//!
//! The cluster is librdkafka's mock cluster (`rdkafka::mocking::MockCluster`: brokers in this test process
//! that speak the Kafka protocol on 127.0.0.1, with produce, idempotent producers, fetch and metadata). It is
//! not the Apache Kafka broker: none can be installed on this machine (its jars are on Maven Central, which is
//! not reachable here, and no Debian, PyPI or npm package carries them), see the README's sinks section.
//! What is checked is what a broker can see of the sink: every record exactly once while the broker is up,
//! the message key (the service), the `stream` and `sensor` headers, the configured format, an outage
//! (broker down in the middle of a run, back during the next) that loses nothing, a record too large for the
//! broker (dropped and counted, not blocking), and a fatal producer error (a new producer is started).
//!
//! Run: `cargo test --features kafka --test kafka`.

#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirador::sink::format::local_hostname;
use mirador::sink::spool::Spool;
use mirador::sink::{SinkGlobal, SinkManager, SinkOptions, SinkSettings, SinkType};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

/// The mock cluster's only broker.
const BROKER: i32 = 1;

/// One message read back from the topic.
#[derive(Debug)]
struct Got {
    partition: i32,
    key: String,
    headers: BTreeMap<String, String>,
    payload: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("payload is not JSON ({e}): {}", String::from_utf8_lossy(&self.payload)))
    }
}

/// A consumer of `topic` (all `partitions`, from the beginning), without a consumer group's coordination.
fn consumer(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "mirador-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

/// Reads `topic` until `want` messages arrived and then nothing more for `quiet` (so duplicates are seen
/// too), or until `limit`.
fn consume(bootstrap: &str, topic: &str, partitions: i32, want: usize, quiet: Duration, limit: Duration) -> Vec<Got> {
    let c = consumer(bootstrap, topic, partitions);
    let start = Instant::now();
    let mut last = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < limit && (out.len() < want || last.elapsed() < quiet) {
        let Some(m) = c.poll(Duration::from_millis(100)) else { continue };
        let m = m.unwrap_or_else(|e| panic!("consumer: {e}"));
        let mut headers = BTreeMap::new();
        if let Some(h) = m.headers() {
            for x in h.iter() {
                headers.insert(x.key.to_owned(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned());
            }
        }
        out.push(Got {
            partition: m.partition(),
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            headers,
            payload: m.payload().unwrap_or_default().to_vec(),
        });
        last = Instant::now();
    }
    out
}

/// A mock cluster with one broker and `topics` (name, partitions) created.
fn cluster(topics: &[(&str, i32)]) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let c = MockCluster::new(1).expect("librdkafka mock cluster");
    for (t, p) in topics {
        c.create_topic(t, *p, 1).unwrap();
    }
    c
}

/// The streams a Kafka sink sends by default.
const STREAMS: [&str; 3] = ["alerts", "findings", "inventory"];

/// The records a replay wrote, per stream (missing file: none).
fn written(out: &Path) -> BTreeMap<&'static str, Vec<Value>> {
    STREAMS
        .iter()
        .map(|s| {
            let p = out.join(format!("{s}.jsonl"));
            (*s, if p.exists() { common::read_jsonl(&p) } else { Vec::new() })
        })
        .collect()
}

/// A record's identity across runs: its stream and canonical JSON.
fn ident(stream: &str, v: &Value) -> String {
    format!("{stream} {v}")
}

/// How often the runs wrote each record, by identity.
fn tally_written(runs: &[&BTreeMap<&'static str, Vec<Value>>]) -> HashMap<String, usize> {
    let mut want: HashMap<String, usize> = HashMap::new();
    for recs in runs {
        for (s, vs) in *recs {
            for v in vs {
                *want.entry(ident(s, v)).or_default() += 1;
            }
        }
    }
    want
}

/// A received message's identity: its `stream` header and payload.
fn received_ident(g: &Got) -> String {
    ident(g.headers.get("stream").map(String::as_str).unwrap_or("?"), &g.json())
}

/// (records lost, duplicates) of what arrived against what was written.
fn lost_and_dups(want: &HashMap<String, usize>, have: &HashMap<String, usize>) -> (usize, usize) {
    let lost = want.iter().map(|(k, n)| n.saturating_sub(have.get(k).copied().unwrap_or(0))).sum();
    let dups = have.iter().map(|(k, n)| n.saturating_sub(want.get(k).copied().unwrap_or(0))).sum();
    (lost, dups)
}

/// A Kafka sink on the mock cluster, driven directly (no replay): short retries, records offered by the test.
fn direct_sink(bootstrap: &str, spool: &Path, flush: Duration) -> SinkManager {
    let s = SinkSettings {
        name: "fleet".into(),
        kind: SinkType::Kafka,
        brokers: Some(bootstrap.to_owned()),
        topic: Some("mirador".into()),
        ..Default::default()
    };
    let g = SinkGlobal {
        request_timeout: Duration::from_secs(2),
        flush_timeout: flush,
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        ..Default::default()
    };
    SinkManager::start(&SinkOptions { global: g, sinks: vec![s], spool_dir: spool.to_owned() }).unwrap()
}

fn service_of(v: &Value) -> &str {
    v.get("service").or_else(|| v.get("host")).and_then(Value::as_str).unwrap_or("-")
}

fn spool_records(dir: &Path) -> u64 {
    Spool::open(dir, u64::MAX, 4 << 20).unwrap().records
}

#[test]
fn replay_delivers_every_record_once_keyed_by_service() {
    let mock = cluster(&[("mirador", 3), ("mirador-ocsf", 1)]);
    let bootstrap = mock.bootstrap_servers();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("mirador.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = {state:?}\n\n\
             [sinks.fleet]\ntype = \"kafka\"\nbrokers = {bootstrap:?}\ntopic = \"mirador\"\n\n\
             [sinks.soc]\ntype = \"kafka\"\nbrokers = {bootstrap:?}\ntopic = \"mirador-ocsf\"\nformat = \"ocsf\"\n\
             kinds = [\"alerts\"]\nmin_severity = \"medium\"\n",
            state = tmp.path().join("state"),
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let run = common::replay(&[&common::pcap("demo.pcap")], &["--config", cfg.to_str().unwrap(), "--quiet"]);
    let replay_secs = t0.elapsed().as_secs_f64();
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let recs = written(run.out.path());
    let total: usize = recs.values().map(Vec::len).sum();
    assert!(recs.values().all(|v| !v.is_empty()), "the demo yields every stream");

    let got = consume(&bootstrap, "mirador", 3, total, Duration::from_secs(1), Duration::from_secs(30));
    eprintln!(
        "kafka delivery: replay {replay_secs:.1}s; written alerts {} findings {} inventory {}; received {} messages",
        recs["alerts"].len(),
        recs["findings"].len(),
        recs["inventory"].len(),
        got.len()
    );

    // Every record exactly once (the broker was up: the idempotent producer sends no duplicates), the payload
    // the record as written (format "json"), the headers its stream and this sensor.
    let want = tally_written(&[&recs]);
    let mut have: HashMap<String, usize> = HashMap::new();
    let host = local_hostname();
    for g in &got {
        let stream = g.headers.get("stream").map(String::as_str).unwrap_or("?");
        assert!(STREAMS.contains(&stream), "stream header: {:?}", g.headers);
        assert_eq!(g.headers.get("sensor"), Some(&host), "sensor header");
        let v = g.json();
        assert_eq!(g.key, service_of(&v), "the key is the record's service: {v}");
        assert_ne!(g.key, "-", "every demo record names its service: {v}");
        *have.entry(ident(stream, &v)).or_default() += 1;
    }
    let missing: Vec<&String> = want.keys().filter(|k| !have.contains_key(*k)).collect();
    assert!(missing.is_empty(), "{} records not delivered, e.g. {:?}", missing.len(), missing.first());
    assert_eq!(have, want, "each record exactly once");
    assert_eq!(got.len(), total);

    // Alerts by id: every id of DIR/alerts.jsonl once.
    let ids: Vec<String> = got
        .iter()
        .filter(|g| g.headers.get("stream").is_some_and(|s| s == "alerts"))
        .map(|g| g.json()["id"].as_str().unwrap().to_owned())
        .collect();
    let file_ids: HashSet<String> = recs["alerts"].iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), file_ids.len(), "one message per alert");
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), file_ids);

    // One partition per service: a consumer of one partition sees a service's whole history in order.
    let mut part: HashMap<&str, HashSet<i32>> = HashMap::new();
    for g in &got {
        part.entry(&g.key).or_default().insert(g.partition);
    }
    assert!(part.values().all(|p| p.len() == 1), "a service spread over partitions: {part:?}");
    assert!(part.len() >= 3, "the demo has several services: {part:?}");
    eprintln!(
        "kafka keys: {:?}",
        part.iter().map(|(k, p)| (*k, *p.iter().next().unwrap())).collect::<BTreeMap<_, _>>()
    );

    // The second sink: OCSF, alerts of medium severity and above only, one message per alert.
    let sev_ok = |a: &Value| matches!(a["severity"].as_str(), Some("medium" | "high" | "critical"));
    let want_ocsf: HashSet<&str> =
        recs["alerts"].iter().filter(|a| sev_ok(a)).map(|a| a["id"].as_str().unwrap()).collect();
    assert!(!want_ocsf.is_empty());
    let ocsf = consume(&bootstrap, "mirador-ocsf", 1, want_ocsf.len(), Duration::from_secs(1), Duration::from_secs(20));
    assert_eq!(ocsf.len(), want_ocsf.len());
    let mut got_ocsf = HashSet::new();
    for g in &ocsf {
        let o = g.json();
        assert_eq!(o["class_uid"], 2004, "OCSF Detection Finding: {o}");
        assert_eq!(g.headers.get("stream").map(String::as_str), Some("alerts"));
        got_ocsf.insert(o["metadata"]["uid"].as_str().unwrap().to_owned());
    }
    assert_eq!(got_ocsf, want_ocsf.iter().map(|s| s.to_string()).collect::<HashSet<_>>());
}

fn write_outage_config(path: &Path, state: &Path, bootstrap: &str, flush: &str) {
    std::fs::write(
        path,
        format!(
            "[state]\ndir = {state:?}\n\n\
             [sink]\nrequest_timeout = \"1s\"\nflush_timeout = {flush:?}\nretry_initial = \"100ms\"\n\
             retry_max = \"500ms\"\nretry_attempts = 2\n\n\
             [sinks.fleet]\ntype = \"kafka\"\nbrokers = {bootstrap:?}\ntopic = \"mirador\"\nbatch_records = 50\n"
        ),
    )
    .unwrap();
}

/// The binary replaying `pcap` in the background, its log on a pipe.
fn spawn_replay(pcap: &str, cfg: &Path, out: &Path, log: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_mirador"))
        .arg("replay")
        .arg(common::pcap(pcap))
        .args(["--config", cfg.to_str().unwrap(), "--quiet", "--out"])
        .arg(out)
        .env("RUST_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The broker goes down in the middle of a replay (run 1: what was not delivered ends in the spool under
/// `[state] dir`), the sensor starts again with the broker still down, and the broker comes back during that
/// run (run 2): the spool is replayed first, then run 2's records; nothing is lost.
#[test]
fn broker_outage_spools_and_the_next_run_delivers() {
    let mock = cluster(&[("mirador", 3)]);
    let bootstrap = mock.bootstrap_servers();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let spool = state.join("spool/fleet");
    let cfg = tmp.path().join("mirador.toml");

    // Run 1: the broker answers slowly (100 ms a request, batches of 50) and goes down as soon as the first
    // records are on the topic.
    mock.broker_round_trip_time(BROKER, Duration::from_millis(100)).unwrap();
    write_outage_config(&cfg, &state, &bootstrap, "2s");
    let out1 = tmp.path().join("run1");
    let mut child1 = spawn_replay("demo.pcap", &cfg, &out1, "warn");
    let watch = consumer(&bootstrap, "mirador", 3);
    let t = Instant::now();
    let mut before_cut = 0;
    while before_cut == 0 && t.elapsed() < Duration::from_secs(30) && child1.try_wait().unwrap().is_none() {
        if let Some(Ok(_)) = watch.poll(Duration::from_millis(10)) {
            before_cut += 1;
        }
    }
    mock.broker_down(BROKER).unwrap();
    let cut_at = t.elapsed().as_secs_f64();
    mock.broker_round_trip_time(BROKER, Duration::ZERO).unwrap();
    drop(watch);
    let run1 = child1.wait_with_output().unwrap();
    let stderr1 = String::from_utf8_lossy(&run1.stderr);
    assert!(run1.status.success(), "{stderr1}");
    assert!(before_cut > 0, "the broker went down before any record arrived");
    assert!(stderr1.contains("records kept in its spool"), "{stderr1}");
    let recs1 = written(&out1);
    let n1: usize = recs1.values().map(Vec::len).sum();
    let spooled1 = spool_records(&spool);
    assert!(spooled1 > 0 && spooled1 <= n1 as u64, "run 1: {spooled1} of {n1} records in the spool");

    // Run 2: started with the broker still down; it is back 1.5 s later, within the run's flush window.
    write_outage_config(&cfg, &state, &bootstrap, "20s");
    let out2 = tmp.path().join("run2");
    let t0 = Instant::now();
    let child = spawn_replay("labelled.pcap", &cfg, &out2, "info");
    std::thread::sleep(Duration::from_millis(1500));
    mock.broker_up(BROKER).unwrap();
    let run2 = child.wait_with_output().unwrap();
    let run2_secs = t0.elapsed().as_secs_f64();
    let stderr2 = String::from_utf8_lossy(&run2.stderr);
    assert!(run2.status.success(), "{stderr2}");
    assert!(stderr2.contains("spool holds records from an earlier run"), "{stderr2}");
    let recs2 = written(&out2);
    let n2: usize = recs2.values().map(Vec::len).sum();
    let left = spool_records(&spool);

    let want = tally_written(&[&recs1, &recs2]);
    let got = consume(&bootstrap, "mirador", 3, n1 + n2, Duration::from_secs(2), Duration::from_secs(60));
    let mut have: HashMap<String, usize> = HashMap::new();
    for g in &got {
        assert_eq!(g.key, service_of(&g.json()));
        *have.entry(received_ident(g)).or_default() += 1;
    }
    let (lost, dups) = lost_and_dups(&want, &have);
    let strange = have.keys().filter(|k| !want.contains_key(*k)).count();
    eprintln!(
        "kafka outage: run 1 wrote {n1} records, broker down at {cut_at:.1}s, spool holds {spooled1}; run 2 ({run2_secs:.1}s, broker back at 1.5s) \
         wrote {n2}, spool left {left}; received {} messages: {lost} lost, {dups} duplicates (at-least-once)",
        got.len()
    );
    assert_eq!(lost, 0, "records lost");
    assert_eq!(strange, 0, "messages that no run wrote");
    assert_eq!(left, 0, "the spool is empty after run 2");
}

/// A record the broker can never take (larger than `message.max.bytes`) is dropped and counted, not retried
/// forever: it must not hold back the records behind it.
#[test]
fn oversized_record_is_dropped_not_blocking() {
    let mock = cluster(&[("mirador", 1)]);
    let bootstrap = mock.bootstrap_servers();
    let tmp = tempfile::tempdir().unwrap();
    let m = direct_sink(&bootstrap, &tmp.path().join("spool"), Duration::from_secs(5));
    let inv = |i: usize, pad: usize| {
        let mut l = serde_json::to_vec(&serde_json::json!({"kind": "new_operation", "service": "svc.example",
            "method": "GET", "endpoint": format!("/v1/{i}"), "note": "x".repeat(pad)}))
        .unwrap();
        l.push(b'\n');
        l
    };
    m.offer("inventory", &inv(0, 0));
    m.offer("inventory", &inv(1, 2 << 20));
    m.offer("inventory", &inv(2, 0));
    let got = consume(&bootstrap, "mirador", 1, 2, Duration::from_millis(500), Duration::from_secs(20));
    m.shutdown();
    let snap = m.snapshot().remove(0);
    let eps: Vec<String> = got.iter().map(|g| g.json()["endpoint"].as_str().unwrap().to_owned()).collect();
    eprintln!("oversized record: received {eps:?}, {snap:?}");
    assert!(eps.contains(&"/v1/0".to_owned()) && eps.contains(&"/v1/2".to_owned()), "{eps:?}");
    assert_eq!(snap.dropped, 1, "{snap:?}");
    assert_eq!(snap.spool_records, 0, "{snap:?}");
}

/// The broker answers a produce with an error the idempotent producer cannot recover from
/// (OUT_OF_ORDER_SEQUENCE_NUMBER: librdkafka raises a fatal error and the producer refuses every later
/// record). The sink starts a new producer and the spooled records go through.
#[test]
fn fatal_producer_error_starts_a_new_producer() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = cluster(&[("mirador", 1)]);
    let bootstrap = mock.bootstrap_servers();
    mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER]);
    let tmp = tempfile::tempdir().unwrap();
    let m = direct_sink(&bootstrap, &tmp.path().join("spool"), Duration::from_secs(10));
    for i in 0..3 {
        let mut l = serde_json::to_vec(&serde_json::json!({"kind": "new_operation", "service": "svc.example",
            "method": "GET", "endpoint": format!("/v1/{i}")}))
        .unwrap();
        l.push(b'\n');
        m.offer("inventory", &l);
    }
    let got = consume(&bootstrap, "mirador", 1, 3, Duration::from_millis(500), Duration::from_secs(20));
    m.shutdown();
    let snap = m.snapshot().remove(0);
    let eps: HashSet<String> = got.iter().map(|g| g.json()["endpoint"].as_str().unwrap().to_owned()).collect();
    eprintln!("fatal producer error: received {} messages {eps:?}, {snap:?}", got.len());
    assert_eq!(eps.len(), 3, "{eps:?} {snap:?}");
    assert_eq!(snap.spool_records, 0, "{snap:?}");
}

/// A real Kafka-compatible broker process: tansu 0.6 (crates.io, `cargo install tansu --locked --features
/// dynostore` for its in-memory storage engine; the build takes most of an hour on two cores, so CI does not
/// carry it). Found through `MIRADOR_TANSU` or `tansu` on PATH;
/// the test says so and passes when neither is there.
struct Tansu {
    child: std::process::Child,
    bootstrap: String,
}

impl Tansu {
    fn binary() -> Option<std::path::PathBuf> {
        if let Some(p) = std::env::var_os("MIRADOR_TANSU") {
            return Some(p.into());
        }
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join("tansu")).find(|p| p.is_file())
    }

    fn start(bin: &Path) -> Tansu {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Tansu::start_on(bin, port)
    }

    fn start_on(bin: &Path, port: u16) -> Tansu {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "tansu exited ({st}) before listening; its error is above (the memory:// storage engine needs `cargo install tansu --features dynostore`)"
                );
            }
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Tansu { child, bootstrap: format!("127.0.0.1:{port}") }
    }

    fn create_topic(&self, topic: &str, partitions: i32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let res = rt
            .block_on(admin.create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ))
            .unwrap();
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same delivery contract against a broker that is a separate process speaking Kafka over TCP: every
/// record once, keyed by service, one partition per service.
#[test]
fn replay_into_a_real_broker_process() {
    let Some(bin) = Tansu::binary() else {
        eprintln!(
            "SKIP: no tansu broker (set MIRADOR_TANSU or put tansu on PATH: cargo install tansu --locked --features dynostore)"
        );
        return;
    };
    let broker = Tansu::start(&bin);
    broker.create_topic("mirador", 3);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("mirador.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = {state:?}\n\n[sinks.fleet]\ntype = \"kafka\"\nbrokers = {b:?}\ntopic = \"mirador\"\n",
            state = tmp.path().join("state"),
            b = broker.bootstrap,
        ),
    )
    .unwrap();
    let run = common::replay(&[&common::pcap("demo.pcap")], &["--config", cfg.to_str().unwrap(), "--quiet"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let recs = written(run.out.path());
    let total: usize = recs.values().map(Vec::len).sum();
    let got = consume(&broker.bootstrap, "mirador", 3, total, Duration::from_secs(2), Duration::from_secs(60));
    eprintln!("tansu ({}): written {total} records, received {} messages", bin.display(), got.len());
    let want = tally_written(&[&recs]);
    let mut have: HashMap<String, usize> = HashMap::new();
    let mut part: HashMap<String, HashSet<i32>> = HashMap::new();
    for g in &got {
        let v = g.json();
        assert_eq!(g.key, service_of(&v), "the key is the record's service: {v}");
        part.entry(g.key.clone()).or_default().insert(g.partition);
        *have.entry(received_ident(g)).or_default() += 1;
    }
    assert_eq!(have, want, "each record exactly once");
    assert!(part.values().all(|p| p.len() == 1), "a service spread over partitions: {part:?}");
}

/// A free port below the kernel's ephemeral range (32768 and up): nothing the parallel tests bind to port 0
/// can take it while this test leaves it unbound on purpose (the broker is absent during run 1).
fn port_outside_ephemeral_range() -> u16 {
    let seed =
        std::process::id() ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (0..1000u32)
        .map(|i| 20000 + ((seed.wrapping_add(i.wrapping_mul(7919))) % 10000) as u16)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 20000..30000")
}

/// The broker process is not there when the sensor runs (everything spooled, the run still exits 0), then
/// it is started and the next run delivers the spool first and its own records after: nothing lost.
#[test]
fn broker_process_down_then_up_delivers_the_spool() {
    let Some(bin) = Tansu::binary() else {
        eprintln!(
            "SKIP: no tansu broker (set MIRADOR_TANSU or put tansu on PATH: cargo install tansu --locked --features dynostore)"
        );
        return;
    };
    let port = port_outside_ephemeral_range();
    let bootstrap = format!("127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cfg = tmp.path().join("mirador.toml");
    write_outage_config(&cfg, &state, &bootstrap, "2s");
    let out1 = tmp.path().join("run1");
    let run1 = spawn_replay("demo.pcap", &cfg, &out1, "warn").wait_with_output().unwrap();
    assert!(run1.status.success(), "{}", String::from_utf8_lossy(&run1.stderr));
    let recs1 = written(&out1);
    let n1: usize = recs1.values().map(Vec::len).sum();
    let spooled = spool_records(&state.join("spool/fleet"));
    assert_eq!(spooled, n1 as u64, "with no broker every record is spooled");

    let broker = Tansu::start_on(&bin, port);
    broker.create_topic("mirador", 3);
    write_outage_config(&cfg, &state, &bootstrap, "20s");
    let out2 = tmp.path().join("run2");
    let run2 = spawn_replay("labelled.pcap", &cfg, &out2, "info").wait_with_output().unwrap();
    assert!(run2.status.success(), "{}", String::from_utf8_lossy(&run2.stderr));
    let recs2 = written(&out2);
    let n2: usize = recs2.values().map(Vec::len).sum();
    let want = tally_written(&[&recs1, &recs2]);
    let got = consume(&bootstrap, "mirador", 3, n1 + n2, Duration::from_secs(2), Duration::from_secs(90));
    let mut have: HashMap<String, usize> = HashMap::new();
    for g in &got {
        *have.entry(received_ident(g)).or_default() += 1;
    }
    let (lost, dups) = lost_and_dups(&want, &have);
    eprintln!(
        "tansu outage: run 1 wrote {n1} records, all spooled; run 2 wrote {n2}; received {}: {lost} lost, {dups} duplicates; spool left {}",
        got.len(),
        spool_records(&state.join("spool/fleet"))
    );
    assert_eq!(lost, 0, "records lost");
    assert_eq!(spool_records(&state.join("spool/fleet")), 0, "the spool is empty after run 2");
}
