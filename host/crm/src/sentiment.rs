//! Sentiment: which stored emails are to be scored, their scores, and a
//! contact's or a deal's current sentiment and trend. Owns
//! `message_sentiment`. The scoring itself is the analyser's
//! (`mailroom-sentiment` calls it); this module never calls it.
//!
//! An email is scored when it was received from a contact (its From is one
//! of the contact's addresses) who is on an open deal (primary or other
//! contact), and one of its copies comes from an account whose owner allows
//! sentiment analysis. Scores are shown only while that is still so:
//! turning sentiment off for the account hides them at once, turning it on
//! again shows them (and scores what is new) again.

use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, unix_now};
use serde::Serialize;
use utoipa::ToSchema;

use crate::timeline::Record;
use crate::{CrmError, Id};

/// Emails scored together before their rows are written.
pub const BATCH: i64 = 100;
/// How many recent scored emails make a record's current sentiment.
const WINDOW: usize = 5;

/// Emails waiting to be scored, newest first: id and text body. Driven
/// from the accounts that allow it, so that it costs nothing while none does.
pub async fn pending(db: &Db, limit: i64) -> Result<Vec<(Id, String)>, CrmError> {
    let sql = "SELECT DISTINCT m.id, m.body, m.sent_at FROM accounts a \
         JOIN message_contacts mc ON mc.account_id = a.id \
         JOIN messages m ON m.id = mc.message_id \
         JOIN contact_emails ce ON ce.contact_id = mc.contact_id AND ce.address = m.from_address \
         WHERE a.sentiment = 1 \
         AND NOT EXISTS (SELECT 1 FROM message_sentiment s WHERE s.message_id = m.id) \
         AND EXISTS (SELECT 1 FROM deals d WHERE d.status = 'open' AND \
           (d.primary_contact_id = mc.contact_id OR EXISTS (SELECT 1 FROM deal_contacts dc \
             WHERE dc.deal_id = d.id AND dc.contact_id = mc.contact_id))) \
         ORDER BY m.sent_at DESC LIMIT $1";
    sqlx::query(sql)
        .bind(limit)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("body")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(CrmError::from)
}

/// One email's score.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Scored {
    /// The email.
    pub message_id: Id,
    /// From -1 to 1.
    pub value: f32,
    /// `positive`, `neutral` or `negative`.
    pub label: String,
}

/// Keep scores (an email scored twice keeps its first score).
pub async fn record(db: &Db, analyzer: &str, scores: &[Scored]) -> Result<(), CrmError> {
    let mut tx = db.begin().await?;
    for s in scores {
        sqlx::query(
            "INSERT INTO message_sentiment (message_id, value_milli, label, analyzer, scored_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(s.message_id)
        .bind((s.value.clamp(-1.0, 1.0) * 1000.0).round() as i64)
        .bind(&s.label)
        .bind(analyzer)
        .bind(unix_now())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One scored email on a record.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScoredEmail {
    /// The email.
    pub message_id: Id,
    /// Its subject.
    pub subject: String,
    /// Sent (Unix seconds).
    pub sent_at: i64,
    /// From -1 to 1.
    pub value: f32,
    /// `positive`, `neutral` or `negative`.
    pub label: String,
}

/// A record's sentiment: where it stands and where it is going.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    /// The mean of the last five scored emails' values; none before any.
    pub current: Option<f32>,
    /// `positive`, `neutral` or `negative` for `current`.
    pub label: Option<String>,
    /// `current` minus the mean of the five before them; none until there are.
    pub change: Option<f32>,
    /// `improving`, `steady` or `worsening`, from `change`.
    pub trend: Option<String>,
    /// The scored emails the viewer may see, newest first (at most 20).
    pub recent: Vec<ScoredEmail>,
}

fn mean(values: &[f32]) -> Option<f32> {
    (!values.is_empty()).then(|| values.iter().sum::<f32>() / values.len() as f32)
}

/// The label of a value, with the analyser's usual neutral band.
fn label(value: f32) -> &'static str {
    if value >= 0.2 {
        "positive"
    } else if value <= -0.2 {
        "negative"
    } else {
        "neutral"
    }
}

/// `recent` (newest first) summed up.
fn summarise(recent: Vec<ScoredEmail>) -> Summary {
    let values: Vec<f32> = recent.iter().map(|e| e.value).collect();
    let current = mean(&values[..values.len().min(WINDOW)]);
    let before = values
        .get(WINDOW..(2 * WINDOW).min(values.len()))
        .and_then(mean);
    let change = current.zip(before).map(|(c, b)| c - b);
    Summary {
        label: current.map(|c| label(c).to_string()),
        trend: change.map(|d| {
            if d > 0.1 {
                "improving"
            } else if d < -0.1 {
                "worsening"
            } else {
                "steady"
            }
            .to_string()
        }),
        current,
        change,
        recent,
    }
}

/// The sentiment of a contact's or a deal's emails as `viewer` may see
/// them, from accounts that (still) allow sentiment analysis.
pub async fn summary(db: &Db, record: Record, viewer: Id) -> Result<Summary, CrmError> {
    let (table, column, id) = record.link();
    let sql = format!(
        "SELECT m.id, m.subject, m.sent_at, s.value_milli, s.label FROM messages m \
         JOIN message_sentiment s ON s.message_id = m.id WHERE EXISTS (\
           SELECT 1 FROM {table} l JOIN accounts a ON a.id = l.account_id \
           WHERE l.message_id = m.id AND l.{column} = $1 AND a.sentiment = 1 \
           AND (a.owner_id = $2 OR a.visibility = 'public')) \
         ORDER BY m.sent_at DESC, m.id DESC LIMIT 20"
    );
    let recent = sqlx::query(&sql)
        .bind(id)
        .bind(viewer)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(ScoredEmail {
                message_id: r.try_get("id")?,
                subject: r.try_get("subject")?,
                sent_at: r.try_get("sent_at")?,
                value: r.try_get::<i64, _>("value_milli")? as f32 / 1000.0,
                label: r.try_get("label")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(summarise(recent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(values: &[f32]) -> Vec<ScoredEmail> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| ScoredEmail {
                message_id: i as Id,
                subject: String::new(),
                sent_at: 100 - i as i64,
                value: *v,
                label: label(*v).into(),
            })
            .collect()
    }

    #[test]
    fn the_last_five_make_the_current_sentiment_and_the_five_before_the_trend() {
        let s = summarise(scored(&[
            0.8, 0.6, 0.4, 0.6, 0.6, -0.4, -0.2, 0.0, -0.2, -0.2,
        ]));
        assert!((s.current.unwrap() - 0.6).abs() < 1e-6);
        assert_eq!(s.label.as_deref(), Some("positive"));
        assert!((s.change.unwrap() - 0.8).abs() < 1e-6);
        assert_eq!(s.trend.as_deref(), Some("improving"));
    }

    #[test]
    fn few_emails_have_a_current_sentiment_but_no_trend_and_none_have_neither() {
        let s = summarise(scored(&[-0.5, -0.3]));
        assert_eq!(s.label.as_deref(), Some("negative"));
        assert_eq!(s.trend, None);
        let none = summarise(vec![]);
        assert_eq!((none.current, none.label, none.trend), (None, None, None));
    }
}
