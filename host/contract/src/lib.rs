//! Host-side bindings for the `mailroom:provider` contract in `wit/`, and
//! for the `mailroom:analyzer` contract in `wit/analyzer/`.
//!
//! One `bindgen!` per major version of each contract lives here, with the
//! conversions from a newer major's records to the host's own (1.x) ones,
//! and nothing else: the capability crates (`mailroom-net`,
//! `mailroom-runtime`'s log) implement the generated `Host` traits, and the
//! runtime calls the generated exports. Only the WIT files decide what these
//! types are: `wit/provider.wit` (1.1) and `wit/v2/provider.wit` (2.1, whose
//! imports are 1.1's, so one implementation serves both). Each binds the
//! major's `core` world (what a x.0 plugin is); the `bindings` export that
//! x.1 plugins add is bound once, by [`declarations`], and looked up where a
//! plugin has it.

/// Version 1 of the contract: `mailroom:provider@1.x`.
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "mailroom:provider/core",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi_http::p2::bindings,
        },
    });

    pub use exports::mailroom::provider::provider;
    pub use mailroom::provider::{log, net, types};
    /// The instance's exports, and an instance ready to make (the world is `core`).
    pub use {Core as Plugin, CorePre as PluginPre};
}

/// Version 2 of the contract: `mailroom:provider@2.x` (push: `plugin-info.push`
/// and `session.wait`). Its imports are 1.x's, bound once, by [`v1`]; only
/// the exported `provider` interface is its own.
pub mod v2 {
    wasmtime::component::bindgen!({
        path: ["../../wit", "../../wit/v2"],
        world: "mailroom:provider/core@2.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi_http::p2::bindings,
            "mailroom:provider/types@1.1.0": super::v1::types,
            "mailroom:provider/net@1.1.0": super::v1::net,
            "mailroom:provider/log@1.1.0": super::v1::log,
        },
    });

    pub use exports::mailroom::provider2_1_0::provider;
    /// The instance's exports, and an instance ready to make (the world is `core`).
    pub use {Core as Plugin, CorePre as PluginPre};
}

/// The `bindings` export of 1.1 and 2.1 plugins: where each secret may go.
pub mod declarations {
    wasmtime::component::bindgen!({
        inline: "
            package mailroom:host;
            world declarations {
                export mailroom:provider/bindings@1.1.0;
            }
        ",
        path: "../../wit",
        world: "mailroom:host/declarations",
        exports: { default: async },
    });

    pub use exports::mailroom::provider::bindings;
}

/// The interface name prefix of the `bindings` export.
pub const BINDINGS_INTERFACE: &str = "mailroom:provider/bindings@1";

/// The contract version the v1 bindings implement.
pub const CONTRACT_V1: &str = "mailroom:provider@1.1.0";

/// The interface name prefix every v1 plugin exports.
pub const PROVIDER_INTERFACE_V1: &str = "mailroom:provider/provider@1";

/// The contract version the v2 bindings implement.
pub const CONTRACT_V2: &str = "mailroom:provider@2.1.0";

/// The interface name prefix every v2 plugin exports.
pub const PROVIDER_INTERFACE_V2: &str = "mailroom:provider/provider@2";

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

/// Between the 2.x records and the host's own (1.x) ones: the shapes are the
/// same but for `plugin-info.push`, which [`v2_info`] hands back beside.
mod between {
    use super::v1::provider as one;
    use super::v2::provider as two;

    impl From<two::Field> for one::Field {
        fn from(f: two::Field) -> Self {
            one::Field {
                name: f.name,
                label: f.label,
                help: f.help,
                secret: f.secret,
                required: f.required,
                default_value: f.default_value,
            }
        }
    }

    impl From<two::Credential> for one::Credential {
        fn from(c: two::Credential) -> Self {
            match c {
                two::Credential::Bearer(secret) => one::Credential::Bearer(secret),
                two::Credential::Basic(b) => one::Credential::Basic(one::BasicCredential {
                    user_field: b.user_field,
                    secret_field: b.secret_field,
                }),
            }
        }
    }

    impl From<two::Endpoint> for one::Endpoint {
        fn from(e: two::Endpoint) -> Self {
            one::Endpoint {
                template: e.template,
                purpose: e.purpose,
                credential: e.credential.map(Into::into),
            }
        }
    }

    impl From<two::Message> for one::Message {
        fn from(m: two::Message) -> Self {
            one::Message {
                id: m.id,
                thread_id: m.thread_id,
                folder: m.folder,
                flags: m.flags,
                received_at: m.received_at,
                raw: m.raw,
            }
        }
    }

    impl From<two::Page> for one::Page {
        fn from(p: two::Page) -> Self {
            one::Page {
                messages: p.messages.into_iter().map(Into::into).collect(),
                deletions: p
                    .deletions
                    .into_iter()
                    .map(|d| one::Deletion {
                        id: d.id,
                        folder: d.folder,
                    })
                    .collect(),
                failed: p.failed,
                cursor: p.cursor,
                more: p.more,
                progress: p.progress.map(|g| one::Progress {
                    done: g.done,
                    total: g.total,
                }),
            }
        }
    }

    impl From<&one::Account> for two::Account {
        fn from(a: &one::Account) -> Self {
            two::Account {
                id: a.id.clone(),
                address: a.address.clone(),
                settings: a.settings.clone(),
                secrets: a.secrets.clone(),
            }
        }
    }

    impl From<&one::Window> for two::Window {
        fn from(w: &one::Window) -> Self {
            two::Window {
                since: w.since,
                skip: w.skip.clone(),
            }
        }
    }

    impl From<&one::Outgoing> for two::Outgoing {
        fn from(o: &one::Outgoing) -> Self {
            two::Outgoing {
                sender: o.sender.clone(),
                recipients: o.recipients.clone(),
                raw: o.raw.clone(),
            }
        }
    }

    /// A 2.x `plugin-info` as the host's, and whether the plugin can push.
    pub fn v2_info(i: two::PluginInfo) -> (one::PluginInfo, bool) {
        (
            one::PluginInfo {
                name: i.name,
                version: i.version,
                description: i.description,
                fields: i.fields.into_iter().map(Into::into).collect(),
                endpoints: i.endpoints.into_iter().map(Into::into).collect(),
            },
            i.push,
        )
    }
}

pub use between::v2_info;
