//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use crate::{accounts, auth, crm, error, plugins};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mailroom API",
        description = "Mail synced into the CRM: contacts, deals, connected accounts and timelines. \
        Authenticate with `Authorization: Bearer <token>` (from /api/login or /api/tokens) or the session cookie."
    ),
    paths(
        auth::login,
        auth::logout,
        auth::me,
        auth::create_token,
        auth::list_users,
        auth::create_user,
        crm::list_contacts,
        crm::create_contact,
        crm::import_contacts,
        crm::get_contact,
        crm::update_contact,
        crm::delete_contact,
        crm::list_deals,
        crm::create_deal,
        crm::import_deals,
        crm::get_deal,
        crm::update_deal,
        crm::delete_deal,
        crm::contact_emails,
        crm::contact_activities,
        crm::deal_emails,
        crm::deal_activities,
        accounts::list,
        accounts::connect,
        accounts::get,
        accounts::change,
        accounts::disconnect,
        plugins::list,
    ),
    components(schemas(error::ErrorBody))
)]
struct Api;

/// `GET /api/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(Api::openapi())
}
