//! Cutting a mailbox's listing into pages. A plugin that can list every id
//! (POP3's UIDL, a folder's UIDs, an API's id listing) keeps in its cursor
//! which ids it has handed over; [`next_page`] says which to fetch now,
//! newest first, and which of the remembered ones are gone.

use std::collections::BTreeSet;

/// What one sync call should do.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    /// Ids to fetch now, newest first, at most the page size.
    pub fetch: Vec<&'a str>,
    /// Remembered ids the service no longer lists (report them as deletions).
    pub gone: Vec<String>,
    /// Whether more new ids remain after this page.
    pub more: bool,
    /// New ids not yet handed over, this page's included.
    pub remaining: usize,
}

/// `listing` is the service's ids oldest first; `seen` the ids already handed
/// over. Resuming from any cursor built from `seen` plus whatever part of a
/// page was handed over neither loses nor doubles an id.
pub fn next_page<'a>(listing: &'a [String], seen: &BTreeSet<String>, size: usize) -> Plan<'a> {
    let listed: BTreeSet<&str> = listing.iter().map(String::as_str).collect();
    let gone = seen
        .iter()
        .filter(|id| !listed.contains(id.as_str()))
        .cloned()
        .collect();
    let new: Vec<&str> = listing
        .iter()
        .rev()
        .map(String::as_str)
        .filter(|id| !seen.contains(*id))
        .collect();
    let size = size.max(1);
    Plan {
        fetch: new.iter().take(size).copied().collect(),
        gone,
        more: new.len() > size,
        remaining: new.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("m{i}")).collect()
    }

    #[test]
    fn pages_go_newest_first_and_end() {
        let listing = ids(5);
        let mut seen = BTreeSet::new();
        let first = next_page(&listing, &seen, 2);
        assert_eq!(first.fetch, ["m5", "m4"]);
        assert!(first.more);
        seen.extend(first.fetch.iter().map(|s| s.to_string()));
        let second = next_page(&listing, &seen, 2);
        assert_eq!(second.fetch, ["m3", "m2"]);
        seen.extend(second.fetch.iter().map(|s| s.to_string()));
        let last = next_page(&listing, &seen, 2);
        assert_eq!(last.fetch, ["m1"]);
        assert!(!last.more);
    }

    #[test]
    fn every_id_is_handed_over_once_whatever_the_page_size() {
        for size in 1..8 {
            let listing = ids(13);
            let mut seen = BTreeSet::new();
            let mut handed = Vec::new();
            loop {
                let plan = next_page(&listing, &seen, size);
                handed.extend(plan.fetch.iter().map(|s| s.to_string()));
                seen.extend(plan.fetch.iter().map(|s| s.to_string()));
                if !plan.more {
                    break;
                }
            }
            handed.sort();
            let mut all = listing.clone();
            all.sort();
            assert_eq!(handed, all, "page size {size}");
        }
    }

    #[test]
    fn remembered_ids_the_service_dropped_are_gone() {
        let listing = vec!["b".to_string(), "d".to_string()];
        let seen: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let plan = next_page(&listing, &seen, 10);
        assert_eq!(plan.gone, ["a", "c"]);
        assert_eq!(plan.fetch, ["d"]);
    }
}
