//! `mailroom-outbound`: mail that leaves through a connected account.
//!
//! - [`Outbound::send`]: one composed message through the account's plugin
//!   (its `send`), the account synced at once so that the sent copy reaches
//!   the contact's and the deal's timelines like any other mail.
//! - [`Outbound::send_email`]: the automation action "Send a personalized
//!   email" — personalisation [`tags`], the sender rules (one of the
//!   caller's addresses, or `%deal_owner_email%`: the deal owner's preferred
//!   account), an idempotency key per email, and retries with backoff for
//!   transient failures ([`Outbound::retry_due`], run by `mailroom serve`).
//!
//! It owns `automation_sends`. It reads users, contacts, deals and accounts
//! through `mailroom-crm` and starts plugin runs through `mailroom-sync`'s
//! `Starter`; it stores no mail itself (the sync does, when the sent copy
//! comes back).

mod automation;
mod send;
pub mod tags;

use std::sync::Arc;
use std::time::Duration;

use mailroom_crm::CrmError;
use mailroom_oauth::OAuth;
use mailroom_runtime::{OperatorGrant, Registry};
use mailroom_store::Db;
use mailroom_sync::Starter;
use mailroom_vault::Vault;

pub use automation::{AutomatedEmail, DEAL_OWNER, MAX_ATTEMPTS, SendEmail, Status};
pub use send::{SendError, Sent};

/// What sending needs: the stores, the plugins and the operator's settings.
#[derive(Clone)]
pub struct Outbound {
    /// The database.
    pub db: Db,
    /// The sealing key.
    pub vault: Arc<Vault>,
    /// The installed plugins.
    pub registry: Arc<Registry>,
    /// What the operator grants plugins.
    pub grant: OperatorGrant,
    /// The OAuth providers.
    pub oauth: Arc<OAuth>,
    /// The first retry's delay; each next one doubles, up to an hour.
    pub retry_base: Duration,
}

impl Outbound {
    fn starter(&self) -> Starter<'_> {
        Starter {
            db: &self.db,
            vault: &self.vault,
            registry: &self.registry,
            grant: &self.grant,
            oauth: &self.oauth,
        }
    }
}

/// Why an automated email was refused (a send that fails later is not an
/// error of the request: it is recorded on the email).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The request breaks a rule: names the field and what to do.
    #[error("{field}: {why}")]
    Invalid {
        /// The field, as the API names it.
        field: String,
        /// What is wrong, and what to set.
        why: String,
    },
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The idempotency key was used for another email.
    #[error("{0}")]
    Conflict(String),
    /// No automated email has this key (for this caller).
    #[error("no automated email with idempotency key `{0}`")]
    NotFound(String),
    /// Reading the CRM failed (or a record it names does not exist).
    #[error(transparent)]
    Crm(#[from] CrmError),
}
