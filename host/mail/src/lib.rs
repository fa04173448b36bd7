//! `mailroom-mail`: what a raw message says, in the form the CRM compares.
//!
//! It parses MIME with `mail-parser` and returns the participants (From,
//! Sender, To, Cc, Bcc, Reply-To) with normalised addresses, the identity
//! keys that deduplicate a message across accounts and folders (Message-ID,
//! a content hash for missing or reused ids), the ids threading follows
//! (In-Reply-To, References), and a text body. It also composes outgoing
//! messages (`mail-builder`). It is pure: no database, no contacts, no I/O;
//! matching and storing are `mailroom-crm`'s.

mod address;
mod compose;

use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

pub use address::{address_hash, normalize_address};
pub use compose::{Composed, Draft, compose};

/// The most body text kept per message, in bytes.
pub const BODY_LIMIT: usize = 256 * 1024;

/// The most HTML body kept per message, in bytes; a longer one is dropped
/// (the text body stands in for it).
pub const HTML_LIMIT: usize = 1024 * 1024;

/// An attachment as a reader sees it listed: never its content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The file name the sender gave, or `attachment-N`.
    pub name: String,
    /// The decoded size in bytes.
    pub size: u64,
    /// The MIME type, e.g. `application/pdf`.
    pub content_type: String,
}

/// Which header an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `From`.
    From,
    /// `Sender`.
    Sender,
    /// `To`.
    To,
    /// `Cc`.
    Cc,
    /// `Bcc` (present on the sender's copy).
    Bcc,
    /// `Reply-To`.
    ReplyTo,
}

/// One participant of a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Participant {
    /// The header it came from.
    pub role: Role,
    /// The display name, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The normalised address (see [`normalize_address`]).
    pub address: String,
}

/// A parsed message.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The Message-ID without angle brackets, when the message has one.
    pub message_id: Option<String>,
    /// In-Reply-To then References ids, without angle brackets, in header order.
    pub references: Vec<String>,
    /// The conversation's first message as the headers name it: the first
    /// References id, else In-Reply-To.
    pub thread_root: Option<String>,
    /// The subject, or an empty string.
    pub subject: String,
    /// The Date header as seconds since the Unix epoch, when it parses.
    pub sent_at: Option<i64>,
    /// Every participant, in header order; an address may repeat under several roles.
    pub participants: Vec<Participant>,
    /// The first text body (HTML turned into text), at most [`BODY_LIMIT`] bytes.
    pub body: String,
    /// The first HTML body as sent (unsanitised: whoever shows it must
    /// sanitise it), when the message has one of at most [`HTML_LIMIT`] bytes.
    pub html: Option<String>,
    /// The attachments, in message order.
    pub attachments: Vec<Attachment>,
    /// A hash of what stays the same between two copies of one message
    /// (sender, date, subject, body), 32 hex digits.
    pub content_hash: String,
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes hold no header section at all.
    #[error("not a MIME message (no headers could be read)")]
    NotMime,
}

impl Parsed {
    /// The distinct normalised addresses of the message.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        let mut seen = Vec::<&str>::with_capacity(self.participants.len());
        self.participants
            .iter()
            .map(|p| p.address.as_str())
            .filter(move |a| {
                let first = !seen.contains(a);
                if first {
                    seen.push(a);
                }
                first
            })
    }

    /// The From address, or the first participant's.
    pub fn from_address(&self) -> &str {
        self.participants
            .iter()
            .find(|p| p.role == Role::From)
            .or(self.participants.first())
            .map_or("", |p| p.address.as_str())
    }
}

/// Parse a raw RFC 5322 message.
pub fn parse(raw: &[u8]) -> Result<Parsed, ParseError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NotMime)?;
    if message.headers().is_empty() {
        return Err(ParseError::NotMime);
    }
    let mut participants = Vec::new();
    for (role, address) in [
        (Role::From, message.from()),
        (Role::Sender, message.sender()),
        (Role::To, message.to()),
        (Role::Cc, message.cc()),
        (Role::Bcc, message.bcc()),
        (Role::ReplyTo, message.reply_to()),
    ] {
        push_participants(&mut participants, role, address);
    }
    let thread_root = ids(message.references())
        .into_iter()
        .next()
        .or_else(|| ids(message.in_reply_to()).into_iter().next());
    let mut references = Vec::new();
    for header in [message.in_reply_to(), message.references()] {
        for id in ids(header) {
            if !references.contains(&id) {
                references.push(id);
            }
        }
    }
    let subject = message.subject().unwrap_or("").trim().to_string();
    let sent_at = message.date().map(|d| d.to_timestamp());
    let mut body = message
        .body_text(0)
        .map(|b| b.into_owned())
        .unwrap_or_default();
    if body.len() > BODY_LIMIT {
        let mut cut = BODY_LIMIT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    let html = message.html_part(0).and_then(|part| match &part.body {
        PartType::Html(html) if html.len() <= HTML_LIMIT => Some(html.to_string()),
        _ => None,
    });
    let attachments = message
        .attachments()
        .enumerate()
        .map(|(i, part)| Attachment {
            name: part
                .attachment_name()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map_or_else(|| format!("attachment-{}", i + 1), str::to_string),
            size: part.contents().len() as u64,
            content_type: part.content_type().map_or_else(
                || "application/octet-stream".to_string(),
                |ct| match ct.subtype() {
                    Some(sub) => format!("{}/{sub}", ct.ctype()),
                    None => ct.ctype().to_string(),
                },
            ),
        })
        .collect();
    let message_id = message
        .message_id()
        .map(|id| id.trim().trim_matches(['<', '>']).to_string())
        .filter(|id| !id.is_empty());
    let mut parsed = Parsed {
        message_id,
        references,
        thread_root,
        subject,
        sent_at,
        participants,
        body,
        html,
        attachments,
        content_hash: String::new(),
    };
    parsed.content_hash = content_hash(&parsed);
    Ok(parsed)
}

fn push_participants(out: &mut Vec<Participant>, role: Role, address: Option<&Address<'_>>) {
    let Some(address) = address else { return };
    for addr in address.iter() {
        if let Some(normalized) = addr.address().and_then(normalize_address) {
            out.push(Participant {
                role,
                name: addr
                    .name()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty()),
                address: normalized,
            });
        }
    }
}

fn ids(header: &HeaderValue<'_>) -> Vec<String> {
    header
        .as_text_list()
        .unwrap_or_default()
        .iter()
        .map(|id| id.trim().trim_matches(['<', '>']).to_string())
        .filter(|id| !id.is_empty())
        .collect()
}

fn content_hash(p: &Parsed) -> String {
    let mut h = Sha256::new();
    h.update(p.from_address().as_bytes());
    h.update([0]);
    h.update(p.sent_at.unwrap_or(0).to_be_bytes());
    h.update(p.subject.as_bytes());
    h.update([0]);
    h.update(p.body.trim().as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] = b"Message-ID: <abc@x.test>\r\n\
In-Reply-To: <parent@x.test>\r\n\
References: <root@x.test> <parent@x.test>\r\n\
Date: Tue, 1 Jul 2025 10:00:00 +0000\r\n\
From: \"Ann\" <Ann@Example.COM>\r\n\
Sender: ann@example.com\r\n\
To: bob@b\xC3\xBCcher.example, Carol <carol@x.test>\r\n\
Cc: team: dan@x.test, erin@x.test;\r\n\
Reply-To: replies@x.test\r\n\
Subject: =?utf-8?q?Caf=C3=A9?= plans\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>there</b></p>\r\n";

    #[test]
    fn reads_participants_ids_and_body() {
        let p = parse(RAW).unwrap();
        assert_eq!(p.message_id.as_deref(), Some("abc@x.test"));
        assert_eq!(p.references, ["parent@x.test", "root@x.test"]);
        assert_eq!(p.thread_root.as_deref(), Some("root@x.test"));
        assert_eq!(p.subject, "Café plans");
        assert_eq!(p.sent_at, Some(1_751_364_000));
        let all: Vec<(Role, &str)> = p
            .participants
            .iter()
            .map(|x| (x.role, x.address.as_str()))
            .collect();
        assert_eq!(
            all,
            [
                (Role::From, "ann@example.com"),
                (Role::Sender, "ann@example.com"),
                (Role::To, "bob@xn--bcher-kva.example"),
                (Role::To, "carol@x.test"),
                (Role::Cc, "dan@x.test"),
                (Role::Cc, "erin@x.test"),
                (Role::ReplyTo, "replies@x.test"),
            ]
        );
        assert_eq!(p.addresses().count(), 6);
        assert_eq!(p.participants[0].name.as_deref(), Some("Ann"));
        assert!(
            p.body.contains("Hello") && !p.body.contains("<b>"),
            "{}",
            p.body
        );
    }

    #[test]
    fn keeps_the_html_body_and_lists_attachments_without_their_content() {
        let raw = b"From: ann@x.test\r\nTo: bob@x.test\r\nSubject: Files\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n\
--b2\r\nContent-Type: text/plain\r\n\r\nPlain words\r\n\
--b2\r\nContent-Type: text/html\r\n\r\n<p onclick=\"x()\">Rich <b>words</b></p>\r\n\
--b2--\r\n\
--b1\r\nContent-Type: application/pdf; name=\"quote.pdf\"\r\n\
Content-Disposition: attachment; filename=\"quote.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQh\r\n\
--b1--\r\n";
        let p = parse(raw).unwrap();
        assert_eq!(p.body.trim(), "Plain words");
        let html = p.html.as_deref().unwrap_or_default();
        assert!(html.contains("<b>words</b>"), "{html}");
        assert_eq!(
            p.attachments,
            [Attachment {
                name: "quote.pdf".into(),
                size: 12,
                content_type: "application/pdf".into(),
            }]
        );
        let plain = parse(b"From: a@x.test\r\nSubject: t\r\n\r\nJust text\r\n").unwrap();
        assert_eq!(plain.html, None, "a text-only message has no HTML body");
        assert!(plain.attachments.is_empty());
    }

    #[test]
    fn copies_of_one_message_hash_alike() {
        let a = parse(RAW).unwrap();
        let mut copy =
            b"Received: from relay by mx; Tue, 1 Jul 2025 10:00:01 +0000\r\nX-Folder: Sent\r\n"
                .to_vec();
        copy.extend_from_slice(RAW);
        let b = parse(&copy).unwrap();
        assert_eq!(a.content_hash, b.content_hash);
        let other = parse(
            &RAW.iter()
                .map(|&c| if c == b'H' { b'J' } else { c })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_ne!(a.content_hash, other.content_hash);
    }

    #[test]
    fn not_a_message_is_an_error() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::NotMime);
    }
}
