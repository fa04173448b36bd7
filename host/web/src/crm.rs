//! Contacts, deals and their timelines over HTTP.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mailroom_crm::Id;
use mailroom_crm::contacts::{self, Contact, ContactInput};
use mailroom_crm::deals::{self, Deal, DealInput};
use mailroom_crm::sentiment::{self, Summary};
use mailroom_crm::timeline::{self, Activity, Email, Record};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, IdPath, JsonBody, Params};

/// Paging of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// How many (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// How many to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

impl Paging {
    fn get(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(50);
        let offset = self.offset.unwrap_or(0);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be from 1 to 500"));
        }
        if offset < 0 {
            return Err(ApiError::invalid("offset", "must not be negative"));
        }
        Ok((limit, offset))
    }
}

/// The ids a bulk import created or updated, in input order.
#[derive(Serialize, ToSchema)]
pub struct Imported {
    /// Ids.
    pub ids: Vec<Id>,
}

/// Contacts, by id.
#[utoipa::path(get, path = "/api/contacts", params(Paging), tag = "contacts", responses((status = 200, body = Vec<Contact>)))]
pub async fn list_contacts(
    State(s): State<AppState>,
    _: CurrentUser,
    Params(p): Params<Paging>,
) -> Result<Json<Vec<Contact>>, ApiError> {
    let (limit, offset) = p.get()?;
    Ok(Json(contacts::list(&s.db, limit, offset).await?))
}

/// Create a contact.
#[utoipa::path(post, path = "/api/contacts", request_body = ContactInput, tag = "contacts",
    responses((status = 201, body = Contact), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_contact(
    State(s): State<AppState>,
    _: CurrentUser,
    JsonBody(input): JsonBody<ContactInput>,
) -> Result<(StatusCode, Json<Contact>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(contacts::create(&s.db, &input).await?),
    ))
}

/// Create or update many contacts (by `external_id`), all or none.
#[utoipa::path(post, path = "/api/contacts/import", request_body = Vec<ContactInput>, tag = "contacts", responses((status = 200, body = Imported)))]
pub async fn import_contacts(
    State(s): State<AppState>,
    _: CurrentUser,
    JsonBody(items): JsonBody<Vec<ContactInput>>,
) -> Result<Json<Imported>, ApiError> {
    Ok(Json(Imported {
        ids: contacts::import(&s.db, &items).await?,
    }))
}

/// A contact.
#[utoipa::path(get, path = "/api/contacts/{id}", params(("id" = i64, Path)), tag = "contacts", responses((status = 200, body = Contact)))]
pub async fn get_contact(
    State(s): State<AppState>,
    _: CurrentUser,
    IdPath(id): IdPath,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(contacts::get(&s.db, id).await?))
}

/// Change a contact.
#[utoipa::path(patch, path = "/api/contacts/{id}", params(("id" = i64, Path)), request_body = ContactInput, tag = "contacts", responses((status = 200, body = Contact)))]
pub async fn update_contact(
    State(s): State<AppState>,
    _: CurrentUser,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<ContactInput>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(contacts::update(&s.db, id, &input).await?))
}

/// Delete a contact.
#[utoipa::path(delete, path = "/api/contacts/{id}", params(("id" = i64, Path)), tag = "contacts", responses((status = 204)))]
pub async fn delete_contact(
    State(s): State<AppState>,
    _: CurrentUser,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    contacts::delete(&s.db, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deals, by id.
#[utoipa::path(get, path = "/api/deals", params(Paging), tag = "deals", responses((status = 200, body = Vec<Deal>)))]
pub async fn list_deals(
    State(s): State<AppState>,
    _: CurrentUser,
    Params(p): Params<Paging>,
) -> Result<Json<Vec<Deal>>, ApiError> {
    let (limit, offset) = p.get()?;
    Ok(Json(deals::list(&s.db, limit, offset).await?))
}

/// Create a deal.
#[utoipa::path(post, path = "/api/deals", request_body = DealInput, tag = "deals",
    responses((status = 201, body = Deal), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_deal(
    State(s): State<AppState>,
    _: CurrentUser,
    JsonBody(input): JsonBody<DealInput>,
) -> Result<(StatusCode, Json<Deal>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(deals::create(&s.db, &input).await?),
    ))
}

/// Create or update many deals (by `external_id`), all or none.
#[utoipa::path(post, path = "/api/deals/import", request_body = Vec<DealInput>, tag = "deals", responses((status = 200, body = Imported)))]
pub async fn import_deals(
    State(s): State<AppState>,
    _: CurrentUser,
    JsonBody(items): JsonBody<Vec<DealInput>>,
) -> Result<Json<Imported>, ApiError> {
    Ok(Json(Imported {
        ids: deals::import(&s.db, &items).await?,
    }))
}

/// A deal.
#[utoipa::path(get, path = "/api/deals/{id}", params(("id" = i64, Path)), tag = "deals", responses((status = 200, body = Deal)))]
pub async fn get_deal(
    State(s): State<AppState>,
    _: CurrentUser,
    IdPath(id): IdPath,
) -> Result<Json<Deal>, ApiError> {
    Ok(Json(deals::get(&s.db, id).await?))
}

/// Change a deal.
#[utoipa::path(patch, path = "/api/deals/{id}", params(("id" = i64, Path)), request_body = DealInput, tag = "deals", responses((status = 200, body = Deal)))]
pub async fn update_deal(
    State(s): State<AppState>,
    _: CurrentUser,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<DealInput>,
) -> Result<Json<Deal>, ApiError> {
    Ok(Json(deals::update(&s.db, id, &input).await?))
}

/// Delete a deal.
#[utoipa::path(delete, path = "/api/deals/{id}", params(("id" = i64, Path)), tag = "deals", responses((status = 204)))]
pub async fn delete_deal(
    State(s): State<AppState>,
    _: CurrentUser,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    deals::delete(&s.db, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn emails(
    s: &AppState,
    user: &CurrentUser,
    record: Record,
    p: &Paging,
) -> Result<Json<Vec<Email>>, ApiError> {
    let (limit, offset) = p.get()?;
    Ok(Json(
        timeline::emails(&s.db, record, user.0.id, limit, offset).await?,
    ))
}

async fn activities(
    s: &AppState,
    user: &CurrentUser,
    record: Record,
    p: &Paging,
) -> Result<Json<Vec<Activity>>, ApiError> {
    let (limit, _) = p.get()?;
    Ok(Json(
        timeline::activities(&s.db, record, user.0.id, limit).await?,
    ))
}

/// A contact's emails the caller may see, newest first.
#[utoipa::path(get, path = "/api/contacts/{id}/emails", params(("id" = i64, Path), Paging), tag = "timelines", responses((status = 200, body = Vec<Email>)))]
pub async fn contact_emails(
    State(s): State<AppState>,
    u: CurrentUser,
    IdPath(id): IdPath,
    Params(p): Params<Paging>,
) -> Result<Json<Vec<Email>>, ApiError> {
    contacts::get(&s.db, id).await?;
    emails(&s, &u, Record::Contact(id), &p).await
}

/// A contact's recent activities the caller may see.
#[utoipa::path(get, path = "/api/contacts/{id}/activities", params(("id" = i64, Path), Paging), tag = "timelines", responses((status = 200, body = Vec<Activity>)))]
pub async fn contact_activities(
    State(s): State<AppState>,
    u: CurrentUser,
    IdPath(id): IdPath,
    Params(p): Params<Paging>,
) -> Result<Json<Vec<Activity>>, ApiError> {
    contacts::get(&s.db, id).await?;
    activities(&s, &u, Record::Contact(id), &p).await
}

/// A deal's emails the caller may see, newest first.
#[utoipa::path(get, path = "/api/deals/{id}/emails", params(("id" = i64, Path), Paging), tag = "timelines", responses((status = 200, body = Vec<Email>)))]
pub async fn deal_emails(
    State(s): State<AppState>,
    u: CurrentUser,
    IdPath(id): IdPath,
    Params(p): Params<Paging>,
) -> Result<Json<Vec<Email>>, ApiError> {
    deals::get(&s.db, id).await?;
    emails(&s, &u, Record::Deal(id), &p).await
}

/// A deal's recent activities the caller may see.
#[utoipa::path(get, path = "/api/deals/{id}/activities", params(("id" = i64, Path), Paging), tag = "timelines", responses((status = 200, body = Vec<Activity>)))]
pub async fn deal_activities(
    State(s): State<AppState>,
    u: CurrentUser,
    IdPath(id): IdPath,
    Params(p): Params<Paging>,
) -> Result<Json<Vec<Activity>>, ApiError> {
    deals::get(&s.db, id).await?;
    activities(&s, &u, Record::Deal(id), &p).await
}

/// A contact's sentiment: the mean of their last five scored emails, its
/// trend against the five before, and the scored emails the caller may see.
/// Only mail received from the contact while on an open deal, from accounts
/// that allow sentiment analysis, is scored.
#[utoipa::path(get, path = "/api/contacts/{id}/sentiment", params(("id" = i64, Path)), tag = "timelines", responses((status = 200, body = Summary)))]
pub async fn contact_sentiment(
    State(s): State<AppState>,
    u: CurrentUser,
    IdPath(id): IdPath,
) -> Result<Json<Summary>, ApiError> {
    contacts::get(&s.db, id).await?;
    Ok(Json(
        sentiment::summary(&s.db, Record::Contact(id), u.0.id).await?,
    ))
}

/// A deal's sentiment, from the scored emails of its contacts (as for a contact).
#[utoipa::path(get, path = "/api/deals/{id}/sentiment", params(("id" = i64, Path)), tag = "timelines", responses((status = 200, body = Summary)))]
pub async fn deal_sentiment(
    State(s): State<AppState>,
    u: CurrentUser,
    IdPath(id): IdPath,
) -> Result<Json<Summary>, ApiError> {
    deals::get(&s.db, id).await?;
    Ok(Json(
        sentiment::summary(&s.db, Record::Deal(id), u.0.id).await?,
    ))
}
