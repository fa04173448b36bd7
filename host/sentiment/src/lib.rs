//! `mailroom-sentiment`: scoring stored mail with the operator's sentiment
//! analyser, a `mailroom:analyzer` component (`wit/analyzer/`) run by
//! `mailroom-runtime` in a sandbox that grants nothing.
//!
//! [`Scorer::score_pending`] takes the emails `mailroom_crm::sentiment`
//! says are to be scored (from a contact on an open deal, in an account
//! that allows it), newest first, has the analyser score them, and records
//! the scores there. `mailroom serve` runs it every few seconds, so an
//! account whose owner turns sentiment on has its stored mail scored in the
//! background, and new mail is scored as it arrives. What may be scored,
//! and who sees the scores, is the CRM's rule, not this crate's.

use std::sync::Arc;

use mailroom_crm::CrmError;
use mailroom_crm::sentiment::{self, Scored};
use mailroom_runtime::{Analyzer, CallError, Runtime};
use mailroom_store::Db;

/// Why a scoring pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum SentimentError {
    /// Reading or writing the CRM failed.
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// The analyser failed (it trapped, timed out or gave a value out of range).
    #[error("the sentiment analyser failed: {0}")]
    Analyzer(#[from] CallError),
}

/// Scores pending mail with one analyser.
pub struct Scorer {
    db: Db,
    runtime: Arc<Runtime>,
    analyzer: Arc<Analyzer>,
}

impl Scorer {
    /// A scorer over `db` with `analyzer`, run in `runtime`.
    pub fn new(db: Db, runtime: Arc<Runtime>, analyzer: Arc<Analyzer>) -> Self {
        Scorer {
            db,
            runtime,
            analyzer,
        }
    }

    /// Score one batch of pending emails; how many were scored (0 when none wait).
    pub async fn score_pending(&self) -> Result<usize, SentimentError> {
        let pending = sentiment::pending(&self.db, sentiment::BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let texts: Vec<(String, Option<String>)> = pending
            .iter()
            .map(|(_, body)| (body.clone(), None))
            .collect();
        let scores = self.analyzer.analyze(&self.runtime, &texts).await?;
        let scored: Vec<Scored> = pending
            .iter()
            .zip(scores)
            .map(|((id, _), s)| Scored {
                message_id: *id,
                value: s.value,
                label: s.label.as_str().to_string(),
            })
            .collect();
        let info = self.analyzer.info();
        sentiment::record(
            &self.db,
            &format!("{} {}", info.name, info.version),
            &scored,
        )
        .await?;
        Ok(scored.len())
    }

    /// Score whatever is pending, batch after batch, every `every`; errors
    /// are logged and the pass tried again next time.
    pub async fn run(self, every: std::time::Duration) {
        loop {
            match self.score_pending().await {
                Ok(n) if n > 0 => {
                    tracing::debug!(scored = n, "sentiment scored");
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sentiment scoring failed"),
            }
            tokio::time::sleep(every).await;
        }
    }
}
