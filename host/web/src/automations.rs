//! Automation actions over HTTP: "Send a personalized email". The rules
//! (tags, sender, idempotency, retries) are `mailroom-outbound`'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mailroom_outbound::{AutomatedEmail, OutboundError, SendEmail, Status};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, JsonBody};

impl From<OutboundError> for ApiError {
    fn from(e: OutboundError) -> Self {
        match e {
            OutboundError::Invalid { field, why } => ApiError::invalid(field, why),
            OutboundError::Forbidden(why) => ApiError::forbidden(why),
            OutboundError::Conflict(why) => ApiError::new(StatusCode::CONFLICT, why),
            e @ OutboundError::NotFound(_) => ApiError::not_found(e.to_string()),
            OutboundError::Crm(e) => e.into(),
        }
    }
}

/// Run "Send a personalized email" for a deal or a contact. Tags:
/// `%FIRSTNAME%`, `%LASTNAME%`, `%EMAIL%`, `%DEAL_TITLE%`, `%DEAL_VALUE%`,
/// `%DEAL_OWNER_NAME%`. The sender is one of the caller's connected
/// addresses or `%deal_owner_email%` (the deal owner's preferred account).
/// 201 with the email as recorded (`sent`, `retrying` with the reason and
/// the next attempt, or `failed` with the reason); 200 with the earlier
/// record when the idempotency key was used before (nothing is sent again).
#[utoipa::path(post, path = "/api/automations/send-email", request_body = SendEmail, tag = "automations",
    responses((status = 201, body = AutomatedEmail), (status = 200, body = AutomatedEmail), (status = 422, body = crate::error::ErrorBody)))]
pub async fn send_email(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(req): JsonBody<SendEmail>,
) -> Result<(StatusCode, Json<AutomatedEmail>), ApiError> {
    let email = s.outbound.send_email(&user, &req).await?;
    let status = if email.repeated {
        StatusCode::OK
    } else if email.status == Status::Failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::CREATED
    };
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        return Err(ApiError::new(
            status,
            format!(
                "the email could not be sent: {} (recorded under idempotency key `{}`)",
                email.last_error.unwrap_or_default(),
                email.idempotency_key
            ),
        ));
    }
    Ok((status, Json(email)))
}

/// An automated email by its idempotency key (the caller's own, or any for admins).
#[utoipa::path(get, path = "/api/automations/send-email/{key}", params(("key" = String, Path)), tag = "automations",
    responses((status = 200, body = AutomatedEmail)))]
pub async fn get_send(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(key): Path<String>,
) -> Result<Json<AutomatedEmail>, ApiError> {
    Ok(Json(s.outbound.get(&user, &key).await?))
}
