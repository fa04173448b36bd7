//! `imap`: the IMAP/SMTP provider plugin.
//!
//! Syncs INBOX, the `\Sent` folder and any folders the account names from an
//! IMAP4rev1 server, and sends through SMTP submission. The protocol syntax is
//! imap-codec's and smtp-proto's; this crate decides what to ask for. It runs
//! inside the host's sandbox: connections are opened by the host, only to the
//! endpoints below, and passwords and tokens are written by the host, never
//! seen here.
//!
//! Modules: `settings` (the account form), `net` (host connections), `wire`
//! (IMAP framing), `client` (IMAP commands), `cursor`, `sync` (pages and
//! pipelining), `smtp`.

mod client;
mod cursor;
mod net;
mod settings;
mod smtp;
mod sync;
mod wire;

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "mailroom:provider/plugin",
        generate_all,
    });
}

use std::cell::RefCell;

use bindings::exports::mailroom::provider::provider::{
    Account, Guest, GuestSession, Outgoing, Page, PluginInfo, ProviderError, Session, Window,
};
use bindings::mailroom::provider::log::{self, Level};

use client::Client;
use settings::Settings;
use sync::Syncer;

struct Imap;

/// A sync run's session: one signed-in connection.
struct ImapSession {
    syncer: RefCell<Option<Syncer>>,
}

impl ImapSession {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Syncer) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let mut slot = self.syncer.borrow_mut();
        let Some(syncer) = slot.as_mut() else {
            return Err(ProviderError::Other("the session has ended".into()));
        };
        let result = f(syncer);
        if let Err(ProviderError::Unreachable(_) | ProviderError::Other(_)) = &result {
            // The conversation may be out of step: no further call may use it.
            *slot = None;
        }
        result
    }
}

impl Drop for ImapSession {
    fn drop(&mut self) {
        if let Some(syncer) = self.syncer.get_mut().take() {
            syncer.close();
        }
    }
}

impl GuestSession for ImapSession {
    fn sync(&self, cursor: Option<String>, window: Window) -> Result<Page, ProviderError> {
        self.with(|s| s.sync(cursor, window))
    }

    fn fetch(&self, ids: Vec<String>) -> Result<Page, ProviderError> {
        self.with(|s| s.fetch(ids))
    }
}

impl Guest for Imap {
    type Session = ImapSession;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "imap".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Any IMAP mailbox, with sending over SMTP submission".into(),
            fields: settings::fields(),
            endpoints: settings::endpoints(),
        }
    }

    fn verify(account: Account) -> Result<(), ProviderError> {
        let settings = Settings::read(&account)?;
        let mut client = Client::connect(&settings)?;
        if client
            .examine("INBOX", None)
            .map_err(client::provider_error)?
            .is_none()
        {
            return Err(ProviderError::Other("the server has no INBOX".into()));
        }
        client.logout();
        Ok(())
    }

    fn open(account: Account) -> Result<Session, ProviderError> {
        let settings = Settings::read(&account)?;
        let client = Client::connect(&settings)?;
        Ok(Session::new(ImapSession {
            syncer: RefCell::new(Some(Syncer::new(settings, client))),
        }))
    }

    fn send(account: Account, message: Outgoing) -> Result<Option<String>, ProviderError> {
        let settings = Settings::read(&account)?;
        smtp::send(&settings, &message)?;
        if !settings.append_sent {
            return Ok(None);
        }
        // The mail is out; a failure to file the copy must not fail the send.
        match save_copy(&settings, &message.raw) {
            Ok(id) => Ok(id),
            Err(e) => {
                log::write(
                    Level::Warn,
                    &format!("sent, but the copy could not be saved to Sent: {e:?}"),
                );
                Ok(None)
            }
        }
    }
}

impl bindings::exports::mailroom::provider::bindings::Guest for Imap {
    fn secret_bindings() -> Vec<bindings::exports::mailroom::provider::bindings::Binding> {
        settings::secret_bindings()
    }
}

/// Append a sent message to the `\Sent` folder; its id where the server says (UIDPLUS).
fn save_copy(settings: &Settings, raw: &[u8]) -> Result<Option<String>, ProviderError> {
    let mut client = Client::connect(settings)?;
    let Some(sent) = client.sent_folder()? else {
        log::write(Level::Warn, "sent, but the server has no \\Sent folder");
        return Ok(None);
    };
    let outcome = client.append(&sent, raw).map_err(client::provider_error)?;
    let id = match &outcome.body.code {
        Some(imap_codec::imap_types::response::Code::AppendUid { uid_validity, uid }) => {
            Some(cursor::message_id(&sent, uid_validity.get(), uid.get()))
        }
        _ => None,
    };
    if !outcome.ok() {
        log::write(
            Level::Warn,
            &format!("the copy could not be saved to Sent: {}", outcome.line),
        );
    }
    client.logout();
    Ok(id)
}

bindings::export!(Imap with_types_in bindings);
