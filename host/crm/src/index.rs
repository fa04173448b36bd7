//! The contact index: every contact address and every contact's deals, in
//! memory, so that matching a message is a few hash lookups.
//!
//! It is built from `contact_emails`, `deals` and `deal_contacts` (read
//! only) and tagged with the CRM generation it was built at; the sync
//! engine rebuilds it when the generation moves.

use std::collections::{HashMap, HashSet};

use mailroom_store::Db;
use mailroom_store::sqlx::{self, Row};

use crate::accounts::Scope;
use crate::deals::Status;
use crate::{CrmError, Id, generation};

/// One deal a contact is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DealRef {
    deal: Id,
    open: bool,
    primary: bool,
}

/// What a message links to under one account's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// Contacts, sorted, distinct.
    pub contacts: Vec<Id>,
    /// Deals, sorted, distinct.
    pub deals: Vec<Id>,
}

/// Addresses → contacts, contacts → deals.
#[derive(Debug, Default)]
pub struct ContactIndex {
    generation: i64,
    by_address: HashMap<Box<str>, Vec<Id>>,
    deals: HashMap<Id, Vec<DealRef>>,
}

impl ContactIndex {
    /// Build the index from the database.
    pub async fn load(db: &Db) -> Result<Self, CrmError> {
        let generation = generation::current(db.pool()).await?;
        let mut index = ContactIndex {
            generation,
            ..Default::default()
        };
        let rows = sqlx::query("SELECT contact_id, address FROM contact_emails")
            .fetch_all(db.pool())
            .await?;
        for row in rows {
            let address: String = row.try_get("address")?;
            index.add_address(&address, row.try_get("contact_id")?);
        }
        let rows = sqlx::query("SELECT id, status, primary_contact_id FROM deals")
            .fetch_all(db.pool())
            .await?;
        let mut open = HashMap::new();
        for row in rows {
            let deal: i64 = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let is_open = Status::parse(&status) == Some(Status::Open);
            open.insert(deal, is_open);
            if let Some(contact) = row.try_get::<Option<i64>, _>("primary_contact_id")? {
                index.add_deal(contact, deal, is_open, true);
            }
        }
        let rows = sqlx::query("SELECT deal_id, contact_id FROM deal_contacts")
            .fetch_all(db.pool())
            .await?;
        for row in rows {
            let deal: i64 = row.try_get("deal_id")?;
            let is_open = open.get(&deal).copied().unwrap_or(false);
            index.add_deal(row.try_get("contact_id")?, deal, is_open, false);
        }
        Ok(index)
    }

    /// The CRM generation this index reflects.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Record that `contact` has `address` (normalised).
    pub fn add_address(&mut self, address: &str, contact: Id) {
        let entry = self.by_address.entry(address.into()).or_default();
        if !entry.contains(&contact) {
            entry.push(contact);
        }
    }

    /// Record that `contact` is on `deal`.
    pub fn add_deal(&mut self, contact: Id, deal: Id, open: bool, primary: bool) {
        let entry = self.deals.entry(contact).or_default();
        match entry.iter_mut().find(|d| d.deal == deal) {
            Some(d) => d.primary |= primary,
            None => entry.push(DealRef {
                deal,
                open,
                primary,
            }),
        }
    }

    /// The contacts that have `address` (normalised).
    pub fn lookup(&self, address: &str) -> &[Id] {
        self.by_address.get(address).map_or(&[], Vec::as_slice)
    }

    fn scoped(&self, contact: Id, scope: Scope) -> impl Iterator<Item = Id> + '_ {
        self.deals
            .get(&contact)
            .into_iter()
            .flatten()
            .filter(move |d| scope == Scope::AllContacts || (d.open && d.primary))
            .map(|d| d.deal)
    }

    fn in_scope(&self, contact: Id, scope: Scope) -> bool {
        scope == Scope::AllContacts || self.scoped(contact, scope).next().is_some()
    }

    /// What a message with these participant addresses links to under
    /// `scope`, never through one of `own` (the owner's connected addresses).
    pub fn links<'a>(
        &self,
        addresses: impl IntoIterator<Item = &'a str>,
        own: &[String],
        scope: Scope,
    ) -> Links {
        let mut links = Links::default();
        for address in addresses {
            if own.iter().any(|o| o == address) {
                continue;
            }
            for &contact in self.lookup(address) {
                if self.in_scope(contact, scope) {
                    links.contacts.push(contact);
                    links.deals.extend(self.scoped(contact, scope));
                }
            }
        }
        links.contacts.sort_unstable();
        links.contacts.dedup();
        links.deals.sort_unstable();
        links.deals.dedup();
        links
    }

    /// Hashes (see `mailroom_mail::address_hash`) of every address that
    /// would link something under `scope`: what the header index is checked against.
    pub fn matchable_hashes(&self, scope: Scope, own: &[String]) -> HashSet<u64> {
        self.by_address
            .iter()
            .filter(|(address, contacts)| {
                !own.iter().any(|o| o.as_str() == &***address)
                    && contacts.iter().any(|&c| self.in_scope(c, scope))
            })
            .map(|(address, _)| mailroom_mail::address_hash(address))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ContactIndex {
        let mut i = ContactIndex::default();
        // 1: no deals. 2: primary on open deal 10, other on won deal 11.
        // 3: other contact on open deal 10. 4: primary on lost deal 12.
        i.add_address("one@x.test", 1);
        i.add_address("two@x.test", 2);
        i.add_address("three@x.test", 3);
        i.add_address("four@x.test", 4);
        i.add_address("me@x.test", 5);
        i.add_deal(2, 10, true, true);
        i.add_deal(2, 11, false, false);
        i.add_deal(3, 10, true, false);
        i.add_deal(4, 12, false, true);
        i
    }

    const ALL: [&str; 5] = [
        "one@x.test",
        "two@x.test",
        "three@x.test",
        "four@x.test",
        "me@x.test",
    ];

    #[test]
    fn all_contacts_links_every_contact_and_all_their_deals() {
        let l = index().links(ALL, &["me@x.test".into()], Scope::AllContacts);
        assert_eq!(l.contacts, [1, 2, 3, 4]);
        assert_eq!(l.deals, [10, 11, 12]);
    }

    #[test]
    fn primary_open_deals_links_only_primaries_of_open_deals() {
        let l = index().links(ALL, &["me@x.test".into()], Scope::PrimaryOpenDeals);
        assert_eq!(l.contacts, [2]);
        assert_eq!(l.deals, [10]);
    }

    #[test]
    fn own_address_never_matches() {
        let l = index().links(["me@x.test"], &["me@x.test".into()], Scope::AllContacts);
        assert_eq!(l, Links::default());
        let hashes = index().matchable_hashes(Scope::AllContacts, &["me@x.test".into()]);
        assert_eq!(hashes.len(), 4);
        assert!(!hashes.contains(&mailroom_mail::address_hash("me@x.test")));
        assert_eq!(
            index().matchable_hashes(Scope::PrimaryOpenDeals, &[]).len(),
            1
        );
    }
}
