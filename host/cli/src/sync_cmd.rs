//! `mailroom sync`: run every due account once, then print where each stands.
//! Also the engine options `serve` shares.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use mailroom_crm::accounts;
use mailroom_runtime::OperatorGrant;
use mailroom_sync::{Engine, EngineConfig, status};

use crate::home::Home;

/// How the engine runs and what plugins are granted.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// This host's name in account leases; unique among hosts sharing a database.
    /// A host restarted under the same name takes its leases back at once.
    #[arg(long, env = "MAILROOM_NODE")]
    pub node: Option<String>,
    /// Seconds a lease lasts without renewal (it is renewed with every page).
    #[arg(long, env = "MAILROOM_LEASE_SECONDS", default_value_t = 600)]
    pub lease_seconds: u64,
    /// Seconds between incremental syncs of an up-to-date account.
    #[arg(long, env = "MAILROOM_SYNC_INTERVAL", default_value_t = 300)]
    pub interval_seconds: u64,
    /// Seconds before the first retry of an account whose sync failed for a
    /// transient reason (doubling, with jitter, up to an hour).
    #[arg(long, env = "MAILROOM_RETRY_SECONDS", default_value_t = 30)]
    pub retry_seconds: u64,
    /// Accounts synced in parallel.
    #[arg(long, env = "MAILROOM_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Private networks plugins may reach (CIDR; repeat or comma-separate).
    #[arg(long, env = "MAILROOM_GRANT_PRIVATE", value_delimiter = ',')]
    pub grant_private: Vec<IpNet>,
    /// Allow secrets over unencrypted connections (plain IMAP/SMTP).
    #[arg(long, env = "MAILROOM_PLAINTEXT_CREDENTIALS")]
    pub plaintext_credentials: bool,
}

impl EngineArgs {
    pub fn config(&self) -> anyhow::Result<EngineConfig> {
        let defaults = EngineConfig::default();
        Ok(EngineConfig {
            node: self.node.clone().unwrap_or(defaults.node.clone()),
            lease: Duration::from_secs(self.lease_seconds.max(1)),
            interval: Duration::from_secs(self.interval_seconds.max(1)),
            backoff_base: Duration::from_secs(self.retry_seconds.max(1)),
            grant: OperatorGrant {
                endpoints: None,
                private_networks: self.grant_private.clone(),
                plaintext_credentials: self.plaintext_credentials,
            },
            ..defaults
        })
    }
}

pub async fn run(home: &Home, args: &EngineArgs) -> anyhow::Result<()> {
    let db = home.db().await?;
    let vault = home.vault()?;
    let registry = Arc::new(home.registry().await?);
    let engine = Engine::new(db.clone(), vault, registry, args.config()?);
    let runs = engine.run_until_idle().await?;
    println!("{runs} account runs");
    for id in accounts::all_ids(&db).await? {
        if let Some(s) = status(&db, id).await? {
            println!("account {id}: {}", s.text);
        }
    }
    Ok(())
}
