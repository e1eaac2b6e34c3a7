//! Output formats of the sinks: native JSON (the analyzer record unchanged), Elastic Common Schema, OCSF and
//! ArcSight CEF, plus the syslog framings (RFC 5424, RFC 3164).
//!
//! Inputs are the JSON records analyzers emit, already redacted. The analyzers are written independently, so
//! every mapping reads fields defensively: a missing or oddly typed field is left out, never an error, and no
//! field outside the record is invented (redaction holds: a sink never sees more than `DIR/<stream>.jsonl`).

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// ECS version the mapping targets (validated against `@elastic/ecs` in tests/sinks.rs).
pub const ECS_VERSION: &str = "9.4.0";
/// OCSF version the mapping targets (validated against pydantic-ocsf's `v1_7_0.json` in tests/sinks.rs).
pub const OCSF_VERSION: &str = "1.7.0";
const VENDOR: &str = "mirador";
const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The record streams a sink can carry (`kinds` in the sink configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Alerts,
    Findings,
    Inventory,
    Transactions,
}

impl Stream {
    pub fn from_name(s: &str) -> Option<Stream> {
        match s {
            "alerts" => Some(Stream::Alerts),
            "findings" => Some(Stream::Findings),
            "inventory" => Some(Stream::Inventory),
            "transactions" => Some(Stream::Transactions),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stream::Alerts => "alerts",
            Stream::Findings => "findings",
            Stream::Inventory => "inventory",
            Stream::Transactions => "transactions",
        }
    }
}

/// The detections' severity levels, in order. Records carry them as strings ("high") or numbers (0..=10
/// CVSS-like, or 1..=5): the impl below reads both.
pub use crate::detect::rules::Severity;

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s.to_ascii_lowercase().as_str() {
            "info" | "informational" | "none" => Some(Severity::Info),
            "low" => Some(Severity::Low),
            "medium" | "moderate" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" | "fatal" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// The record's severity: `severity` as a name or a number. Records without one (inventory, transactions)
    /// are `Info`; findings default to `Medium` when they carry a confidence but no severity.
    pub fn of(v: &Value) -> Severity {
        match v.get("severity") {
            Some(Value::String(s)) => Severity::parse(s).unwrap_or(Severity::Info),
            Some(Value::Number(n)) => {
                let x = n.as_f64().unwrap_or(0.0);
                // Whole numbers 1..=5 are a five-level scale; anything else is read as CVSS-like 0..=10.
                if x.fract() == 0.0 && (1.0..=5.0).contains(&x) {
                    match x as u8 {
                        1 => Severity::Info,
                        2 => Severity::Low,
                        3 => Severity::Medium,
                        4 => Severity::High,
                        _ => Severity::Critical,
                    }
                } else if x >= 9.0 {
                    Severity::Critical
                } else if x >= 7.0 {
                    Severity::High
                } else if x >= 4.0 {
                    Severity::Medium
                } else if x > 0.0 {
                    Severity::Low
                } else {
                    Severity::Info
                }
            }
            _ => Severity::Info,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// ECS `event.severity` and a 0..100 risk score.
    fn ecs(self) -> (u8, f64) {
        match self {
            Severity::Info => (1, 10.0),
            Severity::Low => (2, 30.0),
            Severity::Medium => (3, 50.0),
            Severity::High => (4, 75.0),
            Severity::Critical => (5, 95.0),
        }
    }

    /// OCSF `severity_id` (1 Informational .. 5 Critical) and its caption.
    fn ocsf(self) -> (u8, &'static str) {
        match self {
            Severity::Info => (1, "Informational"),
            Severity::Low => (2, "Low"),
            Severity::Medium => (3, "Medium"),
            Severity::High => (4, "High"),
            Severity::Critical => (5, "Critical"),
        }
    }

    /// CEF severity 0..=10.
    fn cef(self) -> u8 {
        match self {
            Severity::Info => 1,
            Severity::Low => 3,
            Severity::Medium => 5,
            Severity::High => 8,
            Severity::Critical => 10,
        }
    }

    /// Syslog severity (RFC 5424 table 2).
    pub fn syslog(self) -> u8 {
        match self {
            Severity::Info => 6,
            Severity::Low => 5,
            Severity::Medium => 4,
            Severity::High => 3,
            Severity::Critical => 2,
        }
    }
}

/// The body format of a sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The analyzer record as is.
    #[default]
    Json,
    Ecs,
    Ocsf,
    Cef,
}

impl Format {
    /// One record in this format: a JSON document, or a CEF line (no trailing newline).
    pub fn render(self, stream: Stream, v: &Value, observer: &Observer) -> Vec<u8> {
        match self {
            Format::Json => serde_json::to_vec(v).unwrap_or_default(),
            Format::Ecs => serde_json::to_vec(&ecs(stream, v, observer)).unwrap_or_default(),
            Format::Ocsf => serde_json::to_vec(&ocsf(stream, v, observer)).unwrap_or_default(),
            Format::Cef => cef(stream, v).into_bytes(),
        }
    }

    pub fn is_json(self) -> bool {
        !matches!(self, Format::Cef)
    }
}

/// Who is reporting: the sensor host.
#[derive(Clone, Debug)]
pub struct Observer {
    pub hostname: String,
}

impl Observer {
    pub fn local() -> Observer {
        Observer { hostname: local_hostname() }
    }
}

/// The machine's host name (Linux), "localhost" when it cannot be read.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().chars().filter(|c| c.is_ascii_graphic()).take(255).collect::<String>())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

// ---- field access ---------------------------------------------------------------------------------------

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty())
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

/// Strings of a field that is a string or an array of strings.
fn strings(v: &Value, k: &str) -> Vec<String> {
    match v.get(k) {
        Some(Value::String(x)) if !x.is_empty() => vec![x.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The record time in seconds since the epoch: `ts` as seconds (float or integer) or an RFC 3339 string.
pub fn record_time(v: &Value) -> Option<f64> {
    match v.get("ts").or_else(|| v.get("time")) {
        Some(Value::Number(n)) => n.as_f64().filter(|x| x.is_finite() && *x >= 0.0),
        Some(Value::String(t)) => parse_rfc3339(t),
        _ => None,
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// An endpoint of the record: `src`/`dst` as "ip:port", "[v6]:port", "ip", or an object {ip, port}; or
/// `src_ip`/`src_port`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

fn endpoint(v: &Value, side: &str) -> Endpoint {
    let mut e = Endpoint::default();
    match v.get(side) {
        Some(Value::String(t)) => {
            if let Ok(sa) = t.parse::<std::net::SocketAddr>() {
                e.ip = Some(sa.ip());
                e.port = Some(sa.port());
            } else if let Ok(ip) = t.parse::<IpAddr>() {
                e.ip = Some(ip);
            }
        }
        Some(o @ Value::Object(_)) => {
            e.ip = s(o, "ip").or_else(|| s(o, "addr")).and_then(|x| x.parse().ok());
            e.port = u(o, "port").and_then(|p| u16::try_from(p).ok());
        }
        _ => {}
    }
    if e.ip.is_none() {
        e.ip = s(v, &format!("{side}_ip")).and_then(|x| x.parse().ok());
    }
    if e.port.is_none() {
        e.port = u(v, &format!("{side}_port")).and_then(|p| u16::try_from(p).ok());
    }
    e
}

/// Community ID v1 (corelight/community-id-spec) of a TCP connection, seed 0.
pub fn community_id(src: &Endpoint, dst: &Endpoint) -> Option<String> {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    let (a, ap, b, bp) = (src.ip?, src.port?, dst.ip?, dst.port?);
    let bytes = |ip: IpAddr| match ip {
        IpAddr::V4(x) => x.octets().to_vec(),
        IpAddr::V6(x) => x.octets().to_vec(),
    };
    let (ab, bb) = (bytes(a), bytes(b));
    if ab.len() != bb.len() {
        return None;
    }
    // Ordered so both directions of a connection give the same id.
    let ((ab, ap), (bb, bp)) =
        if (ab.as_slice(), ap) <= (bb.as_slice(), bp) { ((ab, ap), (bb, bp)) } else { ((bb, bp), (ab, ap)) };
    let mut h = Sha1::new();
    h.update(0u16.to_be_bytes());
    h.update(&ab);
    h.update(&bb);
    h.update([6u8, 0u8]);
    h.update(ap.to_be_bytes());
    h.update(bp.to_be_bytes());
    Some(format!("1:{}", base64::engine::general_purpose::STANDARD.encode(h.finalize())))
}

/// Event name of a record: the alert title, the finding or inventory type.
fn title(stream: Stream, v: &Value) -> String {
    s(v, "title")
        .or_else(|| s(v, "name"))
        .or_else(|| s(v, "type"))
        .or_else(|| s(v, "kind"))
        .or_else(|| s(v, "category"))
        .map(str::to_owned)
        .unwrap_or_else(|| stream.name().to_owned())
}

/// Signature/rule id of a record.
fn rule_id(stream: Stream, v: &Value) -> String {
    s(v, "rule")
        .or_else(|| s(v, "signature_id"))
        .or_else(|| s(v, "type"))
        .or_else(|| s(v, "kind"))
        .map(str::to_owned)
        .or_else(|| v.get("signature_id").and_then(Value::as_u64).map(|n| n.to_string()))
        .unwrap_or_else(|| stream.name().to_owned())
}

fn record_uid(v: &Value) -> Option<String> {
    s(v, "id").or_else(|| s(v, "uid")).map(str::to_owned)
}

/// The request URL (scheme unknown to a passive sensor on cleartext HTTP: `http`).
fn url_parts(v: &Value) -> (Option<&str>, Option<&str>) {
    (s(v, "host").or_else(|| s(v, "service")), s(v, "path").or_else(|| s(v, "uri")))
}

fn insert(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(k.to_owned(), v);
    }
}

fn obj(m: Map<String, Value>) -> Option<Value> {
    (!m.is_empty()).then_some(Value::Object(m))
}

// ---- ECS ------------------------------------------------------------------------------------------------

/// The record in Elastic Common Schema. Fields ECS has no place for go under `mirador.*` (a custom
/// namespace, as ECS advises).
pub fn ecs(stream: Stream, v: &Value, observer: &Observer) -> Value {
    let sev = Severity::of(v);
    let t = record_time(v).unwrap_or_else(now_secs);
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(rfc3339(t)));
    doc.insert("ecs".into(), json!({"version": ECS_VERSION}));
    let (kind, category, etype): (&str, Vec<&str>, Vec<&str>) = match stream {
        Stream::Alerts => ("alert", vec!["intrusion_detection", "web"], vec!["info"]),
        Stream::Findings => ("alert", vec!["web"], vec!["info"]),
        Stream::Inventory => ("event", vec!["web", "configuration"], vec![inventory_change(v)]),
        Stream::Transactions => ("event", vec!["web", "network"], vec!["access", "protocol"]),
    };
    let mut event = Map::new();
    event.insert("kind".into(), json!(kind));
    event.insert("category".into(), json!(category));
    event.insert("type".into(), json!(etype));
    event.insert("module".into(), json!(VENDOR));
    event.insert("dataset".into(), json!(format!("{VENDOR}.{}", stream.name())));
    event.insert("provider".into(), json!(VENDOR));
    if stream != Stream::Transactions && stream != Stream::Inventory {
        let (n, score) = sev.ecs();
        event.insert("severity".into(), json!(n));
        event.insert("risk_score".into(), json!(score));
    }
    insert(&mut event, "id", record_uid(v).map(Value::from));
    insert(&mut event, "action", s(v, "type").or_else(|| s(v, "kind")).map(Value::from));
    insert(&mut event, "reason", s(v, "title").map(Value::from));
    doc.insert("event".into(), Value::Object(event));

    let (src, dst) = (endpoint(v, "src"), endpoint(v, "dst"));
    for (name, e) in [("source", &src), ("destination", &dst)] {
        let mut m = Map::new();
        insert(&mut m, "ip", e.ip.map(|x| json!(x.to_string())));
        insert(&mut m, "address", e.ip.map(|x| json!(x.to_string())));
        insert(&mut m, "port", e.port.map(Value::from));
        insert(&mut doc, name, obj(m));
    }
    let mut network = Map::new();
    network.insert("protocol".into(), json!("http"));
    network.insert("transport".into(), json!("tcp"));
    insert(&mut network, "community_id", community_id(&src, &dst).map(Value::from));
    doc.insert("network".into(), Value::Object(network));

    let mut req = Map::new();
    insert(&mut req, "method", s(v, "method").map(Value::from));
    let mut http = Map::new();
    insert(&mut http, "request", obj(req));
    let mut resp = Map::new();
    insert(&mut resp, "status_code", u(v, "status").map(Value::from));
    insert(&mut http, "response", obj(resp));
    insert(&mut doc, "http", obj(http));

    let (host, path) = url_parts(v);
    let mut url = Map::new();
    insert(&mut url, "domain", host.map(Value::from));
    insert(&mut url, "path", path.map(Value::from));
    if let Some(p) = path {
        url.insert("original".into(), json!(p));
    }
    insert(&mut doc, "url", obj(url));
    insert(&mut doc, "user_agent", s(v, "user_agent").map(|x| json!({"original": x})));

    if matches!(stream, Stream::Alerts | Stream::Findings) {
        let mut rule = Map::new();
        rule.insert("id".into(), json!(rule_id(stream, v)));
        rule.insert("name".into(), json!(title(stream, v)));
        rule.insert("ruleset".into(), json!(VENDOR));
        insert(&mut rule, "category", s(v, "owasp").or_else(|| s(v, "category")).map(Value::from));
        insert(&mut rule, "description", s(v, "description").map(Value::from));
        doc.insert("rule".into(), Value::Object(rule));
        let mitre = strings(v, "mitre");
        if !mitre.is_empty() {
            doc.insert("threat".into(), json!({"framework": "MITRE ATT&CK", "technique": {"id": mitre}}));
        }
    }
    doc.insert(
        "observer".into(),
        json!({"vendor": VENDOR, "product": VENDOR, "type": "sensor", "version": PRODUCT_VERSION, "hostname": observer.hostname}),
    );
    if let Some(a) = s(v, "actor") {
        doc.insert("labels".into(), json!({"actor": a}));
    }
    if let Some(h) = host {
        doc.insert("service".into(), json!({"name": h}));
    }
    let extra = extras(v, ECS_MAPPED);
    if !extra.is_empty() {
        doc.insert(VENDOR.into(), Value::Object(extra));
    }
    Value::Object(doc)
}

/// Record fields the ECS mapping places elsewhere (everything else is kept under `mirador.*`).
const ECS_MAPPED: &[&str] =
    &["ts", "time", "id", "title", "severity", "src", "dst", "method", "status", "user_agent", "mitre", "actor"];

/// Fields not mapped to a schema field, kept under the vendor namespace so nothing an analyzer said is lost.
fn extras(v: &Value, mapped: &[&str]) -> Map<String, Value> {
    match v {
        Value::Object(m) => {
            m.iter().filter(|(k, _)| !mapped.contains(&k.as_str())).map(|(k, x)| (k.clone(), x.clone())).collect()
        }
        _ => Map::new(),
    }
}

fn inventory_change(v: &Value) -> &'static str {
    match s(v, "kind").or_else(|| s(v, "type")).unwrap_or("") {
        k if k.starts_with("new") => "creation",
        k if k.contains("removed") || k.contains("gone") => "deletion",
        _ => "change",
    }
}

// ---- OCSF -----------------------------------------------------------------------------------------------

/// The record in OCSF: Detection Finding (class 2004) for alerts and findings, API Activity (6003) for
/// transactions, and Detection Finding with severity Informational for inventory changes (there is no
/// inventory-change class for API operations).
pub fn ocsf(stream: Stream, v: &Value, observer: &Observer) -> Value {
    let t = record_time(v).unwrap_or_else(now_secs);
    let time_ms = (t * 1000.0) as i64;
    let metadata = json!({
        "version": OCSF_VERSION,
        "product": {"name": VENDOR, "vendor_name": VENDOR, "version": PRODUCT_VERSION},
        "log_name": stream.name(),
    });
    let mut doc = Map::new();
    doc.insert("time".into(), json!(time_ms));
    let mut metadata = metadata;
    if let (Some(m), Some(uid)) = (metadata.as_object_mut(), record_uid(v)) {
        m.insert("uid".into(), json!(uid));
    }
    doc.insert("metadata".into(), metadata);
    let (src, dst) = (endpoint(v, "src"), endpoint(v, "dst"));
    let ep = |e: &Endpoint| {
        let mut m = Map::new();
        insert(&mut m, "ip", e.ip.map(|x| json!(x.to_string())));
        insert(&mut m, "port", e.port.map(Value::from));
        obj(m)
    };
    let (host, path) = url_parts(v);
    let mut url = Map::new();
    insert(&mut url, "hostname", host.map(Value::from));
    insert(&mut url, "path", path.map(Value::from));
    if let (Some(h), Some(p)) = (host, path) {
        url.insert("url_string".into(), json!(format!("http://{h}{p}")));
    }
    let mut http_request = Map::new();
    insert(&mut http_request, "http_method", s(v, "method").map(Value::from));
    insert(&mut http_request, "url", obj(url));
    insert(&mut http_request, "user_agent", s(v, "user_agent").map(Value::from));

    if stream == Stream::Transactions {
        // API Activity: activity from the HTTP method (1 Create, 2 Read, 3 Update, 4 Delete, 99 Other).
        let (activity_id, activity) = match s(v, "method").unwrap_or("") {
            "POST" => (1, "Create"),
            "GET" | "HEAD" => (2, "Read"),
            "PUT" | "PATCH" => (3, "Update"),
            "DELETE" => (4, "Delete"),
            _ => (99, "Other"),
        };
        let status = u(v, "status");
        let (status_id, status_name) = match status {
            Some(c) if c < 400 => (1, "Success"),
            Some(_) => (2, "Failure"),
            None => (0, "Unknown"),
        };
        doc.insert("category_uid".into(), json!(6));
        doc.insert("category_name".into(), json!("Application Activity"));
        doc.insert("class_uid".into(), json!(6003));
        doc.insert("class_name".into(), json!("API Activity"));
        doc.insert("activity_id".into(), json!(activity_id));
        doc.insert("activity_name".into(), json!(activity));
        doc.insert("type_uid".into(), json!(600300 + activity_id));
        doc.insert("severity_id".into(), json!(1));
        doc.insert("severity".into(), json!("Informational"));
        doc.insert("status_id".into(), json!(status_id));
        doc.insert("status".into(), json!(status_name));
        let mut api = Map::new();
        api.insert("operation".into(), json!(s(v, "method").unwrap_or("unknown")));
        insert(&mut api, "service", host.map(|h| json!({"name": h})));
        let mut resp = Map::new();
        insert(&mut resp, "code", status.map(Value::from));
        insert(&mut api, "response", obj(resp));
        doc.insert("api".into(), Value::Object(api));
        // `actor` and `src_endpoint` are required by the class.
        doc.insert("actor".into(), json!({"app_name": s(v, "user_agent").unwrap_or("unknown")}));
        doc.insert("src_endpoint".into(), ep(&src).unwrap_or_else(|| json!({})));
        insert(&mut doc, "dst_endpoint", ep(&dst));
        insert(&mut doc, "http_request", obj(http_request));
        if let Some(c) = status {
            doc.insert("http_response".into(), json!({"code": c}));
        }
    } else {
        let sev = if stream == Stream::Inventory { Severity::Info } else { Severity::of(v) };
        let (sid, sname) = sev.ocsf();
        doc.insert("category_uid".into(), json!(2));
        doc.insert("category_name".into(), json!("Findings"));
        doc.insert("class_uid".into(), json!(2004));
        doc.insert("class_name".into(), json!("Detection Finding"));
        doc.insert("activity_id".into(), json!(1));
        doc.insert("activity_name".into(), json!("Create"));
        doc.insert("type_uid".into(), json!(200401));
        doc.insert("severity_id".into(), json!(sid));
        doc.insert("severity".into(), json!(sname));
        doc.insert("status_id".into(), json!(1));
        doc.insert("status".into(), json!("New"));
        doc.insert("is_alert".into(), json!(stream == Stream::Alerts));
        let mut fi = Map::new();
        fi.insert("uid".into(), json!(record_uid(v).unwrap_or_else(|| format!("{}-{time_ms}", rule_id(stream, v)))));
        fi.insert("title".into(), json!(title(stream, v)));
        insert(&mut fi, "desc", s(v, "description").or_else(|| s(v, "evidence")).map(Value::from));
        fi.insert(
            "analytic".into(),
            json!({"uid": rule_id(stream, v), "name": title(stream, v), "type_id": 1, "type": "Rule"}),
        );
        let mut types = Vec::new();
        for k in ["owasp", "category", "type"] {
            if let Some(x) = s(v, k) {
                types.push(json!(x));
            }
        }
        if !types.is_empty() {
            fi.insert("types".into(), Value::Array(types));
        }
        let attacks: Vec<Value> =
            strings(v, "mitre").into_iter().map(|id| json!({"technique": {"uid": id}, "version": "17"})).collect();
        if !attacks.is_empty() {
            fi.insert("attacks".into(), Value::Array(attacks));
        }
        doc.insert("finding_info".into(), Value::Object(fi));
        if let Some(c) = num(v, "confidence") {
            // A 0..1 confidence becomes a percentage; 0..100 stays.
            let score = if c <= 1.0 { c * 100.0 } else { c };
            doc.insert("confidence_score".into(), json!(score.clamp(0.0, 100.0) as i64));
        }
        let mut evidence = Map::new();
        insert(&mut evidence, "src_endpoint", ep(&src));
        insert(&mut evidence, "dst_endpoint", ep(&dst));
        insert(&mut evidence, "http_request", obj(http_request));
        if let Some(a) = s(v, "actor") {
            evidence.insert("actor".into(), json!({"user": {"name": a}}));
        }
        if !evidence.is_empty() {
            doc.insert("evidences".into(), json!([evidence]));
        }
    }
    // Everything OCSF has no attribute for, and the reporting sensor (OCSF's `device` is the affected host).
    let mut unmapped = extras(v, &["ts", "time", "id", "title", "severity", "src", "dst", "method", "status"]);
    unmapped.insert("observer_hostname".into(), json!(observer.hostname));
    doc.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(doc)
}

// ---- CEF ------------------------------------------------------------------------------------------------

fn cef_header(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '|' => o.push_str("\\|"),
            '\r' | '\n' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn cef_ext(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '=' => o.push_str("\\="),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            c => o.push(c),
        }
    }
    o
}

/// The record as one ArcSight CEF line:
/// `CEF:0|mirador|mirador|<version>|<rule>|<title>|<0..10>|key=value ...`.
pub fn cef(stream: Stream, v: &Value) -> String {
    let sev = if matches!(stream, Stream::Alerts | Stream::Findings) { Severity::of(v) } else { Severity::Info };
    let mut o = format!(
        "CEF:0|{VENDOR}|{VENDOR}|{PRODUCT_VERSION}|{}|{}|{}|",
        cef_header(&rule_id(stream, v)),
        cef_header(&title(stream, v)),
        sev.cef()
    );
    let mut ext: Vec<(&str, String)> = Vec::new();
    if let Some(t) = record_time(v) {
        ext.push(("rt", format!("{}", (t * 1000.0) as i64)));
    }
    let (src, dst) = (endpoint(v, "src"), endpoint(v, "dst"));
    if let Some(ip) = src.ip {
        ext.push(("src", ip.to_string()));
    }
    if let Some(p) = src.port {
        ext.push(("spt", p.to_string()));
    }
    if let Some(ip) = dst.ip {
        ext.push(("dst", ip.to_string()));
    }
    if let Some(p) = dst.port {
        ext.push(("dpt", p.to_string()));
    }
    ext.push(("cat", stream.name().to_owned()));
    for (k, f) in [
        ("externalId", "id"),
        ("requestMethod", "method"),
        ("dhost", "host"),
        ("request", "path"),
        ("suser", "actor"),
        ("requestClientApplication", "user_agent"),
        ("msg", "evidence"),
    ] {
        if let Some(x) = s(v, f) {
            ext.push((k, x.to_owned()));
        }
    }
    if let Some(x) = s(v, "uid").filter(|_| s(v, "id").is_none()) {
        ext.push(("externalId", x.to_owned()));
    }
    if let Some(c) = u(v, "count") {
        ext.push(("cnt", c.to_string()));
    }
    let labelled = [
        ("cs1", "owasp", "OWASP"),
        ("cs2", "mitre", "MITRE ATT&CK"),
        ("cs3", "endpoint", "endpoint"),
        ("cs4", "field", "field"),
        ("cs5", "location", "location"),
        ("cs6", "kind", "kind"),
    ];
    for (k, f, label) in labelled {
        let vals = strings(v, f);
        if !vals.is_empty() {
            ext.push((k, vals.join(",")));
            ext.push(match k {
                "cs1" => ("cs1Label", label.to_owned()),
                "cs2" => ("cs2Label", label.to_owned()),
                "cs3" => ("cs3Label", label.to_owned()),
                "cs4" => ("cs4Label", label.to_owned()),
                "cs5" => ("cs5Label", label.to_owned()),
                _ => ("cs6Label", label.to_owned()),
            });
        }
    }
    for (i, (k, x)) in ext.iter().enumerate() {
        if i > 0 {
            o.push(' ');
        }
        let _ = write!(o, "{k}={}", cef_ext(x));
    }
    o
}

// ---- time -----------------------------------------------------------------------------------------------

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn split(t: f64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let t = if t.is_finite() { t.clamp(0.0, 253_402_300_799.0) } else { 0.0 };
    let secs = t.floor() as i64;
    let micros = ((t - t.floor()) * 1e6) as u32;
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    (y, mo, d, sod / 3600, sod / 60 % 60, sod % 60, micros.min(999_999))
}

/// `2026-11-23T21:07:25.123456Z`.
pub fn rfc3339(t: f64) -> String {
    let (y, mo, d, h, mi, s, us) = split(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z")
}

/// `Nov 23 21:07:25` (RFC 3164, UTC: the sensor does not know the receiver's zone).
pub fn rfc3164_time(t: f64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, mo, d, h, mi, s, _) = split(t);
    let m = MONTHS.get(mo.saturating_sub(1) as usize).copied().unwrap_or("Jan");
    format!("{m} {d:>2} {h:02}:{mi:02}:{s:02}")
}

/// Seconds since the epoch of an RFC 3339 UTC or offset timestamp; `None` if it is not one.
pub fn parse_rfc3339(t: &str) -> Option<f64> {
    let b = t.as_bytes();
    let n = |r: std::ops::Range<usize>| t.get(r).and_then(|x| x.parse::<u32>().ok());
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (y, mo, d, h, mi, s) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0.0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac = t.get(start - 1..i).and_then(|x| format!("0{x}").parse::<f64>().ok()).unwrap_or(0.0);
    }
    let offset: i64 = match b.get(i) {
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = i64::from(n(i + 1..i + 3)?);
            let om = i64::from(n(i + 4..i + 6)?);
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset;
    Some(secs as f64 + frac)
}

// ---- syslog ---------------------------------------------------------------------------------------------

/// Syslog header flavour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    #[default]
    Rfc5424,
    Rfc3164,
}

/// Printable ASCII only, at most `max` bytes, "-" when empty (RFC 5424 header fields).
fn header_field(s: &str, max: usize) -> String {
    let x: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if x.is_empty() { "-".to_owned() } else { x }
}

/// The fixed parts of a sink's syslog header.
#[derive(Clone, Debug)]
pub struct SyslogHeader {
    pub protocol: SyslogProtocol,
    /// 0..=23 (clamped).
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
}

/// One syslog message (without transport framing). `msg` is the formatted record.
pub fn syslog_message(h: &SyslogHeader, sev: Severity, t: f64, msgid: &str, msg: &[u8]) -> Vec<u8> {
    let (proto, facility, hostname, app_name) = (h.protocol, h.facility, h.hostname.as_str(), h.app_name.as_str());
    let pri = u32::from(facility.min(23)) * 8 + u32::from(sev.syslog());
    let mut o = Vec::with_capacity(msg.len() + 96);
    match proto {
        SyslogProtocol::Rfc5424 => {
            let _ = std::io::Write::write_fmt(
                &mut o,
                format_args!(
                    "<{pri}>1 {} {} {} {} {} - ",
                    rfc3339(t),
                    header_field(hostname, 255),
                    header_field(app_name, 48),
                    std::process::id(),
                    header_field(msgid, 32)
                ),
            );
        }
        SyslogProtocol::Rfc3164 => {
            let _ = std::io::Write::write_fmt(
                &mut o,
                format_args!(
                    "<{pri}>{} {} {}[{}]: ",
                    rfc3164_time(t),
                    header_field(hostname, 255),
                    header_field(app_name, 32),
                    std::process::id()
                ),
            );
        }
    }
    // A newline inside a message would split it for LF-framed receivers.
    o.extend(msg.iter().map(|&c| if c == b'\n' || c == b'\r' { b' ' } else { c }));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Value {
        json!({"id":"a1","ts":1763932045.5,"rule":"bola","type":"bola","title":"BOLA | object","severity":"high",
               "owasp":"API1:2023","mitre":["T1190"],"actor":"198.51.100.23","src":"198.51.100.23:40000",
               "dst":"10.0.0.5:80","method":"GET","host":"api.example","path":"/users/2","count":3})
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1763932045.5), "2025-11-23T21:07:25.500000Z");
        assert_eq!(parse_rfc3339("2025-11-23T21:07:25.5Z"), Some(1763932045.5));
        assert_eq!(parse_rfc3339("2025-11-23T22:07:25+01:00"), Some(1763932045.0));
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339("2025-13-23T22:07:25Z"), None);
        assert_eq!(rfc3164_time(1763932045.0), "Nov 23 21:07:25");
        assert_eq!(rfc3339(f64::NAN), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn severity_forms() {
        assert_eq!(Severity::of(&json!({"severity":"HIGH"})), Severity::High);
        assert_eq!(Severity::of(&json!({"severity":9.8})), Severity::Critical);
        assert_eq!(Severity::of(&json!({"severity":4})), Severity::High);
        assert_eq!(Severity::of(&json!({"severity":6.5})), Severity::Medium);
        assert_eq!(Severity::of(&json!({})), Severity::Info);
        assert!(Severity::Medium < Severity::High);
    }

    #[test]
    fn community_id_known_vector() {
        // From the community-id spec's test data: 128.232.110.120:34855 -> 66.35.250.204:80 TCP.
        let a = Endpoint { ip: "128.232.110.120".parse().ok(), port: Some(34855) };
        let b = Endpoint { ip: "66.35.250.204".parse().ok(), port: Some(80) };
        assert_eq!(community_id(&a, &b).as_deref(), Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg="));
        assert_eq!(community_id(&b, &a), community_id(&a, &b));
    }

    #[test]
    fn ecs_alert() {
        let e = ecs(Stream::Alerts, &alert(), &Observer { hostname: "s1".into() });
        assert_eq!(e["event"]["kind"], "alert");
        assert_eq!(e["source"]["ip"], "198.51.100.23");
        assert_eq!(e["destination"]["port"], 80);
        assert_eq!(e["rule"]["id"], "bola");
        assert_eq!(e["threat"]["technique"]["id"][0], "T1190");
        assert_eq!(e["mirador"]["path"], "/users/2");
        assert!(e["network"]["community_id"].as_str().is_some_and(|c| c.starts_with("1:")));
        // Nothing invented from an empty record.
        let e = ecs(Stream::Findings, &json!({}), &Observer { hostname: "s1".into() });
        assert!(e.get("source").is_none() && e.get("url").is_none());
    }

    #[test]
    fn ocsf_alert() {
        let o = ocsf(Stream::Alerts, &alert(), &Observer { hostname: "s1".into() });
        assert_eq!(o["class_uid"], 2004);
        assert_eq!(o["type_uid"], 200401);
        assert_eq!(o["severity_id"], 4);
        assert_eq!(o["time"], 1763932045500i64);
        let o =
            ocsf(Stream::Transactions, &json!({"method":"DELETE","status":404}), &Observer { hostname: "s".into() });
        assert_eq!(o["class_uid"], 6003);
        assert_eq!(o["activity_id"], 4);
        assert_eq!(o["status_id"], 2);
    }

    #[test]
    fn cef_escaping() {
        let c = cef(Stream::Alerts, &alert());
        assert!(c.starts_with("CEF:0|mirador|mirador|"), "{c}");
        assert!(c.contains("|bola|BOLA \\| object|8|"), "{c}");
        assert!(c.contains("src=198.51.100.23 spt=40000"), "{c}");
        assert!(c.contains("cs2=T1190 cs2Label=MITRE ATT&CK"), "{c}");
        let c = cef(Stream::Findings, &json!({"evidence":"a=b\\c\nd"}));
        assert!(c.contains("msg=a\\=b\\\\c\\nd"), "{c}");
    }

    #[test]
    fn syslog_headers() {
        let mut h = SyslogHeader {
            protocol: SyslogProtocol::Rfc5424,
            facility: 16,
            hostname: "h o".into(),
            app_name: "mirador".into(),
        };
        let m = syslog_message(&h, Severity::High, 0.0, "alerts", b"x\ny");
        let m = String::from_utf8(m).unwrap();
        assert!(m.starts_with("<131>1 1970-01-01T00:00:00.000000Z ho mirador "), "{m}");
        assert!(m.ends_with(" alerts - x y"), "{m}");
        h.protocol = SyslogProtocol::Rfc3164;
        h.hostname = "h".into();
        let m = syslog_message(&h, Severity::Info, 0.0, "alerts", b"x");
        assert!(String::from_utf8(m).unwrap().starts_with("<134>Jan  1 00:00:00 h mirador["));
    }

    #[test]
    fn hostile_shapes_do_not_panic() {
        for v in [
            json!(null),
            json!([1, 2]),
            json!({"src": 5, "ts": "x", "mitre": {"a": 1}, "severity": [1]}),
            json!({"ts": -1e300}),
        ] {
            for f in [Format::Json, Format::Ecs, Format::Ocsf, Format::Cef] {
                let _ = f.render(Stream::Alerts, &v, &Observer { hostname: String::new() });
            }
        }
    }
}
