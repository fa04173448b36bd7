//! API errors as JSON (`{"error": …, "field": …}`) and the JSON body
//! extractor that names the offending field.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mailroom_crm::CrmError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

/// The JSON of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The request field at fault, when there is one (`emails[2]`, `settings.host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                field: None,
            },
        }
    }

    /// 422 naming the field.
    pub fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        let field = field.into();
        let why = why.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody {
                error: format!("{field}: {why}"),
                field: Some(field),
            },
        }
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "sign in first: send `Authorization: Bearer <token>` or the session cookie",
        )
    }

    /// 403.
    pub fn forbidden(why: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, why)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The field at fault, when there is one, and what is wrong with it
    /// (without the field's name in front), for forms that label the field.
    pub(crate) fn field_and_why(&self) -> (Option<&str>, &str) {
        match &self.body.field {
            Some(field) => {
                let why = self
                    .body
                    .error
                    .strip_prefix(field.as_str())
                    .and_then(|rest| rest.strip_prefix(": "))
                    .unwrap_or(&self.body.error);
                (Some(field), why)
            }
            None => (None, &self.body.error),
        }
    }

    /// The status and the message, for answers that are not JSON (pages).
    pub fn into_parts(self) -> (StatusCode, String) {
        (self.status, self.body.error)
    }

    /// 500, logged; the client sees no detail.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<CrmError> for ApiError {
    fn from(e: CrmError) -> Self {
        match e {
            CrmError::Invalid { field, why } => ApiError::invalid(field, why),
            CrmError::Conflict { field, why } => ApiError {
                status: StatusCode::CONFLICT,
                body: ErrorBody {
                    error: format!("{field}: {why}"),
                    field: Some(field),
                },
            },
            e @ CrmError::NotFound { .. } => ApiError::not_found(e.to_string()),
            CrmError::Forbidden(why) => ApiError::forbidden(why),
            e @ (CrmError::Vault(_) | CrmError::Store(_)) => ApiError::internal(e),
        }
    }
}

impl From<mailroom_store::sqlx::Error> for ApiError {
    fn from(e: mailroom_store::sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

/// A JSON body whose errors name the field (`contacts[3].emails`).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." || path.is_empty() {
                    ApiError::new(StatusCode::BAD_REQUEST, format!("body: {inner}"))
                } else {
                    ApiError::invalid(path, inner.to_string())
                }
            })
    }
}

/// Query parameters whose errors come back as JSON.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::invalid(
                    if path == "." { "query".into() } else { path },
                    e.into_inner().to_string(),
                )
            })
    }
}

/// An `{id}` path segment whose error comes back as JSON.
pub struct IdPath(pub mailroom_crm::Id);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        raw.parse()
            .map(IdPath)
            .map_err(|_| ApiError::invalid("id", format!("`{raw}` is not an id")))
    }
}
