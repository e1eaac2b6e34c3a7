//! SIEM sinks against real receivers on loopback: a hyper HTTP server (HEC, `_bulk`, webhook), rsyslog
//! (UDP, TCP, TLS), an outage with a receiver that goes away during a replay and a sensor restart in between,
//! and the ECS / OCSF outputs checked against their published schemas (vendored under tests/sinks/).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mirador::config::Config;
use mirador::pipeline::{self, PipelineOptions};
use mirador::sink::format::{self, Observer};
use mirador::sink::{
    Format, HttpFlavor, Severity, SinkGlobal, SinkManager, SinkOptions, SinkSettings, SinkType, Stream, SyslogProtocol,
    SyslogTransport,
};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Records shaped like the analyzers' (field names from the analyzer framework's documentation).
fn alert(i: usize, severity: &str) -> Value {
    json!({"id": format!("alert-{i}"), "ts": 1763932045.25 + i as f64, "rule": "bola", "type": "bola",
           "title": "Broken object level authorization", "severity": severity, "owasp": "API1:2023",
           "mitre": ["T1190"], "actor": "198.51.100.23", "src": "198.51.100.23:40000", "dst": "10.20.1.15:8080",
           "method": "GET", "host": "users.internal.example", "path": format!("/v1/users/{i}"),
           "endpoint": "/v1/users/{id}", "location": "path", "field": "id", "evidence": "id=1 then id=2",
           "uids": ["C1", "C2"], "count": 2})
}

fn finding(i: usize) -> Value {
    json!({"ts": 1763932045.0, "uid": format!("finding-{i}"), "type": "pii", "category": "personal",
           "signature_id": "email", "method": "POST", "host": "users.internal.example", "path": "/v1/users",
           "endpoint": "/v1/users", "location": "response_body", "field": "email", "evidence": "j***@example.com",
           "hash": "b3:abcd", "confidence": 0.9, "severity": "medium", "src_ip": "10.0.12.20", "src_port": 53606,
           "dst_ip": "10.20.1.15", "dst_port": 8080})
}

fn inventory(i: usize) -> Value {
    json!({"ts": 1763932045.0, "kind": "new_operation", "service": "users.internal.example",
           "method": "GET", "endpoint": format!("/v1/items{i}/{{id}}")})
}

fn line(v: &Value) -> Vec<u8> {
    let mut l = serde_json::to_vec(v).unwrap();
    l.push(b'\n');
    l
}

// ---- HTTP receiver --------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Req {
    path: String,
    headers: HashMap<String, String>,
    /// Body after gzip decoding.
    body: Vec<u8>,
}

/// Decodes a gzip request body of ours (trusted test data: no cap needed).
#[allow(clippy::disallowed_types)]
fn gunzip(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out).unwrap();
    out
}

/// A hyper HTTP/1 server on 127.0.0.1:`port`, in its own thread and runtime. `crash_after`: after answering
/// that many requests it stops listening and drops its connections (a receiver going down mid-delivery).
struct Receiver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, reqs: Arc<Mutex<Vec<Req>>>, crash_after: Option<usize>) -> Receiver {
        use http_body_util::BodyExt;
        use hyper::service::service_fn;
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
                ready_tx.send(()).unwrap();
                let crashed = Arc::new(tokio::sync::Notify::new());
                let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        r = listener.accept() => {
                            let Ok((stream, _)) = r else { continue };
                            let (reqs, crashed, answered) = (reqs.clone(), crashed.clone(), answered.clone());
                            conns.spawn(async move {
                                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                    let (reqs, crashed, answered) = (reqs.clone(), crashed.clone(), answered.clone());
                                    async move {
                                        let path = req.uri().path().to_owned();
                                        let headers: HashMap<String, String> = req
                                            .headers()
                                            .iter()
                                            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                                            .collect();
                                        let raw = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                                        let body = if headers.get("content-encoding").map(String::as_str) == Some("gzip") { gunzip(&raw) } else { raw };
                                        let answer = if path.ends_with("_bulk") {
                                            r#"{"took":1,"errors":false,"items":[]}"#
                                        } else {
                                            r#"{"text":"Success","code":0}"#
                                        };
                                        reqs.lock().unwrap().push(Req { path, headers, body });
                                        let n = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                                        if crash_after.is_some_and(|k| n >= k) {
                                            crashed.notify_one();
                                        }
                                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                                            hyper::body::Bytes::from_static(answer.as_bytes()),
                                        )))
                                    }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                        _ = crashed.notified() => break,
                        _ = &mut stop_rx => break,
                    }
                }
                // Give the answer in flight a moment, then drop every connection: the receiver is gone.
                tokio::time::sleep(Duration::from_millis(20)).await;
                conns.abort_all();
                drop(listener);
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        Receiver { stop: Some(stop), thread: Some(thread) }
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn fast_global() -> SinkGlobal {
    SinkGlobal {
        flush_timeout: Duration::from_secs(5),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(500),
        retry_attempts: 2,
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

#[test]
fn http_hec_bulk_and_webhook_batches_gzip_and_auth() {
    let port = free_port();
    let reqs = Arc::new(Mutex::new(Vec::new()));
    let rx = Receiver::start(port, reqs.clone(), None);
    let state = tempfile::tempdir().unwrap();
    let base = |name: &str, flavor, path: &str| SinkSettings {
        name: name.into(),
        kind: SinkType::Http,
        flavor,
        url: Some(format!("http://127.0.0.1:{port}{path}")),
        batch_records: 7,
        batch_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let hec = SinkSettings {
        token: Some("hec-token".into()),
        format: Format::Ecs,
        index: Some("api".into()),
        ..base("splunk", HttpFlavor::Hec, "/services/collector/event")
    };
    let bulk = SinkSettings {
        format: Format::Ecs,
        index: Some("mirador-alerts".into()),
        gzip: false,
        ..base("elastic", HttpFlavor::Bulk, "/_bulk")
    };
    let hook = SinkSettings {
        token: Some("hook-token".into()),
        headers: BTreeMap::from([("X-Tenant".to_owned(), "soc".to_owned())]),
        min_severity: Severity::High,
        kinds: vec![Stream::Alerts],
        ..base("hook", HttpFlavor::Webhook, "/hook")
    };
    let opts =
        SinkOptions { global: fast_global(), sinks: vec![hec, bulk, hook], spool_dir: state.path().join("spool") };
    let m = SinkManager::start(&opts).unwrap();
    let n = 30;
    for i in 0..n {
        m.offer("alerts", &line(&alert(i, if i % 2 == 0 { "high" } else { "low" })));
    }
    m.offer("findings", &line(&finding(0)));
    m.offer("inventory", &line(&inventory(0)));
    m.shutdown();
    rx.stop();
    let reqs = reqs.lock().unwrap().clone();
    let by = |p: &str| reqs.iter().filter(|r| r.path == p).cloned().collect::<Vec<_>>();

    // Splunk HEC: gzip, "Splunk <token>", concatenated event objects in batches of at most 7.
    let hec = by("/services/collector/event");
    assert!(hec.len() >= (n + 2).div_ceil(7), "{} HEC requests", hec.len());
    let mut events = 0;
    for r in &hec {
        assert_eq!(r.headers.get("authorization").map(String::as_str), Some("Splunk hec-token"));
        assert_eq!(r.headers.get("content-encoding").map(String::as_str), Some("gzip"));
        let docs: Vec<Value> = serde_json::Deserializer::from_slice(&r.body).into_iter().map(Result::unwrap).collect();
        assert!(docs.len() <= 7);
        for d in &docs {
            assert_eq!(d["index"], "api");
            assert!(d["event"]["@timestamp"].is_string(), "{d}");
            assert!(d["sourcetype"].as_str().unwrap().starts_with("mirador:"));
        }
        events += docs.len();
    }
    assert_eq!(events, n + 2);

    // Elastic _bulk: NDJSON action + document pairs, not gzipped here.
    let bulk = by("/_bulk");
    let mut docs = 0;
    for r in &bulk {
        assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/x-ndjson"));
        assert!(!r.headers.contains_key("content-encoding"));
        let lines: Vec<Value> = r
            .body
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        for pair in lines.chunks(2) {
            assert_eq!(pair[0]["create"]["_index"], "mirador-alerts");
            assert!(pair[1]["ecs"]["version"].is_string());
            docs += 1;
        }
    }
    assert_eq!(docs, n + 2);

    // Webhook: only high alerts, JSON arrays, bearer token and the extra header.
    let hook = by("/hook");
    let mut ids = Vec::new();
    for r in &hook {
        assert_eq!(r.headers.get("authorization").map(String::as_str), Some("Bearer hook-token"));
        assert_eq!(r.headers.get("x-tenant").map(String::as_str), Some("soc"));
        let arr: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
        assert!(arr.len() <= 7 && !arr.is_empty());
        ids.extend(arr.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
    }
    let want: Vec<String> = (0..n).filter(|i| i % 2 == 0).map(|i| format!("alert-{i}")).collect();
    assert_eq!(ids, want);
    let snaps = m.snapshot();
    eprintln!("HTTP sinks: {}", serde_json::to_string(&snaps).unwrap());
    assert!(snaps.iter().all(|s| s.dropped == 0 && s.spool_records == 0));
}

// ---- outage ---------------------------------------------------------------------------------------------

/// A transaction's identity: its connection uid, its position on the connection and its time (uids are
/// derived from the flow, so two captures may share one).
fn key(v: &Value) -> String {
    format!("{}#{}#{}", v["uid"].as_str().unwrap_or(""), v["trans_depth"], v["ts"])
}

fn uids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| key(&serde_json::from_str::<Value>(l).unwrap()))
        .collect()
}

fn replay_with_sinks(pcap: &Path, out: &Path, sinks: Arc<SinkManager>) {
    let mut opts = PipelineOptions::new(Config::default().sensor_config());
    opts.sinks = Some(sinks);
    pipeline::replay(&[pcap], out, opts, &mut |_| {}).unwrap();
}

/// The receiver dies during a replay (after 3 requests), the sensor is restarted while it is still down, the
/// receiver comes back during the second run: every record of both runs arrives at least once.
#[test]
fn outage_during_replay_and_restart_loses_nothing() {
    let port = free_port();
    let reqs = Arc::new(Mutex::new(Vec::new()));
    let tmp = tempfile::tempdir().unwrap();
    let sink = SinkSettings {
        name: "collector".into(),
        kind: SinkType::Http,
        flavor: HttpFlavor::Webhook,
        url: Some(format!("http://127.0.0.1:{port}/ingest")),
        kinds: vec![Stream::Alerts, Stream::Findings, Stream::Inventory, Stream::Transactions],
        batch_records: 25,
        batch_timeout: Duration::from_millis(20),
        ..Default::default()
    };
    let opts = SinkOptions {
        global: SinkGlobal { flush_timeout: Duration::from_secs(10), ..fast_global() },
        sinks: vec![sink],
        spool_dir: tmp.path().join("state/spool"),
    };

    // Run 1: the receiver answers 3 requests, then goes away.
    let crashing = Receiver::start(port, reqs.clone(), Some(3));
    // The receiver stays down until the end of run 1: a short flush timeout, then everything is spooled.
    let short = SinkOptions {
        global: SinkGlobal { flush_timeout: Duration::from_secs(1), ..opts.global.clone() },
        ..opts.clone()
    };
    let m1 = Arc::new(SinkManager::start(&short).unwrap());
    let (out1, out2) = (tmp.path().join("run1"), tmp.path().join("run2"));
    replay_with_sinks(&repo().join("pcaps/demo.pcap"), &out1, m1.clone());
    crashing.stop();
    let s1 = m1.snapshot().remove(0);
    assert!(s1.spool_records > 0, "the outage left nothing to spool: {s1:?}");
    drop(m1);

    // Run 2: the sensor restarts with the receiver still down; the receiver is back 1.5 s later.
    let m2 = Arc::new(SinkManager::start(&opts).unwrap());
    let at_start = m2.snapshot().remove(0).spool_records;
    let back = {
        let reqs = reqs.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            Receiver::start(port, reqs, None)
        })
    };
    // A second capture: the shared corpus's largest HTTP one when it is there.
    let corpus = repo().join("../shared/corpus/arkime-arkime-synthetic.pcap");
    let second = if corpus.exists() { corpus } else { repo().join("pcaps/vxlan-two-tenants.pcap") };
    replay_with_sinks(&second, &out2, m2.clone());
    let s2 = m2.snapshot().remove(0);
    back.join().unwrap().stop();

    let mut produced: Vec<String> = uids(&out1.join("transactions.jsonl"));
    produced.extend(uids(&out2.join("transactions.jsonl")));
    let mut received: HashMap<String, usize> = HashMap::new();
    for r in reqs.lock().unwrap().iter() {
        for rec in serde_json::from_slice::<Vec<Value>>(&r.body).unwrap() {
            *received.entry(key(&rec)).or_default() += 1;
        }
    }
    let missing: Vec<&String> = produced.iter().filter(|u| !received.contains_key(*u)).collect();
    let duplicates: usize = received.values().map(|c| c - 1).sum();
    eprintln!(
        "outage figures: run 1 produced {} records, sent {}, failed attempts {}, spooled {} (left in spool {}); \
         run 2 started with {} spooled, produced {}, sent {} (of which replayed from spool {}), spooled {}, left {}; \
         received {} distinct, {} duplicates (at-least-once), {} missing",
        uids(&out1.join("transactions.jsonl")).len(),
        s1.sent,
        s1.failed,
        s1.spooled,
        s1.spool_records,
        at_start,
        uids(&out2.join("transactions.jsonl")).len(),
        s2.sent,
        s2.replayed,
        s2.spooled,
        s2.spool_records,
        received.len(),
        duplicates,
        missing.len()
    );
    assert!(missing.is_empty(), "{} records lost, e.g. {:?}", missing.len(), missing.first());
    assert_eq!(produced.iter().collect::<std::collections::HashSet<_>>().len(), produced.len(), "keys are unique");
    assert_eq!(at_start, s1.spool_records);
    assert!(s2.replayed >= at_start);
    assert_eq!(s2.spool_records, 0);
    assert_eq!(s1.dropped + s2.dropped, 0);
}

// ---- rsyslog --------------------------------------------------------------------------------------------

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A throw-away CA and a server certificate for localhost / 127.0.0.1, made with the openssl CLI.
fn make_certs(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mirador test CA",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ])
}

struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_rsyslog(dir: &Path, udp: u16, tcp: u16, tls: u16) -> Rsyslog {
    let d = dir.display();
    let conf = format!(
        r#"global(workDirectory="{d}" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{d}/ca.pem" defaultNetstreamDriverCertFile="{d}/server.pem"
       defaultNetstreamDriverKeyFile="{d}/server.key")
module(load="imudp")
module(load="imtcp" maxSessions="20")
template(name="t" type="string" string="%inputname%|%pri%|%hostname%|%app-name%|%msgid%|%msg%\n")
ruleset(name="r") {{ action(type="omfile" file="{d}/out.log" template="t") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="r" name="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="r" name="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="r" name="tls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"#
    );
    std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(dir.join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rsyslog.err")).unwrap())
        .spawn()
        .unwrap();
    let r = Rsyslog { child, out: dir.join("out.log") };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", tls)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rsyslogd did not start: {}",
            std::fs::read_to_string(dir.join("rsyslog.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

#[test]
fn rsyslog_receives_udp_tcp_and_tls() {
    if !have("rsyslogd") || !have("openssl") {
        if std::env::var_os("CI").is_some() {
            panic!("rsyslogd or openssl missing under CI (.ci/run installs rsyslog and rsyslog-gnutls)");
        }
        eprintln!("skipping: rsyslogd (Debian packages rsyslog, rsyslog-gnutls) or openssl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(make_certs(dir.path()), "openssl could not make the test certificates");
    let (udp, tcp, tls) = (free_port(), free_port(), free_port());
    let rs = start_rsyslog(dir.path(), udp, tcp, tls);
    let syslog = |name: &str, transport, protocol, format, port: u16| SinkSettings {
        name: name.into(),
        kind: SinkType::Syslog,
        address: Some(format!("127.0.0.1:{port}")),
        transport,
        protocol,
        format,
        hostname: Some("sensor-1".into()),
        ..Default::default()
    };
    let tls_sink = SinkSettings {
        ca_file: Some(dir.path().join("ca.pem")),
        server_name: Some("localhost".into()),
        ..syslog("tls", SyslogTransport::Tls, SyslogProtocol::Rfc5424, Format::Ecs, tls)
    };
    let sinks = vec![
        syslog("udp", SyslogTransport::Udp, SyslogProtocol::Rfc5424, Format::Json, udp),
        syslog("udp3164", SyslogTransport::Udp, SyslogProtocol::Rfc3164, Format::Cef, udp),
        syslog("tcp", SyslogTransport::Tcp, SyslogProtocol::Rfc5424, Format::Cef, tcp),
        tls_sink,
    ];
    let state = tempfile::tempdir().unwrap();
    let m = SinkManager::start(&SinkOptions { global: fast_global(), sinks, spool_dir: state.path().join("spool") })
        .unwrap();
    let n = 20;
    for i in 0..n {
        m.offer("alerts", &line(&alert(i, "critical")));
        // UDP has no back-pressure: pace the datagrams so the receiver's socket buffer keeps up.
        std::thread::sleep(Duration::from_millis(2));
    }
    m.shutdown();
    let want = 4 * n;
    let t0 = Instant::now();
    let mut lines: Vec<String> = Vec::new();
    while t0.elapsed() < Duration::from_secs(10) {
        lines = std::fs::read_to_string(&rs.out).unwrap_or_default().lines().map(str::to_owned).collect();
        if lines.len() >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let snaps = m.snapshot();
    eprintln!("rsyslog: {} lines; sinks {}", lines.len(), serde_json::to_string(&snaps).unwrap());
    let of = |input: &str, needle: &str| {
        lines.iter().filter(|l| l.starts_with(&format!("{input}|")) && l.contains(needle)).count()
    };
    // local0 (16) * 8 + crit (2) = 130.
    let first: Vec<&String> = lines.iter().take(4).collect();
    // RFC 5424 JSON over UDP: PRI, HOSTNAME, APP-NAME and MSGID parsed by rsyslog.
    assert_eq!(of("udp", "|130|sensor-1|mirador|alerts|{\"actor\""), n, "{first:#?}");
    // RFC 3164 (no MSGID) with CEF over UDP.
    assert_eq!(of("udp", "|130|sensor-1|mirador|-| CEF:0|mirador|mirador|"), n, "{first:#?}");
    assert_eq!(of("tcp", "|130|sensor-1|mirador|alerts|CEF:0|mirador|mirador|"), n, "{first:#?}");
    assert_eq!(of("tls", "|130|sensor-1|mirador|alerts|{\"@timestamp\""), n, "{first:#?}");
    // Octet counting kept each TCP/TLS message whole: the JSON parses.
    for l in lines.iter().filter(|l| l.starts_with("tls|")) {
        let msg = l.splitn(6, '|').nth(5).unwrap().trim_start();
        let v: Value = serde_json::from_str(msg).unwrap();
        assert_eq!(v["event"]["kind"], "alert");
    }
    assert!(snaps.iter().all(|s| s.sent == n as u64 && s.spool_records == 0), "{snaps:?}");
}

/// A syslog TLS sink refuses a receiver whose certificate it cannot verify: records are spooled, not sent
/// in clear or to an impostor.
#[test]
fn tls_syslog_with_wrong_ca_spools() {
    if !have("rsyslogd") || !have("openssl") {
        eprintln!("skipping: rsyslogd or openssl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(make_certs(dir.path()));
    let other = tempfile::tempdir().unwrap();
    assert!(make_certs(other.path()));
    let (udp, tcp, tls) = (free_port(), free_port(), free_port());
    let _rs = start_rsyslog(dir.path(), udp, tcp, tls);
    let state = tempfile::tempdir().unwrap();
    let s = SinkSettings {
        name: "tls".into(),
        kind: SinkType::Syslog,
        transport: SyslogTransport::Tls,
        address: Some(format!("127.0.0.1:{tls}")),
        server_name: Some("localhost".into()),
        ca_file: Some(other.path().join("ca.pem")),
        ..Default::default()
    };
    let g = SinkGlobal { flush_timeout: Duration::from_millis(500), ..fast_global() };
    let m =
        SinkManager::start(&SinkOptions { global: g, sinks: vec![s], spool_dir: state.path().join("spool") }).unwrap();
    m.offer("alerts", &line(&alert(1, "high")));
    m.shutdown();
    let snap = m.snapshot().remove(0);
    assert_eq!((snap.sent, snap.spool_records), (0, 1), "{snap:?}");
    assert!(snap.failed >= 1);
}

// ---- schemas --------------------------------------------------------------------------------------------

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&p, x, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

fn ecs_type_ok(t: &str, v: &Value) -> bool {
    match t {
        "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "text" => v.is_string(),
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_i64() || v.is_u64(),
        "float" | "double" | "scaled_float" | "half_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "ip" => v.as_str().is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "date" => v.as_str().and_then(format::parse_rfc3339).is_some(),
        "object" | "flattened" | "nested" => true,
        _ => false,
    }
}

/// Checks an ECS document against the `@elastic/ecs` field list: every field outside the custom `mirador.*`
/// namespace and `labels.*` exists in ECS, has the ECS type and, where ECS lists them, an allowed value.
fn validate_ecs(doc: &Value, fields: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut errs = Vec::new();
    let mut flat = Vec::new();
    flatten("", doc, &mut flat);
    for required in ["@timestamp", "ecs.version", "event.kind", "event.category", "event.type", "observer.vendor"] {
        if !flat.iter().any(|(k, _)| k == required) {
            errs.push(format!("missing {required}"));
        }
    }
    for (k, v) in &flat {
        if k.starts_with("mirador.") || k.starts_with("labels.") {
            continue;
        }
        let Some(f) = fields.get(k) else {
            errs.push(format!("{k}: not an ECS field"));
            continue;
        };
        let t = f["type"].as_str().unwrap_or("");
        let values: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            x => vec![x],
        };
        for x in values {
            if !ecs_type_ok(t, x) {
                errs.push(format!("{k}: {x} is not of ECS type {t}"));
            }
            if let Some(allowed) = f.get("allowed").and_then(Value::as_array)
                && !allowed.contains(x)
            {
                errs.push(format!("{k}: {x} is not an allowed value"));
            }
        }
    }
    errs
}

fn ocsf_type_ok(base: &str, v: &Value) -> bool {
    match base {
        "string_t" => v.is_string(),
        "integer_t" | "long_t" => v.is_i64() || v.is_u64(),
        "float_t" => v.is_number(),
        "boolean_t" => v.is_boolean(),
        "json_t" => true,
        _ => false,
    }
}

/// Checks an OCSF object against the schema subset: known attributes only, types, enums, required ones.
fn validate_ocsf_obj(
    path: &str,
    v: &Value,
    attrs: &serde_json::Map<String, Value>,
    schema: &Value,
    errs: &mut Vec<String>,
) {
    let Some(m) = v.as_object() else {
        errs.push(format!("{path}: not an object"));
        return;
    };
    for (name, a) in attrs {
        if a["requirement"] == "required" && !m.contains_key(name) {
            errs.push(format!("{path}.{name}: required, missing"));
        }
    }
    for (k, x) in m {
        let p = format!("{path}.{k}");
        let Some(a) = attrs.get(k) else {
            errs.push(format!("{p}: not an attribute here"));
            continue;
        };
        let items: Vec<&Value> = if a.get("is_array") == Some(&Value::Bool(true)) {
            match x.as_array() {
                Some(arr) => arr.iter().collect(),
                None => {
                    errs.push(format!("{p}: must be an array"));
                    continue;
                }
            }
        } else {
            vec![x]
        };
        for item in items {
            if let Some(o) = a.get("object_type").and_then(Value::as_str) {
                if o == "object" {
                    continue; // free-form (`unmapped`)
                }
                match schema["objects"][o]["attributes"].as_object() {
                    Some(oa) => validate_ocsf_obj(&p, item, oa, schema, errs),
                    None => errs.push(format!("{p}: object type {o} not in the subset")),
                }
                continue;
            }
            let t = a["type"].as_str().unwrap_or("");
            let base = schema["types"][t].as_str().unwrap_or(t);
            if !ocsf_type_ok(base, item) {
                errs.push(format!("{p}: {item} is not {t}"));
            }
            if let Some(e) = a.get("enum").and_then(Value::as_array)
                && !e.contains(item)
            {
                errs.push(format!("{p}: {item} not in enum {e:?}"));
            }
        }
    }
}

#[test]
fn ecs_output_conforms_to_the_ecs_field_list() {
    let ecs: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("tests/sinks/ecs_flat_fields.json")).unwrap())
            .unwrap();
    let fields = ecs["fields"].as_object().unwrap();
    let obs = Observer { hostname: "sensor-1".into() };
    let tx = json!({"uid":"C1","ts":1768467602.0004067,"src_ip":"10.0.12.20","src_port":53606,"dst_ip":"10.20.1.15",
                    "dst_port":8080,"method":"GET","uri":"/v1/users/me","path":"/v1/users/me","host":"users.internal.example",
                    "user_agent":"Go-http-client/1.1","status":200});
    let cases = [
        (Stream::Alerts, alert(1, "high")),
        (Stream::Findings, finding(1)),
        (Stream::Inventory, inventory(1)),
        (Stream::Transactions, tx),
        (Stream::Alerts, json!({})),
    ];
    for (stream, rec) in cases {
        let doc = format::ecs(stream, &rec, &obs);
        let errs = validate_ecs(&doc, fields);
        assert!(errs.is_empty(), "{stream:?}: {errs:#?}\n{doc:#}");
    }
    let doc = format::ecs(Stream::Alerts, &alert(1, "high"), &obs);
    assert_eq!(
        doc["network"]["community_id"],
        format::community_id(
            &format::Endpoint { ip: "198.51.100.23".parse().ok(), port: Some(40000) },
            &format::Endpoint { ip: "10.20.1.15".parse().ok(), port: Some(8080) },
        )
        .unwrap()
    );
}

#[test]
fn ocsf_output_conforms_to_the_ocsf_schema() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("tests/sinks/ocsf_1.7.0_subset.json")).unwrap())
            .unwrap();
    let obs = Observer { hostname: "sensor-1".into() };
    let tx = json!({"uid":"C1","ts":1768467602.0,"src_ip":"10.0.12.20","src_port":53606,"dst_ip":"10.20.1.15",
                    "dst_port":8080,"method":"PATCH","path":"/v1/users/me","host":"users.internal.example","status":403});
    let cases = [
        (Stream::Alerts, alert(1, "critical"), "detection_finding"),
        (Stream::Findings, finding(1), "detection_finding"),
        (Stream::Inventory, inventory(1), "detection_finding"),
        (Stream::Transactions, tx, "api_activity"),
        (Stream::Alerts, json!({}), "detection_finding"),
        (Stream::Transactions, json!({}), "api_activity"),
    ];
    for (stream, rec, class) in cases {
        let doc = format::ocsf(stream, &rec, &obs);
        let c = &schema["classes"][class];
        let mut errs = Vec::new();
        validate_ocsf_obj(class, &doc, c["attributes"].as_object().unwrap(), &schema, &mut errs);
        assert_eq!(doc["class_uid"], c["class_uid"]);
        let (cu, au) = (doc["class_uid"].as_i64().unwrap(), doc["activity_id"].as_i64().unwrap());
        assert_eq!(doc["type_uid"].as_i64(), Some(cu * 100 + au));
        assert_eq!(doc["category_uid"].as_i64(), Some(cu / 1000));
        assert!(errs.is_empty(), "{stream:?}: {errs:#?}\n{doc:#}");
    }
}

#[test]
fn cef_and_formats_are_one_line_each() {
    let obs = Observer { hostname: "s".into() };
    for f in [Format::Json, Format::Ecs, Format::Ocsf, Format::Cef] {
        let out = f.render(Stream::Alerts, &alert(1, "high"), &obs);
        assert!(!out.contains(&b'\n'), "{f:?}");
    }
}

// ---- configuration --------------------------------------------------------------------------------------

#[test]
fn sinks_in_the_config_file() {
    let text = r#"
[state]
dir = "/tmp/mirador-state"

[sink]
flush_timeout = "3s"

[sinks.siem]
type = "syslog"
address = "127.0.0.1:6514"
transport = "tls"
format = "cef"
min_severity = "high"

[sinks.splunk]
type = "http"
flavor = "hec"
url = "https://splunk.example:8088/services/collector/event"
token = "t"
kinds = ["alerts", "findings"]
"#;
    let cfg = Config::from_toml_str(text, "mirador.toml").unwrap();
    let o = cfg.sink_options();
    assert_eq!(o.spool_dir, PathBuf::from("/tmp/mirador-state/spool"));
    assert_eq!(o.global.flush_timeout, Duration::from_secs(3));
    let names: Vec<&str> = o.sinks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["siem", "splunk"]);
    assert_eq!(o.sinks[0].format, Format::Cef);
    assert_eq!(o.sinks[1].kinds, [Stream::Alerts, Stream::Findings]);
    // Printed back and read again: the same sinks.
    let again = Config::from_toml_str(&cfg.to_toml_string(), "printed").unwrap();
    assert_eq!(again.sinks, cfg.sinks);

    let err = Config::from_toml_str("[sinks.x]\ntype = \"http\"\n", "mirador.toml").unwrap_err().to_string();
    assert!(err.contains("[sinks] url") && err.contains("[sinks.x]"), "{err}");
    let err =
        Config::from_toml_str("[sinks.x]\ntype = \"file\"\npaht = \"/x\"\n", "mirador.toml").unwrap_err().to_string();
    assert!(err.contains("line 3") && err.contains("unknown field `paht`"), "{err}");
    let err = Config::from_toml_str("[sinks.\"a b\"]\n", "mirador.toml").unwrap_err().to_string();
    assert!(err.contains("[sinks] name"), "{err}");
    #[cfg(not(feature = "kafka"))]
    {
        let err =
            Config::from_toml_str("[sinks.k]\ntype = \"kafka\"\nbrokers = \"b:9092\"\n", "m").unwrap_err().to_string();
        assert!(err.contains("feature `kafka`"), "{err}");
    }
}

/// A broker address nothing listens on: every record ends in the spool, and a restart finds them there
/// (delivery to a live broker, and an outage in the middle of a replay, are in tests/kafka.rs).
#[cfg(feature = "kafka")]
#[test]
fn kafka_broker_down_spools() {
    let state = tempfile::tempdir().unwrap();
    let s = SinkSettings {
        name: "fleet".into(),
        kind: SinkType::Kafka,
        brokers: Some(format!("127.0.0.1:{}", free_port())),
        ..Default::default()
    };
    let g = SinkGlobal {
        flush_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_millis(500),
        ..fast_global()
    };
    let opts = SinkOptions { global: g, sinks: vec![s], spool_dir: state.path().join("spool") };
    let m = SinkManager::start(&opts).unwrap();
    for i in 0..5 {
        m.offer("inventory", &line(&inventory(i)));
    }
    m.shutdown();
    let snap = m.snapshot().remove(0);
    assert_eq!((snap.sent, snap.spool_records), (0, 5), "{snap:?}");
    drop(m);
    let m = SinkManager::start(&opts).unwrap();
    assert_eq!(m.snapshot().remove(0).spool_records, 5);
    assert_eq!(mirador::sink::transport::kafka_key(&inventory(0)), "users.internal.example");
}

/// Prints the README's format samples: `cargo test --test sinks print_samples -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_samples() {
    let obs = Observer { hostname: "sensor-1".into() };
    let a = alert(1, "high");
    println!("JSON\n{a}");
    for f in [Format::Ecs, Format::Ocsf] {
        let v: Value = serde_json::from_slice(&f.render(Stream::Alerts, &a, &obs)).unwrap();
        println!("{f:?}\n{}", serde_json::to_string_pretty(&v).unwrap());
    }
    println!("CEF\n{}", String::from_utf8(Format::Cef.render(Stream::Alerts, &a, &obs)).unwrap());
    let h = format::SyslogHeader {
        protocol: SyslogProtocol::Rfc5424,
        facility: 16,
        hostname: "sensor-1".into(),
        app_name: "mirador".into(),
    };
    let msg = format::syslog_message(
        &h,
        Severity::High,
        1763932046.25,
        "alerts",
        &Format::Cef.render(Stream::Alerts, &a, &obs),
    );
    println!("SYSLOG\n{}", String::from_utf8(msg).unwrap());
}
