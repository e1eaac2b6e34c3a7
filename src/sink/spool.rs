//! The disk spool of one sink: records that could not be delivered (sink down, queue full, shutdown) wait
//! here, in order, until the sink takes them; it survives restarts.
//!
//! Layout under `<state dir>/spool/<sink name>/`: segment files `<20-digit sequence>.seg` holding one record
//! per line (`<stream> <json>\n`), and `cursor` ("<segment> <offset>") saying how far the oldest segment was
//! delivered. The cursor is written after a delivery succeeds, so a crash in between delivers those records
//! again (at-least-once, never lost). The writer appends to the newest segment; the reader never reads the
//! segment being written (it rolls it first). When the total size would pass the cap, whole oldest segments
//! are deleted and their unread records counted as dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::format::Stream;

/// One spooled record.
#[derive(Clone, Debug, PartialEq)]
pub struct Spooled {
    pub stream: Stream,
    pub json: Vec<u8>,
}

/// Longest spooled line read back; a longer one is corrupt (records are capped far below this upstream).
const MAX_LINE: usize = 16 << 20;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Segments on disk, oldest first: (sequence, size in bytes).
    segments: Vec<(u64, u64)>,
    /// Open writer on the newest segment, if any.
    writer: Option<(u64, File)>,
    /// Delivered up to here in the oldest segment.
    cursor: (u64, u64),
    /// Set by `read_batch`, applied by `commit`: where the last batch read ends.
    pending_commit: Option<(u64, u64)>,
    /// Records in the spool not yet delivered (exact within a process; recounted at open).
    pub records: u64,
    /// Records deleted by the size cap (oldest first) or unreadable lines skipped.
    pub dropped: u64,
    pub corrupt: u64,
    warned: bool,
}

fn seg_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

impl Spool {
    /// Opens (creating) the spool directory and takes up what a previous run left.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> std::io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            let Some(seq) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push((seq, e.metadata()?.len()));
        }
        segments.sort_unstable();
        let cursor = fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|c| {
                let mut it = c.split_whitespace().map(|x| x.parse::<u64>().ok());
                Some((it.next()??, it.next()??))
            })
            .unwrap_or((0, 0));
        let mut sp = Spool {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(segment_bytes),
            segment_bytes: segment_bytes.max(4096),
            segments,
            writer: None,
            cursor,
            pending_commit: None,
            records: 0,
            dropped: 0,
            corrupt: 0,
            warned: false,
        };
        // Segments before the cursor were delivered; one the cursor points past is done too.
        while let Some(&(seq, len)) = sp.segments.first() {
            if seq < sp.cursor.0 || (seq == sp.cursor.0 && sp.cursor.1 >= len) {
                let _ = fs::remove_file(sp.dir.join(seg_name(seq)));
                sp.segments.remove(0);
            } else {
                break;
            }
        }
        if sp.segments.first().is_some_and(|&(seq, _)| seq != sp.cursor.0) {
            sp.cursor = (sp.segments.first().map_or(0, |s| s.0), 0);
        }
        let segs = sp.segments.clone();
        for (seq, _) in segs {
            sp.records += sp.count_lines(seq, if seq == sp.cursor.0 { sp.cursor.1 } else { 0 });
        }
        Ok(sp)
    }

    fn count_lines(&self, seq: u64, from: u64) -> u64 {
        let Ok(mut f) = File::open(self.dir.join(seg_name(seq))) else { return 0 };
        if f.seek(SeekFrom::Start(from)).is_err() {
            return 0;
        }
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += memchr::memchr_iter(b'\n', buf.get(..k).unwrap_or(&[])).count() as u64,
            }
        }
        n
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0 || self.segments.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.1).sum()
    }

    /// Appends records; makes room by dropping the oldest segments when the cap is hit. Errors are I/O errors
    /// of the spool directory (disk full, permissions): the caller counts the records as dropped.
    pub fn append(&mut self, recs: &[Spooled]) -> std::io::Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in recs {
            buf.extend_from_slice(r.stream.name().as_bytes());
            buf.push(b' ');
            // Records are single-line JSON; a stray newline would split one into two corrupt lines.
            buf.extend(r.json.iter().map(|&c| if c == b'\n' { b' ' } else { c }));
            buf.push(b'\n');
        }
        let len = buf.len() as u64;
        while self.bytes() + len > self.max_bytes && !self.segments.is_empty() {
            self.drop_oldest();
        }
        let need_new = match (&self.writer, self.segments.last()) {
            (Some((seq, _)), Some(&(last, size))) => *seq != last || size >= self.segment_bytes,
            _ => true,
        };
        if need_new {
            let seq = self.segments.last().map_or(self.cursor.0, |s| s.0 + 1);
            let f = OpenOptions::new().create(true).append(true).open(self.dir.join(seg_name(seq)))?;
            let size = f.metadata()?.len();
            self.writer = Some((seq, f));
            self.segments.push((seq, size));
            if self.segments.len() == 1 {
                self.cursor = (seq, 0);
                self.save_cursor();
            }
        }
        if let Some((_, f)) = &mut self.writer {
            f.write_all(&buf)?;
        }
        if let Some(last) = self.segments.last_mut() {
            last.1 += len;
        }
        self.records += recs.len() as u64;
        Ok(())
    }

    fn drop_oldest(&mut self) {
        let Some(&(seq, _)) = self.segments.first() else { return };
        let from = if seq == self.cursor.0 { self.cursor.1 } else { 0 };
        let lost = self.count_lines(seq, from);
        if self.writer.as_ref().is_some_and(|w| w.0 == seq) {
            self.writer = None;
        }
        let _ = fs::remove_file(self.dir.join(seg_name(seq)));
        self.segments.remove(0);
        self.records = self.records.saturating_sub(lost);
        self.dropped += lost;
        self.pending_commit = None;
        self.cursor = (self.segments.first().map_or(seq + 1, |s| s.0), 0);
        self.save_cursor();
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                spool = %self.dir.display(),
                max_bytes = self.max_bytes,
                records = lost,
                "Sink spool full: dropping its oldest records (counted in dropped; logged once)."
            );
        }
    }

    /// Reads up to `max` undelivered records from the oldest segment, without consuming them: `commit`
    /// consumes them after the sink took them.
    pub fn read_batch(&mut self, max: usize) -> Vec<Spooled> {
        let mut out = Vec::new();
        let Some(&(seq, size)) = self.segments.first() else { return out };
        if self.writer.as_ref().is_some_and(|w| w.0 == seq) {
            // Roll: the reader only reads closed segments.
            if let Some((_, f)) = self.writer.take() {
                let _ = f.sync_data();
            }
        }
        let from = if seq == self.cursor.0 { self.cursor.1 } else { 0 };
        let Ok(mut f) = File::open(self.dir.join(seg_name(seq))) else {
            self.segments.remove(0);
            return out;
        };
        if f.seek(SeekFrom::Start(from)).is_err() {
            return out;
        }
        let mut r = BufReader::new(f.take(size.saturating_sub(from)));
        let mut pos = from;
        let mut line = Vec::new();
        while out.len() < max {
            line.clear();
            match r.by_ref().take(MAX_LINE as u64).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    pos += n as u64;
                    if line.last() != Some(&b'\n') {
                        // A torn last line (crash mid-write) or an over-long one.
                        self.corrupt += 1;
                        pos = size;
                        break;
                    }
                    let body = line.get(..line.len() - 1).unwrap_or(&[]);
                    let sp = memchr::memchr(b' ', body);
                    let parsed = sp.and_then(|i| {
                        let stream = std::str::from_utf8(body.get(..i)?).ok().and_then(Stream::from_name)?;
                        Some(Spooled { stream, json: body.get(i + 1..)?.to_vec() })
                    });
                    match parsed {
                        Some(s) => out.push(s),
                        None => {
                            self.corrupt += 1;
                            self.records = self.records.saturating_sub(1);
                        }
                    }
                }
            }
        }
        self.pending_commit = Some((seq, pos));
        if out.is_empty() && pos >= size {
            // Only corrupt lines were left.
            self.commit(0);
        }
        out
    }

    /// The last batch read was delivered: advance the cursor (deleting the segment when it is done).
    pub fn commit(&mut self, n: usize) {
        let Some((seq, pos)) = self.pending_commit.take() else { return };
        self.records = self.records.saturating_sub(n as u64);
        let size = self.segments.first().filter(|s| s.0 == seq).map_or(0, |s| s.1);
        if pos >= size && self.writer.as_ref().is_none_or(|w| w.0 != seq) {
            let _ = fs::remove_file(self.dir.join(seg_name(seq)));
            if self.segments.first().is_some_and(|s| s.0 == seq) {
                self.segments.remove(0);
            }
            self.cursor = (self.segments.first().map_or(seq + 1, |s| s.0), 0);
        } else {
            self.cursor = (seq, pos);
        }
        self.save_cursor();
    }

    fn save_cursor(&self) {
        let tmp = self.dir.join("cursor.tmp");
        let ok = fs::write(&tmp, format!("{} {}\n", self.cursor.0, self.cursor.1)).is_ok();
        if ok {
            let _ = fs::rename(&tmp, self.dir.join("cursor"));
        }
    }

    /// Makes appended records durable (end of a run).
    pub fn sync(&mut self) {
        if let Some((_, f)) = &self.writer {
            let _ = f.sync_data();
        }
        self.save_cursor();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> Spooled {
        Spooled { stream: Stream::Alerts, json: format!("{{\"n\":{i}}}").into_bytes() }
    }

    #[test]
    fn in_order_across_segments_and_restart() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 1 << 20, 4096).unwrap();
        for i in 0..1000 {
            s.append(&[rec(i)]).unwrap();
        }
        assert_eq!(s.records, 1000);
        let b = s.read_batch(10);
        assert_eq!(b.first(), Some(&rec(0)));
        s.commit(b.len());
        drop(s);
        let mut s = Spool::open(d.path(), 1 << 20, 4096).unwrap();
        assert_eq!(s.records, 990);
        let mut got = Vec::new();
        loop {
            let b = s.read_batch(64);
            if b.is_empty() {
                break;
            }
            s.commit(b.len());
            got.extend(b);
        }
        assert_eq!(got.len(), 990);
        assert_eq!(got.first(), Some(&rec(10)));
        assert_eq!(got.last(), Some(&rec(999)));
        assert!(s.is_empty());
        // A batch read but not committed is read again.
        s.append(&[rec(1), rec(2)]).unwrap();
        let _ = s.read_batch(5);
        assert_eq!(s.read_batch(5).len(), 2);
    }

    #[test]
    fn cap_drops_oldest_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 16 * 1024, 4096).unwrap();
        for i in 0..5000 {
            s.append(&[rec(i)]).unwrap();
        }
        assert!(s.bytes() <= 16 * 1024);
        assert!(s.dropped > 0);
        assert_eq!(s.dropped + s.records, 5000);
        let b = s.read_batch(1);
        assert_ne!(b.first(), Some(&rec(0)));
    }

    #[test]
    fn corrupt_lines_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(seg_name(0)), b"alerts {}\nbogus\nzzz {}\nfindings {\"a\":1}\ntorn").unwrap();
        let mut s = Spool::open(d.path(), 1 << 20, 4096).unwrap();
        let b = s.read_batch(100);
        assert_eq!(b.len(), 2);
        assert!(s.corrupt >= 2);
    }
}
