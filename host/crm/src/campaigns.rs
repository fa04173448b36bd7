//! Re-authorisation campaigns: the operator requires the accounts of one
//! provider connected before a date to sign in again by a deadline (as the
//! reference product did for Microsoft accounts in 2024). Owns
//! `reauth_campaigns`.
//!
//! An account is **due** under a campaign when it is of the campaign's
//! provider, was connected before `connected_before`, and its credentials
//! have not been set since the campaign began; setting them ("Update
//! authentication") clears it. Until the deadline a due account keeps
//! syncing and its owner sees the notice; from the deadline the sync engine
//! stops it (`reauth_required`) until the owner re-authorises. This module
//! decides who is due; it does not schedule anything or read a clock.

use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, next_id, unix_now};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::Account;
use crate::{CrmError, Id};

/// A campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Campaign {
    /// Id.
    pub id: Id,
    /// The provider plugin whose accounts it concerns (`microsoft365`).
    pub provider: String,
    /// Accounts connected before this time (Unix seconds) must re-authorise.
    pub connected_before: i64,
    /// By this time (Unix seconds); after it, the rest stop syncing.
    pub deadline: i64,
    /// When the operator began it (Unix seconds); credentials set since clear an account.
    pub created_at: i64,
}

/// A campaign to begin.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The provider plugin's name.
    pub provider: String,
    /// Accounts connected before this time (Unix seconds) must re-authorise.
    pub connected_before: i64,
    /// The deadline (Unix seconds).
    pub deadline: i64,
}

/// What an account's owner is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Notice {
    /// The campaign.
    pub campaign_id: Id,
    /// Re-authorise by this time (Unix seconds).
    pub deadline: i64,
    /// In words.
    pub message: String,
}

/// Begin a campaign.
pub async fn create(db: &Db, new: &NewCampaign) -> Result<Campaign, CrmError> {
    let provider = new.provider.trim();
    if provider.is_empty() {
        return Err(CrmError::invalid("provider", "is required"));
    }
    if new.deadline <= new.connected_before {
        return Err(CrmError::invalid(
            "deadline",
            "must come after `connected_before`",
        ));
    }
    let campaign = Campaign {
        id: next_id(),
        provider: provider.to_string(),
        connected_before: new.connected_before,
        deadline: new.deadline,
        created_at: unix_now(),
    };
    sqlx::query(
        "INSERT INTO reauth_campaigns (id, provider, connected_before, deadline, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(campaign.id)
    .bind(&campaign.provider)
    .bind(campaign.connected_before)
    .bind(campaign.deadline)
    .bind(campaign.created_at)
    .execute(db.pool())
    .await?;
    Ok(campaign)
}

/// Every campaign, newest first.
pub async fn list(db: &Db) -> Result<Vec<Campaign>, CrmError> {
    let rows = sqlx::query(
        "SELECT id, provider, connected_before, deadline, created_at FROM reauth_campaigns \
         ORDER BY created_at DESC, id DESC",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Campaign {
                id: r.try_get("id")?,
                provider: r.try_get("provider")?,
                connected_before: r.try_get("connected_before")?,
                deadline: r.try_get("deadline")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Whether `account` is due under `campaign`.
pub fn is_due(campaign: &Campaign, account: &Account) -> bool {
    campaign.provider == account.provider
        && account.created_at < campaign.connected_before
        && account.credentials_updated_at <= campaign.created_at
}

/// The notice for an account: the campaign with the earliest deadline it is due under.
pub async fn notice(db: &Db, account: &Account) -> Result<Option<Notice>, CrmError> {
    let due = list(db)
        .await?
        .into_iter()
        .filter(|c| is_due(c, account))
        .min_by_key(|c| c.deadline);
    Ok(due.map(|c| Notice {
        campaign_id: c.id,
        deadline: c.deadline,
        message: format!(
            "re-authorise this account by {} to avoid an interruption: use \"Update authentication\"",
            httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.deadline.max(0) as u64)
            )
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{Scope, Visibility};

    fn account(created_at: i64, credentials_updated_at: i64) -> Account {
        Account {
            id: 1,
            owner_id: 1,
            provider: "microsoft365".into(),
            address: "a@x.test".into(),
            created_at,
            scope: Scope::default(),
            visibility: Visibility::default(),
            sentiment: false,
            preferred: false,
            settings: Default::default(),
            secret_names: vec![],
            credentials_updated_at,
        }
    }

    #[test]
    fn an_account_is_due_until_it_signs_in_again() {
        let c = Campaign {
            id: 9,
            provider: "microsoft365".into(),
            connected_before: 1_000,
            deadline: 5_000,
            created_at: 2_000,
        };
        assert!(
            is_due(&c, &account(500, 500)),
            "connected before, not re-authorised"
        );
        assert!(
            !is_due(&c, &account(500, 2_001)),
            "re-authorised since the campaign"
        );
        assert!(
            is_due(&c, &account(500, 2_000)),
            "within the second it began is not since"
        );
        assert!(
            !is_due(&c, &account(1_500, 1_500)),
            "connected after the date"
        );
        let other = Campaign {
            provider: "gmail".into(),
            ..c
        };
        assert!(!is_due(&other, &account(500, 500)), "another provider");
    }
}
