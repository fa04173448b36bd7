//! `gmail-emulator`: the part of the Gmail API that Mailroom's Gmail plugin
//! uses, and Google's OAuth 2.0 endpoints, served over loopback for tests.
//!
//! There is no Gmail on these machines, so the tests run this instead. It is
//! held to Google's description: [`ROUTES`] lists each emulated method with
//! its id in Google's discovery document (`gmail.v1.json`, kept beside this
//! crate), and the tests check routes, parameters and response bodies against
//! that document and drive the emulator with Google's own Python client.
//!
//! Tests fill mailboxes ([`Emulator::deliver`]) and turn knobs: inject
//! failures ([`Emulator::fail_next`]), trim the history log
//! ([`Emulator::expire_history`]), revoke a user's tokens
//! ([`Emulator::revoke`]). It must not be used outside tests.

mod mailbox;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use emulator_support::{Served, lock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub use identity_emulator::Client;
use identity_emulator::{GOOGLE, Identity};
pub use mailbox::SPAM_TRASH;
use mailbox::{Change, Mailbox, Message};

/// One emulated Gmail API method.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Its id in the discovery document.
    pub id: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Path under the root URL, as the discovery document writes it.
    pub path: &'static str,
    /// The method parameters the emulator understands.
    pub params: &'static [&'static str],
    /// Quota units Google charges per call.
    pub units: u64,
}

/// The emulated methods.
pub const ROUTES: &[Route] = &[
    Route {
        id: "gmail.users.getProfile",
        method: "GET",
        path: "gmail/v1/users/{userId}/profile",
        params: &["userId"],
        units: 1,
    },
    Route {
        id: "gmail.users.messages.list",
        method: "GET",
        path: "gmail/v1/users/{userId}/messages",
        params: &[
            "userId",
            "q",
            "maxResults",
            "pageToken",
            "includeSpamTrash",
            "labelIds",
        ],
        units: 5,
    },
    Route {
        id: "gmail.users.messages.get",
        method: "GET",
        path: "gmail/v1/users/{userId}/messages/{id}",
        params: &["userId", "id", "format"],
        units: 5,
    },
    Route {
        id: "gmail.users.messages.send",
        method: "POST",
        path: "gmail/v1/users/{userId}/messages/send",
        params: &["userId"],
        units: 100,
    },
    Route {
        id: "gmail.users.history.list",
        method: "GET",
        path: "gmail/v1/users/{userId}/history",
        params: &[
            "userId",
            "startHistoryId",
            "maxResults",
            "pageToken",
            "historyTypes",
            "labelId",
        ],
        units: 2,
    },
];

/// Parameters every Google API method accepts (the discovery document's
/// top-level `parameters`).
pub const COMMON_PARAMS: &[&str] = &[
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "uploadType",
    "upload_protocol",
];

/// A failure to answer instead of the next API requests.
#[derive(Debug, Clone)]
pub struct Fault {
    /// HTTP status.
    pub status: u16,
    /// Google's error `reason`.
    pub reason: &'static str,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u32>,
}

impl Fault {
    /// 429 `rateLimitExceeded`.
    pub fn too_many_requests(retry_after: Option<u32>) -> Self {
        Fault {
            status: 429,
            reason: "rateLimitExceeded",
            retry_after,
        }
    }

    /// 403 `userRateLimitExceeded`.
    pub fn user_rate_limit(retry_after: Option<u32>) -> Self {
        Fault {
            status: 403,
            reason: "userRateLimitExceeded",
            retry_after,
        }
    }

    /// 503 `backendError`.
    pub fn unavailable() -> Self {
        Fault {
            status: 503,
            reason: "backendError",
            retry_after: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    mailboxes: HashMap<String, Mailbox>,
    identity: Identity,
    faults: VecDeque<Fault>,
    calls: BTreeMap<&'static str, u64>,
    units: HashMap<String, u64>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    served: Served,
    state: Shared,
    identity: Identity,
}

impl Emulator {
    /// Start on a free loopback port.
    pub async fn start() -> std::io::Result<Emulator> {
        let identity = Identity::default();
        let state: Shared = Arc::new(Mutex::new(Inner {
            identity: identity.clone(),
            ..Inner::default()
        }));
        let app = router(state.clone()).merge(identity.router(GOOGLE));
        let served = Served::start(app).await?;
        Ok(Emulator {
            served,
            state,
            identity,
        })
    }

    /// `http://127.0.0.1:PORT`: the root URL of both the API and OAuth.
    pub fn url(&self) -> String {
        self.served.url()
    }

    /// The consent page (Google's `https://accounts.google.com/o/oauth2/v2/auth`).
    pub fn authorize_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.url())
    }

    /// The token endpoint (Google's `https://oauth2.googleapis.com/token`).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The revocation endpoint (Google's `https://oauth2.googleapis.com/revoke`).
    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.url())
    }

    /// Register an OAuth client.
    pub fn register_client(&self, client: Client) {
        self.identity.register_client(client);
    }

    /// An access token for a mailbox, without the consent page (for tests
    /// that are not about signing in).
    pub fn access_token(&self, email: &str) -> String {
        self.add_user(email);
        self.identity.access_token(email)
    }

    /// Set the lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.identity.set_token_lifetime(lifetime);
    }

    /// Create an empty mailbox (a Google account).
    pub fn add_user(&self, email: &str) {
        self.identity.add_user(email);
        let mut inner = lock(&self.state);
        let seed = inner.mailboxes.len() as u64 + 1;
        inner
            .mailboxes
            .entry(email.to_lowercase())
            .or_insert_with(|| Mailbox::new(email, seed));
    }

    /// Put a message in a mailbox, received at `received_at` (Unix seconds).
    /// Returns Gmail's id for it.
    pub fn deliver(&self, email: &str, raw: &[u8], labels: &[&str], received_at: i64) -> String {
        self.add_user(email);
        let mut inner = lock(&self.state);
        let mailbox = inner.mailboxes.get_mut(&email.to_lowercase());
        mailbox
            .map(|m| {
                m.add(
                    raw.to_vec(),
                    labels.iter().map(|l| l.to_string()).collect(),
                    received_at * 1000,
                    None,
                )
            })
            .unwrap_or_default()
    }

    /// Delete a message for good. False when there is no such message.
    pub fn delete(&self, email: &str, id: &str) -> bool {
        let mut inner = lock(&self.state);
        inner
            .mailboxes
            .get_mut(&email.to_lowercase())
            .is_some_and(|m| m.delete(id))
    }

    /// The ids and labels of a mailbox's messages.
    pub fn messages(&self, email: &str) -> Vec<(String, Vec<String>, Vec<u8>)> {
        let inner = lock(&self.state);
        inner
            .mailboxes
            .get(&email.to_lowercase())
            .map(|m| {
                m.messages
                    .values()
                    .map(|m| (m.id.clone(), m.labels.clone(), m.raw.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Play an unreachable server: while on, every connection is closed at once.
    pub fn set_offline(&self, offline: bool) {
        self.served.set_offline(offline);
    }

    /// Answer the next `count` API requests with `fault`.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        let mut inner = lock(&self.state);
        for _ in 0..count {
            inner.faults.push_back(fault.clone());
        }
    }

    /// Trim a mailbox's history: every history id issued so far answers 404.
    pub fn expire_history(&self, email: &str) {
        if let Some(m) = lock(&self.state).mailboxes.get_mut(&email.to_lowercase()) {
            m.expire_history();
        }
    }

    /// The user removes the app's access: every grant of the mailbox is revoked.
    pub fn revoke(&self, email: &str) {
        self.identity.revoke(email);
    }

    /// Every access token of the mailbox expires now; refresh tokens stay good.
    pub fn expire_access_tokens(&self, email: &str) {
        self.identity.expire_access_tokens(email);
    }

    /// How many of a mailbox's grants (consents) are not revoked.
    pub fn active_grants(&self, email: &str) -> usize {
        self.identity.active_grants(email)
    }

    /// How many calls each method has answered (by discovery id).
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.state).calls.clone()
    }

    /// Quota units a mailbox has spent.
    pub fn units(&self, email: &str) -> u64 {
        lock(&self.state)
            .units
            .get(&email.to_lowercase())
            .copied()
            .unwrap_or(0)
    }
}

fn router(state: Shared) -> Router {
    let mut app = Router::new();
    for route in ROUTES {
        let path = format!("/{}", route.path);
        app = match route.id {
            "gmail.users.getProfile" => app.route(&path, get(profile)),
            "gmail.users.messages.list" => app.route(&path, get(list_messages)),
            "gmail.users.messages.get" => app.route(&path, get(get_message)),
            "gmail.users.messages.send" => app.route(&path, post(send_message)),
            "gmail.users.history.list" => app.route(&path, get(list_history)),
            _ => app,
        };
    }
    app.with_state(state)
}

/// A Google API error, answered with Google's JSON error body.
struct ApiError {
    status: u16,
    reason: &'static str,
    message: String,
    retry_after: Option<u32>,
}

fn api_error(status: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        reason,
        message: message.into(),
        retry_after: None,
    }
}

fn not_found() -> ApiError {
    api_error(404, "notFound", "Requested entity was not found.")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let status_name = match self.status {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "INTERNAL",
        };
        let domain = if self.reason.to_lowercase().contains("ratelimit") {
            "usageLimits"
        } else {
            "global"
        };
        let body = json!({
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": domain, "reason": self.reason}],
                "status": status_name,
            }
        });
        let mut response = (code, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

type Params = Vec<(String, String)>;

/// What every API handler does first: injected faults, the call count, the
/// parameter check, the token, and `userId`. Returns the mailbox's key.
fn admit(
    state: &Shared,
    id: &'static str,
    headers: &HeaderMap,
    user: &str,
    params: &Params,
) -> Result<String, ApiError> {
    let mut inner = lock(state);
    if let Some(fault) = inner.faults.pop_front() {
        let message = "Quota exceeded or backend error (injected).";
        return Err(ApiError {
            retry_after: fault.retry_after,
            ..api_error(fault.status, fault.reason, message)
        });
    }
    *inner.calls.entry(id).or_default() += 1;
    let route = ROUTES.iter().find(|r| r.id == id).copied();
    for (name, _) in params {
        let known = route.is_some_and(|r| r.params.contains(&name.as_str()));
        if !known && !COMMON_PARAMS.contains(&name.as_str()) {
            return Err(api_error(
                400,
                "invalidArgument",
                format!("Unknown parameter `{name}`."),
            ));
        }
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let unauthenticated = || {
        api_error(
            401,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
    };
    let email = inner
        .identity
        .authorize(token)
        .ok_or_else(unauthenticated)?
        .to_lowercase();
    if user != "me" && user.to_lowercase() != email {
        return Err(api_error(
            403,
            "forbidden",
            "Delegation denied for the authenticated user.",
        ));
    }
    if !inner.mailboxes.contains_key(&email) {
        return Err(api_error(
            400,
            "failedPrecondition",
            "Mail service not enabled",
        ));
    }
    let units = route.map(|r| r.units).unwrap_or(0);
    *inner.units.entry(email.clone()).or_default() += units;
    Ok(email)
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn params_all(params: &Params, name: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

fn page_bounds(params: &Params, default: usize, max: usize) -> Result<(usize, usize), ApiError> {
    let size = match param(params, "maxResults") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| api_error(400, "invalidArgument", "Invalid maxResults"))?
            .clamp(1, max),
        None => default,
    };
    let start = match param(params, "pageToken") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| api_error(400, "invalidArgument", "Invalid pageToken"))?,
        None => 0,
    };
    Ok((start, size))
}

fn message_json(m: &Message, with_raw: bool) -> Value {
    let mut v = json!({
        "id": m.id,
        "threadId": m.thread_id,
        "labelIds": m.labels,
        "snippet": "",
        "historyId": m.history_id.to_string(),
        "internalDate": m.internal_date_ms.to_string(),
        "sizeEstimate": m.raw.len(),
    });
    if with_raw {
        v["raw"] = Value::String(URL_SAFE.encode(&m.raw));
    }
    v
}

async fn profile(
    State(state): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let email = admit(&state, "gmail.users.getProfile", &headers, &user, &params)?;
    let inner = lock(&state);
    let Some(m) = inner.mailboxes.get(&email) else {
        return Err(not_found());
    };
    let threads: std::collections::HashSet<&str> =
        m.messages.values().map(|m| m.thread_id.as_str()).collect();
    Ok(axum::Json(json!({
        "emailAddress": m.email,
        "messagesTotal": m.messages.len(),
        "threadsTotal": threads.len(),
        "historyId": m.history_id.to_string(),
    }))
    .into_response())
}

async fn list_messages(
    State(state): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let email = admit(
        &state,
        "gmail.users.messages.list",
        &headers,
        &user,
        &params,
    )?;
    let query = mailbox::Query::parse(param(&params, "q").unwrap_or(""))
        .map_err(|why| api_error(400, "invalidArgument", why))?;
    let (start, size) = page_bounds(&params, 100, 500)?;
    let spam_trash = param(&params, "includeSpamTrash") == Some("true");
    let labels = params_all(&params, "labelIds");
    let inner = lock(&state);
    let Some(m) = inner.mailboxes.get(&email) else {
        return Err(not_found());
    };
    let found = m.list(&query, spam_trash, &labels);
    let page: Vec<Value> = found
        .iter()
        .skip(start)
        .take(size)
        .map(|m| json!({"id": m.id, "threadId": m.thread_id}))
        .collect();
    let mut body = json!({ "resultSizeEstimate": found.len() });
    if !page.is_empty() {
        body["messages"] = Value::Array(page);
    }
    if start + size < found.len() {
        body["nextPageToken"] = Value::String((start + size).to_string());
    }
    Ok(axum::Json(body).into_response())
}

async fn get_message(
    State(state): State<Shared>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let email = admit(&state, "gmail.users.messages.get", &headers, &user, &params)?;
    let with_raw = match param(&params, "format").unwrap_or("full") {
        "raw" => true,
        "minimal" => false,
        other => {
            return Err(api_error(
                400,
                "invalidArgument",
                format!("the emulator serves format=raw and format=minimal, not `{other}`"),
            ));
        }
    };
    let inner = lock(&state);
    match inner
        .mailboxes
        .get(&email)
        .and_then(|m| m.messages.get(&id))
    {
        Some(m) => Ok(axum::Json(message_json(m, with_raw)).into_response()),
        None => Err(not_found()),
    }
}

async fn send_message(
    State(state): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let email = admit(
        &state,
        "gmail.users.messages.send",
        &headers,
        &user,
        &params,
    )?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| api_error(400, "invalidArgument", format!("Invalid JSON payload: {e}")))?;
    let raw = request["raw"].as_str().unwrap_or("");
    let bytes = URL_SAFE
        .decode(raw)
        .or_else(|_| URL_SAFE_NO_PAD.decode(raw))
        .or_else(|_| STANDARD.decode(raw));
    let bytes = match bytes {
        Ok(b) if !b.is_empty() => b,
        _ => {
            return Err(api_error(
                400,
                "invalidArgument",
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
            ));
        }
    };
    let thread = request["threadId"].as_str().map(str::to_string);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut inner = lock(&state);
    let Some(m) = inner.mailboxes.get_mut(&email) else {
        return Err(not_found());
    };
    let id = m.add(bytes, vec!["SENT".into()], now_ms, thread);
    match m.messages.get(&id) {
        Some(msg) => {
            let v = json!({"id": msg.id, "threadId": msg.thread_id, "labelIds": msg.labels});
            Ok(axum::Json(v).into_response())
        }
        None => Err(api_error(500, "backendError", "Backend Error")),
    }
}

async fn list_history(
    State(state): State<Shared>,
    Path(user): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let email = admit(&state, "gmail.users.history.list", &headers, &user, &params)?;
    let start_id = param(&params, "startHistoryId")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| api_error(400, "invalidArgument", "Invalid startHistoryId"))?;
    let (start, size) = page_bounds(&params, 100, 500)?;
    let types = params_all(&params, "historyTypes");
    let label = param(&params, "labelId");
    let inner = lock(&state);
    let Some(m) = inner.mailboxes.get(&email) else {
        return Err(not_found());
    };
    if start_id < m.oldest_history || start_id > m.history_id {
        return Err(not_found());
    }
    let wanted = |change: Change| {
        let name = match change {
            Change::Added => "messageAdded",
            Change::Deleted => "messageDeleted",
        };
        types.is_empty() || types.iter().any(|t| t == name)
    };
    let records: Vec<Value> = m
        .history
        .iter()
        .filter(|r| r.id > start_id && wanted(r.change))
        .filter(|r| label.is_none_or(|l| r.message.labels.iter().any(|x| x == l)))
        .map(|r| {
            let msg = json!({"id": r.message.id, "threadId": r.message.thread_id, "labelIds": r.message.labels});
            let key = match r.change {
                Change::Added => "messagesAdded",
                Change::Deleted => "messagesDeleted",
            };
            json!({"id": r.id.to_string(), "messages": [msg.clone()], key: [{"message": msg}]})
        })
        .collect();
    let total = records.len();
    let page: Vec<Value> = records.into_iter().skip(start).take(size).collect();
    let mut body = json!({ "historyId": m.history_id.to_string() });
    if !page.is_empty() {
        body["history"] = Value::Array(page);
    }
    if start + size < total {
        body["nextPageToken"] = Value::String((start + size).to_string());
    }
    Ok(axum::Json(body).into_response())
}
