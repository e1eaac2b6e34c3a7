//! Offline replay of pcap and pcapng files with pcap-parser (pure Rust, constant memory).
//!
//! Several files are merged in timestamp order, so a TAP capture written as one file per direction replays as
//! the link saw it. pcapng sections may declare several interfaces with different link types and timestamp
//! resolutions; each packet is decoded with its own interface's link type, and timestamps are normalised to
//! nanoseconds. A file that is corrupt or cut short yields every packet before the damage, then
//! [`FileSource::errors`] says which file, at which byte offset and after how many packets it stopped.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

use super::{LinkType, RawPacket, Timestamp};

/// Read buffer per file. A record larger than this grows the buffer up to `MAX_RECORD_BYTES`.
const READ_BUFFER_BYTES: usize = 1 << 20;
/// The largest record accepted (pcapng blocks can in theory be 4 GiB; a frame never is). Larger is corrupt.
const MAX_RECORD_BYTES: usize = 16 << 20;
/// Interfaces per pcapng section kept; a file declaring more is treated as corrupt past that point.
const MAX_INTERFACES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file ({what})")]
    NotCapture { path: PathBuf, what: String },
}

/// Where and why reading a file stopped early.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileProblem {
    pub path: String,
    /// Byte offset of the first record that could not be read.
    pub offset: u64,
    /// Packets read from this file before it.
    pub packets: u64,
    pub reason: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: stopped at byte {} after {} packets: {}", self.path, self.offset, self.packets, self.reason)
    }
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: LinkType,
    /// Timestamp units per second.
    resolution: u64,
    offset_secs: i64,
}

/// One open capture file and the next packet it holds. The packet stays in pcap-parser's read buffer (its record
/// is consumed only when the file advances), so several files can be peeked at once for the merge without
/// copying every packet.
struct FileReader {
    reader: Box<dyn PcapReaderIterator + Send>,
    st: ReaderState,
}

struct ReaderState {
    path: PathBuf,
    interfaces: Vec<Interface>,
    legacy: Option<Interface>,
    capacity: usize,
    consumed: u64,
    packets: u64,
    bytes: u64,
    /// The packet waiting to be handed out.
    next: Option<(Timestamp, LinkType, u32)>,
    /// Where its bytes are.
    slot: Slot,
    /// Copy of a packet that could not be located in the read buffer (never expected; kept for safety).
    buf: Vec<u8>,
    /// Length of the record holding `next`, left unconsumed in the reader until the next advance.
    held: usize,
    done: bool,
}

impl FileReader {
    fn open(path: &Path) -> Result<Self, FileError> {
        let file = File::open(path).map_err(|source| FileError::Open { path: path.to_owned(), source })?;
        Self::from_reader(path, Box::new(file))
    }

    /// `path` names the source in messages.
    fn from_reader(path: &Path, reader: Box<dyn Read + Send>) -> Result<Self, FileError> {
        let reader = pcap_parser::create_reader(READ_BUFFER_BYTES, reader).map_err(|e| FileError::NotCapture {
            path: path.to_owned(),
            what: match e {
                PcapError::Eof => "empty file".to_string(),
                PcapError::HeaderNotRecognized => "unrecognised file header".to_string(),
                PcapError::Incomplete(_) | PcapError::UnexpectedEof => "file too short for a header".to_string(),
                PcapError::ReadError => "read error".to_string(),
                other => format!("{other:?}"),
            },
        })?;
        Ok(FileReader {
            reader,
            st: ReaderState {
                path: path.to_owned(),
                interfaces: Vec::new(),
                legacy: None,
                capacity: READ_BUFFER_BYTES,
                consumed: 0,
                packets: 0,
                bytes: 0,
                next: None,
                slot: Slot::Copied,
                buf: Vec::new(),
                held: 0,
                done: false,
            },
        })
    }

    /// Reads until the next packet is buffered in `self.next`, or the file ends. An `Err` means the file is
    /// damaged at `self.consumed`; the reader is then done.
    fn advance(&mut self) -> Result<(), FileProblem> {
        self.st.next = None;
        // Records are consumed without shifting the buffer: `refill` shifts the unread tail once the buffer is
        // drained, where `consume` moved up to half of it every time the read position passed the middle.
        if self.st.held > 0 {
            self.reader.consume_noshift(std::mem::take(&mut self.st.held));
        }
        while !self.st.done {
            // `next` parses in place, so a packet's offset in the buffer is its address minus this one.
            let window = {
                let d = self.reader.data();
                (d.as_ptr() as usize, d.len())
            };
            let (len, got) = match self.reader.next() {
                Ok((len, block)) => (len, self.st.take_block(block, window)),
                Err(PcapError::Eof) => {
                    self.st.done = true;
                    return Ok(());
                }
                Err(PcapError::Incomplete(_)) => {
                    if let Err(e) = self.reader.refill().map_err(|e| format!("read error: {e:?}")) {
                        self.st.done = true;
                        return Err(self.st.problem(e));
                    }
                    continue;
                }
                Err(PcapError::BufferTooSmall) => {
                    // Make room by shifting first; grow only when the record alone fills the buffer.
                    if self.reader.position() > 0 {
                        if let Err(e) = self.reader.refill().map_err(|e| format!("read error: {e:?}")) {
                            self.st.done = true;
                            return Err(self.st.problem(e));
                        }
                        continue;
                    }
                    let want = self.st.capacity.saturating_mul(2);
                    if want > MAX_RECORD_BYTES || !self.reader.grow(want) {
                        self.st.done = true;
                        return Err(self.st.problem("record larger than 16 MiB"));
                    }
                    self.st.capacity = want;
                    continue;
                }
                Err(PcapError::UnexpectedEof) => {
                    self.st.done = true;
                    return Err(self.st.problem("file ends inside a record"));
                }
                Err(e) => {
                    self.st.done = true;
                    let what = match e {
                        PcapError::NomError(_, kind) => format!("malformed record ({kind:?})"),
                        PcapError::OwnedNomError(_, kind) => format!("malformed record ({kind:?})"),
                        PcapError::ReadError => "read error".to_string(),
                        other => format!("{other:?}"),
                    };
                    return Err(self.st.problem(what));
                }
            };
            self.st.consumed += len as u64;
            if matches!(got, Ok(true)) && matches!(self.st.slot, Slot::InReader { .. }) {
                self.st.held = len;
            } else {
                self.reader.consume_noshift(len);
            }
            match got {
                Ok(true) => return Ok(()),
                Ok(false) => continue,
                Err(reason) => {
                    self.st.done = true;
                    return Err(self.st.problem(reason));
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    /// At `off` in the reader's `data()`, valid until the reader consumes the held record.
    InReader {
        off: usize,
        len: usize,
    },
    Copied,
}

impl ReaderState {
    fn problem(&self, reason: impl Into<String>) -> FileProblem {
        FileProblem {
            path: self.path.display().to_string(),
            offset: self.consumed,
            packets: self.packets,
            reason: reason.into(),
        }
    }

    /// Handles one block; `Ok(true)` when it was a packet (now in `self.next`).
    fn take_block(&mut self, block: PcapBlockOwned<'_>, window: (usize, usize)) -> Result<bool, String> {
        match block {
            PcapBlockOwned::LegacyHeader(hdr) => {
                let resolution = if hdr.is_nanosecond_precision() { 1_000_000_000 } else { 1_000_000 };
                self.legacy = Some(Interface { linktype: LinkType(hdr.network.0 as u32), resolution, offset_secs: 0 });
                Ok(false)
            }
            PcapBlockOwned::Legacy(b) => {
                let Some(iface) = self.legacy else {
                    return Err("packet record before the file header".into());
                };
                let frac = u64::from(b.ts_usec);
                let ns = u64::from(b.ts_sec) * 1_000_000_000 + frac * (1_000_000_000 / iface.resolution);
                self.store(Timestamp(ns), iface.linktype, b.data, b.origlen, window);
                Ok(true)
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                // Interface ids are per section.
                self.interfaces.clear();
                Ok(false)
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                if self.interfaces.len() >= MAX_INTERFACES {
                    return Err(format!("more than {MAX_INTERFACES} interfaces in one section"));
                }
                // An invalid resolution (beyond 2^64 units/s) cannot be honoured; microseconds is pcapng's default.
                let resolution = idb.ts_resolution().filter(|r| *r > 0).unwrap_or(1_000_000);
                self.interfaces.push(Interface {
                    linktype: LinkType(idb.linktype.0 as u32),
                    resolution,
                    offset_secs: idb.ts_offset(),
                });
                Ok(false)
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let Some(iface) = self.interfaces.get(epb.if_id as usize).copied() else {
                    return Err(format!("packet on undeclared interface {}", epb.if_id));
                };
                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ns = units_to_ns(units, iface.resolution, iface.offset_secs);
                let caplen = (epb.caplen as usize).min(epb.data.len());
                let data = epb.data.get(..caplen).unwrap_or(epb.data);
                self.store(Timestamp(ns), iface.linktype, data, epb.origlen, window);
                Ok(true)
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                let Some(iface) = self.interfaces.first().copied() else {
                    return Err("simple packet block without an interface".into());
                };
                // SPBs carry no timestamp: they take the time of the previous packet.
                let ts = self.next.map(|n| n.0).unwrap_or_default();
                self.store(ts, iface.linktype, spb.data, spb.origlen, window);
                Ok(true)
            }
            PcapBlockOwned::NG(_) => Ok(false),
        }
    }

    fn store(&mut self, ts: Timestamp, linktype: LinkType, data: &[u8], orig_len: u32, window: (usize, usize)) {
        let (base, avail) = window;
        let off = (data.as_ptr() as usize).wrapping_sub(base);
        if off.checked_add(data.len()).is_some_and(|end| end <= avail) {
            self.slot = Slot::InReader { off, len: data.len() };
        } else {
            self.slot = Slot::Copied;
            self.buf.clear();
            self.buf.extend_from_slice(data);
        }
        self.packets += 1;
        self.bytes += data.len() as u64;
        self.next = Some((ts, linktype, orig_len.max(data.len() as u32)));
    }
}

fn units_to_ns(units: u64, resolution: u64, offset_secs: i64) -> u64 {
    let ns = (u128::from(units) * 1_000_000_000 / u128::from(resolution.max(1))).min(u128::from(u64::MAX)) as u64;
    let off = offset_secs.saturating_mul(1_000_000_000);
    if off >= 0 { ns.saturating_add(off as u64) } else { ns.saturating_sub(off.unsigned_abs()) }
}

/// Replays one or more capture files, merged by packet timestamp (ties go to the file named first).
pub struct FileSource {
    files: Vec<FileReader>,
    /// Index of the file whose packet was handed out last (to advance it on the next call).
    current: Option<usize>,
    errors: Vec<FileProblem>,
    started: bool,
}

impl FileSource {
    /// Opens every file and checks its header. Fails on the first file that cannot be opened or is not a capture.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<Self, FileError> {
        let files = paths.iter().map(|p| FileReader::open(p.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(FileSource { files, current: None, errors: Vec::new(), started: false })
    }

    /// Reads one capture from `reader` (fuzzing, captures held in memory); `name` stands for its path in
    /// messages.
    pub fn from_reader(name: &Path, reader: Box<dyn Read + Send>) -> Result<Self, FileError> {
        let files = vec![FileReader::from_reader(name, reader)?];
        Ok(FileSource { files, current: None, errors: Vec::new(), started: false })
    }

    /// The next packet in timestamp order, or `None` when every file is exhausted (or stopped at damage).
    pub fn next_packet(&mut self) -> Option<RawPacket<'_>> {
        if !self.started {
            self.started = true;
            for i in 0..self.files.len() {
                self.advance(i);
            }
        } else if let Some(i) = self.current.take() {
            self.advance(i);
        }
        let mut best: Option<(usize, Timestamp)> = None;
        for (i, f) in self.files.iter().enumerate() {
            if let Some((ts, _, _)) = f.st.next
                && best.is_none_or(|(_, b)| ts < b)
            {
                best = Some((i, ts));
            }
        }
        let (i, _) = best?;
        self.current = Some(i);
        let f = self.files.get(i)?;
        let (ts, linktype, orig_len) = f.st.next?;
        let data = match f.st.slot {
            Slot::InReader { off, len } => f.reader.data().get(off..off.saturating_add(len)).unwrap_or(&[]),
            Slot::Copied => &f.st.buf,
        };
        Some(RawPacket { ts, linktype, data, orig_len })
    }

    fn advance(&mut self, i: usize) {
        if let Some(f) = self.files.get_mut(i)
            && let Err(p) = f.advance()
        {
            self.errors.push(p);
        }
    }

    /// Files that stopped early, with where and why.
    pub fn errors(&self) -> &[FileProblem] {
        &self.errors
    }

    /// Bytes of packet data read so far, over all files.
    pub fn bytes_read(&self) -> u64 {
        self.files.iter().map(|f| f.st.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn legacy_pcap(nanos: bool, linktype: u32, packets: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(if nanos { 0xa1b23c4du32 } else { 0xa1b2c3d4u32 }).to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&0i32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&linktype.to_le_bytes());
        for (s, frac, data) in packets {
            v.extend_from_slice(&s.to_le_bytes());
            v.extend_from_slice(&frac.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(data);
        }
        v
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    fn collect(src: &mut FileSource) -> Vec<(u64, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(p) = src.next_packet() {
            out.push((p.ts.0, p.linktype.0, p.data.to_vec()));
        }
        out
    }

    #[test]
    fn merges_files_by_timestamp_with_both_resolutions() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(&dir, "a.pcap", &legacy_pcap(false, 1, &[(10, 5, b"a1"), (12, 0, b"a2")]));
        let b = write(&dir, "b.pcap", &legacy_pcap(true, 101, &[(10, 6000, b"b1"), (11, 0, b"b2")]));
        let mut src = FileSource::open(&[a, b]).unwrap();
        let got = collect(&mut src);
        assert_eq!(
            got,
            vec![
                (10_000_005_000, 1, b"a1".to_vec()),
                (10_000_006_000, 101, b"b1".to_vec()),
                (11_000_000_000, 101, b"b2".to_vec()),
                (12_000_000_000, 1, b"a2".to_vec()),
            ]
        );
        assert!(src.errors().is_empty());
    }

    #[test]
    fn truncated_file_yields_what_it_can_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = legacy_pcap(false, 1, &[(1, 0, b"first"), (2, 0, b"second-packet")]);
        bytes.truncate(bytes.len() - 4);
        let p = write(&dir, "cut.pcap", &bytes);
        let mut src = FileSource::open(&[p]).unwrap();
        let got = collect(&mut src);
        assert_eq!(got.len(), 1);
        let err = &src.errors()[0];
        assert_eq!(err.packets, 1);
        assert_eq!(err.offset, 24 + 16 + 5);
        assert!(err.to_string().contains("cut.pcap"), "{err}");
    }

    #[test]
    fn not_a_capture_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "x.pcap", b"this is not a capture file at all, just text");
        let err = FileSource::open(&[p]).err().unwrap().to_string();
        assert!(err.contains("x.pcap") && err.contains("not a pcap or pcapng"), "{err}");
        let p = write(&dir, "empty.pcap", b"");
        let err = FileSource::open(&[p]).err().unwrap().to_string();
        assert!(err.contains("empty"), "{err}");
    }

    /// A pcapng section with two interfaces of different link types and a nanosecond one.
    #[test]
    fn pcapng_multi_interface_linktypes_and_resolution() {
        fn block(t: u32, body: &[u8]) -> Vec<u8> {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let len = (body.len() + 12) as u32;
            let mut v = t.to_le_bytes().to_vec();
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&body);
            v.extend_from_slice(&len.to_le_bytes());
            v
        }
        let mut f = Vec::new();
        let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        f.extend(block(0x0a0d0d0a, &shb));
        // Interface 0: Ethernet, microseconds (default).
        let mut idb0 = 1u16.to_le_bytes().to_vec();
        idb0.extend_from_slice(&0u16.to_le_bytes());
        idb0.extend_from_slice(&0u32.to_le_bytes());
        f.extend(block(1, &idb0));
        // Interface 1: raw IP, if_tsresol = 9 (nanoseconds).
        let mut idb1 = 101u16.to_le_bytes().to_vec();
        idb1.extend_from_slice(&0u16.to_le_bytes());
        idb1.extend_from_slice(&0u32.to_le_bytes());
        idb1.extend_from_slice(&9u16.to_le_bytes());
        idb1.extend_from_slice(&1u16.to_le_bytes());
        idb1.extend_from_slice(&[9, 0, 0, 0]);
        idb1.extend_from_slice(&[0, 0, 0, 0]);
        f.extend(block(1, &idb1));
        let epb = |iface: u32, ts: u64, data: &[u8]| {
            let mut b = iface.to_le_bytes().to_vec();
            b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(ts as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(data);
            block(6, &b)
        };
        f.extend(epb(0, 5_000_001, b"eth"));
        f.extend(epb(1, 5_000_000_500, b"raw"));
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "multi.pcapng", &f);
        let mut src = FileSource::open(&[p]).unwrap();
        let got = collect(&mut src);
        // Within one file, packets keep the file's order.
        assert_eq!(got, vec![(5_000_001_000, 1, b"eth".to_vec()), (5_000_000_500, 101, b"raw".to_vec())]);
        assert!(src.errors().is_empty(), "{:?}", src.errors());
    }

    /// Packets handed out in place must survive buffer refills, shifts and growth, alone and merged.
    #[test]
    fn packets_stay_intact_across_refills_and_merges() {
        use crate::synth::{PcapWriter, Rng};
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(7);
        let mut expected: Vec<Vec<(Timestamp, Vec<u8>)>> = Vec::new();
        let mut paths = Vec::new();
        for f in 0..2u64 {
            let mut w = PcapWriter::new(Vec::new(), LinkType(1)).unwrap();
            let mut pkts = Vec::new();
            let mut t = 1_000_000_000 + f;
            for i in 0..3000u64 {
                // Mostly MTU-sized, a few 2 MiB records (larger than the read buffer).
                let len = if i % 1000 == 999 { 2 << 20 } else { rng.below(1600) as usize + 1 };
                let fill = (i as u8).wrapping_mul(31).wrapping_add(f as u8);
                let data: Vec<u8> = (0..len).map(|k| fill.wrapping_add(k as u8)).collect();
                t += 2 + rng.below(3);
                w.write_packet(Timestamp(t), &data).unwrap();
                pkts.push((Timestamp(t), data));
            }
            let path = dir.path().join(format!("f{f}.pcap"));
            std::fs::write(&path, w.into_inner()).unwrap();
            paths.push(path);
            expected.push(pkts);
        }
        let mut src = FileSource::open(&paths[..1]).unwrap();
        let mut n = 0;
        while let Some(p) = src.next_packet() {
            let (ts, data) = &expected[0][n];
            assert_eq!((p.ts, p.data), (*ts, &data[..]), "packet {n}");
            n += 1;
        }
        assert_eq!(n, 3000);
        assert!(src.errors().is_empty());
        let mut merged: Vec<(Timestamp, Vec<u8>)> = expected.concat();
        merged.sort_by_key(|(ts, _)| *ts);
        let mut src = FileSource::open(&paths).unwrap();
        let mut n = 0;
        while let Some(p) = src.next_packet() {
            let (ts, data) = &merged[n];
            assert_eq!((p.ts, p.data), (*ts, &data[..]), "merged packet {n}");
            n += 1;
        }
        assert_eq!(n, 6000);
        assert_eq!(src.bytes_read(), merged.iter().map(|(_, d)| d.len() as u64).sum::<u64>());
    }
}
