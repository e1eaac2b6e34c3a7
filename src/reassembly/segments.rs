//! Bounded out-of-order store of one direction: non-overlapping byte runs keyed by their 64-bit stream offset.
//!
//! Entries never overlap each other, so every segment that touches a range of `n` bytes visits at most
//! `n + 1` entries: an overlapping flood costs time linear in the bytes it carries, never quadratic.
//! Caps (bytes, entries, the shared budget) are enforced by the caller before `insert`; this type only keeps
//! the books.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::OverlapPolicy;

/// Bytes charged against the memory budget for each held entry on top of its payload: the map node share,
/// the `Vec` header and the allocator's rounding. Without it a flood of 1-byte segments would look free.
pub const SEG_OVERHEAD_BYTES: usize = 64;

/// Ranges `[start, end)` of a new segment not covered by held entries. Most segments produce one.
pub type Pieces = SmallVec<[(u64, u64); 4]>;

#[derive(Debug, Default)]
pub struct SegmentStore {
    map: BTreeMap<u64, Held>,
    bytes: usize,
}

/// One held run of bytes.
#[derive(Debug)]
struct Held {
    data: Vec<u8>,
    /// Bytes right after this run that the capture cut off (snaplen): known lost, reported as a gap as soon
    /// as this run is delivered.
    missing_after: u64,
}

/// What laying a new segment over held entries found.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Held entries the new segment overlapped.
    pub overlaps: u64,
    /// Of those, how many held different bytes in the overlapped range.
    pub different: u64,
}

impl SegmentStore {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Number of held entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// What the held entries cost against the memory budget.
    pub fn mem(&self) -> usize {
        self.bytes + self.map.len() * SEG_OVERHEAD_BYTES
    }
    pub fn first_offset(&self) -> Option<u64> {
        self.map.first_key_value().map(|(&k, _)| k)
    }
    /// Removes the lowest entry: its offset, bytes and the truncated tail after it. The caller releases
    /// `data.len() + SEG_OVERHEAD_BYTES` from the budget.
    pub fn pop_first(&mut self) -> Option<(u64, Vec<u8>, u64)> {
        let (k, v) = self.map.pop_first()?;
        self.bytes = self.bytes.saturating_sub(v.data.len());
        Some((k, v.data, v.missing_after))
    }
    /// Drops everything; returns the memory to release.
    pub fn clear(&mut self) -> usize {
        let mem = self.mem();
        self.map.clear();
        self.bytes = 0;
        mem
    }

    /// Key of the first entry that may overlap `[start, ..)`: the entry before `start` if it reaches past it.
    fn first_touching(&self, start: u64) -> u64 {
        match self.map.range(..start).next_back() {
            Some((&k, v)) if k.saturating_add(v.data.len() as u64) > start => k,
            _ => start,
        }
    }

    /// Compares `data` (at offset `start`) with every held entry it overlaps and, under `LastWins`, overwrites
    /// the held bytes with the new ones. Never changes which ranges are held.
    pub fn overlay(&mut self, start: u64, data: &[u8], policy: OverlapPolicy) -> Overlay {
        let end = start.saturating_add(data.len() as u64);
        let mut out = Overlay::default();
        if data.is_empty() {
            return out;
        }
        let from = self.first_touching(start);
        for (&k, held) in self.map.range_mut(from..end) {
            let a = k.max(start);
            let b = k.saturating_add(held.data.len() as u64).min(end);
            if a >= b {
                continue;
            }
            let old = held.data.get_mut((a - k) as usize..(b - k) as usize);
            let new = data.get((a - start) as usize..(b - start) as usize);
            let (Some(old), Some(new)) = (old, new) else {
                continue;
            };
            out.overlaps += 1;
            if old != new {
                out.different += 1;
                if policy == OverlapPolicy::LastWins {
                    old.copy_from_slice(new);
                }
            }
        }
        out
    }

    /// The parts of `[start, end)` no held entry covers, in order.
    pub fn uncovered(&self, start: u64, end: u64) -> Pieces {
        let mut out = Pieces::new();
        let mut cursor = start;
        let from = self.first_touching(start);
        for (&k, held) in self.map.range(from..end) {
            if k > cursor {
                out.push((cursor, k.min(end)));
            }
            cursor = cursor.max(k.saturating_add(held.data.len() as u64));
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            out.push((cursor, end));
        }
        out
    }

    /// Holds `data` at `offset`, followed by `missing_after` bytes the capture cut off. The caller guarantees
    /// it overlaps nothing held (it comes from `uncovered`) and has reserved its memory.
    pub fn insert(&mut self, offset: u64, data: Vec<u8>, missing_after: u64) {
        if data.is_empty() {
            return;
        }
        self.bytes += data.len();
        if let Some(prev) = self.map.insert(offset, Held { data, missing_after }) {
            // Unreachable when the caller keeps the no-overlap contract; keep the books right regardless.
            self.bytes = self.bytes.saturating_sub(prev.data.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(entries: &[(u64, &[u8])]) -> SegmentStore {
        let mut s = SegmentStore::default();
        for &(k, d) in entries {
            s.insert(k, d.to_vec(), 0);
        }
        s
    }

    fn pieces(p: &[(u64, u64)]) -> Pieces {
        p.iter().copied().collect()
    }

    #[test]
    fn uncovered_empty_store_is_whole_range() {
        let s = SegmentStore::default();
        assert_eq!(s.uncovered(10, 20), pieces(&[(10, 20)]));
    }

    #[test]
    fn uncovered_around_and_between_entries() {
        let s = store(&[(10, b"abcde"), (20, b"xyz")]);
        // [5,30): before 10, between 15 and 20, after 23.
        assert_eq!(s.uncovered(5, 30), pieces(&[(5, 10), (15, 20), (23, 30)]));
        // Starts inside the first entry.
        assert_eq!(s.uncovered(12, 21), pieces(&[(15, 20)]));
        // Fully covered.
        assert_eq!(s.uncovered(11, 14), pieces(&[]));
        // Adjacent after the last.
        assert_eq!(s.uncovered(23, 25), pieces(&[(23, 25)]));
    }

    #[test]
    fn overlay_counts_and_policies() {
        let mut s = store(&[(10, b"abcde"), (20, b"xyz")]);
        let o = s.overlay(12, b"cdeXXXXXxy", OverlapPolicy::FirstWins);
        assert_eq!(o, Overlay { overlaps: 2, different: 0 });
        let o = s.overlay(12, b"CDXXXXXXxY", OverlapPolicy::FirstWins);
        assert_eq!(o, Overlay { overlaps: 2, different: 2 });
        assert_eq!(s.pop_first(), Some((10, b"abcde".to_vec(), 0)));
        let o = s.overlay(19, b"-XY", OverlapPolicy::LastWins);
        assert_eq!(o, Overlay { overlaps: 1, different: 1 });
        assert_eq!(s.pop_first(), Some((20, b"XYz".to_vec(), 0)));
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn mem_counts_overhead_and_clear_returns_it() {
        let mut s = store(&[(0, b"ab"), (5, b"c")]);
        assert_eq!(s.len(), 2);
        assert_eq!(s.bytes(), 3);
        assert_eq!(s.mem(), 3 + 2 * SEG_OVERHEAD_BYTES);
        assert_eq!(s.first_offset(), Some(0));
        assert_eq!(s.clear(), 3 + 2 * SEG_OVERHEAD_BYTES);
        assert_eq!(s.mem(), 0);
    }
}
