//! A tolerant, non-allocating JSON walker: calls back once per scalar (string, number) with its enclosing
//! keys, so the scanner can match key names and render paths such as `$.customer.cards[0].number` only when
//! something is found. Truncated or malformed JSON (bodies are captured up to a cap) is walked as far as it
//! makes sense; nothing panics and nothing is quadratic. Depth and scalar count are capped by the caller's
//! limits, each cap hit reported in [`WalkOutcome`].

/// One level of the current path.
#[derive(Copy, Clone, Debug)]
pub enum Seg {
    /// An object member; the key is the raw (still escaped) bytes `body[start..end]`.
    Key(usize, usize),
    /// The object was entered but no key seen yet.
    NoKey,
    /// An array element.
    Index(u32),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalkOutcome {
    pub scalars: usize,
    pub depth_capped: bool,
    pub scalars_capped: bool,
}

/// A scalar value: raw bytes (strings without their quotes, escapes not decoded).
pub struct Scalar<'a> {
    pub raw: &'a [u8],
    pub is_string: bool,
    /// The string contains a backslash escape.
    pub escaped: bool,
}

/// Walks `body`, calling `f(path, scalar)` for each string and number (`true`, `false`, `null` are skipped:
/// they carry no data). Returns `false` from `f` to stop early.
pub fn walk<'a>(
    body: &'a [u8],
    max_depth: usize,
    max_scalars: usize,
    path: &mut Vec<Seg>,
    mut f: impl FnMut(&[Seg], Scalar<'a>) -> bool,
) -> WalkOutcome {
    path.clear();
    let mut out = WalkOutcome::default();
    // Depth beyond the cap is tracked as a count only: its scalars are skipped.
    let mut overflow = 0usize;
    // In an object, the next string is a key (true) or a value (false).
    let mut expect_key = false;
    let mut i = 0usize;
    let n = body.len();
    while i < n {
        let Some(&b) = body.get(i) else { break };
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | b':' => i += 1,
            b'{' | b'[' => {
                if path.len() >= max_depth || overflow > 0 {
                    overflow += 1;
                    out.depth_capped = true;
                } else {
                    path.push(if b == b'{' { Seg::NoKey } else { Seg::Index(0) });
                }
                expect_key = b == b'{';
                i += 1;
            }
            b'}' | b']' => {
                if overflow > 0 {
                    overflow -= 1;
                } else {
                    path.pop();
                }
                expect_key = false;
                i += 1;
            }
            b',' => {
                if overflow == 0 {
                    match path.last_mut() {
                        Some(Seg::Index(k)) => *k = k.saturating_add(1),
                        Some(s) => {
                            *s = Seg::NoKey;
                            expect_key = true;
                        }
                        None => {}
                    }
                }
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                let (end, escaped) = string_end(body, start);
                i = end.saturating_add(1);
                if overflow > 0 {
                    continue;
                }
                let in_object = matches!(path.last(), Some(Seg::Key(..) | Seg::NoKey));
                if in_object && expect_key {
                    if let Some(s) = path.last_mut() {
                        *s = Seg::Key(start, end);
                    }
                    expect_key = false;
                    continue;
                }
                out.scalars += 1;
                if out.scalars > max_scalars {
                    out.scalars_capped = true;
                    return out;
                }
                let raw = body.get(start..end).unwrap_or(&[]);
                if !f(path, Scalar { raw, is_string: true, escaped }) {
                    return out;
                }
            }
            _ => {
                let start = i;
                while i < n && !matches!(body.get(i), Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n' | b'"')) {
                    i += 1;
                }
                let raw = body.get(start..i).unwrap_or(&[]);
                if overflow > 0 || !raw.first().is_some_and(|c| c.is_ascii_digit() || *c == b'-') {
                    // true/false/null, or garbage: no data to classify. Make progress on a stray byte.
                    if i == start {
                        i += 1;
                    }
                    continue;
                }
                out.scalars += 1;
                if out.scalars > max_scalars {
                    out.scalars_capped = true;
                    return out;
                }
                if !f(path, Scalar { raw, is_string: false, escaped: false }) {
                    return out;
                }
            }
        }
    }
    out
}

/// End (index of the closing quote, or `body.len()` when truncated) of the string starting at `start`.
fn string_end(body: &[u8], start: usize) -> (usize, bool) {
    let mut i = start;
    let mut escaped = false;
    loop {
        let Some(rest) = body.get(i..) else { return (body.len(), escaped) };
        match memchr::memchr2(b'"', b'\\', rest) {
            None => return (body.len(), escaped),
            Some(k) => {
                let at = i + k;
                if body.get(at) == Some(&b'"') {
                    return (at, escaped);
                }
                escaped = true;
                i = at + 2;
            }
        }
    }
}

/// Decodes JSON string escapes into `out` (`\uXXXX` to UTF-8, surrogate pairs joined, bad escapes kept).
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let c = raw.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'u' => {
                let hex = |at: usize| {
                    raw.get(at..at + 4)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                };
                let Some(mut cp) = hex(i) else {
                    out.extend_from_slice(b"\\u");
                    continue;
                };
                i += 4;
                if (0xd800..0xdc00).contains(&cp)
                    && raw.get(i) == Some(&b'\\')
                    && raw.get(i + 1) == Some(&b'u')
                    && let Some(lo) = hex(i + 2)
                    && (0xdc00..0xe000).contains(&lo)
                {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
                let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            other => out.push(other),
        }
    }
}

/// `$.customer.cards[0].number` for `path` over `body`.
pub fn render_path(body: &[u8], path: &[Seg], out: &mut String) {
    out.clear();
    out.push('$');
    for s in path {
        match *s {
            Seg::Key(a, b) => {
                let k = String::from_utf8_lossy(body.get(a..b).unwrap_or(&[]));
                let k: String = k.chars().take(64).collect();
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    out.push('.');
                    out.push_str(&k);
                } else {
                    out.push_str("['");
                    out.push_str(&k.replace('\'', "\\'"));
                    out.push_str("']");
                }
            }
            Seg::NoKey => {}
            Seg::Index(k) => {
                use std::fmt::Write as _;
                let _ = write!(out, "[{k}]");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &[u8]) -> Vec<(String, String)> {
        let mut path = Vec::new();
        let mut out = Vec::new();
        walk(body, 16, 100, &mut path, |p, s| {
            let mut r = String::new();
            render_path(body, p, &mut r);
            out.push((r, String::from_utf8_lossy(s.raw).into_owned()));
            true
        });
        out
    }

    #[test]
    fn paths() {
        let b = br#"{"customer":{"name":"J","cards":[{"number":"4242"},{"number":4111}]},"ok":true,"n":null,"x":[1,[2,3]]}"#;
        let got = collect(b);
        let want = [
            ("$.customer.name", "J"),
            ("$.customer.cards[0].number", "4242"),
            ("$.customer.cards[1].number", "4111"),
            ("$.x[0]", "1"),
            ("$.x[1][0]", "2"),
            ("$.x[1][1]", "3"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    }

    #[test]
    fn escapes_and_odd_keys() {
        let b = br#"{"a b":"x\"y","c":"\u0040\ud83d\ude00"}"#;
        let got = collect(b);
        assert_eq!(got[0], ("$['a b']".into(), "x\\\"y".into()));
        let mut out = Vec::new();
        unescape(got[1].1.as_bytes(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "@😀");
    }

    #[test]
    fn truncated_and_garbage_terminate() {
        for b in [&b"{\"a\":\"unterminated"[..], b"{{{{[[[", b"]]]}}}", b"\\\\\"", b"{\"a\":tru", b"\x00\xff,:,"] {
            let _ = collect(b);
        }
        let got = collect(br#"{"a":"v1","b":"v2"#);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn caps() {
        let deep = "[".repeat(100) + "1" + &"]".repeat(100);
        let mut path = Vec::new();
        let o = walk(deep.as_bytes(), 8, 100, &mut path, |_, _| true);
        assert!(o.depth_capped);
        let many = format!("[{}1]", "1,".repeat(500));
        let o = walk(many.as_bytes(), 8, 100, &mut path, |_, _| true);
        assert!(o.scalars_capped);
    }
}
