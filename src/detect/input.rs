//! The request inputs an attack can ride in, decoded: path, query parameters, headers, cookies, JSON string
//! values and `$` keys, form fields, or the raw body. Values are percent-decoded repeatedly (double
//! encoding is an evasion), Log4j lookups are resolved, and every value is cut to `max_value_bytes`; at
//! most `max_values` values are taken from one transaction (the rest counted as skipped).

use std::borrow::Cow;

use crate::http::Transaction;

use super::rules::Loc;

/// One decoded input value, borrowed from the transaction unless decoding changed it: most values need
/// no decoding, and every request has a dozen of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input<'a> {
    pub loc: Loc,
    /// Parameter, header or cookie name, JSON path; empty for the path and a raw body.
    pub field: Cow<'a, str>,
    pub value: Cow<'a, str>,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_values: usize,
    pub max_value_bytes: usize,
    pub max_decode_rounds: u8,
}

/// Headers never scanned: credentials (their own rules look at them, and they are opaque tokens) and
/// plumbing whose syntax is fixed.
const SKIP_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "connection",
    "accept-encoding",
    "accept-language",
    "accept",
    "if-none-match",
    "if-match",
    "if-modified-since",
    "date",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-xsrf-token",
];

/// Collects the inputs of `tx` into `out` (cleared first). Returns how many values were skipped by the cap.
pub fn collect<'a>(tx: &'a Transaction, lim: &Limits, out: &mut Vec<Input<'a>>) -> u64 {
    out.clear();
    let mut c = Collector { out, lim, skipped: 0 };
    if !tx.has_request {
        return 0;
    }
    let b = Cow::Borrowed;
    c.push(Loc::Path, b(""), b(&tx.path));
    if tx.query_params.is_empty() {
        if let Some(q) = tx.query.as_deref().filter(|q| !q.is_empty()) {
            c.push(Loc::Query, b(""), b(q));
        }
    } else {
        for (k, v) in &tx.query_params {
            c.push(Loc::Query, b(k), b(v));
            // Operator injection rides in names: `password[$ne]=x`.
            if k.bytes().any(|b| matches!(b, b'$' | b'[' | b'<' | b'\'' | b'"' | b'(' | b'{' | b';')) {
                c.push(Loc::Query, b(k), b(k));
            }
        }
    }
    let mut content_type = "";
    for (name, v) in tx.request_headers.iter() {
        if name.eq_ignore_ascii_case("cookie") {
            for pair in v.split(';') {
                let (k, v) = pair.split_once('=').unwrap_or(("", pair));
                c.push(Loc::Cookie, b(k.trim()), b(v.trim()));
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = v;
            c.push(Loc::Header, b(name), b(v));
        } else if !SKIP_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            c.push(Loc::Header, b(name), b(v));
        }
    }
    let body = tx.decoded_request_body();
    if !body.is_empty() {
        let has = |t: &str| super::contains_ignore_ascii_case(content_type, t);
        let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let mut done = false;
        if has("json") || (content_type.is_empty() && matches!(first, Some(b'{' | b'['))) {
            if let Ok(v) = serde_json::from_slice::<Json<'a>>(body) {
                let mut path = String::new();
                c.json(v, &mut path, 0);
                done = true;
            }
        } else if has("multipart/form-data") {
            done = c.multipart(&content_type.to_ascii_lowercase(), content_type, body);
        } else if has("x-www-form-urlencoded") {
            let text = String::from_utf8_lossy(body);
            for pair in text.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                c.push(Loc::Body, Cow::Owned(decode_form(k)), Cow::Owned(decode_form(v)));
            }
            done = true;
        }
        if !done {
            let end = body.len().min(lim.max_value_bytes.saturating_mul(4));
            c.push(Loc::RawBody, b(""), String::from_utf8_lossy(body.get(..end).unwrap_or(body)));
        }
    }
    c.skipped
}

/// JSON nesting followed; deeper values are skipped (serde_json already refuses more than 128).
const MAX_JSON_DEPTH: usize = 32;

struct Collector<'o, 'a> {
    out: &'o mut Vec<Input<'a>>,
    lim: &'o Limits,
    skipped: u64,
}

impl<'a> Collector<'_, 'a> {
    fn push(&mut self, loc: Loc, field: Cow<'a, str>, raw: Cow<'a, str>) {
        if raw.is_empty() {
            return;
        }
        if self.out.len() >= self.lim.max_values {
            self.skipped += 1;
            return;
        }
        let rounds = self.lim.max_decode_rounds;
        let v = match raw {
            Cow::Borrowed(s) => decode_repeatedly(s, rounds),
            Cow::Owned(s) => {
                if let Cow::Owned(d) = decode_repeatedly(&s, rounds) {
                    Cow::Owned(d)
                } else {
                    Cow::Owned(s)
                }
            }
        };
        let mut v = truncated(v, self.lim.max_value_bytes);
        // A byte search, not a substring searcher built for every value.
        if v.as_bytes().contains(&b'$')
            && v.as_bytes().windows(2).any(|w| w == b"${")
            && let Some(n) = resolve_lookups(&v)
            && n != *v
        {
            let v = v.to_mut();
            v.push('\n');
            v.push_str(&n);
        }
        self.out.push(Input { loc, field, value: v });
    }

    /// Fields of a multipart form; file parts are skipped (binary content, not parameters). False when the
    /// boundary is missing.
    fn multipart(&mut self, ct_lower: &str, ct: &str, body: &[u8]) -> bool {
        let Some(i) = ct_lower.find("boundary=") else { return false };
        let b = ct.get(i + 9..).unwrap_or("").split(';').next().unwrap_or("").trim().trim_matches('"');
        if b.is_empty() {
            return false;
        }
        let delim = format!("--{b}");
        let text = String::from_utf8_lossy(body);
        for part in text.split(delim.as_str()).skip(1) {
            let Some((head, content)) = part.split_once("\r\n\r\n") else { continue };
            let head_l = head.to_ascii_lowercase();
            if head_l.contains("filename=") {
                continue;
            }
            let name =
                head_l.find("name=\"").and_then(|i| head.get(i + 6..)).and_then(|r| r.split('"').next()).unwrap_or("");
            let content = content.strip_suffix("\r\n").unwrap_or(content);
            self.push(Loc::Body, Cow::Owned(name.to_owned()), Cow::Owned(content.to_owned()));
        }
        true
    }

    /// Objects are walked in key order, a repeated key taking its last value: the order and values of a
    /// `serde_json::Value` (a BTreeMap), which decide the field an alert names.
    fn json(&mut self, v: Json<'a>, path: &mut String, depth: usize) {
        if depth > MAX_JSON_DEPTH {
            self.skipped += 1;
            return;
        }
        match v {
            Json::Str(s) => self.push(Loc::Body, Cow::Owned(path.clone()), s),
            Json::Arr(a) => {
                for x in a {
                    let len = path.len();
                    path.push_str("[]");
                    self.json(x, path, depth + 1);
                    path.truncate(len);
                }
            }
            Json::Obj(mut m) => {
                m.sort_by(|a, b| a.0.cmp(&b.0));
                let mut it = m.into_iter().peekable();
                while let Some((k, x)) = it.next() {
                    if it.peek().is_some_and(|n| n.0 == k) {
                        continue;
                    }
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&k);
                    if k.starts_with('$') {
                        self.push(Loc::Body, Cow::Owned(path.clone()), k);
                    }
                    self.json(x, path, depth + 1);
                    path.truncate(len);
                }
            }
            Json::Other => {}
        }
    }
}

/// A JSON document with its strings borrowed from the body when they have no escapes: what the walk
/// needs of a `serde_json::Value` without a String per key and value and a BTreeMap per object. The
/// parser, and so what is accepted or rejected, is serde_json's either way.
enum Json<'a> {
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    /// Members as sent; the walk sorts them.
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
    /// Numbers, booleans, null.
    Other,
}

impl<'de> serde::Deserialize<'de> for Json<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Other)
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(Json::Arr(v))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut m = Vec::new();
        while let Some(Json::Str(k)) = map.next_key()? {
            m.push((k, map.next_value()?));
        }
        Ok(Json::Obj(m))
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncated(s: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.get(..end).unwrap_or(b)),
        Cow::Owned(mut o) => {
            o.truncate(end);
            Cow::Owned(o)
        }
    }
}

fn decode_form(s: &str) -> String {
    percent_decode(&s.replace('+', " ")).into_owned()
}

/// Percent-decodes until nothing changes, at most `rounds` times.
pub fn decode_repeatedly(s: &str, rounds: u8) -> Cow<'_, str> {
    let mut cur = Cow::Borrowed(s);
    for _ in 0..rounds {
        if !cur.contains('%') {
            break;
        }
        let next = percent_decode(&cur);
        if next == cur {
            break;
        }
        cur = Cow::Owned(next.into_owned());
    }
    cur
}

/// `%XX` decoding (invalid escapes kept as is; `+` is left alone: it is a space only in forms).
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |x: Option<&u8>| x.and_then(|c| (*c as char).to_digit(16));
            if let (Some(h), Some(l)) = (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Most lookups resolved in one value: each step shortens it, this bounds the work on hostile nesting.
const MAX_LOOKUPS: usize = 32;

/// Resolves Log4j-style lookups the way Log4j would before it reaches `jndi:` (`${lower:j}` → `j`,
/// `${::-n}` → `n`, `${env:X:-d}` → `d`, other lookups → empty), innermost first, so `${${lower:j}ndi:…}`
/// becomes `${jndi:…}`. `None` when nothing changed.
pub fn resolve_lookups(s: &str) -> Option<String> {
    // Resolved `jndi:` lookups are parked as \u{1}…\u{2} so that the loop never resolves them away.
    let mut cur = s.to_owned();
    let mut changed = false;
    for _ in 0..MAX_LOOKUPS {
        // Innermost: the last `${` before the first `}` that follows it.
        let Some(close) = cur.find('}') else { break };
        let Some(open) = cur.get(..close).and_then(|h| h.rfind("${")) else {
            // A `}` without an opening lookup: park it and look further.
            cur.replace_range(close..close + 1, "\u{3}");
            continue;
        };
        let inner = cur.get(open + 2..close).unwrap_or("").to_owned();
        let lower = inner.to_ascii_lowercase();
        let repl = if lower.trim_start().starts_with("jndi:") {
            format!("\u{1}{inner}\u{2}")
        } else if let Some((_, d)) = inner.split_once(":-") {
            d.to_owned()
        } else if let Some(x) = lower.strip_prefix("lower:").or_else(|| lower.strip_prefix("upper:")) {
            x.to_owned()
        } else {
            String::new()
        };
        cur.replace_range(open..close + 1, &repl);
        changed = true;
    }
    if !changed {
        return None;
    }
    Some(cur.replace('\u{1}', "${").replace(['\u{2}', '\u{3}'], "}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(uri: &str, headers: &[(&str, &str)], body: &str) -> Transaction {
        let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
        let query_params = query
            .map(|q| {
                q.split('&')
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (decode_form(k), decode_form(v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Transaction {
            has_request: true,
            method: "GET".into(),
            uri: uri.into(),
            path: path.into(),
            query: query.map(str::to_owned),
            query_params,
            request_headers: headers.iter().copied().collect(),
            request_body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn lim() -> Limits {
        Limits { max_values: 64, max_value_bytes: 4096, max_decode_rounds: 3 }
    }

    #[test]
    fn double_encoding_is_undone() {
        assert_eq!(decode_repeatedly("..%252F..%252Fetc", 3), "../../etc");
        assert_eq!(decode_repeatedly("100%", 3), "100%");
        assert_eq!(decode_repeatedly("%2525252F", 2), "%252F");
    }

    #[test]
    fn log4j_lookups_resolve() {
        assert_eq!(resolve_lookups("${${lower:j}ndi:ldap://x/a}").unwrap(), "${jndi:ldap://x/a}");
        assert_eq!(resolve_lookups("${${::-j}${::-n}${::-d}${::-i}:rmi://x}").unwrap(), "${jndi:rmi://x}");
        assert_eq!(resolve_lookups("${${env:NOPE:-j}ndi${upper::}ldap://x}").unwrap(), "${jndi:ldap://x}");
        assert_eq!(resolve_lookups("a}b${x}").unwrap(), "a}b");
        assert_eq!(resolve_lookups("plain"), None);
        // Hostile nesting stays bounded.
        let deep = "${".repeat(10_000) + &"}".repeat(10_000);
        assert!(resolve_lookups(&deep).is_some());
    }

    #[test]
    fn inputs_cover_query_headers_cookies_and_json() {
        let t = tx(
            "/a%2Fb?q=1%27&user%5B%24ne%5D=1",
            &[
                ("User-Agent", "x"),
                ("Authorization", "Bearer secret"),
                ("Cookie", "a=1; b=%3Cs%3E"),
                ("Content-Type", "application/json"),
            ],
            r#"{"n":{"$where":"1"},"l":["v"]}"#,
        );
        let mut out = Vec::new();
        collect(&t, &lim(), &mut out);
        let got: Vec<(&str, &str, &str)> = out.iter().map(|i| (i.loc.name(), &*i.field, &*i.value)).collect();
        assert!(got.contains(&("request.path", "", "/a/b")), "{got:?}");
        assert!(got.contains(&("request.query", "q", "1'")), "{got:?}");
        assert!(got.contains(&("request.query", "user[$ne]", "user[$ne]")), "{got:?}");
        assert!(got.contains(&("request.cookie", "b", "<s>")), "{got:?}");
        assert!(got.contains(&("request.body", "n.$where", "$where")), "{got:?}");
        assert!(got.contains(&("request.body", "l[]", "v")), "{got:?}");
        assert!(!got.iter().any(|g| g.2.contains("secret")));
    }

    /// The walk before borrowed parsing: a `serde_json::Value` tree, objects in BTreeMap key order.
    fn value_walk(v: &serde_json::Value, path: &mut String, out: &mut Vec<(String, String)>) {
        use serde_json::Value;
        match v {
            Value::String(s) => out.push((path.clone(), s.clone())),
            Value::Array(a) => {
                for x in a {
                    let len = path.len();
                    path.push_str("[]");
                    value_walk(x, path, out);
                    path.truncate(len);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    if k.starts_with('$') {
                        out.push((path.clone(), k.clone()));
                    }
                    value_walk(x, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn json_walk_matches_the_value_tree_order() {
        for doc in [
            r#"{"z":"1","a":{"y":"2","$b":"3","b":"4"},"m":["5",{"k":"6"},7,null,true]}"#,
            r#"{"dup":"first","x":"0","dup":"last","\u0061":"esc","a":"plain","B":"upper","é":"u"}"#,
            r#"{"a\"b":"q\n","a":{"a":{"a":"deep"}},"$where":{"$ne":"1"},"":"empty-key"}"#,
            r#"[["a","b"],{"d":"1","c":"2","d":{"e":"3"}}]"#,
            r#""top""#,
        ] {
            let t = tx("/j", &[("Content-Type", "application/json")], doc);
            let mut out = Vec::new();
            collect(&t, &lim(), &mut out);
            let got: Vec<(String, String)> =
                out.iter().filter(|i| i.loc == Loc::Body).map(|i| (i.field.to_string(), i.value.to_string())).collect();
            let mut want = Vec::new();
            value_walk(&serde_json::from_str(doc).unwrap(), &mut String::new(), &mut want);
            want.retain(|w| !w.1.is_empty());
            assert_eq!(got, want, "{doc}");
        }
        // What serde_json rejects still falls back to the raw body.
        let t = tx("/j", &[("Content-Type", "application/json")], r#"{"a":"1",}"#);
        let mut out = Vec::new();
        collect(&t, &lim(), &mut out);
        assert!(out.iter().any(|i| i.loc == Loc::RawBody));
    }

    #[test]
    fn multipart_fields_without_files() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nadmin'--\r\n--XyZ\r\n\
                    Content-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n' OR 1=1\r\n--XyZ--\r\n";
        let t = tx("/up", &[("Content-Type", "multipart/form-data; boundary=XyZ")], body);
        let mut out = Vec::new();
        collect(&t, &lim(), &mut out);
        let body: Vec<_> = out.iter().filter(|i| i.loc == Loc::Body).map(|i| (&*i.field, &*i.value)).collect();
        assert_eq!(body, [("user", "admin'--")]);
    }

    #[test]
    fn caps_hold() {
        let q: Vec<String> = (0..500).map(|i| format!("p{i}=v")).collect();
        let t = tx(&format!("/x?{}", q.join("&")), &[], "");
        let mut out = Vec::new();
        let skipped = collect(&t, &lim(), &mut out);
        assert_eq!(out.len(), 64);
        assert!(skipped > 400);
        let t = tx("/x", &[("X-Long", &"é".repeat(5000))], "");
        let mut out = Vec::new();
        collect(&t, &lim(), &mut out);
        assert!(out.iter().all(|i| i.value.len() <= 4096));
    }
}
