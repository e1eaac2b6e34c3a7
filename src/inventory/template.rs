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

use super::evidence::Exchange;
use super::evidence::same_shape;
use super::op::{OpCaps, Operation};
use super::schema::{Schema, SchemaCaps, SchemaCounters};
use super::segment::{
    Shape, alias_word, credential_word, digit_pattern, is_version, param_name, resource_word, secret_like, shape,
    value_word,
};
use super::sketch::{Hll, hash64};

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
    /// The shape of the first successful read answered here ([`Exchange::response_shape`]): siblings
    /// answered with one shape are values of one parameter, with different shapes separate resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape: Vec<u32>,
    /// Param nodes: why this position is a parameter ([`Evidence`] bits), for the template's confidence.
    #[serde(default)]
    pub evidence: u8,
}

/// Why a position became a parameter (bits of [`Node::evidence`]).
pub struct Evidence;

impl Evidence {
    pub const SHAPE: u8 = 1;
    pub const CARDINALITY: u8 = 2;
    /// The exchange named the value as an id (a JSON id field, `Location:`).
    pub const EXCHANGE: u8 = 4;
    /// The literal before it is a collection: it has a parameter elsewhere in the service.
    pub const COLLECTION: u8 = 8;
    /// Siblings share a word+digit pattern (`red1`, `block3`).
    pub const PATTERN: u8 = 16;
    /// Siblings lead to the same next literal (`/projects/a/boards`, `/projects/b/boards`).
    pub const STRUCTURE: u8 = 32;
    /// Siblings answer reads with one response shape.
    pub const RESPONSE: u8 = 64;
    /// A secret or personal value: never a literal.
    pub const SECRET: u8 = 128;
}

/// A service's tree with its node count.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tree {
    pub root: Node,
    pub nodes: usize,
    pub operations: usize,
    /// Literal words that have a parameter after them somewhere in the tree (`users` in `/users/{userId}`):
    /// the service's collections. Derived from the tree (rebuilt by [`Tree::recount`]), not saved.
    #[serde(skip)]
    pub collections: std::collections::HashSet<Box<str>, foldhash::fast::RandomState>,
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

fn collect_collections(n: &Node, out: &mut std::collections::HashSet<Box<str>, foldhash::fast::RandomState>) {
    for (k, c) in &n.children {
        if c.param.is_some() && !k.is_empty() {
            out.insert(k.clone());
        }
        collect_collections(c, out);
    }
    if let Some(p) = &n.param {
        collect_collections(p, out);
    }
}

/// The response shape of a node, or of its trailing-slash child (`/items/` answers for `items`).
fn node_shape(n: &Node) -> &[u32] {
    if n.shape.is_empty() { n.children.get("").map_or(&[][..], |t| t.shape.as_slice()) } else { &n.shape }
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
    /// says. Pinned literals and the trailing-slash child (`""`) never move.
    fn fold(&mut self, name: &str, mode: &Fold, caps: &TreeCaps, op_caps: &OpCaps) {
        let total = self.hits.max(1);
        let keys: Vec<Box<str>> = self
            .children
            .iter()
            .filter(|(k, c)| {
                !c.pinned
                    && !k.is_empty()
                    && !is_verb(k)
                    && match mode {
                        Fold::All => true,
                        Fold::Unstable => !resource_word(k) || !stable(c, total, caps),
                        // Versions name the API, never a value of it (`/v1.0` beside `/{param1}`).
                        Fold::ValuesAnd(more) => {
                            more.contains(k) || ((!resource_word(k) || secret_like(k)) && !is_version(k))
                        }
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

    /// Sibling literals that the evidence of this exchange says are values of one parameter with `seg`:
    /// the ones sharing its word+digit pattern, leading to the same next literal, or answering reads with the
    /// same response shape. Only user-chosen-looking words ([`value_word`]) are compared.
    fn value_siblings(&self, seg: &str, next: Option<&str>, ex: &Exchange<'_>, last: bool) -> (u8, Vec<Box<str>>) {
        let mut why = 0u8;
        let mut out = Vec::new();
        if !value_word(seg) && digit_pattern(seg).is_none() {
            return (0, out);
        }
        let pattern = digit_pattern(seg);
        let shape = if last { ex.response_shape() } else { None };
        for (k, c) in &self.children {
            if c.pinned || k.is_empty() || &**k == seg || !(value_word(k) || digit_pattern(k).is_some()) {
                continue;
            }
            let mut w = 0u8;
            if pattern.is_some() && digit_pattern(k) == pattern {
                w |= Evidence::PATTERN;
            }
            if let Some(nx) = next
                && !nx.is_empty()
                && c.children.contains_key(nx)
                && value_word(seg)
                && value_word(k)
            {
                w |= Evidence::STRUCTURE;
            }
            if let Some(sh) = shape
                && value_word(seg)
                && value_word(k)
                && c.children.keys().all(|x| x.is_empty())
                && !node_shape(c).is_empty()
                && same_shape(node_shape(c), sh)
            {
                w |= Evidence::RESPONSE;
            }
            if w != 0 {
                why |= w;
                out.push(k.clone());
            }
        }
        (why, out)
    }
}

/// A word segment being placed, with what the walk knows around it.
struct WordCtx<'a> {
    seg: &'a str,
    next: Option<&'a str>,
    /// The last segment that names something (not the trailing-slash one).
    last: bool,
    prev_lit: Option<&'a str>,
    /// Whether siblings may be compared here (see [`Tree::walk`]).
    sibling_pos: bool,
}

type Collections = std::collections::HashSet<Box<str>, foldhash::fast::RandomState>;

impl Node {
    /// What says that the word `w.seg` at this node is a value ([`Evidence`] bits; 0: nothing), and the
    /// sibling literals that are values with it.
    /// `full`: also what needs a scan of the bodies or of the siblings.
    fn word_evidence(
        &self,
        w: &WordCtx<'_>,
        ex: &Exchange<'_>,
        collections: &Collections,
        full: bool,
    ) -> (u8, Vec<Box<str>>) {
        let seg = w.seg;
        let mut why = 0u8;
        if full && ex.names_id(seg) {
            why |= Evidence::EXCHANGE;
        }
        let vw = value_word(seg);
        // Beside a parameter, the evidence that it leads or is written to as the parameter is strong enough
        // for any resource word but the aliases (`me`): random and camelCase ids (`eXRCZZ`, `apimService1`).
        let rw = resource_word(seg) && !alias_word(seg);
        match self.param.as_deref() {
            // The same collection word has a parameter elsewhere (`/v1/users/{userId}`, now `/v2/users/jdoe`).
            None => {
                if vw && w.prev_lit.is_some_and(|l| collections.contains(l)) {
                    why |= Evidence::COLLECTION;
                }
            }
            // Beside this node's own parameter a word is the `/users/me` question; these say "a value":
            Some(p) => {
                // It leads where the parameter leads (`/locations/{locationId}/apis`, now `/locations/lyon/apis`).
                if rw
                    && let Some(nx) = w.next
                    && (((resource_word(nx) || is_verb(nx)) && p.children.contains_key(nx))
                        // ... or to a value where the parameter leads to a parameter (`/{station}/{period}`).
                        || (p.param.is_some() && !p.children.contains_key(nx) && value_word(nx)))
                {
                    why |= Evidence::STRUCTURE;
                }
                // A write to it: PUT, PATCH and DELETE address resources, which ids name.
                if rw && w.last && matches!(ex.method, "PUT" | "PATCH" | "DELETE") {
                    why |= Evidence::EXCHANGE;
                }
                // It answers reads as the parameter does.
                if vw
                    && w.last
                    && let Some(sh) = ex.response_shape()
                    && !p.shape.is_empty()
                    && same_shape(&p.shape, sh)
                {
                    why |= Evidence::RESPONSE;
                }
            }
        }
        if !w.sibling_pos || !full {
            return (why, Vec::new());
        }
        let (sib, with) = self.value_siblings(seg, w.next, ex, w.last);
        (why | sib, with)
    }
}

/// Which literal children [`Node::fold`] moves into the parameter.
enum Fold {
    /// Every unpinned literal (a pinned parameter takes precedence).
    All,
    /// Cardinality: all but stable resource words (`/users/me`).
    Unstable,
    /// A new parameter: the literals that are values ([`resource_word`] says no, or they look like secrets),
    /// and these siblings that the evidence said are values too; rare resource words such as
    /// `/orders/export` stay.
    ValuesAnd(Vec<Box<str>>),
}

/// Splits a path into segments: empty segments (`//`, a trailing `/`) are dropped.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// The segments the tree walks: as [`segments`], plus an empty last segment for a trailing `/`
/// (`/items/` and `/items` are different paths in OpenAPI and in every framework that routes them apart).
///
/// A custom method after a colon (`/artifacts/blue2:getContents`, Google's AIP-136 style) is its own piece
/// (`blue2`, `:getContents`): the id before it is a value like any other, the verb a literal that joins the
/// template without a `/` (`/artifacts/{artifactId}:getContents`).
pub fn wire_segments(path: &str) -> impl Iterator<Item = &str> {
    let trailing = path.len() > 1 && path.ends_with('/') && path.bytes().any(|c| c != b'/');
    segments(path)
        .flat_map(|s| match custom_method(s) {
            Some(i) => [s.get(..i), s.get(i..)],
            None => [Some(s), None],
        })
        .flatten()
        .chain(trailing.then_some(""))
}

/// Where a `:verb` suffix starts in a segment: a lower-case letter after the last colon, then 2 to 40 ASCII
/// letters, after a non-empty id.
fn custom_method(seg: &str) -> Option<usize> {
    let i = seg.rfind(':')?;
    let verb = seg.get(i + 1..)?;
    let ok = i > 0
        && (3..=41).contains(&verb.len())
        && verb.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && verb.bytes().all(|c| c.is_ascii_alphabetic());
    ok.then_some(i)
}

/// A piece that continues the segment before it (a custom method: `:getContents`).
fn is_verb(seg: &str) -> bool {
    seg.starts_with(':')
}

enum Step {
    Lit,
    Param,
    /// A new parameter, why ([`Evidence`] bits), and the sibling literals that join it.
    NewParam(u8, Vec<Box<str>>),
    NewLit,
    Stop,
}

impl Tree {
    /// Finds (and, when `ex.learn`, grows) the node of `path`, building its template. `ex.learn` is false for
    /// transactions the server refused or did not answer (404, 405, 501, none): they only match what exists
    /// (a parameter by shape may still be created, literals never).
    pub fn walk<'a>(
        &'a mut self,
        path: &str,
        ex: &Exchange<'_>,
        caps: &TreeCaps,
        op_caps: &OpCaps,
        counters: &mut TreeCounters,
        on_literal_cap: &dyn Fn(),
    ) -> Option<Found<'a>> {
        let learn = ex.learn;
        let n = wire_segments(path).count();
        if n > caps.max_segments {
            counters.depth_cap_hits += 1;
            return None;
        }
        if segments(path).any(|s| s == "." || s == "..") {
            counters.dot_segments += 1;
            return None;
        }
        // The last segment that names something (a trailing `/` names nothing). The segments are walked
        // from the iterator, not collected: this runs for every transaction, under the inventory's lock.
        let last_named =
            wire_segments(path).enumerate().filter(|(_, s)| !s.is_empty() && !is_verb(s)).last().map(|(i, _)| i);
        let mut segs = wire_segments(path).peekable();
        let mut template = String::with_capacity(path.len() + 8);
        let mut nodes = self.nodes.max(1);
        let Tree { root, collections, .. } = self;
        let mut node: &mut Node = root;
        node.hits += 1;
        let mut prev_lit: Option<&str> = None;
        let mut params = 0usize;
        let mut stopped = false;
        let mut i = 0usize;
        while let Some(seg) = segs.next() {
            let next = segs.peek().copied();
            let first = i == 0;
            // The first segment and versions before any parameter name the API itself: literal unless
            // cardinality says otherwise.
            let name_pos = (first && shape(seg) == Shape::Word && !secret_like(seg))
                || (params == 0 && is_version(seg) && (i <= 1 || seg.starts_with(['v', 'V'])));
            let api_name = name_pos && (node.param.is_none() || is_version(seg));
            // Evidence from siblings needs a resource position: not the one right after the API's name
            // (`/v1/items`, `/v1/warehouses` are different resources whatever they share).
            let sibling_pos = i >= 2 && !prev_lit.is_some_and(is_version);
            let word_ctx = WordCtx { seg, next, last: Some(i) == last_named, prev_lit, sibling_pos };
            let step = if let Some(c) = node.children.get(seg) {
                // A literal that the evidence now names a value re-merges into the parameter
                // (`/projects/website/boards` came before `GET /projects/website` named `website` an id). Young
                // literals weigh everything; older ones beside a parameter only what costs no body scan.
                let open = !c.pinned && !seg.is_empty() && !name_pos;
                let young = open && c.hits < 64 && value_word(seg);
                let beside = open && node.param.is_some() && resource_word(seg) && !alias_word(seg);
                let check = (young || beside).then(|| node.word_evidence(&word_ctx, ex, collections, young));
                match check.filter(|(w, _)| *w != 0) {
                    Some((why, mut with)) => {
                        with.push(seg.into());
                        Step::NewParam(why, with)
                    }
                    None => Step::Lit,
                }
            } else if seg.is_empty() || is_verb(seg) {
                if learn { Step::NewLit } else { Step::Stop }
            } else if node.param.as_ref().is_some_and(|p| p.pinned) || (node.word_params && node.param.is_some()) {
                Step::Param
            } else if api_name {
                if learn { Step::NewLit } else { Step::Stop }
            } else if shape(seg) != Shape::Word || node.word_params {
                if node.param.is_some() {
                    Step::Param
                } else {
                    // Word siblings answering reads as this value does are values too (`/stations/harbour`
                    // seen before `/stations/0`).
                    let with = if sibling_pos && !node.word_params {
                        node.value_siblings(seg, next, ex, Some(i) == last_named).1
                    } else {
                        Vec::new()
                    };
                    Step::NewParam(Evidence::SHAPE, with)
                }
            } else if secret_like(seg)
                || (prev_lit.is_some_and(credential_word) && !credential_word(seg) && !alias_word(seg))
            {
                if node.param.is_some() { Step::Param } else { Step::NewParam(Evidence::SECRET, Vec::new()) }
            } else if node.param.is_some() && !resource_word(seg) {
                Step::Param
            } else {
                // A word: does anything say it is a value?
                let (why, with) = node.word_evidence(&word_ctx, ex, collections, true);
                if why != 0 {
                    if node.param.is_some() && with.is_empty() { Step::Param } else { Step::NewParam(why, with) }
                } else if learn {
                    Step::NewLit
                } else {
                    Step::Stop
                }
            };
            let hint = || param_name(prev_lit, params + 1);
            let step = match step {
                // What the server refused creates nothing, not even a parameter: a scanner's probes
                // (`/schemathesis-probe%5C`, `/.env`) leave no trace in the tree.
                Step::NewParam(..) if !learn => Step::Stop,
                Step::NewParam(..) if node.param.is_none() && nodes >= caps.max_nodes => {
                    counters.node_cap_hits += 1;
                    Step::Stop
                }
                Step::NewParam(why, with) => {
                    if node.param.is_none() {
                        let mut name = hint();
                        if template.contains(&format!("{{{name}}}")) {
                            name = format!("{name}{}", params + 1);
                        }
                        node.param = Some(Box::new(Node::param_node(&name, false)));
                        nodes += 1;
                        if let Some(l) = prev_lit {
                            collections.insert(l.into());
                        }
                    }
                    let name = node.param.as_ref().map(|p| p.name.clone()).unwrap_or_default();
                    // Values that came before the parameter (`/pet/AAA` before `/pet/12`) join it now.
                    let before = count_nodes(node);
                    node.fold(&name, &Fold::ValuesAnd(with), caps, op_caps);
                    nodes = (nodes + count_nodes(node)).saturating_sub(before);
                    if let Some(p) = node.param.as_deref_mut() {
                        p.evidence |= why;
                    }
                    Step::Param
                }
                Step::NewLit
                    if !seg.is_empty() && !is_verb(seg) && node.children.len() >= caps.max_literal_children =>
                {
                    counters.literal_cap_hits += 1;
                    on_literal_cap();
                    node.word_params = true;
                    let before = count_nodes(node);
                    node.fold(&hint(), &Fold::Unstable, caps, op_caps);
                    nodes = (nodes + count_nodes(node)).saturating_sub(before);
                    mark(node, prev_lit, collections, Evidence::CARDINALITY);
                    Step::Param
                }
                Step::NewLit if nodes >= caps.max_nodes => {
                    counters.node_cap_hits += 1;
                    Step::Stop
                }
                Step::NewLit => {
                    node.children.insert(seg.into(), Node::default());
                    nodes += 1;
                    let lits = node.children.iter().filter(|(k, c)| !c.pinned && !k.is_empty()).count();
                    // The first position holds the API's own names (`/login`, `/search`, `/health`): many of
                    // them are no cardinality; only the literal cap turns it into a parameter.
                    if !first && !seg.is_empty() && !is_verb(seg) && lits >= caps.param_min_distinct {
                        let rare = node.children.values().filter(|c| !c.pinned && c.hits <= 2).count();
                        // The new child has no hit yet: it is rare.
                        if rare * 4 >= lits * 3 && !distinct_resources(node) {
                            counters.cardinality_merges += 1;
                            node.word_params = true;
                            let before = count_nodes(node);
                            node.fold(&hint(), &Fold::Unstable, caps, op_caps);
                            nodes = (nodes + count_nodes(node)).saturating_sub(before);
                            mark(node, prev_lit, collections, Evidence::CARDINALITY);
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
                    if !is_verb(seg) {
                        template.push('/');
                    }
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
            // The first successful read of a position gives it its response shape.
            if Some(i) == last_named
                && node.shape.is_empty()
                && let Some(sh) = ex.response_shape()
            {
                node.shape = sh.to_vec();
            }
            i += 1;
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

/// Whether the literal children of `node` answer reads with mostly different response shapes: many words
/// at one position that are different resources (`/api/login`, `/api/search`, `/api/export`), not many
/// values of one (`/users/alice`, `/users/bob`). Needs four children with a known shape.
fn distinct_resources(node: &Node) -> bool {
    let shapes: Vec<&[u32]> = node
        .children
        .iter()
        .filter(|(k, c)| !k.is_empty() && !c.pinned)
        .map(|(_, c)| node_shape(c))
        .filter(|s| !s.is_empty())
        .collect();
    if shapes.len() < 4 {
        return false;
    }
    let largest = shapes.iter().map(|a| shapes.iter().filter(|b| same_shape(a, b)).count()).max().unwrap_or(0);
    largest * 2 <= shapes.len()
}

/// Notes why `node`'s parameter exists, and that the literal before it is a collection.
fn mark(
    node: &mut Node,
    prev_lit: Option<&str>,
    collections: &mut std::collections::HashSet<Box<str>, foldhash::fast::RandomState>,
    why: u8,
) {
    if let Some(p) = node.param.as_deref_mut() {
        p.evidence |= why;
        if let Some(l) = prev_lit {
            collections.insert(l.into());
        }
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
    for seg in wire_segments(t) {
        if is_verb(seg) {
            out.push((seg, false));
            continue;
        }
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
                node.fold(seg, &Fold::All, &caps, op_caps);
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
        self.collections.clear();
        collect_collections(&self.root, &mut self.collections);
    }

    /// The node of an exact template (`{…}` segments are the parameter), if it exists.
    pub fn find_mut(&mut self, template: &str) -> Option<&mut Node> {
        let mut node = &mut self.root;
        for seg in wire_segments(template) {
            node = if seg.starts_with('{') && seg.ends_with('}') {
                node.param.as_deref_mut()?
            } else {
                node.children.get_mut(seg)?
            };
        }
        Some(node)
    }

    /// The template the node of `template` has now: the node itself, or, when later transactions merged one
    /// of its literals into the parameter beside it, that parameter (a merge adds everything the literal
    /// held to it; parameters never split back). What a record filed under `template` when it was raised is
    /// filed under at the end.
    pub fn current_template(&self, template: &str) -> Option<String> {
        let segs: Vec<&str> = wire_segments(template).collect();
        let mut out = String::with_capacity(template.len());
        let mut budget = 64u32;
        if !resolve(&self.root, &segs, &mut out, &mut budget) {
            return None;
        }
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
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

/// Follows `segs` from `n`, a literal before the parameter, to a node with operations, writing its template
/// into `out`. A literal merged into the parameter can come back as a mere step of a longer path (without
/// the operations, which stayed in the parameter): the parameter is then tried too, within `budget` steps.
fn resolve(n: &Node, segs: &[&str], out: &mut String, budget: &mut u32) -> bool {
    let Some((seg, rest)) = segs.split_first() else { return !n.ops.is_empty() };
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let len = out.len();
    let literal = !(seg.starts_with('{') && seg.ends_with('}'));
    if literal && let Some(c) = n.children.get(*seg) {
        if !is_verb(seg) {
            out.push('/');
        }
        out.push_str(seg);
        if resolve(c, rest, out, budget) {
            return true;
        }
        out.truncate(len);
    }
    let Some(p) = n.param.as_deref() else { return false };
    out.push_str("/{");
    out.push_str(&p.name);
    out.push('}');
    if resolve(p, rest, out, budget) {
        return true;
    }
    out.truncate(len);
    false
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
        let sep = if is_verb(k) { "" } else { "/" };
        collect(c, format!("{prefix}{sep}{k}"), params, conf * lc, caps, out);
    }
    if let Some(p) = &n.param {
        let distinct = p.distinct.as_ref().map_or(0, |d| d.estimate()) as f64;
        let pc = if p.pinned {
            1.0
        } else if n.word_params {
            (0.5 + distinct / (4.0 * caps.param_min_distinct.max(1) as f64)).min(0.95)
        } else {
            // Each kind of evidence on its own; several together count as the strongest, and more distinct
            // values make any of them surer.
            let e = p.evidence;
            let mut c: f64 = 0.0;
            for (bit, base) in [
                (Evidence::SHAPE, 0.8),
                (Evidence::SECRET, 0.9),
                (Evidence::EXCHANGE, 0.85),
                (Evidence::COLLECTION, 0.8),
                (Evidence::STRUCTURE, 0.75),
                (Evidence::RESPONSE, 0.7),
                (Evidence::PATTERN, 0.7),
            ] {
                if e & bit != 0 {
                    c = c.max(base);
                }
            }
            // Trees saved before evidence was recorded: the parameter was made by shape.
            if c == 0.0 {
                c = 0.8;
            }
            if (e & !Evidence::CARDINALITY).count_ones() > 1 {
                c += 0.05;
            }
            (c + distinct / 50.0).min(0.99)
        };
        params.push((&p.name, p.values.as_deref()));
        collect(p, format!("{prefix}/{{{}}}", p.name), params, conf * pc, caps, out);
        params.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn(tree: &mut Tree, path: &str) -> Option<String> {
        learn_status(tree, path, true)
    }

    fn learn_status(tree: &mut Tree, path: &str, ok: bool) -> Option<String> {
        let mut c = TreeCounters::default();
        let ex = Exchange::new(ok, "GET", Some(if ok { 200 } else { 404 }));
        let f = tree.walk(path, &ex, &TreeCaps::default(), &OpCaps::default(), &mut c, &|| {})?;
        if ok && f.node.ops.is_empty() {
            f.node.ops.push(("GET".into(), Operation::default()));
        }
        Some(f.template)
    }

    fn templates(tree: &Tree) -> Vec<String> {
        tree.views(&TreeCaps::default()).into_iter().map(|v| v.template).collect()
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
            let ex = Exchange::new(true, "GET", Some(200));
            let _ = t.walk(&p, &ex, &caps, &OpCaps::default(), &mut c, &|| {});
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

    /// One exchange: GET answered 200 with a JSON body.
    fn read(tree: &mut Tree, path: &str, body: &str) -> Option<String> {
        let mut c = TreeCounters::default();
        let mut ex = Exchange::new(true, "GET", Some(200));
        ex.response_body = body.as_bytes();
        ex.response_type = "application/json";
        let f = tree.walk(path, &ex, &TreeCaps::default(), &OpCaps::default(), &mut c, &|| {})?;
        if f.node.ops.is_empty() {
            f.node.ops.push(("GET".into(), Operation::default()));
        }
        Some(f.template)
    }

    #[test]
    fn trailing_slashes_are_kept() {
        let mut t = Tree::default();
        assert_eq!(learn(&mut t, "/v2/items/").unwrap(), "/v2/items/");
        assert_eq!(learn(&mut t, "/v2/items").unwrap(), "/v2/items");
        assert_eq!(learn(&mut t, "/v2/items/17/").unwrap(), "/v2/items/{itemId}/");
        assert_eq!(learn(&mut t, "/v2/items/18/").unwrap(), "/v2/items/{itemId}/");
        assert_eq!(learn(&mut t, "/").unwrap(), "/");
        assert_eq!(templates(&t), ["/", "/v2/items", "/v2/items/", "/v2/items/{itemId}/"]);
        // Pinned as written.
        t.pin("/v3/things/{thingId}/", &OpCaps::default()).unwrap();
        assert_eq!(learn(&mut t, "/v3/things/abc/").unwrap(), "/v3/things/{thingId}/");
        assert!(t.find_mut("/v3/things/{thingId}/").is_some());
        assert!(t.find_mut("/v3/things/{thingId}").is_some_and(|n| n.ops.is_empty()));
    }

    #[test]
    fn one_word_endpoints_at_the_first_position_stay() {
        let mut t = Tree::default();
        let words = [
            "login", "logout", "search", "export", "health", "status", "files", "upload", "download", "anything",
            "headers", "cookies", "delay", "stream", "bytes", "image", "json", "xml", "html", "gzip", "deflate",
            "brotli", "encoding", "redirect", "cache", "etag", "range", "links", "robots", "uuid",
        ];
        for w in words {
            assert_eq!(read(&mut t, &format!("/{w}"), &format!("{{\"{w}\": 1}}")).unwrap(), format!("/{w}"));
        }
        assert_eq!(templates(&t).len(), words.len());
    }

    #[test]
    fn one_word_endpoints_with_different_shapes_stay_below_a_prefix() {
        let mut t = Tree::default();
        let words = [
            "login", "logout", "search", "export", "health", "status", "files", "upload", "download", "anything",
            "headers", "cookies", "delay", "stream", "bytes", "image", "json", "xml", "html", "gzip", "deflate",
            "brotli", "encoding", "redirect", "cache", "etag", "range", "links",
        ];
        for w in words {
            let body = format!("{{\"{w}\": 1, \"{w}_at\": 2}}");
            assert_eq!(read(&mut t, &format!("/api/{w}"), &body).unwrap(), format!("/api/{w}"));
        }
        assert_eq!(templates(&t).len(), words.len());
    }

    #[test]
    fn word_ids_named_by_the_exchange() {
        let mut t = Tree::default();
        assert_eq!(
            read(&mut t, "/projects/website", r#"{"slug": "website", "title": "W"}"#).unwrap(),
            "/projects/{projectId}"
        );
        assert_eq!(
            read(&mut t, "/projects/website/boards/backlog", r#"{"id": "backlog", "project_id": "website"}"#).unwrap(),
            "/projects/{projectId}/boards/{boardId}"
        );
        // A word the response does not name as an id stays.
        assert_eq!(read(&mut t, "/projects/export", r#"{"rows": 3}"#).unwrap(), "/projects/export");
    }

    #[test]
    fn collections_learned_across_operations() {
        let mut t = Tree::default();
        learn(&mut t, "/v1/users/42");
        assert_eq!(learn(&mut t, "/v2/users/jdoe").unwrap(), "/v2/users/{userId}");
    }

    #[test]
    fn siblings_leading_to_the_same_literal_are_values() {
        let mut t = Tree::default();
        assert_eq!(learn(&mut t, "/api/projects/website/boards").unwrap(), "/api/projects/website/boards");
        assert_eq!(learn(&mut t, "/api/projects/mobile/boards").unwrap(), "/api/projects/{projectId}/boards");
        assert_eq!(templates(&t), ["/api/projects/{projectId}/boards"]);
    }

    #[test]
    fn word_digit_ids_sharing_a_pattern() {
        let mut t = Tree::default();
        // Long enough with digits: an id by shape alone.
        assert_eq!(learn(&mut t, "/api/invoices/inv2024-7").unwrap(), "/api/invoices/{invoiceId}");
        assert_eq!(learn(&mut t, "/api/tags/red1").unwrap(), "/api/tags/red1");
        assert_eq!(learn(&mut t, "/api/tags/block3").unwrap(), "/api/tags/{tagId}");
        assert_eq!(templates(&t), ["/api/invoices/{invoiceId}", "/api/tags/{tagId}"]);
        // Versions are no ids, and the position right after one holds resources.
        learn(&mut t, "/api/v1/x");
        assert_eq!(learn(&mut t, "/api/v2/x").unwrap(), "/api/v2/x");
        learn(&mut t, "/api/v2/red1");
        assert_eq!(learn(&mut t, "/api/v2/blue2").unwrap(), "/api/v2/blue2");
        assert_eq!(learn(&mut t, "/api/2.0/x").unwrap(), "/api/2.0/x");
    }

    #[test]
    fn siblings_answering_one_shape_are_one_parameter() {
        let mut t = Tree::default();
        let user = |n: &str| format!(r#"{{"username": "{n}x", "email": "e", "joined": 1}}"#);
        assert_eq!(read(&mut t, "/api/users/jdoe", &user("a")).unwrap(), "/api/users/jdoe");
        assert_eq!(read(&mut t, "/api/users/alice", &user("b")).unwrap(), "/api/users/{userId}");
        assert_eq!(read(&mut t, "/api/users/bob", &user("c")).unwrap(), "/api/users/{userId}");
        // Different shapes: different resources.
        assert_eq!(read(&mut t, "/api/reports/daily", r#"{"day": 1, "rows": []}"#).unwrap(), "/api/reports/daily");
        assert_eq!(read(&mut t, "/api/reports/summary", r#"{"total": 1}"#).unwrap(), "/api/reports/summary");
        assert_eq!(read(&mut t, "/api/reports/errors", r#"[{"code": 1}]"#).unwrap(), "/api/reports/errors");
        // camelCase names are a programmer's, not a user's, whatever their answers.
        assert_eq!(read(&mut t, "/api/pet/findByStatus", r#"[{"id": 1}]"#).unwrap(), "/api/pet/findByStatus");
        assert_eq!(read(&mut t, "/api/pet/findByTags", r#"[{"id": 1}]"#).unwrap(), "/api/pet/findByTags");
        // The first position names the API: literal whatever the shapes.
        assert_eq!(read(&mut t, "/alpha", r#"{"a": 1}"#).unwrap(), "/alpha");
        assert_eq!(read(&mut t, "/beta", r#"{"a": 1}"#).unwrap(), "/beta");
    }

    #[test]
    fn secrets_never_become_literals() {
        let mut t = Tree::default();
        assert_eq!(learn(&mut t, "/auth/jdoe/Sup3rS3cret").unwrap(), "/auth/jdoe/{jdoeId}");
        assert_eq!(learn(&mut t, "/password/reset/hunter2").unwrap(), "/password/reset/{resetId}");
        assert_eq!(learn(&mut t, "/share/abcdefgh").unwrap(), "/share/{shareId}");
        assert_eq!(learn(&mut t, "/users/jdoe%40example.com").unwrap(), "/users/{userId}");
        for v in ["Sup3rS3cret", "hunter2", "abcdefgh", "jdoe%40example.com"] {
            assert!(templates(&t).iter().all(|x| !x.contains(v)), "{v}: {:?}", templates(&t));
        }
    }

    #[test]
    fn young_literals_named_later_re_merge() {
        let mut t = Tree::default();
        // A listing below the project came first; then a read of the project named it as an id.
        assert_eq!(read(&mut t, "/api/projects/website/boards/", "[]").unwrap(), "/api/projects/website/boards/");
        assert_eq!(
            read(&mut t, "/api/projects/website/", r#"{"slug": "website"}"#).unwrap(),
            "/api/projects/{projectId}/"
        );
        assert_eq!(templates(&t), ["/api/projects/{projectId}/", "/api/projects/{projectId}/boards/"]);
    }

    #[test]
    fn writes_and_shared_paths_beside_a_parameter_are_values() {
        let mut t = Tree::default();
        learn(&mut t, "/api/locations/17/apis");
        assert_eq!(learn(&mut t, "/api/locations/lyon/apis").unwrap(), "/api/locations/{locationId}/apis");
        let mut c = TreeCounters::default();
        let ex = Exchange::new(true, "DELETE", Some(204));
        let f = t.walk("/api/locations/paris", &ex, &TreeCaps::default(), &OpCaps::default(), &mut c, &|| {});
        assert_eq!(f.unwrap().template, "/api/locations/{locationId}");
        // A read of a word beside the parameter with nothing to say otherwise stays a literal.
        assert_eq!(learn(&mut t, "/api/locations/export").unwrap(), "/api/locations/export");
    }

    #[test]
    fn records_follow_their_template_into_a_merge() {
        let mut t = Tree::default();
        // Filed when seen, the service being young: literals (a listing below a project, a fuzzed value).
        let before = [
            read(&mut t, "/api/projects/website/boards/", "[]").unwrap(),
            learn(&mut t, &format!("/pet/{}", FUZZED[0])).unwrap(),
            learn(&mut t, "/pet/findByStatus").unwrap(),
        ];
        assert!(before.iter().all(|b| !b.contains('{')), "{before:?}");
        // Later transactions make parameters of them.
        read(&mut t, "/api/projects/website/", r#"{"slug": "website"}"#);
        learn(&mut t, "/pet/12");
        let now: Vec<_> = before.iter().map(|old| t.current_template(old).unwrap()).collect();
        assert_eq!(now, ["/api/projects/{projectId}/boards/", "/pet/{petId}", "/pet/findByStatus"]);
        // Every final template maps to itself.
        for x in templates(&t) {
            assert_eq!(t.current_template(&x).unwrap(), x);
        }
        // A literal merged away and back as a step of a longer path: the operation is still the parameter's.
        let before = learn(&mut t, "/pet/findByStatus/history").unwrap();
        assert_eq!(before, "/pet/findByStatus/history");
        assert_eq!(t.current_template("/pet/findByStatus").unwrap(), "/pet/findByStatus");
        assert_eq!(t.current_template("/"), None, "no operation at the root");
        assert_eq!(t.current_template("/nowhere/at/all"), None);
    }

    #[test]
    fn custom_methods_after_a_colon() {
        let mut t = Tree::default();
        assert_eq!(learn(&mut t, "/v1/artifacts/7:getContents").unwrap(), "/v1/artifacts/{artifactId}:getContents");
        assert_eq!(learn(&mut t, "/v1/artifacts/8:rollback").unwrap(), "/v1/artifacts/{artifactId}:rollback");
        assert_eq!(learn(&mut t, "/v1/artifacts/8").unwrap(), "/v1/artifacts/{artifactId}");
        // A word before a verb the parameter already leads to is a value.
        assert_eq!(learn(&mut t, "/v1/artifacts/oslo:rollback").unwrap(), "/v1/artifacts/{artifactId}:rollback");
        t.pin("/v2/specs/{spec}:tagRevision", &OpCaps::default()).unwrap();
        assert_eq!(learn(&mut t, "/v2/specs/blue:tagRevision").unwrap(), "/v2/specs/{spec}:tagRevision");
        // A colon that starts no verb stays in the segment.
        assert_eq!(wire_segments("/a/urn:isbn:0451").collect::<Vec<_>>(), ["a", "urn:isbn:0451"]);
        assert_eq!(wire_segments("/a/:xy").collect::<Vec<_>>(), ["a", ":xy"]);
    }
}
