//! The contract `mailroom:provider@1.1.0` for plugins written with this SDK:
//! its generated bindings ([`bindings`]), the macro that exports a provider
//! ([`export_provider!`]), short constructors for the
//! typed errors, and [`Stream`]: a buffered, line-oriented reader and writer
//! over the host's `net.connection` for text protocols (POP3, IMAP, SMTP…).
//!
//! A plugin using this never declares the world itself:
//!
//! ```ignore
//! use mailroom_plugin_sdk::contract::bindings::exports::mailroom::provider::{bindings, provider};
//! struct MyPlugin;
//! impl provider::Guest for MyPlugin { /* info, verify, open, send */ }
//! impl bindings::Guest for MyPlugin { /* secret-bindings: where each secret may go */ }
//! mailroom_plugin_sdk::contract::export_provider!(MyPlugin);
//! ```

/// The generated bindings of the `plugin` world.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "mailroom:provider/plugin@1.1.0",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_provider",
        default_bindings_module: "mailroom_plugin_sdk::contract::bindings",
    });
}

/// Export a type implementing the provider's `Guest` as the plugin.
pub use bindings::export_provider;

use bindings::exports::mailroom::provider::bindings::Binding;
use bindings::mailroom::provider::net::{Connection, NetError, Security, SignIn};
use bindings::mailroom::provider::types::{ConfigError, ProviderError};

/// The account's setting `name`, trimmed; `None` when absent or empty.
pub fn setting<'a>(
    account: &'a bindings::exports::mailroom::provider::provider::Account,
    name: &str,
) -> Option<&'a str> {
    account
        .settings
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// `bad-config`: the account field `field` is wrong, and why.
pub fn bad_config(field: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::BadConfig(ConfigError {
        field: field.into(),
        why: why.into(),
    })
}

/// `auth-failed`, with what the user should try.
pub fn auth_failed(why: impl Into<String>) -> ProviderError {
    ProviderError::AuthFailed(why.into())
}

/// A connection failure as the contract's error: a refusal by the host or a
/// missing secret is the account's configuration; the rest is `unreachable`.
pub fn net_failure(endpoint: &str, error: &NetError) -> ProviderError {
    match error {
        NetError::UnknownSecret(name) => bad_config(name, "is required"),
        NetError::Denied(why) => {
            ProviderError::Other(format!("{endpoint}: refused by the host: {why}"))
        }
        other => ProviderError::Unreachable(format!("{endpoint}: {}", describe(other))),
    }
}

/// A `net-error` in words.
pub fn describe(error: &NetError) -> String {
    match error {
        NetError::Denied(t) => format!("the host refused the connection: {t}"),
        NetError::NameNotFound(t) => format!("the server name was not found ({t})"),
        NetError::Connection(t) => format!("the server could not be reached ({t})"),
        NetError::Tls(t) => format!("the secure connection failed ({t})"),
        NetError::TooManyConnections => "too many connections are open".into(),
        NetError::UnknownSecret(name) => format!("the account has no `{name}` value"),
    }
}

/// A binding of `secret` to the declared endpoint `templates` (for
/// `bindings::Guest::secret_bindings`).
pub fn bind(secret: &str, templates: &[&str]) -> Binding {
    Binding {
        secret: secret.into(),
        endpoints: templates.iter().map(|t| t.to_string()).collect(),
    }
}

/// A connection with a read buffer: read lines or up to a terminator, write
/// commands, and have the host sign in without the plugin seeing the secret.
pub struct Stream {
    conn: Connection,
    buffer: Vec<u8>,
    endpoint: String,
}

impl Stream {
    /// Open `host:port` (a granted endpoint) with the given security.
    pub fn open(host: &str, port: u16, security: Security) -> Result<Stream, ProviderError> {
        let endpoint = format!("{host}:{port}");
        let conn =
            Connection::open(host, port, security).map_err(|e| net_failure(&endpoint, &e))?;
        Ok(Stream {
            conn,
            buffer: Vec::new(),
            endpoint,
        })
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn fill(&mut self) -> Result<(), ProviderError> {
        let chunk = self
            .conn
            .read(64 * 1024)
            .map_err(|e| net_failure(&self.endpoint, &e))?;
        if chunk.is_empty() {
            return Err(ProviderError::Unreachable(format!(
                "{}: the server closed the connection",
                self.endpoint
            )));
        }
        self.buffer.extend_from_slice(&chunk);
        Ok(())
    }

    /// Everything up to and including `terminator`, which is consumed.
    pub fn read_until(&mut self, terminator: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let mut from = 0;
        loop {
            if let Some(at) = find(&self.buffer[from..], terminator) {
                let end = from + at + terminator.len();
                return Ok(self.buffer.drain(..end).collect());
            }
            from = self.buffer.len().saturating_sub(terminator.len());
            self.fill()?;
        }
    }

    /// One line without its CRLF.
    pub fn read_line(&mut self) -> Result<String, ProviderError> {
        let mut line = self.read_until(b"\r\n")?;
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Write all of `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ProviderError> {
        self.conn
            .write(data)
            .map_err(|e| net_failure(&self.endpoint, &e))
    }

    /// Have the host sign in: it writes the whole step (the secret
    /// included) and returns the server's answers, up to the outcome.
    /// Anything read before and not consumed is a protocol error: a
    /// sign-in answer must not be mistaken for what came before it.
    pub fn authenticate(&mut self, step: &SignIn) -> Result<Vec<u8>, ProviderError> {
        if !self.buffer.is_empty() {
            return Err(ProviderError::Other(format!(
                "{}: unread data before the sign-in",
                self.endpoint
            )));
        }
        self.conn
            .authenticate(step)
            .map_err(|e| net_failure(&self.endpoint, &e))
    }

    /// Upgrade to TLS after the protocol's STARTTLS exchange. Anything the
    /// server sent after its answer to STARTTLS came in plaintext and could
    /// be a man in the middle's: the upgrade is refused, not built on it.
    pub fn start_tls(&mut self) -> Result<(), ProviderError> {
        if !self.buffer.is_empty() {
            return Err(ProviderError::Unreachable(format!(
                "{}: the server sent more than its answer to STARTTLS before the TLS upgrade \
                 (injected plaintext?); not going on",
                self.endpoint
            )));
        }
        self.conn
            .start_tls()
            .map_err(|e| net_failure(&self.endpoint, &e))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
