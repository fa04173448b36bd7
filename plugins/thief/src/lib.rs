//! `thief`: a 1.1 plugin that signs in as the contract says and then tries,
//! one attack per account setting `attack`, to get a secret somewhere it
//! should not go: to an endpoint the secret is not bound to, a secret bound
//! nowhere, a second sign-in on one connection, a sign-in after ordinary
//! commands. Each attack reports what it saw in an `other` error.
//!
//! Never install it anywhere but a test.

use mailroom_plugin_sdk::contract::bindings::exports::mailroom::provider::bindings::{
    self, Binding,
};
use mailroom_plugin_sdk::contract::bindings::exports::mailroom::provider::provider::{
    Account, Endpoint, Field, Guest, GuestSession, Outgoing, Page, PluginInfo, ProviderError,
    Session, Window,
};
use mailroom_plugin_sdk::contract::bindings::mailroom::provider::net::{
    Connection, Security, SignIn, SignInMechanism, SignInProtocol,
};
use mailroom_plugin_sdk::contract::{bind, setting};

struct Thief;

/// The account's server, which the password is bound to.
const SERVER: &str = "tls://{target_host}:{target_port}";
/// Another granted endpoint, which no secret is bound to.
const ELSEWHERE: &str = "tls://{other_host}:{target_port}";

fn report(what: impl Into<String>) -> ProviderError {
    ProviderError::Other(what.into())
}

fn open(account: &Account, host_field: &str) -> Result<Connection, ProviderError> {
    let port = setting(account, "target_port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    Connection::open(
        setting(account, host_field).unwrap_or(""),
        port,
        Security::Tls,
    )
    .map_err(|e| report(format!("open: {e:?}")))
}

/// An IMAP LOGIN by the host with `secret`; what it answered, as text.
fn login(conn: &Connection, tag: &str, secret: &str) -> String {
    let step = SignIn {
        protocol: SignInProtocol::Imap,
        mechanism: SignInMechanism::PasswordCommand,
        tag: Some(tag.into()),
        user: "bob".into(),
        secret: secret.into(),
    };
    match conn.authenticate(&step) {
        Ok(answer) => format!("answered {:?}", String::from_utf8_lossy(&answer)),
        Err(e) => format!("refused {e:?}"),
    }
}

fn attack(account: &Account) -> Result<(), ProviderError> {
    match setting(account, "attack").unwrap_or("") {
        "login" => {
            let conn = open(account, "target_host")?;
            Err(report(login(&conn, "A1", "password")))
        }
        "unbound-endpoint" => {
            let conn = open(account, "other_host")?;
            Err(report(login(&conn, "A1", "password")))
        }
        "unbound-secret" => {
            let conn = open(account, "target_host")?;
            Err(report(login(&conn, "A1", "token")))
        }
        "twice" => {
            let conn = open(account, "target_host")?;
            let first = login(&conn, "A1", "password");
            let second = login(&conn, "A2", "password");
            Err(report(format!("first: {first}; second: {second}")))
        }
        "after-commands" => {
            let conn = open(account, "target_host")?;
            let _ = conn.write(b"A1 SELECT INBOX\r\n");
            let _ = conn.read(4096);
            Err(report(login(&conn, "A2", "password")))
        }
        "injected-user" => {
            let conn = open(account, "target_host")?;
            let step = SignIn {
                protocol: SignInProtocol::Imap,
                mechanism: SignInMechanism::PasswordCommand,
                tag: Some("A1".into()),
                user: "bob\r\nA2 CREATE x".into(),
                secret: "password".into(),
            };
            Err(report(format!("{:?}", conn.authenticate(&step))))
        }
        other => Err(report(format!("unknown attack `{other}`"))),
    }
}

fn field(name: &str, secret: bool) -> Field {
    Field {
        name: name.into(),
        label: name.into(),
        help: String::new(),
        secret,
        required: false,
        default_value: None,
    }
}

struct Nothing;

impl GuestSession for Nothing {
    fn sync(&self, _: Option<String>, _: Window) -> Result<Page, ProviderError> {
        Err(report("thieves do not sync"))
    }

    fn fetch(&self, _: Vec<String>) -> Result<Page, ProviderError> {
        Err(report("thieves do not fetch"))
    }
}

impl Guest for Thief {
    type Session = Nothing;

    fn info() -> PluginInfo {
        let endpoint = |template: &str| Endpoint {
            template: template.into(),
            purpose: "the test's echo server".into(),
            credential: None,
        };
        PluginInfo {
            name: "thief".into(),
            version: "1.1.0".into(),
            description: "Tries to send secrets where they are not bound (tests only)".into(),
            fields: vec![
                field("attack", false),
                field("target_host", false),
                field("other_host", false),
                field("target_port", false),
                field("password", true),
                field("token", true),
            ],
            endpoints: vec![endpoint(SERVER), endpoint(ELSEWHERE)],
        }
    }

    fn verify(account: Account) -> Result<(), ProviderError> {
        attack(&account)
    }

    fn open(_: Account) -> Result<Session, ProviderError> {
        Ok(Session::new(Nothing))
    }

    fn send(_: Account, _: Outgoing) -> Result<Option<String>, ProviderError> {
        Err(report("thieves do not send"))
    }
}

impl bindings::Guest for Thief {
    /// The password to the account's server only; the token nowhere.
    fn secret_bindings() -> Vec<Binding> {
        vec![bind("password", &[SERVER])]
    }
}

mailroom_plugin_sdk::contract::export_provider!(Thief);
