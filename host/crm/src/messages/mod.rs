//! Stored mail: one row per real message, where each copy came from, what
//! it links to, and the compact header index of everything a sync saw.
//! Owns `messages`, `message_sources`, `message_contacts`, `message_deals`,
//! `header_index` and `message_failures`.
//!
//! Every write here happens inside the caller's transaction and is
//! idempotent (`ON CONFLICT DO NOTHING`, lookups before inserts), so a page
//! written twice after a crash leaves the same rows as once. A page is
//! written with a handful of statements whatever its size (`ingest`).

mod ingest;
mod rows;

use mailroom_mail::{Parsed, Participant};
use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Tx, unix_now};

pub use ingest::ingest_page;

use crate::accounts::Scope;
use crate::index::ContactIndex;
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

/// Record one message for an account (a page of one; see [`ingest_page`]).
pub async fn ingest(
    tx: &mut Tx,
    ctx: &AccountContext,
    index: &ContactIndex,
    copy: Copy<'_>,
    parsed: &Parsed,
) -> Result<Outcome, CrmError> {
    let outcomes = ingest_page(tx, ctx, index, &[(copy, parsed)]).await?;
    Ok(outcomes.into_iter().next().unwrap_or(Outcome::Unmatched))
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
    let (mut contact_links, mut deal_links) = (Vec::new(), Vec::new());
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
            ingest::push_links(&mut contact_links, &mut deal_links, ctx.id, message, &links);
        }
    }
    ingest::write_links(tx, contact_links, deal_links).await?;
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

/// Forget copies the provider reports gone from the mailbox (deleted, or
/// moved out of the synced folders): the copy, its header-index entry, the
/// account's links when it holds no other copy of the message, and the
/// message itself when no account holds it any more. Ids not stored are
/// ignored.
pub async fn forget(tx: &mut Tx, account: Id, provider_ids: &[String]) -> Result<(), sqlx::Error> {
    for provider_id in provider_ids {
        sqlx::query("DELETE FROM header_index WHERE account_id = $1 AND provider_id = $2")
            .bind(account)
            .bind(provider_id)
            .execute(&mut **tx)
            .await?;
        let message: Option<Id> = sqlx::query_scalar(
            "SELECT message_id FROM message_sources WHERE account_id = $1 AND provider_id = $2",
        )
        .bind(account)
        .bind(provider_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(message) = message else { continue };
        drop_copy(tx, account, provider_id, message).await?;
        let still_held: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM message_sources WHERE account_id = $1 AND message_id = $2 LIMIT 1",
        )
        .bind(account)
        .bind(message)
        .fetch_optional(&mut **tx)
        .await?;
        if still_held.is_none() {
            for table in ["message_contacts", "message_deals"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE account_id = $1 AND message_id = $2"
                ))
                .bind(account)
                .bind(message)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
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
