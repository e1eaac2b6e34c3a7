//! Transaction: one request and its response, owned, read by analyzers without re-parsing.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::flow::FlowInfo;

/// One flag a transaction can carry: an outcome (gap, orphan, upgraded...) or an anomaly (malformed cause).
/// An open newtype over a bit index so adding a flag never breaks a match.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flag(pub u8);

impl Flag {
    pub const GAP: Flag = Flag(0);
    pub const TRUNCATED: Flag = Flag(1);
    pub const REQUEST_ONLY: Flag = Flag(2);
    pub const RESPONSE_ONLY: Flag = Flag(3);
    pub const ORPHAN: Flag = Flag(4);
    pub const UPGRADED: Flag = Flag(5);
    pub const CONNECT: Flag = Flag(6);
    pub const HTTP09: Flag = Flag(7);
    pub const DECOMPRESSION_BOMB: Flag = Flag(8);
    pub const DUP_CONTENT_LENGTH: Flag = Flag(9);
    pub const CONFLICTING_CONTENT_LENGTH: Flag = Flag(10);
    pub const CL_AND_TE: Flag = Flag(11);
    pub const INVALID_CHUNK: Flag = Flag(12);
    pub const HEADER_TOO_LONG: Flag = Flag(13);
    pub const TOO_MANY_HEADERS: Flag = Flag(14);
    pub const INVALID_REQUEST_LINE: Flag = Flag(15);
    pub const INVALID_STATUS_LINE: Flag = Flag(16);
    pub const EXCESSIVE_PIPELINING: Flag = Flag(17);
    pub const OBS_FOLD: Flag = Flag(18);
    pub const BARE_LF: Flag = Flag(19);
    pub const INVALID_METHOD: Flag = Flag(20);
    pub const INVALID_CONTENT_LENGTH: Flag = Flag(21);
    pub const INVALID_HEADER: Flag = Flag(22);
    pub const SPACE_BEFORE_COLON: Flag = Flag(23);
    pub const UNKNOWN_TRANSFER_ENCODING: Flag = Flag(24);
    pub const DECOMPRESSION_ERROR: Flag = Flag(25);
    pub const UNKNOWN_CONTENT_ENCODING: Flag = Flag(26);
    pub const INVALID_VERSION: Flag = Flag(27);
    pub const MISSING_HOST: Flag = Flag(28);
    pub const DUP_HOST: Flag = Flag(29);
    pub const CHUNK_TOO_BIG: Flag = Flag(30);
    pub const INVALID_TRAILER: Flag = Flag(31);
    pub const BARE_CR: Flag = Flag(32);
    /// A body's capture stopped early: the process-wide HTTP memory budget (`http.memcap_bytes`) was spent.
    pub const HTTP_MEMCAP: Flag = Flag(33);
    /// A request line with a method and a version but no target ("GET HTTP/1.1"; Zeek's `missing_HTTP_uri`).
    pub const MISSING_TARGET: Flag = Flag(34);
    /// A request line without "HTTP/x.y" that is not an HTTP/0.9 request (headers follow, or the method is not
    /// one HTTP/0.9 knew).
    pub const MISSING_VERSION: Flag = Flag(35);
    /// A request line that starts with its target ("/a HTTP/1.1").
    pub const MISSING_METHOD: Flag = Flag(36);
    /// A text message of a websocket connection (client's in the request body, server's in the response body).
    pub const WEBSOCKET_MESSAGE: Flag = Flag(37);
    /// The client asked to upgrade to HTTP/2 in cleartext (`Upgrade: h2c`).
    pub const UPGRADE_H2C: Flag = Flag(38);

    const NAMES: [&'static str; 39] = [
        "gap",
        "truncated",
        "request_only",
        "response_only",
        "orphan",
        "upgraded",
        "connect",
        "http09",
        "decompression_bomb",
        "dup_content_length",
        "conflicting_content_length",
        "cl_and_te",
        "invalid_chunk",
        "header_too_long",
        "too_many_headers",
        "invalid_request_line",
        "invalid_status_line",
        "excessive_pipelining",
        "obs_fold",
        "bare_lf",
        "invalid_method",
        "invalid_content_length",
        "invalid_header",
        "space_before_colon",
        "unknown_transfer_encoding",
        "decompression_error",
        "unknown_content_encoding",
        "invalid_version",
        "missing_host",
        "dup_host",
        "chunk_too_big",
        "invalid_trailer",
        "bare_cr",
        "http_memcap",
        "missing_target",
        "missing_version",
        "missing_method",
        "websocket_message",
        "upgrade_h2c",
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES.get(self.0 as usize).copied().unwrap_or("other")
    }
}

/// A set of [`Flag`]s.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags(u64);

impl Flags {
    /// Sets `f`; true when it was not set before.
    pub fn set(&mut self, f: Flag) -> bool {
        let bit = 1u64 << (f.0 & 63);
        let new = self.0 & bit == 0;
        self.0 |= bit;
        new
    }
    pub fn has(&self, f: Flag) -> bool {
        self.0 & (1u64 << (f.0 & 63)) != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = Flag> + '_ {
        (0..64u8).map(Flag).filter(|f| self.has(*f))
    }
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Flag::name).collect()
    }
}

/// Per-flag transaction counters, serialized as `{name: count}` without the zeros.
#[derive(Clone, Debug)]
pub struct FlagCounts([u64; 64]);

impl Default for FlagCounts {
    fn default() -> Self {
        FlagCounts([0; 64])
    }
}

impl FlagCounts {
    pub fn add(&mut self, flags: Flags) {
        for f in flags.iter() {
            if let Some(c) = self.0.get_mut(f.0 as usize) {
                *c += 1;
            }
        }
    }
    pub fn get(&self, f: Flag) -> u64 {
        self.0.get(f.0 as usize).copied().unwrap_or(0)
    }
    pub fn merge(&mut self, o: &FlagCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += *b;
        }
    }
}

impl Serialize for FlagCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (i, c) in self.0.iter().enumerate() {
            if *c > 0 {
                m.serialize_entry(Flag(i as u8).name(), c)?;
            }
        }
        m.end()
    }
}

/// Headers in wire order, names and values as seen (lossy UTF-8), with a case-insensitive lookup.
/// Kept as one string (name, value, name, value...) and the end offsets of each piece: a head costs two
/// allocations however many headers it has (a String per name and value was a fifth of replay time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    /// (end of the name, end of the value) in `text`; a header starts where the previous one ended.
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// Room for `headers` headers totalling `bytes` bytes of names and values.
    pub fn with_capacity(headers: usize, bytes: usize) -> Self {
        Headers { text: String::with_capacity(bytes), ends: Vec::with_capacity(headers) }
    }
    pub fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let n = self.text.len();
        self.text.push_str(value);
        self.ends.push((n, self.text.len()));
    }
    /// The first value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        // A plain loop, not `get_all(name).next()`: the iterator's closure stayed a call in the analyzers'
        // dozen lookups per transaction (+0.6% instructions on the benchmark cut).
        let mut start = 0;
        for &(n, v) in &self.ends {
            if self.name_is(start, n, name) {
                return self.text.get(n..v);
            }
            start = v;
        }
        None
    }
    fn name_is(&self, begin: usize, end: usize, name: &str) -> bool {
        end.wrapping_sub(begin) == name.len()
            && self.text.as_bytes().get(begin..end).is_some_and(|b| b.eq_ignore_ascii_case(name.as_bytes()))
    }
    /// Every value of `name`, in order. Names are told apart by length before any byte is compared: the
    /// analyzers look up a dozen headers in every message.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        let mut start = 0;
        self.ends.iter().filter_map(move |&(n, v)| {
            let begin = start;
            start = v;
            if self.name_is(begin, n, name) { self.text.get(n..v) } else { None }
        })
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(n, v)| {
            let pair = (self.text.get(start..n).unwrap_or(""), self.text.get(n..v).unwrap_or(""));
            start = v;
            pair
        })
    }
}

/// Whether `needle` occurs in `hay`, ASCII case ignored (header values, content types, cookie names).
pub fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    needle.is_empty() || hay.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Builds [`Headers`] from wire bytes, escaped as [`escape_bytes`] logs them. Printable ASCII (nearly every
/// header) is copied as bytes and the whole text is checked as UTF-8 once at the end, instead of per piece.
#[derive(Debug, Default)]
pub(crate) struct HeadersBuilder {
    text: Vec<u8>,
    ends: Vec<(usize, usize)>,
}

impl HeadersBuilder {
    pub(crate) fn with_capacity(headers: usize, bytes: usize) -> Self {
        HeadersBuilder { text: Vec::with_capacity(bytes), ends: Vec::with_capacity(headers) }
    }
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
    pub(crate) fn push_escaped(&mut self, name: &[u8], value: &[u8]) {
        self.piece(name);
        let n = self.text.len();
        self.piece(value);
        self.ends.push((n, self.text.len()));
    }
    fn piece(&mut self, b: &[u8]) {
        if all_printable_ascii(b) {
            self.text.extend_from_slice(b);
        } else {
            self.text.extend_from_slice(escape_bytes(b).as_bytes());
        }
    }
    pub(crate) fn finish(self) -> Headers {
        match String::from_utf8(self.text) {
            Ok(text) => Headers { text, ends: self.ends },
            // Unreachable: every piece is ASCII or escape_bytes output. Rebuilt safely rather than trusted.
            Err(e) => {
                let text = e.into_bytes();
                let mut h = Headers::default();
                let mut start = 0;
                for &(n, v) in &self.ends {
                    let name = String::from_utf8_lossy(text.get(start..n).unwrap_or(&[]));
                    let value = String::from_utf8_lossy(text.get(n..v).unwrap_or(&[]));
                    h.push(&name, &value);
                    start = v;
                }
                h
            }
        }
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(it: I) -> Self {
        let mut h = Headers::default();
        for (n, v) in it {
            h.push(n.as_ref(), v.as_ref());
        }
        h
    }
}

impl From<Vec<(String, String)>> for Headers {
    fn from(v: Vec<(String, String)>) -> Self {
        v.into_iter().collect()
    }
}

/// One request/response exchange. Either half may be missing (request-only, orphan response).
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    pub flow: Option<Arc<FlowInfo>>,
    /// The HTTP client is the flow's server (roles were reversed: midstream capture).
    pub roles_swapped: bool,
    /// 1-based position in the connection.
    pub trans_depth: u64,
    /// Start of the request (or of the response for an orphan), seconds.
    pub ts: f64,
    pub ts_response: Option<f64>,
    pub has_request: bool,
    pub has_response: bool,

    pub method: String,
    /// Request target as sent.
    pub uri: String,
    /// `uri` before `?` (and without a `scheme://authority` prefix in absolute form).
    pub path: String,
    /// After `?`, without it.
    pub query: Option<String>,
    /// Query parameters, percent-decoded (`+` as space), at most `max_query_params`.
    pub query_params: Vec<(String, String)>,
    /// "HTTP/1.1" etc., as sent; "HTTP/0.9" for a request line without version.
    pub version: String,
    pub request_headers: Headers,
    /// Body bytes after de-chunking (gap bytes inside a framed body included).
    pub request_body_len: u64,
    /// First `body_capture_bytes` of the de-chunked request body.
    pub request_body: Vec<u8>,
    /// Content-decoded request body (capped), when the request had a Content-Encoding that decoded; see
    /// [`Transaction::decoded_request_body`].
    pub request_body_decoded: Option<Vec<u8>>,

    pub status: Option<u16>,
    pub status_msg: String,
    pub response_version: String,
    /// 1xx interim codes seen before the final response.
    pub info_codes: Vec<u16>,
    pub response_headers: Headers,
    pub response_body_len: u64,
    pub response_body: Vec<u8>,
    /// Content-decoded response body (capped) when the response had a Content-Encoding (possibly partial or
    /// empty when decoding failed); None when identity. See [`Transaction::decoded_response_body`].
    pub response_body_decoded: Option<Vec<u8>>,
    /// Bytes after content decoding: what the decoder yielded, even from a corrupt or truncated stream (flag
    /// `decompression_error`); None when stopped by a cap (`decompression_bomb`) or the coding is unknown.
    pub response_body_decoded_len: Option<u64>,
    pub content_encoding: Option<String>,

    pub flags: Flags,
    /// The request line as sent (escaped, cut at 1 KiB) when it did not parse as `method target version`.
    pub request_line: Option<String>,
    /// The status line as sent (escaped, cut at 1 KiB) when it did not parse as `version code reason`.
    pub status_line: Option<String>,
    /// Mask sensitive header values in [`Transaction::record`].
    pub mask_sensitive: bool,
    /// The body bytes this transaction holds, leased from the process-wide HTTP budget until it is dropped.
    pub body_lease: super::HttpLease,
}

impl Transaction {
    pub fn host(&self) -> Option<&str> {
        self.request_headers.get("host")
    }
    pub fn user_agent(&self) -> Option<&str> {
        self.request_headers.get("user-agent")
    }
    /// The response body as the client sees it: decoded when it had a content coding, else the captured body.
    /// Identity bodies are not copied twice.
    pub fn decoded_response_body(&self) -> &[u8] {
        self.response_body_decoded.as_deref().unwrap_or(&self.response_body)
    }
    /// The request body, content-decoded when it had a Content-Encoding.
    pub fn decoded_request_body(&self) -> &[u8] {
        self.request_body_decoded.as_deref().unwrap_or(&self.request_body)
    }
    /// (client, server) as seen by HTTP, after any role reversal.
    pub fn endpoints(&self) -> Option<(SocketAddr, SocketAddr)> {
        let f = self.flow.as_ref()?;
        Some(if self.roles_swapped { (f.server, f.client) } else { (f.client, f.server) })
    }

    /// A request-line field for the record: absent without a request, and `null` when that part of a
    /// malformed line did not parse (kept empty in the transaction).
    fn req_field<'a>(&self, v: &'a str) -> Option<&'a str> {
        (self.has_request && !v.is_empty()).then_some(v)
    }

    /// The line of `transactions.jsonl`.
    pub fn record(&self) -> TransactionRecord {
        let (src, dst) = match self.endpoints() {
            Some((c, s)) => (Some(c), Some(s)),
            None => (None, None),
        };
        let (vlan, tunnel) = match &self.flow {
            Some(f) => (
                f.encap.vlans().to_vec(),
                f.encap.tunnels().iter().map(|t| TunnelRecord { r#type: t.kind.name(), id: t.id }).collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let hdrs = |h: &Headers| -> Vec<[String; 2]> {
            h.iter()
                .map(|(n, v)| {
                    let v = if self.mask_sensitive && is_sensitive(n) { mask(v) } else { v.to_owned() };
                    [n.to_owned(), v]
                })
                .collect()
        };
        TransactionRecord {
            uid: self.flow.as_ref().map(|f| f.uid.clone()).unwrap_or_default(),
            trans_depth: self.trans_depth,
            ts: self.ts,
            ts_response: self.ts_response,
            src_ip: src.map(|a| a.ip().to_string()),
            src_port: src.map(|a| a.port()),
            dst_ip: dst.map(|a| a.ip().to_string()),
            dst_port: dst.map(|a| a.port()),
            vlan,
            tunnel,
            method: self.req_field(&self.method).map(str::to_owned),
            uri: self.req_field(&self.uri).map(|u| masked_uri(u, &[]).into_owned()),
            host: self.host().map(str::to_owned),
            version: self.req_field(&self.version).map(str::to_owned),
            user_agent: self.user_agent().map(str::to_owned),
            request_headers: hdrs(&self.request_headers),
            request_body_len: self.request_body_len,
            status: self.status,
            status_msg: self.has_response.then(|| self.status_msg.clone()),
            info_codes: self.info_codes.clone(),
            response_headers: hdrs(&self.response_headers),
            response_body_len: self.response_body_len,
            response_body_decoded_len: self.response_body_decoded_len,
            content_encoding: self.content_encoding.clone(),
            flags: self.flags.names(),
            request_line: self.request_line.clone(),
            status_line: self.status_line.clone(),
        }
    }
}

impl Transaction {
    /// Appends the line of `transactions.jsonl` (without the newline) straight from the transaction: the same
    /// bytes as `serde_json::to_writer(record())`, without cloning every string into a [`TransactionRecord`]
    /// first (that copy was a quarter of replay time).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_masked(out, &[]);
    }

    /// [`Transaction::write_json`] with the values the sensitive-data analyzer flagged masked: query
    /// parameters and path segments in `uri`, header values, and cookie headers.
    pub fn write_json_masked(&self, out: &mut Vec<u8>, hits: &[crate::analyzer::DataClassHit]) {
        let (src, dst) = match self.endpoints() {
            Some((c, s)) => (Some(c), Some(s)),
            None => (None, None),
        };
        out.extend_from_slice(b"{\"uid\":");
        json_str(out, self.flow.as_ref().map_or("", |f| f.uid.as_str()));
        out.extend_from_slice(b",\"trans_depth\":");
        json_u64(out, self.trans_depth);
        out.extend_from_slice(b",\"ts\":");
        json_f64(out, self.ts);
        out.extend_from_slice(b",\"ts_response\":");
        match self.ts_response {
            Some(t) => json_f64(out, t),
            None => out.extend_from_slice(b"null"),
        }
        json_addr(out, b",\"src_ip\":", b",\"src_port\":", src);
        json_addr(out, b",\"dst_ip\":", b",\"dst_port\":", dst);
        out.extend_from_slice(b",\"vlan\":[");
        if let Some(f) = &self.flow {
            for (i, v) in f.encap.vlans().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_u64(out, u64::from(*v));
            }
        }
        out.extend_from_slice(b"],\"tunnel\":[");
        if let Some(f) = &self.flow {
            for (i, t) in f.encap.tunnels().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"type\":");
                json_str(out, t.kind.name());
                out.extend_from_slice(b",\"id\":");
                json_u64(out, u64::from(t.id));
                out.push(b'}');
            }
        }
        out.extend_from_slice(b"],\"method\":");
        json_opt_str(out, self.req_field(&self.method));
        out.extend_from_slice(b",\"uri\":");
        let uri = masked_uri(&self.uri, hits);
        json_opt_str(out, self.req_field(&self.uri).map(|_| uri.as_ref()));
        out.extend_from_slice(b",\"host\":");
        json_opt_str(out, self.host());
        out.extend_from_slice(b",\"version\":");
        json_opt_str(out, self.req_field(&self.version));
        out.extend_from_slice(b",\"user_agent\":");
        json_opt_str(out, self.user_agent());
        out.extend_from_slice(b",\"request_headers\":");
        self.json_headers(out, &self.request_headers, hits, ("request.header", "request.cookie"));
        out.extend_from_slice(b",\"request_body_len\":");
        json_u64(out, self.request_body_len);
        out.extend_from_slice(b",\"status\":");
        match self.status {
            Some(s) => json_u64(out, u64::from(s)),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"status_msg\":");
        json_opt_str(out, self.has_response.then_some(self.status_msg.as_str()));
        out.extend_from_slice(b",\"info_codes\":[");
        for (i, c) in self.info_codes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_u64(out, u64::from(*c));
        }
        out.extend_from_slice(b"],\"response_headers\":");
        self.json_headers(out, &self.response_headers, hits, ("response.header", "response.cookie"));
        out.extend_from_slice(b",\"response_body_len\":");
        json_u64(out, self.response_body_len);
        out.extend_from_slice(b",\"response_body_decoded_len\":");
        match self.response_body_decoded_len {
            Some(n) => json_u64(out, n),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"content_encoding\":");
        json_opt_str(out, self.content_encoding.as_deref());
        out.extend_from_slice(b",\"flags\":[");
        for (i, f) in self.flags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(out, f.name());
        }
        out.push(b']');
        for (key, v) in [(&b",\"request_line\":"[..], &self.request_line), (b",\"status_line\":", &self.status_line)] {
            if let Some(v) = v {
                out.extend_from_slice(key);
                json_str(out, v);
            }
        }
        out.push(b'}');
    }

    fn json_headers(
        &self,
        out: &mut Vec<u8>,
        h: &Headers,
        hits: &[crate::analyzer::DataClassHit],
        (hloc, cloc): (&str, &str),
    ) {
        let cookie_hit = hits.iter().any(|x| x.location == cloc);
        out.push(b'[');
        for (i, (n, v)) in h.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            json_str(out, n);
            out.push(b',');
            let flagged = hits.iter().any(|x| x.location == hloc && x.field.eq_ignore_ascii_case(n))
                || (cookie_hit && (n.eq_ignore_ascii_case("cookie") || n.eq_ignore_ascii_case("set-cookie")));
            if (self.mask_sensitive && is_sensitive(n)) || flagged {
                json_str(out, &mask(v));
            } else {
                json_str(out, v);
            }
            out.push(b']');
        }
        out.push(b']');
    }
}

/// Bytes JSON must escape inside a string.
#[expect(clippy::indexing_slicing, reason = "compile-time table: every index is below 256")]
const JSON_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i == b'"' as usize || i == b'\\' as usize;
        i += 1;
    }
    t
};

/// Any byte JSON must escape. Whole 16-byte blocks without early exit, so the compiler vectorizes the test;
/// a string shorter than a block (most names and values of a record) is looked up byte by byte.
fn needs_json_escape(b: &[u8]) -> bool {
    let bad = |c: u8| JSON_ESCAPE.get(usize::from(c)).copied().unwrap_or(true);
    if b.len() < 16 {
        return b.iter().any(|&c| bad(c));
    }
    let mut blocks = b.chunks_exact(16);
    for blk in &mut blocks {
        if blk.iter().fold(false, |acc, &c| acc | bad(c)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&c| bad(c))
}

/// Printable ASCII or tab only (what `escape_bytes` keeps as is), tested like [`needs_json_escape`].
fn all_printable_ascii(b: &[u8]) -> bool {
    let bad = |c: u8| !(0x20..0x7f).contains(&c) && c != b'\t';
    let mut blocks = b.chunks_exact(16);
    for blk in &mut blocks {
        if blk.iter().fold(false, |acc, &c| acc | bad(c)) {
            return false;
        }
    }
    !blocks.remainder().iter().any(|&c| bad(c))
}

fn json_addr(out: &mut Vec<u8>, ip_key: &[u8], port_key: &[u8], addr: Option<SocketAddr>) {
    out.extend_from_slice(ip_key);
    match addr {
        Some(a) => {
            out.push(b'"');
            match a.ip() {
                // Two addresses per record: the formatting machinery cost more than the rest of the line.
                std::net::IpAddr::V4(v4) => {
                    let mut buf = itoa::Buffer::new();
                    for (i, o) in v4.octets().into_iter().enumerate() {
                        if i > 0 {
                            out.push(b'.');
                        }
                        out.extend_from_slice(buf.format(o).as_bytes());
                    }
                }
                // An IP's Display never needs JSON escaping.
                ip => {
                    let _ = write!(out, "{ip}");
                }
            }
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(port_key);
    match addr {
        Some(a) => json_u64(out, u64::from(a.port())),
        None => out.extend_from_slice(b"null"),
    }
}

fn json_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn json_f64(out: &mut Vec<u8>, x: f64) {
    // serde_json's own float formatting (shortest round-trip, `null` for non-finite), so the bytes match.
    let _ = serde_json::to_writer(out, &x);
}

fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string. Almost every header is plain text: one scan, one copy; anything to escape goes through
/// serde_json so the escapes are exactly its own.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if needs_json_escape(s.as_bytes()) {
        let _ = serde_json::to_writer(out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Headers whose values are credentials: masked in records unless `http.log_sensitive_headers`. Beyond the
/// standard ones, the API-key headers that gateways and SaaS APIs use.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "x-csrf-token",
    "x-xsrf-token",
];

fn is_sensitive(name: &str) -> bool {
    SENSITIVE_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

/// `uri` with the query parameters and path segments (`segment[i]`, counting non-empty ones) that the
/// sensitive-data analyzer flagged replaced by `***`.
fn masked_uri<'a>(uri: &'a str, hits: &[crate::analyzer::DataClassHit]) -> std::borrow::Cow<'a, str> {
    let segs: Vec<usize> = hits
        .iter()
        .filter(|h| h.location == "request.path")
        .filter_map(|h| super::secrets::segment_index(&h.field))
        .collect();
    let params: Vec<&str> = hits.iter().filter(|h| h.location == "request.query").map(|h| h.field.as_str()).collect();
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    // Segments are counted as the analyzer counts them: non-empty ones of the path, after any authority.
    let (authority, path) = match path.find("://") {
        Some(i) => {
            let rest = path.get(i + 3..).unwrap_or_default();
            let at = rest.find('/').map_or(path.len(), |j| i + 3 + j);
            (path.get(..at).unwrap_or_default(), path.get(at..).unwrap_or_default())
        }
        None => ("", path),
    };
    let redacted = super::secrets::redact_path_and(path, |k| segs.contains(&k));
    if params.is_empty() && matches!(redacted, std::borrow::Cow::Borrowed(_)) {
        return std::borrow::Cow::Borrowed(uri);
    }
    let mut out = String::with_capacity(uri.len());
    out.push_str(authority);
    out.push_str(&redacted);
    if let Some(q) = query {
        out.push('?');
        for (i, pair) in q.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if params.contains(&percent_decode(key).as_str()) => {
                    out.push_str(key);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Keeps the auth scheme ("Basic", "Bearer") so the record still says which kind of credential was sent.
fn mask(v: &str) -> String {
    match v.split_once(' ') {
        Some((scheme, _)) if !scheme.is_empty() && !scheme.contains('=') => format!("{scheme} ***"),
        _ => "***".to_owned(),
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TunnelRecord {
    pub r#type: &'static str,
    pub id: u32,
}

/// One line of transactions.jsonl.
#[derive(Clone, Debug, Serialize)]
pub struct TransactionRecord {
    pub uid: String,
    pub trans_depth: u64,
    pub ts: f64,
    pub ts_response: Option<f64>,
    pub src_ip: Option<String>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<String>,
    pub dst_port: Option<u16>,
    pub vlan: Vec<u16>,
    pub tunnel: Vec<TunnelRecord>,
    pub method: Option<String>,
    pub uri: Option<String>,
    pub host: Option<String>,
    pub version: Option<String>,
    pub user_agent: Option<String>,
    pub request_headers: Vec<[String; 2]>,
    pub request_body_len: u64,
    pub status: Option<u16>,
    pub status_msg: Option<String>,
    pub info_codes: Vec<u16>,
    pub response_headers: Vec<[String; 2]>,
    pub response_body_len: u64,
    pub response_body_decoded_len: Option<u64>,
    pub content_encoding: Option<String>,
    pub flags: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_line: Option<String>,
}

/// Splits a request target into path and query, dropping an absolute-form `scheme://authority` prefix.
pub(crate) fn split_target(uri: &str) -> (String, Option<String>) {
    let mut rest = uri;
    if let Some(i) = rest.find("://")
        && rest.get(..i).is_some_and(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        })
    {
        let after = rest.get(i + 3..).unwrap_or("");
        rest = match after.find(['/', '?']) {
            Some(j) => after.get(j..).unwrap_or(""),
            None => "/",
        };
    }
    match rest.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (rest.to_owned(), None),
    }
}

/// `a=1&b=%20x+y` -> [("a","1"),("b"," x y")], at most `max` pairs.
pub(crate) fn parse_query(q: &str, max: usize) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .take(max)
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Wire bytes as a loggable string: valid UTF-8 is kept, every other byte and ASCII control characters (but
/// tab) become `\xNN`, as Zeek logs them. Lossless for what matters to an analyst, unlike U+FFFD, and JSON
/// cannot carry raw bytes.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::new();
    escape_bytes_into(&mut out, b);
    out
}

/// [`escape_bytes`] appending to `out`.
pub fn escape_bytes_into(out: &mut String, b: &[u8]) {
    use std::fmt::Write as _;
    // Header names and values are nearly always printable ASCII: one scan, one copy.
    if all_printable_ascii(b)
        && let Ok(s) = std::str::from_utf8(b)
    {
        out.push_str(s);
        return;
    }
    if let Ok(s) = std::str::from_utf8(b)
        && !s.bytes().any(|c| c < 0x20 && c != b'\t' || c == 0x7f)
    {
        out.push_str(s);
        return;
    }
    out.reserve(b.len() + 8);
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if (c < ' ' && c != '\t') || c == '\x7f' {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |x: Option<&u8>| x.and_then(|c| (*c as char).to_digit(16));
                match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_key_headers_are_sensitive() {
        assert!(super::is_sensitive("X-API-Key"));
        assert!(super::is_sensitive("x-amz-security-token"));
        assert!(!super::is_sensitive("X-Request-Id"));
    }

    #[test]
    fn escape_bytes_keeps_utf8_and_escapes_the_rest() {
        use super::escape_bytes;
        assert_eq!(escape_bytes(b"/caf\xc3\xa9?q=1"), "/caf\u{e9}?q=1");
        assert_eq!(escape_bytes(b"/a\xd9cc"), "/a\\xd9cc");
        assert_eq!(escape_bytes(b"x\x00y\tz"), "x\\x00y\tz");
    }

    use super::*;

    #[test]
    fn target_split_and_query() {
        assert_eq!(split_target("/a/b?x=1"), ("/a/b".into(), Some("x=1".into())));
        assert_eq!(split_target("http://h:80/p?q"), ("/p".into(), Some("q".into())));
        assert_eq!(split_target("http://h"), ("/".into(), None));
        assert_eq!(split_target("*"), ("*".into(), None));
        let q = parse_query("a=1&b=%20x+y&&c&d=%zz", 10);
        assert_eq!(q.len(), 4);
        assert_eq!(q[1], ("b".into(), " x y".into()));
        assert_eq!(q[2], ("c".into(), "".into()));
        assert_eq!(q[3], ("d".into(), "%zz".into()));
        assert_eq!(parse_query("a&b&c", 2).len(), 2);
    }

    #[test]
    fn flags_and_masking() {
        let mut f = Flags::default();
        assert!(f.set(Flag::GAP));
        assert!(!f.set(Flag::GAP));
        f.set(Flag::BARE_LF);
        assert_eq!(f.names(), vec!["gap", "bare_lf"]);
        assert_eq!(mask("Basic dXNlcjpwYXNz"), "Basic ***");
        assert_eq!(mask("session=abc; x=y"), "***");
        let mut c = FlagCounts::default();
        c.add(f);
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"gap":1,"bare_lf":1}"#);
    }

    fn same_json(t: &Transaction) {
        let mut fast = Vec::new();
        t.write_json(&mut fast);
        let slow = serde_json::to_vec(&t.record()).unwrap();
        assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&slow));
        assert_eq!(fast, slow);
    }

    #[test]
    fn write_json_matches_record_on_every_fixture() {
        use crate::http::HttpConfig;
        use crate::http::fixture::run_fixture;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/testdata");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read(e.unwrap().path()).unwrap();
            for log_sensitive in [false, true] {
                let cfg = HttpConfig { log_sensitive_headers: log_sensitive, ..HttpConfig::default() };
                for t in run_fixture(&text, Arc::new(cfg)) {
                    same_json(&t);
                    n += 1;
                }
            }
        }
        assert!(n > 40, "{n}");
    }

    #[test]
    fn write_json_matches_record_on_odd_transactions() {
        use crate::decode::{Encap, Tunnel, TunnelKind};
        use crate::synth::Rng;
        let mut encap = Encap::default();
        encap.push_vlan(10);
        encap.push_vlan(4095);
        encap.push_tunnel(Tunnel { kind: TunnelKind::VXLAN, id: 77 });
        encap.push_tunnel(Tunnel { kind: TunnelKind::GRE, id: 0 });
        let v6 = Arc::new(FlowInfo {
            uid: "C\"q\\".to_owned(),
            community_id: String::new(),
            client: "[2001:db8::1]:1234".parse().unwrap(),
            server: "[::ffff:10.0.0.1]:443".parse().unwrap(),
            encap,
        });
        let mut base = Transaction {
            flow: Some(v6),
            roles_swapped: true,
            trans_depth: u64::MAX,
            ts: 1_700_000_000.123_456_7,
            ts_response: Some(f64::NAN),
            has_request: true,
            has_response: true,
            method: "G\u{e9}T".into(),
            uri: escape_bytes(b"/a\xd9\x00\"\\b\x7f\x1f\t\r\n\x08\x0c"),
            version: "HTTP/1.1".into(),
            status: Some(599),
            status_msg: "\u{2028}\u{1f600} ok".into(),
            info_codes: vec![100, 103],
            response_body_decoded_len: Some(7),
            content_encoding: Some("gzip".into()),
            mask_sensitive: true,
            ..Transaction::default()
        };
        base.flags.set(Flag::GAP);
        base.flags.set(Flag::BARE_CR);
        base.request_headers = Headers::from(vec![
            ("Host".into(), "a\"b".into()),
            ("Authorization".into(), "Bearer x y".into()),
            ("cookie".into(), "a=b".into()),
            ("User-Agent".into(), escape_bytes(b"\xff\xfe\x01")),
        ]);
        base.response_headers =
            Headers::from(vec![("Set-Cookie".to_owned(), String::new()), ("X".to_owned(), "\\".to_owned())]);
        same_json(&base);
        let mut t = base.clone();
        t.mask_sensitive = false;
        t.flow = None;
        t.has_request = false;
        t.has_response = false;
        t.ts = f64::INFINITY;
        t.ts_response = None;
        t.status = None;
        t.response_body_decoded_len = None;
        t.content_encoding = None;
        same_json(&t);
        same_json(&Transaction::default());
        // Random bytes through escape_bytes, as the parser stores them.
        let mut rng = Rng(42);
        for _ in 0..2000 {
            let len = rng.below(48) as usize;
            let b: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            let mut t = base.clone();
            t.mask_sensitive = rng.below(2) == 0;
            t.ts = (rng.next_u64() >> 11) as f64 / 1e6;
            t.uri = escape_bytes(&b);
            t.status_msg = String::from_utf8_lossy(&b).into_owned();
            t.request_headers.push(&escape_bytes(&b), &escape_bytes(&b));
            t.response_headers.push("authorization", &String::from_utf8_lossy(&b));
            same_json(&t);
        }
    }

    #[test]
    fn headers_builder_escapes_like_escape_bytes() {
        let pieces: [&[u8]; 6] =
            [b"Host", b"caf\xc3\xa9", b"X\xff", b"a\x00\x7fb\tc", b"", b"0123456789abcdef0123\x1b"];
        let mut b = HeadersBuilder::with_capacity(1, 4);
        for pair in pieces.chunks(2) {
            b.push_escaped(pair[0], pair[1]);
        }
        let h = b.finish();
        let want: Vec<(String, String)> = pieces.chunks(2).map(|p| (escape_bytes(p[0]), escape_bytes(p[1]))).collect();
        let got: Vec<(String, String)> = h.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        assert_eq!(got, want);
        assert_eq!(h, Headers::from(want));
        assert_eq!(h.get("x\\XFF"), Some("a\\x00\\x7fb\tc"));
    }

    #[test]
    fn escape_bytes_fast_path_agrees() {
        assert_eq!(escape_bytes(b"plain value\t~ "), "plain value\t~ ");
        assert_eq!(escape_bytes(b"a\x7fb"), "a\\x7fb");
        assert_eq!(escape_bytes(b""), "");
        // A byte to escape in a 16-byte block and in the tail.
        assert_eq!(escape_bytes(b"0123456789abcdef\x01-0123456789"), "0123456789abcdef\\x01-0123456789");
        assert_eq!(escape_bytes(b"0123456789abcde\x01"), "0123456789abcde\\x01");
        assert!(needs_json_escape(b"0123456789abcdefghij\"k"));
        assert!(needs_json_escape(b"0123456\\89abcdefghijk"));
        assert!(!needs_json_escape("0123456789abcdefghijk\u{e9}".as_bytes()));
    }
}
