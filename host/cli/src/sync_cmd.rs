//! `mailroom sync`: run every due account once, then print where each stands.
//! Also the engine options `serve` shares.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use mailroom_crm::accounts;
use mailroom_oauth::{OAuth, Provider, ProviderConfig, google, microsoft};
use mailroom_policy::Origin;
use mailroom_runtime::{OperatorGrant, Secret};
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
    /// Allow secrets over unencrypted connections (plain IMAP/SMTP), for every plugin.
    #[arg(long, env = "MAILROOM_PLAINTEXT_CREDENTIALS")]
    pub plaintext_credentials: bool,
    /// What one plugin is granted beyond what every plugin is:
    /// `PLUGIN:private=CIDR`, `PLUGIN:plaintext`, `PLUGIN:host=NAME` or
    /// `PLUGIN:host=*.DOMAIN` (the only hosts its endpoints may name),
    /// `PLUGIN:endpoint=TEMPLATE`; repeat or comma-separate.
    #[arg(
        long = "grant",
        env = "MAILROOM_GRANT",
        value_delimiter = ',',
        value_name = "PLUGIN:KEY[=VALUE]"
    )]
    pub grants: Vec<String>,
    /// Serve a declared HTTP origin from another base URL (a proxy, or an
    /// emulator in tests): `https://gmail.googleapis.com=http://127.0.0.1:9000`.
    /// Plugins still name, and are checked against, the declared origin.
    #[arg(
        long = "base-url",
        env = "MAILROOM_BASE_URLS",
        value_delimiter = ',',
        value_name = "ORIGIN=BASE_URL"
    )]
    pub base_urls: Vec<Origin>,
    #[command(flatten)]
    pub oauth: OAuthArgs,
}

/// OAuth sign-in for Gmail accounts (an OAuth client, "web application", of
/// the operator's Google Cloud project, whose redirect URI is
/// `<public URL>/oauth/gmail/callback`) and Microsoft 365 accounts (an app
/// registration on the Microsoft identity platform).
#[derive(Args, Debug, Clone)]
pub struct OAuthArgs {
    /// The OAuth client id; without it Gmail accounts cannot be connected.
    #[arg(long, env = "MAILROOM_GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,
    /// The OAuth client secret (prefer the environment variable to the flag).
    #[arg(long, env = "MAILROOM_GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<String>,
    /// Google's consent page.
    #[arg(long, env = "MAILROOM_GOOGLE_AUTHORIZE_URL", default_value = google::AUTHORIZE_URL)]
    pub google_authorize_url: String,
    /// Google's token endpoint.
    #[arg(long, env = "MAILROOM_GOOGLE_TOKEN_URL", default_value = google::TOKEN_URL)]
    pub google_token_url: String,
    /// Google's revocation endpoint.
    #[arg(long, env = "MAILROOM_GOOGLE_REVOKE_URL", default_value = google::REVOKE_URL)]
    pub google_revoke_url: String,
    /// The host's address as users' browsers reach it (the OAuth callbacks
    /// are under it); default: the address `serve` listens on.
    #[arg(long, env = "MAILROOM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The Microsoft identity platform application (client) id for Microsoft
    /// 365 accounts; without it they cannot be connected. Its redirect URI is
    /// `<public URL>/oauth/microsoft365/callback`.
    #[arg(long, env = "MAILROOM_MICROSOFT_CLIENT_ID")]
    pub microsoft_client_id: Option<String>,
    /// The application's client secret (prefer the environment variable to the flag).
    #[arg(long, env = "MAILROOM_MICROSOFT_CLIENT_SECRET", hide_env_values = true)]
    pub microsoft_client_secret: Option<String>,
    /// The authority: `https://login.microsoftonline.com/<tenant>`.
    #[arg(long, env = "MAILROOM_MICROSOFT_AUTHORITY", default_value = microsoft::AUTHORITY)]
    pub microsoft_authority: String,
}

/// One provider's client, as the operator gave it.
struct Client<'a> {
    plugin: &'static str,
    id: &'a Option<String>,
    secret: &'a Option<String>,
    secret_variable: &'static str,
    authorize_url: String,
    token_url: String,
    revoke_url: Option<String>,
    scopes: &'static [&'static str],
}

impl OAuthArgs {
    /// The OAuth providers configured; none without client ids.
    fn providers(&self, home: &Home, listen: &str) -> anyhow::Result<OAuth> {
        let public = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        let clients = [
            Client {
                plugin: "gmail",
                id: &self.google_client_id,
                secret: &self.google_client_secret,
                secret_variable: "MAILROOM_GOOGLE_CLIENT_SECRET",
                authorize_url: self.google_authorize_url.clone(),
                token_url: self.google_token_url.clone(),
                revoke_url: Some(self.google_revoke_url.clone()),
                scopes: google::SCOPES,
            },
            Client {
                plugin: "microsoft365",
                id: &self.microsoft_client_id,
                secret: &self.microsoft_client_secret,
                secret_variable: "MAILROOM_MICROSOFT_CLIENT_SECRET",
                authorize_url: microsoft::authorize_url(&self.microsoft_authority),
                token_url: microsoft::token_url(&self.microsoft_authority),
                revoke_url: None,
                scopes: microsoft::SCOPES,
            },
        ];
        let mut providers = Vec::new();
        for c in clients {
            let Some(client_id) = c.id.clone() else {
                continue;
            };
            let secret = c
                .secret
                .clone()
                .with_context(|| format!("{} is required with its client id", c.secret_variable))?;
            let config = ProviderConfig {
                plugin: c.plugin.into(),
                token_field: "access_token".into(),
                client_id,
                client_secret: Secret::new(secret),
                authorize_url: c.authorize_url,
                token_url: c.token_url,
                revoke_url: c.revoke_url,
                scopes: c.scopes.iter().map(|s| s.to_string()).collect(),
                redirect_url: format!(
                    "{}/oauth/{}/callback",
                    public.trim_end_matches('/'),
                    c.plugin
                ),
            };
            providers.push(Provider::new(config, &home.tls()?)?);
        }
        Ok(OAuth::new(providers))
    }
}

impl EngineArgs {
    /// The operator's grant: what every plugin gets, and each plugin's own.
    pub fn grant(&self) -> anyhow::Result<OperatorGrant> {
        let mut grant = OperatorGrant {
            private_networks: self.grant_private.clone(),
            plaintext_credentials: self.plaintext_credentials,
            origins: self.base_urls.clone(),
            ..OperatorGrant::default()
        };
        for item in &self.grants {
            grant
                .add(item)
                .map_err(|why| anyhow::anyhow!("MAILROOM_GRANT {why}"))?;
        }
        Ok(grant)
    }

    /// The engine's configuration; `listen` is where `serve` listens (the
    /// default public URL).
    pub fn config(&self, home: &Home, listen: &str) -> anyhow::Result<EngineConfig> {
        let defaults = EngineConfig::default();
        Ok(EngineConfig {
            node: self.node.clone().unwrap_or(defaults.node.clone()),
            lease: Duration::from_secs(self.lease_seconds.max(1)),
            interval: Duration::from_secs(self.interval_seconds.max(1)),
            backoff_base: Duration::from_secs(self.retry_seconds.max(1)),
            grant: self.grant()?,
            oauth: Arc::new(self.oauth.providers(home, listen)?),
            ..defaults
        })
    }
}

pub async fn run(home: &Home, args: &EngineArgs) -> anyhow::Result<()> {
    let db = home.db().await?;
    let vault = home.vault()?;
    let registry = home.registry().await?;
    let engine = Engine::new(
        db.clone(),
        vault,
        registry,
        args.config(home, "127.0.0.1:8080")?,
    );
    let runs = engine.run_until_idle().await?;
    println!("{runs} account runs");
    for id in accounts::all_ids(&db).await? {
        if let Some(s) = status(&db, id).await? {
            println!("account {id}: {}", s.text);
        }
    }
    Ok(())
}
