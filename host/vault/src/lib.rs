//! `mailroom-vault`: sealing credentials at rest.
//!
//! Account passwords and tokens reach the database only as XChaCha20-Poly1305
//! ciphertext under the operator's 32-byte key, bound to the row they belong
//! to (the associated data), so a sealed blob copied onto another account
//! does not open. The key comes from `MAILROOM_SECRET_KEY` (base64), a key
//! file, or, for the embedded default, a key file made on first start.
//! This crate never logs, and its errors never carry plaintext or key bytes.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The format byte in front of every sealed blob.
const VERSION: u8 = 1;
const NONCE: usize = 24;

/// Why a key could not be had or a blob not opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key is not 32 bytes of base64.
    #[error("{source_name}: the secret key must be 32 bytes, base64-encoded ({why})")]
    BadKey {
        /// Where the key came from (variable or file).
        source_name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The key file could not be read or made.
    #[error("secret key file {path}: {why}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        why: String,
    },
    /// The blob was not sealed by this key for this row, or was altered.
    #[error("sealed credentials do not open with this key (wrong key, or altered data)")]
    Open,
}

/// The operator's sealing key.
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// A vault from a base64 key; `source_name` names where it came from in errors.
    pub fn from_base64(key: &str, source_name: &str) -> Result<Self, VaultError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|e| VaultError::BadKey {
                source_name: source_name.into(),
                why: e.to_string(),
            })?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| VaultError::BadKey {
            source_name: source_name.into(),
            why: format!("it is {} bytes", b.len()),
        })?;
        Ok(Vault {
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// Read the key file at `path`, making one with a fresh random key
    /// (readable by its owner only) when there is none.
    pub fn from_file_or_create(path: &Path) -> Result<Self, VaultError> {
        let file_error = |e: std::io::Error| VaultError::KeyFile {
            path: path.display().to_string(),
            why: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(file_error)?;
                }
                let key: [u8; 32] = rand::random();
                let text = base64::engine::general_purpose::STANDARD.encode(key);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(file_error)?;
                file.write_all(text.as_bytes()).map_err(file_error)?;
                Self::from_base64(&text, &path.display().to_string())
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// Seal `plaintext` for the row `bound_to`.
    pub fn seal(&self, bound_to: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: bound_to,
                },
            )
            // Encryption fails only for inputs over 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Open a blob sealed for the row `bound_to`.
    pub fn open(&self, bound_to: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < 1 + NONCE || sealed[0] != VERSION {
            return Err(VaultError::Open);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: bound_to,
                },
            )
            .map_err(|_| VaultError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn sealed_opens_only_for_its_row_and_key() {
        let vault = Vault::from_base64(KEY, "test").unwrap();
        let sealed = vault.seal(b"account:1", b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(vault.open(b"account:1", &sealed).unwrap(), b"hunter2");
        assert!(matches!(
            vault.open(b"account:2", &sealed),
            Err(VaultError::Open)
        ));
        let other =
            Vault::from_base64("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=", "other").unwrap();
        assert!(other.open(b"account:1", &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(vault.open(b"account:1", &altered).is_err());
    }

    #[test]
    fn bad_keys_name_their_source() {
        let e = Vault::from_base64("c2hvcnQ=", "MAILROOM_SECRET_KEY").unwrap_err();
        assert!(e.to_string().contains("MAILROOM_SECRET_KEY"), "{e}");
        assert!(e.to_string().contains("5 bytes"), "{e}");
    }

    #[test]
    fn key_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secret.key");
        let a = Vault::from_file_or_create(&path).unwrap();
        let sealed = a.seal(b"r", b"s");
        let b = Vault::from_file_or_create(&path).unwrap();
        assert_eq!(b.open(b"r", &sealed).unwrap(), b"s");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
