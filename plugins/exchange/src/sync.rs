//! The cursor and the pages of a sync, folder by folder.
//!
//! A folder goes through three phases: **baseline** (its `SyncState` now,
//! read with id-only `SyncFolderItems` calls, so that mail arriving during
//! the backfill is picked up afterwards), **backfill** (`FindItem` pages of
//! the window, newest first, then `GetItem` with `MimeContent`) and
//! **incremental** (`SyncFolderItems` from the stored state: created items
//! fetched, deleted ones reported). The cursor is JSON.

use serde::{Deserialize, Serialize};

use crate::bindings::exports::mailroom::provider::provider::{
    Deletion, Message, Page, Progress, Window,
};
use crate::bindings::mailroom::provider::types::{MessageFailure, ProviderError};
use crate::ews::{self, Ews, Item};

/// Changes one baseline call reads (EWS's maximum).
const BASELINE_BATCH: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    Baseline,
    Backfill,
    Incremental,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Folder {
    name: String,
    phase: Phase,
    state: Option<String>,
    offset: usize,
}

/// Where a sync stands.
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
                    phase: Phase::Baseline,
                    state: None,
                    offset: 0,
                })
                .collect(),
            current: 0,
            done: 0,
        }
    }

    /// A cursor this plugin wrote for the same folders; `None` otherwise.
    pub fn parse(text: &str, folders: &[String]) -> Option<Cursor> {
        let c: Cursor = serde_json::from_str(text).ok()?;
        let same = c.folders.len() == folders.len()
            && c.folders.iter().zip(folders).all(|(f, n)| &f.name == n)
            && c.current < folders.len();
        same.then_some(c)
    }
}

fn message(item: Item, folder: &str) -> Result<Message, MessageFailure> {
    let raw = item.mime.ok_or_else(|| MessageFailure {
        id: item.id.clone(),
        why: "Exchange gave no MIME content for it".into(),
    })?;
    Ok(Message {
        id: item.id,
        thread_id: item.conversation,
        folder: folder.to_string(),
        flags: if item.is_read {
            vec!["\\Seen".into()]
        } else {
            vec![]
        },
        received_at: item.received.unwrap_or(0),
        raw,
    })
}

/// Fetch items with their MIME: the messages, and those that could not be had.
async fn fetch(
    ews: &Ews,
    ids: Vec<String>,
    folder: &str,
) -> Result<(Vec<Message>, Vec<MessageFailure>), ProviderError> {
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let answer = ews.call(&ews::get_item(&ids)).await?;
    let mut messages = Vec::new();
    let mut failed = Vec::new();
    for item in answer.items {
        match message(item, folder) {
            Ok(m) => messages.push(m),
            Err(f) => failed.push(f),
        }
    }
    // An id Exchange no longer has is simply gone.
    Ok((messages, failed))
}

/// The next page after `cursor`.
pub async fn page(
    ews: &Ews,
    mut cursor: Cursor,
    window: &Window,
    batch: usize,
) -> Result<Page, ProviderError> {
    let at = cursor.current;
    let mut out = Page {
        messages: Vec::new(),
        deletions: Vec::new(),
        failed: Vec::new(),
        cursor: String::new(),
        more: true,
        progress: None,
    };
    let folder = &mut cursor.folders[at];
    if folder.phase == Phase::Baseline {
        loop {
            let a = ews
                .call(&ews::sync_folder_items(
                    &folder.name,
                    folder.state.as_deref(),
                    BASELINE_BATCH,
                ))
                .await?;
            folder.state = a.sync_state.or(folder.state.take());
            if a.last {
                break;
            }
        }
        folder.phase = Phase::Backfill;
        folder.offset = 0;
    }
    let mut folder_done = false;
    match folder.phase {
        Phase::Baseline | Phase::Backfill => {
            let a = ews
                .call(&ews::find_item(
                    &folder.name,
                    window.since,
                    folder.offset,
                    batch,
                ))
                .await?;
            let ids: Vec<String> = a
                .items
                .iter()
                .map(|i| i.id.clone())
                .filter(|id| !window.skip.contains(id))
                .collect();
            folder.offset += a.items.len();
            let (messages, failed) = fetch(ews, ids, &folder.name).await?;
            out.messages = messages
                .into_iter()
                .filter(|m| m.received_at >= window.since)
                .collect();
            out.failed = failed;
            if a.last {
                folder.phase = Phase::Incremental;
                folder_done = true;
            }
        }
        Phase::Incremental => {
            let a = ews
                .call(&ews::sync_folder_items(
                    &folder.name,
                    folder.state.as_deref(),
                    batch,
                ))
                .await?;
            folder.state = a.sync_state.or(folder.state.take());
            let ids: Vec<String> = a.items.iter().map(|i| i.id.clone()).collect();
            let (messages, failed) = fetch(ews, ids, &folder.name).await?;
            out.messages = messages;
            out.failed = failed;
            out.deletions = a
                .deleted
                .into_iter()
                .map(|id| Deletion {
                    id,
                    folder: folder.name.clone(),
                })
                .collect();
            folder_done = a.last;
        }
    }
    cursor.done += out.messages.len() as u64;
    if folder_done {
        cursor.current += 1;
    }
    out.more = cursor.current < cursor.folders.len();
    if !out.more {
        cursor.current = 0;
    }
    out.progress = Some(Progress {
        done: cursor.done,
        total: None,
    });
    out.cursor = serde_json::to_string(&cursor).unwrap_or_default();
    Ok(out)
}

/// Fetch messages again by id (for contacts added later).
pub async fn refetch(ews: &Ews, ids: &[String]) -> Result<Page, ProviderError> {
    let (messages, mut failed) = fetch(ews, ids.to_vec(), "").await?;
    for id in ids {
        if !messages.iter().any(|m| &m.id == id) && !failed.iter().any(|f| &f.id == id) {
            failed.push(MessageFailure {
                id: id.clone(),
                why: "no longer in the mailbox".into(),
            });
        }
    }
    Ok(Page {
        messages,
        deletions: Vec::new(),
        failed,
        cursor: String::new(),
        more: false,
        progress: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_only_for_the_same_folders() {
        let folders = vec!["inbox".to_string(), "sentitems".to_string()];
        let mut c = Cursor::start(&folders);
        c.folders[0].phase = Phase::Incremental;
        c.folders[0].state = Some("H4sIAAA=".into());
        let text = serde_json::to_string(&c).unwrap_or_default();
        assert_eq!(Cursor::parse(&text, &folders), Some(c));
        assert_eq!(Cursor::parse(&text, &folders[..1]), None);
        assert_eq!(Cursor::parse("garbage", &folders), None);
    }
}
