//! The installed plugins by name, each swapped atomically to a new version.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::engine::Runtime;
use crate::error::LoadError;
use crate::plugin::Plugin;

/// Plugins by name. Reads are cheap and never wait on a load: a new version
/// is compiled and checked first, then put in place in one step. A run that
/// already holds the old `Arc<Plugin>` finishes on it.
pub struct Registry {
    runtime: Arc<Runtime>,
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
}

impl Registry {
    /// An empty registry over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Registry {
            runtime,
            plugins: RwLock::new(BTreeMap::new()),
        }
    }

    /// The runtime plugins run in.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Compile and check `bytes` off the calling task, then make it the
    /// current version of the plugin it names. Returns the new version and
    /// the one it replaced.
    pub async fn install(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(Arc<Plugin>, Option<Arc<Plugin>>), LoadError> {
        let runtime = self.runtime.clone();
        let plugin = tokio::task::spawn_blocking(move || {
            tokio::runtime::Handle::current().block_on(async move { runtime.load(&bytes).await })
        })
        .await
        .map_err(|e| LoadError::Engine(format!("loader task failed: {e}")))??;
        let mut plugins = self
            .plugins
            .write()
            .map_err(|_| LoadError::Engine("registry lock poisoned".into()))?;
        let previous = plugins.insert(plugin.name().to_string(), plugin.clone());
        drop(plugins);
        tracing::info!(
            plugin = %plugin.name(),
            version = %plugin.version(),
            digest = %plugin.description().digest,
            previous = previous.as_ref().map(|p| p.version()).unwrap_or("none"),
            "plugin installed"
        );
        Ok((plugin, previous))
    }

    /// The current version of a plugin.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins.read().ok()?.get(name).cloned()
    }

    /// Every installed plugin, by name.
    pub fn list(&self) -> Vec<Arc<Plugin>> {
        self.plugins
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// Keep a plugin's component file as `NAME.wasm` in `dir` (the operator's
/// installed plugins, loaded again at start), replacing the file of the
/// same name in one step: a reader sees the old file or the new, never half.
pub fn keep_plugin_file(
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(format!("{name}.wasm"));
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &target)?;
    Ok(target)
}
