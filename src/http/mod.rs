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
//! - 101 Switching Protocols and a 2xx answer to CONNECT end HTTP parsing of the connection.
//!
//! Heads are parsed by our own line parser rather than httparse: a passive sensor must keep what a server would
//! accept (obs-fold in requests, bare LF, HTTP/0.9, lower-case methods, junk header lines) and say which anomaly it
//! saw, where httparse rejects the whole head.

mod body;
pub mod decompress;
pub mod fixture;
mod parser;
mod transaction;

pub use decompress::DecompressConfig;
pub use fixture::{FixtureEvent, parse_fixture, run_fixture};
pub use parser::HttpParser;
pub use transaction::{Flag, Flags, Headers, Transaction, TransactionRecord, TunnelRecord};

/// Caps and switches of the HTTP stage. Every cap is a field here with its default in [`Default`].
#[derive(Clone, Debug, serde::Serialize)]
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
    /// When false, the values of Authorization, Proxy-Authorization, Cookie and Set-Cookie are masked in
    /// [`TransactionRecord`] (the transaction itself keeps them for analyzers).
    pub log_sensitive_headers: bool,
    pub decompress: DecompressConfig,
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
            log_sensitive_headers: false,
            decompress: DecompressConfig::default(),
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
    pub roles_swapped: u64,
    /// Transactions carrying each flag (anomalies and outcomes), by flag name.
    pub flags: transaction::FlagCounts,
}

impl HttpStats {
    /// Adds another parser's counters (per-shard totals).
    pub fn merge(&mut self, o: &HttpStats) {
        self.transactions += o.transactions;
        self.requests += o.requests;
        self.responses += o.responses;
        self.interim_responses += o.interim_responses;
        self.gaps += o.gaps;
        self.gap_bytes += o.gap_bytes;
        self.resyncs += o.resyncs;
        self.resync_bytes_skipped += o.resync_bytes_skipped;
        self.body_bytes_skipped += o.body_bytes_skipped;
        self.tunnel_bytes_ignored += o.tunnel_bytes_ignored;
        self.decompression_bombs += o.decompression_bombs;
        self.decompression_errors += o.decompression_errors;
        self.roles_swapped += o.roles_swapped;
        self.flags.merge(&o.flags);
    }
}
