//! The account form of the IMAP plugin and the settings read from it.

use crate::bindings::exports::mailroom::provider::provider::{Account, Endpoint, Field};
use crate::bindings::mailroom::provider::types::{ConfigError, ProviderError};

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain, upgraded with STARTTLS before anything else (IMAP 143, submission 587).
    StartTls,
    /// Plain throughout: only where the operator allows it.
    Plain,
}

/// How the plugin signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// A password, held by the host in the secret field `password`.
    Password,
    /// An OAuth access token, held (and refreshed) by the host in `oauth_token`.
    OAuth,
}

/// One server: host, port and security.
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
}

/// Everything the plugin reads from an account.
#[derive(Debug, Clone)]
pub struct Settings {
    pub username: String,
    pub login: Login,
    pub imap: Server,
    /// `None` when no SMTP server is set: the account can sync but not send.
    pub smtp: Option<Server>,
    /// Folders synced besides INBOX and the `\Sent` folder.
    pub folders: Vec<String>,
    /// Whether the plugin appends sent mail to the Sent folder itself.
    pub append_sent: bool,
    /// The most messages one page holds.
    pub batch: usize,
}

/// The secret field holding the password.
pub const PASSWORD: &str = "password";
/// The secret field holding an OAuth access token.
pub const OAUTH_TOKEN: &str = "oauth_token";

/// A bad-config error naming `field`.
pub fn bad_config(field: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::BadConfig(ConfigError {
        field: field.into(),
        why: why.into(),
    })
}

fn field(name: &str, label: &str, help: &str, required: bool, default: Option<&str>) -> Field {
    Field {
        name: name.into(),
        label: label.into(),
        help: help.into(),
        secret: false,
        required,
        default_value: default.map(str::to_string),
    }
}

fn secret(name: &str, label: &str, help: &str) -> Field {
    Field {
        secret: true,
        ..field(name, label, help, false, None)
    }
}

/// The account form.
pub fn fields() -> Vec<Field> {
    vec![
        field(
            "imap_host",
            "IMAP server",
            "For example imap.example.com.",
            true,
            None,
        ),
        field(
            "imap_port",
            "IMAP port",
            "993 for IMAPS, 143 for STARTTLS.",
            false,
            Some("993"),
        ),
        field(
            "imap_security",
            "IMAP security",
            "`tls` (port 993), `starttls` (port 143) or `plain` (only where the operator allows it).",
            false,
            Some("tls"),
        ),
        field(
            "username",
            "User name",
            "Leave empty to sign in with the email address.",
            false,
            None,
        ),
        secret(
            "password",
            "Password",
            "Your mailbox password; where two-factor sign-in is on, an app password.",
        ),
        secret(
            "oauth_token",
            "OAuth access token",
            "Filled in by Mailroom's sign-in flow for providers that use OAuth (XOAUTH2).",
        ),
        field(
            "folders",
            "Other folders",
            "Folders to sync besides INBOX and Sent, separated by commas.",
            false,
            None,
        ),
        field(
            "smtp_host",
            "SMTP server",
            "For sending, for example smtp.example.com.",
            false,
            None,
        ),
        field(
            "smtp_port",
            "SMTP port",
            "587 for STARTTLS, 465 for TLS.",
            false,
            Some("587"),
        ),
        field(
            "smtp_security",
            "SMTP security",
            "`starttls` (port 587), `tls` (port 465) or `plain` (only where the operator allows it).",
            false,
            Some("starttls"),
        ),
        field(
            "sent_copy",
            "Copy sent mail to Sent",
            "`append` (Mailroom saves a copy) or `server` (the server saves it itself, as Gmail does).",
            false,
            Some("append"),
        ),
        field(
            "batch_size",
            "Messages per page",
            "How many messages one page fetches.",
            false,
            Some("500"),
        ),
    ]
}

/// The endpoints the plugin may reach, as templates over the account's fields.
pub fn endpoints() -> Vec<Endpoint> {
    let endpoint = |template: &str, purpose: &str| Endpoint {
        template: template.into(),
        purpose: purpose.into(),
        credential: None,
    };
    vec![
        endpoint("tls://{imap_host}:{imap_port}", "IMAP over TLS (IMAPS)"),
        endpoint(
            "tcp://{imap_host}:{imap_port}",
            "IMAP upgraded with STARTTLS (plain only where the operator allows it)",
        ),
        endpoint("tls://{smtp_host}:{smtp_port}", "SMTP submission over TLS"),
        endpoint(
            "tcp://{smtp_host}:{smtp_port}",
            "SMTP submission upgraded with STARTTLS (plain only where the operator allows it)",
        ),
    ]
}

/// Where the password and the token may go: the account's own IMAP and
/// SMTP servers, nowhere else.
pub fn secret_bindings() -> Vec<crate::bindings::exports::mailroom::provider::bindings::Binding> {
    let servers: Vec<String> = endpoints().into_iter().map(|e| e.template).collect();
    [PASSWORD, OAUTH_TOKEN]
        .into_iter()
        .map(
            |secret| crate::bindings::exports::mailroom::provider::bindings::Binding {
                secret: secret.into(),
                endpoints: servers.clone(),
            },
        )
        .collect()
}

fn get<'a>(account: &'a Account, name: &str) -> Option<&'a str> {
    account
        .settings
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn port(account: &Account, name: &str, default: u16) -> Result<u16, ProviderError> {
    match get(account, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad_config(name, format!("`{v}` is not a port number (1 to 65535)"))),
    }
}

fn transport(
    account: &Account,
    name: &str,
    default: Transport,
) -> Result<Transport, ProviderError> {
    match get(account, name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("tls" | "ssl") => Ok(Transport::Tls),
        Some("starttls") => Ok(Transport::StartTls),
        Some("plain" | "none") => Ok(Transport::Plain),
        Some(other) => Err(bad_config(
            name,
            format!("`{other}` is not one of `tls`, `starttls`, `plain`"),
        )),
    }
}

impl Settings {
    /// Read and check an account's settings.
    pub fn read(account: &Account) -> Result<Settings, ProviderError> {
        let imap_host = get(account, "imap_host")
            .ok_or_else(|| bad_config("imap_host", "the IMAP server is required"))?;
        let imap = Server {
            host: imap_host.to_string(),
            port: port(account, "imap_port", 993)?,
            transport: transport(account, "imap_security", Transport::Tls)?,
        };
        let smtp = match get(account, "smtp_host") {
            None => None,
            Some(host) => Some(Server {
                host: host.to_string(),
                port: port(account, "smtp_port", 587)?,
                transport: transport(account, "smtp_security", Transport::StartTls)?,
            }),
        };
        let username = get(account, "username")
            .unwrap_or(&account.address)
            .to_string();
        if username.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(bad_config(
                "username",
                "must not contain control characters",
            ));
        }
        let has = |name: &str| account.secrets.iter().any(|s| s == name);
        let login = if has(OAUTH_TOKEN) {
            Login::OAuth
        } else if has(PASSWORD) {
            Login::Password
        } else {
            return Err(bad_config(
                "password",
                "a password (or an OAuth token) is required",
            ));
        };
        let folders = get(account, "folders")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let append_sent = match get(account, "sent_copy") {
            None | Some("append") => true,
            Some("server") => false,
            Some(other) => {
                return Err(bad_config(
                    "sent_copy",
                    format!("`{other}` is not one of `append`, `server`"),
                ));
            }
        };
        let batch = match get(account, "batch_size") {
            None => 500,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=5000).contains(n))
                .ok_or_else(|| bad_config("batch_size", "must be a whole number from 1 to 5000"))?,
        };
        Ok(Settings {
            username,
            login,
            imap,
            smtp,
            folders,
            append_sent,
            batch,
        })
    }
}
