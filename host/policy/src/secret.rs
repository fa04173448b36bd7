//! Credentials a plugin can use but never read.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

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

    /// A redactor for every secret here, in every form the host puts on the
    /// wire and the common forms an echoing server turns it into.
    pub fn redactor(&self) -> Redactor {
        let mut patterns = Vec::new();
        for secret in self.0.values() {
            patterns.extend(forms(secret.expose()));
        }
        Redactor::new(patterns)
    }
}

/// The byte strings under which `value` may come back: as it is, in the
/// encodings the host writes (IMAP quoted, base64 at any alignment, so that
/// it is caught inside a SASL blob or a Basic credential whatever precedes
/// it), and as an echoing server may transform it (JSON and HTML escaping,
/// URL encoding; case is handled by the redactor matching case-blind).
pub fn forms(value: &str) -> Vec<Vec<u8>> {
    if value.is_empty() {
        return Vec::new();
    }
    let mut out = vec![
        value.as_bytes().to_vec(),
        SecretEncoding::ImapQuoted
            .encode(&Secret::new(value))
            .into_bytes(),
    ];
    out.extend(json_forms(value));
    out.extend(html_forms(value));
    out.extend(url_forms(value));
    out.extend(base64_cores(value.as_bytes()));
    out.sort();
    out.dedup();
    out
}

fn json_forms(value: &str) -> Vec<Vec<u8>> {
    let escape = |slash: bool, ascii: bool| {
        let mut s = String::new();
        for c in value.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '/' if slash => s.push_str("\\/"),
                c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        s.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => s.push(c),
            }
        }
        s.into_bytes()
    };
    vec![
        escape(false, false),
        escape(true, false),
        escape(false, true),
        escape(true, true),
    ]
}

fn html_forms(value: &str) -> Vec<Vec<u8>> {
    let escape = |apos: &str| {
        let mut s = String::new();
        for c in value.chars() {
            match c {
                '&' => s.push_str("&amp;"),
                '<' => s.push_str("&lt;"),
                '>' => s.push_str("&gt;"),
                '"' => s.push_str("&quot;"),
                '\'' => s.push_str(apos),
                c => s.push(c),
            }
        }
        s.into_bytes()
    };
    vec![escape("&#39;"), escape("&#x27;"), escape("'")]
}

fn url_forms(value: &str) -> Vec<Vec<u8>> {
    let encode = |keep: &[u8], space_plus: bool| {
        let mut s = Vec::new();
        for &b in value.as_bytes() {
            if b.is_ascii_alphanumeric() || keep.contains(&b) {
                s.push(b);
            } else if b == b' ' && space_plus {
                s.push(b'+');
            } else {
                s.extend(format!("%{b:02X}").into_bytes());
            }
        }
        s
    };
    vec![
        // RFC 3986 unreserved (Python's quote, Go's PathEscape-like).
        encode(b"-._~", false),
        encode(b"-._~", true),
        // JavaScript's encodeURIComponent.
        encode(b"-_.!~*'()", false),
        // WHATWG application/x-www-form-urlencoded.
        encode(b"*-._", true),
    ]
}

/// The shortest base64 core worth matching: shorter ones would blank
/// unrelated base64 text.
const MIN_BASE64_CORE: usize = 6;

/// The base64 characters that depend on `value`'s bytes alone, for each of
/// the three alignments it can have inside a longer encoded string, in the
/// standard and URL-safe alphabets.
fn base64_cores(value: &[u8]) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut out = Vec::new();
    for shift in 0..3usize {
        let mut input = vec![0u8; shift];
        input.extend_from_slice(value);
        input.extend_from_slice(&[0, 0]);
        let bits_from = 8 * shift;
        let bits_to = 8 * (shift + value.len());
        let first = bits_from.div_ceil(6);
        let last = bits_to / 6;
        if last <= first || last - first < MIN_BASE64_CORE {
            continue;
        }
        for encoded in [BASE64.encode(&input), URL_SAFE_NO_PAD.encode(&input)] {
            out.push(encoded.as_bytes()[first..last].to_vec());
        }
    }
    out
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
    /// SASL OAUTHBEARER (RFC 7628) with this user name (base64).
    OAuthBearer(String),
    /// Base64 of the secret alone (SASL LOGIN's password answer).
    Base64,
}

impl SecretEncoding {
    /// Its name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            SecretEncoding::Raw => "raw",
            SecretEncoding::ImapQuoted => "imap-quoted",
            SecretEncoding::SaslPlain(_) => "sasl-plain",
            SecretEncoding::Xoauth2(_) => "xoauth2",
            SecretEncoding::OAuthBearer(_) => "oauthbearer",
            SecretEncoding::Base64 => "base64",
        }
    }

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
            SecretEncoding::OAuthBearer(user) => BASE64.encode(format!(
                "n,a={},\x01auth=Bearer {value}\x01\x01",
                user.replace('=', "=3D").replace(',', "=2C")
            )),
            SecretEncoding::Base64 => BASE64.encode(value),
        }
    }
}

/// The unit the held-back length of an unfinished line is rounded up to.
const HOLD_UNIT: usize = 4096;

/// Blanks known secret byte strings out of a stream read in chunks.
///
/// Matching is ASCII case-blind. Each occurrence is replaced by as many `*`
/// (so protocol byte counts stay right). What is held back between chunks
/// depends only on positions, never on the secrets: everything up to the
/// last line break is released (no pattern spans one), and of the rest all
/// but the last [`HOLD_UNIT`] bytes (or a multiple, for longer patterns). So a secret split across two
/// reads is caught, and a plugin cannot learn whether bytes it had echoed
/// are the beginning of a secret from how much of them came back.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Option<Arc<AhoCorasick>>,
    patterns: Vec<Vec<u8>>,
    longest: usize,
    /// No pattern contains a line break.
    lines: bool,
    pending: Vec<u8>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} patterns)", self.patterns.len())
    }
}

impl Redactor {
    /// A redactor for these byte strings (empty ones are ignored).
    pub fn new(patterns: Vec<Vec<u8>>) -> Self {
        let mut r = Redactor {
            patterns: patterns.into_iter().filter(|p| !p.is_empty()).collect(),
            ..Redactor::default()
        };
        r.build();
        r
    }

    fn build(&mut self) {
        self.patterns.sort();
        self.patterns.dedup();
        self.longest = self.patterns.iter().map(Vec::len).max().unwrap_or(0);
        self.lines = !self.patterns.iter().any(|p| p.contains(&b'\n'));
        self.matcher = if self.patterns.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(&self.patterns)
                .ok()
                .map(Arc::new)
        };
    }

    /// Add more patterns (for example the exact bytes of an encoding written).
    pub fn add(&mut self, pattern: &[u8]) {
        if pattern.is_empty() || self.patterns.iter().any(|p| p == pattern) {
            return;
        }
        self.patterns.push(pattern.to_vec());
        self.build();
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Blank the secrets out of one complete value (a header, a log line).
    pub fn scrub(&self, value: &[u8]) -> Vec<u8> {
        let mut data = value.to_vec();
        self.blank(&mut data);
        data
    }

    /// Whether `value` holds a secret.
    pub fn finds(&self, value: &[u8]) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(|m| m.find(value).is_some())
    }

    /// Feed a chunk; get back what may be released now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.matcher.is_none() {
            return chunk.to_vec();
        }
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(chunk);
        self.blank(&mut data);
        let mut release = data.len().saturating_sub(self.hold());
        if self.lines
            && let Some(nl) = memchr::memrchr(b'\n', &data)
        {
            release = release.max(nl + 1);
        }
        self.pending = data.split_off(release);
        data
    }

    /// How many trailing bytes of an unfinished line are held back: enough
    /// for the longest pattern, rounded up so that it tells nothing of the
    /// secrets' lengths but their order of magnitude.
    fn hold(&self) -> usize {
        self.longest.saturating_sub(1).div_ceil(HOLD_UNIT).max(1) * HOLD_UNIT
    }

    /// Whether bytes are held back, waiting for the next chunk.
    pub fn holds(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The end of the stream: release whatever was held back.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    fn blank(&self, data: &mut [u8]) {
        let Some(matcher) = &self.matcher else {
            return;
        };
        let found: Vec<_> = matcher.find_iter(&*data).map(|m| m.range()).collect();
        for range in found {
            data[range].fill(b'*');
        }
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
            r.patterns.iter().filter(|p| *p == blob.as_bytes()).count(),
            1
        );
        let text = format!("+ {blob} pw\r\n");
        let mut out = r.feed(text.as_bytes());
        out.extend(r.finish());
        let stars = "*".repeat(blob.len());
        assert_eq!(String::from_utf8(out).unwrap(), format!("+ {stars} **\r\n"));
    }

    /// The password inside base64 of anything, whatever its alignment: a
    /// Basic credential for any user name, a SASL PLAIN blob for any user.
    #[test]
    fn base64_at_every_alignment_is_caught() {
        let password = "correct horse battery";
        let mut s = Secrets::new();
        s.insert("password", Secret::new(password));
        let r = s.redactor();
        for user in ["", "b", "bo", "bob", "carol", "dave@example.com"] {
            for (prefix, blob) in [
                (user.len() + 1, BASE64.encode(format!("{user}:{password}"))),
                (
                    user.len() + 2,
                    BASE64.encode(format!("\0{user}\0{password}")),
                ),
                (
                    user.len() + 1,
                    base64::engine::general_purpose::URL_SAFE.encode(format!("{user}:{password}")),
                ),
            ] {
                let out = r.scrub(blob.as_bytes());
                // Every character whose bits come from the password alone is blanked.
                let first = (8 * prefix).div_ceil(6);
                let last = 8 * (prefix + password.len()) / 6;
                assert!(
                    out[first..last].iter().all(|b| *b == b'*'),
                    "{user}: {}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }

    #[test]
    fn what_an_echoing_server_does_to_it_is_caught() {
        let password = "Pa ss/\"w&<rd>é";
        let mut s = Secrets::new();
        s.insert("password", Secret::new(password));
        let r = s.redactor();
        let python_json = "Pa ss/\\\"w&<rd>\\u00e9";
        let js_url = "Pa%20ss%2F%22w%26%3Crd%3E%C3%A9";
        for echoed in [
            password.to_ascii_uppercase(),
            password.to_ascii_lowercase(),
            "Pa ss/\\\"w&<rd>é".to_string(),
            "Pa ss\\/\\\"w&<rd>é".to_string(),
            python_json.to_string(),
            js_url.to_string(),
            js_url.to_lowercase(),
            "Pa+ss%2F%22w%26%3Crd%3E%C3%A9".to_string(),
            "Pa ss/&quot;w&amp;&lt;rd&gt;é".to_string(),
        ] {
            let out = r.scrub(format!("got [{echoed}] ok").as_bytes());
            let out = String::from_utf8_lossy(&out).into_owned();
            let stars = "*".repeat(echoed.len());
            assert_eq!(out, format!("got [{stars}] ok"), "{echoed}");
        }
    }

    #[test]
    fn an_unfinished_line_is_held_only_by_its_length() {
        let mut s = Secrets::new();
        s.insert("password", Secret::new("hunter2"));
        let mut r = s.redactor();
        // A complete line is released whole, at once.
        assert_eq!(r.feed(b"* OK hunt\r\n"), b"* OK hunt\r\n");
        assert!(!r.holds());
    }

    proptest::proptest! {
        /// How much of a chunk comes back at once never depends on whether
        /// it begins a secret: a plugin that has a server echo its guesses
        /// learns nothing from what is held back.
        #[test]
        fn what_is_held_back_does_not_depend_on_the_secret(
            guess in "[a-z0-9]{1,12}", newline in proptest::bool::ANY
        ) {
            let mut s = Secrets::new();
            s.insert("password", Secret::new("hunter2-secret"));
            let mut with = s.redactor();
            let mut other = Secrets::new();
            other.insert("password", Secret::new("zzzzzzzzzzzzzz"));
            let mut without = other.redactor();
            let chunk = format!("* BAD {guess}{}", if newline { "\r\n" } else { "" });
            proptest::prop_assert_eq!(
                with.feed(chunk.as_bytes()).len(),
                without.feed(chunk.as_bytes()).len()
            );
        }

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
