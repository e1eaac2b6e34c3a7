//! Body framing (Content-Length, chunked, close) and the capped body accumulator.

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
    /// The body ended after `consumed` bytes.
    Done,
    /// The chunk-size line at the start of `line` was not a size; `consumed` bytes were used (the bad line is
    /// left in `line`).
    Invalid,
}

/// Parses a chunk-size line ("1a;ext=v", surrounding spaces tolerated). None when it is not a size or overflows.
pub(crate) fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let l = trim(line);
    let end = l.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(l.len());
    let (digits, rest) = l.split_at_checked(end)?;
    if digits.is_empty() {
        return None;
    }
    let rest = trim(rest);
    if !(rest.is_empty() || rest.first() == Some(&b';')) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        let x = (*d as char).to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(u64::from(x))?;
    }
    Some(v)
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
                    if line.len() >= max_line && *st == ChunkState::Size {
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
                match parse_chunk_size(content) {
                    Some(0) => *st = ChunkState::Trailer,
                    Some(n) => *st = ChunkState::Data(n),
                    None => return (pos, ChunkResult::Invalid),
                }
                line.clear();
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
    (pos, ChunkResult::More)
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
}

impl BodyAcc {
    pub fn new(cfg: &HttpConfig, codings: Option<&[Coding]>) -> BodyAcc {
        BodyAcc {
            // An empty list means "encoded, but not with anything we can undo": no decoded form.
            decoder: codings.filter(|c| !c.is_empty()).map(|c| Decoder::new(c, &cfg.decompress)),
            identity: codings.is_none(),
            cap: cfg.body_capture_bytes,
            ..BodyAcc::default()
        }
    }

    pub fn is_identity(&self) -> bool {
        self.identity
    }

    pub fn data(&mut self, b: &[u8]) {
        self.len = self.len.saturating_add(b.len() as u64);
        let room = self.cap.saturating_sub(self.captured.len());
        let keep = room.min(b.len());
        self.captured.extend_from_slice(b.get(..keep).unwrap_or(&[]));
        self.skipped = self.skipped.saturating_add((b.len() - keep) as u64);
        if let Some(d) = &mut self.decoder {
            let (dec, cap) = (&mut self.decoded, self.cap);
            d.feed(b, &mut |out: &[u8]| {
                let room = cap.saturating_sub(dec.len());
                dec.extend_from_slice(out.get(..room.min(out.len())).unwrap_or(&[]));
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

    /// Ends the body; returns the decoded length (None when decoding failed before any output or was stopped).
    pub fn finish(&mut self) -> Option<u64> {
        if self.identity {
            self.decoded_len = self.len;
            return Some(self.len);
        }
        let d = self.decoder.as_mut()?;
        let (dec, cap) = (&mut self.decoded, self.cap);
        let st = d.finish(&mut |out: &[u8]| {
            let room = cap.saturating_sub(dec.len());
            dec.extend_from_slice(out.get(..room.min(out.len())).unwrap_or(&[]));
        });
        self.status = Some(st);
        self.decoded_len = d.out_total();
        match st {
            DecodeStatus::Ok => Some(self.decoded_len),
            DecodeStatus::Failed if self.decoded_len > 0 => Some(self.decoded_len),
            DecodeStatus::Failed | DecodeStatus::Bomb => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b" 1A ;ext=1\r\n"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"zz"), None);
        assert_eq!(parse_chunk_size(b"5 x"), None);
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
            if r != ChunkResult::More {
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
