//! Calls to the Gmail REST API over `wasi:http`, paced to the per-user quota,
//! with Google's error answers turned into the contract's typed errors.
//!
//! The plugin never holds a token: the host adds `Authorization` to every
//! request sent to `https://gmail.googleapis.com` (and may serve that origin
//! from another base URL, e.g. an emulator in tests). This module does not
//! decide what to fetch; `sync` does.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use wstd::http::{Body, Client, Method, Request};

use crate::bindings::mailroom::provider::types::ProviderError;

/// The Gmail API root for the signed-in user.
pub const BASE: &str = "https://gmail.googleapis.com/gmail/v1/users/me";

/// Quota units Google charges per method (developers.google.com/gmail/api/reference/quota).
pub mod units {
    /// `users.getProfile`.
    pub const PROFILE: u32 = 1;
    /// `users.messages.list`.
    pub const LIST: u32 = 5;
    /// `users.messages.get`.
    pub const GET: u32 = 5;
    /// `users.history.list`.
    pub const HISTORY: u32 = 2;
    /// `users.messages.send`.
    pub const SEND: u32 = 100;
}

/// How a call failed, before it becomes a [`ProviderError`].
#[derive(Debug)]
pub enum Failure {
    /// Google answered with an error status.
    Status {
        status: u16,
        reason: String,
        message: String,
        retry_after: Option<u32>,
    },
    /// The request did not complete (refused by the host, DNS, connection, TLS).
    Transport(String),
    /// The answer was not what Google documents.
    Decode(String),
}

impl Failure {
    /// Whether Google said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status { status: 404, .. })
    }

    /// The contract's error for this failure.
    pub fn into_error(self) -> ProviderError {
        match self {
            Failure::Status {
                status: 401,
                message,
                ..
            } => ProviderError::AuthFailed(format!(
                "Google did not accept the account's authorisation ({message}); use \"Update authentication\" to sign in with Google again"
            )),
            Failure::Status {
                status,
                reason,
                retry_after,
                ..
            } if status == 429
                || (status == 403 && reason.to_lowercase().contains("ratelimitexceeded")) =>
            {
                ProviderError::RateLimited(retry_after.unwrap_or(if status == 429 {
                    30
                } else {
                    60
                }))
            }
            Failure::Status {
                status: 403,
                message,
                ..
            } => ProviderError::AuthFailed(format!(
                "Google refused access ({message}); sign in with Google again and allow Mailroom to read and send mail"
            )),
            Failure::Status {
                status,
                message,
                retry_after,
                ..
            } if status >= 500 => match retry_after {
                Some(secs) => ProviderError::RateLimited(secs),
                None => ProviderError::Unreachable(format!("Gmail answered {status}: {message}")),
            },
            Failure::Status {
                status, message, ..
            } => ProviderError::Other(format!("Gmail answered {status}: {message}")),
            Failure::Transport(why) => ProviderError::Unreachable(why),
            Failure::Decode(why) => ProviderError::Other(why),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<u32> {
    if let Ok(secs) = value.trim().parse::<u32>() {
        return Some(secs);
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    let secs = at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    Some(u32::try_from(secs).unwrap_or(u32::MAX).max(1))
}

/// A client for one run, pacing itself to `units_per_second`.
pub struct Api {
    client: Client,
    units_per_second: f64,
    /// The generic cell rate algorithm's theoretical arrival time.
    tat: Cell<Option<Instant>>,
}

/// How far ahead of the steady rate calls may burst: Google averages the
/// per-user limit over a moving window.
const BURST: Duration = Duration::from_secs(1);

impl Api {
    /// A client; `units_per_second` 0 turns pacing off.
    pub fn new(units_per_second: u32) -> Self {
        Api {
            client: Client::new(),
            units_per_second: f64::from(units_per_second),
            tat: Cell::new(None),
        }
    }

    /// Wait until a call of `cost` units keeps within the quota.
    async fn pace(&self, cost: u32) {
        if self.units_per_second <= 0.0 {
            return;
        }
        let now = Instant::now();
        let tat = self.tat.get().map_or(now, |t| t.max(now));
        self.tat.set(Some(
            tat + Duration::from_secs_f64(f64::from(cost) / self.units_per_second),
        ));
        let allowed = tat.checked_sub(BURST).unwrap_or(now);
        if allowed > now {
            wstd::task::sleep((allowed - now).into()).await;
        }
    }

    /// GET `BASE` + `path` and decode the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, cost: u32) -> Result<T, Failure> {
        self.call(Method::GET, path, None, cost).await
    }

    /// POST JSON to `BASE` + `path` and decode the JSON answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: String,
        cost: u32,
    ) -> Result<T, Failure> {
        self.call(Method::POST, path, Some(body), cost).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        cost: u32,
    ) -> Result<T, Failure> {
        self.pace(cost).await;
        let builder = Request::builder()
            .method(method)
            .uri(format!("{BASE}{path}"))
            .header("accept", "application/json");
        let request = match body {
            Some(json) => builder
                .header("content-type", "application/json")
                .body(Body::from(json)),
            None => builder.body(Body::empty()),
        }
        .map_err(|e| Failure::Transport(format!("request to {path}: {e}")))?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| Failure::Transport(format!("Gmail could not be reached: {e:#}")))?;
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let mut body = response.into_body();
        let bytes = body
            .contents()
            .await
            .map_err(|e| Failure::Transport(format!("reading Gmail's answer: {e:#}")))?
            .to_vec();
        if !(200..300).contains(&status) {
            let (reason, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => (
                    b.error
                        .errors
                        .into_iter()
                        .next()
                        .map(|e| e.reason)
                        .unwrap_or_default(),
                    b.error.message,
                ),
                Err(_) => (
                    String::new(),
                    String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                ),
            };
            return Err(Failure::Status {
                status,
                reason,
                message,
                retry_after: retry,
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Decode(format!("Gmail's answer to {path} did not decode: {e}")))
    }
}

/// `users.getProfile`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub email_address: String,
    pub history_id: String,
}

/// A message as a listing names it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    pub id: String,
    #[serde(default)]
    pub label_ids: Vec<String>,
}

/// `users.messages.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageList {
    #[serde(default)]
    pub messages: Vec<MessageRef>,
    pub next_page_token: Option<String>,
    pub result_size_estimate: Option<u64>,
}

/// `users.messages.get` with `format=raw`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawMessage {
    pub id: String,
    pub thread_id: Option<String>,
    #[serde(default)]
    pub label_ids: Vec<String>,
    pub internal_date: String,
    pub raw: String,
}

/// `users.history.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryList {
    #[serde(default)]
    pub history: Vec<History>,
    pub next_page_token: Option<String>,
    pub history_id: String,
}

/// One history record.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    #[serde(default)]
    pub messages_added: Vec<Changed>,
    #[serde(default)]
    pub messages_deleted: Vec<Changed>,
}

/// A message named by a history record.
#[derive(Debug, Deserialize)]
pub struct Changed {
    pub message: MessageRef,
}

/// `users.messages.send`'s answer.
#[derive(Debug, Deserialize)]
pub struct Sent {
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, reason: &str, retry_after: Option<u32>) -> ProviderError {
        Failure::Status {
            status,
            reason: reason.into(),
            message: "m".into(),
            retry_after,
        }
        .into_error()
    }

    #[test]
    fn google_errors_map_to_typed_errors() {
        assert!(matches!(
            status(401, "authError", None),
            ProviderError::AuthFailed(_)
        ));
        assert!(matches!(
            status(429, "rateLimitExceeded", Some(7)),
            ProviderError::RateLimited(7)
        ));
        assert!(matches!(
            status(429, "rateLimitExceeded", None),
            ProviderError::RateLimited(30)
        ));
        assert!(matches!(
            status(403, "userRateLimitExceeded", None),
            ProviderError::RateLimited(60)
        ));
        assert!(matches!(
            status(403, "forbidden", None),
            ProviderError::AuthFailed(_)
        ));
        assert!(matches!(
            status(503, "backendError", None),
            ProviderError::Unreachable(_)
        ));
        assert!(matches!(
            status(500, "backendError", Some(3)),
            ProviderError::RateLimited(3)
        ));
        assert!(matches!(
            status(400, "invalidArgument", None),
            ProviderError::Other(_)
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("12"), Some(12));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(90));
        let secs = retry_after(&soon).unwrap_or(0);
        assert!((85..=90).contains(&secs), "{secs}");
        assert_eq!(retry_after("soon"), None);
    }
}
