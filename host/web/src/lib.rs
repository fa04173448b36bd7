//! `mailroom-web`: the HTTP API a CRM and its users talk to.
//!
//! The web pages people use (`pages`: sign-in, Connected emails, contact
//! and deal records, a message in full, the operators' Plugins page), and
//! JSON over axum: sign-in sessions and API tokens, contacts and deals
//! (created, changed, deleted and bulk-imported by the CRM), connected
//! accounts (connect, change, re-authorise, disconnect) with their sync
//! status, the OAuth consent flow and its callback ("Connect Gmail"), and
//! the contact and deal timelines, each answering only what the caller may
//! see. The OpenAPI document is served at `/api/openapi.json`.
//! This layer validates, authorises and translates; the rules live in
//! `mailroom-crm` and `mailroom-sync`, and it writes no table but its own
//! `auth_tokens` and `oauth_flows`.

mod accounts;
mod auth;
mod automations;
mod crm;
mod error;
mod oauth;
mod openapi;
mod pages;
mod plugins;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use mailroom_lifecycle::Lifecycle;
use mailroom_oauth::OAuth;
use mailroom_outbound::Outbound;
use mailroom_runtime::{OperatorGrant, Registry};
use mailroom_store::Db;
use mailroom_vault::Vault;

pub use auth::api_token;
pub use error::ApiError;
pub use plugins::plugin_json;

/// What every handler reaches.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The operator's sealing key.
    pub vault: Arc<Vault>,
    /// The installed plugins (used to verify accounts on connect).
    pub registry: Arc<Registry>,
    /// What the operator grants plugins.
    pub grant: OperatorGrant,
    /// The OAuth providers ("Connect Gmail").
    pub oauth: Arc<OAuth>,
    /// Sending: one message, and automated emails.
    pub outbound: Outbound,
    /// Installing, upgrading, rolling back and removing plugins (over the
    /// same registry as `registry`).
    pub lifecycle: Arc<Lifecycle>,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/openapi.json", get(openapi::document))
        .route(
            "/api/plugins",
            get(plugins::list)
                .post(plugins::install)
                .layer(axum::extract::DefaultBodyLimit::max(plugins::FILE_LIMIT)),
        )
        .route("/api/plugins/changes", get(plugins::changes))
        .route("/api/plugins/pending", get(plugins::pending))
        .route(
            "/api/plugins/{name}",
            axum::routing::delete(plugins::remove),
        )
        .route("/api/plugins/{name}/rollback", post(plugins::rollback))
        .route("/api/plugins/{name}/approve", post(plugins::approve))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/me", get(auth::me))
        .route("/api/tokens", post(auth::create_token))
        .route("/api/users", get(auth::list_users).post(auth::create_user))
        .route(
            "/api/contacts",
            get(crm::list_contacts).post(crm::create_contact),
        )
        .route("/api/contacts/import", post(crm::import_contacts))
        .route(
            "/api/contacts/{id}",
            get(crm::get_contact)
                .patch(crm::update_contact)
                .delete(crm::delete_contact),
        )
        .route(
            "/api/contacts/{id}/activities",
            get(crm::contact_activities),
        )
        .route("/api/contacts/{id}/emails", get(crm::contact_emails))
        .route("/api/contacts/{id}/sentiment", get(crm::contact_sentiment))
        .route("/api/deals/{id}/sentiment", get(crm::deal_sentiment))
        .route("/api/deals", get(crm::list_deals).post(crm::create_deal))
        .route("/api/deals/import", post(crm::import_deals))
        .route(
            "/api/deals/{id}",
            get(crm::get_deal)
                .patch(crm::update_deal)
                .delete(crm::delete_deal),
        )
        .route("/api/deals/{id}/activities", get(crm::deal_activities))
        .route("/api/deals/{id}/emails", get(crm::deal_emails))
        .route("/api/accounts", get(accounts::list).post(accounts::connect))
        .route(
            "/api/accounts/{id}",
            get(accounts::get)
                .patch(accounts::change)
                .delete(accounts::disconnect),
        )
        .route("/api/accounts/{id}/send", post(accounts::send))
        .route("/api/accounts/{id}/skipped", get(accounts::skipped))
        .route(
            "/api/reauth-campaigns",
            get(accounts::reauth_campaigns).post(accounts::require_reauth),
        )
        .route("/api/oauth/{provider}", post(oauth::begin))
        .route("/api/automations/send-email", post(automations::send_email))
        .route(
            "/api/automations/send-email/{key}",
            get(automations::get_send),
        )
        .route("/oauth/{provider}/callback", get(oauth::callback))
        .merge(pages::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(state)
}
