//! What one exchange says about the segments of its own path: whether a word in the path is an id the
//! exchange itself names (a JSON `id`, `*_id`, `name`, `slug`, … field of the request or response, or the
//! `Location:` header), and the *shape* of its response (the keys of a JSON object, or the content type),
//! which tells one resource from another at the same position.
//!
//! Everything here is lazy and bounded: the path tree asks only when it is about to create a new literal or
//! a young node has no shape yet, which on a known API is a handful of times per operation, and each body is
//! read only up to [`MAX_SCAN`] bytes.

use std::cell::OnceCell;

use super::sketch::hash64;

/// Bytes of each body searched for a path value or read for its response shape.
const MAX_SCAN: usize = 64 * 1024;
/// The shape of an empty answer to a read.
const EMPTY: u32 = 0x0e0e_0e0e;
/// The key standing for "a JSON array" in a response shape.
const LIST: u32 = 0x5b5b_5b5b;
/// Keys kept for a response shape (sorted hashes).
pub const SHAPE_KEYS: usize = 16;

/// The parts of one transaction the path tree weighs.
pub struct Exchange<'a> {
    /// The server served it (not 404/405/501, not unanswered): it may create literals and operations.
    pub learn: bool,
    pub method: &'a str,
    pub status: Option<u16>,
    pub request_body: &'a [u8],
    pub response_body: &'a [u8],
    pub response_type: &'a str,
    pub location: Option<&'a str>,
    shape: OnceCell<Option<Vec<u32>>>,
}

impl<'a> Exchange<'a> {
    pub fn new(learn: bool, method: &'a str, status: Option<u16>) -> Exchange<'a> {
        Exchange {
            learn,
            method,
            status,
            request_body: &[],
            response_body: &[],
            response_type: "",
            location: None,
            shape: OnceCell::new(),
        }
    }

    /// Whether `seg` is named as an id by this exchange: the value of an id-like JSON field (`"id": "seg"`,
    /// `"project_id": "seg"`, `"name": "seg"`) in either body, or a segment of the `Location:` header.
    pub fn names_id(&self, seg: &str) -> bool {
        if seg.is_empty() || seg.len() > 128 {
            return false;
        }
        // The resource a `Location:` names is its last segment (`POST /orders` → `/orders/9f2c`: the id is
        // `9f2c`, and `orders` is no value).
        if let Some(loc) = self.location {
            let path = loc.split(['?', '#']).next().unwrap_or("");
            if path.split('/').rfind(|s| !s.is_empty()) == Some(seg) {
                return true;
            }
        }
        [self.request_body, self.response_body].into_iter().any(|b| json_id_value(cap(b), seg))
    }

    /// The response's shape, when it is a success to a read: the sorted hashes of the top-level keys of a
    /// JSON object (of the first element of a JSON array, marked), else of its content type. `None` for
    /// anything else (errors, writes, empty bodies): those say nothing about the resource.
    pub fn response_shape(&self) -> Option<&[u32]> {
        self.shape
            .get_or_init(|| {
                let ok = self.status.is_some_and(|s| (200..300).contains(&s));
                if !ok || self.method != "GET" {
                    return None;
                }
                // A read answered with nothing is a shape too (an API whose reads are all empty).
                if self.response_body.is_empty() {
                    return Some(vec![EMPTY]);
                }
                Some(shape_of(self.response_type, self.response_body))
            })
            .as_deref()
    }
}

fn cap(b: &[u8]) -> &[u8] {
    b.get(..MAX_SCAN).unwrap_or(b)
}

/// Whether two response shapes describe one resource: most of their keys are shared (dynamic data leaves
/// optional keys out of some responses).
pub fn same_shape(a: &[u32], b: &[u32]) -> bool {
    if a.is_empty() || b.is_empty() {
        return a == b;
    }
    // A list is never one item, whatever keys its elements share.
    if a.contains(&LIST) != b.contains(&LIST) {
        return false;
    }
    let shared = a.iter().filter(|k| b.binary_search(k).is_ok()).count();
    let union = a.len() + b.len() - shared;
    shared * 3 >= union * 2
}

fn shape_of(content_type: &str, body: &[u8]) -> Vec<u32> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let mut keys = Vec::new();
    if essence.ends_with("json") || essence.is_empty() {
        let b = cap(body);
        let start = b.iter().position(|c| !c.is_ascii_whitespace());
        match start.and_then(|i| b.get(i)) {
            Some(b'{') => {
                let open = start.unwrap_or(0);
                top_keys(b, open, &mut keys);
                // A paginated envelope (`{"count", "next", "results": [...]}`) has the same keys for every
                // resource: the keys of its first listed item tell them apart.
                let mut items = Vec::new();
                envelope_items(b, open, &mut items);
                keys.extend(items.into_iter().map(|k| k ^ ITEM_SALT));
            }
            Some(b'[') => {
                keys.push(LIST);
                if let Some(i) = b.iter().skip(start.unwrap_or(0) + 1).position(|c| !c.is_ascii_whitespace())
                    && b.get(start.unwrap_or(0) + 1 + i) == Some(&b'{')
                {
                    top_keys(b, start.unwrap_or(0) + 1 + i, &mut keys);
                }
            }
            _ => {}
        }
    }
    if keys.is_empty() {
        keys.push(hash64(essence.as_bytes()) as u32);
    }
    keys.sort_unstable();
    keys.dedup();
    keys.truncate(SHAPE_KEYS);
    keys
}

/// The keys of the JSON object starting at `b[open]` (depth 1 only), hashed.
fn top_keys(b: &[u8], open: usize, keys: &mut Vec<u32>) {
    let mut depth = 0usize;
    let mut i = open;
    let mut expect_key = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'{' | b'[' => {
                depth += 1;
                expect_key = c == b'{' && depth == 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return;
                }
            }
            b',' if depth == 1 => expect_key = true,
            b'"' => {
                let end = string_end(b, i + 1);
                if expect_key && depth == 1 {
                    if let Some(k) = b.get(i + 1..end) {
                        keys.push(hash64(k) as u32);
                    }
                    expect_key = false;
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
}

/// Keys of the first object inside the first array value of the object at `b[open]`.
fn envelope_items(b: &[u8], open: usize, keys: &mut Vec<u32>) {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&c) = b.get(i) {
        match c {
            b'{' => depth += 1,
            b'[' if depth == 1 => {
                let j = b.iter().skip(i + 1).position(|c| !c.is_ascii_whitespace()).map(|k| i + 1 + k);
                if let Some(j) = j
                    && b.get(j) == Some(&b'{')
                {
                    top_keys(b, j, keys);
                    return;
                }
                depth += 1;
            }
            b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return;
                }
            }
            b'"' => i = string_end(b, i + 1),
            _ => {}
        }
        i += 1;
    }
}

/// Keeps an envelope's item keys apart from its own keys of the same name.
const ITEM_SALT: u32 = 0x9e37_79b9;

/// The index of the quote closing the string whose first byte is `b[from]` (or the end).
fn string_end(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    b.len()
}

/// Field names whose values are identifiers a path may carry.
fn id_key(k: &[u8]) -> bool {
    let lower: Vec<u8> = k.iter().map(u8::to_ascii_lowercase).collect();
    matches!(
        lower.as_slice(),
        b"id" | b"name" | b"slug" | b"key" | b"uuid" | b"uid" | b"username" | b"login" | b"handle" | b"code" | b"ref"
    ) || lower.ends_with(b"_id")
        || lower.ends_with(b"-id")
        || k.ends_with(b"Id")
        || k.ends_with(b"ID")
        || lower.ends_with(b"_name")
        || k.ends_with(b"Name")
        || lower.ends_with(b"_slug")
        || lower.ends_with(b"_key")
}

/// Whether `body` holds `"<key>": "seg"` (or the bare number) with an id-like key.
fn json_id_value(body: &[u8], seg: &str) -> bool {
    if body.len() < seg.len() + 2 {
        return false;
    }
    let finder = memchr::memmem::Finder::new(seg.as_bytes());
    for at in finder.find_iter(body) {
        let end = at + seg.len();
        let quoted = at > 0 && body.get(at - 1) == Some(&b'"') && body.get(end) == Some(&b'"');
        let bare = !quoted && at > 0 && seg.bytes().all(|c| c.is_ascii_digit()) && {
            let before = body.get(at - 1).copied().unwrap_or(b' ');
            let after = body.get(end).copied().unwrap_or(b' ');
            !before.is_ascii_alphanumeric() && !after.is_ascii_alphanumeric() && before != b'"' && after != b'"'
        };
        if !quoted && !bare {
            continue;
        }
        // A value, not a key: no colon after it.
        let after = body.get(end + usize::from(quoted)..).unwrap_or_default();
        if after.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b':') {
            continue;
        }
        // Walk back over `"key" :` before the value.
        let mut j = at - usize::from(quoted);
        while j > 0 && body.get(j - 1).is_some_and(u8::is_ascii_whitespace) {
            j -= 1;
        }
        if j == 0 || body.get(j - 1) != Some(&b':') {
            continue;
        }
        j -= 1;
        while j > 0 && body.get(j - 1).is_some_and(u8::is_ascii_whitespace) {
            j -= 1;
        }
        if j == 0 || body.get(j - 1) != Some(&b'"') {
            continue;
        }
        let key_end = j - 1;
        let Some(key_start) = body.get(..key_end).and_then(|b| memchr::memrchr(b'"', b)) else { continue };
        if body.get(key_start + 1..key_end).is_some_and(id_key) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex<'a>(req: &'a [u8], resp: &'a [u8], loc: Option<&'a str>) -> Exchange<'a> {
        let mut e = Exchange::new(true, "GET", Some(200));
        e.request_body = req;
        e.response_body = resp;
        e.response_type = "application/json";
        e.location = loc;
        e
    }

    #[test]
    fn ids_named_by_the_exchange() {
        let e = ex(b"", br#"{"data": {"id": "website", "project_id" : "acme", "title": "backlog"}}"#, None);
        assert!(e.names_id("website"));
        assert!(e.names_id("acme"));
        // A value under a field that names no id, and a key, are no evidence.
        assert!(!e.names_id("backlog"));
        assert!(!e.names_id("data"));
        let e = ex(br#"{"name":"jdoe","email":"x@example.com"}"#, b"", None);
        assert!(e.names_id("jdoe"));
        let e = ex(b"", br#"[{"userId": 42, "n": 7}]"#, None);
        assert!(e.names_id("42"));
        assert!(!e.names_id("7"));
        assert!(!e.names_id("4"));
        let e = ex(b"", b"", Some("/v1/boards/inv2024-7/?x=1"));
        assert!(e.names_id("inv2024-7"));
        assert!(!e.names_id("inv2024"));
        assert!(!e.names_id("boards"), "the collection a Location names is no id");
    }

    #[test]
    fn filter_words_in_values_are_not_ids() {
        // `/orders/pending` lists orders whose status is `pending`: not an id.
        let e = ex(b"", br#"[{"id": 1, "status": "pending"}, {"id": 2, "status": "pending"}]"#, None);
        assert!(!e.names_id("pending"));
    }

    #[test]
    fn response_shapes() {
        let a = ex(b"", br#"{"id": 1, "name": "x", "tags": {"a": 1}}"#, None);
        let b = ex(b"", br#"{"name": "y", "id": 2, "tags": {}}"#, None);
        let c = ex(b"", br#"{"results": [], "count": 0}"#, None);
        let sa = a.response_shape().unwrap().to_vec();
        assert_eq!(sa.len(), 3, "nested keys are not top-level keys");
        assert!(same_shape(&sa, b.response_shape().unwrap()));
        assert!(!same_shape(&sa, c.response_shape().unwrap()));
        let l = ex(b"", br#" [ {"id": 1, "name": "x", "tags": []} ]"#, None);
        assert!(!same_shape(&sa, l.response_shape().unwrap()), "a list is not one item");
        // Paginated envelopes of different resources differ by their items.
        let e1 = ex(b"", br#"{"count": 2, "next": null, "results": [{"code": "A", "description": "x"}]}"#, None);
        let e2 = ex(b"", br#"{"count": 9, "next": null, "results": [{"id": 1, "material": "m", "depth": 2}]}"#, None);
        let e3 = ex(b"", br#"{"count": 1, "next": "u", "results": [{"code": "B", "description": "y"}]}"#, None);
        assert!(!same_shape(e1.response_shape().unwrap(), e2.response_shape().unwrap()));
        assert!(same_shape(e1.response_shape().unwrap(), e3.response_shape().unwrap()));
        let mut post = ex(b"", br#"{"id": 1}"#, None);
        post.method = "POST";
        assert!(post.response_shape().is_none());
    }

    #[test]
    fn hostile_bodies_are_bounded() {
        let big = vec![b'{'; 1 << 20];
        let e = ex(&big, &big, None);
        assert!(!e.names_id("x"));
        assert!(e.response_shape().is_some());
        let quotes = b"\"\"\"\\\"::::".repeat(10_000);
        let e = ex(&quotes, &quotes, None);
        assert!(!e.names_id("a"));
    }
}
