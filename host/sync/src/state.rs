//! `sync_state`: where each account's sync stands, and who holds its lease.

use mailroom_crm::Id;
use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Backend, Db, Tx, unix_now};
use serde::Serialize;
use utoipa::ToSchema;

/// The phase an account's sync is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not synced yet.
    Connecting,
    /// Pulling the last year of mail.
    Backfilling,
    /// Up to date; syncing new mail on a schedule.
    Active,
    /// The credentials stopped working: waits for "Update authentication".
    ReauthRequired,
    /// The last run failed; see the error and the next retry.
    Error,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Backfilling => "backfilling",
            Phase::Active => "active",
            Phase::ReauthRequired => "reauth_required",
            Phase::Error => "error",
        }
    }

    fn parse(s: &str) -> Phase {
        match s {
            "backfilling" => Phase::Backfilling,
            "active" => Phase::Active,
            "reauth_required" => Phase::ReauthRequired,
            "error" => Phase::Error,
            _ => Phase::Connecting,
        }
    }
}

/// An account's sync status, as the Connected emails page shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncStatus {
    /// The phase.
    pub phase: Phase,
    /// One line: `backfilling 1,200 of ~5,000`, `active (last sync at …)`, `error (why, next retry at …)`.
    pub text: String,
    /// Messages of the window done.
    pub progress_done: i64,
    /// The provider's estimate of the window, when it gave one.
    pub progress_total: Option<i64>,
    /// When the last run finished cleanly (Unix seconds).
    pub last_sync_at: Option<i64>,
    /// The last error, as the user should read it.
    pub error: Option<String>,
    /// When the next run is due (Unix seconds); none while waiting for the user.
    pub next_run_at: Option<i64>,
}

/// Thousands separated by commas: `1,200`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A Unix time as an HTTP date (`Sun, 29 Nov 2026 06:46:00 GMT`).
fn when(t: i64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64))
}

impl SyncStatus {
    fn describe(&mut self) {
        self.text = match self.phase {
            Phase::Connecting => "connecting".into(),
            Phase::Backfilling => match self.progress_total {
                Some(total) => format!(
                    "backfilling {} of ~{}",
                    grouped(self.progress_done),
                    grouped(total)
                ),
                None => format!("backfilling {}", grouped(self.progress_done)),
            },
            Phase::Active => match self.last_sync_at {
                Some(t) => format!("active (last sync at {})", when(t)),
                None => "active".into(),
            },
            Phase::ReauthRequired => format!(
                "reauth_required ({})",
                self.error
                    .as_deref()
                    .unwrap_or("the credentials stopped working")
            ),
            Phase::Error => match self.next_run_at {
                Some(t) => format!(
                    "error ({}, next retry at {})",
                    self.error.as_deref().unwrap_or("unknown"),
                    when(t)
                ),
                None => format!("error ({})", self.error.as_deref().unwrap_or("unknown")),
            },
        };
    }
}

/// An account's status; `None` when it has never been scheduled.
pub async fn status(db: &Db, account: Id) -> Result<Option<SyncStatus>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT status, progress_done, progress_total, last_sync_at, last_error, next_run_at \
         FROM sync_state WHERE account_id = $1",
    )
    .bind(account)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut s = SyncStatus {
        phase: Phase::parse(&row.try_get::<String, _>("status")?),
        text: String::new(),
        progress_done: row.try_get("progress_done")?,
        progress_total: row.try_get("progress_total")?,
        last_sync_at: row.try_get("last_sync_at")?,
        error: row.try_get("last_error")?,
        next_run_at: row.try_get("next_run_at")?,
    };
    s.describe();
    Ok(Some(s))
}

/// Make an account due now: after it was connected, or its credentials or
/// settings were updated (which also ends a `reauth_required` or error wait).
pub async fn schedule_now(db: &Db, account: Id) -> Result<(), sqlx::Error> {
    ensure_rows(db).await?;
    sqlx::query(
        "UPDATE sync_state SET next_run_at = $1, attempts = 0, \
         status = CASE WHEN status IN ('reauth_required', 'error') THEN 'connecting' ELSE status END, \
         last_error = CASE WHEN status IN ('reauth_required', 'error') THEN NULL ELSE last_error END \
         WHERE account_id = $2",
    )
    .bind(unix_now())
    .bind(account)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Give every account without a sync row one, due now.
pub(crate) async fn ensure_rows(db: &Db) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_state (account_id, status, backfilled, progress_done, attempts, next_run_at, \
         linked_generation) SELECT a.id, 'connecting', 0, 0, 0, $1, 0 FROM accounts a \
         WHERE NOT EXISTS (SELECT 1 FROM sync_state s WHERE s.account_id = a.id) ON CONFLICT DO NOTHING",
    )
    .bind(unix_now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Take the lease of one due account not leased by a live worker.
/// A lease this node holds is free to it (it is the same host restarted),
/// except for the accounts in `running` (this process's live workers).
pub(crate) async fn claim(
    db: &Db,
    node: &str,
    ttl: i64,
    running: &[Id],
) -> Result<Option<Id>, sqlx::Error> {
    let now = unix_now();
    let exclude = if running.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = running.iter().map(i64::to_string).collect();
        format!("AND account_id NOT IN ({})", ids.join(", "))
    };
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let mut tx = db.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT account_id FROM sync_state WHERE next_run_at <= $1 \
         AND (lease_until IS NULL OR lease_until < $1 OR lease_owner = $2) {exclude} \
         ORDER BY next_run_at LIMIT 1 {lock}"
    ))
    .bind(now)
    .bind(node)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else { return Ok(None) };
    let taken = sqlx::query(
        "UPDATE sync_state SET lease_owner = $1, lease_until = $2 WHERE account_id = $3 \
         AND (lease_until IS NULL OR lease_until < $4 OR lease_owner = $1)",
    )
    .bind(node)
    .bind(now + ttl)
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((taken.rows_affected() == 1).then_some(id))
}

/// What a run starts from.
#[derive(Debug, Clone)]
pub(crate) struct Position {
    pub cursor: Option<String>,
    pub window_since: Option<i64>,
    pub backfilled: bool,
    pub attempts: u32,
    pub linked_generation: i64,
}

pub(crate) async fn position(db: &Db, account: Id) -> Result<Position, sqlx::Error> {
    let row = sqlx::query(
        "SELECT cursor, window_since, backfilled, attempts, linked_generation FROM sync_state WHERE account_id = $1",
    )
    .bind(account)
    .fetch_one(db.pool())
    .await?;
    Ok(Position {
        cursor: row.try_get("cursor")?,
        window_since: row.try_get("window_since")?,
        backfilled: row.try_get::<i64, _>("backfilled")? != 0,
        attempts: row.try_get::<i64, _>("attempts")?.clamp(0, 1000) as u32,
        linked_generation: row.try_get("linked_generation")?,
    })
}

/// Where a page leaves the account, written with the page.
pub(crate) struct Progress<'a> {
    pub cursor: Option<&'a str>,
    pub window_since: i64,
    pub backfilled: bool,
    pub done: i64,
    pub total: Option<i64>,
}

/// Write the new position and renew the lease, in the page's transaction.
/// False when the lease was lost (another worker took the account over):
/// the caller must roll back.
pub(crate) async fn advance(
    tx: &mut Tx,
    account: Id,
    node: &str,
    ttl: i64,
    p: &Progress<'_>,
) -> Result<bool, sqlx::Error> {
    let now = unix_now();
    let phase = if p.backfilled {
        Phase::Active
    } else {
        Phase::Backfilling
    };
    let done = sqlx::query(
        "UPDATE sync_state SET cursor = $1, window_since = $2, backfilled = $3, progress_done = $4, \
         progress_total = $5, status = $6, \
         lease_until = $7 WHERE account_id = $8 AND lease_owner = $9",
    )
    .bind(p.cursor)
    .bind(p.window_since)
    .bind(i64::from(p.backfilled))
    .bind(p.done)
    .bind(p.total)
    .bind(phase.as_str())
    .bind(now + ttl)
    .bind(account)
    .bind(node)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Renew the lease inside a transaction that writes for the account; false
/// when it was lost (the caller must roll back).
pub(crate) async fn renew(
    tx: &mut Tx,
    account: Id,
    node: &str,
    ttl: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sync_state SET lease_until = $1 WHERE account_id = $2 AND lease_owner = $3",
    )
    .bind(unix_now() + ttl)
    .bind(account)
    .bind(node)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Record that the account's links reflect CRM generation `generation`.
pub(crate) async fn linked(
    db: &Db,
    account: Id,
    node: &str,
    generation: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_state SET linked_generation = $1 WHERE account_id = $2 AND lease_owner = $3",
    )
    .bind(generation)
    .bind(account)
    .bind(node)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// How a run ended.
pub(crate) enum Ending {
    /// Clean: next run at the given time.
    Synced { next: i64 },
    /// Credentials rejected: wait for the user.
    Reauth { why: String },
    /// The user must fix a setting: wait for them.
    NeedsUser { why: String },
    /// Transient: retry at `next`.
    Retry {
        why: String,
        next: i64,
        attempts: u32,
    },
}

/// End a run: set the status and next run, and release the lease.
pub(crate) async fn finish(
    db: &Db,
    account: Id,
    node: &str,
    ending: Ending,
) -> Result<(), sqlx::Error> {
    let now = unix_now();
    let (phase, error, next, attempts, last_sync) = match ending {
        Ending::Synced { next } => (None, None, Some(next), 0, Some(now)),
        Ending::Reauth { why } => (Some(Phase::ReauthRequired), Some(why), None, 0, None),
        Ending::NeedsUser { why } => (Some(Phase::Error), Some(why), None, 0, None),
        Ending::Retry {
            why,
            next,
            attempts,
        } => (Some(Phase::Error), Some(why), Some(next), attempts, None),
    };
    sqlx::query(
        "UPDATE sync_state SET status = COALESCE($1, CASE WHEN backfilled = 1 THEN 'active' ELSE 'backfilling' END), \
         last_error = $2, next_run_at = $3, attempts = $4, last_sync_at = COALESCE($5, last_sync_at), \
         lease_owner = NULL, lease_until = NULL WHERE account_id = $6 AND lease_owner = $7",
    )
    .bind(phase.map(Phase::as_str))
    .bind(error)
    .bind(next)
    .bind(i64::from(attempts))
    .bind(last_sync)
    .bind(account)
    .bind(node)
    .execute(db.pool())
    .await?;
    Ok(())
}
