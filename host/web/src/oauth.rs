//! "Connect Gmail" and "Update authentication" for accounts that sign in
//! with OAuth: a consent flow begun for the signed-in user, and the
//! provider's callback, which exchanges the code (with the flow's PKCE
//! verifier), has the plugin sign in once, and connects or re-authorises
//! the account. Owns `oauth_flows`. Tokens go straight into the account's
//! sealed secrets; none is shown, logged or given to a plugin.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use mailroom_crm::Id;
use mailroom_crm::accounts::{self, Account, Change, Connect};
use mailroom_crm::users::{self, User};
use mailroom_oauth::Provider;
use mailroom_runtime::Secret;
use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, unix_now};
use mailroom_sync::schedule_now;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::accounts::verify;
use crate::auth::CurrentUser;
use crate::error::{ApiError, JsonBody};

/// How long a consent flow may take, from begin to callback.
const FLOW_SECONDS: i64 = 15 * 60;

/// What the consent flow is for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Begin {
    /// "Update authentication" of this account of the caller's; absent to connect a new one.
    #[serde(default)]
    pub account_id: Option<Id>,
    /// The address to pre-select on the consent page.
    #[serde(default)]
    pub login_hint: Option<String>,
}

/// Where to send the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct Consent {
    /// The provider's consent page; it sends the browser back to the host's callback.
    pub authorize_url: String,
}

fn provider<'a>(s: &'a AppState, name: &str) -> Result<&'a Provider, ApiError> {
    s.oauth.for_plugin(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "`{name}` accounts do not sign in with OAuth on this host (no OAuth client is configured for it)"
        ))
    })
}

fn bound_to(state: &str) -> Vec<u8> {
    format!("oauth_flow:{state}").into_bytes()
}

/// Begin a consent flow for a new account of `provider`, or for signing an
/// existing one in again. Open the returned URL in the browser.
#[utoipa::path(post, path = "/api/oauth/{provider}", params(("provider" = String, Path)), request_body = Begin, tag = "accounts",
    responses((status = 200, body = Consent), (status = 404, body = crate::error::ErrorBody)))]
pub async fn begin(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Begin>,
) -> Result<Json<Consent>, ApiError> {
    Ok(Json(Consent {
        authorize_url: start_flow(&s, &user, &name, &b).await?,
    }))
}

/// Whether `plugin`'s accounts sign in with OAuth on this host.
pub(crate) fn signs_in_with_oauth(s: &AppState, plugin: &str) -> bool {
    s.oauth.for_plugin(plugin).is_some()
}

/// Begin a consent flow for `user`: the provider's consent page to send the browser to.
pub(crate) async fn start_flow(
    s: &AppState,
    user: &User,
    name: &str,
    b: &Begin,
) -> Result<String, ApiError> {
    let p = provider(s, name)?;
    let hint = match b.account_id {
        Some(id) => {
            let account = accounts::get_owned(&s.db, &s.vault, user, id).await?;
            if account.provider != name {
                return Err(ApiError::invalid(
                    "account_id",
                    format!("is a `{}` account, not `{name}`", account.provider),
                ));
            }
            Some(account.address)
        }
        None => b.login_hint.clone(),
    };
    let started = p.start(hint.as_deref());
    forget_stale(&s.db).await?;
    sqlx::query(
        "INSERT INTO oauth_flows (state, user_id, provider, account_id, sealed_verifier, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&started.state)
    .bind(user.id)
    .bind(name)
    .bind(b.account_id)
    .bind(s.vault.seal(&bound_to(&started.state), started.verifier.expose().as_bytes()))
    .bind(unix_now())
    .execute(s.db.pool())
    .await?;
    Ok(started.url)
}

/// The provider's answer, as it sends the browser back.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// A begun flow, taken (each `state` is good once).
struct Flow {
    user_id: Id,
    provider: String,
    account_id: Option<Id>,
    verifier: Secret,
    created_at: i64,
}

async fn take_flow(s: &AppState, state: &str) -> Result<Option<Flow>, ApiError> {
    let mut tx = s.db.begin().await?;
    let row = sqlx::query(
        "SELECT user_id, provider, account_id, sealed_verifier, created_at FROM oauth_flows WHERE state = $1",
    )
    .bind(state)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    sqlx::query("DELETE FROM oauth_flows WHERE state = $1")
        .bind(state)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let sealed: Vec<u8> = row.try_get("sealed_verifier")?;
    let verifier = s
        .vault
        .open(&bound_to(state), &sealed)
        .map_err(ApiError::internal)?;
    Ok(Some(Flow {
        user_id: row.try_get("user_id")?,
        provider: row.try_get("provider")?,
        account_id: row.try_get("account_id")?,
        verifier: Secret::new(String::from_utf8_lossy(&verifier).into_owned()),
        created_at: row.try_get("created_at")?,
    }))
}

fn refused(why: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, why)
}

/// Finish a flow: tokens, the plugin's sign-in, then the account.
async fn finish(s: &AppState, name: &str, q: Callback) -> Result<Account, ApiError> {
    let p = provider(s, name)?;
    let state = q
        .state
        .ok_or_else(|| refused("the sign-in answer has no `state`; start again"))?;
    let flow = take_flow(s, &state)
        .await?
        .filter(|f| f.provider == name && unix_now() - f.created_at <= FLOW_SECONDS)
        .ok_or_else(|| refused("this sign-in is unknown or took too long; start again"))?;
    if let Some(error) = q.error {
        return Err(refused(format!(
            "the sign-in was not completed ({error}); start again and allow access"
        )));
    }
    let code = q
        .code
        .ok_or_else(|| refused("the sign-in answer has no `code`; start again"))?;
    let tokens = p.exchange(&code, &flow.verifier).await.map_err(|e| {
        tracing::warn!(error = %e, "OAuth code exchange failed");
        ApiError::new(StatusCode::BAD_GATEWAY, format!("signing in failed: {e}"))
    })?;
    if tokens.refresh.is_none() {
        return Err(refused(
            "the provider gave no refresh token: remove this app's access in the account's security settings, then connect again",
        ));
    }
    let email = tokens.email.clone().ok_or_else(|| {
        refused("the provider did not say which address signed in (the `email` scope is needed)")
    })?;
    let user = users::get(&s.db, flow.user_id).await?;
    let mut secrets = BTreeMap::new();
    mailroom_oauth::store(&mut secrets, &p.config().token_field, &tokens);
    let for_plugin: BTreeMap<String, String> = secrets
        .iter()
        .filter(|(k, _)| !mailroom_oauth::is_host_only(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let account = match flow.account_id {
        Some(id) => {
            let account = accounts::get_owned(&s.db, &s.vault, &user, id).await?;
            let same =
                mailroom_mail::normalize_address(&email).as_deref() == Some(&account.address);
            if !same {
                return Err(refused(format!(
                    "you signed in as {email}, but this account is {}: sign in as {}",
                    account.address, account.address
                )));
            }
            verify(s, name, &account.address, &account.settings, &for_plugin).await?;
            let change = Change {
                secrets: Some(secrets),
                ..Change::default()
            };
            accounts::change(&s.db, &s.vault, &user, id, &change).await?
        }
        None => {
            verify(s, name, &email, &BTreeMap::new(), &for_plugin).await?;
            let connect = Connect::new(name, &email, BTreeMap::new(), secrets);
            accounts::connect(&s.db, &s.vault, &user, &connect).await?
        }
    };
    schedule_now(&s.db, account.id).await?;
    Ok(account)
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><main><h1>{title}</h1><p role=\"status\">{text}</p><p><a href=\"/\">Back to Mailroom</a></p></main></body></html>",
        title = html_escape::encode_text(title),
        text = html_escape::encode_text(text),
    );
    (status, Html(body)).into_response()
}

/// Where the provider sends the browser back after the consent page.
pub async fn callback(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<Callback>,
) -> Response {
    match finish(&s, &name, q).await {
        Ok(account) => page(
            StatusCode::OK,
            "Account connected",
            &format!(
                "{} is connected; its mail is being synced. You can close this window.",
                account.address
            ),
        ),
        Err(e) => {
            let (status, why) = e.into_parts();
            page(status, "Account not connected", &why)
        }
    }
}

/// Revoke a disconnected account's grant at the provider, where it has one.
/// Best effort: the account goes either way.
pub async fn revoke(s: &AppState, account: &Account) {
    let Some(p) = s.oauth.for_plugin(&account.provider) else {
        return;
    };
    let Ok(secrets) = accounts::secrets(&s.db, &s.vault, account.id).await else {
        return;
    };
    if let Some(stored) = mailroom_oauth::stored(&secrets)
        && let Err(e) = p.revoke(&Secret::new(stored.refresh)).await
    {
        tracing::warn!(error = %e, "revoking a disconnected account's grant failed");
    }
}

/// Drop flows nobody finished in time.
async fn forget_stale(db: &Db) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM oauth_flows WHERE created_at < $1")
        .bind(unix_now() - FLOW_SECONDS)
        .execute(db.pool())
        .await
        .map(|_| ())
}
