//! What is learned per operation (method + template), and the per-transaction [`Observation`] that feeds it.
//!
//! An observation is built from the transaction outside the inventory lock (body parsing, value typing);
//! merging it under the lock only adds counts and merges capped schemas.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::schema::{ObjectStats, Schema, SchemaCaps, SchemaCounters};
use super::sketch::{Hll, Latency, hash64};
use crate::http::Transaction;

/// Limits of one operation (from [`super::Settings`]).
#[derive(Clone, Copy, Debug)]
pub struct OpCaps {
    pub schema: SchemaCaps,
    /// Query, header and cookie parameters kept per operation (each location).
    pub max_params: usize,
    pub max_content_types: usize,
    pub max_status_codes: usize,
    pub max_data_classes: usize,
    /// Bodies longer than this are not parsed (their content type is still recorded).
    pub max_body_bytes: usize,
    /// Every body of an operation (request) or of one of its status codes (response) is parsed into the
    /// schema until this many were seen ...
    pub body_samples_full: u64,
    /// ... then one in this many (1 = every body).
    pub body_sample_rate: u64,
}

impl Default for OpCaps {
    fn default() -> Self {
        OpCaps {
            schema: SchemaCaps::default(),
            max_params: 32,
            max_content_types: 8,
            max_status_codes: 24,
            max_data_classes: 64,
            max_body_bytes: 256 * 1024,
            body_samples_full: 256,
            body_sample_rate: 16,
        }
    }
}

/// Cap hits of one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounters {
    pub params_capped: u64,
    pub content_types_capped: u64,
    pub status_codes_capped: u64,
    pub data_classes_capped: u64,
    /// Bodies not parsed: over `max_body_bytes`, or not valid JSON although labelled JSON.
    pub bodies_unparsed: u64,
    pub schema: SchemaCounters,
}

impl OpCounters {
    pub fn add(&mut self, o: &OpCounters) {
        self.params_capped += o.params_capped;
        self.content_types_capped += o.content_types_capped;
        self.status_codes_capped += o.status_codes_capped;
        self.data_classes_capped += o.data_classes_capped;
        self.bodies_unparsed += o.bodies_unparsed;
        self.schema.add(&o.schema);
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseStats {
    pub count: u64,
    /// Content type → body schema (an empty schema when bodies were not parsed).
    pub content: BTreeMap<Box<str>, Schema>,
    /// Responses without a body.
    pub empty: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSeen {
    pub count: u64,
    /// Of those, answered with a 2xx or 3xx: the scheme is accepted.
    pub ok: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataClassSeen {
    pub location: Box<str>,
    pub field: Box<str>,
    pub class: Box<str>,
    pub category: Box<str>,
    pub count: u64,
}

/// Everything learned about one operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub count: u64,
    /// Packet time, seconds.
    pub first_seen: f64,
    pub last_seen: f64,
    pub query: BTreeMap<Box<str>, Schema>,
    pub headers: BTreeMap<Box<str>, Schema>,
    pub cookies: BTreeMap<Box<str>, Schema>,
    /// Request content type → body schema.
    pub request: BTreeMap<Box<str>, Schema>,
    pub responses: BTreeMap<u16, ResponseStats>,
    pub no_response: u64,
    /// Auth scheme key (`none`, `basic`, `bearer`, `jwt`, `apiKey:header:NAME`, `apiKey:query:NAME`,
    /// `cookie:NAME`, `other:SCHEME`) → how often.
    pub auth: BTreeMap<Box<str>, AuthSeen>,
    pub latency: Latency,
    pub clients: Hll,
    pub data_classes: Vec<DataClassSeen>,
    pub capped: OpCounters,
    /// Where each data class sits in `data_classes`: every data-class hit of every transaction looks its
    /// entry up, and a scan comparing three strings per entry over a full list was the inventory's top cost.
    #[serde(skip)]
    dc_index: DataClassIndex,
}

/// `data_classes` entries by hash of (location, field, class): the first entry of each hash. Rebuilt from
/// the list when behind it (an operation loaded from the store, or built field by field).
#[derive(Clone, Debug, Default)]
struct DataClassIndex {
    first: std::collections::HashMap<u64, usize, foldhash::fast::FixedState>,
    /// Entries of `data_classes` already in `first`.
    indexed: usize,
}

/// Derived state: two operations with the same data classes are equal whatever their index holds.
impl PartialEq for DataClassIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn data_class_hash(location: &str, field: &str, class: &str) -> u64 {
    use std::hash::BuildHasher as _;
    foldhash::fast::FixedState::default().hash_one((location, field, class))
}

/// One transaction, digested for [`Operation::observe`].
#[derive(Debug, Default)]
pub struct Observation {
    pub ts: f64,
    pub latency: Option<f64>,
    pub client: Option<u64>,
    pub query: Vec<(String, Schema)>,
    pub headers: Vec<(String, Schema)>,
    pub cookies: Vec<(String, Schema)>,
    pub request_body: Option<(String, Schema)>,
    pub status: Option<u16>,
    pub response_body: Option<(String, Schema)>,
    pub auth: Vec<String>,
    pub counters: OpCounters,
}

impl Observation {
    /// A 2xx or 3xx answer.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..400).contains(&s))
    }
}

/// Request headers that are part of HTTP itself or of the transport path, not of the API: not parameters.
const STANDARD_HEADERS: &[&str] = &[
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "connection",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "cookie",
    "authorization",
    "cache-control",
    "pragma",
    "te",
    "trailer",
    "upgrade",
    "via",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "origin",
    "referer",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
    "dnt",
    "expect",
    "date",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "priority",
    "upgrade-insecure-requests",
];

/// Header names that carry an API key.
const API_KEY_HEADERS: &[&str] =
    &["x-api-key", "api-key", "apikey", "x-apikey", "x-auth-token", "x-access-token", "x-api-token", "x-token"];
const API_KEY_QUERY: &[&str] = &["api_key", "apikey", "api-key", "key", "access_token", "token", "auth_token"];

/// `STANDARD_HEADERS` as a set: every request header of every transaction is looked up.
static STANDARD_SET: std::sync::LazyLock<std::collections::HashSet<&'static str, foldhash::fast::FixedState>> =
    std::sync::LazyLock::new(|| STANDARD_HEADERS.iter().copied().collect());

use crate::http::contains_ignore_ascii_case;

fn is_session_cookie(name: &str) -> bool {
    // "sess" covers "session".
    contains_ignore_ascii_case(name, "sess")
        || name
            .len()
            .checked_sub(3)
            .and_then(|i| name.as_bytes().get(i..))
            .is_some_and(|e| e.eq_ignore_ascii_case(b"sid"))
        || contains_ignore_ascii_case(name, "token")
        || contains_ignore_ascii_case(name, "auth")
}

/// Base64url bytes (1) for [`looks_like_jwt`].
static B64URL: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            t[i] = 1;
        }
        i += 1;
    }
    t
};

/// Three dot-separated parts, the first two base64url of two bytes or more, starting `eyJ`. Bearer tokens
/// are hundreds of bytes on every request: the bytes are checked without a branch each.
fn looks_like_jwt(t: &str) -> bool {
    let b = t.as_bytes();
    if !b.starts_with(b"eyJ") {
        return false;
    }
    // `str::split_once` finds the dots with memchr.
    let Some((head, rest)) = t.split_once('.') else { return false };
    let Some((payload, sig)) = rest.split_once('.') else { return false };
    let (head, payload, sig) = (head.as_bytes(), payload.as_bytes(), sig.as_bytes());
    let b64 = |p: &[u8]| p.len() >= 2 && p.iter().fold(1u8, |a, c| a & B64URL[*c as usize]) == 1;
    !sig.contains(&b'.') && b64(head) && b64(payload)
}

/// Auth schemes a request carries (`none` when it carries none).
pub fn auth_schemes(tx: &Transaction) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(a) = tx.request_headers.get("authorization") {
        let a = a.trim();
        let (scheme, cred) = a.split_once(' ').unwrap_or((a, ""));
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "basic" => out.push("basic".to_owned()),
            "bearer" => out.push(if looks_like_jwt(cred.trim()) { "jwt" } else { "bearer" }.to_owned()),
            s if !s.is_empty() && s.len() <= 16 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') => {
                out.push(format!("other:{s}"))
            }
            _ => out.push("other:unknown".to_owned()),
        }
    }
    // The lists are lower case: a name equal to an entry ignoring case lower-cases to that entry.
    for (name, _) in tx.request_headers.iter() {
        if let Some(n) = API_KEY_HEADERS.iter().find(|h| name.eq_ignore_ascii_case(h))
            && !out.iter().any(|o| o.ends_with(n))
        {
            out.push(format!("apiKey:header:{n}"));
        }
    }
    for (k, _) in &tx.query_params {
        if let Some(k) = API_KEY_QUERY.iter().find(|q| k.eq_ignore_ascii_case(q))
            && !out.iter().any(|o| o.ends_with(k))
        {
            out.push(format!("apiKey:query:{k}"));
        }
    }
    for c in tx.request_headers.get_all("cookie") {
        for (name, _) in cookie_pairs(c) {
            if is_session_cookie(name) && out.len() < 8 && safe_name(name) {
                let k = format!("cookie:{name}");
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    if out.is_empty() {
        out.push("none".to_owned());
    }
    out
}

fn safe_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.bytes().all(|c| c.is_ascii_graphic() && !matches!(c, b'"' | b'\\'))
}

fn cookie_pairs(h: &str) -> impl Iterator<Item = (&str, &str)> {
    h.split(';').filter_map(|p| {
        let (k, v) = p.split_once('=')?;
        Some((k.trim(), v.trim()))
    })
}

/// `type/subtype` in lower case, parameters dropped.
pub fn media_type(ct: &str) -> String {
    let t = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if t.is_empty() || t.len() > 100 || !t.contains('/') { "application/octet-stream".to_owned() } else { t }
}

fn object_of(fields: impl Iterator<Item = (String, Schema)>, caps: &OpCaps, c: &mut OpCounters) -> Schema {
    let mut o = ObjectStats { count: 1, ..ObjectStats::default() };
    for (k, v) in fields {
        if o.props.contains_key(k.as_str()) {
            continue;
        }
        if o.props.len() >= caps.schema.max_properties {
            o.truncated = true;
            c.schema.width_capped += 1;
            continue;
        }
        o.props.insert(k.into(), v);
    }
    Schema { seen: 1, object: Some(Box::new(o)), ..Schema::default() }
}

/// The schema of a body of content type `ct`: JSON, urlencoded form, multipart field names; an empty schema
/// (content type only) for anything else or for what does not parse.
fn body_schema(ct: &str, body: &[u8], caps: &OpCaps, c: &mut OpCounters) -> Schema {
    let unparsed = Schema { seen: 1, ..Schema::default() };
    if body.len() > caps.max_body_bytes {
        c.bodies_unparsed += 1;
        return unparsed;
    }
    if ct.contains("json") {
        return match Schema::from_json(body, &caps.schema, &mut c.schema) {
            Some(s) => s,
            None => {
                c.bodies_unparsed += 1;
                unparsed
            }
        };
    }
    if ct == "application/x-www-form-urlencoded" {
        let text = String::from_utf8_lossy(body);
        let fields = text.split('&').filter(|p| !p.is_empty()).take(caps.schema.max_properties * 2).map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = crate::http::percent_decode(k);
            let v = crate::http::percent_decode(v);
            let s = Schema::from_text(&v, &k, true);
            (k, s)
        });
        let fields: Vec<_> = fields.collect();
        return object_of(fields.into_iter(), caps, c);
    }
    if ct == "multipart/form-data" {
        // Field names only: `Content-Disposition: form-data; name="x"` of every part.
        let mut names = Vec::new();
        for line in body.split(|b| *b == b'\n') {
            if names.len() >= caps.schema.max_properties * 2 {
                break;
            }
            let l = String::from_utf8_lossy(line);
            if !l.to_ascii_lowercase().starts_with("content-disposition:") {
                continue;
            }
            if let Some(pos) = l.find("name=\"") {
                let rest = l.get(pos + 6..).unwrap_or("");
                if let Some(end) = rest.find('"') {
                    let n = rest.get(..end).unwrap_or("").to_owned();
                    let file = l.contains("filename=");
                    names.push((n, file));
                }
            }
        }
        let fields = names.into_iter().map(|(n, _)| {
            let s = Schema { seen: 1, string: Some(Box::default()), ..Schema::default() };
            (n, s)
        });
        return object_of(fields, caps, c);
    }
    unparsed
}

impl Observation {
    /// Digests a transaction: parameters typed, bodies parsed into schemas, auth recognised.
    pub fn from_tx(tx: &Transaction, caps: &OpCaps) -> Observation {
        let mut o = Observation {
            ts: tx.ts,
            latency: tx.ts_response.map(|r| r - tx.ts).filter(|d| *d >= 0.0),
            client: tx.endpoints().map(|(c, _)| match c.ip() {
                std::net::IpAddr::V4(a) => hash64(&a.octets()),
                std::net::IpAddr::V6(a) => hash64(&a.octets()),
            }),
            status: tx.status,
            ..Observation::default()
        };
        for (k, v) in &tx.query_params {
            if o.query.len() >= caps.max_params {
                o.counters.params_capped += 1;
                break;
            }
            if o.query.iter().any(|(x, _)| x == k) || !safe_name(k) {
                continue;
            }
            o.query.push((k.clone(), Schema::from_text(v, k, true)));
        }
        let mut lower = [0u8; 64];
        for (name, v) in tx.request_headers.iter() {
            // Lower-cased on the stack: a name longer than this is no parameter (`safe_name`) anyway.
            let Some(buf) = lower.get_mut(..name.len()) else { continue };
            buf.copy_from_slice(name.as_bytes());
            buf.make_ascii_lowercase();
            let Ok(n) = std::str::from_utf8(buf) else { continue };
            if STANDARD_SET.contains(n)
                || API_KEY_HEADERS.contains(&n)
                || n.starts_with("sec-")
                || !safe_name(n)
                || o.headers.iter().any(|(x, _)| x == n)
            {
                continue;
            }
            if o.headers.len() >= caps.max_params {
                o.counters.params_capped += 1;
                break;
            }
            let s = Schema::from_text(v, n, false);
            o.headers.push((n.to_owned(), s));
        }
        for c in tx.request_headers.get_all("cookie") {
            for (k, v) in cookie_pairs(c) {
                if !safe_name(k) || o.cookies.iter().any(|(x, _)| x == k) {
                    continue;
                }
                if o.cookies.len() >= caps.max_params {
                    o.counters.params_capped += 1;
                    break;
                }
                o.cookies.push((k.to_owned(), Schema::from_text(v, k, false)));
            }
        }
        // Bodies are only noted here (content type, one sample): parsing them is the costly part, and
        // whether this transaction's bodies are sampled depends on its operation (`Operation::wants_bodies`).
        if !tx.decoded_request_body().is_empty() {
            let ct = media_type(tx.request_headers.get("content-type").unwrap_or(""));
            o.request_body = Some((ct, Schema { seen: 1, ..Schema::default() }));
        }
        if tx.has_response && !tx.decoded_response_body().is_empty() {
            let ct = media_type(tx.response_headers.get("content-type").unwrap_or(""));
            o.response_body = Some((ct, Schema { seen: 1, ..Schema::default() }));
        }
        o.auth = auth_schemes(tx);
        o
    }
}

/// The parsed bodies of one transaction, for [`Operation::merge_bodies`].
#[derive(Debug, Default)]
pub struct BodySample {
    pub request: Option<(String, Schema)>,
    pub status: Option<u16>,
    pub response: Option<(String, Schema)>,
    pub counters: OpCounters,
}

impl BodySample {
    /// Parses the bodies `want` names (request, response) into schemas.
    pub fn from_tx(tx: &Transaction, want: (bool, bool), caps: &OpCaps) -> BodySample {
        let mut b = BodySample { status: tx.status, ..BodySample::default() };
        if want.0 {
            let ct = media_type(tx.request_headers.get("content-type").unwrap_or(""));
            let s = body_schema(&ct, tx.decoded_request_body(), caps, &mut b.counters);
            b.request = Some((ct, s));
        }
        if want.1 && tx.has_response {
            let ct = media_type(tx.response_headers.get("content-type").unwrap_or(""));
            let s = body_schema(&ct, tx.decoded_response_body(), caps, &mut b.counters);
            b.response = Some((ct, s));
        }
        b
    }

    pub fn is_empty(&self) -> bool {
        self.request.is_none() && self.response.is_none()
    }
}

/// Whether the `n`-th body of a location is parsed: all of the first `body_samples_full`, then one in
/// `body_sample_rate`. A schema has converged within the first few hundred samples; afterwards a sample
/// still catches fields that appear later (drift) while the parse, most of the inventory's cost, is paid
/// on a sixteenth of the traffic.
fn sampled(n: u64, caps: &OpCaps) -> bool {
    n <= caps.body_samples_full || caps.body_sample_rate <= 1 || n.is_multiple_of(caps.body_sample_rate)
}

fn merge_param(map: &mut BTreeMap<Box<str>, Schema>, k: String, s: Schema, caps: &OpCaps, c: &mut OpCounters) {
    if let Some(mine) = map.get_mut(k.as_str()) {
        mine.merge(s, &caps.schema, &mut c.schema);
    } else if map.len() < caps.max_params {
        map.insert(k.into(), s);
    } else {
        c.params_capped += 1;
    }
}

fn merge_content(map: &mut BTreeMap<Box<str>, Schema>, k: Box<str>, s: Schema, caps: &OpCaps, c: &mut OpCounters) {
    if let Some(mine) = map.get_mut(&k) {
        mine.merge(s, &caps.schema, &mut c.schema);
    } else if map.len() < caps.max_content_types {
        map.insert(k, s);
    } else {
        c.content_types_capped += 1;
    }
}

impl Operation {
    /// Which bodies of the transaction just observed (`observe` ran) should be parsed: (request, response).
    pub fn wants_bodies(&self, o_request: bool, status: Option<u16>, o_response: bool, caps: &OpCaps) -> (bool, bool) {
        let req = o_request && sampled(self.count, caps);
        let resp = o_response && status.and_then(|st| self.responses.get(&st)).is_some_and(|r| sampled(r.count, caps));
        (req, resp)
    }

    /// Adds parsed bodies to the schemas of the transaction `observe` already counted: its content types
    /// and `seen` were recorded then, so only the structure is merged here.
    pub fn merge_bodies(&mut self, b: BodySample, caps: &OpCaps) {
        let mut c = b.counters;
        if let Some((ct, mut s)) = b.request {
            s.seen = 0;
            merge_content(&mut self.request, ct.into(), s, caps, &mut c);
        }
        if let (Some(st), Some((ct, mut s))) = (b.status, b.response)
            && let Some(r) = self.responses.get_mut(&st)
        {
            s.seen = 0;
            merge_content(&mut r.content, ct.into(), s, caps, &mut c);
        }
        self.capped.add(&c);
    }

    /// Adds one transaction.
    pub fn observe(&mut self, o: Observation, caps: &OpCaps) {
        if self.count == 0 || o.ts < self.first_seen {
            self.first_seen = o.ts;
        }
        if o.ts > self.last_seen {
            self.last_seen = o.ts;
        }
        self.count += 1;
        let ok = o.ok();
        let mut c = o.counters;
        for (k, s) in o.query {
            merge_param(&mut self.query, k, s, caps, &mut c);
        }
        for (k, s) in o.headers {
            merge_param(&mut self.headers, k, s, caps, &mut c);
        }
        for (k, s) in o.cookies {
            merge_param(&mut self.cookies, k, s, caps, &mut c);
        }
        if let Some((ct, s)) = o.request_body {
            merge_content(&mut self.request, ct.into(), s, caps, &mut c);
        }
        match o.status {
            Some(st) => {
                let n = self.responses.len();
                let r = match self.responses.get_mut(&st) {
                    Some(r) => Some(r),
                    None if n < caps.max_status_codes => Some(self.responses.entry(st).or_default()),
                    None => {
                        c.status_codes_capped += 1;
                        None
                    }
                };
                if let Some(r) = r {
                    r.count += 1;
                    match o.response_body {
                        Some((ct, s)) => merge_content(&mut r.content, ct.into(), s, caps, &mut c),
                        None => r.empty += 1,
                    }
                }
            }
            None => self.no_response += 1,
        }
        for a in o.auth {
            if let Some(e) = self.auth.get_mut(a.as_str()) {
                e.count += 1;
                e.ok += u64::from(ok);
            } else if self.auth.len() < 16 {
                self.auth.insert(a.into(), AuthSeen { count: 1, ok: u64::from(ok) });
            }
        }
        if let Some(l) = o.latency {
            self.latency.add(l);
        }
        if let Some(h) = o.client {
            self.clients.add_hash(h);
        }
        self.capped.add(&c);
    }

    /// Adds another operation's statistics (templates re-merging, a saved store).
    pub fn merge(&mut self, o: Operation, caps: &OpCaps) {
        if o.count > 0 && (self.count == 0 || o.first_seen < self.first_seen) {
            self.first_seen = o.first_seen;
        }
        self.last_seen = self.last_seen.max(o.last_seen);
        self.count += o.count;
        let mut c = o.capped;
        for (k, s) in o.query {
            merge_param(&mut self.query, k.into(), s, caps, &mut c);
        }
        for (k, s) in o.headers {
            merge_param(&mut self.headers, k.into(), s, caps, &mut c);
        }
        for (k, s) in o.cookies {
            merge_param(&mut self.cookies, k.into(), s, caps, &mut c);
        }
        for (k, s) in o.request {
            merge_content(&mut self.request, k, s, caps, &mut c);
        }
        for (st, r) in o.responses {
            let n = self.responses.len();
            match self.responses.get_mut(&st) {
                Some(mine) => {
                    mine.count += r.count;
                    mine.empty += r.empty;
                    for (k, s) in r.content {
                        merge_content(&mut mine.content, k, s, caps, &mut c);
                    }
                }
                None if n < caps.max_status_codes => {
                    self.responses.insert(st, r);
                }
                None => c.status_codes_capped += 1,
            }
        }
        self.no_response += o.no_response;
        for (k, a) in o.auth {
            let e = self.auth.entry(k).or_default();
            e.count += a.count;
            e.ok += a.ok;
        }
        self.latency.merge(&o.latency);
        self.clients.merge(&o.clients);
        for d in o.data_classes {
            self.add_data_class(&d.location, &d.field, &d.class, &d.category, d.count, caps);
        }
        self.capped.add(&c);
    }

    pub fn add_data_class(&mut self, location: &str, field: &str, class: &str, category: &str, n: u64, caps: &OpCaps) {
        let idx = &mut self.dc_index;
        for (i, d) in self.data_classes.iter().enumerate().skip(idx.indexed) {
            idx.first.entry(data_class_hash(&d.location, &d.field, &d.class)).or_insert(i);
        }
        idx.indexed = self.data_classes.len();
        let h = data_class_hash(location, field, class);
        let same = |d: &DataClassSeen| &*d.location == location && &*d.field == field && &*d.class == class;
        let found = match idx.first.get(&h) {
            // The first entry with this hash is the one, unless two keys share the hash: then the first
            // matching entry, as a scan finds it.
            Some(&i) => match self.data_classes.get(i) {
                Some(d) if same(d) => Some(i),
                _ => self.data_classes.iter().position(same),
            },
            // Every entry's hash is indexed: no entry has this key.
            None => None,
        };
        if let Some(d) = found.and_then(|i| self.data_classes.get_mut(i)) {
            d.count += n;
        } else if self.data_classes.len() < caps.max_data_classes {
            let i = self.data_classes.len();
            let d = DataClassSeen {
                location: location.into(),
                field: field.chars().take(200).collect::<String>().into(),
                class: class.into(),
                category: category.into(),
                count: n,
            };
            // Indexed by the stored (possibly cut) field, as a later lookup compares with it.
            idx.first.entry(data_class_hash(&d.location, &d.field, &d.class)).or_insert(i);
            idx.indexed = i + 1;
            self.data_classes.push(d);
        } else {
            self.capped.data_classes_capped += 1;
        }
    }

    /// Any answer other than 404 (or none): the operation exists on the server.
    pub fn answered(&self) -> bool {
        self.responses.keys().any(|s| super::serves(Some(*s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Inventory::learn` does for one transaction: observe, then the sampled bodies.
    fn learn_one(op: &mut Operation, t: &Transaction, caps: &OpCaps) {
        let o = Observation::from_tx(t, caps);
        let (req, st, resp) = (o.request_body.is_some(), o.status, o.response_body.is_some());
        op.observe(o, caps);
        let want = op.wants_bodies(req, st, resp, caps);
        op.merge_bodies(BodySample::from_tx(t, want, caps), caps);
    }

    #[test]
    fn bodies_are_sampled_after_the_full_count_and_counts_stay_exact() {
        let caps = OpCaps { body_samples_full: 2, body_sample_rate: 3, ..OpCaps::default() };
        let mut op = Operation::default();
        // Body number n carries field `fN`: the schema shows which bodies were parsed.
        for n in 1..=9 {
            let body = format!(r#"{{"f{n}":1}}"#);
            let t = tx("POST", "/x", &[("Content-Type", "application/json")], &body, 200, &body);
            learn_one(&mut op, &t, &caps);
        }
        let req = &op.request["application/json"];
        assert_eq!(req.seen, 9, "every body counted");
        let props: Vec<&str> = req.object.as_ref().unwrap().props.keys().map(|k| &**k).collect();
        assert_eq!(props, ["f1", "f2", "f3", "f6", "f9"]);
        let resp = &op.responses[&200].content["application/json"];
        assert_eq!(resp.seen, 9);
        assert_eq!(resp.object.as_ref().unwrap().props.len(), 5);
        // A sampled object's fields are required against the parsed samples only.
        assert_eq!(resp.object.as_ref().unwrap().count, 5);
    }
    use crate::http::Headers;

    fn tx(method: &str, path: &str, headers: &[(&str, &str)], body: &str, status: u16, resp: &str) -> Transaction {
        Transaction {
            ts: 10.0,
            ts_response: Some(10.25),
            has_request: true,
            has_response: true,
            method: method.into(),
            path: path.into(),
            uri: path.into(),
            request_headers: headers.iter().copied().collect::<Headers>(),
            request_body: body.as_bytes().to_vec(),
            status: Some(status),
            response_headers: [("Content-Type", "application/json; charset=utf-8")].into_iter().collect(),
            response_body: resp.as_bytes().to_vec(),
            ..Transaction::default()
        }
    }

    fn looks_like_jwt_reference(t: &str) -> bool {
        let mut parts = t.split('.');
        let ok = |p: Option<&str>| {
            p.is_some_and(|p| p.len() >= 2 && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
        };
        t.starts_with("eyJ") && ok(parts.next()) && ok(parts.next()) && parts.next().is_some() && parts.next().is_none()
    }

    proptest::proptest! {
        #[test]
        fn jwt_check_matches_the_reference(t in "(eyJ)?[a-zA-Z0-9_.=+/ \u{e9}-]{0,24}") {
            proptest::prop_assert_eq!(looks_like_jwt(&t), looks_like_jwt_reference(&t));
        }
    }

    #[test]
    fn jwt_check_matches_the_reference_on_samples() {
        for t in
            ["eyJ", "eyJa.bc.", "eyJa.bc.d", "eyJa.b.d", "eyJa.bc.d.e", "eyJa..d", "eyJa.b+c.d", "eyJ.bc.d", "x.y.z"]
        {
            assert_eq!(looks_like_jwt(t), looks_like_jwt_reference(t), "{t}");
        }
    }

    #[test]
    fn auth_kinds() {
        let jwt = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
        let t = tx("GET", "/", &[("Authorization", jwt)], "", 200, "");
        assert_eq!(auth_schemes(&t), ["jwt"]);
        let t = tx("GET", "/", &[("Authorization", "Basic YTpi"), ("X-API-Key", "k")], "", 200, "");
        assert_eq!(auth_schemes(&t), ["basic", "apiKey:header:x-api-key"]);
        let t = tx("GET", "/", &[("Cookie", "session=abc; theme=dark")], "", 200, "");
        assert_eq!(auth_schemes(&t), ["cookie:session"]);
        let t = tx("GET", "/", &[], "", 200, "");
        assert_eq!(auth_schemes(&t), ["none"]);
        let mut t = tx("GET", "/", &[], "", 200, "");
        t.query_params = vec![("api_key".into(), "x".into())];
        assert_eq!(auth_schemes(&t), ["apiKey:query:api_key"]);
    }

    #[test]
    fn observe_learns_params_bodies_and_statuses() {
        let caps = OpCaps::default();
        let mut op = Operation::default();
        let mut t = tx(
            "POST",
            "/orders",
            &[
                ("Content-Type", "application/json"),
                ("X-Request-ID", "123e4567-e89b-12d3-a456-426614174000"),
                ("Accept", "*/*"),
            ],
            r#"{"sku":"A1","qty":2}"#,
            201,
            r#"{"id":"123e4567-e89b-12d3-a456-426614174000"}"#,
        );
        t.query_params = vec![("page".into(), "2".into())];
        learn_one(&mut op, &t, &caps);
        let t2 = tx(
            "POST",
            "/orders",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "a=1&b=x%40y.example",
            400,
            "",
        );
        learn_one(&mut op, &t2, &caps);
        assert_eq!(op.count, 2);
        assert!(op.headers.contains_key("x-request-id"));
        assert!(!op.headers.contains_key("accept"));
        assert_eq!(op.query["page"].integer, 1);
        assert_eq!(op.request.len(), 2);
        let form = op.request["application/x-www-form-urlencoded"].to_json_schema(&caps.schema);
        assert_eq!(form["properties"]["b"]["format"], "email");
        assert_eq!(
            op.responses[&201].content["application/json"].to_json_schema(&caps.schema)["properties"]["id"]["format"],
            "uuid"
        );
        assert_eq!(op.responses[&400].empty, 1);
        assert_eq!(op.latency.count(), 2);
        // Merging is the same as observing both.
        let mut twice = op.clone();
        twice.merge(op.clone(), &caps);
        assert_eq!(twice.count, 4);
        assert_eq!(twice.responses[&201].count, 2);
    }

    /// The index finds what a scan of the list finds: repeats count on the first entry, long fields
    /// (stored cut) never match again, the cap holds, and an operation loaded without its index rebuilds it.
    #[test]
    fn data_class_index_matches_a_scan() {
        let caps = OpCaps { max_data_classes: 6, ..OpCaps::default() };
        let long = "f".repeat(250);
        let mut op = Operation::default();
        for (loc, field, class) in [
            ("response.body", "$.email", "email"),
            ("response.body", "$.email", "email"),
            ("request.header", "$.email", "email"),
            ("response.body", long.as_str(), "email"),
            ("response.body", long.as_str(), "email"),
            ("response.body", "$.phone", "phone"),
            ("response.body", "$.email", "email"),
            ("response.body", "$.x", "iban"),
            ("response.body", "$.y", "iban"),
        ] {
            op.add_data_class(loc, field, class, "pii", 1, &caps);
        }
        let got: Vec<(&str, usize, u64)> =
            op.data_classes.iter().map(|d| (&*d.location, d.field.len(), d.count)).collect();
        assert_eq!(
            got,
            [
                ("response.body", 7, 3),
                ("request.header", 7, 1),
                ("response.body", 200, 1),
                ("response.body", 200, 1),
                ("response.body", 7, 1),
                ("response.body", 3, 1)
            ]
        );
        assert_eq!(op.capped.data_classes_capped, 1);
        // A 200-character field equal to the stored cut one counts on the first of the two.
        op.add_data_class("response.body", &long[..200], "email", "pii", 5, &caps);
        assert_eq!(op.data_classes[2].count, 6);
        // Round trip without the index (as the store loads operations).
        let mut loaded = Operation { data_classes: op.data_classes.clone(), ..Operation::default() };
        loaded.add_data_class("response.body", "$.phone", "phone", "pii", 1, &caps);
        assert_eq!(loaded.data_classes[4].count, 2);
        assert_eq!(loaded.data_classes.len(), 6);
    }

    #[test]
    fn multipart_field_names() {
        let caps = OpCaps::default();
        let mut c = OpCounters::default();
        let body = b"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhi\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nx\r\n--b--\r\n";
        let s = body_schema("multipart/form-data", body, &caps, &mut c);
        let j = s.to_json_schema(&caps.schema);
        assert_eq!(j["properties"]["title"]["type"], "string");
        assert_eq!(j["properties"]["file"]["type"], "string");
    }
}
