//! Writing a page of messages for one account: index every header, store
//! and link what matches, in a handful of statements per page.

use std::collections::{HashMap, HashSet};

use mailroom_mail::{Parsed, address_hash};
use mailroom_store::{Tx, next_id, unix_now};

use super::rows::{self, Val};
use super::{AccountContext, Copy, Outcome};
use crate::index::{ContactIndex, Links};
use crate::{CrmError, Id};

fn hashes(parsed: &Parsed, own: &[String]) -> Vec<u8> {
    parsed
        .addresses()
        .filter(|a| !own.iter().any(|o| o == a))
        .flat_map(|a| address_hash(a).to_be_bytes())
        .collect()
}

/// A message this page stores (or finds stored) and links.
struct Matched {
    item: usize,
    links: Links,
}

/// Record a page of messages for an account, in the caller's transaction:
/// index every header; for each message that matches a contact under the
/// account's scope, find it stored (by Message-ID, or by content hash when
/// the id is missing or reused with other content) or store it, record this
/// copy and link it. Messages this account already holds are left alone.
pub async fn ingest_page(
    tx: &mut Tx,
    ctx: &AccountContext,
    index: &ContactIndex,
    items: &[(Copy<'_>, &Parsed)],
) -> Result<Vec<Outcome>, CrmError> {
    if items.is_empty() {
        return Ok(vec![]);
    }
    let header_rows = items
        .iter()
        .map(|(copy, parsed)| {
            vec![
                Val::Int(ctx.id),
                Val::Text(copy.provider_id),
                Val::Int(copy.received_at),
                Val::Bytes(hashes(parsed, &ctx.own)),
            ]
        })
        .collect();
    rows::insert(
        tx,
        "header_index",
        &["account_id", "provider_id", "received_at", "participants"],
        header_rows,
    )
    .await?;

    let ids: Vec<&str> = items.iter().map(|(c, _)| c.provider_id).collect();
    let held: HashSet<String> = rows::select_in::<(String,)>(
        tx,
        &format!(
            "SELECT provider_id FROM message_sources WHERE account_id = {} AND provider_id IN",
            ctx.id
        ),
        &ids,
    )
    .await?
    .into_iter()
    .map(|(id,)| id)
    .collect();

    let mut outcomes = vec![Outcome::Unmatched; items.len()];
    let mut matched = Vec::new();
    let mut in_page = HashSet::new();
    for (i, (copy, parsed)) in items.iter().enumerate() {
        if held.contains(copy.provider_id) || !in_page.insert(copy.provider_id) {
            outcomes[i] = Outcome::AlreadyHeld;
            continue;
        }
        let links = index.links(parsed.addresses(), &ctx.own, ctx.scope);
        if !links.contacts.is_empty() {
            matched.push(Matched { item: i, links });
        }
    }
    if matched.is_empty() {
        return Ok(outcomes);
    }

    // What is stored already, by key, and the threads of this account's provider threads.
    let id_keys: Vec<String> = matched
        .iter()
        .filter_map(|m| {
            items[m.item]
                .1
                .message_id
                .as_ref()
                .map(|id| format!("<{id}>"))
        })
        .collect();
    let hash_keys: Vec<String> = matched
        .iter()
        .map(|m| format!("#{}", items[m.item].1.content_hash))
        .collect();
    let keys: Vec<&str> = id_keys
        .iter()
        .chain(&hash_keys)
        .map(String::as_str)
        .collect();
    let mut known = stored_by_key(tx, &keys).await?;
    let threads: Vec<&str> = matched
        .iter()
        .filter(|m| items[m.item].1.thread_root.is_none())
        .filter_map(|m| items[m.item].0.provider_thread)
        .collect();
    let mut thread_of: HashMap<String, String> = rows::select_in::<(String, String)>(
        tx,
        &format!(
            "SELECT s.provider_thread, m.thread_key FROM message_sources s \
             JOIN messages m ON m.id = s.message_id WHERE s.account_id = {} AND s.provider_thread IN",
            ctx.id
        ),
        &threads,
    )
    .await?
    .into_iter()
    .collect();

    let now = unix_now();
    let mut created: Vec<NewMessage> = Vec::new();
    // Per matched message: its row id and whether this page made it.
    let mut resolved = Vec::with_capacity(matched.len());
    for m in &matched {
        let (copy, parsed) = &items[m.item];
        let by_hash = format!("#{}", parsed.content_hash);
        let key = match &parsed.message_id {
            Some(mid) => {
                let by_id = format!("<{mid}>");
                match known.get(&by_id) {
                    // The same Message-ID with other content: a reused id, so another message.
                    Some((_, hash)) if *hash != parsed.content_hash => by_hash,
                    _ => by_id,
                }
            }
            None => by_hash,
        };
        if let Some(&(id, _)) = known.get(&key) {
            resolved.push((id, false));
            continue;
        }
        let id = next_id();
        let thread = match (&parsed.thread_root, copy.provider_thread) {
            (Some(root), _) => format!("<{root}>"),
            (None, Some(t)) => thread_of.get(t).cloned().unwrap_or_else(|| key.clone()),
            (None, None) => key.clone(),
        };
        if let Some(t) = copy.provider_thread {
            thread_of
                .entry(t.to_string())
                .or_insert_with(|| thread.clone());
        }
        known.insert(key.clone(), (id, parsed.content_hash.clone()));
        created.push(NewMessage {
            id,
            key,
            thread,
            item: m.item,
        });
        resolved.push((id, true));
    }
    // Rows in key order: two hosts inserting overlapping pages then wait
    // for each other in the same order instead of deadlocking.
    created.sort_by(|a, b| a.key.cmp(&b.key));
    let rows = created
        .iter()
        .map(|n| message_row(n, &n.key, &n.thread, items[n.item], now))
        .collect();
    let inserted = rows::insert(tx, "messages", MESSAGE_COLUMNS, rows).await?;
    if inserted != created.len() as u64 {
        // Another host stored some of the same keys since we looked (its
        // transaction committed while ours waited on the key).
        for (ours, theirs) in settle_conflicts(tx, &created, items, now).await? {
            for r in resolved.iter_mut().filter(|(id, _)| *id == ours) {
                *r = (theirs, false);
            }
        }
    }
    let mut sources = Vec::with_capacity(matched.len());
    let (mut contact_links, mut deal_links) = (Vec::new(), Vec::new());
    for (m, &(message, new)) in matched.iter().zip(&resolved) {
        let copy = &items[m.item].0;
        sources.push(vec![
            Val::Int(ctx.id),
            Val::Text(copy.provider_id),
            Val::Int(message),
            Val::Text(copy.folder),
            Val::MaybeText(copy.provider_thread),
            Val::Int(copy.received_at),
        ]);
        push_links(
            &mut contact_links,
            &mut deal_links,
            ctx.id,
            message,
            &m.links,
        );
        outcomes[m.item] = Outcome::Stored { message, new };
    }
    rows::insert(
        tx,
        "message_sources",
        &[
            "account_id",
            "provider_id",
            "message_id",
            "folder",
            "provider_thread",
            "received_at",
        ],
        sources,
    )
    .await?;
    write_links(tx, contact_links, deal_links).await?;
    Ok(outcomes)
}

/// The stored messages with these keys: key → (id, content hash).
async fn stored_by_key(
    tx: &mut Tx,
    keys: &[&str],
) -> Result<HashMap<String, (Id, String)>, CrmError> {
    Ok(rows::select_in::<(String, i64, String)>(
        tx,
        "SELECT message_key, id, content_hash FROM messages WHERE message_key IN",
        keys,
    )
    .await?
    .into_iter()
    .map(|(key, id, hash)| (key, (id, hash)))
    .collect())
}

/// A message row this page creates.
struct NewMessage {
    id: Id,
    key: String,
    thread: String,
    item: usize,
}

const MESSAGE_COLUMNS: &[&str] = &[
    "id",
    "message_key",
    "message_id",
    "content_hash",
    "thread_key",
    "subject",
    "sent_at",
    "from_address",
    "participants",
    "body",
    "html",
    "attachments",
    "created_at",
];

fn message_row<'a>(
    n: &NewMessage,
    key: &str,
    thread: &str,
    (copy, parsed): (Copy<'a>, &'a Parsed),
    now: i64,
) -> Vec<Val<'a>> {
    vec![
        Val::Int(n.id),
        Val::Owned(key.to_string()),
        Val::MaybeText(parsed.message_id.as_deref()),
        Val::Text(&parsed.content_hash),
        Val::Owned(thread.to_string()),
        Val::Text(&parsed.subject),
        Val::Int(parsed.sent_at.unwrap_or(copy.received_at)),
        Val::Text(parsed.from_address()),
        Val::Owned(serde_json::to_string(&parsed.participants).unwrap_or_default()),
        Val::Text(&parsed.body),
        Val::MaybeText(parsed.html.as_deref()),
        Val::Owned(serde_json::to_string(&parsed.attachments).unwrap_or_else(|_| "[]".into())),
        Val::Int(now),
    ]
}

/// For rows another host inserted first under the same key: the same
/// content means the same message (use its row); other content under the
/// same Message-ID is a reused id (store ours under its content hash).
/// Returns (our id, the row to use instead).
async fn settle_conflicts(
    tx: &mut Tx,
    created: &[NewMessage],
    items: &[(Copy<'_>, &Parsed)],
    now: i64,
) -> Result<Vec<(Id, Id)>, CrmError> {
    let keys: Vec<&str> = created.iter().map(|n| n.key.as_str()).collect();
    let stored = stored_by_key(tx, &keys).await?;
    let mut remap = Vec::new();
    for n in created {
        let parsed = items[n.item].1;
        let (id, hash) = stored
            .get(&n.key)
            .ok_or_else(|| CrmError::not_found("message", &n.key))?;
        if *id == n.id {
            continue;
        }
        if *hash == parsed.content_hash {
            remap.push((n.id, *id));
            continue;
        }
        let by_hash = format!("#{}", parsed.content_hash);
        // A thread named after the Message-ID it no longer has is named after its hash.
        let thread = if n.thread == n.key {
            &by_hash
        } else {
            &n.thread
        };
        let row = message_row(n, &by_hash, thread, items[n.item], now);
        rows::insert(tx, "messages", MESSAGE_COLUMNS, vec![row]).await?;
        let found = rows::select_in::<(i64,)>(
            tx,
            "SELECT id FROM messages WHERE message_key IN",
            &[by_hash.as_str()],
        )
        .await?;
        let (id,) = found
            .first()
            .ok_or_else(|| CrmError::not_found("message", &by_hash))?;
        if *id != n.id {
            remap.push((n.id, *id));
        }
    }
    Ok(remap)
}

/// Add the link rows of one message under one account.
pub(super) fn push_links(
    contacts: &mut Vec<Vec<Val<'static>>>,
    deals: &mut Vec<Vec<Val<'static>>>,
    account: Id,
    message: Id,
    links: &Links,
) {
    for &c in &links.contacts {
        contacts.push(vec![Val::Int(message), Val::Int(account), Val::Int(c)]);
    }
    for &d in &links.deals {
        deals.push(vec![Val::Int(message), Val::Int(account), Val::Int(d)]);
    }
}

/// Insert collected link rows.
pub(super) async fn write_links(
    tx: &mut Tx,
    contacts: Vec<Vec<Val<'static>>>,
    deals: Vec<Vec<Val<'static>>>,
) -> Result<(), CrmError> {
    rows::insert(
        tx,
        "message_contacts",
        &["message_id", "account_id", "contact_id"],
        contacts,
    )
    .await?;
    rows::insert(
        tx,
        "message_deals",
        &["message_id", "account_id", "deal_id"],
        deals,
    )
    .await?;
    Ok(())
}
