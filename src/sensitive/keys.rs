//! Key names as words: `customerEmail`, `customer_email`, `customer-email`, `customer.email` all become
//! `[customer, email]`. Signatures name keys as word sequences and match whole words only, so `public` never
//! matches `lic` and `compass` never matches `pass`.

/// At most this many words of one key are looked at; longer keys are cut (their tail words ignored).
pub const MAX_KEY_WORDS: usize = 12;

/// The lowercase words of a key, reusing the caller's buffers. Word boundaries: any non-alphanumeric byte,
/// a lower→upper case change (`cardNumber`), the end of an acronym (`SSNValue` → `ssn value`), and letter↔digit
/// changes (`line1` → `line 1`).
#[derive(Default, Debug)]
pub struct KeyWords {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyWords {
    pub fn split(&mut self, key: &[u8]) {
        self.buf.clear();
        self.ends.clear();
        let key = key.get(..256).unwrap_or(key);
        let mut prev: u8 = 0;
        for (i, &b) in key.iter().enumerate() {
            if !b.is_ascii_alphanumeric() {
                self.cut();
                prev = 0;
                continue;
            }
            let next = key.get(i + 1).copied().unwrap_or(0);
            let boundary = (prev.is_ascii_lowercase() && b.is_ascii_uppercase())
                || (prev.is_ascii_uppercase() && b.is_ascii_uppercase() && next.is_ascii_lowercase())
                || (prev.is_ascii_alphabetic() && b.is_ascii_digit())
                || (prev.is_ascii_digit() && b.is_ascii_alphabetic());
            if boundary {
                self.cut();
            }
            if self.ends.len() >= MAX_KEY_WORDS {
                return;
            }
            self.buf.push(b.to_ascii_lowercase());
            prev = b;
        }
        self.cut();
    }

    fn cut(&mut self) {
        let start = self.ends.last().copied().unwrap_or(0);
        if self.buf.len() > start && self.ends.len() < MAX_KEY_WORDS {
            self.ends.push(self.buf.len());
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn word(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends.get(i - 1).copied().unwrap_or(0) };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.buf.get(start..end).unwrap_or(&[])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.word(i))
    }

    /// The words `term` appear consecutively in the key.
    pub fn contains_seq(&self, term: &[Vec<u8>]) -> bool {
        let n = term.len();
        if n == 0 || n > self.len() {
            return false;
        }
        (0..=self.len() - n).any(|s| term.iter().enumerate().all(|(j, t)| self.word(s + j) == t.as_slice()))
    }

    pub fn contains_word(&self, w: &[u8]) -> bool {
        self.iter().any(|x| x == w)
    }
}

/// Splits a term as written in a pack (`"card number"`, `"card_number"`, `"cardNumber"`) into its words.
pub fn term_words(term: &str) -> Vec<Vec<u8>> {
    let mut k = KeyWords::default();
    k.split(term.as_bytes());
    k.iter().map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(k: &str) -> Vec<String> {
        let mut w = KeyWords::default();
        w.split(k.as_bytes());
        w.iter().map(|x| String::from_utf8(x.to_vec()).unwrap()).collect()
    }

    #[test]
    fn splits_every_style() {
        assert_eq!(words("customerEmail"), ["customer", "email"]);
        assert_eq!(words("customer_email"), ["customer", "email"]);
        assert_eq!(words("Customer-Email"), ["customer", "email"]);
        assert_eq!(words("customer.email"), ["customer", "email"]);
        assert_eq!(words("SSNValue"), ["ssn", "value"]);
        assert_eq!(words("address_line1"), ["address", "line", "1"]);
        assert_eq!(words("X-API-Key"), ["x", "api", "key"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("__"), Vec::<String>::new());
    }

    #[test]
    fn whole_words_only() {
        let mut w = KeyWords::default();
        w.split(b"publicKeyId");
        assert!(!w.contains_word(b"lic"));
        assert!(w.contains_seq(&term_words("key id")));
        w.split(b"compass_heading");
        assert!(!w.contains_word(b"pass"));
        w.split(b"newPassword");
        assert!(w.contains_seq(&term_words("password")));
        assert!(!w.contains_seq(&term_words("new password hint")));
    }

    #[test]
    fn long_keys_are_capped() {
        let k = "a_".repeat(100);
        let mut w = KeyWords::default();
        w.split(k.as_bytes());
        assert_eq!(w.len(), MAX_KEY_WORDS);
    }
}
