//! Plugin signatures: an ed25519 signature over a plugin's digest
//! (`sha256:<hex>`, as UTF-8), by a key the operator trusts. Keys and
//! signatures travel as base64. With `require_signed`, a plugin without a
//! signature by a trusted key is refused, whoever installs it and however.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// The keys an operator trusts, and whether a signature is required.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<(String, VerifyingKey)>,
    /// Refuse plugins without a signature by a trusted key.
    pub require_signed: bool,
}

/// Why a key, a signature or a plugin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// A configured key does not parse.
    #[error("MAILROOM_TRUSTED_KEYS: `{0}` is not NAME=BASE64 of a 32-byte ed25519 public key")]
    BadKey(String),
    /// The signature does not parse.
    #[error("the signature is not base64 of a 64-byte ed25519 signature")]
    BadSignature,
    /// It parses but no trusted key made it.
    #[error("the signature is not by any trusted key (MAILROOM_TRUSTED_KEYS)")]
    Untrusted,
    /// None was given, and one is required.
    #[error(
        "unsigned plugins are refused here (MAILROOM_REQUIRE_SIGNED): sign it with `mailroom plugin sign`"
    )]
    Unsigned,
}

impl Trust {
    /// Keys as `NAME=BASE64`, separated by commas.
    pub fn new(keys: &str, require_signed: bool) -> Result<Self, TrustError> {
        let keys = keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                let (name, b64) = k
                    .split_once('=')
                    .ok_or_else(|| TrustError::BadKey(k.into()))?;
                let bytes: [u8; 32] = STANDARD
                    .decode(b64.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| TrustError::BadKey(k.into()))?;
                let key =
                    VerifyingKey::from_bytes(&bytes).map_err(|_| TrustError::BadKey(k.into()))?;
                Ok((name.trim().to_string(), key))
            })
            .collect::<Result<_, _>>()?;
        Ok(Trust {
            keys,
            require_signed,
        })
    }

    /// Who signed `digest`, when a signature is given; an error when it is
    /// not by a trusted key, or when none is given and one is required.
    pub fn check(
        &self,
        digest: &str,
        signature: Option<&str>,
    ) -> Result<Option<String>, TrustError> {
        let Some(signature) = signature.map(str::trim).filter(|s| !s.is_empty()) else {
            return if self.require_signed {
                Err(TrustError::Unsigned)
            } else {
                Ok(None)
            };
        };
        let bytes: [u8; 64] = STANDARD
            .decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(TrustError::BadSignature)?;
        let signature = Signature::from_bytes(&bytes);
        self.keys
            .iter()
            .find(|(_, key)| key.verify(digest.as_bytes(), &signature).is_ok())
            .map(|(name, _)| Some(name.clone()))
            .ok_or(TrustError::Untrusted)
    }
}

/// A new signing key: the secret to keep, and the public key to trust (both base64).
pub fn generate() -> (String, String) {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    (
        STANDARD.encode(key.to_bytes()),
        STANDARD.encode(key.verifying_key().to_bytes()),
    )
}

/// Sign a plugin's digest with a secret key (base64): the signature (base64).
pub fn sign(secret: &str, digest: &str) -> Result<String, TrustError> {
    let bytes: [u8; 32] = STANDARD
        .decode(secret.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TrustError::BadKey("(the signing key)".into()))?;
    let key = SigningKey::from_bytes(&bytes);
    Ok(STANDARD.encode(key.sign(digest.as_bytes()).to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_by_a_trusted_key_passes_and_any_other_is_refused() {
        let (secret, public) = generate();
        let (other, _) = generate();
        let trust = Trust::new(&format!("release={public}"), true).unwrap();
        let digest = "sha256:00ff";
        let good = sign(&secret, digest).unwrap();
        assert_eq!(trust.check(digest, Some(&good)), Ok(Some("release".into())));
        assert_eq!(
            trust.check("sha256:11ee", Some(&good)),
            Err(TrustError::Untrusted)
        );
        let bad = sign(&other, digest).unwrap();
        assert_eq!(trust.check(digest, Some(&bad)), Err(TrustError::Untrusted));
        assert_eq!(
            trust.check(digest, Some("zz")),
            Err(TrustError::BadSignature)
        );
        assert_eq!(trust.check(digest, None), Err(TrustError::Unsigned));
        let lax = Trust::new("", false).unwrap();
        assert_eq!(lax.check(digest, None), Ok(None));
        assert!(matches!(
            Trust::new("nokey", false),
            Err(TrustError::BadKey(_))
        ));
    }
}
