//! Bounded, sharded maps for detector state shared by the worker threads.
//!
//! Keys are attacker-chosen (addresses, identities, paths), so every map has a hard entry cap: a key that
//! does not fit is not tracked (the caller's rule simply does not see it) and the refusal is counted in
//! [`Bounded::cap_hits`]. Entries leave through [`Bounded::retain`], which the detectors call from `on_tick`
//! with their window. The lock of one shard is held only for the caller's closure, which never calls back
//! into the same map.

use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use foldhash::HashMap;

/// Shards per map: enough that two to a few dozen workers rarely meet on one lock.
const SHARDS: usize = 16;

pub struct Bounded<K, V> {
    shards: [Mutex<HashMap<K, V>>; SHARDS],
    hasher: foldhash::fast::RandomState,
    per_shard: usize,
    cap_hits: AtomicU64,
    logged: AtomicBool,
    /// The config key that raises the cap, for the once-per-map log line.
    cap_key: &'static str,
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    /// A map holding at most about `cap` entries (rounded up to a multiple of the shard count).
    pub fn new(cap: usize, cap_key: &'static str) -> Self {
        Bounded {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
            hasher: foldhash::fast::RandomState::default(),
            per_shard: cap.div_ceil(SHARDS).max(1),
            cap_hits: AtomicU64::new(0),
            logged: AtomicBool::new(false),
            cap_key,
        }
    }

    fn shard(&self, k: &K) -> &Mutex<HashMap<K, V>> {
        &self.shards[(self.hasher.hash_one(k) as usize) % SHARDS]
    }

    /// Runs `f` on the entry of `k`, created by `make` when absent. `None` when the map is full and `k` is
    /// new (counted).
    pub fn update<R>(&self, k: K, make: impl FnOnce() -> V, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut m = self.shard(&k).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = m.get_mut(&k) {
            return Some(f(v));
        }
        if m.len() >= self.per_shard {
            drop(m);
            self.cap_hits.fetch_add(1, Ordering::Relaxed);
            if !self.logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(key = self.cap_key, "A detection state table is full; new keys are not tracked.");
            }
            return None;
        }
        Some(f(m.entry(k).or_insert_with(make)))
    }

    /// Runs `f` on the entry of `k` when present.
    pub fn get<R>(&self, k: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        let m = self.shard(k).lock().unwrap_or_else(|e| e.into_inner());
        m.get(k).map(f)
    }

    /// Runs `f` on the entry of `k` when present, mutably.
    pub fn get_mut<R>(&self, k: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut m = self.shard(k).lock().unwrap_or_else(|e| e.into_inner());
        m.get_mut(k).map(f)
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, v| keep(k, v));
        }
    }

    /// Removes and returns the entries for which `take` is true.
    pub fn drain_where(&self, mut take: impl FnMut(&V) -> bool) -> Vec<V> {
        let mut out = Vec::new();
        for s in &self.shards {
            let mut m = s.lock().unwrap_or_else(|e| e.into_inner());
            // Called every tick: most ticks take nothing, and then the shard is left as it is.
            if !m.values().any(&mut take) {
                continue;
            }
            let mut kept = HashMap::default();
            for (k, v) in m.drain() {
                if take(&v) {
                    out.push(v);
                } else {
                    kept.insert(k, v);
                }
            }
            *m = kept;
        }
        out
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// New keys refused because the map was full.
    pub fn cap_hits(&self) -> u64 {
        self.cap_hits.load(Ordering::Relaxed)
    }
}

/// Counts of a population of actors in their current windows (distinct ids of an operation's actors,
/// requests of every actor), for what is typical there.
#[derive(Clone, Copy, Default)]
pub struct Peers {
    pub actors: u64,
    sum: u64,
    sum_sq: u64,
}

impl Peers {
    /// One actor's count went from `before` to `now`.
    pub fn adjust(&mut self, before: u64, now: u64) {
        if before == 0 && now > 0 {
            self.actors += 1;
        } else if before > 0 && now == 0 {
            self.actors = self.actors.saturating_sub(1);
        }
        self.sum = (self.sum + now).saturating_sub(before);
        self.sum_sq = (self.sum_sq + now * now).saturating_sub(before * before);
    }

    /// The typical count of the other actors, as a request sees it (the mean weighted by each actor's
    /// own count: Σn²/Σn, so that the many one-request actors do not make everybody else look like an
    /// outlier); `None` below `min_peers` other actors.
    pub fn typical_other(&self, mine: u64, min_peers: u64) -> Option<f64> {
        let others = self.actors.saturating_sub(1);
        let sum = self.sum.saturating_sub(mine);
        if others < min_peers || sum == 0 {
            return None;
        }
        Some(self.sum_sq.saturating_sub(mine * mine) as f64 / sum as f64)
    }
}

/// Events in a sliding window of packet time, as a count per second-bucket ring: constant memory whatever
/// the rate.
#[derive(Clone, Debug, Default)]
pub struct WindowCount {
    /// (second, count) buckets, oldest first; at most `MAX_BUCKETS`.
    buckets: std::collections::VecDeque<(u64, u32)>,
    total: u64,
}

const MAX_BUCKETS: usize = 128;

impl WindowCount {
    /// Adds one event at `ts` and returns the count within the last `window` seconds.
    pub fn add(&mut self, ts: f64, window: f64) -> u64 {
        let sec = ts.max(0.0) as u64;
        self.expire(ts, window);
        match self.buckets.back_mut() {
            Some((s, n)) if *s >= sec => *n = n.saturating_add(1),
            _ => {
                // Buckets are whole seconds when the window is short and coarser when it is long, so that
                // MAX_BUCKETS always covers the window.
                let width = ((window / MAX_BUCKETS as f64).ceil() as u64).max(1);
                let start = sec - sec % width;
                match self.buckets.back_mut() {
                    Some((s, n)) if *s == start => *n = n.saturating_add(1),
                    _ => {
                        if self.buckets.len() >= MAX_BUCKETS
                            && let Some((_, n)) = self.buckets.pop_front()
                        {
                            self.total = self.total.saturating_sub(u64::from(n));
                        }
                        self.buckets.push_back((start, 1));
                    }
                }
            }
        }
        self.total += 1;
        self.total
    }

    fn expire(&mut self, ts: f64, window: f64) {
        let floor = (ts - window).max(0.0) as u64;
        while let Some(&(s, n)) = self.buckets.front() {
            if s >= floor {
                break;
            }
            self.buckets.pop_front();
            self.total = self.total.saturating_sub(u64::from(n));
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Second of the newest event.
    pub fn last(&self) -> Option<u64> {
        self.buckets.back().map(|(s, _)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_refuses_and_counts_new_keys_when_full() {
        let m: Bounded<u32, u32> = Bounded::new(16, "x");
        let mut stored = 0;
        for k in 0..1000 {
            if m.update(k, || 0, |v| *v += 1).is_some() {
                stored += 1;
            }
        }
        assert!(stored <= 16 + SHARDS, "{stored}");
        assert_eq!(m.len(), stored);
        assert_eq!(m.cap_hits(), 1000 - stored as u64);
        m.retain(|k, _| k % 2 == 0);
        assert!(m.len() < stored);
    }

    #[test]
    fn drain_where_takes_matching_entries() {
        let m: Bounded<u32, u32> = Bounded::new(100, "x");
        for k in 0..10 {
            m.update(k, || k, |_| ());
        }
        let mut got = m.drain_where(|v| *v < 3);
        got.sort();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(m.len(), 7);
    }

    #[test]
    fn window_counts_only_recent_events() {
        let mut w = WindowCount::default();
        for i in 0..10 {
            w.add(100.0 + f64::from(i), 60.0);
        }
        assert_eq!(w.count(), 10);
        assert_eq!(w.add(200.0, 60.0), 1);
        // A long window stays bounded.
        let mut w = WindowCount::default();
        for i in 0..100_000 {
            w.add(f64::from(i), 3600.0);
        }
        assert!(w.buckets.len() <= MAX_BUCKETS);
        // Coarse buckets round the window edge by at most one bucket (3600/128 s).
        assert!(w.count() >= 3600 - 3600 / 128 - 1 && w.count() <= 3600 + 3600 / 128 + 1, "{}", w.count());
    }
}
