//! Signature packs: TOML files describing what personal data and secrets look like, compiled into one
//! [`SignatureSet`] (one Aho-Corasick automaton over every anchor, an index of key-name words, one
//! size-limited regex per signature). The built-in packs are compiled into the binary; operator packs come from a directory.
//! [`SharedSignatures`] holds the current set behind an `ArcSwap` so a reload swaps it whole, and a bad pack
//! leaves the old set in place. Format: `signatures/README.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use arc_swap::ArcSwap;
use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::index::{SigIndex, set_bit};
use super::keys::term_words;
use super::redact::Mask;
use super::validators::Validator;

/// The packs shipped in the binary, so the sensor works with no file installed.
pub const BUILTIN_PACKS: &[(&str, &str)] = &[
    ("signatures/pii.toml", include_str!("../../signatures/pii.toml")),
    ("signatures/financial.toml", include_str!("../../signatures/financial.toml")),
    ("signatures/secrets.toml", include_str!("../../signatures/secrets.toml")),
    ("signatures/health.toml", include_str!("../../signatures/health.toml")),
];

/// The directory read for operator packs when `[sensitive] signatures_dir` is not set (skipped if absent).
pub const DEFAULT_DIR: &str = "/etc/mirador/signatures";

/// Compiled regex program size per signature (bytes); operator patterns beyond it are rejected.
pub(super) const REGEX_SIZE_LIMIT: usize = 1 << 20;
pub(super) const REGEX_DFA_SIZE_LIMIT: usize = 2 << 20;
pub(super) const REGEX_NEST_LIMIT: u32 = 64;
/// A pack file larger than this is rejected rather than read.
const MAX_PACK_BYTES: u64 = 4 << 20;

/// A pack could not be loaded: the message names the file, the line and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignatureError(pub String);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Pii,
    Financial,
    Health,
    Credential,
    Secret,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Pii => "pii",
            Category::Financial => "financial",
            Category::Health => "health",
            Category::Credential => "credential",
            Category::Secret => "secret",
        }
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Where a value was seen; signatures can be limited to some of these with `scope`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Header,
    Cookie,
    Query,
    Path,
    Body,
}

impl Scope {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// How a matched value is normalised before hashing, so `4242 4242 …` and `4242-4242-…` correlate.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    #[default]
    None,
    Digits,
    Lowercase,
    Alnum,
}

fn default_confidence() -> f32 {
    0.8
}
fn default_key_boost() -> f32 {
    0.15
}
fn default_min_confidence() -> f32 {
    0.5
}
fn default_mask_prefix() -> usize {
    4
}

/// One `[[signature]]` of a pack, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SigDef {
    id: String,
    name: String,
    r#type: String,
    category: Category,
    #[serde(default)]
    severity: Severity,
    #[serde(default)]
    anchors: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    exclude_keys: Vec<String>,
    #[serde(default)]
    key_required: bool,
    #[serde(default)]
    context: Vec<String>,
    regex: String,
    #[serde(default)]
    validator: Option<String>,
    #[serde(default = "default_confidence")]
    confidence: f32,
    #[serde(default = "default_key_boost")]
    key_boost: f32,
    #[serde(default = "default_min_confidence")]
    min_confidence: f32,
    #[serde(default)]
    digits_min: u8,
    #[serde(default)]
    scope: Vec<Scope>,
    #[serde(default)]
    mask: Mask,
    #[serde(default = "default_mask_prefix")]
    mask_prefix: usize,
    #[serde(default)]
    normalize: Normalize,
    #[serde(default)]
    fallback: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    kind: String,
    #[serde(default)]
    #[allow(dead_code, reason = "documentation for the operator, not used")]
    name: Option<String>,
    #[serde(default)]
    #[allow(dead_code, reason = "documentation for the operator, not used")]
    description: Option<String>,
    #[serde(default)]
    signature: Vec<toml::Spanned<SigDef>>,
}

/// Only the `kind` key: decides whether a file in the directory is a data pack at all (attack rule packs
/// live in the same directory with `kind = "attack"`).
#[derive(Deserialize)]
struct KindOnly {
    kind: Option<String>,
}

/// A compiled signature.
#[derive(Debug)]
pub struct Signature {
    pub id: String,
    pub name: String,
    pub ty: String,
    pub category: Category,
    pub severity: Severity,
    pub regex: Regex,
    pub validator: Option<Validator>,
    /// Key names, each a word sequence.
    pub keys: Vec<Vec<Vec<u8>>>,
    pub exclude_keys: Vec<Vec<Vec<u8>>>,
    pub key_required: bool,
    pub context: Vec<Vec<u8>>,
    pub has_anchors: bool,
    pub confidence: f32,
    pub key_boost: f32,
    pub min_confidence: f32,
    pub digits_min: u8,
    scope: u8,
    pub mask: Mask,
    pub mask_prefix: usize,
    pub normalize: Normalize,
    /// Only tried when no other signature matched the value (generic key-name rules).
    pub fallback: bool,
    /// The pattern has a capture group (the value is group 1); asked of the regex once, not per value.
    pub has_group: bool,
    /// `file: line` of its definition.
    pub source: String,
}

impl Signature {
    pub fn in_scope(&self, s: Scope) -> bool {
        self.scope & s.bit() != 0
    }
}

/// Every signature in force, compiled.
#[derive(Debug)]
pub struct SignatureSet {
    pub sigs: Vec<Signature>,
    /// Every anchor (case-sensitive), for the per-value check: pattern i belongs to `anchor_sigs[i]`.
    anchor_all: AhoCorasick,
    anchor_sigs: Vec<Vec<u16>>,
    /// Anchors of two bytes or more, leftmost-first so the SIMD prefilter applies: "is any there?".
    anchor_fast: Option<AhoCorasick>,
    /// One-byte anchors (`@`), found with memchr.
    anchor_bytes: Vec<u8>,
    /// First word of a key term → (signature, term index).
    key_index: HashMap<Vec<u8>, Vec<(u16, u16)>>,
    /// Some signature needs digits (cards, SSN, phone…): bodies dense in digits are walked.
    pub digit_sigs: bool,
    /// Which signatures a value can trigger (the scanner's per-value candidate list).
    pub index: SigIndex,
    /// Unique per set built in this process: what the scanner's header cache keys on, so a reloaded set
    /// never answers from the old set's results.
    pub generation: u64,
}

static SET_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A signature set as the analyzer loads it: the packs plus what the operator disabled.
#[derive(Clone, Debug, Default)]
pub struct LoadSpec {
    pub builtin: bool,
    pub dir: Option<PathBuf>,
    /// The directory was named by the operator (a missing one is an error), not the default.
    pub dir_explicit: bool,
    pub disabled: Vec<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
}

/// Parses one pack; `Ok(None)` when it is not a data pack.
fn parse_pack(file: &str, text: &str) -> Result<Option<Vec<(SigDef, usize)>>, SignatureError> {
    let toml_err = |e: toml::de::Error| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        SignatureError(format!("{file}: line {line}: {}", e.message()))
    };
    let kind: KindOnly = toml::from_str(text).map_err(toml_err)?;
    match kind.kind.as_deref() {
        Some("data") => {}
        _ => return Ok(None),
    }
    let pack: PackFile = toml::from_str(text).map_err(toml_err)?;
    debug_assert_eq!(pack.kind, "data");
    Ok(Some(
        pack.signature
            .into_iter()
            .map(|s| (s.span().start, s.into_inner()))
            .map(|(o, s)| (s, line_of(text, o)))
            .collect(),
    ))
}

fn compile(def: SigDef, file: &str, line: usize) -> Result<Signature, SignatureError> {
    let err = |what: String| SignatureError(format!("{file}: line {line}: signature \"{}\": {what}", def.id));
    if def.id.is_empty() || !def.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(err("id must be non-empty letters, digits, '.', '_' or '-'".into()));
    }
    if def.r#type.is_empty() || def.r#type.len() > 64 {
        return Err(err("type must be 1 to 64 characters".into()));
    }
    let regex = RegexBuilder::new(&def.regex)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| err(format!("regex: {e}")))?;
    let validator = match &def.validator {
        None => None,
        Some(v) => Some(
            Validator::from_name(v)
                .ok_or_else(|| err(format!("unknown validator \"{v}\" (known: {})", Validator::NAMES.join(", "))))?,
        ),
    };
    for (name, x) in
        [("confidence", def.confidence), ("key_boost", def.key_boost), ("min_confidence", def.min_confidence)]
    {
        if !(0.0..=1.0).contains(&x) {
            return Err(err(format!("{name} = {x}: must be between 0 and 1")));
        }
    }
    if def.key_required && def.keys.is_empty() {
        return Err(err("key_required needs keys".into()));
    }
    if def.anchors.iter().any(String::is_empty) {
        return Err(err("an anchor is empty".into()));
    }
    let terms = |v: &[String]| -> Result<Vec<Vec<Vec<u8>>>, SignatureError> {
        v.iter()
            .map(|t| {
                let w = term_words(t);
                if w.is_empty() { Err(err(format!("key \"{t}\" has no letters or digits"))) } else { Ok(w) }
            })
            .collect()
    };
    let has_group = regex.captures_len() > 1;
    let scope = if def.scope.is_empty() { 0xff } else { def.scope.iter().fold(0u8, |a, s| a | s.bit()) };
    Ok(Signature {
        keys: terms(&def.keys)?,
        exclude_keys: terms(&def.exclude_keys)?,
        context: def.context.iter().flat_map(|c| term_words(c)).collect(),
        id: def.id,
        name: def.name,
        ty: def.r#type,
        category: def.category,
        severity: def.severity,
        regex,
        validator,
        key_required: def.key_required,
        has_anchors: !def.anchors.is_empty(),
        confidence: def.confidence,
        key_boost: def.key_boost,
        min_confidence: def.min_confidence,
        digits_min: def.digits_min,
        scope,
        mask: def.mask,
        mask_prefix: def.mask_prefix,
        normalize: def.normalize,
        fallback: def.fallback,
        has_group,
        source: format!("{file}: line {line}"),
    })
}

impl SignatureSet {
    /// Compiles the packs `(file name, text)` in order; a later pack may replace an earlier signature by
    /// reusing its id (operator packs override built-ins). `disabled` ids are dropped; an unknown one is an
    /// error (a typo would otherwise silently keep a signature on).
    pub fn from_packs(packs: &[(String, String)], disabled: &[String]) -> Result<SignatureSet, SignatureError> {
        let mut sigs: Vec<Signature> = Vec::new();
        let mut anchors: Vec<(usize, Vec<String>)> = Vec::new();
        for (file, text) in packs {
            let Some(defs) = parse_pack(file, text)? else { continue };
            let mut seen_here: Vec<String> = Vec::new();
            for (def, line) in defs {
                if seen_here.contains(&def.id) {
                    return Err(SignatureError(format!(
                        "{file}: line {line}: signature \"{}\": duplicate id in this pack",
                        def.id
                    )));
                }
                seen_here.push(def.id.clone());
                let a = def.anchors.clone();
                let sig = compile(def, file, line)?;
                if let Some(i) = sigs.iter().position(|s| s.id == sig.id) {
                    sigs.remove(i);
                    anchors.remove(i);
                }
                sigs.push(sig);
                anchors.push((0, a));
            }
        }
        for d in disabled {
            let Some(i) = sigs.iter().position(|s| &s.id == d) else {
                return Err(SignatureError(format!("[sensitive] disabled: no signature has the id \"{d}\"")));
            };
            sigs.remove(i);
            anchors.remove(i);
        }
        if sigs.len() > usize::from(u16::MAX) {
            return Err(SignatureError(format!("{} signatures: at most 65535", sigs.len())));
        }
        // Anchors are exact-case literals: vendor token prefixes have a fixed case (`AKIA`, `ghp_`, `eyJ`), and a
        // case-sensitive set of a few dozen literals is searched with SIMD (Teddy) at memory speed.
        let mut anchor_text: Vec<Vec<u8>> = Vec::new();
        let mut anchor_sigs: Vec<Vec<u16>> = Vec::new();
        for (si, (_, list)) in anchors.iter().enumerate() {
            for a in list {
                let k = a.as_bytes().to_vec();
                match anchor_text.iter().position(|x| *x == k) {
                    Some(p) => {
                        if let Some(v) = anchor_sigs.get_mut(p) {
                            v.push(si as u16);
                        }
                    }
                    None => {
                        anchor_text.push(k);
                        anchor_sigs.push(vec![si as u16]);
                    }
                }
            }
        }
        let ac_err = |e: aho_corasick::BuildError| SignatureError(format!("signature anchors: {e}"));
        let anchor_all = AhoCorasick::builder().build(&anchor_text).map_err(ac_err)?;
        let long: Vec<&Vec<u8>> = anchor_text.iter().filter(|a| a.len() >= 2).collect();
        let anchor_fast = if long.is_empty() {
            None
        } else {
            Some(AhoCorasick::builder().match_kind(MatchKind::LeftmostFirst).build(&long).map_err(ac_err)?)
        };
        let anchor_bytes: Vec<u8> =
            anchor_text.iter().filter(|a| a.len() == 1).filter_map(|a| a.first().copied()).collect();
        let mut key_index: HashMap<Vec<u8>, Vec<(u16, u16)>> = HashMap::new();
        for (si, s) in sigs.iter().enumerate() {
            for (ti, t) in s.keys.iter().enumerate() {
                if let Some(first) = t.first() {
                    key_index.entry(first.clone()).or_default().push((si as u16, ti as u16));
                }
            }
        }
        let digit_sigs = sigs.iter().any(|s| s.digits_min > 0);
        let generation = SET_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let index = SigIndex::build(&sigs, &anchor_text);
        Ok(SignatureSet {
            sigs,
            anchor_all,
            anchor_sigs,
            anchor_fast,
            anchor_bytes,
            key_index,
            digit_sigs,
            index,
            generation,
        })
    }

    /// Any anchor in `hay`.
    pub fn any_anchor(&self, hay: &[u8]) -> bool {
        self.anchor_bytes.iter().any(|&b| memchr::memchr(b, hay).is_some())
            || self.anchor_fast.as_ref().is_some_and(|ac| ac.is_match(hay))
    }

    /// Whether some signature names this key (exclusions ignored: this only decides whether to look closer).
    pub(super) fn key_named(&self, key: &super::keys::KeyWords) -> bool {
        (0..key.len()).any(|i| {
            self.key_index.get(key.word(i)).is_some_and(|cands| {
                cands.iter().any(|&(si, ti)| {
                    self.sigs.get(usize::from(si)).and_then(|s| s.keys.get(usize::from(ti))).is_some_and(|term| {
                        i + term.len() <= key.len()
                            && term.iter().enumerate().all(|(j, w)| key.word(i + j) == w.as_slice())
                    })
                })
            })
        })
    }

    /// Sets in `out` (one bit per signature, [`SigIndex::words`] words) the signatures whose anchor occurs
    /// in `hay`, and clears the others.
    pub fn anchored(&self, hay: &[u8], out: &mut [u64]) {
        out.iter_mut().for_each(|x| *x = 0);
        if !self.index.maybe_anchored(hay) {
            return;
        }
        for m in self.anchor_all.find_overlapping_iter(hay) {
            if let Some(v) = self.anchor_sigs.get(m.pattern().as_usize()) {
                for &s in v {
                    set_bit(out, usize::from(s));
                }
            }
        }
    }

    /// Sets in `out` the signatures one of whose key names is in `key` (and none of whose exclusions is).
    pub fn key_hits(&self, key: &super::keys::KeyWords, out: &mut [u64]) {
        for i in 0..key.len() {
            let Some(cands) = self.key_index.get(key.word(i)) else { continue };
            for &(si, ti) in cands {
                let Some(sig) = self.sigs.get(usize::from(si)) else { continue };
                let Some(term) = sig.keys.get(usize::from(ti)) else { continue };
                let fits = term.iter().enumerate().all(|(j, w)| key.word(i + j) == w.as_slice())
                    && i + term.len() <= key.len();
                if fits && !sig.exclude_keys.iter().any(|x| key.contains_seq(x)) {
                    set_bit(out, usize::from(si));
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Loads the built-in packs (unless off) and every `*.toml` data pack of the directory, in name order.
    pub fn load(spec: &LoadSpec) -> Result<SignatureSet, SignatureError> {
        let mut packs: Vec<(String, String)> = Vec::new();
        if spec.builtin {
            packs.extend(BUILTIN_PACKS.iter().map(|(f, t)| ((*f).to_owned(), (*t).to_owned())));
        }
        if let Some(dir) = &spec.dir {
            packs.extend(read_dir(dir, spec.dir_explicit)?);
        }
        SignatureSet::from_packs(&packs, &spec.disabled)
    }
}

/// The key ending just before the delimiter at `d`: a quoted JSON member name (`"Card Number":`), or a
/// bare name (`card_number=`, `password:`) that starts a line, a pair or a member.
pub(super) fn key_before(hay: &[u8], d: usize) -> Option<&[u8]> {
    let mut before = hay.get(..d)?;
    // `"key" : value`, `KEY = value`
    for _ in 0..4 {
        match before.strip_suffix(b" ").or_else(|| before.strip_suffix(b"\t")) {
            Some(b) => before = b,
            None => break,
        }
    }
    if let Some(inner) = before.strip_suffix(b"\"") {
        // Keys are short: a plain backward loop beats setting up a vector search.
        let mut open = inner.len();
        while open > 0 && inner.len() - open < 64 {
            if inner.get(open - 1) == Some(&b'"') {
                return inner.get(open..).filter(|k| !k.is_empty());
            }
            open -= 1;
        }
        return None;
    }
    let mut s = before.len();
    while s > 0
        && before.len() - s < 64
        && before.get(s - 1).is_some_and(|b| b.is_ascii_alphanumeric() || b"_-.".contains(b))
    {
        s -= 1;
    }
    let starts = s == 0 || before.get(s - 1).is_some_and(|b| b"\n\r\t {,&;?'".contains(b));
    (s < before.len() && starts).then(|| before.get(s..)).flatten()
}

/// An exact fingerprint of a key for the prefilter's key cache: (length + 1 and a hash of the middle, first
/// 8 bytes, last 8 bytes when longer than 8), each word little-endian and zero-padded, so that a key of up to
/// 8 bytes is (length + 1, one masked load, 0). Exact up to 16 bytes; never 0 for a non-empty key, so the
/// empty cache slot matches nothing.
pub(super) fn fingerprint(k: &[u8]) -> (u64, u64, u64) {
    let word = |b: &[u8]| {
        let mut a = [0u8; 8];
        if let Some(dst) = a.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        u64::from_le_bytes(a)
    };
    let n = k.len();
    let head = word(k.get(..8.min(n)).unwrap_or(&[]));
    let tail = if n > 8 { word(k.get(n - 8..).unwrap_or(&[])) } else { 0 };
    let mid = if n > 16 {
        k.get(8..n - 8)
            .unwrap_or(&[])
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
    } else {
        0
    };
    ((n as u64 + 1) ^ (mid << 8), head, tail)
}

fn read_dir(dir: &Path, explicit: bool) -> Result<Vec<(String, String)>, SignatureError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SignatureError(format!("{}: {e}", dir.display()))),
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let name = p.display().to_string();
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        if len > MAX_PACK_BYTES {
            return Err(SignatureError(format!("{name}: {len} bytes, more than the {MAX_PACK_BYTES} a pack may have")));
        }
        let text = std::fs::read_to_string(&p).map_err(|e| SignatureError(format!("{name}: {e}")))?;
        out.push((name, text));
    }
    Ok(out)
}

/// The signature set in force, shared by every worker; [`SharedSignatures::reload`] swaps in a new one.
#[derive(Debug)]
pub struct SharedSignatures {
    current: ArcSwap<SignatureSet>,
    spec: LoadSpec,
}

impl SharedSignatures {
    pub fn load(spec: LoadSpec) -> Result<SharedSignatures, SignatureError> {
        let set = SignatureSet::load(&spec)?;
        Ok(SharedSignatures { current: ArcSwap::from_pointee(set), spec })
    }

    /// The set for one transaction (cheap: no lock, no allocation).
    pub fn current(&self) -> arc_swap::Guard<Arc<SignatureSet>> {
        self.current.load()
    }

    /// Re-reads the packs (for SIGHUP). On error the current set stays in force and the error is returned
    /// for the caller to log; on success returns the number of signatures now active.
    pub fn reload(&self) -> Result<usize, SignatureError> {
        let set = SignatureSet::load(&self.spec)?;
        let n = set.len();
        self.current.store(Arc::new(set));
        tracing::info!(signatures = n, "Sensitive-data signatures reloaded.");
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packs(extra: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> =
            BUILTIN_PACKS.iter().map(|(f, t)| ((*f).to_owned(), (*t).to_owned())).collect();
        v.push(("op.toml".into(), extra.into()));
        v
    }

    #[test]
    fn keys_before_delimiters() {
        let k = |hay: &[u8], d: usize| key_before(hay, d).map(|k| String::from_utf8_lossy(k).into_owned());
        assert_eq!(k(br#"{"Card Number":1}"#, 14).as_deref(), Some("Card Number"));
        assert_eq!(k(b"a=1&card_number=4", 15).as_deref(), Some("card_number"));
        assert_eq!(k(b"PASSWORD = x", 9).as_deref(), Some("PASSWORD"));
        assert_eq!(k(b"\"2024-01-15T08:10\"", 14), None, "inside a string value");
        assert_eq!(k(b"T08:10:00", 6), None, "not at a boundary");
        assert_eq!(k(b":", 0), None);
        assert_eq!(fingerprint(b"email"), fingerprint(b"email"));
        assert_ne!(fingerprint(b"customer_billing_email_x"), fingerprint(b"customer_shipping_mail_x"));
        assert_ne!(fingerprint(b"abcdefgh12345678"), fingerprint(b"abcdefgh12345679"));
    }

    #[test]
    fn builtin_packs_compile() {
        let set = SignatureSet::from_packs(&packs(""), &[]).unwrap();
        assert!(set.len() >= 30, "{}", set.len());
        let mut ids: Vec<_> = set.sigs.iter().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), set.len());
    }

    #[test]
    fn bad_regex_names_file_line_and_id() {
        let pack = "kind = \"data\"\n\n[[signature]]\nid = \"x.bad\"\nname = \"Bad\"\ntype = \"t\"\ncategory = \"pii\"\nregex = \"(unclosed\"\n";
        let e = SignatureSet::from_packs(&packs(pack), &[]).unwrap_err().to_string();
        assert!(e.starts_with("op.toml: line 3: signature \"x.bad\": regex:"), "{e}");
    }

    #[test]
    fn bad_validator_and_unknown_field_and_syntax() {
        let pack = "kind = \"data\"\n[[signature]]\nid = \"x\"\nname = \"X\"\ntype = \"t\"\ncategory = \"pii\"\nregex = \"a\"\nvalidator = \"nope\"\n";
        let e = SignatureSet::from_packs(&packs(pack), &[]).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("unknown validator \"nope\""), "{e}");
        let pack = "kind = \"data\"\n[[signature]]\nid = \"x\"\nname = \"X\"\ntype = \"t\"\ncategory = \"pii\"\nregex = \"a\"\nregexp = \"b\"\n";
        let e = SignatureSet::from_packs(&packs(pack), &[]).unwrap_err().to_string();
        assert!(e.starts_with("op.toml: line ") && e.contains("unknown field `regexp`"), "{e}");
        let e = SignatureSet::from_packs(&packs("kind = \"data\"\n[[signature]\n"), &[]).unwrap_err().to_string();
        assert!(e.starts_with("op.toml: line 2:"), "{e}");
        let pack = "kind = \"data\"\n[[signature]]\nid = \"x\"\nname = \"X\"\ntype = \"t\"\ncategory = \"mood\"\nregex = \"a\"\n";
        let e = SignatureSet::from_packs(&packs(pack), &[]).unwrap_err().to_string();
        assert!(e.contains("unknown variant `mood`"), "{e}");
    }

    #[test]
    fn regex_size_is_limited() {
        let pack = "kind = \"data\"\n[[signature]]\nid = \"x\"\nname = \"X\"\ntype = \"t\"\ncategory = \"pii\"\nregex = \"(?:\\\\w{1000}){1000}\"\n";
        let e = SignatureSet::from_packs(&packs(pack), &[]).unwrap_err().to_string();
        assert!(e.contains("regex:"), "{e}");
    }

    #[test]
    fn attack_packs_are_skipped_and_ids_disabled() {
        let attack = "kind = \"attack\"\n[[rule]]\nid = \"sqli.1\"\n";
        let n = SignatureSet::from_packs(&packs(""), &[]).unwrap().len();
        assert_eq!(SignatureSet::from_packs(&packs(attack), &[]).unwrap().len(), n);
        let set = SignatureSet::from_packs(&packs(""), &["pii.email".into()]).unwrap();
        assert_eq!(set.len(), n - 1);
        let e = SignatureSet::from_packs(&packs(""), &["pii.nope".into()]).unwrap_err().to_string();
        assert!(e.contains("pii.nope"), "{e}");
    }

    #[test]
    fn operator_pack_overrides_by_id() {
        let pack = "kind = \"data\"\n[[signature]]\nid = \"pii.email\"\nname = \"Corp mail\"\ntype = \"email\"\ncategory = \"pii\"\nregex = \"[a-z]+@corp\\\\.example\"\n";
        let base = SignatureSet::from_packs(&packs(""), &[]).unwrap();
        let set = SignatureSet::from_packs(&packs(pack), &[]).unwrap();
        assert_eq!(set.len(), base.len());
        assert_eq!(set.sigs.iter().find(|s| s.id == "pii.email").unwrap().name, "Corp mail");
    }

    #[test]
    fn reload_keeps_old_set_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LoadSpec { builtin: true, dir: Some(dir.path().into()), dir_explicit: true, disabled: vec![] };
        let shared = SharedSignatures::load(spec).unwrap();
        let n = shared.current().len();
        std::fs::write(dir.path().join("bad.toml"), "kind = \"data\"\n[[signature]]\nid = 3\n").unwrap();
        let e = shared.reload().unwrap_err().to_string();
        assert!(e.contains("bad.toml: line 3"), "{e}");
        assert_eq!(shared.current().len(), n);
        std::fs::write(
            dir.path().join("bad.toml"),
            "kind = \"data\"\n[[signature]]\nid = \"corp.emp\"\nname = \"Employee id\"\ntype = \"employee_id\"\ncategory = \"pii\"\nregex = \"EMP-[0-9]{6}\"\nanchors = [\"EMP-\"]\n",
        )
        .unwrap();
        assert_eq!(shared.reload().unwrap(), n + 1);
        let missing =
            LoadSpec { builtin: true, dir: Some("/nonexistent/x".into()), dir_explicit: true, disabled: vec![] };
        assert!(SharedSignatures::load(missing).is_err());
        let default_missing =
            LoadSpec { builtin: true, dir: Some("/nonexistent/x".into()), dir_explicit: false, disabled: vec![] };
        assert!(SharedSignatures::load(default_missing).is_ok());
    }
}
