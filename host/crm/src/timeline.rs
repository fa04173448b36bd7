//! Timelines: a contact's or a deal's emails and recent activities, as one
//! user may see them. Reads `messages` and the links (never writes).
//!
//! Visibility: a message shows on a record for viewer U when one of the
//! copies that links it there comes from an account U owns or a Public one.

use mailroom_mail::{Attachment, Participant};
use mailroom_store::Db;
use mailroom_store::sqlx::{self, Row};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{CrmError, Id};

/// One email on a timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Email {
    /// The stored message's id.
    pub id: Id,
    /// Subject.
    pub subject: String,
    /// Sender address.
    pub from: String,
    /// Every participant with their role.
    #[schema(value_type = Vec<Object>)]
    pub participants: Vec<Participant>,
    /// Sent (Unix seconds, from the Date header or the provider's receipt time).
    pub sent_at: i64,
    /// The conversation it belongs to.
    pub thread: String,
    /// The text body.
    pub body: String,
}

/// One email in full, as its reader opens it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FullEmail {
    /// What the timelines show of it.
    #[serde(flatten)]
    pub email: Email,
    /// The HTML body as sent, unsanitised: sanitise before showing it.
    pub html: Option<String>,
    /// The attachments: names, sizes and types.
    #[schema(value_type = Vec<Object>)]
    pub attachments: Vec<Attachment>,
}

/// One entry in "Recent activities".
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activity {
    /// What happened: `email`.
    pub kind: String,
    /// When (Unix seconds).
    pub at: i64,
    /// The email's id.
    pub message_id: Id,
    /// A one-line summary: the subject.
    pub summary: String,
    /// The sender address.
    pub from: String,
}

/// Which record a timeline is for.
#[derive(Debug, Clone, Copy)]
pub enum Record {
    /// A contact.
    Contact(Id),
    /// A deal.
    Deal(Id),
}

impl Record {
    pub(crate) fn link(self) -> (&'static str, &'static str, Id) {
        match self {
            Record::Contact(id) => ("message_contacts", "contact_id", id),
            Record::Deal(id) => ("message_deals", "deal_id", id),
        }
    }
}

async fn rows(
    db: &Db,
    record: Record,
    viewer: Id,
    columns: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<sqlx::any::AnyRow>, CrmError> {
    let (table, column, id) = record.link();
    let sql = format!(
        "SELECT {columns} FROM messages m WHERE EXISTS (\
           SELECT 1 FROM {table} l JOIN accounts a ON a.id = l.account_id \
           WHERE l.message_id = m.id AND l.{column} = $1 AND (a.owner_id = $2 OR a.visibility = 'public')) \
         ORDER BY m.sent_at DESC, m.id DESC LIMIT $3 OFFSET $4"
    );
    Ok(sqlx::query(&sql)
        .bind(id)
        .bind(viewer)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await?)
}

/// The emails on a record that `viewer` may see, newest first.
pub async fn emails(
    db: &Db,
    record: Record,
    viewer: Id,
    limit: i64,
    offset: i64,
) -> Result<Vec<Email>, CrmError> {
    rows(
        db,
        record,
        viewer,
        "m.id, m.subject, m.from_address, m.participants, m.sent_at, m.thread_key, m.body",
        limit,
        offset,
    )
    .await?
    .iter()
    .map(email_from_row)
    .collect()
}

fn email_from_row(r: &sqlx::any::AnyRow) -> Result<Email, CrmError> {
    Ok(Email {
        id: r.try_get("id")?,
        subject: r.try_get("subject")?,
        from: r.try_get("from_address")?,
        participants: serde_json::from_str(&r.try_get::<String, _>("participants")?)
            .unwrap_or_default(),
        sent_at: r.try_get("sent_at")?,
        thread: r.try_get("thread_key")?,
        body: r.try_get("body")?,
    })
}

/// "Recent activities" on a record for `viewer`, newest first.
pub async fn activities(
    db: &Db,
    record: Record,
    viewer: Id,
    limit: i64,
) -> Result<Vec<Activity>, CrmError> {
    rows(
        db,
        record,
        viewer,
        "m.id, m.subject, m.from_address, m.sent_at",
        limit,
        0,
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Activity {
            kind: "email".into(),
            at: r.try_get("sent_at")?,
            message_id: r.try_get("id")?,
            summary: r.try_get("subject")?,
            from: r.try_get("from_address")?,
        })
    })
    .collect()
}

/// One email in full, when `viewer` may see it: one of its copies comes from
/// an account `viewer` owns or a Public one. `None` otherwise, or when there
/// is no such email (the two are not told apart).
pub async fn email(db: &Db, id: Id, viewer: Id) -> Result<Option<FullEmail>, CrmError> {
    let row = sqlx::query(
        "SELECT m.id, m.subject, m.from_address, m.participants, m.sent_at, m.thread_key, m.body, \
                m.html, m.attachments FROM messages m WHERE m.id = $1 AND EXISTS (\
           SELECT 1 FROM message_sources s JOIN accounts a ON a.id = s.account_id \
           WHERE s.message_id = m.id AND (a.owner_id = $2 OR a.visibility = 'public'))",
    )
    .bind(id)
    .bind(viewer)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(FullEmail {
        email: email_from_row(&r)?,
        html: r.try_get("html")?,
        attachments: serde_json::from_str(&r.try_get::<String, _>("attachments")?)
            .unwrap_or_default(),
    }))
}
