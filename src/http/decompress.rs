//! The one door for content decoding: gzip (multi-member), deflate (zlib-wrapped or raw), br and zstd, stacked
//! up to `max_layers`, behind one capped decoder.
//!
//! Bodies arrive in pieces, so decoding is push-based: each layer is a `Write` decoder whose output lands in a
//! capped buffer that the next layer (or the caller's sink) drains after every piece. A layer may never produce
//! more than `max_output_bytes`, nor more than `max_ratio` times its input once past `ratio_floor_bytes`; hitting
//! either stops decoding and reports [`DecodeStatus::Bomb`]. A corrupt or truncated stream keeps what was decoded.
//! zstd has no push decoder in ruzstd, so its input is buffered (capped) and decoded when the body ends.
#![expect(clippy::disallowed_types, reason = "the one module allowed to use the raw decoders (see clippy.toml)")]

use std::io::{self, Read, Write};

use flate2::write::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use smallvec::SmallVec;

/// Caps of the content decoder.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecompressConfig {
    /// Decoded bytes per body (per layer); beyond: stop, `decompression_bomb`.
    pub max_output_bytes: u64,
    /// Decoded bytes per input byte, checked once a layer's output passes `ratio_floor_bytes`.
    pub max_ratio: u64,
    /// Output below this is never a bomb by ratio: small, very regular bodies legitimately compress 1000:1.
    pub ratio_floor_bytes: u64,
    /// Stacked content codings decoded ("gzip, br" is two); more: not decoded, `decompression_bomb`.
    pub max_layers: usize,
}

impl Default for DecompressConfig {
    fn default() -> Self {
        DecompressConfig {
            max_output_bytes: 10 * 1024 * 1024,
            max_ratio: 1000,
            ratio_floor_bytes: 1024 * 1024,
            max_layers: 3,
        }
    }
}

/// A content coding we can decode.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Br,
    Zstd,
}

/// What a Content-Encoding header asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Codings {
    /// No coding (absent, empty or only `identity`).
    Identity,
    /// Codings in the order they must be undone (the header's reverse order).
    Decode(SmallVec<[Coding; 3]>),
    /// A coding we do not know: the body is not decoded.
    Unknown,
    /// More layers than `max_layers`.
    TooManyLayers,
}

/// Parses a Content-Encoding value (possibly several headers joined by ',').
pub fn parse_codings(value: &str, max_layers: usize) -> Codings {
    let mut v: SmallVec<[Coding; 3]> = SmallVec::new();
    for tok in value.split(',') {
        let t = tok.trim();
        let c = if t.is_empty() || t.eq_ignore_ascii_case("identity") {
            continue;
        } else if t.eq_ignore_ascii_case("gzip") || t.eq_ignore_ascii_case("x-gzip") {
            Coding::Gzip
        } else if t.eq_ignore_ascii_case("deflate") {
            Coding::Deflate
        } else if t.eq_ignore_ascii_case("br") {
            Coding::Br
        } else if t.eq_ignore_ascii_case("zstd") {
            Coding::Zstd
        } else {
            return Codings::Unknown;
        };
        if v.len() >= max_layers {
            return Codings::TooManyLayers;
        }
        v.push(c);
    }
    if v.is_empty() {
        return Codings::Identity;
    }
    v.reverse();
    Codings::Decode(v)
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DecodeStatus {
    /// Still decoding / decoded every byte given.
    Ok,
    /// Stopped by the output or ratio cap.
    Bomb,
    /// The stream was corrupt (or a gap broke it); what came before is kept.
    Failed,
}

/// Output buffer of one layer: refuses writes past `limit`, remembering it did.
struct CapBuf {
    buf: Vec<u8>,
    limit: usize,
    hit: bool,
}

impl Write for CapBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.buf.len());
        if room == 0 && !data.is_empty() {
            self.hit = true;
            return Err(io::Error::other("decoded output cap"));
        }
        let n = room.min(data.len());
        self.buf.extend_from_slice(data.get(..n).unwrap_or(&[]));
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn capbuf() -> CapBuf {
    CapBuf { buf: Vec::new(), limit: 0, hit: false }
}

/// Window size of the brotli writer's internal buffer.
const BR_BUFFER: usize = 4096;
/// Input is pushed through the layers in pieces this big so one piece cannot inflate past a few MiB before the
/// caps are checked again.
const PIECE: usize = 1024;

enum Kind {
    Gzip(Box<MultiGzDecoder<CapBuf>>),
    Zlib(Box<ZlibDecoder<CapBuf>>),
    Raw(Box<DeflateDecoder<CapBuf>>),
    /// Deflate before its first two bytes tell zlib from raw.
    DeflateUndecided(SmallVec<[u8; 2]>),
    Br(Box<brotli_decompressor::DecompressorWriter<CapBuf>>),
    Zstd(Vec<u8>),
}

struct Layer {
    kind: Kind,
    in_total: u64,
    out_total: u64,
}

impl Layer {
    fn out(&mut self) -> Option<&mut CapBuf> {
        match &mut self.kind {
            Kind::Gzip(d) => Some(d.get_mut()),
            Kind::Zlib(d) => Some(d.get_mut()),
            Kind::Raw(d) => Some(d.get_mut()),
            Kind::Br(d) => Some(d.get_mut()),
            Kind::DeflateUndecided(_) | Kind::Zstd(_) => None,
        }
    }
}

/// A zlib stream starts with CMF/FLG: method 8, window <= 32K, and a multiple of 31 as a 16-bit number.
fn looks_zlib(b0: u8, b1: u8) -> bool {
    b0 & 0x0f == 8 && b0 >> 4 <= 7 && (u16::from(b0) << 8 | u16::from(b1)) % 31 == 0
}

/// Decodes one body through its stacked codings. Feed pieces with [`Decoder::feed`], then [`Decoder::finish`].
pub struct Decoder {
    layers: SmallVec<[Layer; 3]>,
    cfg: DecompressConfig,
    status: DecodeStatus,
    /// Decoded bytes handed to the sink.
    out_total: u64,
    /// Reused hand-over buffers between layers, one per layer.
    spare: SmallVec<[Vec<u8>; 3]>,
}

impl Decoder {
    pub fn new(codings: &[Coding], cfg: &DecompressConfig) -> Decoder {
        let layers = codings
            .iter()
            .map(|c| Layer {
                kind: match c {
                    Coding::Gzip => Kind::Gzip(Box::new(MultiGzDecoder::new(capbuf()))),
                    Coding::Deflate => Kind::DeflateUndecided(SmallVec::new()),
                    Coding::Br => Kind::Br(Box::new(brotli_decompressor::DecompressorWriter::new(capbuf(), BR_BUFFER))),
                    Coding::Zstd => Kind::Zstd(Vec::new()),
                },
                in_total: 0,
                out_total: 0,
            })
            .collect();
        Decoder { layers, cfg: cfg.clone(), status: DecodeStatus::Ok, out_total: 0, spare: SmallVec::new() }
    }

    pub fn status(&self) -> DecodeStatus {
        self.status
    }
    /// Decoded bytes produced so far.
    pub fn out_total(&self) -> u64 {
        self.out_total
    }

    /// Pushes compressed bytes; decoded bytes go to `sink`.
    pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) {
        for piece in input.chunks(PIECE) {
            if self.status != DecodeStatus::Ok {
                return;
            }
            self.push(0, piece, sink);
        }
    }

    /// A gap in the compressed stream: nothing after it can be decoded.
    pub fn gap(&mut self) {
        if self.status == DecodeStatus::Ok {
            self.status = DecodeStatus::Failed;
        }
    }

    /// The body ended: flush every layer.
    pub fn finish(&mut self, sink: &mut dyn FnMut(&[u8])) -> DecodeStatus {
        for i in 0..self.layers.len() {
            if self.status != DecodeStatus::Ok {
                break;
            }
            self.finish_layer(i, sink);
        }
        self.status
    }

    fn limit(&self, l: &Layer) -> usize {
        let mut lim = self.cfg.max_output_bytes;
        let by_ratio = l.in_total.saturating_mul(self.cfg.max_ratio).max(self.cfg.ratio_floor_bytes);
        lim = lim.min(by_ratio);
        usize::try_from(lim.saturating_sub(l.out_total)).unwrap_or(usize::MAX)
    }

    fn emit(&mut self, idx: usize, data: &[u8], sink: &mut dyn FnMut(&[u8])) {
        if data.is_empty() {
            return;
        }
        if idx >= self.layers.len() {
            self.out_total = self.out_total.saturating_add(data.len() as u64);
            sink(data);
        } else {
            for piece in data.chunks(PIECE) {
                if self.status != DecodeStatus::Ok {
                    return;
                }
                self.push(idx, piece, sink);
            }
        }
    }

    /// Feeds `input` to layer `idx` and forwards what it produced to layer `idx + 1`.
    fn push(&mut self, idx: usize, input: &[u8], sink: &mut dyn FnMut(&[u8])) {
        let Some(layer) = self.layers.get(idx) else {
            return self.emit(idx, input, sink);
        };
        let limit = self.limit(layer);
        let Some(layer) = self.layers.get_mut(idx) else {
            return;
        };
        layer.in_total = layer.in_total.saturating_add(input.len() as u64);
        let mut input = input;
        let mut head: SmallVec<[u8; 2]> = SmallVec::new();
        if let Kind::DeflateUndecided(pending) = &mut layer.kind {
            while pending.len() < 2 {
                let Some((&b, rest)) = input.split_first() else {
                    return;
                };
                pending.push(b);
                input = rest;
            }
            let zlib = matches!(pending.as_slice(), [a, b] if looks_zlib(*a, *b));
            head = std::mem::take(pending);
            layer.kind = if zlib {
                Kind::Zlib(Box::new(ZlibDecoder::new(capbuf())))
            } else {
                Kind::Raw(Box::new(DeflateDecoder::new(capbuf())))
            };
        }
        if let Some(out) = layer.out() {
            out.limit = limit;
        }
        let in_before = layer.in_total - input.len() as u64;
        let res = match &mut layer.kind {
            Kind::Gzip(d) if in_before < 4 => {
                // Browsers ignore the reserved FLG bits of a gzip header; flate2 refuses them. Clear them so an
                // evasion cannot hide a body that the client will read.
                let mut fixed: SmallVec<[u8; 64]> = SmallVec::from_slice(input);
                if let Some(flg) = fixed.get_mut(3 - in_before as usize) {
                    *flg &= 0x1f;
                }
                d.write_all(&fixed)
            }
            Kind::Gzip(d) => d.write_all(input),
            Kind::Zlib(d) => d.write_all(&head).and_then(|_| d.write_all(input)),
            Kind::Raw(d) => d.write_all(&head).and_then(|_| d.write_all(input)),
            Kind::Br(d) => d.write_all(input),
            Kind::Zstd(buf) => {
                if (buf.len() + input.len()) as u64 > self.cfg.max_output_bytes {
                    Err(io::Error::other("zstd input cap"))
                } else {
                    buf.extend_from_slice(input);
                    Ok(())
                }
            }
            Kind::DeflateUndecided(_) => Ok(()),
        };
        self.after_write(idx, res, sink);
    }

    /// Forwards layer `idx`'s output and settles the status after a write or finish.
    fn after_write(&mut self, idx: usize, res: io::Result<()>, sink: &mut dyn FnMut(&[u8])) {
        let Some(layer) = self.layers.get_mut(idx) else {
            return;
        };
        let (mut produced, hit) = match layer.out() {
            Some(out) => (std::mem::replace(&mut out.buf, self.spare.pop().unwrap_or_default()), out.hit),
            None => (Vec::new(), false),
        };
        layer.out_total = layer.out_total.saturating_add(produced.len() as u64);
        if hit {
            self.status = DecodeStatus::Bomb;
        } else if res.is_err() {
            self.status = DecodeStatus::Failed;
        }
        // What was decoded before a failure is still delivered.
        let st = self.status;
        self.status = DecodeStatus::Ok;
        self.emit(idx + 1, &produced, sink);
        if st != DecodeStatus::Ok {
            self.status = st;
        }
        produced.clear();
        self.spare.push(produced);
    }

    fn finish_layer(&mut self, idx: usize, sink: &mut dyn FnMut(&[u8])) {
        let Some(layer) = self.layers.get(idx) else {
            return;
        };
        let limit = self.limit(layer);
        let Some(layer) = self.layers.get_mut(idx) else {
            return;
        };
        if let Some(out) = layer.out() {
            out.limit = limit;
        }
        let res = match &mut layer.kind {
            Kind::Gzip(d) => d.try_finish(),
            Kind::Zlib(d) => d.try_finish(),
            Kind::Raw(d) => d.try_finish(),
            Kind::Br(d) => d.flush(),
            Kind::DeflateUndecided(p) => {
                // One byte of deflate is never a complete stream.
                if p.is_empty() { Ok(()) } else { Err(io::Error::other("truncated deflate")) }
            }
            Kind::Zstd(buf) => {
                let input = std::mem::take(buf);
                return self.finish_zstd(idx, &input, limit, sink);
            }
        };
        self.after_write(idx, res, sink);
    }

    fn finish_zstd(&mut self, idx: usize, input: &[u8], limit: usize, sink: &mut dyn FnMut(&[u8])) {
        if input.is_empty() {
            return;
        }
        let mut dec = match ruzstd::decoding::StreamingDecoder::new(input) {
            Ok(d) => d,
            Err(_) => {
                self.status = DecodeStatus::Failed;
                return;
            }
        };
        let mut buf = vec![0u8; 16 * 1024];
        let mut produced: usize = 0;
        loop {
            let n = match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => {
                    self.status = DecodeStatus::Failed;
                    break;
                }
            };
            let room = limit.saturating_sub(produced);
            let take = n.min(room);
            produced += take;
            if let Some(l) = self.layers.get_mut(idx) {
                l.out_total = l.out_total.saturating_add(take as u64);
            }
            let st = self.status;
            self.status = DecodeStatus::Ok;
            self.emit(idx + 1, buf.get(..take).unwrap_or(&[]), sink);
            if self.status == DecodeStatus::Ok {
                self.status = st;
            }
            if take < n {
                self.status = DecodeStatus::Bomb;
            }
            if self.status != DecodeStatus::Ok {
                break;
            }
        }
    }
}

/// Decodes a whole buffer (tests, small payloads); returns the output (capped) and the status.
pub fn decode_all(codings: &[Coding], input: &[u8], cfg: &DecompressConfig) -> (Vec<u8>, DecodeStatus) {
    let mut out = Vec::new();
    let mut d = Decoder::new(codings, cfg);
    let mut sink = |b: &[u8]| out.extend_from_slice(b);
    d.feed(input, &mut sink);
    let st = d.finish(&mut sink);
    (out, st)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
    pub(crate) fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
    pub(crate) fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }
    /// Brotli with one uncompressed meta-block (no encoder crate needed): WBITS=16, MNIBBLES=4, ISUNCOMPRESSED,
    /// then an empty last meta-block.
    pub(crate) fn brotli_stored(data: &[u8]) -> Vec<u8> {
        assert!(!data.is_empty() && data.len() <= 65536);
        let v: u32 = ((data.len() as u32 - 1) << 4) | (1 << 20);
        let mut out = vec![v as u8, (v >> 8) as u8, (v >> 16) as u8];
        out.extend_from_slice(data);
        out.push(0x03);
        out
    }
    pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn cfg() -> DecompressConfig {
        DecompressConfig::default()
    }

    #[test]
    fn codings_header() {
        assert_eq!(parse_codings("", 3), Codings::Identity);
        assert_eq!(parse_codings("identity", 3), Codings::Identity);
        assert_eq!(parse_codings("gzip, br", 3), Codings::Decode(SmallVec::from_slice(&[Coding::Br, Coding::Gzip])));
        assert_eq!(parse_codings("X-GZIP", 3), Codings::Decode(SmallVec::from_slice(&[Coding::Gzip])));
        assert_eq!(parse_codings("compress", 3), Codings::Unknown);
        assert_eq!(parse_codings("gzip,gzip,gzip,gzip", 3), Codings::TooManyLayers);
    }

    #[test]
    fn each_coding_round_trips() {
        let data = b"hello hello hello hello content decoding".repeat(50);
        for (c, enc) in [
            (Coding::Gzip, gzip(&data)),
            (Coding::Deflate, zlib(&data)),
            (Coding::Deflate, raw_deflate(&data)),
            (Coding::Zstd, zstd(&data)),
        ] {
            let (out, st) = decode_all(&[c], &enc, &cfg());
            assert_eq!(st, DecodeStatus::Ok, "{c:?}");
            assert_eq!(out, data, "{c:?}");
        }
        // Reserved gzip header flags are ignored, fed whole or byte by byte.
        let mut odd = gzip(&data);
        odd[3] |= 0x20;
        let (out, st) = decode_all(&[Coding::Gzip], &odd, &cfg());
        assert_eq!((out.len(), st), (data.len(), DecodeStatus::Ok));
        let mut d = Decoder::new(&[Coding::Gzip], &cfg());
        let mut n = 0;
        for b in &odd {
            d.feed(std::slice::from_ref(b), &mut |x| n += x.len());
        }
        assert_eq!((d.finish(&mut |x| n += x.len()), n), (DecodeStatus::Ok, data.len()));
        let (out, st) = decode_all(&[Coding::Br], &brotli_stored(b"brotli body"), &cfg());
        assert_eq!((out.as_slice(), st), (&b"brotli body"[..], DecodeStatus::Ok));
    }

    #[test]
    fn byte_at_a_time_and_multi_member() {
        let mut enc = gzip(b"first ");
        enc.extend(gzip(b"second"));
        let mut d = Decoder::new(&[Coding::Gzip], &cfg());
        let mut out = Vec::new();
        for b in &enc {
            d.feed(std::slice::from_ref(b), &mut |x| out.extend_from_slice(x));
        }
        assert_eq!(d.finish(&mut |x| out.extend_from_slice(x)), DecodeStatus::Ok);
        assert_eq!(out, b"first second");
    }

    #[test]
    fn stacked() {
        let data = b"stacked layers".to_vec();
        // "gzip, deflate": gzip applied first, then deflate; decode deflate then gzip.
        let enc = zlib(&gzip(&data));
        let Codings::Decode(c) = parse_codings("gzip, deflate", 3) else { panic!() };
        let (out, st) = decode_all(&c, &enc, &cfg());
        assert_eq!((out, st), (data, DecodeStatus::Ok));
    }

    #[test]
    fn bomb_is_capped() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let enc = gzip(&zeros);
        let c = DecompressConfig { max_output_bytes: 1024 * 1024, ..cfg() };
        let (out, st) = decode_all(&[Coding::Gzip], &enc, &c);
        assert_eq!(st, DecodeStatus::Bomb);
        assert!(out.len() <= 1024 * 1024);
        // By ratio: 4 MiB of zeros is ~4 KiB of gzip (ratio ~1000).
        let c = DecompressConfig { max_ratio: 100, ratio_floor_bytes: 64 * 1024, ..cfg() };
        let (out, st) = decode_all(&[Coding::Gzip], &enc, &c);
        assert_eq!(st, DecodeStatus::Bomb);
        assert!(out.len() < 1024 * 1024);
    }

    #[test]
    fn corrupt_and_truncated_keep_prefix() {
        let data = b"abcdefghij".repeat(1000);
        let enc = gzip(&data);
        let (out, _) = decode_all(&[Coding::Gzip], enc.get(..enc.len() / 2).unwrap(), &cfg());
        assert!(!out.is_empty() && data.starts_with(&out));
        let (out, st) = decode_all(&[Coding::Gzip], b"not gzip at all", &cfg());
        assert_eq!((out.len(), st), (0, DecodeStatus::Failed));
        let (_, st) = decode_all(&[Coding::Zstd], b"garbage", &cfg());
        assert_eq!(st, DecodeStatus::Failed);
        let (_, st) = decode_all(&[Coding::Br], b"\xff\xff\xff\xff garbage", &cfg());
        assert_eq!(st, DecodeStatus::Failed);
    }
}
