//! The scanner: every place of a transaction where data travels (path segments, query parameters, headers,
//! cookies, form, multipart, JSON and text bodies), each value matched against the signature set.
//!
//! Order of work, cheapest first: a body is first checked as a whole ([`super::prefilter`]: anchors, keys
//! named by a signature, digit runs shaped like numeric data); a body with none is done (the common, clean
//! case). Otherwise
//! it is walked value by value with its key: key names, per-value anchors and digit counts select the
//! signatures worth a regex, and the validator runs last on what the regex matched. Work per transaction is
//! bounded by [`Limits`]; every cap hit is counted in [`ScanCounts`].
//!
//! Per value, only the signatures its key, anchors or digits can trigger are visited ([`super::index`]). Real
//! traffic repeats itself (the same keys in every array element, the same emails and tokens in every
//! response), so the verdicts on header values, on values and on key names are kept in small per-worker
//! caches, keyed by everything the verdict depends on; a cached answer is the one classifying again gives.

use std::hash::BuildHasher;
use std::net::IpAddr;

use super::index::{SigBits, bit, ones, set_bit};
use super::json::{self, Seg};
use super::keys::KeyWords;
use super::prefilter::Prefilter;
use super::signatures::{Scope, SignatureSet};
use super::validators::jwt_parts;
use crate::http::Transaction;

/// Caps on the work done for one transaction.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_scan_bytes: usize,
    pub max_json_depth: usize,
    pub max_json_values: usize,
    pub max_matches_per_value: usize,
    pub max_text_lines: usize,
    pub max_findings: usize,
    /// Entries of the per-worker value-verdict cache (`[sensitive] value_cache_entries`).
    pub value_cache_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_scan_bytes: 1 << 20,
            max_json_depth: 32,
            max_json_values: 20_000,
            max_matches_per_value: 8,
            max_text_lines: 5_000,
            max_findings: 100,
            value_cache_entries: 65_536,
        }
    }
}

/// What the scanner did, summed by the caller.
#[derive(Clone, Debug, Default)]
pub struct ScanCounts {
    pub bodies: u64,
    pub bodies_clean: u64,
    pub bodies_walked: u64,
    /// Images, archives, PDFs, fonts, media: not scanned (digits in them are not data).
    pub bodies_binary: u64,
    pub bytes_scanned: u64,
    pub values: u64,
    pub regex_runs: u64,
    pub cap_scan_bytes: u64,
    pub cap_json_depth: u64,
    pub cap_json_values: u64,
    pub cap_text_lines: u64,
    pub cap_findings: u64,
    /// Header and cookie values answered from the per-worker cache (the same token, User-Agent or session
    /// cookie on every request of a client).
    pub header_cache_hits: u64,
    /// Values whose signature verdict came from the per-worker value cache.
    pub value_cache_hits: u64,
    /// Numeric matches dropped because they lie inside an identifier (a UUID group, `ORD-…`).
    pub inside_token: u64,
}

/// Slots of the header-value cache (per worker, two ways per set: `way2`) and the longest value it keeps.
const HEADER_CACHE_SLOTS: usize = 1024;
const HEADER_CACHE_MAX_VALUE: usize = 1024;

/// The longest key, enclosing key and value together the value cache keeps, and the most findings one entry
/// holds (its size is `Limits::value_cache_entries`).
const VALUE_CACHE_MAX_BYTES: usize = 512;
const VALUE_CACHE_MAX_HITS: usize = 16;

/// Slots of the key-name cache (per worker, two ways per set) and the longest key it keeps.
const KEY_CACHE_SLOTS: usize = 1024;
const KEY_CACHE_MAX_KEY: usize = 128;
/// Entries hold three bitsets over the signatures: beyond 1024 signatures (16 words) keys are not cached,
/// so the cache stays under half a megabyte whatever the packs.
const KEY_CACHE_MAX_WORDS: usize = 16;

/// What the signatures make of one key name.
#[derive(Default)]
struct CachedKey {
    generation: u64,
    key: Vec<u8>,
    /// Signatures naming the key (and not excluding it).
    keyhit: SigBits,
    /// Signatures with an exclusion, and with a context word, in the key.
    excl: SigBits,
    ctx: SigBits,
    /// Only generic leaf words (`number`, `value`…) or none.
    generic: bool,
}

/// One classified header or cookie value: everything the result depends on, and the result.
#[derive(Default)]
struct CachedValue {
    generation: u64,
    loc: &'static str,
    own_ips: [Option<IpAddr>; 2],
    key: Vec<u8>,
    value: Vec<u8>,
    found: Vec<Found>,
}

/// One raw detection. The value is held only until the caller has masked and hashed it.
#[derive(Clone, Debug)]
pub struct Found {
    pub sig: u16,
    pub location: &'static str,
    pub field: String,
    pub value: Vec<u8>,
    pub confidence: f32,
}

#[derive(Copy, Clone)]
struct Loc {
    name: &'static str,
    scope: Scope,
}

const REQ_PATH: Loc = Loc { name: "request.path", scope: Scope::Path };
const REQ_QUERY: Loc = Loc { name: "request.query", scope: Scope::Query };
const REQ_HEADER: Loc = Loc { name: "request.header", scope: Scope::Header };
const REQ_COOKIE: Loc = Loc { name: "request.cookie", scope: Scope::Cookie };
const REQ_BODY: Loc = Loc { name: "request.body", scope: Scope::Body };
const RESP_HEADER: Loc = Loc { name: "response.header", scope: Scope::Header };
const RESP_COOKIE: Loc = Loc { name: "response.cookie", scope: Scope::Cookie };
const RESP_BODY: Loc = Loc { name: "response.body", scope: Scope::Body };

/// Key words under which the parent's key names the data (`"passport": {"number": …}`).
const GENERIC_LEAF: &[&[u8]] = &[b"number", b"value", b"no", b"num", b"code", b"id", b"data", b"nr"];

/// Per-worker scanner with reusable buffers.
#[derive(Default)]
pub struct Scanner {
    pub limits: Limits,
    pub counts: ScanCounts,
    kw: KeyWords,
    prefilter: Prefilter,
    excl: SigBits,
    ctx: SigBits,
    /// Verdicts on key names (`KEY_CACHE_SLOTS` slots, keys up to `KEY_CACHE_MAX_KEY` bytes).
    key_cache: Vec<CachedKey>,
    anchored: SigBits,
    keyhit: SigBits,
    cand: SigBits,
    seen: Vec<bool>,
    path: Vec<Seg>,
    unesc: Vec<u8>,
    own_ips: [Option<IpAddr>; 2],
    findings: usize,
    /// Header and cookie values repeat on every request of a client (tokens, User-Agent, session cookies);
    /// classifying them again was a quarter of the analyzer. Bounded: `HEADER_CACHE_SLOTS` entries of at
    /// most `HEADER_CACHE_MAX_VALUE` bytes. Raw values stay in this worker's memory only, like the
    /// transaction itself.
    header_cache: Vec<CachedValue>,
    /// Values repeat too: the same email, phone or address in every response that returns a record. The
    /// verdict of a (scope, key, enclosing key, value) is kept in `value_cache_entries` slots of at most
    /// `VALUE_CACHE_MAX_BYTES` bytes and `VALUE_CACHE_MAX_HITS` findings; fields and findings are still made
    /// per occurrence.
    value_cache: Vec<CachedHits>,
    /// Identity of the value being classified (reused).
    vkey: Vec<u8>,
    /// Slot hash of the caches. Fixed seed: a replay's cache hits (and so its stats) are reproducible; a
    /// chosen collision only costs a miss.
    hasher: foldhash::fast::FixedState,
    hits: Vec<Hit>,
    cands: Vec<Cand>,
    spans: Vec<((usize, usize), (usize, usize))>,
}

impl Scanner {
    pub fn new(limits: Limits) -> Self {
        Scanner { limits, ..Scanner::default() }
    }

    /// Scans a whole transaction, appending to `out`.
    pub fn scan_transaction(&mut self, set: &SignatureSet, tx: &Transaction, out: &mut Vec<Found>) {
        self.findings = 0;
        self.own_ips = match tx.endpoints() {
            Some((c, s)) => [Some(c.ip()), Some(s.ip())],
            None => [None, None],
        };
        if tx.has_request {
            for (i, seg) in tx.path.split('/').filter(|s| !s.is_empty()).take(64).enumerate() {
                let v = percent_decode(seg.as_bytes());
                self.value(set, REQ_PATH, None, None, &v, &mut || format!("segment[{i}]"), out, 0);
            }
            for (k, v) in &tx.query_params {
                self.value(set, REQ_QUERY, Some(k.as_bytes()), None, v.as_bytes(), &mut || k.clone(), out, 0);
            }
            self.headers(set, tx.request_headers.iter(), REQ_HEADER, REQ_COOKIE, out);
            let ct = tx.request_headers.get("content-type").unwrap_or("");
            self.body_at(set, tx.decoded_request_body(), ct, REQ_BODY, out);
        }
        if tx.has_response {
            self.headers(set, tx.response_headers.iter(), RESP_HEADER, RESP_COOKIE, out);
            let ct = tx.response_headers.get("content-type").unwrap_or("");
            self.body_at(set, tx.decoded_response_body(), ct, RESP_BODY, out);
        }
    }

    fn headers<'h>(
        &mut self,
        set: &SignatureSet,
        headers: impl Iterator<Item = (&'h str, &'h str)>,
        hloc: Loc,
        cloc: Loc,
        out: &mut Vec<Found>,
    ) {
        for (name, value) in headers.take(128) {
            if name.eq_ignore_ascii_case("cookie") {
                for pair in value.split(';').take(64) {
                    let (k, v) = pair.trim().split_once('=').unwrap_or((pair.trim(), ""));
                    self.cached_value(set, cloc, k, v.as_bytes(), out);
                }
            } else if name.eq_ignore_ascii_case("set-cookie") {
                let first = value.split(';').next().unwrap_or("");
                let (k, v) = first.trim().split_once('=').unwrap_or((first.trim(), ""));
                self.cached_value(set, cloc, k, v.as_bytes(), out);
            } else {
                self.cached_value(set, hloc, name, value.as_bytes(), out);
            }
        }
    }

    /// `value` for a header or cookie, answered from the cache when this worker classified the same (set,
    /// location, name, value, flow addresses) before. The field is the lower-cased header name or the cookie
    /// name, as `value` would give.
    fn cached_value(&mut self, set: &SignatureSet, loc: Loc, key: &str, value: &[u8], out: &mut Vec<Found>) {
        let field = || if loc.scope == Scope::Header { key.to_ascii_lowercase() } else { key.to_owned() };
        if value.is_empty() || value.len() > HEADER_CACHE_MAX_VALUE || key.len() > HEADER_CACHE_MAX_VALUE {
            self.value(set, loc, Some(key.as_bytes()), None, value, &mut || field(), out, 0);
            return;
        }
        if self.header_cache.is_empty() {
            self.header_cache.resize_with(HEADER_CACHE_SLOTS, CachedValue::default);
        }
        let own_ips = self.own_ips;
        let h = self.hasher.hash_one((loc.name, key, value));
        let Some((slot, hit)) = way2(&mut self.header_cache, h, |c| {
            c.generation == set.generation
                && c.loc == loc.name
                && c.own_ips == own_ips
                && c.key == key.as_bytes()
                && c.value == value
        }) else {
            return self.value(set, loc, Some(key.as_bytes()), None, value, &mut || field(), out, 0);
        };
        if hit
            && let Some(c) = self.header_cache.get(slot)
            && self.findings + c.found.len() <= self.limits.max_findings
        {
            self.counts.header_cache_hits += 1;
            self.findings += c.found.len();
            out.extend(c.found.iter().cloned());
            return;
        }
        let start = out.len();
        let capped_before = self.counts.cap_findings;
        self.value(set, loc, Some(key.as_bytes()), None, value, &mut || field(), out, 0);
        // A value cut short by the findings cap is not a complete answer: not kept.
        if self.counts.cap_findings != capped_before {
            return;
        }
        if let Some(c) = self.header_cache.get_mut(slot) {
            c.generation = set.generation;
            c.loc = loc.name;
            c.own_ips = own_ips;
            c.key.clear();
            c.key.extend_from_slice(key.as_bytes());
            c.value.clear();
            c.value.extend_from_slice(value);
            c.found.clear();
            c.found.extend(out.get(start..).unwrap_or(&[]).iter().cloned());
        }
    }

    /// Scans one body of the given content type.
    pub fn body(&mut self, set: &SignatureSet, body: &[u8], ctype: &str, loc_name: BodyLoc, out: &mut Vec<Found>) {
        let loc = match loc_name {
            BodyLoc::Request => REQ_BODY,
            BodyLoc::Response => RESP_BODY,
        };
        self.body_at(set, body, ctype, loc, out);
    }

    fn body_at(&mut self, set: &SignatureSet, body: &[u8], ctype: &str, loc: Loc, out: &mut Vec<Found>) {
        if body.is_empty() {
            return;
        }
        self.counts.bodies += 1;
        let body = match body.get(..self.limits.max_scan_bytes) {
            Some(b) if b.len() < body.len() => {
                self.counts.cap_scan_bytes += 1;
                b
            }
            _ => body,
        };
        self.counts.bytes_scanned += body.len() as u64;
        // Multipart field names sit in `name="…"`, not in key position: such bodies are always walked.
        let multipart = ctype.len() >= 10 && ctype.get(..10).is_some_and(|p| p.eq_ignore_ascii_case("multipart/"));
        if !(multipart || self.prefilter.worth_walking(set, body)) {
            self.counts.bodies_clean += 1;
            return;
        }
        self.counts.bodies_walked += 1;
        let ct = ctype.to_ascii_lowercase();
        if is_binary(&ct, body) {
            self.counts.bodies_binary += 1;
            return;
        }
        let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if ct.contains("json") || (!ct.contains("form") && matches!(first, Some(b'{' | b'['))) {
            self.json(set, body, loc, out, 0, "");
        } else if ct.contains("x-www-form-urlencoded") {
            self.form(set, body, loc, out);
        } else if ct.starts_with("multipart/") {
            self.multipart(set, body, &ct, ctype, loc, out);
        } else {
            self.text(set, body, loc, out);
        }
    }

    fn json(&mut self, set: &SignatureSet, body: &[u8], loc: Loc, out: &mut Vec<Found>, depth: u8, prefix: &str) {
        let mut path = std::mem::take(&mut self.path);
        let limits = self.limits.clone();
        let mut unesc = std::mem::take(&mut self.unesc);
        let o = json::walk(body, limits.max_json_depth, limits.max_json_values, &mut path, |p, s| {
            if self.findings >= limits.max_findings {
                self.counts.cap_findings += 1;
                return false;
            }
            let (key, parent) = keys_of(body, p);
            let value: &[u8] = if s.escaped {
                json::unescape(s.raw, &mut unesc);
                &unesc
            } else {
                s.raw
            };
            let mut field = || render_field(prefix, body, p);
            self.value(set, loc, key, parent, value, &mut field, out, depth);
            true
        });
        self.counts.values += o.scalars as u64;
        self.counts.cap_json_depth += u64::from(o.depth_capped);
        self.counts.cap_json_values += u64::from(o.scalars_capped);
        self.path = path;
        self.unesc = unesc;
    }

    fn form(&mut self, set: &SignatureSet, body: &[u8], loc: Loc, out: &mut Vec<Found>) {
        for pair in body.split(|b| *b == b'&').take(self.limits.max_text_lines) {
            let (k, v) = match memchr::memchr(b'=', pair) {
                Some(i) => (pair.get(..i).unwrap_or(&[]), pair.get(i + 1..).unwrap_or(&[])),
                None => (pair, &[][..]),
            };
            let (k, v) = (percent_decode(k), percent_decode(v));
            let name = String::from_utf8_lossy(&k).into_owned();
            self.value(set, loc, Some(&k), None, &v, &mut || name.clone(), out, 0);
        }
    }

    fn multipart(&mut self, set: &SignatureSet, body: &[u8], ct: &str, raw_ct: &str, loc: Loc, out: &mut Vec<Found>) {
        let Some(i) = ct.find("boundary=") else { return self.text(set, body, loc, out) };
        let b = raw_ct.get(i + 9..).unwrap_or("").split(';').next().unwrap_or("").trim().trim_matches('"');
        if b.is_empty() || b.len() > 200 {
            return self.text(set, body, loc, out);
        }
        let delim = format!("--{b}");
        let finder = memchr::memmem::Finder::new(delim.as_bytes());
        let starts: Vec<usize> = finder.find_iter(body).take(256).collect();
        for w in starts.windows(2) {
            let (Some(&a), Some(&z)) = (w.first(), w.get(1)) else { continue };
            let part = body.get(a + delim.len()..z).unwrap_or(&[]);
            let Some(hend) = memchr::memmem::find(part, b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(part.get(..hend).unwrap_or(&[])).into_owned();
            let content = part.get(hend + 4..).unwrap_or(&[]);
            let content = content.strip_suffix(b"\r\n").unwrap_or(content);
            let name = head
                .split(';')
                .find_map(|p| p.trim().strip_prefix("name="))
                .map(|n| n.trim_matches('"').to_owned())
                .unwrap_or_default();
            let lower = head.to_ascii_lowercase();
            if lower.contains("filename=") || content.len() > 4096 {
                let pct = lower
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("content-type:").map(|s| s.trim().to_owned()))
                    .unwrap_or_default();
                // Never multipart again: nesting depth would be attacker-chosen.
                if pct.contains("json") {
                    self.json(set, content, loc, out, 0, "");
                } else {
                    self.text(set, content, loc, out);
                }
            } else {
                self.value(set, loc, Some(name.as_bytes()), None, content, &mut || name.clone(), out, 0);
            }
        }
    }

    /// Plain text, HTML, `.env`, YAML, logs: `key = value` / `key: value` lines are split so the key counts,
    /// other lines are scanned as values.
    fn text(&mut self, set: &SignatureSet, body: &[u8], loc: Loc, out: &mut Vec<Found>) {
        for (n, line) in body.split(|b| *b == b'\n').enumerate() {
            if n >= self.limits.max_text_lines {
                self.counts.cap_text_lines += 1;
                break;
            }
            if self.findings >= self.limits.max_findings {
                break;
            }
            let line = line.trim_ascii();
            // MIME boundaries and part headers carry long random digit runs (`=====4997562631461524592==`).
            if line.is_empty() || line.starts_with(b"--") {
                continue;
            }
            if let Some((k, v)) = split_kv(line) {
                if k.len() > 8 && k.get(..8).is_some_and(|p| p.eq_ignore_ascii_case(b"content-")) {
                    continue;
                }
                let name = String::from_utf8_lossy(k).into_owned();
                self.value(set, loc, Some(k), None, v, &mut || name.clone(), out, 0);
            } else {
                self.value(set, loc, None, None, line, &mut || format!("line {}", n + 1), out, 0);
            }
        }
    }

    /// Classifies one value with its key (and the enclosing key, for generic leaf names).
    #[allow(clippy::too_many_arguments)]
    fn value(
        &mut self,
        set: &SignatureSet,
        loc: Loc,
        key: Option<&[u8]>,
        parent: Option<&[u8]>,
        value: &[u8],
        field: &mut dyn FnMut() -> String,
        out: &mut Vec<Found>,
        depth: u8,
    ) {
        if value.is_empty() || self.findings >= self.limits.max_findings {
            if !value.is_empty() {
                self.counts.cap_findings += 1;
            }
            return;
        }
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        let own_ips = self.own_ips;
        let found = self.value_slot(set, loc, key, parent, value).and_then(|h| {
            let vkey = &self.vkey;
            way2(&mut self.value_cache, h, |c| {
                c.hash == h
                    && c.generation == set.generation
                    && c.id == *vkey
                    && c.own_ips.is_none_or(|ips| ips == own_ips)
            })
            .map(|(s, hit)| (s, hit, h))
        });
        let slot = found.map(|(s, _, h)| (s, h));
        if let Some((s, true, _)) = found
            && let Some(c) = self.value_cache.get(s)
        {
            self.counts.value_cache_hits += 1;
            hits.extend_from_slice(&c.hits);
        } else {
            let own_ip_checked = self.classify(set, loc, key, parent, value, &mut hits);
            if let Some((s, h)) = slot
                && let Some(c) = self.value_cache.get_mut(s)
                && hits.len() <= VALUE_CACHE_MAX_HITS
            {
                c.hash = h;
                c.generation = set.generation;
                c.own_ips = own_ip_checked.then_some(own_ips);
                c.id.clear();
                c.id.extend_from_slice(&self.vkey);
                c.hits.clear();
                c.hits.extend_from_slice(&hits);
            }
        }
        let mut field_s: Option<String> = None;
        let mut jwt_payloads: Vec<serde_json::Value> = Vec::new();
        let last = hits.len().saturating_sub(1);
        for (i, h) in hits.iter().enumerate() {
            let v = value.get(h.inner.0..h.inner.1).unwrap_or(&[]);
            if h.jwt
                && depth == 0
                && let Some((_, p)) = jwt_parts(v)
            {
                jwt_payloads.push(p);
            }
            if self.findings >= self.limits.max_findings {
                self.counts.cap_findings += 1;
                break;
            }
            self.findings += 1;
            // The last finding takes the rendered field (one copy less), unless the JWT walk still needs it.
            let f = match (i == last && jwt_payloads.is_empty(), field_s.take()) {
                (true, Some(f)) => f,
                (true, None) => field(),
                (false, f) => field_s.insert(f.unwrap_or_else(&mut *field)).clone(),
            };
            out.push(Found { sig: h.sig, location: loc.name, field: f, value: v.to_vec(), confidence: h.conf });
        }
        self.hits = hits;
        // Claims inside a JWT count as data of the transaction (an email in an access token is an email).
        if !jwt_payloads.is_empty() {
            let base = field_s.get_or_insert_with(&mut *field).clone();
            for p in jwt_payloads.iter().take(4) {
                let text = serde_json::to_vec(p).unwrap_or_default();
                let prefix = format!("{base}#jwt");
                self.json(set, &text, loc, out, 1, &prefix);
            }
        }
    }

    /// The value-cache hash for this classification, with its identity in `self.vkey`; None when the value
    /// is too long to keep.
    fn value_slot(
        &mut self,
        set: &SignatureSet,
        loc: Loc,
        key: Option<&[u8]>,
        parent: Option<&[u8]>,
        value: &[u8],
    ) -> Option<u64> {
        let klen = key.map_or(0, <[u8]>::len) + parent.map_or(0, <[u8]>::len);
        if set.is_empty() || value.len() + klen > VALUE_CACHE_MAX_BYTES {
            return None;
        }
        // Everything classification depends on but the flow addresses (kept in the entry when they mattered):
        // scope, key, enclosing key, value, each length-prefixed.
        let id = &mut self.vkey;
        id.clear();
        id.push(loc.scope as u8);
        for part in [key, parent] {
            match part {
                None => id.push(0),
                Some(p) => {
                    id.push(1);
                    id.extend_from_slice(&(p.len() as u32).to_le_bytes());
                    id.extend_from_slice(p);
                }
            }
        }
        id.extend_from_slice(value);
        if self.value_cache.is_empty() {
            // The largest power of two not above the setting: what `way2` addresses.
            let n = self.limits.value_cache_entries;
            let used = if n < 2 { 0 } else { 1 << (usize::BITS - 1 - n.leading_zeros()) };
            self.value_cache.resize_with(used, CachedHits::default);
        }
        Some(self.hasher.hash_one(id.as_slice()))
    }

    /// The signatures' verdict on one value: validated matches not explained by a longer match of another
    /// type, in signature order. Returns whether an own flow address was looked up (the verdict then depends
    /// on the flow).
    fn classify(
        &mut self,
        set: &SignatureSet,
        loc: Loc,
        key: Option<&[u8]>,
        parent: Option<&[u8]>,
        value: &[u8],
        hits: &mut Vec<Hit>,
    ) -> bool {
        let words = set.index.words;
        let mut keyhit = std::mem::take(&mut self.keyhit);
        let mut excl = std::mem::take(&mut self.excl);
        let mut ctx = std::mem::take(&mut self.ctx);
        for m in [&mut keyhit, &mut excl, &mut ctx] {
            m.clear();
            m.resize(words, 0);
        }
        self.anchored.resize(words, 0);
        if let Some(k) = key {
            let generic = self.key_verdict(set, k, &mut keyhit, Some((&mut excl, &mut ctx)));
            if let Some(p) = parent
                && generic
            {
                self.key_verdict(set, p, &mut keyhit, None);
            }
        }
        self.keyhit = keyhit;
        self.excl = excl;
        self.ctx = ctx;
        set.anchored(value, &mut self.anchored);
        let digits = value.iter().filter(|b| b.is_ascii_digit()).count();
        // Candidates: key hits, anchored, and the signatures that need neither (by scope and digits).
        let mut cand = std::mem::take(&mut self.cand);
        cand.clear();
        cand.resize(words, 0);
        set.index.free(loc.scope, value, digits, &mut cand, &mut self.seen);
        for ((c, k), a) in cand.iter_mut().zip(&self.keyhit).zip(&self.anchored) {
            *c |= k | a;
        }
        let mut own_ip_checked = false;
        let mut matched_any = false;
        let mut cands = std::mem::take(&mut self.cands);
        cands.clear();
        let mut spans = std::mem::take(&mut self.spans);
        for pass in 0..2 {
            // Pass 1: fallback signatures, only when nothing specific matched.
            if pass == 1 && matched_any {
                break;
            }
            for si in ones(&cand) {
                let Some(sig) = set.sigs.get(si) else { continue };
                if sig.fallback != (pass == 1) || !sig.in_scope(loc.scope) {
                    continue;
                }
                let key_hit = bit(&self.keyhit, si);
                if sig.key_required && !key_hit {
                    continue;
                }
                if sig.has_anchors && !bit(&self.anchored, si) {
                    continue;
                }
                if digits < usize::from(sig.digits_min) {
                    continue;
                }
                let excluded = key.is_some() && bit(&self.excl, si);
                if excluded && !key_hit {
                    continue;
                }
                let mut conf = sig.confidence;
                if key_hit {
                    conf += sig.key_boost;
                }
                if key.is_some() && bit(&self.ctx, si) {
                    conf += 0.05;
                }
                let conf = conf.min(1.0);
                if conf < sig.min_confidence {
                    continue;
                }
                self.counts.regex_runs += 1;
                let max = self.limits.max_matches_per_value;
                // (whole match, value): the value is group 1 when the pattern has one. Without groups the
                // plain search is used, which skips capture bookkeeping (most patterns, most values).
                spans.clear();
                if sig.has_group {
                    for caps in sig.regex.captures_iter(value).take(max) {
                        let Some(m) = caps.get(1).or_else(|| caps.get(0)) else { continue };
                        let whole = caps.get(0).map_or((m.start(), m.end()), |w| (w.start(), w.end()));
                        spans.push((whole, (m.start(), m.end())));
                    }
                } else {
                    spans.extend(
                        sig.regex.find_iter(value).take(max).map(|m| ((m.start(), m.end()), (m.start(), m.end()))),
                    );
                }
                for &(whole, (ms, me)) in &spans {
                    let v = value.get(ms..me).unwrap_or(&[]);
                    if v.is_empty() {
                        continue;
                    }
                    if let Some(val) = sig.validator
                        && !val.check(v)
                    {
                        continue;
                    }
                    // Digits inside an identifier are the identifier's: the last group of a UUID in a
                    // request id passes the Aadhaar checksum one time in ten, an order number `ORD-4111…`
                    // is no card. Unless the key names the type.
                    if sig.digits_min > 0 && !key_hit && inside_larger_token(value, ms, me) {
                        self.counts.inside_token += 1;
                        continue;
                    }
                    if sig.ty == "ip_address" {
                        own_ip_checked = true;
                        if self.is_own_ip(v) {
                            continue;
                        }
                    }
                    // `scheme://user:secret@host` is a credential, not an email `secret@host`.
                    let before = value.get(..ms).unwrap_or(&[]);
                    if sig.ty == "email" && before.ends_with(b":") && !before.ends_with(b"mailto:") {
                        continue;
                    }
                    matched_any = true;
                    cands.push(Cand { sig: si as u16, outer: whole, inner: (ms, me), conf });
                }
            }
        }
        self.cand = cand;
        self.spans = spans;
        // A match lying inside a longer match of another type is explained by it (`user:secret@host` in a
        // URL is not an email); keep the outer one only.
        for c in &cands {
            let ty = set.sigs.get(usize::from(c.sig)).map_or("", |s| s.ty.as_str());
            let inside = cands.iter().any(|d| {
                d.outer.0 <= c.outer.0
                    && c.outer.1 <= d.outer.1
                    && d.outer.1 - d.outer.0 > c.outer.1 - c.outer.0
                    && set.sigs.get(usize::from(d.sig)).is_some_and(|s| s.ty != ty)
            });
            if !inside {
                hits.push(Hit { sig: c.sig, inner: c.inner, conf: c.conf, jwt: ty == "jwt" });
            }
        }
        self.cands = cands;
        own_ip_checked
    }

    /// ORs into `keyhit` the signatures naming key `k` (none of whose exclusions it holds) and, when asked,
    /// sets in `excl` those with an exclusion in it and in `ctx` those with a context word in it. Returns
    /// whether the key is only generic leaf words (or none), so the enclosing key names the data. Answered
    /// from the key cache when `k` was seen before: keys repeat in every element of every array.
    fn key_verdict(
        &mut self,
        set: &SignatureSet,
        k: &[u8],
        keyhit: &mut [u64],
        words: Option<(&mut [u64], &mut [u64])>,
    ) -> bool {
        if self.key_cache.is_empty() {
            self.key_cache.resize_with(KEY_CACHE_SLOTS, CachedKey::default);
        }
        let found = if k.len() <= KEY_CACHE_MAX_KEY && set.index.words <= KEY_CACHE_MAX_WORDS {
            way2(&mut self.key_cache, self.hasher.hash_one(k), |c| c.generation == set.generation && c.key == k)
        } else {
            None
        };
        let cacheable = found.is_some();
        let slot = found.map_or(0, |(s, _)| s);
        if let Some((_, false)) = found
            && let Some(c) = self.key_cache.get_mut(slot)
        {
            c.generation = set.generation;
            c.key.clear();
            c.key.extend_from_slice(k);
            Self::compute_key(set, k, &mut self.kw, c);
        }
        let mut scratch = CachedKey::default();
        let c = match self.key_cache.get(slot).filter(|_| cacheable) {
            Some(c) => c,
            None => {
                Self::compute_key(set, k, &mut self.kw, &mut scratch);
                &scratch
            }
        };
        for (o, h) in keyhit.iter_mut().zip(&c.keyhit) {
            *o |= h;
        }
        if let Some((excl, ctx)) = words {
            for (o, x) in excl.iter_mut().zip(&c.excl) {
                *o = *x;
            }
            for (o, x) in ctx.iter_mut().zip(&c.ctx) {
                *o = *x;
            }
        }
        c.generic
    }

    fn compute_key(set: &SignatureSet, k: &[u8], kw: &mut KeyWords, c: &mut CachedKey) {
        let words = set.index.words;
        kw.split(k);
        for m in [&mut c.keyhit, &mut c.excl, &mut c.ctx] {
            m.clear();
            m.resize(words, 0);
        }
        set.key_hits(kw, &mut c.keyhit);
        for &si in &set.index.with_exclusions {
            if set.sigs.get(usize::from(si)).is_some_and(|s| s.exclude_keys.iter().any(|x| kw.contains_seq(x))) {
                set_bit(&mut c.excl, usize::from(si));
            }
        }
        for &si in &set.index.with_context {
            if set.sigs.get(usize::from(si)).is_some_and(|s| s.context.iter().any(|w| kw.contains_word(w))) {
                set_bit(&mut c.ctx, usize::from(si));
            }
        }
        c.generic = kw.is_empty() || kw.iter().all(|w| GENERIC_LEAF.contains(&w));
    }

    fn is_own_ip(&self, v: &[u8]) -> bool {
        let Ok(ip) = std::str::from_utf8(v).unwrap_or("").parse::<IpAddr>() else { return false };
        self.own_ips.contains(&Some(ip))
    }
}

/// The cache entry for hash `h` in a 2-way set-associative table (`slots` pairs of ways, most recent first):
/// `(index, true)` for the entry `hit` accepts, moved to its set's first way; else `(index, false)` for the
/// set's least recently used entry, moved there to be overwritten. None for an empty table.
fn way2<T>(slots: &mut [T], h: u64, hit: impl Fn(&T) -> bool) -> Option<(usize, bool)> {
    let sets = slots.len() / 2;
    if sets == 0 {
        return None;
    }
    // The largest power of two of sets in the table, so the set is a mask, not a 64-bit division (a
    // division per lookup, millions of lookups); a table of another size leaves its last slots unused.
    let mask = (1usize << (usize::BITS - 1 - sets.leading_zeros())) - 1;
    let i = (h as usize & mask) * 2;
    if hit(slots.get(i)?) {
        return Some((i, true));
    }
    let second = hit(slots.get(i + 1)?);
    slots.swap(i, i + 1);
    Some((i, second))
}

/// A finding of one value as classified (and cached): the signature, the value's span, the confidence.
#[derive(Copy, Clone, Debug)]
struct Hit {
    sig: u16,
    inner: (usize, usize),
    conf: f32,
    /// The signature's type is `jwt` (its claims are walked too).
    jwt: bool,
}

/// One classified value: everything the verdict depends on, and the verdict.
#[derive(Default)]
struct CachedHits {
    /// Hash of `id`, compared first.
    hash: u64,
    generation: u64,
    /// The flow addresses, when the verdict depended on them (an address was matched).
    own_ips: Option<[Option<IpAddr>; 2]>,
    /// Scope, key, enclosing key and value, as built by `value_slot`.
    id: Vec<u8>,
    hits: Vec<Hit>,
}

/// A validated match before overlap resolution: whole-match and value (group 1) spans.
struct Cand {
    sig: u16,
    outer: (usize, usize),
    inner: (usize, usize),
    conf: f32,
}

/// Which body of the transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BodyLoc {
    Request,
    Response,
}

/// `prefix` followed by the path as [`json::render_path`] writes it, in one string; plain keys (the common
/// case) are copied as they are, without the per-key conversion.
fn render_field(prefix: &str, body: &[u8], path: &[Seg]) -> String {
    let mut out = String::with_capacity(prefix.len() + 32);
    out.push_str(prefix);
    out.push('$');
    for s in path {
        match *s {
            Seg::Key(a, b) => {
                let raw = body.get(a..b).unwrap_or(&[]);
                let plain = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-';
                if !raw.is_empty()
                    && raw.len() <= 64
                    && raw.iter().all(plain)
                    && let Ok(k) = std::str::from_utf8(raw)
                {
                    out.push('.');
                    out.push_str(k);
                } else {
                    let mut one = String::new();
                    json::render_path(body, std::slice::from_ref(s), &mut one);
                    out.push_str(one.get(1..).unwrap_or(""));
                }
            }
            Seg::NoKey => {}
            Seg::Index(k) => {
                use std::fmt::Write as _;
                let _ = write!(out, "[{k}]");
            }
        }
    }
    out
}

/// The innermost object key of a JSON path, and the one above it.
fn keys_of<'a>(body: &'a [u8], p: &[Seg]) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
    let mut it = p.iter().rev().filter_map(|s| match *s {
        Seg::Key(a, b) => body.get(a..b),
        _ => None,
    });
    (it.next(), it.next())
}

/// Media and archive types, or a body whose first 512 bytes hold NUL or mostly non-text bytes.
fn is_binary(ct: &str, body: &[u8]) -> bool {
    const TYPES: &[&str] = &[
        "image/",
        "audio/",
        "video/",
        "font/",
        "application/pdf",
        "application/zip",
        "application/octet-stream",
        "application/x-",
    ];
    if TYPES.iter().any(|t| ct.starts_with(t))
        && !ct.contains("x-www-form-urlencoded")
        && !ct.contains("javascript")
        && !ct.contains("json")
    {
        return true;
    }
    let head = body.get(..512).unwrap_or(body);
    let odd = head.iter().filter(|&&b| b < 0x09 || (0x0e..0x20).contains(&b)).count();
    head.contains(&0) || odd * 10 > head.len()
}

/// `key = value`, `key: value`, `"key": "value",` with a plausible key (no spaces, at most 64 bytes).
fn split_kv(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = line.iter().take(66).position(|b| *b == b'=' || *b == b':')?;
    let k = line.get(..i)?.trim_ascii();
    let k = k.strip_prefix(b"export ").unwrap_or(k).trim_matches_quotes();
    if k.is_empty() || !k.iter().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(b)) {
        return None;
    }
    let v = line.get(i + 1..)?.trim_ascii();
    let v = v.strip_suffix(b",").unwrap_or(v).trim_ascii().trim_matches_quotes();
    Some((k, v))
}

trait TrimQuotes {
    fn trim_matches_quotes(&self) -> &Self;
}

impl TrimQuotes for [u8] {
    fn trim_matches_quotes(&self) -> &[u8] {
        let mut s = self;
        while let Some(r) = s.strip_prefix(b"\"").or_else(|| s.strip_prefix(b"'")) {
            s = r;
        }
        while let Some(r) = s.strip_suffix(b"\"").or_else(|| s.strip_suffix(b"'")) {
            s = r;
        }
        s
    }
}

pub fn percent_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => match (b.get(i + 1).and_then(|&x| hex(x)), b.get(i + 2).and_then(|&x| hex(x))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Whether `value[start..end]` is part of a larger identifier-like token: the run of letters, digits, `_`
/// and `-` around it is longer than the match and has a letter in it (a UUID's groups, `req-…`, a hex or
/// base64 id), or is UUID-shaped.
fn inside_larger_token(value: &[u8], start: usize, end: usize) -> bool {
    let tok = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-';
    let head = value.get(..start).unwrap_or(&[]);
    let tail = value.get(end..).unwrap_or(&[]);
    let from = start - head.iter().rev().take_while(|b| tok(b)).count();
    let to = end + tail.iter().take_while(|b| tok(b)).count();
    if from == start && to == end {
        return false;
    }
    let token = value.get(from..to).unwrap_or(&[]);
    let uuid = token.len() == 36
        && token
            .iter()
            .enumerate()
            .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { *b == b'-' } else { b.is_ascii_hexdigit() });
    uuid || token.iter().any(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitive::signatures::{LoadSpec, SignatureSet};

    fn set() -> SignatureSet {
        SignatureSet::load(&LoadSpec { builtin: true, ..LoadSpec::default() }).unwrap()
    }

    /// (type, field, value) found in a JSON body.
    fn json_finds(body: &str) -> Vec<(String, String, String)> {
        let s = set();
        let mut sc = Scanner::new(Limits::default());
        let mut out = Vec::new();
        sc.body(&s, body.as_bytes(), "application/json", BodyLoc::Response, &mut out);
        out.into_iter()
            .map(|f| {
                let ty = s.sigs[usize::from(f.sig)].ty.clone();
                (ty, f.field, String::from_utf8(f.value).unwrap())
            })
            .collect()
    }

    fn types(body: &str) -> Vec<String> {
        let mut t: Vec<String> = json_finds(body).into_iter().map(|x| x.0).collect();
        t.sort();
        t.dedup();
        t
    }

    fn one(key: &str, value: &str) -> Vec<String> {
        types(&format!("{{{}:{}}}", serde_json::json!(key), serde_json::json!(value)))
    }

    #[test]
    fn digits_inside_identifiers_are_no_numbers() {
        // A UUID whose groups are digits (the last passes the Aadhaar checksum), in a request-id field.
        assert_eq!(one("request_id", "9a2c41f8-1234-4567-8901-234123412346"), Vec::<String>::new());
        assert_eq!(one("ref", "12345678-2341-2341-2346-234123412346"), Vec::<String>::new());
        assert_eq!(one("order", "ORD-4111111111111111"), Vec::<String>::new());
        assert_eq!(one("trace", "span_4111-1111-1111-1111"), Vec::<String>::new());
        // The same numbers on their own, or where the key names them, still are.
        assert_eq!(one("aadhaar", "2341 2341 2346"), ["in_aadhaar"]);
        assert_eq!(one("card", "4111-1111-1111-1111"), ["credit_card"]);
        assert_eq!(one("note", "card 4111 1111 1111 1111 on file"), ["credit_card"]);
        assert!(inside_larger_token(b"x-2341-2341-2346", 2, 16));
        assert!(!inside_larger_token(b"(2341-2341-2346)", 1, 15));
        assert!(inside_larger_token(b"12345678-1234-1234-1234-123456789012", 24, 36));
    }

    #[test]
    fn fields_render_as_json_paths_do() {
        let body = br#"{"a":{"b-c_1":[0,{"x y":1,"it's":2,"":3}]},"k":{"\u00e9t\u00e9":4,"LONG0123456789012345678901234567890123456789012345678901234567890123456789":5}}"#;
        let mut n = 0;
        let mut path = Vec::new();
        json::walk(body, 32, 100, &mut path, |p, _| {
            let mut want = String::new();
            json::render_path(body, p, &mut want);
            assert_eq!(render_field("pre#jwt", body, p), format!("pre#jwt{want}"));
            assert_eq!(render_field("", body, p), want);
            n += 1;
            true
        });
        assert_eq!(n, 6);
    }

    #[test]
    fn json_paths_and_types() {
        let f =
            json_finds(r#"{"customer":{"email":"jane.doe@example.com","cards":[{"number":"4242 4242 4242 4242"}]}}"#);
        assert!(f.contains(&("email".into(), "$.customer.email".into(), "jane.doe@example.com".into())), "{f:?}");
        assert!(f.contains(&("credit_card".into(), "$.customer.cards[0].number".into(), "4242 4242 4242 4242".into())));
    }

    #[test]
    fn every_type_positive() {
        assert_eq!(one("card", "4111111111111111"), ["credit_card"]);
        assert_eq!(one("note", "pay with 5555-5555-5555-4444 please"), ["credit_card"]);
        assert_eq!(one("x", "536-22-1234"), ["us_ssn"]);
        assert_eq!(one("ssn", "536221234"), ["us_ssn"]);
        assert_eq!(one("refund_iban", "DE89370400440532013000"), ["iban"]);
        assert_eq!(one("acct", "GB82 WEST 1234 5698 7654 32"), ["iban"]);
        assert_eq!(one("nino", "AB123456C"), ["uk_nino"]);
        assert_eq!(one("dni", "12345678Z"), ["es_dni"]);
        assert_eq!(one("aadhaar", "234123412346"), ["in_aadhaar"]);
        assert_eq!(one("id_doc", "2341 2341 2346"), ["in_aadhaar"]);
        assert_eq!(one("phone", "+1-202-555-0143"), ["phone"]);
        assert_eq!(one("contact", "+44 20 7946 0958"), ["phone"]);
        assert_eq!(one("mobilePhone", "(202) 555-0143"), ["phone"]);
        assert_eq!(one("dateOfBirth", "1985-07-23"), ["date_of_birth"]);
        assert_eq!(one("passport_number", "X1234567"), ["passport_number"]);
        assert_eq!(one("driverLicenseNumber", "D123-4567-8901"), ["driver_licence"]);
        assert_eq!(one("client_ip", "192.168.1.20"), ["ip_address"]);
        assert_eq!(one("remote_addr", "2001:db8::8a2e:370:7334"), ["ip_address"]);
        assert_eq!(one("peer", "203.0.113.9"), ["ip_address"]);
        assert_eq!(one("address_line1", "221B Baker Street"), ["street_address"]);
        assert_eq!(one("street", "Hauptstrasse 12"), ["street_address"]);
        assert_eq!(one("password", "hunter2!"), ["password"]);
        assert_eq!(one("db", "postgres://app:Xk9vQ2pL@db.internal:5432/shop"), ["password"]);
        assert_eq!(one("k", "AKIAIOSFODNN7EXAMPLE"), ["aws_access_key_id"]);
        assert_eq!(one("aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), ["aws_secret_access_key"]);
        assert_eq!(one("k", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"), ["gcp_api_key"]);
        assert_eq!(one("k", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"), ["github_token"]);
        assert_eq!(one("k", "glpat-aBcDeFgHiJ0123456789"), ["gitlab_token"]);
        assert_eq!(one("k", "xoxb-123456789012-abcdefghijKLMN"), ["slack_token"]);
        assert_eq!(one("k", "sk_live_51HExampleExampleExample"), ["stripe_key"]);
        assert_eq!(one("pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA"), ["private_key"]);
        assert_eq!(one("client_secret", "a8F3kQ9zL2mX7pR4tV6w"), ["api_key"]);
        assert_eq!(one("diagnosis_code", "E11.9"), ["diagnosis_code"]);
        assert_eq!(one("email", "j@example.org"), ["email"]);
    }

    #[test]
    fn decoys_negative() {
        for (k, v) in [
            ("card", "4242424242424241"),                     // Luhn fails
            ("card", "1234567812345670"),                     // no issuer
            ("ssn", "000-12-3456"),                           // area 000
            ("ssn", "078-05-1120"),                           // Woolworth
            ("x", "666-12-3456"),                             // area 666
            ("iban", "DE89370400440532013001"),               // check digits
            ("nino", "DA123456C"),                            // bad prefix
            ("dni", "12345678A"),                             // wrong letter
            ("aadhaar", "234123412347"),                      // Verhoeff fails
            ("order_id", "2024-01-15"),                       // a date
            ("phone", "12345"),                               // too short
            ("count", "+12"),                                 // not a phone
            ("public_key_id", "abcdefghijklmnopqrst"),        // `public` is not `lic`, `key id` excluded
            ("compass", "north-north-west"),                  // `pass` inside `compass`
            ("passwordHint", "my dog"),                       // hint excluded
            ("password", "********"),                         // placeholder
            ("version", "10.2.0.1"),                          // version, not an address
            ("email", "logo@2x.png"),                         // asset name
            ("uuid", "8f3a1b2c-1111-4222-8333-123456789012"), // digits in a uuid
            ("dob", "1985-13-45"),                            // not a date
            ("token_type", "Bearer"),
            ("access_token", "short"),
            ("ts", "1705312800000"),
        ] {
            assert_eq!(one(k, v), Vec::<String>::new(), "{k}={v}");
        }
    }

    #[test]
    fn jwt_claims_count() {
        let t = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwiZW1haWwiOiJqYW5lQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJl";
        let f = json_finds(&format!(r#"{{"access_token":"{t}"}}"#));
        let ty: Vec<_> = f.iter().map(|x| (x.0.as_str(), x.1.as_str())).collect();
        assert!(ty.contains(&("jwt", "$.access_token")), "{ty:?}");
        assert!(ty.contains(&("email", "$.access_token#jwt$.email")), "{ty:?}");
        assert!(!ty.iter().any(|x| x.0 == "api_key"), "fallback not used when the JWT matched");
    }

    #[test]
    fn repeated_header_values_come_from_the_cache_with_the_same_findings() {
        let s = set();
        let mut sc = Scanner::new(Limits::default());
        let tx = Transaction {
            has_request: true,
            request_headers: vec![
                ("Authorization".to_owned(), "Basic dXNlcjpwYXNz".to_owned()),
                ("Cookie".to_owned(), "sessionid=a8F3kQ9zL2mX7pR4tV6w; theme=dark".to_owned()),
                ("X-Client-Email".to_owned(), "jane.doe@example.com".to_owned()),
            ]
            .into(),
            ..Transaction::default()
        };
        let key = |f: &Found| (f.sig, f.location, f.field.clone(), f.value.clone());
        let mut first = Vec::new();
        sc.scan_transaction(&s, &tx, &mut first);
        assert!(!first.is_empty());
        assert_eq!(sc.counts.header_cache_hits, 0);
        let mut second = Vec::new();
        sc.scan_transaction(&s, &tx, &mut second);
        assert!(sc.counts.header_cache_hits >= 3, "{:?}", sc.counts);
        assert_eq!(first.iter().map(key).collect::<Vec<_>>(), second.iter().map(key).collect::<Vec<_>>());
        // Another signature set (a reload) never answers from the old one's results.
        let s2 = set();
        let hits = sc.counts.header_cache_hits;
        let mut third = Vec::new();
        sc.scan_transaction(&s2, &tx, &mut third);
        assert_eq!(sc.counts.header_cache_hits, hits);
        assert_eq!(first.len(), third.len());
    }

    #[test]
    fn headers_query_cookies_path_form_text() {
        let s = set();
        let mut sc = Scanner::new(Limits::default());
        let tx = Transaction {
            has_request: true,
            has_response: true,
            method: "POST".into(),
            path: "/v1/users/jane.doe@example.com/cards".into(),
            query_params: vec![("password".into(), "hunter2!".into()), ("page".into(), "2".into())],
            request_headers: vec![
                ("Authorization".to_owned(), "Basic dXNlcjpwYXNz".to_owned()),
                ("Cookie".to_owned(), "sessionid=a8F3kQ9zL2mX7pR4tV6w; theme=dark".to_owned()),
                ("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
            ]
            .into(),
            request_body: b"user=jane&card_number=4111+1111+1111+1111".to_vec(),
            response_headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())].into(),
            response_body: b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nok\n".to_vec(),
            ..Transaction::default()
        };
        let mut out = Vec::new();
        sc.scan_transaction(&s, &tx, &mut out);
        let got: Vec<(String, &str, String)> =
            out.iter().map(|f| (s.sigs[usize::from(f.sig)].ty.clone(), f.location, f.field.clone())).collect();
        for want in [
            ("email", "request.path", "segment[2]"),
            ("password", "request.query", "password"),
            ("basic_auth", "request.header", "authorization"),
            ("session_token", "request.cookie", "sessionid"),
            ("credit_card", "request.body", "card_number"),
            ("aws_secret_access_key", "response.body", "AWS_SECRET_ACCESS_KEY"),
        ] {
            assert!(got.iter().any(|g| (g.0.as_str(), g.1, g.2.as_str()) == want), "{want:?} not in {got:?}");
        }
        assert_eq!(got.len(), 6, "{got:?}");
    }

    #[test]
    fn own_addresses_are_not_reported() {
        let s = set();
        let mut sc = Scanner::new(Limits::default());
        let flow = crate::flow::FlowInfo {
            uid: "C1".into(),
            community_id: String::new(),
            client: "10.0.0.1:5555".parse().unwrap(),
            server: "10.20.3.7:8000".parse().unwrap(),
            encap: crate::decode::Encap::default(),
        };
        let tx = Transaction {
            flow: Some(std::sync::Arc::new(flow)),
            has_request: true,
            request_headers: vec![
                ("Host".to_owned(), "10.20.3.7".to_owned()),
                ("X-Forwarded-For".to_owned(), "203.0.113.9, 10.0.0.1".to_owned()),
            ]
            .into(),
            ..Transaction::default()
        };
        let mut out = Vec::new();
        sc.scan_transaction(&s, &tx, &mut out);
        let vals: Vec<_> = out.iter().map(|f| String::from_utf8_lossy(&f.value).into_owned()).collect();
        assert_eq!(vals, ["203.0.113.9"]);
    }

    /// The value cache answers repeats with what classifying them again gives, and an address matched on
    /// one flow is classified again on another (it may be that flow's own address).
    #[test]
    fn value_cache_repeats_verdicts_and_keeps_flow_addresses_apart() {
        let s = set();
        let key = |f: &Found| (f.sig, f.location, f.field.clone(), f.value.clone(), f.confidence.to_bits());
        let body = br#"{"data":[{"email":"jane.doe@example.com","client_ip":"10.20.3.7","card":"4111111111111111","n":"x"},{"email":"jane.doe@example.com","client_ip":"10.20.3.7","card":"4111111111111111","n":"x"}]}"#;
        let mut fresh = Scanner::new(Limits::default());
        let mut sc = Scanner::new(Limits::default());
        let mut want = Vec::new();
        fresh.body(&s, body, "application/json", BodyLoc::Response, &mut want);
        for round in 0..3 {
            let mut got = Vec::new();
            sc.body(&s, body, "application/json", BodyLoc::Response, &mut got);
            assert_eq!(got.iter().map(key).collect::<Vec<_>>(), want.iter().map(key).collect::<Vec<_>>());
            assert!(sc.counts.value_cache_hits >= 4 * (round * 2 + 1), "{:?}", sc.counts);
        }
        let types = |out: &[Found]| -> Vec<String> {
            let mut t: Vec<String> = out.iter().map(|f| s.sigs[usize::from(f.sig)].ty.clone()).collect();
            t.sort();
            t.dedup();
            t
        };
        assert_eq!(types(&want), ["credit_card", "email", "ip_address"]);
        let on_flow = |server: &str| Transaction {
            flow: Some(std::sync::Arc::new(crate::flow::FlowInfo {
                uid: "C1".into(),
                community_id: String::new(),
                client: "10.0.0.1:5555".parse().unwrap(),
                server: server.parse().unwrap(),
                encap: crate::decode::Encap::default(),
            })),
            has_response: true,
            response_headers: vec![("Content-Type".to_owned(), "application/json".to_owned())].into(),
            response_body: body.to_vec(),
            ..Transaction::default()
        };
        let mut own = Vec::new();
        sc.scan_transaction(&s, &on_flow("10.20.3.7:80"), &mut own);
        assert_eq!(types(&own), ["credit_card", "email"], "the server's own address");
        let mut other = Vec::new();
        sc.scan_transaction(&s, &on_flow("10.9.9.9:80"), &mut other);
        assert_eq!(types(&other), ["credit_card", "email", "ip_address"]);
        let mut own_again = Vec::new();
        sc.scan_transaction(&s, &on_flow("10.20.3.7:80"), &mut own_again);
        assert_eq!(own.iter().map(key).collect::<Vec<_>>(), own_again.iter().map(key).collect::<Vec<_>>());
    }

    /// Keys whose cache slots collide both stay answered (two ways per set), with the same verdicts.
    #[test]
    fn key_cache_holds_colliding_keys() {
        let s = set();
        let mut sc = Scanner::new(Limits::default());
        let keys: Vec<String> = (0..4000).map(|i| format!("field_{i}")).chain(["email".into(), "ssn".into()]).collect();
        let words = s.index.words;
        let verdict = |sc: &mut Scanner, k: &str| {
            let (mut hit, mut excl, mut ctx) = (vec![0u64; words], vec![0u64; words], vec![0u64; words]);
            let g = sc.key_verdict(&s, k.as_bytes(), &mut hit, Some((&mut excl, &mut ctx)));
            (hit, excl, ctx, g)
        };
        let mut uncached = Scanner::new(Limits::default());
        for k in &keys {
            let a = verdict(&mut sc, k);
            let b = verdict(&mut sc, k);
            uncached.key_cache.clear();
            let c = verdict(&mut uncached, k);
            assert_eq!(a, b, "{k}");
            assert_eq!(a, c, "{k}");
        }
        assert!(bit(&verdict(&mut sc, "customerEmail").0, s.sigs.iter().position(|x| x.id == "pii.email").unwrap()));
        assert!(verdict(&mut sc, "number").3 && !verdict(&mut sc, "card_number").3);
        let mut t = vec![0u8; 8];
        for h in 0..64u64 {
            let (i, hit) = way2(&mut t, h, |&x| x == (h % 5) as u8 + 1).unwrap();
            assert!(i % 2 == 0 && i < 8);
            if !hit {
                t[i] = (h % 5) as u8 + 1;
            }
            assert_eq!(way2(&mut t, h, |&x| x == (h % 5) as u8 + 1), Some((i, true)));
        }
    }

    #[test]
    fn caps_bound_work() {
        let s = set();
        let mut sc = Scanner::new(Limits { max_findings: 3, ..Limits::default() });
        let body: String = format!("[{}]", vec!["\"a@example.com\""; 50].join(","));
        let mut out = Vec::new();
        sc.body(&s, body.as_bytes(), "application/json", BodyLoc::Request, &mut out);
        assert_eq!(out.len(), 3);
        assert!(sc.counts.cap_findings > 0);
    }

    #[test]
    fn hostile_bodies_do_not_panic() {
        let s = set();
        let mut sc = Scanner::new(Limits::default());
        let mut out = Vec::new();
        for b in [
            &b"\xff\xfe{\"a\":\"\\u12"[..],
            b"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"4111111111111111\"",
            b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n4111111111111111\r\n--x--",
            b"eyJhbGciOiJub25lIn0.eyJ9.",
            b"%%%%=%%%%&&&==",
        ] {
            for ct in ["application/json", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", ""] {
                sc.body(&s, b, ct, BodyLoc::Request, &mut out);
            }
        }
    }
}
