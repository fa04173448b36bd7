//! Starting a plugin run for a stored account: its settings, and its secrets
//! opened from the vault — without the host-only ones, and with a fresh
//! access token where the account signs in with OAuth (renewed here when it
//! is about to expire, and stored back sealed). Used by sync runs and by
//! sending. A refresh token the provider no longer accepts becomes the
//! plugin contract's `auth-failed`, so the account waits for its owner.

use mailroom_crm::CrmError;
use mailroom_crm::accounts::{self, Account};
use mailroom_oauth::{OAuth, OAuthError};
use mailroom_runtime::{
    AccountInput, CallError, OperatorGrant, Plugin, ProviderError, Registry, Run, Secret, Secrets,
};
use mailroom_store::Db;
use mailroom_vault::Vault;

/// Why a plugin run for an account could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The account's sealed credentials could not be read or stored.
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// The plugin could not be started for it, or its sign-in could not be renewed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// When to renew an OAuth access token before a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renew {
    /// Only when it expires within minutes.
    IfExpiring,
    /// Now (the provider refused the current one).
    Now,
}

/// What starting a run for a stored account needs.
pub struct Starter<'a> {
    /// The database.
    pub db: &'a Db,
    /// The sealing key.
    pub vault: &'a Vault,
    /// The installed plugins.
    pub registry: &'a Registry,
    /// What the operator grants plugins.
    pub grant: &'a OperatorGrant,
    /// The OAuth providers.
    pub oauth: &'a OAuth,
}

impl Starter<'_> {
    /// Start a run of `plugin` for `account`.
    pub async fn start(
        &self,
        account: &Account,
        plugin: &Plugin,
        renew: Renew,
    ) -> Result<Run, StartError> {
        let input = AccountInput {
            id: account.id.to_string(),
            address: account.address.clone(),
            settings: account.settings.clone(),
            secrets: self.secrets(account, renew).await?,
        };
        Ok(self
            .registry
            .runtime()
            .start(plugin, &input, self.grant)
            .await?)
    }

    /// The secrets a plugin may name, renewing the OAuth access token first
    /// where needed.
    async fn secrets(&self, account: &Account, renew: Renew) -> Result<Secrets, StartError> {
        let mut stored = accounts::secrets(self.db, self.vault, account.id).await?;
        let provider = self.oauth.for_plugin(&account.provider);
        let due = mailroom_oauth::stored(&stored).and_then(|tokens| {
            (renew == Renew::Now || mailroom_oauth::needs_refresh(&tokens))
                .then(|| Secret::new(tokens.refresh))
        });
        if let (Some(provider), Some(refresh)) = (provider, due) {
            let fresh = provider.refresh(&refresh).await.map_err(|e| {
                let error = match e {
                    OAuthError::Revoked(why) => ProviderError::AuthFailed(format!(
                        "the provider no longer accepts the account's sign-in ({why}); sign in again"
                    )),
                    OAuthError::Unreachable(why) => ProviderError::Unreachable(format!(
                        "renewing the sign-in: the provider could not be reached ({why})"
                    )),
                    other => ProviderError::Other(format!("renewing the sign-in: {other}")),
                };
                CallError::Provider(error)
            })?;
            mailroom_oauth::store(&mut stored, &provider.config().token_field, &fresh);
            let kept = accounts::store_renewed_secrets(
                self.db,
                self.vault,
                account.id,
                &stored,
                account.credentials_updated_at,
            )
            .await?;
            if !kept {
                // The owner signed in again meanwhile: use what they stored.
                stored = accounts::secrets(self.db, self.vault, account.id).await?;
            }
            tracing::info!("renewed the account's OAuth access token");
        }
        let mut secrets = Secrets::new();
        for (name, value) in stored {
            if !mailroom_oauth::is_host_only(&name) {
                secrets.insert(name, Secret::new(value));
            }
        }
        Ok(secrets)
    }
}
