//! Bounded IP defragmentation (IPv4 and IPv6).
//!
//! Datagrams are keyed by (src, dst, id, protocol, encapsulation) and held until complete, timed out (on
//! packet time) or evicted. Caps: datagram count, bytes held (memcap), fragments per datagram and the
//! maximum datagram size; every cap hit is counted in [`FragmentStats`]. Overlaps keep the bytes that came
//! first (first-wins), so a later fragment can never rewrite what an earlier one said.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use smallvec::SmallVec;

use super::Encap;
use super::ip::FragInfo;
use crate::capture::Timestamp;

/// Largest reassembled payload: the IPv4 total length field is 16 bits (IPv6 the same without jumbograms).
pub const MAX_DATAGRAM_BYTES: u32 = 65535;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FragmentConfig {
    /// Datagrams being reassembled at once; the oldest is evicted to make room.
    pub max_datagrams: usize,
    /// Bytes held across all datagrams being reassembled (buffer capacity); the oldest datagrams are evicted
    /// to make room.
    pub memcap_bytes: usize,
    /// Fragments accepted per datagram: bounds the work a flood of tiny fragments can cause.
    pub max_fragments_per_datagram: usize,
    /// A datagram not completed within this much packet time is dropped.
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
}

impl Default for FragmentConfig {
    fn default() -> Self {
        FragmentConfig {
            max_datagrams: 4096,
            memcap_bytes: 32 * 1024 * 1024,
            max_fragments_per_datagram: 64,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FragmentStats {
    /// Fragments received.
    pub seen: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Fragments that overlapped bytes already held (the earlier bytes were kept).
    pub overlapping: u64,
    /// Datagrams evicted or refused to stay under `memcap_bytes`.
    pub dropped_memcap: u64,
    /// Datagrams evicted to stay under `max_datagrams`.
    pub dropped_count_cap: u64,
    /// Datagrams dropped for exceeding `max_fragments_per_datagram`.
    pub dropped_too_many_fragments: u64,
    /// Fragments past the maximum datagram size, past the announced end, or conflicting about the end.
    pub invalid: u64,
    /// Datagrams dropped by the timeout.
    pub timed_out: u64,
    /// Fragments inside an already reassembled datagram (one reassembly per packet): dropped.
    pub nested_dropped: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub proto: u8,
    pub encap: Encap,
}

struct Datagram {
    generation: u64,
    data: Vec<u8>,
    /// Byte ranges received, sorted, disjoint and merged.
    ranges: SmallVec<[(u32, u32); 4]>,
    fragments: usize,
    /// Wire bytes of the fragments received, so the reassembled packet counts for all of them.
    wire_bytes: u32,
    /// Payload length, known once the last fragment (MF clear) arrived.
    total: Option<u32>,
}

/// What became of a fragment.
pub enum Outcome<'a> {
    /// Held; the datagram is not complete yet.
    Held,
    /// The datagram is complete: its payload (the bytes after the IP header / fragment header) and the wire
    /// bytes of all its fragments.
    Complete(&'a [u8], u32),
    /// Refused (counted).
    Dropped,
}

pub struct FragTable {
    cfg: FragmentConfig,
    map: HashMap<FragKey, Datagram, foldhash::fast::RandomState>,
    /// Creation order, for timeouts and oldest-first eviction. May hold stale entries (completed datagrams),
    /// recognised by generation and compacted when the queue outgrows the table.
    order: VecDeque<(Timestamp, u64, FragKey)>,
    mem_bytes: usize,
    next_generation: u64,
    /// The last completed datagram; the returned view borrows it.
    out: Vec<u8>,
}

impl FragTable {
    pub fn new(cfg: FragmentConfig) -> Self {
        FragTable {
            cfg,
            map: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            order: VecDeque::new(),
            mem_bytes: 0,
            next_generation: 0,
            out: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn mem_bytes(&self) -> usize {
        self.mem_bytes
    }

    fn remove(&mut self, key: &FragKey) -> Option<Datagram> {
        let d = self.map.remove(key)?;
        self.mem_bytes = self.mem_bytes.saturating_sub(d.data.capacity());
        Some(d)
    }

    /// Evicts the oldest live datagram; returns its generation.
    fn evict_oldest(&mut self) -> Option<u64> {
        while let Some((_, generation, key)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|d| d.generation == generation) {
                self.remove(&key);
                return Some(generation);
            }
        }
        None
    }

    /// Drops datagrams created `timeout` or longer before `now`.
    pub fn expire(&mut self, now: Timestamp, stats: &mut FragmentStats) {
        while let Some(&(created, generation, key)) = self.order.front() {
            let live = self.map.get(&key).is_some_and(|d| d.generation == generation);
            if live && now.saturating_sub(created) < self.cfg.timeout {
                break;
            }
            self.order.pop_front();
            if live {
                self.remove(&key);
                stats.timed_out += 1;
            }
        }
    }

    /// Adds one fragment's data (the bytes after its IP or fragment header).
    pub fn insert(
        &mut self,
        key: FragKey,
        frag: FragInfo,
        data: &[u8],
        wire_len: u32,
        now: Timestamp,
        stats: &mut FragmentStats,
    ) -> Outcome<'_> {
        stats.seen += 1;
        let start = frag.offset;
        let end = match u32::try_from(data.len()).ok().and_then(|l| start.checked_add(l)) {
            Some(e) if e <= MAX_DATAGRAM_BYTES => e,
            _ => {
                stats.invalid += 1;
                return Outcome::Dropped;
            }
        };

        if !self.map.contains_key(&key) {
            while self.map.len() >= self.cfg.max_datagrams.max(1) {
                if self.evict_oldest().is_none() {
                    break;
                }
                stats.dropped_count_cap += 1;
            }
            let generation = self.next_generation;
            self.next_generation += 1;
            self.map.insert(
                key,
                Datagram {
                    generation,
                    data: Vec::new(),
                    ranges: SmallVec::new(),
                    fragments: 0,
                    wire_bytes: 0,
                    total: None,
                },
            );
            self.order.push_back((now, generation, key));
            if self.order.len() > 2 * self.cfg.max_datagrams + 16 {
                let map = &self.map;
                self.order.retain(|(_, g, k)| map.get(k).is_some_and(|d| d.generation == *g));
            }
        }

        // Room for the bytes this fragment may add, evicting the oldest datagrams (perhaps this one).
        let (generation, held) = match self.map.get(&key) {
            Some(d) => (d.generation, d.data.len()),
            None => return Outcome::Dropped,
        };
        let growth = (end as usize).saturating_sub(held);
        while self.mem_bytes + growth > self.cfg.memcap_bytes {
            match self.evict_oldest() {
                Some(g) => {
                    stats.dropped_memcap += 1;
                    if g == generation {
                        return Outcome::Dropped;
                    }
                }
                None => {
                    // Only reachable when this datagram is not in the order queue: refuse it.
                    self.remove(&key);
                    stats.dropped_memcap += 1;
                    return Outcome::Dropped;
                }
            }
        }

        let Some(d) = self.map.get_mut(&key) else {
            return Outcome::Dropped;
        };
        d.fragments += 1;
        d.wire_bytes = d.wire_bytes.saturating_add(wire_len);
        if d.fragments > self.cfg.max_fragments_per_datagram {
            stats.dropped_too_many_fragments += 1;
            self.remove(&key);
            return Outcome::Dropped;
        }
        if !frag.more {
            let past_end = d.ranges.last().is_some_and(|&(_, e)| e > end);
            if d.total.is_some_and(|t| t != end) || past_end {
                stats.invalid += 1;
                return Outcome::Held;
            }
            d.total = Some(end);
        } else if d.total.is_some_and(|t| end > t) {
            stats.invalid += 1;
            return Outcome::Held;
        }
        if d.data.len() < end as usize {
            // Accounted by capacity, the memory really held; it may exceed the estimate above by the Vec's
            // growth slack, at most one datagram's worth.
            let before = d.data.capacity();
            d.data.resize(end as usize, 0);
            self.mem_bytes += d.data.capacity().saturating_sub(before);
        }

        // First-wins: copy only the parts of [start, end) no earlier fragment covered.
        let mut cursor = start;
        let mut overlapped = false;
        for &(s, e) in d.ranges.iter() {
            if e <= cursor {
                continue;
            }
            if s >= end {
                break;
            }
            if s > cursor {
                copy(&mut d.data, data, start, cursor, s);
            }
            overlapped = true;
            cursor = cursor.max(e);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            copy(&mut d.data, data, start, cursor, end);
        }
        if overlapped {
            stats.overlapping += 1;
        }
        merge(&mut d.ranges, (start, end));

        let complete = match (d.total, d.ranges.as_slice()) {
            (Some(t), [(0, e)]) => *e == t,
            _ => false,
        };
        if !complete {
            return Outcome::Held;
        }
        let Some(mut d) = self.remove(&key) else {
            return Outcome::Dropped;
        };
        std::mem::swap(&mut self.out, &mut d.data);
        stats.reassembled += 1;
        Outcome::Complete(&self.out, d.wire_bytes)
    }
}

/// Copies `src`'s bytes for datagram range [from, to) into `dst` (src starts at datagram offset `base`).
fn copy(dst: &mut [u8], src: &[u8], base: u32, from: u32, to: u32) {
    let s = (from - base) as usize..(to - base) as usize;
    if let (Some(d), Some(v)) = (dst.get_mut(from as usize..to as usize), src.get(s)) {
        d.copy_from_slice(v);
    }
}

/// Inserts `r` into sorted disjoint ranges, merging touching ones. At most `max_fragments_per_datagram`
/// ranges, so linear work is fine.
fn merge(ranges: &mut SmallVec<[(u32, u32); 4]>, r: (u32, u32)) {
    let pos = ranges.iter().position(|&(s, _)| s > r.0).unwrap_or(ranges.len());
    ranges.insert(pos, r);
    let mut out: SmallVec<[(u32, u32); 4]> = SmallVec::new();
    for &(s, e) in ranges.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *ranges = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            id,
            proto: 6,
            encap: Encap::default(),
        }
    }

    fn fi(id: u32, offset: u32, more: bool) -> FragInfo {
        FragInfo { id, offset, more }
    }

    fn cfg() -> FragmentConfig {
        FragmentConfig::default()
    }

    /// Feeds (offset, more, bytes) fragments of datagram 1; returns the completed payload if any.
    fn feed(t: &mut FragTable, st: &mut FragmentStats, frags: &[(u32, bool, &[u8])]) -> Option<Vec<u8>> {
        let mut done = None;
        for &(off, more, data) in frags {
            if let Outcome::Complete(b, _) = t.insert(key(1), fi(1, off, more), data, 0, Timestamp(0), st) {
                done = Some(b.to_vec());
            }
        }
        done
    }

    #[test]
    fn overlaps_keep_the_first_bytes() {
        let mut t = FragTable::new(cfg());
        let mut st = FragmentStats::default();
        // Middle first, then a fragment covering it with other bytes, then the end.
        let out = feed(&mut t, &mut st, &[(8, true, b"BBBBBBBB"), (0, true, b"aaaaaaaaaaaaaaaa"), (16, false, b"cc")]);
        assert_eq!(out.unwrap(), b"aaaaaaaaBBBBBBBBcc");
        assert_eq!(st.overlapping, 1);
        assert_eq!((t.len(), t.mem_bytes()), (0, 0));
    }

    #[test]
    fn duplicates_are_harmless() {
        let mut t = FragTable::new(cfg());
        let mut st = FragmentStats::default();
        let out = feed(&mut t, &mut st, &[(0, true, b"01234567"), (0, true, b"xxxxxxxx"), (8, false, b"89")]);
        assert_eq!(out.unwrap(), b"0123456789");
        assert_eq!((st.overlapping, st.reassembled), (1, 1));
    }

    #[test]
    fn conflicting_or_oversized_ends_are_invalid() {
        let mut t = FragTable::new(cfg());
        let mut st = FragmentStats::default();
        assert!(feed(&mut t, &mut st, &[(8, false, b"end"), (16, true, b"past-end")]).is_none());
        assert!(feed(&mut t, &mut st, &[(8, false, b"other")]).is_none());
        assert_eq!(st.invalid, 2);
        let big = vec![0u8; 16];
        assert!(matches!(
            t.insert(key(2), fi(2, MAX_DATAGRAM_BYTES - 8, true), &big, 0, Timestamp(0), &mut st),
            Outcome::Dropped
        ));
        assert_eq!(st.invalid, 3);
        // The datagram still completes with consistent fragments.
        assert_eq!(feed(&mut t, &mut st, &[(0, true, b"abcdefgh")]).unwrap(), b"abcdefghend");
    }

    #[test]
    fn fragment_count_cap_drops_the_datagram() {
        let mut t = FragTable::new(FragmentConfig { max_fragments_per_datagram: 4, ..cfg() });
        let mut st = FragmentStats::default();
        let tiny: Vec<(u32, bool, &[u8])> = (0..5).map(|i| (i * 8, true, &b"........"[..])).collect();
        assert!(feed(&mut t, &mut st, &tiny).is_none());
        assert_eq!(st.dropped_too_many_fragments, 1);
        assert_eq!((t.len(), t.mem_bytes()), (0, 0));
    }

    #[test]
    fn datagram_count_cap_evicts_the_oldest() {
        let mut t = FragTable::new(FragmentConfig { max_datagrams: 2, ..cfg() });
        let mut st = FragmentStats::default();
        for id in 0..3 {
            let _ = t.insert(key(id), fi(id, 0, true), b"abcdefgh", 0, Timestamp(id as u64), &mut st);
        }
        assert_eq!((t.len(), st.dropped_count_cap), (2, 1));
        // Datagram 0 was evicted: its last fragment alone does not complete it.
        assert!(matches!(t.insert(key(0), fi(0, 8, false), b"i", 0, Timestamp(5), &mut st), Outcome::Held));
        // Datagram 2 survived.
        assert!(matches!(
            t.insert(key(2), fi(2, 8, false), b"i", 0, Timestamp(5), &mut st),
            Outcome::Complete(b"abcdefghi", _)
        ));
    }

    #[test]
    fn memcap_evicts_the_oldest_then_refuses() {
        let mut t = FragTable::new(FragmentConfig { memcap_bytes: 100, ..cfg() });
        let mut st = FragmentStats::default();
        let _ = t.insert(key(1), fi(1, 0, true), &[1; 64], 0, Timestamp(0), &mut st);
        let _ = t.insert(key(2), fi(2, 0, true), &[2; 64], 0, Timestamp(0), &mut st);
        assert_eq!((t.len(), t.mem_bytes(), st.dropped_memcap), (1, 64, 1));
        // A datagram bigger than the whole memcap is refused.
        assert!(matches!(t.insert(key(3), fi(3, 0, true), &[3; 200], 0, Timestamp(0), &mut st), Outcome::Dropped));
        assert!(t.mem_bytes() <= 100);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn timeout_and_stale_queue_compaction() {
        let mut t = FragTable::new(FragmentConfig { max_datagrams: 4, ..cfg() });
        let mut st = FragmentStats::default();
        // Many datagrams that complete: the creation queue must not grow without bound.
        for id in 0..1000 {
            let _ = t.insert(key(id), fi(id, 0, true), b"abcdefgh", 0, Timestamp(0), &mut st);
            assert!(matches!(
                t.insert(key(id), fi(id, 8, false), b"z", 0, Timestamp(0), &mut st),
                Outcome::Complete(..)
            ));
        }
        assert!(t.order.len() <= 2 * 4 + 16);
        let _ = t.insert(key(5000), fi(5000, 0, true), b"abcdefgh", 0, Timestamp::from_secs(1), &mut st);
        t.expire(Timestamp::from_secs(30), &mut st);
        assert_eq!(t.len(), 1);
        t.expire(Timestamp::from_secs(31), &mut st);
        assert_eq!((t.len(), t.mem_bytes(), st.timed_out), (0, 0, 1));
    }

    #[test]
    fn many_tiny_fragments_in_random_order_complete() {
        let data: Vec<u8> = (0..512u32).map(|i| i as u8).collect();
        let mut order: Vec<u32> = (0..64).collect();
        // A fixed permutation (multiplicative step coprime with 64).
        order = order.iter().map(|i| (i * 37) % 64).collect();
        let mut t = FragTable::new(cfg());
        let mut st = FragmentStats::default();
        let mut out = None;
        for i in order {
            let chunk = &data[(i * 8) as usize..(i * 8 + 8) as usize];
            if let Outcome::Complete(b, _) = t.insert(key(9), fi(9, i * 8, i != 63), chunk, 0, Timestamp(0), &mut st) {
                out = Some(b.to_vec());
            }
        }
        assert_eq!(out.unwrap(), data);
        assert_eq!(st.overlapping, 0);
    }

    proptest::proptest! {
        /// Any arrival order of the same fragments yields the datagram.
        #[test]
        fn any_order_reassembles(
            order in proptest::strategy::Strategy::prop_shuffle(proptest::strategy::Just((0u32..20).collect::<Vec<_>>())),
        ) {
            let data: Vec<u8> = (0..20 * 8 + 5).map(|i| (i * 7) as u8).collect();
            let mut t = FragTable::new(cfg());
            let mut st = FragmentStats::default();
            let mut out = None;
            for i in order {
                let end = if i == 19 { data.len() } else { (i as usize + 1) * 8 };
                let chunk = &data[i as usize * 8..end];
                if let Outcome::Complete(b, _) = t.insert(key(1), fi(1, i * 8, i != 19), chunk, 0, Timestamp(0), &mut st) {
                    out = Some(b.to_vec());
                }
            }
            proptest::prop_assert_eq!(out, Some(data));
        }

        /// Arbitrary fragment soup: no panic, memory stays within the cap plus one datagram's slack.
        #[test]
        fn arbitrary_fragments_stay_bounded(
            frags in proptest::collection::vec((0u32..4, 0u32..70_000, 0usize..300, proptest::bool::ANY, 0u64..100), 0..200),
        ) {
            let c = FragmentConfig { max_datagrams: 3, memcap_bytes: 4096, max_fragments_per_datagram: 8, ..cfg() };
            let mut t = FragTable::new(c);
            let mut st = FragmentStats::default();
            let buf = vec![0xabu8; 300];
            for (id, off, len, more, secs) in frags {
                let _ = t.insert(key(id), fi(id, off & !7, more), &buf[..len], 0, Timestamp::from_secs(secs), &mut st);
                proptest::prop_assert!(t.len() <= 3);
                proptest::prop_assert!(t.mem_bytes() <= 4096 + 65536);
                t.expire(Timestamp::from_secs(secs), &mut st);
            }
        }
    }
}
