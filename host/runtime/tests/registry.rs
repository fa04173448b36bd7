//! Installing a new plugin version swaps it in atomically, without a restart:
//! runs in flight finish on the version they started with, new runs get the
//! new one, and a file that fails its checks changes nothing. Compiled
//! components come back from the on-disk cache.

mod common;

use std::time::Duration;

use common::{account, window};
use mailroom_runtime::{
    CallError, Limits, OperatorGrant, Registry, Runtime, RuntimeConfig, Secrets,
};
use mailroom_test_support::plugin_bytes;

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_swaps_in_while_a_run_on_the_old_one_finishes() {
    let registry = Registry::new(common::runtime(Limits::default(), None));
    // Compile 1.1.0 into the cache first, so that installing it below is quick
    // next to the slow run it must overlap with.
    registry
        .runtime()
        .load(&plugin_bytes("scripted-next"))
        .await
        .unwrap();
    let (v1, previous) = registry.install(plugin_bytes("scripted")).await.unwrap();
    assert!(previous.is_none());
    assert_eq!(v1.version(), "1.0.0");

    // A slow run starts on 1.0.0 …
    let slow = account(&[("messages", "3"), ("delay_ms", "3000")], Secrets::new());
    let plugin = registry.get("scripted").unwrap();
    let runtime = registry.runtime().clone();
    let in_flight = tokio::spawn(async move {
        let mut run = runtime
            .start(&plugin, &slow, &OperatorGrant::all_declared())
            .await?;
        run.open().await?;
        let page = run.sync(None, &window()).await?;
        let info = run.info().await?;
        Ok::<_, CallError>((page.messages.len(), info.version))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // … while 1.1.0 is installed.
    let (v2, replaced) = registry
        .install(plugin_bytes("scripted-next"))
        .await
        .unwrap();
    assert_eq!(v2.version(), "1.1.0");
    assert_eq!(
        replaced.map(|p| p.version().to_string()).as_deref(),
        Some("1.0.0")
    );
    assert_ne!(v1.description().digest, v2.description().digest);

    // New runs get 1.1.0 at once, before the old run is done.
    let current = registry.get("scripted").unwrap();
    let mut run = registry
        .runtime()
        .start(
            &current,
            &account(&[], Secrets::new()),
            &OperatorGrant::all_declared(),
        )
        .await
        .unwrap();
    assert_eq!(run.info().await.unwrap().version, "1.1.0");
    assert!(
        !in_flight.is_finished(),
        "the old run should still be in flight"
    );

    // The old run completes, on the old version.
    let (messages, version) = in_flight.await.unwrap().unwrap();
    assert_eq!(messages, 3);
    assert_eq!(version, "1.0.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_leaves_the_current_version_in_place() {
    let registry = Registry::new(common::runtime(Limits::default(), None));
    registry.install(plugin_bytes("scripted")).await.unwrap();
    let err = registry
        .install(b"\0asm\x0d\0\x01\0garbage".to_vec())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("does not compile"), "{err}");
    let err = registry
        .install(plugin_bytes("other-contract"))
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("implements mailroom:provider@3.0.0"),
        "{err}"
    );
    assert_eq!(registry.get("scripted").unwrap().version(), "1.0.0");
    assert_eq!(registry.list().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn compiled_components_are_cached_by_content_and_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: Some(4),
        ..RuntimeConfig::default()
    };
    let bytes = plugin_bytes("scripted");
    let first = Runtime::new(config()).unwrap().load(&bytes).await.unwrap();
    let digest = first
        .description()
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with(&digest) && name.ends_with(".cwasm"),
        "{name}"
    );
    let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    // A second process (a new engine) loads it from the cache, untouched.
    let again = Runtime::new(config()).unwrap().load(&bytes).await.unwrap();
    assert_eq!(again.description().digest, first.description().digest);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        modified
    );

    // A corrupt cache entry is recompiled, not trusted.
    std::fs::write(&files[0], b"not a compiled component").unwrap();
    let runtime = Runtime::new(config()).unwrap();
    let plugin = runtime.load(&bytes).await.unwrap();
    assert_eq!(common::scripted_sync(&runtime, &plugin, 12).await, 12);
    assert!(std::fs::metadata(&files[0]).unwrap().len() > 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_setting_that_makes_no_valid_endpoint_is_a_bad_config_naming_the_field() {
    let runtime = common::runtime(Limits::default(), None);
    let hostile = common::load(&runtime, "hostile").await;
    let err = runtime
        .start(
            &hostile,
            &account(
                &[("target_host", "evil.example/x"), ("target_port", "993")],
                Secrets::new(),
            ),
            &OperatorGrant::all_declared(),
        )
        .await
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "target_host: `evil.example/x` is not a valid host name"
    );
    let err = runtime
        .start(
            &hostile,
            &account(
                &[("target_host", "mail.example"), ("target_port", "imap")],
                Secrets::new(),
            ),
            &OperatorGrant::all_declared(),
        )
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().starts_with("target_port: "), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scripted_pages_resume_from_any_cursor_without_loss_or_doubling() {
    let runtime = common::runtime(Limits::default(), None);
    let scripted = common::load(&runtime, "scripted").await;
    let acct = account(
        &[("messages", "40"), ("page_size", "6"), ("span_days", "30")],
        Secrets::new(),
    );
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    // A fresh instance for every page, as after a crash: only the cursor carries over.
    loop {
        let mut run = runtime
            .start(&scripted, &acct, &OperatorGrant::all_declared())
            .await
            .unwrap();
        run.open().await.unwrap();
        let page = run.sync(cursor.as_deref(), &window()).await.unwrap();
        seen.extend(page.messages.iter().map(|m| m.id.clone()));
        assert!(page.progress.is_some_and(|p| p.total == Some(40)));
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 40);
    assert_eq!(unique.len(), 40);
}
