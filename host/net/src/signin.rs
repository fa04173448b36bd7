//! Sign-in steps the host performs whole on a plugin's connection
//! (`net.connection.authenticate`): the command, its continuations and the
//! secret in the mechanism's encoding are written by the host, and the
//! server's answers are read up to the step's outcome and handed back,
//! redacted. The plugin chooses the protocol, the mechanism, the tag and the
//! user name; never a byte around the secret.
//!
//! It must not decide whether a secret may be used on a connection (that is
//! [`crate::stream`]'s binding and encryption check and the wire guard).

use mailroom_contract::v1::net::{NetError, SignIn, SignInMechanism, SignInProtocol};
use mailroom_policy::{Protocol, Secret, SecretEncoding};

use crate::stream::Conn;

/// The longest answer line read during a sign-in.
const MAX_LINE: usize = 16 * 1024;
/// The most answer bytes handed back.
const MAX_ANSWER: usize = 64 * 1024;

/// How the outcome of a step is recognised.
enum End {
    /// IMAP: the completion with this tag.
    Tagged(String),
    /// SMTP: a final reply (`NNN text`), not `334` and not `NNN-`.
    Smtp,
    /// POP3: `+OK` or `-ERR` (with `+OK` going on to the next answer where
    /// one is left, as after `USER`).
    Pop3,
}

/// A whole step, ready to be written.
pub(crate) struct Plan {
    /// The protocol, for the wire guard.
    pub(crate) protocol: Protocol,
    first: Vec<u8>,
    answers: Vec<Vec<u8>>,
    /// The answer to a continuation once `answers` are used: it ends the
    /// exchange (XOAUTH2 and OAUTHBEARER report failure as a challenge).
    cancel: Vec<u8>,
    end: End,
    /// The forms of the secret written, for the redactor.
    pub(crate) written: Vec<String>,
}

fn line(text: impl AsRef<[u8]>) -> Vec<u8> {
    let mut l = text.as_ref().to_vec();
    l.extend_from_slice(b"\r\n");
    l
}

fn clean(what: &str, value: &str) -> Result<(), String> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("the sign-in's {what} contains a line break or NUL"));
    }
    Ok(())
}

/// An IMAP quoted string.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Plan `step` with the secret's `value`; `Err` says what is wrong with the
/// plugin's request.
pub(crate) fn plan(step: &SignIn, value: &Secret) -> Result<Plan, String> {
    use SignInMechanism as M;
    clean("user name", &step.user)?;
    let user = step.user.clone();
    let protocol = match step.protocol {
        SignInProtocol::Imap => Protocol::Imap,
        SignInProtocol::Smtp => Protocol::Smtp,
        SignInProtocol::Pop3 => Protocol::Pop3,
    };
    let tag = match (&step.protocol, &step.tag) {
        (SignInProtocol::Imap, Some(tag))
            if !tag.is_empty()
                && tag.len() <= 32
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') =>
        {
            Some(tag.clone())
        }
        (SignInProtocol::Imap, _) => {
            return Err("an IMAP sign-in needs a tag of 1-32 letters, digits and dots".into());
        }
        (_, Some(_)) => return Err("only an IMAP sign-in takes a tag".into()),
        (_, None) => None,
    };
    let sasl = match step.mechanism {
        M::PasswordCommand => None,
        M::Plain => Some(("PLAIN", SecretEncoding::SaslPlain(user.clone()))),
        M::Login => Some(("LOGIN", SecretEncoding::Base64)),
        M::Xoauth2 => Some(("XOAUTH2", SecretEncoding::Xoauth2(user.clone()))),
        M::Oauthbearer => Some(("OAUTHBEARER", SecretEncoding::OAuthBearer(user.clone()))),
    };
    let cancel = match step.mechanism {
        M::Xoauth2 => line(""),
        M::Oauthbearer => line("AQ=="),
        _ => line("*"),
    };
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let (first, answers, written) = match (protocol, sasl) {
        (Protocol::Imap, None) => {
            clean("password", value.expose())?;
            let pw = quoted(value.expose());
            let tag = tag.as_deref().unwrap_or_default();
            let first = line(format!("{tag} LOGIN {} {pw}", quoted(&user)));
            (first, vec![], vec![pw])
        }
        (Protocol::Pop3, None) => {
            clean("password", value.expose())?;
            if user.contains(' ') {
                return Err("a POP3 user name has no spaces".into());
            }
            let pass = line(format!("PASS {}", value.expose()));
            (line(format!("USER {user}")), vec![pass], vec![])
        }
        (Protocol::Smtp, None) => {
            return Err(
                "SMTP has no password command: sign in with plain, login, xoauth2 or oauthbearer"
                    .into(),
            );
        }
        (_, Some(("LOGIN", encoding))) => {
            let blob = encoding.encode(value);
            let start = match &tag {
                Some(tag) => format!("{tag} AUTHENTICATE LOGIN"),
                None => "AUTH LOGIN".into(),
            };
            (line(start), vec![line(b64(&user)), line(&blob)], vec![blob])
        }
        (_, Some((mechanism, encoding))) => {
            let blob = encoding.encode(value);
            match (&tag, protocol) {
                (Some(tag), _) => (
                    line(format!("{tag} AUTHENTICATE {mechanism}")),
                    vec![line(&blob)],
                    vec![blob],
                ),
                // SMTP takes the response with the command (RFC 4954).
                (None, Protocol::Smtp) => {
                    (line(format!("AUTH {mechanism} {blob}")), vec![], vec![blob])
                }
                (None, _) => (
                    line(format!("AUTH {mechanism}")),
                    vec![line(&blob)],
                    vec![blob],
                ),
            }
        }
    };
    let end = match (protocol, tag) {
        (Protocol::Imap, Some(tag)) => End::Tagged(tag),
        (Protocol::Smtp, _) => End::Smtp,
        _ => End::Pop3,
    };
    let mut written = written;
    written.push(value.expose().to_string());
    Ok(Plan {
        protocol,
        first,
        answers,
        cancel,
        end,
        written,
    })
}

/// What one answer line means to the step.
#[derive(Debug, PartialEq, Eq)]
enum Said {
    /// The outcome: the step is over.
    Done,
    /// The server waits for the next answer.
    Continue,
    /// Something else (untagged data, a line of a multi-line reply).
    Info,
}

fn said(end: &End, line: &[u8], answers_left: bool) -> Said {
    match end {
        End::Tagged(tag) => {
            if line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
                Said::Done
            } else if line.starts_with(b"+") {
                Said::Continue
            } else {
                Said::Info
            }
        }
        End::Smtp => match line.get(3) {
            Some(b'-') => Said::Info,
            _ if line.starts_with(b"334") => Said::Continue,
            _ => Said::Done,
        },
        End::Pop3 => {
            if line.starts_with(b"+OK") && answers_left {
                Said::Continue
            } else if line.starts_with(b"+OK") || line.starts_with(b"-ERR") {
                Said::Done
            } else if line.starts_with(b"+") {
                Said::Continue
            } else {
                Said::Info
            }
        }
    }
}

/// Write the step and read the server's answers up to its outcome.
pub(crate) async fn perform(conn: &mut Conn, plan: &Plan) -> Result<Vec<u8>, NetError> {
    conn.send(&plan.first).await?;
    let mut answers = plan.answers.iter();
    let mut cancelled = false;
    let mut out = Vec::new();
    loop {
        let got = conn.read_line(MAX_LINE).await?;
        out.extend_from_slice(&got);
        if out.len() > MAX_ANSWER {
            return Err(NetError::Connection(
                "the server's answer to the sign-in is too long".into(),
            ));
        }
        match said(&plan.end, &got, answers.len() > 0) {
            Said::Done => return Ok(out),
            Said::Info => {}
            Said::Continue => match answers.next() {
                Some(answer) => conn.send(answer).await?,
                None if !cancelled => {
                    cancelled = true;
                    conn.send(&plan.cancel).await?;
                }
                None => {
                    return Err(NetError::Connection(
                        "the server asked for more than the sign-in has".into(),
                    ));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(protocol: SignInProtocol, mechanism: SignInMechanism, tag: Option<&str>) -> SignIn {
        SignIn {
            protocol,
            mechanism,
            tag: tag.map(str::to_string),
            user: "bob".into(),
            secret: "password".into(),
        }
    }

    #[test]
    fn each_protocol_writes_its_own_command() {
        let pw = Secret::new("p\"w");
        let imap = plan(
            &step(
                SignInProtocol::Imap,
                SignInMechanism::PasswordCommand,
                Some("A1"),
            ),
            &pw,
        )
        .unwrap();
        assert_eq!(imap.first, b"A1 LOGIN \"bob\" \"p\\\"w\"\r\n");
        let smtp = plan(
            &step(SignInProtocol::Smtp, SignInMechanism::Plain, None),
            &pw,
        )
        .unwrap();
        assert!(smtp.first.starts_with(b"AUTH PLAIN AGJvYgBwIn"));
        assert!(smtp.answers.is_empty());
        let pop = plan(
            &step(SignInProtocol::Pop3, SignInMechanism::PasswordCommand, None),
            &pw,
        )
        .unwrap();
        assert_eq!(pop.first, b"USER bob\r\n");
        assert_eq!(pop.answers, vec![b"PASS p\"w\r\n".to_vec()]);
        let login = plan(
            &step(SignInProtocol::Imap, SignInMechanism::Login, Some("a")),
            &pw,
        )
        .unwrap();
        assert_eq!(login.first, b"a AUTHENTICATE LOGIN\r\n");
        assert_eq!(login.answers[0], b"Ym9i\r\n");
    }

    #[test]
    fn bad_requests_are_refused() {
        let pw = Secret::new("pw");
        for (s, why) in [
            (
                step(SignInProtocol::Imap, SignInMechanism::Plain, None),
                "tag",
            ),
            (
                step(SignInProtocol::Imap, SignInMechanism::Plain, Some("a b")),
                "tag",
            ),
            (
                step(SignInProtocol::Smtp, SignInMechanism::Plain, Some("a")),
                "tag",
            ),
            (
                step(SignInProtocol::Smtp, SignInMechanism::PasswordCommand, None),
                "no password command",
            ),
        ] {
            let got = plan(&s, &pw).err().unwrap_or_default();
            assert!(got.contains(why), "{got}");
        }
        let mut s = step(SignInProtocol::Imap, SignInMechanism::Plain, Some("a"));
        s.user = "bob\r\na2 DELETE INBOX".into();
        assert!(plan(&s, &pw).is_err());
        let s = step(SignInProtocol::Pop3, SignInMechanism::PasswordCommand, None);
        assert!(plan(&s, &Secret::new("pw\r\nDELE 1")).is_err());
    }

    #[test]
    fn outcomes_are_recognised() {
        let tagged = End::Tagged("A1".into());
        assert_eq!(
            said(&tagged, b"* CAPABILITY IMAP4rev1\r\n", false),
            Said::Info
        );
        assert_eq!(said(&tagged, b"+ \r\n", false), Said::Continue);
        assert_eq!(
            said(&tagged, b"A1 NO [AUTHENTICATIONFAILED] no\r\n", false),
            Said::Done
        );
        assert_eq!(said(&tagged, b"A10 OK\r\n", false), Said::Info);
        assert_eq!(said(&End::Smtp, b"250-AUTH PLAIN\r\n", false), Said::Info);
        assert_eq!(said(&End::Smtp, b"334 eyJ9\r\n", false), Said::Continue);
        assert_eq!(said(&End::Smtp, b"235 2.7.0 ok\r\n", false), Said::Done);
        assert_eq!(said(&End::Pop3, b"+OK send PASS\r\n", true), Said::Continue);
        assert_eq!(said(&End::Pop3, b"+OK logged in\r\n", false), Said::Done);
        assert_eq!(said(&End::Pop3, b"-ERR no\r\n", true), Said::Done);
        assert_eq!(said(&End::Pop3, b"+ \r\n", false), Said::Continue);
    }
}
