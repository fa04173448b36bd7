//! Stored mail: one row per real message, where each copy came from, what
//! it links to, and the compact header index of everything a sync saw.
//! Owns `messages`, `message_sources`, `message_contacts`, `message_deals`,
//! `header_index` and `message_failures`.
//!
//! Every write here happens inside the caller's transaction and is
//! idempotent (`ON CONFLICT DO NOTHING`, lookups before inserts), so a page
//! written twice after a crash leaves the same rows as once.

use mailroom_mail::{Parsed, Participant, address_hash};
use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Tx, next_id, unix_now};

use crate::accounts::Scope;
use crate::index::{ContactIndex, Links};
use crate::{CrmError, Id};

/// The account a page is written for: what matching needs to know of it.
#[derive(Debug, Clone)]
pub struct AccountContext {
    /// The account.
    pub id: Id,
    /// Its sync scope.
    pub scope: Scope,
    /// Its owner's connected addresses, which never match a contact.
    pub own: Vec<String>,
}

/// Where one copy of a message sits at the provider.
#[derive(Debug, Clone, Copy)]
pub struct Copy<'a> {
    /// The provider's id.
    pub provider_id: &'a str,
    /// The folder or label.
    pub folder: &'a str,
    /// The provider's thread id, when it has one.
    pub provider_thread: Option<&'a str>,
    /// When the provider received it (Unix seconds).
    pub received_at: i64,
}

/// What [`ingest`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (or found stored from another copy) and linked.
    Stored {
        /// The message row.
        message: Id,
        /// Whether this call made the row.
        new: bool,
    },
    /// It matched no contact under the scope: only its header was indexed.
    Unmatched,
    /// This account's copy was already recorded.
    AlreadyHeld,
}

fn hashes(parsed: &Parsed, own: &[String]) -> Vec<u8> {
    parsed
        .addresses()
        .filter(|a| !own.iter().any(|o| o == a))
        .flat_map(|a| address_hash(a).to_be_bytes())
        .collect()
}

/// Record one message for an account: index its header, and when it
/// matches a contact under the account's scope, store it once (dedup by
/// Message-ID, or by content hash when the id is missing or reused), record
/// this copy and link it.
pub async fn ingest(
    tx: &mut Tx,
    ctx: &AccountContext,
    index: &ContactIndex,
    copy: Copy<'_>,
    parsed: &Parsed,
) -> Result<Outcome, CrmError> {
    sqlx::query(
        "INSERT INTO header_index (account_id, provider_id, received_at, participants) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(ctx.id)
    .bind(copy.provider_id)
    .bind(copy.received_at)
    .bind(hashes(parsed, &ctx.own))
    .execute(&mut **tx)
    .await?;
    let held =
        sqlx::query("SELECT 1 FROM message_sources WHERE account_id = $1 AND provider_id = $2")
            .bind(ctx.id)
            .bind(copy.provider_id)
            .fetch_optional(&mut **tx)
            .await?;
    if held.is_some() {
        return Ok(Outcome::AlreadyHeld);
    }
    let links = index.links(parsed.addresses(), &ctx.own, ctx.scope);
    if links.contacts.is_empty() {
        return Ok(Outcome::Unmatched);
    }
    let (message, new) = find_or_insert(tx, ctx, copy, parsed).await?;
    sqlx::query(
        "INSERT INTO message_sources (account_id, provider_id, message_id, folder, provider_thread, \
         received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(ctx.id)
    .bind(copy.provider_id)
    .bind(message)
    .bind(copy.folder)
    .bind(copy.provider_thread)
    .bind(copy.received_at)
    .execute(&mut **tx)
    .await?;
    write_links(tx, ctx.id, message, &links).await?;
    Ok(Outcome::Stored { message, new })
}

async fn write_links(
    tx: &mut Tx,
    account: Id,
    message: Id,
    links: &Links,
) -> Result<(), sqlx::Error> {
    for (table, column, ids) in [
        ("message_contacts", "contact_id", &links.contacts),
        ("message_deals", "deal_id", &links.deals),
    ] {
        let sql = format!(
            "INSERT INTO {table} (message_id, account_id, {column}) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        );
        for id in ids {
            sqlx::query(&sql)
                .bind(message)
                .bind(account)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

async fn by_key(tx: &mut Tx, key: &str) -> Result<Option<(Id, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT id, content_hash FROM messages WHERE message_key = $1")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("content_hash")?)))
        .transpose()
}

/// The message row for `parsed`: the stored one with its Message-ID and the
/// same content, or the one with its content hash, or a new one.
async fn find_or_insert(
    tx: &mut Tx,
    ctx: &AccountContext,
    copy: Copy<'_>,
    parsed: &Parsed,
) -> Result<(Id, bool), CrmError> {
    let by_hash = format!("#{}", parsed.content_hash);
    let mut key = by_hash.clone();
    if let Some(mid) = &parsed.message_id {
        let by_id = format!("<{mid}>");
        match by_key(tx, &by_id).await? {
            Some((id, hash)) if hash == parsed.content_hash => return Ok((id, false)),
            Some(_) => {} // a reused Message-ID: this is another message
            None => key = by_id,
        }
    }
    if let Some((id, _)) = by_key(tx, &key).await? {
        return Ok((id, false));
    }
    let thread_key = thread_key(tx, ctx, copy, parsed, &key).await?;
    let id = next_id();
    let inserted = sqlx::query(
        "INSERT INTO messages (id, message_key, message_id, content_hash, thread_key, subject, sent_at, \
         from_address, participants, body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&key)
    .bind(parsed.message_id.as_deref())
    .bind(&parsed.content_hash)
    .bind(thread_key)
    .bind(&parsed.subject)
    .bind(parsed.sent_at.unwrap_or(copy.received_at))
    .bind(parsed.from_address())
    .bind(serde_json::to_string(&parsed.participants).unwrap_or_default())
    .bind(&parsed.body)
    .bind(unix_now())
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok((id, true));
    }
    // Another host stored it between our lookup and insert.
    let (id, _) = by_key(tx, &key)
        .await?
        .ok_or_else(|| CrmError::not_found("message", &key))?;
    Ok((id, false))
}

/// The conversation a new message joins: the root its References name;
/// else the thread of another message with the same provider thread id in
/// this account; else its own.
async fn thread_key(
    tx: &mut Tx,
    ctx: &AccountContext,
    copy: Copy<'_>,
    parsed: &Parsed,
    own_key: &str,
) -> Result<String, sqlx::Error> {
    if let Some(root) = &parsed.thread_root {
        return Ok(format!("<{root}>"));
    }
    if let Some(thread) = copy.provider_thread {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT m.thread_key FROM message_sources s JOIN messages m ON m.id = s.message_id \
             WHERE s.account_id = $1 AND s.provider_thread = $2 LIMIT 1",
        )
        .bind(ctx.id)
        .bind(thread)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(found) = found {
            return Ok(found);
        }
    }
    Ok(own_key.to_string())
}

/// Record that the provider could not deliver a message; later syncs skip it.
pub async fn record_failure(
    tx: &mut Tx,
    account: Id,
    provider_id: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO message_failures (account_id, provider_id, reason, failed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(account)
    .bind(provider_id)
    .bind(reason)
    .bind(unix_now())
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// The provider ids recorded as failed for an account.
pub async fn failures(
    db: &mailroom_store::Db,
    account: Id,
) -> Result<Vec<(String, String)>, CrmError> {
    let rows = sqlx::query("SELECT provider_id, reason FROM message_failures WHERE account_id = $1 ORDER BY provider_id")
        .bind(account)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("provider_id")?, r.try_get("reason")?)))
        .collect()
}

/// Bring an account's links in line with the contact index (after contacts,
/// deals or the scope changed): stored copies get their links recomputed
/// (a copy that no longer links anything is dropped, and its message when
/// no copy is left); and the provider ids of indexed-but-unstored messages
/// that now match are returned, for the caller to fetch and [`ingest`].
pub async fn relink(
    tx: &mut Tx,
    ctx: &AccountContext,
    index: &ContactIndex,
) -> Result<Vec<String>, CrmError> {
    let rows = sqlx::query(
        "SELECT s.provider_id, m.id, m.participants FROM message_sources s \
         JOIN messages m ON m.id = s.message_id WHERE s.account_id = $1",
    )
    .bind(ctx.id)
    .fetch_all(&mut **tx)
    .await?;
    for table in ["message_contacts", "message_deals"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
            .bind(ctx.id)
            .execute(&mut **tx)
            .await?;
    }
    for row in rows {
        let message: Id = row.try_get("id")?;
        let participants: Vec<Participant> =
            serde_json::from_str(&row.try_get::<String, _>("participants")?).unwrap_or_default();
        let links = index.links(
            participants.iter().map(|p| p.address.as_str()),
            &ctx.own,
            ctx.scope,
        );
        if links.contacts.is_empty() {
            let provider_id: String = row.try_get("provider_id")?;
            drop_copy(tx, ctx.id, &provider_id, message).await?;
        } else {
            write_links(tx, ctx.id, message, &links).await?;
        }
    }
    let matchable = index.matchable_hashes(ctx.scope, &ctx.own);
    let rows = sqlx::query(
        "SELECT h.provider_id, h.participants FROM header_index h WHERE h.account_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM message_sources s WHERE s.account_id = h.account_id AND s.provider_id = h.provider_id) \
         AND NOT EXISTS (SELECT 1 FROM message_failures f WHERE f.account_id = h.account_id AND f.provider_id = h.provider_id) \
         ORDER BY h.received_at DESC",
    )
    .bind(ctx.id)
    .fetch_all(&mut **tx)
    .await?;
    let mut wanted = Vec::new();
    for row in rows {
        let blob: Vec<u8> = row.try_get("participants")?;
        if blob.chunks_exact(8).any(|c| {
            c.try_into()
                .is_ok_and(|b| matchable.contains(&u64::from_be_bytes(b)))
        }) {
            wanted.push(row.try_get("provider_id")?);
        }
    }
    Ok(wanted)
}

async fn drop_copy(
    tx: &mut Tx,
    account: Id,
    provider_id: &str,
    message: Id,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM message_sources WHERE account_id = $1 AND provider_id = $2")
        .bind(account)
        .bind(provider_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "DELETE FROM messages WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM message_sources WHERE message_id = $1)",
    )
    .bind(message)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Delete the messages only this account holds (before the account goes).
pub async fn purge_account(tx: &mut Tx, account: Id) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM messages WHERE id IN (SELECT message_id FROM message_sources WHERE account_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM message_sources o WHERE o.message_id = messages.id AND o.account_id <> $1)",
    )
    .bind(account)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts for one account, for status pages and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// Copies stored (messages this account holds).
    pub stored: i64,
    /// Messages seen (header index).
    pub seen: i64,
    /// Messages the provider could not deliver.
    pub failed: i64,
}

/// How much of an account's mail is held.
pub async fn counts(db: &mailroom_store::Db, account: Id) -> Result<Counts, CrmError> {
    let mut c = Counts::default();
    for (table, slot) in [
        ("message_sources", &mut c.stored),
        ("header_index", &mut c.seen),
        ("message_failures", &mut c.failed),
    ] {
        *slot = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE account_id = $1"
        ))
        .bind(account)
        .fetch_one(db.pool())
        .await?;
    }
    Ok(c)
}
