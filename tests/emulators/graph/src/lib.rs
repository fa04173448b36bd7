//! `graph-emulator`: the part of Microsoft Graph that Mailroom's Microsoft
//! 365 plugin uses, and the Microsoft identity platform's OAuth endpoints,
//! served over loopback for tests.
//!
//! It follows Graph's documented delta semantics for messages: the first
//! call of a folder's delta query (optionally filtered by
//! `receivedDateTime ge …`) pages through what is there with
//! `@odata.nextLink` (page size from `Prefer: odata.maxpagesize`), the last
//! page carries an `@odata.deltaLink`, and calling that link later returns
//! what changed since: new messages, and removed ones as
//! `{"id": …, "@removed": {"reason": "deleted"}}`. A delta token older than
//! the change log answers 410 with `syncStateNotFound`. Links are built from
//! the request's `Host`, so a client that reached the emulator as
//! `graph.microsoft.com` follows links to `https://graph.microsoft.com`.
//!
//! Knobs: failures (429/503 with `Retry-After`), trimming the change log,
//! revoking or expiring a user's tokens. It must not be used outside tests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use emulator_support::folders::{Change, Folders, Message};
use emulator_support::{Served, lock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;
use serde_json::{Value, json};

pub use identity_emulator::Client;
use identity_emulator::{Identity, MICROSOFT};

/// A failure to answer instead of the next API requests.
#[derive(Debug, Clone)]
pub struct Fault {
    /// HTTP status.
    pub status: u16,
    /// Graph's error code.
    pub code: &'static str,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u32>,
}

impl Fault {
    /// 429 `TooManyRequests` (Graph throttling).
    pub fn throttled(retry_after: u32) -> Self {
        Fault {
            status: 429,
            code: "TooManyRequests",
            retry_after: Some(retry_after),
        }
    }

    /// 503 `ServiceUnavailable`.
    pub fn unavailable(retry_after: Option<u32>) -> Self {
        Fault {
            status: 503,
            code: "ServiceUnavailable",
            retry_after,
        }
    }
}

#[derive(Debug, Default)]
struct Mailbox {
    email: String,
    /// Its messages and their change log.
    store: Folders,
}

/// A round being paged: its entries, and the sequence its delta link resumes after.
struct Round {
    entries: Vec<Value>,
    since: i64,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    mailboxes: HashMap<String, Mailbox>,
    rounds: HashMap<String, Round>,
    faults: VecDeque<Fault>,
    calls: BTreeMap<&'static str, u64>,
    next: u64,
    identity: Identity,
}

type Shared = Arc<Mutex<Inner>>;

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    served: Served,
    state: Shared,
    identity: Identity,
}

/// The folders the emulator knows, by well-known name.
pub const FOLDERS: [&str; 2] = ["inbox", "sentitems"];

impl Emulator {
    /// Start on a free loopback port.
    pub async fn start() -> std::io::Result<Emulator> {
        let identity = Identity::default();
        let state: Shared = Arc::new(Mutex::new(Inner {
            identity: identity.clone(),
            ..Inner::default()
        }));
        let app = router(state.clone()).merge(identity.router(MICROSOFT));
        let served = Served::start(app).await?;
        Ok(Emulator {
            served,
            state,
            identity,
        })
    }

    /// `http://127.0.0.1:PORT`: the root of Graph and of the identity platform.
    pub fn url(&self) -> String {
        self.served.url()
    }

    /// The authority (`https://login.microsoftonline.com/common`).
    pub fn authority(&self) -> String {
        format!("{}/common", self.url())
    }

    /// The identity platform (clients, tokens, revocation).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Create an empty mailbox.
    pub fn add_user(&self, email: &str) {
        self.identity.add_user(email);
        lock(&self.state)
            .mailboxes
            .entry(email.to_lowercase())
            .or_insert_with(|| Mailbox {
                email: email.to_string(),
                ..Mailbox::default()
            });
    }

    /// Put a message in a folder (`inbox`, `sentitems`), received at
    /// `received_at` (Unix seconds); its Graph id.
    pub fn deliver(&self, email: &str, folder: &str, raw: &[u8], received_at: i64) -> String {
        self.add_user(email);
        let mut inner = lock(&self.state);
        inner.next += 1;
        let id = format!("AAMkAGI2TG93AAA{:08}=", inner.next);
        if let Some(m) = inner.mailboxes.get_mut(&email.to_lowercase()) {
            m.store.add(&id, folder, raw.to_vec(), received_at);
        }
        id
    }

    /// Delete a message. False when there is no such message.
    pub fn delete(&self, email: &str, id: &str) -> bool {
        let mut inner = lock(&self.state);
        let Some(m) = inner.mailboxes.get_mut(&email.to_lowercase()) else {
            return false;
        };
        m.store.delete(id)
    }

    /// The messages of a folder: id and raw MIME.
    pub fn messages(&self, email: &str, folder: &str) -> Vec<(String, Vec<u8>)> {
        lock(&self.state)
            .mailboxes
            .get(&email.to_lowercase())
            .map(|m| {
                m.store
                    .in_folder(folder)
                    .map(|x| (x.id.clone(), x.raw.clone()))
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

    /// Trim a mailbox's change log: every delta token issued so far answers 410.
    pub fn expire_delta(&self, email: &str) {
        if let Some(m) = lock(&self.state).mailboxes.get_mut(&email.to_lowercase()) {
            m.store.expire();
        }
    }

    /// How many calls each route has answered.
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.state).calls.clone()
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1.0/me", get(me))
        .route("/v1.0/me/mailFolders/{folder}/messages/delta", get(delta))
        .route("/v1.0/me/messages/{id}", get(message))
        .route("/v1.0/me/messages/{id}/$value", get(mime))
        .route("/v1.0/me/sendMail", post(send_mail))
        .with_state(state)
}

/// A Graph error, answered with Graph's JSON error body.
struct GraphError {
    status: u16,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

fn graph_error(status: u16, code: &'static str, message: impl Into<String>) -> GraphError {
    GraphError {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

fn not_found() -> GraphError {
    graph_error(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"code": self.code, "message": self.message, "innerError": {"request-id": "emulator"}}});
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Faults, the call count and the token: the caller's mailbox key.
fn admit(state: &Shared, route: &'static str, headers: &HeaderMap) -> Result<String, GraphError> {
    let mut inner = lock(state);
    if let Some(f) = inner.faults.pop_front() {
        return Err(GraphError {
            retry_after: f.retry_after,
            ..graph_error(f.status, f.code, "Injected by the emulator.")
        });
    }
    *inner.calls.entry(route).or_default() += 1;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let email = inner.identity.authorize(token).ok_or_else(|| {
        graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        )
    })?;
    let key = email.to_lowercase();
    if !inner.mailboxes.contains_key(&key) {
        return Err(graph_error(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ));
    }
    Ok(key)
}

/// Where links point: the origin the client used.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("graph.microsoft.com");
    if host == "graph.microsoft.com" {
        "https://graph.microsoft.com".into()
    } else {
        format!("http://{host}")
    }
}

fn rfc3339(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn item(m: &Message) -> Value {
    json!({
        "@odata.etag": format!("W/\"CQAAABYAAAA{}\"", m.id.len()),
        "id": m.id,
        "conversationId": format!("AAQkAGI2{}", &m.id[m.id.len().saturating_sub(9)..]),
        "receivedDateTime": rfc3339(m.received),
        "isRead": m.is_read,
        "categories": [],
        "parentFolderId": format!("AAMkFolder-{}", m.folder),
    })
}

async fn me(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, GraphError> {
    let key = admit(&state, "me", &headers)?;
    let inner = lock(&state);
    let email = inner
        .mailboxes
        .get(&key)
        .map(|m| m.email.clone())
        .unwrap_or_default();
    let me = json!({"id": "emulator-user", "displayName": email, "mail": email, "userPrincipalName": email});
    Ok(axum::Json(me).into_response())
}

type Params = Vec<(String, String)>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `$filter=receivedDateTime ge <time>`: the only filter Graph's message delta supports.
fn since(filter: Option<&str>) -> Result<i64, String> {
    let Some(filter) = filter else {
        return Ok(i64::MIN);
    };
    let time = filter
        .strip_prefix("receivedDateTime ge ")
        .ok_or_else(|| format!("unsupported $filter `{filter}`: only `receivedDateTime ge …`"))?;
    DateTime::parse_from_rfc3339(time.trim())
        .map(|t| t.timestamp())
        .map_err(|e| format!("`{time}`: {e}"))
}

fn page_size(headers: &HeaderMap) -> usize {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("odata.maxpagesize="))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(10)
        .clamp(1, 1000)
}

async fn delta(
    State(state): State<Shared>,
    Path(folder): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, GraphError> {
    let key = admit(&state, "delta", &headers)?;
    if !FOLDERS.contains(&folder.as_str()) {
        return Err(not_found());
    }
    let size = page_size(&headers);
    let base = format!(
        "{}/v1.0/me/mailFolders/{folder}/messages/delta",
        origin(&headers)
    );
    let mut inner = lock(&state);
    // A page of a round being paged.
    if let Some(skip) = param(&params, "$skiptoken") {
        let Some((round, offset)) = skip.split_once('.') else {
            return Err(graph_error(400, "BadRequest", "Invalid skip token."));
        };
        let offset: usize = offset.parse().unwrap_or(0);
        return match inner.rounds.get(round) {
            Some(r) => Ok(round_page(r, round, offset, size, &base)),
            None => Err(graph_error(
                410,
                "syncStateNotFound",
                "The sync state is not found.",
            )),
        };
    }
    let Some(m) = inner.mailboxes.get(&key) else {
        return Err(graph_error(404, "ErrorItemNotFound", "No mailbox."));
    };
    let (entries, since_at, seq) = if let Some(token) = param(&params, "$deltatoken") {
        // Changes since a delta token: `<seq>.<since>`.
        let Some((seq, since_at)) = token
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<i64>().ok()?)))
        else {
            return Err(graph_error(400, "BadRequest", "Invalid delta token."));
        };
        if seq < m.store.oldest {
            return Err(graph_error(
                410,
                "syncStateNotFound",
                "The sync state generation is expired. Do a full sync.",
            ));
        }
        let mut last: Vec<(String, Change)> = Vec::new();
        for (s, f, id, change) in &m.store.log {
            if *s > seq && *f == folder {
                last.retain(|(x, _)| x != id);
                last.push((id.clone(), *change));
            }
        }
        let entries = last
            .into_iter()
            .filter_map(|(id, change)| match (change, m.store.messages.get(&id)) {
                (Change::Added, Some(msg)) if msg.received >= since_at && msg.folder == folder => {
                    Some(item(msg))
                }
                (Change::Added, _) => None,
                (Change::Removed, _) => Some(json!({"id": id, "@removed": {"reason": "deleted"}})),
            })
            .collect();
        (entries, since_at, m.store.seq)
    } else {
        let since_at = match since(param(&params, "$filter")) {
            Ok(t) => t,
            Err(why) => return Err(graph_error(400, "BadRequest", why)),
        };
        let mut found: Vec<&Message> = m
            .store
            .in_folder(&folder)
            .filter(|x| x.received >= since_at)
            .collect();
        found.sort_by(|a, b| b.received.cmp(&a.received).then(b.id.cmp(&a.id)));
        (found.into_iter().map(item).collect(), since_at, m.store.seq)
    };
    inner.next += 1;
    let round = format!("r{}", inner.next);
    let r = Round {
        entries,
        since: since_at,
        seq,
    };
    let response = round_page(&r, &round, 0, size, &base);
    inner.rounds.insert(round, r);
    Ok(response)
}

fn round_page(r: &Round, round: &str, offset: usize, size: usize, base: &str) -> Response {
    let page: Vec<Value> = r.entries.iter().skip(offset).take(size).cloned().collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
        "value": page,
    });
    if offset + size < r.entries.len() {
        body["@odata.nextLink"] =
            Value::String(format!("{base}?$skiptoken={round}.{}", offset + size));
    } else {
        body["@odata.deltaLink"] =
            Value::String(format!("{base}?$deltatoken={}.{}", r.seq, r.since));
    }
    let mut response = axum::Json(body).into_response();
    if let Ok(v) = format!("odata.maxpagesize={size}").parse() {
        response.headers_mut().insert("preference-applied", v);
    }
    response
}

async fn message(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let key = admit(&state, "message", &headers)?;
    let inner = lock(&state);
    match inner
        .mailboxes
        .get(&key)
        .and_then(|m| m.store.messages.get(&id))
    {
        Some(m) => Ok(axum::Json(item(m)).into_response()),
        None => Err(not_found()),
    }
}

async fn mime(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let key = admit(&state, "$value", &headers)?;
    let inner = lock(&state);
    match inner
        .mailboxes
        .get(&key)
        .and_then(|m| m.store.messages.get(&id))
    {
        Some(m) => Ok(([(header::CONTENT_TYPE, "text/plain")], m.raw.clone()).into_response()),
        None => Err(not_found()),
    }
}

/// `POST /me/sendMail` with a base64 MIME body (`Content-Type: text/plain`):
/// 202, and a copy in Sent Items.
async fn send_mail(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let key = admit(&state, "sendMail", &headers)?;
    let is_mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !is_mime {
        return Err(graph_error(
            400,
            "ErrorMimeContentInvalid",
            "The emulator takes MIME (text/plain, base64) only.",
        ));
    }
    let Ok(raw) = STANDARD.decode(body.trim_ascii()) else {
        return Err(graph_error(
            400,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        ));
    };
    let now = chrono::Utc::now().timestamp();
    let mut inner = lock(&state);
    inner.next += 1;
    let id = format!("AAMkAGI2TG93AAA{:08}=", inner.next);
    if let Some(m) = inner.mailboxes.get_mut(&key) {
        m.store.add(&id, "sentitems", raw, now);
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
