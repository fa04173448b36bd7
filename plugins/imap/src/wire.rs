//! The IMAP conversation on one host connection: tagged commands out,
//! framed and decoded responses in.
//!
//! Decoding is imap-codec's `ResponseCodec`; commands are imap-types values
//! encoded by its `CommandCodec`. The one thing done here is framing: finding
//! where a response ends (a line, and for each `{n}` that ends a line, `n`
//! literal bytes and another line) in a flat buffer, so that a mailbox's worth
//! of bytes is not moved byte by byte. This module knows nothing about
//! mailboxes or cursors.

use std::borrow::Cow;

use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Data, Response, Status, StatusBody, StatusKind};
use imap_codec::{CommandCodec, ResponseCodec};

use crate::net::{Link, NetFailure};

/// The largest response the plugin accepts (one FETCH with one message).
const MAX_RESPONSE: u32 = 96 << 20;
/// How much one read asks the host for.
const READ_CHUNK: u32 = 256 * 1024;

/// Why the conversation failed.
#[derive(Debug)]
pub enum WireError {
    /// The connection failed.
    Net(NetFailure),
    /// The server closed the connection (`BYE` or end of stream).
    Closed(String),
    /// The server said something the plugin cannot follow.
    Protocol(String),
}

impl From<NetFailure> for WireError {
    fn from(e: NetFailure) -> Self {
        WireError::Net(e)
    }
}

/// One decoded response, owned.
pub enum Reply {
    /// `+ …`: the server waits for the rest of a command.
    Continue,
    /// Untagged data.
    Data(Data<'static>),
    /// An untagged status (`* OK [UIDVALIDITY 3] …`).
    Untagged(StatusBody<'static>),
    /// The completion of the command with this tag; `line` is its text.
    Done {
        tag: String,
        kind: StatusKind,
        body: StatusBody<'static>,
        line: String,
    },
    /// A response imap-codec could not decode; its framing was intact, so the
    /// conversation goes on. The text is a short, printable excerpt.
    Unreadable(String),
    /// `* BYE …`: the server is closing the connection; its text.
    Bye(String),
}

impl Reply {
    /// The outcome, when this completes the command tagged `tag`.
    pub fn completes(self, tag: &str) -> Result<Outcome, Reply> {
        match self {
            Reply::Done {
                tag: t,
                kind,
                body,
                line,
            } if t == tag => Ok(Outcome { kind, body, line }),
            other => Err(other),
        }
    }
}

/// The outcome of a tagged command.
pub struct Outcome {
    /// OK, NO or BAD.
    pub kind: StatusKind,
    /// The status, with its response code.
    pub body: StatusBody<'static>,
    /// The server's completion line (without the tag), for messages to users.
    pub line: String,
}

impl Outcome {
    /// Whether the command succeeded.
    pub fn ok(&self) -> bool {
        self.kind == StatusKind::Ok
    }
}

/// An IMAP conversation.
pub struct Wire {
    link: Link,
    /// Bytes read and not yet handed out; responses start at `start`.
    buf: Vec<u8>,
    start: usize,
    next_tag: u32,
}

/// Where the response starting at `buf[0]` ends: `Some(len)` once complete,
/// `None` while more bytes are needed. A line ending in `{n}` or `{n+}`
/// announces `n` literal bytes, after which the response goes on with
/// another line. `Err` when it grows past the limit.
fn frame(buf: &[u8], limit: usize) -> Result<Option<usize>, usize> {
    let mut at = 0;
    loop {
        let Some(nl) = buf[at..].iter().position(|b| *b == b'\n') else {
            return if buf.len() > limit {
                Err(buf.len())
            } else {
                Ok(None)
            };
        };
        let line_end = at + nl + 1;
        match literal_length(&buf[at..line_end]) {
            None => return Ok(Some(line_end)),
            Some(n) => {
                at = line_end + n;
                if at > limit {
                    return Err(at);
                }
                if at > buf.len() {
                    return Ok(None);
                }
            }
        }
    }
}

/// The `n` of a line ending in `{n}\r\n` (or `{n+}`, or a bare `\n`).
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").unwrap_or(line);
    let open = line.iter().rposition(|b| *b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Wire {
    /// Start a conversation on an open link.
    pub fn new(link: Link) -> Self {
        Wire {
            link,
            buf: Vec::new(),
            start: 0,
            next_tag: 1,
        }
    }

    /// Whether bytes were read beyond the responses handed out so far.
    pub fn buffered(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Have the host perform the sign-in `step` (tagged `tag`) and read its
    /// outcome from the answers the host hands back.
    pub fn sign_in(
        &mut self,
        tag: &str,
        step: &crate::bindings::mailroom::provider::net::SignIn,
    ) -> Result<Outcome, WireError> {
        let answer = self.link.authenticate(step)?;
        self.buf.extend_from_slice(&answer);
        self.finish(tag, |_| Ok(()))
    }

    /// The underlying link (for STARTTLS).
    pub fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// A fresh tag.
    pub fn tag(&mut self) -> String {
        let tag = format!("M{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Send a command without waiting for its completion; returns its tag.
    pub fn send(&mut self, body: CommandBody<'_>) -> Result<String, WireError> {
        let tag = self.tag();
        let command = Command::new(Tag::try_from(tag.as_str()).map_err(protocol)?, body)
            .map_err(|e| WireError::Protocol(format!("invalid command: {e}")))?;
        let bytes = CommandCodec::default().encode(&command).dump();
        self.link.write(&bytes)?;
        Ok(tag)
    }

    /// Write bytes as they are (continuations, hand-built lines).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        Ok(self.link.write(bytes)?)
    }

    /// Read the next response.
    pub fn next(&mut self) -> Result<Reply, WireError> {
        loop {
            match frame(&self.buf[self.start..], MAX_RESPONSE as usize) {
                Ok(Some(len)) => {
                    let range = self.start..self.start + len;
                    self.start += len;
                    return Ok(decode(&self.buf[range]));
                }
                Ok(None) => {}
                Err(size) => {
                    return Err(WireError::Protocol(format!(
                        "a response of over {} MB",
                        size >> 20
                    )));
                }
            }
            if self.start > 0 {
                // Keep the buffer from growing: drop what was handed out.
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let bytes = self.link.read(READ_CHUNK)?;
            if bytes.is_empty() {
                return Err(WireError::Closed("the server closed the connection".into()));
            }
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// Read until the completion of `tag`, handing every other response to `each`.
    pub fn finish(
        &mut self,
        tag: &str,
        mut each: impl FnMut(Reply) -> Result<(), WireError>,
    ) -> Result<Outcome, WireError> {
        loop {
            match self.next()?.completes(tag) {
                Ok(outcome) => return Ok(outcome),
                Err(Reply::Bye(text)) => return Err(WireError::Closed(format!("BYE {text}"))),
                Err(other) => each(other)?,
            }
        }
    }

    /// Send a command and wait for its completion, collecting untagged data.
    pub fn run(&mut self, body: CommandBody<'_>) -> Result<(Outcome, Vec<Reply>), WireError> {
        let tag = self.send(body)?;
        let mut replies = Vec::new();
        let outcome = self.finish(&tag, |r| {
            replies.push(r);
            Ok(())
        })?;
        Ok((outcome, replies))
    }
}

/// Decode one framed response with imap-codec.
fn decode(message: &[u8]) -> Reply {
    match ResponseCodec::default().decode(message) {
        Ok((_, Response::CommandContinuationRequest(_))) => Reply::Continue,
        Ok((_, Response::Data(data))) => Reply::Data(data.into_static()),
        Ok((_, Response::Status(Status::Untagged(body)))) => Reply::Untagged(body.into_static()),
        Ok((_, Response::Status(Status::Bye(bye)))) => Reply::Bye(bye.text.to_string()),
        Ok((_, Response::Status(Status::Tagged(tagged)))) => {
            let line = excerpt(message);
            let line = line
                .split_once(' ')
                .map_or(line.clone(), |(_, rest)| rest.to_string());
            Reply::Done {
                tag: tagged.tag.inner().to_string(),
                kind: tagged.body.kind,
                body: tagged.body.into_static(),
                line,
            }
        }
        Err(_) => Reply::Unreadable(excerpt(message)),
    }
}

fn protocol(e: impl std::fmt::Display) -> WireError {
    WireError::Protocol(e.to_string())
}

/// The first line of a response, printable and short.
fn excerpt(bytes: &[u8]) -> String {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let text: Cow<'_, str> = String::from_utf8_lossy(&line[..line.len().min(200)]);
    text.trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines_and_literals() {
        let fetch = b"* 1 FETCH (UID 7 BODY[] {5}\r\nab}\r\n)\r\n* OK x\r\n";
        assert_eq!(frame(fetch, 1000), Ok(Some(fetch.len() - 8)));
        assert_eq!(frame(&fetch[..20], 1000), Ok(None));
        assert_eq!(frame(&fetch[..33], 1000), Ok(None));
        assert_eq!(frame(b"M1 OK done\r\n", 1000), Ok(Some(12)));
        assert_eq!(frame(b"* 1 FETCH (BODY[] {999999}\r\n", 100), Err(1000027));
    }

    #[test]
    fn literal_announcements() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {42}\r\n"), Some(42));
        assert_eq!(literal_length(b"A APPEND x {3+}\r\n"), Some(3));
        assert_eq!(literal_length(b"* OK {x}\r\n"), None);
        assert_eq!(literal_length(b"* OK done\r\n"), None);
    }
}
