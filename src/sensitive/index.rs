//! Which signatures one value can trigger, so the scanner visits those few instead of every signature.
//!
//! A signature runs its regex on a value only if it has a key hit, or an anchor in the value, or neither is
//! asked of it (`key_required` off, no anchors) and the value has its `digits_min` digits and it could
//! reach `min_confidence` without a key. The candidates are the union of the three as a bitset; the scanner
//! still applies every check of the full rule to each candidate, so the index only skips signatures that
//! would have been skipped anyway. Iterating the bitset keeps signature order, hence the order of findings.
//!
//! The signatures that need neither are many (every numeric type runs on any value with enough digits: ids,
//! prices, timestamps); one pass of a [`RegexSet`] of their patterns tells which of them match the value at
//! all, and only those run their own regex (an exact test: the set reports every pattern with a match).
//!
//! The per-value anchor search (an overlapping Aho-Corasick pass) is preceded by a byte-pair test: no
//! anchor can occur in a value none of whose byte pairs starts one.

use regex::bytes::{RegexSet, RegexSetBuilder};

use super::signatures::{REGEX_DFA_SIZE_LIMIT, REGEX_NEST_LIMIT, REGEX_SIZE_LIMIT, Scope, Signature};

/// Program size of the combined set of free patterns; beyond it (many operator patterns) there is no set and
/// each free signature runs its own regex, as before.
const FREE_SET_SIZE_LIMIT: usize = 4 * REGEX_SIZE_LIMIT;

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
    /// The patterns of every signature in some `free` list; pattern i is signature `free_sigs[i]`.
    free_set: Option<RegexSet>,
    free_sigs: Vec<u16>,
    /// Signatures with `exclude_keys`, and with `context` words: what a key's verdict looks up.
    pub with_exclusions: Vec<u16>,
    pub with_context: Vec<u16>,
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
        let mut free_sigs: Vec<u16> = free.iter().flatten().map(|&(_, si)| si).collect();
        free_sigs.sort_unstable();
        free_sigs.dedup();
        let patterns = free_sigs.iter().filter_map(|&si| sigs.get(usize::from(si))).map(|s| s.regex.as_str());
        // Same syntax options as each signature's own regex, so a pattern matches in the set exactly where it
        // matches alone.
        let free_set = RegexSetBuilder::new(patterns)
            .unicode(false)
            .size_limit(FREE_SET_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
            .nest_limit(REGEX_NEST_LIMIT)
            .build()
            .ok()
            .filter(|s| s.len() == free_sigs.len() && !s.is_empty());
        let mut single = [false; 256];
        let mut pairs = vec![0u64; 1024];
        for a in anchors {
            match a.as_slice() {
                [] => {}
                [b] => single[usize::from(*b)] = true,
                [b0, b1, ..] => set_bit(&mut pairs, usize::from(*b0) << 8 | usize::from(*b1)),
            }
        }
        let with = |f: fn(&Signature) -> bool| -> Vec<u16> {
            sigs.iter().enumerate().filter(|(_, s)| f(s)).map(|(i, _)| i as u16).collect()
        };
        SigIndex {
            words: sigs.len().div_ceil(64),
            free,
            free_set,
            free_sigs,
            with_exclusions: with(|s| !s.exclude_keys.is_empty()),
            with_context: with(|s| !s.context.is_empty()),
            single,
            pairs,
        }
    }

    /// Sets in `out` the signatures of `scope` that need neither a key hit nor an anchor, that a value with
    /// `digits` digits can trigger and whose pattern matches somewhere in `value`; `out` is cleared first.
    /// `seen` is scratch space.
    pub fn free(&self, scope: Scope, value: &[u8], digits: usize, out: &mut [u64], seen: &mut Vec<bool>) {
        out.iter_mut().for_each(|w| *w = 0);
        let mut any = false;
        for &(dmin, si) in self.free.get(scope_slot(scope)).map_or(&[][..], Vec::as_slice) {
            if usize::from(dmin) > digits {
                break;
            }
            set_bit(out, usize::from(si));
            any = true;
        }
        let Some(rs) = self.free_set.as_ref().filter(|_| any) else { return };
        seen.clear();
        seen.resize(rs.len(), false);
        rs.matches_read_at(seen, value, 0);
        for (&m, &si) in seen.iter().zip(&self.free_sigs) {
            if !m && let Some(w) = out.get_mut(usize::from(si) / 64) {
                *w &= !(1u64 << (usize::from(si) % 64));
            }
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

    fn builtin() -> crate::sensitive::signatures::SignatureSet {
        use crate::sensitive::signatures::{LoadSpec, SignatureSet};
        SignatureSet::load(&LoadSpec { builtin: true, ..LoadSpec::default() }).unwrap()
    }

    /// The byte-pair test never hides an anchor: for every value, no pair flagged means no anchor found.
    #[test]
    fn anchor_pairs_never_hide_an_anchor() {
        let set = builtin();
        let mut m = vec![0u64; set.index.words];
        for v in [
            &b"plain text with key and money"[..],
            b"a@b",
            b"xAKIAIOSFODNN7EXAMPLE",
            b"eyJhbGciOiJIUzI1NiJ9",
            b"-----BEGIN RSA",
            b"sk_live_x",
            b"ghp_abc",
            b"e",
            b"",
        ] {
            set.anchored(v, &mut m);
            let any = m.iter().any(|w| *w != 0);
            assert!(!any || set.index.maybe_anchored(v), "{}", String::from_utf8_lossy(v));
        }
        assert!(!set.index.maybe_anchored(b"Wireless Headphones 2024-01-15"));
        assert!(set.index.maybe_anchored(b"jane@example.com"));
    }

    /// Free signatures are those a value can trigger with no key and no anchor; the set pass keeps those
    /// whose pattern matches.
    #[test]
    fn free_signatures_by_digits_and_pattern() {
        let set = builtin();
        let id = |i: usize| set.sigs[i].id.as_str();
        let mut m = vec![0u64; set.index.words];
        let mut seen = Vec::new();
        set.index.free(Scope::Body, b"no digits", 0, &mut m, &mut seen);
        assert!(ones(&m).next().is_none());
        set.index.free(Scope::Body, b"536-22-1234", 9, &mut m, &mut seen);
        let got: Vec<&str> = ones(&m).map(id).collect();
        assert!(got.contains(&"pii.ssn"), "{got:?}");
        assert!(!got.contains(&"pii.uk_nino") && !got.contains(&"pii.email"), "{got:?}");
        set.index.free(Scope::Body, b"1234567", 7, &mut m, &mut seen);
        assert!(!ones(&m).map(id).any(|x| x == "pii.ssn"));
        for i in ones(&m) {
            let s = &set.sigs[i];
            assert!(!s.key_required && !s.has_anchors && s.regex.is_match(b"1234567"), "{}", s.id);
        }
    }

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
