//! `mailroom-plugin-sdk`: what Mailroom provider plugins share, whatever
//! service they speak to.
//!
//! - [`http`]: JSON over HTTPS through `wasi:http`, failures sorted.
//! - [`cursor`]: a versioned, opaque cursor from any serde state.
//! - [`paging`]: cutting a newest-first list of ids into pages.
//! - with the `contract` feature, [`contract`]: the generated bindings of
//!   `mailroom:provider@1.0.0` (and `export_provider!`), typed-error helpers,
//!   and a line-oriented [`contract::Stream`] over the host's connections.
//!
//! It decides nothing about any service: each plugin maps failures to the
//! contract's typed errors in its service's words.

#[cfg(feature = "contract")]
pub mod contract;
pub mod cursor;
pub mod http;
pub mod paging;
