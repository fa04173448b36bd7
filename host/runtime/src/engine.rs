//! The engine, the linker and the epoch clock: built once per host process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mailroom_net::TlsConfig;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::Cache;
use crate::error::LoadError;
use crate::state::{RunState, link};

/// How often the epoch advances: the resolution of call deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits on every call into a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one call may take, CPU or waiting on the network.
    pub call_timeout: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Bytes one call may return (messages and strings summed).
    pub result_bytes: usize,
    /// Connections one instance may hold open at once.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(120),
            memory_bytes: 256 << 20,
            result_bytes: 64 << 20,
            connections: 4,
        }
    }
}

/// What the operator configures about the runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// A PEM file of extra CA certificates trusted for plugin TLS.
    pub extra_ca: Option<PathBuf>,
    /// Per-call limits.
    pub limits: Limits,
    /// How many plugin instances may be alive at once (pool size).
    pub max_instances: Option<u32>,
}

/// The host's plugin runtime. Create one per process and share it.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<RunState>,
    pub(crate) cache: Option<Cache>,
    pub(crate) tls: TlsConfig,
    pub(crate) limits: Limits,
    _ticker: Ticker,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Runtime {
    /// Build the engine (pooling allocator, epoch interruption), link the
    /// plugin imports, open the cache and load the TLS roots.
    pub fn new(config: RuntimeConfig) -> Result<Arc<Self>, LoadError> {
        let limits = config.limits;
        let instances = config.max_instances.unwrap_or(128);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .max_core_instances_per_component(16)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_memory_size(limits.memory_bytes.next_multiple_of(64 << 10))
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(256 << 10)
            .decommit_batch_size(16);
        // Where the kernel can say which pages an instance dirtied (Linux 6.7+),
        // reset just those and keep them resident for the next instance: no
        // page faults on reuse. Elsewhere, keep only the first 64 KiB resident,
        // since it is reset in full every time.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.linear_memory_keep_resident(8 << 20)
                .pagemap_scan(wasmtime::Enabled::Yes);
        } else {
            pool.linear_memory_keep_resident(64 << 10);
        }
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| LoadError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        link(&mut linker).map_err(|e| LoadError::Engine(e.to_string()))?;
        let cache = config
            .cache_dir
            .map(|dir| Cache::open(dir, &engine))
            .transpose()?;
        let tls = TlsConfig::new(config.extra_ca.as_deref())
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        let ticker = Self::start_ticker(&engine);
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache,
            tls,
            limits,
            _ticker: ticker,
        }))
    }

    fn start_ticker(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("mailroom-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Ticker { stop, thread }
    }

    /// The per-call limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}
