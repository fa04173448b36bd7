//! The installed plugins, as operators and the account form see them.

use axum::Json;
use axum::extract::State;
use mailroom_runtime::{Credential, PluginDescription};

use crate::AppState;

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
        "digest": d.digest,
        "fields": d.fields.iter().map(|f| serde_json::json!({
            "name": f.name, "label": f.label, "help": f.help,
            "secret": f.secret, "required": f.required, "default": f.default_value,
        })).collect::<Vec<_>>(),
        "endpoints": d.endpoints.iter().map(|e| serde_json::json!({
            "template": e.template, "purpose": e.purpose,
            "credential": e.credential.as_ref().map(credential_json),
        })).collect::<Vec<_>>(),
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
