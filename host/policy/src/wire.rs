//! Where a secret may go on a connection: only inside a sign-in step of a
//! mail protocol, on a connection that has carried nothing but that
//! protocol's pre-authentication traffic, once.
//!
//! A [`WireGuard`] watches one connection: every byte the plugin writes and
//! every byte the server answers. When the plugin asks the host to write a
//! secret, [`WireGuard::authorize`] decides whether the bytes around it are
//! exactly one of the framings below, so that the secret reaches the server
//! as a credential and nowhere else (not as the body of a mail, a mailbox
//! name, a search key, an EHLO name the server logs):
//!
//! | protocol | the plugin writes | the host writes |
//! |---|---|---|
//! | IMAP | `TAG LOGIN user ` | the password as a quoted string, CRLF |
//! | IMAP | `TAG AUTHENTICATE PLAIN` / `XOAUTH2` CRLF, server `+` | the SASL response, CRLF |
//! | IMAP | `TAG AUTHENTICATE PLAIN ` / `XOAUTH2 ` (SASL-IR) | the SASL response, CRLF |
//! | SMTP | `AUTH PLAIN ` / `AUTH XOAUTH2 ` | the SASL response, CRLF |
//! | SMTP, POP3 | `AUTH PLAIN` / `XOAUTH2` CRLF, server `334` / `+` | the SASL response, CRLF |
//! | POP3 | `USER name` CRLF, then `PASS ` | the password, CRLF |
//!
//! Before the step the plugin may have written only IMAP `CAPABILITY`,
//! `STARTTLS`, `ID` (and `AUTHENTICATE` lines), SMTP `EHLO`, `HELO`,
//! `STARTTLS` (and `AUTH` lines), POP3 `CAPA`, `STLS`, `USER` (and `AUTH`
//! lines), each a whole line. After one secret the connection is signed in
//! and takes no other.
//!
//! It decides; it does no I/O.

use crate::secret::SecretEncoding;

/// The mail protocols whose sign-in a secret may travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IMAP4rev1/rev2.
    Imap,
    /// SMTP submission.
    Smtp,
    /// POP3.
    Pop3,
}

impl Protocol {
    const ALL: [Protocol; 3] = [Protocol::Imap, Protocol::Smtp, Protocol::Pop3];

    fn bit(self) -> u8 {
        match self {
            Protocol::Imap => 1,
            Protocol::Smtp => 2,
            Protocol::Pop3 => 4,
        }
    }
}

/// Why a secret write was refused: shown to the plugin, logged and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A secret already went over this connection.
    #[error("a secret was already written on this connection (one sign-in per connection)")]
    AlreadySignedIn,
    /// The plugin wrote something that is not pre-authentication traffic.
    #[error(
        "the connection carried `{0}` before the sign-in; only a protocol's pre-authentication commands may precede it"
    )]
    NotPreAuth(String),
    /// The plugin left a line unfinished before the secret.
    #[error("an unfinished line was written before the sign-in")]
    UnfinishedLine,
    /// The bytes around the secret are not a sign-in step.
    #[error("`{0}` around a secret is not a sign-in step the host allows")]
    NotASignIn(String),
    /// The secret's value cannot travel in this framing.
    #[error("the secret contains a line break or NUL and cannot be written in this framing")]
    UnsafeValue,
}

/// The most of an unfinished line the guard keeps to judge it.
const MAX_LINE: usize = 1024;

/// The state of one connection, as far as secrets are concerned.
#[derive(Debug, Clone)]
pub struct WireGuard {
    /// The protocols every line written so far is pre-authentication traffic of.
    possible: u8,
    /// The first offending line, once there is one.
    offence: Option<String>,
    /// The line being written (not yet ended by LF), cut at `MAX_LINE`.
    partial: Vec<u8>,
    /// Whether anything at all of the current line was written.
    in_line: bool,
    /// The last complete line the plugin wrote.
    last_line: Vec<u8>,
    /// The line the server is sending, cut at `MAX_LINE`.
    reading: Vec<u8>,
    /// Whether the server sent a continuation (`+`, `334`) since the last line written.
    continued: bool,
    signed_in: bool,
}

impl Default for WireGuard {
    fn default() -> Self {
        WireGuard {
            possible: Protocol::ALL.iter().map(|p| p.bit()).sum(),
            offence: None,
            partial: Vec::new(),
            in_line: false,
            last_line: Vec::new(),
            reading: Vec::new(),
            continued: false,
            signed_in: false,
        }
    }
}

impl WireGuard {
    /// A guard for a fresh connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a secret has gone over this connection.
    pub fn signed_in(&self) -> bool {
        self.signed_in
    }

    /// The plugin wrote `data`.
    pub fn wrote(&mut self, data: &[u8]) {
        if self.signed_in {
            return;
        }
        for &b in data {
            self.in_line = true;
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.in_line = false;
                self.line_written(line);
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            } else if self.offence.is_none() {
                self.possible = 0;
                self.offence = Some(shown(&self.partial));
            }
        }
    }

    /// The server sent `data` (as read from the wire, before redaction).
    pub fn read(&mut self, data: &[u8]) {
        if self.signed_in {
            return;
        }
        for &b in data {
            if b == b'\n' {
                let line = std::mem::take(&mut self.reading);
                if line.starts_with(b"+") || line.starts_with(b"334") {
                    self.continued = true;
                }
            } else if self.reading.len() < MAX_LINE {
                self.reading.push(b);
            }
        }
    }

    fn line_written(&mut self, mut line: Vec<u8>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        for p in Protocol::ALL {
            if !pre_auth(p, &line) {
                self.possible &= !p.bit();
            }
        }
        if self.possible == 0 && self.offence.is_none() {
            self.offence = Some(shown(&line));
        }
        self.continued = false;
        self.last_line = line;
    }

    fn possible(&self, p: Protocol) -> bool {
        self.possible & p.bit() != 0
    }

    /// May the host perform a whole sign-in step of `protocol` now? On `Ok`
    /// the connection counts as signed in from then on.
    pub fn begin(&mut self, protocol: Protocol) -> Result<(), Refusal> {
        if self.signed_in {
            return Err(Refusal::AlreadySignedIn);
        }
        if let Some(offence) = &self.offence {
            return Err(Refusal::NotPreAuth(offence.clone()));
        }
        if self.in_line {
            return Err(Refusal::UnfinishedLine);
        }
        if !self.possible(protocol) {
            return Err(Refusal::NotPreAuth(format!(
                "{} (not {protocol:?})",
                shown(&self.last_line)
            )));
        }
        self.signed_in = true;
        Ok(())
    }

    /// May the host write `before`, the secret `value` in `encoding`, then
    /// `after`? On `Ok` the connection counts as signed in from then on.
    pub fn authorize(
        &mut self,
        before: &[u8],
        encoding: &SecretEncoding,
        value: &str,
        after: &[u8],
    ) -> Result<Protocol, Refusal> {
        let protocol = self.judge(before, encoding, value, after)?;
        self.signed_in = true;
        Ok(protocol)
    }

    fn judge(
        &self,
        before: &[u8],
        encoding: &SecretEncoding,
        value: &str,
        after: &[u8],
    ) -> Result<Protocol, Refusal> {
        if self.signed_in {
            return Err(Refusal::AlreadySignedIn);
        }
        if let Some(offence) = &self.offence {
            return Err(Refusal::NotPreAuth(offence.clone()));
        }
        if self.in_line {
            return Err(Refusal::UnfinishedLine);
        }
        let framing = || {
            Refusal::NotASignIn(format!(
                "{}<secret as {}>{}",
                shown(before),
                encoding.name(),
                shown(after)
            ))
        };
        if after != b"\r\n" {
            return Err(framing());
        }
        if matches!(encoding, SecretEncoding::Raw | SecretEncoding::ImapQuoted)
            && value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
        {
            return Err(Refusal::UnsafeValue);
        }
        let sasl = sasl_mechanism(encoding);
        // IMAP LOGIN: `TAG LOGIN user ` + quoted password.
        if self.possible(Protocol::Imap)
            && matches!(encoding, SecretEncoding::ImapQuoted)
            && let [tag, command, rest] = before.splitn(3, |&b| b == b' ').collect::<Vec<_>>()[..]
            && is_tag(tag)
            && command.eq_ignore_ascii_case(b"LOGIN")
            && let Some(user) = rest.strip_suffix(b" ")
            && is_astring(user)
        {
            return Ok(Protocol::Imap);
        }
        let words: Vec<&[u8]> = before.split(|&b| b == b' ').collect();
        if let Some(mechanism) = sasl {
            // IMAP AUTHENTICATE with an initial response (RFC 4959).
            if self.possible(Protocol::Imap)
                && let [tag, command, mech, b""] = words[..]
                && is_tag(tag)
                && command.eq_ignore_ascii_case(b"AUTHENTICATE")
                && mech.eq_ignore_ascii_case(mechanism)
            {
                return Ok(Protocol::Imap);
            }
            // SMTP AUTH with an initial response (RFC 4954).
            if self.possible(Protocol::Smtp)
                && let [command, mech, b""] = words[..]
                && command.eq_ignore_ascii_case(b"AUTH")
                && mech.eq_ignore_ascii_case(mechanism)
            {
                return Ok(Protocol::Smtp);
            }
            // The answer to a continuation after `AUTHENTICATE mech` / `AUTH mech`.
            if before.is_empty() && self.continued {
                let last: Vec<&[u8]> = self.last_line.split(|&b| b == b' ').collect();
                if self.possible(Protocol::Imap)
                    && let [tag, command, mech] = last[..]
                    && is_tag(tag)
                    && command.eq_ignore_ascii_case(b"AUTHENTICATE")
                    && mech.eq_ignore_ascii_case(mechanism)
                {
                    return Ok(Protocol::Imap);
                }
                if let [command, mech] = last[..]
                    && command.eq_ignore_ascii_case(b"AUTH")
                    && mech.eq_ignore_ascii_case(mechanism)
                {
                    for p in [Protocol::Smtp, Protocol::Pop3] {
                        if self.possible(p) {
                            return Ok(p);
                        }
                    }
                }
            }
        }
        // POP3: `USER name` CRLF was the last line, then `PASS ` + password.
        if self.possible(Protocol::Pop3)
            && matches!(encoding, SecretEncoding::Raw)
            && before.eq_ignore_ascii_case(b"PASS ")
            && self.last_line.len() > 5
            && self.last_line[..5].eq_ignore_ascii_case(b"USER ")
        {
            return Ok(Protocol::Pop3);
        }
        Err(framing())
    }
}

/// The SASL mechanism an encoding produces a response for.
fn sasl_mechanism(encoding: &SecretEncoding) -> Option<&'static [u8]> {
    match encoding {
        SecretEncoding::SaslPlain(_) => Some(b"PLAIN"),
        SecretEncoding::Xoauth2(_) => Some(b"XOAUTH2"),
        SecretEncoding::OAuthBearer(_) => Some(b"OAUTHBEARER"),
        SecretEncoding::Raw | SecretEncoding::ImapQuoted | SecretEncoding::Base64 => None,
    }
}

/// Whether `line` (without its line break) is pre-authentication traffic of `p`.
fn pre_auth(p: Protocol, line: &[u8]) -> bool {
    let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let is = |w: &[u8], name: &str| w.eq_ignore_ascii_case(name.as_bytes());
    match p {
        Protocol::Imap => match words[..] {
            [tag, cmd] if is_tag(tag) => is(cmd, "CAPABILITY") || is(cmd, "STARTTLS"),
            [tag, cmd, mech] if is_tag(tag) && is(cmd, "AUTHENTICATE") => is_atom(mech),
            // `ID NIL` or `ID (…)` of quoted strings and NIL, no literal.
            [tag, cmd, ..] if is_tag(tag) && is(cmd, "ID") => {
                let rest = &line[tag.len() + cmd.len() + 2..];
                is(rest, "NIL")
                    || (rest.starts_with(b"(")
                        && rest.ends_with(b")")
                        && !rest.contains(&b'{')
                        && rest.iter().all(|&b| b >= 0x20 && b != 0x7f))
            }
            _ => false,
        },
        Protocol::Smtp => match words[..] {
            [cmd] => is(cmd, "STARTTLS"),
            [cmd, name] if is(cmd, "EHLO") || is(cmd, "HELO") => is_atom(name),
            [cmd, mech] if is(cmd, "AUTH") => is_atom(mech),
            _ => false,
        },
        Protocol::Pop3 => match words[..] {
            [cmd] => is(cmd, "CAPA") || is(cmd, "STLS"),
            [cmd, name] if is(cmd, "USER") => !name.is_empty() && printable(name),
            [cmd, mech] if is(cmd, "AUTH") => is_atom(mech),
            _ => false,
        },
    }
}

fn printable(word: &[u8]) -> bool {
    word.iter().all(|&b| b > 0x20 && b < 0x7f)
}

/// An IMAP atom (RFC 3501): no specials, no controls.
fn is_atom(word: &[u8]) -> bool {
    !word.is_empty()
        && printable(word)
        && !word
            .iter()
            .any(|b| b"(){%*\"\\]".contains(b) || *b == b'\r' || *b == b'\n')
}

/// A command tag: an atom without `+`.
fn is_tag(word: &[u8]) -> bool {
    is_atom(word) && !word.contains(&b'+')
}

/// An IMAP astring without a literal: an atom or a quoted string.
fn is_astring(word: &[u8]) -> bool {
    if is_atom(word) {
        return true;
    }
    let Some(inner) = word.strip_prefix(b"\"").and_then(|w| w.strip_suffix(b"\"")) else {
        return false;
    };
    let mut escaped = false;
    for &b in inner {
        match (escaped, b) {
            (_, 0 | b'\r' | b'\n') => return false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return false,
            _ => escaped = false,
        }
    }
    !escaped
}

/// A line as shown in a refusal: printable, cut short.
fn shown(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "hunter2";

    fn guard(written: &[&[u8]]) -> WireGuard {
        let mut g = WireGuard::new();
        for w in written {
            g.wrote(w);
        }
        g
    }

    fn quoted() -> SecretEncoding {
        SecretEncoding::ImapQuoted
    }

    fn plain() -> SecretEncoding {
        SecretEncoding::SaslPlain("bob".into())
    }

    #[test]
    fn the_sign_ins_of_each_protocol_are_allowed() {
        let mut g = guard(&[b"a1 CAPABILITY\r\n", b"a2 ID (\"name\" \"x\")\r\n"]);
        assert_eq!(
            g.authorize(b"a3 LOGIN \"bob \\\"b\\\" smith\" ", &quoted(), PW, b"\r\n"),
            Ok(Protocol::Imap)
        );
        let mut g = guard(&[b"a1 STARTTLS\r\n", b"a2 AUTHENTICATE PLAIN\r\n"]);
        g.read(b"+ \r\n");
        assert_eq!(g.authorize(b"", &plain(), PW, b"\r\n"), Ok(Protocol::Imap));
        let mut g = guard(&[b"EHLO mailroom\r\n", b"STARTTLS\r\n", b"EHLO mailroom\r\n"]);
        assert_eq!(
            g.authorize(b"AUTH PLAIN ", &plain(), PW, b"\r\n"),
            Ok(Protocol::Smtp)
        );
        let mut g = guard(&[b"EHLO m\r\nAUTH XOAUTH2\r\n"]);
        g.read(b"334 \r\n");
        assert_eq!(
            g.authorize(b"", &SecretEncoding::Xoauth2("bob".into()), PW, b"\r\n"),
            Ok(Protocol::Smtp)
        );
        let mut g = guard(&[b"CAPA\r\n", b"STLS\r\n", b"USER bob\r\n"]);
        assert_eq!(
            g.authorize(b"PASS ", &SecretEncoding::Raw, PW, b"\r\n"),
            Ok(Protocol::Pop3)
        );
        assert!(g.signed_in());
    }

    #[test]
    fn a_whole_step_needs_a_pre_auth_connection_of_its_protocol() {
        let mut g = guard(&[b"a1 CAPABILITY\r\n"]);
        assert!(matches!(
            g.begin(Protocol::Smtp),
            Err(Refusal::NotPreAuth(_))
        ));
        assert_eq!(g.begin(Protocol::Imap), Ok(()));
        assert_eq!(g.begin(Protocol::Imap), Err(Refusal::AlreadySignedIn));
        let mut g = guard(&[b"a1 SELECT INBOX\r\n"]);
        assert!(matches!(
            g.begin(Protocol::Imap),
            Err(Refusal::NotPreAuth(_))
        ));
        let mut g = guard(&[]);
        assert_eq!(g.begin(Protocol::Pop3), Ok(()));
    }

    #[test]
    fn a_second_secret_is_refused() {
        let mut g = guard(&[]);
        assert!(g.authorize(b"a LOGIN bob ", &quoted(), PW, b"\r\n").is_ok());
        g.wrote(b"a2 SELECT INBOX\r\n");
        assert_eq!(
            g.authorize(b"a3 CREATE ", &quoted(), PW, b"\r\n"),
            Err(Refusal::AlreadySignedIn)
        );
        assert_eq!(
            g.authorize(b"a3 LOGIN bob ", &quoted(), PW, b"\r\n"),
            Err(Refusal::AlreadySignedIn)
        );
    }

    #[test]
    fn a_mail_around_the_secret_is_refused() {
        let mut g = guard(&[b"EHLO x\r\n"]);
        let before = b"MAIL FROM:<x@example.test>\r\nRCPT TO:<loot@evil.test>\r\nDATA\r\n";
        assert!(matches!(
            g.authorize(before, &SecretEncoding::Raw, PW, b"\r\n.\r\n"),
            Err(Refusal::NotASignIn(_))
        ));
        // Written first, then a proper AUTH: the connection is no longer pre-auth.
        g.wrote(before);
        assert!(matches!(
            g.authorize(b"AUTH PLAIN ", &plain(), PW, b"\r\n"),
            Err(Refusal::NotPreAuth(line)) if line.starts_with("MAIL FROM")
        ));
    }

    #[test]
    fn other_framings_are_refused() {
        for (written, before, encoding, after) in [
            (&b""[..], &b"a CREATE "[..], quoted(), &b"\r\n"[..]),
            (b"", b"ECHO ", SecretEncoding::Raw, b"\r\n"),
            (b"", b"a LOGIN bob ", quoted(), b" x\r\n"),
            (b"", b"a LOGIN {3}\r\nbob ", quoted(), b"\r\n"),
            (b"", b"a LOGIN \"bo\"b\" ", quoted(), b"\r\n"),
            (b"", b"+ LOGIN bob ", quoted(), b"\r\n"),
            (b"", b"a LOGIN bob ", SecretEncoding::Raw, b"\r\n"),
            (
                b"",
                b"AUTH PLAIN ",
                SecretEncoding::Xoauth2("b".into()),
                b"\r\n",
            ),
            (b"", b"PASS ", SecretEncoding::Raw, b"\r\n"),
            (b"a AUTHENTICATE PLAIN\r\n", b"", plain(), b"\r\n"),
        ] {
            let mut g = guard(&[written]);
            let got = g.authorize(before, &encoding, PW, after);
            assert!(
                matches!(got, Err(Refusal::NotASignIn(_))),
                "{:?}: {got:?}",
                String::from_utf8_lossy(before)
            );
            assert!(!g.signed_in());
        }
    }

    #[test]
    fn an_unfinished_line_or_a_long_one_is_refused() {
        let mut g = guard(&[b"EHLO "]);
        assert_eq!(
            g.authorize(b"AUTH PLAIN ", &plain(), PW, b"\r\n"),
            Err(Refusal::UnfinishedLine)
        );
        let mut g = guard(&[&[b'a'; 5000][..], b"\r\n"]);
        assert!(matches!(
            g.authorize(b"AUTH PLAIN ", &plain(), PW, b"\r\n"),
            Err(Refusal::NotPreAuth(_))
        ));
    }

    #[test]
    fn an_id_with_a_literal_is_not_pre_auth() {
        let mut g = guard(&[b"a ID (\"x\" {40}\r\n"]);
        assert!(matches!(
            g.authorize(b"b LOGIN bob ", &quoted(), PW, b"\r\n"),
            Err(Refusal::NotPreAuth(_))
        ));
    }

    #[test]
    fn a_password_with_a_line_break_is_not_written_raw() {
        let mut g = guard(&[b"USER bob\r\n"]);
        assert_eq!(
            g.authorize(b"PASS ", &SecretEncoding::Raw, "pw\r\nDELE 1", b"\r\n"),
            Err(Refusal::UnsafeValue)
        );
    }

    proptest::proptest! {
        /// Whatever the plugin wrote first, a secret goes at most once, and
        /// never after a line that no protocol allows before sign-in.
        #[test]
        fn at_most_once_and_never_after_other_traffic(
            lines in proptest::collection::vec("[A-Za-z0-9 :<>@.]{0,20}", 0..5)
        ) {
            let mut g = WireGuard::new();
            for l in &lines {
                g.wrote(format!("{l}\r\n").as_bytes());
            }
            let allowed = lines.iter().all(|l| {
                Protocol::ALL.iter().any(|p| pre_auth(*p, l.as_bytes()))
            });
            let first = g.authorize(b"AUTH PLAIN ", &plain(), PW, b"\r\n");
            if !allowed {
                proptest::prop_assert!(first.is_err());
            }
            proptest::prop_assert!(g.authorize(b"AUTH PLAIN ", &plain(), PW, b"\r\n").is_err());
        }
    }
}
