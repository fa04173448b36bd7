//! `identity-emulator`: an OAuth 2.0 authorization server as Google and the
//! Microsoft identity platform run theirs, for the provider emulators'
//! tests: a consent page a test or a browser drives, the token endpoint
//! (authorization code with PKCE, refresh) and revocation. Revoking any token
//! of a grant revokes the grant, as Google does.
//!
//! A provider emulator holds an [`Identity`], merges [`Identity::router`]
//! under the provider's paths, and asks [`Identity::authorize`] who an access
//! token belongs to. It must not be used outside tests.

mod server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub use server::{Client, Server, TokenError};

type Params = Vec<(String, String)>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Where a provider serves the endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Paths {
    /// The consent page (GET) and its form (POST).
    pub authorize: &'static str,
    /// The token endpoint.
    pub token: &'static str,
    /// The revocation endpoint, where the provider has one.
    pub revoke: Option<&'static str>,
}

/// Google's paths (`accounts.google.com`, `oauth2.googleapis.com`).
pub const GOOGLE: Paths = Paths {
    authorize: "/o/oauth2/v2/auth",
    token: "/token",
    revoke: Some("/revoke"),
};

/// The Microsoft identity platform's paths (`login.microsoftonline.com`).
pub const MICROSOFT: Paths = Paths {
    authorize: "/{tenant}/oauth2/v2.0/authorize",
    token: "/{tenant}/oauth2/v2.0/token",
    revoke: None,
};

/// The authorization server's state, shared by its routes and the emulator.
#[derive(Clone, Default)]
pub struct Identity(Arc<Mutex<Server>>);

impl Identity {
    /// The server, locked.
    pub fn lock(&self) -> MutexGuard<'_, Server> {
        emulator_support::lock(&self.0)
    }

    /// The routes, under `paths`.
    pub fn router(&self, paths: Paths) -> Router {
        let mut app = Router::new()
            .route(paths.authorize, get(consent_page).post(consent))
            .route(paths.token, post(token));
        if let Some(path) = paths.revoke {
            app = app.route(path, post(revoke));
        }
        app.with_state(self.clone())
    }

    /// Register an OAuth client.
    pub fn register_client(&self, client: Client) {
        self.lock().register(client);
    }

    /// Make an account known (it may sign in).
    pub fn add_user(&self, email: &str) {
        self.lock().add_user(email);
    }

    /// The account an access token belongs to, if it is valid now.
    pub fn authorize(&self, access_token: &str) -> Option<String> {
        self.lock().authorize(access_token).map(str::to_string)
    }

    /// An access token for an account without the consent page.
    pub fn access_token(&self, email: &str) -> String {
        self.lock().mint(email)
    }

    /// Set the lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = Some(lifetime);
    }

    /// The user removes the app's access: every grant of the account is revoked.
    pub fn revoke(&self, email: &str) {
        self.lock().revoke_email(email);
    }

    /// Every access token of the account expires now; refresh tokens stay good.
    pub fn expire_access_tokens(&self, email: &str) {
        self.lock().expire_access(email);
    }

    /// How many of the account's grants are not revoked.
    pub fn active_grants(&self, email: &str) -> usize {
        self.lock().active_grants(email)
    }
}

/// Form fields (the consent form and the token endpoint).
fn form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The consent page: who is signing in, what the app asks for, Allow or Deny.
async fn consent_page(State(state): State<Identity>, Query(params): Query<Params>) -> Response {
    let get = |n: &str| param(&params, n).unwrap_or("").to_string();
    if get("response_type") != "code" {
        return (
            StatusCode::BAD_REQUEST,
            "Error 400: unsupported_response_type",
        )
            .into_response();
    }
    if let Err(e) = state
        .lock()
        .check_request(&get("client_id"), &get("redirect_uri"))
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("Error 400: {}: {}", e.error, e.description),
        )
            .into_response();
    }
    let hidden: String = [
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .map(|n| {
        format!(
            r#"<input type="hidden" name="{n}" value="{}">"#,
            html_escape::encode_double_quoted_attribute(&get(n))
        )
    })
    .collect();
    Html(format!(
        r#"<!doctype html><html lang="en"><head><title>Sign in - Google Accounts (emulator)</title></head>
<body><main><h1>Choose an account</h1><p>The app asks for: {scope}</p>
<form method="post" action="">{hidden}
<label for="email">Email</label> <input id="email" name="email" value="{hint}">
<button name="decision" value="allow">Allow</button> <button name="decision" value="deny">Cancel</button>
</form></main></body></html>"#,
        scope = html_escape::encode_text(&get("scope")),
        hint = html_escape::encode_double_quoted_attribute(&get("login_hint")),
    ))
    .into_response()
}

/// The consent form's answer: back to the app with a code, or with `access_denied`.
async fn consent(State(state): State<Identity>, body: Bytes) -> Response {
    let f = form(&body);
    let get = |n: &str| f.get(n).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    let st = get("state");
    if get("decision") != "allow" {
        return back_to(&redirect_uri, &[("error", "access_denied"), ("state", &st)]);
    }
    let email = get("email").to_lowercase();
    let mut inner = state.lock();
    if !inner.has_user(&email) {
        return (StatusCode::BAD_REQUEST, "Couldn't find your Google Account").into_response();
    }
    let challenge = (!get("code_challenge").is_empty()).then(|| {
        let method = get("code_challenge_method");
        let method = if method.is_empty() {
            "plain".into()
        } else {
            method
        };
        (get("code_challenge"), method)
    });
    let scope = get("scope");
    match inner.approve(&email, &get("client_id"), &redirect_uri, &scope, challenge) {
        Ok(code) => back_to(
            &redirect_uri,
            &[("state", &st), ("code", &code), ("scope", &scope)],
        ),
        Err(e) => (StatusCode::BAD_REQUEST, format!("Error 400: {}", e.error)).into_response(),
    }
}

/// A redirect back to the client with these query parameters.
fn back_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    Redirect::to(&format!("{redirect_uri}{sep}{query}")).into_response()
}

fn token_error(e: TokenError) -> Response {
    let code = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        code,
        axum::Json(json!({"error": e.error, "error_description": e.description})),
    )
        .into_response()
}

/// The client's id and secret, from HTTP Basic or the form.
fn client_credentials(headers: &HeaderMap, f: &HashMap<String, String>) -> (String, String) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            // RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
            let (id, secret) = s.split_once(':')?;
            let f = form(format!("i={id}&s={secret}").as_bytes());
            Some((f.get("i")?.clone(), f.get("s")?.clone()))
        });
    basic.unwrap_or_else(|| {
        (
            f.get("client_id").cloned().unwrap_or_default(),
            f.get("client_secret").cloned().unwrap_or_default(),
        )
    })
}

/// `POST /token`: authorization code (with PKCE) or refresh token.
async fn token(State(state): State<Identity>, headers: HeaderMap, body: Bytes) -> Response {
    let f = form(&body);
    let (id, secret) = client_credentials(&headers, &f);
    let get = |n: &str| f.get(n).cloned().unwrap_or_default();
    let mut inner = state.lock();
    let issued = match get("grant_type").as_str() {
        "authorization_code" => inner.exchange(
            &id,
            &secret,
            &get("code"),
            &get("redirect_uri"),
            f.get("code_verifier").map(String::as_str),
        ),
        "refresh_token" => inner.refresh(&id, &secret, &get("refresh_token")),
        other => {
            return token_error(TokenError {
                status: 400,
                error: "unsupported_grant_type",
                description: format!("Invalid grant_type: {other}"),
            });
        }
    };
    match issued {
        Ok(t) => {
            let mut body = json!({
                "access_token": t.access_token,
                "expires_in": t.expires_in,
                "scope": t.scope,
                "token_type": "Bearer",
                "id_token": t.id_token,
            });
            if let Some(r) = t.refresh_token {
                body["refresh_token"] = Value::String(r);
            }
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
        Err(e) => token_error(e),
    }
}

/// `POST /revoke?token=…` (or the token in the form).
async fn revoke(
    State(state): State<Identity>,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let token = f
        .get("token")
        .cloned()
        .or_else(|| param(&params, "token").map(str::to_string))
        .unwrap_or_default();
    if state.lock().revoke_token(&token) {
        StatusCode::OK.into_response()
    } else {
        token_error(TokenError {
            status: 400,
            error: "invalid_token",
            description: "Token expired or revoked".into(),
        })
    }
}
