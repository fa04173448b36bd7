//! `mailroom`: the host process and its operator commands.
//!
//! This crate only parses arguments, reads the operator's environment and
//! prints; the work is done by the library crates (`mailroom-runtime` for
//! plugins). `anyhow` lives here and nowhere below.

mod home;
mod plugin_cmd;
mod reauth_cmd;
mod serve;
mod sync_cmd;
mod user_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Mailroom: syncs users' mailboxes into the CRM through sandboxed provider plugins.
#[derive(Parser)]
#[command(name = "mailroom", version)]
struct Cli {
    /// Where Mailroom keeps its installed plugins and compiled-component cache.
    #[arg(
        long,
        env = "MAILROOM_HOME",
        default_value = ".mailroom",
        global = true
    )]
    home: PathBuf,
    /// Where compiled components are cached (default: the `cache` folder in the home).
    #[arg(long, env = "MAILROOM_CACHE", global = true)]
    cache: Option<PathBuf>,
    /// A PEM file of extra CA certificates that plugin TLS connections trust.
    #[arg(long, env = "MAILROOM_EXTRA_CA", global = true)]
    extra_ca: Option<PathBuf>,
    /// The database: `sqlite:PATH` or `postgres://…` (default: `mailroom.db` in the home).
    #[arg(long, env = "MAILROOM_DATABASE_URL", global = true)]
    database: Option<String>,
    /// Keys whose ed25519 signatures on plugins are trusted: `NAME=BASE64,…`.
    #[arg(long, env = "MAILROOM_TRUSTED_KEYS", global = true, default_value = "")]
    trusted_keys: String,
    /// Refuse plugins without a signature by a trusted key.
    #[arg(long, env = "MAILROOM_REQUIRE_SIGNED", global = true)]
    require_signed: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, install and try provider plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin_cmd::PluginCommand,
    },
    /// Run the host: sync every account on schedule and serve the HTTP API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MAILROOM_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// The sentiment analyser component (`mailroom:analyzer`); by default
        /// `$MAILROOM_HOME/analyzer.wasm` when there is one. Without one,
        /// no mail is scored.
        #[arg(long, env = "MAILROOM_ANALYZER")]
        analyzer: Option<std::path::PathBuf>,
        #[command(flatten)]
        engine: sync_cmd::EngineArgs,
    },
    /// Sync every due account once, then print each account's status.
    Sync {
        #[command(flatten)]
        engine: sync_cmd::EngineArgs,
    },
    /// Require re-authorisation of a provider's accounts by a deadline.
    Reauth {
        #[command(subcommand)]
        command: reauth_cmd::ReauthCommand,
    },
    /// Manage CRM users.
    User {
        #[command(subcommand)]
        command: user_cmd::UserCommand,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAILROOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mailroom: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let trust = match mailroom_lifecycle::Trust::new(&cli.trusted_keys, cli.require_signed) {
        Ok(trust) => trust,
        Err(e) => {
            eprintln!("mailroom: {e}");
            return ExitCode::from(2);
        }
    };
    let home = home::Home::new(cli.home, cli.cache, cli.extra_ca, cli.database, trust);
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Plugin { command } => plugin_cmd::run(&home, command).await,
            Command::Serve {
                listen,
                analyzer,
                engine,
            } => serve::run(&home, &listen, analyzer.as_deref(), &engine)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Sync { engine } => sync_cmd::run(&home, &engine)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::User { command } => user_cmd::run(&home, command).await,
            Command::Reauth { command } => reauth_cmd::run(&home, command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailroom: {e:#}");
            ExitCode::FAILURE
        }
    }
}
