//! Sign-in sessions and API tokens. Owns `auth_tokens`, which keeps only
//! the SHA-256 of each token; the token itself is shown once.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailroom_crm::users::{self, NewUser, Role, User};
use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, unix_now};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, JsonBody};

/// The session cookie's name.
const COOKIE: &str = "mailroom_session";
/// How long a sign-in session lasts.
const SESSION_SECONDS: i64 = 14 * 86_400;

/// A new random token: 32 random bytes as hex, prefixed by its kind.
fn token(kind: &str) -> String {
    format!("mr_{kind}_{}", hex::encode(rand::random::<[u8; 32]>()))
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn issue(
    db: &Db,
    user: &User,
    kind: &str,
    name: &str,
    expires: Option<i64>,
) -> Result<String, sqlx::Error> {
    let token = token(kind);
    sqlx::query(
        "INSERT INTO auth_tokens (token_hash, user_id, kind, name, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(digest(&token))
    .bind(user.id)
    .bind(kind)
    .bind(name)
    .bind(unix_now())
    .bind(expires)
    .execute(db.pool())
    .await?;
    Ok(token)
}

/// The signed-in user making the request.
pub struct CurrentUser(pub User);

fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    cookie(headers, COOKIE)
}

/// The value of the cookie `name`, when the request carries it.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
}

/// The user a request's token or session cookie belongs to, with the token;
/// `None` when there is none or it is unknown or expired.
pub(crate) async fn session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(User, String)>, ApiError> {
    let Some(token) = presented(headers) else {
        return Ok(None);
    };
    let row = sqlx::query("SELECT user_id, expires_at FROM auth_tokens WHERE token_hash = $1")
        .bind(digest(&token))
        .fetch_optional(state.db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let expires: Option<i64> = row.try_get("expires_at")?;
    if expires.is_some_and(|e| e < unix_now()) {
        return Ok(None);
    }
    let user = users::get(&state.db, row.try_get("user_id")?).await?;
    Ok(Some((user, token)))
}

/// The form token that goes with a session: derived from the session's
/// secret, so another site can neither read nor guess it.
pub(crate) fn csrf_token(session: &str) -> String {
    digest(&format!("csrf\0{session}"))
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (user, _) = session(state, &parts.headers)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(CurrentUser(user))
    }
}

/// A sign-in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A token and whom it is for.
#[derive(Serialize, ToSchema)]
pub struct Issued {
    /// The token: send it as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// The user.
    pub user: User,
}

/// Sign in with email and password: a session token (also set as a cookie).
#[utoipa::path(post, path = "/api/login", request_body = Login, tag = "auth",
    responses((status = 200, body = Issued), (status = 401, body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let user = users::authenticate(&state.db, &login.email, &login.password)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "wrong email or password"))?;
    let (token, headers) = open_session(&state.db, &user).await?;
    Ok((headers, Json(Issued { token, user })).into_response())
}

/// A new sign-in session for `user`: its token and the `Set-Cookie` header.
pub(crate) async fn open_session(db: &Db, user: &User) -> Result<(String, HeaderMap), ApiError> {
    // Sessions that ran out are of no use to anyone: drop them as new ones are made.
    sqlx::query("DELETE FROM auth_tokens WHERE expires_at IS NOT NULL AND expires_at < $1")
        .bind(unix_now())
        .execute(db.pool())
        .await?;
    let token = issue(
        db,
        user,
        "session",
        "sign-in",
        Some(unix_now() + SESSION_SECONDS),
    )
    .await?;
    let cookie =
        format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    Ok((token, headers))
}

/// End the session or revoke the token the request was made with.
#[utoipa::path(post, path = "/api/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    end_session(&state.db, &headers).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke the token or session the request carries; the header that
/// clears the session cookie.
pub(crate) async fn end_session(db: &Db, headers: &HeaderMap) -> Result<HeaderMap, ApiError> {
    if let Some(token) = presented(headers) {
        sqlx::query("DELETE FROM auth_tokens WHERE token_hash = $1")
            .bind(digest(&token))
            .execute(db.pool())
            .await?;
    }
    let mut out = HeaderMap::new();
    out.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("mailroom_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(out)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/me", tag = "auth", responses((status = 200, body = User)))]
pub async fn me(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(user)
}

/// A new API token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (shown in audits).
    pub name: String,
}

/// Make an API token for the signed-in user (for a CRM pushing data).
#[utoipa::path(post, path = "/api/tokens", request_body = NewToken, tag = "auth", responses((status = 201, body = Issued)))]
pub async fn create_token(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<Issued>), ApiError> {
    if new.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "must not be empty"));
    }
    let token = issue(&state.db, &user, "api", new.name.trim(), None).await?;
    Ok((StatusCode::CREATED, Json(Issued { token, user })))
}

/// Admins only.
pub(crate) fn admin(user: &User) -> Result<(), ApiError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an admin may do this"))
    }
}

/// Every user (admins only).
#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = Vec<User>)))]
pub async fn list_users(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<User>>, ApiError> {
    admin(&user)?;
    Ok(Json(users::list(&state.db).await?))
}

/// Create a user (admins only).
#[utoipa::path(post, path = "/api/users", request_body = NewUser, tag = "users", responses((status = 201, body = User)))]
pub async fn create_user(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    admin(&user)?;
    Ok((
        StatusCode::CREATED,
        Json(users::create(&state.db, new).await?),
    ))
}

/// Make an API token for a user (for `mailroom user add --token`).
pub async fn api_token(db: &Db, user: &User, name: &str) -> Result<String, sqlx::Error> {
    issue(db, user, "api", name, None).await
}
