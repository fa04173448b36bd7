//! A mailbox of folders with a change log, as Exchange keeps one (both EWS
//! and Graph read it): messages by id, and every arrival and removal
//! numbered, so a sync state or delta token is a position in the log.

use std::collections::BTreeMap;

/// One stored message.
#[derive(Debug, Clone)]
pub struct Message {
    /// The provider's id.
    pub id: String,
    /// The folder it is in (`inbox`, `sentitems`).
    pub folder: String,
    /// When it was received (Unix seconds).
    pub received: i64,
    /// Whether it is read (what one sends is).
    pub is_read: bool,
    /// The MIME.
    pub raw: Vec<u8>,
}

/// What a log entry says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It arrived.
    Added,
    /// It was removed.
    Removed,
}

/// The mailbox.
#[derive(Debug, Default)]
pub struct Folders {
    /// Messages by id.
    pub messages: BTreeMap<String, Message>,
    /// (sequence, folder, id, change), oldest first.
    pub log: Vec<(u64, String, String, Change)>,
    /// The last sequence number given out.
    pub seq: u64,
    /// Positions below this are no longer known (the log was trimmed).
    pub oldest: u64,
}

impl Folders {
    /// Store a message in `folder` and log its arrival.
    pub fn add(&mut self, id: &str, folder: &str, raw: Vec<u8>, received: i64) {
        self.seq += 1;
        self.messages.insert(
            id.to_string(),
            Message {
                id: id.to_string(),
                folder: folder.to_string(),
                received,
                is_read: folder == "sentitems",
                raw,
            },
        );
        self.log
            .push((self.seq, folder.to_string(), id.to_string(), Change::Added));
    }

    /// Remove a message and log it. False when there is none.
    pub fn delete(&mut self, id: &str) -> bool {
        let Some(gone) = self.messages.remove(id) else {
            return false;
        };
        self.seq += 1;
        self.log
            .push((self.seq, gone.folder, gone.id, Change::Removed));
        true
    }

    /// Trim the log: every position given out so far is too old.
    pub fn expire(&mut self) {
        self.seq += 1;
        self.oldest = self.seq;
        self.log.clear();
    }

    /// The messages of a folder.
    pub fn in_folder<'a>(&'a self, folder: &'a str) -> impl Iterator<Item = &'a Message> + 'a {
        self.messages.values().filter(move |m| m.folder == folder)
    }
}
