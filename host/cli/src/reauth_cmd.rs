//! `mailroom reauth`: require the accounts of a provider connected before a
//! date to sign in again by a deadline, and list such campaigns.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate};
use clap::Subcommand;
use mailroom_crm::campaigns::{self, NewCampaign};

use crate::home::Home;

#[derive(Subcommand)]
pub enum ReauthCommand {
    /// Begin a campaign: owners see a notice until the deadline; accounts not
    /// re-authorised by then stop syncing until they are.
    Require {
        /// The provider plugin (`microsoft365`, `imap`, …).
        #[arg(long)]
        provider: String,
        /// Accounts connected before this date (YYYY-MM-DD, UTC, or RFC 3339).
        #[arg(long, value_parser = parse_time)]
        connected_before: i64,
        /// The deadline (YYYY-MM-DD, UTC, or RFC 3339).
        #[arg(long, value_parser = parse_time)]
        deadline: i64,
    },
    /// Every campaign, newest first.
    List,
}

/// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time, as Unix seconds.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
        .ok_or_else(|| format!("`{text}` is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

fn show(t: i64) -> String {
    DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.to_rfc3339())
}

pub async fn run(home: &Home, command: ReauthCommand) -> anyhow::Result<ExitCode> {
    let db = home.db().await?;
    match command {
        ReauthCommand::Require {
            provider,
            connected_before,
            deadline,
        } => {
            let new = NewCampaign {
                provider,
                connected_before,
                deadline,
            };
            let c = campaigns::create(&db, &new)
                .await
                .context("beginning the campaign")?;
            println!(
                "campaign {}: {} accounts connected before {} must re-authorise by {}",
                c.id,
                c.provider,
                show(c.connected_before),
                show(c.deadline)
            );
        }
        ReauthCommand::List => {
            for c in campaigns::list(&db).await? {
                println!(
                    "{}\t{}\tconnected before {}\tdeadline {}",
                    c.id,
                    c.provider,
                    show(c.connected_before),
                    show(c.deadline)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse() {
        assert_eq!(parse_time("2024-10-01"), Ok(1_727_740_800));
        assert_eq!(parse_time("2024-10-01T02:00:00+02:00"), Ok(1_727_740_800));
        assert!(parse_time("1 October").is_err());
    }
}
