//! `mailroom-sync`: drives provider plugins through each account's sync.
//!
//! Per account, at most one worker at a time (a lease row with an expiry,
//! so a dead host's work is taken over). A run opens the plugin, re-links
//! the account's mail when contacts or deals changed, then pulls pages:
//! backfill of the last 365 days newest first, then incremental sync on a
//! schedule. Each page's messages, links, failures and the new cursor are
//! written in one transaction, so a crash anywhere resumes from the last
//! committed cursor with nothing lost or doubled. Typed plugin errors become
//! statuses and retry times. Owns `sync_state`; writes mail only through
//! `mailroom_crm::messages`.

mod backoff;
mod engine;
mod start;
mod state;

pub use engine::{Clock, Engine, EngineConfig, SyncError};
pub use start::{Renew, StartError, Starter};
pub use state::{Phase, SyncStatus, schedule_now, status};
