//! Credentials a plugin can use but never read.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use memchr::memmem::Finder;

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The secrets of one account, by field name.
#[derive(Clone, Default, Debug)]
pub struct Secrets(BTreeMap<String, Secret>);

impl Secrets {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace one.
    pub fn insert(&mut self, name: impl Into<String>, value: Secret) {
        self.0.insert(name.into(), value);
    }

    /// Look one up by field name.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// The names of the secrets present (what a plugin is told).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// A redactor for every secret here, in every encoding the host produces.
    pub fn redactor(&self) -> Redactor {
        let mut patterns = Vec::new();
        for secret in self.0.values() {
            let raw = secret.expose();
            if raw.is_empty() {
                continue;
            }
            patterns.push(raw.as_bytes().to_vec());
            patterns.push(BASE64.encode(raw).into_bytes());
            patterns.push(SecretEncoding::ImapQuoted.encode(secret).into_bytes());
        }
        Redactor::new(patterns)
    }
}

/// How the host writes a secret into a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretEncoding {
    /// As it is.
    Raw,
    /// An IMAP quoted string.
    ImapQuoted,
    /// SASL PLAIN with this user name (base64).
    SaslPlain(String),
    /// SASL XOAUTH2 with this user name (base64).
    Xoauth2(String),
}

impl SecretEncoding {
    /// The bytes to write.
    pub fn encode(&self, secret: &Secret) -> String {
        let value = secret.expose();
        match self {
            SecretEncoding::Raw => value.to_string(),
            SecretEncoding::ImapQuoted => {
                format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
            }
            SecretEncoding::SaslPlain(user) => BASE64.encode(format!("\0{user}\0{value}")),
            SecretEncoding::Xoauth2(user) => {
                BASE64.encode(format!("user={user}\x01auth=Bearer {value}\x01\x01"))
            }
        }
    }
}

/// Blanks known secret byte strings out of a stream read in chunks.
///
/// Each occurrence is replaced by as many `*` (so protocol byte counts stay
/// right). A chunk that ends in the beginning of a secret is held back until
/// the next chunk shows whether the secret follows, so that a secret split
/// across two reads is caught too.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// One substring searcher per pattern, longest pattern first.
    finders: Vec<Finder<'static>>,
    pending: Vec<u8>,
}

impl Redactor {
    /// A redactor for these byte strings (empty ones are ignored).
    pub fn new(patterns: Vec<Vec<u8>>) -> Self {
        let mut patterns: Vec<_> = patterns.into_iter().filter(|p| !p.is_empty()).collect();
        // Longest first, so that a secret inside a longer encoding is not cut short.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        patterns.dedup();
        Redactor {
            finders: patterns
                .iter()
                .map(|p| Finder::new(p).into_owned())
                .collect(),
            pending: Vec::new(),
        }
    }

    /// Add more patterns (for example an encoding written later).
    pub fn add(&mut self, pattern: &[u8]) {
        if pattern.is_empty() || self.finders.iter().any(|f| f.needle() == pattern) {
            return;
        }
        // Keep the longest-first order `new` establishes.
        let at = self
            .finders
            .partition_point(|f| f.needle().len() >= pattern.len());
        self.finders.insert(at, Finder::new(pattern).into_owned());
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    /// Blank the secrets out of one complete value (a header, a log line).
    pub fn scrub(&self, value: &[u8]) -> Vec<u8> {
        let mut data = value.to_vec();
        self.blank(&mut data);
        data
    }

    /// Feed a chunk; get back what may be released now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.finders.is_empty() {
            return chunk.to_vec();
        }
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(chunk);
        self.blank(&mut data);
        let hold = self.partial_suffix(&data);
        self.pending = data.split_off(data.len() - hold);
        data
    }

    /// The end of the stream: release whatever was held back.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    fn blank(&self, data: &mut [u8]) {
        for finder in &self.finders {
            let len = finder.needle().len();
            let mut start = 0;
            while let Some(found) = finder.find(&data[start..]) {
                let at = start + found;
                data[at..at + len].fill(b'*');
                start = at + len;
            }
        }
    }

    /// The length of the longest suffix of `data` that is a proper prefix of a pattern.
    fn partial_suffix(&self, data: &[u8]) -> usize {
        self.finders
            .iter()
            .map(|f| {
                let p = f.needle();
                (1..p.len().min(data.len() + 1))
                    .rev()
                    .find(|&n| data.ends_with(&p[..n]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact_in_chunks(r: &mut Redactor, data: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in data.chunks(size) {
            out.extend(r.feed(chunk));
        }
        out.extend(r.finish());
        out
    }

    #[test]
    fn encodings() {
        let s = Secret::new("p\"w\\d");
        assert_eq!(SecretEncoding::Raw.encode(&s), "p\"w\\d");
        assert_eq!(SecretEncoding::ImapQuoted.encode(&s), "\"p\\\"w\\\\d\"");
        let plain = SecretEncoding::SaslPlain("u".into()).encode(&Secret::new("pw"));
        assert_eq!(BASE64.decode(plain).unwrap(), b"\0u\0pw");
        let x = SecretEncoding::Xoauth2("a@b".into()).encode(&Secret::new("tok"));
        assert_eq!(
            BASE64.decode(x).unwrap(),
            b"user=a@b\x01auth=Bearer tok\x01\x01"
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let mut s = Secrets::new();
        s.insert("password", Secret::new("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn blanks_secrets_split_across_chunks() {
        let mut s = Secrets::new();
        s.insert("password", Secret::new("hunter2"));
        let text = b"* NO [hunter2] wrong password hunter2\r\n";
        for size in 1..text.len() {
            let mut r = s.redactor();
            let out = redact_in_chunks(&mut r, text, size);
            assert_eq!(out.len(), text.len());
            assert_eq!(
                &out[..],
                &b"* NO [*******] wrong password *******\r\n"[..],
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn an_added_pattern_is_blanked_whole_even_around_a_shorter_one() {
        let mut s = Secrets::new();
        s.insert("password", Secret::new("pw"));
        let mut r = s.redactor();
        let blob = SecretEncoding::SaslPlain("u".into()).encode(&Secret::new("pw"));
        r.add(blob.as_bytes());
        r.add(blob.as_bytes());
        assert_eq!(
            r.finders
                .iter()
                .filter(|f| f.needle() == blob.as_bytes())
                .count(),
            1
        );
        let text = format!("+ {blob} pw\r\n");
        let mut out = r.feed(text.as_bytes());
        out.extend(r.finish());
        let stars = "*".repeat(blob.len());
        assert_eq!(String::from_utf8(out).unwrap(), format!("+ {stars} **\r\n"));
    }

    proptest::proptest! {
        #[test]
        fn never_releases_a_secret_and_keeps_everything_else(
            before in "[a-z ]{0,30}", after in "[a-z ]{0,30}", size in 1usize..16
        ) {
            let mut s = Secrets::new();
            s.insert("password", Secret::new("S3cr3t!"));
            let text = format!("{before}S3cr3t!{after}");
            let mut r = s.redactor();
            let out = redact_in_chunks(&mut r, text.as_bytes(), size);
            let out = String::from_utf8(out).unwrap();
            proptest::prop_assert!(!out.contains("S3cr3t!"));
            proptest::prop_assert_eq!(out, format!("{before}*******{after}"));
        }
    }
}
