//! Output files of a run: `flows.jsonl`, `transactions.jsonl` (one JSON object per line) and `stats.json`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::flow::table::{FlowOutput, FlowRecord};
use crate::http::Transaction;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Transaction lines are handed to the file in batches of about this many bytes.
const BATCH_BYTES: usize = 256 << 10;

/// A JSON-lines file written through a buffer; the first write error is kept and reported at `finish`.
pub struct JsonlFile {
    path: PathBuf,
    w: BufWriter<File>,
    error: Option<std::io::Error>,
    pub lines: u64,
    /// Transaction lines not yet handed to `w`: written in batches, as one large write bypasses the
    /// BufWriter's own copy.
    line: Vec<u8>,
}

impl JsonlFile {
    pub fn create(path: PathBuf) -> Result<Self, OutputError> {
        let f = File::create(&path).map_err(|source| OutputError::Io { path: path.clone(), source })?;
        Ok(JsonlFile { path, w: BufWriter::with_capacity(1 << 16, f), error: None, lines: 0, line: Vec::new() })
    }

    pub fn write<T: serde::Serialize>(&mut self, rec: &T) {
        self.flush_batch();
        if self.error.is_some() {
            return;
        }
        let r = serde_json::to_writer(&mut self.w, rec)
            .map_err(std::io::Error::other)
            .and_then(|()| self.w.write_all(b"\n"));
        match r {
            Ok(()) => self.lines += 1,
            Err(e) => self.error = Some(e),
        }
    }

    /// Writes `n` complete lines (each already ending in a newline).
    pub fn write_lines(&mut self, lines: &[u8], n: u64) {
        if self.error.is_some() {
            return;
        }
        match self.w.write_all(lines) {
            Ok(()) => self.lines += n,
            Err(e) => self.error = Some(e),
        }
    }

    /// A transaction line through [`Transaction::write_json`]: the same bytes as `write(&tx.record())`.
    pub fn write_transaction(&mut self, tx: &Transaction) {
        if self.error.is_some() {
            return;
        }
        tx.write_json(&mut self.line);
        self.line.push(b'\n');
        self.lines += 1;
        if self.line.len() >= BATCH_BYTES {
            self.flush_batch();
        }
    }

    fn flush_batch(&mut self) {
        if self.line.is_empty() {
            return;
        }
        if self.error.is_none()
            && let Err(e) = self.w.write_all(&self.line)
        {
            self.error = Some(e);
        }
        self.line.clear();
        // One huge transaction must not pin its buffer for the rest of the run.
        if self.line.capacity() > 4 * BATCH_BYTES {
            self.line = Vec::new();
        }
    }

    pub fn finish(mut self) -> Result<u64, OutputError> {
        self.flush_batch();
        if let Some(source) = self.error.take() {
            return Err(OutputError::Io { path: self.path, source });
        }
        self.w.flush().map_err(|source| OutputError::Io { path: self.path.clone(), source })?;
        Ok(self.lines)
    }
}

/// The per-run output directory.
pub struct OutputDir {
    pub flows: JsonlFile,
    pub transactions: JsonlFile,
}

impl OutputDir {
    pub fn create(dir: &Path) -> Result<Self, OutputError> {
        std::fs::create_dir_all(dir).map_err(|source| OutputError::Io { path: dir.to_owned(), source })?;
        Ok(OutputDir {
            flows: JsonlFile::create(dir.join("flows.jsonl"))?,
            transactions: JsonlFile::create(dir.join("transactions.jsonl"))?,
        })
    }

    pub fn finish(self) -> Result<(u64, u64), OutputError> {
        Ok((self.flows.finish()?, self.transactions.finish()?))
    }
}

impl FlowOutput for OutputDir {
    fn flow_closed(&mut self, rec: FlowRecord) {
        self.flows.write(&rec);
    }
    fn transaction(&mut self, tx: Transaction) {
        self.transactions.write_transaction(&tx);
    }
}

pub fn write_json_file<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let io = |source| OutputError::Io { path: path.to_owned(), source };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    serde_json::to_writer_pretty(&mut w, value).map_err(|e| io(std::io::Error::other(e)))?;
    w.write_all(b"\n").map_err(io)?;
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fixture::run_fixture;
    use crate::http::{HttpConfig, Transaction};
    use std::sync::Arc;

    #[test]
    fn batched_transaction_lines_match_records() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            b">>>\nGET /a?x=1 HTTP/1.1\nHost: h\nCookie: s=1\n\n<<<\nHTTP/1.1 200 OK\nContent-Length: 2\n\nok\\\n";
        let txs: Vec<Transaction> = run_fixture(text, Arc::new(HttpConfig::default()));
        assert_eq!(txs.len(), 1);
        let mut out = OutputDir::create(dir.path()).unwrap();
        // Enough lines for several batches plus a partial one.
        let n = 3 * BATCH_BYTES / 300 + 7;
        for _ in 0..n {
            out.transaction(txs[0].clone());
        }
        assert_eq!(out.finish().unwrap(), (0, n as u64));
        let written = std::fs::read_to_string(dir.path().join("transactions.jsonl")).unwrap();
        let want = serde_json::to_string(&txs[0].record()).unwrap();
        assert_eq!(written.lines().count(), n);
        assert!(written.lines().all(|l| l == want));
    }
}
