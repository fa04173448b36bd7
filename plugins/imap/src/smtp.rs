//! SMTP submission (RFC 6409) over the host's streams: EHLO, STARTTLS, AUTH
//! with the secret written by the host, MAIL, RCPT, DATA.
//!
//! Reply syntax is smtp-proto's (Stalwart's SMTP parser); this module only
//! drives the exchange.

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{AUTH_PLAIN, AUTH_XOAUTH2, EXT_START_TLS, EhloResponse};

use crate::bindings::exports::mailroom::provider::provider::Outgoing;
use crate::bindings::mailroom::provider::net::{NetError, SignIn, SignInMechanism, SignInProtocol};
use crate::bindings::mailroom::provider::types::{MessageFailure, ProviderError};
use crate::client::net_error;
use crate::net::Link;
use crate::settings::{Login, OAUTH_TOKEN, PASSWORD, Server, Settings, Transport, bad_config};

/// One reply: its code and text (lines joined).
struct Reply {
    code: u16,
    text: String,
    /// The reply as received, for EHLO's capability lines.
    raw: Vec<u8>,
}

impl Reply {
    fn line(&self) -> String {
        format!(
            "{} {}",
            self.code,
            self.text.replace(['\r', '\n'], " ").trim()
        )
    }
}

struct Smtp {
    link: Link,
    buf: Vec<u8>,
}

fn unreachable(why: String) -> ProviderError {
    ProviderError::Unreachable(format!("SMTP: {why}"))
}

impl Smtp {
    fn read(&mut self) -> Result<Reply, ProviderError> {
        let mut receiver = ResponseReceiver::default();
        let mut start = 0;
        loop {
            let mut iter = self.buf[start..].iter();
            match receiver.parse(&mut iter) {
                Ok(response) => {
                    let used = self.buf.len() - iter.len();
                    let raw = self.buf[..used].to_vec();
                    self.buf.drain(..used);
                    return Ok(Reply {
                        code: response.code,
                        text: response.message,
                        raw,
                    });
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => {
                    start = self.buf.len();
                    let more = self.link.read(64 * 1024).map_err(net_error)?;
                    if more.is_empty() {
                        return Err(unreachable("the server closed the connection".into()));
                    }
                    self.buf.extend_from_slice(&more);
                }
                Err(e) => {
                    return Err(ProviderError::Other(format!(
                        "SMTP: unreadable reply ({e:?})"
                    )));
                }
            }
        }
    }

    fn command(&mut self, line: &str) -> Result<Reply, ProviderError> {
        self.link
            .write(format!("{line}\r\n").as_bytes())
            .map_err(net_error)?;
        self.read()
    }

    fn expect(&mut self, line: &str, ok: u16) -> Result<Reply, ProviderError> {
        let reply = self.command(line)?;
        if reply.code / 100 != ok / 100 {
            let verb = line.split([' ', ':']).next().unwrap_or(line);
            return Err(failure(
                reply.code,
                format!("{verb} refused: {}", reply.line()),
            ));
        }
        Ok(reply)
    }

    fn ehlo(&mut self) -> Result<EhloResponse<String>, ProviderError> {
        let reply = self.expect("EHLO mailroom", 250)?;
        EhloResponse::parse(&mut reply.raw.iter())
            .map_err(|e| ProviderError::Other(format!("SMTP: unreadable EHLO reply ({e:?})")))
    }
}

/// 4xx is temporary; 5xx permanent.
fn failure(code: u16, why: String) -> ProviderError {
    if code / 100 == 4 {
        ProviderError::Unreachable(format!("SMTP: {why}"))
    } else {
        ProviderError::Other(format!("SMTP: {why}"))
    }
}

/// The message with CRLF line ends and leading dots doubled, ended by `.`.
fn data(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40 + 5);
    let mut line_start = true;
    let mut prev = 0u8;
    for &b in raw {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        line_start = b == b'\n';
        prev = b;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn mailbox(address: &str, field: &str) -> Result<String, ProviderError> {
    if address.is_empty() || address.bytes().any(|b| b <= b' ' || b == b'<' || b == b'>') {
        return Err(bad_config(
            field,
            format!("`{address}` is not an email address"),
        ));
    }
    Ok(format!("<{address}>"))
}

/// Submit `message` through the account's SMTP server.
pub fn send(settings: &Settings, message: &Outgoing) -> Result<(), ProviderError> {
    let Some(Server {
        host,
        port,
        transport,
    }) = settings.smtp.clone()
    else {
        return Err(bad_config(
            "smtp_host",
            "an SMTP server is needed to send mail",
        ));
    };
    if message.recipients.is_empty() {
        return Err(ProviderError::Other(
            "SMTP: the message has no recipient".into(),
        ));
    }
    let link = Link::open(&host, port, transport).map_err(net_error)?;
    let mut smtp = Smtp {
        link,
        buf: Vec::new(),
    };
    let greeting = smtp.read()?;
    if greeting.code != 220 {
        return Err(unreachable(format!(
            "the server refused the connection: {}",
            greeting.line()
        )));
    }
    let mut ehlo = smtp.ehlo()?;
    if transport == Transport::StartTls {
        if ehlo.capabilities & EXT_START_TLS == 0 {
            return Err(bad_config(
                "smtp_security",
                "the server does not offer STARTTLS on this port; use `tls` (usually port 465)",
            ));
        }
        smtp.expect("STARTTLS", 220)?;
        // What came after the 220 came in plaintext: never built on.
        if !smtp.buf.is_empty() {
            return Err(unreachable(
                "the SMTP server sent more than its answer to STARTTLS before the TLS upgrade \
                 (injected plaintext?); not going on"
                    .into(),
            ));
        }
        smtp.link.start_tls().map_err(net_error)?;
        ehlo = smtp.ehlo()?;
    }
    let user = settings.username.clone();
    let (mechanism, name, secret, flag) = match settings.login {
        Login::Password => (SignInMechanism::Plain, "PLAIN", PASSWORD, AUTH_PLAIN),
        Login::OAuth => (
            SignInMechanism::Xoauth2,
            "XOAUTH2",
            OAUTH_TOKEN,
            AUTH_XOAUTH2,
        ),
    };
    if ehlo.auth_mechanisms & flag == 0 {
        return Err(bad_config(
            "smtp_security",
            format!("the SMTP server does not offer AUTH {name} on this connection"),
        ));
    }
    let step = SignIn {
        protocol: SignInProtocol::Smtp,
        mechanism,
        tag: None,
        user: user.clone(),
        secret: secret.into(),
    };
    let answer = smtp.link.authenticate(&step).map_err(|n| match n.error {
        // The host refuses to write a secret into an unencrypted connection.
        NetError::Denied(_) => bad_config("smtp_security", format!("{n}; use `starttls` or `tls`")),
        _ => net_error(n),
    })?;
    smtp.buf.extend_from_slice(&answer);
    let reply = smtp.read()?;
    match reply.code {
        235 => {}
        454 => {
            return Err(unreachable(format!(
                "sign-in failed for now: {}",
                reply.line()
            )));
        }
        _ => {
            return Err(ProviderError::AuthFailed(format!(
                "the SMTP server refused the sign-in for `{user}` ({})",
                reply.line()
            )));
        }
    }
    smtp.expect(
        &format!("MAIL FROM:{}", mailbox(&message.sender, "sender")?),
        250,
    )?;
    for rcpt in &message.recipients {
        let reply = smtp.command(&format!("RCPT TO:{}", mailbox(rcpt, "recipients")?))?;
        if reply.code / 100 != 2 {
            return Err(ProviderError::MessageFailed(MessageFailure {
                id: rcpt.clone(),
                why: format!(
                    "the server refused the recipient `{rcpt}`: {}",
                    reply.line()
                ),
            }));
        }
    }
    smtp.expect("DATA", 354)?;
    smtp.link.write(&data(&message.raw)).map_err(net_error)?;
    let done = smtp.read()?;
    if done.code / 100 != 2 {
        return Err(failure(
            done.code,
            format!("the message was refused: {}", done.line()),
        ));
    }
    let _ = smtp.command("QUIT");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_dot_stuffed_and_crlf_terminated() {
        assert_eq!(data(b"a\n.b\r\n..c"), b"a\r\n..b\r\n...c\r\n.\r\n".to_vec());
        assert_eq!(data(b"x\r\n"), b"x\r\n.\r\n".to_vec());
    }
}
