//! The cursor the host stores between calls.
//!
//! Backfill: `b:HISTORY:OFFSET:DONE:TOTAL:TOKEN` — the mailbox's history id
//! when the backfill started (incremental sync resumes from it, so nothing
//! that arrives during a long backfill is missed), how many messages of the
//! current listing page are handled, the running count and estimate, and the
//! listing's page token. Incremental: `h:HISTORY:OFFSET:TOKEN` over
//! `users.history.list`. Page tokens go last: they are Google's and opaque.

/// Where a sync stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Walking `users.messages.list` over the window, newest first.
    Backfill {
        history: u64,
        offset: usize,
        done: u64,
        total: Option<u64>,
        token: String,
    },
    /// Following `users.history.list` from a history id.
    History {
        history: u64,
        offset: usize,
        token: String,
    },
}

impl Cursor {
    /// Read a cursor this plugin wrote; `None` for anything else.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (kind, rest) = text.split_once(':')?;
        match kind {
            "b" => {
                let mut parts = rest.splitn(5, ':');
                let history = parts.next()?.parse().ok()?;
                let offset = parts.next()?.parse().ok()?;
                let done = parts.next()?.parse().ok()?;
                let total = match parts.next()? {
                    "-" => None,
                    t => Some(t.parse().ok()?),
                };
                let token = parts.next()?.to_string();
                Some(Cursor::Backfill {
                    history,
                    offset,
                    done,
                    total,
                    token,
                })
            }
            "h" => {
                let mut parts = rest.splitn(3, ':');
                let history = parts.next()?.parse().ok()?;
                let offset = parts.next()?.parse().ok()?;
                let token = parts.next()?.to_string();
                Some(Cursor::History {
                    history,
                    offset,
                    token,
                })
            }
            _ => None,
        }
    }

    /// The text form.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Backfill {
                history,
                offset,
                done,
                total,
                token,
            } => {
                let total = total.map_or("-".to_string(), |t| t.to_string());
                format!("b:{history}:{offset}:{done}:{total}:{token}")
            }
            Cursor::History {
                history,
                offset,
                token,
            } => format!("h:{history}:{offset}:{token}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for c in [
            Cursor::Backfill {
                history: 12345,
                offset: 3,
                done: 700,
                total: Some(10_000),
                token: "0A:b:c".into(),
            },
            Cursor::Backfill {
                history: 1,
                offset: 0,
                done: 0,
                total: None,
                token: String::new(),
            },
            Cursor::History {
                history: 99,
                offset: 0,
                token: "x:y".into(),
            },
        ] {
            assert_eq!(Cursor::parse(&c.encode()), Some(c));
        }
        assert_eq!(Cursor::parse("1;done;0|INBOX;1;2;3;4"), None);
        assert_eq!(Cursor::parse("b:x:0:0:-:"), None);
    }
}
