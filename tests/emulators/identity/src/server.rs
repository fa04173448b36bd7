//! The authorization server's state: clients, accounts, grants, codes and
//! tokens, and the rules of the authorization-code flow with PKCE, refresh
//! and revocation. This module knows nothing of HTTP or mailboxes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// A registered OAuth client.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client id.
    pub id: String,
    /// The client secret.
    pub secret: String,
    /// The redirect URIs it registered.
    pub redirect_uris: Vec<String>,
}

/// What a consent (an approved authorization request) grants.
#[derive(Debug, Clone)]
struct Grant {
    email: String,
    client_id: String,
    scope: String,
    revoked: bool,
}

/// An issued authorization code, waiting to be exchanged.
#[derive(Debug, Clone)]
struct Code {
    grant: usize,
    redirect_uri: String,
    challenge: Option<(String, String)>,
    issued: Instant,
}

/// An OAuth error as Google's token endpoint words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// HTTP status.
    pub status: u16,
    /// `invalid_grant`, `invalid_client`, ...
    pub error: &'static str,
    /// The description.
    pub description: String,
}

impl TokenError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        TokenError {
            status,
            error,
            description: description.into(),
        }
    }
}

/// Tokens handed out by the token endpoint.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// A refresh token (on a code exchange only).
    pub refresh_token: Option<String>,
    /// The scope granted.
    pub scope: String,
    /// An OpenID Connect id token naming the account.
    pub id_token: String,
}

/// The authorization server's state.
#[derive(Debug, Default)]
pub struct Server {
    clients: Vec<Client>,
    users: HashSet<String>,
    grants: Vec<Grant>,
    codes: HashMap<String, Code>,
    access: HashMap<String, (usize, Instant)>,
    refresh: HashMap<String, usize>,
    /// Lifetime of access tokens; Google's is an hour.
    pub lifetime: Option<Duration>,
}

fn token(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::rng().random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

impl Server {
    /// Register a client.
    pub fn register(&mut self, client: Client) {
        self.clients.push(client);
    }

    /// Make an account known (case-insensitively).
    pub fn add_user(&mut self, email: &str) {
        self.users.insert(email.to_lowercase());
    }

    /// Whether an account is known.
    pub fn has_user(&self, email: &str) -> bool {
        self.users.contains(&email.to_lowercase())
    }

    fn lifetime(&self) -> Duration {
        self.lifetime.unwrap_or(Duration::from_secs(3600))
    }

    /// Check an authorization request: the client and its redirect URI.
    pub fn check_request(&self, client_id: &str, redirect_uri: &str) -> Result<(), TokenError> {
        let client = self
            .clients
            .iter()
            .find(|c| c.id == client_id)
            .ok_or_else(|| {
                TokenError::new(401, "invalid_client", "The OAuth client was not found.")
            })?;
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(TokenError::new(
                400,
                "redirect_uri_mismatch",
                format!("{redirect_uri} is not a registered redirect URI of this client"),
            ));
        }
        Ok(())
    }

    /// The user approved: issue a code.
    pub fn approve(
        &mut self,
        email: &str,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        challenge: Option<(String, String)>,
    ) -> Result<String, TokenError> {
        self.check_request(client_id, redirect_uri)?;
        self.grants.push(Grant {
            email: email.to_lowercase(),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            revoked: false,
        });
        let code = token("4/0A");
        self.codes.insert(
            code.clone(),
            Code {
                grant: self.grants.len() - 1,
                redirect_uri: redirect_uri.to_string(),
                challenge,
                issued: Instant::now(),
            },
        );
        Ok(code)
    }

    fn client(&self, id: &str, secret: &str) -> Result<(), TokenError> {
        match self.clients.iter().find(|c| c.id == id) {
            Some(c) if c.secret == secret => Ok(()),
            _ => Err(TokenError::new(401, "invalid_client", "Unauthorized")),
        }
    }

    /// `grant_type=authorization_code`.
    pub fn exchange(
        &mut self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<Issued, TokenError> {
        self.client(client_id, client_secret)?;
        let bad = || TokenError::new(400, "invalid_grant", "Malformed auth code.");
        let entry = self.codes.remove(code).ok_or_else(bad)?;
        let grant = &self.grants[entry.grant];
        if grant.client_id != client_id
            || entry.redirect_uri != redirect_uri
            || entry.issued.elapsed() > Duration::from_secs(600)
        {
            return Err(bad());
        }
        if let Some((challenge, method)) = &entry.challenge {
            let verifier = verifier
                .ok_or_else(|| TokenError::new(400, "invalid_grant", "Missing code verifier."))?;
            let computed = match method.as_str() {
                "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
                _ => verifier.to_string(),
            };
            if &computed != challenge {
                return Err(TokenError::new(
                    400,
                    "invalid_grant",
                    "Invalid code verifier.",
                ));
            }
        }
        let refresh = token("1//0g");
        self.refresh.insert(refresh.clone(), entry.grant);
        let mut issued = self.issue(entry.grant);
        issued.refresh_token = Some(refresh);
        Ok(issued)
    }

    /// `grant_type=refresh_token`.
    pub fn refresh(
        &mut self,
        client_id: &str,
        client_secret: &str,
        refresh: &str,
    ) -> Result<Issued, TokenError> {
        self.client(client_id, client_secret)?;
        let revoked =
            || TokenError::new(400, "invalid_grant", "Token has been expired or revoked.");
        let grant = *self.refresh.get(refresh).ok_or_else(revoked)?;
        if self.grants[grant].revoked || self.grants[grant].client_id != client_id {
            return Err(revoked());
        }
        Ok(self.issue(grant))
    }

    fn issue(&mut self, grant: usize) -> Issued {
        let access = token("ya29.");
        let lifetime = self.lifetime();
        self.access
            .insert(access.clone(), (grant, Instant::now() + lifetime));
        let g = &self.grants[grant];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"emulator","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": "https://accounts.google.com",
            "aud": g.client_id,
            "sub": format!("{:x}", Sha256::digest(g.email.as_bytes()))[..21].to_string(),
            "email": g.email,
            "preferred_username": g.email,
            "email_verified": true,
            "iat": now,
            "exp": now + lifetime.as_secs(),
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signature = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{header}.{payload}")));
        Issued {
            access_token: access,
            expires_in: lifetime.as_secs(),
            refresh_token: None,
            scope: g.scope.clone(),
            id_token: format!("{header}.{payload}.{signature}"),
        }
    }

    /// An access token for `email` without the consent page, for tests that
    /// are not about signing in.
    pub fn mint(&mut self, email: &str) -> String {
        self.add_user(email);
        self.grants.push(Grant {
            email: email.to_lowercase(),
            client_id: "emulator-test".into(),
            scope: "https://www.googleapis.com/auth/gmail.modify".into(),
            revoked: false,
        });
        self.issue(self.grants.len() - 1).access_token
    }

    /// The mailbox an access token may read, if it is valid.
    pub fn authorize(&self, access: &str) -> Option<&str> {
        let (grant, until) = self.access.get(access)?;
        let g = &self.grants[*grant];
        (!g.revoked && Instant::now() < *until).then_some(g.email.as_str())
    }

    /// `/revoke`: revoke the grant behind an access or refresh token.
    pub fn revoke_token(&mut self, token: &str) -> bool {
        let grant = self
            .access
            .get(token)
            .map(|(g, _)| *g)
            .or_else(|| self.refresh.get(token).copied());
        match grant {
            Some(g) => {
                self.grants[g].revoked = true;
                true
            }
            None => false,
        }
    }

    /// Revoke every grant a mailbox gave (the user removed the app's access).
    pub fn revoke_email(&mut self, email: &str) {
        let email = email.to_lowercase();
        for g in self.grants.iter_mut().filter(|g| g.email == email) {
            g.revoked = true;
        }
    }

    /// How many grants of a mailbox are not revoked.
    pub fn active_grants(&self, email: &str) -> usize {
        self.grants
            .iter()
            .filter(|g| g.email == email.to_lowercase() && !g.revoked)
            .count()
    }

    /// Make every access token of a mailbox expire now (refresh tokens stay good).
    pub fn expire_access(&mut self, email: &str) {
        let now = Instant::now();
        for (grant, until) in self.access.values_mut() {
            if self.grants[*grant].email == email.to_lowercase() {
                *until = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_needs_its_verifier_and_revoking_ends_the_grant() {
        let mut s = Server::default();
        let cb = "http://app.test/cb";
        s.register(Client {
            id: "c".into(),
            secret: "s".into(),
            redirect_uris: vec![cb.into()],
        });
        let verifier = "v".repeat(43);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let pkce = || Some((challenge.clone(), "S256".to_string()));
        assert!(
            s.approve("a@x.test", "c", "http://evil.test/cb", "email", pkce())
                .is_err()
        );
        let code = s.approve("a@x.test", "c", cb, "email", pkce()).unwrap();
        let wrong = s.exchange("c", "s", &code, cb, Some("not-the-verifier"));
        assert_eq!(wrong.map(|_| ()).map_err(|e| e.error), Err("invalid_grant"));
        let code = s.approve("a@x.test", "c", cb, "email", pkce()).unwrap();
        assert!(
            s.exchange("c", "wrong secret", &code, cb, Some(&verifier))
                .is_err()
        );
        let code = s.approve("a@x.test", "c", cb, "email", pkce()).unwrap();
        let t = s.exchange("c", "s", &code, cb, Some(&verifier)).unwrap();
        assert!(
            s.exchange("c", "s", &code, cb, Some(&verifier)).is_err(),
            "a code is good once"
        );
        assert_eq!(s.authorize(&t.access_token), Some("a@x.test"));
        let refresh = t.refresh_token.unwrap();
        let renewed = s.refresh("c", "s", &refresh).unwrap();
        assert!(
            s.revoke_token(&renewed.access_token),
            "revoking an access token revokes the grant"
        );
        assert_eq!(
            s.refresh("c", "s", &refresh)
                .map(|_| ())
                .map_err(|e| e.error),
            Err("invalid_grant")
        );
        assert_eq!(s.authorize(&t.access_token), None);
    }
}
