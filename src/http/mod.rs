//! HTTP/1.x framing over reassembled TCP streams.
//!
//! Input: the [`StreamEvent`](crate::reassembly::StreamEvent)s of both directions of one connection, in packet
//! order. Output: owned [`Transaction`]s (request + response, with parsed heads, capped bodies and the content-
//! decoded response body), pushed in request order as soon as both halves are complete, or at
//! [`HttpParser::finish`].
//!
//! Contract:
//! - Never panics and never errors on any bytes: malformed input sets a flag on the transaction it hits and bumps
//!   a counter in [`HttpStats`].
//! - Bounded memory per connection: one head buffer per direction (at most `max_header_bytes`), one line buffer
//!   (at most `max_line_bytes`), captured bodies (at most `body_capture_bytes` each, raw and decoded), at most
//!   `max_pipelined` transactions waiting for their response, and the decoders' own windows. Body bytes beyond the
//!   capture cap are counted and skipped, never copied.
//! - Gaps inside a length-framed body or a chunk's data are consumed exactly (the body length counts them);
//!   anywhere else the direction resyncs on the next plausible request or status line.
//! - 101 Switching Protocols ends HTTP parsing of the connection; so does a 2xx answer to CONNECT, unless the
//!   tunnel's first bytes are HTTP again (a plain-HTTP proxy tunnel).
//! - Roles: the first bytes that look like a request or a status line decide which direction is the client's
//!   (midstream captures, reversed orientation); junk before them (a SOCKS handshake) is skipped.
//! - Lengths: `request_body_len`/`response_body_len` are de-chunked bytes before content decoding (Suricata's
//!   `http.length`); `response_body_decoded_len` is after decoding (Zeek's `response_body_len`).
//!
//! Leniency follows what clients accept (and libhtp/Zeek model), so evasions do not hide bodies: lone CR as a line
//! end, leading blank space before a start line, junk lines before a status line, chunk sizes with trailing junk,
//! a "chunked" body that is not chunked (read as identity), reserved gzip header flags.
//!
//! Heads are parsed by our own line parser rather than httparse: a passive sensor must keep what a server would
//! accept (obs-fold in requests, bare LF, HTTP/0.9, lower-case methods, junk header lines) and say which anomaly it
//! saw, where httparse rejects the whole head.

#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod body;
pub use body::{HttpBudget, HttpLease};
pub mod decompress;
pub mod fixture;
mod parser;
pub mod secrets;
mod startline;
#[cfg(test)]
mod tests_malformed;
mod transaction;
mod websocket;
/// `%XX` and `+` decoding of query and form values, shared with the analyzers.
pub(crate) use transaction::percent_decode;

pub use decompress::DecompressConfig;
pub use fixture::{FixtureEvent, parse_fixture, run_fixture};
pub use parser::HttpParser;
pub use transaction::{Flag, Flags, Headers, Transaction, TransactionRecord, TunnelRecord, contains_ignore_ascii_case};

/// Caps and switches of the HTTP stage. Every cap is a field here with its default in [`Default`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Body bytes kept per message (raw, de-chunked) and per decoded body; the rest is counted and skipped.
    /// Suricata's `response-body-limit` default.
    pub body_capture_bytes: usize,
    /// Bytes of one head (start line + headers); beyond: flag `header_too_long`, parse what fits, skip to the
    /// blank line.
    pub max_header_bytes: usize,
    /// Headers kept per head; the rest are dropped (flag `too_many_headers`).
    pub max_headers: usize,
    /// Transactions waiting for a response; beyond, the oldest is emitted without one (flag
    /// `excessive_pipelining`).
    pub max_pipelined: usize,
    /// Length of a chunk-size line, trailer line or resync candidate line.
    pub max_line_bytes: usize,
    /// Query parameters parsed into `Transaction::query_params`.
    pub max_query_params: usize,
    /// 1xx interim codes kept in `info_codes` per transaction (more are counted, not kept).
    pub max_info_codes: usize,
    /// When false, the values of credential headers (Authorization, Proxy-Authorization, Cookie, Set-Cookie
    /// and API-key headers such as X-API-Key, see `transaction::SENSITIVE_HEADERS`) are masked in
    /// [`TransactionRecord`] (the transaction itself keeps them for analyzers).
    pub log_sensitive_headers: bool,
    /// Content-Encoding decoder caps (`[http.decompress]`).
    pub decompress: DecompressConfig,
    /// HTTP memory held at once, all flows together: head buffers, and captured and decoded bodies (in
    /// parsers, in queues and in the analyzers). When spent, bodies are counted but not captured (flag
    /// `http_memcap`, counted as drops `http_memcap`); heads count but are never cut (framing needs them).
    pub memcap_bytes: usize,
    /// The running budget `memcap_bytes` is drawn from: shared by every parser built from this
    /// configuration (and its clones), so all shards draw from one budget.
    #[serde(skip)]
    pub budget: std::sync::Arc<body::HttpBudget>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_capture_bytes: 100 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 256,
            max_pipelined: 64,
            max_line_bytes: 8 * 1024,
            max_query_params: 64,
            max_info_codes: 16,
            log_sensitive_headers: false,
            decompress: DecompressConfig::default(),
            memcap_bytes: 128 * 1024 * 1024,
            budget: Default::default(),
        }
    }
}

/// Counters of one parser (one connection); the caller sums them per shard.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HttpStats {
    pub transactions: u64,
    pub requests: u64,
    pub responses: u64,
    /// 1xx interim responses folded into `info_codes`.
    pub interim_responses: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Times a direction lost framing and searched for the next start line.
    pub resyncs: u64,
    /// Bytes discarded while resyncing.
    pub resync_bytes_skipped: u64,
    /// Body bytes beyond `body_capture_bytes`, counted and not copied.
    pub body_bytes_skipped: u64,
    /// Bytes after an upgrade/CONNECT tunnel or after an HTTP/0.9 exchange, ignored.
    pub tunnel_bytes_ignored: u64,
    pub decompression_bombs: u64,
    pub decompression_errors: u64,
    /// Bodies whose capture stopped because the process-wide body budget was spent.
    pub memcap_hits: u64,
    pub roles_swapped: u64,
    /// Connections that started with the HTTP/2 preface (prior knowledge): ignored.
    pub http2_connections: u64,
    /// Responses without a request that followed invalid request data: framed, not reported.
    pub responses_to_invalid_requests: u64,
    /// Malformed start lines whose copy in the record was cut at 1 KiB.
    pub raw_lines_cut: u64,
    /// WebSocket frames after an upgrade, by direction.
    pub websocket_frames_client: u64,
    pub websocket_frames_server: u64,
    /// WebSocket text messages handed to the analyzers (transactions flagged `websocket_message`).
    pub websocket_messages: u64,
    /// WebSocket streams abandoned on a reserved opcode or a gap (the rest is counted as tunnel bytes).
    pub websocket_lost: u64,
    /// Transactions carrying each flag (anomalies and outcomes), by flag name.
    pub flags: transaction::FlagCounts,
}

impl HttpStats {
    /// Adds another parser's counters (per-shard totals).
    pub fn merge(&mut self, o: &HttpStats) {
        self.transactions = self.transactions.saturating_add(o.transactions);
        self.requests = self.requests.saturating_add(o.requests);
        self.responses = self.responses.saturating_add(o.responses);
        self.interim_responses = self.interim_responses.saturating_add(o.interim_responses);
        self.gaps = self.gaps.saturating_add(o.gaps);
        self.gap_bytes = self.gap_bytes.saturating_add(o.gap_bytes);
        self.resyncs = self.resyncs.saturating_add(o.resyncs);
        self.resync_bytes_skipped = self.resync_bytes_skipped.saturating_add(o.resync_bytes_skipped);
        self.body_bytes_skipped = self.body_bytes_skipped.saturating_add(o.body_bytes_skipped);
        self.tunnel_bytes_ignored = self.tunnel_bytes_ignored.saturating_add(o.tunnel_bytes_ignored);
        self.decompression_bombs = self.decompression_bombs.saturating_add(o.decompression_bombs);
        self.memcap_hits = self.memcap_hits.saturating_add(o.memcap_hits);
        self.decompression_errors = self.decompression_errors.saturating_add(o.decompression_errors);
        self.roles_swapped = self.roles_swapped.saturating_add(o.roles_swapped);
        self.http2_connections = self.http2_connections.saturating_add(o.http2_connections);
        self.responses_to_invalid_requests =
            self.responses_to_invalid_requests.saturating_add(o.responses_to_invalid_requests);
        self.raw_lines_cut = self.raw_lines_cut.saturating_add(o.raw_lines_cut);
        self.websocket_frames_client = self.websocket_frames_client.saturating_add(o.websocket_frames_client);
        self.websocket_frames_server = self.websocket_frames_server.saturating_add(o.websocket_frames_server);
        self.websocket_messages = self.websocket_messages.saturating_add(o.websocket_messages);
        self.websocket_lost = self.websocket_lost.saturating_add(o.websocket_lost);
        self.flags.merge(&o.flags);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::fixture::{FixtureEvent, run_events};
    use super::*;
    use crate::reassembly::Dir;

    macro_rules! fx {
        ($name:literal) => {
            include_bytes!(concat!("testdata/", $name, ".txt")).as_slice()
        };
    }

    fn cfg() -> Arc<HttpConfig> {
        Arc::new(HttpConfig::default())
    }

    fn run(text: &[u8]) -> Vec<TransactionRecord> {
        run_fixture(text, cfg()).iter().map(Transaction::record).collect()
    }

    fn has(r: &TransactionRecord, f: &str) -> bool {
        r.flags.contains(&f)
    }

    #[test]
    fn simple_get() {
        let txs = run_fixture(fx!("simple_get"), cfg());
        assert_eq!(txs.len(), 1);
        let t = &txs[0];
        assert_eq!(t.path, "/index.html");
        assert_eq!(t.query_params[1], ("b".into(), "x y".into()));
        assert_eq!(t.response_body, b"hello");
        assert_eq!(t.request_headers.get("COOKIE"), Some("session=secret"));
        let r = t.record();
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.uri.as_deref(), Some("/index.html?a=1&b=x%20y"));
        assert_eq!(r.host.as_deref(), Some("www.example.com"));
        assert_eq!(r.user_agent.as_deref(), Some("test/1.0"));
        assert_eq!(r.version.as_deref(), Some("HTTP/1.1"));
        assert_eq!((r.status, r.status_msg.as_deref()), (Some(200), Some("OK")));
        assert_eq!((r.response_body_len, r.response_body_decoded_len), (5, Some(5)));
        assert_eq!((r.trans_depth, r.uid.as_str()), (1, "CFixture"));
        assert_eq!((r.src_port, r.dst_port), (Some(40000), Some(80)));
        assert!(r.flags.is_empty(), "{:?}", r.flags);
        assert!(r.ts < r.ts_response.unwrap());
        // Sensitive values are masked in the record only.
        assert!(r.request_headers.iter().any(|[n, v]| n == "Cookie" && v == "***"));
        assert!(r.response_headers.iter().any(|[n, v]| n == "Set-Cookie" && v == "***"));
        let open = Arc::new(HttpConfig { log_sensitive_headers: true, ..HttpConfig::default() });
        let r = run_fixture(fx!("simple_get"), open)[0].record();
        assert!(r.request_headers.iter().any(|[_, v]| v == "session=secret"));
        serde_json::to_string(&r).unwrap();
    }

    #[test]
    fn keepalive() {
        let r = run(fx!("keepalive"));
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].uri.as_deref(), Some("/one"));
        assert_eq!(r[1].uri.as_deref(), Some("/two"));
        assert_eq!(r[1].version.as_deref(), Some("HTTP/1.0"));
        assert_eq!(r[1].trans_depth, 2);
        assert!(r.iter().all(|t| t.response_body_len == 3 && t.flags.is_empty()));
    }

    #[test]
    fn pipelining() {
        let r = run(fx!("pipelining"));
        assert_eq!(r.len(), 3);
        let got: Vec<_> = r.iter().map(|t| (t.uri.clone().unwrap(), t.status, t.response_body_len)).collect();
        assert_eq!(got, vec![("/1".into(), Some(200), 1), ("/2".into(), Some(404), 2), ("/3".into(), Some(200), 0)]);
        assert!(r.iter().all(|t| t.flags.is_empty()), "{r:?}");
    }

    #[test]
    fn excessive_pipelining() {
        let mut text = b">>>\n".to_vec();
        for i in 0..10 {
            text.extend_from_slice(format!("GET /{i} HTTP/1.1\nHost: a\n\n").as_bytes());
        }
        let c = Arc::new(HttpConfig { max_pipelined: 4, ..HttpConfig::default() });
        let (txs, stats) = run_events(&parse_fixture(&text), c);
        assert_eq!(txs.len(), 10);
        let r: Vec<_> = txs.iter().map(Transaction::record).collect();
        assert!(has(&r[0], "excessive_pipelining") && has(&r[0], "request_only"));
        assert!(!has(&r[9], "excessive_pipelining") && has(&r[9], "request_only"));
        assert_eq!(stats.flags.get(Flag::EXCESSIVE_PIPELINING), 6);
    }

    #[test]
    fn continue_100() {
        let r = run(fx!("continue100"));
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].status, r[0].info_codes.clone()), (Some(201), vec![100]));
        assert_eq!(r[0].request_body_len, 10);
        assert!(r[0].flags.is_empty());
    }

    #[test]
    fn chunked_extensions_trailers() {
        let txs = run_fixture(fx!("chunked"), cfg());
        assert_eq!(txs.len(), 2);
        assert_eq!(txs[0].request_body, b"abcd");
        assert_eq!(txs[0].response_body, b"hello world");
        let r: Vec<_> = txs.iter().map(Transaction::record).collect();
        assert_eq!((r[0].request_body_len, r[0].response_body_len), (4, 11));
        assert_eq!((r[1].uri.as_deref(), r[1].status), (Some("/after"), Some(204)));
        assert!(r.iter().all(|t| t.flags.is_empty()), "{r:?}");
    }

    /// A response whose body is `body` with the given Content-Encoding, sent in small pieces.
    fn encoded(ce: &str, body: &[u8], c: Arc<HttpConfig>) -> (Transaction, HttpStats) {
        let req = b"GET /z HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        let mut resp =
            format!("HTTP/1.1 200 OK\r\nContent-Encoding: {ce}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        resp.extend_from_slice(body);
        let mut ev = vec![(Dir::ToServer, FixtureEvent::Data(req))];
        for piece in resp.chunks(700) {
            ev.push((Dir::ToClient, FixtureEvent::Data(piece.to_vec())));
        }
        let (mut txs, stats) = run_events(&ev, c);
        assert_eq!(txs.len(), 1);
        (txs.remove(0), stats)
    }

    #[test]
    fn content_codings() {
        use super::decompress::tests::{brotli_stored, gzip, raw_deflate, zlib, zstd};
        let plain = b"{\"user\":\"alice\",\"items\":[1,2,3]}".repeat(40);
        for (ce, enc) in [
            ("gzip", gzip(&plain)),
            ("x-gzip", gzip(&plain)),
            ("deflate", zlib(&plain)),
            ("deflate", raw_deflate(&plain)),
            ("br", brotli_stored(&plain)),
            ("zstd", zstd(&plain)),
            ("gzip, br", brotli_stored(&gzip(&plain))),
            ("deflate, gzip", gzip(&zlib(&plain))),
        ] {
            let (t, _) = encoded(ce, &enc, cfg());
            let r = t.record();
            assert_eq!(r.response_body_len, enc.len() as u64, "{ce}");
            assert_eq!(r.response_body_decoded_len, Some(plain.len() as u64), "{ce}");
            assert_eq!(t.decoded_response_body(), plain.as_slice(), "{ce}");
            assert_eq!(r.content_encoding.as_deref(), Some(ce));
            assert!(r.flags.is_empty(), "{ce}: {:?}", r.flags);
        }
        // Not actually compressed: the raw length stays, nothing decoded.
        let (t, stats) = encoded("gzip", b"plain text", cfg());
        assert_eq!((t.response_body_len, t.response_body_decoded_len), (10, Some(0)));
        assert_eq!(stats.decompression_errors, 1);
        let (t, _) = encoded("compress", b"xx", cfg());
        assert!(t.flags.has(Flag::UNKNOWN_CONTENT_ENCODING) && t.response_body_decoded_len.is_none());
    }

    #[test]
    fn decompression_bomb() {
        use super::decompress::tests::gzip;
        let enc = gzip(&vec![b'A'; 8 * 1024 * 1024]);
        let c = Arc::new(HttpConfig {
            decompress: DecompressConfig { max_output_bytes: 1024 * 1024, ..DecompressConfig::default() },
            ..HttpConfig::default()
        });
        let (t, stats) = encoded("gzip", &enc, c);
        assert!(t.flags.has(Flag::DECOMPRESSION_BOMB));
        assert_eq!(t.response_body_decoded_len, None);
        assert_eq!(t.response_body_len, enc.len() as u64);
        assert!(t.decoded_response_body().len() <= 100 * 1024);
        assert_eq!(stats.decompression_bombs, 1);
        let (t, _) = encoded("gzip, gzip, gzip, gzip", b"x", cfg());
        assert!(t.flags.has(Flag::DECOMPRESSION_BOMB));
    }

    #[test]
    fn gap_in_cl_body() {
        let r = run(fx!("gap_cl_body"));
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].response_body_len, has(&r[0], "gap")), (20, true));
        assert_eq!((r[1].uri.as_deref(), r[1].response_body_len), (Some("/next"), 2));
        assert!(r[1].flags.is_empty());
    }

    #[test]
    fn gap_in_head_resyncs() {
        let (txs, stats) = run_events(&parse_fixture(fx!("gap_head_resync")), cfg());
        let r: Vec<_> = txs.iter().map(Transaction::record).collect();
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].uri.as_deref(), Some("/first"));
        assert_eq!((r[1].uri.as_deref(), r[1].status), (Some("/found"), Some(200)));
        assert_eq!(stats.resyncs, 1);
        assert!(stats.resync_bytes_skipped > 0);
    }

    #[test]
    fn gap_flags_the_message_it_hits() {
        // A gap between messages on the server side: the waiting request's response was (partly) lost.
        let text = b">>>\nGET /a HTTP/1.1\n\nGET /b HTTP/1.1\n\n<<<\n><> 40\nHTTP/1.1 200 OK\nContent-Length: 0\n\n";
        let r = run(text);
        assert_eq!(r.len(), 2);
        assert!(has(&r[0], "gap"), "{r:?}");
        // A gap inside a request head: the next request found is flagged.
        let text = b">>>\nGET /x HTTP/1.1\nHo\\\n><> 9\nGET /y HTTP/1.1\n\n";
        let r = run(text);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].uri.as_deref(), Some("/y"));
        assert!(has(&r[0], "gap"));
    }

    #[test]
    fn gap_counters_saturate() {
        // The fixture format (and so the fuzz target) can announce gaps of any size: the byte counters stop at
        // u64::MAX instead of overflowing, in the parser and when shards' counters are merged.
        let text = b">>>\nGET /a HTTP/1.1\n\n<<<\n><> 18446744073709551615\n><> 18446744073709551615\n";
        let (_, stats) = run_events(&parse_fixture(text), cfg());
        assert_eq!((stats.gaps, stats.gap_bytes), (2, u64::MAX));
        let ignored = b">>>\n\x16\x03\x01junk\n><> 18446744073709551615\n><> 5\n";
        let (_, s2) = run_events(&parse_fixture(ignored), cfg());
        let mut total = stats.clone();
        total.merge(&stats);
        total.merge(&s2);
        assert_eq!(total.gap_bytes, u64::MAX);
        assert_eq!(total.gaps, 6);
    }

    #[test]
    fn long_uri_and_http2_preface() {
        let uri = format!("/q?{}", "a".repeat(20_000));
        let text = format!(">>>\nGET {uri} HTTP/1.1\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 0\n\n");
        let r = run(text.as_bytes());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].uri.as_deref(), Some(uri.as_str()));
        let (txs, stats) = run_events(&parse_fixture(b">>>\nPRI * HTTP/2.0\n\nSM\n\n<<<\n\x00\x00\x12\x04\n"), cfg());
        assert!(txs.is_empty());
        assert_eq!(stats.http2_connections, 1);
    }

    #[test]
    fn head_204_304() {
        let r = run(fx!("no_body_statuses"));
        let got: Vec<_> = r.iter().map(|t| (t.status, t.response_body_len)).collect();
        assert_eq!(got, vec![(Some(200), 0), (Some(204), 0), (Some(304), 0), (Some(200), 1)]);
        assert!(r.iter().all(|t| t.flags.is_empty()), "{r:?}");
    }

    #[test]
    fn websocket_upgrade() {
        let (txs, stats) = run_events(&parse_fixture(fx!("websocket")), cfg());
        assert_eq!(txs.len(), 1);
        let r = txs[0].record();
        assert_eq!(r.status, Some(101));
        assert!(has(&r, "upgraded"));
        // What follows is not websocket ("GET" is a reserved opcode): given up on, counted.
        assert_eq!(stats.websocket_lost, 1);
        assert!(stats.tunnel_bytes_ignored > 0);
    }

    #[test]
    fn connect_tunnel() {
        let (txs, stats) = run_events(&parse_fixture(fx!("connect")), cfg());
        assert_eq!(txs.len(), 1);
        let r = txs[0].record();
        assert_eq!(
            (r.method.as_deref(), r.uri.as_deref(), r.status),
            (Some("CONNECT"), Some("example.com:443"), Some(200))
        );
        assert!(has(&r, "connect"));
        assert!(stats.tunnel_bytes_ignored > 0);
    }

    #[test]
    fn connect_then_fragmented_request() {
        let ev = vec![
            (Dir::ToServer, FixtureEvent::Data(b"CONNECT abc:443 HTTP/1.1\r\n\r\n".to_vec())),
            (Dir::ToClient, FixtureEvent::Data(b"HTTP/1.1 200 OK\r\n\r\n".to_vec())),
            (Dir::ToServer, FixtureEvent::Data(b"GE".to_vec())),
            (Dir::ToServer, FixtureEvent::Data(b"T / HTTP/1.1\r\n\r\n".to_vec())),
            (Dir::ToClient, FixtureEvent::Data(b"HTTP/1.1 200 OK\r\n\r\n".to_vec())),
        ];
        let (txs, _) = run_events(&ev, cfg());
        assert_eq!(txs.len(), 2);
        assert_eq!((txs[1].method.as_str(), txs[1].uri.as_str()), ("GET", "/"));
    }

    #[test]
    fn connect_then_plain_http() {
        let r = run(fx!("connect_plain_http"));
        assert_eq!(r.len(), 2);
        assert!(has(&r[0], "connect"));
        assert_eq!((r[1].uri.as_deref(), r[1].status, r[1].response_body_len), (Some("/inner"), Some(200), 2));
    }

    #[test]
    fn junk_before_http_is_skipped() {
        // A SOCKS handshake before the HTTP exchange: each packet boundary is a resync point.
        let ev = vec![
            (Dir::ToServer, FixtureEvent::Data(b"\x05\x01\x00".to_vec())),
            (Dir::ToClient, FixtureEvent::Data(b"\x05\x00".to_vec())),
            (Dir::ToServer, FixtureEvent::Data(b"\x05\x01\x00\x01\x0a\x00\x00\x01\x00\x50".to_vec())),
            (Dir::ToClient, FixtureEvent::Data(b"\x05\x00\x00\x01\x0a\x00\x00\x01\x00\x50".to_vec())),
            (Dir::ToServer, FixtureEvent::Data(b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n".to_vec())),
            (Dir::ToClient, FixtureEvent::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx".to_vec())),
        ];
        let (txs, stats) = run_events(&ev, cfg());
        assert_eq!(txs.len(), 1);
        assert_eq!((txs[0].uri.as_str(), txs[0].status), ("/s", Some(200)));
        assert!(stats.resyncs >= 2);
        // Cruft that is not a known HTTP/0.9 method is not a request, and the 400 answering it is not reported.
        let r = run(b">>>\nT / HTTP\n\n<<<\nnope\n");
        assert!(r.is_empty(), "{r:?}");
        let (txs, stats) = run_events(
            &parse_fixture(b">>>\nGET / HTTP/1.1\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 0\n\n>>>\nT / HTTP\n\n<<<\nHTTP/1.1 400 Bad\nContent-Length: 1\n\nx\\\n"),
            cfg(),
        );
        assert_eq!(txs.len(), 1);
        assert_eq!(stats.responses_to_invalid_requests, 1);
        // Roles decided by the first HTTP-looking bytes, after junk on both sides.
        let ev = vec![
            (Dir::ToServer, FixtureEvent::Data(b"NZ\x8d\x08".to_vec())),
            (Dir::ToClient, FixtureEvent::Data(b"\x05\x01\x00".to_vec())),
            (Dir::ToServer, FixtureEvent::Data(b"\x05\x00".to_vec())),
            (Dir::ToClient, FixtureEvent::Data(b"GET /r HTTP/1.1\r\n\r\n".to_vec())),
            (Dir::ToServer, FixtureEvent::Data(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec())),
        ];
        let (txs, _) = run_events(&ev, cfg());
        assert_eq!(txs.len(), 1);
        assert_eq!((txs[0].uri.as_str(), txs[0].status, txs[0].roles_swapped), ("/r", Some(204), true));
    }

    #[test]
    fn http09() {
        let r = run(fx!("http09"));
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].uri.as_deref(), r[0].version.as_deref(), r[0].status),
            (Some("/old.html"), Some("HTTP/0.9"), None)
        );
        assert_eq!(r[0].response_body_len, b"<html>old school</html>\r\n".len() as u64);
        assert!(has(&r[0], "http09"));
    }

    #[test]
    fn missing_protocol_is_not_http09() {
        // Headers after a version-less line: an HTTP/1.x request missing its protocol (Suricata, issue 6643).
        let r = run(b">>>\nGET /x\nUser-Agent: myscript\nHost: a\n\n<<<\nHTTP/1.0 200 OK\nContent-Length: 2\n\nok\\\n");
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].uri.as_deref(), r[0].user_agent.as_deref(), r[0].status),
            (Some("/x"), Some("myscript"), Some(200))
        );
        assert_eq!(r[0].version, None);
        assert!(has(&r[0], "missing_version") && !has(&r[0], "http09"));
    }

    #[test]
    fn request_cut_by_the_capture() {
        // The request line is cut; the server still answers: one transaction, not an orphan.
        let ev = vec![
            (Dir::ToServer, FixtureEvent::Data(b"GET /images/box.gif HTT".to_vec())),
            (Dir::ToClient, FixtureEvent::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ngif".to_vec())),
        ];
        let (txs, _) = run_events(&ev, cfg());
        assert_eq!(txs.len(), 1);
        let r = txs[0].record();
        assert_eq!(
            (r.uri.as_deref(), r.version.as_deref(), r.status),
            (Some("/images/box.gif"), Some("HTT"), Some(200))
        );
        assert!(has(&r, "truncated") && !has(&r, "orphan"));
        // Cut at the end of the stream, with no response.
        let r = run(b">>>\nPOST /a HTTP/1.1\nHost: x\nContent-Le\\\n");
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].uri.as_deref(), r[0].host.as_deref()), (Some("/a"), Some("x")));
        assert!(has(&r[0], "truncated") && has(&r[0], "request_only"));
    }

    #[test]
    fn http10_close_delimited() {
        let r = run(fx!("http10_close"));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].response_body_len, b"body until close\r\nand more\r\n".len() as u64);
        assert!(r[0].flags.is_empty(), "{:?}", r[0].flags);
    }

    #[test]
    fn orphan_response() {
        let r = run(fx!("orphan"));
        assert_eq!(r.len(), 2);
        assert!(r[0].flags.is_empty());
        assert!(has(&r[1], "orphan"));
        assert_eq!((r[1].method.clone(), r[1].status, r[1].response_body_len), (None, Some(200), 2));
    }

    #[test]
    fn one_sided() {
        let r = run(fx!("request_only"));
        assert_eq!(r.len(), 1);
        assert!(has(&r[0], "request_only"));
        assert_eq!((r[0].request_body_len, r[0].status), (3, None));
        let r = run(fx!("response_only"));
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|t| has(t, "response_only") && t.method.is_none()));
        assert_eq!((r[0].status, r[1].status), (Some(200), Some(404)));
    }

    #[test]
    fn cl_and_te() {
        let r = run(fx!("cl_te"));
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(has(&r[0], "cl_and_te"));
        // Chunked wins: the body is empty and the smuggled request is a request of its own.
        assert_eq!(r[0].request_body_len, 0);
        assert_eq!(r[1].uri.as_deref(), Some("/smuggled"));
    }

    #[test]
    fn duplicate_and_conflicting_cl() {
        let r = run(fx!("dup_cl"));
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(has(&r[0], "dup_content_length") && r[0].request_body_len == 3);
        assert!(has(&r[1], "conflicting_content_length"));
        assert_eq!(r[1].request_body_len, 2);
    }

    #[test]
    fn obs_fold_and_bare_lf() {
        let txs = run_fixture(fx!("obs_fold"), cfg());
        assert_eq!(txs[0].request_headers.get("x-long"), Some("first second"));
        assert_eq!(txs[0].user_agent(), Some("ua"));
        assert!(txs[0].flags.has(Flag::OBS_FOLD));
        let r = run(fx!("bare_lf"));
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].host.as_deref(), r[0].status, r[0].response_body_len), (Some("a"), Some(200), 2));
        assert!(has(&r[0], "bare_lf"));
    }

    #[test]
    fn lowercase_method_kept() {
        let r = run(fx!("lowercase_method"));
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].method.as_deref(), r[0].status), (Some("get"), Some(200)));
        assert!(has(&r[0], "invalid_method"));
    }

    #[test]
    fn reversed_roles() {
        let (txs, stats) = run_events(&parse_fixture(fx!("reversed")), cfg());
        assert_eq!(txs.len(), 1);
        let r = txs[0].record();
        assert_eq!((r.uri.as_deref(), r.status, r.response_body_len), (Some("/rev"), Some(200), 2));
        // The HTTP client is the flow's server side.
        assert_eq!((r.src_port, r.dst_port), (Some(80), Some(40000)));
        assert_eq!(stats.roles_swapped, 1);
    }

    #[test]
    fn header_caps() {
        let c = Arc::new(HttpConfig { max_header_bytes: 256, max_headers: 3, ..HttpConfig::default() });
        let mut text = b">>>\nGET /big HTTP/1.1\n".to_vec();
        for i in 0..40 {
            text.extend_from_slice(format!("X-H{i}: {}\n", "v".repeat(20)).as_bytes());
        }
        text.extend_from_slice(b"\n<<<\nHTTP/1.1 200 OK\nContent-Length: 0\n\n");
        let txs = run_fixture(&text, c);
        assert_eq!(txs.len(), 1);
        assert!(txs[0].flags.has(Flag::HEADER_TOO_LONG) && txs[0].flags.has(Flag::TOO_MANY_HEADERS));
        assert_eq!(txs[0].request_headers.len(), 3);
        assert_eq!(txs[0].status, Some(200));
    }

    #[test]
    fn body_capture_cap() {
        let c = Arc::new(HttpConfig { body_capture_bytes: 10, ..HttpConfig::default() });
        let text =
            format!(">>>\nGET / HTTP/1.1\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 1000\n\n{}\\\n", "x".repeat(1000));
        let (txs, stats) = run_events(&parse_fixture(text.as_bytes()), c);
        assert_eq!((txs[0].response_body_len, txs[0].response_body.len()), (1000, 10));
        assert_eq!(stats.body_bytes_skipped, 990);
    }

    #[test]
    fn body_memcap_holds_across_transactions_until_they_are_dropped() {
        let c = Arc::new(HttpConfig { memcap_bytes: 50_000, ..HttpConfig::default() });
        let resp = |n: usize| format!("<<<\nHTTP/1.1 200 OK\nContent-Length: {n}\n\n{}\\\n", "x".repeat(n));
        let text = format!(">>>\nGET /a HTTP/1.1\n\nGET /b HTTP/1.1\n\n{}{}", resp(40_000), resp(40_000));
        let (txs, stats) = run_events(&parse_fixture(text.as_bytes()), Arc::clone(&c));
        assert_eq!(txs.len(), 2);
        assert_eq!((txs[0].response_body.len(), txs[0].flags.has(Flag::HTTP_MEMCAP)), (40_000, false));
        // The first transaction still holds its body: the second is counted, not fully captured.
        assert_eq!(txs[1].response_body_len, 40_000);
        assert!(txs[1].response_body.len() < 40_000 && txs[1].flags.has(Flag::HTTP_MEMCAP));
        assert_eq!(stats.memcap_hits, 1);
        assert!(c.budget.used() <= 50_000);
        drop(txs);
        assert_eq!(c.budget.used(), 0, "dropping the transactions gives the bytes back");
    }

    #[test]
    fn heads_count_in_the_http_budget_but_are_never_cut() {
        let c = Arc::new(HttpConfig { memcap_bytes: 1000, ..HttpConfig::default() });
        let text = format!(
            ">>>\nGET /big HTTP/1.1\nX-Pad: {}\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 2\n\nok\\\n",
            "p".repeat(3000)
        );
        let (txs, stats) = run_events(&parse_fixture(text.as_bytes()), Arc::clone(&c));
        assert_eq!(txs.len(), 1);
        // A cut head would lose the transaction's framing: heads are bounded by max_header_bytes instead.
        assert!(!txs[0].flags.has(Flag::HTTP_MEMCAP), "{:?}", txs[0].flags.names());
        assert_eq!((txs[0].method.as_str(), txs[0].status), ("GET", Some(200)));
        assert_eq!(txs[0].request_headers.get("x-pad").map(str::len), Some(3000));
        assert_eq!(stats.memcap_hits, 0);
        drop(txs);
        assert_eq!(c.budget.used(), 0, "the head's bytes were given back");
    }

    #[test]
    fn every_split_gives_the_same_result() {
        // Byte-at-a-time delivery must frame exactly like one chunk.
        for name in [fx!("chunked"), fx!("pipelining"), fx!("continue100"), fx!("obs_fold")] {
            let whole = run(name);
            let mut ev = Vec::new();
            for (d, e) in parse_fixture(name) {
                match e {
                    FixtureEvent::Data(b) => ev.extend(b.iter().map(|x| (d, FixtureEvent::Data(vec![*x])))),
                    other => ev.push((d, other)),
                }
            }
            let split: Vec<_> = run_events(&ev, cfg()).0.iter().map(Transaction::record).collect();
            let key = |r: &Vec<TransactionRecord>| {
                r.iter()
                    .map(|t| (t.uri.clone(), t.status, t.request_body_len, t.response_body_len, t.flags.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(key(&whole), key(&split));
        }
    }

    #[test]
    fn config_from_partial_json() {
        let c: HttpConfig =
            serde_json::from_str(r#"{"body_capture_bytes": 10, "decompress": {"max_layers": 1}}"#).unwrap();
        assert_eq!((c.body_capture_bytes, c.max_headers, c.decompress.max_layers), (10, 256, 1));
        assert!(serde_json::from_str::<HttpConfig>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn parser_is_send() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<HttpParser>();
        send_sync::<Transaction>();
    }

    /// Replays per-direction payloads extracted by tshark (`HTTP_EVAL_IN`, one JSON object per case:
    /// `{"case", "streams": [{"client", "server", "events": [[0|1, hex], ...]}]}`) and writes
    /// `HTTP_EVAL_OUT/<case>/transactions.jsonl` for the corpus scorer. A development aid, not a unit test.
    #[test]
    #[ignore]
    fn corpus_replay() {
        use std::io::Write;
        let (Ok(inp), Ok(out_dir)) = (std::env::var("HTTP_EVAL_IN"), std::env::var("HTTP_EVAL_OUT")) else {
            return;
        };
        let text = std::fs::read_to_string(inp).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let case = v["case"].as_str().unwrap();
            let dir = std::path::Path::new(&out_dir).join(case);
            std::fs::create_dir_all(&dir).unwrap();
            let mut f = std::fs::File::create(dir.join("transactions.jsonl")).unwrap();
            let mut b = std::fs::File::create(dir.join("bodies.jsonl")).unwrap();
            for (i, s) in v["streams"].as_array().unwrap().iter().enumerate() {
                let parse = |x: &serde_json::Value| -> std::net::SocketAddr {
                    let s = x.as_str().unwrap();
                    s.parse().unwrap_or_else(|_| {
                        let (h, p) = s.rsplit_once(':').unwrap();
                        std::net::SocketAddr::new(h.parse().unwrap(), p.parse().unwrap())
                    })
                };
                let flow = Arc::new(crate::flow::FlowInfo {
                    uid: format!("C{i}"),
                    community_id: String::new(),
                    client: parse(&s["client"]),
                    server: parse(&s["server"]),
                    encap: crate::decode::Encap::default(),
                });
                let mut p = HttpParser::new(cfg(), flow);
                let mut out = Vec::new();
                for (k, e) in s["events"].as_array().unwrap().iter().enumerate() {
                    let d = if e[0].as_u64() == Some(0) { Dir::ToServer } else { Dir::ToClient };
                    let hex = e[1].as_str().unwrap().as_bytes();
                    let bytes: Vec<u8> = hex
                        .chunks(2)
                        .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
                        .collect();
                    let ts = crate::capture::Timestamp(k as u64 * 1000);
                    let ev = match e.get(2).and_then(|n| n.as_u64()) {
                        Some(n) if e[1] == "gap" => crate::reassembly::StreamEvent::Gap(n),
                        _ => crate::reassembly::StreamEvent::Data(&bytes),
                    };
                    p.on_stream(d, ts, ev, &mut out);
                }
                p.finish(crate::capture::Timestamp(u64::MAX / 2), &mut out);
                for t in &out {
                    writeln!(f, "{}", serde_json::to_string(&t.record()).unwrap()).unwrap();
                    writeln!(
                        b,
                        "{}",
                        serde_json::to_string(&String::from_utf8_lossy(t.decoded_response_body())).unwrap()
                    )
                    .unwrap();
                }
            }
        }
    }

    /// Rough throughput on keep-alive traffic in 1460-byte segments (run with --release --ignored).
    #[test]
    #[ignore]
    fn throughput() {
        let mut msgs = Vec::new();
        for i in 0..20_000 {
            let req = format!(
                "GET /api/v1/items/{i}?page=2&q=x HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench\r\n\
                 Accept: */*\r\nCookie: a=b\r\n\r\n"
            );
            let body = if i % 2 == 0 { 900 } else { 20_000 };
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body}\r\nServer: x\r\n\r\n"
            )
            .into_bytes();
            resp.extend(std::iter::repeat_n(b'{', body));
            msgs.push((req.into_bytes(), resp));
        }
        let mut p = HttpParser::new(cfg(), fixture::fixture_flow());
        let mut out = Vec::new();
        let ts = crate::capture::Timestamp(0);
        let start = std::time::Instant::now();
        let mut n = 0;
        let mut bytes = 0;
        for (req, resp) in &msgs {
            for (dir, m) in [(Dir::ToServer, req), (Dir::ToClient, resp)] {
                bytes += m.len();
                for c in m.chunks(1460) {
                    p.on_stream(dir, ts, crate::reassembly::StreamEvent::Data(c), &mut out);
                }
            }
            n += out.len();
            out.clear();
        }
        p.finish(ts, &mut out);
        n += out.len();
        let secs = start.elapsed().as_secs_f64();
        let mb = bytes as f64 / 1e6;
        eprintln!("{n} tx, {mb:.1} MB in {secs:.3}s: {:.0} MB/s, {:.0} tx/s", mb / secs, n as f64 / secs);
        assert_eq!(n, 20_000);
    }

    mod prop {
        use super::*;
        use crate::capture::Timestamp;
        use crate::reassembly::StreamEvent;
        use proptest::prelude::*;

        fn event() -> impl Strategy<Value = (bool, Option<Vec<u8>>, u64)> {
            let seeds: Vec<&'static [u8]> = vec![
                b"GET / HTTP/1.1\r\n",
                b"HTTP/1.1 200 OK\r\n",
                b"Content-Length: 5\r\n",
                b"Transfer-Encoding: chunked\r\n",
                b"\r\n",
                b"5\r\nhello\r\n0\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"Content-Encoding: gzip\r\n",
            ];
            (
                any::<bool>(),
                prop_oneof![
                    3 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Some),
                    3 => proptest::sample::select(seeds).prop_map(|s| Some(s.to_vec())),
                    1 => Just(None),
                ],
                0u64..100_000,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
                        /// Fixtures cut at random points, with bytes flipped and gaps inserted: reaches deep states that
            /// random bytes rarely do.
            #[test]
            fn mutated_fixtures_never_panic(
                which in 0usize..10,
                cuts in proptest::collection::vec(1usize..64, 1..40),
                flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                gaps in proptest::collection::vec((any::<usize>(), 1u64..3000), 0..3),
            ) {
                let texts = [
                    fx!("chunked"), fx!("pipelining"), fx!("continue100"), fx!("gap_cl_body"),
                    fx!("cl_te"), fx!("websocket"), fx!("http09"), fx!("connect_plain_http"),
                    fx!("malformed_lines"), fx!("websocket_frames"),
                ];
                let c = Arc::new(HttpConfig { max_header_bytes: 256, max_line_bytes: 64, max_pipelined: 2, ..HttpConfig::default() });
                let mut p = HttpParser::new(c, fixture::fixture_flow());
                let mut out = Vec::new();
                let mut k = 0usize;
                for (dir, ev) in parse_fixture(texts[which % texts.len()]) {
                    let FixtureEvent::Data(mut d) = ev else { continue };
                    for (pos, b) in &flips {
                        if !d.is_empty() {
                            let i = pos % d.len();
                            d[i] ^= b;
                        }
                    }
                    let mut rest = d.as_slice();
                    while !rest.is_empty() {
                        let n = cuts[k % cuts.len()].min(rest.len());
                        let (a, b) = rest.split_at(n);
                        p.on_stream(dir, Timestamp(k as u64), StreamEvent::Data(a), &mut out);
                        if let Some((_, g)) = gaps.iter().find(|(at, _)| at % 97 == k % 97) {
                            p.on_stream(dir, Timestamp(k as u64), StreamEvent::Gap(*g), &mut out);
                        }
                        rest = b;
                        k += 1;
                    }
                }
                p.finish(Timestamp(1_000_000), &mut out);
                prop_assert!(p.pending_len() == 0);
                for t in &out {
                    serde_json::to_string(&t.record()).unwrap();
                }
            }

            #[test]
            fn never_panics_and_stays_bounded(evs in proptest::collection::vec(event(), 0..60)) {
                let c = Arc::new(HttpConfig { max_header_bytes: 512, max_line_bytes: 128, max_pipelined: 4, body_capture_bytes: 256, ..HttpConfig::default() });
                let mut p = HttpParser::new(c, fixture::fixture_flow());
                let mut out = Vec::new();
                for (i, (to_server, data, gap)) in evs.iter().enumerate() {
                    let dir = if *to_server { Dir::ToServer } else { Dir::ToClient };
                    let ev = match data { Some(d) => StreamEvent::Data(d), None => StreamEvent::Gap(*gap) };
                    p.on_stream(dir, Timestamp(i as u64), ev, &mut out);
                                        prop_assert!(p.max_buffered() <= 512 + 128);
                    // The pipelining cap, plus at most one orphan response being read.
                    prop_assert!(p.pending_len() <= 4 + 1);
                }
                p.finish(Timestamp(1_000), &mut out);
                for t in &out {
                    prop_assert!(t.request_body.len() <= 256 && t.response_body.len() <= 256);
                    serde_json::to_string(&t.record()).unwrap();
                }
            }
        }
    }
}
