//! What in a request path is a credential or a personal value, so that no output keeps it: the one place
//! that decides, used by the inventory (such a segment is never a literal of a template), the transaction log
//! and the alerts and findings (such a segment is written as `***`).

use std::borrow::Cow;

/// Path words after which the next segment carries a credential or a capability (`/reset/<token>`,
/// `/password/<value>`, `/share/<key>`): that segment is a value and never written as a literal.
const CREDENTIAL_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "tokens",
    "apikey",
    "api-key",
    "api_key",
    "key",
    "keys",
    "otp",
    "reset",
    "share",
    "invite",
    "invitation",
    "signature",
    "sig",
    "session",
    "sessions",
    "credential",
    "credentials",
    "verify",
    "confirm",
    "activate",
    "magic-link",
    "unsubscribe",
];

/// Whether `word` (a literal before a segment) announces a credential in the next one.
pub fn credential_word(word: &str) -> bool {
    word.len() <= 16 && CREDENTIAL_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// A segment that looks like a secret or personal value, so it must never become a literal (templates are
/// written to every output): an e-mail, or a credential-shaped string — at least 8 characters that switch
/// between lower case, upper case, digits and symbols far more often than words do (`Sup3rS3cret`,
/// `hunter2!x`, `xK9-pQ2_vL`), unlike camelCase names (`findByStatus`, `oauth2Callback`) whose case changes
/// start runs of several lower-case letters. Shape-based ids (tokens, hex, UUIDs) are parameters already.
pub fn secret_like(seg: &str) -> bool {
    let b = seg.as_bytes();
    if looks_like_email(seg) {
        return true;
    }
    if b.len() < 8 || b.len() > 512 {
        return b.len() > 512;
    }
    // Escapes, control bytes, non-ASCII and injection characters are encodings or attack payloads
    // (`..%2f..%2fetc`, `<script>`), which the logs must keep as they are; a typed secret is printable ASCII.
    if !b.iter().all(u8::is_ascii_graphic)
        || b.iter().any(|c| {
            matches!(c, b'%' | b'<' | b'>' | b'"' | b'\'' | b'`' | b';' | b'(' | b')' | b'{' | b'}' | b'|' | b'\\')
        })
        || seg.contains("..")
    {
        return false;
    }
    let has_letter = b.iter().any(u8::is_ascii_alphabetic);
    let has_digit = b.iter().any(u8::is_ascii_digit);
    if !has_letter || !has_digit {
        return false;
    }
    // Separators (`-`, `_`, `.`) are neither a kind nor a change: `inv2024-7` is a word and digits.
    let class = |c: u8| match c {
        b'a'..=b'z' => Some(0u8),
        b'A'..=b'Z' => Some(1),
        b'0'..=b'9' => Some(2),
        b'-' | b'_' | b'.' => None,
        _ => Some(3),
    };
    let mut switches = 0usize;
    let mut kinds = 0u8;
    let mut prev = None;
    for &c in b {
        let Some(k) = class(c) else { continue };
        kinds |= 1 << k;
        if prev.is_some_and(|p| p != k) {
            switches += 1;
        }
        prev = Some(k);
    }
    // Three kinds of character, and a change of kind at least every three characters.
    kinds.count_ones() >= 3 && switches * 3 >= b.len()
}

/// `local@domain.tld`, with `@` possibly percent-encoded.
fn looks_like_email(seg: &str) -> bool {
    let (local, domain) = match seg.split_once('@').or_else(|| seg.split_once("%40")) {
        Some(x) => x,
        None => return false,
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-'))
}

/// The path with every segment that [`secret_like`] says is a secret, or that follows a
/// [`credential_word`] (`/reset/<token>`), written as `***`. Borrowed when nothing is masked (the common
/// case: no allocation).
pub fn redact_path(path: &str) -> Cow<'_, str> {
    redact_path_and(path, |_| false)
}

/// [`redact_path`], also masking the non-empty segments (counted from 0) that `flagged` names: what the
/// sensitive-data analyzer found there.
pub fn redact_path_and(path: &str, flagged: impl Fn(usize) -> bool) -> Cow<'_, str> {
    let mut prev: Option<&str> = None;
    let mut hit = false;
    for (k, seg) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if masked(prev, seg) || flagged(k) {
            hit = true;
            break;
        }
        prev = Some(seg);
    }
    if !hit {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut prev: Option<&str> = None;
    let mut k = 0usize;
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.is_empty() {
            continue;
        }
        out.push_str(if masked(prev, seg) || flagged(k) { "***" } else { seg });
        prev = Some(seg);
        k += 1;
    }
    Cow::Owned(out)
}

/// The index in a `segment[k]` field, the name the sensitive-data analyzer gives the `k`-th non-empty path
/// segment (one parser for every output that masks what it flagged).
pub fn segment_index(field: &str) -> Option<usize> {
    field.strip_prefix("segment[")?.strip_suffix(']')?.parse().ok()
}

fn masked(prev: Option<&str>, seg: &str) -> bool {
    secret_like(seg) || (prev.is_some_and(credential_word) && !credential_word(seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_told_from_names() {
        for v in ["Sup3rS3cret", "hunter2!x", "xK9-pQ2_vL", "P4ssw0rd!", "jdoe@example.com", "aB3dE6gH9"] {
            assert!(secret_like(v), "{v}");
        }
        for w in ["findByStatus", "oauth2Callback", "users", "payment-methods", "website", "inv2024-7", "v2", "me"] {
            assert!(!secret_like(w), "{w}");
        }
        assert!(secret_like(&"a".repeat(600)));
        for attack in ["..%2f..%2fetc%2fpasswd", "a\u{d9}\u{0}\"\u{8}x1Y", "%27%20OR%201%3D1--", "<script>a1B"] {
            assert!(!secret_like(attack), "{attack}");
        }
    }

    #[test]
    fn credential_words() {
        for w in ["password", "Reset", "token", "share", "api-key"] {
            assert!(credential_word(w), "{w}");
        }
        for w in ["users", "auth", "login", "tokenize"] {
            assert!(!credential_word(w), "{w}");
        }
    }

    #[test]
    fn paths_are_redacted() {
        assert_eq!(redact_path("/api/v1/users/42"), "/api/v1/users/42");
        assert!(matches!(redact_path("/api/v1/users/42"), Cow::Borrowed(_)));
        assert_eq!(redact_path("/auth/jdoe/Sup3rS3cret"), "/auth/jdoe/***");
        assert_eq!(redact_path("/password/reset/hunter2/"), "/password/reset/***/");
        assert_eq!(redact_path("/users/jdoe%40example.com/orders"), "/users/***/orders");
        assert_eq!(redact_path("/share/abc"), "/share/***");
        assert_eq!(redact_path_and("/a/b/c", |k| k == 1), "/a/***/c");
    }
}
