//! `microsoft365`: the Microsoft 365 provider plugin, over Microsoft Graph.
//!
//! Each synced folder (Inbox and Sent Items by default) is followed with
//! Graph's message delta query, limited to the window by `receivedDateTime`;
//! `@odata.nextLink` pages through a round and the `@odata.deltaLink` that
//! ends it is where the next round starts, so the cursor is those links.
//! Each message's MIME comes from `/messages/{id}/$value`; sending posts the
//! MIME to `/me/sendMail`.
//!
//! It runs inside the host's sandbox and speaks only HTTPS to
//! `https://graph.microsoft.com` through `wasi:http`. Microsoft sign-in is
//! the host's: it keeps the tokens and adds `Authorization` to each request.
//!
//! Modules: `graph` (requests and Graph's errors), `sync` (rounds and pages).

mod graph;
mod sync;

#[allow(clippy::all)]
mod bindings {
    // The contract without `wasi:http`: wstd brings its own bindings for it.
    wit_bindgen::generate!({
        inline: r#"
            package mailroom:microsoft365;
            world microsoft365 {
                import mailroom:provider/log@1.1.0;
                export mailroom:provider/provider@1.1.0;
                export mailroom:provider/bindings@1.1.0;
            }
        "#,
        path: "../../wit",
        world: "mailroom:microsoft365/microsoft365",
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

use graph::Graph;

/// The secret field the host fills with a fresh Microsoft access token.
const ACCESS_TOKEN: &str = "access_token";

struct Microsoft365;

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

/// What the plugin reads from an account.
struct Settings {
    folders: Vec<String>,
    page_size: u32,
}

impl Settings {
    fn read(account: &Account) -> Result<Settings, ProviderError> {
        if !account.secrets.iter().any(|s| s == ACCESS_TOKEN) {
            return Err(ProviderError::AuthFailed(
                "the account has no Microsoft authorisation yet: connect it with \"Connect Microsoft 365\"".into(),
            ));
        }
        let folders: Vec<String> = setting(account, "folders")
            .unwrap_or("inbox,sentitems")
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect();
        if folders.is_empty()
            || folders.iter().any(|f| {
                !f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=".contains(c))
            })
        {
            return Err(bad_config(
                "folders",
                "give well-known folder names or folder ids, separated by commas (inbox,sentitems)",
            ));
        }
        let page_size = match setting(account, "page_size") {
            None => 50,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(bad_config(
                        "page_size",
                        "must be a whole number from 1 to 1000",
                    ));
                }
            },
        };
        Ok(Settings { folders, page_size })
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

impl Guest for Microsoft365 {
    type Session = GraphSession;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "microsoft365".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Microsoft 365 mailboxes through Microsoft Graph; the host signs in with Microsoft (OAuth) and keeps the tokens".into(),
            fields: vec![
                Field {
                    secret: true,
                    required: true,
                    ..field(
                        ACCESS_TOKEN,
                        "Microsoft access token",
                        "Filled and kept fresh by \"Connect Microsoft 365\"; never typed in",
                        None,
                    )
                },
                field(
                    "folders",
                    "Folders",
                    "Well-known folder names or folder ids, separated by commas",
                    Some("inbox,sentitems"),
                ),
                field(
                    "page_size",
                    "Messages per page",
                    "How many changes one delta page asks for (1 to 1000)",
                    Some("50"),
                ),
            ],
            endpoints: vec![Endpoint {
                template: "https://graph.microsoft.com".into(),
                purpose: "Microsoft Graph: read, fetch and send the account's mail".into(),
                credential: Some(Credential::Bearer(ACCESS_TOKEN.into())),
            }],
        }
    }

    fn verify(account: Account) -> Result<(), ProviderError> {
        Settings::read(&account)?;
        block_on(Graph::new().check_address(&account.address))
    }

    fn open(account: Account) -> Result<Session, ProviderError> {
        let settings = Settings::read(&account)?;
        Ok(Session::new(GraphSession {
            graph: Graph::new(),
            settings,
        }))
    }

    fn send(account: Account, message: Outgoing) -> Result<Option<String>, ProviderError> {
        Settings::read(&account)?;
        // Graph takes the recipients from the message's To, Cc and Bcc headers.
        let mime = base64::engine::general_purpose::STANDARD.encode(&message.raw);
        block_on(Graph::new().send_mime(mime))?;
        Ok(None)
    }
}

/// A sync run's session.
struct GraphSession {
    graph: Graph,
    settings: Settings,
}

impl GuestSession for GraphSession {
    fn sync(&self, cursor: Option<String>, window: Window) -> Result<Page, ProviderError> {
        let cursor = match cursor {
            None => sync::Cursor::start(&self.settings.folders),
            Some(text) => sync::Cursor::parse(&text, &self.settings.folders)
                .ok_or(ProviderError::CursorExpired)?,
        };
        block_on(sync::page(
            &self.graph,
            cursor,
            &window,
            self.settings.page_size,
        ))
    }

    fn fetch(&self, ids: Vec<String>) -> Result<Page, ProviderError> {
        block_on(sync::refetch(&self.graph, &ids))
    }
}

impl bindings::exports::mailroom::provider::bindings::Guest for Microsoft365 {
    /// The access token goes only to Microsoft Graph, as its bearer credential.
    fn secret_bindings() -> Vec<Binding> {
        vec![Binding {
            secret: ACCESS_TOKEN.into(),
            endpoints: vec!["https://graph.microsoft.com".into()],
        }]
    }
}

bindings::export!(Microsoft365 with_types_in bindings);
