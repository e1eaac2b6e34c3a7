//! Which signatures one value can trigger, so the scanner visits those few instead of every signature.
//!
//! A signature runs its regex on a value only if it has a key hit, or an anchor in the value, or neither is
//! asked of it (`key_required` off, no anchors) and the value has its `digits_min` digits and it could
//! reach `min_confidence` without a key. The candidates are the union of the three as a bitset; the scanner
//! still applies every check of the full rule to each candidate, so the index only skips signatures that
//! would have been skipped anyway. Iterating the bitset keeps signature order, hence the order of findings.
//!
//! The per-value anchor search (an overlapping Aho-Corasick pass) is preceded by a byte-pair test: no
//! anchor can occur in a value none of whose byte pairs starts one.

use super::signatures::{Scope, Signature};

/// Signature flags, one bit per signature index.
pub type SigBits = Vec<u64>;

/// Sets bit `i`.
pub fn set_bit(m: &mut [u64], i: usize) {
    if let Some(w) = m.get_mut(i / 64) {
        *w |= 1u64 << (i % 64);
    }
}

/// Whether bit `i` is set.
pub fn bit(m: &[u64], i: usize) -> bool {
    m.get(i / 64).is_some_and(|w| w & (1u64 << (i % 64)) != 0)
}

/// The set bits of `m`, ascending.
pub fn ones(m: &[u64]) -> impl Iterator<Item = usize> + '_ {
    m.iter().enumerate().flat_map(|(wi, &w)| {
        let mut w = w;
        std::iter::from_fn(move || {
            if w == 0 {
                return None;
            }
            let b = w.trailing_zeros() as usize;
            w &= w - 1;
            Some(wi * 64 + b)
        })
    })
}

/// Scopes in [`Scope`] order, for the per-scope tables.
const SCOPES: [Scope; 5] = [Scope::Header, Scope::Cookie, Scope::Query, Scope::Path, Scope::Body];

fn scope_slot(s: Scope) -> usize {
    SCOPES.iter().position(|x| *x == s).unwrap_or(0)
}

/// Built once per signature set.
#[derive(Debug)]
pub struct SigIndex {
    /// `u64` words of a [`SigBits`] for this set.
    pub words: usize,
    /// Per scope: (digits_min, signature) of the signatures a value can trigger without a key hit or an
    /// anchor, ascending by digits_min.
    free: [Vec<(u8, u16)>; 5],
    /// First bytes of one-byte anchors.
    single: [bool; 256],
    /// First two bytes of longer anchors, as a 65536-bit table.
    pairs: Vec<u64>,
}

impl SigIndex {
    pub fn build(sigs: &[Signature], anchors: &[Vec<u8>]) -> SigIndex {
        let mut free: [Vec<(u8, u16)>; 5] = Default::default();
        for (si, s) in sigs.iter().enumerate() {
            if s.key_required || s.has_anchors {
                continue;
            }
            // The same arithmetic as the scanner's confidence without a key hit (context adds 0.05).
            let bare = s.confidence.min(1.0) >= s.min_confidence;
            let with_context = !s.context.is_empty() && (s.confidence + 0.05).min(1.0) >= s.min_confidence;
            if !(bare || with_context) {
                continue;
            }
            for (slot, scope) in SCOPES.iter().enumerate() {
                if s.in_scope(*scope)
                    && let Some(list) = free.get_mut(slot)
                {
                    list.push((s.digits_min, si as u16));
                }
            }
        }
        for list in &mut free {
            list.sort_unstable();
        }
        let mut single = [false; 256];
        let mut pairs = vec![0u64; 1024];
        for a in anchors {
            match a.as_slice() {
                [] => {}
                [b] => single[usize::from(*b)] = true,
                [b0, b1, ..] => set_bit(&mut pairs, usize::from(*b0) << 8 | usize::from(*b1)),
            }
        }
        SigIndex { words: sigs.len().div_ceil(64), free, single, pairs }
    }

    /// Sets in `out` the signatures of `scope` that need neither a key hit nor an anchor and that a value
    /// with `digits` digits can trigger.
    pub fn free(&self, scope: Scope, digits: usize, out: &mut [u64]) {
        for &(dmin, si) in self.free.get(scope_slot(scope)).map_or(&[][..], Vec::as_slice) {
            if usize::from(dmin) > digits {
                break;
            }
            set_bit(out, usize::from(si));
        }
    }

    /// False when no anchor can occur in `v` (exact: every anchor starts with a flagged byte or byte pair).
    pub fn maybe_anchored(&self, v: &[u8]) -> bool {
        let mut prev: Option<u8> = None;
        for &b in v {
            if self.single[usize::from(b)] {
                return true;
            }
            if let Some(p) = prev
                && bit(&self.pairs, usize::from(p) << 8 | usize::from(b))
            {
                return true;
            }
            prev = Some(b);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_iterate_in_order() {
        let mut m = vec![0u64; 2];
        for i in [0, 5, 63, 64, 100] {
            set_bit(&mut m, i);
        }
        set_bit(&mut m, 500); // out of range: ignored
        assert_eq!(ones(&m).collect::<Vec<_>>(), [0, 5, 63, 64, 100]);
        assert!(bit(&m, 63) && !bit(&m, 62) && !bit(&m, 500));
    }
}
