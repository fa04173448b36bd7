//! Requests to Microsoft Graph v1.0, and Graph's error answers as the
//! contract's typed errors. The host attaches the access token.

use mailroom_plugin_sdk::http::{self, Failure};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wstd::http::{Client, Method};

use crate::bindings::mailroom::provider::types::ProviderError;

/// Graph's root.
pub const BASE: &str = "https://graph.microsoft.com/v1.0";

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Graph's words for a failed call, as the contract's typed error.
pub fn into_error(failure: Failure) -> ProviderError {
    let (status, retry_after, body) = match failure {
        Failure::Status {
            status,
            retry_after,
            body,
            ..
        } => (status, retry_after, body),
        Failure::Transport(why) | Failure::NoSuchHost(why) => {
            return ProviderError::Unreachable(format!("Microsoft Graph {why}"));
        }
        Failure::Decode(why) => return ProviderError::Other(why),
    };
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => (
            String::new(),
            String::from_utf8_lossy(&body).chars().take(200).collect(),
        ),
    };
    let expired = ["syncStateNotFound", "resyncRequired", "syncStateInvalid"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(&code));
    match status {
        410 => ProviderError::CursorExpired,
        _ if expired => ProviderError::CursorExpired,
        401 => ProviderError::AuthFailed(format!(
            "Microsoft did not accept the account's authorisation ({message}); use \"Update authentication\" to sign in with Microsoft again"
        )),
        403 => ProviderError::AuthFailed(format!(
            "Microsoft refused access ({message}); sign in again and allow Mailroom to read and send mail"
        )),
        429 => ProviderError::RateLimited(retry_after.unwrap_or(30)),
        500.. => match retry_after {
            Some(secs) => ProviderError::RateLimited(secs),
            None => {
                ProviderError::Unreachable(format!("Microsoft Graph answered {status}: {message}"))
            }
        },
        _ => ProviderError::Other(format!(
            "Microsoft Graph answered {status} {code}: {message}"
        )),
    }
}

/// The signed-in user, as `/me` gives it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    mail: Option<String>,
    user_principal_name: Option<String>,
}

/// A client for one call or run.
pub struct Graph {
    client: Client,
}

impl Graph {
    /// A client.
    pub fn new() -> Self {
        Graph {
            client: Client::new(),
        }
    }

    /// GET a JSON document: `url` is absolute (a Graph link) or under [`BASE`].
    pub async fn get<T: DeserializeOwned>(
        &self,
        url: &str,
        page_size: Option<u32>,
    ) -> Result<T, Failure> {
        let url = if url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{BASE}{url}")
        };
        let prefer = page_size.map(|n| format!("odata.maxpagesize={n}"));
        let mut headers = vec![("accept", "application/json")];
        if let Some(p) = &prefer {
            headers.push(("prefer", p.as_str()));
        }
        let (_, bytes) = http::send(&self.client, Method::GET, &url, &headers, None).await?;
        http::json(&url, &bytes)
    }

    /// A message's MIME; `None` when it is gone.
    pub async fn mime(&self, id: &str) -> Result<Option<Vec<u8>>, Failure> {
        let url = format!("{BASE}/me/messages/{id}/$value");
        match http::send(&self.client, Method::GET, &url, &[], None).await {
            Ok((_, bytes)) => Ok(Some(bytes)),
            Err(f) if f.status() == Some(404) => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// `POST /me/sendMail` with the base64 MIME; Graph files a copy in Sent Items.
    pub async fn send_mime(&self, base64_mime: String) -> Result<(), ProviderError> {
        let url = format!("{BASE}/me/sendMail");
        let headers = [("content-type", "text/plain")];
        http::send(
            &self.client,
            Method::POST,
            &url,
            &headers,
            Some(base64_mime.into_bytes()),
        )
        .await
        .map_err(into_error)?;
        Ok(())
    }

    /// Sign in once: the token's user must be the account.
    pub async fn check_address(&self, address: &str) -> Result<(), ProviderError> {
        let me: Me = self
            .get("/me?$select=mail,userPrincipalName", None)
            .await
            .map_err(into_error)?;
        let names = [me.mail, me.user_principal_name];
        if names
            .iter()
            .flatten()
            .any(|n| n.eq_ignore_ascii_case(address.trim()))
        {
            return Ok(());
        }
        Err(ProviderError::AuthFailed(format!(
            "Microsoft signed in {} but the account is {address}: sign in as {address}",
            names
                .iter()
                .flatten()
                .next()
                .map_or("another user", |n| n.as_str())
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: &str, retry_after: Option<u32>) -> ProviderError {
        let body = serde_json::json!({"error": {"code": code, "message": "m"}});
        into_error(Failure::Status {
            status,
            retry_after,
            body: body.to_string().into_bytes(),
            location: None,
        })
    }

    #[test]
    fn graph_errors_map_to_typed_errors() {
        assert!(matches!(
            status(410, "", None),
            ProviderError::CursorExpired
        ));
        assert!(matches!(
            status(400, "syncStateNotFound", None),
            ProviderError::CursorExpired
        ));
        assert!(matches!(
            status(401, "InvalidAuthenticationToken", None),
            ProviderError::AuthFailed(_)
        ));
        assert!(matches!(
            status(429, "TooManyRequests", Some(9)),
            ProviderError::RateLimited(9)
        ));
        assert!(matches!(
            status(503, "ServiceUnavailable", Some(4)),
            ProviderError::RateLimited(4)
        ));
        assert!(matches!(
            status(503, "ServiceUnavailable", None),
            ProviderError::Unreachable(_)
        ));
        assert!(matches!(
            status(400, "BadRequest", None),
            ProviderError::Other(_)
        ));
    }
}
