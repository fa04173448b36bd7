//! The mailboxes: messages, labels and the history log, as Gmail keeps them.
//!
//! Ids look like Gmail's (16 hex digits); history ids grow with gaps, as
//! Google documents ("not contiguous with random gaps in between"). This
//! module knows nothing of HTTP or tokens.

use std::collections::BTreeMap;

/// Labels a listing leaves out unless `includeSpamTrash` is true.
pub const SPAM_TRASH: [&str; 2] = ["SPAM", "TRASH"];

/// One stored message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Gmail's immutable id.
    pub id: String,
    /// The thread it belongs to.
    pub thread_id: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// When Gmail accepted it, in milliseconds since the epoch.
    pub internal_date_ms: i64,
    /// The RFC 5322 bytes.
    pub raw: Vec<u8>,
    /// The history id of the last change to it.
    pub history_id: u64,
}

/// What one history record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A message arrived (or was sent).
    Added,
    /// A message was deleted for good.
    Deleted,
}

/// One history record: one change to one message.
#[derive(Debug, Clone)]
pub struct Record {
    /// The record's id.
    pub id: u64,
    /// What happened.
    pub change: Change,
    /// The message as it was at that moment (raw left empty).
    pub message: Message,
}

/// One user's mailbox.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// The address.
    pub email: String,
    /// Messages by id.
    pub messages: BTreeMap<String, Message>,
    /// The change log, oldest first.
    pub history: Vec<Record>,
    /// The mailbox's current history id.
    pub history_id: u64,
    /// History ids below this answer 404 (the log was trimmed).
    pub oldest_history: u64,
    next_id: u64,
}

impl Mailbox {
    /// An empty mailbox.
    pub fn new(email: &str, seed: u64) -> Self {
        Mailbox {
            email: email.to_string(),
            messages: BTreeMap::new(),
            history: Vec::new(),
            history_id: 1000 + seed % 997,
            oldest_history: 0,
            next_id: 0x18c0_0000_0000_0000 + (seed << 32),
        }
    }

    fn bump(&mut self) -> u64 {
        // Gaps of 1 to 5, as real history ids have.
        self.history_id += 1 + (self.history_id.wrapping_mul(7919) >> 3) % 5;
        self.history_id
    }

    /// Store a message and log its arrival. Returns its id.
    pub fn add(
        &mut self,
        raw: Vec<u8>,
        labels: Vec<String>,
        internal_date_ms: i64,
        thread_id: Option<String>,
    ) -> String {
        self.next_id += 1 + (self.next_id % 3);
        let id = format!("{:016x}", self.next_id);
        let history_id = self.bump();
        let message = Message {
            thread_id: thread_id.unwrap_or_else(|| id.clone()),
            id: id.clone(),
            labels,
            internal_date_ms,
            raw,
            history_id,
        };
        self.log(Change::Added, &message);
        self.messages.insert(id.clone(), message);
        id
    }

    /// Delete a message for good and log it. False when there is no such message.
    pub fn delete(&mut self, id: &str) -> bool {
        let Some(message) = self.messages.remove(id) else {
            return false;
        };
        self.bump();
        self.log(Change::Deleted, &message);
        true
    }

    fn log(&mut self, change: Change, message: &Message) {
        self.history.push(Record {
            id: self.history_id,
            change,
            message: Message {
                raw: Vec::new(),
                ..message.clone()
            },
        });
    }

    /// Trim the history log: every history id issued so far becomes too old.
    pub fn expire_history(&mut self) {
        self.oldest_history = self.bump();
        self.history.clear();
    }

    /// Messages matching a listing, newest first.
    pub fn list(
        &self,
        query: &Query,
        include_spam_trash: bool,
        label_ids: &[String],
    ) -> Vec<&Message> {
        let mut found: Vec<&Message> = self
            .messages
            .values()
            .filter(|m| {
                include_spam_trash || !m.labels.iter().any(|l| SPAM_TRASH.contains(&l.as_str()))
            })
            .filter(|m| label_ids.iter().all(|l| m.labels.contains(l)))
            .filter(|m| query.matches(m))
            .collect();
        found.sort_by(|a, b| {
            b.internal_date_ms
                .cmp(&a.internal_date_ms)
                .then(b.id.cmp(&a.id))
        });
        found
    }
}

/// The part of Gmail's search syntax the emulator understands.
#[derive(Debug, Default, Clone)]
pub struct Query {
    after: Option<i64>,
    before: Option<i64>,
}

impl Query {
    /// Parse `after:` and `before:` terms (epoch seconds or `YYYY/MM/DD`).
    /// Any other term is refused, so a client relying on more finds out.
    pub fn parse(q: &str) -> Result<Query, String> {
        let mut query = Query::default();
        for term in q.split_whitespace() {
            let (key, value) = term
                .split_once(':')
                .ok_or_else(|| format!("the emulator does not support the search term `{term}`"))?;
            let at = parse_time(value)
                .ok_or_else(|| format!("`{term}`: not a date or epoch seconds"))?;
            match key {
                "after" => query.after = Some(at),
                "before" => query.before = Some(at),
                _ => {
                    return Err(format!(
                        "the emulator does not support the search term `{term}`"
                    ));
                }
            }
        }
        Ok(query)
    }

    fn matches(&self, m: &Message) -> bool {
        let secs = m.internal_date_ms.div_euclid(1000);
        self.after.is_none_or(|t| secs > t) && self.before.is_none_or(|t| secs < t)
    }
}

/// Epoch seconds, or a `YYYY/MM/DD` date taken as midnight UTC.
fn parse_time(value: &str) -> Option<i64> {
    if let Ok(secs) = value.parse::<i64>() {
        return Some(secs);
    }
    let mut parts = value.split('/').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_epochs_parse_alike() {
        assert_eq!(parse_time("2024/01/01"), Some(1_704_067_200));
        assert_eq!(parse_time("1704067200"), Some(1_704_067_200));
        assert_eq!(parse_time("2024/13/01"), None);
        assert!(Query::parse("from:someone").is_err());
    }

    #[test]
    fn history_ids_grow_with_gaps_and_deletions_are_logged() {
        let mut mb = Mailbox::new("a@example.com", 1);
        let start = mb.history_id;
        let a = mb.add(b"x".to_vec(), vec!["INBOX".into()], 1000, None);
        let b = mb.add(b"y".to_vec(), vec!["SPAM".into()], 2000, None);
        assert!(mb.history_id > start + 1, "history ids have gaps");
        assert!(mb.delete(&a));
        assert!(!mb.delete(&a));
        assert_eq!(mb.history.len(), 3);
        assert_eq!(mb.history[2].change, Change::Deleted);
        let listed = mb.list(&Query::default(), false, &[]);
        assert!(listed.is_empty(), "SPAM is left out");
        assert_eq!(mb.list(&Query::default(), true, &[])[0].id, b);
    }
}
