//! Where a JSON pointer sits in the source text, so that a semantic error in a spec ("parameter without
//! `in`") can name a line like a syntax error does. Best effort: when the exact node cannot be found the
//! line of its deepest located ancestor is given.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Splits an RFC 6901 pointer into its unescaped tokens.
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
}

/// Escapes one token for a JSON pointer.
pub fn escape_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

/// 1-based line of the node at `pointer` in `text` (JSON or YAML).
pub fn line_of(text: &str, pointer: &str, json: bool) -> Option<u64> {
    let tokens = pointer_tokens(pointer);
    if json { json_line(text, &tokens) } else { yaml_line(text, &tokens) }
}

// ---- JSON: a small tokenizer that tracks the current path and line. ----

#[derive(Debug)]
enum Frame {
    Object { key: Option<String> },
    Array { index: usize },
}

/// Walks the text once; returns the line where the value at `target` starts (or the deepest ancestor seen).
fn json_line(text: &str, target: &[String]) -> Option<u64> {
    let b = text.as_bytes();
    let mut i = 0usize;
    let mut line = 1u64;
    let mut stack: Vec<Frame> = Vec::new();
    let mut best: Option<(usize, u64)> = None;
    // Whether the path of the value about to start (stack keys) is a prefix of the target.
    let on_path = |stack: &[Frame]| -> usize {
        let mut depth = 0;
        for (f, t) in stack.iter().zip(target.iter()) {
            let ok = match f {
                Frame::Object { key: Some(k) } => k == t,
                Frame::Object { key: None } => false,
                Frame::Array { index } => t.parse::<usize>().ok() == Some(*index),
            };
            if !ok {
                return usize::MAX;
            }
            depth += 1;
        }
        if stack.len() > target.len() { usize::MAX } else { depth }
    };
    let mut expect_key = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b':' => i += 1,
            b',' => {
                if let Some(Frame::Array { index }) = stack.last_mut() {
                    *index += 1;
                }
                if matches!(stack.last(), Some(Frame::Object { .. })) {
                    expect_key = true;
                }
                i += 1;
            }
            b'{' | b'[' => {
                let d = on_path(&stack);
                if d != usize::MAX {
                    if d == target.len() {
                        return Some(line);
                    }
                    if best.is_none_or(|(bd, _)| d >= bd) {
                        best = Some((d, line));
                    }
                }
                if c == b'{' {
                    stack.push(Frame::Object { key: None });
                    expect_key = true;
                } else {
                    stack.push(Frame::Array { index: 0 });
                    expect_key = false;
                }
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                i += 1;
            }
            b'"' => {
                let mut j = i + 1;
                while let Some(&d) = b.get(j) {
                    match d {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                let s: String = text.get(i..=j).and_then(|q| serde_json::from_str(q).ok()).unwrap_or_default();
                i = j + 1;
                if expect_key {
                    if let Some(Frame::Object { key }) = stack.last_mut() {
                        *key = Some(s);
                    }
                    expect_key = false;
                } else {
                    let d = on_path(&stack);
                    if d == target.len() {
                        return Some(line);
                    }
                }
            }
            _ => {
                // A scalar (number, true, false, null).
                if !expect_key {
                    let d = on_path(&stack);
                    if d == target.len() {
                        return Some(line);
                    }
                }
                while let Some(&d) = b.get(i) {
                    if matches!(d, b',' | b'}' | b']' | b'\n' | b' ' | b'\t' | b'\r') {
                        break;
                    }
                    i += 1;
                }
            }
        }
    }
    best.map(|(_, l)| l)
}

// ---- YAML: the same document parsed again with span-aware nodes. ----

enum LocNode {
    Leaf,
    Seq(Vec<Spanned<LocNode>>),
    /// Key, the key's line, value.
    Map(Vec<(String, u64, Spanned<LocNode>)>),
}

struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for LocNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LocNode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<LocNode, E> {
                Ok(LocNode::Leaf)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<LocNode, E> {
                Ok(LocNode::Leaf)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<LocNode, E> {
                Ok(LocNode::Leaf)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LocNode, E> {
                Ok(LocNode::Leaf)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<LocNode, E> {
                Ok(LocNode::Leaf)
            }
            fn visit_unit<E: de::Error>(self) -> Result<LocNode, E> {
                Ok(LocNode::Leaf)
            }
            fn visit_none<E: de::Error>(self) -> Result<LocNode, E> {
                Ok(LocNode::Leaf)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<LocNode, D2::Error> {
                LocNode::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<LocNode, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<Spanned<LocNode>>()? {
                    v.push(x);
                }
                Ok(LocNode::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<LocNode, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = a.next_key::<Spanned<Key>>()? {
                    let val = a.next_value::<Spanned<LocNode>>()?;
                    v.push((k.value.0, k.referenced.line(), val));
                }
                Ok(LocNode::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn yaml_line(text: &str, target: &[String]) -> Option<u64> {
    let root: Spanned<LocNode> = serde_saphyr::from_str_with_options(text, super::load::yaml_options()).ok()?;
    let mut node = &root;
    let mut line = Some(node.referenced.line()).filter(|l| *l > 0);
    for t in target {
        let next = match &node.value {
            LocNode::Map(m) => m.iter().find(|(k, _, _)| k == t).map(|(_, l, v)| (*l, v)),
            LocNode::Seq(s) => t.parse::<usize>().ok().and_then(|i| s.get(i)).map(|v| (v.referenced.line(), v)),
            LocNode::Leaf => None,
        };
        match next {
            Some((l, n)) => {
                node = n;
                if l > 0 {
                    line = Some(l);
                }
            }
            None => break,
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointer_lines() {
        let text = "{\n  \"paths\": {\n    \"/a/{id}\": {\n      \"get\": {\n        \"parameters\": [\n          {\"name\": \"x\"},\n          {\"name\": \"y\", \"in\": 5}\n        ]\n      }\n    }\n  }\n}\n";
        assert_eq!(line_of(text, "/paths/~1a~1{id}/get", true), Some(4));
        assert_eq!(line_of(text, "/paths/~1a~1{id}/get/parameters/1/in", true), Some(7));
        assert_eq!(line_of(text, "/paths/~1a~1{id}/get/parameters/0", true), Some(6));
        // Missing leaf: the deepest ancestor.
        assert_eq!(line_of(text, "/paths/~1a~1{id}/get/responses", true), Some(4));
    }

    #[test]
    fn yaml_pointer_lines() {
        let text = "openapi: 3.0.0\npaths:\n  /a/{id}:\n    get:\n      parameters:\n        - name: x\n        - name: y\n          in: 5\n      responses:\n        200:\n          description: ok\n";
        assert_eq!(line_of(text, "/paths/~1a~1{id}/get", false), Some(4));
        assert_eq!(line_of(text, "/paths/~1a~1{id}/get/parameters/1/in", false), Some(8));
        assert_eq!(line_of(text, "/paths/~1a~1{id}/get/responses/200/description", false), Some(11));
        assert_eq!(line_of(text, "/paths/~1a~1{id}/get/nothing", false), Some(4));
    }

    #[test]
    fn garbage_never_panics() {
        for t in ["", "{", "\"", "[1,", "{\"a\":\"\\", ":::", "- - -", "a: [b, {c: d"] {
            let _ = line_of(t, "/a/0/b", true);
            let _ = line_of(t, "/a/0/b", false);
        }
    }
}
