//! Analyzers: what runs on every HTTP transaction in the worker threads.
//!
//! Each analyzer is one type implementing [`Analyzer`]; the [`Registry`] knows how to build one instance per
//! worker (so an analyzer's own state needs no lock; state shared across workers lives in the analyzer's
//! shared structures, e.g. a `DashMap`, created once and captured by its factory). Results are
//! [`Record`]s: one JSON line for one output stream (`findings`, `alerts`, ...), written by the output thread
//! to `DIR/<stream>.jsonl`.

use std::sync::Arc;

use crate::capture::Timestamp;
use crate::http::Transaction;

/// One output line produced by an analyzer.
#[derive(Clone, Debug)]
pub struct Record {
    /// The output stream (file name without `.jsonl`): a small fixed set, never data-derived.
    pub stream: &'static str,
    /// One JSON object, without the trailing newline.
    pub json: Vec<u8>,
}

pub trait Analyzer: Send {
    /// Stable name, used as the metrics label.
    fn name(&self) -> &'static str;
    fn on_transaction(&mut self, tx: &Arc<Transaction>, out: &mut Vec<Record>);
    /// Called about once a second (wall clock in live mode, packet time in replay) for time-based work.
    fn on_tick(&mut self, _now: Timestamp, _out: &mut Vec<Record>) {}
    /// End of input or shutdown: emit what is still held.
    fn finish(&mut self, _out: &mut Vec<Record>) {}
}

type Factory = Box<dyn Fn() -> Box<dyn Analyzer> + Send + Sync>;

/// The analyzers to run, as factories: each worker calls every factory once.
#[derive(Default)]
pub struct Registry {
    factories: Vec<(&'static str, Factory)>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    pub fn register(&mut self, name: &'static str, factory: impl Fn() -> Box<dyn Analyzer> + Send + Sync + 'static) {
        self.factories.push((name, Box::new(factory)));
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.factories.iter().map(|(n, _)| *n).collect()
    }

    pub fn build(&self) -> Vec<Box<dyn Analyzer>> {
        self.factories.iter().map(|(_, f)| f()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.factories.is_empty()
    }
}

/// The analyzers shipped today. (Inventory, sensitive data and detections register here as they land.)
pub fn builtin() -> Registry {
    Registry::new()
}
