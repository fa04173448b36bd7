//! The cursor: where each folder's sync stands, as one short string.
//!
//! `1;<done>;<total>` then, per folder, `|<name>;<uidvalidity>;<top>;<below>;<modseq>`:
//! every message of the window with a UID at or below `top` and at or above
//! `below` is delivered; UIDs under `below` are still to be backfilled (newest
//! first) and UIDs over `top` are new mail. `modseq` is the HIGHESTMODSEQ up
//! to which deletions were reported (0 without CONDSTORE).

/// One folder's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderState {
    pub name: String,
    pub validity: u32,
    pub top: u32,
    pub below: u32,
    pub modseq: u64,
}

/// The whole position of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Messages delivered during the backfill.
    pub done: u64,
    /// Messages the backfill found in the window.
    pub total: u64,
    pub folders: Vec<FolderState>,
}

fn escape(name: &str) -> String {
    name.replace('%', "%25")
        .replace('|', "%7C")
        .replace(';', "%3B")
}

fn unescape(name: &str) -> String {
    name.replace("%3B", ";")
        .replace("%7C", "|")
        .replace("%25", "%")
}

impl Cursor {
    /// The cursor as a string.
    pub fn encode(&self) -> String {
        let mut out = format!("1;{};{}", self.done, self.total);
        for f in &self.folders {
            out.push_str(&format!(
                "|{};{};{};{};{}",
                escape(&f.name),
                f.validity,
                f.top,
                f.below,
                f.modseq
            ));
        }
        out
    }

    /// Read a cursor; `None` when it is not one this plugin wrote.
    pub fn decode(text: &str) -> Option<Cursor> {
        let mut parts = text.split('|');
        let mut head = parts.next()?.split(';');
        if head.next()? != "1" {
            return None;
        }
        let done = head.next()?.parse().ok()?;
        let total = head.next()?.parse().ok()?;
        let folders = parts
            .map(|p| {
                let f: Vec<&str> = p.split(';').collect();
                match f.as_slice() {
                    [name, validity, top, below, modseq] => Some(FolderState {
                        name: unescape(name),
                        validity: validity.parse().ok()?,
                        top: top.parse().ok()?,
                        below: below.parse().ok()?,
                        modseq: modseq.parse().ok()?,
                    }),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Cursor {
            done,
            total,
            folders,
        })
    }

    /// The state of `folder`.
    pub fn folder(&self, name: &str) -> Option<&FolderState> {
        self.folders.iter().find(|f| f.name == name)
    }
}

/// The provider id of a message: `<folder>:<uidvalidity>:<uid>`.
pub fn message_id(folder: &str, validity: u32, uid: u32) -> String {
    format!("{folder}:{validity}:{uid}")
}

/// The parts of a provider id.
pub fn parse_message_id(id: &str) -> Option<(&str, u32, u32)> {
    let mut parts = id.rsplitn(3, ':');
    let uid = parts.next()?.parse().ok()?;
    let validity = parts.next()?.parse().ok()?;
    Some((parts.next()?, validity, uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_folder_names() {
        let c = Cursor {
            done: 3,
            total: 9,
            folders: vec![
                FolderState {
                    name: "INBOX".into(),
                    validity: 7,
                    top: 40,
                    below: 12,
                    modseq: 99,
                },
                FolderState {
                    name: "a|b;c%d".into(),
                    validity: 1,
                    top: 0,
                    below: 0,
                    modseq: 0,
                },
            ],
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("2;0;0"), None);
        assert_eq!(Cursor::decode("garbage"), None);
    }

    #[test]
    fn message_ids_split_from_the_right() {
        assert_eq!(parse_message_id("Lists:x:5:17"), Some(("Lists:x", 5, 17)));
        assert_eq!(parse_message_id("17"), None);
    }
}
