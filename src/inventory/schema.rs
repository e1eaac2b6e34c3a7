//! Incremental JSON Schema learning: one [`Schema`] per body, parameter or field, built from single samples
//! outside the inventory lock and merged in under it.
//!
//! What is kept per location: how often each JSON type was seen (so `nullable`, multi-typed and `required`
//! fall out of the counts), one string format while every string agrees on it, a small set of candidate
//! enum values, array item schemas, object properties. Depth, width and array items sampled are capped
//! ([`SchemaCaps`]); every cap hit is counted in [`SchemaCounters`]. No sample value is ever emitted except
//! enum values, and those only under the strict rules of [`Schema::to_json_schema`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::segment::{Shape, shape};

/// Limits of one learned schema (from [`super::Settings`]).
#[derive(Clone, Copy, Debug)]
pub struct SchemaCaps {
    pub max_depth: usize,
    pub max_properties: usize,
    pub max_array_items: usize,
    pub enum_max_values: usize,
    pub enum_min_samples: u64,
}

impl Default for SchemaCaps {
    fn default() -> Self {
        SchemaCaps { max_depth: 8, max_properties: 64, max_array_items: 16, enum_max_values: 8, enum_min_samples: 10 }
    }
}

/// Cap hits while learning schemas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaCounters {
    /// Values below `schema_max_depth` recorded by type only.
    pub depth_capped: u64,
    /// Object properties beyond `schema_max_properties` not learned.
    pub width_capped: u64,
    /// Array elements beyond `schema_max_array_items` not sampled.
    pub items_skipped: u64,
}

impl SchemaCounters {
    pub fn add(&mut self, o: &SchemaCounters) {
        self.depth_capped += o.depth_capped;
        self.width_capped += o.width_capped;
        self.items_skipped += o.items_skipped;
    }
}

/// String formats recognised (OpenAPI / JSON Schema `format` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    Email,
    Uuid,
    Date,
    DateTime,
    Ipv4,
    Ipv6,
    Uri,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Email => "email",
            Format::Uuid => "uuid",
            Format::Date => "date",
            Format::DateTime => "date-time",
            Format::Ipv4 => "ipv4",
            Format::Ipv6 => "ipv6",
            Format::Uri => "uri",
        }
    }
}

/// The format every string seen so far agrees on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FormatState {
    #[default]
    Unset,
    One(Format),
    Mixed,
}

impl FormatState {
    fn merge(self, o: FormatState) -> FormatState {
        match (self, o) {
            (FormatState::Unset, x) | (x, FormatState::Unset) => x,
            (FormatState::One(a), FormatState::One(b)) if a == b => FormatState::One(a),
            _ => FormatState::Mixed,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StringStats {
    pub count: u64,
    pub format: FormatState,
    /// Candidate enum values with their counts; cleared for good once more than `enum_max_values` distinct
    /// values (or one value that may not be an enum member) were seen.
    pub values: Vec<(Box<str>, u64)>,
    pub enum_closed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArrayStats {
    pub count: u64,
    pub items: Schema,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectStats {
    pub count: u64,
    /// Property name → schema; the property's own `seen` counts the objects that had it (required when it
    /// equals `count`).
    pub props: BTreeMap<Box<str>, Schema>,
    /// Properties not learned because of the width cap.
    pub truncated: bool,
}

/// What was learned about the values at one location.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub seen: u64,
    pub null: u64,
    pub boolean: u64,
    pub integer: u64,
    pub number: u64,
    pub string: Option<Box<StringStats>>,
    pub array: Option<Box<ArrayStats>>,
    pub object: Option<Box<ObjectStats>>,
    /// Values below the depth cap were recorded by type only.
    pub depth_capped: bool,
}

/// Field names whose values are never offered as enums, whatever they look like: credentials and personal data.
const NO_ENUM_NAMES: &[&str] = &[
    "pass", "pwd", "secret", "token", "key", "auth", "session", "cookie", "ssn", "card", "cvv", "cvc", "iban",
    "account", "email", "mail", "phone", "name", "address", "line", "street", "city", "zip", "postal", "birth", "dob",
    "user", "login", "id",
];

/// One case-insensitive automaton over `NO_ENUM_NAMES`: this runs for every string value of every body, and a
/// lowercased copy plus thirty substring searches per value was a fifth of the inventory's time.
fn enum_allowed_for(field: &str) -> bool {
    static NAMES: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> = std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder().ascii_case_insensitive(true).build(NO_ENUM_NAMES).ok()
    });
    match &*NAMES {
        Some(ac) => !ac.is_match(field),
        // Built from constants; unreachable in practice, and refusing enums is the safe answer.
        None => false,
    }
}

/// A string that could be a member of a small enum: a short code-like word, not an id, not free text.
fn enum_candidate(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && shape(s) == Shape::Word
}

/// Streams one JSON document into a schema without building a `serde_json::Value`: bodies are the
/// inventory's main input and a tree of owned strings and maps per body was a quarter of its time. Keys and
/// strings without escapes are borrowed from the body.
struct Observe<'s> {
    schema: &'s mut Schema,
    field: &'s str,
    depth: usize,
    caps: &'s SchemaCaps,
    c: &'s mut SchemaCounters,
}

impl<'de> serde::de::DeserializeSeed<'de> for Observe<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Observe<'_> {
    fn string(self, t: &str) {
        self.schema.seen += 1;
        match &mut self.schema.string {
            Some(s) => s.add(t, self.field, self.caps),
            None => self.schema.string = Some(Box::new(string_stats(t, self.field, true))),
        }
    }
}

/// An object key, borrowed when the body allows it.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }
}

impl<'de> serde::de::Visitor<'de> for Observe<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.schema.seen += 1;
        self.schema.null += 1;
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.schema.seen += 1;
        self.schema.boolean += 1;
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.schema.seen += 1;
        self.schema.integer += 1;
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.schema.seen += 1;
        self.schema.integer += 1;
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.schema.seen += 1;
        self.schema.number += 1;
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.string(v);
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Observe { schema, field, depth, caps, c } = self;
        schema.seen += 1;
        let a = schema.array.get_or_insert_with(Default::default);
        a.count += 1;
        if depth >= caps.max_depth {
            schema.depth_capped = true;
            c.depth_capped += 1;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let mut i = 0;
        loop {
            if i < caps.max_array_items {
                let seed = Observe { schema: &mut a.items, field, depth: depth + 1, caps, c: &mut *c };
                if seq.next_element_seed(seed)?.is_none() {
                    break;
                }
            } else if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                c.items_skipped += 1;
            } else {
                break;
            }
            i += 1;
        }
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Observe { schema, depth, caps, c, .. } = self;
        schema.seen += 1;
        let o = schema.object.get_or_insert_with(Default::default);
        o.count += 1;
        if depth >= caps.max_depth {
            schema.depth_capped = true;
            c.depth_capped += 1;
            while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        while let Some(k) = map.next_key_seed(Key)? {
            if let Some(p) = o.props.get_mut(&*k) {
                map.next_value_seed(Observe { schema: p, field: &k, depth: depth + 1, caps, c: &mut *c })?;
            } else if o.props.len() < caps.max_properties {
                let mut p = Schema::default();
                map.next_value_seed(Observe { schema: &mut p, field: &k, depth: depth + 1, caps, c: &mut *c })?;
                o.props.insert(k.as_ref().into(), p);
            } else {
                o.truncated = true;
                c.width_capped += 1;
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl Schema {
    /// One JSON document (a body) streamed into a fresh schema; `None` when it is not JSON (the partial
    /// schema of a malformed body is dropped, not merged).
    pub fn from_json(body: &[u8], caps: &SchemaCaps, c: &mut SchemaCounters) -> Option<Schema> {
        // A body checked as UTF-8 once is read as text, whose strings need no check each: same values,
        // and invalid UTF-8 (which only a string could hold) goes the byte way, failing or not as before.
        match std::str::from_utf8(body) {
            Ok(text) => Self::stream(&mut serde_json::Deserializer::from_str(text), caps, c),
            Err(_) => Self::stream(&mut serde_json::Deserializer::from_slice(body), caps, c),
        }
    }

    fn stream<'de, R: serde_json::de::Read<'de>>(
        de: &mut serde_json::Deserializer<R>,
        caps: &SchemaCaps,
        c: &mut SchemaCounters,
    ) -> Option<Schema> {
        use serde::de::DeserializeSeed;
        let mut s = Schema::default();
        let mut local = SchemaCounters::default();
        Observe { schema: &mut s, field: "", depth: 0, caps, c: &mut local }.deserialize(&mut *de).ok()?;
        de.end().ok()?;
        c.add(&local);
        Some(s)
    }

    /// One sample: a JSON value (from a body). `field` is the property name the value sits under (enum rules).
    pub fn from_value(v: &Value, field: &str, caps: &SchemaCaps, c: &mut SchemaCounters) -> Schema {
        let mut s = Schema::default();
        s.observe(v, field, 0, caps, c);
        s
    }

    /// One sample given as text (query, path, header, cookie and form values): typed by its look.
    pub fn from_text(t: &str, field: &str, allow_enum: bool) -> Schema {
        let mut s = Schema { seen: 1, ..Schema::default() };
        if !t.is_empty()
            && t.len() <= 19
            && t.bytes().all(|b| b.is_ascii_digit())
            && !(t.len() > 1 && t.starts_with('0'))
        {
            s.integer = 1;
        } else if t == "true" || t == "false" {
            s.boolean = 1;
        } else if t.len() <= 32
            && t.contains('.')
            && t.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            && t.parse::<f64>().is_ok_and(f64::is_finite)
        {
            s.number = 1;
        } else {
            s.string = Some(Box::new(string_stats(t, field, allow_enum)));
        }
        s
    }

    fn observe(&mut self, v: &Value, field: &str, depth: usize, caps: &SchemaCaps, c: &mut SchemaCounters) {
        self.seen += 1;
        match v {
            Value::Null => self.null += 1,
            Value::Bool(_) => self.boolean += 1,
            Value::Number(n) => {
                if n.is_i64() || n.is_u64() {
                    self.integer += 1
                } else {
                    self.number += 1
                }
            }
            Value::String(t) => {
                let st = string_stats(t, field, true);
                match &mut self.string {
                    Some(s) => s.merge(st, caps),
                    None => self.string = Some(Box::new(st)),
                }
            }
            Value::Array(items) => {
                let a = self.array.get_or_insert_with(Default::default);
                a.count += 1;
                if depth >= caps.max_depth {
                    self.depth_capped = true;
                    c.depth_capped += 1;
                    return;
                }
                for (i, it) in items.iter().enumerate() {
                    if i >= caps.max_array_items {
                        c.items_skipped += (items.len() - i) as u64;
                        break;
                    }
                    a.items.observe(it, field, depth + 1, caps, c);
                }
            }
            Value::Object(m) => {
                let o = self.object.get_or_insert_with(Default::default);
                o.count += 1;
                if depth >= caps.max_depth {
                    self.depth_capped = true;
                    c.depth_capped += 1;
                    return;
                }
                for (k, v) in m {
                    if let Some(p) = o.props.get_mut(k.as_str()) {
                        p.observe(v, k, depth + 1, caps, c);
                    } else if o.props.len() < caps.max_properties {
                        let mut p = Schema::default();
                        p.observe(v, k, depth + 1, caps, c);
                        o.props.insert(k.as_str().into(), p);
                    } else {
                        o.truncated = true;
                        c.width_capped += 1;
                    }
                }
            }
        }
    }

    /// Adds what `o` learned (another sample or another schema of the same location).
    pub fn merge(&mut self, o: Schema, caps: &SchemaCaps, c: &mut SchemaCounters) {
        self.seen += o.seen;
        self.null += o.null;
        self.boolean += o.boolean;
        self.integer += o.integer;
        self.number += o.number;
        self.depth_capped |= o.depth_capped;
        if let Some(s) = o.string {
            match &mut self.string {
                Some(mine) => mine.merge(*s, caps),
                None => {
                    let mut s = s;
                    s.cap(caps);
                    self.string = Some(s)
                }
            }
        }
        if let Some(a) = o.array {
            let a = *a;
            let mine = self.array.get_or_insert_with(Default::default);
            mine.count += a.count;
            mine.items.merge(a.items, caps, c);
        }
        if let Some(ob) = o.object {
            let ob = *ob;
            let mine = self.object.get_or_insert_with(Default::default);
            mine.count += ob.count;
            mine.truncated |= ob.truncated;
            for (k, v) in ob.props {
                if let Some(p) = mine.props.get_mut(&k) {
                    p.merge(v, caps, c);
                } else if mine.props.len() < caps.max_properties {
                    mine.props.insert(k, v);
                } else {
                    mine.truncated = true;
                    c.width_capped += 1;
                }
            }
        }
    }

    /// The JSON Schema (2020-12 dialect, as OpenAPI 3.1 uses it) of what was seen.
    pub fn to_json_schema(&self, caps: &SchemaCaps) -> Value {
        let mut m = Map::new();
        let mut types: Vec<&str> = Vec::new();
        if self.boolean > 0 {
            types.push("boolean");
        }
        if self.number > 0 {
            types.push("number");
        } else if self.integer > 0 {
            types.push("integer");
        }
        if self.string.is_some() {
            types.push("string");
        }
        if self.array.is_some() {
            types.push("array");
        }
        if self.object.is_some() {
            types.push("object");
        }
        let nullable = self.null > 0;
        if nullable {
            types.push("null");
        }
        match types.as_slice() {
            [] => {}
            [one] => {
                m.insert("type".into(), json!(one));
            }
            many => {
                m.insert("type".into(), json!(many));
            }
        }
        if let Some(s) = &self.string {
            if let FormatState::One(f) = s.format {
                m.insert("format".into(), json!(f.name()));
            }
            if !s.enum_closed
                && !matches!(s.format, FormatState::One(_))
                && !s.values.is_empty()
                && s.count >= caps.enum_min_samples
                && s.values.iter().all(|(_, n)| *n >= 3)
            {
                let mut e: Vec<Value> = s.values.iter().map(|(v, _)| json!(v)).collect();
                e.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                if nullable {
                    e.push(Value::Null);
                }
                m.insert("enum".into(), Value::Array(e));
            }
        }
        if let Some(a) = &self.array {
            m.insert("items".into(), a.items.to_json_schema(caps));
        }
        if let Some(o) = &self.object {
            let mut props = Map::new();
            let mut required = Vec::new();
            for (k, v) in &o.props {
                props.insert(k.to_string(), v.to_json_schema(caps));
                if v.seen >= o.count && o.count > 0 {
                    required.push(json!(k));
                }
            }
            if !props.is_empty() {
                m.insert("properties".into(), Value::Object(props));
            }
            if !required.is_empty() {
                m.insert("required".into(), Value::Array(required));
            }
            if o.truncated {
                m.insert("x-mirador-truncated".into(), json!(true));
            }
        }
        if self.depth_capped {
            m.insert("x-mirador-depth-capped".into(), json!(true));
        }
        Value::Object(m)
    }
}

/// The format of one string as a merge state: "Mixed" for a single sample means "no format".
fn format_state(t: &str) -> FormatState {
    match detect_format(t) {
        Some(f) => FormatState::One(f),
        None => FormatState::Mixed,
    }
}

fn string_stats(t: &str, field: &str, allow_enum: bool) -> StringStats {
    let format = format_state(t);
    let ok = allow_enum && enum_value(t, field, format);
    StringStats {
        count: 1,
        // "Mixed" for a single sample means "no format": merging keeps it that way.
        format,
        values: if ok { vec![(t.into(), 1)] } else { Vec::new() },
        enum_closed: !ok,
    }
}

/// A string of this format under this field may be an enum member.
fn enum_value(t: &str, field: &str, format: FormatState) -> bool {
    format == FormatState::Mixed && enum_candidate(t) && enum_allowed_for(field)
}

impl StringStats {
    /// What merging `string_stats(t, field, true)` does, without building its one-value list: a closed
    /// enum set learns only the count and the format (a format already mixed stays mixed: most strings of a
    /// body, array items, need no look at all); a value already listed only counts.
    fn add(&mut self, t: &str, field: &str, caps: &SchemaCaps) {
        self.count += 1;
        if self.enum_closed {
            if self.format != FormatState::Mixed {
                self.format = self.format.merge(format_state(t));
            }
            self.values = Vec::new();
            return;
        }
        let format = format_state(t);
        self.format = self.format.merge(format);
        if !enum_value(t, field, format) {
            self.enum_closed = true;
            self.values = Vec::new();
            return;
        }
        match self.values.iter_mut().find(|(x, _)| **x == *t) {
            Some((_, m)) => *m += 1,
            None => self.values.push((t.into(), 1)),
        }
        self.cap(caps);
    }

    fn merge(&mut self, o: StringStats, caps: &SchemaCaps) {
        self.count += o.count;
        self.format = self.format.merge(o.format);
        if self.enum_closed || o.enum_closed {
            self.enum_closed = true;
            self.values = Vec::new();
            return;
        }
        for (v, n) in o.values {
            match self.values.iter_mut().find(|(x, _)| *x == v) {
                Some((_, m)) => *m += n,
                None => self.values.push((v, n)),
            }
        }
        self.cap(caps);
    }

    fn cap(&mut self, caps: &SchemaCaps) {
        if self.values.len() > caps.enum_max_values {
            self.enum_closed = true;
            self.values = Vec::new();
        }
    }
}

/// The format a string has, if any.
pub fn detect_format(t: &str) -> Option<Format> {
    let b = t.as_bytes();
    if is_uuid(t) {
        return Some(Format::Uuid);
    }
    if is_date(b) {
        return Some(Format::Date);
    }
    if b.len() > 10
        && is_date(b.get(..10)?)
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && is_time_rest(b.get(11..)?)
    {
        return Some(Format::DateTime);
    }
    // Which of the remaining tests can pass: one pass over a short string, memchr over a long one. An
    // e-mail has an `@`; the IPv4 parser accepts digits and dots only; a string without a colon is neither
    // an IPv6 address nor a URI.
    let (at, colon, digits_dots) = if b.len() <= 64 {
        let (mut at, mut colon, mut dd) = (false, false, true);
        for c in b {
            at |= *c == b'@';
            colon |= *c == b':';
            dd &= c.is_ascii_digit() || *c == b'.';
        }
        (at, colon, dd)
    } else {
        (b.contains(&b'@'), b.contains(&b':'), false)
    };
    if at && is_email(t) {
        return Some(Format::Email);
    }
    if digits_dots && t.len() <= 15 && t.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some(Format::Ipv4);
    }
    if !colon {
        return None;
    }
    if t.len() <= 45
        && b.iter().all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
        && t.parse::<std::net::Ipv6Addr>().is_ok()
    {
        return Some(Format::Ipv6);
    }
    if is_uri(t) {
        return Some(Format::Uri);
    }
    None
}

pub fn is_uuid(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

pub fn is_date(b: &[u8]) -> bool {
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
        && matches!(b.get(5..7), Some(m) if m >= b"01".as_slice() && m <= b"12".as_slice())
        && matches!(b.get(8..10), Some(d) if d >= b"01".as_slice() && d <= b"31".as_slice())
}

/// `hh:mm:ss[.frac](Z|±hh:mm)` (RFC 3339 §5.6).
fn is_time_rest(b: &[u8]) -> bool {
    if b.len() < 9 {
        return false;
    }
    let hms = b.get(..8).unwrap_or(&[]);
    if !hms.iter().enumerate().all(|(i, c)| if i == 2 || i == 5 { *c == b':' } else { c.is_ascii_digit() }) {
        return false;
    }
    let mut rest = b.get(8..).unwrap_or(&[]);
    if rest.first() == Some(&b'.') {
        let n = rest.iter().skip(1).take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = rest.get(1 + n..).unwrap_or(&[]);
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

pub fn is_email(t: &str) -> bool {
    let Some((local, domain)) = t.split_once('@') else { return false };
    !local.is_empty()
        && local.len() <= 64
        && domain.len() <= 255
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && local.bytes().all(|c| c.is_ascii_alphanumeric() || b"._%+-'".contains(&c))
        && domain.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
}

fn is_uri(t: &str) -> bool {
    let Some((scheme, rest)) = t.split_once("://") else { return false };
    !scheme.is_empty()
        && scheme.len() <= 16
        && scheme.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'.' || c == b'-')
        && !rest.is_empty()
        && !rest.bytes().any(|c| c.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e9f64..1e9).prop_map(|f| json!(f)),
            prop::sample::select(vec!["a", "GOLD", "x@y.example", "2024-01-02", "10.0.0.1", "é\"q", ""])
                .prop_map(|t| json!(t)),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec!["id", "status", "email", "a\\b", "items", "n"]),
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest! {
        /// The streaming observer learns exactly what observing the parsed tree learns, caps included.
        #[test]
        fn streaming_matches_the_tree(v in json_value(), depth in 1usize..4, width in 1usize..5, items in 1usize..4) {
            let caps = SchemaCaps { max_depth: depth, max_properties: width, max_array_items: items, ..SchemaCaps::default() };
            let (mut c1, mut c2) = (SchemaCounters::default(), SchemaCounters::default());
            let tree = Schema::from_value(&v, "", &caps, &mut c1);
            let body = serde_json::to_vec(&v).unwrap();
            let streamed = Schema::from_json(&body, &caps, &mut c2).unwrap();
            prop_assert_eq!(tree, streamed);
            prop_assert_eq!(c1, c2);
        }

        #[test]
        fn streaming_never_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Schema::from_json(&body, &SchemaCaps::default(), &mut SchemaCounters::default());
        }
    }

    /// The format tests as first written, without the byte checks that skip the address parsers.
    fn detect_format_reference(t: &str) -> Option<Format> {
        let b = t.as_bytes();
        if is_uuid(t) {
            return Some(Format::Uuid);
        }
        if is_date(b) {
            return Some(Format::Date);
        }
        if b.len() > 10
            && is_date(b.get(..10)?)
            && matches!(b.get(10), Some(b'T' | b't' | b' '))
            && is_time_rest(b.get(11..)?)
        {
            return Some(Format::DateTime);
        }
        if is_email(t) {
            return Some(Format::Email);
        }
        if t.len() <= 15 && t.parse::<std::net::Ipv4Addr>().is_ok() {
            return Some(Format::Ipv4);
        }
        if t.contains(':') && t.len() <= 45 && t.parse::<std::net::Ipv6Addr>().is_ok() {
            return Some(Format::Ipv6);
        }
        if is_uri(t) {
            return Some(Format::Uri);
        }
        None
    }

    proptest! {
        #[test]
        fn formats_match_the_reference(t in "[0-9a-fA-FxyzT:./@%\\[\\] +-]{0,46}") {
            prop_assert_eq!(detect_format(&t), detect_format_reference(&t));
        }
    }

    #[test]
    fn formats_match_the_reference_on_samples() {
        for t in [
            "10.0.0.1",
            "1.2.3",
            "::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "fe80::1%eth0",
            "[::1]",
            "1:2:3:4:5:6:7:8",
            "http://x",
            "a:b",
            "2024-01-02T03:04:05Z",
            "a@b.example",
            "",
            ":",
            "1.2.3.4.5",
            "01.2.3.4",
        ] {
            assert_eq!(detect_format(t), detect_format_reference(t), "{t}");
        }
    }

    /// Reading a valid UTF-8 body as text learns what reading its bytes learns, and a body that is not
    /// UTF-8 is read as bytes: refused when a learned string is invalid, accepted when only a skipped
    /// array element is.
    #[test]
    fn text_and_byte_reading_agree() {
        let caps = SchemaCaps { max_array_items: 1, ..SchemaCaps::default() };
        let bytes = |b: &[u8]| {
            let mut c = SchemaCounters::default();
            Schema::stream(&mut serde_json::Deserializer::from_slice(b), &caps, &mut c).map(|s| (s, c))
        };
        let json = |b: &[u8]| {
            let mut c = SchemaCounters::default();
            Schema::from_json(b, &caps, &mut c).map(|s| (s, c))
        };
        for b in [
            &br#"{"a":"x\u00e9","b":[1,"y"],"c":{"d":null}}"#[..],
            "{\"\u{e9}\":\"\u{e9}t\u{e9}\"}".as_bytes(),
            b"[\"ok\",\"\xff\"]",
            b"[\"\xff\"]",
            b"{\"a\":1,}",
        ] {
            assert_eq!(json(b), bytes(b), "{}", String::from_utf8_lossy(b));
        }
        assert!(json(b"[\"ok\",\"\xff\"]").is_some());
        assert!(json(b"[\"\xff\"]").is_none());
    }

    #[test]
    fn malformed_or_trailing_json_is_no_schema() {
        let caps = SchemaCaps::default();
        let mut c = SchemaCounters::default();
        assert!(Schema::from_json(br#"{"a":1"#, &caps, &mut c).is_none());
        assert!(Schema::from_json(br#"{"a":1} x"#, &caps, &mut c).is_none());
        assert!(Schema::from_json(b"", &caps, &mut c).is_none());
        let s = Schema::from_json(b" {\"a\\u0041\":[1,2.5]} ", &caps, &mut c).unwrap();
        assert!(s.object.unwrap().props.contains_key("aA"));
    }

    fn learn(samples: &[&str]) -> Schema {
        let caps = SchemaCaps::default();
        let mut c = SchemaCounters::default();
        let mut s = Schema::default();
        for t in samples {
            let v: Value = serde_json::from_str(t).unwrap();
            s.merge(Schema::from_value(&v, "", &caps, &mut c), &caps, &mut c);
        }
        s
    }

    #[test]
    fn required_nullable_and_formats() {
        let s = learn(&[
            r#"{"id":1,"email":"a@example.com","when":"2024-01-02T03:04:05Z","note":null,"tags":["x"]}"#,
            r#"{"id":2,"email":"b@example.org","when":"2024-01-02T03:04:05.123+01:00","note":"hi"}"#,
        ]);
        let j = s.to_json_schema(&SchemaCaps::default());
        assert_eq!(j["type"], "object");
        assert_eq!(j["properties"]["id"]["type"], "integer");
        assert_eq!(j["properties"]["email"]["format"], "email");
        assert_eq!(j["properties"]["when"]["format"], "date-time");
        assert_eq!(j["properties"]["note"]["type"], json!(["string", "null"]));
        assert_eq!(j["properties"]["tags"]["items"]["type"], "string");
        let req: Vec<&str> = j["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(req, ["email", "id", "note", "when"]);
    }

    #[test]
    fn formats() {
        assert_eq!(detect_format("123e4567-e89b-12d3-a456-426614174000"), Some(Format::Uuid));
        assert_eq!(detect_format("2024-02-29"), Some(Format::Date));
        assert_eq!(detect_format("2024-13-01"), None);
        assert_eq!(detect_format("10.0.0.1"), Some(Format::Ipv4));
        assert_eq!(detect_format("2001:db8::1"), Some(Format::Ipv6));
        assert_eq!(detect_format("https://cdn.example/p/1.jpg"), Some(Format::Uri));
        assert_eq!(detect_format("hello world"), None);
        assert_eq!(detect_format("12:30"), None);
    }

    #[test]
    fn integer_and_number_widen() {
        let s = learn(&["1", "2.5"]);
        assert_eq!(s.to_json_schema(&SchemaCaps::default())["type"], "number");
    }

    #[test]
    fn enums_only_for_small_stable_code_sets() {
        let mut samples = Vec::new();
        for i in 0..30 {
            samples.push(format!(r#"{{"status":"{}","name":"n{}"}}"#, ["paid", "pending", "failed"][i % 3], i % 3));
        }
        let refs: Vec<&str> = samples.iter().map(String::as_str).collect();
        let j = learn(&refs).to_json_schema(&SchemaCaps::default());
        assert_eq!(j["properties"]["status"]["enum"], json!(["failed", "paid", "pending"]));
        // Personal-looking field names never get an enum, whatever the values.
        assert!(j["properties"]["name"].get("enum").is_none());
        // Too many distinct values: no enum.
        let many: Vec<String> =
            (0..40).map(|i| format!(r#"{{"kind":"k{}"}}"#, (b'a' + (i % 20) as u8) as char)).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(learn(&refs).to_json_schema(&SchemaCaps::default())["properties"]["kind"].get("enum").is_none());
        // Too few samples: no enum.
        let j = learn(&[r#"{"s":"a"}"#, r#"{"s":"a"}"#, r#"{"s":"a"}"#]).to_json_schema(&SchemaCaps::default());
        assert!(j["properties"]["s"].get("enum").is_none());
    }

    #[test]
    fn depth_and_width_caps_are_counted() {
        let caps = SchemaCaps { max_depth: 2, max_properties: 3, ..SchemaCaps::default() };
        let mut c = SchemaCounters::default();
        let v: Value = serde_json::from_str(r#"{"a":{"b":{"c":{"d":1}}},"x":1,"y":2,"z":3}"#).unwrap();
        let s = Schema::from_value(&v, "", &caps, &mut c);
        assert_eq!(c.depth_capped, 1);
        assert_eq!(c.width_capped, 1);
        let j = s.to_json_schema(&caps);
        assert_eq!(j["x-mirador-truncated"], true);
        // A deep document never recurses without bound.
        let deep = "[".repeat(100) + &"]".repeat(100);
        let v: Value = serde_json::from_str(&deep).unwrap();
        let _ = Schema::from_value(&v, "", &SchemaCaps::default(), &mut c);
    }

    #[test]
    fn text_values_are_typed() {
        assert_eq!(Schema::from_text("42", "", false).integer, 1);
        assert_eq!(Schema::from_text("007", "", false).integer, 0);
        assert_eq!(Schema::from_text("true", "", false).boolean, 1);
        assert_eq!(Schema::from_text("2.5", "", false).number, 1);
        let s = Schema::from_text("a@b.example", "", false);
        assert_eq!(s.string.unwrap().format, FormatState::One(Format::Email));
    }
}
