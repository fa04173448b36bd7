//! {{name}}: a Mailroom provider plugin (contract `mailroom:provider@1.1.0`).
//!
//! Made by `mailroom plugin new --lang rust {{name}}`. It builds, loads and
//! answers every call; replace the parts marked "Your service" with the
//! protocol your service speaks. See docs/plugin-authors.md.

use mailroom_plugin_sdk::contract::bindings::exports::mailroom::provider::bindings::{
    self, Binding,
};
use mailroom_plugin_sdk::contract::bindings::exports::mailroom::provider::provider::{
    Account, Field, Guest, GuestSession, Outgoing, Page, PluginInfo, Session, Window,
};
use mailroom_plugin_sdk::contract::bindings::mailroom::provider::net::{
    Security, SignIn, SignInMechanism, SignInProtocol,
};
use mailroom_plugin_sdk::contract::bindings::mailroom::provider::types::ProviderError;
use mailroom_plugin_sdk::contract::{Stream, auth_failed, bad_config, bind, setting};
use mailroom_plugin_sdk::cursor;

/// The plugin.
struct Plugin;

/// What the cursor remembers between pages (your service's position).
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Position {
    handed_over: u64,
}

/// Your service: sign in over TLS with a line-based protocol (POP3's USER and PASS).
fn sign_in(account: &Account) -> Result<Stream, ProviderError> {
    let host = setting(account, "server").ok_or_else(|| bad_config("server", "is required"))?;
    let port = match setting(account, "port") {
        None => 993,
        Some(p) => p
            .parse()
            .map_err(|_| bad_config("port", format!("`{p}` is not a port number")))?,
    };
    let mut stream = Stream::open(host, port, Security::Tls)?;
    let _greeting = stream.read_line()?;
    // The host performs the sign-in and hands back the server's answer; the
    // password never passes through here. Here POP3's USER and PASS; IMAP,
    // SMTP and SASL mechanisms are there too (see docs/plugin-authors.md).
    let answer = stream.authenticate(&SignIn {
        protocol: SignInProtocol::Pop3,
        mechanism: SignInMechanism::PasswordCommand,
        tag: None,
        user: account.address.clone(),
        secret: "password".into(),
    })?;
    let answer = String::from_utf8_lossy(&answer);
    let last = answer.lines().last().unwrap_or_default();
    if last.starts_with("+OK") {
        Ok(stream)
    } else {
        Err(auth_failed(format!("the server said: {last}")))
    }
}

/// The one endpoint, which the password may go to.
const SERVICE: &str = "tls://{server}:{port}";

impl bindings::Guest for Plugin {
    /// Where each secret may go: the operator approves this list.
    fn secret_bindings() -> Vec<Binding> {
        vec![bind("password", &[SERVICE])]
    }
}

impl Guest for Plugin {
    type Session = Sync;

    fn info() -> PluginInfo {
        let field = |name: &str, label: &str, help: &str, secret, required| Field {
            name: name.into(),
            label: label.into(),
            help: help.into(),
            secret,
            required,
            default_value: None,
        };
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "{{name}}: describe your service in one line.".into(),
            fields: vec![
                field("server", "Server", "For example mail.example.com.", false, true),
                field("port", "Port", "The TLS port.", false, false),
                field("password", "Password", "The mailbox password.", true, false),
            ],
            endpoints: vec![
                mailroom_plugin_sdk::contract::bindings::exports::mailroom::provider::provider::Endpoint {
                    template: SERVICE.into(),
                    purpose: "The service, over TLS".into(),
                    credential: None,
                },
            ],
        }
    }

    fn verify(account: Account) -> Result<(), ProviderError> {
        sign_in(&account).map(drop)
    }

    fn open(account: Account) -> Result<Session, ProviderError> {
        Ok(Session::new(Sync {
            _stream: sign_in(&account)?,
        }))
    }

    fn send(_: Account, _: Outgoing) -> Result<Option<String>, ProviderError> {
        Err(ProviderError::Other("this plugin does not send mail".into()))
    }
}

/// One sync run's signed-in connection.
struct Sync {
    _stream: Stream,
}

impl GuestSession for Sync {
    fn sync(&self, cursor: Option<String>, _window: Window) -> Result<Page, ProviderError> {
        let position: Position = match cursor {
            None => Position::default(),
            Some(text) => cursor::decode(1, &text).map_err(|_| ProviderError::CursorExpired)?,
        };
        // Your service: list what is new after `position`, fetch at most a
        // page of it (mailroom_plugin_sdk::paging::next_page helps), and
        // return it with the position after it.
        Ok(Page {
            messages: Vec::new(),
            deletions: Vec::new(),
            failed: Vec::new(),
            cursor: cursor::encode(1, &position),
            more: false,
            progress: None,
        })
    }

    fn fetch(&self, ids: Vec<String>) -> Result<Page, ProviderError> {
        Ok(Page {
            messages: Vec::new(),
            deletions: Vec::new(),
            failed: ids
                .into_iter()
                .map(|id| mailroom_plugin_sdk::contract::bindings::mailroom::provider::types::MessageFailure {
                    id,
                    why: "fetching by id is not written yet".into(),
                })
                .collect(),
            cursor: String::new(),
            more: false,
            progress: None,
        })
    }
}

mailroom_plugin_sdk::contract::export_provider!(Plugin);
