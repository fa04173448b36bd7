//! Connected emails: the signed-in user's own accounts with their choices
//! (each saved on change), their sync status as a badge, "Connect an email
//! account" (a consent flow where the operator configured one, else the
//! plugin's own form), "Update authentication" and "Disconnect".

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use mailroom_crm::Id;
use mailroom_crm::accounts::{self, Account, Change, Connect, Scope, Visibility};
use mailroom_crm::campaigns;
use mailroom_crm::messages;
use mailroom_runtime::Field;
use mailroom_sync::{Phase, SyncStatus, status};
use serde::Deserialize;

use super::{Confirmed, Nav, PageError, Viewer, render, when};
use crate::AppState;
use crate::error::ApiError;
use crate::oauth::{Begin, signs_in_with_oauth, start_flow};

/// How people know the providers whose plugins ship with Mailroom; other
/// plugins show under their own name.
const LABELS: &[(&str, &str)] = &[
    ("gmail", "Gmail"),
    ("microsoft365", "Microsoft 365"),
    ("imap", "IMAP"),
    ("exchange", "Exchange"),
];

fn label(plugin: &str) -> String {
    LABELS
        .iter()
        .find(|(name, _)| *name == plugin)
        .map_or_else(|| plugin.to_string(), |(_, l)| l.to_string())
}

/// A status badge: its look, its words and, while backfilling, its progress.
struct Badge {
    /// `ok`, `progress`, `error` or `pending`.
    kind: &'static str,
    label: String,
    detail: String,
    done: i64,
    total: i64,
}

fn badge(sync: Option<&SyncStatus>) -> Badge {
    let pending = |label: &str| Badge {
        kind: "pending",
        label: label.into(),
        detail: String::new(),
        done: 0,
        total: 0,
    };
    let Some(s) = sync else {
        return pending("Connecting");
    };
    match s.phase {
        Phase::Connecting => pending("Connecting"),
        Phase::Backfilling => Badge {
            kind: "progress",
            label: "Backfilling".into(),
            detail: match s.progress_total {
                Some(t) => format!("{} of ~{t}", s.progress_done),
                None => format!("{} so far", s.progress_done),
            },
            done: s.progress_done,
            total: s.progress_total.unwrap_or(0),
        },
        Phase::Active => Badge {
            kind: "ok",
            label: "Active".into(),
            detail: s
                .last_sync_at
                .map(|t| format!("last sync {}", when(t)))
                .unwrap_or_default(),
            done: 0,
            total: 0,
        },
        Phase::ReauthRequired => Badge {
            kind: "error",
            label: "Sign-in needed".into(),
            detail: s
                .error
                .clone()
                .unwrap_or_else(|| "Update authentication to resume syncing.".into()),
            done: 0,
            total: 0,
        },
        Phase::Error => Badge {
            kind: "error",
            label: "Error".into(),
            detail: match (&s.error, s.next_run_at) {
                (Some(e), Some(t)) => format!("{e}. Next retry {}.", when(t)),
                (Some(e), None) => e.clone(),
                (None, Some(t)) => format!("Next retry {}.", when(t)),
                (None, None) => String::new(),
            },
            done: 0,
            total: 0,
        },
    }
}

/// One field of a connect or sign-in form.
struct Input {
    name: String,
    label: String,
    help: String,
    required: bool,
    value: String,
}

/// A provider in the connect dialog.
struct ProviderForm {
    name: String,
    label: String,
    /// Sign in on the provider's consent page.
    oauth: bool,
    /// Typed in: the password and what else must be.
    main: Vec<Input>,
    /// Server and other settings, folded away unless one is required.
    advanced: Vec<Input>,
    advanced_open: bool,
    /// Signs in only with a flow the operator has not configured.
    unavailable: bool,
    /// Shown first: the one a failed attempt used, else the first.
    selected: bool,
    /// What the failed attempt typed as the address, and what went wrong.
    address: String,
    error: Option<String>,
}

/// Tokens come from a sign-in flow; nobody types one into a form.
fn typed_in(f: &Field) -> bool {
    !(f.secret && f.name.ends_with("_token"))
}

fn input(f: &Field, values: &BTreeMap<String, String>) -> Input {
    Input {
        name: f.name.clone(),
        label: f.label.clone(),
        help: f.help.clone(),
        required: f.required && f.default_value.is_none(),
        value: if f.secret {
            String::new()
        } else {
            values.get(&f.name).cloned().unwrap_or_default()
        },
    }
}

fn provider_forms(
    s: &AppState,
    attempt: Option<&Attempt>,
    values: &BTreeMap<String, String>,
) -> Vec<ProviderForm> {
    let mut plugins = s.registry.list();
    let rank = |name: &str| {
        LABELS
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or(LABELS.len())
    };
    plugins.sort_by(|a, b| {
        rank(a.name())
            .cmp(&rank(b.name()))
            .then(a.name().cmp(b.name()))
    });
    plugins
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let fields = &p.description().fields;
            let tried = attempt.filter(|a| a.provider == p.name());
            let oauth = signs_in_with_oauth(s, p.name());
            let main = fields
                .iter()
                .filter(|f| f.secret && typed_in(f) && !oauth)
                .map(|f| input(f, values))
                .collect();
            let advanced: Vec<Input> = fields
                .iter()
                .filter(|f| !f.secret && !oauth)
                .map(|f| input(f, values))
                .collect();
            ProviderForm {
                name: p.name().to_string(),
                label: label(p.name()),
                oauth,
                main,
                advanced_open: advanced.iter().any(|i| i.required),
                advanced,
                unavailable: !oauth
                    && fields
                        .iter()
                        .any(|f| f.secret && f.required && !typed_in(f)),
                selected: attempt.map_or(i == 0, |a| a.provider == p.name()),
                address: tried.map(|a| a.address.clone()).unwrap_or_default(),
                error: tried.map(|a| a.error.clone()),
            }
        })
        .collect()
}

/// One of a row's dropdowns: the form field, its column, its options
/// (value, words, chosen).
struct Choice {
    name: &'static str,
    label: &'static str,
    options: Vec<(&'static str, &'static str, bool)>,
}

/// The dropdowns of an account's row; the preferred account only on plans that have it.
fn choices(account: &Account, preferred_plan: bool) -> Vec<Choice> {
    let all = account.scope == Scope::AllContacts;
    let public = account.visibility == Visibility::Public;
    let mut out = vec![
        Choice {
            name: "scope",
            label: "Sync emails from",
            options: vec![
                ("all_contacts", "All contacts", all),
                (
                    "primary_open_deals",
                    "Only the primary contact on open deals",
                    !all,
                ),
            ],
        },
        Choice {
            name: "visibility",
            label: "Email visibility",
            options: vec![
                ("public", "Public", public),
                ("private", "Private", !public),
            ],
        },
        Choice {
            name: "sentiment",
            label: "Sentiment analysis",
            options: vec![
                ("yes", "Allow", account.sentiment),
                ("no", "Don't allow", !account.sentiment),
            ],
        },
    ];
    if preferred_plan {
        out.push(Choice {
            name: "preferred",
            label: "Preferred email account",
            options: vec![
                ("yes", "Yes", account.preferred),
                ("no", "No", !account.preferred),
            ],
        });
    }
    out
}

/// One row of the table.
struct Row {
    id: Id,
    address: String,
    provider: String,
    created: String,
    choices: Vec<Choice>,
    badge: Badge,
    /// The sign-in stopped working, or the operator asks for a new one.
    needs_reauth: bool,
    notice: Option<String>,
    oauth: bool,
    /// The password fields "Update authentication" asks for.
    secrets: Vec<Input>,
    stored: i64,
}

async fn rows(s: &AppState, viewer: &Viewer) -> Result<Vec<Row>, PageError> {
    let mut out = Vec::new();
    for account in accounts::list_owned(&s.db, &s.vault, viewer.user.id).await? {
        let sync = status(&s.db, account.id).await?;
        let notice = campaigns::notice(&s.db, &account).await?;
        let counts = messages::counts(&s.db, account.id).await?;
        let secrets = s
            .registry
            .get(&account.provider)
            .map(|p| {
                p.description()
                    .fields
                    .iter()
                    .filter(|f| f.secret && typed_in(f))
                    .map(|f| input(f, &BTreeMap::new()))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Row {
            id: account.id,
            provider: label(&account.provider),
            created: when(account.created_at),
            choices: choices(&account, viewer.user.plan.has_preferred_account()),
            badge: badge(sync.as_ref()),
            needs_reauth: notice.is_some()
                || sync
                    .as_ref()
                    .is_some_and(|s| s.phase == Phase::ReauthRequired),
            notice: notice.map(|n| {
                format!(
                    "Your administrator asks you to sign in again by {}.",
                    when(n.deadline)
                )
            }),
            oauth: signs_in_with_oauth(s, &account.provider),
            secrets,
            stored: counts.stored,
            address: account.address,
        });
    }
    Ok(out)
}

#[derive(Template)]
#[template(path = "emails.html")]
struct EmailsPage {
    nav: Nav,
    rows: Vec<Row>,
    preferred_plan: bool,
    providers: Vec<ProviderForm>,
    /// Whether to open the connect dialog at once (an attempt failed).
    connect_open: bool,
    /// Why an attempt failed whose provider has no form here.
    connect_error: Option<String>,
    /// The "Update authentication" form to show again, with what went wrong.
    reauth: Option<(Id, String)>,
}

/// A connect attempt that failed, shown again.
struct Attempt {
    provider: String,
    address: String,
    error: String,
}

async fn show(
    s: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    connect: Option<(Attempt, BTreeMap<String, String>)>,
    reauth: Option<(Id, String)>,
) -> Result<Response, PageError> {
    let (attempt, values) = match connect {
        Some((a, v)) => (Some(a), v),
        None => (None, BTreeMap::new()),
    };
    Ok(render(
        status,
        &EmailsPage {
            nav: viewer.nav("emails"),
            rows: rows(s, viewer).await?,
            preferred_plan: viewer.user.plan.has_preferred_account(),
            connect_error: attempt
                .as_ref()
                .filter(|a| s.registry.get(&a.provider).is_none())
                .map(|a| a.error.clone()),
            providers: provider_forms(s, attempt.as_ref(), &values),
            connect_open: attempt.is_some(),
            reauth,
        },
    ))
}

/// The Connected emails page.
pub(crate) async fn page(State(s): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    show(&s, &viewer, StatusCode::OK, None, None).await
}

/// An error as the form shows it: the field's label rather than its name.
fn worded(e: &ApiError, fields: &[Field]) -> String {
    let (field, why) = e.field_and_why();
    let name = field.map(|f| {
        f.strip_prefix("settings.")
            .or_else(|| f.strip_prefix("secrets."))
            .unwrap_or(f)
    });
    match name.and_then(|n| fields.iter().find(|f| f.name == n)) {
        Some(f) => format!("{}: {why}", f.label),
        None if field == Some("address") => format!("Email address: {why}"),
        None => why.to_string(),
    }
}

/// What a connect or sign-in form sent: the plugin's fields, split into
/// settings and secrets; empty ones are left out (their defaults apply).
fn split(
    fields: &[Field],
    form: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let (mut settings, mut secrets) = (BTreeMap::new(), BTreeMap::new());
    for f in fields {
        let Some(value) = form.get(&format!("f.{}", f.name)) else {
            continue;
        };
        let value = if f.secret {
            value.clone()
        } else {
            value.trim().to_string()
        };
        if value.is_empty() {
            continue;
        }
        if f.secret {
            secrets.insert(f.name.clone(), value);
        } else {
            settings.insert(f.name.clone(), value);
        }
    }
    (settings, secrets)
}

fn field<'a>(form: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    form.get(name).map_or("", String::as_str)
}

/// Connect an account with a plugin's form.
pub(crate) async fn connect(
    State(s): State<AppState>,
    viewer: Viewer,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    viewer.check(field(&form, "_csrf"))?;
    let provider = field(&form, "provider").to_string();
    let address = field(&form, "address").trim().to_string();
    let fields = s
        .registry
        .get(&provider)
        .map(|p| p.description().fields.clone())
        .unwrap_or_default();
    let (settings, secrets) = split(&fields, &form);
    let c = Connect::new(&provider, &address, settings.clone(), secrets);
    match crate::accounts::connect_account(&s, &viewer.user, &c).await {
        Ok(_) => Ok(Redirect::to("/emails").into_response()),
        Err(e) => {
            let attempt = Attempt {
                provider,
                address,
                error: worded(&e, &fields),
            };
            let values = settings.into_iter().collect();
            show(&s, &viewer, e.status(), Some((attempt, values)), None).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct OAuthForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    address: String,
}

/// Connect an account on the provider's consent page.
pub(crate) async fn connect_oauth(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(provider): Path<String>,
    Form(f): Form<OAuthForm>,
) -> Result<Response, PageError> {
    viewer.check(&f.csrf)?;
    let begin = Begin {
        account_id: None,
        login_hint: Some(f.address.trim().to_string()).filter(|a| !a.is_empty()),
    };
    let url = start_flow(&s, &viewer.user, &provider, &begin).await?;
    Ok(Redirect::to(&url).into_response())
}

/// The dropdowns of one row.
#[derive(Deserialize)]
pub(crate) struct Choices {
    #[serde(rename = "_csrf")]
    csrf: String,
    scope: Option<Scope>,
    visibility: Option<Visibility>,
    sentiment: Option<String>,
    preferred: Option<String>,
}

fn yes(field: &str, value: Option<String>) -> Result<Option<bool>, ApiError> {
    match value.as_deref() {
        None => Ok(None),
        Some("yes") => Ok(Some(true)),
        Some("no") => Ok(Some(false)),
        Some(other) => Err(ApiError::invalid(
            field,
            format!("`{other}` is neither `yes` nor `no`"),
        )),
    }
}

/// Save a row's choices (the dropdowns save on change).
pub(crate) async fn settings(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Id>,
    Form(f): Form<Choices>,
) -> Result<Response, PageError> {
    viewer.check(&f.csrf)?;
    let change = Change {
        scope: f.scope,
        visibility: f.visibility,
        sentiment: yes("sentiment", f.sentiment)?,
        preferred: yes("preferred", f.preferred)?,
        ..Change::default()
    };
    crate::accounts::change_account(&s, &viewer.user, id, &change).await?;
    Ok(Redirect::to("/emails").into_response())
}

/// "Update authentication": the consent page again, or new credentials,
/// signed in with before they replace the old ones.
pub(crate) async fn reauth(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Id>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    viewer.check(field(&form, "_csrf"))?;
    let account: Account = accounts::get_owned(&s.db, &s.vault, &viewer.user, id).await?;
    if signs_in_with_oauth(&s, &account.provider) {
        let begin = Begin {
            account_id: Some(id),
            login_hint: None,
        };
        let url = start_flow(&s, &viewer.user, &account.provider, &begin).await?;
        return Ok(Redirect::to(&url).into_response());
    }
    let fields = s
        .registry
        .get(&account.provider)
        .map(|p| p.description().fields.clone())
        .unwrap_or_default();
    let (_, secrets) = split(&fields, &form);
    if secrets.is_empty() {
        let why = "Enter the new password (or app password) for this account.".to_string();
        return show(
            &s,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some((id, why)),
        )
        .await;
    }
    let change = Change {
        secrets: Some(secrets),
        ..Change::default()
    };
    match crate::accounts::change_account(&s, &viewer.user, id, &change).await {
        Ok(_) => Ok(Redirect::to("/emails").into_response()),
        Err(e) => {
            let why = worded(&e, &fields);
            show(&s, &viewer, e.status(), None, Some((id, why))).await
        }
    }
}

/// Disconnect, after the confirmation dialog.
pub(crate) async fn disconnect(
    State(s): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Id>,
    Form(f): Form<Confirmed>,
) -> Result<Response, PageError> {
    viewer.check(&f.csrf)?;
    crate::accounts::disconnect_account(&s, &viewer.user, id).await?;
    Ok(Redirect::to("/emails").into_response())
}
