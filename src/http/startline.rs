//! Request lines that do not parse as `method SP target SP HTTP/x.y`: kept as far as they parse, with the defect
//! named, so that the exchange a lenient server answered is logged rather than skipped.
//!
//! Zeek and libhtp both keep such a request: Zeek raises `bad_HTTP_request`, `bad_HTTP_request_with_version`,
//! `missing_HTTP_uri`, `unknown_HTTP_method` and logs the reply; libhtp makes a transaction whose method is
//! whatever precedes the first space and flags `REQUEST_LINE_INVALID`, `METHOD_UNKNOWN`,
//! `REQUEST_LINE_MISSING_PROTOCOL`. Where they disagree we log what is on the wire: the raw line (escaped) and
//! the pieces that parse, `null` for the others.

use super::transaction::{Flag, Flags, escape_bytes};

/// Raw start lines kept in a record are cut here (the head itself is bounded by `max_header_bytes`).
pub(super) const RAW_LINE_CAP: usize = 1024;

/// The pieces of a malformed request line, as far as they parse.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BadLine {
    pub method: Option<String>,
    pub target: Option<String>,
    pub version: Option<String>,
    pub flags: Flags,
}

/// No control bytes but tab and CR: a line a person or a broken client typed, not a binary protocol. Bytes above
/// 0x7f are allowed (a method or target in Latin-1 or UTF-8 is still an attempt at a request).
pub(super) fn is_text(b: &[u8]) -> bool {
    b.iter().all(|&c| c >= 0x20 && c != 0x7f || c == b'\t' || c == b'\r')
}

fn is_ws(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |i| i + 1);
    b.get(s..e.max(s)).unwrap_or(&[])
}

/// Offset of "HTTP/" (any case) in `w`.
fn find_http(w: &[u8]) -> Option<usize> {
    w.windows(5).position(|p| p.eq_ignore_ascii_case(b"HTTP/"))
}

/// The escaped raw line for the record, cut at [`RAW_LINE_CAP`] bytes; true when it was cut.
pub(super) fn raw_line(line: &[u8]) -> (String, bool) {
    let line = trim(line);
    let cut = line.len() > RAW_LINE_CAP;
    (escape_bytes(line.get(..RAW_LINE_CAP).unwrap_or(line)), cut)
}

/// Parses a request line the strict classifier rejected. `None` when the line is not an attempt at a request
/// (binary data, a lone word without a version, a line that is only a version): such bytes stay junk to resync
/// over, as peers do.
pub(super) fn parse_bad_request_line(line: &[u8]) -> Option<BadLine> {
    let untrimmed = line.strip_suffix(b"\r").unwrap_or(line);
    // "GET " and nothing more: a method and its separator, the target missing.
    let method_sp = untrimmed.last().is_some_and(is_ws);
    let line = trim(line);
    if line.is_empty() || !is_text(line) {
        return None;
    }
    let mut out = BadLine::default();
    let words: Vec<(usize, usize)> = word_spans(line);
    let (&(ls, le), rest) = words.split_last()?;
    let last = line.get(ls..le).unwrap_or(&[]);
    // The version is the last word when it carries "HTTP/"; glued to what precedes it ("GETHTTP/1.1",
    // "/aHTTP/1.0") the part before it is a word of its own.
    let mut words: Vec<(usize, usize)> = rest.to_vec();
    match find_http(last) {
        Some(p) => {
            let v = last.get(p..).unwrap_or(&[]);
            if !valid_version(v) {
                out.flags.set(Flag::INVALID_VERSION);
            }
            out.version = Some(escape_bytes(v));
            if p > 0 {
                out.flags.set(Flag::INVALID_REQUEST_LINE);
                words.push((ls, ls + p));
            }
        }
        None => {
            out.flags.set(Flag::MISSING_VERSION);
            words.push((ls, le));
        }
    }
    let Some(&(ms, me)) = words.first() else {
        // Only a version: a status-line-looking line on the client side, not a request.
        return None;
    };
    let first = line.get(ms..me).unwrap_or(&[]);
    // A header line whose head was lost ("Host: a") is not a request.
    let name = first.iter().take_while(|b| is_tchar(**b)).count();
    if name > 0 && first.get(name) == Some(&b':') {
        return None;
    }
    let looks_like_target = first.first() == Some(&b'/') || find_sub(first, b"://").is_some();
    let target_words = if looks_like_target && words.len() == 1 {
        out.flags.set(Flag::MISSING_METHOD);
        &words[..]
    } else {
        if !first.iter().all(|b| is_tchar(*b))
            || !first.iter().all(|b| b.is_ascii_uppercase() || *b == b'-' || *b == b'_')
        {
            out.flags.set(Flag::INVALID_METHOD);
        }
        out.method = Some(escape_bytes(first));
        words.get(1..).unwrap_or(&[])
    };
    match (target_words.first(), target_words.last()) {
        (Some(&(ts, _)), Some(&(_, te))) => {
            if target_words.len() > 1 {
                out.flags.set(Flag::INVALID_REQUEST_LINE);
            }
            out.target = Some(escape_bytes(line.get(ts..te).unwrap_or(&[])));
        }
        _ => {
            out.flags.set(Flag::MISSING_TARGET);
        }
    }
    if out.version.is_none() && !plausible_without_version(&out, first, target_words.len(), method_sp) {
        return None;
    }
    Some(out)
}

/// Without a version, only a line shaped like a request counts: `METHOD SP` alone, or a method and one target. A lone word ("hello", "QUIT") is another protocol's
/// chatter, and a third word where the version belongs ("T / HTTP") is cruft: Zeek logs neither.
fn plausible_without_version(b: &BadLine, method: &[u8], targets: usize, method_sp: bool) -> bool {
    // The target must look like one (a path, "*" or an absolute URI): "USER jsiwek", "JOIN #x" and "EHLO host"
    // are FTP, IRC and SMTP on a port the HTTP parser was given, and their arguments may be passwords.
    let target_like = |t: &str| t.starts_with('/') || t == "*" || t.contains("://");
    match (&b.method, &b.target, targets) {
        // A lone method only from HTTP/0.9's vocabulary (Zeek's rule for version-less lines).
        (Some(_), None, 0) => method_sp && super::parser::HTTP09_METHODS.contains(&method),
        (Some(_), Some(t), 1) => target_like(t),
        (None, Some(_), 1) => true,
        _ => false,
    }
}

fn find_sub(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// (start, end) of each run of non-blank bytes.
fn word_spans(line: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, b) in line.iter().enumerate() {
        match (is_ws(b), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, line.len()));
    }
    out
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(super) fn valid_version(v: &[u8]) -> bool {
    v.len() == 8
        && v.get(..5) == Some(b"HTTP/")
        && v.get(5).is_some_and(u8::is_ascii_digit)
        && v.get(6) == Some(&b'.')
        && v.get(7).is_some_and(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts = (Option<String>, Option<String>, Option<String>, Vec<&'static str>);

    fn p(l: &[u8]) -> Option<Parts> {
        parse_bad_request_line(l).map(|b| (b.method, b.target, b.version, b.flags.names()))
    }
    fn s(x: &str) -> Option<String> {
        Some(x.to_owned())
    }

    #[test]
    fn each_defect_is_named_and_the_rest_kept() {
        assert_eq!(p(b"G\xe9T /a HTTP/1.1"), Some((s("G\\xe9T"), s("/a"), s("HTTP/1.1"), vec!["invalid_method"])));
        assert_eq!(p(b"GET HTTP/1.1"), Some((s("GET"), None, s("HTTP/1.1"), vec!["missing_target"])));
        assert_eq!(
            p(b"GETHTTP/1.1"),
            Some((s("GET"), None, s("HTTP/1.1"), vec!["invalid_request_line", "missing_target"]))
        );
        assert_eq!(p(b"/index.html HTTP/1.0"), Some((None, s("/index.html"), s("HTTP/1.0"), vec!["missing_method"])));
        assert_eq!(p(b"FOO /x"), Some((s("FOO"), s("/x"), None, vec!["missing_version"])));
        assert_eq!(p(b"T /x\r"), Some((s("T"), s("/x"), None, vec!["missing_version"])));
        assert_eq!(p(b"GET \r"), Some((s("GET"), None, None, vec!["missing_target", "missing_version"])));
        assert_eq!(p(b"GET /x HTTP/1.1x"), Some((s("GET"), s("/x"), s("HTTP/1.1x"), vec!["invalid_version"])));
        assert_eq!(p(b"GET /a b HTTP/1.1"), Some((s("GET"), s("/a b"), s("HTTP/1.1"), vec!["invalid_request_line"])));
        assert_eq!(p(b"get /x http/1.1").map(|x| x.3), Some(vec!["invalid_method", "invalid_version"]));
    }

    #[test]
    fn chatter_and_binary_are_not_requests() {
        assert_eq!(p(b"hello"), None);
        assert_eq!(p(b"HTTP/1.1"), None);
        assert_eq!(p(b"\x05\x01\x00"), None);
        assert_eq!(p(b"GET /\x00 HTTP/1.1"), None);
        assert_eq!(p(b"   "), None);
        assert_eq!(p(b"T / HTTP"), None);
        assert_eq!(p(b"hello world"), None);
        assert_eq!(p(b"USER ftpuser"), None);
        assert_eq!(p(b"PASS secret"), None);
        assert_eq!(p(b"MAIL FROM:<a@b.example>"), None);
        assert_eq!(p(b"QUIT "), None);
        assert_eq!(p(b"GET"), None);
        assert_eq!(p(b"Host: example.com"), None);
    }

    #[test]
    fn raw_line_is_escaped_and_capped() {
        assert_eq!(raw_line(b" G\xffT / HTTP/1.1\r"), ("G\\xffT / HTTP/1.1".to_owned(), false));
        let long = vec![b'a'; RAW_LINE_CAP + 5];
        let (r, cut) = raw_line(&long);
        assert!(cut);
        assert_eq!(r.len(), RAW_LINE_CAP);
    }
}
