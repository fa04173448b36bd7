//! `mailroom-oauth`: OAuth 2.0 for mail providers that sign in with it.
//!
//! The authorization-code flow with PKCE (RFC 7636) against the endpoints the
//! operator configured for a provider (Google's by default), the refresh of
//! access tokens, and revocation — through the `oauth2` crate, over the
//! host's TLS roots, with redirects refused. It also says how a token set is
//! kept among an account's sealed secrets: the plugin's access-token field,
//! plus host-only entries (`oauth:*`) that are never handed to a plugin.
//!
//! This crate stores nothing itself and never logs or formats a token.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use mailroom_net::TlsConfig;
use mailroom_policy::Secret;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};

/// Secret names the host keeps for itself; a plugin never gets them.
pub const HOST_ONLY_PREFIX: &str = "oauth:";
const REFRESH_TOKEN: &str = "oauth:refresh_token";
const EXPIRES_AT: &str = "oauth:expires_at";

/// Google's endpoints and the scopes the Gmail plugin needs.
pub mod google {
    /// The consent page.
    pub const AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
    /// The token endpoint.
    pub const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
    /// The revocation endpoint.
    pub const REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
    /// Read and send mail, and the address of the account (OpenID Connect).
    pub const SCOPES: &[&str] = &[
        "openid",
        "email",
        "https://www.googleapis.com/auth/gmail.modify",
    ];
}

/// The Microsoft identity platform's endpoints (under an authority such as
/// `https://login.microsoftonline.com/common`) and the scopes the Microsoft 365
/// plugin needs.
pub mod microsoft {
    /// The authority for work, school and personal accounts.
    pub const AUTHORITY: &str = "https://login.microsoftonline.com/common";
    /// Read and send mail, a refresh token, and the account's address.
    pub const SCOPES: &[&str] = &[
        "openid",
        "email",
        "offline_access",
        "https://graph.microsoft.com/Mail.ReadWrite",
        "https://graph.microsoft.com/Mail.Send",
    ];

    /// The consent page under `authority`.
    pub fn authorize_url(authority: &str) -> String {
        format!("{}/oauth2/v2.0/authorize", authority.trim_end_matches('/'))
    }

    /// The token endpoint under `authority`.
    pub fn token_url(authority: &str) -> String {
        format!("{}/oauth2/v2.0/token", authority.trim_end_matches('/'))
    }
}

/// One provider as the operator configured it.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The plugin whose accounts sign in this way (`gmail`).
    pub plugin: String,
    /// The secret field of the plugin that receives the access token.
    pub token_field: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: Secret,
    /// The authorization (consent) endpoint.
    pub authorize_url: String,
    /// The token endpoint.
    pub token_url: String,
    /// The revocation endpoint, if the provider has one.
    pub revoke_url: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// Where the provider sends the browser back: the host's callback.
    pub redirect_url: String,
}

/// Why an OAuth exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The configuration is wrong (a URL does not parse).
    #[error("OAuth configuration for `{plugin}`: {why}")]
    Config {
        /// The provider's plugin.
        plugin: String,
        /// What is wrong.
        why: String,
    },
    /// The grant is gone (`invalid_grant`: revoked, expired, or a used code):
    /// the user must sign in again.
    #[error("the provider no longer accepts the account's authorisation ({0})")]
    Revoked(String),
    /// The provider refused the request for another reason.
    #[error("the provider refused: {0}")]
    Refused(String),
    /// The provider could not be reached.
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
}

/// What the token endpoint gives besides the standard fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    /// The OpenID Connect id token, when `openid` was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;
type Client = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A consent flow begun: send the browser to `url`; keep `state` and
/// `verifier` until the callback.
pub struct Started {
    /// The provider's consent page, with the request in its query.
    pub url: String,
    /// The CSRF `state` the callback must bring back.
    pub state: String,
    /// The PKCE verifier the code exchange must present.
    pub verifier: Secret,
}

/// Tokens from the token endpoint.
pub struct Tokens {
    /// The access token.
    pub access: Secret,
    /// A refresh token, when the provider issued one.
    pub refresh: Option<Secret>,
    /// When the access token expires (Unix seconds).
    pub expires_at: i64,
    /// The account's address, from the id token.
    pub email: Option<String>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The account's address in an id token: the `email` claim, or Microsoft's
/// `preferred_username` (its sign-in name). The token came straight from the
/// token endpoint over TLS, so its signature need not be checked
/// (OpenID Connect Core §3.1.3.7).
fn email_claim(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["email"]
        .as_str()
        .or_else(|| claims["preferred_username"].as_str())
        .map(str::to_string)
}

/// One configured provider.
pub struct Provider {
    config: ProviderConfig,
    client: Client,
    http: reqwest::Client,
}

impl Provider {
    /// Check the configuration and build the client; TLS uses the host's roots.
    pub fn new(config: ProviderConfig, tls: &TlsConfig) -> Result<Self, OAuthError> {
        let bad = |why: String| OAuthError::Config {
            plugin: config.plugin.clone(),
            why,
        };
        let url = |name: &str, value: &str| {
            reqwest::Url::parse(value).map_err(|e| bad(format!("{name} `{value}`: {e}")))
        };
        url("authorize_url", &config.authorize_url)?;
        url("token_url", &config.token_url)?;
        url("redirect_url", &config.redirect_url)?;
        let client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(config.client_secret.expose().to_string()))
            .set_auth_uri(
                AuthUrl::new(config.authorize_url.clone()).map_err(|e| bad(e.to_string()))?,
            )
            .set_token_uri(TokenUrl::new(config.token_url.clone()).map_err(|e| bad(e.to_string()))?)
            .set_redirect_uri(
                RedirectUrl::new(config.redirect_url.clone()).map_err(|e| bad(e.to_string()))?,
            );
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls.client_config()).clone())
            // The token endpoint must not send a token request elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        if let Some(revoke) = &config.revoke_url {
            url("revoke_url", revoke)?;
        }
        Ok(Provider {
            config,
            client,
            http,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Begin a consent flow; `login_hint` pre-selects the account.
    pub fn start(&self, login_hint: Option<&str>) -> Started {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.config.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            // A refresh token, and a new one on every consent.
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent");
        if let Some(hint) = login_hint {
            request = request.add_extra_param("login_hint", hint.to_string());
        }
        let (url, state) = request.url();
        Started {
            url: url.to_string(),
            state: state.secret().clone(),
            verifier: Secret::new(verifier.secret().clone()),
        }
    }

    /// Exchange the callback's code (with the flow's PKCE verifier) for tokens.
    pub async fn exchange(&self, code: &str, verifier: &Secret) -> Result<Tokens, OAuthError> {
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_string()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(tokens(answer))
    }

    /// A fresh access token from a refresh token.
    pub async fn refresh(&self, refresh: &Secret) -> Result<Tokens, OAuthError> {
        let answer = self
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh.expose().to_string()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(tokens(answer))
    }

    /// Revoke a token (and with it, at Google, the whole grant).
    pub async fn revoke(&self, token: &Secret) -> Result<(), OAuthError> {
        let Some(url) = &self.config.revoke_url else {
            return Ok(());
        };
        let response = self
            .http
            .post(url)
            .form(&[("token", token.expose())])
            .send()
            .await
            .map_err(|e| OAuthError::Unreachable(e.without_url().to_string()))?;
        match response.status().as_u16() {
            200..=299 | 400 => Ok(()), // 400: already revoked or expired
            status => Err(OAuthError::Refused(format!("revocation answered {status}"))),
        }
    }
}

fn token_error<E: std::error::Error>(e: RequestTokenError<E, BasicErrorResponse>) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(answer) => {
            let why = answer
                .error_description()
                .cloned()
                .unwrap_or_else(|| answer.error().to_string());
            match answer.error() {
                BasicErrorResponseType::InvalidGrant => OAuthError::Revoked(why),
                other => OAuthError::Refused(format!("{other}: {why}")),
            }
        }
        RequestTokenError::Request(e) => OAuthError::Unreachable(e.to_string()),
        RequestTokenError::Parse(e, _) => OAuthError::Refused(format!("unreadable answer: {e}")),
        RequestTokenError::Other(why) => OAuthError::Refused(why),
    }
}

fn tokens(answer: TokenAnswer) -> Tokens {
    let lifetime = answer.expires_in().map_or(3600, |d| d.as_secs() as i64);
    Tokens {
        access: Secret::new(answer.access_token().secret().clone()),
        refresh: answer
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone())),
        expires_at: now() + lifetime,
        email: answer
            .extra_fields()
            .id_token
            .as_deref()
            .and_then(email_claim),
    }
}

/// The providers the operator configured, by plugin name.
#[derive(Default)]
pub struct OAuth {
    providers: Vec<Provider>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plugins: Vec<&str> = self
            .providers
            .iter()
            .map(|p| p.config.plugin.as_str())
            .collect();
        f.debug_struct("OAuth").field("plugins", &plugins).finish()
    }
}

impl OAuth {
    /// The configured providers.
    pub fn new(providers: Vec<Provider>) -> Self {
        OAuth { providers }
    }

    /// The provider for a plugin, if its accounts sign in with OAuth.
    pub fn for_plugin(&self, plugin: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.config.plugin == plugin)
    }
}

/// A token set as kept among an account's secrets.
pub struct Stored<'a> {
    /// The refresh token.
    pub refresh: &'a str,
    /// When the access token expires (Unix seconds; 0 when unknown).
    pub expires_at: i64,
}

/// Put `tokens` into an account's secrets: the access token under the
/// plugin's field, the rest under host-only names. A refresh answer without
/// a new refresh token keeps the old one.
pub fn store(secrets: &mut BTreeMap<String, String>, token_field: &str, tokens: &Tokens) {
    secrets.insert(token_field.to_string(), tokens.access.expose().to_string());
    if let Some(refresh) = &tokens.refresh {
        secrets.insert(REFRESH_TOKEN.into(), refresh.expose().to_string());
    }
    secrets.insert(EXPIRES_AT.into(), tokens.expires_at.to_string());
}

/// The stored token set, if the account has one.
pub fn stored(secrets: &BTreeMap<String, String>) -> Option<Stored<'_>> {
    Some(Stored {
        refresh: secrets.get(REFRESH_TOKEN)?,
        expires_at: secrets
            .get(EXPIRES_AT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

/// Whether the access token must be refreshed before a run: it expires
/// within five minutes (runs are shorter than that margin plus the lease).
pub fn needs_refresh(stored: &Stored<'_>) -> bool {
    stored.expires_at - now() < 300
}

/// Whether a secret is the host's own (never given to a plugin).
pub fn is_host_only(name: &str) -> bool {
    name.starts_with(HOST_ONLY_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sets_round_trip_through_secrets() {
        let mut secrets = BTreeMap::new();
        let t = Tokens {
            access: Secret::new("a1"),
            refresh: Some(Secret::new("r1")),
            expires_at: now() + 3600,
            email: None,
        };
        store(&mut secrets, "access_token", &t);
        let s = stored(&secrets).map(|s| (s.refresh.to_string(), needs_refresh(&s)));
        assert_eq!(s, Some(("r1".to_string(), false)));
        let again = Tokens {
            access: Secret::new("a2"),
            refresh: None,
            expires_at: now() + 60,
            email: None,
        };
        store(&mut secrets, "access_token", &again);
        assert_eq!(secrets["access_token"], "a2");
        assert_eq!(
            secrets[REFRESH_TOKEN], "r1",
            "a refresh keeps the refresh token"
        );
        assert!(stored(&secrets).is_some_and(|s| needs_refresh(&s)));
        assert!(is_host_only(REFRESH_TOKEN) && !is_host_only("access_token"));
    }

    #[test]
    fn the_email_comes_from_the_id_token_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"email":"ann@example.com","sub":"1"}"#);
        assert_eq!(
            email_claim(&format!("h.{payload}.s")),
            Some("ann@example.com".into())
        );
        assert_eq!(email_claim("garbage"), None);
    }
}
