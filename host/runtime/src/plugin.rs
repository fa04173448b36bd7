//! One compiled, checked version of a plugin.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mailroom_contract::declarations::bindings::GuestIndices as Declarations;
use mailroom_contract::v1::provider::{Credential, Endpoint, Field, PluginInfo};
use mailroom_contract::{CONTRACT_V1, CONTRACT_V2, PROVIDER_INTERFACE_V1, PROVIDER_INTERFACE_V2};
use mailroom_contract::{v1, v2};
use mailroom_policy::Scheme;
use mailroom_policy::{HOST_VALUES, OperatorGrant, Secrets, Template};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::cache::first_line;
use crate::engine::Runtime;
use crate::error::LoadError;
use crate::health::{Health, HealthReport};
use crate::run::{AccountInput, Run};
use crate::state::RunState;

/// What an operator sees of a plugin version.
#[derive(Debug, Clone)]
pub struct PluginDescription {
    /// From `info`.
    pub name: String,
    /// From `info`.
    pub version: String,
    /// From `info`.
    pub description: String,
    /// The contract it implements, e.g. `mailroom:provider@1.1.0`.
    pub contract: String,
    /// `sha256:` and the hex digest of the component file.
    pub digest: String,
    /// The account form.
    pub fields: Vec<Field>,
    /// The endpoints it declares.
    pub endpoints: Vec<Endpoint>,
    /// The interfaces it imports.
    pub imports: Vec<String>,
    /// Whether it can tell the host of new mail as it arrives (2.x `push`;
    /// always false for 1.x).
    pub push: bool,
    /// Where each secret field may go: as the plugin declares it (1.1 and
    /// 2.1 `bindings`), or for an x.0 plugin, every `tls`/`tcp` endpoint and
    /// each HTTP endpoint whose credential names the secret.
    pub bindings: Vec<SecretBinding>,
    /// Whether `bindings` are the plugin's own declaration.
    pub bindings_declared: bool,
}

/// One secret field and the declared endpoint templates it may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretBinding {
    /// The secret field.
    pub secret: String,
    /// Endpoint templates, as declared.
    pub endpoints: Vec<String>,
}

impl PluginDescription {
    /// The indices of the declared endpoints `secret` may be sent to.
    pub fn bound_endpoints(&self, secret: &str) -> Vec<usize> {
        let Some(binding) = self.bindings.iter().find(|b| b.secret == secret) else {
            return Vec::new();
        };
        self.endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| binding.endpoints.contains(&e.template))
            .map(|(i, _)| i)
            .collect()
    }
}

/// A plugin ready to instantiate, with the binding of its contract's major
/// version (one binding per major).
pub(crate) enum Pre {
    /// `mailroom:provider@1.x`.
    V1(v1::PluginPre<RunState>),
    /// `mailroom:provider@2.x`.
    V2(v2::PluginPre<RunState>),
}

/// A plugin version ready to run.
pub struct Plugin {
    pub(crate) description: PluginDescription,
    pub(crate) templates: Vec<Template>,
    pub(crate) pre: Pre,
    /// The `bindings` export, where the plugin has one.
    pub(crate) declarations: Option<Declarations>,
    pub(crate) health: Arc<Health>,
}

impl Plugin {
    /// What it has done since it was loaded.
    pub fn health(&self) -> HealthReport {
        self.health.report()
    }

    /// Its description.
    pub fn description(&self) -> &PluginDescription {
        &self.description
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.description.name
    }

    /// Its version.
    pub fn version(&self) -> &str {
        &self.description.version
    }
}

impl Runtime {
    /// Compile (or fetch from the cache), check and describe a plugin file.
    /// Compiling runs on the calling thread and can take a while: callers on
    /// a hot path go through [`crate::Registry::install`], which moves it aside.
    pub async fn load(self: &Arc<Self>, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let (component, digest) = self.compile(bytes)?;
        let (contract, imports) = self.inspect(&component)?;
        let instance = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(first_line(&e)))?;
        let declarations = Declarations::new(&instance).ok();
        let pre = if contract.starts_with("mailroom:provider@2") {
            v2::PluginPre::new(instance).map(Pre::V2)
        } else {
            v1::PluginPre::new(instance).map(Pre::V1)
        }
        .map_err(|e| LoadError::Link(first_line(&e)))?;
        // Instantiate once, before anything is known of it but its exports,
        // and ask it what it is.
        let probe = Plugin {
            description: PluginDescription {
                name: "(loading)".into(),
                version: String::new(),
                description: String::new(),
                contract,
                digest,
                fields: vec![],
                endpoints: vec![],
                imports,
                push: false,
                bindings: vec![],
                bindings_declared: false,
            },
            templates: vec![],
            pre,
            declarations,
            health: Arc::default(),
        };
        let (info, push, declared) = self.call_info(&probe).await?;
        let templates = validate(&info)?;
        let bindings_declared = declared.is_some();
        let bindings = match declared {
            Some(declared) => validate_bindings(&info, declared)?,
            None => default_bindings(&info),
        };
        let Plugin {
            description,
            pre,
            declarations,
            ..
        } = probe;
        Ok(Arc::new(Plugin {
            description: PluginDescription {
                name: info.name,
                version: info.version,
                description: info.description,
                fields: info.fields,
                endpoints: info.endpoints,
                push,
                bindings,
                bindings_declared,
                ..description
            },
            templates,
            pre,
            declarations,
            health: Arc::default(),
        }))
    }

    /// Compile from bytes, with the on-disk cache when configured.
    pub(crate) fn compile(&self, bytes: &[u8]) -> Result<(Component, String), LoadError> {
        const MAGIC: &[u8] = b"\0asm";
        const COMPONENT_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(LoadError::NotWasm);
        }
        if bytes[4..8] != COMPONENT_LAYER {
            return Err(LoadError::CoreModule);
        }
        let digest = hex::encode(Sha256::digest(bytes));
        let component = match &self.cache {
            Some(cache) => cache.load(&self.engine, bytes, &digest)?,
            None => Component::new(&self.engine, bytes)
                .map_err(|e| LoadError::Compile(first_line(&e)))?,
        };
        Ok((component, format!("sha256:{digest}")))
    }

    /// The contract the component exports, and its imports; refuses other
    /// contracts with a one-line reason.
    fn inspect(&self, component: &Component) -> Result<(String, Vec<String>), LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .map(|(n, _)| n.to_string())
            .collect();
        let contract = match exports
            .iter()
            .find(|e| e.starts_with(PROVIDER_INTERFACE_V1) || e.starts_with(PROVIDER_INTERFACE_V2))
        {
            Some(export) => export.replace("/provider@", "@"),
            None => {
                let other = exports
                    .iter()
                    .find(|e| e.starts_with("mailroom:provider/provider@"));
                return Err(LoadError::WrongContract(match other {
                    Some(e) => format!(
                        "implements {}, but this host speaks {CONTRACT_V1} (1.x) and {CONTRACT_V2} (2.x)",
                        e.replace("/provider@", "@")
                    ),
                    None => format!(
                        "exports no mailroom:provider/provider interface, so it is not a Mailroom provider plugin (it exports: {})",
                        if exports.is_empty() {
                            "nothing".into()
                        } else {
                            exports.join(", ")
                        }
                    ),
                }));
            }
        };
        Ok((contract, imports))
    }

    /// Instantiate once, with no account and no grants, and ask for `info`
    /// (and, of a 2.x plugin, whether it can push; of a plugin that exports
    /// them, its secret bindings).
    async fn call_info(
        self: &Arc<Self>,
        plugin: &Plugin,
    ) -> Result<(PluginInfo, bool, Option<Vec<SecretBinding>>), LoadError> {
        let account = AccountInput {
            id: "load-check".into(),
            address: String::new(),
            settings: BTreeMap::new(),
            secrets: Secrets::new(),
        };
        let grant = OperatorGrant {
            endpoints: Some(vec![]),
            ..OperatorGrant::default()
        };
        let mut run = Run::new(self, plugin, &account, &grant)
            .await
            .map_err(|e| LoadError::InfoFailed(e.to_string()))?;
        let (info, push) = run
            .describe()
            .await
            .map_err(|e| LoadError::InfoFailed(e.to_string()))?;
        let bindings = run
            .secret_bindings()
            .await
            .map_err(|e| LoadError::InfoFailed(format!("secret-bindings: {e}")))?;
        Ok((info, push, bindings))
    }
}

/// Check `info` and parse its endpoint templates.
fn validate(info: &PluginInfo) -> Result<Vec<Template>, LoadError> {
    let bad = |why: String| Err(LoadError::BadInfo(why));
    let name_ok = |s: &str, extra: u8| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == extra)
    };
    if !name_ok(&info.name, b'-') {
        return bad(format!(
            "name `{}` must be 1-64 of a-z, 0-9 and -",
            info.name
        ));
    }
    let parts: Vec<&str> = info
        .version
        .split(['-', '+'])
        .next()
        .unwrap_or("")
        .split('.')
        .collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || p.parse::<u64>().is_err())
    {
        return bad(format!(
            "version `{}` is not a semantic version (1.2.3)",
            info.version
        ));
    }
    let mut fields = BTreeMap::new();
    for f in &info.fields {
        if !name_ok(&f.name, b'_') {
            return bad(format!("field name `{}` must be of a-z, 0-9 and _", f.name));
        }
        if HOST_VALUES.contains(&f.name.as_str()) {
            return bad(format!("field name `{}` is the host's own", f.name));
        }
        if fields.insert(f.name.as_str(), f.secret).is_some() {
            return bad(format!("field `{}` is declared twice", f.name));
        }
    }
    let mut seen = BTreeSet::new();
    let mut templates = Vec::new();
    for e in &info.endpoints {
        let template =
            Template::parse(&e.template).map_err(|err| LoadError::BadInfo(err.to_string()))?;
        if !seen.insert(e.template.clone()) {
            return bad(format!("endpoint `{}` is declared twice", e.template));
        }
        for field in template.fields() {
            if HOST_VALUES.contains(&field) {
                continue;
            }
            match fields.get(field) {
                None => {
                    return bad(format!(
                        "endpoint `{}` uses undeclared field `{field}`",
                        e.template
                    ));
                }
                Some(true) => {
                    return bad(format!(
                        "endpoint `{}` uses secret field `{field}`",
                        e.template
                    ));
                }
                Some(false) => {}
            }
        }
        let wants = match &e.credential {
            None => vec![],
            Some(Credential::Bearer(secret)) => vec![(secret.as_str(), true)],
            Some(Credential::Basic(b)) => vec![
                (b.user_field.as_str(), false),
                (b.secret_field.as_str(), true),
            ],
        };
        if !wants.is_empty() && !template.scheme().is_encrypted() {
            return bad(format!(
                "endpoint `{}` sends a credential without TLS",
                e.template
            ));
        }
        for (field, secret) in wants {
            if fields.get(field) != Some(&secret) {
                let kind = if secret { "secret" } else { "non-secret" };
                return bad(format!(
                    "endpoint `{}` credential needs a declared {kind} field `{field}`",
                    e.template
                ));
            }
        }
        templates.push(template);
    }
    Ok(templates)
}

/// Check a plugin's own bindings: each names a declared secret field once,
/// and declared endpoints; each endpoint's credential names a secret bound to it.
fn validate_bindings(
    info: &PluginInfo,
    declared: Vec<SecretBinding>,
) -> Result<Vec<SecretBinding>, LoadError> {
    let bad = |why: String| Err(LoadError::BadInfo(why));
    let mut seen = BTreeSet::new();
    for b in &declared {
        if !info.fields.iter().any(|f| f.secret && f.name == b.secret) {
            return bad(format!(
                "binding names `{}`, which is not a declared secret field",
                b.secret
            ));
        }
        if !seen.insert(b.secret.as_str()) {
            return bad(format!("secret `{}` is bound twice", b.secret));
        }
        for t in &b.endpoints {
            if !info.endpoints.iter().any(|e| &e.template == t) {
                return bad(format!(
                    "secret `{}` is bound to `{t}`, which is not a declared endpoint",
                    b.secret
                ));
            }
        }
    }
    for e in &info.endpoints {
        if let Some(secret) = credential_secret(e.credential.as_ref())
            && !declared
                .iter()
                .any(|b| b.secret == secret && b.endpoints.contains(&e.template))
        {
            return bad(format!(
                "endpoint `{}` has a credential of secret `{secret}`, which is not bound to it",
                e.template
            ));
        }
    }
    Ok(declared)
}

/// The secret an endpoint's credential uses.
fn credential_secret(credential: Option<&Credential>) -> Option<&str> {
    match credential? {
        Credential::Bearer(secret) => Some(secret),
        Credential::Basic(b) => Some(&b.secret_field),
    }
}

/// What an x.0 plugin, which declares no bindings, may do: each secret to
/// every `tls`/`tcp` endpoint and to the HTTP endpoints whose credential names it.
fn default_bindings(info: &PluginInfo) -> Vec<SecretBinding> {
    info.fields
        .iter()
        .filter(|f| f.secret)
        .map(|f| SecretBinding {
            secret: f.name.clone(),
            endpoints: info
                .endpoints
                .iter()
                .filter(|e| {
                    let stream = Template::parse(&e.template)
                        .is_ok_and(|t| matches!(t.scheme(), Scheme::Tls | Scheme::Tcp));
                    stream || credential_secret(e.credential.as_ref()) == Some(f.name.as_str())
                })
                .map(|e| e.template.clone())
                .collect(),
        })
        .collect()
}
