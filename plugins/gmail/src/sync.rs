//! Pages of a sync: the backfill over `users.messages.list`, then the
//! incremental sync over `users.history.list`, each message fetched with
//! `users.messages.get?format=raw`, several at a time.
//!
//! A page never holds more than [`PAGE_BYTES`] of mail: when the limit is
//! reached mid-listing, the cursor keeps the listing's page token and an
//! offset into it, so the next call asks for the same listing and goes on.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use futures_util::StreamExt;

use crate::api::{self, Api, MessageRef, RawMessage, units};
use crate::bindings::exports::mailroom::provider::provider::{
    Deletion, Message, Page, Progress, Window,
};
use crate::bindings::mailroom::provider::types::{MessageFailure, ProviderError};
use crate::cursor::Cursor;
use mailroom_plugin_sdk::http::Failure;

/// Requests in flight at once (the host allows a run four connections).
pub const CONCURRENCY: usize = 4;
/// The most mail bytes one page carries (the host takes up to 64 MB a call).
pub const PAGE_BYTES: usize = 24 << 20;
/// Labels whose messages are never synced.
const SKIPPED_LABELS: [&str; 2] = ["SPAM", "TRASH"];

/// Gmail's `raw`: base64url, with or without padding.
const RAW: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The folder a message is reported in: Gmail has labels, not folders.
fn folder(labels: &[String]) -> String {
    ["SENT", "INBOX"]
        .iter()
        .find(|l| labels.iter().any(|x| x == *l))
        .map_or("ALL", |l| l)
        .to_string()
}

fn skipped_label(labels: &[String]) -> bool {
    labels.iter().any(|l| SKIPPED_LABELS.contains(&l.as_str()))
}

fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// `users.messages.get?format=raw` for each id; 404 means the message is gone.
pub async fn get_raw(api: &Api, id: &str) -> Result<Option<RawMessage>, Failure> {
    match api
        .get::<RawMessage>(&format!("/messages/{id}?format=raw"), units::GET)
        .await
    {
        Ok(m) => Ok(Some(m)),
        Err(f) if f.status() == Some(404) => Ok(None),
        Err(f) => Err(f),
    }
}

/// A fetched message as the contract carries it, or why it cannot be.
pub fn to_message(m: RawMessage) -> Result<Message, MessageFailure> {
    let fail = |why: String| MessageFailure {
        id: m.id.clone(),
        why,
    };
    let raw = RAW
        .decode(m.raw.as_bytes())
        .map_err(|e| fail(format!("Gmail's raw message did not decode: {e}")))?;
    let ms: i64 = m.internal_date.parse().map_err(|_| {
        fail(format!(
            "internalDate `{}` is not a number",
            m.internal_date
        ))
    })?;
    Ok(Message {
        folder: folder(&m.label_ids),
        id: m.id,
        thread_id: m.thread_id,
        flags: m.label_ids,
        received_at: ms.div_euclid(1000),
        raw,
    })
}

/// What fetching a run of listed messages gave.
#[derive(Default)]
struct Fetched {
    messages: Vec<Message>,
    failed: Vec<MessageFailure>,
    gone: Vec<String>,
    /// How many of the listed messages were handled (fetched, skipped or gone).
    consumed: usize,
}

/// Fetch `refs` in order, [`CONCURRENCY`] at a time, until they are done or
/// the page holds [`PAGE_BYTES`].
async fn fetch_refs(
    api: &Api,
    refs: &[MessageRef],
    window: &Window,
) -> Result<Fetched, ProviderError> {
    let mut out = Fetched::default();
    let mut bytes = 0usize;
    let mut results = futures_util::stream::iter(refs.iter())
        .map(|r| async move {
            if window.skip.contains(&r.id) || skipped_label(&r.label_ids) {
                return Ok(None);
            }
            get_raw(api, &r.id)
                .await
                .map(|m| Some(m.ok_or_else(|| r.id.clone())))
        })
        .buffered(CONCURRENCY);
    while let Some(result) = results.next().await {
        out.consumed += 1;
        match result.map_err(api::into_error)? {
            None => {}
            Some(Err(gone)) => out.gone.push(gone),
            Some(Ok(m)) => match to_message(m) {
                Ok(m) if skipped_label(&m.flags) || m.received_at < window.since => {}
                Ok(m) => {
                    bytes += m.raw.len();
                    out.messages.push(m);
                }
                Err(failure) => out.failed.push(failure),
            },
        }
        if bytes >= PAGE_BYTES {
            break;
        }
    }
    Ok(out)
}

/// The next page after `cursor`.
pub async fn page(
    api: &Api,
    cursor: Option<Cursor>,
    window: &Window,
    page_size: u32,
) -> Result<Page, ProviderError> {
    match cursor {
        None => {
            let profile: api::Profile = api
                .get("/profile", units::PROFILE)
                .await
                .map_err(api::into_error)?;
            let history = profile.history_id.parse().map_err(|_| {
                ProviderError::Other(format!(
                    "Gmail's historyId `{}` is not a number",
                    profile.history_id
                ))
            })?;
            let start = Cursor::Backfill {
                history,
                offset: 0,
                done: 0,
                total: None,
                token: String::new(),
            };
            Box::pin(page(api, Some(start), window, page_size)).await
        }
        Some(Cursor::Backfill {
            history,
            offset,
            done,
            total,
            token,
        }) => backfill(api, history, offset, done, total, token, window, page_size).await,
        Some(Cursor::History {
            history,
            offset,
            token,
        }) => incremental(api, history, offset, token, window).await,
    }
}

/// One page of the backfill: messages received in the window, newest first.
#[allow(clippy::too_many_arguments)]
async fn backfill(
    api: &Api,
    history: u64,
    offset: usize,
    done: u64,
    total: Option<u64>,
    token: String,
    window: &Window,
    page_size: u32,
) -> Result<Page, ProviderError> {
    // `after:` is exclusive and counts whole seconds; the window is inclusive.
    let after = format!("after:{}", window.since - 1);
    let size = page_size.to_string();
    let mut pairs = vec![
        ("q", after.as_str()),
        ("includeSpamTrash", "false"),
        ("maxResults", size.as_str()),
    ];
    if !token.is_empty() {
        pairs.push(("pageToken", token.as_str()));
    }
    let list: api::MessageList = api
        .get(&format!("/messages?{}", query(&pairs)), units::LIST)
        .await
        .map_err(api::into_error)?;
    let total = total.or(list.result_size_estimate);
    let refs = list.messages.get(offset..).unwrap_or_default();
    let fetched = fetch_refs(api, refs, window).await?;
    let done = done + fetched.consumed as u64;
    let (cursor, more) = if offset + fetched.consumed < list.messages.len() {
        let c = Cursor::Backfill {
            history,
            offset: offset + fetched.consumed,
            done,
            total,
            token,
        };
        (c, true)
    } else if let Some(next) = list.next_page_token {
        let c = Cursor::Backfill {
            history,
            offset: 0,
            done,
            total,
            token: next,
        };
        (c, true)
    } else {
        // The window is done: catch up on what changed since it started.
        let c = Cursor::History {
            history,
            offset: 0,
            token: String::new(),
        };
        (c, true)
    };
    Ok(Page {
        messages: fetched.messages,
        deletions: deletions(fetched.gone),
        failed: fetched.failed,
        cursor: cursor.encode(),
        more,
        progress: Some(Progress {
            done,
            total: total.map(|t| t.max(done)),
        }),
    })
}

fn deletions(ids: Vec<String>) -> Vec<Deletion> {
    ids.into_iter()
        .map(|id| Deletion {
            id,
            folder: "ALL".into(),
        })
        .collect()
}

/// One page of the incremental sync: messages added and deleted since `history`.
async fn incremental(
    api: &Api,
    history: u64,
    offset: usize,
    token: String,
    window: &Window,
) -> Result<Page, ProviderError> {
    let start = history.to_string();
    let mut pairs = vec![
        ("startHistoryId", start.as_str()),
        ("historyTypes", "messageAdded"),
        ("historyTypes", "messageDeleted"),
        ("maxResults", "500"),
    ];
    if !token.is_empty() {
        pairs.push(("pageToken", token.as_str()));
    }
    let list: api::HistoryList = match api
        .get(&format!("/history?{}", query(&pairs)), units::HISTORY)
        .await
    {
        Ok(l) => l,
        // Google: a 404 means the history id is too old; do a full sync.
        Err(f) if f.status() == Some(404) => return Err(ProviderError::CursorExpired),
        Err(f) => return Err(api::into_error(f)),
    };
    let mut added: Vec<MessageRef> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    for record in &list.history {
        for a in &record.messages_added {
            if !added.iter().any(|r| r.id == a.message.id) {
                added.push(a.message.clone());
            }
        }
        for d in &record.messages_deleted {
            added.retain(|r| r.id != d.message.id);
            gone.push(d.message.id.clone());
        }
    }
    let refs = added.get(offset..).unwrap_or_default();
    let fetched = fetch_refs(api, refs, window).await?;
    gone.extend(fetched.gone);
    let (cursor, more) = if offset + fetched.consumed < added.len() {
        let c = Cursor::History {
            history,
            offset: offset + fetched.consumed,
            token,
        };
        (c, true)
    } else if let Some(next) = list.next_page_token {
        let c = Cursor::History {
            history,
            offset: 0,
            token: next,
        };
        (c, true)
    } else {
        let newest = list.history_id.parse().unwrap_or(history);
        let c = Cursor::History {
            history: newest,
            offset: 0,
            token: String::new(),
        };
        (c, false)
    };
    Ok(Page {
        messages: fetched.messages,
        deletions: deletions(gone),
        failed: fetched.failed,
        cursor: cursor.encode(),
        more,
        progress: None,
    })
}

/// Fetch messages again by id (for contacts added later).
pub async fn refetch(api: &Api, ids: &[String]) -> Result<Page, ProviderError> {
    let refs: Vec<MessageRef> = ids
        .iter()
        .map(|id| MessageRef {
            id: id.clone(),
            label_ids: Vec::new(),
        })
        .collect();
    let window = Window {
        since: i64::MIN + 1,
        skip: Vec::new(),
    };
    let mut out = Page {
        messages: Vec::new(),
        deletions: Vec::new(),
        failed: Vec::new(),
        cursor: String::new(),
        more: false,
        progress: None,
    };
    let mut rest = refs.as_slice();
    while !rest.is_empty() {
        let fetched = fetch_refs(api, rest, &window).await?;
        out.messages.extend(fetched.messages);
        out.failed.extend(fetched.failed);
        out.failed
            .extend(fetched.gone.into_iter().map(|id| MessageFailure {
                id,
                why: "no longer in the mailbox".into(),
            }));
        rest = &rest[fetched.consumed.max(1).min(rest.len())..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_choose_the_folder() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(folder(&l(&["UNREAD", "INBOX"])), "INBOX");
        assert_eq!(folder(&l(&["SENT", "INBOX"])), "SENT");
        assert_eq!(folder(&l(&["CATEGORY_UPDATES"])), "ALL");
        assert!(skipped_label(&l(&["INBOX", "TRASH"])));
    }

    #[test]
    fn raw_messages_decode_with_or_without_padding() {
        let m = |raw: &str| RawMessage {
            id: "1".into(),
            thread_id: Some("t".into()),
            label_ids: vec!["INBOX".into()],
            internal_date: "1700000000999".into(),
            raw: raw.into(),
        };
        let padded = to_message(m("U3ViamVjdDogaGk_Cg==")).map_err(|f| f.why);
        let bare = to_message(m("U3ViamVjdDogaGk_Cg")).map_err(|f| f.why);
        assert_eq!(
            padded.as_ref().map(|m| m.raw.clone()),
            Ok(b"Subject: hi?\n".to_vec())
        );
        assert_eq!(bare.map(|m| m.received_at), Ok(1_700_000_000));
        assert!(to_message(m("***")).is_err());
    }
}
