//! Helpers shared by the runtime's integration tests.
#![allow(dead_code, reason = "each test binary uses only some of these helpers")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use mailroom_runtime::{
    AccountInput, Limits, OperatorGrant, Plugin, Run, Runtime, RuntimeConfig, Secrets, Window,
};
use mailroom_test_support::plugin_bytes;

/// A compiled-component cache shared by all tests, so each plugin is compiled once.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mailroom-test-cache")
}

pub fn runtime(limits: Limits, extra_ca: Option<PathBuf>) -> Arc<Runtime> {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        extra_ca,
        limits,
        max_instances: Some(16),
    })
    .expect("runtime")
}

pub async fn load(runtime: &Arc<Runtime>, name: &str) -> Arc<Plugin> {
    runtime
        .load(&plugin_bytes(name))
        .await
        .expect("plugin loads")
}

pub fn account(settings: &[(&str, &str)], secrets: Secrets) -> AccountInput {
    AccountInput {
        id: "acct-1".into(),
        address: "me@example.com".into(),
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        secrets,
    }
}

/// A run of the hostile plugin for an account with these settings and secrets.
pub async fn hostile(
    runtime: &Arc<Runtime>,
    settings: &[(&str, &str)],
    secrets: Secrets,
    grant: &OperatorGrant,
) -> Run {
    let plugin = load(runtime, "hostile").await;
    runtime
        .start(&plugin, &account(settings, secrets), grant)
        .await
        .expect("hostile starts")
}

pub fn window() -> Window {
    Window {
        since: 0,
        skip: vec![],
    }
}

/// Sync a whole scripted mailbox of `n` messages and return how many came back.
pub async fn scripted_sync(runtime: &Arc<Runtime>, scripted: &Plugin, n: usize) -> usize {
    let n = n.to_string();
    let account = account(
        &[("messages", &n), ("page_size", "7"), ("span_days", "30")],
        Secrets::new(),
    );
    let mut run = runtime
        .start(scripted, &account, &OperatorGrant::all_declared())
        .await
        .expect("scripted starts");
    run.verify().await.expect("scripted verifies");
    run.open().await.expect("scripted opens");
    let mut cursor = None;
    let mut count = 0;
    loop {
        let page = run
            .sync(cursor.as_deref(), &window())
            .await
            .expect("scripted page");
        count += page.messages.len();
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    run.close().await.expect("scripted closes");
    count
}
