//! The operators' Plugins page: every installed plugin with its version,
//! contract, digest, declared endpoints and what of them is granted, and
//! its health since it was loaded; and installing or upgrading a plugin
//! from a file, which takes effect at once (runs under way finish on the
//! version they started with). Admins only.

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Nav, PageError, Viewer, render};
use crate::AppState;
use crate::error::ApiError;

struct Endpoint {
    template: String,
    purpose: String,
    granted: bool,
}

struct PluginRow {
    name: String,
    version: String,
    contract: String,
    digest: String,
    description: String,
    endpoints: Vec<Endpoint>,
    calls: u64,
    errors: u64,
    denials: u64,
    last_error: Option<String>,
}

#[derive(Template)]
#[template(path = "plugins.html")]
struct PluginsPage {
    nav: Nav,
    plugins: Vec<PluginRow>,
    private_networks: String,
    notice: Option<String>,
    error: Option<String>,
}

fn admin(viewer: &Viewer) -> Result<(), PageError> {
    crate::auth::admin(&viewer.user).map_err(PageError)
}

fn show(
    s: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
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
                        granted: s.grant.grants_template(&e.template),
                    })
                    .collect(),
                calls: health.calls,
                errors: health.errors,
                denials: health.denials,
                last_error: health.last_error,
            }
        })
        .collect();
    let nets: Vec<String> = s
        .grant
        .private_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    render(
        status,
        &PluginsPage {
            nav: viewer.nav("plugins"),
            plugins,
            private_networks: if nets.is_empty() {
                "none (public addresses only)".into()
            } else {
                nets.join(", ")
            },
            notice,
            error,
        },
    )
}

/// The Plugins page.
pub(crate) async fn page(State(s): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    admin(&viewer)?;
    Ok(show(&s, &viewer, StatusCode::OK, None, None))
}

/// What the install form sent.
struct Upload {
    csrf: String,
    bytes: Vec<u8>,
}

async fn read_upload(mut form: Multipart) -> Result<Upload, ApiError> {
    let mut upload = Upload {
        csrf: String::new(),
        bytes: Vec::new(),
    };
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::invalid("plugin", format!("the upload could not be read: {e}"))
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("_csrf") => upload.csrf = field.text().await.map_err(bad)?,
            Some("plugin") => upload.bytes = field.bytes().await.map_err(bad)?.to_vec(),
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
        return Ok(show(
            &s,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Choose a plugin file (a .wasm component) to install.".into()),
        ));
    }
    let (plugin, previous) = match s.registry.install(upload.bytes.clone()).await {
        Ok(installed) => installed,
        Err(e) => {
            return Ok(show(
                &s,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(format!(
                    "Not installed: {e}. The plugins in use are unchanged."
                )),
            ));
        }
    };
    if let Some(dir) = &s.plugins_dir
        && let Err(e) = mailroom_runtime::keep_plugin_file(dir, plugin.name(), &upload.bytes)
    {
        tracing::error!(plugin = %plugin.name(), error = %e, "keeping an installed plugin's file failed");
        return Ok(show(
            &s,
            &viewer,
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            Some(format!(
                "{} {} is in use now, but its file could not be kept in {} ({e}): a restart would serve the previous version.",
                plugin.name(),
                plugin.version(),
                dir.display()
            )),
        ));
    }
    tracing::info!(
        plugin = %plugin.name(),
        version = %plugin.version(),
        digest = %plugin.description().digest,
        by = %viewer.user.email,
        "plugin installed from the Plugins page"
    );
    let notice = match previous {
        Some(old) => format!(
            "Upgraded {} from {} to {}: new runs use it now.",
            plugin.name(),
            old.version(),
            plugin.version()
        ),
        None => format!("Installed {} {}.", plugin.name(), plugin.version()),
    };
    Ok(show(&s, &viewer, StatusCode::OK, Some(notice), None))
}
