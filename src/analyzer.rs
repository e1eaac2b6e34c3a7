//! Analyzers: what runs on every HTTP transaction in the worker threads.
//!
//! Each analyzer is one type implementing [`Analyzer`]; the [`Registry`] knows how to build one instance per
//! worker (so an analyzer's own state needs no lock; state shared across workers lives in the analyzer's
//! shared structures, e.g. a `DashMap`, created once and captured by its factory). Results are
//! [`Record`]s: one JSON line for one output stream (`findings`, `alerts`, ...), written by the output thread
//! to `DIR/<stream>.jsonl`.

use std::path::Path;
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

/// One data class (a kind of personal data or secret) seen in a transaction, reported by the sensitive-data
/// analyzer and recorded per operation by the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataClassHit {
    /// Where: `request.query`, `request.header`, `request.cookie`, `request.path`, `request.body`,
    /// `response.header`, `response.cookie`, `response.body`.
    pub location: &'static str,
    /// JSON path, parameter or header name.
    pub field: String,
    /// The type, e.g. `email`, `credit_card`.
    pub class: String,
    /// `pii`, `financial`, `health`, `credential`, `secret`.
    pub category: String,
}

/// What the analyzers learn about one transaction, handed along the chain in registration order
/// (inventory, then sensitive data, then detections): a later analyzer reads what an earlier one found.
/// Reset for every transaction; its buffers are reused.
#[derive(Debug, Default)]
pub struct TxContext {
    /// The API service (inventory key: host or server address, plus tunnel tenant).
    pub service: Option<String>,
    /// The operation's path template, e.g. `/users/{userId}`.
    pub endpoint: Option<String>,
    /// Data classes found in this transaction.
    pub data_classes: Vec<DataClassHit>,
}

impl TxContext {
    pub fn clear(&mut self) {
        self.service = None;
        self.endpoint = None;
        self.data_classes.clear();
    }
}

pub trait Analyzer: Send {
    /// Stable name, used as the metrics label.
    fn name(&self) -> &'static str;
    /// Whether what it says about a transaction depends on the transactions before it (state learnt across
    /// transactions: templates, windows). An ordered analyzer sees the transactions in capture order, one
    /// batch after the other, so that a replay gives the same answer for any number of workers; the others
    /// run on several batches at once.
    ///
    /// The transaction records are written before the ordered analyzers at the end of the chain run: those
    /// must not add data classes to the context (the records' masking reads them).
    fn ordered(&self) -> bool {
        false
    }
    /// Work on a transaction that needs nothing learnt from the others (parsing, typing, scanning), done for
    /// a whole batch, every analyzer in chain order, before any `on_transaction` on it: for an ordered
    /// analyzer, work taken off the part that waits for the batch ahead. What it finds for the others goes
    /// into the context (the data classes: the inventory files them with the transaction). An analyzer keeps
    /// what it prepared in call order; `on_transaction` without a prepared value does the work itself.
    fn prepare(&mut self, _tx: &Arc<Transaction>, _ctx: &mut TxContext) {}
    fn on_transaction(&mut self, tx: &Arc<Transaction>, ctx: &mut TxContext, out: &mut Vec<Record>);
    /// Called for every analyzer after the whole chain has seen the transaction, with the complete context
    /// (e.g. the inventory records the data classes found after it ran); always in capture order.
    fn after_transaction(&mut self, _tx: &Arc<Transaction>, _ctx: &TxContext) {}
    /// Called about once a second (wall clock in live mode, packet time in replay) for time-based work.
    fn on_tick(&mut self, _now: Timestamp, _out: &mut Vec<Record>) {}
    /// End of input or shutdown: emit what is still held.
    fn finish(&mut self, _out: &mut Vec<Record>) {}
}

/// What an analyzer prepared for the transactions of a batch, taken back in the same order by
/// `on_transaction`. Bounded: a caller that never runs `on_transaction` (a test, a bench) must not grow it;
/// a batch holds far fewer.
pub struct Prepared<T>(std::collections::VecDeque<T>);

impl<T> Default for Prepared<T> {
    fn default() -> Self {
        Prepared(std::collections::VecDeque::new())
    }
}

impl<T> Prepared<T> {
    const MAX: usize = 4096;

    pub fn push(&mut self, v: T) {
        if self.0.len() >= Self::MAX {
            self.0.pop_front();
        }
        self.0.push_back(v);
    }

    pub fn take(&mut self) -> Option<T> {
        self.0.pop_front()
    }
}

type Factory = Box<dyn Fn() -> Box<dyn Analyzer> + Send + Sync>;
type Conclusion = Box<dyn Fn(&Path) -> std::io::Result<()> + Send + Sync>;
type Reload = Box<dyn Fn(&AnalysisSettings) -> Result<(), SetupError> + Send + Sync>;

/// The analyzers to run, as factories: each worker calls every factory once.
#[derive(Default)]
pub struct Registry {
    factories: Vec<(&'static str, Factory)>,
    conclusions: Vec<(&'static str, Conclusion)>,
    reloads: Vec<(&'static str, Reload)>,
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

    /// Runs once at the end of a run, after every worker has finished, with the output directory: where
    /// analyzers with shared state write their artifacts (`openapi/`, `inventory.json`, ...).
    pub fn on_conclude(
        &mut self,
        name: &'static str,
        f: impl Fn(&Path) -> std::io::Result<()> + Send + Sync + 'static,
    ) {
        self.conclusions.push((name, Box::new(f)));
    }

    /// Called on SIGHUP with the re-read settings: an analyzer swaps in what it can reload (signature packs,
    /// rules). On error it must keep what it runs with; the error is logged.
    pub fn on_reload(
        &mut self,
        name: &'static str,
        f: impl Fn(&AnalysisSettings) -> Result<(), SetupError> + Send + Sync + 'static,
    ) {
        self.reloads.push((name, Box::new(f)));
    }

    /// Runs every reload hook; returns how many failed (each failure is logged with its message).
    pub fn reload(&self, settings: &AnalysisSettings) -> usize {
        let mut failed = 0;
        for (name, f) in &self.reloads {
            match f(settings) {
                Ok(()) => tracing::info!(analyzer = name, "Reloaded."),
                Err(e) => {
                    failed += 1;
                    tracing::error!(analyzer = name, error = %e, "Reload refused; keeping the running set.");
                }
            }
        }
        failed
    }

    /// Runs the conclusion hooks; every hook runs even when one fails, the first error is returned.
    pub fn conclude(&self, out_dir: &Path) -> Result<(), (&'static str, std::io::Error)> {
        let mut first = None;
        for (name, f) in &self.conclusions {
            if let Err(e) = f(out_dir) {
                tracing::error!(analyzer = name, error = %e, "writing the analyzer's results failed");
                first.get_or_insert((*name, e));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Settings of the built-in analyzers, from the config file's `[inventory]`, `[sensitive]` and `[detect]`
/// sections, plus where persistent state lives.
#[derive(Clone, Debug, Default)]
pub struct AnalysisSettings {
    pub inventory: crate::inventory::Settings,
    pub sensitive: crate::sensitive::Settings,
    pub detect: crate::detect::Settings,
    /// `[state] dir`; `None` when the run keeps no state (replay).
    pub state_dir: Option<std::path::PathBuf>,
    /// The output directory of a live run, where analyzers refresh their files periodically; `None` in
    /// replay (files are written once, at the end).
    pub live_out_dir: Option<std::path::PathBuf>,
}

/// An analyzer could not start: a signature pack, a spec or its state is unusable. The message names the
/// file, the line or field, and what is wrong; the binary exits with the bad-configuration code.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// The analyzers shipped today, in chain order: inventory, sensitive data, detections.
pub fn builtin(settings: &AnalysisSettings) -> Result<Registry, SetupError> {
    let mut reg = Registry::new();
    if !settings.inventory.enabled {
        if !settings.inventory.specs.is_empty() {
            return Err(SetupError(
                "[inventory] specs (or --spec) need the inventory, but [inventory] enabled = false".into(),
            ));
        }
        crate::sensitive::register(&mut reg, settings)?;
        crate::detect::register(&mut reg, settings)?;
        return Ok(reg);
    }
    let inventory = crate::inventory::register_inventory(&mut reg, settings)?;
    // The owner's templates take precedence over learned ones (a spec's path with text and a parameter in one
    // segment cannot be pinned: it is still diffed).
    for spec in crate::specdiff::register(&mut reg, settings)?.iter() {
        for t in spec.templates() {
            if let Err(e) = inventory.pin(None, &t) {
                tracing::debug!(spec = %spec.source, template = %t, error = %e, "Spec template not pinned.");
            }
        }
    }
    crate::sensitive::register(&mut reg, settings)?;
    crate::detect::register(&mut reg, settings)?;
    Ok(reg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_inventory_can_be_turned_off_but_not_under_a_spec() {
        let mut s = AnalysisSettings::default();
        assert_eq!(builtin(&s).unwrap().names(), ["inventory", "sensitive", "detect"]);
        s.inventory.enabled = false;
        assert_eq!(builtin(&s).unwrap().names(), ["sensitive", "detect"]);
        s.inventory.specs = vec!["api.yaml".into()];
        let e = builtin(&s).err().expect("a spec without the inventory is a configuration error");
        assert!(e.0.contains("[inventory] enabled = false"), "{e}");
    }

    #[test]
    fn reload_and_conclude_hooks_all_run_and_report_failures() {
        let mut reg = Registry::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        reg.on_reload("good", move |_| {
            c.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        reg.on_reload("bad", |_| Err(SetupError("pack.toml: line 3: bad regex".into())));
        assert_eq!(reg.reload(&AnalysisSettings::default()), 1);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        let c = Arc::clone(&calls);
        reg.on_conclude("first", |_| Err(std::io::Error::other("disk full")));
        reg.on_conclude("second", move |_| {
            c.fetch_add(10, Ordering::Relaxed);
            Ok(())
        });
        let err = reg.conclude(Path::new("/nonexistent")).unwrap_err();
        assert_eq!(err.0, "first");
        assert_eq!(calls.load(Ordering::Relaxed), 11, "a failing hook does not stop the others");
    }
}
