//! The analyzer workers, and the order they keep.
//!
//! Transactions leave the flow table in one order (capture order, with one shard). The workers analyse
//! batches of them in parallel, but what an analyzer learns from one transaction can change what it says
//! about the next (the inventory's templates, the detections' windows), so a run whose outputs depended on
//! which worker was quicker would not be reproducible. Every item on the work queue carries its place in
//! that order (a sequence number handed out with the send, under one lock); the analyzers that keep state
//! across transactions ([`Analyzer::ordered`]) see each batch only after the batch before it, and a tick is a
//! barrier (everything before it analysed, nothing after it started). The expensive, stateless work (the
//! sensitive-data scan, the JSON records) still runs on all workers at once: the gates are per analyzer, so
//! one worker's inventory step on batch k+1 overlaps another's scan of batch k.
//!
//! With several flow-table shards the order batches enter the queue varies from run to run (each shard
//! hands its own over); the guarantee is for one shard, the default up to three cores.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{OutItem, Shared};
use crate::analyzer::{Analyzer, Record, Registry, TxContext};
use crate::capture::Timestamp;
use crate::http::Transaction;

pub(super) enum WorkItem {
    Batch(u64, Vec<Arc<Transaction>>),
    Tick(u64, Timestamp),
}

/// The sending side of the work queue: numbers each item in the order it enters the queue.
pub(super) struct Sequencer {
    next: Mutex<u64>,
}

impl Sequencer {
    pub(super) fn new() -> Self {
        Sequencer { next: Mutex::new(0) }
    }

    /// Sends a batch, blocking while the queue is full. `Err` when the workers are gone.
    pub(super) fn send_batch(&self, work: &Sender<WorkItem>, txs: Vec<Arc<Transaction>>) -> Result<(), ()> {
        // The lock is held across the send so that numbers follow the channel's order: a number taken and
        // not sent would stop every gate at it.
        let mut next = lock(&self.next);
        work.send(WorkItem::Batch(*next, txs)).map_err(|_| ())?;
        *next += 1;
        Ok(())
    }

    /// Sends a tick; with `wait` false it is skipped when the queue is full (live capture never blocks
    /// for one; the next second brings another).
    pub(super) fn send_tick(&self, work: &Sender<WorkItem>, now: Timestamp, wait: bool) {
        let mut next = lock(&self.next);
        let item = WorkItem::Tick(*next, now);
        let sent = if wait {
            work.send(item).is_ok()
        } else {
            !matches!(work.try_send(item), Err(TrySendError::Full(_) | TrySendError::Disconnected(_)))
        };
        if sent {
            *next += 1;
        }
    }
}

/// Where each item is in the analyzers' order: per ordered stage, how many items have passed it.
pub(super) struct Gates {
    state: Mutex<GateState>,
    moved: Condvar,
}

struct GateState {
    /// Items that have started (a tick holds the next ones back until it has run).
    started: u64,
    /// Per stage (each analyzer, then the after-transaction hooks), how many items have passed it.
    passed: Vec<u64>,
    /// Items fully analysed, in any order.
    completed: u64,
}

impl Gates {
    /// One stage per analyzer, plus the after-transaction hooks.
    pub(super) fn new(analyzers: usize) -> Self {
        let stages = analyzers + 1;
        Gates {
            state: Mutex::new(GateState { started: 0, passed: vec![0; stages], completed: 0 }),
            moved: Condvar::new(),
        }
    }

    fn wait_until(&self, ready: impl Fn(&GateState) -> bool) -> MutexGuard<'_, GateState> {
        let mut st = lock(&self.state);
        while !ready(&st) {
            st = self.moved.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st
    }

    /// Item `seq` starts once the one before it has (a tick before it: once the tick has run).
    fn start(&self, seq: u64) {
        self.wait_until(|s| s.started == seq).started = seq + 1;
        self.moved.notify_all();
    }

    /// Runs `f` once every earlier item has passed `stage`, then lets the next one through.
    fn pass<R>(&self, stage: usize, seq: u64, f: impl FnOnce() -> R) -> R {
        drop(self.wait_until(|s| s.passed[stage] == seq));
        let r = f();
        lock(&self.state).passed[stage] = seq + 1;
        self.moved.notify_all();
        r
    }

    fn complete(&self) {
        lock(&self.state).completed += 1;
        self.moved.notify_all();
    }

    /// A tick: waits until every earlier item is analysed, runs `f` while no later one has started, then
    /// lets every stage past it. Ticks are rare (one a second); the waiting worker holds no batch, so the
    /// batches ahead are finished by the others.
    fn barrier(&self, seq: u64, f: impl FnOnce()) {
        drop(self.wait_until(|s| s.started == seq && s.completed == seq));
        f();
        let mut st = lock(&self.state);
        st.started = seq + 1;
        st.passed.iter_mut().for_each(|p| *p = seq + 1);
        st.completed += 1;
        drop(st);
        self.moved.notify_all();
    }

    /// Item `seq` will not go on (its worker panicked): every gate it has not passed lets the next item
    /// through when its turn comes, so that the other workers carry on without it.
    fn abandon(&self, seq: u64) {
        let mut st = self.wait_until(|s| s.started >= seq && s.passed.iter().all(|p| *p >= seq));
        if st.started == seq {
            st.started = seq + 1;
        }
        st.passed.iter_mut().filter(|p| **p == seq).for_each(|p| *p = seq + 1);
        st.completed += 1;
        drop(st);
        self.moved.notify_all();
    }
}

/// Abandons its item when dropped during a panic.
struct Abandon<'a>(&'a Gates, u64);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(item = self.1, "An analyzer panicked; the batch it was on is lost, the others go on.");
            self.0.abandon(self.1);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One worker: its own analyzer instances (handles on the shared state).
struct Worker<'a> {
    analyzers: Vec<Box<dyn Analyzer>>,
    ordered: Vec<bool>,
    shared: &'a Shared,
    gates: &'a Gates,
    out: &'a Sender<OutItem>,
    records: Vec<Record>,
    ctxs: Vec<TxContext>,
}

impl Worker<'_> {
    fn batch(&mut self, seq: u64, txs: &[Arc<Transaction>]) {
        let _abandon = Abandon(self.gates, seq);
        self.gates.start(seq);
        self.shared.tx_dequeued.fetch_add(txs.len() as u64, Ordering::Relaxed);
        if self.ctxs.len() < txs.len() {
            self.ctxs.resize_with(txs.len(), TxContext::default);
        }
        let ctxs = &mut self.ctxs[..txs.len()];
        ctxs.iter_mut().for_each(TxContext::clear);
        // What needs no other transaction first, on every analyzer: it then holds its gate for less time.
        for (a, (_, _, ns)) in self.analyzers.iter_mut().zip(&self.shared.analyzers) {
            let t0 = Instant::now();
            for (tx, ctx) in txs.iter().zip(ctxs.iter_mut()) {
                a.prepare(tx, ctx);
            }
            ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        let records = &mut self.records;
        // The transaction records are written once the last analyzer that is not ordered has run (the
        // data classes that mask them are found by then): the JSON work then fills the time a worker
        // would wait for the ordered ones that follow.
        let write_at = self.ordered.iter().rposition(|o| !o).map_or(0, |i| i + 1);
        for (i, a) in self.analyzers.iter_mut().enumerate() {
            if i == write_at {
                write_lines(txs, ctxs, self.out);
            }
            let counters = self.shared.analyzers.get(i);
            let mut run = || {
                let t0 = Instant::now();
                for (tx, ctx) in txs.iter().zip(ctxs.iter_mut()) {
                    a.on_transaction(tx, ctx, records);
                }
                if let Some((_, n, ns)) = counters {
                    ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    n.fetch_add(txs.len() as u64, Ordering::Relaxed);
                }
            };
            if self.ordered[i] { self.gates.pass(i, seq, run) } else { run() }
        }
        let analyzers = &mut self.analyzers;
        self.gates.pass(analyzers.len(), seq, || {
            for (tx, ctx) in txs.iter().zip(ctxs.iter()) {
                for a in analyzers.iter_mut() {
                    a.after_transaction(tx, ctx);
                }
            }
        });
        if write_at == self.analyzers.len() {
            write_lines(txs, ctxs, self.out);
        }
        self.gates.complete();
        self.emit();
    }

    fn tick(&mut self, seq: u64, now: Timestamp) {
        let _abandon = Abandon(self.gates, seq);
        let (analyzers, records) = (&mut self.analyzers, &mut self.records);
        self.gates.barrier(seq, || {
            for a in analyzers.iter_mut() {
                a.on_tick(now, records);
            }
        });
        self.emit();
    }

    fn emit(&mut self) {
        for mut r in self.records.drain(..) {
            if let Some(c) = self.shared.records.get(r.stream) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            self.shared.count_type(r.stream, &r.json);
            r.json.push(b'\n');
            let _ = self.out.send(OutItem::Lines(r.stream, r.json, 1));
        }
    }
}

pub(super) fn worker_loop(
    rx: Receiver<WorkItem>,
    out: Sender<OutItem>,
    shared: &Shared,
    registry: &Registry,
    gates: &Gates,
) {
    let analyzers = registry.build();
    let ordered = analyzers.iter().map(|a| a.ordered()).collect();
    let mut w = Worker { analyzers, ordered, shared, gates, out: &out, records: Vec::new(), ctxs: Vec::new() };
    for item in rx {
        match item {
            WorkItem::Batch(seq, txs) => w.batch(seq, &txs),
            WorkItem::Tick(seq, now) => w.tick(seq, now),
        }
    }
    for a in &mut w.analyzers {
        a.finish(&mut w.records);
    }
    w.emit();
}

/// The batch's transaction records: serialised here, spreading the JSON cost over the workers; the output
/// thread only writes.
fn write_lines(txs: &[Arc<Transaction>], ctxs: &[TxContext], out: &Sender<OutItem>) {
    let mut lines = Vec::with_capacity(txs.len() * 1024);
    // Websocket messages are analysed like transactions but logged apart (`websocket.jsonl`):
    // transactions.jsonl stays one line per HTTP exchange, as peers log it.
    let mut ws_lines = Vec::new();
    let mut ws_n = 0u64;
    for (tx, ctx) in txs.iter().zip(ctxs) {
        let buf = if tx.flags.has(crate::http::Flag::WEBSOCKET_MESSAGE) {
            ws_n += 1;
            &mut ws_lines
        } else {
            &mut lines
        };
        tx.write_json_masked(buf, &ctx.data_classes);
        buf.push(b'\n');
    }
    let _ = out.send(OutItem::Lines("transactions", lines, txs.len() as u64 - ws_n));
    if ws_n > 0 {
        let _ = out.send(OutItem::Lines("websocket", ws_lines, ws_n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Items 0..n handed to `threads` threads through a channel, each run through `work` (which may sleep
    /// to reorder the threads).
    fn run_items(n: u64, threads: usize, work: impl Fn(&Gates, u64) + Sync) -> Gates {
        // Two stages: one analyzer and the after-transaction hooks.
        let gates = Gates::new(1);
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..n {
            tx.send(i).unwrap();
        }
        drop(tx);
        std::thread::scope(|s| {
            for _ in 0..threads {
                let (rx, gates, work) = (rx.clone(), &gates, &work);
                s.spawn(move || {
                    for i in rx {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(gates, i)));
                    }
                });
            }
        });
        gates
    }

    fn jitter(i: u64) {
        std::thread::sleep(Duration::from_micros((i * 7919) % 400));
    }

    #[test]
    fn ordered_stages_see_items_in_order_whichever_thread_is_quicker() {
        let seen = Mutex::new(Vec::new());
        let unordered = Mutex::new(Vec::new());
        run_items(200, 4, |g, i| {
            let _a = Abandon(g, i);
            g.start(i);
            jitter(i);
            unordered.lock().unwrap().push(i);
            g.pass(0, i, || seen.lock().unwrap().push(i));
            jitter(i + 1);
            g.pass(1, i, || ());
            g.complete();
        });
        assert_eq!(*seen.lock().unwrap(), (0..200).collect::<Vec<_>>());
        let u = unordered.lock().unwrap();
        assert_ne!(*u, (0..200).collect::<Vec<_>>(), "the test must reorder the unordered part to mean anything");
    }

    #[test]
    fn a_tick_runs_after_everything_before_it_and_before_anything_after_it() {
        let log = Mutex::new(Vec::new());
        run_items(60, 3, |g, i| {
            let _a = Abandon(g, i);
            if i % 20 == 10 {
                g.barrier(i, || log.lock().unwrap().push(("tick", i)));
                return;
            }
            g.start(i);
            jitter(i);
            log.lock().unwrap().push(("done", i));
            g.complete();
        });
        let log = log.lock().unwrap();
        for (pos, (kind, t)) in log.iter().enumerate() {
            if *kind == "tick" {
                assert!(log[..pos].iter().all(|(k, i)| *k == "tick" || i < t), "{log:?}");
                assert!(log[pos + 1..].iter().all(|(_, i)| i > t), "{log:?}");
            }
        }
        assert_eq!(log.len(), 60);
    }

    #[test]
    fn a_panicking_stage_loses_its_item_and_stops_no_one() {
        let seen = Mutex::new(Vec::new());
        let gates = run_items(50, 2, |g, i| {
            let _a = Abandon(g, i);
            g.start(i);
            g.pass(0, i, || {
                assert_ne!(i, 17, "analyzer bug on item 17");
                seen.lock().unwrap().push(i);
            });
            g.pass(1, i, || ());
            g.complete();
        });
        let expected: Vec<u64> = (0..50).filter(|i| *i != 17).collect();
        assert_eq!(*seen.lock().unwrap(), expected);
        assert_eq!(lock(&gates.state).completed, 50);
    }
}
