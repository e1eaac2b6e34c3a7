//! The body-level prefilter: is a body worth walking value by value? Most API bodies are not (listings of ids,
//! prices, timestamps, UUIDs), so this is the scanner's hot path and it must run at memory speed.
//!
//! A body is worth walking when it holds a signature anchor (`eyJ`, `AKIA`, `@`…), a key that a signature
//! names (`"email":`, `ssn=`), or a digit run shaped like one of the numeric types (card, SSN, phone, IBAN,
//! national id, IP address). Anchors are one SIMD Aho-Corasick pass. Keys and digit runs are found in one
//! pass over 64-byte blocks: each block's bytes are classified into flag arrays with loops the compiler
//! vectorises (no `unsafe`, no intrinsics), and only the few positions that can matter (a `":` or `=`, the
//! start of six bytes of digits and separators) are looked at byte by byte. The byte-by-byte rules are the
//! reference ([`runs_in`]); the block pass only decides where to apply them, and a property test holds the
//! two to the same answer on arbitrary bytes.

use super::keys::KeyWords;
use wide::u8x16;

use super::signatures::{SignatureSet, fingerprint, key_before};

const _: () = assert!(KEY_SLOTS == 256, "the slot is the hash's top 8 bits");

/// Bytes per block.
const BLOCK: usize = 64;
/// Bytes before a block its key test looks at (`"` and ` ` before `:`).
const BEFORE: usize = 2;
/// A block's window: two bytes before it, the block, and the byte after it (the region test's lookahead).
const WINDOW: usize = BEFORE + BLOCK + 1;

/// Per-worker prefilter state: the key cache and a scratch buffer, kept across bodies.
#[derive(Default)]
pub struct Prefilter {
    kw: KeyWords,
    keys: KeyCache,
}

impl Prefilter {
    /// Whether `body` (not multipart: the caller walks those anyway) is worth walking: exactly
    /// `any anchor || any key named by a signature || (set.digit_sigs && numeric_candidate(body))`.
    pub fn worth_walking(&mut self, set: &SignatureSet, body: &[u8]) -> bool {
        if set.any_anchor(body) {
            return true;
        }
        self.keys.for_set(set);
        let json = body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'{' || *b == b'[');
        let (keys, kw) = (&mut self.keys, &mut self.kw);
        if json {
            return block_pass(body, set.digit_sigs, Some(KeyCtx { cache: keys, set, kw }));
        }
        // Other bodies (form, `.env`, YAML, text): a key can end at any `:` or `=`; they are rare enough on
        // the wire that the plain search is fine.
        if memchr::memchr2_iter(b':', b'=', body).any(|d| keys.named(set, body, d, kw)) {
            return true;
        }
        set.digit_sigs && numeric_candidate(body)
    }
}

/// Whether `b` holds a digit run that could be one of the numeric data types (card, SSN, phone, IBAN,
/// national ids, IP address). Shapes that are everywhere in clean API bodies are not: ISO dates, short
/// numbers, digits inside hex/uuid tokens (a lowercase letter next to the run), bare numbers that cannot be
/// a card (first digit 0, 1, 7, 8, 9) without a separator. Same answer as [`runs_in`] over the whole of `b`.
pub fn numeric_candidate(b: &[u8]) -> bool {
    block_pass(b, true, None)
}

/// What the block pass needs to judge keys.
struct KeyCtx<'a> {
    cache: &'a mut KeyCache,
    set: &'a SignatureSet,
    kw: &'a mut KeyWords,
}

impl KeyCtx<'_> {
    /// Whether the JSON member name between the quotes at `open` and `close` is named by a signature.
    #[inline(always)]
    fn quoted(&mut self, hay: &[u8], open: usize, close: usize) -> bool {
        let len = close - open - 1;
        // The reference takes no empty key.
        if len == 0 {
            return false;
        }
        let key = hay.get(open + 1..close).unwrap_or(&[]);
        // Keys of up to 8 bytes (most): their fingerprint is one load from the body, masked.
        if len <= 8
            && let Some(w) = hay.get(open + 1..open + 9).and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            let head = u64::from_le_bytes(w) & (u64::MAX >> (64 - 8 * len));
            return self.cache.lookup_fp(self.set, (len as u64 + 1, head, 0), key, self.kw);
        }
        self.cache.lookup(self.set, key, self.kw)
    }
}

/// The block pass. With `keys`, every JSON key delimiter (a `:` right after `"` or after `" `, or any `=`:
/// the positions the reference search visits) has its key looked up.
fn block_pass(hay: &[u8], digits: bool, mut keys: Option<KeyCtx<'_>>) -> bool {
    let n = hay.len();
    // Digit runs are judged from this position on (everything before it belongs to a region already judged).
    let mut judged = 0usize;
    // Six-byte runs may cross into the next block: a block's runs are judged once the next one is classified.
    let mut prev: Option<(usize, Masks)> = None;
    // Whether the byte before the previous block is a region byte (region starts are found by their edge).
    let mut carry = 0u128;
    let mut prev_quotes = 0u64;
    let mut pad = [0u8; WINDOW];
    let mut base = 0usize;
    loop {
        let m = if base < n { classify(window(hay, base, &mut pad), keys.is_some(), digits) } else { Masks::default() };
        if let Some(k) = keys.as_mut() {
            // Quotes of this block and the one before, bit 64 + i = position `base + i`: a key's opening
            // quote is at most 64 bytes before its closing one (the reference looks no further back).
            let quotes = u128::from(prev_quotes) | (u128::from(m.quotes) << 64);
            let mut km = m.keys;
            while km != 0 {
                let bit = km.trailing_zeros() as usize;
                km &= km - 1;
                let d = base + bit;
                let named = if m.colons >> bit & 1 == 1 {
                    // The closing quote: right before the colon, or before a space before it.
                    let close = if m.quote_before >> bit & 1 == 1 { 64 + bit - 1 } else { 64 + bit - 2 };
                    // Most keys open in the same block: one 64-bit search.
                    let here = m.quotes & (u64::MAX >> 1 >> (127 - close).min(63));
                    let open = if close >= 64 && here != 0 {
                        Some(127 - here.leading_zeros() as usize)
                    } else {
                        let below = quotes & ((1u128 << close) - 1);
                        (below != 0).then(|| 127 - below.leading_zeros() as usize)
                    };
                    match open {
                        Some(open) if close - open <= 64 => k.quoted(hay, base + open - 64, base + close - 64),
                        _ => k.cache.named(k.set, hay, d, k.kw),
                    }
                } else {
                    k.cache.named(k.set, hay, d, k.kw)
                };
                if named {
                    return true;
                }
            }
            prev_quotes = m.quotes;
        }
        if let Some((pbase, pm)) = prev
            && pm.region != 0
        {
            let x = u128::from(pm.region) | (u128::from(m.region) << 64);
            let dx = u128::from(pm.digits) | (u128::from(m.digits) << 64);
            let six = x & x >> 1 & x >> 2 & x >> 3 & x >> 4 & x >> 5;
            // Starts of six region bytes that start a region: only those are judged.
            let mut rm = (six & !(x << 1 | carry)) as u64;
            while rm != 0 {
                let bit = rm.trailing_zeros();
                let p = pbase + bit as usize;
                rm &= rm - 1;
                if p < judged {
                    continue;
                }
                // Its end and digit count come from the masks unless it runs past the next block.
                let ones = (x >> bit).trailing_ones();
                let hit = if bit + ones < 128 {
                    let span = (x >> bit) & ((1u128 << ones) - 1);
                    let end = p + ones as usize;
                    let d = (dx >> bit) & span;
                    let digits = d.count_ones() as usize;
                    // A region that starts with a digit and whose every separator is followed by a digit is
                    // one run (the common case: an id, a timestamp, a date): judged from the masks, without
                    // walking it. Three separators may be an IPv4 address, which needs the dots counted.
                    let seps = span & !d;
                    let nseps = seps.count_ones() as usize;
                    judged = end;
                    if digits < 6 {
                        false
                    } else if d & 1 == 1 && seps & !(d >> 1) == 0 && nseps != 3 {
                        judge(hay, p, end, digits, nseps, 0)
                    } else {
                        runs_in(hay, p, end)
                    }
                } else {
                    // The region runs past the next block: found and walked byte by byte.
                    judged = region_end(hay, p);
                    runs_in(hay, p, judged)
                };
                if hit {
                    return true;
                }
            }
        }
        if let Some((_, pm)) = prev {
            carry = u128::from(pm.region >> 63);
        }
        if base >= n {
            return false;
        }
        prev = Some((base, m));
        base += BLOCK;
    }
}

/// One block's classes as bit masks (bit i = position `base + i`).
#[derive(Clone, Copy, Default)]
struct Masks {
    /// Key delimiters.
    keys: u64,
    /// Double quotes, colons, and the positions right after a quote (with `keys` only).
    quotes: u64,
    colons: u64,
    quote_before: u64,
    /// Region bytes ([`in_region`]).
    region: u64,
    /// Digits.
    digits: u64,
}

/// `hay[base - BEFORE .. base - BEFORE + WINDOW]`, borrowed when it lies in the body (every block but the
/// first and the last), else copied into `pad` with zeros outside the body (zero is no class: not a digit,
/// separator, quote, colon or `=`).
#[inline(always)]
fn window<'a>(hay: &'a [u8], base: usize, pad: &'a mut [u8; WINDOW]) -> &'a [u8; WINDOW] {
    if let Some(lo) = base.checked_sub(BEFORE)
        && let Some(w) = hay.get(lo..lo + WINDOW).and_then(|s| <&[u8; WINDOW]>::try_from(s).ok())
    {
        return w;
    }
    for (j, x) in pad.iter_mut().enumerate() {
        *x = (base + j).checked_sub(BEFORE).and_then(|p| hay.get(p)).copied().unwrap_or(0);
    }
    pad
}

/// A separator inside a numeric value (`4242 4242`, `536-22-1234`, `+1 (202) 555.0123`, `12/28`).
#[inline(always)]
fn is_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'/' | b'(' | b')')
}

/// A byte that can be part of a digit run as [`runs_in`] walks it: a digit, or a separator followed by a
/// digit or a separator (a superset of what the walk accepts: it takes a separator only before a digit, `(`
/// or a space).
#[inline(always)]
fn in_region(c: u8, next: u8) -> bool {
    c.is_ascii_digit() || (is_sep(c) && (next.is_ascii_digit() || is_sep(next)))
}

/// Sixteen bytes of the window from `at`.
#[inline(always)]
fn lanes(w: &[u8; WINDOW], at: usize) -> u8x16 {
    let mut a = [0u8; 16];
    if let Some(s) = w.get(at..at + 16) {
        a.copy_from_slice(s);
    }
    u8x16::new(a)
}

/// One block's classes, sixteen bytes per SIMD instruction (`wide`: SSE2 on x86-64, NEON on AArch64). The
/// autovectorised byte loops this replaced ran at half the speed: the compiler never emits a movemask.
#[inline(always)]
fn classify(w: &[u8; WINDOW], keys: bool, digits: bool) -> Masks {
    let mut m = Masks::default();
    let splat = u8x16::splat;
    // Digits: c - '0' <= 9 (wrapping). Digits and separators: ' ', '(', ')' and '-' ..= '9' (`-./` and digits).
    let digit = |x: u8x16| {
        let t = x - splat(b'0');
        t.min(splat(9)).simd_eq(t)
    };
    let digit_or_sep = |x: u8x16, space: u8x16| {
        let t = x - splat(b'-');
        t.min(splat(12)).simd_eq(t) | (x & splat(0xfe)).simd_eq(splat(b'(')) | space
    };
    let mut colons = 0u64;
    // `=` and `" :` are rare in JSON: their masks are built only for the blocks that hold one.
    let mut any_eq = splat(0);
    let mut ds = 0u64;
    for j in 0..BLOCK / 16 {
        let v = lanes(w, BEFORE + 16 * j);
        let space = v.simd_eq(splat(b' '));
        if keys {
            colons |= u64::from(v.simd_eq(splat(b':')).to_bitmask()) << (16 * j);
            m.quotes |= u64::from(v.simd_eq(splat(b'"')).to_bitmask()) << (16 * j);
            any_eq |= v.simd_eq(splat(b'='));
        }
        if digits {
            m.digits |= u64::from(digit(v).to_bitmask()) << (16 * j);
            ds |= u64::from(digit_or_sep(v, space).to_bitmask()) << (16 * j);
        }
    }
    if keys {
        let mask_of = |c: u8| {
            (0..BLOCK / 16)
                .fold(0u64, |a, j| a | u64::from(lanes(w, BEFORE + 16 * j).simd_eq(splat(c)).to_bitmask()) << (16 * j))
        };
        // `":` and `" :`, with the two bytes before the block carried in.
        let (b2, b1) = (w.first().copied().unwrap_or(0), w.get(1).copied().unwrap_or(0));
        let q1 = m.quotes << 1 | u64::from(b1 == b'"');
        let q2 = m.quotes << 2 | u64::from(b1 == b'"') << 1 | u64::from(b2 == b'"');
        let spaced = colons & !q1 & q2;
        let s1 = if spaced != 0 { mask_of(b' ') << 1 | u64::from(b1 == b' ') } else { 0 };
        let eqs = if any_eq.any() { mask_of(b'=') } else { 0 };
        m.keys = (colons & (q1 | (s1 & q2))) | eqs;
        m.colons = colons;
        m.quote_before = q1;
    }
    if digits && ds != 0 {
        // A separator is a region byte when the byte after it is a digit or a separator.
        let next = w.get(BEFORE + BLOCK).copied().unwrap_or(0);
        let next_ds = u64::from(next.is_ascii_digit() || is_sep(next));
        let seps = ds & !m.digits;
        m.region = m.digits | (seps & ((ds >> 1) | (next_ds << 63)));
    }
    m
}

/// The first position at or after `p` that is not a region byte.
fn region_end(b: &[u8], mut p: usize) -> usize {
    while let Some(&c) = b.get(p) {
        if !in_region(c, b.get(p + 1).copied().unwrap_or(0)) {
            break;
        }
        p += 1;
    }
    p
}

/// The reference rules: walks `b[from..to]` run by run (a run starts at a digit and takes digits and single
/// separators) and answers whether a run starting before `to` is a numeric candidate. `b[to]`, when there
/// is one, must end every run (not a region byte), which the block pass guarantees.
pub fn runs_in(b: &[u8], from: usize, to: usize) -> bool {
    let mut i = from;
    while i < to {
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0usize;
        let mut seps = 0usize;
        let mut dots = 0usize;
        let mut end = i;
        while let Some(&c) = b.get(i) {
            if c.is_ascii_digit() {
                digits += 1;
                i += 1;
                end = i;
            } else if is_sep(c) && b.get(i + 1).is_some_and(|x| x.is_ascii_digit() || *x == b'(' || *x == b' ') {
                seps += 1;
                dots += usize::from(c == b'.');
                i += 1;
            } else {
                break;
            }
        }
        i = i.max(start + 1);
        if judge(b, start, end, digits, seps, dots) {
            return true;
        }
    }
    false
}

/// Whether the run `b[start..end]` (from its first digit to its last, `digits` digits, `seps` separators of
/// which `dots` dots) is shaped like numeric data.
#[inline]
fn judge(b: &[u8], start: usize, end: usize, digits: usize, seps: usize, dots: usize) -> bool {
    if digits < 6 {
        return false;
    }
    let prev = start.checked_sub(1).and_then(|p| b.get(p)).copied().unwrap_or(b' ');
    let next = b.get(end).copied().unwrap_or(b' ');
    if prev.is_ascii_lowercase() || next.is_ascii_lowercase() {
        return false;
    }
    let run = b.get(start..end).unwrap_or(&[]);
    let iso_date = run.len() >= 10
        && run.get(4) == Some(&b'-')
        && run.get(7) == Some(&b'-')
        && run.get(..4).is_some_and(|y| y.iter().all(u8::is_ascii_digit));
    if iso_date && digits <= 12 {
        return false;
    }
    let first = run.first().copied().unwrap_or(b'0');
    let up = |c: u8| c.is_ascii_uppercase();
    if digits >= 9 && (seps > 0 || (b'2'..=b'6').contains(&first) || prev == b'+' || up(prev) || up(next)) {
        return true;
    }
    (digits >= 7 && up(next)) || (up(prev) && up(next)) || (dots == 3 && seps == 3)
}

/// Slots of the key cache.
const KEY_SLOTS: usize = 256;

/// Keys already looked up and named by no signature (a named one ends the search), by exact fingerprint:
/// bodies of one API repeat the same few dozen keys. Direct-mapped, kept across bodies, emptied when the
/// signature set changes (a SIGHUP reload may name a key the old set did not).
struct KeyCache {
    generation: u64,
    seen: Vec<(u64, u64, u64)>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache { generation: 0, seen: vec![(0, 0, 0); KEY_SLOTS] }
    }
}

impl KeyCache {
    fn for_set(&mut self, set: &SignatureSet) {
        if self.generation != set.generation {
            self.seen.iter_mut().for_each(|x| *x = (0, 0, 0));
            self.generation = set.generation;
        }
    }

    /// Whether the key ending before the delimiter at `d` is named by a signature.
    #[inline]
    fn named(&mut self, set: &SignatureSet, hay: &[u8], d: usize, kw: &mut KeyWords) -> bool {
        let Some(key) = key_before(hay, d) else { return false };
        self.lookup(set, key, kw)
    }

    #[inline]
    fn lookup(&mut self, set: &SignatureSet, key: &[u8], kw: &mut KeyWords) -> bool {
        self.lookup_fp(set, fingerprint(key), key, kw)
    }

    /// `fp` is the key's exact fingerprint (see [`fingerprint`]; a short key's is its length + 1 and its
    /// bytes).
    #[inline(always)]
    fn lookup_fp(&mut self, set: &SignatureSet, fp: (u64, u64, u64), key: &[u8], kw: &mut KeyWords) -> bool {
        let slot = ((fp.0 ^ fp.1.rotate_left(17) ^ fp.2).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize;
        if self.seen.get(slot) == Some(&fp) {
            return false;
        }
        kw.split(key);
        if set.key_named(kw) {
            return true;
        }
        if let Some(x) = self.seen.get_mut(slot) {
            *x = fp;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitive::signatures::LoadSpec;
    use proptest::prelude::*;

    fn set() -> SignatureSet {
        SignatureSet::load(&LoadSpec { builtin: true, ..LoadSpec::default() }).unwrap()
    }

    /// The reference answer: anchors, every delimiter the JSON key search visits, the run rules over all bytes.
    fn reference(set: &SignatureSet, body: &[u8]) -> bool {
        if set.any_anchor(body) {
            return true;
        }
        let json = body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'{' || *b == b'[');
        let mut kw = KeyWords::default();
        let mut named = |d: usize| {
            key_before(body, d).is_some_and(|k| {
                kw.split(k);
                set.key_named(&kw)
            })
        };
        let keys = if json {
            memchr::memmem::find_iter(body, b"\":").map(|i| i + 1).any(&mut named)
                || memchr::memmem::find_iter(body, b"\" :").map(|i| i + 2).any(&mut named)
                || memchr::memchr_iter(b'=', body).any(&mut named)
        } else {
            memchr::memchr2_iter(b':', b'=', body).any(&mut named)
        };
        keys || set.digit_sigs && runs_in(body, 0, body.len())
    }

    #[test]
    fn short_key_fingerprint_is_one_masked_load() {
        let body = br#"{"email":1,"emailAddr":2}"#;
        let head = u64::from_le_bytes(*b"email\":1") & (u64::MAX >> 24);
        assert_eq!(fingerprint(b"email"), (6, head, 0));
        assert_ne!(fingerprint(b"emailAdd"), fingerprint(b"emailAddr"));
        let s = set();
        let mut pf = Prefilter::default();
        assert!(pf.worth_walking(&s, body));
        assert!(pf.worth_walking(&s, body), "a named key is never cached as unnamed");
    }

    #[test]
    fn clean_api_json_is_not_worth_walking() {
        let s = set();
        let mut pf = Prefilter::default();
        let clean = br#"{"name":"Wireless Headphones","note":"card, address and token in prose","img":"https://cdn.example/a.jpg","id":10123,"sku":"SKU-04567","name":"Product 3","price":123.99,"created_at":"2024-01-15T08:10:00Z","uuid":"8f3a1b2c-1111-4222-8333-9a2b3c4d5e6f","ts":1705312800000}"#;
        assert!(!numeric_candidate(clean));
        assert!(!pf.worth_walking(&s, clean));
        assert!(pf.worth_walking(&s, br#"{"homePhone":"x"}"#));
        assert!(pf.worth_walking(&s, b"user_ssn=1"));
        assert!(pf.worth_walking(&s, br#"{"ssn" : 1}"#));
        assert!(!pf.worth_walking(&s, br#"{"x":"my ssn is"}"#));
        for dirty in
            [&b"{\"n\":\"4242 4242 4242 4242\"}"[..], b"x 536-22-1234 y", b"\"DE89370400440532013000\"", b"+4420794609"]
        {
            assert!(numeric_candidate(dirty), "{}", String::from_utf8_lossy(dirty));
        }
    }

    #[test]
    fn runs_and_keys_across_block_edges() {
        let s = set();
        let mut pf = Prefilter::default();
        // A card number and a key name placed at every offset around the first block edges.
        for pad in 50..140 {
            let card = format!("{{\"a\":\"{}\",\"n\":\"4242 4242 4242 4242\"}}", "x".repeat(pad));
            assert!(numeric_candidate(card.as_bytes()), "{pad}");
            let key = format!("{{\"a\":\"{}\",\"email\":\"x\"}}", "y".repeat(pad));
            assert!(pf.worth_walking(&s, key.as_bytes()), "{pad}");
            let clean = format!("{{\"a\":\"{}\",\"ts\":1705312800000}}", "y".repeat(pad));
            assert!(!pf.worth_walking(&s, clean.as_bytes()), "{pad}");
        }
    }

    /// Bytes drawn mostly from the characters the rules care about, so that runs, keys and block edges meet.
    fn hostile() -> impl Strategy<Value = Vec<u8>> {
        let alphabet: &[u8] = b"0123456789 -./()\"=:{[,aAzZ+@e";
        let byte = prop_oneof![
            8 => proptest::sample::select(alphabet.to_vec()),
            1 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..400)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn block_pass_answers_like_the_reference(mut body in hostile(), json in any::<bool>(), keys in proptest::sample::subsequence(vec!["email", "ssn", "card_number", "password", "phone", "name"], 0..3)) {
            if json {
                body.insert(0, b'{');
            }
            for k in keys {
                let at = body.len() / 2;
                let ins = format!("\"{k}\":");
                body.splice(at..at, ins.bytes());
            }
            let s = set();
            let mut pf = Prefilter::default();
            prop_assert_eq!(numeric_candidate(&body), runs_in(&body, 0, body.len()));
            prop_assert_eq!(pf.worth_walking(&s, &body), reference(&s, &body));
        }
    }
}
