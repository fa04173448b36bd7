//! The operators' Plugins page: every installed plugin with its version,
//! contract, digest, declared endpoints and what of them is granted, and
//! its health since it was loaded; installing or upgrading a plugin from a
//! file, approving an upgrade that waits because it declares new endpoints,
//! rolling one back and removing one, each taking effect at once
//! (runs under way finish on the version they started with); and the log
//! of every change. Admins only.

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use mailroom_lifecycle::Change;

use super::{Confirmed, Nav, PageError, Viewer, render, when};
use crate::AppState;
use crate::error::ApiError;

struct Endpoint {
    template: String,
    purpose: String,
    granted: bool,
    /// The secret fields bound to it, comma-separated.
    secrets: String,
}

struct PluginRow {
    name: String,
    version: String,
    contract: String,
    digest: String,
    description: String,
    endpoints: Vec<Endpoint>,
    /// Whether the secret bindings are the plugin's own declaration (x.1).
    bindings_declared: bool,
    /// What the operator grants this plugin beyond every plugin's grant.
    own_grant: String,
    calls: u64,
    errors: u64,
    denials: u64,
    last_error: Option<String>,
    /// An upgrade waiting for approval: its version and the endpoints it adds.
    pending: Option<(String, String)>,
}

/// What `grant` gives plugin `name` beyond every plugin's grant, in words.
fn own_grant(grant: &mailroom_runtime::OperatorGrant, name: &str) -> String {
    let Some(own) = grant.plugins.get(name) else {
        return "nothing beyond what every plugin gets".into();
    };
    let mut parts = Vec::new();
    if !own.private_networks.is_empty() {
        let nets: Vec<String> = own
            .private_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        parts.push(format!("private networks {}", nets.join(", ")));
    }
    if own.plaintext_credentials {
        parts.push("secrets over unencrypted connections".into());
    }
    if !own.hosts.is_empty() {
        parts.push(format!("only the hosts {}", own.hosts.join(", ")));
    }
    if let Some(endpoints) = &own.endpoints {
        parts.push(format!("only the endpoints {}", endpoints.join(", ")));
    }
    parts.join("; ")
}

/// One line of the change log.
struct ChangeRow {
    at: String,
    actor: String,
    action: String,
    plugin: String,
    from: String,
    to: String,
}

fn version(v: &Option<String>, d: &Option<String>) -> String {
    match (v, d) {
        (Some(v), Some(d)) => format!("{v} ({})", &d[..d.len().min(19)]),
        _ => "none".into(),
    }
}

impl From<Change> for ChangeRow {
    fn from(c: Change) -> Self {
        ChangeRow {
            at: when(c.at),
            from: version(&c.from_version, &c.from_digest),
            to: version(&c.to_version, &c.to_digest),
            actor: c.actor,
            action: c.action,
            plugin: c.plugin,
        }
    }
}

#[derive(Template)]
#[template(path = "plugins.html")]
struct PluginsPage {
    nav: Nav,
    plugins: Vec<PluginRow>,
    changes: Vec<ChangeRow>,
    private_networks: String,
    notice: Option<String>,
    error: Option<String>,
}

fn admin(viewer: &Viewer) -> Result<(), PageError> {
    crate::auth::admin(&viewer.user).map_err(PageError)
}

async fn show(
    s: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let changes = s
        .lifecycle
        .history(None)
        .await?
        .into_iter()
        .map(ChangeRow::from)
        .collect();
    let waiting = s.lifecycle.pending();
    let plugins = s
        .registry
        .list()
        .iter()
        .map(|p| {
            let d = p.description();
            let health = p.health();
            PluginRow {
                name: d.name.clone(),
                version: d.version.clone(),
                contract: d.contract.clone(),
                digest: d.digest.clone(),
                description: d.description.clone(),
                endpoints: d
                    .endpoints
                    .iter()
                    .map(|e| Endpoint {
                        template: e.template.clone(),
                        purpose: e.purpose.clone(),
                        granted: s.grant.for_plugin(&d.name).grants_template(&e.template),
                        secrets: d
                            .bindings
                            .iter()
                            .filter(|b| b.endpoints.contains(&e.template))
                            .map(|b| b.secret.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                    .collect(),
                bindings_declared: d.bindings_declared,
                own_grant: own_grant(&s.grant, &d.name),
                calls: health.calls,
                errors: health.errors,
                denials: health.denials,
                last_error: health.last_error,
                pending: waiting
                    .iter()
                    .find(|w| w.plugin == d.name)
                    .map(|w| (w.version.clone(), w.asks_for())),
            }
        })
        .collect();
    let nets: Vec<String> = s
        .grant
        .private_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(render(
        status,
        &PluginsPage {
            nav: viewer.nav("plugins"),
            plugins,
            changes,
            private_networks: if nets.is_empty() {
                "none (public addresses only)".into()
            } else {
                nets.join(", ")
            },
            notice,
            error,
        },
    ))
}

/// The Plugins page.
pub(crate) async fn page(State(s): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    admin(&viewer)?;
    show(&s, &viewer, StatusCode::OK, None, None).await
}

/// What the install form sent.
struct Upload {
    csrf: String,
    bytes: Vec<u8>,
    /// The contents of the signature file, when one was chosen.
    signature: Option<String>,
}

async fn read_upload(mut form: Multipart) -> Result<Upload, ApiError> {
    let mut upload = Upload {
        csrf: String::new(),
        bytes: Vec::new(),
        signature: None,
    };
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::invalid("plugin", format!("the upload could not be read: {e}"))
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("_csrf") => upload.csrf = field.text().await.map_err(bad)?,
            Some("plugin") => upload.bytes = field.bytes().await.map_err(bad)?.to_vec(),
            Some("signature") => {
                let text = field.text().await.map_err(bad)?;
                upload.signature = Some(text).filter(|t| !t.trim().is_empty());
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// Install or upgrade a plugin from an uploaded component file.
pub(crate) async fn install(
    State(s): State<AppState>,
    viewer: Viewer,
    form: Multipart,
) -> Result<Response, PageError> {
    admin(&viewer)?;
    let upload = read_upload(form).await?;
    viewer.check(&upload.csrf)?;
    if upload.bytes.is_empty() {
        let why = "Choose a plugin file (a .wasm component) to install.".to_string();
        return show(
            &s,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(why),
        )
        .await;
    }
    let signature = upload.signature.as_deref();
    let done = s
        .lifecycle
        .install(&upload.bytes, signature, &viewer.user.email)
        .await;
    outcome(&s, &viewer, done).await
}

/// The page after a change: what changed, or why nothing did.
async fn outcome(
    s: &AppState,
    viewer: &Viewer,
    done: Result<Change, mailroom_lifecycle::LifecycleError>,
) -> Result<Response, PageError> {
    match done {
        Ok(c) => {
            let notice = match c.action.as_str() {
                "upgrade" => format!(
                    "Upgraded {} from {} to {}: new runs use it now.",
                    c.plugin,
                    c.from_version.unwrap_or_default(),
                    c.to_version.unwrap_or_default()
                ),
                "rollback" => format!(
                    "Rolled {} back from {} to {}: new runs use it now.",
                    c.plugin,
                    c.from_version.unwrap_or_default(),
                    c.to_version.unwrap_or_default()
                ),
                "remove" => format!("Removed {}.", c.plugin),
                "pending" => format!(
                    "{0} {1} asks for more than {2}: it waits for your approval below; {2} keeps serving.",
                    c.plugin,
                    c.to_version.unwrap_or_default(),
                    c.from_version.unwrap_or_default()
                ),
                "approve" => format!(
                    "Approved {} {}: its endpoints are granted and new runs use it now.",
                    c.plugin,
                    c.to_version.unwrap_or_default()
                ),
                _ => format!(
                    "Installed {} {}.",
                    c.plugin,
                    c.to_version.unwrap_or_default()
                ),
            };
            show(s, viewer, StatusCode::OK, Some(notice), None).await
        }
        Err(e) => {
            let why = e.to_string();
            let mut chars = why.chars();
            let why = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default();
            let code = crate::error::ApiError::from(e).status();
            show(s, viewer, code, None, Some(format!("{why}."))).await
        }
    }
}

/// A change to one installed plugin, asked for by a form.
enum Act {
    Rollback,
    Approve,
    Remove,
}

async fn act(
    s: AppState,
    viewer: Viewer,
    name: String,
    form: Confirmed,
    act: Act,
) -> Result<Response, PageError> {
    admin(&viewer)?;
    viewer.check(&form.csrf)?;
    let actor = &viewer.user.email;
    let done = match act {
        Act::Rollback => s.lifecycle.rollback(&name, actor).await,
        Act::Approve => s.lifecycle.approve(&name, actor).await,
        Act::Remove => s.lifecycle.remove(&name, actor).await,
    };
    outcome(&s, &viewer, done).await
}

/// Roll a plugin back to the version its current one replaced.
pub(crate) async fn rollback(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(f): Form<Confirmed>,
) -> Result<Response, PageError> {
    act(s, viewer, name, f, Act::Rollback).await
}

/// Approve the upgrade waiting because it declares new endpoints.
pub(crate) async fn approve(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(f): Form<Confirmed>,
) -> Result<Response, PageError> {
    act(s, viewer, name, f, Act::Approve).await
}

/// Remove a plugin no account uses.
pub(crate) async fn remove(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(f): Form<Confirmed>,
) -> Result<Response, PageError> {
    act(s, viewer, name, f, Act::Remove).await
}
