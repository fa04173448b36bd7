//! The operator's Mailroom directory: installed plugin files and the cache.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use mailroom_lifecycle::{Lifecycle, Trust};
use mailroom_net::TlsConfig;
use mailroom_runtime::{Registry, Runtime, RuntimeConfig};
use mailroom_store::Db;
use mailroom_vault::Vault;

/// Paths under `MAILROOM_HOME`, and where the database and key are.
pub struct Home {
    root: PathBuf,
    cache: Option<PathBuf>,
    extra_ca: Option<PathBuf>,
    database: Option<String>,
    trust: Trust,
}

impl Home {
    pub fn new(
        root: PathBuf,
        cache: Option<PathBuf>,
        extra_ca: Option<PathBuf>,
        database: Option<String>,
        trust: Trust,
    ) -> Self {
        Home {
            root,
            cache,
            extra_ca,
            database,
            trust,
        }
    }

    /// The database: `MAILROOM_DATABASE_URL`, or a SQLite file in the home.
    pub async fn db(&self) -> anyhow::Result<Db> {
        let url = match &self.database {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(&self.root)
                    .with_context(|| format!("creating {}", self.root.display()))?;
                format!("sqlite:{}", self.root.join("mailroom.db").display())
            }
        };
        Db::open(&url).await.context("MAILROOM_DATABASE_URL")
    }

    /// The sealing key: `MAILROOM_SECRET_KEY` (base64), the file named by
    /// `MAILROOM_SECRET_KEY_FILE`, or `secret.key` in the home, made on first use.
    pub fn vault(&self) -> anyhow::Result<Arc<Vault>> {
        let vault = match (
            std::env::var("MAILROOM_SECRET_KEY"),
            std::env::var_os("MAILROOM_SECRET_KEY_FILE"),
        ) {
            (Ok(key), _) => Vault::from_base64(&key, "MAILROOM_SECRET_KEY")?,
            (_, Some(file)) => Vault::from_file_or_create(&PathBuf::from(file))?,
            _ => Vault::from_file_or_create(&self.root.join("secret.key"))?,
        };
        Ok(Arc::new(vault))
    }

    /// The TLS roots the host trusts: the webpki roots and `MAILROOM_EXTRA_CA`.
    pub fn tls(&self) -> anyhow::Result<TlsConfig> {
        TlsConfig::new(self.extra_ca.as_deref()).context("MAILROOM_EXTRA_CA")
    }

    /// Which plugin and analyser signatures this host trusts.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Where the operator's sentiment analyser is kept when not named otherwise.
    pub fn analyzer_file(&self) -> PathBuf {
        self.root.join("analyzer.wasm")
    }

    /// Where installed plugin files live, one `NAME.wasm` each.
    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// A runtime with the compiled-component cache under this home.
    pub fn runtime(&self) -> anyhow::Result<Arc<Runtime>> {
        Ok(Runtime::new(RuntimeConfig {
            cache_dir: Some(
                self.cache
                    .clone()
                    .unwrap_or_else(|| self.root.join("cache")),
            ),
            extra_ca: self.extra_ca.clone(),
            ..RuntimeConfig::default()
        })?)
    }

    /// The installed plugins' lifecycle, with a registry holding every
    /// plugin of the plugins directory. A file that does not load is
    /// reported and skipped; the others are served.
    pub async fn lifecycle(&self) -> anyhow::Result<Arc<Lifecycle>> {
        let registry = Arc::new(Registry::new(self.runtime()?));
        let lifecycle = Arc::new(Lifecycle::new(
            self.plugins_dir(),
            registry,
            self.db().await?,
            self.trust.clone(),
        ));
        for line in lifecycle.converge().await {
            if line.starts_with("skipping") {
                eprintln!("mailroom: {line}");
            }
        }
        Ok(lifecycle)
    }

    /// A registry holding every installed plugin (see [`Home::lifecycle`]).
    pub async fn registry(&self) -> anyhow::Result<Arc<Registry>> {
        Ok(self.lifecycle().await?.registry().clone())
    }
}
