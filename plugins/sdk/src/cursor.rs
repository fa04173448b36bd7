//! A cursor is the plugin's own note of where a sync stands. The host stores
//! it with each page and hands it back; it never reads it. This module turns
//! any serde state into a short, URL-safe string that carries a version, so
//! that a plugin can change its state's shape and recognise (and refuse, with
//! `cursor-expired`) a cursor written by an older release.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a cursor could not be read: in every case the plugin should answer
/// `cursor-expired` so the host starts the window again.
#[derive(Debug, PartialEq, Eq)]
pub enum CursorError {
    /// Written by another version of the state (the number it carries).
    OtherVersion(Option<u32>),
    /// Not a cursor this code wrote.
    Garbled(String),
}

impl std::fmt::Display for CursorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CursorError::OtherVersion(Some(v)) => write!(f, "the cursor is of version {v}"),
            CursorError::OtherVersion(None) => write!(f, "the cursor carries no version"),
            CursorError::Garbled(why) => write!(f, "the cursor does not decode: {why}"),
        }
    }
}

/// `v<version>.<base64url(JSON)>`.
pub fn encode<T: Serialize>(version: u32, state: &T) -> String {
    // Serialising plain data to a Vec cannot fail; an empty object stands in if it ever did.
    let json = serde_json::to_vec(state).unwrap_or_else(|_| b"{}".to_vec());
    format!("v{version}.{}", URL_SAFE_NO_PAD.encode(json))
}

/// Read a cursor written by [`encode`] with the same `version`.
pub fn decode<T: DeserializeOwned>(version: u32, text: &str) -> Result<T, CursorError> {
    let (tag, body) = text
        .split_once('.')
        .ok_or(CursorError::OtherVersion(None))?;
    let found = tag
        .strip_prefix('v')
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or(CursorError::OtherVersion(None))?;
    if found != version {
        return Err(CursorError::OtherVersion(Some(found)));
    }
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| CursorError::Garbled(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| CursorError::Garbled(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct State {
        history: u64,
        pending: Vec<String>,
    }

    #[test]
    fn a_cursor_reads_back_as_written() {
        let state = State {
            history: 42,
            pending: vec!["a|b".into(), "c;d".into()],
        };
        let text = encode(3, &state);
        assert!(text.starts_with("v3."), "{text}");
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
        assert_eq!(decode::<State>(3, &text), Ok(state));
    }

    #[test]
    fn another_version_or_garbage_is_refused() {
        let text = encode(
            1,
            &State {
                history: 1,
                pending: vec![],
            },
        );
        assert_eq!(
            decode::<State>(2, &text),
            Err(CursorError::OtherVersion(Some(1)))
        );
        assert_eq!(
            decode::<State>(2, "nonsense"),
            Err(CursorError::OtherVersion(None))
        );
        assert!(matches!(
            decode::<State>(1, "v1.!!!"),
            Err(CursorError::Garbled(_))
        ));
        assert!(matches!(
            decode::<State>(1, "v1.e30"),
            Err(CursorError::Garbled(_))
        ));
    }
}
