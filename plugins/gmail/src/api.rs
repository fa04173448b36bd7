//! Calls to the Gmail REST API over `wasi:http`, paced to the per-user quota,
//! with Google's error answers turned into the contract's typed errors.
//!
//! The plugin never holds a token: the host adds `Authorization` to every
//! request sent to `https://gmail.googleapis.com` (and may serve that origin
//! from another base URL, e.g. an emulator in tests). This module does not
//! decide what to fetch; `sync` does.

use std::cell::Cell;
use std::time::{Duration, Instant};

use mailroom_plugin_sdk::http::{self, Failure};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wstd::http::{Client, Method};

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

/// Google's words for a failed call, as the contract's typed error.
pub fn into_error(failure: Failure) -> ProviderError {
    let (status, retry_after, body) = match failure {
        Failure::Status {
            status,
            retry_after,
            body,
            ..
        } => (status, retry_after, body),
        Failure::Transport(why) | Failure::NoSuchHost(why) => {
            return ProviderError::Unreachable(format!("Gmail {why}"));
        }
        Failure::Decode(why) => return ProviderError::Other(why),
    };
    let (reason, message) = match serde_json::from_slice::<ErrorBody>(&body) {
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
            String::from_utf8_lossy(&body).chars().take(200).collect(),
        ),
    };
    let rate_limited =
        status == 429 || (status == 403 && reason.to_lowercase().contains("ratelimitexceeded"));
    match status {
        401 => ProviderError::AuthFailed(format!(
            "Google did not accept the account's authorisation ({message}); use \"Update authentication\" to sign in with Google again"
        )),
        _ if rate_limited => {
            ProviderError::RateLimited(retry_after.unwrap_or(if status == 429 { 30 } else { 60 }))
        }
        403 => ProviderError::AuthFailed(format!(
            "Google refused access ({message}); sign in with Google again and allow Mailroom to read and send mail"
        )),
        500.. => match retry_after {
            Some(secs) => ProviderError::RateLimited(secs),
            None => ProviderError::Unreachable(format!("Gmail answered {status}: {message}")),
        },
        _ => ProviderError::Other(format!("Gmail answered {status}: {message}")),
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
        let mut headers = vec![("accept", "application/json")];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let url = format!("{BASE}{path}");
        let body = body.map(String::into_bytes);
        let (_, bytes) = http::send(&self.client, method, &url, &headers, body).await?;
        http::json(path, &bytes)
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
        let body = serde_json::json!({
            "error": {"code": status, "message": "m", "errors": [{"reason": reason}]}
        });
        into_error(Failure::Status {
            status,
            retry_after,
            body: body.to_string().into_bytes(),
            location: None,
        })
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
}
