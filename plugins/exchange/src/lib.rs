//! `exchange`: the Exchange Web Services (EWS) provider plugin, for Exchange
//! servers an organisation runs itself.
//!
//! The user gives an address and a password, and optionally an Exchange
//! username (`DOMAIN\user` or a UPN) and the Exchange server. Without a
//! server, POX Autodiscover at `autodiscover.<domain>` and then `<domain>`
//! finds the EWS URL; a URL outside those hosts is not followed (it is not
//! granted): the user is asked to enter that server instead. The host signs
//! every request in with HTTP Basic from the username (or the address) and
//! the password; the plugin never sees the password.
//!
//! Backfill: `FindItem` over each folder (Inbox and Sent Items by default)
//! restricted to the window, newest first, then `GetItem` with `MimeContent`.
//! Incremental: `SyncFolderItems`, whose `SyncState` is the cursor (taken
//! before the backfill starts, so nothing that arrives meanwhile is missed).
//! Send: `CreateItem` with `SendAndSaveCopy`.
//!
//! Modules: `ews` (requests, answers, errors), `sync` (the cursor and pages).

mod ews;
mod sync;

#[allow(clippy::all)]
mod bindings {
    // The contract without `wasi:http`: wstd brings its own bindings for it.
    wit_bindgen::generate!({
        inline: r#"
            package mailroom:exchange;
            world exchange {
                import mailroom:provider/log@1.1.0;
                export mailroom:provider/provider@1.1.0;
                export mailroom:provider/bindings@1.1.0;
            }
        "#,
        path: "../../wit",
        world: "mailroom:exchange/exchange",
        generate_all,
    });
}

use bindings::exports::mailroom::provider::bindings::Binding;
use bindings::exports::mailroom::provider::provider::{
    Account, BasicCredential, Credential, Endpoint, Field, Guest, GuestSession, Outgoing, Page,
    PluginInfo, ProviderError, Session, Window,
};
use bindings::mailroom::provider::types::ConfigError;

use ews::Ews;

const PASSWORD: &str = "password";
const USERNAME: &str = "exchange_username";
const SERVER: &str = "exchange_server";

struct Exchange;

fn setting<'a>(account: &'a Account, name: &str) -> Option<&'a str> {
    account
        .settings
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

pub(crate) fn bad_config(field: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::BadConfig(ConfigError {
        field: field.into(),
        why: why.into(),
    })
}

/// What the plugin reads from an account.
pub(crate) struct Settings {
    pub folders: Vec<String>,
    pub batch: usize,
}

impl Settings {
    fn read(account: &Account) -> Result<Settings, ProviderError> {
        if !account.secrets.iter().any(|s| s == PASSWORD) {
            return Err(bad_config(PASSWORD, "the password is required"));
        }
        let folders: Vec<String> = setting(account, "folders")
            .unwrap_or("inbox,sentitems")
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect();
        if folders.is_empty() {
            return Err(bad_config(
                "folders",
                "name at least one folder (inbox,sentitems)",
            ));
        }
        let batch = match setting(account, "batch_size") {
            None => 50,
            Some(t) => match t.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => n,
                _ => {
                    return Err(bad_config(
                        "batch_size",
                        "must be a whole number from 1 to 500",
                    ));
                }
            },
        };
        Ok(Settings { folders, batch })
    }
}

/// The EWS URL: the Exchange server given, or the one Autodiscover finds on
/// a host the plugin may reach.
async fn ews_url(account: &Account) -> Result<String, ProviderError> {
    if let Some(server) = setting(account, SERVER) {
        let host = server
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or(server);
        return Ok(format!("https://{host}/EWS/Exchange.asmx"));
    }
    let domain = account
        .address
        .rsplit_once('@')
        .map(|(_, d)| d.to_lowercase())
        .ok_or_else(|| bad_config("address", "is not an email address"))?;
    let allowed = [format!("autodiscover.{domain}"), domain.clone()];
    let mut down = None;
    for host in &allowed {
        let found = match ews::autodiscover(host, &account.address, &allowed).await {
            Ok(found) => found,
            Err(e @ ProviderError::Unreachable(_)) => {
                down = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(url) = found {
            let found = ews::https_host(&url).unwrap_or_default();
            if allowed.contains(&found) {
                return Ok(url);
            }
            return Err(bad_config(
                SERVER,
                format!(
                    "Autodiscover found the Exchange server at {found}: enter it as the Exchange server"
                ),
            ));
        }
    }
    // A host that is there but does not answer is an outage, retried later.
    if let Some(e) = down {
        return Err(e);
    }
    Err(bad_config(
        SERVER,
        format!(
            "Autodiscover could not find the Exchange server for {domain}: enter the Exchange server (for example mail.{domain})"
        ),
    ))
}

fn field(name: &str, label: &str, help: &str, default: Option<&str>) -> Field {
    Field {
        name: name.into(),
        label: label.into(),
        help: help.into(),
        secret: false,
        required: false,
        default_value: default.map(str::to_string),
    }
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    wstd::runtime::block_on(f)
}

fn basic() -> Option<Credential> {
    Some(Credential::Basic(BasicCredential {
        user_field: USERNAME.into(),
        secret_field: PASSWORD.into(),
    }))
}

impl Guest for Exchange {
    type Session = ExchangeSession;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "exchange".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Exchange servers through Exchange Web Services (EWS), found by Autodiscover".into(),
            fields: vec![
                Field {
                    secret: true,
                    required: true,
                    ..field(
                        PASSWORD,
                        "Password",
                        "Where two-step verification is on, an app password",
                        None,
                    )
                },
                field(
                    USERNAME,
                    "Exchange username",
                    "DOMAIN\\user or user@domain, if it differs from the address",
                    None,
                ),
                field(
                    SERVER,
                    "Exchange server",
                    "For example mail.example.com; found by Autodiscover when empty",
                    None,
                ),
                field(
                    "folders",
                    "Folders",
                    "Distinguished folder names, separated by commas",
                    Some("inbox,sentitems"),
                ),
                field(
                    "batch_size",
                    "Messages per page",
                    "How many messages one page fetches (1 to 500)",
                    Some("50"),
                ),
            ],
            endpoints: vec![
                Endpoint {
                    template: "https://{exchange_server}".into(),
                    purpose: "The Exchange server's EWS".into(),
                    credential: basic(),
                },
                Endpoint {
                    template: "https://autodiscover.{address_domain}".into(),
                    purpose: "Autodiscover (and EWS where it is served there)".into(),
                    credential: basic(),
                },
                Endpoint {
                    template: "https://{address_domain}".into(),
                    purpose:
                        "Autodiscover on the address's domain (and EWS where it is served there)"
                            .into(),
                    credential: basic(),
                },
            ],
        }
    }

    fn verify(account: Account) -> Result<(), ProviderError> {
        Settings::read(&account)?;
        block_on(async {
            let ews = Ews::new(ews_url(&account).await?);
            ews.call(&ews::get_folder()).await.map(|_| ())
        })
    }

    fn open(account: Account) -> Result<Session, ProviderError> {
        let settings = Settings::read(&account)?;
        let url = block_on(ews_url(&account))?;
        Ok(Session::new(ExchangeSession {
            ews: Ews::new(url),
            settings,
        }))
    }

    fn send(account: Account, message: Outgoing) -> Result<Option<String>, ProviderError> {
        Settings::read(&account)?;
        block_on(async {
            let ews = Ews::new(ews_url(&account).await?);
            ews.call(&ews::create_item(&message.raw))
                .await
                .map(|_| None)
        })
    }
}

/// A sync run's session: the EWS endpoint found once.
struct ExchangeSession {
    ews: Ews,
    settings: Settings,
}

impl GuestSession for ExchangeSession {
    fn sync(&self, cursor: Option<String>, window: Window) -> Result<Page, ProviderError> {
        let cursor = match cursor {
            None => sync::Cursor::start(&self.settings.folders),
            Some(text) => sync::Cursor::parse(&text, &self.settings.folders)
                .ok_or(ProviderError::CursorExpired)?,
        };
        block_on(sync::page(&self.ews, cursor, &window, self.settings.batch))
    }

    fn fetch(&self, ids: Vec<String>) -> Result<Page, ProviderError> {
        block_on(sync::refetch(&self.ews, &ids))
    }
}

impl bindings::exports::mailroom::provider::bindings::Guest for Exchange {
    /// The password goes, as the Basic credential, to the Exchange server
    /// and to the Autodiscover endpoints of the address's domain.
    fn secret_bindings() -> Vec<Binding> {
        let endpoints = Self::info().endpoints.into_iter();
        vec![Binding {
            secret: PASSWORD.into(),
            endpoints: endpoints.map(|e| e.template).collect(),
        }]
    }
}

bindings::export!(Exchange with_types_in bindings);
