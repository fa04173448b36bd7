//! Network access for plugins, opened and checked by the host.
//!
//! This crate owns every socket a plugin uses, directly (the
//! `mailroom:provider/net` interface, in [`stream`]) or through HTTP
//! (`mailroom-http` calls [`connect`] and [`TlsConfig`]). Each connection is
//! checked against the account's [`AccountPolicy`] by name before DNS, each
//! resolved address is checked again, and the socket is opened to exactly the
//! checked address, so a name that re-resolves elsewhere (DNS rebinding) gains
//! nothing. TLS uses the host's trusted roots.
//!
//! It must not decide what is granted (that is `mailroom-policy`) and must not
//! know about plugins' exports (that is `mailroom-runtime`).

mod budget;
mod connect;
mod signin;
mod stream;
mod tls;

pub use budget::{ConnectionBudget, ConnectionPermit};
pub use connect::{Audit, ConnectError, connect};
pub use stream::{Net, NetCtx, NetView, WasiNetView, add_to_linker};
pub use tls::{TlsConfig, TlsError};

pub use mailroom_policy::AccountPolicy;
