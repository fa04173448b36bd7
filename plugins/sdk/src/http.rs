//! HTTP calls through `wasi:http` (with wstd), answers read whole, and
//! failures sorted into what went wrong: the service's status (with its
//! `Retry-After` and body), the transport, or an answer that did not decode.
//!
//! The host attaches credentials; a plugin never sets `Authorization`.

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use wstd::http::{Body, Client, Method, Request};

/// How a call failed.
#[derive(Debug)]
pub enum Failure {
    /// The service answered with a status outside 2xx.
    Status {
        /// The status code.
        status: u16,
        /// `Retry-After`, in seconds, when the answer carried one.
        retry_after: Option<u32>,
        /// The answer's body (the service's error document).
        body: Vec<u8>,
        /// `Location`, for a redirect (the plugin decides whether to follow it).
        location: Option<String>,
    },
    /// The host name does not resolve (DNS said there is no such name).
    NoSuchHost(String),
    /// The request did not complete: refused by the host, connection, TLS.
    Transport(String),
    /// The answer was not what the service documents.
    Decode(String),
}

impl Failure {
    /// The status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date (at least one second away).
pub fn retry_after(value: &str) -> Option<u32> {
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

/// Send a request and read the whole answer: its 2xx status and body.
pub async fn send(
    client: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<(u16, Vec<u8>), Failure> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(body.map_or_else(Body::empty, Body::from))
        .map_err(|e| Failure::Transport(format!("request to {url}: {e}")))?;
    let response = client.send(request).await.map_err(|e| {
        let dns = matches!(
            e.downcast_ref::<wstd::http::error::ErrorCode>(),
            Some(wstd::http::error::ErrorCode::DnsError(_))
        );
        if dns {
            Failure::NoSuchHost(format!("{url}: no such host"))
        } else {
            Failure::Transport(format!("could not be reached: {e:#}"))
        }
    })?;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = response.into_body();
    let bytes = body
        .contents()
        .await
        .map_err(|e| Failure::Transport(format!("reading the answer: {e:#}")))?
        .to_vec();
    if !(200..300).contains(&status) {
        return Err(Failure::Status {
            status,
            retry_after: retry,
            body: bytes,
            location,
        });
    }
    Ok((status, bytes))
}

/// Decode a JSON answer.
pub fn json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes)
        .map_err(|e| Failure::Decode(format!("the answer to {what} did not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("12"), Some(12));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(90));
        let secs = retry_after(&soon).unwrap_or(0);
        assert!((85..=90).contains(&secs), "{secs}");
        assert_eq!(retry_after("soon"), None);
    }
}
