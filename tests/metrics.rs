//! The `/metrics` and `/healthz` server over real TCP connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirador::metrics::{AnalyzerCounters, MetricsError, PipelineCounters, QueueCounters, Telemetry, serve};
use mirador::pipeline::Stats;

/// Sends `request` and reads the whole response (the server closes after each one).
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // The server may answer and close before reading everything (oversized requests): ignore write errors.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn stats() -> Stats {
    let mut st = Stats::default();
    st.capture.packets = 1234;
    st.capture.bytes = 567_890;
    st.capture.kernel_drops = 7;
    st.capture.queue_full_drops = 2;
    st.decode.by_linktype.insert("ethernet", 1200);
    st.decode.tunnels.insert("vxlan", 40);
    st.decode.errors.bad_tcp_header = 3;
    st.decode.errors.unsupported_ethertype = 31;
    st.decode.fragments.seen = 12;
    st.decode.fragments.dropped_memcap = 1;
    st.flows.flows_created = 100;
    st.flows.tcp_flows = 90;
    st.flows.udp_flows = 10;
    st.flows.closed_fin = 60;
    st.flows.evicted = 5;
    st.flows.flow_cap_hits = 5;
    st.flows.gaps = 4;
    st.flows.gap_bytes = 4096;
    st.flows.overlaps_with_different_data = 1;
    st.http.transactions = 321;
    st.http.body_bytes_skipped = 99_000;
    st
}

fn counters() -> PipelineCounters {
    PipelineCounters {
        packet_queue: QueueCounters { enqueued_total: 1230, dequeued_total: 1229 },
        transaction_queue: QueueCounters { enqueued_total: 321, dequeued_total: 320 },
        queue_full_drops: 1,
        analyzers: vec![AnalyzerCounters { name: "inventory".into(), transactions: 320, nanos: 2_000_000_000 }],
        alerts_total: 2,
        findings_total: 11,
        transactions_total: 321,
        reassembly_memory_bytes: 65_536,
        ..Default::default()
    }
}

#[test]
fn metrics_and_health_over_tcp() {
    let telemetry = Arc::new(Telemetry::new());
    let server = serve("127.0.0.1:0".parse().unwrap(), Arc::clone(&telemetry)).expect("bind");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "the bound port is reported");
    telemetry.publish(&stats(), &counters());

    let (status, resp) = get(addr, "/metrics");
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("Content-Type: text/plain; version=0.0.4"), "{resp}");
    let lines: Vec<&str> = body(&resp).lines().collect();
    for want in [
        "mirador_packets_total 1234",
        "mirador_bytes_total 567890",
        "mirador_drops_total{reason=\"kernel\"} 7",
        "mirador_drops_total{reason=\"queue_full\"} 3",
        "mirador_drops_total{reason=\"flow_memcap\"} 5",
        "mirador_drops_total{reason=\"fragment_memcap\"} 1",
        "mirador_drops_total{reason=\"decode_error\"} 34",
        "mirador_drops_total{reason=\"body_cap\"} 99000",
        "mirador_drops_total{reason=\"interface\"} 0",
        "mirador_decode_errors_total{cause=\"bad_tcp_header\"} 3",
        "mirador_packets_by_linktype_total{linktype=\"ethernet\"} 1200",
        "mirador_tunnels_total{type=\"vxlan\"} 40",
        "mirador_fragments_total{outcome=\"seen\"} 12",
        "mirador_flows_total{proto=\"tcp\"} 90",
        "mirador_flows_closed_total{reason=\"fin\"} 60",
        "mirador_flows_closed_total{reason=\"evicted\"} 5",
        "mirador_flows_active 35",
        "mirador_tcp_gaps_total 4",
        "mirador_tcp_gap_bytes_total 4096",
        "mirador_tcp_overlaps_different_data_total 1",
        "mirador_http_transactions_total 321",
        "mirador_http_anomalies_total{flag=\"gap\"} 0",
        "mirador_queue_enqueued_total{queue=\"packets\"} 1230",
        "mirador_queue_dequeued_total{queue=\"transactions\"} 320",
        "mirador_analyzer_transactions_total{analyzer=\"inventory\"} 320",
        "mirador_analyzer_seconds_total{analyzer=\"inventory\"} 2",
        "mirador_alerts_total 2",
        "mirador_findings_total 11",
        "mirador_reassembly_memory_bytes 65536",
        "# TYPE mirador_drops_total counter",
        "# TYPE mirador_flows_active gauge",
        "# TYPE mirador_analyzer_seconds_total counter",
    ] {
        assert!(lines.contains(&want), "missing line {want:?} in:\n{}", body(&resp));
    }
    assert!(lines.iter().any(|l| l.starts_with("# HELP mirador_drops_total ")));

    // A later publish replaces the values (absolute counters), and the next scrape sees them.
    let mut st = stats();
    st.capture.kernel_drops = 9;
    telemetry.publish(&st, &counters());
    let (_, resp) = get(addr, "/metrics");
    assert!(body(&resp).lines().any(|l| l == "mirador_drops_total{reason=\"kernel\"} 9"));

    let (status, resp) = get(addr, "/healthz");
    assert_eq!((status, body(&resp)), (200, "ok\n"));
    telemetry.set_unhealthy("capture thread on eth1 stopped");
    let (status, resp) = get(addr, "/healthz");
    assert_eq!(status, 503, "{resp}");
    assert!(body(&resp).contains("capture thread on eth1 stopped"));
    telemetry.set_healthy();
    assert_eq!(get(addr, "/healthz").0, 200);

    assert_eq!(get(addr, "/nope").0, 404);
    assert_eq!(get(addr, "/metrics?x=1").0, 200);
    assert_eq!(exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(exchange(addr, b"garbage\r\n\r\n").0, 400);
    let (status, resp) = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((status, body(&resp)), (200, ""));

    server.shutdown();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "listener closed on shutdown");
}

#[test]
fn oversized_and_slow_requests_are_refused_without_hanging() {
    let telemetry = Arc::new(Telemetry::new());
    let server = serve("127.0.0.1:0".parse().unwrap(), telemetry).expect("bind");
    let addr = server.local_addr();

    let start = Instant::now();
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let (status, _) = exchange(addr, &big);
    assert_eq!(status, 431);
    assert!(start.elapsed() < Duration::from_secs(5));

    // A client that sends half a request and stalls is cut off after the request deadline.
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&buf));
    assert!(start.elapsed() < Duration::from_secs(5));

    // The server still answers afterwards.
    assert_eq!(get(addr, "/healthz").0, 200);
}

#[test]
fn bind_error_names_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = serve(addr, Arc::new(Telemetry::new())).err().expect("port in use");
    assert!(matches!(err, MetricsError::Bind { .. }));
    let msg = err.to_string();
    assert!(msg.contains(&addr.to_string()), "{msg}");
}
