//! Sending one message from a connected account through its plugin.

use mailroom_crm::CrmError;
use mailroom_crm::accounts::Account;
use mailroom_mail::Composed;
use mailroom_runtime::{CallError, Outgoing, ProviderError};
use mailroom_sync::{Renew, StartError, schedule_now};

use crate::Outbound;

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The account's plugin is not installed.
    #[error("the `{0}` plugin is not installed")]
    NoPlugin(String),
    /// The account's credentials could not be read.
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// The plugin could not start, or its `send` failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl SendError {
    /// Whether trying again later may succeed: the server was unreachable or
    /// busy, or the run failed in a way a new run does not repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::NoPlugin(_) | SendError::Crm(_) => false,
            SendError::Call(CallError::Provider(p)) => matches!(
                p,
                ProviderError::Unreachable(_)
                    | ProviderError::RateLimited(_)
                    | ProviderError::Other(_)
            ),
            SendError::Call(
                CallError::Timeout(_) | CallError::Crashed(_) | CallError::Ended(_),
            ) => true,
            SendError::Call(_) => false,
        }
    }
}

impl From<StartError> for SendError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Crm(e) => SendError::Crm(e),
            StartError::Call(e) => SendError::Call(e),
        }
    }
}

/// What was sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The Message-ID it went out with.
    pub message_id: String,
    /// The provider's id of the saved copy, where it told it.
    pub provider_id: Option<String>,
}

impl Outbound {
    /// Send `composed` from `account` to `recipients` through its plugin,
    /// then sync the account at once so that the sent copy reaches the timelines.
    pub async fn send(
        &self,
        account: &Account,
        recipients: &[String],
        composed: &Composed,
    ) -> Result<Sent, SendError> {
        let plugin = self
            .registry
            .get(&account.provider)
            .ok_or_else(|| SendError::NoPlugin(account.provider.clone()))?;
        let outgoing = Outgoing {
            sender: account.address.clone(),
            recipients: recipients.to_vec(),
            raw: composed.raw.clone(),
        };
        let mut run = self
            .starter()
            .start(account, &plugin, Renew::IfExpiring)
            .await?;
        let provider_id = run.send(&outgoing).await?;
        let _ = run.close().await;
        schedule_now(&self.db, account.id)
            .await
            .map_err(CrmError::from)?;
        Ok(Sent {
            message_id: composed.message_id.clone(),
            provider_id,
        })
    }
}
