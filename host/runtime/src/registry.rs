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
        let previous = self.put(plugin.clone())?;
        tracing::info!(
            plugin = %plugin.name(),
            version = %plugin.version(),
            digest = %plugin.description().digest,
            previous = previous.as_ref().map(|p| p.version()).unwrap_or("none"),
            "plugin installed"
        );
        Ok((plugin, previous))
    }

    /// Make a loaded plugin the current version of its name, in one step;
    /// the version it replaced.
    pub fn put(&self, plugin: Arc<Plugin>) -> Result<Option<Arc<Plugin>>, LoadError> {
        let mut plugins = self
            .plugins
            .write()
            .map_err(|_| LoadError::Engine("registry lock poisoned".into()))?;
        Ok(plugins.insert(plugin.name().to_string(), plugin))
    }

    /// Stop offering a plugin; runs under way finish on it. The version removed.
    pub fn remove(&self, name: &str) -> Result<Option<Arc<Plugin>>, LoadError> {
        let mut plugins = self
            .plugins
            .write()
            .map_err(|_| LoadError::Engine("registry lock poisoned".into()))?;
        Ok(plugins.remove(name))
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
