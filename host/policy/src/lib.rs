//! What a plugin may do on behalf of one account.
//!
//! A plugin declares endpoint templates (`tls://{imap_host}:{imap_port}`); the
//! operator grants all or some of them, plus any private networks the plugin
//! may reach; an account's settings fill the templates in. The result is an
//! [`AccountPolicy`]: the exact (scheme, host, port) triples a plugin may
//! connect to for that account, checked by name before DNS ([`AccountPolicy::check_endpoint`])
//! and by resolved address after it ([`AccountPolicy::check_address`]).
//!
//! This crate also owns [`Secrets`]: the credentials a plugin can use but never
//! read, the [`Redactor`] that blanks them out of anything read back, and the
//! [`WireGuard`] that lets a secret onto a connection only inside a sign-in step.
//!
//! It decides; it does no I/O. Opening connections is `mailroom-net`'s job,
//! sending HTTP is `mailroom-http`'s.

mod address;
mod endpoint;
mod grant;
mod secret;
mod wire;

pub use address::{AddressClass, classify, without_addresses};
pub use endpoint::{Endpoint, EndpointError, HOST_VALUES, Scheme, Template, host_values};
pub use grant::{AccountPolicy, Denial, OperatorGrant, Origin};
pub use secret::{Redactor, Secret, SecretEncoding, Secrets};
pub use wire::{Protocol, Refusal, WireGuard};
