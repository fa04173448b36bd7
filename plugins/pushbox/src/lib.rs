//! `pushbox`: a plugin of the contract's second major version,
//! `mailroom:provider@2.0.0`, for tests: a mailbox of `messages` generated
//! messages (setting, default 3) that says it can push, and whose `wait`
//! answers whether a cursor is behind. Beside the 1.x plugins it proves the
//! host links both majors at once.

mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit", "../../wit/v2"],
        world: "mailroom:provider/plugin@2.1.0",
        generate_all,
    });
}

use bindings::exports::mailroom::provider2_1_0::provider::{
    Account, Guest, GuestSession, Message, Outgoing, Page, PluginInfo, Session, Window,
};
use bindings::mailroom::provider1_1_0::types::{ConfigError, MessageFailure, ProviderError};

struct Pushbox;

/// One open mailbox: how many messages it holds.
struct Mailbox {
    messages: u32,
}

impl Mailbox {
    /// How many messages a cursor says were handed over.
    fn handed(cursor: &str) -> Result<u32, ProviderError> {
        cursor.parse().map_err(|_| ProviderError::CursorExpired)
    }
}

impl Guest for Pushbox {
    type Session = Mailbox;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "pushbox".into(),
            version: "2.0.0".into(),
            description: "A generated mailbox that can push (contract 2.0), for tests".into(),
            fields: vec![],
            endpoints: vec![],
            push: true,
        }
    }

    fn verify(_: Account) -> Result<(), ProviderError> {
        Ok(())
    }

    fn open(account: Account) -> Result<Session, ProviderError> {
        let messages = account
            .settings
            .iter()
            .find(|(k, _)| k == "messages")
            .map_or(Ok(3), |(_, v)| v.parse())
            .map_err(|_| {
                ProviderError::BadConfig(ConfigError {
                    field: "messages".into(),
                    why: "is not a number".into(),
                })
            })?;
        Ok(Session::new(Mailbox { messages }))
    }

    fn send(_: Account, _: Outgoing) -> Result<Option<String>, ProviderError> {
        Err(ProviderError::Other("pushbox does not send".into()))
    }
}

impl GuestSession for Mailbox {
    fn sync(&self, cursor: Option<String>, _: Window) -> Result<Page, ProviderError> {
        let from = cursor.as_deref().map_or(Ok(0), Mailbox::handed)?;
        let messages = (from..self.messages)
            .map(|n| Message {
                id: format!("push-{n}"),
                thread_id: None,
                folder: "INBOX".into(),
                flags: vec![],
                received_at: 1_700_000_000 + i64::from(n),
                raw: format!(
                    "Message-ID: <push-{n}@pushbox.test>\r\nFrom: a@pushbox.test\r\nTo: b@pushbox.test\r\n\
                     Subject: pushed {n}\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nHello {n}.\r\n"
                )
                .into_bytes(),
            })
            .collect();
        Ok(Page {
            messages,
            deletions: vec![],
            failed: vec![],
            cursor: self.messages.max(from).to_string(),
            more: false,
            progress: None,
        })
    }

    fn fetch(&self, ids: Vec<String>) -> Result<Page, ProviderError> {
        Ok(Page {
            messages: vec![],
            deletions: vec![],
            failed: ids
                .into_iter()
                .map(|id| MessageFailure {
                    id,
                    why: "pushbox keeps nothing to fetch again".into(),
                })
                .collect(),
            cursor: String::new(),
            more: false,
            progress: None,
        })
    }

    fn wait(&self, cursor: String, _seconds: u32) -> Result<bool, ProviderError> {
        Ok(Mailbox::handed(&cursor)? < self.messages)
    }
}

impl bindings::exports::mailroom::provider1_1_0::bindings::Guest for Pushbox {
    /// It has no secret.
    fn secret_bindings() -> Vec<bindings::exports::mailroom::provider1_1_0::bindings::Binding> {
        Vec::new()
    }
}

bindings::export!(Pushbox with_types_in bindings);
