//! The operator's Mailroom directory: installed plugin files and the cache.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use mailroom_runtime::{Registry, Runtime, RuntimeConfig};

/// Paths under `MAILROOM_HOME`.
pub struct Home {
    root: PathBuf,
    cache: Option<PathBuf>,
    extra_ca: Option<PathBuf>,
}

impl Home {
    pub fn new(root: PathBuf, cache: Option<PathBuf>, extra_ca: Option<PathBuf>) -> Self {
        Home {
            root,
            cache,
            extra_ca,
        }
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

    /// A registry holding every installed plugin. A file that no longer loads
    /// is reported and skipped; the others are served.
    pub async fn registry(&self) -> anyhow::Result<Registry> {
        let registry = Registry::new(self.runtime()?);
        let dir = self.plugins_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(registry);
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        for path in files {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            if let Err(e) = registry.install(bytes).await {
                eprintln!("mailroom: skipping {}: {e}", path.display());
            }
        }
        Ok(registry)
    }
}
