//! The plugin runtime: where provider components are compiled, kept and run.
//!
//! - [`Runtime`] owns the one wasmtime engine (component model, async,
//!   pooling allocator, epoch interruption), the linker with exactly the
//!   imports a plugin may have, the on-disk cache of compiled components and
//!   the TLS roots.
//! - [`Plugin`] is one checked, compiled version of a plugin: its description,
//!   digest, a ready-to-instantiate `InstancePre` and its [`Health`]
//!   (calls, failures and refused accesses since it was loaded).
//! - [`Registry`] maps plugin names to their current version and swaps a new
//!   version in atomically; runs already going keep the version they started with.
//! - [`Analyzer`] is a loaded sentiment analyser (`mailroom:analyzer`), run
//!   in a sandbox that grants nothing, a fresh instance per batch of texts.
//! - [`Run`] is one instance serving one account for one sync run, under the
//!   per-call [`Limits`]. A trap, a timeout or an over-limit ends that run
//!   only, with a typed [`CallError`].
//!
//! The runtime knows nothing of storage, scheduling or mail: the sync engine
//! drives it. It decides nothing about grants: `mailroom-policy` does.

mod analyzer;
mod cache;
mod engine;
mod error;
mod health;
mod plugin;
mod registry;
mod run;
mod state;

pub use analyzer::{Analyzer, AnalyzerInfo, Sentiment, SentimentLabel};
pub use engine::{Limits, Runtime, RuntimeConfig};
pub use error::{CallError, LoadError};
pub use health::{Health, HealthReport};
pub use plugin::{Plugin, PluginDescription, SecretBinding};
pub use registry::Registry;
pub use run::{AccountInput, Run};

pub use mailroom_contract::v1::provider::{
    Credential, Deletion, Field, Message, MessageFailure, Outgoing, Page, PluginInfo, Progress,
    ProviderError, Window,
};
pub use mailroom_contract::{CONTRACT_V1, v1::types::ConfigError};
pub use mailroom_net::Audit;
pub use mailroom_policy::{Denial, OperatorGrant, Secret, Secrets, without_addresses};
