//! One run: a fresh instance serving one account, under the per-call limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailroom_contract::v1::provider::{
    Account, Credential, Outgoing, Page, PluginInfo, ProviderError, Window,
};
use mailroom_contract::v1::types::ConfigError;
use mailroom_contract::{v1, v2, v2_info};
use mailroom_http::{HttpHooks, basic_credential, bearer_credential};
use mailroom_net::{Audit, ConnectionBudget, NetCtx};
use mailroom_policy::{
    AccountPolicy, Denial, EndpointError, OperatorGrant, Secret, Secrets, host_values,
};
use tracing::Instrument;
use wasmtime::component::{Instance, ResourceAny, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::cache::first_line;
use crate::engine::{Limits, Runtime};
use crate::error::CallError;
use crate::health::Health;
use crate::plugin::{Plugin, Pre, SecretBinding};
use crate::state::{Captured, MemoryLimiter, RunState};

/// The most resources (connections, HTTP fields, streams, …) a run may hold at once.
const MAX_RESOURCES: usize = 10_000;
/// The most bytes one `wasi:http` fields resource may hold.
const MAX_FIELDS_BYTES: usize = 64 * 1024;
/// The most random bytes one call may ask for.
const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// The most bytes a plugin may hand the host in one host call (a write, a
/// request body chunk): a whole large message, and not much more.
const HOSTCALL_FUEL: usize = 64 << 20;

/// How much of a plugin's stdout/stderr is kept.
const CAPTURE_BYTES: usize = 16 * 1024;

/// One account as the host hands it to a run.
#[derive(Debug, Clone)]
pub struct AccountInput {
    /// The host's id for the account.
    pub id: String,
    /// The connected address.
    pub address: String,
    /// Non-secret settings by field name.
    pub settings: BTreeMap<String, String>,
    /// Secrets by field name; never passed into the plugin.
    pub secrets: Secrets,
}

/// A live instance's exports, by the major version of its contract.
enum Bindings {
    V1(v1::Plugin),
    V2(v2::Plugin),
}

/// A live instance for one account. Drop it to end the run.
pub struct Run {
    store: Store<RunState>,
    bindings: Bindings,
    instance: Instance,
    declarations: Option<mailroom_contract::declarations::bindings::GuestIndices>,
    account: Account,
    session: Option<ResourceAny>,
    limits: Limits,
    span: tracing::Span,
    audit: Audit,
    ended: Option<String>,
    health: Arc<Health>,
    denials_counted: usize,
}

impl Runtime {
    /// Start a run of `plugin` for `account` under `grant`: render the grants,
    /// build the sandbox and instantiate. A setting that does not make a valid
    /// endpoint fails here with `bad-config` naming the field.
    pub async fn start(
        self: &Arc<Self>,
        plugin: &Plugin,
        account: &AccountInput,
        grant: &OperatorGrant,
    ) -> Result<Run, CallError> {
        Run::new(self, plugin, account, grant).await
    }
}

/// A setting that makes no valid endpoint, as the form shows it: the field, and what is wrong.
fn bad_config(e: EndpointError) -> CallError {
    let (field, why) = match e {
        EndpointError::MissingField { field } => (field, "is required".to_string()),
        EndpointError::BadValue { field, why } => (field, why),
        other @ (EndpointError::BadHost { .. } | EndpointError::BadTemplate { .. }) => {
            ("host".to_string(), other.to_string())
        }
    };
    CallError::Provider(ProviderError::BadConfig(ConfigError { field, why }))
}

impl Run {
    pub(crate) async fn new(
        runtime: &Arc<Runtime>,
        plugin: &Plugin,
        input: &AccountInput,
        grant: &OperatorGrant,
    ) -> Result<Run, CallError> {
        let d = &plugin.description;
        // An error-level span is recorded whenever any event is, so every line
        // logged during the run names the plugin, its version and the account.
        let span = tracing::error_span!("plugin", plugin = %d.name, version = %d.version, account = %input.id);
        // A field the account leaves empty takes the default the plugin declares.
        let mut settings = input.settings.clone();
        for f in &d.fields {
            if let Some(default) = &f.default_value
                && settings.get(&f.name).is_none_or(|v| v.is_empty())
            {
                settings.insert(f.name.clone(), default.clone());
            }
        }
        // Templates also see what the host provides (the address's domain).
        let mut values = host_values(&input.address);
        values.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        // The operator's grant as it stands for this plugin.
        let grant = grant.for_plugin(&d.name);
        let policy =
            Arc::new(AccountPolicy::new(&plugin.templates, &grant, &values).map_err(bad_config)?);
        let credentials = d
            .endpoints
            .iter()
            .map(|e| credential(e.credential.as_ref(), input))
            .collect::<Vec<_>>();
        let bound = d
            .bindings
            .iter()
            .map(|b| (b.secret.clone(), d.bound_endpoints(&b.secret)))
            .collect();
        let audit = Audit::default();
        let limits = runtime.limits;
        let state = RunState::new(
            runtime,
            policy,
            credentials,
            bound,
            Arc::new(input.secrets.clone()),
            audit.clone(),
        );
        let mut store = Store::new(&runtime.engine, state);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        store.limiter(|s| &mut s.limiter);
        yield_each_tick(&mut store);
        arm(&mut store, limits.call_timeout);
        let instantiate = async {
            match &plugin.pre {
                Pre::V1(pre) => {
                    let instance = pre.instance_pre().instantiate_async(&mut store).await?;
                    v1::Plugin::new(&mut store, &instance).map(|b| (Bindings::V1(b), instance))
                }
                Pre::V2(pre) => {
                    let instance = pre.instance_pre().instantiate_async(&mut store).await?;
                    v2::Plugin::new(&mut store, &instance).map(|b| (Bindings::V2(b), instance))
                }
            }
        }
        .instrument(span.clone());
        let (bindings, instance) =
            match tokio::time::timeout(limits.call_timeout, instantiate).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    return Err(CallError::Crashed(format!(
                        "could not start: {}",
                        first_line(&e)
                    )));
                }
                Err(_) => return Err(CallError::Timeout(limits.call_timeout)),
            };
        let secret_fields: Vec<&str> = d
            .fields
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.name.as_str())
            .collect();
        let account = Account {
            id: input.id.clone(),
            address: input.address.clone(),
            settings: settings
                .iter()
                .filter(|(k, _)| !secret_fields.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secrets: input.secrets.names().map(str::to_string).collect(),
        };
        Ok(Run {
            store,
            bindings,
            instance,
            declarations: plugin.declarations.clone(),
            account,
            session: None,
            limits,
            span,
            audit,
            ended: None,
            health: plugin.health.clone(),
            denials_counted: 0,
        })
    }

    /// `info()`.
    pub async fn info(&mut self) -> Result<PluginInfo, CallError> {
        Ok(self.describe().await?.0)
    }

    /// `info()`, and whether the plugin can push (2.x; false for 1.x).
    pub async fn describe(&mut self) -> Result<(PluginInfo, bool), CallError> {
        self.prepare()?;
        let out = match &self.bindings {
            Bindings::V1(b) => {
                let call = b.mailroom_provider_provider().call_info(&mut self.store);
                guard(self.limits.call_timeout, &self.span, call)
                    .await
                    .map(|r| r.map(|info| (info, false)))
            }
            Bindings::V2(b) => {
                let call = b
                    .mailroom_provider2_1_0_provider()
                    .call_info(&mut self.store);
                guard(self.limits.call_timeout, &self.span, call)
                    .await
                    .map(|r| r.map(v2_info))
            }
        };
        let settled = self.settle(out);
        let (info, push) = self.tally(settled)?;
        let size = info.name.len()
            + info.version.len()
            + info.description.len()
            + info
                .fields
                .iter()
                .map(|f| f.name.len() + f.label.len() + f.help.len())
                .sum::<usize>();
        self.check_size(size)?;
        Ok((info, push))
    }

    /// `secret-bindings()`, where the plugin exports `bindings` (1.1, 2.1).
    pub async fn secret_bindings(&mut self) -> Result<Option<Vec<SecretBinding>>, CallError> {
        let Some(indices) = self.declarations.clone() else {
            return Ok(None);
        };
        self.prepare()?;
        let guest = match indices.load(&mut self.store, &self.instance) {
            Ok(guest) => guest,
            Err(e) => return Err(CallError::Crashed(first_line(&e))),
        };
        let call = guest.call_secret_bindings(&mut self.store);
        let out = guard(self.limits.call_timeout, &self.span, call).await;
        let settled = self.settle(out);
        let declared = self.tally(settled)?;
        let size = declared
            .iter()
            .map(|b| b.secret.len() + b.endpoints.iter().map(String::len).sum::<usize>())
            .sum();
        self.check_size(size)?;
        Ok(Some(
            declared
                .into_iter()
                .map(|b| SecretBinding {
                    secret: b.secret,
                    endpoints: b.endpoints,
                })
                .collect(),
        ))
    }

    /// `verify(account)`: sign in once.
    pub async fn verify(&mut self) -> Result<(), CallError> {
        self.prepare()?;
        let out = match &self.bindings {
            Bindings::V1(b) => {
                let call = b
                    .mailroom_provider_provider()
                    .call_verify(&mut self.store, &self.account);
                guard(self.limits.call_timeout, &self.span, call).await
            }
            Bindings::V2(b) => {
                let account = (&self.account).into();
                let call = b
                    .mailroom_provider2_1_0_provider()
                    .call_verify(&mut self.store, &account);
                guard(self.limits.call_timeout, &self.span, call).await
            }
        };
        let settled = self
            .settle(out)
            .and_then(|r| r.map_err(CallError::Provider));
        self.tally(settled)
    }

    /// `open(account)`: sign in and keep the session for `sync`.
    pub async fn open(&mut self) -> Result<(), CallError> {
        self.prepare()?;
        let out = match &self.bindings {
            Bindings::V1(b) => {
                let call = b
                    .mailroom_provider_provider()
                    .call_open(&mut self.store, &self.account);
                guard(self.limits.call_timeout, &self.span, call).await
            }
            Bindings::V2(b) => {
                let account = (&self.account).into();
                let call = b
                    .mailroom_provider2_1_0_provider()
                    .call_open(&mut self.store, &account);
                guard(self.limits.call_timeout, &self.span, call).await
            }
        };
        let settled = self
            .settle(out)
            .and_then(|r| r.map_err(CallError::Provider));
        self.session = Some(self.tally(settled)?);
        Ok(())
    }

    fn session(&self) -> Result<ResourceAny, CallError> {
        self.session
            .ok_or_else(|| CallError::Ended("no session: call open() first".into()))
    }

    /// `session.sync(cursor, window)`: one page.
    pub async fn sync(&mut self, cursor: Option<&str>, window: &Window) -> Result<Page, CallError> {
        self.prepare()?;
        let session = self.session()?;
        let out = match &self.bindings {
            Bindings::V1(b) => {
                let provider = b.mailroom_provider_provider().session();
                let call = provider.call_sync(&mut self.store, session, cursor, window);
                guard(self.limits.call_timeout, &self.span, call).await
            }
            Bindings::V2(b) => {
                let provider = b.mailroom_provider2_1_0_provider().session();
                let window = window.into();
                let call = provider.call_sync(&mut self.store, session, cursor, &window);
                let out = guard(self.limits.call_timeout, &self.span, call).await;
                out.map(|r| r.map(|page| page.map(Page::from)))
            }
        };
        self.page(out)
    }

    /// `session.fetch(ids)`: messages again by the ids an earlier sync returned.
    pub async fn fetch(&mut self, ids: &[String]) -> Result<Page, CallError> {
        self.prepare()?;
        let session = self.session()?;
        let out = match &self.bindings {
            Bindings::V1(b) => {
                let provider = b.mailroom_provider_provider().session();
                let call = provider.call_fetch(&mut self.store, session, ids);
                guard(self.limits.call_timeout, &self.span, call).await
            }
            Bindings::V2(b) => {
                let provider = b.mailroom_provider2_1_0_provider().session();
                let call = provider.call_fetch(&mut self.store, session, ids);
                let out = guard(self.limits.call_timeout, &self.span, call).await;
                out.map(|r| r.map(|page| page.map(Page::from)))
            }
        };
        self.page(out)
    }

    /// `session.wait(cursor, seconds)` (2.x): whether the mailbox changed
    /// after `cursor` within `seconds`. A 1.x plugin cannot push: `false` at
    /// once, and the host polls. The call may take `seconds` beyond the
    /// per-call limit.
    pub async fn wait(&mut self, cursor: &str, seconds: u32) -> Result<bool, CallError> {
        self.prepare()?;
        let session = self.session()?;
        let Bindings::V2(b) = &self.bindings else {
            return Ok(false);
        };
        let waiting = Duration::from_secs(u64::from(seconds));
        arm(&mut self.store, self.limits.call_timeout + waiting);
        let provider = b.mailroom_provider2_1_0_provider().session();
        let call = provider.call_wait(&mut self.store, session, cursor, seconds);
        let out = guard(self.limits.call_timeout + waiting, &self.span, call).await;
        let settled = self
            .settle(out)
            .and_then(|r| r.map_err(CallError::Provider));
        self.tally(settled)
    }

    /// `send(account, message)`.
    pub async fn send(&mut self, message: &Outgoing) -> Result<Option<String>, CallError> {
        self.prepare()?;
        let out = match &self.bindings {
            Bindings::V1(b) => {
                let call = b.mailroom_provider_provider().call_send(
                    &mut self.store,
                    &self.account,
                    message,
                );
                guard(self.limits.call_timeout, &self.span, call).await
            }
            Bindings::V2(b) => {
                let (account, message) = ((&self.account).into(), message.into());
                let call = b.mailroom_provider2_1_0_provider().call_send(
                    &mut self.store,
                    &account,
                    &message,
                );
                guard(self.limits.call_timeout, &self.span, call).await
            }
        };
        let settled = self
            .settle(out)
            .and_then(|r| r.map_err(CallError::Provider));
        self.tally(settled)
    }

    /// Close the session (the plugin may sign out), ending the run cleanly.
    pub async fn close(mut self) -> Result<(), CallError> {
        if let Some(session) = self.session.take()
            && self.prepare().is_ok()
        {
            let call = session.resource_drop_async(&mut self.store);
            let out = guard(self.limits.call_timeout, &self.span, call).await;
            self.settle(out)?;
        }
        Ok(())
    }

    /// Network accesses refused during this run.
    pub fn denials(&self) -> Vec<Denial> {
        self.audit.denials()
    }

    /// A `sync` or `fetch` answer, checked for size.
    fn page(
        &mut self,
        out: Result<wasmtime::Result<Result<Page, ProviderError>>, tokio::time::error::Elapsed>,
    ) -> Result<Page, CallError> {
        let settled = self
            .settle(out)
            .and_then(|r| r.map_err(CallError::Provider))
            .and_then(|page| {
                self.check_size(page_bytes(&page))?;
                Ok(page)
            });
        self.tally(settled)
    }

    /// Count a finished call, and the accesses refused during it, in the
    /// plugin version's health.
    fn tally<R>(&mut self, result: Result<R, CallError>) -> Result<R, CallError> {
        let denials = self.audit.count();
        let new = denials.saturating_sub(self.denials_counted);
        self.denials_counted = denials;
        let crashed = result
            .as_ref()
            .is_err_and(|e| !matches!(e, CallError::Provider(_)));
        self.health.record(
            result.as_ref().err().map(ToString::to_string),
            crashed,
            new as u64,
        );
        result
    }

    fn prepare(&mut self) -> Result<(), CallError> {
        if let Some(why) = &self.ended {
            return Err(CallError::Ended(why.clone()));
        }
        arm(&mut self.store, self.limits.call_timeout);
        Ok(())
    }

    fn settle<R>(
        &mut self,
        out: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, CallError> {
        let err = match out {
            Ok(Ok(r)) => return Ok(r),
            Ok(Err(e)) => self.classify(e),
            Err(_) => CallError::Timeout(self.limits.call_timeout),
        };
        Err(self.end(err))
    }

    fn classify(&self, e: wasmtime::Error) -> CallError {
        let state = self.store.data();
        if state.limiter.exceeded {
            return CallError::MemoryExceeded {
                limit: state.limiter.max_bytes,
            };
        }
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return CallError::Timeout(self.limits.call_timeout);
        }
        if let Some(exit) = e.downcast_ref::<I32Exit>() {
            return CallError::Crashed(format!("exited with status {}", exit.0));
        }
        let said = state.stderr.last_lines();
        let trap = match e.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => first_line(&e),
        };
        CallError::Crashed(if said.is_empty() {
            trap
        } else {
            format!("{said} ({trap})")
        })
    }

    fn check_size(&mut self, size: usize) -> Result<(), CallError> {
        if size > self.limits.result_bytes {
            let err = CallError::ResultTooLarge {
                size,
                limit: self.limits.result_bytes,
            };
            return Err(self.end(err));
        }
        Ok(())
    }

    fn end(&mut self, err: CallError) -> CallError {
        if err.ends_run() {
            self.span
                .in_scope(|| tracing::warn!("plugin run ended: {err}"));
            self.ended = Some(format!("the run already ended: {err}"));
        }
        err
    }
}

/// Make a store's plugin code give its worker back at every epoch tick
/// ([`crate::engine::EPOCH_TICK`]): a plugin spinning in a loop yields to the executor, so
/// it never holds a tokio worker from other accounts and the pages; past the
/// store's CPU deadline ([`arm`]) it traps with `Interrupt`, a timeout.
pub(crate) fn yield_each_tick(store: &mut Store<RunState>) {
    store.epoch_deadline_callback(|ctx| {
        Ok(if Instant::now() >= ctx.data().cpu_deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
    arm(store, Duration::ZERO);
}

/// Give the next call `timeout` of running time from now.
pub(crate) fn arm(store: &mut Store<RunState>, timeout: Duration) {
    store.data_mut().cpu_deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
}

async fn guard<R>(
    timeout: Duration,
    span: &tracing::Span,
    call: impl Future<Output = wasmtime::Result<R>>,
) -> Result<wasmtime::Result<R>, tokio::time::error::Elapsed> {
    tokio::time::timeout(timeout, call.instrument(span.clone())).await
}

/// The `Authorization` value the host attaches for one declared endpoint.
fn credential(credential: Option<&Credential>, account: &AccountInput) -> Option<Secret> {
    match credential? {
        Credential::Bearer(field) => account.secrets.get(field).map(bearer_credential),
        Credential::Basic(b) => {
            let user = account
                .settings
                .get(&b.user_field)
                .filter(|u| !u.is_empty())
                .unwrap_or(&account.address);
            account
                .secrets
                .get(&b.secret_field)
                .map(|password| basic_credential(user, password))
        }
    }
}

/// What a page weighs: message bytes and every string in it.
fn page_bytes(page: &Page) -> usize {
    let messages: usize = page
        .messages
        .iter()
        .map(|m| {
            m.raw.len()
                + m.id.len()
                + m.folder.len()
                + m.thread_id.as_ref().map_or(0, String::len)
                + m.flags.iter().map(String::len).sum::<usize>()
        })
        .sum();
    let deletions: usize = page
        .deletions
        .iter()
        .map(|d| d.id.len() + d.folder.len())
        .sum();
    let failed: usize = page.failed.iter().map(|f| f.id.len() + f.why.len()).sum();
    messages + deletions + failed + page.cursor.len()
}

impl RunState {
    /// The sandbox of one run: the account's policy and secrets, the host's
    /// TLS roots, stdout and stderr captured, no socket or name lookup but
    /// through the policy, and the runtime's memory limit.
    pub(crate) fn new(
        runtime: &Runtime,
        policy: Arc<AccountPolicy>,
        credentials: Vec<Option<Secret>>,
        bound: BTreeMap<String, Vec<usize>>,
        secrets: Arc<Secrets>,
        audit: Audit,
    ) -> RunState {
        let budget = ConnectionBudget::new(runtime.limits.connections);
        // Every form of every secret, and the credentials the host attaches
        // as they are on the wire (a Basic one holds the user name too).
        let mut redactor = secrets.redactor();
        for credential in credentials.iter().flatten() {
            let value = credential.expose();
            let token = value.split_once(' ').map_or(value, |(_, token)| token);
            redactor.add(token.as_bytes());
        }
        let stderr = Captured::new(CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(stderr.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        RunState {
            wasi,
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(MAX_FIELDS_BYTES);
                http
            },
            hooks: HttpHooks::new(
                policy.clone(),
                Arc::new(credentials),
                redactor.clone(),
                runtime.tls.clone(),
                audit.clone(),
                budget.clone(),
            ),
            net: NetCtx::new(
                policy,
                secrets,
                bound,
                redactor,
                runtime.tls.clone(),
                audit,
                budget,
            ),
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES);
                table
            },
            limiter: MemoryLimiter {
                max_bytes: runtime.limits.memory_bytes,
                exceeded: false,
            },
            stderr,
            log_lines: 0,
            cpu_deadline: Instant::now(),
        }
    }
}
