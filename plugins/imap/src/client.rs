//! An IMAP4rev1 client over the host's streams: sign-in, folders, search,
//! fetch and append, with CONDSTORE/QRESYNC where the server has them.
//!
//! It speaks the protocol and nothing else: which messages to ask for, and
//! the cursor, are `sync`'s business.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroU64};
use std::str::FromStr;

use imap_codec::CommandCodec;
use imap_codec::encode::{Encoder, Fragment};
use imap_codec::imap_types::command::{CommandBody, SelectParameter};
use imap_codec::imap_types::core::{Literal, Vec1};
use imap_codec::imap_types::datetime::NaiveDate;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Code, Data, StatusKind};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;

use crate::bindings::mailroom::provider::net::{NetError, SignIn, SignInMechanism, SignInProtocol};
use crate::bindings::mailroom::provider::types::ProviderError;
use crate::net::{Link, NetFailure};
use crate::settings::{Login, OAUTH_TOKEN, PASSWORD, Settings, Transport, bad_config};
use crate::wire::{Outcome, Reply, Wire, WireError};

/// Why an IMAP operation failed, in terms of the contract's errors.
pub fn provider_error(e: WireError) -> ProviderError {
    match e {
        WireError::Net(n) => net_error(n),
        WireError::Closed(why) => ProviderError::Unreachable(format!("IMAP: {why}")),
        WireError::Protocol(why) => ProviderError::Other(format!("IMAP: {why}")),
    }
}

/// A network failure as the contract's error.
pub fn net_error(n: NetFailure) -> ProviderError {
    match &n.error {
        NetError::Denied(_) => ProviderError::Other(n.to_string()),
        NetError::UnknownSecret(name) => bad_config(name, "is required"),
        _ => ProviderError::Unreachable(n.to_string()),
    }
}

/// A folder opened read-only.
#[derive(Debug, Clone)]
pub struct Opened {
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// HIGHESTMODSEQ, where the server has CONDSTORE.
    pub modseq: Option<u64>,
    /// UIDs the server reported gone since the modseq we gave (QRESYNC).
    pub vanished: Vec<u32>,
}

/// One message as a UID FETCH returned it.
pub struct Fetched {
    pub uid: u32,
    pub flags: Vec<String>,
    pub internal_date: i64,
    pub raw: Vec<u8>,
}

/// The result of one UID FETCH of bodies.
pub struct FetchResult {
    pub messages: Vec<Fetched>,
    /// The server's completion (NO when some messages could not be
    /// returned), or why it closed the connection instead (Dovecot says
    /// `BYE` on a message it fails to read).
    pub outcome: Result<Outcome, String>,
    /// Responses that could not be decoded.
    pub unreadable: usize,
}

impl FetchResult {
    /// Whether some asked-for messages may be missing for a reason other than deletion.
    pub fn incomplete(&self) -> bool {
        self.unreadable > 0 || !self.outcome.as_ref().is_ok_and(Outcome::ok)
    }

    /// The server's words about it.
    pub fn reason(&self) -> String {
        match &self.outcome {
            Ok(o) => o.line.clone(),
            Err(why) => why.clone(),
        }
    }
}

/// A signed-in IMAP connection.
pub struct Client {
    wire: Wire,
    caps: Vec<String>,
    qresync: bool,
    opened: Option<Opened>,
}

/// `1:5,7,9:12` for the given UIDs (any order).
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted: Vec<u32> = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

fn sequence(set: &str) -> Result<SequenceSet, WireError> {
    SequenceSet::from_str(set)
        .map_err(|e| WireError::Protocol(format!("sequence set `{set}`: {e}")))
}

fn mailbox(name: &str) -> Result<Mailbox<'static>, WireError> {
    Mailbox::try_from(name.to_string())
        .map_err(|e| WireError::Protocol(format!("folder name `{name}`: {e}")))
}

/// The mailbox name as the server spells it.
fn mailbox_name(m: &Mailbox<'_>) -> String {
    match m {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

impl Client {
    /// Connect, secure the connection and sign in.
    pub fn connect(settings: &Settings) -> Result<Client, ProviderError> {
        let server = &settings.imap;
        let link = Link::open(&server.host, server.port, server.transport).map_err(net_error)?;
        let mut client = Client {
            wire: Wire::new(link),
            caps: Vec::new(),
            qresync: false,
            opened: None,
        };
        client.greeting()?;
        client.refresh_capabilities().map_err(provider_error)?;
        if server.transport == Transport::StartTls {
            if !client.has("STARTTLS") {
                return Err(bad_config(
                    "imap_security",
                    "the server does not offer STARTTLS on this port; use `tls` (usually port 993)",
                ));
            }
            let (outcome, _) = client
                .wire
                .run(CommandBody::StartTLS)
                .map_err(provider_error)?;
            if !outcome.ok() {
                return Err(ProviderError::Unreachable(format!(
                    "STARTTLS refused: {}",
                    outcome.line
                )));
            }
            // What came after the answer to STARTTLS came in plaintext:
            // a man in the middle's injected responses, never built on.
            if client.wire.buffered() {
                return Err(ProviderError::Unreachable(
                    "the IMAP server sent more than its answer to STARTTLS before the TLS \
                     upgrade (injected plaintext?); not going on"
                        .into(),
                ));
            }
            client.wire.link().start_tls().map_err(net_error)?;
            client.refresh_capabilities().map_err(provider_error)?;
        }
        client.sign_in(settings)?;
        client.refresh_capabilities().map_err(provider_error)?;
        if client.has("QRESYNC") {
            let qresync = CapabilityEnable::try_from("QRESYNC")
                .map_err(|e| ProviderError::Other(format!("IMAP: {e}")))?;
            let (outcome, _) = client
                .wire
                .run(CommandBody::Enable {
                    capabilities: Vec1::from(qresync),
                })
                .map_err(provider_error)?;
            client.qresync = outcome.ok();
        }
        Ok(client)
    }

    fn greeting(&mut self) -> Result<(), ProviderError> {
        match self.wire.next().map_err(provider_error)? {
            Reply::Untagged(body) if body.kind == StatusKind::Ok => Ok(()),
            Reply::Untagged(body) => Err(ProviderError::Unreachable(format!(
                "the IMAP server refused the connection: {}",
                body.text
            ))),
            Reply::Bye(text) | Reply::Unreadable(text) => Err(ProviderError::Unreachable(format!(
                "the IMAP server refused the connection: {text}"
            ))),
            _ => Err(ProviderError::Other("IMAP: unexpected greeting".into())),
        }
    }

    /// Whether the server advertises `cap` (upper case).
    pub fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }

    fn refresh_capabilities(&mut self) -> Result<(), WireError> {
        let (_, replies) = self.wire.run(CommandBody::Capability)?;
        self.caps = replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Data(Data::Capability(caps)) => Some(caps),
                _ => None,
            })
            .flat_map(|caps| caps.into_iter().map(|c| c.to_string().to_ascii_uppercase()))
            .collect();
        Ok(())
    }

    fn sign_in(&mut self, settings: &Settings) -> Result<(), ProviderError> {
        let user = &settings.username;
        let outcome = match settings.login {
            Login::OAuth => {
                if !self.has("AUTH=XOAUTH2") {
                    return Err(bad_config(
                        "oauth_token",
                        "the server does not offer XOAUTH2 sign-in; use a password",
                    ));
                }
                self.authenticate(SignInMechanism::Xoauth2, OAUTH_TOKEN, user)
            }
            Login::Password if self.has("AUTH=PLAIN") => {
                self.authenticate(SignInMechanism::Plain, PASSWORD, user)
            }
            Login::Password if self.has("LOGINDISABLED") => {
                return Err(bad_config(
                    "imap_security",
                    "the server refuses to sign in over this connection; use `tls` or `starttls`",
                ));
            }
            Login::Password => self.authenticate(SignInMechanism::PasswordCommand, PASSWORD, user),
        }
        .map_err(|e| match e {
            // The host refuses to write a secret into an unencrypted connection.
            WireError::Net(n) if matches!(n.error, NetError::Denied(_)) => {
                bad_config("imap_security", format!("{n}; use `tls` or `starttls`"))
            }
            e => provider_error(e),
        })?;
        match outcome.kind {
            StatusKind::Ok => Ok(()),
            _ if outcome.line.contains("[UNAVAILABLE]") => Err(ProviderError::Unreachable(
                format!("the IMAP server cannot sign in now: {}", outcome.line),
            )),
            _ => Err(ProviderError::AuthFailed(format!(
                "the IMAP server refused the sign-in for `{user}` ({})",
                outcome.line
            ))),
        }
    }

    /// `LOGIN` or `AUTHENTICATE`, performed whole by the host.
    fn authenticate(
        &mut self,
        mechanism: SignInMechanism,
        secret: &str,
        user: &str,
    ) -> Result<Outcome, WireError> {
        let tag = self.wire.tag();
        let step = SignIn {
            protocol: SignInProtocol::Imap,
            mechanism,
            tag: Some(tag.clone()),
            user: user.to_string(),
            secret: secret.to_string(),
        };
        self.wire.sign_in(&tag, &step)
    }

    /// The folder with the `\Sent` special use, if any.
    pub fn sent_folder(&mut self) -> Result<Option<String>, ProviderError> {
        let list = CommandBody::List {
            reference: Mailbox::try_from("").map_err(|e| ProviderError::Other(e.to_string()))?,
            mailbox_wildcard: ListMailbox::try_from("*")
                .map_err(|e| ProviderError::Other(e.to_string()))?,
        };
        let (_, replies) = self.wire.run(list).map_err(provider_error)?;
        Ok(replies.into_iter().find_map(|r| match r {
            Reply::Data(Data::List { items, mailbox, .. })
                if items
                    .iter()
                    .any(|a| a.to_string().eq_ignore_ascii_case("\\Sent")) =>
            {
                Some(mailbox_name(&mailbox))
            }
            _ => None,
        }))
    }

    /// Open `folder` read-only. With `known` (UIDVALIDITY, MODSEQ) and
    /// QRESYNC, the server also reports the UIDs expunged since then.
    /// `Ok(None)` when the folder does not exist.
    pub fn examine(
        &mut self,
        folder: &str,
        known: Option<(u32, u64)>,
    ) -> Result<Option<Opened>, WireError> {
        let mut parameters = Vec::new();
        match known {
            Some((validity, modseq)) if self.qresync => {
                if let (Some(v), Some(m)) = (NonZeroU32::new(validity), NonZeroU64::new(modseq)) {
                    parameters.push(SelectParameter::QResync {
                        uid_validity: v,
                        mod_sequence_value: m,
                        known_uids: None,
                        seq_match_data: None,
                    });
                }
            }
            _ if self.has("CONDSTORE") => parameters.push(SelectParameter::CondStore),
            _ => {}
        }
        let (outcome, replies) = self.wire.run(CommandBody::Examine {
            mailbox: mailbox(folder)?,
            parameters,
        })?;
        if !outcome.ok() {
            self.opened = None;
            return Ok(None);
        }
        let mut opened = Opened {
            name: folder.to_string(),
            uidvalidity: 0,
            uidnext: 0,
            modseq: None,
            vanished: Vec::new(),
        };
        let mut codes: Vec<Code<'static>> = replies
            .iter()
            .filter_map(|r| match r {
                Reply::Untagged(b) => b.code.clone(),
                _ => None,
            })
            .collect();
        codes.extend(outcome.body.code.clone());
        for code in codes {
            match code {
                Code::UidValidity(v) => opened.uidvalidity = v.get(),
                Code::UidNext(n) => opened.uidnext = n.get(),
                Code::HighestModSeq(m) => opened.modseq = Some(m.get()),
                _ => {}
            }
        }
        for r in &replies {
            if let Reply::Data(Data::Vanished { known_uids, .. }) = r {
                let largest = NonZeroU32::new(opened.uidnext.max(2) - 1).unwrap_or(NonZeroU32::MIN);
                opened
                    .vanished
                    .extend(known_uids.iter(largest).map(|u| u.get()));
            }
        }
        self.opened = Some(opened.clone());
        Ok(Some(opened))
    }

    /// The folder currently open.
    pub fn opened(&self) -> Option<&Opened> {
        self.opened.as_ref()
    }

    /// `UID SEARCH UID <lo>:<hi> SINCE <date>`: the UIDs in that range
    /// received since `since` (seconds since the epoch).
    pub fn search(&mut self, lo: u32, hi: Option<u32>, since: i64) -> Result<Vec<u32>, WireError> {
        let range = match hi {
            Some(hi) => format!("{lo}:{hi}"),
            None => format!("{lo}:*"),
        };
        let date = chrono::DateTime::from_timestamp(since, 0)
            .map(|d| d.date_naive())
            .unwrap_or_default();
        let criteria = Vec1::try_from(vec![
            SearchKey::Uid(sequence(&range)?),
            SearchKey::Since(NaiveDate::unvalidated(date)),
        ])
        .map_err(|_| WireError::Protocol("empty search".into()))?;
        let (outcome, replies) = self.wire.run(CommandBody::Search {
            charset: None,
            criteria,
            uid: true,
        })?;
        if !outcome.ok() {
            return Err(WireError::Protocol(format!(
                "UID SEARCH failed: {}",
                outcome.line
            )));
        }
        let mut uids: Vec<u32> = replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Data(Data::Search(uids, ..)) => Some(uids),
                _ => None,
            })
            .flatten()
            .map(|u| u.get())
            .filter(|u| *u >= lo && hi.is_none_or(|hi| *u <= hi))
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The size of each of these messages, as far as the server tells
    /// them; `true` with them when it closed the connection half-way.
    pub fn sizes(&mut self, uids: &[u32]) -> Result<(BTreeMap<u32, u32>, bool), WireError> {
        let mut sizes = BTreeMap::new();
        if uids.is_empty() {
            return Ok((sizes, false));
        }
        let tag = self.send_fetch(uids, false)?;
        let done = self.wire.finish(&tag, |r| {
            if let Reply::Data(Data::Fetch { items, .. }) = r {
                let mut uid = None;
                let mut size = None;
                for item in items.into_iter() {
                    match item {
                        MessageDataItem::Uid(u) => uid = Some(u.get()),
                        MessageDataItem::Rfc822Size(s) => size = Some(s),
                        _ => {}
                    }
                }
                if let (Some(u), Some(s)) = (uid, size) {
                    sizes.insert(u, s);
                }
            }
            Ok(())
        });
        match done {
            Ok(_) => Ok((sizes, false)),
            Err(WireError::Closed(_)) => Ok((sizes, true)),
            Err(e) => Err(e),
        }
    }

    /// Send `UID FETCH <uids> (UID FLAGS INTERNALDATE BODY.PEEK[])` (or just
    /// the sizes) without waiting for the answer; returns the tag.
    pub fn send_fetch(&mut self, uids: &[u32], bodies: bool) -> Result<String, WireError> {
        let items = if bodies {
            vec![
                MessageDataItemName::Uid,
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::BodyExt {
                    section: None,
                    partial: None,
                    peek: true,
                },
            ]
        } else {
            vec![MessageDataItemName::Uid, MessageDataItemName::Rfc822Size]
        };
        self.wire.send(CommandBody::Fetch {
            sequence_set: sequence(&uid_set(uids))?,
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(items),
            uid: true,
            modifiers: Vec::new(),
        })
    }

    /// Read the answer to a `send_fetch` of bodies.
    pub fn read_fetch(&mut self, tag: &str) -> Result<FetchResult, WireError> {
        let mut messages = Vec::new();
        let mut unreadable = 0;
        let outcome = match self.wire.finish(tag, |r| {
            match r {
                Reply::Data(Data::Fetch { items, .. }) => {
                    if let Some(m) = fetched(items.into_iter()) {
                        messages.push(m);
                    }
                }
                Reply::Unreadable(_) => unreadable += 1,
                _ => {}
            }
            Ok(())
        }) {
            Ok(outcome) => Ok(outcome),
            Err(WireError::Closed(why)) => Err(why),
            Err(e) => return Err(e),
        };
        Ok(FetchResult {
            messages,
            outcome,
            unreadable,
        })
    }

    /// Append a message to `folder`, marked as seen.
    pub fn append(&mut self, folder: &str, raw: &[u8]) -> Result<Outcome, WireError> {
        let literal = Literal::try_from(raw.to_vec())
            .map_err(|e| WireError::Protocol(format!("the message cannot be appended: {e}")))?;
        let tag = self.wire.tag();
        let command = imap_codec::imap_types::command::Command::new(
            imap_codec::imap_types::core::Tag::try_from(tag.as_str())
                .map_err(|e| WireError::Protocol(e.to_string()))?,
            CommandBody::Append {
                mailbox: mailbox(folder)?,
                flags: vec![Flag::Seen],
                date: None,
                message: LiteralOrLiteral8::Literal(literal),
            },
        )
        .map_err(|e| WireError::Protocol(e.to_string()))?;
        for fragment in CommandCodec::default().encode(&command) {
            match fragment {
                Fragment::Line { data } => self.wire.write(&data)?,
                Fragment::Literal { data, .. } => loop {
                    // A synchronising literal: wait for the server's go-ahead
                    // (or its refusal), past any untagged data.
                    match self.wire.next()?.completes(&tag) {
                        Ok(refused) => return Ok(refused),
                        Err(Reply::Continue) => {
                            self.wire.write(&data)?;
                            break;
                        }
                        Err(_) => {}
                    }
                },
            }
        }
        self.wire.finish(&tag, |_| Ok(()))
    }

    /// Say goodbye; errors are of no interest any more.
    pub fn logout(mut self) {
        let _ = self.wire.run(CommandBody::Logout);
    }
}

fn fetched<'a>(items: impl Iterator<Item = MessageDataItem<'a>>) -> Option<Fetched> {
    let mut uid = None;
    let mut flags = Vec::new();
    let mut internal_date = 0;
    let mut raw = None;
    for item in items {
        match item {
            MessageDataItem::Uid(u) => uid = Some(u.get()),
            MessageDataItem::Flags(f) => {
                flags = f
                    .iter()
                    .map(|f| match f {
                        FlagFetch::Flag(flag) => flag.to_string(),
                        FlagFetch::Recent => "\\Recent".into(),
                    })
                    .collect()
            }
            MessageDataItem::InternalDate(d) => internal_date = d.as_ref().timestamp(),
            MessageDataItem::BodyExt {
                section: None,
                data,
                ..
            } => raw = data.0.map(|s| s.as_ref().to_vec()),
            _ => {}
        }
    }
    Some(Fetched {
        uid: uid?,
        flags,
        internal_date,
        raw: raw?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[9, 1, 2, 3, 7, 10, 11, 12]), "1:3,7,9:12");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn mailbox_names_round_trip() {
        assert_eq!(mailbox_name(&mailbox("Sent Items").unwrap()), "Sent Items");
        assert_eq!(mailbox_name(&mailbox("inbox").unwrap()), "INBOX");
    }
}
