//! Connected accounts over HTTP: each user sees and changes only their own.
//! Connecting and "Update authentication" run the plugin's `verify` first,
//! so bad credentials are refused at once with what to try.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mailroom_crm::accounts::{self, Account, Change, Connect};
use mailroom_runtime::{AccountInput, CallError, ProviderError, Secret, Secrets};
use mailroom_sync::{SyncStatus, schedule_now, status};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, IdPath, JsonBody};

/// An account with its sync status.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    /// The account.
    #[serde(flatten)]
    pub account: Account,
    /// Where its sync stands.
    pub sync: Option<SyncStatus>,
}

async fn view(state: &AppState, account: Account) -> Result<AccountView, ApiError> {
    let sync = status(&state.db, account.id).await?;
    Ok(AccountView { account, sync })
}

/// Check the settings against the plugin's form and sign in once.
async fn verify(
    state: &AppState,
    provider: &str,
    address: &str,
    settings: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let plugin = state.registry.get(provider).ok_or_else(|| {
        ApiError::invalid(
            "provider",
            format!("no plugin named `{provider}` is installed"),
        )
    })?;
    let fields = &plugin.description().fields;
    for name in settings.keys() {
        match fields.iter().find(|f| &f.name == name) {
            None => {
                return Err(ApiError::invalid(
                    format!("settings.{name}"),
                    format!("`{provider}` has no such setting"),
                ));
            }
            Some(f) if f.secret => {
                return Err(ApiError::invalid(
                    format!("settings.{name}"),
                    "is a secret: send it in `secrets`",
                ));
            }
            Some(_) => {}
        }
    }
    for name in secrets.keys() {
        if !fields.iter().any(|f| &f.name == name && f.secret) {
            return Err(ApiError::invalid(
                format!("secrets.{name}"),
                format!("`{provider}` has no such secret"),
            ));
        }
    }
    for f in fields.iter().filter(|f| f.required) {
        let (given, place) = if f.secret {
            (secrets.contains_key(&f.name), "secrets")
        } else {
            (settings.contains_key(&f.name), "settings")
        };
        if !given && f.default_value.is_none() {
            return Err(ApiError::invalid(
                format!("{place}.{}", f.name),
                format!("{} is required", f.label),
            ));
        }
    }
    let mut sealed = Secrets::new();
    for (k, v) in secrets {
        sealed.insert(k.clone(), Secret::new(v.clone()));
    }
    let input = AccountInput {
        id: "new".into(),
        address: address.into(),
        settings: settings.clone(),
        secrets: sealed,
    };
    let runtime = state.registry.runtime();
    let outcome = match runtime.start(&plugin, &input, &state.grant).await {
        Ok(mut run) => run.verify().await,
        Err(e) => Err(e),
    };
    outcome.map_err(|e| match e {
        CallError::Provider(ProviderError::BadConfig(c)) => ApiError::invalid(format!("settings.{}", c.field), c.why),
        CallError::Provider(ProviderError::AuthFailed(why)) => ApiError::invalid(
            "secrets",
            format!("sign-in failed: {why} (check the password; where two-factor sign-in is on, use an app password)"),
        ),
        CallError::Provider(ProviderError::Unreachable(why)) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("server unreachable: {why} (check the server name; the server may need a VPN)"),
        ),
        other => ApiError::new(StatusCode::BAD_GATEWAY, format!("the `{provider}` plugin {other}")),
    })
}

/// The caller's connected accounts.
#[utoipa::path(get, path = "/api/accounts", tag = "accounts", responses((status = 200, body = Vec<AccountView>)))]
pub async fn list(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    let mut out = Vec::new();
    for account in accounts::list_owned(&s.db, &s.vault, user.id).await? {
        out.push(view(&s, account).await?);
    }
    Ok(Json(out))
}

/// Connect a mailbox: the plugin signs in once, then the backfill starts.
#[utoipa::path(post, path = "/api/accounts", request_body = Connect, tag = "accounts",
    responses((status = 201, body = AccountView), (status = 422, body = crate::error::ErrorBody), (status = 502, body = crate::error::ErrorBody)))]
pub async fn connect(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(c): JsonBody<Connect>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    verify(&s, &c.provider, &c.address, &c.settings, &c.secrets).await?;
    let account = accounts::connect(&s.db, &s.vault, &user, &c).await?;
    schedule_now(&s.db, account.id).await?;
    Ok((StatusCode::CREATED, Json(view(&s, account).await?)))
}

/// One of the caller's accounts.
#[utoipa::path(get, path = "/api/accounts/{id}", params(("id" = i64, Path)), tag = "accounts", responses((status = 200, body = AccountView)))]
pub async fn get(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> Result<Json<AccountView>, ApiError> {
    let account = accounts::get_owned(&s.db, &s.vault, &user, id).await?;
    Ok(Json(view(&s, account).await?))
}

async fn reverify(s: &AppState, account: &Account, change: &Change) -> Result<(), ApiError> {
    if change.secrets.is_none() && change.settings.is_none() {
        return Ok(());
    }
    let secrets = match &change.secrets {
        Some(new) => new.clone(),
        None => accounts::secrets(&s.db, &s.vault, account.id).await?,
    };
    let settings = change.settings.as_ref().unwrap_or(&account.settings);
    verify(s, &account.provider, &account.address, settings, &secrets).await
}

/// Change an account's choices, settings or credentials ("Update authentication").
#[utoipa::path(patch, path = "/api/accounts/{id}", params(("id" = i64, Path)), request_body = Change, tag = "accounts", responses((status = 200, body = AccountView)))]
pub async fn change(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
    JsonBody(change): JsonBody<Change>,
) -> Result<Json<AccountView>, ApiError> {
    let account = accounts::get_owned(&s.db, &s.vault, &user, id).await?;
    reverify(&s, &account, &change).await?;
    let account = accounts::change(&s.db, &s.vault, &user, id, &change).await?;
    if change.secrets.is_some() || change.settings.is_some() || change.scope.is_some() {
        schedule_now(&s.db, id).await?;
    }
    Ok(Json(view(&s, account).await?))
}

/// Disconnect an account: its mail goes, except what another account holds.
#[utoipa::path(delete, path = "/api/accounts/{id}", params(("id" = i64, Path)), tag = "accounts", responses((status = 204)))]
pub async fn disconnect(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    accounts::disconnect(&s.db, &s.vault, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
