//! The one internal model every spec dialect (Swagger 2.0, OpenAPI 3.0 and 3.1) and the inventory's
//! observed OpenAPI documents are normalised into, so that the diff compares like with like.

use std::collections::BTreeMap;

use serde::Serialize;

/// Which dialect a document was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Dialect {
    #[serde(rename = "swagger-2.0")]
    Swagger2,
    #[serde(rename = "openapi-3.0")]
    OpenApi30,
    #[serde(rename = "openapi-3.1")]
    OpenApi31,
}

/// One segment of a path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// `{name}`: the whole segment is one parameter.
    Param(String),
    /// Text and parameters mixed, e.g. `{name}.json`: the literal pieces in order.
    Mixed(Vec<String>),
}

impl Segment {
    /// A trailing `/` is kept as a last empty literal: `/items/` and `/items` are different paths.
    pub fn parse_path(path: &str) -> Vec<Segment> {
        let trailing = path.len() > 1 && path.ends_with('/') && path.bytes().any(|c| c != b'/');
        path.split('/')
            .filter(|s| !s.is_empty())
            .chain(trailing.then_some(""))
            .map(|s: &str| {
                if !s.contains('{') {
                    return Segment::Literal(s.to_owned());
                }
                if s.starts_with('{') && s.ends_with('}') && s.matches('{').count() == 1 {
                    return Segment::Param(s.get(1..s.len() - 1).unwrap_or_default().to_owned());
                }
                // Literal pieces between the `{...}` groups.
                let mut pieces = Vec::new();
                let mut rest = s;
                while let Some(open) = rest.find('{') {
                    pieces.push(rest.get(..open).unwrap_or_default().to_owned());
                    rest = match rest.get(open..).and_then(|r| r.find('}')) {
                        Some(close) => rest.get(open + close + 1..).unwrap_or_default(),
                        None => "",
                    };
                }
                pieces.push(rest.to_owned());
                Segment::Mixed(pieces)
            })
            .collect()
    }
}

/// JSON Schema types as a small bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Types(pub u8);

impl Types {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    pub const INTEGER: u8 = 4;
    pub const NUMBER: u8 = 8;
    pub const STRING: u8 = 16;
    pub const ARRAY: u8 = 32;
    pub const OBJECT: u8 = 64;
    const NAMES: [(u8, &'static str); 7] = [
        (Self::NULL, "null"),
        (Self::BOOLEAN, "boolean"),
        (Self::INTEGER, "integer"),
        (Self::NUMBER, "number"),
        (Self::STRING, "string"),
        (Self::ARRAY, "array"),
        (Self::OBJECT, "object"),
    ];

    pub fn from_name(n: &str) -> Option<u8> {
        Self::NAMES.iter().find(|(_, s)| *s == n).map(|(b, _)| *b)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES.iter().filter(|(b, _)| self.has(*b)).map(|(_, s)| *s).collect()
    }
}

/// What `additionalProperties` says.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Additional {
    /// Absent or `true`: anything else is allowed but not documented.
    #[default]
    Allowed,
    /// `false` (or `unevaluatedProperties: false`).
    Forbidden,
    /// A schema for the other properties (a map).
    Schema(Box<Schema>),
}

/// A JSON Schema reduced to what the diff compares: types, object properties, array items, constraints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schema {
    /// Empty: any type (no `type` given and nothing implies one).
    pub types: Types,
    pub format: Option<String>,
    /// Has any value constraint (enum, const, format, pattern, length, range, multipleOf, item counts).
    pub constrained: bool,
    pub properties: BTreeMap<String, Schema>,
    pub additional: Additional,
    pub items: Option<Box<Schema>>,
    pub required: Vec<String>,
    /// From `oneOf`/`anyOf`: alternatives merged, so type checks are lenient.
    pub union: bool,
    /// Could not be followed (a cycle, an external `$ref`, the depth or size cap): compares as "anything".
    pub opaque: bool,
}

impl Schema {
    /// Says nothing at all: no type, no properties, no items.
    pub fn is_unconstrained(&self) -> bool {
        self.opaque
            || (self.types.is_empty() && self.properties.is_empty() && self.items.is_none() && !self.constrained)
    }
}

/// Where a parameter travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamIn {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParamIn {
    pub fn from_name(n: &str) -> Option<ParamIn> {
        Some(match n {
            "path" => ParamIn::Path,
            "query" => ParamIn::Query,
            "header" => ParamIn::Header,
            "cookie" => ParamIn::Cookie,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ParamIn::Path => "path",
            ParamIn::Query => "query",
            ParamIn::Header => "header",
            ParamIn::Cookie => "cookie",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub location: ParamIn,
    pub name: String,
    pub required: bool,
    pub deprecated: bool,
    /// `None`: the parameter has neither `schema` nor `type` (or `content` without a schema).
    pub schema: Option<Schema>,
}

/// A media type and its schema (`None`: the media type is declared without a schema).
#[derive(Clone, Debug, PartialEq)]
pub struct Content {
    pub media_type: String,
    pub schema: Option<Schema>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// `200`, `4XX` or `default`.
    pub status: String,
    pub content: Vec<Content>,
}

/// One operation: a method on a path template.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// Lower case: `get`, `post`, ...
    pub method: String,
    /// As written in the document, e.g. `/users/{userId}`.
    pub template: String,
    pub segments: Vec<Segment>,
    pub operation_id: Option<String>,
    pub deprecated: bool,
    pub parameters: Vec<Param>,
    /// `None`: no request body declared.
    pub request: Option<Vec<Content>>,
    pub responses: Vec<Response>,
    /// The effective security requirements (operation level, else the document's): each entry is one
    /// alternative, a list of scheme names. `None`: nothing declared anywhere; `Some(empty)` or an
    /// alternative with no scheme: explicitly callable without credentials.
    pub security: Option<Vec<Vec<String>>>,
    /// The operation's `x-mirador-*` scalar extensions (statistics in observed documents).
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// JSON pointer of the operation in its document.
    pub pointer: String,
}

/// A security scheme: its type and, for API keys, where the key travels.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecurityScheme {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Counts of what normalisation could not follow (each makes a schema opaque rather than failing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoadStats {
    pub ref_cycles: u64,
    pub external_refs: u64,
    pub depth_capped: u64,
    pub schema_node_cap_hits: u64,
    pub operation_cap_hits: u64,
}

/// A normalised spec (or observed document).
#[derive(Clone, Debug)]
pub struct Spec {
    /// The file it came from, as given.
    pub source: String,
    pub dialect: Dialect,
    pub title: Option<String>,
    /// Path prefixes from `servers[].url` (3.x) or `basePath` (2.0), without trailing slash; `/` is `""`.
    pub base_paths: Vec<String>,
    pub operations: Vec<Operation>,
    pub security_schemes: BTreeMap<String, SecurityScheme>,
    pub stats: LoadStats,
    /// What the document gets wrong but could be read past (an unknown type, a malformed response key, an
    /// unsupported version string, ...): each with its pointer and line, in `spec-diff.json`'s completeness
    /// report. Real specs are sloppy; the meaning of the rest is still clear.
    pub defects: Vec<Defect>,
}

/// One defect of a spec read past (see [`Spec::defects`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Defect {
    pub pointer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub what: String,
}

impl Spec {
    /// The path templates for pinning: each as written and with every declared base path in front (the
    /// traffic may or may not carry the prefix: a proxy may strip it, a mock may ignore it).
    pub fn templates(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for o in &self.operations {
            v.push(o.template.clone());
            v.extend(self.base_paths.iter().map(|b| format!("{b}{}", o.template)));
        }
        v.sort();
        v.dedup();
        v
    }
}
