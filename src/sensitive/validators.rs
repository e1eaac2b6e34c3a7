//! Validators: the last and most precise step of a signature, run on a regex match. Each is named in the
//! signature packs (`validator = "luhn"`); a match that fails its validator is not a finding.
//!
//! Every validator takes the matched bytes and never panics on any input; none allocates unless it must
//! decode (JWT, Basic), and then within the matched length.

use base64::Engine as _;

/// A named check on a matched value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Validator {
    /// Payment card: 13–19 digits, Luhn, a known issuer prefix and length.
    Luhn,
    /// US SSN: area/group/serial rules, no 000/666/9xx area, no published invalid numbers.
    Ssn,
    /// IBAN: country length table and ISO 7064 mod 97-10.
    Iban,
    /// UK National Insurance number prefix and suffix rules.
    Nino,
    /// Spanish DNI / NIE check letter.
    Dni,
    /// Indian Aadhaar: 12 digits, first 2–9, Verhoeff check digit.
    AadhaarVerhoeff,
    /// JWT: header and payload are base64url JSON objects, the header names an `alg`.
    Jwt,
    /// AWS secret access key: 40 base64 characters, mixed case and digits, high entropy.
    AwsSecret,
    /// Generic secret: at least 16 characters, two character classes, two digits, entropy ≥ 3.2 bits/char
    /// (32 random hex digits reach about 3.7).
    Entropy,
    /// Email: a plausible domain (dot, alphabetic TLD not a file extension).
    Email,
    /// Phone number: 8–15 digits (E.164), not a date or all one digit.
    Phone,
    /// IPv4 dotted quad (no leading zeros) or an IPv6 address, not unspecified.
    Ip,
    /// Basic credentials: base64 of `user:password` in printable text.
    BasicAuth,
    /// Bearer token that is not a JWT (those are reported as `jwt`) and looks random.
    OpaqueToken,
    /// A plausible calendar date (years 1900–2100).
    Date,
    /// A value that is not a placeholder (`****`, `null`, `{{password}}`, `<redacted>`).
    NotPlaceholder,
}

impl Validator {
    pub fn from_name(name: &str) -> Option<Validator> {
        Some(match name {
            "luhn" => Validator::Luhn,
            "ssn" => Validator::Ssn,
            "iban" => Validator::Iban,
            "nino" => Validator::Nino,
            "dni" => Validator::Dni,
            "aadhaar_verhoeff" => Validator::AadhaarVerhoeff,
            "jwt" => Validator::Jwt,
            "aws_secret" => Validator::AwsSecret,
            "entropy" => Validator::Entropy,
            "email" => Validator::Email,
            "phone" => Validator::Phone,
            "ip" => Validator::Ip,
            "basic_auth" => Validator::BasicAuth,
            "opaque_token" => Validator::OpaqueToken,
            "date" => Validator::Date,
            "not_placeholder" => Validator::NotPlaceholder,
            _ => return None,
        })
    }

    pub const NAMES: &'static [&'static str] = &[
        "luhn",
        "ssn",
        "iban",
        "nino",
        "dni",
        "aadhaar_verhoeff",
        "jwt",
        "aws_secret",
        "entropy",
        "email",
        "phone",
        "ip",
        "basic_auth",
        "opaque_token",
        "date",
        "not_placeholder",
    ];

    pub fn check(self, v: &[u8]) -> bool {
        match self {
            Validator::Luhn => card(v),
            Validator::Ssn => ssn(v),
            Validator::Iban => iban(v),
            Validator::Nino => nino(v),
            Validator::Dni => dni(v),
            Validator::AadhaarVerhoeff => aadhaar(v),
            Validator::Jwt => jwt_parts(v).is_some(),
            Validator::AwsSecret => aws_secret(v),
            Validator::Entropy => high_entropy(v),
            Validator::Email => email(v),
            Validator::Phone => phone(v),
            Validator::Ip => ip(v),
            Validator::BasicAuth => basic_auth(v),
            Validator::OpaqueToken => opaque_token(v),
            Validator::Date => date(v),
            Validator::NotPlaceholder => not_placeholder(v),
        }
    }
}

/// The ASCII digits of `v`, at most `N` (more digits make the value invalid for every caller).
fn digits<const N: usize>(v: &[u8]) -> Option<([u8; N], usize)> {
    let mut out = [0u8; N];
    let mut n = 0;
    for &b in v {
        if b.is_ascii_digit() {
            *out.get_mut(n)? = b - b'0';
            n += 1;
        }
    }
    Some((out, n))
}

pub fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let x = u32::from(x);
        sum += if i % 2 == 1 {
            let y = x * 2;
            if y > 9 { y - 9 } else { y }
        } else {
            x
        };
    }
    !d.is_empty() && sum.is_multiple_of(10)
}

/// Payment card number: separators only between digit groups (spaces or dashes, one kind), the issuer's
/// prefix and length, Luhn.
pub fn card(v: &[u8]) -> bool {
    let Some((d, n)) = digits::<19>(v) else { return false };
    if !(13..=19).contains(&n) || v.iter().any(|b| !b.is_ascii_digit() && *b != b' ' && *b != b'-') {
        return false;
    }
    if v.contains(&b' ') && v.contains(&b'-') {
        return false;
    }
    // Printed cards group their digits 4-4-4-4(-3), or 4-6-5 / 4-6-4 (Amex, Diners); other groupings are
    // digits that happen to sit between spaces (tables, binary data).
    let groups: Vec<usize> = v.split(|b| *b == b' ' || *b == b'-').map(<[u8]>::len).collect();
    if groups.len() > 1 {
        let fours =
            groups.split_last().is_some_and(|(last, rest)| rest.iter().all(|&g| g == 4) && (1..=4).contains(last));
        if !(fours || groups == [4, 6, 5] || groups == [4, 6, 4]) {
            return false;
        }
    }
    let d = d.get(..n).unwrap_or(&[]);
    // One digit repeated (0000 0000 0000 0000 passes Luhn) is a placeholder, not a card.
    if d.iter().all(|&x| Some(&x) == d.first()) {
        return false;
    }
    let p = |k: usize| d.iter().take(k).fold(0u32, |a, &x| a * 10 + u32::from(x));
    let ok_issuer = match n {
        // Visa
        13 | 16 | 19 if p(1) == 4 => true,
        // Mastercard 51–55, 2221–2720
        16 if (51..=55).contains(&p(2)) || (2221..=2720).contains(&p(4)) => true,
        // American Express
        15 if p(2) == 34 || p(2) == 37 => true,
        // Discover 6011, 644–649, 65
        16 | 19 if p(4) == 6011 || (644..=649).contains(&p(3)) || p(2) == 65 => true,
        // Diners Club 300–305, 36, 38–39
        14 if (300..=305).contains(&p(3)) || p(2) == 36 || p(2) == 38 || p(2) == 39 => true,
        // JCB 3528–3589
        16..=19 if (3528..=3589).contains(&p(4)) => true,
        // UnionPay 62
        16..=19 if p(2) == 62 => true,
        // Maestro 50, 56–69 (not already matched)
        12..=19 if p(2) == 50 || (56..=69).contains(&p(2)) => true,
        _ => false,
    };
    ok_issuer && luhn(d)
}

/// US Social Security number, 9 digits with or without dashes (both or none).
pub fn ssn(v: &[u8]) -> bool {
    let dashed = v.len() == 11 && v.get(3) == Some(&b'-') && v.get(6) == Some(&b'-');
    let spaced = v.len() == 11 && v.get(3) == Some(&b' ') && v.get(6) == Some(&b' ');
    if !(dashed || spaced || v.len() == 9) {
        return false;
    }
    let Some((d, n)) = digits::<9>(v) else { return false };
    if n != 9 {
        return false;
    }
    let num = |r: std::ops::Range<usize>| d.get(r).unwrap_or(&[]).iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    let (area, group, serial) = (num(0..3), num(3..5), num(5..9));
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // Published and advertising numbers (Woolworth wallet card, SSA pamphlet), and 123-45-6789.
    let all = area * 1_000_000 + group * 10_000 + serial;
    !matches!(all, 78_051_120 | 219_099_999 | 123_456_789 | 111_111_111 | 333_333_333 | 555_555_555)
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LEN: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// IBAN, compact or printed in groups of four separated by single spaces.
pub fn iban(v: &[u8]) -> bool {
    let mut buf = [0u8; 34];
    let mut n = 0;
    for &b in v {
        if b == b' ' {
            continue;
        }
        if !b.is_ascii_alphanumeric() {
            return false;
        }
        let Some(slot) = buf.get_mut(n) else { return false };
        *slot = b.to_ascii_uppercase();
        n += 1;
    }
    let s = buf.get(..n).unwrap_or(&[]);
    let (Some(cc), Some(check)) = (s.get(..2), s.get(2..4)) else { return false };
    if !cc.iter().all(u8::is_ascii_uppercase) || !check.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let Some(&(_, len)) = IBAN_LEN.iter().find(|(c, _)| c.as_slice() == cc) else { return false };
    if n != len {
        return false;
    }
    // Move the first four characters to the end, letters as 10..35, remainder mod 97 must be 1.
    let mut rem = 0u32;
    for &b in s.get(4..).unwrap_or(&[]).iter().chain(s.get(..4).unwrap_or(&[])) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + u32::from(b - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(b - b'A' + 10)) % 97;
        }
    }
    rem == 1
}

/// UK National Insurance number: two prefix letters (not D F I Q U V; second not O; not BG GB KN NK NT TN
/// ZZ), six digits, suffix A–D. Spaces between pairs allowed.
pub fn nino(v: &[u8]) -> bool {
    let mut s = [0u8; 9];
    let mut n = 0;
    for &b in v {
        if b == b' ' {
            continue;
        }
        let Some(slot) = s.get_mut(n) else { return false };
        *slot = b.to_ascii_uppercase();
        n += 1;
    }
    if n != 9 {
        return false;
    }
    let [a, b, d @ .., suffix] = s;
    let bad_first = b"DFIQUV";
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() || bad_first.contains(&a) || bad_first.contains(&b) {
        return false;
    }
    if b == b'O' || matches!(&[a, b], b"BG" | b"GB" | b"KN" | b"NK" | b"NT" | b"TN" | b"ZZ") {
        return false;
    }
    d.iter().all(u8::is_ascii_digit) && matches!(suffix, b'A'..=b'D')
}

/// Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter), optional dash before the letter.
pub fn dni(v: &[u8]) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let v: Vec<u8> = v.iter().filter(|b| **b != b'-' && **b != b' ').map(u8::to_ascii_uppercase).collect();
    if v.len() != 9 {
        return false;
    }
    let (body, letter) = v.split_at(8);
    let mut num: u32 = 0;
    for (i, &b) in body.iter().enumerate() {
        let d = match (i, b) {
            (0, b'X') => 0,
            (0, b'Y') => 1,
            (0, b'Z') => 2,
            (_, b'0'..=b'9') => u32::from(b - b'0'),
            _ => return false,
        };
        num = num * 10 + d;
    }
    if num == 0 {
        return false;
    }
    LETTERS.get((num % 23) as usize) == letter.first()
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 8, 5],
];

pub fn verhoeff(d: &[u8]) -> bool {
    let mut c = 0u8;
    for (i, &x) in d.iter().rev().enumerate() {
        let p = VERHOEFF_P.get(i % 8).and_then(|r| r.get(usize::from(x))).copied().unwrap_or(0);
        c = VERHOEFF_D.get(usize::from(c)).and_then(|r| r.get(usize::from(p))).copied().unwrap_or(0);
    }
    !d.is_empty() && c == 0
}

/// Aadhaar: 12 digits (optionally 4-4-4 with spaces or dashes), first digit 2–9, Verhoeff check digit.
pub fn aadhaar(v: &[u8]) -> bool {
    let Some((d, n)) = digits::<12>(v) else { return false };
    if n != 12 || v.iter().any(|b| !b.is_ascii_digit() && *b != b' ' && *b != b'-') {
        return false;
    }
    d.first().is_some_and(|&f| f >= 2) && !d.iter().all(|&x| Some(&x) == d.first()) && verhoeff(&d)
}

/// Decodes a JWT's header and payload (base64url JSON objects); the header must carry `alg`.
pub fn jwt_parts(v: &[u8]) -> Option<(serde_json::Value, serde_json::Value)> {
    // A token beyond 16 KiB is not something we decode on the hot path.
    if v.len() > 16 * 1024 {
        return None;
    }
    let mut it = v.split(|b| *b == b'.');
    let (h, p) = (it.next()?, it.next()?);
    it.next()?;
    if it.next().is_some() {
        return None;
    }
    let dec = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_ascii_end()).ok();
    let header: serde_json::Value = serde_json::from_slice(&dec(h)?).ok()?;
    header.get("alg")?;
    let payload: serde_json::Value = serde_json::from_slice(&dec(p)?).ok()?;
    payload.is_object().then_some((header, payload))
}

/// Shannon entropy in bits per byte.
pub fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = v.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum()
}

fn classes(v: &[u8]) -> u32 {
    u32::from(v.iter().any(u8::is_ascii_lowercase))
        + u32::from(v.iter().any(u8::is_ascii_uppercase))
        + u32::from(v.iter().any(u8::is_ascii_digit))
}

pub fn aws_secret(v: &[u8]) -> bool {
    v.len() == 40
        && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'/' || *b == b'+')
        && classes(v) == 3
        && entropy(v) >= 4.0
}

pub fn high_entropy(v: &[u8]) -> bool {
    v.len() >= 16
        && v.len() <= 4096
        && !v.contains(&b' ')
        && classes(v) >= 2
        && v.iter().filter(|b| b.is_ascii_digit()).count() >= 2
        && entropy(v) >= 3.2
        && not_placeholder(v)
}

/// File extensions that follow an `@` in asset names (`logo@2x.png`), never a mail domain.
const NOT_TLD: &[&[u8]] =
    &[b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"js", b"css", b"map", b"json", b"html", b"txt"];

pub fn email(v: &[u8]) -> bool {
    let Some(at) = memchr::memrchr(b'@', v) else { return false };
    let (local, domain) = (v.get(..at).unwrap_or(&[]), v.get(at + 1..).unwrap_or(&[]));
    if local.is_empty() || local.len() > 64 || domain.len() < 4 || domain.len() > 253 {
        return false;
    }
    if local.starts_with(b".") || local.ends_with(b".") || domain.starts_with(b".") || domain.starts_with(b"-") {
        return false;
    }
    let Some(dot) = memchr::memrchr(b'.', domain) else { return false };
    let tld = domain.get(dot + 1..).unwrap_or(&[]);
    if tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let lower: Vec<u8> = tld.to_ascii_lowercase();
    !NOT_TLD.contains(&lower.as_slice()) && !domain.windows(2).any(|w| w == b"..")
}

pub fn phone(v: &[u8]) -> bool {
    let Some((d, n)) = digits::<15>(v) else { return false };
    if !(8..=15).contains(&n) {
        return false;
    }
    let d = d.get(..n).unwrap_or(&[]);
    // One digit repeated six times is a placeholder or a constant (`+1000000000` in a script).
    if d.windows(6).any(|w| w.iter().all(|&x| Some(&x) == w.first())) {
        return false;
    }
    // Dates (2024-01-15, 15.01.2024) and times share the shape of grouped digits.
    let seps = v.iter().filter(|b| matches!(b, b'.' | b'/' | b':')).count();
    if seps >= 2 && !v.starts_with(b"+") {
        return false;
    }
    // E.164: no leading 0 after the plus.
    !(v.starts_with(b"+") && d.first() == Some(&0))
}

pub fn ip(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else { return false };
    if let Ok(a) = s.parse::<std::net::Ipv4Addr>() {
        // A last octet of 0 names a network (`212.0.0.0`, `10.1.2.0`), not a host: no one's address.
        return !a.is_unspecified() && !a.is_broadcast() && a.octets()[3] != 0;
    }
    match s.parse::<std::net::Ipv6Addr>() {
        // `::` and short forms like `::1` come up in non-address text (C++ scopes, timestamps).
        Ok(a) => !a.is_unspecified() && s.matches(':').count() >= 2 && s.len() >= 6 && !a.is_loopback(),
        Err(_) => false,
    }
}

pub fn basic_auth(v: &[u8]) -> bool {
    if v.len() > 4096 {
        return false;
    }
    let Ok(d) = base64::engine::general_purpose::STANDARD.decode(v.trim_ascii()) else { return false };
    let Some(colon) = memchr::memchr(b':', &d) else { return false };
    colon > 0 && d.iter().all(|b| (0x20..0x7f).contains(b) || *b >= 0x80)
}

pub fn opaque_token(v: &[u8]) -> bool {
    v.len() >= 8 && jwt_parts(v).is_none() && not_placeholder(v)
}

/// `YYYY-MM-DD`, `DD/MM/YYYY`, `MM/DD/YYYY`, `DD.MM.YYYY` with plausible fields.
pub fn date(v: &[u8]) -> bool {
    let parts: Vec<u32> = v
        .split(|b| matches!(b, b'-' | b'/' | b'.'))
        .take(4)
        .map(|p| {
            if p.is_empty() || p.len() > 4 || !p.iter().all(u8::is_ascii_digit) {
                u32::MAX
            } else {
                p.iter().fold(0, |a, &x| a * 10 + u32::from(x - b'0'))
            }
        })
        .collect();
    let ok = |y: u32, m: u32, d: u32| (1900..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d);
    match parts.as_slice() {
        [y, m, d] if *y >= 1000 => ok(*y, *m, *d),
        [a, b, y] if *y >= 1000 => ok(*y, *b, *a) || ok(*y, *a, *b),
        _ => false,
    }
}

pub fn not_placeholder(v: &[u8]) -> bool {
    let t = v.trim_ascii();
    if t.is_empty() || t.iter().all(|b| matches!(b, b'*' | b'x' | b'X' | b'.' | b'#' | b'-' | b'_' | b'0')) {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    let words: [&[u8]; 10] = [
        b"null",
        b"none",
        b"undefined",
        b"redacted",
        b"<redacted>",
        b"[redacted]",
        b"changeme",
        b"true",
        b"false",
        b"***",
    ];
    if words.contains(&lower.as_slice()) {
        return false;
    }
    !(t.starts_with(b"{{") || t.starts_with(b"${") || t.starts_with(b"<%") || t.starts_with(b"%("))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards() {
        for ok in
            ["4242 4242 4242 4242", "4111111111111111", "5555555555554444", "378282246310005", "6011-1111-1111-1117"]
        {
            assert!(card(ok.as_bytes()), "{ok}");
        }
        assert!(card(b"2221000000000009"), "Mastercard 2-series");
        assert!(card(b"3530111333300000"), "JCB");
        assert!(card(b"30569309025904"), "Diners");
        assert!(card(b"3782 822463 10005"), "Amex grouping");
        for bad in [
            "4242424242424241",     // Luhn fails
            "4111 1111 1111 1112",  // Luhn fails
            "0000000000000000",     // placeholder
            "1234567812345670",     // Luhn ok, no issuer starts with 1
            "4242 4242-4242 4242",  // mixed separators
            "424242424242",         // too short
            "42424242424242424242", // too long
            "7000000000000007",     // Luhn ok, prefix 7
            "424 242 424 242 4242", // not a card grouping
        ] {
            assert!(!card(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn ssns() {
        assert!(ssn(b"536-22-1234"));
        assert!(ssn(b"536221234"));
        for bad in
            ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "078-05-1120", "219-09-9999"]
        {
            assert!(!ssn(bad.as_bytes()), "{bad}");
        }
        assert!(!ssn(b"536-221234"), "dashes both or none");
        assert!(!ssn(b"5362212345"));
    }

    #[test]
    fn ibans() {
        for ok in [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "FR1420041010050500013M02606",
            "GB82 WEST 1234 5698 7654 32",
        ] {
            assert!(iban(ok.as_bytes()), "{ok}");
        }
        assert!(!iban(b"DE89370400440532013001"), "wrong check digits");
        assert!(!iban(b"DE88370400440532013000"), "wrong check digits");
        assert!(!iban(b"DE8937040044053201300"), "wrong length for DE");
        assert!(!iban(b"XX89370400440532013000"), "unknown country");
        assert!(!iban(b"de89370400440532013000x"), "stray character");
    }

    #[test]
    fn ninos() {
        assert!(nino(b"AB123456C"));
        assert!(nino(b"AB 12 34 56 C"));
        assert!(!nino(b"DA123456C"), "D not a valid first letter");
        assert!(!nino(b"AO123456C"), "O not a valid second letter");
        assert!(!nino(b"GB123456C"), "reserved prefix");
        assert!(!nino(b"AB123456E"), "suffix A-D");
        assert!(!nino(b"AB12345C"));
    }

    #[test]
    fn dnis() {
        assert!(dni(b"12345678Z"));
        assert!(dni(b"X1234567L"), "NIE");
        assert!(!dni(b"12345678A"), "wrong letter");
        assert!(!dni(b"1234567Z"));
        assert!(!dni(b"00000000T"));
    }

    #[test]
    fn aadhaars() {
        assert!(verhoeff(&[2, 3, 6, 3]));
        assert!(aadhaar(b"234123412346"));
        assert!(aadhaar(b"2341 2341 2346"));
        assert!(!aadhaar(b"234123412347"), "check digit");
        assert!(!aadhaar(b"123412341234"), "first digit 0/1");
        assert!(!aadhaar(b"23412341234"));
    }

    #[test]
    fn jwts() {
        let t = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwiZW1haWwiOiJhQGIuY29tIn0.c2ln";
        let (h, p) = jwt_parts(t).unwrap();
        assert_eq!(h["alg"], "HS256");
        assert_eq!(p["email"], "a@b.com");
        assert!(jwt_parts(b"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln").is_none(), "payload not JSON");
        assert!(jwt_parts(b"eyJ0eXAiOiJKV1QifQ.eyJhIjoxfQ.x").is_none(), "no alg");
        assert!(jwt_parts(b"a.b").is_none());
    }

    #[test]
    fn secrets() {
        assert!(aws_secret(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        assert!(!aws_secret(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!aws_secret(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKE"), "39 chars");
        assert!(high_entropy(b"a8F3kQ9zL2mX7pR4tV6w"));
        assert!(!high_entropy(b"my-application-name"));
        assert!(!high_entropy(b"****************"));
        assert!(!high_entropy(b"short1"));
    }

    #[test]
    fn emails() {
        assert!(email(b"jane.doe@example.com"));
        assert!(email(b"a+tag@sub.example.co.uk"));
        assert!(!email(b"logo@2x.png"));
        assert!(!email(b"user@localhost"));
        assert!(!email(b"@example.com"));
        assert!(!email(b"a@b..com"));
    }

    #[test]
    fn phones() {
        assert!(phone(b"+1-202-555-0143"));
        assert!(phone(b"+44 20 7946 0958"));
        assert!(phone(b"(202) 555-0143"));
        assert!(!phone(b"+0123456789"), "no country code 0");
        assert!(!phone(b"2024.01.15"));
        assert!(!phone(b"1111111111"));
        assert!(!phone(b"+1000000000"));
        assert!(!phone(b"12345"));
    }

    #[test]
    fn ips() {
        assert!(ip(b"192.168.1.20"));
        assert!(ip(b"2001:db8::8a2e:370:7334"));
        assert!(!ip(b"256.1.1.1"));
        assert!(!ip(b"01.2.3.4"), "leading zero");
        assert!(!ip(b"0.0.0.0"));
        assert!(!ip(b"::"));
        assert!(!ip(b"1.2.3"));
        assert!(!ip(b"212.0.0.0"), "a network, not a host");
        assert!(!ip(b"10.1.2.0"), "a network, not a host");
        assert!(ip(b"10.1.2.1"));
    }

    #[test]
    fn basic_and_bearer() {
        assert!(basic_auth(b"dXNlcjpwYXNz"), "user:pass");
        assert!(!basic_auth(b"dXNlcnBhc3M="), "no colon");
        assert!(!basic_auth(b"!!!"));
        assert!(opaque_token(b"8f2a9c1d7e6b5a4c"));
        assert!(!opaque_token(b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"), "JWTs are reported as jwt");
        assert!(!opaque_token(b"{{token}}"));
    }

    #[test]
    fn dates_and_placeholders() {
        assert!(date(b"1985-07-23"));
        assert!(date(b"23/07/1985"));
        assert!(date(b"07/23/1985"));
        assert!(!date(b"1985-13-40"));
        assert!(!date(b"12345"));
        assert!(!date(b"1850-01-01"));
        assert!(!not_placeholder(b"********"));
        assert!(!not_placeholder(b"null"));
        assert!(!not_placeholder(b"{{password}}"));
        assert!(not_placeholder(b"hunter2"));
    }

    #[test]
    fn every_name_resolves() {
        for n in Validator::NAMES {
            assert!(Validator::from_name(n).is_some(), "{n}");
        }
        assert!(Validator::from_name("nope").is_none());
    }
}
