//! `mailroom serve`: the long-running host. For now it loads the installed
//! plugins and answers `/healthz` and `/api/plugins`; the sync engine and the
//! CRM API join it as they land.

use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::{Json, Router};

use crate::home::Home;
use crate::plugin_cmd::describe_json;

pub async fn run(home: &Home, listen: &str) -> anyhow::Result<()> {
    let registry = Arc::new(home.registry().await?);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/api/plugins",
            get(move || {
                let registry = registry.clone();
                async move {
                    Json(
                        registry
                            .list()
                            .iter()
                            .map(|p| describe_json(p.description()))
                            .collect::<Vec<_>>(),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("MAILROOM_LISTEN {listen}: cannot listen"))?;
    eprintln!("mailroom: serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
