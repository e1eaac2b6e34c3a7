//! What one path segment looks like: [`shape`] (integer, UUID, hex, date, e-mail, token, word), whether a word
//! may be a resource name ([`resource_word`]), whether it looks like a secret ([`secret_like`]), and the name a
//! parameter gets from the literal before it ([`param_name`]). Pure functions of the segment: the path tree
//! ([`super::template`]) and the evidence of an exchange ([`super::evidence`]) decide with them.

use super::schema::{is_date, is_email, is_uuid};
pub use crate::http::secrets::{credential_word, secret_like};

/// The look of one path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Integer,
    Uuid,
    /// Hex of at least 8 characters with a digit (object ids, hashes).
    Hex,
    Date,
    Email,
    /// A long token mixing letters and digits (`pay_3f2a9c…`, base64-ish ids, `SKU-00123`).
    Token,
    /// Longer than any name: an opaque value.
    Long,
    /// Anything else: a word such as `users`, `me`, `v2`.
    Word,
}

/// Byte classes for [`shape`]'s single pass.
const C_DIGIT: u8 = 1;
/// Digits, signs and the decimal point: the only bytes of a number.
const C_NUM: u8 = 2;
const C_HEX: u8 = 4;
/// Letters, digits and `-_.~=%`.
const C_TOKEN: u8 = 8;
const C_UPPER: u8 = 16;
const C_LOWER: u8 = 32;
const C_AT: u8 = 64;
const C_PCT: u8 = 128;

static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut k = 0;
        if c.is_ascii_digit() {
            k |= C_DIGIT | C_NUM;
        }
        if matches!(c, b'-' | b'+' | b'.') {
            k |= C_NUM;
        }
        if c.is_ascii_hexdigit() {
            k |= C_HEX;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'=' | b'%') {
            k |= C_TOKEN;
        }
        if c.is_ascii_uppercase() {
            k |= C_UPPER;
        }
        if c.is_ascii_lowercase() {
            k |= C_LOWER;
        }
        if c == b'@' {
            k |= C_AT;
        }
        if c == b'%' {
            k |= C_PCT;
        }
        t[i] = k;
        i += 1;
    }
    t
};

/// Classifies a raw path segment (percent-encoded `@` counts as `@`). One pass over the bytes gathers
/// what every test needs: this runs for every path segment and every short string value of every body.
pub fn shape(seg: &str) -> Shape {
    let b = seg.as_bytes();
    if b.is_empty() {
        return Shape::Word;
    }
    if b.len() > 96 {
        return Shape::Long;
    }
    let (mut all, mut any, mut digits) = (0xffu8, 0u8, 0usize);
    for c in b {
        let k = BYTE_CLASS[*c as usize];
        all &= k;
        any |= k;
        digits += usize::from(k & C_DIGIT);
    }
    if digits == b.len() {
        return if b.len() <= 20 { Shape::Integer } else { Shape::Token };
    }
    if all & C_NUM != 0 && is_number(b) {
        return if b.len() <= 24 { Shape::Integer } else { Shape::Token };
    }
    if is_uuid(seg) {
        return Shape::Uuid;
    }
    if is_date(b) {
        return Shape::Date;
    }
    if any & C_AT != 0 && is_email(seg) {
        return Shape::Email;
    }
    if any & C_PCT != 0 && seg.contains("%40") && is_email(&seg.replace("%40", "@")) {
        return Shape::Email;
    }
    if b.len() >= 8 && digits > 0 && all & C_HEX != 0 {
        return Shape::Hex;
    }
    if all & C_TOKEN != 0 && b.len() >= 8 {
        let upper = any & C_UPPER != 0;
        let lower = any & C_LOWER != 0;
        if digits >= 3 || (b.len() >= 16 && digits >= 1 && upper && lower) {
            return Shape::Token;
        }
    }
    Shape::Word
}

/// A signed or decimal number (`-17`, `0.5`, `+3`, `-1.25`): never a name. Unsigned integers are
/// handled before; a leading `v` (`v1.2`) is a version, not a number.
fn is_number(b: &[u8]) -> bool {
    let rest = match b.first() {
        Some(b'-' | b'+') => b.get(1..).unwrap_or_default(),
        _ => b,
    };
    let (int, frac) = match rest.iter().position(|c| *c == b'.') {
        Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
        None => (rest, None),
    };
    let all_digits = |x: &[u8]| !x.is_empty() && x.iter().all(u8::is_ascii_digit);
    all_digits(int) && frac.is_none_or(all_digits)
}

/// Words that are values in every API, never resource names.
const VALUE_WORDS: &[&str] = &["true", "false", "null", "nil", "none", "undefined", "nan", "infinity"];

/// A segment that may be a literal beside a parameter: an ASCII identifier starting with a lowercase letter,
/// of letters and digits with inner `-` or `_` (`me`, `v2`, `findByStatus`, `export-csv`, `by_name`), not
/// all capitals, not a value word (`true`, `null`). Everything else at such a position (`AAA`, `0.5`,
/// `null%2Cnull`, `__main__`, `%C2%92`) is a parameter value.
pub fn resource_word(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() <= 64
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
        && !b.windows(2).any(|w| matches!(w, [b'-' | b'_', b'-' | b'_']))
        && !VALUE_WORDS.iter().any(|w| seg.eq_ignore_ascii_case(w))
}

/// An API version: `v2`, `V1.1`, or dotted numbers not starting with 0 (`2.0`, `1.1.3`; `0.5` is a value). The templates only read a version as
/// such before any parameter of the path (`/api/2.0/shelves`; a `0.5` below a resource is a value).
pub fn is_version(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() > 12 {
        return false;
    }
    let (digits, rest) = match b.first() {
        Some(b'v' | b'V') => (b.get(1..).unwrap_or_default(), true),
        _ => (b, false),
    };
    let dots = digits.iter().filter(|c| **c == b'.').count();
    digits.first().is_some_and(u8::is_ascii_digit)
        && digits.last().is_some_and(u8::is_ascii_digit)
        && digits.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && !digits.windows(2).any(|w| w == b"..")
        && (rest || (dots >= 1 && !digits.starts_with(b"0")))
}

fn singular(w: &str) -> String {
    let l = w.len();
    if l > 4 && w.ends_with("ies") {
        format!("{}y", w.get(..l - 3).unwrap_or(w))
    } else if l > 4 && (w.ends_with("sses") || w.ends_with("ches") || w.ends_with("shes") || w.ends_with("xes")) {
        w.get(..l - 2).unwrap_or(w).to_owned()
    } else if l > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        w.get(..l - 1).unwrap_or(w).to_owned()
    } else {
        w.to_owned()
    }
}

/// The name of a parameter following the literal `prev` (`users` → `userId`, `payment-methods` →
/// `paymentMethodId`); `param{index}` when there is no usable literal before it.
pub fn param_name(prev: Option<&str>, index: usize) -> String {
    let usable = |s: &str| {
        !s.is_empty()
            && s.len() <= 40
            && s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            && !is_version(s)
            && shape(s) == Shape::Word
    };
    match prev {
        Some(s) if usable(s) => {
            let parts: Vec<&str> = s.split(['-', '_']).filter(|p| !p.is_empty()).collect();
            let n = parts.len();
            let mut out = String::with_capacity(s.len() + 2);
            for (i, p) in parts.iter().enumerate() {
                let p = p.to_ascii_lowercase();
                let p = if i + 1 == n { singular(&p) } else { p };
                if i == 0 {
                    out.push_str(&p);
                } else {
                    let mut cs = p.chars();
                    if let Some(f) = cs.next() {
                        out.push(f.to_ascii_uppercase());
                        out.push_str(cs.as_str());
                    }
                }
            }
            out.push_str("Id");
            out
        }
        _ => format!("param{index}"),
    }
}

/// The run pattern of a word with digits: letters become `a`, digit runs `9`, other bytes stay
/// (`inv2024-7` → `a9-9`, `red1` → `a9`). `None` for words without a digit or without a letter, and for
/// versions (`v2`): only word+digit ids are compared by pattern.
pub fn digit_pattern(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    if b.len() > 40 || is_version(seg) || !b.iter().any(u8::is_ascii_digit) || !b.iter().any(u8::is_ascii_alphabetic) {
        return None;
    }
    let mut out = String::with_capacity(8);
    let mut last = 0u8;
    for &c in b {
        let k = if c.is_ascii_alphabetic() {
            b'a'
        } else if c.is_ascii_digit() {
            b'9'
        } else {
            c
        };
        if k != last || !k.is_ascii_alphanumeric() {
            out.push(char::from(k));
        }
        last = k;
    }
    Some(out)
}

/// A word that may be a value chosen by a user (`website`, `jdoe`, `red1`, `my-board`): lower case letters,
/// digits and inner `-`/`_`. camelCase and other upper-case words are names a programmer chose
/// (`findByStatus`): they never merge into a parameter by the evidence of similar siblings.
pub fn value_word(seg: &str) -> bool {
    resource_word(seg) && !seg.bytes().any(|c| c.is_ascii_uppercase()) && !is_version(seg) && !alias_word(seg)
}

/// Words that stand for a value the server picks (`/users/me`, `/releases/latest`): they answer with the
/// same shape as the ids beside them, yet APIs document them as their own operations.
const ALIAS_WORDS: &[&str] = &["me", "self", "current", "mine", "latest", "default", "first", "last", "new", "all"];

pub fn alias_word(seg: &str) -> bool {
    ALIAS_WORDS.contains(&seg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classification as first written (one test per pass): [`shape`] must agree with it.
    fn shape_reference(seg: &str) -> Shape {
        let b = seg.as_bytes();
        if b.is_empty() {
            return Shape::Word;
        }
        if b.len() > 96 {
            return Shape::Long;
        }
        let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
        if digits == b.len() {
            return if b.len() <= 20 { Shape::Integer } else { Shape::Token };
        }
        if is_number(b) {
            return if b.len() <= 24 { Shape::Integer } else { Shape::Token };
        }
        if is_uuid(seg) {
            return Shape::Uuid;
        }
        if is_date(b) {
            return Shape::Date;
        }
        if seg.contains('@') && is_email(seg) {
            return Shape::Email;
        }
        if seg.contains("%40") && is_email(&seg.replace("%40", "@")) {
            return Shape::Email;
        }
        if b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
            return Shape::Hex;
        }
        let tokenish =
            b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'=' | b'%'));
        if tokenish && b.len() >= 8 {
            let upper = b.iter().any(u8::is_ascii_uppercase);
            let lower = b.iter().any(u8::is_ascii_lowercase);
            if digits >= 3 || (b.len() >= 16 && digits >= 1 && upper && lower) {
                return Shape::Token;
            }
        }
        Shape::Word
    }

    proptest::proptest! {
        #[test]
        fn shape_matches_the_reference(s in "[-+.0-9a-fA-Z_~=%@xyz:/ \u{e9}]{0,40}") {
            proptest::prop_assert_eq!(shape(&s), shape_reference(&s));
        }
    }

    #[test]
    fn shape_matches_the_reference_on_samples() {
        for s in [
            "",
            "123",
            "-17",
            "+3",
            "0.5",
            "1.2.3",
            "-",
            ".",
            "v1.2",
            "123e4567-e89b-12d3-a456-426614174000",
            "2024-01-02",
            "a@b.example",
            "a%40b.example",
            "deadbeef1",
            "deadbeef",
            "SKU-00123",
            "AbCdEfGh12345678",
            "users",
            "x".repeat(97).as_str(),
            "9".repeat(21).as_str(),
            "-".repeat(30).as_str(),
            "%4",
            "a%40",
        ] {
            assert_eq!(shape(s), shape_reference(s), "{s}");
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("123"), Shape::Integer);
        assert_eq!(shape("123e4567-e89b-12d3-a456-426614174000"), Shape::Uuid);
        assert_eq!(shape("5f2b9c0e1a3d4e5f6a7b8c9d"), Shape::Hex);
        assert_eq!(shape("2024-01-31"), Shape::Date);
        assert_eq!(shape("alice%40example.com"), Shape::Email);
        assert_eq!(shape("pay_0f3a9c2b71d4e8a6"), Shape::Token);
        assert_eq!(shape("SKU-00123"), Shape::Token);
        for w in ["users", "me", "v1", "v2", "oauth2", "sha256", "iso8601", "payment-methods", "deadbeef", "2fa"] {
            assert_eq!(shape(w), Shape::Word, "{w}");
        }
    }

    #[test]
    fn signed_and_decimal_numbers_are_integers() {
        for v in ["-1826", "-9223372036854775808", "+3", "0.5", "-1.25"] {
            assert_eq!(shape(v), Shape::Integer, "{v}");
        }
        for w in ["v1.2", "-", ".", "1.", ".5", "1.2.3"] {
            assert_ne!(shape(w), Shape::Integer, "{w}");
        }
    }

    #[test]
    fn resource_words() {
        for w in ["me", "v2", "findByStatus", "createWithArray", "export-csv", "by_name", "oauth2"] {
            assert!(resource_word(w), "{w}");
        }
        for v in [
            "AAA",
            "Alice",
            "true",
            "null",
            "False",
            "null%2Cnull",
            "__main__",
            "_x",
            "x-",
            "a--b",
            "%C2%92",
            "é",
            "0.5",
            "",
        ] {
            assert!(!resource_word(v), "{v}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(param_name(Some("users"), 1), "userId");
        assert_eq!(param_name(Some("payment-methods"), 1), "paymentMethodId");
        assert_eq!(param_name(Some("categories"), 1), "categoryId");
        assert_eq!(param_name(Some("addresses"), 1), "addressId");
        assert_eq!(param_name(Some("status"), 1), "statusId");
        assert_eq!(param_name(Some("v1"), 2), "param2");
        assert_eq!(param_name(None, 3), "param3");
    }

    #[test]
    fn digit_patterns() {
        assert_eq!(digit_pattern("inv2024-7").as_deref(), Some("a9-9"));
        assert_eq!(digit_pattern("inv2023-12").as_deref(), Some("a9-9"));
        assert_eq!(digit_pattern("red1").as_deref(), Some("a9"));
        assert_eq!(digit_pattern("block3").as_deref(), Some("a9"));
        assert_eq!(digit_pattern("v2"), None);
        assert_eq!(digit_pattern("users"), None);
        assert_eq!(digit_pattern("2024"), None);
    }

    #[test]
    fn value_words() {
        for w in ["website", "jdoe", "red1", "my-board", "backlog"] {
            assert!(value_word(w), "{w}");
        }
        for w in ["findByStatus", "v2", "AAA", "true", "", "me", "latest"] {
            assert!(!value_word(w), "{w}");
        }
    }
}
