//! Reading a spec file (JSON or YAML) and normalising Swagger 2.0, OpenAPI 3.0 and 3.1 into [`Spec`].
//!
//! Lenient, as Swagger UI and Prism are: specs in the wild are sloppy. Only a document that does not parse
//! as JSON or YAML, is not an object, or has no `paths` is refused (the error names the file, line and
//! field). Everything else that is wrong (an unknown type name, a malformed response key, an unsupported
//! version string, a bad `$ref`) is read past where the meaning of the rest is clear: the part is skipped or
//! taken as "anything", and the defect is kept in [`Spec::defects`] with its pointer and line for the
//! completeness report. `strict` (tests) turns every defect into an error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use super::locate::{escape_token, line_of};
use super::model::*;

/// Specs larger than this are refused: a spec is configuration, not traffic.
pub const MAX_SPEC_BYTES: u64 = 64 << 20;
/// Operations kept per document; more are counted in [`LoadStats::operation_cap_hits`].
pub const MAX_OPERATIONS: usize = 20_000;
/// Nesting depth followed inside one schema; deeper parts become opaque.
pub const MAX_SCHEMA_DEPTH: usize = 24;
/// Schema nodes built per document (after `$ref` expansion); beyond, schemas become opaque. Bounds the
/// expansion of specs whose shared schemas reference each other many times.
pub const MAX_SCHEMA_NODES: usize = 300_000;
/// `$ref` hops followed for one parameter, body or response before giving up.
const MAX_REF_HOPS: usize = 16;

/// Defects kept per document (the rest are counted in one more entry).
const MAX_DEFECTS: usize = 500;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A spec that cannot be used: which file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: String,
    /// 1-based line, when known (syntax errors; semantic errors located from their pointer).
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// JSON pointer of the offending field, for semantic errors.
    pub pointer: Option<String>,
    pub what: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spec {}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ": line {l}")?;
            if let Some(c) = self.column {
                write!(f, ", column {c}")?;
            }
        }
        if let Some(p) = &self.pointer {
            write!(f, ": at {}", if p.is_empty() { "/" } else { p })?;
        }
        write!(f, ": {}", self.what)
    }
}

impl std::error::Error for SpecError {}

/// A semantic problem at a JSON pointer (located to a line by the caller, who has the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pointer: String,
    pub what: String,
}

fn problem(pointer: &str, what: impl Into<String>) -> Problem {
    Problem { pointer: pointer.to_owned(), what: what.into() }
}

/// Reads and normalises a spec file.
pub fn load_spec(path: &Path) -> Result<Spec, SpecError> {
    let file = path.display().to_string();
    let err = |what: String| SpecError { file: file.clone(), line: None, column: None, pointer: None, what };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if meta.len() > MAX_SPEC_BYTES {
        return Err(err(format!("{} bytes is over the {MAX_SPEC_BYTES}-byte cap for a spec", meta.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| err(format!("not UTF-8 text: {e}")))?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let json = match ext.as_deref() {
        Some("json") => true,
        Some("yaml" | "yml") => false,
        _ => text.trim_start().starts_with('{'),
    };
    parse_spec(&text, &file, json)
}

/// Parses spec text (`json` chooses the syntax) and normalises it; `source` names it in errors.
pub fn parse_spec(text: &str, source: &str, json: bool) -> Result<Spec, SpecError> {
    let mk = |line, column, pointer, what| SpecError { file: source.to_owned(), line, column, pointer, what };
    let root: Value = if json {
        serde_json::from_str(text)
            .map_err(|e| mk(Some(e.line() as u64), Some(e.column() as u64), None, format!("invalid JSON: {e}")))?
    } else {
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
            let loc = e.location();
            // The parser's own message, without the position it repeats (we print ours).
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let first = match first.split_once(": ") {
                Some((pos, rest)) if pos.starts_with("line ") => rest,
                _ => first,
            }
            .to_owned();
            mk(
                loc.as_ref().map(|l| l.line()).filter(|l| *l > 0),
                loc.as_ref().map(|l| l.column()).filter(|c| *c > 0),
                None,
                format!("invalid YAML: {first}"),
            )
        })?
    };
    let mut spec = from_value(&root, source, false).map_err(|p| {
        let line = line_of(text, &p.pointer, json);
        mk(line, None, Some(p.pointer), p.what)
    })?;
    for d in &mut spec.defects {
        d.line = line_of(text, &d.pointer, json);
    }
    Ok(spec)
}

/// OpenAPI 3 documents are YAML 1.2: `n`, `no` and `off` are strings (a parameter named `n` is common),
/// not the YAML 1.1 booleans. The parser's default budget (events, aliases, depth) stays on.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    o
}

/// Normalises an already parsed document. `strict`: any problem is an error; otherwise operations with
/// problems are skipped (for documents we produced ourselves).
pub fn from_value(root: &Value, source: &str, strict: bool) -> Result<Spec, Problem> {
    let obj = root.as_object().ok_or_else(|| problem("", "the document is not an object"))?;
    let mut defects = Vec::new();
    let dialect = if let Some(v) = obj.get("openapi") {
        let s = match v.as_str() {
            Some(s) => s,
            None if strict => return Err(problem("/openapi", "`openapi` must be a version string")),
            None => {
                defects.push(problem("/openapi", "`openapi` must be a version string: read as 3.0"));
                "3.0"
            }
        };
        if s.starts_with("3.0") {
            Dialect::OpenApi30
        } else if s.starts_with("3.1") || s.starts_with("3.2") {
            Dialect::OpenApi31
        } else if strict {
            return Err(problem("/openapi", format!("unsupported OpenAPI version `{s}` (3.0, 3.1 or Swagger 2.0)")));
        } else {
            defects.push(problem("/openapi", format!("unsupported OpenAPI version `{s}`: read as 3.0")));
            Dialect::OpenApi30
        }
    } else if let Some(v) = obj.get("swagger") {
        match v.as_str().or_else(|| v.as_f64().filter(|f| *f == 2.0).map(|_| "2.0")) {
            Some("2.0") => Dialect::Swagger2,
            _ if strict => return Err(problem("/swagger", "unsupported Swagger version (only \"2.0\")")),
            _ => {
                defects.push(problem("/swagger", "unsupported Swagger version: read as 2.0"));
                Dialect::Swagger2
            }
        }
    } else if strict || !obj.contains_key("paths") {
        return Err(problem("", "not an OpenAPI document: no `openapi` or `swagger` field"));
    } else {
        defects.push(problem("", "no `openapi` or `swagger` field: read as OpenAPI 3.0"));
        Dialect::OpenApi30
    };
    let mut n = Norm { root, dialect, strict, stats: LoadStats::default(), nodes: 0, defects };
    let title = obj.get("info").and_then(|i| i.get("title")).and_then(Value::as_str).map(str::to_owned);
    let base_paths = n.base_paths(obj).or_else(|p| n.defect(p).map(|()| Vec::new()))?;
    let security_schemes = n.security_schemes(obj).or_else(|p| n.defect(p).map(|()| BTreeMap::new()))?;
    let global_security = match obj.get("security") {
        Some(v) => security_requirements(v, "/security").map(Some).or_else(|p| n.defect(p).map(|()| None))?,
        None => None,
    };
    let mut operations = Vec::new();
    match obj.get("paths") {
        None if dialect == Dialect::OpenApi31 => {}
        None => return Err(problem("", "no `paths` object")),
        Some(Value::Object(paths)) => {
            for (path, item) in paths {
                if path.starts_with("x-") {
                    continue;
                }
                let ptr = format!("/paths/{}", escape_token(path));
                let fixed;
                let path = if path.starts_with('/') {
                    path.as_str()
                } else {
                    n.defect(problem(&ptr, format!("path `{path}` does not start with `/`: read with one")))?;
                    fixed = format!("/{path}");
                    fixed.as_str()
                };
                if let Err(p) = n.path_item(path, item, &ptr, global_security.as_ref(), &mut operations) {
                    n.defect(p)?;
                }
            }
        }
        Some(_) => return Err(problem("/paths", "`paths` must be an object")),
    }
    let defects = n.defects.into_iter().map(|p| Defect { pointer: p.pointer, line: None, what: p.what }).collect();
    Ok(Spec {
        source: source.to_owned(),
        dialect,
        title,
        base_paths,
        operations,
        security_schemes,
        stats: n.stats,
        defects,
    })
}

fn security_requirements(v: &Value, ptr: &str) -> Result<Vec<Vec<String>>, Problem> {
    let arr = v.as_array().ok_or_else(|| problem(ptr, "`security` must be an array of requirement objects"))?;
    arr.iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_object()
                .map(|o| o.keys().cloned().collect())
                .ok_or_else(|| problem(&format!("{ptr}/{i}"), "a security requirement must be an object"))
        })
        .collect()
}

/// The path part of a server URL (`https://h/api/v3` → `/api/v3`, `/` → ``).
fn url_path(url: &str) -> String {
    let rest = match url.find("://") {
        Some(i) => {
            let after = url.get(i + 3..).unwrap_or_default();
            after.find('/').and_then(|j| after.get(j..)).unwrap_or("")
        }
        None if url.starts_with("//") => {
            let after = url.get(2..).unwrap_or_default();
            after.find('/').and_then(|j| after.get(j..)).unwrap_or("")
        }
        None => url,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let trimmed = rest.trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

struct Norm<'a> {
    root: &'a Value,
    dialect: Dialect,
    strict: bool,
    stats: LoadStats,
    nodes: usize,
    defects: Vec<Problem>,
}

/// What a `$ref` chain ended on.
enum Deref<'a> {
    Found(&'a Value, String),
    External,
}

impl<'a> Norm<'a> {
    /// A defect read past (kept, up to [`MAX_DEFECTS`]), or the error when strict.
    fn defect(&mut self, p: Problem) -> Result<(), Problem> {
        if self.strict {
            return Err(p);
        }
        match self.defects.len() {
            n if n < MAX_DEFECTS => self.defects.push(p),
            n if n == MAX_DEFECTS => self.defects.push(problem("", "more defects (not listed)")),
            _ => {}
        }
        Ok(())
    }

    /// Follows `$ref`s (local only) from `v` at `ptr`.
    fn deref(&mut self, v: &'a Value, ptr: &str) -> Result<Deref<'a>, Problem> {
        let mut cur = v;
        let mut cur_ptr = ptr.to_owned();
        for _ in 0..MAX_REF_HOPS {
            let Some(r) = cur.get("$ref") else {
                return Ok(Deref::Found(cur, cur_ptr));
            };
            let r = r.as_str().ok_or_else(|| problem(&format!("{cur_ptr}/$ref"), "`$ref` must be a string"))?;
            let Some(frag) = r.strip_prefix('#') else {
                self.stats.external_refs += 1;
                return Ok(Deref::External);
            };
            let target = crate::detect::input::percent_decode(frag).into_owned();
            match self.root.pointer(&target) {
                Some(t) => {
                    cur = t;
                    cur_ptr = target;
                }
                None => {
                    return Err(problem(&format!("{cur_ptr}/$ref"), format!("`$ref` `{r}` does not resolve")));
                }
            }
        }
        Err(problem(ptr, format!("`$ref` chain longer than {MAX_REF_HOPS} hops (a cycle?)")))
    }

    fn base_paths(&mut self, obj: &Map<String, Value>) -> Result<Vec<String>, Problem> {
        if self.dialect == Dialect::Swagger2 {
            return Ok(match obj.get("basePath") {
                Some(Value::String(b)) => vec![url_path(b)],
                Some(_) => return Err(problem("/basePath", "`basePath` must be a string")),
                None => Vec::new(),
            });
        }
        let Some(servers) = obj.get("servers") else { return Ok(Vec::new()) };
        let arr = servers.as_array().ok_or_else(|| problem("/servers", "`servers` must be an array"))?;
        let mut out = Vec::new();
        for (i, s) in arr.iter().enumerate() {
            let ptr = format!("/servers/{i}");
            let url =
                s.get("url").and_then(Value::as_str).ok_or_else(|| problem(&ptr, "a server needs a `url` string"))?;
            // Substitute server variables with their defaults.
            let mut url = url.to_owned();
            if let Some(vars) = s.get("variables").and_then(Value::as_object) {
                for (k, v) in vars {
                    if let Some(d) = v.get("default").and_then(Value::as_str) {
                        url = url.replace(&format!("{{{k}}}"), d);
                    }
                }
            }
            let p = url_path(&url);
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn security_schemes(&mut self, obj: &'a Map<String, Value>) -> Result<BTreeMap<String, SecurityScheme>, Problem> {
        let (defs, ptr) = if self.dialect == Dialect::Swagger2 {
            (obj.get("securityDefinitions"), "/securityDefinitions".to_owned())
        } else {
            (obj.get("components").and_then(|c| c.get("securitySchemes")), "/components/securitySchemes".to_owned())
        };
        let mut out = BTreeMap::new();
        let Some(defs) = defs else { return Ok(out) };
        let defs = defs.as_object().ok_or_else(|| problem(&ptr, "security schemes must be an object"))?;
        for (name, v) in defs {
            let p = format!("{ptr}/{}", escape_token(name));
            let v = match self.deref(v, &p)? {
                Deref::Found(v, _) => v,
                Deref::External => continue,
            };
            let kind =
                v.get("type").and_then(Value::as_str).ok_or_else(|| problem(&p, "a security scheme needs a `type`"))?;
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            let kind = match (kind, s("scheme")) {
                ("http", Some(scheme)) => format!("http-{}", scheme.to_ascii_lowercase()),
                // Swagger 2.0's `basic` is OpenAPI 3's `http` + `basic`.
                ("basic", _) => "http-basic".to_owned(),
                (k, _) => k.to_owned(),
            };
            out.insert(name.clone(), SecurityScheme { kind, location: s("in"), name: s("name") });
        }
        Ok(out)
    }

    fn path_item(
        &mut self,
        path: &str,
        item: &'a Value,
        ptr: &str,
        global_security: Option<&Vec<Vec<String>>>,
        out: &mut Vec<Operation>,
    ) -> Result<(), Problem> {
        let (item, ptr) = match self.deref(item, ptr)? {
            Deref::Found(v, p) => (v, p),
            Deref::External => return Ok(()),
        };
        let obj = item.as_object().ok_or_else(|| problem(&ptr, "a path item must be an object"))?;
        let common = match obj.get("parameters") {
            Some(v) => self.parameters(v, &format!("{ptr}/parameters"))?,
            None => Parsed::default(),
        };
        for method in METHODS {
            let Some(op) = obj.get(method) else { continue };
            if out.len() >= MAX_OPERATIONS {
                self.stats.operation_cap_hits += 1;
                continue;
            }
            let op_ptr = format!("{ptr}/{method}");
            match self.operation(path, method, op, &op_ptr, &common, global_security) {
                Ok(o) => out.push(o),
                Err(p) => self.defect(p)?,
            }
        }
        Ok(())
    }

    fn operation(
        &mut self,
        path: &str,
        method: &str,
        op: &'a Value,
        ptr: &str,
        common: &Parsed,
        global_security: Option<&Vec<Vec<String>>>,
    ) -> Result<Operation, Problem> {
        let obj = op.as_object().ok_or_else(|| problem(ptr, "an operation must be an object"))?;
        let mut parsed = match obj.get("parameters") {
            Some(v) => self.parameters(v, &format!("{ptr}/parameters"))?,
            None => Parsed::default(),
        };
        // Path-level parameters apply unless the operation redefines them (same `in` and name).
        let mut params = common.params.clone();
        for p in parsed.params.drain(..) {
            params.retain(|q: &Param| !(q.location == p.location && q.name == p.name));
            params.push(p);
        }
        let deprecated = match obj.get("deprecated") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.defect(problem(&format!("{ptr}/deprecated"), "`deprecated` must be a boolean"))?;
                false
            }
        };
        let security = match obj.get("security") {
            Some(v) => Some(security_requirements(v, &format!("{ptr}/security"))?),
            None => global_security.cloned(),
        };
        let request = if self.dialect == Dialect::Swagger2 {
            let consumes = media_list(obj.get("consumes").or_else(|| self.root.get("consumes")));
            let body = parsed.body.take().or_else(|| common.body.clone());
            let mut form = common.form.clone();
            form.append(&mut parsed.form);
            if let Some(schema) = body {
                let types = if consumes.is_empty() { vec!["application/json".to_owned()] } else { consumes };
                Some(types.into_iter().map(|m| Content { media_type: m, schema: Some(schema.clone()) }).collect())
            } else if !form.is_empty() {
                let mut s = Schema { types: Types(Types::OBJECT), ..Schema::default() };
                for (name, required, schema) in form {
                    if required {
                        s.required.push(name.clone());
                    }
                    s.properties.insert(name, schema);
                }
                let mut types: Vec<String> = consumes
                    .into_iter()
                    .filter(|m| m == "multipart/form-data" || m == "application/x-www-form-urlencoded")
                    .collect();
                if types.is_empty() {
                    types.push("application/x-www-form-urlencoded".to_owned());
                }
                Some(types.into_iter().map(|m| Content { media_type: m, schema: Some(s.clone()) }).collect())
            } else {
                None
            }
        } else {
            match obj.get("requestBody") {
                None => None,
                Some(rb) => {
                    let p = format!("{ptr}/requestBody");
                    match self.deref(rb, &p)? {
                        Deref::Found(rb, p) => Some(self.content_map(rb.get("content"), &format!("{p}/content"))?),
                        Deref::External => Some(Vec::new()),
                    }
                }
            }
        };
        let responses = self.responses(obj.get("responses"), &format!("{ptr}/responses"))?;
        let extensions = obj
            .iter()
            .filter(|(k, _)| k.starts_with("x-mirador"))
            .filter_map(|(k, v)| small_extension(v).map(|v| (k.clone(), v)))
            .collect();
        Ok(Operation {
            method: method.to_owned(),
            template: path.to_owned(),
            segments: Segment::parse_path(path),
            operation_id: obj.get("operationId").and_then(Value::as_str).map(str::to_owned),
            deprecated,
            parameters: params,
            request,
            responses,
            security,
            extensions,
            pointer: ptr.to_owned(),
        })
    }

    fn parameters(&mut self, v: &'a Value, ptr: &str) -> Result<Parsed, Problem> {
        let arr = v.as_array().ok_or_else(|| problem(ptr, "`parameters` must be an array"))?;
        let mut out = Parsed::default();
        for (i, p) in arr.iter().enumerate() {
            // One bad parameter costs that parameter, not its operation.
            if let Err(e) = self.parameter(p, format!("{ptr}/{i}"), &mut out) {
                self.defect(e)?;
            }
        }
        Ok(out)
    }

    fn parameter(&mut self, p: &'a Value, p_ptr: String, out: &mut Parsed) -> Result<(), Problem> {
        let (p, p_ptr) = match self.deref(p, &p_ptr)? {
            Deref::Found(v, ptr) => (v, ptr),
            Deref::External => return Ok(()),
        };
        let obj = p.as_object().ok_or_else(|| problem(&p_ptr, "a parameter must be an object"))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| problem(&p_ptr, "a parameter needs a `name` string"))?;
        let location = obj
            .get("in")
            .and_then(Value::as_str)
            .ok_or_else(|| problem(&p_ptr, format!("parameter `{name}` needs an `in` string")))?;
        let required = obj.get("required").and_then(Value::as_bool).unwrap_or(location == "path");
        let deprecated = obj.get("deprecated").and_then(Value::as_bool).unwrap_or(false);
        if self.dialect == Dialect::Swagger2 {
            match location {
                "body" => {
                    let s = obj
                        .get("schema")
                        .ok_or_else(|| problem(&p_ptr, format!("body parameter `{name}` needs a `schema`")))?;
                    out.body = Some(self.schema(s, &format!("{p_ptr}/schema"), 0, &mut Vec::new())?);
                    return Ok(());
                }
                "formData" => {
                    let s = self.schema(p, &p_ptr, 0, &mut Vec::new())?;
                    out.form.push((name.to_owned(), required, s));
                    return Ok(());
                }
                _ => {}
            }
        }
        let loc = ParamIn::from_name(location).ok_or_else(|| {
            problem(
                &format!("{p_ptr}/in"),
                format!("parameter `{name}`: `in` is `{location}`, expected path, query, header or cookie"),
            )
        })?;
        let schema = if self.dialect == Dialect::Swagger2 {
            // 2.0 parameters carry type, format and constraints themselves.
            if obj.contains_key("type") { Some(self.schema(p, &p_ptr, 0, &mut Vec::new())?) } else { None }
        } else if let Some(s) = obj.get("schema") {
            Some(self.schema(s, &format!("{p_ptr}/schema"), 0, &mut Vec::new())?)
        } else if let Some(c) = obj.get("content") {
            self.content_map(Some(c), &format!("{p_ptr}/content"))?.into_iter().find_map(|c| c.schema)
        } else {
            None
        };
        out.params.push(Param { location: loc, name: name.to_owned(), required, deprecated, schema });
        Ok(())
    }

    fn content_map(&mut self, v: Option<&'a Value>, ptr: &str) -> Result<Vec<Content>, Problem> {
        let Some(v) = v else { return Ok(Vec::new()) };
        let obj = v.as_object().ok_or_else(|| problem(ptr, "`content` must be an object of media types"))?;
        let mut out = Vec::new();
        for (media, mt) in obj {
            let p = format!("{ptr}/{}", escape_token(media));
            let schema = match mt.get("schema") {
                Some(s) => Some(self.schema(s, &format!("{p}/schema"), 0, &mut Vec::new())?),
                None => None,
            };
            out.push(Content { media_type: media.to_ascii_lowercase(), schema });
        }
        Ok(out)
    }

    fn responses(&mut self, v: Option<&'a Value>, ptr: &str) -> Result<Vec<Response>, Problem> {
        let Some(v) = v else { return Ok(Vec::new()) };
        let obj = v.as_object().ok_or_else(|| problem(ptr, "`responses` must be an object"))?;
        let mut out = Vec::new();
        for (status, r) in obj {
            if status.starts_with("x-") {
                continue;
            }
            let p = format!("{ptr}/{}", escape_token(status));
            let valid = status == "default"
                || (status.len() == 3
                    && status.bytes().next().is_some_and(|b| (b'1'..=b'5').contains(&b))
                    && (status.bytes().skip(1).all(|b| b.is_ascii_digit())
                        || status.get(1..).is_some_and(|s| s.eq_ignore_ascii_case("XX"))));
            if !valid {
                self.defect(problem(&p, format!("`{status}` is not a status code, range (4XX) or `default`")))?;
                continue;
            }
            let (r, rp) = match self.deref(r, &p)? {
                Deref::Found(v, ptr) => (v, ptr),
                Deref::External => {
                    out.push(Response { status: status.to_ascii_uppercase(), content: Vec::new() });
                    continue;
                }
            };
            if !r.is_object() {
                self.defect(problem(&rp, "a response must be an object"))?;
                continue;
            }
            let content = if self.dialect == Dialect::Swagger2 {
                match r.get("schema") {
                    Some(s) => {
                        let schema = self.schema(s, &format!("{rp}/schema"), 0, &mut Vec::new())?;
                        let produces = media_list(self.op_produces(ptr).or_else(|| self.root.get("produces")));
                        let produces = if produces.is_empty() { vec!["application/json".to_owned()] } else { produces };
                        produces.into_iter().map(|m| Content { media_type: m, schema: Some(schema.clone()) }).collect()
                    }
                    None => Vec::new(),
                }
            } else {
                self.content_map(r.get("content"), &format!("{rp}/content"))?
            };
            out.push(Response { status: status.to_ascii_uppercase().replace("DEFAULT", "default"), content });
        }
        Ok(out)
    }

    /// The `produces` of the operation owning the responses at `responses_ptr` (Swagger 2.0).
    fn op_produces(&self, responses_ptr: &str) -> Option<&'a Value> {
        let op_ptr = responses_ptr.strip_suffix("/responses")?;
        self.root.pointer(op_ptr)?.get("produces")
    }

    /// Normalises a schema; `refs` are the `$ref`s being expanded above (cycle guard).
    fn schema(&mut self, v: &'a Value, ptr: &str, depth: usize, refs: &mut Vec<String>) -> Result<Schema, Problem> {
        self.nodes += 1;
        if self.nodes > MAX_SCHEMA_NODES {
            self.stats.schema_node_cap_hits += 1;
            return Ok(Schema { opaque: true, ..Schema::default() });
        }
        if depth > MAX_SCHEMA_DEPTH {
            self.stats.depth_capped += 1;
            return Ok(Schema { opaque: true, ..Schema::default() });
        }
        let obj = match v {
            Value::Bool(_) => return Ok(Schema::default()),
            Value::Object(o) => o,
            _ => return Err(problem(ptr, "a schema must be an object")),
        };
        if let Some(r) = obj.get("$ref") {
            let r = r.as_str().ok_or_else(|| problem(&format!("{ptr}/$ref"), "`$ref` must be a string"))?;
            if refs.iter().any(|x| x == r) {
                self.stats.ref_cycles += 1;
                return Ok(Schema { opaque: true, ..Schema::default() });
            }
            return match self.deref(v, ptr)? {
                Deref::External => Ok(Schema { opaque: true, ..Schema::default() }),
                Deref::Found(t, tp) => {
                    refs.push(r.to_owned());
                    let s = self.schema(t, &tp, depth + 1, refs);
                    refs.pop();
                    s
                }
            };
        }
        let mut s = Schema::default();
        match obj.get("type") {
            None => {}
            Some(Value::String(t)) => s.types.0 |= self.type_bit(t, ptr)?,
            Some(Value::Array(ts)) => {
                for t in ts {
                    let t =
                        t.as_str().ok_or_else(|| problem(&format!("{ptr}/type"), "`type` entries must be strings"))?;
                    s.types.0 |= self.type_bit(t, ptr)?;
                }
            }
            Some(_) => return Err(problem(&format!("{ptr}/type"), "`type` must be a string or an array of strings")),
        }
        if obj.get("nullable").and_then(Value::as_bool) == Some(true)
            || obj.get("x-nullable").and_then(Value::as_bool) == Some(true)
        {
            s.types.0 |= Types::NULL;
        }
        s.format = obj.get("format").and_then(Value::as_str).map(str::to_owned);
        const CONSTRAINTS: [&str; 16] = [
            "enum",
            "const",
            "format",
            "pattern",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
            "contentEncoding",
        ];
        s.constrained = CONSTRAINTS.iter().any(|k| obj.contains_key(*k));
        if let Some(props) = obj.get("properties") {
            let props = props
                .as_object()
                .ok_or_else(|| problem(&format!("{ptr}/properties"), "`properties` must be an object"))?;
            for (k, pv) in props {
                let pp = format!("{ptr}/properties/{}", escape_token(k));
                let child = self.schema(pv, &pp, depth + 1, refs)?;
                s.properties.insert(k.clone(), child);
            }
        }
        if let Some(req) = obj.get("required").and_then(Value::as_array) {
            s.required = req.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        }
        s.additional = match obj.get("additionalProperties") {
            Some(Value::Bool(false)) => Additional::Forbidden,
            Some(a @ Value::Object(_)) => {
                Additional::Schema(Box::new(self.schema(a, &format!("{ptr}/additionalProperties"), depth + 1, refs)?))
            }
            _ if obj.get("unevaluatedProperties") == Some(&Value::Bool(false)) => Additional::Forbidden,
            _ => Additional::Allowed,
        };
        match obj.get("items") {
            Some(i @ Value::Object(_)) => {
                s.items = Some(Box::new(self.schema(i, &format!("{ptr}/items"), depth + 1, refs)?));
            }
            Some(Value::Array(a)) => {
                if let Some(first) = a.first() {
                    s.items = Some(Box::new(self.schema(first, &format!("{ptr}/items/0"), depth + 1, refs)?));
                }
            }
            _ => {}
        }
        if let Some(all) = obj.get("allOf") {
            let all = all.as_array().ok_or_else(|| problem(&format!("{ptr}/allOf"), "`allOf` must be an array"))?;
            for (i, part) in all.iter().enumerate() {
                let p = self.schema(part, &format!("{ptr}/allOf/{i}"), depth + 1, refs)?;
                merge_all_of(&mut s, p);
            }
        }
        for key in ["oneOf", "anyOf"] {
            let Some(alts) = obj.get(key) else { continue };
            let alts =
                alts.as_array().ok_or_else(|| problem(&format!("{ptr}/{key}"), format!("`{key}` must be an array")))?;
            let mut any_untyped = false;
            let mut types = 0u8;
            for (i, alt) in alts.iter().enumerate() {
                let a = self.schema(alt, &format!("{ptr}/{key}/{i}"), depth + 1, refs)?;
                if a.types.is_empty() {
                    any_untyped = true;
                }
                types |= a.types.0;
                s.constrained |= a.constrained;
                if a.opaque {
                    s.opaque = true;
                }
                for (k, v) in a.properties {
                    s.properties.entry(k).or_insert(v);
                }
                if s.items.is_none() {
                    s.items = a.items;
                }
            }
            s.union = true;
            if s.types.is_empty() && !any_untyped {
                s.types.0 = types;
            }
        }
        if s.types.is_empty() && !s.union {
            if !s.properties.is_empty() {
                s.types.0 = Types::OBJECT;
            } else if s.items.is_some() {
                s.types.0 = Types::ARRAY;
            }
        }
        Ok(s)
    }

    fn type_bit(&mut self, t: &str, ptr: &str) -> Result<u8, Problem> {
        match Types::from_name(t) {
            Some(b) => Ok(b),
            // Swagger 2.0 `file` (form uploads) travels as a string.
            None if t == "file" => Ok(Types::STRING),
            // Unknown: any type (what Swagger UI and Prism do), and a defect.
            None => self
                .defect(problem(&format!("{ptr}/type"), format!("unknown type `{t}`: read as any type")))
                .map(|()| 0),
        }
    }
}

/// `allOf`: the parts together describe one value.
fn merge_all_of(s: &mut Schema, p: Schema) {
    if s.types.is_empty() {
        s.types = p.types;
    } else if !p.types.is_empty() && s.types.0 & p.types.0 != 0 {
        s.types.0 &= p.types.0;
    }
    if s.format.is_none() {
        s.format = p.format;
    }
    s.constrained |= p.constrained;
    s.opaque |= p.opaque;
    s.union |= p.union;
    for (k, v) in p.properties {
        s.properties.entry(k).or_insert(v);
    }
    s.required.extend(p.required);
    if s.items.is_none() {
        s.items = p.items;
    }
    if p.additional == Additional::Forbidden {
        s.additional = Additional::Forbidden;
    } else if s.additional == Additional::Allowed {
        s.additional = p.additional;
    }
}

/// An `x-mirador-*` statistic worth carrying into the diff: a scalar, or an object's scalar members (the
/// first few; nested objects and arrays are left out so the report stays small).
fn small_extension(v: &Value) -> Option<Value> {
    const MAX_MEMBERS: usize = 16;
    match v {
        Value::Array(_) => None,
        Value::Object(o) => {
            let m: Map<String, Value> = o
                .iter()
                .filter(|(_, x)| !x.is_object() && !x.is_array())
                .take(MAX_MEMBERS)
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        scalar => Some(scalar.clone()),
    }
}

fn media_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default()
}

/// Parameters of one list, with Swagger 2.0's body and form parameters set apart.
#[derive(Default, Clone)]
struct Parsed {
    params: Vec<Param>,
    body: Option<Schema>,
    form: Vec<(String, bool, Schema)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Spec, SpecError> {
        parse_spec(text, "t.yaml", false)
    }

    const PETSTORE30: &str = r#"openapi: 3.0.3
info: {title: Pets, version: "1"}
servers:
  - url: https://api.example.com/v1/
  - url: "{scheme}://h/{base}"
    variables:
      scheme: {default: https}
      base: {default: api}
security:
  - key: []
paths:
  /pets/{petId}:
    parameters:
      - $ref: '#/components/parameters/PetId'
    get:
      operationId: getPet
      parameters:
        - {name: verbose, in: query, schema: {type: boolean}}
        - {name: X-Trace, in: header}
      responses:
        200:
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
        4XX: {description: bad}
    delete:
      deprecated: true
      security: []
      responses:
        "204": {description: gone}
components:
  parameters:
    PetId: {name: petId, in: path, required: true, schema: {type: integer, format: int64}}
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Api-Key}
  schemas:
    Pet:
      type: object
      required: [id]
      properties:
        id: {type: integer}
        name: {type: string, nullable: true}
        owner: {$ref: '#/components/schemas/Person'}
        tags: {type: array, items: {type: string}}
    Person:
      allOf:
        - properties: {name: {type: string}}
        - properties: {friend: {$ref: '#/components/schemas/Person'}}
"#;

    #[test]
    fn openapi30_yaml_normalised() {
        let s = yaml(PETSTORE30).unwrap();
        assert_eq!(s.dialect, Dialect::OpenApi30);
        assert_eq!(s.title.as_deref(), Some("Pets"));
        assert_eq!(s.base_paths, ["/v1", "/api"]);
        assert_eq!(s.operations.len(), 2);
        let get = &s.operations[0];
        assert_eq!((get.method.as_str(), get.template.as_str()), ("get", "/pets/{petId}"));
        assert_eq!(get.segments, [Segment::Literal("pets".into()), Segment::Param("petId".into())]);
        // Path-level parameter inherited, resolved through $ref.
        let pid = get.parameters.iter().find(|p| p.name == "petId").unwrap();
        assert_eq!(pid.location, ParamIn::Path);
        assert!(pid.required);
        assert_eq!(pid.schema.as_ref().unwrap().types, Types(Types::INTEGER));
        assert!(get.parameters.iter().any(|p| p.name == "X-Trace" && p.schema.is_none()));
        // Integer YAML keys are status codes.
        assert_eq!(get.responses.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), ["200", "4XX"]);
        let body = get.responses[0].content[0].schema.as_ref().unwrap();
        assert_eq!(body.types, Types(Types::OBJECT));
        assert_eq!(body.properties["name"].types, Types(Types::STRING | Types::NULL));
        assert_eq!(body.properties["tags"].items.as_ref().unwrap().types, Types(Types::STRING));
        // The recursive Person schema ends in an opaque node instead of looping.
        let owner = &body.properties["owner"];
        assert!(owner.properties.contains_key("name"));
        assert!(owner.properties["friend"].opaque);
        assert_eq!(s.stats.ref_cycles, 1);
        assert_eq!(get.security, Some(vec![vec!["key".to_owned()]]));
        let del = &s.operations[1];
        assert!(del.deprecated);
        assert_eq!(del.security, Some(vec![]));
        assert_eq!(s.security_schemes["key"].name.as_deref(), Some("X-Api-Key"));
        assert_eq!(s.templates(), ["/api/pets/{petId}", "/pets/{petId}", "/v1/pets/{petId}"]);
    }

    #[test]
    fn swagger2_json_normalised() {
        let text = r##"{"swagger": "2.0", "basePath": "/api", "produces": ["application/json"],
          "securityDefinitions": {"basic": {"type": "basic"}},
          "paths": {"/users": {"post": {
              "consumes": ["application/json"],
              "parameters": [{"name": "body", "in": "body", "schema": {"$ref": "#/definitions/User"}},
                             {"name": "limit", "in": "query", "type": "integer", "maximum": 100}],
              "responses": {"201": {"description": "x", "schema": {"$ref": "#/definitions/User"}}}}},
            "/upload": {"post": {"consumes": ["multipart/form-data"],
              "parameters": [{"name": "file", "in": "formData", "type": "file", "required": true}],
              "responses": {"200": {"description": "ok"}}}}},
          "definitions": {"User": {"type": "object", "x-nullable": true, "properties": {"email": {"type": "string", "format": "email"}}}}}"##;
        let s = parse_spec(text, "t.json", true).unwrap();
        assert_eq!(s.dialect, Dialect::Swagger2);
        assert_eq!(s.base_paths, ["/api"]);
        let users = s.operations.iter().find(|o| o.template == "/users").unwrap();
        let req = users.request.as_ref().unwrap();
        assert_eq!(req[0].media_type, "application/json");
        let schema = req[0].schema.as_ref().unwrap();
        assert_eq!(schema.types, Types(Types::OBJECT | Types::NULL));
        assert_eq!(schema.properties["email"].format.as_deref(), Some("email"));
        let limit = &users.parameters[0];
        assert_eq!(limit.name, "limit");
        assert!(limit.schema.as_ref().unwrap().constrained);
        assert_eq!(users.responses[0].content[0].media_type, "application/json");
        let upload = s.operations.iter().find(|o| o.template == "/upload").unwrap();
        let form = upload.request.as_ref().unwrap();
        assert_eq!(form[0].media_type, "multipart/form-data");
        assert_eq!(form[0].schema.as_ref().unwrap().required, ["file"]);
        assert!(upload.responses[0].content.is_empty());
    }

    #[test]
    fn openapi31_type_arrays_and_unions() {
        let s = yaml(
            "openapi: 3.1.0\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              type: [object, 'null']\n              properties:\n                v: {oneOf: [{type: string}, {type: integer}]}\n                w: {anyOf: [{type: string}, {}]}\n      responses: {}\n",
        )
        .unwrap();
        assert_eq!(s.dialect, Dialect::OpenApi31);
        let b = s.operations[0].request.as_ref().unwrap()[0].schema.as_ref().unwrap();
        assert_eq!(b.types, Types(Types::OBJECT | Types::NULL));
        assert_eq!(b.properties["v"].types, Types(Types::STRING | Types::INTEGER));
        assert!(b.properties["v"].union);
        assert!(b.properties["w"].types.is_empty());
        // 3.1 allows a document without paths.
        assert!(yaml("openapi: 3.1.0\nwebhooks: {}\n").unwrap().operations.is_empty());
    }

    #[test]
    fn refused_documents_name_file_line_and_field() {
        let e = yaml("openapi: 3.0.0\npaths:\n  /a: [\n").unwrap_err();
        assert_eq!(e.file, "t.yaml");
        assert_eq!((e.line, e.column), (Some(3), Some(7)), "{e}");
        assert_eq!(e.what, "invalid YAML: unclosed bracket '['");
        let msg = e.to_string();
        assert!(msg.contains("t.yaml: line 3"), "{msg}");

        let e = parse_spec("{\n  \"openapi\": \"3.0.0\",\n  \"paths\": {\"/a\" 1}\n}", "t.json", true).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");

        for (text, what) in [
            ("info: {}\n", "not an OpenAPI document"),
            ("openapi: 3.0.0\n", "no `paths`"),
            ("swagger: '2.0'\npaths: [1]\n", "`paths` must be an object"),
            ("- 1\n", "not an object"),
        ] {
            let e = yaml(text).unwrap_err();
            assert!(e.what.contains(what), "{text}: {e}");
        }
    }

    /// What Swagger UI and Prism read past, we read past too: each defect is kept with its pointer and line,
    /// and only the defective part is lost.
    #[test]
    fn defects_are_read_past_with_pointer_and_line() {
        let s = yaml("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - name: q\n          in: body\n        - {name: r, in: query}\n      responses: {}\n")
            .unwrap();
        assert_eq!(s.operations.len(), 1);
        assert_eq!(s.operations[0].parameters.len(), 1, "the good parameter stays");
        assert_eq!(s.defects.len(), 1);
        assert_eq!(s.defects[0].line, Some(7));
        assert_eq!(s.defects[0].pointer, "/paths/~1a/get/parameters/0/in");
        assert!(s.defects[0].what.contains("`in` is `body`"));

        let s = yaml("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          $ref: '#/components/responses/Nope'\n")
            .unwrap();
        assert_eq!(
            (s.defects[0].line, s.defects[0].what.contains("does not resolve")),
            (Some(7), true),
            "{:?}",
            s.defects
        );

        let s = parse_spec("{\n \"swagger\": \"2.0\",\n \"paths\": {\n  \"a\": {\"get\": {}}\n }\n}", "t.json", true)
            .unwrap();
        assert_eq!(s.operations[0].template, "/a");
        assert_eq!((s.defects[0].line, s.defects[0].pointer.as_str()), (Some(4), "/paths/a"));

        for (text, what) in [
            ("openapi: 2.5.0\npaths: {/a: {get: {}}}\n", "unsupported OpenAPI version"),
            (
                "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '600': {}\n        '200': {description: ok}\n",
                "not a status code",
            ),
            ("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - {in: query}\n", "needs a `name`"),
            ("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      deprecated: 'yes'\n", "must be a boolean"),
            ("paths: {/a: {get: {}}}\n", "read as OpenAPI 3.0"),
        ] {
            let s = yaml(text).unwrap();
            assert_eq!(s.operations.len(), 1, "{text}");
            assert!(s.defects.iter().any(|d| d.what.contains(what)), "{text}: {:?}", s.defects);
            assert!(s.defects.iter().all(|d| d.line.is_some()), "{text}: {:?}", s.defects);
        }
    }

    /// A Swagger 2.0 document as a real server serves it: a non-standard type name on one parameter, no
    /// `info`, an extension field, a relative host-less base path.
    #[test]
    fn sloppy_swagger_from_a_real_server_loads() {
        let text = r#"{"swagger": "2.0", "basePath": "api/v1", "x-generator": {"name": "x"},
            "paths": {"/items/": {"get": {"parameters": [{"name": "limit", "in": "query", "type": "int"},
                {"name": "q", "in": "query", "type": "string"}], "responses": {"200": {"description": "ok"}}}},
              "/items/{id}/": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "type": "uuid"}],
                "responses": {"200": {"description": "ok"}}}}}}"#;
        let s = parse_spec(text, "t.json", true).unwrap();
        assert_eq!(s.operations.len(), 2);
        assert_eq!(s.base_paths, ["/api/v1"]);
        assert_eq!(s.defects.len(), 2, "{:?}", s.defects);
        assert!(s.defects.iter().all(|d| d.what.contains("unknown type")));
        let t: Vec<&str> = s.operations.iter().map(|o| o.template.as_str()).collect();
        assert!(t.contains(&"/items/") && t.contains(&"/items/{id}/"), "{t:?}");
    }

    #[test]
    fn file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_spec(&dir.path().join("missing.yaml")).unwrap_err();
        assert!(e.to_string().contains("missing.yaml") && e.what.contains("cannot read"), "{e}");
        let p = dir.path().join("s.json");
        std::fs::write(&p, "{\"openapi\": \"3.0.1\", \"paths\": {}}").unwrap();
        assert!(load_spec(&p).unwrap().operations.is_empty());
        let p = dir.path().join("s.bin");
        std::fs::write(&p, [0xff, 0xfe, 0]).unwrap();
        assert!(load_spec(&p).unwrap_err().what.contains("UTF-8"));
    }

    #[test]
    fn ref_chains_and_deep_schemas_are_bounded() {
        // A $ref loop outside schemas: reported, not followed forever.
        let s = yaml("openapi: 3.0.0\npaths:\n  /a:\n    $ref: '#/paths/~1a'\n").unwrap();
        assert!(s.defects[0].what.contains("hops"), "{:?}", s.defects);
        // Very deep nesting: capped and counted.
        let mut schema = String::from("{type: string}");
        for _ in 0..40 {
            schema = format!("{{type: array, items: {schema}}}");
        }
        let text = format!(
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: x\n          content:\n            application/json:\n              schema: {schema}\n"
        );
        match yaml(&text) {
            Ok(s) => assert!(s.stats.depth_capped > 0),
            // The YAML parser's own depth budget may refuse it first: an error, not a crash.
            Err(e) => assert!(e.what.contains("YAML"), "{e}"),
        }
        // External refs are opaque and counted.
        let s = yaml("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: x\n          content:\n            application/json:\n              schema: {$ref: 'other.yaml#/X'}\n").unwrap();
        assert_eq!(s.stats.external_refs, 1);
        assert!(s.operations[0].responses[0].content[0].schema.as_ref().unwrap().opaque);
    }

    #[test]
    fn exponential_ref_fanout_is_capped() {
        // Each level references the next one twice: 2^30 nodes if expanded naively.
        let mut text = String::from(
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: x\n          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/S0'}\ncomponents:\n  schemas:\n",
        );
        for i in 0..30 {
            text.push_str(&format!("    S{i}: {{properties: {{a: {{$ref: '#/components/schemas/S{n}'}}, b: {{$ref: '#/components/schemas/S{n}'}}}}}}\n", n = i + 1));
        }
        text.push_str("    S30: {type: string}\n");
        let s = yaml(&text).unwrap();
        assert!(s.stats.schema_node_cap_hits > 0 || s.stats.depth_capped > 0);
    }

    #[test]
    fn hostile_text_never_panics() {
        let seeds = [
            PETSTORE30,
            "{\"swagger\":\"2.0\",\"paths\":{\"/x\":{\"get\":{\"parameters\":[{\"in\":\"body\",\"name\":\"b\"}]}}}}",
        ];
        for seed in seeds {
            let b = seed.as_bytes();
            for cut in (0..b.len()).step_by(7) {
                let t = String::from_utf8_lossy(&b[..cut]);
                let _ = parse_spec(&t, "x", false);
                let _ = parse_spec(&t, "x", true);
                let mut m = b.to_vec();
                m[cut] = b"{}[]:-'\"\n#&*!|>"[cut % 15];
                let t = String::from_utf8_lossy(&m);
                let _ = parse_spec(&t, "x", false);
                let _ = parse_spec(&t, "x", true);
            }
        }
        // Billion laughs: the YAML budget refuses it.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..9 {
            let prev = if i == 0 { "a".to_owned() } else { format!("a{i}") };
            bomb.push_str(&format!("a{}: &a{} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n", i + 1, i + 1));
        }
        assert!(yaml(&bomb).is_err());
    }

    #[test]
    fn url_paths() {
        assert_eq!(url_path("https://h.example/api/v3/"), "/api/v3");
        assert_eq!(url_path("https://h.example"), "");
        assert_eq!(url_path("/"), "");
        assert_eq!(url_path("v2"), "/v2");
        assert_eq!(url_path("//h/x?y"), "/x");
        assert_eq!(crate::detect::input::percent_decode("/paths/~1a%7Bid%7D"), "/paths/~1a{id}");
    }
}
