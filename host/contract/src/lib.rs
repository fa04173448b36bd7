//! Host-side bindings for the `mailroom:provider` contract in `wit/`, and
//! for the `mailroom:analyzer` contract in `wit/analyzer/`.
//!
//! One `bindgen!` per major version of each contract lives here, and nothing
//! else: the capability crates (`mailroom-net`, `mailroom-runtime`'s log)
//! implement the generated `Host` traits, and the runtime calls the generated
//! exports. Only the WIT file decides what these types are.

/// Version 1 of the contract: `mailroom:provider@1.x`.
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "mailroom:provider/plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi_http::p2::bindings,
        },
    });

    pub use exports::mailroom::provider::provider;
    pub use mailroom::provider::{log, net, types};
}

/// The contract version the v1 bindings implement.
pub const CONTRACT_V1: &str = "mailroom:provider@1.0.0";

/// The interface name prefix every v1 plugin exports.
pub const PROVIDER_INTERFACE_V1: &str = "mailroom:provider/provider@1";

/// Version 1 of the analyser contract: `mailroom:analyzer@1.x`.
pub mod analyzer_v1 {
    wasmtime::component::bindgen!({
        path: "../../wit/analyzer",
        world: "mailroom:analyzer/analyzer",
        exports: { default: async },
    });

    pub use exports::mailroom::analyzer::sentiment;
}

/// The analyser contract version the bindings implement.
pub const ANALYZER_V1: &str = "mailroom:analyzer@1.0.0";
