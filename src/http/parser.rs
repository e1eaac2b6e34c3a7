//! The per-connection framing state machine: heads, bodies, pipelining queue, gaps and resync.

use std::collections::VecDeque;
use std::sync::Arc;

use memchr::{memchr, memchr_iter};

use super::body::{BodyAcc, ChunkResult, ChunkState, Framing, chunked_feed, trim};
use super::decompress::{Codings, parse_codings};
use super::startline::{is_text, parse_bad_request_line, raw_line};
use super::transaction::{
    Flag, Flags, Headers, HeadersBuilder, Transaction, contains_ignore_ascii_case, escape_bytes, parse_query,
    split_target,
};
use super::websocket::WsConn;
use super::{HttpConfig, HttpLease, HttpStats};
use crate::capture::Timestamp;
use crate::flow::FlowInfo;
use crate::reassembly::{Dir, StreamEvent};

/// Side index: the HTTP client's direction (requests) and the server's (responses), after role reversal.
const REQ: usize = 0;
const RESP: usize = 1;

/// Finds the end of a head across chunk boundaries: the LF that ends an empty line ("\n" or "\r\n"), with the
/// state of the unfinished line carried between calls.
#[derive(Clone, Copy, Debug, Default)]
struct HeadScan {
    lines: u32,
    partial: usize,
    partial_is_cr: bool,
}

impl HeadScan {
    /// Offset just past the blank line's LF, when the head ends in `chunk`.
    fn scan(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut start = 0usize;
        for i in memchr_iter(b'\n', chunk) {
            let seg = chunk.get(start..i).unwrap_or(&[]);
            let total = self.partial + seg.len();
            let empty = total == 0 || (total == 1 && if seg.len() == 1 { seg == b"\r" } else { self.partial_is_cr });
            if empty && self.lines > 0 {
                *self = HeadScan::default();
                return Some(i + 1);
            }
            self.lines = self.lines.saturating_add(1);
            self.partial = 0;
            self.partial_is_cr = false;
            start = i + 1;
        }
        let rest = chunk.get(start..).unwrap_or(&[]);
        if !rest.is_empty() {
            self.partial_is_cr = self.partial == 0 && rest == b"\r";
            self.partial = self.partial.saturating_add(rest.len());
        }
        None
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Between messages or inside a head.
    Head,
    Body(Framing),
    /// Framing lost: discard until a plausible start line at a line start.
    Resync {
        at_line_start: bool,
    },
    /// Tunnel, after HTTP/0.9, or after the end of the direction: bytes are counted and dropped.
    Ignore,
    /// After a 101 to `Upgrade: websocket`: frames, text messages to the analyzers.
    WebSocket,
    /// After a 2xx to CONNECT: if the first tunnelled bytes are HTTP again (a plain-HTTP proxy tunnel), parsing
    /// resumes, else the connection is a tunnel (Suricata does the same).
    TunnelProbe,
}

struct Side {
    state: State,
    head: Vec<u8>,
    scan: HeadScan,
    /// First line of the current head already classified.
    first_checked: bool,
    /// The current head's request line did not parse but is kept as a malformed request.
    bad_line: bool,
    /// Chunk-size/trailer line or resync candidate line.
    line: Vec<u8>,
    msg_ts: Timestamp,
    /// The transaction whose body this side is reading.
    cur: Option<u64>,
    ended: bool,
    seen_data: bool,
    /// A gap hit this side outside a body: the next message on it is flagged `gap`.
    gap_pending: bool,
    /// `head`'s bytes, leased from the HTTP budget; given back when the head is done.
    head_lease: HttpLease,
}

impl Side {
    fn new() -> Side {
        Side {
            state: State::Head,
            head: Vec::new(),
            scan: HeadScan::default(),
            first_checked: false,
            bad_line: false,
            line: Vec::new(),
            msg_ts: Timestamp::default(),
            cur: None,
            ended: false,
            seen_data: false,
            gap_pending: false,
            head_lease: HttpLease::default(),
        }
    }
    fn reset_head(&mut self) {
        self.head.clear();
        self.head_lease = HttpLease::default();
        // A hostile 64 KiB head must not pin that much per idle connection.
        if self.head.capacity() > 8192 {
            self.head = Vec::new();
        }
        self.scan = HeadScan::default();
        self.first_checked = false;
        self.bad_line = false;
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Resp {
    None,
    InProgress,
    Done,
}

struct Pending {
    id: u64,
    /// False for a response to an invalid request: framed, counted, not reported.
    emit: bool,
    tx: Transaction,
    req_done: bool,
    resp: Resp,
    req_body: Option<BodyAcc>,
    resp_body: Option<BodyAcc>,
}

/// HTTP/1.x parser of one TCP connection.
pub struct HttpParser {
    cfg: Arc<HttpConfig>,
    flow: Arc<FlowInfo>,
    stats: HttpStats,
    /// Decided at the first data: the caller's ToServer direction carries responses.
    swapped: Option<bool>,
    sides: [Side; 2],
    queue: VecDeque<Pending>,
    next_id: u64,
    depth: u64,
    /// Transactions pushed out by the pipelining cap, emitted at the next drain.
    overflow: Vec<Transaction>,
    /// The websocket state once the connection was upgraded.
    ws: Option<Box<WsConn>>,
    /// Invalid requests skipped on the client side: a response without a pending request most likely answers one
    /// of them (a 400), and is framed but not reported (as Zeek does).
    junk_requests: u32,
}

/// Parsed start line + headers.
#[derive(Default)]
struct Head {
    first: String,
    headers: Headers,
    flags: Flags,
}

impl HttpParser {
    pub fn new(cfg: Arc<HttpConfig>, flow: Arc<FlowInfo>) -> Self {
        HttpParser {
            cfg,
            flow,
            stats: HttpStats::default(),
            swapped: None,
            sides: [Side::new(), Side::new()],
            queue: VecDeque::new(),
            next_id: 0,
            depth: 0,
            overflow: Vec::new(),
            ws: None,
            junk_requests: 0,
        }
    }

    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// Transactions waiting for completion (for memory-bound tests).
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.queue.len()
    }

    /// Bytes held in head and line buffers (for memory-bound tests).
    #[cfg(test)]
    pub(crate) fn max_buffered(&self) -> usize {
        self.sides.iter().map(|s| s.head.len().max(s.line.len())).max().unwrap_or(0)
    }

    /// Feed one reassembled event of one direction; completed transactions are pushed to `out` in order.
    pub fn on_stream(&mut self, dir: Dir, ts: Timestamp, ev: StreamEvent<'_>, out: &mut Vec<Transaction>) {
        // Roles are decided by the first data that looks like a request or a status line; what came before
        // (a SOCKS handshake, midstream junk) was skipped as junk either way.
        if let StreamEvent::Data(d) = ev
            && self.swapped.is_none()
        {
            let status = starts_with_ci(d, b"HTTP/");
            let request = looks_like_request_start(d);
            if status != request {
                let swap = match dir {
                    Dir::ToServer => status,
                    Dir::ToClient => request,
                };
                if swap {
                    self.stats.roles_swapped += 1;
                    self.swap_sides();
                }
                self.swapped = Some(swap);
            }
        }
        let side = match (dir, self.swapped.unwrap_or(false)) {
            (Dir::ToServer, false) | (Dir::ToClient, true) => REQ,
            _ => RESP,
        };
        match ev {
            StreamEvent::Data(d) => self.data(side, ts, d),
            StreamEvent::Gap(n) => self.gap(side, ts, n),
            StreamEvent::End => self.end(side),
        }
        self.drain(out, false);
    }

    /// The flow ended: emit every pending/partial transaction (request-only, truncated, etc.).
    pub fn finish(&mut self, _ts: Timestamp, out: &mut Vec<Transaction>) {
        self.end(REQ);
        self.end(RESP);
        self.drain(out, true);
    }

    fn swap_sides(&mut self) {
        let [a, b] = &self.sides;
        let (seen, ended) = ([b.seen_data, a.seen_data], [b.ended, a.ended]);
        for (i, side) in self.sides.iter_mut().enumerate() {
            *side = Side::new();
            side.seen_data = seen.get(i).copied().unwrap_or(false);
            side.ended = ended.get(i).copied().unwrap_or(false);
            if side.ended {
                side.state = State::Ignore;
            }
        }
    }

    // ---- dispatch ----

    fn data(&mut self, s: usize, ts: Timestamp, mut d: &[u8]) {
        if let Some(side) = self.sides.get_mut(s)
            && !d.is_empty()
        {
            side.seen_data = true;
        }
        // A packet boundary is a plausible message boundary too (SOCKS, a gap the sender never filled).
        if let State::Resync { at_line_start } = &mut self.side(s).state {
            *at_line_start = true;
        }
        // A text line held to see whether it is a malformed request (it has no LF yet) gives way to a packet
        // that starts a request: it was the tail of something else (a capture that began mid-body).
        let side = self.side(s);
        if s == REQ
            && side.state == State::Head
            && !side.first_checked
            && !side.head.is_empty()
            && looks_like_request_start(d)
            && memchr(b'\n', &side.head).is_none()
        {
            let n = side.head.len() as u64;
            side.reset_head();
            self.stats.resync_bytes_skipped += n;
            self.junk_requests = self.junk_requests.saturating_add(1).min(64);
        }
        let mut stalls = 0;
        while !d.is_empty() {
            let before = self.state(s).clone();
            let n = match before {
                State::Head => self.feed_head(s, ts, d),
                State::Body(_) => self.feed_body(s, d),
                State::Resync { .. } => self.feed_resync(s, ts, d),
                State::Ignore => {
                    self.stats.tunnel_bytes_ignored += d.len() as u64;
                    d.len()
                }
                State::TunnelProbe => {
                    self.tunnel_probe(s, d);
                    0
                }
                State::WebSocket => {
                    self.websocket(s, ts, d);
                    d.len()
                }
            };
            let n = n.min(d.len());
            d = d.get(n..).unwrap_or(&[]);
            // Every handler consumes or changes state; this only guards against a bug looping forever.
            if n == 0 && *self.state(s) == before {
                stalls += 1;
                if stalls > 2 {
                    self.stats.resync_bytes_skipped += d.len() as u64;
                    break;
                }
            } else {
                stalls = 0;
            }
        }
    }

    fn state(&self, s: usize) -> &State {
        self.sides.get(s).map_or(&State::Ignore, |x| &x.state)
    }

    fn set_state(&mut self, s: usize, st: State) {
        if let Some(x) = self.sides.get_mut(s) {
            x.state = st;
        }
    }

    fn side(&mut self, s: usize) -> &mut Side {
        // `s` is always REQ or RESP.
        let i = s.min(1);
        match self.sides.get_mut(i) {
            Some(x) => x,
            None => unreachable_side(),
        }
    }

    fn pending(&mut self, id: Option<u64>) -> Option<&mut Pending> {
        let id = id?;
        self.queue.iter_mut().rev().find(|p| p.id == id)
    }

    fn start_resync(&mut self, s: usize, at_line_start: bool) {
        self.stats.resyncs += 1;
        let side = self.side(s);
        side.reset_head();
        side.line.clear();
        side.cur = None;
        side.state = State::Resync { at_line_start };
    }

    // ---- heads ----

    fn feed_head(&mut self, s: usize, ts: Timestamp, d: &[u8]) -> usize {
        let max_head = self.cfg.max_header_bytes;
        let mut skipped = 0usize;
        let mut d = d;
        {
            let side = self.side(s);
            if side.head.is_empty() && side.scan.lines == 0 && side.scan.partial == 0 {
                // Empty lines between messages are tolerated (RFC 9112 §2.2), and so is leading blank space
                // (libhtp does, so evasions use it).
                let lead = d.iter().take_while(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t')).count();
                d = d.get(lead..).unwrap_or(&[]);
                skipped = lead;
                if d.is_empty() {
                    return skipped;
                }
                side.msg_ts = ts;
            }
        }
        // A response to an HTTP/0.9 request has no head: the whole rest of the stream is its body.
        if s == RESP && self.side(s).head.is_empty() && self.side(s).scan.partial == 0 {
            let http09 = self.queue.iter().find(|p| p.resp == Resp::None).is_some_and(|p| p.tx.flags.has(Flag::HTTP09));
            // RFC 1945 answers a simple request with a bare body, but servers that no longer speak HTTP/0.9 answer
            // with a full response (nginx, "400 Bad Request"): a status line that is there is read as one.
            if http09 && !http_prefix_ok(d) {
                self.start_raw_response(s, Flag::HTTP09);
                return skipped;
            }
        }
        let side = self.side(s);
        let end = side.scan.scan(d);
        let take = end.unwrap_or(d.len());
        let room = max_head.saturating_sub(side.head.len());
        let piece = d.get(..take).unwrap_or(d);
        self.lease_head(s, room.min(piece.len()));
        let side = self.side(s);
        side.head.extend_from_slice(piece.get(..room.min(piece.len())).unwrap_or(&[]));
        let too_long = piece.len() > room;
        let consumed = skipped + take;

        if !side.first_checked {
            let nl = memchr(b'\n', &side.head);
            // Junk is recognised from its first bytes, so that a start line later in the same chunk or in the next
            // packet (after a SOCKS handshake, say) is not swallowed into a bogus head.
            // A text line is read to its end before deciding (a malformed request line is still a request);
            // binary bytes are junk at once.
            let early_bad = if s == REQ {
                request_prefix_invalid(&side.head)
                    && !may_be_request_line(side.head.get(..nl.unwrap_or(side.head.len())).unwrap_or(&[]))
            } else {
                !http_prefix_ok(&side.head)
            };
            // A request line may legitimately be long (API query strings): only a full head decides without LF.
            let decidable = early_bad
                || nl.is_some()
                || (s == REQ && side.head.len() >= max_head)
                || (s == RESP && side.head.len() >= 5);
            if decidable {
                side.first_checked = true;
                let first = side.head.get(..nl.unwrap_or(side.head.len())).unwrap_or(&[]);
                // Bytes of earlier chunks in the head; this chunk's are handed back to the resync scan.
                let earlier = side.head.len().saturating_sub(piece.len().min(room)) as u64;
                if s == REQ {
                    let kind = if early_bad { LineKind::Invalid } else { classify_request_line(first) };
                    // A version-less line followed by header lines is an HTTP/1.x request missing its protocol,
                    // not HTTP/0.9 (Suricata's REQUEST_LINE_MISSING_PROTOCOL): its headers and framing count.
                    let headers_follow = nl.and_then(|i| side.head.get(i + 1..)).is_some_and(|rest| {
                        let n = rest.iter().take_while(|b| is_tchar(**b)).count();
                        n > 0 && rest.get(n) == Some(&b':')
                    });
                    let kind = if kind == LineKind::Http09 && headers_follow { LineKind::Request } else { kind };
                    let bad = match kind {
                        LineKind::Invalid if nl.is_some() => parse_bad_request_line(first),
                        _ => None,
                    };
                    match kind {
                        LineKind::Request => {}
                        // A malformed line that carries a version, or is followed by header lines, heads an
                        // HTTP/1.x message: its headers and framing count.
                        LineKind::Invalid if bad.as_ref().is_some_and(|b| b.version.is_some() || headers_follow) => {
                            self.side(s).bad_line = true;
                        }
                        // Alone (no version, no headers): a request of one line; what follows is read afresh.
                        LineKind::Invalid if bad.is_some() && nl.is_some() => {
                            let (Some(bad), Some(nl)) = (bad, nl) else {
                                return skipped;
                            };
                            let raw = first.to_vec();
                            let line_end = skipped + (nl + 1).saturating_sub(earlier as usize);
                            self.side(s).reset_head();
                            self.request_bad_line(s, &raw, bad);
                            return line_end;
                        }
                        LineKind::Http09 if nl.is_some() => {
                            let line = first.to_vec();
                            self.side(s).reset_head();
                            self.request_09(s, &line);
                            return consumed;
                        }
                        LineKind::Http09 | LineKind::Invalid => {
                            self.junk_requests = self.junk_requests.saturating_add(1).min(64);
                            self.stats.resync_bytes_skipped += earlier;
                            self.start_resync(s, false);
                            return skipped;
                        }
                    }
                } else if early_bad || !starts_with_ci(trim_start(&side.head), b"HTTP/") {
                    // No status line. Answering a request: a headerless body until close (libhtp does the same);
                    // otherwise junk to skip.
                    // A status line a little further down (after "SIP/2.0 200" or a junk line) is the real one.
                    let head = &self.side(s).head;
                    let window = head.get(..512).unwrap_or(head);
                    let later = memchr::memmem::find(window, b"\nHTTP/1.").is_some();
                    if !later && self.queue.iter().any(|p| p.resp == Resp::None) {
                        let head = std::mem::take(&mut self.side(s).head);
                        self.side(s).reset_head();
                        // What stands where the status line should be, when it is text, is evidence to keep.
                        let first = head.get(..memchr(b'\n', &head).unwrap_or(head.len())).unwrap_or(&[]);
                        let line = is_text(first).then(|| self.raw_line(first));
                        self.start_raw_response(s, Flag::INVALID_STATUS_LINE);
                        let cur = self.side(s).cur;
                        if let Some(p) = self.pending(cur) {
                            p.tx.status_line = line;
                        }
                        self.feed_body(s, &head);
                        self.side(s).head = head;
                        self.side(s).head.clear();
                        return consumed;
                    }
                    self.stats.resync_bytes_skipped += earlier;
                    self.start_resync(s, false);
                    return skipped;
                }
            }
        }
        if end.is_some() {
            let head_bytes = std::mem::take(&mut self.side(s).head);
            let bad = self.side(s).bad_line;
            let mut head = parse_head(&head_bytes, self.cfg.max_headers, false);
            if too_long || head_bytes.len() >= max_head {
                head.flags.set(Flag::HEADER_TOO_LONG);
            }
            let side = self.side(s);
            side.head = head_bytes;
            side.reset_head();
            if s == REQ {
                self.on_request(head, bad);
            } else {
                self.on_response(head);
            }
        }
        consumed
    }

    /// Accounts `n` more head bytes of side `s` in the HTTP budget. A head is never cut for the budget: it is
    /// bounded by `max_header_bytes` and lives until it is parsed, and a cut head would lose the transaction's
    /// framing. What it holds still counts, so bodies see the budget as spent while many heads are open.
    fn lease_head(&mut self, s: usize, n: usize) {
        let (cfg, side) = match self.sides.get_mut(s.min(1)) {
            Some(side) => (&self.cfg, side),
            None => unreachable_side(),
        };
        // Never refused (no cap): heads count against bodies, not the other way round.
        let _ = side.head_lease.take_in_steps(&cfg.budget, n, usize::MAX, 0);
    }

    /// A complete request head.
    fn on_request(&mut self, head: Head, bad: bool) {
        self.stats.requests += 1;
        let ts = self.side(REQ).msg_ts;
        let parsed = if bad { parse_bad_request_line(head.first.as_bytes()) } else { None };
        let mut request_line = None;
        let (method, uri, version, lf) = match parsed {
            Some(b) => {
                request_line = Some(self.raw_line(head.first.as_bytes()));
                (b.method.unwrap_or_default(), b.target.unwrap_or_default(), b.version.unwrap_or_default(), b.flags)
            }
            None => split_request_line(&head.first),
        };
        if method == "PRI" && uri == "*" && version.starts_with("HTTP/2") {
            // HTTP/2 with prior knowledge: not ours.
            self.stats.http2_connections += 1;
            for x in [REQ, RESP] {
                let side = self.side(x);
                side.reset_head();
                if !side.ended {
                    side.state = State::Ignore;
                }
            }
            return;
        }
        let mut tx = self.new_tx(ts);
        tx.has_request = true;
        tx.flags = head.flags;
        if std::mem::take(&mut self.side(REQ).gap_pending) {
            tx.flags.set(Flag::GAP);
        }
        for f in lf.iter() {
            tx.flags.set(f);
        }
        tx.method = method;
        tx.uri = uri;
        tx.version = version;
        tx.request_line = request_line;
        let (path, query) = split_target(&tx.uri);
        tx.path = path;
        if let Some(q) = &query {
            tx.query_params = parse_query(q, self.cfg.max_query_params);
        }
        tx.query = query;
        let hosts = head.headers.get_all("host").count();
        if hosts > 1 {
            tx.flags.set(Flag::DUP_HOST);
        }
        tx.request_headers = head.headers;
        let framing = request_framing(&tx.request_headers, &mut tx.flags);
        let codings = body_codings(&tx.request_headers, &self.cfg, &mut tx.flags, false);
        let id = self.push_pending(tx);
        match framing {
            Some(f) => {
                let body = BodyAcc::new(&self.cfg, codings.as_deref());
                if let Some(p) = self.pending(Some(id)) {
                    p.req_body = Some(body);
                }
                let side = self.side(REQ);
                side.cur = Some(id);
                side.state = State::Body(f);
            }
            None => {
                if let Some(p) = self.pending(Some(id)) {
                    p.req_done = true;
                }
            }
        }
    }

    /// The escaped raw start line for a record, its cut counted.
    fn raw_line(&mut self, line: &[u8]) -> String {
        let (raw, cut) = raw_line(line);
        if cut {
            self.stats.raw_lines_cut += 1;
        }
        raw
    }

    /// A malformed request line standing alone (no version, no header lines): a request without head or body.
    fn request_bad_line(&mut self, s: usize, line: &[u8], bad: super::startline::BadLine) {
        self.stats.requests += 1;
        let ts = self.side(s).msg_ts;
        let mut tx = self.new_tx(ts);
        tx.has_request = true;
        tx.flags = bad.flags;
        if std::mem::take(&mut self.side(s).gap_pending) {
            tx.flags.set(Flag::GAP);
        }
        tx.request_line = Some(self.raw_line(line));
        tx.method = bad.method.unwrap_or_default();
        tx.uri = bad.target.unwrap_or_default();
        tx.version = bad.version.unwrap_or_default();
        self.push_line_request(tx);
    }

    /// Queues a request that is its start line alone (nothing follows it to frame): its target split into
    /// path and query, and complete.
    fn push_line_request(&mut self, mut tx: Transaction) {
        let (path, query) = split_target(&tx.uri);
        tx.path = path;
        if let Some(q) = &query {
            tx.query_params = parse_query(q, self.cfg.max_query_params);
        }
        tx.query = query;
        let id = self.push_pending(tx);
        if let Some(p) = self.pending(Some(id)) {
            p.req_done = true;
        }
    }

    fn request_09(&mut self, s: usize, line: &[u8]) {
        self.stats.requests += 1;
        let ts = self.side(s).msg_ts;
        let mut tx = self.new_tx(ts);
        tx.has_request = true;
        tx.flags.set(Flag::HTTP09);
        let line = escape_bytes(trim(line));
        let (m, u) = line.split_once([' ', '\t']).unwrap_or((&line, ""));
        tx.method = m.to_owned();
        tx.uri = u.trim().to_owned();
        tx.version = "HTTP/0.9".to_owned();
        if !tx.method.bytes().all(|b| b.is_ascii_uppercase()) {
            tx.flags.set(Flag::INVALID_METHOD);
        }
        self.push_line_request(tx);
        // An HTTP/0.9 client sends nothing more that we could frame.
        self.set_state(s, State::Ignore);
    }

    fn new_tx(&mut self, ts: Timestamp) -> Transaction {
        self.depth += 1;
        Transaction {
            flow: Some(self.flow.clone()),
            roles_swapped: self.swapped.unwrap_or(false),
            trans_depth: self.depth,
            ts: ts.as_secs_f64(),
            mask_sensitive: !self.cfg.log_sensitive_headers,
            ..Transaction::default()
        }
    }

    fn push_pending(&mut self, tx: Transaction) -> u64 {
        // Too many requests waiting: the oldest goes out without its response.
        while self.queue.len() >= self.cfg.max_pipelined.max(1) {
            let Some(mut p) = self.queue.pop_front() else {
                break;
            };
            p.tx.flags.set(Flag::EXCESSIVE_PIPELINING);
            for s in [REQ, RESP] {
                if self.side(s).cur == Some(p.id) {
                    self.side(s).cur = None;
                }
            }
            if p.emit {
                let t = self.complete(p);
                self.overflow.push(t);
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        self.queue.push_back(Pending {
            id,
            emit: true,
            tx,
            req_done: false,
            resp: Resp::None,
            req_body: None,
            resp_body: None,
        });
        id
    }

    /// The server answers without a head: everything until close is the body of the oldest unanswered request.
    fn start_raw_response(&mut self, s: usize, flag: Flag) {
        let ts = self.side(s).msg_ts;
        let cfg = self.cfg.clone();
        let Some(p) = self.queue.iter_mut().find(|p| p.resp == Resp::None) else {
            self.start_resync(s, false);
            return;
        };
        self.stats.responses += 1;
        p.resp = Resp::InProgress;
        p.tx.has_response = true;
        p.tx.ts_response = Some(ts.as_secs_f64());
        p.tx.flags.set(flag);
        p.resp_body = Some(BodyAcc::new(&cfg, None));
        let id = p.id;
        let side = self.side(s);
        side.cur = Some(id);
        side.state = State::Body(Framing::Close);
    }

    /// A complete response head.
    fn on_response(&mut self, head: Head) {
        let ts = self.side(RESP).msg_ts;
        let (version, status, msg, lf) = split_status_line(&head.first);
        let status_line = lf.has(Flag::INVALID_STATUS_LINE).then(|| self.raw_line(head.first.as_bytes()));
        if let Some(code) = status
            && (100..200).contains(&code)
            && code != 101
        {
            self.stats.interim_responses += 1;
            let max = self.cfg.max_info_codes;
            if let Some(p) = self.queue.iter_mut().find(|p| p.resp == Resp::None)
                && p.tx.info_codes.len() < max
            {
                p.tx.info_codes.push(code);
            }
            return;
        }
        self.stats.responses += 1;
        // The server answers a request whose head is still incomplete (cut by the capture): that head is all
        // there is.
        if !self.queue.iter().any(|p| p.resp == Resp::None)
            && self.side(REQ).state == State::Head
            && !self.side(REQ).head.is_empty()
        {
            self.flush_partial_head(REQ);
        }
        let idx = match self.queue.iter().position(|p| p.resp == Resp::None) {
            Some(i) => i,
            None => {
                let mut tx = self.new_tx(ts);
                let flag = if self.side(REQ).seen_data { Flag::ORPHAN } else { Flag::RESPONSE_ONLY };
                tx.flags.set(flag);
                let to_junk = self.junk_requests > 0;
                if to_junk {
                    self.junk_requests -= 1;
                    self.depth -= 1;
                }
                let id = self.push_pending(tx);
                if to_junk && let Some(p) = self.pending(Some(id)) {
                    p.emit = false;
                }
                match self.queue.iter().position(|p| p.resp == Resp::None) {
                    Some(i) => i,
                    None => return,
                }
            }
        };
        let cfg = self.cfg.clone();
        let gap = std::mem::take(&mut self.side(RESP).gap_pending);
        let Some(p) = self.queue.get_mut(idx) else {
            return;
        };
        let tx = &mut p.tx;
        if gap {
            tx.flags.set(Flag::GAP);
        }
        if !tx.has_request {
            p.req_done = true;
        }
        tx.has_response = true;
        tx.ts_response = Some(ts.as_secs_f64());
        for f in head.flags.iter().chain(lf.iter()) {
            tx.flags.set(f);
        }
        tx.status = status;
        tx.status_msg = msg;
        tx.status_line = status_line;
        tx.response_version = version;
        tx.response_headers = head.headers;
        // Borrowed out of the transaction for the framing decision (a clone per response showed in profiles).
        let method = std::mem::take(&mut tx.method);
        let mut tunnel = false;
        let mut ws = None;
        if tx.request_headers.get("upgrade").is_some_and(|u| contains_ignore_ascii_case(u, "h2c")) {
            tx.flags.set(Flag::UPGRADE_H2C);
        }
        if status == Some(101) {
            tx.flags.set(Flag::UPGRADED);
            tunnel = true;
            if tx.request_headers.get("upgrade").is_some_and(|u| contains_ignore_ascii_case(u, "websocket")) {
                ws = Some(Box::new(WsConn::new(tx)));
            }
        } else if method.eq_ignore_ascii_case("CONNECT") && status.is_some_and(|c| (200..300).contains(&c)) {
            tx.flags.set(Flag::CONNECT);
            tunnel = true;
        }
        let framing =
            if tunnel { None } else { response_framing(status, &method, &tx.response_headers, &mut tx.flags) };
        tx.method = method;
        let codings = body_codings(&tx.response_headers, &cfg, &mut tx.flags, true);
        tx.content_encoding = tx.response_headers.get("content-encoding").map(str::to_owned);
        let id = p.id;
        match framing {
            Some(f) => {
                p.resp = Resp::InProgress;
                p.resp_body = Some(BodyAcc::new(&cfg, codings.as_deref()));
                let side = self.side(RESP);
                side.cur = Some(id);
                side.state = State::Body(f);
            }
            None => {
                p.resp = Resp::Done;
                p.resp_body = Some(BodyAcc::new(&cfg, None));
            }
        }
        if tunnel {
            let next = match (status, &ws) {
                (Some(101), Some(_)) => State::WebSocket,
                (Some(101), None) => State::Ignore,
                _ => State::TunnelProbe,
            };
            if ws.is_some() {
                self.ws = ws;
            }
            for s in [REQ, RESP] {
                let side = self.side(s);
                side.reset_head();
                side.cur = None;
                if !side.ended {
                    side.state = next.clone();
                }
            }
        }
    }

    fn tunnel_probe(&mut self, s: usize, d: &[u8]) {
        // A first byte that can start a method is enough: the head parser rejects the rest if it is not HTTP,
        // and a request may arrive in pieces ("GE", "T / HTTP/1.1").
        let http = if s == REQ { d.first().is_some_and(u8::is_ascii_uppercase) } else { starts_with_ci(d, b"HTTP/") };
        for x in [REQ, RESP] {
            let side = self.side(x);
            if side.state == State::TunnelProbe {
                side.state = if http { State::Head } else { State::Ignore };
            }
        }
    }

    // ---- bodies ----

    fn feed_body(&mut self, s: usize, d: &[u8]) -> usize {
        let State::Body(framing) = self.state(s).clone() else {
            return 0;
        };
        let cur = self.side(s).cur;
        match framing {
            Framing::Length(rem) => {
                let take = usize::try_from(rem).unwrap_or(usize::MAX).min(d.len());
                self.body_data(cur, s, d.get(..take).unwrap_or(&[]));
                let left = rem - take as u64;
                if left == 0 {
                    self.body_done(s, None);
                } else {
                    self.set_state(s, State::Body(Framing::Length(left)));
                }
                take
            }
            Framing::Close => {
                self.body_data(cur, s, d);
                d.len()
            }
            Framing::Chunked(mut cs) => {
                let max_line = self.cfg.max_line_bytes;
                let mut line = std::mem::take(&mut self.side(s).line);
                let mut body = self.take_body(cur, s);
                let skipped_before = body.as_ref().map_or(0, |b| b.skipped);
                let (n, res) = chunked_feed(&mut cs, d, &mut line, max_line, &mut |b| {
                    if let Some(acc) = body.as_mut() {
                        acc.data(b);
                    }
                });
                if let Some(b) = &body {
                    self.stats.body_bytes_skipped += b.skipped - skipped_before;
                }
                self.put_body(cur, s, body);
                if res == ChunkResult::Lenient {
                    self.flag(cur, Flag::INVALID_CHUNK);
                }
                match res {
                    ChunkResult::More | ChunkResult::Lenient => {
                        self.side(s).line = line;
                        self.set_state(s, State::Body(Framing::Chunked(cs)));
                    }
                    ChunkResult::Done => {
                        line.clear();
                        self.side(s).line = line;
                        self.body_done(s, None);
                    }
                    ChunkResult::Invalid => {
                        self.flag(cur, Flag::INVALID_CHUNK);
                        if s == RESP {
                            // libhtp: a response that is not really chunked is read as identity until close.
                            self.set_state(s, State::Body(Framing::Close));
                            self.body_data(cur, s, &line);
                            line.clear();
                            self.side(s).line = line;
                        } else {
                            line.clear();
                            self.side(s).line = line;
                            self.body_done(s, Some(Flag::TRUNCATED));
                            self.start_resync(s, true);
                        }
                    }
                }
                n
            }
        }
    }

    fn take_body(&mut self, id: Option<u64>, s: usize) -> Option<BodyAcc> {
        let p = self.pending(id)?;
        if s == REQ { p.req_body.take() } else { p.resp_body.take() }
    }

    fn put_body(&mut self, id: Option<u64>, s: usize, b: Option<BodyAcc>) {
        if let Some(p) = self.pending(id) {
            if s == REQ {
                p.req_body = b;
            } else {
                p.resp_body = b;
            }
        }
    }

    fn body_data(&mut self, id: Option<u64>, s: usize, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        let mut skipped = b.len() as u64;
        if let Some(p) = self.pending(id) {
            let acc = if s == REQ { p.req_body.as_mut() } else { p.resp_body.as_mut() };
            if let Some(acc) = acc {
                let before = acc.skipped;
                acc.data(b);
                skipped = acc.skipped - before;
            }
        }
        self.stats.body_bytes_skipped += skipped;
    }

    fn flag(&mut self, id: Option<u64>, f: Flag) {
        if let Some(p) = self.pending(id) {
            p.tx.flags.set(f);
        }
    }

    /// The current message of side `s` is complete (or abandoned with `flag`).
    fn body_done(&mut self, s: usize, flag: Option<Flag>) {
        let id = self.side(s).cur.take();
        self.set_state(s, State::Head);
        if let Some(p) = self.pending(id) {
            if let Some(f) = flag {
                p.tx.flags.set(f);
            }
            if s == REQ {
                p.req_done = true;
            } else {
                p.resp = Resp::Done;
            }
        }
    }

    // ---- gaps, resync, end ----

    fn gap(&mut self, s: usize, ts: Timestamp, n: u64) {
        self.stats.gaps += 1;
        self.stats.gap_bytes = self.stats.gap_bytes.saturating_add(n);
        if n == 0 {
            return;
        }
        let cur = self.side(s).cur;
        match self.state(s).clone() {
            State::Ignore | State::TunnelProbe => {
                self.stats.tunnel_bytes_ignored = self.stats.tunnel_bytes_ignored.saturating_add(n)
            }
            State::WebSocket => {
                // Frame boundaries are lost with the bytes: the rest of this direction is only counted.
                self.stats.websocket_lost = self.stats.websocket_lost.saturating_add(1);
                self.stats.tunnel_bytes_ignored = self.stats.tunnel_bytes_ignored.saturating_add(n);
                self.set_state(s, State::Ignore);
            }
            State::Resync { .. } => {
                // A candidate line cut by the gap is not a line.
                self.side(s).line.clear();
                self.side(s).gap_pending = true;
                self.set_state(s, State::Resync { at_line_start: true });
            }
            State::Body(Framing::Length(rem)) => {
                let take = rem.min(n);
                self.body_gap(cur, s, take);
                if take == rem {
                    self.body_done(s, None);
                    if n > take {
                        self.start_resync(s, true);
                    }
                } else {
                    self.set_state(s, State::Body(Framing::Length(rem - take)));
                }
            }
            State::Body(Framing::Chunked(ChunkState::Data(rem))) if n <= rem => {
                self.body_gap(cur, s, n);
                let st = if n == rem { ChunkState::DataEnd { seen_cr: false } } else { ChunkState::Data(rem - n) };
                self.set_state(s, State::Body(Framing::Chunked(st)));
            }
            State::Body(Framing::Close) => self.body_gap(cur, s, n),
            State::Body(Framing::Chunked(_)) => {
                self.body_gap(cur, s, 0);
                self.body_done(s, Some(Flag::TRUNCATED));
                self.start_resync(s, true);
            }
            State::Head => {
                let partial = !self.side(s).head.is_empty();
                if partial {
                    self.stats.resync_bytes_skipped += self.side(s).head.len() as u64;
                }
                // A message answering an HTTP/0.9 request has no head: the gap is part of its body.
                let raw09 = s == RESP
                    && !partial
                    && self.queue.iter().find(|p| p.resp == Resp::None).is_some_and(|p| p.tx.flags.has(Flag::HTTP09));
                if raw09 {
                    self.side(s).msg_ts = ts;
                    self.start_raw_response(s, Flag::HTTP09);
                    let cur = self.side(s).cur;
                    self.body_gap(cur, s, n);
                } else {
                    // The lost bytes were (part of) the next message: the waiting request's response, or the
                    // next request.
                    let waiting = self.queue.iter_mut().find(|p| p.resp == Resp::None);
                    match waiting {
                        Some(p) if s == RESP => {
                            p.tx.flags.set(Flag::GAP);
                        }
                        _ => self.side(s).gap_pending = true,
                    }
                    self.start_resync(s, true);
                }
            }
        }
    }

    fn body_gap(&mut self, id: Option<u64>, s: usize, n: u64) {
        if let Some(p) = self.pending(id) {
            p.tx.flags.set(Flag::GAP);
            let acc = if s == REQ { p.req_body.as_mut() } else { p.resp_body.as_mut() };
            if let Some(acc) = acc {
                acc.gap(n);
            }
        }
    }

    fn feed_resync(&mut self, s: usize, ts: Timestamp, d: &[u8]) -> usize {
        let State::Resync { at_line_start } = *self.state(s) else {
            return 0;
        };
        let max_line = self.cfg.max_line_bytes;
        if !at_line_start {
            return match memchr(b'\n', d) {
                Some(i) => {
                    self.stats.resync_bytes_skipped += i as u64 + 1;
                    self.set_state(s, State::Resync { at_line_start: true });
                    i + 1
                }
                None => {
                    self.stats.resync_bytes_skipped += d.len() as u64;
                    d.len()
                }
            };
        }
        let Some(side) = self.sides.get_mut(s) else {
            return d.len();
        };
        if side.line.is_empty() {
            // Cheap reject before copying anything: a start line begins with an uppercase method or "HTTP/".
            let ok = d.first().is_some_and(|b| if s == REQ { b.is_ascii_uppercase() } else { *b == b'H' });
            if !ok {
                side.state = State::Resync { at_line_start: false };
                return 0;
            }
            side.msg_ts = ts;
        }
        let (piece, complete) = match memchr(b'\n', d) {
            Some(i) => (d.get(..i + 1).unwrap_or(d), true),
            None => (d, false),
        };
        if side.line.len() + piece.len() > max_line {
            self.stats.resync_bytes_skipped += (side.line.len() + piece.len()) as u64;
            side.line.clear();
            side.state = State::Resync { at_line_start: complete };
            return piece.len();
        }
        side.line.extend_from_slice(piece);
        if !complete {
            return piece.len();
        }
        let plausible = if s == REQ { plausible_request_line(&side.line) } else { side.line.starts_with(b"HTTP/1.") };
        let line = std::mem::take(&mut side.line);
        if plausible {
            side.state = State::Head;
            side.reset_head();
            let msg_ts = side.msg_ts;
            self.feed_head(s, msg_ts, &line);
        } else {
            self.stats.resync_bytes_skipped += line.len() as u64;
        }
        let side = self.side(s);
        let mut line = line;
        line.clear();
        if side.line.is_empty() {
            side.line = line;
        }
        piece.len()
    }

    fn end(&mut self, s: usize) {
        if self.side(s).ended {
            return;
        }
        match self.state(s).clone() {
            State::Head => self.flush_partial_head(s),
            State::Body(Framing::Close) => self.body_done(s, None),
            State::Body(_) => self.body_done(s, Some(Flag::TRUNCATED)),
            State::Resync { .. } | State::Ignore | State::TunnelProbe | State::WebSocket => {}
        }
        let side = self.side(s);
        side.ended = true;
        side.state = State::Ignore;
        side.line = Vec::new();
        side.head = Vec::new();
    }

    /// Takes an unfinished head as a truncated message (the stream ended, or the server answered a request whose
    /// head never completed).
    fn flush_partial_head(&mut self, s: usize) {
        let head_bytes = std::mem::take(&mut self.side(s).head);
        self.side(s).reset_head();
        if trim(&head_bytes).is_empty() {
            return;
        }
        let mut head = parse_head(&head_bytes, self.cfg.max_headers, true);
        head.flags.set(Flag::TRUNCATED);
        if s == REQ {
            let first = head.first.as_bytes();
            match classify_request_line(first) {
                LineKind::Request => self.on_request(head, false),
                LineKind::Http09 if !head.headers.is_empty() => self.on_request(head, false),
                LineKind::Http09 => self.request_09(s, &head_bytes),
                // Cut inside the request line ("GET /x HT"): still a request.
                LineKind::Invalid if looks_like_request_start(first) => self.on_request(head, false),
                LineKind::Invalid if parse_bad_request_line(first).is_some() => self.on_request(head, true),
                LineKind::Invalid => {}
            }
        } else if starts_with_ci(head.first.as_bytes(), b"HTTP/") {
            self.on_response(head);
        }
        // A truncated head cannot have a body.
        if let State::Body(_) = self.state(s) {
            self.body_done(s, Some(Flag::TRUNCATED));
        }
    }

    // ---- emission ----

    fn drain(&mut self, out: &mut Vec<Transaction>, all: bool) {
        out.append(&mut self.overflow);
        while let Some(p) = self.queue.front() {
            let done = p.req_done && p.resp == Resp::Done;
            if !(done || all) {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            if !p.emit {
                self.stats.responses_to_invalid_requests += 1;
                continue;
            }
            let t = self.complete(p);
            out.push(t);
        }
        // Websocket messages come after the handshake, which completes when the 101 is read.
        if (self.queue.is_empty() || all)
            && let Some(ws) = self.ws.as_mut()
        {
            out.append(&mut ws.out);
        }
    }

    /// Websocket bytes of side `s`: frames counted, text messages made transactions.
    fn websocket(&mut self, s: usize, ts: Timestamp, d: &[u8]) {
        let Some(mut ws) = self.ws.take() else {
            self.stats.tunnel_bytes_ignored += d.len() as u64;
            return;
        };
        let mut done = Vec::new();
        let before = ws.counts(s).frames;
        let lost_before = ws.lost(s);
        let rest = ws.feed(s, &self.cfg, d, &mut done);
        self.stats.tunnel_bytes_ignored += rest as u64;
        let frames = ws.counts(s).frames - before;
        if s == REQ {
            self.stats.websocket_frames_client += frames;
        } else {
            self.stats.websocket_frames_server += frames;
        }
        if ws.lost(s) && !lost_before {
            self.stats.websocket_lost += 1;
            self.set_state(s, State::Ignore);
        }
        for mut body in done {
            let mut tx = self.new_tx(ts);
            ws.message(&mut tx, s == REQ);
            self.stats.body_bytes_skipped += body.skipped;
            self.decode_flags(&body, &mut tx.flags);
            body.finish();
            if s == REQ {
                tx.request_body_len = body.len;
                tx.request_body = std::mem::take(&mut body.captured);
            } else {
                tx.response_body_len = body.len;
                tx.response_body_decoded_len = Some(body.len);
                tx.response_body = std::mem::take(&mut body.captured);
            }
            tx.body_lease.absorb(std::mem::take(&mut body.lease));
            self.stats.websocket_messages += 1;
            self.stats.flags.add(tx.flags);
            ws.out.push(tx);
        }
        self.ws = Some(ws);
    }

    fn complete(&mut self, mut p: Pending) -> Transaction {
        let mut tx = std::mem::take(&mut p.tx);
        if let Some(mut b) = p.req_body.take() {
            let dl = b.finish();
            tx.request_body_len = b.len;
            tx.request_body = std::mem::take(&mut b.captured);
            if !b.is_identity() && dl.is_some() {
                tx.request_body_decoded = Some(std::mem::take(&mut b.decoded));
            }
            self.decode_flags(&b, &mut tx.flags);
            tx.body_lease.absorb(std::mem::take(&mut b.lease));
        }
        if let Some(mut b) = p.resp_body.take() {
            let dl = b.finish();
            tx.response_body_len = b.len;
            tx.response_body_decoded_len = dl;
            tx.response_body = std::mem::take(&mut b.captured);
            if !b.is_identity() {
                tx.response_body_decoded = Some(std::mem::take(&mut b.decoded));
            }
            self.decode_flags(&b, &mut tx.flags);
            tx.body_lease.absorb(std::mem::take(&mut b.lease));
        }
        if tx.has_request && !p.req_done {
            tx.flags.set(Flag::TRUNCATED);
        }
        if tx.has_request && !tx.has_response {
            tx.flags.set(Flag::REQUEST_ONLY);
        }
        if !tx.has_request && !self.side(REQ).seen_data && !tx.flags.has(Flag::ORPHAN) {
            tx.flags.set(Flag::RESPONSE_ONLY);
        }
        self.stats.transactions += 1;
        self.stats.flags.add(tx.flags);
        tx
    }

    fn decode_flags(&mut self, b: &BodyAcc, flags: &mut Flags) {
        use super::decompress::DecodeStatus;
        if b.memcap_hit {
            self.stats.memcap_hits += 1;
            flags.set(Flag::HTTP_MEMCAP);
        }
        match b.status {
            Some(DecodeStatus::Bomb) => {
                self.stats.decompression_bombs += 1;
                flags.set(Flag::DECOMPRESSION_BOMB);
            }
            Some(DecodeStatus::Failed) => {
                self.stats.decompression_errors += 1;
                flags.set(Flag::DECOMPRESSION_ERROR);
            }
            _ => {}
        }
    }
}

#[cold]
fn unreachable_side() -> ! {
    unreachable!("side index is REQ or RESP")
}

// ---- line classification ----

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum LineKind {
    Request,
    Http09,
    Invalid,
}

/// RFC 9110 token characters, as a table (a lookup per byte beat the `matches!` bit test and the search of
/// the symbol list it replaced): header names are checked byte by byte on every message.
#[expect(clippy::indexing_slicing, reason = "compile-time table: every index is a u8 into 256 entries")]
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        i += 1;
    }
    t
};

fn is_tchar(b: u8) -> bool {
    TCHAR.get(usize::from(b)).copied().unwrap_or(false)
}

fn is_ws(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn trim_start(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    b.get(s..).unwrap_or(&[])
}

fn starts_with_ci(b: &[u8], prefix: &[u8]) -> bool {
    b.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// "TOKEN SP": the first bytes of a request, for role detection.
fn looks_like_request_start(d: &[u8]) -> bool {
    let n = d.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=16).contains(&n) && d.get(n) == Some(&b' ')
}

/// Classifies a request line (without its LF). Lenient: any tchar method, several spaces, a target with spaces.
fn classify_request_line(line: &[u8]) -> LineKind {
    let line = trim(line);
    let mlen = line.iter().take_while(|b| is_tchar(**b)).count();
    if mlen == 0 || mlen > 32 {
        return LineKind::Invalid;
    }
    let rest = line.get(mlen..).unwrap_or(&[]);
    if !rest.first().is_some_and(is_ws) {
        return LineKind::Invalid;
    }
    let rest = trim(rest);
    if rest.is_empty() {
        return LineKind::Invalid;
    }
    let last = rest.rsplit(is_ws).next().unwrap_or(&[]);
    if starts_with_ci(last, b"HTTP/") && last.len() < rest.len() {
        LineKind::Request
    } else if HTTP09_METHODS.iter().any(|m| line.get(..mlen) == Some(*m))
        && !rest.iter().any(is_ws)
        && !starts_with_ci(rest, b"HTTP/")
    {
        // ("GET HTTP/1.1" has lost its target, Zeek's missing_HTTP_uri: not an HTTP/0.9 request for "HTTP/1.1".)
        // Like Zeek, only a well-known method makes a version-less line an HTTP/0.9 request: anything else
        // is more likely another protocol or cruft.
        LineKind::Http09
    } else {
        LineKind::Invalid
    }
}

pub(super) const HTTP09_METHODS: [&[u8]; 4] = [b"GET", b"POST", b"HEAD", b"PUT"];

/// The head so far cannot start a request line: a method token is not followed by whitespace.
fn request_prefix_invalid(head: &[u8]) -> bool {
    let n = head.iter().take_while(|b| is_tchar(**b)).count();
    n > 32 || head.get(n).is_some_and(|b| !is_ws(b))
}

/// Text that may still turn out to be a malformed request line: no control bytes, and it starts as a method
/// (a token or high bytes) or a target would. A JSON or XML body met mid-stream ('{', '<') is junk at once.
fn may_be_request_line(b: &[u8]) -> bool {
    b.first().is_some_and(|c| is_tchar(*c) || *c >= 0x80 || *c == b'/') && is_text(b)
}

/// The head so far is a prefix of (or starts with) "HTTP/", case-insensitively.
fn http_prefix_ok(head: &[u8]) -> bool {
    let h = trim_start(head);
    let n = h.len().min(5);
    h.get(..n).is_some_and(|p| p.eq_ignore_ascii_case(b"HTTP/".get(..n).unwrap_or(&[])))
}

/// Strict form used to resync: an uppercase method, a target, "HTTP/1.x".
fn plausible_request_line(line: &[u8]) -> bool {
    let l = trim(line);
    let m = l.iter().take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_').count();
    if !(1..=20).contains(&m) || l.get(m) != Some(&b' ') {
        return false;
    }
    let last = l.rsplit(is_ws).next().unwrap_or(&[]);
    last.len() == 8 && last.starts_with(b"HTTP/1.") && l.len() > m + 1 + last.len()
}

/// (method, uri, version, flags) of a request line already classified as `Request`.
fn split_request_line(first: &str) -> (String, String, String, Flags) {
    let mut flags = Flags::default();
    let line = first.trim();
    let (method, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let rest = rest.trim();
    // The last token is the version when it starts with "HTTP/", or is a prefix of it (a line cut by the end
    // of the capture: "GET /x HTT"). Without one the version is empty (a request missing its protocol).
    let (uri, version) = match rest.rsplit_once([' ', '\t']) {
        Some((u, v))
            if (v.len() >= 5 && v.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("HTTP/")))
                || b"HTTP/".get(..v.len()).is_some_and(|p| p.eq_ignore_ascii_case(v.as_bytes())) =>
        {
            (u.trim(), v)
        }
        _ => (rest, ""),
    };
    if !method.bytes().all(is_tchar) || method.is_empty() {
        flags.set(Flag::INVALID_REQUEST_LINE);
    } else if !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_') {
        flags.set(Flag::INVALID_METHOD);
    }
    if version.is_empty() {
        flags.set(Flag::MISSING_VERSION);
    } else if !valid_version(version) {
        flags.set(Flag::INVALID_VERSION);
    }
    if uri.contains([' ', '\t']) || line.contains("  ") {
        flags.set(Flag::INVALID_REQUEST_LINE);
    }
    (method.to_owned(), uri.to_owned(), version.to_owned(), flags)
}

fn valid_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 8
        && b.get(..5) == Some(b"HTTP/")
        && b.get(5).is_some_and(u8::is_ascii_digit)
        && b.get(6) == Some(&b'.')
        && b.get(7).is_some_and(u8::is_ascii_digit)
}

/// (version, status, reason, flags) of a status line.
fn split_status_line(first: &str) -> (String, Option<u16>, String, Flags) {
    let mut flags = Flags::default();
    let line = first.trim();
    let (version, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let rest = rest.trim_start();
    let (code, msg) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let status = if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) { code.parse().ok() } else { None };
    if status.is_none() || !valid_version(version) {
        flags.set(Flag::INVALID_STATUS_LINE);
    }
    (version.to_owned(), status, msg.trim().to_owned(), flags)
}

/// Parses a head: start line and header lines. Only LF-terminated lines count unless `accept_partial` (the stream
/// ended inside the head).
fn parse_head(bytes: &[u8], max_headers: usize, accept_partial: bool) -> Head {
    use std::borrow::Cow;
    let mut h = Head::default();
    let mut first = true;
    let mut pos = 0usize;
    // The header being read borrows the head; only an obs-folded value is copied (to join its lines).
    let mut cur: Option<(&[u8], Cow<'_, [u8]>)> = None;
    // Usually one allocation each for the text (the head's size, unless bytes need escaping) and the offsets.
    let mut list = HeadersBuilder::with_capacity(max_headers.min(16), bytes.len());
    let push = |cur: &mut Option<(&[u8], Cow<'_, [u8]>)>, list: &mut HeadersBuilder, flags: &mut Flags| {
        if let Some((n, v)) = cur.take() {
            if list.len() < max_headers {
                list.push_escaped(n, trim(&v));
            } else {
                flags.set(Flag::TOO_MANY_HEADERS);
            }
        }
    };
    'lines: while pos < bytes.len() {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        let (raw, next) = match memchr(b'\n', rest) {
            Some(i) => (rest.get(..i).unwrap_or(&[]), pos + i + 1),
            None if accept_partial => (rest, bytes.len()),
            None => break,
        };
        pos = next;
        let line = match raw.strip_suffix(b"\r") {
            Some(l) => l,
            None => {
                if next <= bytes.len() && bytes.get(next - 1) == Some(&b'\n') {
                    h.flags.set(Flag::BARE_LF);
                }
                raw
            }
        };
        // A lone CR also ends a line (Zeek's line_terminated_with_single_CR, browsers): otherwise
        // "Server: x\rTransfer-Encoding: chunked" hides the framing from us but not from the client.
        if memchr(b'\r', line).is_some() {
            h.flags.set(Flag::BARE_CR);
        }
        // The pieces between bare CRs, found with memchr (a byte-by-byte split cost more than the rest of
        // the line's parsing); a line without one is a single piece.
        let mut pieces = Some(line);
        while let Some(l) = pieces {
            let line = match memchr(b'\r', l) {
                Some(i) => {
                    pieces = l.get(i + 1..);
                    l.get(..i).unwrap_or(&[])
                }
                None => {
                    pieces = None;
                    l
                }
            };
            if first {
                h.first = escape_bytes(line);
                first = false;
                continue;
            }
            if line.is_empty() {
                break 'lines;
            }
            if line.first().is_some_and(is_ws) {
                match &mut cur {
                    Some((_, v)) => {
                        h.flags.set(Flag::OBS_FOLD);
                        let v = v.to_mut();
                        v.push(b' ');
                        v.extend_from_slice(trim(line));
                    }
                    None => {
                        h.flags.set(Flag::INVALID_HEADER);
                    }
                }
                continue;
            }
            push(&mut cur, &mut list, &mut h.flags);
            match memchr(b':', line) {
                Some(c) => {
                    let name = line.get(..c).unwrap_or(&[]);
                    let value = line.get(c + 1..).unwrap_or(&[]);
                    let tname = trim(name);
                    if tname.len() != name.len() {
                        h.flags.set(Flag::SPACE_BEFORE_COLON);
                    }
                    if tname.is_empty() || !tname.iter().all(|b| is_tchar(*b)) {
                        h.flags.set(Flag::INVALID_HEADER);
                        if tname.is_empty() {
                            continue;
                        }
                    }
                    cur = Some((tname, Cow::Borrowed(value)));
                }
                None => {
                    h.flags.set(Flag::INVALID_HEADER);
                }
            }
        }
    }
    push(&mut cur, &mut list, &mut h.flags);
    h.headers = list.finish();
    h
}

// ---- framing decisions ----

/// Every Content-Length value (several headers or a comma list). Sets dup/conflict/invalid flags.
/// With conflicting values, a request keeps the first and a response the largest: a response body that is read too
/// far only costs the end of a closing connection, and keeps what an evasion hides behind the smaller value.
fn content_length(h: &Headers, flags: &mut Flags, response: bool) -> Option<Option<u64>> {
    let mut seen: Option<u64> = None;
    let mut count = 0;
    let mut any = false;
    for v in h.get_all("content-length") {
        any = true;
        for part in v.split(',') {
            let p = part.trim();
            count += 1;
            let n = if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) { p.parse::<u64>().ok() } else { None };
            match (n, seen) {
                (None, _) => {
                    flags.set(Flag::INVALID_CONTENT_LENGTH);
                }
                (Some(n), None) => seen = Some(n),
                (Some(n), Some(s)) if n != s => {
                    flags.set(Flag::CONFLICTING_CONTENT_LENGTH);
                    if response && n > s {
                        seen = Some(n);
                    }
                }
                _ => {}
            }
        }
    }
    if !any {
        return None;
    }
    if count > 1 && !flags.has(Flag::CONFLICTING_CONTENT_LENGTH) {
        flags.set(Flag::DUP_CONTENT_LENGTH);
    }
    Some(seen)
}

/// Some(true) chunked, Some(false) another transfer coding, None absent.
fn transfer_chunked(h: &Headers, flags: &mut Flags) -> Option<bool> {
    let mut any = false;
    let mut chunked = false;
    for v in h.get_all("transfer-encoding") {
        any = true;
        if v.split(',').any(|t| t.trim().eq_ignore_ascii_case("chunked")) {
            chunked = true;
        }
    }
    if !any {
        return None;
    }
    if !chunked {
        flags.set(Flag::UNKNOWN_TRANSFER_ENCODING);
    }
    Some(chunked)
}

fn request_framing(h: &Headers, flags: &mut Flags) -> Option<Framing> {
    let te = transfer_chunked(h, flags);
    let cl = content_length(h, flags, false);
    if te.is_some() && cl.is_some() {
        flags.set(Flag::CL_AND_TE);
    }
    match (te, cl) {
        (Some(true), _) => Some(Framing::Chunked(ChunkState::Size)),
        // An unknown transfer coding on a request cannot be framed (RFC 9112 §6.3: 400); assume no body.
        (Some(false), _) => None,
        (None, Some(Some(n))) if n > 0 => Some(Framing::Length(n)),
        _ => None,
    }
}

fn response_framing(status: Option<u16>, method: &str, h: &Headers, flags: &mut Flags) -> Option<Framing> {
    if method.eq_ignore_ascii_case("HEAD") {
        return None;
    }
    if let Some(c) = status
        && ((100..200).contains(&c) || c == 204 || c == 304)
    {
        return None;
    }
    let te = transfer_chunked(h, flags);
    let cl = content_length(h, flags, true);
    if te.is_some() && cl.is_some() {
        flags.set(Flag::CL_AND_TE);
    }
    match (te, cl) {
        (Some(true), _) => Some(Framing::Chunked(ChunkState::Size)),
        (Some(false), _) => Some(Framing::Close),
        (None, Some(Some(0))) => None,
        (None, Some(Some(n))) => Some(Framing::Length(n)),
        _ => Some(Framing::Close),
    }
}

/// Codings to undo for a body, from its Content-Encoding; None when identity or not decodable.
fn body_codings(
    h: &Headers,
    cfg: &HttpConfig,
    flags: &mut Flags,
    _response: bool,
) -> Option<smallvec::SmallVec<[super::decompress::Coding; 3]>> {
    let mut joined = String::new();
    for v in h.get_all("content-encoding") {
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(v);
    }
    match parse_codings(&joined, cfg.decompress.max_layers) {
        Codings::Identity => None,
        Codings::Decode(c) => Some(c),
        Codings::Unknown => {
            flags.set(Flag::UNKNOWN_CONTENT_ENCODING);
            Some(smallvec::SmallVec::new())
        }
        Codings::TooManyLayers => {
            flags.set(Flag::DECOMPRESSION_BOMB);
            Some(smallvec::SmallVec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_across_chunks() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        for split in 1..head.len() {
            let mut sc = HeadScan::default();
            let (a, b) = head.split_at(split);
            let end = sc.scan(a).or_else(|| sc.scan(b).map(|e| e + a.len()));
            assert_eq!(end, Some(head.len() - 4), "split {split}");
        }
        let mut sc = HeadScan::default();
        assert_eq!(sc.scan(b"GET / HTTP/1.0\n\nX"), Some(16));
        let mut sc = HeadScan::default();
        assert_eq!(sc.scan(b"GET / HTTP/1.0\r\nA: b\r\n"), None);
    }

    #[test]
    fn request_lines() {
        assert_eq!(classify_request_line(b"GET / HTTP/1.1"), LineKind::Request);
        assert_eq!(classify_request_line(b"get   /a b   HTTP/1.0 "), LineKind::Request);
        assert_eq!(classify_request_line(b"GET /old"), LineKind::Http09);
        assert_eq!(classify_request_line(b"T /old"), LineKind::Invalid);
        assert_eq!(classify_request_line(b"GET"), LineKind::Invalid);
        assert_eq!(classify_request_line(b"\x16\x03\x01"), LineKind::Invalid);
        assert!(plausible_request_line(b"POST /x?y HTTP/1.1\r\n"));
        assert!(!plausible_request_line(b"post /x HTTP/1.1\r\n"));
        assert!(!plausible_request_line(b"GET /x\r\n"));
        let (m, u, v, f) = split_request_line("get /a b HTTP/1.1");
        assert_eq!((m.as_str(), u.as_str(), v.as_str()), ("get", "/a b", "HTTP/1.1"));
        assert!(f.has(Flag::INVALID_METHOD) && f.has(Flag::INVALID_REQUEST_LINE));
        assert!(request_prefix_invalid(b"\x05\x01"));
        assert!(!request_prefix_invalid(b"GET"));
        assert!(http_prefix_ok(b"HT") && !http_prefix_ok(b"SIP/2"));
    }

    #[test]
    fn status_lines() {
        let (v, s, m, f) = split_status_line("HTTP/1.1 404 Not Found");
        assert_eq!((v.as_str(), s, m.as_str(), f.is_empty()), ("HTTP/1.1", Some(404), "Not Found", true));
        let (_, s, _, f) = split_status_line("HTTP/1.1 2XX weird");
        assert_eq!((s, f.has(Flag::INVALID_STATUS_LINE)), (None, true));
        let (_, s, m, _) = split_status_line("HTTP/1.0 200");
        assert_eq!((s, m.as_str()), (Some(200), ""));
    }

    #[test]
    fn heads() {
        let h = parse_head(
            b"GET / HTTP/1.1\r\nA: 1\r\nB : 2\r\n\tfolded\r\njunk line\r\nC:3\n\r\nignored: x\r\n",
            10,
            false,
        );
        assert_eq!(h.first, "GET / HTTP/1.1");
        assert_eq!(h.headers.iter().collect::<Vec<_>>(), vec![("A", "1"), ("B", "2 folded"), ("C", "3")]);
        for f in [Flag::SPACE_BEFORE_COLON, Flag::OBS_FOLD, Flag::INVALID_HEADER, Flag::BARE_LF] {
            assert!(h.flags.has(f), "{}", f.name());
        }
        // Lone CR ends a line too.
        let h = parse_head(b"HTTP/1.1 200 ok\rTransfer-Encoding: chunked\rX: y\r\n\r\n", 10, false);
        assert_eq!(h.first, "HTTP/1.1 200 ok");
        assert_eq!(h.headers.get("transfer-encoding"), Some("chunked"));
        assert!(h.flags.has(Flag::BARE_CR));
        // A CR before the CRLF leaves an empty piece: the head ends there, as a browser would end it.
        let h = parse_head(b"GET / HTTP/1.1\r\nA: 1\r\r\nB: 2\r\n\r\n", 10, false);
        assert_eq!(h.headers.iter().collect::<Vec<_>>(), vec![("A", "1")]);
        assert!(h.flags.has(Flag::BARE_CR));
        // Truncated head at the end of the stream: the partial line counts.
        let h = parse_head(b"GET /x HTTP/1.1\r\nHost: a", 10, true);
        assert_eq!(h.headers.get("host"), Some("a"));
        let h = parse_head(b"GET /x HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 2, false);
        assert_eq!(h.headers.len(), 2);
        assert!(h.flags.has(Flag::TOO_MANY_HEADERS));
    }

    #[test]
    fn framing_rules() {
        let hs = |v: &[(&str, &str)]| v.iter().copied().collect::<Headers>();
        let mut f = Flags::default();
        assert_eq!(response_framing(Some(200), "HEAD", &hs(&[("Content-Length", "5")]), &mut f), None);
        assert_eq!(response_framing(Some(304), "GET", &hs(&[("Content-Length", "5")]), &mut f), None);
        assert_eq!(response_framing(Some(200), "GET", &hs(&[]), &mut f), Some(Framing::Close));
        assert_eq!(request_framing(&hs(&[]), &mut f), None);
        let mut f = Flags::default();
        let h = hs(&[("Content-Length", "3"), ("Transfer-Encoding", "gzip, chunked")]);
        assert_eq!(request_framing(&h, &mut f), Some(Framing::Chunked(ChunkState::Size)));
        assert!(f.has(Flag::CL_AND_TE));
        let mut f = Flags::default();
        let h = hs(&[("Content-Length", "68"), ("Content-Length", "136")]);
        assert_eq!(response_framing(Some(200), "GET", &h, &mut f), Some(Framing::Length(136)));
        assert_eq!(request_framing(&h, &mut f), Some(Framing::Length(68)));
        assert!(f.has(Flag::CONFLICTING_CONTENT_LENGTH));
        let mut f = Flags::default();
        let h = hs(&[("Content-Length", "-1")]);
        assert_eq!(response_framing(Some(200), "GET", &h, &mut f), Some(Framing::Close));
        assert!(f.has(Flag::INVALID_CONTENT_LENGTH));
    }
}
