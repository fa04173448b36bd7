//! The installed plugins, as operators and the account form see them, and
//! their lifecycle (install, upgrade, approve, roll back, remove; admins only).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use mailroom_lifecycle::{Change, LifecycleError, Pending};
use mailroom_runtime::{Credential, PluginDescription};

use crate::AppState;
use crate::auth::{CurrentUser, admin};
use crate::error::ApiError;

/// The largest plugin file taken.
pub const FILE_LIMIT: usize = 64 * 1024 * 1024;

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            e @ (LifecycleError::Load(_) | LifecycleError::Trust(_)) => {
                ApiError::invalid("plugin", e.to_string())
            }
            e @ LifecycleError::NotInstalled(_) => ApiError::not_found(e.to_string()),
            LifecycleError::Refused(why) => ApiError::new(StatusCode::CONFLICT, why),
            LifecycleError::Crm(e) => e.into(),
            e @ LifecycleError::Io(_) => ApiError::internal(e),
        }
    }
}

/// Install a plugin (the component file as the body, any content type), or
/// upgrade the plugin of the same name, at once (admins only). Its
/// signature, where it has one, goes in the `X-Mailroom-Signature` header
/// (base64 ed25519 over its digest; see `mailroom plugin sign`). An upgrade
/// that declares endpoints the version in use does not is kept but not made
/// current: 202, action `pending`, until `POST /api/plugins/{name}/approve`.
#[utoipa::path(post, path = "/api/plugins", tag = "plugins",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Change), (status = 202, body = Change),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn install(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Change>), ApiError> {
    admin(&user)?;
    let signature = headers
        .get("x-mailroom-signature")
        .and_then(|v| v.to_str().ok());
    let change = s.lifecycle.install(&body, signature, &user.email).await?;
    let status = if change.action == "pending" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(change)))
}

/// Make current the upgrade waiting for approval, granting the endpoints it
/// declares (admins only).
#[utoipa::path(post, path = "/api/plugins/{name}/approve", params(("name" = String, Path)), tag = "plugins",
    responses((status = 200, body = Change), (status = 409, body = crate::error::ErrorBody)))]
pub async fn approve(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<Change>, ApiError> {
    admin(&user)?;
    Ok(Json(s.lifecycle.approve(&name, &user.email).await?))
}

/// The upgrades waiting for approval, with the endpoints each would add (admins only).
#[utoipa::path(get, path = "/api/plugins/pending", tag = "plugins", responses((status = 200, body = Vec<Pending>)))]
pub async fn pending(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Pending>>, ApiError> {
    admin(&user)?;
    Ok(Json(s.lifecycle.pending()))
}

/// Go back to the version the current one replaced (admins only).
#[utoipa::path(post, path = "/api/plugins/{name}/rollback", params(("name" = String, Path)), tag = "plugins",
    responses((status = 200, body = Change), (status = 409, body = crate::error::ErrorBody)))]
pub async fn rollback(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<Change>, ApiError> {
    admin(&user)?;
    Ok(Json(s.lifecycle.rollback(&name, &user.email).await?))
}

/// Remove a plugin no account uses (admins only).
#[utoipa::path(delete, path = "/api/plugins/{name}", params(("name" = String, Path)), tag = "plugins",
    responses((status = 200, body = Change), (status = 409, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<Change>, ApiError> {
    admin(&user)?;
    Ok(Json(s.lifecycle.remove(&name, &user.email).await?))
}

/// Every change to the installed plugins, newest first (admins only).
#[utoipa::path(get, path = "/api/plugins/changes", tag = "plugins", responses((status = 200, body = Vec<Change>)))]
pub async fn changes(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Change>>, ApiError> {
    admin(&user)?;
    Ok(Json(s.lifecycle.history(None).await?))
}

/// The installed plugins: name, version, contract, digest, form fields, endpoints.
#[utoipa::path(get, path = "/api/plugins", tag = "plugins", responses((status = 200, body = Vec<Object>)))]
pub async fn list(State(s): State<AppState>) -> Json<Vec<serde_json::Value>> {
    Json(
        s.registry
            .list()
            .iter()
            .map(|p| plugin_json(p.description()))
            .collect(),
    )
}

/// A plugin version as JSON (also `mailroom plugin check --json`).
pub fn plugin_json(d: &PluginDescription) -> serde_json::Value {
    serde_json::json!({
        "name": d.name,
        "version": d.version,
        "description": d.description,
        "contract": d.contract,
        "push": d.push,
        "digest": d.digest,
        "fields": d.fields.iter().map(|f| serde_json::json!({
            "name": f.name, "label": f.label, "help": f.help,
            "secret": f.secret, "required": f.required, "default": f.default_value,
        })).collect::<Vec<_>>(),
        "endpoints": d.endpoints.iter().map(|e| serde_json::json!({
            "template": e.template, "purpose": e.purpose,
            "credential": e.credential.as_ref().map(credential_json),
        })).collect::<Vec<_>>(),
        "secret_bindings": d.bindings.iter().map(|b| serde_json::json!({
            "secret": b.secret, "endpoints": b.endpoints,
        })).collect::<Vec<_>>(),
        "secret_bindings_declared": d.bindings_declared,
        "imports": d.imports,
    })
}

fn credential_json(c: &Credential) -> serde_json::Value {
    match c {
        Credential::Bearer(secret) => serde_json::json!({"kind": "bearer", "secret_field": secret}),
        Credential::Basic(b) => serde_json::json!({
            "kind": "basic", "user_field": b.user_field, "secret_field": b.secret_field,
        }),
    }
}
