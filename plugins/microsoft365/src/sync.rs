//! Rounds of Graph's message delta query over the synced folders.
//!
//! A run walks the folders in order. For each, it follows the stored link —
//! none at first (the delta query filtered to the window), then an
//! `@odata.nextLink` while a round pages, then the `@odata.deltaLink` that
//! ended the last round — until the folder's round ends. Removed messages
//! (`@removed`) become deletions. A page never carries more than
//! [`PAGE_BYTES`] of mail: when the limit is reached mid-page, the cursor
//! keeps the same link and an offset into its page.

use chrono::DateTime;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::bad_config;
use crate::bindings::exports::mailroom::provider::provider::{
    Deletion, Message, Page, Progress, Window,
};
use crate::bindings::mailroom::provider::types::{MessageFailure, ProviderError};
use crate::graph::{Graph, into_error};

/// MIME downloads in flight at once (the host allows a run four connections).
const CONCURRENCY: usize = 4;
/// The most mail bytes one page carries (the host takes up to 64 MB a call).
const PAGE_BYTES: usize = 24 << 20;
/// The message properties the delta query asks for.
const SELECT: &str = "id,conversationId,receivedDateTime,isRead,categories,parentFolderId";

/// One folder's place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Folder {
    /// The well-known name or folder id.
    name: String,
    /// The link to follow next; none before the first round.
    link: Option<String>,
    /// Entries of the link's page already handled.
    offset: usize,
}

/// The cursor: each folder's place, the folder the run is at, and how many
/// messages were taken so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    folders: Vec<Folder>,
    current: usize,
    done: u64,
}

impl Cursor {
    /// The start of the window for these folders.
    pub fn start(folders: &[String]) -> Cursor {
        Cursor {
            folders: folders
                .iter()
                .map(|name| Folder {
                    name: name.clone(),
                    link: None,
                    offset: 0,
                })
                .collect(),
            current: 0,
            done: 0,
        }
    }

    /// A cursor this plugin wrote for the same folders; `None` otherwise
    /// (the window starts again).
    pub fn parse(text: &str, folders: &[String]) -> Option<Cursor> {
        let cursor: Cursor = serde_json::from_str(text).ok()?;
        let same = cursor.folders.len() == folders.len()
            && cursor
                .folders
                .iter()
                .zip(folders)
                .all(|(f, n)| &f.name == n)
            && cursor.current < folders.len();
        same.then_some(cursor)
    }
}

/// One page of a delta query.
#[derive(Deserialize)]
struct DeltaPage {
    #[serde(default)]
    value: Vec<Item>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta: Option<String>,
}

/// A message, or the news that it was removed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    #[serde(rename = "@removed")]
    removed: Option<serde_json::Value>,
    conversation_id: Option<String>,
    received_date_time: Option<String>,
    #[serde(default)]
    is_read: bool,
    #[serde(default)]
    categories: Vec<String>,
    parent_folder_id: Option<String>,
}

fn seconds(time: Option<&str>) -> Option<i64> {
    DateTime::parse_from_rfc3339(time?)
        .ok()
        .map(|t| t.timestamp())
}

fn flags(item: &Item) -> Vec<String> {
    let seen = item.is_read.then(|| "\\Seen".to_string());
    seen.into_iter()
        .chain(item.categories.iter().cloned())
        .collect()
}

/// What fetching a run of items gave.
#[derive(Default)]
struct Fetched {
    messages: Vec<Message>,
    failed: Vec<MessageFailure>,
    gone: Vec<String>,
    consumed: usize,
}

/// Fetch the MIME of `items` in order, [`CONCURRENCY`] at a time, until done
/// or the page holds [`PAGE_BYTES`]; `folder` names where they were found.
async fn fetch(
    graph: &Graph,
    items: &[Item],
    folder: Option<&str>,
    window: &Window,
) -> Result<Fetched, ProviderError> {
    let mut out = Fetched::default();
    let mut bytes = 0;
    let mut results = futures_util::stream::iter(items)
        .map(|item| async move {
            let received = seconds(item.received_date_time.as_deref());
            let wanted = item.removed.is_none()
                && !window.skip.contains(&item.id)
                && received.is_some_and(|t| t >= window.since);
            if !wanted {
                return Ok((item, None));
            }
            graph.mime(&item.id).await.map(|raw| (item, Some(raw)))
        })
        .buffered(CONCURRENCY);
    while let Some(result) = results.next().await {
        out.consumed += 1;
        let (item, fetched) = result.map_err(into_error)?;
        match fetched {
            None if item.removed.is_some() => out.gone.push(item.id.clone()),
            None => {}
            Some(None) => out.gone.push(item.id.clone()),
            Some(Some(raw)) => {
                bytes += raw.len();
                out.messages.push(Message {
                    id: item.id.clone(),
                    thread_id: item.conversation_id.clone(),
                    folder: folder
                        .or(item.parent_folder_id.as_deref())
                        .unwrap_or("")
                        .to_string(),
                    flags: flags(item),
                    received_at: seconds(item.received_date_time.as_deref()).unwrap_or(0),
                    raw,
                });
            }
        }
        if bytes >= PAGE_BYTES {
            break;
        }
    }
    Ok(out)
}

/// The delta query of a folder, limited to the window.
fn first_link(folder: &str, since: i64) -> String {
    let since = DateTime::from_timestamp(since, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    format!(
        "/me/mailFolders/{folder}/messages/delta?$select={SELECT}&$filter=receivedDateTime+ge+{since}"
    )
}

/// The next page after `cursor`.
pub async fn page(
    graph: &Graph,
    mut cursor: Cursor,
    window: &Window,
    page_size: u32,
) -> Result<Page, ProviderError> {
    let at = cursor.current;
    let folder = cursor.folders[at].clone();
    let link = folder
        .link
        .clone()
        .unwrap_or_else(|| first_link(&folder.name, window.since));
    let delta: DeltaPage = match graph.get(&link, Some(page_size)).await {
        Ok(d) => d,
        Err(f) if f.status() == Some(404) && folder.link.is_none() => {
            return Err(bad_config(
                "folders",
                format!("the mailbox has no folder `{}`", folder.name),
            ));
        }
        Err(f) => return Err(into_error(f)),
    };
    let items = delta.value.get(folder.offset..).unwrap_or_default();
    let fetched = fetch(graph, items, Some(&folder.name), window).await?;
    cursor.done += fetched.messages.len() as u64;
    let slot = &mut cursor.folders[at];
    if folder.offset + fetched.consumed < delta.value.len() {
        // The page was cut short: the same link again, further on.
        slot.link = Some(link);
        slot.offset = folder.offset + fetched.consumed;
    } else if let Some(next) = delta.next {
        slot.link = Some(next);
        slot.offset = 0;
    } else {
        slot.link = delta.delta.or(Some(link));
        slot.offset = 0;
        cursor.current += 1;
    }
    let more = cursor.current < cursor.folders.len();
    if !more {
        // Every folder's round is over; the next run starts another.
        cursor.current = 0;
    }
    Ok(Page {
        messages: fetched.messages,
        deletions: fetched
            .gone
            .into_iter()
            .map(|id| Deletion {
                id,
                folder: folder.name.clone(),
            })
            .collect(),
        failed: fetched.failed,
        cursor: serde_json::to_string(&cursor).unwrap_or_default(),
        more,
        progress: Some(Progress {
            done: cursor.done,
            total: None,
        }),
    })
}

/// Fetch messages again by id (for contacts added later).
pub async fn refetch(graph: &Graph, ids: &[String]) -> Result<Page, ProviderError> {
    let mut items = Vec::new();
    let mut failed = Vec::new();
    for id in ids {
        let url = format!("/me/messages/{id}?$select={SELECT}");
        match graph.get::<Item>(&url, None).await {
            Ok(item) => items.push(item),
            Err(f) if f.status() == Some(404) => failed.push(MessageFailure {
                id: id.clone(),
                why: "no longer in the mailbox".into(),
            }),
            Err(f) => return Err(into_error(f)),
        }
    }
    let everything = Window {
        since: i64::MIN,
        skip: Vec::new(),
    };
    let mut page = Page {
        messages: Vec::new(),
        deletions: Vec::new(),
        failed,
        cursor: String::new(),
        more: false,
        progress: None,
    };
    let mut rest = items.as_slice();
    while !rest.is_empty() {
        let fetched = fetch(graph, rest, None, &everything).await?;
        page.messages.extend(fetched.messages);
        page.failed
            .extend(fetched.gone.into_iter().map(|id| MessageFailure {
                id,
                why: "no longer in the mailbox".into(),
            }));
        rest = &rest[fetched.consumed.clamp(1, rest.len())..];
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_only_for_the_same_folders() {
        let folders = vec!["inbox".to_string(), "sentitems".to_string()];
        let mut c = Cursor::start(&folders);
        c.folders[0].link = Some("https://graph.microsoft.com/v1.0/x?$deltatoken=a:b".into());
        c.current = 1;
        let text = serde_json::to_string(&c).unwrap_or_default();
        assert_eq!(Cursor::parse(&text, &folders), Some(c));
        assert_eq!(Cursor::parse(&text, &folders[..1]), None);
        assert_eq!(Cursor::parse("b:1:0:0:-:", &folders), None);
    }

    #[test]
    fn the_window_filter_is_a_utc_timestamp() {
        let link = first_link("inbox", 1_700_000_000);
        assert!(
            link.ends_with("receivedDateTime+ge+2023-11-14T22:13:20Z"),
            "{link}"
        );
        assert_eq!(seconds(Some("2023-11-14T22:13:20Z")), Some(1_700_000_000));
    }
}
