//! `gmail`: the Gmail provider plugin, over the Gmail REST API.
//!
//! Backfills the window with `users.messages.list` (`q=after:…`, spam and
//! trash left out) and `users.messages.get?format=raw`, then follows
//! `users.history.list` from the history id the backfill started at. Sends
//! with `users.messages.send`. Gmail's message and thread ids are passed
//! through and its labels kept as flags.
//!
//! It runs inside the host's sandbox and speaks only HTTPS to
//! `https://gmail.googleapis.com` through `wasi:http`. Google sign-in is the
//! host's: the host keeps the OAuth tokens, refreshes them and adds
//! `Authorization` to each request; this plugin never sees a token.
//!
//! Modules: `api` (requests, quota pacing, errors), `cursor`, `sync` (pages).

mod api;
mod cursor;
mod sync;

#[allow(clippy::all)]
mod bindings {
    // The contract without `wasi:http`: wstd brings its own bindings for it.
    wit_bindgen::generate!({
        inline: r#"
            package mailroom:gmail;
            world gmail {
                import mailroom:provider/log@1.1.0;
                export mailroom:provider/provider@1.1.0;
                export mailroom:provider/bindings@1.1.0;
            }
        "#,
        path: "../../wit",
        world: "mailroom:gmail/gmail",
        generate_all,
    });
}

use base64::Engine as _;
use bindings::exports::mailroom::provider::bindings::Binding;
use bindings::exports::mailroom::provider::provider::{
    Account, Credential, Endpoint, Field, Guest, GuestSession, Outgoing, Page, PluginInfo,
    ProviderError, Session, Window,
};
use bindings::mailroom::provider::types::ConfigError;

use api::{Api, units};
use cursor::Cursor;

/// The secret field the host fills with a fresh Google access token.
const ACCESS_TOKEN: &str = "access_token";

struct Gmail;

/// What the plugin reads from an account.
struct Settings {
    units_per_second: u32,
    page_size: u32,
}

fn setting<'a>(account: &'a Account, name: &str) -> Option<&'a str> {
    account
        .settings
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn bad_config(field: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::BadConfig(ConfigError {
        field: field.into(),
        why: why.into(),
    })
}

fn number(
    account: &Account,
    name: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ProviderError> {
    let Some(text) = setting(account, name) else {
        return Ok(default);
    };
    match text.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(bad_config(
            name,
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

impl Settings {
    fn read(account: &Account) -> Result<Settings, ProviderError> {
        if !account.secrets.iter().any(|s| s == ACCESS_TOKEN) {
            return Err(ProviderError::AuthFailed(
                "the account has no Google authorisation yet: connect it with \"Connect Gmail\""
                    .into(),
            ));
        }
        Ok(Settings {
            units_per_second: number(account, "quota_units_per_second", 250, 0..=1_000_000)?,
            page_size: number(account, "page_size", 100, 1..=500)?,
        })
    }
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

/// Sign in check: the profile of the token's user must be the account's address.
async fn check(api: &Api, account: &Account) -> Result<(), ProviderError> {
    let profile: api::Profile = api
        .get("/profile", units::PROFILE)
        .await
        .map_err(api::into_error)?;
    if !profile
        .email_address
        .eq_ignore_ascii_case(account.address.trim())
    {
        return Err(ProviderError::AuthFailed(format!(
            "Google signed in {} but the account is {}: sign in with Google as {}",
            profile.email_address, account.address, account.address
        )));
    }
    Ok(())
}

impl Guest for Gmail {
    type Session = GmailSession;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "gmail".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Gmail through the Gmail API; the host signs in with Google (OAuth) and keeps the tokens".into(),
            fields: vec![
                Field {
                    secret: true,
                    required: true,
                    ..field(
                        ACCESS_TOKEN,
                        "Google access token",
                        "Filled and kept fresh by \"Connect Gmail\"; never typed in",
                        None,
                    )
                },
                field(
                    "quota_units_per_second",
                    "Gmail API quota (units per second)",
                    "Google's per-user limit is 250; 0 turns pacing off",
                    Some("250"),
                ),
                field(
                    "page_size",
                    "Messages per page",
                    "How many messages one listing asks for (1 to 500)",
                    Some("100"),
                ),
            ],
            endpoints: vec![Endpoint {
                template: "https://gmail.googleapis.com".into(),
                purpose: "The Gmail API: list, fetch and send the account's mail".into(),
                credential: Some(Credential::Bearer(ACCESS_TOKEN.into())),
            }],
        }
    }

    fn verify(account: Account) -> Result<(), ProviderError> {
        let settings = Settings::read(&account)?;
        block_on(check(&Api::new(settings.units_per_second), &account))
    }

    fn open(account: Account) -> Result<Session, ProviderError> {
        let settings = Settings::read(&account)?;
        Ok(Session::new(GmailSession {
            api: Api::new(settings.units_per_second),
            page_size: settings.page_size,
        }))
    }

    fn send(account: Account, message: Outgoing) -> Result<Option<String>, ProviderError> {
        let settings = Settings::read(&account)?;
        let api = Api::new(settings.units_per_second);
        // Gmail takes the recipients from the message's To, Cc and Bcc headers.
        let body = serde_json::json!({
            "raw": base64::engine::general_purpose::URL_SAFE.encode(&message.raw),
        })
        .to_string();
        let sent: api::Sent =
            block_on(api.post("/messages/send", body, units::SEND)).map_err(api::into_error)?;
        Ok(Some(sent.id))
    }
}

/// A sync run's session: the API client and its quota pacing.
struct GmailSession {
    api: Api,
    page_size: u32,
}

impl GuestSession for GmailSession {
    fn sync(&self, cursor: Option<String>, window: Window) -> Result<Page, ProviderError> {
        let cursor = match cursor {
            None => None,
            Some(text) => Some(Cursor::parse(&text).ok_or(ProviderError::CursorExpired)?),
        };
        block_on(sync::page(&self.api, cursor, &window, self.page_size))
    }

    fn fetch(&self, ids: Vec<String>) -> Result<Page, ProviderError> {
        block_on(sync::refetch(&self.api, &ids))
    }
}

impl bindings::exports::mailroom::provider::bindings::Guest for Gmail {
    /// The access token goes only to the Gmail API, as its bearer credential.
    fn secret_bindings() -> Vec<Binding> {
        vec![Binding {
            secret: ACCESS_TOKEN.into(),
            endpoints: vec!["https://gmail.googleapis.com".into()],
        }]
    }
}

bindings::export!(Gmail with_types_in bindings);
