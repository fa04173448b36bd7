//! The runtime's errors: loading a plugin, and calling one.

use std::time::Duration;

use mailroom_contract::v1::provider::ProviderError;

/// Why a plugin file could not be loaded. Each message is one line that says
/// what is wrong with the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// Not WebAssembly at all.
    #[error("not a WebAssembly file")]
    NotWasm,
    /// A core module, not a component.
    #[error("a core WebAssembly module, not a component (build for the wasm32-wasip2 target)")]
    CoreModule,
    /// A component that implements no (or another) provider contract.
    #[error("{0}")]
    WrongContract(String),
    /// The component is malformed or imports something the host does not provide.
    #[error("{0}")]
    Link(String),
    /// Compilation failed.
    #[error("does not compile: {0}")]
    Compile(String),
    /// `info` returned something unusable.
    #[error("invalid plugin info: {0}")]
    BadInfo(String),
    /// `info` itself failed.
    #[error("info() failed: {0}")]
    InfoFailed(String),
    /// The compiled-component cache could not be used.
    #[error("component cache: {0}")]
    Cache(String),
    /// The engine could not be set up.
    #[error("runtime setup: {0}")]
    Engine(String),
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin returned a typed error: the normal way to fail.
    #[error("{}", describe(.0))]
    Provider(ProviderError),
    /// The call took longer than allowed (CPU or waiting); the instance was dropped.
    #[error("timed out after {0:?}; the plugin instance was stopped")]
    Timeout(Duration),
    /// The plugin grew its memory past the limit; the instance was dropped.
    #[error("exceeded its memory limit of {limit} bytes; the plugin instance was stopped")]
    MemoryExceeded {
        /// The limit in bytes.
        limit: usize,
    },
    /// The plugin returned more than a call may return.
    #[error("returned {size} bytes, over the limit of {limit} bytes per call")]
    ResultTooLarge {
        /// What it returned.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin crashed (panic, trap); the instance was dropped.
    #[error("crashed: {0}")]
    Crashed(String),
    /// The run already ended (after a crash or timeout, or `open` was never called).
    #[error("{0}")]
    Ended(String),
}

impl CallError {
    /// Whether the instance is gone after this error.
    pub fn ends_run(&self) -> bool {
        !matches!(self, CallError::Provider(_))
    }
}

/// One line for a provider error, as a user or operator reads it.
pub fn describe(e: &ProviderError) -> String {
    match e {
        ProviderError::AuthFailed(why) => format!("sign-in failed: {why}"),
        ProviderError::Unreachable(why) => format!("server unreachable: {why}"),
        ProviderError::RateLimited(secs) => format!("rate limited: retry after {secs} s"),
        ProviderError::CursorExpired => {
            "the sync position expired; the window will be synced again".into()
        }
        ProviderError::BadConfig(c) => format!("{}: {}", c.field, c.why),
        ProviderError::MessageFailed(m) => format!("message {}: {}", m.id, m.why),
        ProviderError::Other(why) => why.clone(),
    }
}
