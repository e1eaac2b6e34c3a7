//! Malformed request and status lines: every exchange on the wire is a transaction, with its defect named and
//! its response paired.

use std::sync::Arc;

use super::{HttpConfig, Transaction, TransactionRecord, run_fixture};

fn run(text: &[u8]) -> Vec<TransactionRecord> {
    run_fixture(text, Arc::new(HttpConfig::default())).iter().map(Transaction::record).collect()
}

fn summary(r: &TransactionRecord) -> (Option<&str>, Option<&str>, Option<&str>, Option<u16>) {
    (r.method.as_deref(), r.uri.as_deref(), r.version.as_deref(), r.status)
}

const BAD_400: &[u8] = b"<<<\nHTTP/1.1 400 Bad Request\nContent-Length: 3\n\nbad\\\n";

fn with_400(req: &[u8]) -> Vec<u8> {
    let mut v = b">>>\n".to_vec();
    v.extend_from_slice(req);
    v.extend_from_slice(BAD_400);
    v
}

#[test]
fn high_byte_method_is_a_transaction_with_its_response() {
    let r = run(&with_400(b"G\xc3\x28T /a HTTP/1.1\nHost: h\n\n"));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(summary(&r[0]), (Some("G\\xc3(T"), Some("/a"), Some("HTTP/1.1"), Some(400)));
    assert_eq!(r[0].host.as_deref(), Some("h"));
    assert_eq!(r[0].request_line.as_deref(), Some("G\\xc3(T /a HTTP/1.1"));
    assert!(r[0].flags.contains(&"invalid_method"), "{:?}", r[0].flags);
}

#[test]
fn missing_target_and_glued_version() {
    let r = run(&with_400(b"GET HTTP/1.1\nHost: h\n\n"));
    assert_eq!(summary(&r[0]), (Some("GET"), None, Some("HTTP/1.1"), Some(400)));
    assert!(r[0].flags.contains(&"missing_target"));
    let r = run(&with_400(b"GETHTTP/1.1\nHost: h\n\n"));
    assert_eq!(summary(&r[0]), (Some("GET"), None, Some("HTTP/1.1"), Some(400)));
    assert!(r[0].flags.contains(&"invalid_request_line") && r[0].flags.contains(&"missing_target"));
}

#[test]
fn missing_method_keeps_the_target() {
    let r = run(&with_400(b"/admin HTTP/1.0\n\n"));
    assert_eq!(summary(&r[0]), (None, Some("/admin"), Some("HTTP/1.0"), Some(400)));
    assert!(r[0].flags.contains(&"missing_method"));
}

#[test]
fn unknown_method_without_version_stands_alone() {
    // One line, no version, no headers: a request of its own; the valid request pipelined after it is read too.
    let r = run(b">>>\nFOO /x\nGET /y HTTP/1.1\nHost: h\n\n<<<\nHTTP/1.1 400 Bad Request\nContent-Length: 0\n\n\
HTTP/1.1 200 OK\nContent-Length: 0\n\n");
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(summary(&r[0]), (Some("FOO"), Some("/x"), None, Some(400)));
    assert!(r[0].flags.contains(&"missing_version"));
    assert_eq!(summary(&r[1]), (Some("GET"), Some("/y"), Some("HTTP/1.1"), Some(200)));
    assert!(r[1].flags.is_empty(), "{:?}", r[1].flags);
    assert_eq!(r[1].request_line, None);
}

#[test]
fn binary_junk_stays_junk() {
    // A SOCKS-like handshake before the request: not a transaction.
    let r = run(b">>>\n\x05\x01\x00\\\n<<<\n\x05\x00\\\n>>>\nGET / HTTP/1.1\nHost: h\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 0\n\n");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(summary(&r[0]), (Some("GET"), Some("/"), Some("HTTP/1.1"), Some(200)));
}

#[test]
fn http09_request_answered_with_a_status_line() {
    let r = run(b">>>\nGET /old\n<<<\nHTTP/1.1 400 Bad Request\nContent-Length: 3\n\nbad\\\n");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].uri.as_deref(), r[0].status), (Some("/old"), Some(400)));
    assert_eq!(r[0].response_body_len, 3);
    assert!(r[0].flags.contains(&"http09"));
}

#[test]
fn bad_status_line_is_kept() {
    let r = run(b">>>\nGET / HTTP/1.1\nHost: h\n\n<<<\nHTTP/1.1 2x0 Fine\nContent-Length: 0\n\n");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, None);
    assert_eq!(r[0].status_line.as_deref(), Some("HTTP/1.1 2x0 Fine"));
    assert!(r[0].flags.contains(&"invalid_status_line"));
    let r = run(b">>>\nGET / HTTP/1.1\nHost: h\n\n<<<\nICY 200 OK\n\nstream");
    assert_eq!(r[0].status_line.as_deref(), Some("ICY 200 OK"));
}

#[test]
fn malformed_fields_serialize_only_when_present() {
    let txs = run_fixture(&with_400(b"GET HTTP/1.1\n\n"), Arc::new(HttpConfig::default()));
    let mut line = Vec::new();
    txs[0].write_json(&mut line);
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["uri"], serde_json::Value::Null);
    assert_eq!(v["request_line"], "GET HTTP/1.1");
    assert_eq!(serde_json::to_value(txs[0].record()).unwrap(), v);
    let ok = run_fixture(b">>>\nGET / HTTP/1.1\n\n<<<\nHTTP/1.1 200 OK\n\n", Arc::new(HttpConfig::default()));
    let mut line = Vec::new();
    ok[0].write_json(&mut line);
    assert!(!String::from_utf8_lossy(&line).contains("request_line"));
}

#[test]
fn h2c_upgrade_is_recorded() {
    let r = run(b">>>\nGET / HTTP/1.1\nHost: h\nConnection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\n\n\
<<<\nHTTP/1.1 101 Switching Protocols\nConnection: Upgrade\nUpgrade: h2c\n\n");
    assert_eq!(r.len(), 1);
    assert!(r[0].flags.contains(&"upgraded") && r[0].flags.contains(&"upgrade_h2c"), "{:?}", r[0].flags);
    // A server that ignores the upgrade answers in HTTP/1.1: still recorded as asked.
    let r = run(b">>>\nGET / HTTP/1.1\nHost: h\nUpgrade: h2c\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 0\n\n");
    assert_eq!(r[0].flags, vec!["upgrade_h2c"]);
}

#[test]
fn fixtures_of_malformed_lines_and_websocket_frames() {
    let r = run(include_bytes!("testdata/malformed_lines.txt"));
    let got: Vec<_> = r.iter().map(|t| (t.method.as_deref(), t.uri.as_deref(), t.status)).collect();
    assert_eq!(
        got,
        vec![
            (Some("G\\xc9T"), Some("/a"), Some(400)),
            (Some("GET"), None, Some(400)),
            (Some("FOO"), Some("/x"), Some(405)),
            (Some("GET"), Some("/y"), None)
        ]
    );
    assert_eq!(r[3].status_line.as_deref(), Some("HTTP/1.1 2x0 OK"));
    let (txs, stats) = super::fixture::run_events(
        &super::parse_fixture(include_bytes!("testdata/websocket_frames.txt")),
        Arc::new(HttpConfig::default()),
    );
    let bodies: Vec<&[u8]> =
        txs.iter().skip(1).map(|t| if t.has_response { &t.response_body[..] } else { &t.request_body[..] }).collect();
    assert_eq!(bodies, vec![&b"{\"a\":1}"[..], b"{\"b\":2}", b"hello"]);
    assert_eq!((stats.websocket_frames_server, stats.websocket_frames_client), (4, 3));
}

#[test]
fn a_capture_that_starts_mid_body_does_not_swallow_the_next_request() {
    // The first packet is the tail of a form body (text, no LF); the next packet starts a request.
    let r =
        run(b">>>\nname=a&city=b\\\n>>>\nGET /next HTTP/1.1\nHost: h\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 0\n\n");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].method.as_deref(), r[0].uri.as_deref(), r[0].status), (Some("GET"), Some("/next"), Some(200)));
    assert!(r[0].flags.is_empty(), "{:?}", r[0].flags);
    // A JSON tail is junk at once.
    let r = run(b">>>\n{\"a\": 1}\\\n>>>\nGET /next HTTP/1.1\nHost: h\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 0\n\n");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].uri.as_deref(), Some("/next"));
}
