//! `mailroom serve`: the long-running host: the sync engine and the HTTP API
//! over one database and the installed plugins.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mailroom_outbound::Outbound;
use mailroom_runtime::{Analyzer, Runtime};
use mailroom_sentiment::Scorer;
use mailroom_sync::Engine;
use mailroom_web::AppState;

use crate::home::Home;
use crate::sync_cmd::EngineArgs;

pub async fn run(
    home: &Home,
    listen: &str,
    analyzer: Option<&Path>,
    engine_args: &EngineArgs,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("MAILROOM_LISTEN {listen}: cannot listen"))?;
    let bound = listener.local_addr()?;
    let db = home.db().await?;
    let vault = home.vault()?;
    let lifecycle = home.lifecycle().await?;
    let registry = lifecycle.registry().clone();
    let config = engine_args.config(home, &bound.to_string())?;
    let grant = config.grant.clone();
    let retry_base = config.backoff_base;
    let oauth = config.oauth.clone();
    let engine = Arc::new(Engine::new(
        db.clone(),
        vault.clone(),
        registry.clone(),
        config,
    ));
    let workers = engine_args.workers;
    let sync = tokio::spawn(engine.run(workers, Duration::from_secs(1)));
    let outbound = Outbound {
        db: db.clone(),
        vault: vault.clone(),
        registry: registry.clone(),
        grant: grant.clone(),
        oauth: oauth.clone(),
        retry_base,
    };
    let retries = tokio::spawn(retry_automated_email(outbound.clone()));
    let scoring = match load_analyzer(home, analyzer, registry.runtime()).await? {
        Some(analyzer) => {
            let scorer = Scorer::new(db.clone(), registry.runtime().clone(), analyzer);
            Some(tokio::spawn(scorer.run(Duration::from_secs(2))))
        }
        None => None,
    };
    let app = mailroom_web::router(AppState {
        db,
        vault,
        registry,
        grant,
        oauth,
        outbound,
        lifecycle: lifecycle.clone(),
    });
    // Plugins changed by another process (`mailroom plugin install`) take effect too.
    let watching = tokio::spawn(lifecycle.watch(Duration::from_secs(2)));
    eprintln!("mailroom: serving on http://{bound}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    sync.abort();
    retries.abort();
    watching.abort();
    if let Some(scoring) = scoring {
        scoring.abort();
    }
    Ok(())
}

/// The sentiment analyser: the one named, else `$MAILROOM_HOME/analyzer.wasm`
/// when there is one, else none (nothing is scored).
async fn load_analyzer(
    home: &Home,
    named: Option<&Path>,
    runtime: &Arc<Runtime>,
) -> anyhow::Result<Option<Arc<Analyzer>>> {
    let default = home.analyzer_file();
    let path = match named {
        Some(path) => path.to_path_buf(),
        None if default.is_file() => default,
        None => {
            tracing::info!(
                "no sentiment analyser ({} or MAILROOM_ANALYZER): mail is not scored",
                default.display()
            );
            return Ok(None);
        }
    };
    let bytes =
        std::fs::read(&path).with_context(|| format!("MAILROOM_ANALYZER {}", path.display()))?;
    // The analyser is held to the plugins' signing rule, checked before it
    // is compiled or run: it reads every scored mail.
    let signature = std::fs::read_to_string(mailroom_lifecycle::signature_file(&path)).ok();
    home.trust()
        .check(&mailroom_lifecycle::digest(&bytes), signature.as_deref())
        .with_context(|| format!("MAILROOM_ANALYZER {}", path.display()))?;
    let analyzer = runtime
        .load_analyzer(&bytes)
        .await
        .with_context(|| format!("MAILROOM_ANALYZER {}", path.display()))?;
    let info = analyzer.info();
    tracing::info!(
        analyzer = %info.name,
        version = %info.version,
        languages = %info.languages.join(", "),
        digest = %info.digest,
        "sentiment analyser loaded"
    );
    Ok(Some(analyzer))
}

/// Try again, every second, the automated emails whose retry is due.
async fn retry_automated_email(outbound: Outbound) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(e) = outbound.retry_due().await {
            tracing::warn!(error = %e, "retrying automated email failed");
        }
    }
}
