//! Body framing (Content-Length, chunked, close) and the capped body accumulator.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memchr::memchr;

use super::HttpConfig;
use super::decompress::{Coding, DecodeStatus, Decoder};

/// How the current message body is delimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many body bytes remain.
    Length(u64),
    Chunked(ChunkState),
    /// Until the sender closes (responses without length, HTTP/0.9 responses).
    Close,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChunkState {
    /// Reading a chunk-size line (in the line buffer).
    Size,
    /// This many bytes of chunk data remain.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd { seen_cr: bool },
    /// Trailer lines after the last chunk, until an empty line.
    Trailer,
}

/// What one call to [`chunked_feed`] ended with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChunkResult {
    /// All input consumed, the body goes on.
    More,
    /// As `More`, but a chunk-size line with junk after the digits was accepted: the caller flags it.
    Lenient,
    /// The body ended after `consumed` bytes.
    Done,
    /// The chunk-size line at the start of `line` was not a size; `consumed` bytes were used (the bad line is
    /// left in `line`).
    Invalid,
}

/// Parses a chunk-size line ("1a;ext=v", surrounding spaces tolerated): the size and whether the line was clean.
/// Like browsers and libhtp, the leading hex digits are the size whatever follows ("f x" is 15, flagged).
/// None when there are no digits or the size overflows.
pub(crate) fn parse_chunk_size(line: &[u8]) -> Option<(u64, bool)> {
    let l = trim(line);
    let end = l.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(l.len());
    let (digits, rest) = l.split_at_checked(end)?;
    if digits.is_empty() {
        return None;
    }
    let rest = trim(rest);
    let clean = rest.is_empty() || rest.first() == Some(&b';');
    let mut v: u64 = 0;
    for d in digits {
        let x = (*d as char).to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(u64::from(x))?;
    }
    Some((v, clean))
}

/// The line so far cannot become a chunk size: its first non-blank byte is not a hex digit.
fn hopeless_size_line(line: &[u8]) -> bool {
    line.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| !b.is_ascii_hexdigit())
}

pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |i| i + 1);
    b.get(s..e.max(s)).unwrap_or(&[])
}

/// Runs the chunked decoder over `data`. Chunk data goes to `on_body`; size and trailer lines are collected in
/// `line` (capped at `max_line`: the excess of an overlong line is dropped, which makes it invalid).
/// Returns the bytes consumed and how the call ended.
pub(crate) fn chunked_feed(
    st: &mut ChunkState,
    data: &[u8],
    line: &mut Vec<u8>,
    max_line: usize,
    on_body: &mut dyn FnMut(&[u8]),
) -> (usize, ChunkResult) {
    let mut pos = 0usize;
    let mut lenient = false;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or(&[]);
        match *st {
            ChunkState::Size | ChunkState::Trailer => {
                let (piece, complete) = match memchr(b'\n', rest) {
                    Some(i) => (rest.get(..i + 1).unwrap_or(rest), true),
                    None => (rest, false),
                };
                let room = max_line.saturating_sub(line.len());
                line.extend_from_slice(piece.get(..piece.len().min(room)).unwrap_or(&[]));
                pos += piece.len();
                if !complete {
                    // Give up early on a body that is not chunked at all, so it can be read as identity.
                    if *st == ChunkState::Size && (line.len() >= max_line || hopeless_size_line(line)) {
                        return (pos, ChunkResult::Invalid);
                    }
                    continue;
                }
                let content = trim(line);
                if *st == ChunkState::Trailer {
                    let empty = content.is_empty();
                    line.clear();
                    if empty {
                        return (pos, ChunkResult::Done);
                    }
                    continue;
                }
                if content.is_empty() {
                    // A stray empty line before a size (an extra CRLF after chunk data): tolerated.
                    line.clear();
                    continue;
                }
                let (size, clean) = match parse_chunk_size(content) {
                    Some(x) => x,
                    None => return (pos, ChunkResult::Invalid),
                };
                *st = if size == 0 { ChunkState::Trailer } else { ChunkState::Data(size) };
                line.clear();
                lenient |= !clean;
            }
            ChunkState::Data(n) => {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                on_body(rest.get(..take).unwrap_or(&[]));
                pos += take;
                let left = n - take as u64;
                *st = if left == 0 { ChunkState::DataEnd { seen_cr: false } } else { ChunkState::Data(left) };
            }
            ChunkState::DataEnd { seen_cr } => match rest.first() {
                Some(b'\r') if !seen_cr => {
                    pos += 1;
                    *st = ChunkState::DataEnd { seen_cr: true };
                }
                Some(b'\n') => {
                    pos += 1;
                    *st = ChunkState::Size;
                }
                // Missing CRLF: read the next size line from here (lenient, like libhtp).
                _ => *st = ChunkState::Size,
            },
        }
    }
    (pos, if lenient { ChunkResult::Lenient } else { ChunkResult::More })
}

/// The process-wide budget for HTTP memory (`http.memcap_bytes`): head buffers and captured and decoded
/// bodies, shared by every parser. `max_header_bytes` and `body_capture_bytes` bound one message; this
/// bounds all of them held at once (in parsers, in queues and in the analyzers), whatever the number of
/// flows. Bytes are leased and given back when the head is parsed or the transaction holding the body is
/// dropped.
#[derive(Debug, Default)]
pub struct HttpBudget {
    used: AtomicUsize,
}

impl HttpBudget {
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: usize, cap: usize) -> bool {
        self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| u.checked_add(n).filter(|&t| t <= cap)).is_ok()
    }
}

/// Bytes leased from a [`HttpBudget`]; dropping the lease gives them back. A clone holds nothing (cloned
/// transactions are for tests and tools, not the pipeline).
#[derive(Debug, Default)]
pub struct HttpLease {
    budget: Option<Arc<HttpBudget>>,
    granted: usize,
    used: usize,
}

/// Body leases grow in steps of at least this much: one atomic operation per few packets, not per packet,
/// while a small body still holds little more than it uses.
const BODY_LEASE_STEP: usize = 4096;

impl HttpLease {
    /// Room for `n` more bytes, within `cap` for the whole budget; false when the budget is spent.
    fn take(&mut self, budget: &Arc<HttpBudget>, n: usize, cap: usize) -> bool {
        self.take_in_steps(budget, n, cap, BODY_LEASE_STEP)
    }

    /// [`HttpLease::take`] with leases growing by at least `step` bytes.
    pub(crate) fn take_in_steps(&mut self, budget: &Arc<HttpBudget>, n: usize, cap: usize, step: usize) -> bool {
        if n == 0 || self.used + n <= self.granted {
            self.used += n;
            return true;
        }
        let budget = self.budget.get_or_insert_with(|| Arc::clone(budget));
        let need = self.used + n - self.granted;
        let step = need.max(step);
        let granted = if budget.try_take(step, cap) {
            step
        } else if step > need && budget.try_take(need, cap) {
            need
        } else {
            return false;
        };
        self.granted += granted;
        self.used += n;
        true
    }

    /// Takes over another lease's bytes (a body's lease moving into its transaction).
    pub(crate) fn absorb(&mut self, mut other: HttpLease) {
        match (&self.budget, other.budget.take()) {
            (_, None) => {}
            (None, Some(b)) => {
                self.budget = Some(b);
                self.granted = other.granted;
                self.used = other.used;
            }
            (Some(_), Some(b)) => {
                // Same budget in practice; give the other's bytes back through its own handle if not.
                if self.budget.as_ref().is_some_and(|mine| Arc::ptr_eq(mine, &b)) {
                    self.granted += other.granted;
                    self.used += other.used;
                } else {
                    b.used.fetch_sub(other.granted, Ordering::Relaxed);
                }
            }
        }
        other.granted = 0;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.granted
    }
}

impl Clone for HttpLease {
    fn clone(&self) -> Self {
        HttpLease::default()
    }
}

impl Drop for HttpLease {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.used.fetch_sub(self.granted, Ordering::Relaxed);
        }
    }
}

/// Collects one message body: its length, its first `body_capture_bytes` and its content-decoded form.
#[derive(Default)]
pub(crate) struct BodyAcc {
    pub len: u64,
    pub captured: Vec<u8>,
    pub decoded: Vec<u8>,
    pub decoded_len: u64,
    /// Bytes not captured (beyond the cap, or lost in a gap).
    pub skipped: u64,
    decoder: Option<Decoder>,
    /// No content coding: the decoded body is the body.
    identity: bool,
    cap: usize,
    pub status: Option<DecodeStatus>,
    budget: Arc<HttpBudget>,
    memcap: usize,
    pub lease: HttpLease,
    /// Capture stopped because the process-wide body budget was spent.
    pub memcap_hit: bool,
}

/// First allocation of a captured or decoded body, within `body_capture_bytes`.
const FIRST_RESERVE: usize = 2048;

impl BodyAcc {
    pub fn new(cfg: &HttpConfig, codings: Option<&[Coding]>) -> BodyAcc {
        BodyAcc {
            // An empty list means "encoded, but not with anything we can undo": no decoded form.
            decoder: codings.filter(|c| !c.is_empty()).map(|c| Decoder::new(c, &cfg.decompress)),
            identity: codings.is_none(),
            cap: cfg.body_capture_bytes,
            budget: Arc::clone(&cfg.budget),
            memcap: cfg.memcap_bytes,
            ..BodyAcc::default()
        }
    }

    /// Leases `n` bytes for capture; on a spent budget, capture of this body stops (counted once per body).
    fn lease(&mut self, n: usize) -> bool {
        if self.memcap_hit {
            return false;
        }
        if self.lease.take(&self.budget, n, self.memcap) {
            return true;
        }
        self.memcap_hit = true;
        false
    }

    pub fn is_identity(&self) -> bool {
        self.identity
    }

    pub fn data(&mut self, b: &[u8]) {
        self.len = self.len.saturating_add(b.len() as u64);
        let room = self.cap.saturating_sub(self.captured.len());
        let mut keep = room.min(b.len());
        if keep > 0 && !self.lease(keep) {
            keep = 0;
        }
        if self.captured.capacity() == 0 && keep > 0 {
            // Skips the first doublings (8, 16, ... bytes) most bodies would go through.
            self.captured.reserve_exact(room.min(keep.max(FIRST_RESERVE)));
        }
        self.captured.extend_from_slice(b.get(..keep).unwrap_or(&[]));
        self.skipped = self.skipped.saturating_add((b.len() - keep) as u64);
        if let Some(d) = &mut self.decoder {
            let (dec, cap) = (&mut self.decoded, self.cap);
            let (lease, budget, memcap, hit) = (&mut self.lease, &self.budget, self.memcap, &mut self.memcap_hit);
            d.feed(b, &mut |out: &[u8]| {
                let room = cap.saturating_sub(dec.len());
                let keep = room.min(out.len());
                if keep == 0 || *hit {
                    return;
                }
                if !lease.take(budget, keep, memcap) {
                    *hit = true;
                    return;
                }
                if dec.capacity() == 0 {
                    dec.reserve_exact(room.min(out.len().max(FIRST_RESERVE)));
                }
                dec.extend_from_slice(out.get(..keep).unwrap_or(&[]));
            });
        }
    }

    /// `n` body bytes were never captured: the length counts them, the decoder cannot go on.
    pub fn gap(&mut self, n: u64) {
        self.len = self.len.saturating_add(n);
        self.skipped = self.skipped.saturating_add(n);
        if let Some(d) = &mut self.decoder {
            d.gap();
        }
    }

    /// Ends the body; returns the decoded length (None when the decoder was stopped by a cap or the coding is
    /// not one we decode).
    pub fn finish(&mut self) -> Option<u64> {
        if self.identity {
            self.decoded_len = self.len;
            return Some(self.len);
        }
        let d = self.decoder.as_mut()?;
        let (dec, cap) = (&mut self.decoded, self.cap);
        let (lease, budget, memcap, hit) = (&mut self.lease, &self.budget, self.memcap, &mut self.memcap_hit);
        let st = d.finish(&mut |out: &[u8]| {
            let keep = cap.saturating_sub(dec.len()).min(out.len());
            if keep == 0 || *hit {
                return;
            }
            if !lease.take(budget, keep, memcap) {
                *hit = true;
                return;
            }
            dec.extend_from_slice(out.get(..keep).unwrap_or(&[]));
        });
        self.status = Some(st);
        self.decoded_len = d.out_total();
        match st {
            // A corrupt or truncated stream counts what it yielded (Zeek's body length does the same: what
            // the decoder delivered); only a stopped decoder has no meaningful length.
            DecodeStatus::Ok | DecodeStatus::Failed => Some(self.decoded_len),
            DecodeStatus::Bomb => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(cfg: &HttpConfig) -> BodyAcc {
        BodyAcc::new(cfg, None)
    }

    #[test]
    fn budget_bounds_all_bodies_and_is_given_back() {
        let cfg = HttpConfig { body_capture_bytes: 100_000, memcap_bytes: 40_000, ..HttpConfig::default() };
        let mut a = acc(&cfg);
        a.data(&[b'a'; 30_000]);
        assert_eq!((a.captured.len(), a.memcap_hit), (30_000, false));
        let mut b = acc(&cfg);
        b.data(&[b'b'; 30_000]);
        // The budget had 40_000 - 30_000 (in lease steps) left: this body is counted, not captured.
        assert!(b.memcap_hit);
        assert!(b.captured.len() < 30_000);
        assert_eq!(b.len, 30_000);
        assert!(cfg.budget.used() <= 40_000, "never over budget: {}", cfg.budget.used());
        // The first body moves into its transaction: the lease goes with it and comes back on drop.
        let mut lease = HttpLease::default();
        lease.absorb(std::mem::take(&mut a.lease));
        drop(a);
        assert!(cfg.budget.used() >= 30_000);
        drop(lease);
        drop(b);
        assert_eq!(cfg.budget.used(), 0);
        let mut c = acc(&cfg);
        c.data(&[b'c'; 30_000]);
        assert_eq!((c.captured.len(), c.memcap_hit), (30_000, false));
    }

    #[test]
    fn decoded_bodies_draw_from_the_budget_too() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[b'x'; 50_000]).unwrap();
        let z = gz.finish().unwrap();
        let cfg = HttpConfig { body_capture_bytes: 100_000, memcap_bytes: 20_000, ..HttpConfig::default() };
        let mut a = BodyAcc::new(&cfg, Some(&[Coding::Gzip]));
        a.data(&z);
        let dl = a.finish();
        assert_eq!(dl, Some(50_000), "the decoded length is still measured");
        assert!(a.memcap_hit);
        assert!(a.decoded.len() <= 20_000);
        assert!(cfg.budget.used() <= 20_000);
        drop(a);
        assert_eq!(cfg.budget.used(), 0);
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some((26, true)));
        assert_eq!(parse_chunk_size(b" 1A ;ext=1\r\n"), Some((26, true)));
        assert_eq!(parse_chunk_size(b"0"), Some((0, true)));
        assert_eq!(parse_chunk_size(b"zz"), None);
        assert_eq!(parse_chunk_size(b"f x"), Some((15, false)));
        assert_eq!(parse_chunk_size(b"10000000000000000"), None);
    }

    fn run(input: &[u8], split: usize) -> (Vec<u8>, ChunkResult, usize) {
        let mut st = ChunkState::Size;
        let mut line = Vec::new();
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut res = ChunkResult::More;
        for piece in input.chunks(split) {
            let (n, r) = chunked_feed(&mut st, piece, &mut line, 64, &mut |b| body.extend_from_slice(b));
            consumed += n;
            res = r;
            if !matches!(r, ChunkResult::More | ChunkResult::Lenient) {
                break;
            }
        }
        (body, res, consumed)
    }

    #[test]
    fn chunked_any_split() {
        let msg = b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 1..msg.len() {
            let (body, res, consumed) = run(msg, split);
            assert_eq!(body, b"hello world", "split {split}");
            assert_eq!(res, ChunkResult::Done);
            assert_eq!(consumed, msg.len() - 4);
        }
        let (_, res, _) = run(b"5\r\nhello\r\nzz\r\n", 100);
        assert_eq!(res, ChunkResult::Invalid);
        // Not chunked at all: known without waiting for a line end (the bytes stay in `line`).
        let (_, res, n) = run(b"X5O!P%@AP", 100);
        assert_eq!((res, n), (ChunkResult::Invalid, 9));
        let (_, res, _) = run(&[b'1'; 200], 100);
        assert_eq!(res, ChunkResult::Invalid);
    }

    #[test]
    fn body_cap_and_identity() {
        let cfg = HttpConfig { body_capture_bytes: 4, ..HttpConfig::default() };
        let mut b = BodyAcc::new(&cfg, None);
        b.data(b"abcdef");
        b.gap(10);
        assert_eq!(b.finish(), Some(16));
        assert_eq!(b.captured, b"abcd");
        assert_eq!(b.skipped, 12);
    }
}
