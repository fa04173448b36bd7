//! `mailroom plugin …`: make, build, check, install, list and try plugins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Subcommand;
use mailroom_runtime::{
    AccountInput, OperatorGrant, Plugin, PluginDescription, Secret, Secrets, Window,
};

use mailroom_lifecycle::LifecycleError;

use crate::home::Home;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Make a new plugin project DIR/NAME from a template (it builds and loads as it is).
    New {
        /// The plugin's name: lowercase letters, digits and `-`.
        name: String,
        /// rust, js or python.
        #[arg(long)]
        lang: String,
        /// Where to make it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// For Rust: where mailroom-plugin-sdk is (default: MAILROOM_PLUGIN_SDK,
        /// else plugins/sdk of the source this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin project (Rust, JavaScript or Python) into DIR/NAME.wasm.
    Build {
        /// The project (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Write the component here instead.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Describe a plugin file; exit 2 with a one-line reason if it is not a usable plugin.
    Check {
        /// The component file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a plugin file and install it (replacing the installed version of the same name).
    Install {
        /// The component file.
        file: PathBuf,
        /// Its signature file (default: FILE.sig when there is one).
        #[arg(long)]
        signature: Option<PathBuf>,
    },
    /// Make a signing key: prints the secret (keep it) and the public key (trust it).
    Keygen,
    /// Sign a plugin file's digest; writes FILE.sig.
    Sign {
        /// The component file.
        file: PathBuf,
        /// The environment variable holding the secret key (never on the command line).
        #[arg(long)]
        key_env: String,
    },
    /// List the installed plugins.
    List,
    /// Go back to the version the installed one replaced (a running server picks it up).
    Rollback {
        /// The plugin's name.
        name: String,
    },
    /// Make current an upgrade waiting because it declares new endpoints (granting them).
    Approve {
        /// The plugin's name.
        name: String,
    },
    /// Remove an installed plugin no account uses (its versions stay kept).
    Remove {
        /// The plugin's name.
        name: String,
    },
    /// Every change to the installed plugins, newest first: who, when, from which digest to which.
    History {
        /// Only this plugin's.
        name: Option<String>,
    },
    /// Sync one account once with an installed plugin (or a file) and print what came back.
    Run {
        /// An installed plugin's name, or a component file.
        plugin: String,
        #[command(flatten)]
        account: TryAccount,
    },
    /// Drive a plugin (installed, or a file) with one account through the
    /// contract's obligations and print a report; exit 1 if any failed.
    Test {
        /// An installed plugin's name, or a component file.
        plugin: String,
        #[command(flatten)]
        account: TryAccount,
    },
}

/// One account to try a plugin with, and what the operator grants it.
#[derive(clap::Args)]
pub struct TryAccount {
    /// The account's address.
    #[arg(long, default_value = "me@example.com")]
    address: String,
    /// An account setting, NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    settings: Vec<String>,
    /// A secret field taken from an environment variable, NAME=ENV_VAR (repeatable).
    #[arg(long = "secret-env", value_name = "NAME=ENV_VAR")]
    secrets: Vec<String>,
    /// Grant a non-public network (e.g. 127.0.0.0/8) (repeatable).
    #[arg(long = "grant-private", value_name = "CIDR")]
    private: Vec<ipnet::IpNet>,
    /// Allow secrets over unencrypted connections.
    #[arg(long)]
    plaintext_credentials: bool,
    /// Serve a declared HTTP origin from another base URL, ORIGIN=BASE_URL (repeatable).
    #[arg(long = "base-url", value_name = "ORIGIN=BASE_URL")]
    base_urls: Vec<mailroom_policy::Origin>,
    /// How far back to sync, in days.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

impl TryAccount {
    fn grant(&self) -> OperatorGrant {
        OperatorGrant {
            private_networks: self.private.clone(),
            plaintext_credentials: self.plaintext_credentials,
            origins: self.base_urls.clone(),
            ..OperatorGrant::default()
        }
    }

    fn input(&self) -> anyhow::Result<AccountInput> {
        Ok(AccountInput {
            id: "cli".into(),
            address: self.address.clone(),
            settings: pairs(&self.settings, "--set")?,
            secrets: secrets_from_env(&self.secrets)?,
        })
    }

    fn window(&self) -> anyhow::Result<Window> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)?;
        Ok(Window {
            since: now - self.days * 86_400,
            skip: vec![],
        })
    }
}

pub async fn run(home: &Home, command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New {
            name,
            lang,
            dir,
            sdk,
        } => {
            let sdk = sdk
                .or_else(|| std::env::var_os("MAILROOM_PLUGIN_SDK").map(PathBuf::from))
                .or_else(|| {
                    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/sdk");
                    source.is_dir().then_some(source)
                });
            let files =
                mailroom_authoring::new_project(lang.parse()?, &name, &dir, sdk.as_deref())?;
            for file in files {
                println!("created {}", file.display());
            }
            println!("next: mailroom plugin build {}", dir.join(&name).display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Build { dir, out } => {
            let built = mailroom_authoring::build(&dir, out.as_deref())?;
            println!("built {}", built.display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Check { file, json } => check(home, &file, json).await,
        PluginCommand::Install { file, signature } => {
            install(home, &file, signature.as_deref()).await
        }
        PluginCommand::Keygen => {
            let (secret, public) = mailroom_lifecycle::generate();
            println!("secret {secret}");
            println!("public {public}");
            println!(
                "trust it with MAILROOM_TRUSTED_KEYS=NAME={public}; keep the secret out of the plugin's repository"
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Sign { file, key_env } => sign(home, &file, &key_env).await,
        PluginCommand::List => list(home).await,
        PluginCommand::Rollback { name } => change(home, &name, Change::Rollback).await,
        PluginCommand::Approve { name } => change(home, &name, Change::Approve).await,
        PluginCommand::Remove { name } => change(home, &name, Change::Remove).await,
        PluginCommand::History { name } => history(home, name.as_deref()).await,
        PluginCommand::Run { plugin, account } => try_sync(home, &plugin, &account).await,
        PluginCommand::Test { plugin, account } => {
            let registry = home.registry().await?;
            let plugin = named_or_file(&registry, &plugin).await?;
            let report = mailroom_conformance::run(
                registry.runtime(),
                &plugin,
                &account.input()?,
                &account.grant(),
                account.window()?,
            )
            .await;
            print!("{}", report.render());
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// An installed plugin by name, or a component file loaded (not installed).
async fn named_or_file(
    registry: &mailroom_runtime::Registry,
    name: &str,
) -> anyhow::Result<std::sync::Arc<Plugin>> {
    if Path::new(name).is_file() {
        let bytes = std::fs::read(name).with_context(|| format!("reading {name}"))?;
        return Ok(registry.runtime().load(&bytes).await?);
    }
    match registry.get(name) {
        Some(p) => Ok(p),
        None => bail!("no plugin named `{name}` is installed (see `mailroom plugin list`)"),
    }
}

async fn check(home: &Home, file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mailroom: {}: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    match home.runtime()?.load(&bytes).await {
        Ok(plugin) => {
            let d = plugin.description();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&mailroom_web::plugin_json(d))?
                );
            } else {
                print!("{}", describe_text(d));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("mailroom: {}: {e}", file.display());
            Ok(ExitCode::from(2))
        }
    }
}

async fn install(home: &Home, file: &Path, signature: Option<&Path>) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let signature = match signature {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => std::fs::read_to_string(mailroom_lifecycle::signature_file(file)).ok(),
    };
    let lifecycle = home.lifecycle().await?;
    match lifecycle.install(&bytes, signature.as_deref(), "cli").await {
        Ok(c) if c.action == "pending" => {
            let waiting = lifecycle
                .pending()
                .into_iter()
                .find(|p| p.plugin == c.plugin);
            println!(
                "pending {} {} ({}): it asks for more than {} {} ({}); \
                 `mailroom plugin approve {}` grants it and makes it current",
                c.plugin,
                c.to_version.unwrap_or_default(),
                c.to_digest.unwrap_or_default(),
                c.plugin,
                c.from_version.unwrap_or_default(),
                waiting.map(|w| w.asks_for()).unwrap_or_default(),
                c.plugin
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(c) => {
            println!(
                "installed {} {} ({})",
                c.plugin,
                c.to_version.unwrap_or_default(),
                c.to_digest.unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (LifecycleError::Load(_) | LifecycleError::Trust(_))) => {
            eprintln!("mailroom: {}: {e}", file.display());
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

async fn sign(home: &Home, file: &Path, key_env: &str) -> anyhow::Result<ExitCode> {
    let secret = std::env::var(key_env).with_context(|| format!("--key-env {key_env}: not set"))?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let plugin = home.runtime()?.load(&bytes).await?;
    let digest = &plugin.description().digest;
    let signature = mailroom_lifecycle::sign(&secret, digest)?;
    let out = mailroom_lifecycle::signature_file(file);
    std::fs::write(&out, &signature).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "signed {} {} ({digest}): {}",
        plugin.name(),
        plugin.version(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A change to an installed plugin by name.
enum Change {
    Rollback,
    Approve,
    Remove,
}

/// `rollback`, `approve` or `remove`: print what changed, or why nothing did (exit 2).
async fn change(home: &Home, name: &str, change: Change) -> anyhow::Result<ExitCode> {
    let lifecycle = home.lifecycle().await?;
    let done = match change {
        Change::Rollback => lifecycle.rollback(name, "cli").await,
        Change::Approve => lifecycle.approve(name, "cli").await,
        Change::Remove => lifecycle.remove(name, "cli").await,
    };
    match done {
        Ok(c) => {
            println!(
                "{} {}: {} -> {}",
                c.action,
                c.plugin,
                c.from_version.unwrap_or_else(|| "none".into()),
                c.to_version.unwrap_or_else(|| "none".into())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("mailroom: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

async fn history(home: &Home, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let lifecycle = home.lifecycle().await?;
    for c in lifecycle.history(name).await? {
        println!(
            "{}  {:<8} {:<16} {:<20} {} -> {}  by {}",
            c.at,
            c.action,
            c.plugin,
            c.to_digest
                .as_deref()
                .or(c.from_digest.as_deref())
                .map_or("", |d| &d[..d.len().min(19)]),
            c.from_version.as_deref().unwrap_or("none"),
            c.to_version.as_deref().unwrap_or("none"),
            c.actor
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(home: &Home) -> anyhow::Result<ExitCode> {
    let lifecycle = home.lifecycle().await?;
    let registry = lifecycle.registry();
    let plugins = registry.list();
    if plugins.is_empty() {
        println!("no plugins installed in {}", home.plugins_dir().display());
    }
    for p in plugins {
        let d = p.description();
        println!(
            "{:<16} {:<10} {:<26} {}",
            d.name,
            d.version,
            d.contract,
            &d.digest[..d.digest.len().min(19)]
        );
    }
    for w in lifecycle.pending() {
        println!(
            "{:<16} {:<10} pending approval: {}",
            w.plugin,
            w.version,
            w.asks_for()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn try_sync(home: &Home, name: &str, args: &TryAccount) -> anyhow::Result<ExitCode> {
    let registry = home.registry().await?;
    let plugin = named_or_file(&registry, name).await?;
    let runtime = registry.runtime();
    let mut run = runtime
        .start(&plugin, &args.input()?, &args.grant())
        .await?;
    run.verify().await?;
    run.open().await?;
    let window = args.window()?;
    let mut cursor: Option<String> = None;
    let (mut pages, mut messages, mut bytes, mut failed) = (0usize, 0usize, 0usize, 0usize);
    loop {
        let page = run.sync(cursor.as_deref(), &window).await?;
        pages += 1;
        messages += page.messages.len();
        failed += page.failed.len();
        bytes += page.messages.iter().map(|m| m.raw.len()).sum::<usize>();
        let progress = page
            .progress
            .map(|p| match p.total {
                Some(t) => format!("{} of ~{t}", p.done),
                None => p.done.to_string(),
            })
            .unwrap_or_default();
        println!(
            "page {pages}: {} messages, {} failed, progress {progress}, cursor {}",
            page.messages.len(),
            page.failed.len(),
            page.cursor
        );
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    run.close().await?;
    println!("synced {messages} messages ({bytes} bytes) in {pages} pages; {failed} failed");
    Ok(ExitCode::SUCCESS)
}

pub fn describe_text(d: &PluginDescription) -> String {
    let mut out = format!(
        "name:        {}\nversion:     {}\ncontract:    {}\ndigest:      {}\ndescription: {}\nfields:\n",
        d.name, d.version, d.contract, d.digest, d.description
    );
    for f in &d.fields {
        let flags = [(f.secret, "secret"), (f.required, "required")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, s)| *s)
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("  {:<14} {:<24} {flags}\n", f.name, f.label));
    }
    out.push_str("endpoints:\n");
    if d.endpoints.is_empty() {
        out.push_str("  (none: this plugin gets no network)\n");
    }
    for e in &d.endpoints {
        out.push_str(&format!("  {:<36} {}\n", e.template, e.purpose));
    }
    out.push_str(if d.bindings_declared {
        "secrets (where each may go):\n"
    } else {
        "secrets (where each may go; declared by no x.1 `bindings`, so the x.0 rule):\n"
    });
    let secrets: Vec<&str> = d
        .fields
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name.as_str())
        .collect();
    if secrets.is_empty() {
        out.push_str("  (none)\n");
    }
    for secret in secrets {
        let to = d
            .bindings
            .iter()
            .find(|b| b.secret == secret)
            .filter(|b| !b.endpoints.is_empty())
            .map_or("nowhere".to_string(), |b| b.endpoints.join(", "));
        out.push_str(&format!("  {secret:<14} {to}\n"));
    }
    out.push_str("imports:\n");
    for i in &d.imports {
        out.push_str(&format!("  {i}\n"));
    }
    out
}

fn pairs(items: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{flag} `{s}`: expected NAME=VALUE"),
        })
        .collect()
}

fn secrets_from_env(items: &[String]) -> anyhow::Result<Secrets> {
    let mut secrets = Secrets::new();
    for (name, var) in pairs(items, "--secret-env")? {
        let value = std::env::var(&var).with_context(|| {
            format!("--secret-env {name}: environment variable {var} is not set")
        })?;
        secrets.insert(name, Secret::new(value));
    }
    Ok(secrets)
}
