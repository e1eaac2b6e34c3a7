//! Comparing a spec with an observed OpenAPI document (shadow, zombie, orphan, drift) and judging the
//! spec on its own (completeness).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::load::from_value;
use super::model::*;

/// Drift items kept per diff; more are counted in [`Diff::drift_truncated`]. A spec that disagrees with
/// everything should not produce an unbounded report.
pub const MAX_DRIFT: usize = 5_000;
/// Depth followed when comparing two schemas.
const MAX_COMPARE_DEPTH: usize = 24;

/// Headers every client or server sends: never "undocumented parameters".
const STANDARD_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "content-encoding",
    "cookie",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "origin",
    "pragma",
    "referer",
    "te",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "traceparent",
    "tracestate",
    "dnt",
    "range",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-dest",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
];

/// An observed operation no spec operation documents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shadow {
    pub method: String,
    /// The observed template (with the observed base path).
    pub path: String,
    /// The path is documented, with other methods only.
    pub path_documented: bool,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub observed: serde_json::Map<String, Value>,
}

/// A documented operation: in `zombie` (deprecated yet called) and `orphan` (never seen).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Documented {
    pub method: String,
    pub template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// Observed templates that matched it (zombies only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observed_paths: Vec<String>,
    /// Per observed operation that matched (zombies only): its `path` and `x-mirador-*` statistics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<Value>,
}

/// What kind of disagreement a drift item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    UndocumentedParameter,
    UndocumentedField,
    UndocumentedStatus,
    UndocumentedContentType,
    UndocumentedRequestBody,
    TypeMismatch,
    /// The spec requires credentials, yet calls without any were seen.
    UnauthenticatedCalls,
    /// Calls carried credentials of a kind the operation's security requirements do not name.
    UndocumentedAuthScheme,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    pub kind: DriftKind,
    pub method: String,
    /// The spec's template.
    pub template: String,
    /// `query`, `header`, `cookie`, `path`, `request`, `response.200`, ...
    pub location: String,
    /// Parameter name, `$.a.b` field path, status code or media type.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

/// An observed operation and the spec operation that documents it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Matched {
    pub method: String,
    pub observed_path: String,
    pub template: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub observed_operations: usize,
    pub documented_operations: usize,
    pub matched: usize,
    pub shadow: usize,
    pub zombie: usize,
    pub orphan: usize,
    pub drift: usize,
}

/// The comparison of one spec with one observed document.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Diff {
    pub summary: Summary,
    pub matched: Vec<Matched>,
    pub shadow: Vec<Shadow>,
    pub zombie: Vec<Documented>,
    pub orphan: Vec<Documented>,
    pub drift: Vec<Drift>,
    /// Drift items beyond [`MAX_DRIFT`], not listed.
    pub drift_truncated: u64,
    /// The observed document could not be read at all (every operation is then an orphan).
    pub observed_unreadable: bool,
    /// Drift items already reported (kind, operation, location, name), so each is listed once. Bounded by
    /// the observed document's size.
    #[serde(skip)]
    drift_seen: std::collections::HashSet<String>,
}

/// Normalises an observed document leniently (it is ours; a bad operation is skipped).
pub fn observed_spec(observed: &Value, source: &str) -> Option<Spec> {
    from_value(observed, source, false).ok()
}

/// Compares the spec with an observed OpenAPI document.
pub fn diff(spec: &Spec, observed: &Value) -> Diff {
    match observed_spec(observed, "observed") {
        Some(obs) => diff_specs(spec, &obs),
        None => {
            let mut d = diff_specs(spec, &empty_like(spec));
            d.observed_unreadable = true;
            d
        }
    }
}

fn empty_like(spec: &Spec) -> Spec {
    Spec {
        source: spec.source.clone(),
        dialect: Dialect::OpenApi31,
        title: None,
        base_paths: Vec::new(),
        operations: Vec::new(),
        security_schemes: Default::default(),
        stats: LoadStats::default(),
        defects: Vec::new(),
    }
}

/// How well a template (observed, as segments) fits a spec template: `None` when it does not.
/// Literal = literal scores highest, parameter = parameter next, a concrete observed value in a
/// documented parameter lowest; an observed parameter never matches a documented literal.
pub fn match_score(obs: &[Segment], spec: &[Segment]) -> Option<u32> {
    if obs.len() != spec.len() {
        return None;
    }
    let mut score = 0;
    for (o, s) in obs.iter().zip(spec) {
        score += match (o, s) {
            (Segment::Literal(a), Segment::Literal(b)) if a == b => 3,
            // A trailing slash (the empty last literal) is only ever itself.
            (Segment::Literal(a), _) | (_, Segment::Literal(a)) if a.is_empty() => return None,
            (Segment::Literal(a), Segment::Mixed(pieces)) if mixed_matches(a, pieces) => 2,
            (Segment::Mixed(a), Segment::Mixed(b)) if a == b => 2,
            (Segment::Param(_), Segment::Param(_)) => 2,
            (Segment::Mixed(_), Segment::Param(_)) => 1,
            (Segment::Literal(_), Segment::Param(_)) => 1,
            _ => return None,
        };
    }
    Some(score)
}

/// Whether a literal segment fits a mixed template segment (its literal pieces, in order).
fn mixed_matches(lit: &str, pieces: &[String]) -> bool {
    let mut rest = lit;
    for (i, p) in pieces.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p.as_str()) else { return false };
            rest = r;
        } else if i == pieces.len() - 1 {
            return rest.len() > p.len() && rest.ends_with(p.as_str());
        } else {
            match rest.get(1..).and_then(|r| r.find(p.as_str())) {
                Some(j) => rest = rest.get(1 + j + p.len()..).unwrap_or_default(),
                None => return false,
            }
        }
    }
    true
}

/// Joins a base path and a template into segments.
fn full_segments(base: &str, template: &str) -> Vec<Segment> {
    Segment::parse_path(&format!("{base}{template}"))
}

/// Bucket of a template: method, segment count, and its first segment when that is a literal.
type Key = (String, usize, Option<String>);

fn first_literal(segs: &[Segment]) -> Option<String> {
    match segs.first() {
        Some(Segment::Literal(l)) => Some(l.clone()),
        _ => None,
    }
}

/// The spec's templates (each with every declared base path, then bare) bucketed by method, segment count
/// and first literal: an observed operation is only compared with templates it could match, so a large
/// spec and a large observed document do not multiply.
struct SpecIndex {
    by_key: HashMap<Key, Vec<(usize, bool, Vec<Segment>)>>,
    /// Every variant by segment count and first literal, any method.
    by_len: HashMap<(usize, Option<String>), Vec<Vec<Segment>>>,
}

impl SpecIndex {
    fn new(spec: &Spec) -> SpecIndex {
        let mut by_key: HashMap<Key, Vec<(usize, bool, Vec<Segment>)>> = HashMap::new();
        let mut by_len: HashMap<(usize, Option<String>), Vec<Vec<Segment>>> = HashMap::new();
        for (i, op) in spec.operations.iter().enumerate() {
            let mut variants: Vec<(bool, Vec<Segment>)> =
                spec.base_paths.iter().map(|b| (true, full_segments(b, &op.template))).collect();
            variants.push((false, op.segments.clone()));
            for (with_base, segs) in variants {
                by_len.entry((segs.len(), first_literal(&segs))).or_default().push(segs.clone());
                let key = (op.method.to_ascii_lowercase(), segs.len(), first_literal(&segs));
                by_key.entry(key).or_default().push((i, with_base, segs));
            }
        }
        SpecIndex { by_key, by_len }
    }

    /// The best spec operation for an observed one: `(index, score)`. The declared base path wins a tie
    /// over the bare template (a sensor behind a prefix-stripping proxy sees bare paths).
    fn best(&self, method: &str, obs: &[Segment]) -> Option<(usize, u32)> {
        let mut best: Option<(usize, u32)> = None;
        let method = method.to_ascii_lowercase();
        // A literal first segment can match the same literal or a parameter; anything else only a parameter.
        let mut keys = vec![(method.clone(), obs.len(), None)];
        if let Some(l) = first_literal(obs) {
            keys.push((method, obs.len(), Some(l)));
        }
        let candidates = keys.iter().filter_map(|k| self.by_key.get(k)).flatten();
        for (i, with_base, segs) in candidates {
            if let Some(s) = match_score(obs, segs) {
                let s = s * 2 + u32::from(*with_base);
                if best.is_none_or(|(_, b)| s > b) {
                    best = Some((*i, s));
                }
            }
        }
        best
    }

    /// Whether any operation, whatever its method, documents this path.
    fn path_documented(&self, obs: &[Segment]) -> bool {
        let mut keys = vec![(obs.len(), None)];
        if let Some(l) = first_literal(obs) {
            keys.push((obs.len(), Some(l)));
        }
        keys.iter().filter_map(|k| self.by_len.get(k)).flatten().any(|segs| match_score(obs, segs).is_some())
    }
}

/// How many of the observed operations the spec documents (used to pick the service a spec belongs to).
pub fn coverage(spec: &Spec, observed: &Spec) -> usize {
    let index = SpecIndex::new(spec);
    let obase = observed.base_paths.first().map(String::as_str).unwrap_or("");
    observed.operations.iter().filter(|o| index.best(&o.method, &full_segments(obase, &o.template)).is_some()).count()
}

/// Compares two normalised documents: `spec` (the owner's) and `obs` (observed).
pub fn diff_specs(spec: &Spec, obs: &Spec) -> Diff {
    let mut d = Diff::default();
    let index = SpecIndex::new(spec);
    let obase = obs.base_paths.first().map(String::as_str).unwrap_or("");
    let mut seen: Vec<Vec<usize>> = vec![Vec::new(); spec.operations.len()];
    for (oi, o) in obs.operations.iter().enumerate() {
        let osegs = full_segments(obase, &o.template);
        let observed_path = format!("{obase}{}", o.template);
        match index.best(&o.method, &osegs) {
            Some((si, _)) => {
                if let Some(v) = seen.get_mut(si) {
                    v.push(oi);
                }
                let Some(sop) = spec.operations.get(si) else { continue };
                d.matched.push(Matched {
                    method: o.method.to_ascii_uppercase(),
                    observed_path,
                    template: sop.template.clone(),
                });
                drift_op(spec, obs, sop, o, &mut d);
            }
            None => {
                let path_documented = index.path_documented(&osegs);
                d.shadow.push(Shadow {
                    method: o.method.to_ascii_uppercase(),
                    path: observed_path,
                    path_documented,
                    observed: o.extensions.clone(),
                });
            }
        }
    }
    for (si, sop) in spec.operations.iter().enumerate() {
        let hits = seen.get(si).map(Vec::as_slice).unwrap_or_default();
        if hits.is_empty() {
            d.orphan.push(Documented {
                method: sop.method.to_ascii_uppercase(),
                template: sop.template.clone(),
                operation_id: sop.operation_id.clone(),
                observed_paths: Vec::new(),
                observed: Default::default(),
            });
        } else if sop.deprecated {
            // Each observed operation that matched, with its statistics (counts, first and last seen).
            let observed: Vec<Value> = hits
                .iter()
                .filter_map(|&oi| obs.operations.get(oi))
                .map(|o| {
                    let mut m = o.extensions.clone();
                    m.insert("path".to_owned(), Value::from(format!("{obase}{}", o.template)));
                    Value::Object(m)
                })
                .collect();
            d.zombie.push(Documented {
                method: sop.method.to_ascii_uppercase(),
                template: sop.template.clone(),
                operation_id: sop.operation_id.clone(),
                observed_paths: hits
                    .iter()
                    .filter_map(|&oi| obs.operations.get(oi))
                    .map(|o| format!("{obase}{}", o.template))
                    .collect(),
                observed,
            });
        }
    }
    d.summary = Summary {
        observed_operations: obs.operations.len(),
        documented_operations: spec.operations.len(),
        matched: d.matched.len(),
        shadow: d.shadow.len(),
        zombie: d.zombie.len(),
        orphan: d.orphan.len(),
        drift: d.drift.len() + d.drift_truncated as usize,
    };
    d
}

fn push_drift(d: &mut Diff, item: Drift) {
    let key =
        format!("{:?}\u{0}{}\u{0}{}\u{0}{}\u{0}{}", item.kind, item.method, item.template, item.location, item.name);
    if !d.drift_seen.insert(key) {
        return;
    }
    if d.drift.len() >= MAX_DRIFT {
        d.drift_truncated += 1;
    } else {
        d.drift.push(item);
    }
}

fn types_str(t: Types) -> String {
    t.names().join("|")
}

/// A parameter value arrives as text: a documented string accepts anything, otherwise the observed type
/// must be one the spec allows (an integer is a number).
fn param_types_compatible(spec: Types, obs: Types) -> bool {
    if spec.is_empty() || obs.is_empty() || spec.has(Types::STRING) {
        return true;
    }
    json_types_compatible(spec, obs)
}

fn json_types_compatible(spec: Types, obs: Types) -> bool {
    if spec.is_empty() || obs.is_empty() {
        return true;
    }
    let mut spec_bits = spec.0;
    if spec.has(Types::NUMBER) {
        spec_bits |= Types::INTEGER;
    }
    obs.0 & !spec_bits == 0
}

fn drift_op(spec: &Spec, obs: &Spec, sop: &Operation, o: &Operation, d: &mut Diff) {
    let method = sop.method.to_ascii_uppercase();
    let mk = |kind, location: &str, name: &str, expected: Option<String>, observed: Option<String>| Drift {
        kind,
        method: method.clone(),
        template: sop.template.clone(),
        location: location.to_owned(),
        name: name.to_owned(),
        expected,
        observed,
    };
    // Parameters (query, header, cookie by name; path by position).
    for p in &o.parameters {
        let documented = if p.location == ParamIn::Path {
            // Aligned from the end: the two templates may carry different base paths.
            path_param_at(o, &p.name).and_then(|pos| (sop.segments.len() + pos).checked_sub(o.segments.len())).and_then(
                |pos| match sop.segments.get(pos) {
                    Some(Segment::Param(n)) => {
                        sop.parameters.iter().find(|q| q.location == ParamIn::Path && &q.name == n)
                    }
                    _ => None,
                },
            )
        } else {
            sop.parameters.iter().find(|q| {
                q.location == p.location
                    && if p.location == ParamIn::Header {
                        q.name.eq_ignore_ascii_case(&p.name)
                    } else {
                        q.name == p.name
                    }
            })
        };
        match documented {
            Some(q) => {
                if let (Some(qs), Some(ps)) = (&q.schema, &p.schema)
                    && !param_types_compatible(qs.types, ps.types)
                {
                    push_drift(
                        d,
                        mk(
                            DriftKind::TypeMismatch,
                            p.location.as_str(),
                            &p.name,
                            Some(types_str(qs.types)),
                            Some(types_str(ps.types)),
                        ),
                    );
                }
            }
            None if p.location == ParamIn::Path => {}
            None => {
                let lname = p.name.to_ascii_lowercase();
                let standard = p.location == ParamIn::Header && STANDARD_HEADERS.contains(&lname.as_str());
                let is_key = spec.security_schemes.values().any(|s| {
                    s.location.as_deref() == Some(p.location.as_str())
                        && s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&p.name))
                });
                if !standard && !is_key {
                    push_drift(d, mk(DriftKind::UndocumentedParameter, p.location.as_str(), &p.name, None, None));
                }
            }
        }
    }
    // Request bodies.
    if let Some(obs_req) = &o.request {
        match &sop.request {
            None => {
                for c in obs_req {
                    push_drift(d, mk(DriftKind::UndocumentedRequestBody, "request", &c.media_type, None, None));
                }
                if obs_req.is_empty() {
                    push_drift(d, mk(DriftKind::UndocumentedRequestBody, "request", "", None, None));
                }
            }
            Some(spec_req) => compare_contents(spec_req, obs_req, "request", &mk, d),
        }
    }
    // Authentication, as the observed document records it: one requirement per scheme seen, `{}` for calls
    // without credentials.
    if let (Some(seen), Some(reqs)) = (&o.security, &sop.security) {
        let required = !reqs.is_empty() && reqs.iter().all(|alt| !alt.is_empty());
        let expected = || {
            let alts: Vec<String> = reqs.iter().map(|alt| alt.join("+")).collect();
            Some(alts.join(" | "))
        };
        if required && seen.iter().any(Vec::is_empty) {
            push_drift(d, mk(DriftKind::UnauthenticatedCalls, "security", "none", expected(), None));
        }
        let allowed: Vec<&SecurityScheme> =
            reqs.iter().flatten().filter_map(|n| spec.security_schemes.get(n)).collect();
        if !allowed.is_empty() {
            for name in seen.iter().flatten() {
                let Some(s) = obs.security_schemes.get(name) else { continue };
                if !allowed.iter().any(|a| scheme_covers(a, s)) {
                    push_drift(
                        d,
                        mk(DriftKind::UndocumentedAuthScheme, "security", &describe_scheme(s), expected(), None),
                    );
                }
            }
        }
    }
    // Responses.
    for r in &o.responses {
        let found = sop
            .responses
            .iter()
            .find(|s| s.status == r.status)
            .or_else(|| {
                let range = format!("{}XX", r.status.get(..1).unwrap_or_default());
                sop.responses.iter().find(|s| s.status == range)
            })
            .or_else(|| sop.responses.iter().find(|s| s.status == "default"));
        match found {
            None => push_drift(d, mk(DriftKind::UndocumentedStatus, "response", &r.status, None, None)),
            Some(s) => compare_contents(&s.content, &r.content, &format!("response.{}", r.status), &mk, d),
        }
    }
}

/// Whether a documented scheme accepts the credentials of an observed one (an OAuth2 or OpenID Connect
/// token travels as a bearer token).
fn scheme_covers(spec: &SecurityScheme, obs: &SecurityScheme) -> bool {
    match (spec.kind.as_str(), obs.kind.as_str()) {
        ("apiKey", "apiKey") => {
            spec.location == obs.location
                && match (&spec.name, &obs.name) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => true,
                }
        }
        ("oauth2" | "openIdConnect", o) => o == "http-bearer",
        ("http", o) => o.starts_with("http"),
        (a, b) => a == b,
    }
}

/// `http-basic`, `apiKey header X-Key`.
fn describe_scheme(s: &SecurityScheme) -> String {
    match (&s.location, &s.name) {
        (Some(l), Some(n)) => format!("{} {l} {n}", s.kind),
        _ => s.kind.clone(),
    }
}

/// The segment position of observed path parameter `name`.
fn path_param_at(o: &Operation, name: &str) -> Option<usize> {
    o.segments.iter().position(|s| matches!(s, Segment::Param(n) if n == name))
}

fn media_essence(m: &str) -> String {
    m.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Whether a documented media type (possibly a wildcard) covers an observed one.
fn media_covers(spec: &str, obs: &str) -> bool {
    let (s, o) = (media_essence(spec), media_essence(obs));
    if s == o || s == "*/*" {
        return true;
    }
    match s.strip_suffix("/*") {
        Some(top) => o.split('/').next() == Some(top),
        None => false,
    }
}

fn compare_contents(
    spec: &[Content],
    obs: &[Content],
    location: &str,
    mk: &impl Fn(DriftKind, &str, &str, Option<String>, Option<String>) -> Drift,
    d: &mut Diff,
) {
    for c in obs {
        // The most specific documented media type that covers it.
        let found = spec
            .iter()
            .filter(|s| media_covers(&s.media_type, &c.media_type))
            .max_by_key(|s| usize::from(!s.media_type.contains('*')));
        match found {
            None => {
                let expected = spec.iter().map(|s| s.media_type.as_str()).collect::<Vec<_>>().join(", ");
                push_drift(
                    d,
                    mk(
                        DriftKind::UndocumentedContentType,
                        location,
                        &media_essence(&c.media_type),
                        (!expected.is_empty()).then_some(expected),
                        None,
                    ),
                );
            }
            Some(s) => {
                if let (Some(ss), Some(os)) = (&s.schema, &c.schema) {
                    compare_schema(ss, os, &format!("{location}.body"), "$", 0, mk, d);
                }
            }
        }
    }
}

fn compare_schema(
    spec: &Schema,
    obs: &Schema,
    location: &str,
    path: &str,
    depth: usize,
    mk: &impl Fn(DriftKind, &str, &str, Option<String>, Option<String>) -> Drift,
    d: &mut Diff,
) {
    if depth > MAX_COMPARE_DEPTH || spec.opaque || obs.opaque || spec.is_unconstrained() {
        return;
    }
    if !spec.union && !json_types_compatible(spec.types, obs.types) {
        push_drift(
            d,
            mk(DriftKind::TypeMismatch, location, path, Some(types_str(spec.types)), Some(types_str(obs.types))),
        );
        return;
    }
    for (k, ov) in &obs.properties {
        let child = field_path(path, k);
        match spec.properties.get(k) {
            Some(sv) => compare_schema(sv, ov, location, &child, depth + 1, mk, d),
            None => match &spec.additional {
                Additional::Schema(a) => compare_schema(a, ov, location, &child, depth + 1, mk, d),
                // A free-form object (no properties listed, extra ones allowed) documents any field.
                Additional::Allowed if spec.properties.is_empty() => {}
                _ => push_drift(d, mk(DriftKind::UndocumentedField, location, &child, None, None)),
            },
        }
    }
    if let (Some(si), Some(oi)) = (&spec.items, &obs.items) {
        compare_schema(si, oi, location, &format!("{path}[]"), depth + 1, mk, d);
    }
}

/// `$.a.b` for plain names; `$["odd key"]` (JSON-quoted) for names that would make the path ambiguous.
fn field_path(parent: &str, key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", Value::from(key))
    }
}

/// One way a spec is incomplete.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incomplete {
    pub kind: IncompleteKind,
    pub method: String,
    pub template: String,
    /// Parameter `in.name`, or the security scheme name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON pointer of the operation in the spec.
    pub pointer: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncompleteKind {
    /// POST/PUT/PATCH without a request body schema.
    NoRequestSchema,
    /// No successful response with a body schema (and not a body-less success such as 204).
    NoResponseSchema,
    NoResponses,
    ParameterWithoutType,
    ParameterWithoutConstraints,
    /// No security requirement on the operation nor the document.
    MissingSecurity,
    /// A requirement names a scheme the document does not define.
    UndefinedSecurityScheme,
}

/// The completeness report on a spec: what an "incomplete definition file" leaves out.
pub fn completeness(spec: &Spec) -> Vec<Incomplete> {
    let mut out = Vec::new();
    for op in &spec.operations {
        let mk = |kind, name: Option<String>| Incomplete {
            kind,
            method: op.method.to_ascii_uppercase(),
            template: op.template.clone(),
            name,
            pointer: op.pointer.clone(),
        };
        if matches!(op.method.as_str(), "post" | "put" | "patch") {
            let has_schema = op.request.as_ref().is_some_and(|cs| {
                cs.iter().any(|c| c.schema.as_ref().is_some_and(|s| !s.is_unconstrained() || s.opaque))
            });
            if !has_schema {
                out.push(mk(IncompleteKind::NoRequestSchema, None));
            }
        }
        if op.responses.is_empty() {
            out.push(mk(IncompleteKind::NoResponses, None));
        } else if !matches!(op.method.as_str(), "head" | "options") {
            let success: Vec<&Response> = op.responses.iter().filter(|r| r.status.starts_with('2')).collect();
            let success = if success.is_empty() {
                op.responses.iter().filter(|r| r.status == "default").collect()
            } else {
                success
            };
            let bodiless = !success.is_empty() && success.iter().all(|r| matches!(r.status.as_str(), "204" | "205"));
            let has_schema = success.iter().any(|r| r.content.iter().any(|c| c.schema.is_some()));
            if !has_schema && !bodiless {
                out.push(mk(IncompleteKind::NoResponseSchema, None));
            }
        }
        for p in &op.parameters {
            let name = Some(format!("{}.{}", p.location.as_str(), p.name));
            match &p.schema {
                None => out.push(mk(IncompleteKind::ParameterWithoutType, name)),
                Some(s) if s.types.is_empty() && !s.opaque && !s.union => {
                    out.push(mk(IncompleteKind::ParameterWithoutType, name))
                }
                Some(s) => {
                    let needs = s.types.has(Types::STRING) || s.types.has(Types::INTEGER) || s.types.has(Types::NUMBER);
                    if needs && !s.constrained && !s.opaque {
                        out.push(mk(IncompleteKind::ParameterWithoutConstraints, name));
                    }
                }
            }
        }
        match &op.security {
            None => out.push(mk(IncompleteKind::MissingSecurity, None)),
            Some(reqs) => {
                for name in reqs.iter().flatten() {
                    if !spec.security_schemes.contains_key(name) {
                        out.push(mk(IncompleteKind::UndefinedSecurityScheme, Some(name.clone())));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::load::parse_spec;
    use super::*;
    use serde_json::json;

    fn segs(p: &str) -> Vec<Segment> {
        Segment::parse_path(p)
    }

    /// The owner's spec used by the diff tests: base path /v1, one deprecated operation.
    const SPEC: &str = r#"openapi: 3.0.3
servers: [{url: "https://api.example.com/v1"}]
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Api-Key}
security: [{key: []}]
paths:
  /users/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, maximum: 1000000}}
        - {name: fields, in: query, schema: {type: string, enum: [short, long]}}
        - {name: page, in: query, schema: {type: integer, minimum: 1}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  id: {type: integer}
                  name: {type: string}
                  address: {type: object, properties: {city: {type: string}}}
                  meta: {type: object}
        '404': {description: missing}
  /users/me:
    get:
      responses:
        '200': {description: ok, content: {application/json: {schema: {type: object}}}}
  /users:
    post:
      requestBody:
        content:
          application/json:
            schema: {type: object, additionalProperties: false, properties: {name: {type: string}}}
      responses:
        '201': {description: created}
        default: {description: error}
  /old/report:
    get:
      deprecated: true
      responses: {'200': {description: ok}}
  /never/called:
    get:
      responses: {'200': {description: ok}}
"#;

    fn spec() -> Spec {
        parse_spec(SPEC, "spec.yaml", false).unwrap()
    }

    /// An observed document in the inventory's shape (OpenAPI 3.1, observed names, x-mirador stats).
    fn observed() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "api.example.com", "version": "observed"},
            "paths": {
                "/v1/users/{userId}": {"get": {
                    "x-mirador-count": 12,
                    "parameters": [
                        {"name": "userId", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "fields", "in": "query", "schema": {"type": "string"}},
                        {"name": "page", "in": "query", "schema": {"type": "string"}},
                        {"name": "debug", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "X-Api-Key", "in": "header", "schema": {"type": "string"}},
                        {"name": "User-Agent", "in": "header", "schema": {"type": "string"}},
                        {"name": "X-Tenant", "in": "header", "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "seen", "content": {"application/json; charset=utf-8": {"schema": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "name": {"type": "string"},
                                "ssn": {"type": "string"},
                                "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}},
                                "meta": {"type": "object", "properties": {"anything": {"type": "integer"}}}
                            }}}}},
                        "404": {"description": "seen"},
                        "500": {"description": "seen", "content": {"text/html": {}}}
                    }
                }},
                "/v1/users/me": {"get": {"responses": {"200": {"description": "seen"}}}},
                "/v1/users": {"post": {
                    "requestBody": {"content": {
                        "application/json": {"schema": {"type": "object", "properties": {"name": {"type": "string"}, "isAdmin": {"type": "boolean"}}}},
                        "application/xml": {}
                    }},
                    "responses": {"201": {"description": "seen"}, "409": {"description": "seen"}}
                }},
                "/v1/old/report": {"get": {"x-mirador-count": 3, "responses": {"200": {"description": "seen"}}}},
                "/v1/admin/export": {"get": {"x-mirador-count": 1, "responses": {"200": {"description": "seen"}}}},
                "/v1/users/{userId}/avatar": {"get": {"responses": {"200": {"description": "seen"}}}},
                "/v1/users/me/x": {"delete": {"responses": {"200": {"description": "seen"}}}}
            }
        })
    }

    #[test]
    fn templates_match_by_structure() {
        assert!(match_score(&segs("/users/{userId}"), &segs("/users/{id}")).is_some());
        assert!(match_score(&segs("/users/42"), &segs("/users/{id}")).is_some());
        // A literal beats a parameter.
        assert!(
            match_score(&segs("/users/me"), &segs("/users/me")) > match_score(&segs("/users/me"), &segs("/users/{id}"))
        );
        // An observed parameter is never a documented literal; lengths must agree.
        assert_eq!(match_score(&segs("/users/{userId}"), &segs("/users/me")), None);
        assert_eq!(match_score(&segs("/users"), &segs("/users/{id}")), None);
        assert_eq!(match_score(&segs("/users/1/x"), &segs("/users/{id}")), None);
        // A trailing slash is part of the path.
        assert!(match_score(&segs("/users/"), &segs("/users/")).is_some());
        assert!(match_score(&segs("/users/{userId}/"), &segs("/users/{id}/")).is_some());
        assert_eq!(match_score(&segs("/users/"), &segs("/users")), None);
        assert_eq!(match_score(&segs("/users/"), &segs("/users/{id}")), None);
        assert_eq!(match_score(&segs("/users/{id}"), &segs("/users/")), None);
        // Mixed segments.
        assert!(match_score(&segs("/files/report.json"), &segs("/files/{name}.json")).is_some());
        assert_eq!(match_score(&segs("/files/report.xml"), &segs("/files/{name}.json")), None);
        assert_eq!(match_score(&segs("/files/.json"), &segs("/files/{name}.json")), None);
        assert!(match_score(&segs("/a/v1-7-x"), &segs("/a/v{major}-{minor}-x")).is_some());
        // Doubled slashes do not matter; a trailing one does (above).
        assert!(match_score(&segs("/users/"), &segs("//users/")).is_some());
        assert!(match_score(&segs("/users"), &segs("//users")).is_some());
    }

    #[test]
    fn shadow_zombie_orphan() {
        let d = diff(&spec(), &observed());
        let shadows: Vec<(&str, &str, bool)> =
            d.shadow.iter().map(|s| (s.method.as_str(), s.path.as_str(), s.path_documented)).collect();
        assert!(shadows.contains(&("GET", "/v1/admin/export", false)), "{shadows:?}");
        assert!(shadows.contains(&("GET", "/v1/users/{userId}/avatar", false)), "{shadows:?}");
        assert!(shadows.contains(&("DELETE", "/v1/users/me/x", false)), "{shadows:?}");
        assert_eq!(d.shadow.len(), 3, "{shadows:?}");
        assert_eq!(d.shadow.iter().find(|s| s.path == "/v1/admin/export").unwrap().observed["x-mirador-count"], 1);
        assert_eq!(d.zombie.len(), 1);
        assert_eq!(d.zombie[0].template, "/old/report");
        assert_eq!(d.zombie[0].observed_paths, ["/v1/old/report"]);
        assert_eq!(d.zombie[0].observed, [json!({"path": "/v1/old/report", "x-mirador-count": 3})]);
        assert_eq!(d.orphan.iter().map(|o| o.template.as_str()).collect::<Vec<_>>(), ["/never/called"]);
        // /users/me went to the literal, not the {id} template.
        assert!(d.matched.iter().any(|m| m.observed_path == "/v1/users/me" && m.template == "/users/me"));
        assert!(d.matched.iter().any(|m| m.observed_path == "/v1/users/{userId}" && m.template == "/users/{id}"));
        assert_eq!(d.summary.matched, 4);
        assert_eq!(d.summary.observed_operations, 7);
        assert_eq!(d.summary.documented_operations, 5);
    }

    #[test]
    fn path_documented_with_another_method() {
        let s = parse_spec("openapi: 3.0.0\npaths:\n  /a/{x}:\n    get: {responses: {}}\n", "s", false).unwrap();
        let d = diff(&s, &json!({"openapi": "3.1.0", "paths": {"/a/{id}": {"put": {"responses": {}}}}}));
        assert_eq!(d.shadow.len(), 1);
        assert!(d.shadow[0].path_documented);
        assert_eq!(d.orphan.len(), 1);
    }

    fn drift_of(d: &Diff, kind: DriftKind) -> Vec<(String, String)> {
        d.drift.iter().filter(|x| x.kind == kind).map(|x| (x.location.clone(), x.name.clone())).collect()
    }

    #[test]
    fn drift_parameters() {
        let d = diff(&spec(), &observed());
        let undocumented = drift_of(&d, DriftKind::UndocumentedParameter);
        // `debug` and X-Tenant are undocumented; the API key header (a security scheme) and User-Agent are not.
        assert_eq!(
            undocumented,
            [("query".to_owned(), "debug".to_owned()), ("header".to_owned(), "X-Tenant".to_owned())]
        );
        let mism = drift_of(&d, DriftKind::TypeMismatch);
        // page: documented integer, seen non-numeric text; the path id: integer vs string. `fields` is a
        // string both ways, and an enum is not checked against observed values.
        assert!(mism.contains(&("query".to_owned(), "page".to_owned())), "{mism:?}");
        assert!(mism.contains(&("path".to_owned(), "userId".to_owned())), "{mism:?}");
        assert!(!mism.iter().any(|(_, n)| n == "fields"), "{mism:?}");
    }

    #[test]
    fn drift_bodies_statuses_content_types() {
        let d = diff(&spec(), &observed());
        let fields = drift_of(&d, DriftKind::UndocumentedField);
        assert!(fields.contains(&("response.200.body".to_owned(), "$.ssn".to_owned())), "{fields:?}");
        assert!(fields.contains(&("response.200.body".to_owned(), "$.address.zip".to_owned())), "{fields:?}");
        assert!(fields.contains(&("request.body".to_owned(), "$.isAdmin".to_owned())), "{fields:?}");
        // `meta` is a free-form object: anything inside is documented.
        assert!(!fields.iter().any(|(_, n)| n.starts_with("$.meta")), "{fields:?}");
        let mism = drift_of(&d, DriftKind::TypeMismatch);
        assert!(mism.contains(&("response.200.body".to_owned(), "$.id".to_owned())), "{mism:?}");
        let m = d.drift.iter().find(|x| x.name == "$.id").unwrap();
        assert_eq!((m.expected.as_deref(), m.observed.as_deref()), (Some("integer"), Some("string")));
        // 500 on GET /users/{id} is undocumented; 409 on POST /users is covered by `default`.
        assert_eq!(drift_of(&d, DriftKind::UndocumentedStatus), [("response".to_owned(), "500".to_owned())]);
        // application/xml request bodies are undocumented; `; charset=utf-8` does not matter.
        assert_eq!(
            drift_of(&d, DriftKind::UndocumentedContentType),
            [("request".to_owned(), "application/xml".to_owned())]
        );
        assert_eq!(d.summary.drift, d.drift.len());
    }

    #[test]
    fn drift_request_body_where_none_documented() {
        let s = parse_spec(
            "openapi: 3.0.0\npaths:\n  /a:\n    delete: {responses: {'204': {description: x}}}\n",
            "s",
            false,
        )
        .unwrap();
        let d = diff(
            &s,
            &json!({"openapi": "3.1.0", "paths": {"/a": {"delete": {
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"204": {"description": "x"}}}}}}),
        );
        assert_eq!(
            drift_of(&d, DriftKind::UndocumentedRequestBody),
            [("request".to_owned(), "application/json".to_owned())]
        );
    }

    #[test]
    fn drift_authentication() {
        // The spec requires the API key; calls came without credentials, and with a Basic header.
        let obs = json!({"openapi": "3.1.0",
            "components": {"securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic"},
                "apiKeyHeader_x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
            "paths": {
                "/v1/users/me": {"get": {"security": [{}, {"basicAuth": []}, {"apiKeyHeader_x-api-key": []}], "responses": {}}},
                "/v1/old/report": {"get": {"security": [{"apiKeyHeader_x-api-key": []}], "responses": {}}}}});
        let d = diff(&spec(), &obs);
        assert_eq!(drift_of(&d, DriftKind::UnauthenticatedCalls), [("security".to_owned(), "none".to_owned())]);
        assert_eq!(d.drift.iter().find(|x| x.kind == DriftKind::UnauthenticatedCalls).unwrap().template, "/users/me");
        assert_eq!(drift_of(&d, DriftKind::UndocumentedAuthScheme), [("security".to_owned(), "http-basic".to_owned())]);
        // An explicitly public operation accepts anything.
        let s =
            parse_spec("openapi: 3.0.0\nsecurity: []\npaths:\n  /a:\n    get: {responses: {}}\n", "s", false).unwrap();
        let d = diff(&s, &json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"security": [{}], "responses": {}}}}}));
        assert!(d.drift.is_empty(), "{:?}", d.drift);
        // OAuth2 in the spec, a bearer token on the wire: documented.
        let oauth = SecurityScheme { kind: "oauth2".into(), location: None, name: None };
        let bearer = SecurityScheme { kind: "http-bearer".into(), location: None, name: None };
        assert!(scheme_covers(&oauth, &bearer));
        assert!(!scheme_covers(&bearer, &SecurityScheme { kind: "http-basic".into(), location: None, name: None }));
    }

    #[test]
    fn field_paths_stay_unambiguous() {
        assert_eq!(field_path("$", "a_b-1"), "$.a_b-1");
        assert_eq!(field_path("$.x", "a.b"), "$.x[\"a.b\"]");
        assert_eq!(field_path("$", ""), "$[\"\"]");
        assert_eq!(field_path("$", "q\"\u{1}"), "$[\"q\\\"\\u0001\"]");
    }

    #[test]
    fn type_compatibility() {
        let t = |b| Types(b);
        assert!(json_types_compatible(t(Types::NUMBER), t(Types::INTEGER)));
        assert!(!json_types_compatible(t(Types::INTEGER), t(Types::NUMBER)));
        assert!(!json_types_compatible(t(Types::STRING), t(Types::STRING | Types::NULL)));
        assert!(json_types_compatible(t(Types::STRING | Types::NULL), t(Types::NULL)));
        assert!(json_types_compatible(t(0), t(Types::OBJECT)));
        assert!(param_types_compatible(t(Types::STRING), t(Types::INTEGER)));
        assert!(!param_types_compatible(t(Types::BOOLEAN), t(Types::STRING)));
        assert!(media_covers("application/*", "application/problem+json"));
        assert!(media_covers("*/*", "text/html"));
        assert!(!media_covers("application/json", "application/problem+json"));
    }

    #[test]
    fn base_path_optional_and_swagger_base_path() {
        // The sensor sits behind a proxy that strips /v1: bare templates still match.
        let d = diff(&spec(), &json!({"openapi": "3.1.0", "paths": {"/users/{x}": {"get": {"responses": {}}}}}));
        assert_eq!(d.matched.len(), 1);
        // Observed base path in `servers`.
        let d = diff(
            &spec(),
            &json!({"openapi": "3.1.0", "servers": [{"url": "/v1"}], "paths": {"/users/me": {"get": {"responses": {}}}}}),
        );
        assert_eq!(d.matched[0].template, "/users/me");
        let s2 = parse_spec(
            "{\"swagger\": \"2.0\", \"basePath\": \"/api/\", \"paths\": {\"/x/{a}\": {\"get\": {\"responses\": {}}}}}",
            "s",
            true,
        )
        .unwrap();
        let d = diff(&s2, &json!({"openapi": "3.1.0", "paths": {"/api/x/{p}": {"get": {"responses": {}}}}}));
        assert_eq!(d.matched.len(), 1);
    }

    #[test]
    fn unreadable_observed_is_flagged_not_fatal() {
        let d = diff(&spec(), &json!([1, 2]));
        assert!(d.observed_unreadable);
        assert_eq!(d.orphan.len(), 5);
    }

    #[test]
    fn drift_is_capped() {
        let mut props = serde_json::Map::new();
        for i in 0..(MAX_DRIFT + 10) {
            props.insert(format!("f{i}"), json!({"type": "string"}));
        }
        let s = parse_spec(
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200': {description: x, content: {application/json: {schema: {type: object, properties: {x: {type: string}}}}}}\n",
            "s",
            false,
        )
        .unwrap();
        let d = diff(
            &s,
            &json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"responses": {"200": {"description": "x",
                "content": {"application/json": {"schema": {"type": "object", "properties": props}}}}}}}}}),
        );
        assert_eq!(d.drift.len(), MAX_DRIFT);
        assert_eq!(d.drift_truncated, 10);
        assert_eq!(d.summary.drift, MAX_DRIFT + 10);
    }

    #[test]
    fn completeness_report() {
        let s = parse_spec(
            r#"openapi: 3.0.0
components:
  securitySchemes: {key: {type: apiKey, in: header, name: K}}
paths:
  /a/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    post:
      security: [{key: []}]
      responses: {'200': {description: ok}}
    put:
      security: [{nope: []}]
      requestBody: {content: {application/json: {schema: {type: object, properties: {a: {type: string}}}}}}
      responses: {'204': {description: ok}}
    get:
      security: []
      parameters:
        - {name: q, in: query}
        - {name: n, in: query, schema: {type: integer, maximum: 5}}
        - {name: b, in: query, schema: {type: boolean}}
      responses: {}
    delete:
      responses: {'200': {description: ok, content: {application/json: {schema: {type: object}}}}}
"#,
            "s",
            false,
        )
        .unwrap();
        let c = completeness(&s);
        let got: Vec<(IncompleteKind, &str, Option<&str>)> =
            c.iter().map(|i| (i.kind, i.method.as_str(), i.name.as_deref())).collect();
        use IncompleteKind::*;
        // POST: no request schema and no response schema; the string path parameter has no constraint.
        assert!(got.contains(&(NoRequestSchema, "POST", None)), "{got:?}");
        assert!(got.contains(&(NoResponseSchema, "POST", None)), "{got:?}");
        assert!(got.contains(&(ParameterWithoutConstraints, "POST", Some("path.id"))), "{got:?}");
        // PUT: complete body, 204 needs no schema, but its scheme is not defined.
        assert!(!got.iter().any(|g| g.1 == "PUT" && matches!(g.0, NoRequestSchema | NoResponseSchema)), "{got:?}");
        assert!(got.contains(&(UndefinedSecurityScheme, "PUT", Some("nope"))), "{got:?}");
        // GET: explicitly public (not flagged), untyped `q`, constrained `n`, boolean `b` needs nothing.
        assert!(got.contains(&(NoResponses, "GET", None)), "{got:?}");
        assert!(got.contains(&(ParameterWithoutType, "GET", Some("query.q"))), "{got:?}");
        assert!(
            !got.iter()
                .any(|g| g.1 == "GET" && (g.0 == MissingSecurity || g.2 == Some("query.n") || g.2 == Some("query.b"))),
            "{got:?}"
        );
        // DELETE: no security anywhere.
        assert!(got.contains(&(MissingSecurity, "DELETE", None)), "{got:?}");
        assert!(c.iter().all(|i| i.pointer.starts_with("/paths/~1a~1{id}/")));
    }
}

#[cfg(test)]
mod scale_tests {
    use super::super::load::from_value;
    use super::*;
    use serde_json::json;

    #[test]
    fn large_spec_against_large_observed_document_is_fast() {
        let mut spec_paths = serde_json::Map::new();
        let mut obs_paths = serde_json::Map::new();
        for i in 0..5_000 {
            spec_paths.insert(format!("/r{i}/{{id}}"), json!({"get": {"responses": {}}}));
            obs_paths.insert(format!("/r{}/{{x}}", i + 2_500), json!({"get": {"responses": {}}}));
        }
        let spec = from_value(&json!({"openapi": "3.0.0", "paths": spec_paths}), "s", true).unwrap();
        let obs = from_value(&json!({"openapi": "3.1.0", "paths": obs_paths}), "o", false).unwrap();
        let started = std::time::Instant::now();
        let d = diff_specs(&spec, &obs);
        assert_eq!((d.matched.len(), d.shadow.len(), d.orphan.len()), (2_500, 2_500, 2_500));
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }
}
