//! Path templating: one tree per service, one node per path position.
//!
//! A segment becomes a parameter for one of three reasons:
//! - **shape**: integers (signed, decimal), UUIDs, hex ids and hashes, dates, e-mails, long mixed tokens with digits
//!   ([`shape`]); short words such as `v2`, `me`, `oauth2` stay literal;
//! - **cardinality**: a node whose word children are many (`param_min_distinct`) and mostly rare (seen at
//!   most twice) switches to word parameters (`/users/alice`, `/users/bob`, … → `/users/{userId}`); its
//!   *stable* literals (at least `stable_min_hits` and `stable_share_percent` of the node's traffic, such as
//!   `/users/me`) stay literal, the rest re-merge into the parameter with everything learned below them;
//! - **pinning**: a configured or spec template's `{name}` takes any value at its position.
//!
//! Beside a parameter, only a *resource word* ([`resource_word`]: `me`, `findByStatus`, `export-csv`) may
//! stay a literal. Anything else there is a value, however it looks: `true`, `null`, `AAA`, `0.5`,
//! `null%2Cnull`, `__main__`, non-ASCII names; fuzzing clients send exactly these. A value that arrived
//! before the parameter existed re-merges into it when the parameter appears.
//!
//! Bounds: at most `max_literal_children` literals per node (reaching it forces word parameters: counted and
//! logged once), at most `max_nodes_per_service` nodes, `max_segments` segments per path. Transactions that
//! the server answered 404 (or not at all) never create literal nodes or operations: scanners probing for
//! paths that do not exist leave nothing behind.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::op::{OpCaps, Operation};
use super::schema::{Schema, SchemaCaps, SchemaCounters, is_date, is_email, is_uuid};
use super::sketch::{Hll, hash64};

/// The look of one path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Integer,
    Uuid,
    /// Hex of at least 8 characters with a digit (object ids, hashes).
    Hex,
    Date,
    Email,
    /// A long token mixing letters and digits (`pay_3f2a9c…`, base64-ish ids, `SKU-00123`).
    Token,
    /// Longer than any name: an opaque value.
    Long,
    /// Anything else: a word such as `users`, `me`, `v2`.
    Word,
}

/// Byte classes for [`shape`]'s single pass.
const C_DIGIT: u8 = 1;
/// Digits, signs and the decimal point: the only bytes of a number.
const C_NUM: u8 = 2;
const C_HEX: u8 = 4;
/// Letters, digits and `-_.~=%`.
const C_TOKEN: u8 = 8;
const C_UPPER: u8 = 16;
const C_LOWER: u8 = 32;
const C_AT: u8 = 64;
const C_PCT: u8 = 128;

static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut k = 0;
        if c.is_ascii_digit() {
            k |= C_DIGIT | C_NUM;
        }
        if matches!(c, b'-' | b'+' | b'.') {
            k |= C_NUM;
        }
        if c.is_ascii_hexdigit() {
            k |= C_HEX;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'=' | b'%') {
            k |= C_TOKEN;
        }
        if c.is_ascii_uppercase() {
            k |= C_UPPER;
        }
        if c.is_ascii_lowercase() {
            k |= C_LOWER;
        }
        if c == b'@' {
            k |= C_AT;
        }
        if c == b'%' {
            k |= C_PCT;
        }
        t[i] = k;
        i += 1;
    }
    t
};

/// Classifies a raw path segment (percent-encoded `@` counts as `@`). One pass over the bytes gathers
/// what every test needs: this runs for every path segment and every short string value of every body.
pub fn shape(seg: &str) -> Shape {
    let b = seg.as_bytes();
    if b.is_empty() {
        return Shape::Word;
    }
    if b.len() > 96 {
        return Shape::Long;
    }
    let (mut all, mut any, mut digits) = (0xffu8, 0u8, 0usize);
    for c in b {
        let k = BYTE_CLASS[*c as usize];
        all &= k;
        any |= k;
        digits += usize::from(k & C_DIGIT);
    }
    if digits == b.len() {
        return if b.len() <= 20 { Shape::Integer } else { Shape::Token };
    }
    if all & C_NUM != 0 && is_number(b) {
        return if b.len() <= 24 { Shape::Integer } else { Shape::Token };
    }
    if is_uuid(seg) {
        return Shape::Uuid;
    }
    if is_date(b) {
        return Shape::Date;
    }
    if any & C_AT != 0 && is_email(seg) {
        return Shape::Email;
    }
    if any & C_PCT != 0 && seg.contains("%40") && is_email(&seg.replace("%40", "@")) {
        return Shape::Email;
    }
    if b.len() >= 8 && digits > 0 && all & C_HEX != 0 {
        return Shape::Hex;
    }
    if all & C_TOKEN != 0 && b.len() >= 8 {
        let upper = any & C_UPPER != 0;
        let lower = any & C_LOWER != 0;
        if digits >= 3 || (b.len() >= 16 && digits >= 1 && upper && lower) {
            return Shape::Token;
        }
    }
    Shape::Word
}

/// A signed or decimal number (`-17`, `0.5`, `+3`, `-1.25`): never a name. Unsigned integers are
/// handled before; a leading `v` (`v1.2`) is a version, not a number.
fn is_number(b: &[u8]) -> bool {
    let rest = match b.first() {
        Some(b'-' | b'+') => b.get(1..).unwrap_or_default(),
        _ => b,
    };
    let (int, frac) = match rest.iter().position(|c| *c == b'.') {
        Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
        None => (rest, None),
    };
    let all_digits = |x: &[u8]| !x.is_empty() && x.iter().all(u8::is_ascii_digit);
    all_digits(int) && frac.is_none_or(all_digits)
}

/// Words that are values in every API, never resource names.
const VALUE_WORDS: &[&str] = &["true", "false", "null", "nil", "none", "undefined", "nan", "infinity"];

/// A segment that may be a literal beside a parameter: an ASCII identifier starting with a lowercase letter,
/// of letters and digits with inner `-` or `_` (`me`, `v2`, `findByStatus`, `export-csv`, `by_name`), not
/// all capitals, not a value word (`true`, `null`). Everything else at such a position (`AAA`, `0.5`,
/// `null%2Cnull`, `__main__`, `%C2%92`) is a parameter value.
pub fn resource_word(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() <= 64
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
        && !b.windows(2).any(|w| matches!(w, [b'-' | b'_', b'-' | b'_']))
        && !VALUE_WORDS.iter().any(|w| seg.eq_ignore_ascii_case(w))
}

fn is_version(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && matches!(b.first(), Some(b'v' | b'V')) && b.iter().skip(1).all(|c| c.is_ascii_digit() || *c == b'.')
}

fn singular(w: &str) -> String {
    let l = w.len();
    if l > 4 && w.ends_with("ies") {
        format!("{}y", w.get(..l - 3).unwrap_or(w))
    } else if l > 4 && (w.ends_with("sses") || w.ends_with("ches") || w.ends_with("shes") || w.ends_with("xes")) {
        w.get(..l - 2).unwrap_or(w).to_owned()
    } else if l > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        w.get(..l - 1).unwrap_or(w).to_owned()
    } else {
        w.to_owned()
    }
}

/// The name of a parameter following the literal `prev` (`users` → `userId`, `payment-methods` →
/// `paymentMethodId`); `param{index}` when there is no usable literal before it.
pub fn param_name(prev: Option<&str>, index: usize) -> String {
    let usable = |s: &str| {
        !s.is_empty()
            && s.len() <= 40
            && s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            && !is_version(s)
            && shape(s) == Shape::Word
    };
    match prev {
        Some(s) if usable(s) => {
            let parts: Vec<&str> = s.split(['-', '_']).filter(|p| !p.is_empty()).collect();
            let n = parts.len();
            let mut out = String::with_capacity(s.len() + 2);
            for (i, p) in parts.iter().enumerate() {
                let p = p.to_ascii_lowercase();
                let p = if i + 1 == n { singular(&p) } else { p };
                if i == 0 {
                    out.push_str(&p);
                } else {
                    let mut cs = p.chars();
                    if let Some(f) = cs.next() {
                        out.push(f.to_ascii_uppercase());
                        out.push_str(cs.as_str());
                    }
                }
            }
            out.push_str("Id");
            out
        }
        _ => format!("param{index}"),
    }
}

/// Limits of one service's tree (from [`super::Settings`]).
#[derive(Clone, Copy, Debug)]
pub struct TreeCaps {
    pub max_nodes: usize,
    pub max_literal_children: usize,
    pub param_min_distinct: usize,
    pub stable_min_hits: u64,
    pub stable_share_percent: u64,
    pub max_segments: usize,
    pub max_operations: usize,
}

impl Default for TreeCaps {
    fn default() -> Self {
        TreeCaps {
            max_nodes: 4096,
            max_literal_children: 64,
            param_min_distinct: 24,
            stable_min_hits: 5,
            stable_share_percent: 5,
            max_segments: 16,
            max_operations: 1024,
        }
    }
}

/// What the templating counted (cap hits and paths it would not learn).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeCounters {
    /// A node reached `max_literal_children` and was forced to word parameters.
    pub literal_cap_hits: u64,
    /// Nodes not created because the service has `max_nodes_per_service`.
    pub node_cap_hits: u64,
    /// Paths with more than `max_segments` segments (not learned).
    pub depth_cap_hits: u64,
    /// Operations not created because the service has `max_operations_per_service`.
    pub operation_cap_hits: u64,
    /// Transactions answered 404 or not answered whose path is not an existing template (not learned).
    pub not_found_unmatched: u64,
    /// Paths with `.` or `..` segments (not learned: no API path has them after normalisation).
    pub dot_segments: u64,
    /// Nodes switched to word parameters by cardinality.
    pub cardinality_merges: u64,
}

/// One position in the path tree. The node of a complete path holds its operations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Node {
    /// Transactions through this node.
    pub hits: u64,
    /// Hashed with foldhash (seeded per process): looked up for every segment of every path, where SipHash
    /// was the walk's main cost. Nothing depends on the iteration order (views are sorted).
    pub children: HashMap<Box<str>, Node, foldhash::fast::RandomState>,
    /// The parameter at the next position, if any.
    pub param: Option<Box<Node>>,
    /// The parameter's name (param nodes only).
    pub name: Box<str>,
    /// Pinned by configuration or a spec: never merged (literal), takes every value (parameter).
    pub pinned: bool,
    /// Words at the next position are parameter values (cardinality said so).
    pub word_params: bool,
    /// Param nodes: the values seen (types and formats), and how many distinct.
    pub values: Option<Box<Schema>>,
    pub distinct: Option<Box<Hll>>,
    /// Method → operation, for the path ending here.
    pub ops: Vec<(Box<str>, Operation)>,
}

/// A service's tree with its node count.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tree {
    pub root: Node,
    pub nodes: usize,
    pub operations: usize,
}

/// Where a walk ended.
pub struct Found<'a> {
    pub node: &'a mut Node,
    pub template: String,
}

fn stable(c: &Node, total: u64, caps: &TreeCaps) -> bool {
    c.pinned
        || (c.hits >= caps.stable_min_hits
            && c.hits.saturating_mul(100) >= total.saturating_mul(caps.stable_share_percent))
}

fn count_nodes(n: &Node) -> usize {
    1 + n.children.values().map(count_nodes).sum::<usize>() + n.param.as_deref().map_or(0, count_nodes)
}

fn count_ops(n: &Node) -> usize {
    n.ops.len() + n.children.values().map(count_ops).sum::<usize>() + n.param.as_deref().map_or(0, count_ops)
}

impl Node {
    fn param_node(name: &str, pinned: bool) -> Node {
        Node { name: name.into(), pinned, ..Node::default() }
    }

    fn observe_value(&mut self, seg: &str) {
        let s = Schema::from_text(seg, "", false);
        let caps = SchemaCaps::default();
        let mut c = SchemaCounters::default();
        match &mut self.values {
            Some(v) => v.merge(s, &caps, &mut c),
            None => self.values = Some(Box::new(s)),
        }
        self.distinct.get_or_insert_with(Default::default).add_hash(hash64(seg.as_bytes()));
    }

    /// Adds everything `o` learned (a literal being re-merged into a parameter, or a saved tree).
    pub fn absorb(&mut self, o: Node, op_caps: &OpCaps) {
        self.hits += o.hits;
        self.word_params |= o.word_params;
        if let Some(v) = o.values {
            let caps = SchemaCaps::default();
            let mut c = SchemaCounters::default();
            match &mut self.values {
                Some(mine) => mine.merge(*v, &caps, &mut c),
                None => self.values = Some(v),
            }
        }
        if let Some(d) = o.distinct {
            self.distinct.get_or_insert_with(Default::default).merge(&d);
        }
        for (k, c) in o.children {
            match self.children.get_mut(&k) {
                Some(mine) => mine.absorb(c, op_caps),
                None => {
                    self.children.insert(k, c);
                }
            }
        }
        if let Some(p) = o.param {
            match &mut self.param {
                Some(mine) => mine.absorb(*p, op_caps),
                None => self.param = Some(p),
            }
        }
        for (m, op) in o.ops {
            match self.ops.iter_mut().find(|(x, _)| *x == m) {
                Some((_, mine)) => mine.merge(op, op_caps),
                None => self.ops.push((m, op)),
            }
        }
    }

    /// Re-merges literal children into the parameter (created with `name` when absent): which ones, `mode`
    /// says. Pinned literals never move.
    fn fold(&mut self, name: &str, mode: Fold, caps: &TreeCaps, op_caps: &OpCaps) {
        let total = self.hits.max(1);
        let keys: Vec<Box<str>> = self
            .children
            .iter()
            .filter(|(k, c)| {
                !c.pinned
                    && match mode {
                        Fold::All => true,
                        Fold::Unstable => !resource_word(k) || !stable(c, total, caps),
                        Fold::Values => !resource_word(k),
                    }
            })
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        let p = self.param.get_or_insert_with(|| Box::new(Node::param_node(name, false)));
        for k in keys {
            if let Some(c) = self.children.remove(&k) {
                p.observe_value(&k);
                p.absorb(c, op_caps);
            }
        }
    }
}

/// Which literal children [`Node::fold`] moves into the parameter.
#[derive(Clone, Copy)]
enum Fold {
    /// Every unpinned literal (a pinned parameter takes precedence).
    All,
    /// Cardinality: all but stable resource words (`/users/me`).
    Unstable,
    /// A parameter by shape: the literals that are values ([`resource_word`] says no); rare resource words
    /// such as `/orders/export` stay.
    Values,
}

/// Splits a path into segments: empty segments (`//`, a trailing `/`) are dropped.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

enum Step {
    Lit,
    Param,
    NewParam,
    NewLit,
    Stop,
}

impl Tree {
    /// Finds (and, with `learn`, grows) the node of `path`, building its template. `learn` is false for
    /// transactions answered 404 or not answered: they only match what exists (a parameter by shape may
    /// still be created, literals never).
    pub fn walk<'a>(
        &'a mut self,
        path: &str,
        learn: bool,
        caps: &TreeCaps,
        op_caps: &OpCaps,
        counters: &mut TreeCounters,
        on_literal_cap: &dyn Fn(),
    ) -> Option<Found<'a>> {
        let n = segments(path).count();
        if n > caps.max_segments {
            counters.depth_cap_hits += 1;
            return None;
        }
        if segments(path).any(|s| s == "." || s == "..") {
            counters.dot_segments += 1;
            return None;
        }
        let mut template = String::with_capacity(path.len() + 8);
        let mut nodes = self.nodes.max(1);
        let mut node: &mut Node = &mut self.root;
        node.hits += 1;
        let mut prev_lit: Option<&str> = None;
        let mut params = 0usize;
        let mut stopped = false;
        for seg in segments(path) {
            let step = if node.children.contains_key(seg) {
                Step::Lit
            } else if node.param.as_ref().is_some_and(|p| p.pinned) || (node.word_params && node.param.is_some()) {
                Step::Param
            } else if shape(seg) != Shape::Word || node.word_params {
                if node.param.is_some() { Step::Param } else { Step::NewParam }
            } else if node.param.is_some() && !resource_word(seg) {
                Step::Param
            } else if learn {
                Step::NewLit
            } else {
                Step::Stop
            };
            let hint = || param_name(prev_lit, params + 1);
            let step = match step {
                Step::NewParam if nodes >= caps.max_nodes => {
                    counters.node_cap_hits += 1;
                    Step::Stop
                }
                Step::NewParam => {
                    let mut name = hint();
                    if template.contains(&format!("{{{name}}}")) {
                        name = format!("{name}{}", params + 1);
                    }
                    node.param = Some(Box::new(Node::param_node(&name, false)));
                    nodes += 1;
                    // Values that came before the parameter (`/pet/AAA` before `/pet/12`) join it now.
                    let before = count_nodes(node);
                    node.fold(&name, Fold::Values, caps, op_caps);
                    nodes = (nodes + count_nodes(node)).saturating_sub(before);
                    Step::Param
                }
                Step::NewLit if node.children.len() >= caps.max_literal_children => {
                    counters.literal_cap_hits += 1;
                    on_literal_cap();
                    node.word_params = true;
                    let before = count_nodes(node);
                    node.fold(&hint(), Fold::Unstable, caps, op_caps);
                    nodes = (nodes + count_nodes(node)).saturating_sub(before);
                    Step::Param
                }
                Step::NewLit if nodes >= caps.max_nodes => {
                    counters.node_cap_hits += 1;
                    Step::Stop
                }
                Step::NewLit => {
                    node.children.insert(seg.into(), Node::default());
                    nodes += 1;
                    let lits = node.children.values().filter(|c| !c.pinned).count();
                    if lits >= caps.param_min_distinct {
                        let rare = node.children.values().filter(|c| !c.pinned && c.hits <= 2).count();
                        // The new child has no hit yet: it is rare.
                        if rare * 4 >= lits * 3 {
                            counters.cardinality_merges += 1;
                            node.word_params = true;
                            let before = count_nodes(node);
                            node.fold(&hint(), Fold::Unstable, caps, op_caps);
                            nodes = (nodes + count_nodes(node)).saturating_sub(before);
                        }
                    }
                    if node.children.contains_key(seg) {
                        Step::Lit
                    } else if node.param.is_some() {
                        Step::Param
                    } else {
                        Step::Stop
                    }
                }
                s => s,
            };
            match step {
                Step::Lit => {
                    template.push('/');
                    template.push_str(seg);
                    node = node.children.get_mut(seg)?;
                    prev_lit = Some(seg);
                }
                Step::Param => {
                    let p = node.param.as_deref_mut()?;
                    template.push_str("/{");
                    template.push_str(&p.name);
                    template.push('}');
                    p.observe_value(seg);
                    node = p;
                    prev_lit = None;
                    params += 1;
                }
                _ => {
                    stopped = true;
                    break;
                }
            }
            node.hits += 1;
        }
        self.nodes = nodes;
        if stopped {
            if !learn {
                counters.not_found_unmatched += 1;
            }
            return None;
        }
        if template.is_empty() {
            template.push('/');
        }
        Some(Found { node, template })
    }
}

/// One template of a service with its parameters, for output.
pub struct TemplateView<'a> {
    pub template: String,
    /// Path parameters in order: name and the values seen.
    pub params: Vec<(&'a str, Option<&'a Schema>)>,
    /// How sure the templating is (1.0: pinned or every position unambiguous).
    pub confidence: f64,
    pub node: &'a Node,
}

/// A pinned template that cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct BadTemplate(pub String);

/// Checks a template such as `/users/{userId}/orders`: absolute, parameters `{name}` with a name of letters,
/// digits and `_`, no empty, `.` or `..` segments.
pub fn check_template(t: &str) -> Result<Vec<(&str, bool)>, BadTemplate> {
    if !t.starts_with('/') {
        return Err(BadTemplate(format!("\"{}\" does not start with '/'", t.escape_debug())));
    }
    let mut out = Vec::new();
    for seg in segments(t) {
        if seg == "." || seg == ".." {
            return Err(BadTemplate(format!("\"{}\" has a '{seg}' segment", t.escape_debug())));
        }
        if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if inner.is_empty()
                || !inner.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
            {
                return Err(BadTemplate(format!(
                    "\"{}\": bad parameter name \"{}\"",
                    t.escape_debug(),
                    inner.escape_debug()
                )));
            }
            out.push((inner, true));
        } else if seg.contains(['{', '}']) {
            return Err(BadTemplate(format!(
                "\"{}\": segment \"{}\" mixes text and a parameter (not supported)",
                t.escape_debug(),
                seg.escape_debug()
            )));
        } else {
            out.push((seg, false));
        }
    }
    Ok(out)
}

impl Tree {
    /// Pins a template: its literals never merge, its parameters take every value, and what was learned at a
    /// pinned parameter's position under other literals re-merges into it.
    pub fn pin(&mut self, template: &str, op_caps: &OpCaps) -> Result<(), BadTemplate> {
        let segs = check_template(template)?;
        let caps = TreeCaps::default();
        let mut node = &mut self.root;
        for (seg, is_param) in segs {
            if is_param {
                match &mut node.param {
                    Some(p) => {
                        p.pinned = true;
                        p.name = seg.into();
                    }
                    None => node.param = Some(Box::new(Node::param_node(seg, true))),
                }
                node.fold(seg, Fold::All, &caps, op_caps);
                node = node.param.as_deref_mut().ok_or_else(|| BadTemplate("internal".into()))?;
            } else {
                // A literal beside a pinned parameter stays apart (`/users/me` next to `/users/{id}`).
                node = node.children.entry(seg.into()).or_default();
                node.pinned = true;
            }
        }
        self.recount();
        Ok(())
    }

    pub fn recount(&mut self) {
        self.nodes = count_nodes(&self.root);
        self.operations = count_ops(&self.root);
    }

    /// The node of an exact template (`{…}` segments are the parameter), if it exists.
    pub fn find_mut(&mut self, template: &str) -> Option<&mut Node> {
        let mut node = &mut self.root;
        for seg in segments(template) {
            node = if seg.starts_with('{') && seg.ends_with('}') {
                node.param.as_deref_mut()?
            } else {
                node.children.get_mut(seg)?
            };
        }
        Some(node)
    }

    /// Every node with operations, with its template, sorted by template.
    pub fn views(&self, caps: &TreeCaps) -> Vec<TemplateView<'_>> {
        let mut out = Vec::new();
        let mut params = Vec::new();
        collect(&self.root, String::new(), &mut params, 1.0, caps, &mut out);
        out.sort_by(|a, b| a.template.cmp(&b.template));
        out
    }
}

fn collect<'a>(
    n: &'a Node,
    prefix: String,
    params: &mut Vec<(&'a str, Option<&'a Schema>)>,
    conf: f64,
    caps: &TreeCaps,
    out: &mut Vec<TemplateView<'a>>,
) {
    if !n.ops.is_empty() {
        out.push(TemplateView {
            template: if prefix.is_empty() { "/".into() } else { prefix.clone() },
            params: params.clone(),
            confidence: (conf * 1000.0).round() / 1000.0,
            node: n,
        });
    }
    for (k, c) in &n.children {
        // A literal beside a parameter is the less certain call (`/users/me` next to `/users/{userId}`).
        let lc = if n.param.is_some() && !c.pinned { 0.9 } else { 1.0 };
        collect(c, format!("{prefix}/{k}"), params, conf * lc, caps, out);
    }
    if let Some(p) = &n.param {
        let distinct = p.distinct.as_ref().map_or(0, |d| d.estimate()) as f64;
        let pc = if p.pinned {
            1.0
        } else if n.word_params {
            (0.5 + distinct / (4.0 * caps.param_min_distinct.max(1) as f64)).min(0.95)
        } else {
            // By shape: surer with more distinct values.
            (0.8 + distinct / 50.0).min(0.99)
        };
        params.push((&p.name, p.values.as_deref()));
        collect(p, format!("{prefix}/{{{}}}", p.name), params, conf * pc, caps, out);
        params.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classification as first written (one test per pass): [`shape`] must agree with it.
    fn shape_reference(seg: &str) -> Shape {
        let b = seg.as_bytes();
        if b.is_empty() {
            return Shape::Word;
        }
        if b.len() > 96 {
            return Shape::Long;
        }
        let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
        if digits == b.len() {
            return if b.len() <= 20 { Shape::Integer } else { Shape::Token };
        }
        if is_number(b) {
            return if b.len() <= 24 { Shape::Integer } else { Shape::Token };
        }
        if is_uuid(seg) {
            return Shape::Uuid;
        }
        if is_date(b) {
            return Shape::Date;
        }
        if seg.contains('@') && is_email(seg) {
            return Shape::Email;
        }
        if seg.contains("%40") && is_email(&seg.replace("%40", "@")) {
            return Shape::Email;
        }
        if b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
            return Shape::Hex;
        }
        let tokenish =
            b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'=' | b'%'));
        if tokenish && b.len() >= 8 {
            let upper = b.iter().any(u8::is_ascii_uppercase);
            let lower = b.iter().any(u8::is_ascii_lowercase);
            if digits >= 3 || (b.len() >= 16 && digits >= 1 && upper && lower) {
                return Shape::Token;
            }
        }
        Shape::Word
    }

    proptest::proptest! {
        #[test]
        fn shape_matches_the_reference(s in "[-+.0-9a-fA-Z_~=%@xyz:/ \u{e9}]{0,40}") {
            proptest::prop_assert_eq!(shape(&s), shape_reference(&s));
        }
    }

    #[test]
    fn shape_matches_the_reference_on_samples() {
        for s in [
            "",
            "123",
            "-17",
            "+3",
            "0.5",
            "1.2.3",
            "-",
            ".",
            "v1.2",
            "123e4567-e89b-12d3-a456-426614174000",
            "2024-01-02",
            "a@b.example",
            "a%40b.example",
            "deadbeef1",
            "deadbeef",
            "SKU-00123",
            "AbCdEfGh12345678",
            "users",
            "x".repeat(97).as_str(),
            "9".repeat(21).as_str(),
            "-".repeat(30).as_str(),
            "%4",
            "a%40",
        ] {
            assert_eq!(shape(s), shape_reference(s), "{s}");
        }
    }

    fn learn(tree: &mut Tree, path: &str) -> Option<String> {
        learn_status(tree, path, true)
    }

    fn learn_status(tree: &mut Tree, path: &str, ok: bool) -> Option<String> {
        let mut c = TreeCounters::default();
        let f = tree.walk(path, ok, &TreeCaps::default(), &OpCaps::default(), &mut c, &|| {})?;
        if ok && f.node.ops.is_empty() {
            f.node.ops.push(("GET".into(), Operation::default()));
        }
        Some(f.template)
    }

    fn templates(tree: &Tree) -> Vec<String> {
        tree.views(&TreeCaps::default()).into_iter().map(|v| v.template).collect()
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("123"), Shape::Integer);
        assert_eq!(shape("123e4567-e89b-12d3-a456-426614174000"), Shape::Uuid);
        assert_eq!(shape("5f2b9c0e1a3d4e5f6a7b8c9d"), Shape::Hex);
        assert_eq!(shape("2024-01-31"), Shape::Date);
        assert_eq!(shape("alice%40example.com"), Shape::Email);
        assert_eq!(shape("pay_0f3a9c2b71d4e8a6"), Shape::Token);
        assert_eq!(shape("SKU-00123"), Shape::Token);
        for w in ["users", "me", "v1", "v2", "oauth2", "sha256", "iso8601", "payment-methods", "deadbeef", "2fa"] {
            assert_eq!(shape(w), Shape::Word, "{w}");
        }
    }

    #[test]
    fn signed_and_decimal_numbers_are_integers() {
        for v in ["-1826", "-9223372036854775808", "+3", "0.5", "-1.25"] {
            assert_eq!(shape(v), Shape::Integer, "{v}");
        }
        for w in ["v1.2", "-", ".", "1.", ".5", "1.2.3"] {
            assert_ne!(shape(w), Shape::Integer, "{w}");
        }
    }

    #[test]
    fn resource_words() {
        for w in ["me", "v2", "findByStatus", "createWithArray", "export-csv", "by_name", "oauth2"] {
            assert!(resource_word(w), "{w}");
        }
        for v in [
            "AAA",
            "Alice",
            "true",
            "null",
            "False",
            "null%2Cnull",
            "__main__",
            "_x",
            "x-",
            "a--b",
            "%C2%92",
            "é",
            "0.5",
            "",
        ] {
            assert!(!resource_word(v), "{v}");
        }
    }

    /// What a fuzzing client (schemathesis, invalid data) puts where the spec has a parameter.
    const FUZZED: &[&str] = &[
        "AAA",
        "null",
        "true",
        "false",
        "0.5",
        "null%2Cnull",
        "-1826",
        "%C2%92",
        "X%C2%B2",
        "__main__",
        "a%20b",
        "ZZ9",
    ];

    #[test]
    fn fuzzed_values_join_an_existing_parameter() {
        let mut t = Tree::default();
        for i in 0..10 {
            learn(&mut t, &format!("/pet/{i}"));
            learn(&mut t, &format!("/posts/{i}/comments"));
            learn(&mut t, "/pet/findByStatus");
        }
        for v in FUZZED {
            assert_eq!(learn(&mut t, &format!("/pet/{v}")).unwrap(), "/pet/{petId}", "{v}");
            assert_eq!(learn(&mut t, &format!("/posts/{v}/comments")).unwrap(), "/posts/{postId}/comments", "{v}");
        }
        assert_eq!(templates(&t), ["/pet/findByStatus", "/pet/{petId}", "/posts/{postId}/comments"]);
    }

    #[test]
    fn fuzzed_values_seen_first_re_merge_when_the_parameter_appears() {
        let mut t = Tree::default();
        learn(&mut t, "/pet/findByStatus");
        for v in FUZZED {
            // No parameter yet: a literal for now (`-1826` and `0.5` are numbers: a parameter at once).
            learn(&mut t, &format!("/pet/{v}"));
            learn(&mut t, &format!("/posts/{v}/comments"));
        }
        learn(&mut t, "/pet/12");
        learn(&mut t, "/posts/12/comments");
        assert_eq!(templates(&t), ["/pet/findByStatus", "/pet/{petId}", "/posts/{postId}/comments"]);
        // Everything learned under the values is in the parameter now.
        assert_eq!(t.find_mut("/posts/{postId}/comments").unwrap().hits, FUZZED.len() as u64 + 1);
    }

    #[test]
    fn fuzzed_values_never_stay_beside_a_cardinality_parameter() {
        // Usernames are words: cardinality makes the parameter; junk beside it never stays, even when hit
        // often, and a stable resource word does.
        let mut t = Tree::default();
        for _ in 0..20 {
            learn(&mut t, "/user/login");
            learn(&mut t, "/user/AAA");
            learn(&mut t, "/user/null");
        }
        for i in 0..40 {
            learn(&mut t, &format!("/user/name{}x", char::from(b'a' + (i % 26) as u8).to_string().repeat(1 + i / 26)));
        }
        assert_eq!(templates(&t), ["/user/login", "/user/{userId}"]);
        assert_eq!(learn(&mut t, "/user/__main__").unwrap(), "/user/{userId}");
    }

    #[test]
    fn names() {
        assert_eq!(param_name(Some("users"), 1), "userId");
        assert_eq!(param_name(Some("payment-methods"), 1), "paymentMethodId");
        assert_eq!(param_name(Some("categories"), 1), "categoryId");
        assert_eq!(param_name(Some("addresses"), 1), "addressId");
        assert_eq!(param_name(Some("status"), 1), "statusId");
        assert_eq!(param_name(Some("v1"), 2), "param2");
        assert_eq!(param_name(None, 3), "param3");
    }

    #[test]
    fn ids_by_shape_and_nested() {
        let mut t = Tree::default();
        assert_eq!(
            learn(&mut t, "/users/42/orders/123e4567-e89b-12d3-a456-426614174000").unwrap(),
            "/users/{userId}/orders/{orderId}"
        );
        assert_eq!(
            learn(&mut t, "/users/7/orders/9b2e4567-e89b-12d3-a456-426614174001").unwrap(),
            "/users/{userId}/orders/{orderId}"
        );
        assert_eq!(learn(&mut t, "/").unwrap(), "/");
        assert_eq!(templates(&t), ["/", "/users/{userId}/orders/{orderId}"]);
    }

    #[test]
    fn me_stays_literal_beside_ids() {
        let mut t = Tree::default();
        for i in 0..500 {
            learn(&mut t, &format!("/users/{i}"));
            if i % 3 == 0 {
                assert_eq!(learn(&mut t, "/users/me").unwrap(), "/users/me");
            }
        }
        assert_eq!(templates(&t), ["/users/me", "/users/{userId}"]);
    }

    #[test]
    fn versions_stay_literal() {
        let mut t = Tree::default();
        for i in 0..200 {
            learn(&mut t, &format!("/v1/items/{i}"));
            learn(&mut t, &format!("/v2/items/{i}"));
        }
        assert_eq!(templates(&t), ["/v1/items/{itemId}", "/v2/items/{itemId}"]);
    }

    #[test]
    fn word_ids_merge_by_cardinality() {
        let names = [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
            "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "xavier", "yolanda", "zoe", "adam",
            "bella", "chris", "diana", "ethan", "fiona", "george", "hannah",
        ];
        let mut t = Tree::default();
        for _ in 0..20 {
            learn(&mut t, "/users/me");
        }
        for n in names {
            learn(&mut t, &format!("/users/{n}"));
            learn(&mut t, &format!("/users/{n}/orders"));
        }
        assert_eq!(templates(&t), ["/users/me", "/users/{userId}", "/users/{userId}/orders"]);
        // Later names go straight to the parameter.
        assert_eq!(learn(&mut t, "/users/quentin").unwrap(), "/users/{userId}");
        // Counts re-merged: every name's hit is in the parameter.
        let n = t.find_mut("/users/{userId}").unwrap();
        assert!(n.hits >= names.len() as u64 * 2);
    }

    #[test]
    fn few_resources_stay_literal() {
        let mut t = Tree::default();
        for r in ["users", "orders", "products", "cart", "search", "auth", "payments", "refunds"] {
            for _ in 0..3 {
                assert_eq!(learn(&mut t, &format!("/api/v1/{r}")).unwrap(), format!("/api/v1/{r}"));
            }
        }
    }

    #[test]
    fn not_found_creates_nothing() {
        let mut t = Tree::default();
        learn(&mut t, "/api/v1/users/1");
        for p in ["/.env", "/wp-login.php", "/api/v1/admin/users/export", "/api/v0/users/1"] {
            assert_eq!(learn_status(&mut t, p, false), None);
        }
        // A 404 on an existing template still matches it.
        assert_eq!(learn_status(&mut t, "/api/v1/users/2099", false).unwrap(), "/api/v1/users/{userId}");
        assert_eq!(templates(&t), ["/api/v1/users/{userId}"]);
    }

    #[test]
    fn random_path_scanner_stays_bounded() {
        let mut t = Tree::default();
        let mut rng = crate::synth::Rng(7);
        let caps = TreeCaps::default();
        for i in 0..100_000u64 {
            // Random words and tokens, 1 to 20 segments, every one answered 200 (a catch-all server).
            let n = 1 + rng.below(20);
            let mut p = String::new();
            for _ in 0..n {
                let len = 1 + rng.below(12);
                p.push('/');
                for _ in 0..len {
                    let c = b"abcdefghijklmnopqrstuvwxyz0123456789-_"[rng.below(38) as usize];
                    p.push(c as char);
                }
            }
            let mut c = TreeCounters::default();
            let _ = t.walk(&p, true, &caps, &OpCaps::default(), &mut c, &|| {});
            if i % 10_000 == 0 {
                assert!(count_nodes(&t.root) <= caps.max_nodes + 1);
            }
        }
        assert!(t.nodes <= caps.max_nodes + 1, "{} nodes", t.nodes);
        assert_eq!(count_nodes(&t.root), t.nodes.max(1));
        assert!(t.root.children.len() <= caps.max_literal_children);
    }

    #[test]
    fn pinned_templates_win() {
        let mut t = Tree::default();
        for n in ["alice", "bob"] {
            learn(&mut t, &format!("/people/{n}"));
        }
        t.pin("/people/{personName}", &OpCaps::default()).unwrap();
        assert_eq!(learn(&mut t, "/people/carol").unwrap(), "/people/{personName}");
        assert_eq!(templates(&t), ["/people/{personName}"]);
        t.pin("/files/{path}/meta", &OpCaps::default()).unwrap();
        assert_eq!(learn(&mut t, "/files/readme/meta").unwrap(), "/files/{path}/meta");
        assert!(check_template("users").is_err());
        assert!(check_template("/a/{}").is_err());
        assert!(check_template("/a/x{y}").is_err());
        assert!(check_template("/a/../b").is_err());
    }
}
