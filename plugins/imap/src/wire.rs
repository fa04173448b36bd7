//! The IMAP conversation on one host connection: tagged commands out,
//! framed and decoded responses in.
//!
//! Framing (lines and literals) is imap-codec's `Fragmentizer`; decoding is its
//! `ResponseCodec`; commands are imap-types values encoded by its
//! `CommandCodec`. This module knows nothing about mailboxes or cursors.

use std::borrow::Cow;

use imap_codec::fragmentizer::Fragmentizer;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Data, Response, Status, StatusBody, StatusKind};
use imap_codec::encode::Encoder;
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
    frag: Fragmentizer,
    next_tag: u32,
}

impl Wire {
    /// Start a conversation on an open link.
    pub fn new(link: Link) -> Self {
        Wire {
            link,
            frag: Fragmentizer::new(MAX_RESPONSE),
            next_tag: 1,
        }
    }

    /// The underlying link (for STARTTLS and secret writes).
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
            match self.frag.progress() {
                Some(_) if self.frag.is_message_complete() => return Ok(self.decode()),
                Some(_) => {}
                None => {
                    let bytes = self.link.read(READ_CHUNK)?;
                    if bytes.is_empty() {
                        return Err(WireError::Closed(
                            "the server closed the connection".into(),
                        ));
                    }
                    self.frag.enqueue_bytes(&bytes);
                }
            }
        }
    }

    fn decode(&self) -> Reply {
        match self.frag.decode_message(&ResponseCodec::default()) {
            Ok(Response::CommandContinuationRequest(_)) => Reply::Continue,
            Ok(Response::Data(data)) => Reply::Data(data.into_static()),
            Ok(Response::Status(Status::Untagged(body))) => Reply::Untagged(body.into_static()),
            Ok(Response::Status(Status::Bye(bye))) => {
                Reply::Unreadable(format!("BYE {}", bye.text))
            }
            Ok(Response::Status(Status::Tagged(tagged))) => {
                let line = excerpt(self.frag.message_bytes());
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
            Err(_) => Reply::Unreadable(excerpt(self.frag.message_bytes())),
        }
    }

    /// Read until the completion of `tag`, handing every other response to `each`.
    pub fn finish(
        &mut self,
        tag: &str,
        mut each: impl FnMut(Reply) -> Result<(), WireError>,
    ) -> Result<Outcome, WireError> {
        loop {
            match self.next()? {
                Reply::Done {
                    tag: t,
                    kind,
                    body,
                    line,
                } if t == tag => return Ok(Outcome { kind, body, line }),
                Reply::Unreadable(text) if text.starts_with("BYE ") => {
                    return Err(WireError::Closed(text));
                }
                other => each(other)?,
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
