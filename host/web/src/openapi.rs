//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{Content, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::{accounts, auth, automations, crm, error, oauth, plugins};

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
        crm::contact_sentiment,
        crm::deal_sentiment,
        accounts::list,
        accounts::connect,
        accounts::get,
        accounts::change,
        accounts::disconnect,
        accounts::send,
        accounts::skipped,
        oauth::begin,
        accounts::require_reauth,
        accounts::reauth_campaigns,
        plugins::list,
        plugins::install,
        plugins::rollback,
        plugins::remove,
        plugins::changes,
        plugins::pending,
        plugins::approve,
        automations::send_email,
        automations::get_send,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&ErrorResponses)
)]
struct Api;

/// Every operation may answer with the JSON error body: bad input (400,
/// 415, 422), no or a wrong token (401), not allowed (403), not found or
/// not visible (404), a clash (409), a peer that failed (502). Listed once
/// here instead of on every handler.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let error = |why: &str| {
            ResponseBuilder::new()
                .description(why)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build()
        };
        let statuses = [
            ("400", "The request could not be read"),
            ("401", "Sign in first"),
            ("403", "Not allowed for this user"),
            ("404", "No such object, or not visible to this user"),
            ("409", "Clashes with a stored object"),
            ("415", "The body is not JSON"),
            ("422", "A field is invalid; `field` names it"),
        ];
        for item in api.paths.paths.values_mut() {
            let operations: [&mut Option<Operation>; 4] = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                for (status, why) in statuses {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(why).into());
                }
            }
        }
    }
}

/// `GET /api/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(Api::openapi())
}
