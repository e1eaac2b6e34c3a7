//! Output: an OpenAPI 3.1 document per service, and `inventory.json`.
//!
//! No value from traffic is written, apart from the template, parameter and field names, content types and
//! enum members (small sets of short code-like words, each seen at least three times, never under a
//! personal-looking field name: see `schema.rs`). There are no `example`s.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::op::{OpCaps, Operation};
use super::template::{TemplateView, TreeCaps};
use super::{InventoryStats, Service};

/// A file name for a service key: `[A-Za-z0-9._-]` kept, anything else `_`.
pub fn file_name(service: &str) -> String {
    let s: String = service
        .chars()
        .take(200)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with('.') { format!("_{s}") } else { s }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Observed response",
    }
}

/// `securitySchemes` name and object for an auth key; None for `none`.
fn security_scheme(key: &str) -> Option<(String, Value)> {
    match key {
        "none" => None,
        "basic" => Some(("basicAuth".into(), json!({"type": "http", "scheme": "basic"}))),
        "bearer" => Some(("bearerAuth".into(), json!({"type": "http", "scheme": "bearer"}))),
        "jwt" => Some(("bearerJwt".into(), json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}))),
        k => {
            if let Some(n) = k.strip_prefix("apiKey:header:") {
                Some((format!("apiKeyHeader_{}", file_name(n)), json!({"type": "apiKey", "in": "header", "name": n})))
            } else if let Some(n) = k.strip_prefix("apiKey:query:") {
                Some((format!("apiKeyQuery_{}", file_name(n)), json!({"type": "apiKey", "in": "query", "name": n})))
            } else if let Some(n) = k.strip_prefix("cookie:") {
                Some((format!("cookie_{}", file_name(n)), json!({"type": "apiKey", "in": "cookie", "name": n})))
            } else {
                let s = k.strip_prefix("other:").unwrap_or(k);
                Some((format!("http_{}", file_name(s)), json!({"type": "http", "scheme": s})))
            }
        }
    }
}

fn stats(op: &Operation) -> Value {
    let q = |x| op.latency.quantile_ms(x).map_or(Value::Null, |v| json!(v));
    json!({
        "count": op.count,
        "first_seen": op.first_seen,
        "last_seen": op.last_seen,
        "no_response": op.no_response,
        "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99)},
        "clients_estimate": op.clients.estimate(),
        "statuses": op.responses.iter().map(|(s, r)| (s.to_string(), json!(r.count))).collect::<Map<_, _>>(),
        "auth": op.auth.iter().map(|(k, a)| (k.to_string(), json!({"count": a.count, "ok": a.ok}))).collect::<Map<_, _>>(),
        "caps": op.capped,
    })
}

fn data_classes(op: &Operation) -> Value {
    Value::Array(
        op.data_classes
            .iter()
            .map(|d| {
                json!({"location": &*d.location, "field": &*d.field, "class": &*d.class, "category": &*d.category, "count": d.count})
            })
            .collect(),
    )
}

fn operation_id(method: &str, template: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for seg in super::template::segments(template) {
        let seg = seg.trim_start_matches('{').trim_end_matches('}');
        let mut up = true;
        for c in seg.chars() {
            if c.is_ascii_alphanumeric() {
                id.push(if up { c.to_ascii_uppercase() } else { c });
                up = false;
            } else {
                up = true;
            }
        }
    }
    id
}

fn param_list(op: &Operation, v: &TemplateView<'_>, caps: &OpCaps) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, values) in &v.params {
        let schema = values.map_or_else(|| json!({"type": "string"}), |s| s.to_json_schema(&caps.schema));
        out.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
    }
    let req = |s: &super::schema::Schema| s.seen >= op.count && op.count > 0;
    for (k, s) in &op.query {
        out.push(json!({"name": &**k, "in": "query", "required": req(s), "schema": s.to_json_schema(&caps.schema),
            "x-mirador-seen": s.seen}));
    }
    for (k, s) in &op.headers {
        out.push(json!({"name": &**k, "in": "header", "required": req(s), "schema": s.to_json_schema(&caps.schema),
            "x-mirador-seen": s.seen}));
    }
    for (k, s) in &op.cookies {
        out.push(json!({"name": &**k, "in": "cookie", "required": req(s), "schema": s.to_json_schema(&caps.schema),
            "x-mirador-seen": s.seen}));
    }
    out
}

fn content(map: &BTreeMap<Box<str>, super::schema::Schema>, caps: &OpCaps) -> Value {
    Value::Object(
        map.iter()
            .map(|(ct, s)| {
                let mut m = Map::new();
                if s.seen > 0
                    && (s.null + s.boolean + s.integer + s.number > 0
                        || s.string.is_some()
                        || s.array.is_some()
                        || s.object.is_some())
                {
                    m.insert("schema".into(), s.to_json_schema(&caps.schema));
                }
                m.insert("x-mirador-seen".into(), json!(s.seen));
                (ct.to_string(), Value::Object(m))
            })
            .collect(),
    )
}

/// The longest literal path prefix every template of the service shares (`/api`), `/` when none.
pub fn base_path(templates: &[&str]) -> String {
    let mut common: Option<Vec<&str>> = None;
    for t in templates {
        let segs: Vec<&str> = super::template::segments(t).take_while(|s| !s.starts_with('{')).collect();
        common = Some(match common {
            None => segs,
            Some(c) => c.into_iter().zip(segs).take_while(|(a, b)| a == b).map(|(a, _)| a).collect(),
        });
    }
    let c = common.unwrap_or_default();
    if c.is_empty() { "/".to_owned() } else { format!("/{}", c.join("/")) }
}

fn service_base_path(svc: &Service, tree_caps: &TreeCaps) -> String {
    let views = svc.tree.views(tree_caps);
    let ts: Vec<&str> =
        views.iter().filter(|v| v.node.ops.iter().any(|(_, o)| o.answered())).map(|v| v.template.as_str()).collect();
    // A template that is the prefix itself (`/api` with `/api/x`) still counts: the base is its parent.
    let base = base_path(&ts);
    if ts.contains(&base.as_str()) && base != "/" {
        base.rsplit_once('/')
            .map_or_else(|| "/".to_owned(), |(p, _)| if p.is_empty() { "/".to_owned() } else { p.to_owned() })
    } else {
        base
    }
}

/// The OpenAPI 3.1 document of one service.
pub fn document(key: &str, svc: &Service, tree_caps: &TreeCaps, caps: &OpCaps) -> Value {
    let mut paths = Map::new();
    let mut schemes = Map::new();
    for v in svc.tree.views(tree_caps) {
        let mut item = Map::new();
        let mut ops: Vec<&(Box<str>, Operation)> = v.node.ops.iter().filter(|(_, op)| op.answered()).collect();
        ops.sort_by(|a, b| a.0.cmp(&b.0));
        for (method, op) in ops {
            let m = method.to_ascii_lowercase();
            let standard =
                matches!(m.as_str(), "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace");
            let mut o = Map::new();
            o.insert("operationId".into(), json!(operation_id(method, &v.template)));
            let params = param_list(op, &v, caps);
            if !params.is_empty() {
                o.insert("parameters".into(), Value::Array(params));
            }
            if !op.request.is_empty() {
                let with_body: u64 = op.request.values().map(|s| s.seen).sum();
                o.insert(
                    "requestBody".into(),
                    json!({"required": with_body >= op.count, "content": content(&op.request, caps)}),
                );
            }
            let mut responses = Map::new();
            for (st, r) in &op.responses {
                let mut resp = Map::new();
                resp.insert("description".into(), json!(reason(*st)));
                if !r.content.is_empty() {
                    resp.insert("content".into(), content(&r.content, caps));
                }
                resp.insert("x-mirador-seen".into(), json!(r.count));
                responses.insert(st.to_string(), Value::Object(resp));
            }
            if responses.is_empty() {
                responses.insert("default".into(), json!({"description": "No response observed"}));
            }
            o.insert("responses".into(), Value::Object(responses));
            // Accepted schemes: those a 2xx/3xx answer was given to. `{}` (no auth) only when unauthenticated
            // requests succeeded.
            let mut security = Vec::new();
            for (k, a) in &op.auth {
                if a.ok == 0 {
                    continue;
                }
                match security_scheme(k) {
                    Some((name, obj)) => {
                        schemes.insert(name.clone(), obj);
                        security.push(json!({ name: [] }));
                    }
                    None => security.push(json!({})),
                }
            }
            if !security.is_empty() {
                o.insert("security".into(), Value::Array(security));
            }
            o.insert("x-mirador-stats".into(), stats(op));
            o.insert("x-mirador-data-classes".into(), data_classes(op));
            o.insert("x-mirador-confidence".into(), json!(v.confidence));
            if standard {
                item.insert(m, Value::Object(o));
            } else {
                // OpenAPI has no field for other methods: kept as an extension.
                let ext = item.entry("x-mirador-other-methods").or_insert_with(|| json!({}));
                if let Some(e) = ext.as_object_mut() {
                    e.insert(method.to_string(), Value::Object(o));
                }
            }
        }
        if !item.is_empty() {
            paths.insert(v.template.clone(), Value::Object(item));
        }
    }
    let host = key.rsplit('/').next().unwrap_or(key);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": key,
            "version": "observed",
            "description": "Learned by mirador from passive traffic. Statistics are in x-mirador-* extensions; no value seen in traffic is reproduced.",
        },
        "servers": [{"url": format!("http://{host}")}],
        "paths": paths,
        "x-mirador-service": {
            "service": key,
            "base_path": service_base_path(svc, tree_caps),
            "transactions": svc.transactions,
            "first_seen": svc.first_seen,
            "last_seen": svc.last_seen,
        },
    });
    if !schemes.is_empty()
        && let Some(d) = doc.as_object_mut()
    {
        d.insert("components".into(), json!({ "securitySchemes": schemes }));
    }
    doc
}

/// `inventory.json`: every service and operation with counts, auth, data classes and first/last seen.
pub fn inventory(services: &super::Services, st: &InventoryStats, tree_caps: &TreeCaps) -> Value {
    let mut keys: Vec<&String> = services.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    let mut caps_total = super::op::OpCounters::default();
    for k in keys {
        let Some(svc) = services.get(k) else { continue };
        let mut ops = Vec::new();
        for v in svc.tree.views(tree_caps) {
            for (method, op) in &v.node.ops {
                caps_total.add(&op.capped);
                if !op.answered() {
                    continue;
                }
                let q = |x| op.latency.quantile_ms(x).map_or(Value::Null, |v| json!(v));
                ops.push(json!({
                    "method": &**method,
                    "endpoint": v.template,
                    "confidence": v.confidence,
                    "count": op.count,
                    "first_seen": op.first_seen,
                    "last_seen": op.last_seen,
                    "statuses": op.responses.iter().map(|(s, r)| (s.to_string(), json!(r.count))).collect::<Map<_, _>>(),
                    "auth": op.auth.iter().map(|(k, a)| (k.to_string(), json!(a.count))).collect::<Map<_, _>>(),
                    "data_classes": data_classes(op),
                    "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99)},
                    "clients_estimate": op.clients.estimate(),
                }));
            }
        }
        out.push(json!({
            "service": k,
            "base_path": service_base_path(svc, tree_caps),
            "transactions": svc.transactions,
            "first_seen": svc.first_seen,
            "last_seen": svc.last_seen,
            "operations": ops,
            "probes": &svc.probes,
        }));
    }
    json!({"services": out, "stats": {"inventory": st, "operations": caps_total}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(file_name("vni-7/api.example.com:8080"), "vni-7_api.example.com_8080");
        assert_eq!(file_name(".."), "_..");
        assert_eq!(operation_id("GET", "/users/{userId}/payment-methods"), "getUsersUserIdPaymentMethods");
        assert_eq!(base_path(&["/api/v1/users", "/api/v2/products/{productId}"]), "/api");
        assert_eq!(base_path(&["/api/v1/users", "/health"]), "/");
        assert_eq!(base_path(&["/v1/payments/{paymentId}", "/v1/refunds"]), "/v1");
        assert_eq!(base_path(&[]), "/");
        assert_eq!(security_scheme("apiKey:header:x-api-key").unwrap().0, "apiKeyHeader_x-api-key");
    }
}
