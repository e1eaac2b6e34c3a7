//! Output files of a run: JSON-lines streams (`flows.jsonl`, `transactions.jsonl`, analyzer streams), written by
//! the pipeline's output thread, and `stats.json`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A JSON-lines file written through a buffer; the first write error is kept and reported at `finish`.
pub struct JsonlFile {
    path: PathBuf,
    w: BufWriter<File>,
    error: Option<std::io::Error>,
    pub lines: u64,
}

impl JsonlFile {
    pub fn create(path: PathBuf) -> Result<Self, OutputError> {
        let f = File::create(&path).map_err(|source| OutputError::Io { path: path.clone(), source })?;
        Ok(JsonlFile { path, w: BufWriter::with_capacity(1 << 16, f), error: None, lines: 0 })
    }

    pub fn write<T: serde::Serialize>(&mut self, rec: &T) {
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

    pub fn finish(mut self) -> Result<u64, OutputError> {
        if let Some(source) = self.error.take() {
            return Err(OutputError::Io { path: self.path, source });
        }
        self.w.flush().map_err(|source| OutputError::Io { path: self.path.clone(), source })?;
        Ok(self.lines)
    }
}

pub fn write_json_file<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let io = |source| OutputError::Io { path: path.to_owned(), source };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    serde_json::to_writer_pretty(&mut w, value).map_err(|e| io(std::io::Error::other(e)))?;
    w.write_all(b"\n").map_err(io)?;
    w.flush().map_err(io)
}
