//! The engine: claims due accounts and runs them, one worker per account.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mailroom_crm::accounts::{self, Account};
use mailroom_crm::index::ContactIndex;
use mailroom_crm::messages::{self, AccountContext, Copy};
use mailroom_crm::{CrmError, Id, campaigns, generation};
use mailroom_oauth::OAuth;
use mailroom_runtime::{
    CallError, OperatorGrant, Page, Plugin, ProviderError, Registry, Run, Window, without_addresses,
};
use mailroom_store::{Db, unix_now};
use mailroom_vault::Vault;
use tracing::Instrument;

use crate::backoff;
use crate::start::{Renew, StartError, Starter};
use crate::state::{self, Ending, Position, Progress};

/// How the engine paces and bounds its work.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This host's name in leases; unique among hosts sharing a database.
    pub node: String,
    /// How long a lease lasts without renewal (renewed with every page):
    /// longer than the longest plugin call, and how long a dead host's
    /// accounts wait before another host takes them over.
    pub lease: Duration,
    /// How long an up-to-date account waits for its next incremental sync.
    pub interval: Duration,
    /// How far back the backfill goes.
    pub window: Duration,
    /// The first retry delay after a transient failure.
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// What the operator grants the plugins.
    pub grant: OperatorGrant,
    /// How many ids one `fetch` call asks for.
    pub fetch_batch: usize,
    /// The OAuth providers whose accounts' tokens the engine keeps fresh.
    pub oauth: Arc<OAuth>,
    /// The time re-authorisation deadlines are held to.
    pub clock: Clock,
}

/// The time the engine holds deadlines to (Unix seconds): the system's, or
/// one a test controls.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(unix_now))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    /// The time now.
    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            node: format!("host-{}", std::process::id()),
            lease: Duration::from_secs(600),
            interval: Duration::from_secs(300),
            window: Duration::from_secs(365 * 86_400),
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            grant: OperatorGrant::default(),
            fetch_batch: 100,
            oauth: Arc::default(),
            clock: Clock::system(),
        }
    }
}

/// Why the engine itself (not one account) failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] mailroom_store::sqlx::Error),
    /// A task storing a page failed (panicked or was cancelled).
    #[error("storing a page: {0}")]
    Task(String),
    /// The CRM refused (e.g. sealed credentials do not open).
    #[error(transparent)]
    Crm(#[from] CrmError),
}

/// The sync engine of one host.
pub struct Engine {
    db: Db,
    vault: Arc<Vault>,
    registry: Arc<Registry>,
    config: EngineConfig,
    index: RwLock<Arc<ContactIndex>>,
    running: Mutex<HashSet<Id>>,
}

/// Marks an account as run by this process until dropped (also when the
/// run's future is dropped half-way).
struct Running<'a> {
    set: &'a Mutex<HashSet<Id>>,
    id: Id,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

/// Why a run stopped early.
enum Stop {
    /// The plugin (or the call) failed.
    Call(CallError),
    /// The lease went to another worker; drop everything.
    LeaseLost,
    /// The host failed.
    Host(SyncError),
}

impl From<SyncError> for Stop {
    fn from(e: SyncError) -> Self {
        Stop::Host(e)
    }
}
impl From<CrmError> for Stop {
    fn from(e: CrmError) -> Self {
        Stop::Host(e.into())
    }
}
impl From<mailroom_store::sqlx::Error> for Stop {
    fn from(e: mailroom_store::sqlx::Error) -> Self {
        Stop::Host(e.into())
    }
}
impl From<StartError> for Stop {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Crm(e) => e.into(),
            StartError::Call(e) => Stop::Call(e),
        }
    }
}
impl From<CallError> for Stop {
    fn from(e: CallError) -> Self {
        Stop::Call(e)
    }
}

/// How many `message-failed` errors one run absorbs before giving up.
const MAX_MESSAGE_FAILURES_PER_RUN: usize = 1000;

impl Engine {
    /// An engine over `db`, running plugins from `registry`.
    pub fn new(db: Db, vault: Arc<Vault>, registry: Arc<Registry>, config: EngineConfig) -> Self {
        Engine {
            db,
            vault,
            registry,
            config,
            index: RwLock::new(Arc::new(ContactIndex::default())),
            running: Mutex::new(HashSet::new()),
        }
    }

    /// Run every due account until none is due (for `mailroom sync` and tests).
    /// Returns how many runs were made.
    pub async fn run_until_idle(&self) -> Result<usize, SyncError> {
        let mut runs = 0;
        while self.tick().await? {
            runs += 1;
        }
        Ok(runs)
    }

    /// Run forever with `workers` accounts in parallel, polling every `poll`.
    pub async fn run(self: Arc<Self>, workers: usize, poll: Duration) {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let engine = self.clone();
            tasks.spawn(async move {
                loop {
                    match engine.tick().await {
                        Ok(true) => {}
                        Ok(false) => tokio::time::sleep(poll).await,
                        Err(e) => {
                            tracing::error!(error = %e, "sync engine");
                            tokio::time::sleep(poll).await;
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Claim one due account and run it. False when none was due.
    pub async fn tick(&self) -> Result<bool, SyncError> {
        let ttl = self.lease_secs();
        let running: Vec<Id> = self
            .running
            .lock()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let mut claimed = state::claim(&self.db, &self.config.node, ttl, &running).await?;
        if claimed.is_none() {
            // Nothing due: make sure no account was connected without a sync row.
            state::ensure_rows(&self.db).await?;
            claimed = state::claim(&self.db, &self.config.node, ttl, &running).await?;
        }
        let Some(id) = claimed else {
            return Ok(false);
        };
        let newly = self
            .running
            .lock()
            .map(|mut set| set.insert(id))
            .unwrap_or(false);
        if !newly {
            // Another worker of this process claimed it in the meantime.
            return Ok(true);
        }
        let _running = Running {
            set: &self.running,
            id,
        };
        let span = tracing::error_span!("account", account = id);
        self.run_account(id).instrument(span).await?;
        Ok(true)
    }

    async fn contact_index(&self) -> Result<Arc<ContactIndex>, SyncError> {
        let current = generation::current(self.db.pool()).await?;
        let cached = self.index.read().map(|i| i.clone()).unwrap_or_default();
        if cached.generation() == current {
            return Ok(cached);
        }
        let fresh = Arc::new(ContactIndex::load(&self.db).await?);
        if let Ok(mut slot) = self.index.write() {
            *slot = fresh.clone();
        }
        Ok(fresh)
    }

    /// Run one claimed account and release it with its new status. A
    /// failure of the host's own (database, sealed credentials that do not
    /// open) is logged and retried later like a transient one, so that one
    /// broken account never holds up the others.
    async fn run_account(&self, id: Id) -> Result<(), SyncError> {
        let node = &self.config.node;
        let position = state::position(&self.db, id).await?;
        let outcome = match accounts::get(&self.db, &self.vault, id).await {
            Ok(account) if self.past_deadline(&account).await? => {
                Err(Stop::Call(CallError::Provider(ProviderError::AuthFailed(
                    "the operator required this account to sign in again by a deadline that has passed"
                        .into(),
                ))))
            }
            Ok(account) => match self.registry.get(&account.provider) {
                Some(plugin) => {
                    let span = tracing::error_span!(
                        "run",
                        provider = %account.provider,
                        version = %plugin.version(),
                    );
                    let mut outcome = self
                        .pull(&account, &plugin, position.clone(), Renew::IfExpiring)
                        .instrument(span.clone())
                        .await;
                    if let Err(Stop::Call(CallError::Provider(ProviderError::AuthFailed(_)))) =
                        &outcome
                        && self.config.oauth.for_plugin(&account.provider).is_some()
                    {
                        // The access token may have been cut short: renew it
                        // once and try again before asking the user.
                        let position = state::position(&self.db, id).await?;
                        outcome = self
                            .pull(&account, &plugin, position, Renew::Now)
                            .instrument(span)
                            .await;
                    }
                    outcome
                }
                None => Err(Stop::Call(CallError::Ended(format!(
                    "the `{}` plugin is not installed",
                    account.provider
                )))),
            },
            Err(e) => Err(Stop::Host(e.into())),
        };
        let ending = match outcome {
            Ok(()) => Ending::Synced {
                next: unix_now() + self.config.interval.as_secs() as i64,
            },
            Err(Stop::LeaseLost) => {
                tracing::warn!("lease lost to another worker; stopping");
                return Ok(());
            }
            Err(Stop::Host(e)) => {
                tracing::error!(error = %e, "sync run failed on the host side");
                let attempts = position.attempts + 1;
                Ending::Retry {
                    why: "internal error; see the host log".into(),
                    next: self.retry_at(attempts, None),
                    attempts,
                }
            }
            Err(Stop::Call(e)) => self.ending_for(&e, position.attempts + 1),
        };
        if let Ending::Retry { why, .. } | Ending::Reauth { why } | Ending::NeedsUser { why } =
            &ending
        {
            tracing::warn!(error = %why, "sync stopped");
        }
        state::finish(&self.db, id, node, ending).await?;
        Ok(())
    }

    /// Whether a re-authorisation campaign's deadline has passed for the account.
    async fn past_deadline(&self, account: &Account) -> Result<bool, SyncError> {
        let notice = campaigns::notice(&self.db, account).await?;
        Ok(notice.is_some_and(|n| n.deadline <= self.config.clock.now()))
    }

    /// The lease length in whole seconds.
    fn lease_secs(&self) -> i64 {
        self.config.lease.as_secs().max(1) as i64
    }

    fn retry_at(&self, attempts: u32, retry_after: Option<Duration>) -> i64 {
        let wait = backoff::delay(
            attempts,
            self.config.backoff_base,
            self.config.backoff_max,
            retry_after,
        );
        unix_now() + wait.as_secs().max(1) as i64
    }

    /// The status a failed run leaves.
    fn ending_for(&self, e: &CallError, attempts: u32) -> Ending {
        match e {
            CallError::Provider(ProviderError::AuthFailed(_)) => Ending::Reauth {
                why: format!("{e}; update the account's authentication"),
            },
            CallError::Provider(ProviderError::BadConfig(_)) => Ending::NeedsUser {
                why: format!("{e}; change the account's settings"),
            },
            CallError::Provider(ProviderError::RateLimited(secs)) => Ending::Retry {
                why: e.to_string(),
                next: self.retry_at(attempts, Some(Duration::from_secs(u64::from(*secs)))),
                attempts,
            },
            // Shown to the owner: no address of the operator's network in it.
            _ => Ending::Retry {
                why: without_addresses(&e.to_string()),
                next: self.retry_at(attempts, None),
                attempts,
            },
        }
    }

    async fn start(&self, account: &Account, plugin: &Plugin, renew: Renew) -> Result<Run, Stop> {
        let starter = Starter {
            db: &self.db,
            vault: &self.vault,
            registry: &self.registry,
            grant: &self.config.grant,
            oauth: &self.config.oauth,
        };
        let mut run = starter.start(account, plugin, renew).await?;
        run.open().await?;
        Ok(run)
    }

    /// One run: open, re-link if the CRM changed, then pages until caught up.
    async fn pull(
        &self,
        account: &Account,
        plugin: &Plugin,
        mut position: Position,
        renew: Renew,
    ) -> Result<(), Stop> {
        let node = &self.config.node;
        let ttl = self.lease_secs();
        let mut run = self.start(account, plugin, renew).await?;
        let index = self.contact_index().await?;
        let ctx = AccountContext {
            id: account.id,
            scope: account.scope,
            own: accounts::own_addresses(&self.db, account.owner_id).await?,
        };
        if position.linked_generation != index.generation() {
            self.relink(&mut run, &ctx, &index).await?;
            state::linked(&self.db, account.id, node, index.generation()).await?;
        }
        let mut window = Window {
            since: position
                .window_since
                .unwrap_or_else(|| unix_now() - self.config.window.as_secs() as i64),
            // Messages recorded as failed are not asked for again.
            skip: messages::failures(&self.db, account.id)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        };
        let mut expired_once = false;
        let mut message_failures = 0;
        // Storing a page overlaps with fetching the next one: the plugin gets
        // the cursor at once, and pages are still committed one at a time, in
        // order, so a crash resumes from the last committed one.
        let mut storing: Option<tokio::task::JoinHandle<Result<(), Stop>>> = None;
        loop {
            let result = run.sync(position.cursor.as_deref(), &window).await;
            // Parsing starts at once, beside the previous page's writes and the next fetch.
            let result = result.map(|page| {
                let (cursor, more) = (page.cursor.clone(), page.more);
                (
                    cursor,
                    more,
                    tokio::task::spawn_blocking(move || parse_page(page)),
                )
            });
            if let Some(task) = storing.take() {
                stored(task).await?;
            }
            let (cursor, more, parsing) = match result {
                Ok(page) => page,
                Err(CallError::Provider(ProviderError::CursorExpired)) if !expired_once => {
                    // Start the window again; stored copies are recognised, so nothing doubles.
                    tracing::info!("cursor expired; syncing the window again");
                    expired_once = true;
                    position.cursor = None;
                    position.backfilled = false;
                    window.since = unix_now() - self.config.window.as_secs() as i64;
                    continue;
                }
                Err(CallError::Provider(ProviderError::MessageFailed(m)))
                    if message_failures < MAX_MESSAGE_FAILURES_PER_RUN =>
                {
                    // One bad message: record it and ask again without it.
                    message_failures += 1;
                    let mut tx = self.db.begin().await?;
                    messages::record_failure(&mut tx, account.id, &m.id, &m.why).await?;
                    tx.commit().await?;
                    window.skip.push(m.id);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let backfilled = position.backfilled || !more;
            position.cursor = Some(cursor);
            position.backfilled = backfilled;
            let store = Store {
                db: self.db.clone(),
                ctx: ctx.clone(),
                index: index.clone(),
                node: node.clone(),
                ttl,
                window_since: window.since,
                backfilled,
            };
            storing = Some(tokio::spawn(
                store.page(parsing).instrument(tracing::Span::current()),
            ));
            if !more {
                break;
            }
        }
        if let Some(task) = storing.take() {
            stored(task).await?;
        }
        if let Err(e) = run.close().await {
            tracing::debug!(error = %e, "closing the session");
        }
        Ok(())
    }

    /// Re-link stored mail to the current contacts, and fetch the indexed
    /// messages that now match.
    async fn relink(
        &self,
        run: &mut Run,
        ctx: &AccountContext,
        index: &ContactIndex,
    ) -> Result<(), Stop> {
        let mut tx = self.db.begin().await?;
        let wanted = messages::relink(&mut tx, ctx, index).await?;
        tx.commit().await?;
        if !wanted.is_empty() {
            tracing::info!(
                messages = wanted.len(),
                "fetching mail that now matches a contact"
            );
        }
        for batch in wanted.chunks(self.config.fetch_batch.max(1)) {
            let page = run.fetch(batch).await?;
            let parsed = parse_page(page);
            let mut tx = self.db.begin().await?;
            write_page(&mut tx, ctx, index, &parsed).await?;
            if !state::renew(&mut tx, ctx.id, &self.config.node, self.lease_secs()).await? {
                return Err(Stop::LeaseLost);
            }
            tx.commit().await?;
        }
        Ok(())
    }
}

/// What storing one page needs, owned, so that it can run beside the next fetch.
struct Store {
    db: Db,
    ctx: AccountContext,
    index: Arc<ContactIndex>,
    node: String,
    ttl: i64,
    window_since: i64,
    backfilled: bool,
}

impl Store {
    /// Store a page and the position after it in one transaction that also
    /// renews the lease (refused if the lease was lost).
    async fn page(self, parsing: tokio::task::JoinHandle<Parsed>) -> Result<(), Stop> {
        let parsed = parsing
            .await
            .map_err(|e| Stop::Host(SyncError::Task(e.to_string())))?;
        let page = &parsed.page;
        let progress = Progress {
            cursor: Some(&page.cursor),
            window_since: self.window_since,
            backfilled: self.backfilled,
            done: page.progress.as_ref().map_or(0, |p| p.done as i64),
            total: page
                .progress
                .as_ref()
                .and_then(|p| p.total)
                .map(|t| t as i64),
        };
        let mut tx = self.db.begin().await?;
        write_page(&mut tx, &self.ctx, &self.index, &parsed).await?;
        if !state::advance(&mut tx, self.ctx.id, &self.node, self.ttl, &progress).await? {
            return Err(Stop::LeaseLost);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Wait for a page being stored.
async fn stored(task: tokio::task::JoinHandle<Result<(), Stop>>) -> Result<(), Stop> {
    task.await
        .map_err(|e| Stop::Host(SyncError::Task(e.to_string())))?
}

/// A page with its messages parsed (each, or why it does not parse).
struct Parsed {
    page: Page,
    parsed: Vec<Result<mailroom_mail::Parsed, String>>,
}

/// Parse a page's messages (CPU work, run off the async workers).
fn parse_page(page: Page) -> Parsed {
    let parsed = page
        .messages
        .iter()
        .map(|m| mailroom_mail::parse(&m.raw).map_err(|e| e.to_string()))
        .collect();
    Parsed { page, parsed }
}

/// Ingest a parsed page's messages, forget its deletions, and record its failures.
async fn write_page(
    tx: &mut mailroom_store::Tx,
    ctx: &AccountContext,
    index: &ContactIndex,
    parsed: &Parsed,
) -> Result<(), Stop> {
    let page = &parsed.page;
    let mut items: Vec<(Copy<'_>, &mailroom_mail::Parsed)> =
        Vec::with_capacity(page.messages.len());
    for (m, p) in page.messages.iter().zip(&parsed.parsed) {
        match p {
            Ok(p) => items.push((
                Copy {
                    provider_id: &m.id,
                    folder: &m.folder,
                    provider_thread: m.thread_id.as_deref(),
                    received_at: m.received_at,
                },
                p,
            )),
            Err(why) => messages::record_failure(tx, ctx.id, &m.id, why).await?,
        }
    }
    messages::ingest_page(tx, ctx, index, &items).await?;
    // After the page's new copies: a message moved between synced folders
    // keeps its new copy when the old one is reported gone.
    let gone: Vec<String> = page.deletions.iter().map(|d| d.id.clone()).collect();
    messages::forget(tx, ctx.id, &gone).await?;
    for f in &page.failed {
        messages::record_failure(tx, ctx.id, &f.id, &f.why).await?;
    }
    Ok(())
}
