//! Behavioural drift (API3, API8, API9): per operation (service, method, endpoint template), the query
//! parameter names and top-level JSON body property names, and the JSON type classes of their values,
//! learned over the operation's first requests; afterwards a name never seen (`new_parameter`, mass
//! assignment) or a value of a class never seen for its field (`schema_violation`) is an alert. An
//! operation first answered 2xx after its service already had many transactions is a shadow API appearing
//! (`new_operation_after_warmup`).
//!
//! Every alert here is reported once per operation and field (and class): the model learns what it
//! alerted on, so a new field a client release starts sending is one alert, not one per request.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::rules::{RuleId, Rules};
use super::state::Bounded;
use super::{Detector, Emitter, Hit, Scope, Settings, TxContext};
use crate::http::Transaction;

/// Names (query parameters and body properties together) learned per operation; names beyond are not
/// learned (counted), and an operation that refused a name raises no `new_parameter` (the name may be
/// one it refused).
pub const MAX_FIELDS_PER_OPERATION: usize = 128;
/// Names looked at per request (query and body each); the rest are skipped (counted).
pub const MAX_NAMES_PER_REQUEST: usize = 64;
/// Bodies larger than this are not parsed for property names.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Bytes of a field name shown in an alert.
const MAX_NAME_SHOWN: usize = 64;

/// JSON type classes, as bits of a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Integer = 1,
    Number = 2,
    String = 4,
    Boolean = 8,
    Object = 16,
    Array = 32,
    Null = 64,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Integer => "integer",
            Class::Number => "number",
            Class::String => "string",
            Class::Boolean => "boolean",
            Class::Object => "object",
            Class::Array => "array",
            Class::Null => "null",
        }
    }
    fn bit(self) -> u8 {
        self as u8
    }
    /// Whether a field whose values had the classes in `mask` accepts one of class `self`. An integer
    /// is a number; null is accepted everywhere (optional fields are nullable in most APIs, and a null
    /// carries no payload).
    fn fits(self, mask: u8) -> bool {
        mask & self.bit() != 0 || self == Class::Null || (self == Class::Integer && mask & Class::Number.bit() != 0)
    }
    /// The learned classes, for evidence: `integer or string`.
    fn names(mask: u8) -> String {
        let all =
            [Class::Integer, Class::Number, Class::String, Class::Boolean, Class::Object, Class::Array, Class::Null];
        let v: Vec<&str> = all.iter().filter(|c| mask & c.bit() != 0).map(|c| c.name()).collect();
        v.join(" or ")
    }
}

/// A query value's class: integer when all digits (an optional minus), else string; `None` when empty
/// (an empty value fits any field).
pub fn query_class(v: &str) -> Option<Class> {
    let d = v.strip_prefix('-').unwrap_or(v);
    if v.is_empty() {
        None
    } else if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) {
        Some(Class::Integer)
    } else {
        Some(Class::String)
    }
}

/// Where a name was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    Query,
    Body,
}

impl Loc {
    fn name(self) -> &'static str {
        match self {
            Loc::Query => "request.query",
            Loc::Body => "request.body",
        }
    }
}

/// One name of one request: borrowed from the transaction.
#[derive(Debug)]
struct Obs<'a> {
    loc: Loc,
    name: std::borrow::Cow<'a, str>,
    class: Option<Class>,
}

/// A learned field.
struct Field {
    loc: Loc,
    hash: u64,
    name: Box<str>,
    classes: u8,
}

/// What an operation's requests looked like over its warm-up.
struct OpModel {
    /// Service, method and template, for the saved baselines.
    service: Box<str>,
    method: Box<str>,
    template: Box<str>,
    requests: u64,
    /// Transactions its service had when it was first seen.
    service_seen: u64,
    /// Answered 2xx at least once.
    succeeded: bool,
    fields: Vec<Field>,
    /// A name was refused by [`MAX_FIELDS_PER_OPERATION`].
    full: bool,
}

pub struct Drift {
    new_param: RuleId,
    schema: RuleId,
    new_op: RuleId,
    ops: Bounded<u64, OpModel>,
    /// Service name and transactions, by hash of the service.
    services: Bounded<u64, (Box<str>, u64)>,
    hasher: foldhash::fast::RandomState,
    /// Names not learned or not looked at because of the per-operation and per-request caps.
    names_refused: AtomicU64,
}

impl Drift {
    pub fn new(rules: &Rules, s: &Settings) -> Self {
        let id = |n: &str| rules.find(n).unwrap_or(RuleId(u16::MAX));
        Drift {
            new_param: id("new_parameter"),
            schema: id("schema_violation"),
            new_op: id("new_operation_after_warmup"),
            ops: Bounded::new(s.max_tracked_keys, "[detect] max_tracked_keys"),
            services: Bounded::new(s.max_tracked_keys, "[detect] max_tracked_keys"),
            hasher: foldhash::fast::RandomState::default(),
            names_refused: AtomicU64::new(0),
        }
    }

    /// The query parameter names and top-level JSON body property names of `tx`, with their classes.
    fn observe<'a>(&self, tx: &'a Transaction, out: &mut Vec<Obs<'a>>) {
        let mut refused = 0u64;
        for (k, v) in &tx.query_params {
            if out.len() >= MAX_NAMES_PER_REQUEST {
                refused += 1;
                continue;
            }
            out.push(Obs { loc: Loc::Query, name: k.as_str().into(), class: query_class(v) });
        }
        let body = tx.decoded_request_body();
        let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first == Some(b'{') && body.len() <= MAX_BODY_BYTES && json_content(tx) {
            let before = out.len();
            let mut de = serde_json::Deserializer::from_slice(body);
            let mut top = TopLevel { out, refused: 0, limit: before + MAX_NAMES_PER_REQUEST };
            // A body that does not parse is the attack rules' business; its names are dropped whole, so
            // that half an object never teaches the model.
            if (&mut de).deserialize_map(&mut top).is_err() {
                refused += top.refused;
                top.out.truncate(before);
            } else {
                refused += top.refused;
            }
        }
        if refused > 0 {
            self.names_refused.fetch_add(refused, Ordering::Relaxed);
        }
    }
}

/// The request says it is JSON, or says nothing.
fn json_content(tx: &Transaction) -> bool {
    match tx.request_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
        Some((_, v)) => super::contains_ignore_ascii_case(v, "json"),
        None => true,
    }
}

/// Collects the top-level property names of a JSON object and the classes of their values, skipping
/// nested content without building it.
struct TopLevel<'o, 'a> {
    out: &'o mut Vec<Obs<'a>>,
    refused: u64,
    limit: usize,
}

impl<'de, 'o> Visitor<'de> for &mut TopLevel<'o, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
            let ClassOf(c) = m.next_value()?;
            if self.out.len() >= self.limit {
                self.refused += 1;
                continue;
            }
            self.out.push(Obs { loc: Loc::Body, name: k, class: Some(c) });
        }
        Ok(())
    }
}

/// The class of a JSON value; its content is skipped.
struct ClassOf(Class);

impl<'de> de::Deserialize<'de> for ClassOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ClassVisitor).map(ClassOf)
    }
}

struct ClassVisitor;

impl<'de> Visitor<'de> for ClassVisitor {
    type Value = Class;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Class, E> {
        Ok(Class::Boolean)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Class, E> {
        Ok(Class::Integer)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Class, E> {
        Ok(Class::Integer)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Class, E> {
        Ok(Class::Number)
    }
    fn visit_str<E>(self, _: &str) -> Result<Class, E> {
        Ok(Class::String)
    }
    fn visit_unit<E>(self) -> Result<Class, E> {
        Ok(Class::Null)
    }
    fn visit_none<E>(self) -> Result<Class, E> {
        Ok(Class::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Class, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Class::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Class, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Class::Object)
    }
}

/// A change to report, decided under the operation's lock and raised after it.
enum Change {
    NewName(Loc, String),
    Violation(Loc, String, Class, u8),
}

impl Detector for Drift {
    fn name(&self) -> &'static str {
        "drift"
    }

    fn on_transaction(&self, tx: &Transaction, _ctx: &TxContext, em: &mut Emitter<'_>) {
        let (np, sv, no) = (em.on(self.new_param), em.on(self.schema), em.on(self.new_op));
        if !(np || sv || no) {
            return;
        }
        let f = em.facts;
        // Learning from requests nobody answered would teach the model what a scanner sent into the void.
        let Some(status) = f.status else { return };
        let seen = self.services.update(
            self.hasher.hash_one(&*f.service),
            || (f.service.as_ref().into(), 0),
            |(_, n)| std::mem::replace(n, *n + 1),
        );
        let seen = seen.unwrap_or(0);
        let mut obs = Vec::new();
        if (np || sv) && (!tx.query_params.is_empty() || !tx.decoded_request_body().is_empty()) {
            self.observe(tx, &mut obs);
        }
        let warmup = (em.rules.threshold(self.new_param) as u64).max(1);
        let success = (200..300).contains(&status);
        let mut changes: Vec<Change> = Vec::new();
        let mut refused = 0u64;
        // Keyed by this detector's own hash (not `op_id`, seeded per run) so that saved baselines load.
        let op_key = self.hasher.hash_one((&*f.service, f.method, &*f.template));
        let first_success = self.ops.update(
            op_key,
            || OpModel {
                service: f.service.as_ref().into(),
                method: f.method.into(),
                template: f.template.as_ref().into(),
                requests: 0,
                service_seen: seen,
                succeeded: false,
                fields: Vec::new(),
                full: false,
            },
            |op| {
                op.requests = op.requests.saturating_add(1);
                let learning = op.requests <= warmup;
                for o in &obs {
                    let h = self.hasher.hash_one((o.loc as u8, &*o.name));
                    let known = op.fields.len();
                    match op.fields.iter_mut().find(|x| x.hash == h && x.loc == o.loc && *x.name == *o.name) {
                        Some(x) => {
                            let Some(c) = o.class else { continue };
                            if learning || c.fits(x.classes) {
                                x.classes |= c.bit();
                            } else {
                                changes.push(Change::Violation(o.loc, x.name.to_string(), c, x.classes));
                                x.classes |= c.bit();
                            }
                        }
                        None if known >= MAX_FIELDS_PER_OPERATION => {
                            op.full = true;
                            refused += 1;
                        }
                        None => {
                            if !learning && !op.full {
                                changes.push(Change::NewName(o.loc, o.name.to_string()));
                            }
                            let classes = o.class.map_or(0, Class::bit);
                            op.fields.push(Field { loc: o.loc, hash: h, name: o.name.as_ref().into(), classes });
                        }
                    }
                }
                let first = success && !op.succeeded;
                op.succeeded |= success;
                (first, op.service_seen)
            },
        );
        if refused > 0 {
            self.names_refused.fetch_add(refused, Ordering::Relaxed);
        }
        let shown = |n: &str| super::truncate_escaped(n.as_bytes(), MAX_NAME_SHOWN);
        for c in changes {
            match c {
                Change::NewName(loc, name) => em.raise(
                    Hit::new(self.new_param)
                        .scope(Scope::Endpoint)
                        .at(loc.name(), shown(&name))
                        .evidence(format!("not seen in the operation's first {warmup} requests")),
                ),
                Change::Violation(loc, name, got, mask) => em.raise(
                    Hit::new(self.schema).scope(Scope::Endpoint).at(loc.name(), shown(&name)).evidence(format!(
                        "expected {}, got {}",
                        Class::names(mask),
                        got.name()
                    )),
                ),
            }
        }
        let threshold = em.rules.threshold(self.new_op) as u64;
        if let Some((true, service_seen)) = first_success
            && no
            && service_seen >= threshold.max(1)
        {
            em.raise(
                Hit::new(self.new_op)
                    .scope(Scope::Endpoint)
                    .evidence(format!("first answered after the service had {service_seen} transactions"))
                    .once(0),
            );
        }
    }

    fn cap_hits(&self) -> u64 {
        self.ops.cap_hits() + self.services.cap_hits() + self.names_refused.load(Ordering::Relaxed)
    }
}

/// Lets the engine keep a handle on the drift detector (to save its baselines) while running it.
impl Detector for std::sync::Arc<Drift> {
    fn name(&self) -> &'static str {
        Drift::name(self)
    }
    fn on_transaction(&self, tx: &Transaction, ctx: &TxContext, em: &mut Emitter<'_>) {
        Drift::on_transaction(self, tx, ctx, em);
    }
    fn cap_hits(&self) -> u64 {
        Drift::cap_hits(self)
    }
}

/// The saved baselines (`<state_dir>/detect-baselines.json`).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    services: Vec<SavedService>,
    operations: Vec<SavedOp>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedService {
    service: String,
    transactions: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedOp {
    service: String,
    method: String,
    template: String,
    requests: u64,
    service_seen: u64,
    succeeded: bool,
    full: bool,
    fields: Vec<SavedField>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedField {
    /// `query` or `body`.
    loc: String,
    name: String,
    /// Bit mask of [`Class`].
    classes: u8,
}

/// Format version of the saved baselines.
const SAVED_VERSION: u32 = 1;

impl Drift {
    /// Writes the baselines to `path` (through a temporary file, so that a crash never leaves half a file).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut saved = Saved { version: SAVED_VERSION, services: Vec::new(), operations: Vec::new() };
        self.services.retain(|_, (name, n)| {
            saved.services.push(SavedService { service: name.to_string(), transactions: *n });
            true
        });
        self.ops.retain(|_, op| {
            saved.operations.push(SavedOp {
                service: op.service.to_string(),
                method: op.method.to_string(),
                template: op.template.to_string(),
                requests: op.requests,
                service_seen: op.service_seen,
                succeeded: op.succeeded,
                full: op.full,
                fields: op
                    .fields
                    .iter()
                    .map(|f| SavedField {
                        loc: if f.loc == Loc::Query { "query" } else { "body" }.to_owned(),
                        name: f.name.to_string(),
                        classes: f.classes,
                    })
                    .collect(),
            });
            true
        });
        saved.services.sort_by(|a, b| a.service.cmp(&b.service));
        saved
            .operations
            .sort_by(|a, b| (&a.service, &a.template, &a.method).cmp(&(&b.service, &b.template, &b.method)));
        let json = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    /// Loads baselines saved by [`Drift::save`]; returns the operations loaded. The file is checked whole
    /// before anything is loaded; entries beyond the caps are dropped (counted like new keys).
    pub fn load(&self, path: &std::path::Path) -> Result<usize, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let saved: Saved = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if saved.version != SAVED_VERSION {
            return Err(format!("{}: version {}: only {SAVED_VERSION} is known", path.display(), saved.version));
        }
        for s in saved.services {
            let k = self.hasher.hash_one(s.service.as_str());
            self.services.update(k, || (s.service.as_str().into(), 0), |(_, n)| *n = (*n).max(s.transactions));
        }
        let mut loaded = 0;
        for o in saved.operations {
            let k = self.hasher.hash_one((o.service.as_str(), o.method.as_str(), o.template.as_str()));
            let mut fields = Vec::new();
            let mut full = o.full;
            for f in o.fields {
                let loc = if f.loc == "query" { Loc::Query } else { Loc::Body };
                if fields.len() >= MAX_FIELDS_PER_OPERATION {
                    full = true;
                    break;
                }
                let hash = self.hasher.hash_one((loc as u8, f.name.as_str()));
                fields.push(Field { loc, hash, name: f.name.into(), classes: f.classes & 0x7f });
            }
            let model = OpModel {
                service: o.service.into(),
                method: o.method.into(),
                template: o.template.into(),
                requests: o.requests,
                service_seen: o.service_seen,
                succeeded: o.succeeded,
                fields,
                full,
            };
            let mut slot = Some(model);
            if self.ops.update(k, || slot.take().unwrap_or_else(empty_model), |_| ()).is_some() {
                loaded += 1;
            }
        }
        Ok(loaded)
    }
}

fn empty_model() -> OpModel {
    OpModel {
        service: "".into(),
        method: "".into(),
        template: "".into(),
        requests: 0,
        service_seen: 0,
        succeeded: false,
        fields: Vec::new(),
        full: false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn json(method: &str, uri: &str, body: &str, ts: f64) -> Transaction {
        tx(method, uri, &[("Content-Type", "application/json")], body, 200, ts)
    }

    fn rules_of(a: &[serde_json::Value], id: &str) -> Vec<serde_json::Value> {
        a.iter().filter(|x| x["rule_id"] == id).cloned().collect()
    }

    #[test]
    fn top_level_names_and_classes_without_nested_content() {
        let d = Drift::new(&Rules::default(), &Settings::default());
        let t = json(
            "POST",
            "/v1/users?page=2&q=abc&e=",
            r#"{"name":"a\"b","age":3,"score":1.5,"ok":true,"tags":["x",{"y":1}],"addr":{"role":"admin"},"n":null}"#,
            1.0,
        );
        let mut out = Vec::new();
        d.observe(&t, &mut out);
        let got: Vec<(Loc, &str, Option<Class>)> = out.iter().map(|o| (o.loc, &*o.name, o.class)).collect();
        assert_eq!(
            got,
            [
                (Loc::Query, "page", Some(Class::Integer)),
                (Loc::Query, "q", Some(Class::String)),
                (Loc::Query, "e", None),
                (Loc::Body, "name", Some(Class::String)),
                (Loc::Body, "age", Some(Class::Integer)),
                (Loc::Body, "score", Some(Class::Number)),
                (Loc::Body, "ok", Some(Class::Boolean)),
                (Loc::Body, "tags", Some(Class::Array)),
                (Loc::Body, "addr", Some(Class::Object)),
                (Loc::Body, "n", Some(Class::Null)),
            ]
        );
        // Not JSON, not an object, or broken: no body names.
        for (ct, body) in
            [("text/plain", r#"{"a":1}"#), ("application/json", "[1]"), ("application/json", r#"{"a":1,"#)]
        {
            let t = tx("POST", "/v1/users", &[("Content-Type", ct)], body, 200, 1.0);
            let mut out = Vec::new();
            d.observe(&t, &mut out);
            assert!(out.is_empty(), "{ct} {body}");
        }
        // Many names: capped, counted.
        let many: Vec<String> = (0..200).map(|i| format!("\"k{i}\":1")).collect();
        let t = json("POST", "/x", &format!("{{{}}}", many.join(",")), 1.0);
        let mut out = Vec::new();
        d.observe(&t, &mut out);
        assert_eq!(out.len(), MAX_NAMES_PER_REQUEST);
        assert_eq!(d.cap_hits(), 200 - MAX_NAMES_PER_REQUEST as u64);
    }

    #[test]
    fn new_parameter_after_warmup_once_per_operation_and_name() {
        let e = engine(Settings::default());
        // Warm-up: an optional field in one request of five is learnt.
        for i in 0..100 {
            let body = if i % 5 == 0 { r#"{"name":"x","nick":"y"}"# } else { r#"{"name":"x"}"# };
            let a = fired(&e, &json("PUT", &format!("/v1/users/{i}?v=1"), body, f64::from(i)));
            assert!(rules_of(&a, "new_parameter").is_empty(), "{a:?}");
        }
        let a = fired(&e, &json("PUT", "/v1/users/7?v=1", r#"{"name":"x","nick":"z"}"#, 200.0));
        assert!(rules_of(&a, "new_parameter").is_empty(), "{a:?}");
        // Mass assignment: a property never seen.
        let a = fired(&e, &json("PUT", "/v1/users/7", r#"{"name":"x","is_admin":true}"#, 201.0));
        let h = rules_of(&a, "new_parameter");
        assert_eq!(h.len(), 1, "{a:?}");
        assert_eq!((h[0]["location"].as_str(), h[0]["field"].as_str()), (Some("request.body"), Some("is_admin")));
        assert_eq!(h[0]["owasp"], "API3:2023");
        // Once: the name is learnt now.
        let a = fired(&e, &json("PUT", "/v1/users/8", r#"{"name":"x","is_admin":true}"#, 202.0));
        assert!(rules_of(&a, "new_parameter").is_empty(), "{a:?}");
        let a = fired(&e, &json("PUT", "/v1/users/8?debug=1", r#"{"name":"x"}"#, 203.0));
        assert_eq!(rules_of(&a, "new_parameter")[0]["location"], "request.query");
        // Another operation has its own warm-up.
        let a = fired(&e, &json("POST", "/v1/orders", r#"{"is_admin":true}"#, 204.0));
        assert!(rules_of(&a, "new_parameter").is_empty(), "{a:?}");
    }

    #[test]
    fn schema_violation_names_the_classes_not_the_value() {
        let e = engine(Settings::default());
        for i in 0..100 {
            let price = if i % 2 == 0 { "10" } else { "10.5" };
            let body = format!(r#"{{"qty":{i},"price":{price},"note":null}}"#);
            fired(&e, &json("POST", &format!("/v1/orders?page={i}"), &body, f64::from(i)));
        }
        // Integers where numbers were seen, nulls, empty query values: fine.
        let a = fired(&e, &json("POST", "/v1/orders?page=", r#"{"qty":1,"price":null,"note":null}"#, 300.0));
        assert!(rules_of(&a, "schema_violation").is_empty(), "{a:?}");
        let a = fired(&e, &json("POST", "/v1/orders?page=1", r#"{"qty":"1' OR '1'='1","price":3}"#, 301.0));
        let h = rules_of(&a, "schema_violation");
        assert_eq!(h.len(), 1, "{a:?}");
        assert_eq!(h[0]["field"], "qty");
        assert_eq!(h[0]["evidence"], "expected integer, got string");
        assert!(!h[0].to_string().contains("OR '1'"), "no raw value: {}", h[0]);
        let a = fired(&e, &json("POST", "/v1/orders?page=abc", r#"{"qty":1}"#, 302.0));
        let h = rules_of(&a, "schema_violation");
        assert_eq!((h[0]["location"].as_str(), h[0]["field"].as_str()), (Some("request.query"), Some("page")));
        // Once per field and class.
        let a = fired(&e, &json("POST", "/v1/orders?page=def", r#"{"qty":"2"}"#, 303.0));
        assert!(rules_of(&a, "schema_violation").is_empty(), "{a:?}");
        // During warm-up a new class is learnt silently.
        let a = fired(&e, &json("POST", "/v1/carts", r#"{"qty":"2"}"#, 304.0));
        let a2 = fired(&e, &json("POST", "/v1/carts", r#"{"qty":2}"#, 305.0));
        assert!(rules_of(&a, "schema_violation").is_empty() && rules_of(&a2, "schema_violation").is_empty());
    }

    #[test]
    fn new_operation_after_the_service_warmed_up() {
        let mut s = Settings::default();
        s.rules.insert(
            "new_operation_after_warmup".into(),
            crate::detect::RuleSettings { threshold: Some(50.0), ..Default::default() },
        );
        let e = engine(s);
        for i in 0..50 {
            let a = fired(&e, &tx("GET", &format!("/v1/items/{i}"), &[], "", 200, f64::from(i)));
            assert!(rules_of(&a, "new_operation_after_warmup").is_empty());
        }
        // A 404 on a new path is not reported: scanners ask for thousands.
        let a = fired(&e, &tx("GET", "/v1/shadow/export", &[], "", 404, 60.0));
        assert!(rules_of(&a, "new_operation_after_warmup").is_empty());
        let a = fired(&e, &tx("GET", "/v1/internal/dump", &[], "", 200, 61.0));
        let h = rules_of(&a, "new_operation_after_warmup");
        assert_eq!(h.len(), 1, "{a:?}");
        assert_eq!(h[0]["owasp"], "API9:2023");
        let a = fired(&e, &tx("GET", "/v1/internal/dump", &[], "", 200, 62.0));
        assert!(rules_of(&a, "new_operation_after_warmup").is_empty(), "once");
        // The 404'd path answered 2xx later: its service had 51 transactions when it was first seen.
        let a = fired(&e, &tx("GET", "/v1/shadow/export", &[], "", 200, 63.0));
        assert_eq!(rules_of(&a, "new_operation_after_warmup").len(), 1);
        // An operation of the warm-up is never new.
        let a = fired(&e, &tx("GET", "/v1/items/3", &[], "", 200, 64.0));
        assert!(rules_of(&a, "new_operation_after_warmup").is_empty());
    }

    #[test]
    fn full_operation_table_counts_and_stays_quiet() {
        let e = engine(Settings { max_tracked_keys: 16, ..Settings::default() });
        for i in 0..400 {
            let a = fired(&e, &json("POST", &format!("/p{i}"), r#"{"a":1}"#, f64::from(i)));
            assert!(rules_of(&a, "new_parameter").is_empty());
        }
        assert!(e.cap_hits() > 0);
    }

    #[test]
    fn baselines_survive_a_restart_and_a_bad_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("detect-baselines.json");
        let e = engine(Settings::default());
        for i in 0..100 {
            fired(&e, &json("PUT", "/v1/users/1?v=1", r#"{"name":"x","age":3}"#, f64::from(i)));
        }
        e.drift.save(&path).unwrap();
        let e2 = engine(Settings::default());
        assert_eq!(e2.drift.load(&path), Ok(1));
        let a = fired(&e2, &json("PUT", "/v1/users/1?v=1", r#"{"name":"x","age":"3","role":"admin"}"#, 500.0));
        assert_eq!(rules_of(&a, "new_parameter").len(), 1, "{a:?}");
        assert_eq!(rules_of(&a, "schema_violation").len(), 1, "{a:?}");
        std::fs::write(&path, b"{\"version\":1,").unwrap();
        assert!(e2.drift.load(&path).unwrap_err().contains("detect-baselines.json"));
        std::fs::write(&path, br#"{"version":9,"services":[],"operations":[]}"#).unwrap();
        assert!(e2.drift.load(&path).is_err());
    }
}
