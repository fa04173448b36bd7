//! Compiled components on disk, keyed by the component's content hash and
//! the engine's configuration, so a restart or a second load of the same
//! plugin skips compilation.
//!
//! The cache directory must be writable by the host only: a compiled
//! component is native code and is loaded as such.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::LoadError;

pub(crate) struct Cache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into SHA-256, for a hash that is stable across runs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl Cache {
    pub(crate) fn open(dir: PathBuf, engine: &Engine) -> Result<Self, LoadError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| LoadError::Cache(format!("{}: {e}", dir.display())))?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Cache { dir, engine_key })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `bytes`, from the cache or compiled now (and cached).
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<Component, LoadError> {
        let path = self.path(digest);
        // Read into memory rather than map the file: a cache file changed in
        // place under a mapping would bring the host down (SIGBUS).
        if let Ok(cached) = std::fs::read(&path) {
            // SAFETY: the file was written by `store` below from wasmtime's own
            // precompilation for this engine configuration (the key is in the
            // name), in a directory only the host writes; wasmtime also checks
            // that it was compiled by a compatible engine.
            match unsafe { Component::deserialize(engine, &cached) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "recompiling: cached component unusable: {e}")
                }
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| LoadError::Compile(first_line(&e)))?;
        store(&path, &compiled)?;
        // SAFETY: `compiled` was produced by this engine just now.
        unsafe { Component::deserialize(engine, &compiled) }
            .map_err(|e| LoadError::Compile(first_line(&e)))
    }
}

fn store(path: &Path, compiled: &[u8]) -> Result<(), LoadError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, compiled)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| LoadError::Cache(format!("{}: {e}", path.display())))
}

pub(crate) fn first_line(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    text.lines().next().unwrap_or_default().to_string()
}
