//! What may leave the sensor about a detected value: a masked rendering that keeps its shape and a few
//! characters an analyst needs to recognise it (`j***@e***.com`, `**** **** **** 4242`), and a keyed hash
//! (BLAKE3 keyed with `[sensitive] hash_key`) so the same value can be followed across findings without
//! being stored.

use serde::{Deserialize, Serialize};

/// How a signature's evidence is masked.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// `j***@e***.com`
    Email,
    /// Every letter and digit but the last four starred, separators kept: `**** **** **** 4242`, `***-**-6789`.
    Last4,
    /// The first two and last four kept: `DE**************3000`.
    Iban,
    /// The first `prefix_len` characters kept (a vendor's token prefix such as `ghp_`), the rest `***`.
    Prefix,
    /// Nothing of the value: `***(12)`, its length only.
    #[default]
    Full,
}

/// The masked evidence for `v`. Never returns more than four characters of a value longer than eight, nor
/// anything of a shorter one but under [`Mask::Email`] (first letter of each part).
pub fn mask(v: &[u8], how: Mask, prefix_len: usize) -> String {
    let s = String::from_utf8_lossy(v);
    let n = s.chars().count();
    match how {
        Mask::Email => {
            let Some((local, domain)) = s.rsplit_once('@') else { return full(n) };
            let first = |x: &str| x.chars().next().map(String::from).unwrap_or_default();
            let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
            format!("{}***@{}***.{}", first(local), first(host), tld)
        }
        Mask::Last4 | Mask::Iban => {
            if n <= 8 {
                return full(n);
            }
            let alnum = s.chars().filter(char::is_ascii_alphanumeric).count();
            let keep_head = if how == Mask::Iban { 2 } else { 0 };
            let mut seen = 0;
            s.chars()
                .map(|c| {
                    if !c.is_ascii_alphanumeric() {
                        return c;
                    }
                    seen += 1;
                    if seen <= keep_head || seen + 4 > alnum { c } else { '*' }
                })
                .collect()
        }
        Mask::Prefix => {
            let keep = prefix_len.min(8).min(n / 2);
            let head: String = s.chars().take(keep).collect();
            format!("{head}***")
        }
        Mask::Full => full(n),
    }
}

fn full(n: usize) -> String {
    format!("***({n})")
}

/// The keyed hash of a normalised value, as 32 hex digits (128 bits: enough to correlate, short in logs).
pub fn keyed_hash(key: &[u8; 32], v: &[u8]) -> String {
    let h = blake3::keyed_hash(key, v);
    let mut out = String::with_capacity(32);
    for b in h.as_bytes().iter().take(16) {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The hash key from the configured secret: any string, stretched with BLAKE3's key derivation so short
/// and long secrets both give a uniform key.
pub fn derive_key(secret: &str) -> [u8; 32] {
    blake3::derive_key("mirador 2026-11 sensitive value hash", secret.as_bytes())
}

/// A random key for this process, when the operator set none (hashes then only correlate within a run).
pub fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    if getrandom::fill(&mut k).is_err() {
        // No OS randomness: still unpredictable enough across runs to not be a fixed, public key.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        k = blake3::derive_key("mirador fallback key", format!("{t:?}{}", std::process::id()).as_bytes());
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_shape_not_value() {
        assert_eq!(mask(b"jane.doe@example.com", Mask::Email, 0), "j***@e***.com");
        assert_eq!(mask(b"4242 4242 4242 4242", Mask::Last4, 0), "**** **** **** 4242");
        assert_eq!(mask(b"536-22-1234", Mask::Last4, 0), "***-**-1234");
        assert_eq!(mask(b"DE89370400440532013000", Mask::Iban, 0), "DE****************3000");
        assert_eq!(mask(b"ghp_abcdefghijklmnopqrstuvwxyz0123456789", Mask::Prefix, 4), "ghp_***");
        assert_eq!(mask(b"hunter2", Mask::Full, 0), "***(7)");
        assert_eq!(mask(b"1234", Mask::Last4, 0), "***(4)");
        assert_eq!(mask(b"noat", Mask::Email, 0), "***(4)");
    }

    #[test]
    fn hash_is_keyed() {
        let a = derive_key("k1");
        let b = derive_key("k2");
        assert_eq!(keyed_hash(&a, b"x"), keyed_hash(&a, b"x"));
        assert_ne!(keyed_hash(&a, b"x"), keyed_hash(&b, b"x"));
        assert_eq!(keyed_hash(&a, b"x").len(), 32);
        assert_ne!(random_key(), random_key());
    }
}
