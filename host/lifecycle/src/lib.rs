//! `mailroom-lifecycle`: the installed plugins over time.
//!
//! The plugins directory (`$MAILROOM_HOME/plugins`) is the one truth:
//! `NAME.wasm` is the current version of each plugin, and every version ever
//! installed is kept as `.versions/NAME/<sha256>.wasm`, so that any can be
//! rolled back to. [`Lifecycle`] installs (or upgrades), rolls back and
//! removes — each checked first, written to the directory in one step,
//! swapped into the running [`Registry`] at once, and recorded in
//! `plugin_changes` (which this crate owns): who, when, from which version
//! and digest to which. [`Lifecycle::converge`] brings a running host's
//! registry to what the directory says, so that a change made by another
//! process (`mailroom plugin install` beside `mailroom serve`) takes effect
//! without a restart too. A new version whose first calls fail by its own
//! fault (traps, timeouts, limits — not a server's typed errors) is rolled
//! back on its own ([`Lifecycle::guard`]).
//!
//! An upgrade that declares an endpoint the version in use does not (a new
//! host, a new scheme) is not made current: it is kept, recorded as
//! `pending`, and waits for an operator's [`Lifecycle::approve`]. Until then
//! the version in use keeps serving, with the grant it had.
//!
//! With trusted keys configured ([`Trust`]), a plugin may carry an ed25519
//! signature over its digest (`FILE.wasm.sig`); with `require_signed`, one
//! without a trusted signature is refused, whichever way it comes.
//!
//! It decides nothing about grants and runs no plugin call but `info`.

mod trust;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailroom_crm::CrmError;
use mailroom_runtime::{LoadError, Plugin, Registry};
use mailroom_store::sqlx::{self, Row};
use mailroom_store::{Db, next_id, unix_now};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

pub use trust::{Trust, TrustError, generate, sign};

/// Why a lifecycle operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The file is not a usable plugin; nothing changed.
    #[error("not installed: {0}; the plugins in use are unchanged")]
    Load(#[from] LoadError),
    /// Its signature is missing where one is required, or not by a trusted key.
    #[error("not installed: {0}")]
    Trust(#[from] TrustError),
    /// No such plugin is installed.
    #[error("no plugin named `{0}` is installed")]
    NotInstalled(String),
    /// The operation cannot be done now, and why.
    #[error("{0}")]
    Refused(String),
    /// The plugins directory could not be written or read.
    #[error("the plugins directory: {0}")]
    Io(#[from] std::io::Error),
    /// The audit log or the accounts could not be read or written.
    #[error(transparent)]
    Crm(#[from] CrmError),
}

impl From<sqlx::Error> for LifecycleError {
    fn from(e: sqlx::Error) -> Self {
        LifecycleError::Crm(CrmError::from(e))
    }
}

/// One recorded change to the installed plugins.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Change {
    /// When (Unix seconds).
    pub at: i64,
    /// Who: a user's email, or `cli` for the command line.
    pub actor: String,
    /// `install`, `upgrade`, `pending` (an upgrade waiting for approval),
    /// `approve`, `rollback`, `auto-rollback` or `remove`.
    pub action: String,
    /// The plugin's name.
    pub plugin: String,
    /// The version before, if there was one.
    pub from_version: Option<String>,
    /// Its digest (`sha256:…`).
    pub from_digest: Option<String>,
    /// The version after, unless removed.
    pub to_version: Option<String>,
    /// Its digest (`sha256:…`).
    pub to_digest: Option<String>,
    /// The trusted key whose signature the new version carried, if any.
    pub signed_by: Option<String>,
}

/// An upgrade waiting for an operator's approval (also what
/// `.versions/NAME/pending` holds, as JSON).
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Pending {
    /// The plugin's name.
    pub plugin: String,
    /// The waiting version.
    pub version: String,
    /// Its digest (`sha256:…`).
    pub digest: String,
    /// The endpoint templates it declares that the version in use does not.
    pub new_endpoints: Vec<String>,
    /// What it lets a secret reach that the version in use does not: a
    /// secret bound to another endpoint, or an endpoint whose credential changed.
    #[serde(default)]
    pub new_secrets: Vec<String>,
}

impl Pending {
    /// What the waiting version asks for, in words.
    pub fn asks_for(&self) -> String {
        let mut parts = Vec::new();
        if !self.new_endpoints.is_empty() {
            parts.push(format!("new endpoints {}", self.new_endpoints.join(", ")));
        }
        if !self.new_secrets.is_empty() {
            parts.push(self.new_secrets.join("; "));
        }
        parts.join("; ")
    }
}

/// How many of a new version's first calls, failed by its own fault, roll it back.
pub const FAILED_FIRST_CALLS: u64 = 3;
/// How many first calls of a new version are watched.
pub const GUARDED_CALLS: u64 = 30;
/// How long a new version's first calls are watched.
pub const GUARD_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// The installed plugins of one host: its directory, its registry, its audit log.
pub struct Lifecycle {
    dir: PathBuf,
    registry: Arc<Registry>,
    db: Db,
    trust: Trust,
}

/// A component file's digest, `sha256:` and hex: what signatures sign.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Where the signature of a component file is kept: `FILE.wasm.sig`.
pub fn signature_file(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// The endpoint templates `next` declares that `current` does not.
fn new_endpoints(current: &Plugin, next: &Plugin) -> Vec<String> {
    let declared = &current.description().endpoints;
    next.description()
        .endpoints
        .iter()
        .map(|e| e.template.clone())
        .filter(|t| !declared.iter().any(|c| &c.template == t))
        .collect()
}

/// What `next` lets a secret reach that `current` does not: each secret
/// bound to an endpoint it was not bound to, each credential that changed.
fn new_secrets(current: &Plugin, next: &Plugin) -> Vec<String> {
    let bound = |p: &Plugin| -> BTreeSet<(String, String)> {
        p.description()
            .bindings
            .iter()
            .flat_map(|b| b.endpoints.iter().map(|e| (b.secret.clone(), e.clone())))
            .collect()
    };
    let before = bound(current);
    let mut out: Vec<String> = bound(next)
        .difference(&before)
        .map(|(secret, endpoint)| format!("secret `{secret}` to {endpoint}"))
        .collect();
    let credential = |p: &Plugin, template: &str| {
        p.description()
            .endpoints
            .iter()
            .find(|e| e.template == template)
            .and_then(|e| e.credential.as_ref())
            .map(|c| format!("{c:?}"))
    };
    for e in &next.description().endpoints {
        let now = credential(next, &e.template);
        if now.is_some() && now != credential(current, &e.template) {
            out.push(format!(
                "a changed credential for {}: {}",
                e.template,
                now.unwrap_or_default()
            ));
        }
    }
    out
}

/// Delete a file that may not be there.
fn forget(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Write `bytes` to `path` in one step: a reader sees the old file or the new.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Lifecycle {
    /// The lifecycle of the plugins in `dir`, served by `registry`, taking
    /// the plugins `trust` lets in.
    pub fn new(dir: PathBuf, registry: Arc<Registry>, db: Db, trust: Trust) -> Self {
        Lifecycle {
            dir,
            registry,
            db,
            trust,
        }
    }

    /// The registry it keeps current.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn current_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }

    /// `.versions/NAME/pending`: the upgrade waiting for approval.
    fn pending_file(&self, name: &str) -> PathBuf {
        self.dir.join(".versions").join(name).join("pending")
    }

    /// A kept version's bytes and signature, refused unless the file still
    /// has the digest it was kept under (a file changed on disk is not run).
    fn read_archived(
        &self,
        name: &str,
        expected: &str,
    ) -> Result<(Vec<u8>, Option<String>), LifecycleError> {
        let archived = self.archived_file(name, expected);
        let bytes = std::fs::read(&archived).map_err(|e| {
            LifecycleError::Refused(format!(
                "version {expected} of `{name}` is not kept any more ({e})"
            ))
        })?;
        let found = digest(&bytes);
        if found != expected {
            return Err(LifecycleError::Refused(format!(
                "the kept file of `{name}` {expected} was changed on disk (it is now {found}); it is not run"
            )));
        }
        let signature = std::fs::read_to_string(signature_file(&archived)).ok();
        Ok((bytes, signature))
    }

    fn archived_file(&self, name: &str, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join(".versions")
            .join(name)
            .join(format!("{hex}.wasm"))
    }

    /// Keep `bytes` (and its signature) as the current version of
    /// `plugin`, and in the archive.
    fn keep(&self, plugin: &Plugin, bytes: &[u8], signature: Option<&str>) -> std::io::Result<()> {
        self.archive(plugin, bytes, signature)?;
        forget(&self.pending_file(plugin.name()))?;
        let current = self.current_file(plugin.name());
        match signature {
            Some(sig) => std::fs::write(signature_file(&current), sig)?,
            None => forget(&signature_file(&current))?,
        }
        replace(&current, bytes)
    }

    /// Keep `bytes` (and its signature) in the archive only.
    fn archive(
        &self,
        plugin: &Plugin,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> std::io::Result<()> {
        let archived = self.archived_file(plugin.name(), &plugin.description().digest);
        if let Some(parent) = archived.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !archived.is_file() {
            replace(&archived, bytes)?;
        }
        if let Some(sig) = signature {
            std::fs::write(signature_file(&archived), sig)?;
        }
        Ok(())
    }

    async fn record(
        &self,
        actor: &str,
        action: &str,
        name: &str,
        from: Option<&Plugin>,
        to: Option<&Plugin>,
        signed_by: Option<String>,
    ) -> Result<Change, LifecycleError> {
        let change = Change {
            at: unix_now(),
            actor: actor.to_string(),
            action: action.to_string(),
            plugin: name.to_string(),
            from_version: from.map(|p| p.version().to_string()),
            from_digest: from.map(|p| p.description().digest.clone()),
            to_version: to.map(|p| p.version().to_string()),
            to_digest: to.map(|p| p.description().digest.clone()),
            signed_by,
        };
        sqlx::query(
            "INSERT INTO plugin_changes (id, at, actor, action, plugin, from_version, from_digest, \
             to_version, to_digest, signed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(next_id())
        .bind(change.at)
        .bind(&change.actor)
        .bind(&change.action)
        .bind(&change.plugin)
        .bind(&change.from_version)
        .bind(&change.from_digest)
        .bind(&change.to_version)
        .bind(&change.to_digest)
        .bind(&change.signed_by)
        .execute(self.db.pool())
        .await?;
        tracing::info!(
            plugin = %name,
            action,
            by = %actor,
            from = change.from_digest.as_deref().unwrap_or("none"),
            to = change.to_digest.as_deref().unwrap_or("none"),
            "plugin changed"
        );
        Ok(change)
    }

    /// Load `bytes` and make it current: kept on disk, swapped in, recorded.
    async fn make_current(
        &self,
        bytes: &[u8],
        signature: Option<&str>,
        actor: &str,
        action: Option<&str>,
    ) -> Result<Change, LifecycleError> {
        // The signature first: an untrusted file is never compiled, cached
        // or instantiated (not even to ask it what it is).
        let signed_by = self.trust.check(&digest(bytes), signature)?;
        let plugin = self.registry.runtime().load(bytes).await?;
        if action.is_none()
            && let Some(current) = self.registry.get(plugin.name())
        {
            let new_endpoints = new_endpoints(&current, &plugin);
            let new_secrets = new_secrets(&current, &plugin);
            if !new_endpoints.is_empty() || !new_secrets.is_empty() {
                self.archive(&plugin, bytes, signature)?;
                let waiting = Pending {
                    plugin: plugin.name().to_string(),
                    version: plugin.version().to_string(),
                    digest: plugin.description().digest.clone(),
                    new_endpoints,
                    new_secrets,
                };
                let json = serde_json::to_vec(&waiting).map_err(std::io::Error::other)?;
                replace(&self.pending_file(plugin.name()), &json)?;
                tracing::warn!(
                    plugin = %plugin.name(),
                    version = %plugin.version(),
                    asks_for = %waiting.asks_for(),
                    "an upgrade asks for more than the version in use: pending approval"
                );
                return self
                    .record(
                        actor,
                        "pending",
                        plugin.name(),
                        Some(&current),
                        Some(&plugin),
                        signed_by,
                    )
                    .await;
            }
        }
        self.keep(&plugin, bytes, signature)?;
        let previous = self.registry.put(plugin.clone())?;
        let action = action.unwrap_or(if previous.is_some() {
            "upgrade"
        } else {
            "install"
        });
        self.record(
            actor,
            action,
            plugin.name(),
            previous.as_deref(),
            Some(&plugin),
            signed_by,
        )
        .await
    }

    /// Install a plugin file, or upgrade the plugin of the same name. It is
    /// checked before anything changes; runs under way finish on the
    /// version they started with. An upgrade is guarded.
    pub async fn install(
        self: &Arc<Self>,
        bytes: &[u8],
        signature: Option<&str>,
        actor: &str,
    ) -> Result<Change, LifecycleError> {
        let change = self.make_current(bytes, signature, actor, None).await?;
        if change.action == "upgrade"
            && let Some(plugin) = self.registry.get(&change.plugin)
        {
            self.guard(plugin);
        }
        Ok(change)
    }

    /// The upgrades waiting for approval.
    pub fn pending(&self) -> Vec<Pending> {
        self.registry
            .list()
            .iter()
            .filter_map(|p| self.waiting(p.name()))
            .collect()
    }

    fn waiting(&self, name: &str) -> Option<Pending> {
        let text = std::fs::read(self.pending_file(name)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Make the upgrade waiting for approval current, granting the endpoints
    /// it declares. Guarded like any upgrade.
    pub async fn approve(
        self: &Arc<Self>,
        name: &str,
        actor: &str,
    ) -> Result<Change, LifecycleError> {
        let waiting = self.waiting(name).ok_or_else(|| {
            LifecycleError::Refused(format!("no upgrade of `{name}` is waiting for approval"))
        })?;
        let (bytes, signature) = self.read_archived(name, &waiting.digest)?;
        let change = self
            .make_current(&bytes, signature.as_deref(), actor, Some("approve"))
            .await?;
        if let Some(plugin) = self.registry.get(name) {
            self.guard(plugin);
        }
        Ok(change)
    }

    /// Watch a new version's first [`GUARDED_CALLS`] calls: once
    /// [`FAILED_FIRST_CALLS`] of them have failed by its own fault, and at
    /// least half of its calls so far, roll it back (as `auto-rollback`) if
    /// it is still current. The watch ends after those calls or [`GUARD_FOR`].
    pub fn guard(self: &Arc<Self>, plugin: Arc<Plugin>) {
        let lifecycle = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + GUARD_FOR;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                let health = plugin.health();
                let failing =
                    health.crashes >= FAILED_FIRST_CALLS && health.crashes * 2 >= health.calls;
                if !failing {
                    if health.calls >= GUARDED_CALLS {
                        return;
                    }
                    continue;
                }
                let current = lifecycle.registry.get(plugin.name());
                if current.is_some_and(|c| Arc::ptr_eq(&c, &plugin)) {
                    let name = plugin.name();
                    match lifecycle.rollback(name, "auto-rollback").await {
                        Ok(c) => tracing::warn!(
                            plugin = %name,
                            version = %plugin.version(),
                            back_to = c.to_version.as_deref().unwrap_or(""),
                            last_error = health.last_error.as_deref().unwrap_or(""),
                            "a new version failed its first calls and was rolled back"
                        ),
                        Err(e) => tracing::error!(
                            plugin = %name,
                            error = %e,
                            "a new version failed its first calls and could not be rolled back"
                        ),
                    }
                }
                return;
            }
        });
    }

    /// Go back to the version the current one replaced.
    pub async fn rollback(&self, name: &str, actor: &str) -> Result<Change, LifecycleError> {
        let current = self
            .registry
            .get(name)
            .ok_or_else(|| LifecycleError::NotInstalled(name.to_string()))?;
        let row = sqlx::query(
            "SELECT from_digest FROM plugin_changes WHERE plugin = $1 AND to_digest = $2 \
             AND from_digest IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(name)
        .bind(&current.description().digest)
        .fetch_optional(self.db.pool())
        .await?;
        let earlier: String = match row {
            Some(r) => r.try_get("from_digest")?,
            None => {
                return Err(LifecycleError::Refused(format!(
                    "`{name}` {} replaced no earlier version: there is nothing to roll back to",
                    current.version()
                )));
            }
        };
        let (bytes, signature) = self.read_archived(name, &earlier)?;
        self.make_current(&bytes, signature.as_deref(), actor, Some("rollback"))
            .await
    }

    /// Stop offering a plugin. Refused while accounts use it (disconnect them
    /// first). Its versions stay archived.
    pub async fn remove(&self, name: &str, actor: &str) -> Result<Change, LifecycleError> {
        let current = self
            .registry
            .get(name)
            .ok_or_else(|| LifecycleError::NotInstalled(name.to_string()))?;
        let using = mailroom_crm::accounts::count_by_provider(&self.db, name).await?;
        if using > 0 {
            return Err(LifecycleError::Refused(format!(
                "{using} connected accounts use `{name}`: disconnect them first, or upgrade it instead"
            )));
        }
        forget(&self.current_file(name))?;
        forget(&signature_file(&self.current_file(name)))?;
        self.registry.remove(name)?;
        self.record(actor, "remove", name, Some(&current), None, None)
            .await
    }

    /// The recorded changes, newest first (of one plugin, or all), at most 200.
    pub async fn history(&self, name: Option<&str>) -> Result<Vec<Change>, LifecycleError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, plugin, from_version, from_digest, to_version, to_digest, \
             signed_by FROM plugin_changes WHERE ($1 = '' OR plugin = $1) ORDER BY id DESC LIMIT 200",
        )
        .bind(name.unwrap_or(""))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Change {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    plugin: r.try_get("plugin")?,
                    from_version: r.try_get("from_version")?,
                    from_digest: r.try_get("from_digest")?,
                    to_version: r.try_get("to_version")?,
                    to_digest: r.try_get("to_digest")?,
                    signed_by: r.try_get("signed_by")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(LifecycleError::from)
    }

    /// Bring the registry to what the directory says: load a `NAME.wasm`
    /// whose digest is not the registry's, drop a plugin whose file is gone.
    /// A file that does not load is reported and the registry keeps what it
    /// had. What changed, one line each.
    pub async fn converge(self: &Arc<Self>) -> Vec<String> {
        let mut said = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return said;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        let mut present = Vec::new();
        for path in files {
            let Some(stem) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            present.push(stem.clone());
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let d = digest(&bytes);
            if self
                .registry
                .get(&stem)
                .is_some_and(|p| p.description().digest == d)
            {
                continue;
            }
            let signature = std::fs::read_to_string(signature_file(&path)).ok();
            if let Err(e) = self.trust.check(&d, signature.as_deref()) {
                said.push(format!("skipping {}: {e}", path.display()));
                continue;
            }
            match self.registry.runtime().load(&bytes).await {
                Ok(p) if p.name() != stem => said.push(format!(
                    "skipping {}: it holds the plugin `{}`, so it must be named {}.wasm",
                    path.display(),
                    p.name(),
                    p.name()
                )),
                Ok(p) => {
                    said.push(format!("loaded {} {} ({d})", p.name(), p.version()));
                    match self.registry.put(p.clone()) {
                        Ok(Some(_)) => self.guard(p),
                        Ok(None) => {}
                        Err(e) => said.push(format!("skipping {}: {e}", path.display())),
                    }
                }
                Err(e) => said.push(format!("skipping {}: {e}", path.display())),
            }
        }
        for p in self.registry.list() {
            if !present.iter().any(|n| n == p.name()) && self.registry.remove(p.name()).is_ok() {
                said.push(format!("removed {}", p.name()));
            }
        }
        said
    }

    /// Converge every `every`, for as long as the host runs.
    pub async fn watch(self: Arc<Self>, every: std::time::Duration) {
        loop {
            tokio::time::sleep(every).await;
            for line in self.converge().await {
                tracing::info!("plugins directory: {line}");
            }
        }
    }
}
