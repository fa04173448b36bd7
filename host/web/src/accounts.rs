//! Connected accounts over HTTP: each user sees and changes only their own.
//! Connecting and "Update authentication" run the plugin's `verify` first,
//! so bad credentials are refused at once with what to try.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mailroom_crm::Id;
use mailroom_crm::accounts::{self, Account, Change, Connect};
use mailroom_crm::campaigns::{self, Campaign, NewCampaign, Notice};
use mailroom_crm::messages::{self, Counts};
use mailroom_crm::users::User;
use mailroom_outbound::SendError;
use mailroom_runtime::{
    AccountInput, CallError, ProviderError, Secret, Secrets, without_addresses,
};
use mailroom_sync::{SyncStatus, schedule_now, status};
use serde::{Deserialize, Serialize};
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
    /// How much of its mail is held: copies stored, messages seen, messages skipped.
    pub mail: Counts,
    /// The operator requires it to sign in again by a deadline.
    pub reauth_notice: Option<Notice>,
}

pub(crate) async fn view(state: &AppState, account: Account) -> Result<AccountView, ApiError> {
    let sync = status(&state.db, account.id).await?;
    let mail = messages::counts(&state.db, account.id).await?;
    let reauth_notice = campaigns::notice(&state.db, &account).await?;
    Ok(AccountView {
        account,
        sync,
        mail,
        reauth_notice,
    })
}

/// A message the provider could not deliver, skipped with its reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct Skipped {
    /// The provider's id of the message.
    pub provider_id: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The messages of one of the caller's accounts that were skipped, with why.
#[utoipa::path(get, path = "/api/accounts/{id}/skipped", params(("id" = i64, Path)), tag = "accounts", responses((status = 200, body = Vec<Skipped>)))]
pub async fn skipped(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> Result<Json<Vec<Skipped>>, ApiError> {
    let account = accounts::get_owned(&s.db, &s.vault, &user, id).await?;
    let list = messages::failures(&s.db, account.id).await?;
    Ok(Json(
        list.into_iter()
            .map(|(provider_id, reason)| Skipped {
                provider_id,
                reason,
            })
            .collect(),
    ))
}

/// Check the settings against the plugin's form and sign in once.
pub(crate) async fn verify(
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
    outcome.map_err(|e| call_error(provider, e))
}

/// A failed plugin call as the form or the caller should read it: with no
/// IP address in it (a user learns nothing of what a name resolved to inside
/// the operator's network; the operator's log has the whole error).
fn call_error(provider: &str, e: CallError) -> ApiError {
    tracing::info!(plugin = %provider, error = %e, "verifying an account failed");
    let e = match e {
        CallError::Provider(ProviderError::BadConfig(c)) => {
            CallError::Provider(ProviderError::BadConfig(mailroom_runtime::ConfigError {
                why: without_addresses(&c.why),
                ..c
            }))
        }
        CallError::Provider(ProviderError::AuthFailed(why)) => {
            CallError::Provider(ProviderError::AuthFailed(without_addresses(&why)))
        }
        CallError::Provider(ProviderError::Unreachable(why)) => {
            CallError::Provider(ProviderError::Unreachable(without_addresses(&why)))
        }
        other => other,
    };
    match e {
        CallError::Provider(ProviderError::BadConfig(c)) => {
            ApiError::invalid(format!("settings.{}", c.field), c.why)
        }
        CallError::Provider(ProviderError::AuthFailed(why)) => ApiError::invalid(
            "secrets",
            format!(
                "sign-in failed: {why} (check the password; where two-factor sign-in is on, use an app password)"
            ),
        ),
        CallError::Provider(ProviderError::Unreachable(why)) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("server unreachable: {why} (check the server name; the server may need a VPN)"),
        ),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            without_addresses(&format!("the `{provider}` plugin {other}")),
        ),
    }
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
    let account = connect_account(&s, &user, &c).await?;
    Ok((StatusCode::CREATED, Json(view(&s, account).await?)))
}

/// Connect a mailbox for `user` once its plugin signed in, and start its backfill.
pub(crate) async fn connect_account(
    s: &AppState,
    user: &User,
    c: &Connect,
) -> Result<Account, ApiError> {
    verify(s, &c.provider, &c.address, &c.settings, &c.secrets).await?;
    let account = accounts::connect(&s.db, &s.vault, user, c).await?;
    schedule_now(&s.db, account.id).await?;
    Ok(account)
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
        None => accounts::secrets(&s.db, &s.vault, account.id)
            .await?
            .into_iter()
            .filter(|(name, _)| !mailroom_oauth::is_host_only(name))
            .collect(),
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
    let account = change_account(&s, &user, id, &change).await?;
    Ok(Json(view(&s, account).await?))
}

/// Change one of `user`'s accounts; new credentials or settings are
/// signed in with first, and what changes whose mail is synced syncs at once.
pub(crate) async fn change_account(
    s: &AppState,
    user: &User,
    id: Id,
    change: &Change,
) -> Result<Account, ApiError> {
    let account = accounts::get_owned(&s.db, &s.vault, user, id).await?;
    reverify(s, &account, change).await?;
    let account = accounts::change(&s.db, &s.vault, user, id, change).await?;
    if change.secrets.is_some() || change.settings.is_some() || change.scope.is_some() {
        schedule_now(&s.db, id).await?;
    }
    Ok(account)
}

/// Disconnect an account: its mail goes, except what another account holds.
#[utoipa::path(delete, path = "/api/accounts/{id}", params(("id" = i64, Path)), tag = "accounts", responses((status = 204)))]
pub async fn disconnect(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    disconnect_account(&s, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disconnect one of `user`'s accounts, revoking its grant where it has one.
pub(crate) async fn disconnect_account(s: &AppState, user: &User, id: Id) -> Result<(), ApiError> {
    let account = accounts::get_owned(&s.db, &s.vault, user, id).await?;
    crate::oauth::revoke(s, &account).await;
    accounts::disconnect(&s.db, &s.vault, user, id).await?;
    Ok(())
}

/// A message to send from a connected account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// Copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// What was sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentView {
    /// The Message-ID the message went out with.
    pub message_id: String,
    /// The provider's id of the saved copy, where it told it.
    pub provider_id: Option<String>,
}

fn addresses(field: &str, list: &[String]) -> Result<Vec<String>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            mailroom_mail::normalize_address(a).ok_or_else(|| {
                ApiError::invalid(format!("{field}[{i}]"), "is not an email address")
            })
        })
        .collect()
}

/// Send a message from one of the caller's accounts, through its plugin.
/// The sent copy reaches the timelines with the account's next sync, which
/// is scheduled at once.
#[utoipa::path(post, path = "/api/accounts/{id}/send", params(("id" = i64, Path)), request_body = SendRequest, tag = "accounts",
    responses((status = 202, body = SentView), (status = 422, body = crate::error::ErrorBody), (status = 502, body = crate::error::ErrorBody)))]
pub async fn send(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath,
    JsonBody(req): JsonBody<SendRequest>,
) -> Result<(StatusCode, Json<SentView>), ApiError> {
    let account = accounts::get_owned(&s.db, &s.vault, &user, id).await?;
    let to = addresses("to", &req.to)?;
    let cc = addresses("cc", &req.cc)?;
    if to.is_empty() {
        return Err(ApiError::invalid(
            "to",
            "at least one recipient is required",
        ));
    }
    if req.subject.contains(['\r', '\n']) {
        return Err(ApiError::invalid("subject", "must be one line"));
    }
    let draft = mailroom_mail::Draft {
        from_name: Some(user.name.clone()).filter(|n| !n.is_empty()),
        from: account.address.clone(),
        to: to.clone(),
        cc: cc.clone(),
        subject: req.subject,
        text: req.text,
    };
    let unique = format!("{}.{}", mailroom_store::next_id(), account.id);
    let composed = mailroom_mail::compose(&draft, mailroom_store::unix_now(), &unique);
    let recipients: Vec<String> = to.into_iter().chain(cc).collect();
    let sent = s
        .outbound
        .send(&account, &recipients, &composed)
        .await
        .map_err(|e| match e {
            SendError::Crm(e) => ApiError::from(e),
            SendError::Call(e) => call_error(&account.provider, e),
            e @ SendError::NoPlugin(_) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SentView {
            message_id: sent.message_id,
            provider_id: sent.provider_id,
        }),
    ))
}

/// Require the accounts of a provider connected before a date to sign in
/// again by a deadline (admins only). Until then their owners see a notice;
/// from the deadline those not re-authorised stop syncing.
#[utoipa::path(post, path = "/api/reauth-campaigns", request_body = NewCampaign, tag = "accounts",
    responses((status = 201, body = Campaign), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn require_reauth(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(new): JsonBody<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    crate::auth::admin(&user)?;
    if s.registry.get(new.provider.trim()).is_none() {
        return Err(ApiError::invalid(
            "provider",
            format!("no plugin named `{}` is installed", new.provider.trim()),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(campaigns::create(&s.db, &new).await?),
    ))
}

/// Every re-authorisation campaign, newest first (admins only).
#[utoipa::path(get, path = "/api/reauth-campaigns", tag = "accounts", responses((status = 200, body = Vec<Campaign>)))]
pub async fn reauth_campaigns(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Campaign>>, ApiError> {
    crate::auth::admin(&user)?;
    Ok(Json(campaigns::list(&s.db).await?))
}
