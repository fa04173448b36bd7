//! One host, two major versions of the contract: a 1.x plugin (`scripted`)
//! and a 2.x plugin (`pushbox`, which can push) load into the same runtime
//! and registry, each through its own binding, and both sync; `wait` is a
//! 2.x call, and a 1.x plugin answers it with "no push" without being called.

mod common;

use common::{account, load, runtime, scripted_sync, window};
use mailroom_runtime::{Limits, OperatorGrant, Registry, Secrets};
use mailroom_test_support::plugin_bytes;

#[tokio::test]
async fn a_one_x_and_a_two_x_plugin_run_side_by_side() {
    let runtime = runtime(Limits::default(), None);
    let registry = Registry::new(runtime.clone());
    registry
        .install(plugin_bytes("scripted"))
        .await
        .expect("1.x installs");
    registry
        .install(plugin_bytes("pushbox"))
        .await
        .expect("2.x installs");
    let one = registry.get("scripted").unwrap();
    let two = registry.get("pushbox").unwrap();
    assert_eq!(one.description().contract, "mailroom:provider@1.1.0");
    assert_eq!(two.description().contract, "mailroom:provider@2.1.0");
    assert!(!one.description().push);
    assert!(two.description().push);

    // The 1.x plugin syncs as ever.
    assert_eq!(scripted_sync(&runtime, &one, 20).await, 20);

    // The 2.x plugin: its pages come through the 2.x binding as the host's own.
    let mut run = runtime
        .start(
            &two,
            &account(&[("messages", "4")], Secrets::new()),
            &OperatorGrant::all_declared(),
        )
        .await
        .expect("2.x starts");
    run.verify().await.expect("2.x verifies");
    run.open().await.expect("2.x opens");
    assert!(run.wait("0", 5).await.expect("wait"), "mail after cursor 0");
    let page = run.sync(None, &window()).await.expect("2.x syncs");
    let ids: Vec<&str> = page.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["push-0", "push-1", "push-2", "push-3"]);
    assert_eq!(page.cursor, "4");
    assert!(!run.wait(&page.cursor, 5).await.expect("wait"), "caught up");
    let again = run
        .sync(Some(&page.cursor), &window())
        .await
        .expect("again");
    assert!(again.messages.is_empty());
    // A typed error through the 2.x binding is the host's own type too.
    let err = run.sync(Some("garbage"), &window()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the sync position expired; the window will be synced again"
    );
    run.close().await.expect("closes");

    // `wait` of a 1.x plugin: no push, answered by the host.
    let scripted = load(&runtime, "scripted").await;
    let mut old = runtime
        .start(
            &scripted,
            &account(&[("messages", "2")], Secrets::new()),
            &OperatorGrant::all_declared(),
        )
        .await
        .expect("1.x starts");
    old.open().await.expect("1.x opens");
    assert!(!old.wait("0", 5).await.expect("1.x wait"));
}

/// `scripted` as if built against a later 1.x (`mailroom:provider@1.2.0`):
/// every contract name in the component says 1.2.0 (same length, so the
/// binary stays valid); the shapes are 1.1's, as an additive release keeps them.
fn as_minor_release(mut bytes: Vec<u8>) -> Vec<u8> {
    let (from, to) = (b"mailroom:provider/", b"@1.1.0");
    let mut i = 0;
    let mut renamed = 0;
    while let Some(at) = bytes[i..].windows(from.len()).position(|w| w == from) {
        let start = i + at + from.len();
        // The interface name, then its version.
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || **b == b'-')
                .count();
        if bytes[end..].starts_with(to) {
            bytes[end + 3] = b'2';
            renamed += 1;
        }
        i = end;
    }
    assert!(renamed >= 4, "renamed only {renamed} contract names");
    bytes
}

#[tokio::test]
async fn a_plugin_of_a_later_one_x_release_links_by_semver() {
    let runtime = runtime(Limits::default(), None);
    let later = runtime
        .load(&as_minor_release(plugin_bytes("scripted")))
        .await
        .expect("a 1.2.0 plugin loads on a 1.1 host");
    assert_eq!(later.description().contract, "mailroom:provider@1.2.0");
    // Its `bindings` export (1.2.0 by name) is found by semver too.
    assert!(later.description().bindings_declared);
    let imports = &later.description().imports;
    assert!(
        imports.iter().any(|i| i == "mailroom:provider/log@1.2.0"),
        "{imports:?}"
    );
    assert_eq!(scripted_sync(&runtime, &later, 9).await, 9);
}

/// A plugin built against 1.0.0 (`hostile`, from the contract as released)
/// links to the 1.1 host, and, declaring no bindings, gets the 1.0 ones:
/// each secret to every `tls`/`tcp` endpoint and to the HTTP endpoint whose
/// credential names it.
#[tokio::test]
async fn a_one_zero_plugin_loads_with_the_bindings_it_always_had() {
    let runtime = runtime(Limits::default(), None);
    let old = load(&runtime, "hostile").await;
    let d = old.description();
    assert_eq!(d.contract, "mailroom:provider@1.0.0");
    assert!(!d.bindings_declared);
    let bound = |secret: &str| {
        d.bindings
            .iter()
            .find(|b| b.secret == secret)
            .map(|b| b.endpoints.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        bound("password"),
        [
            "tls://{target_host}:{target_port}",
            "tcp://{target_host}:{target_port}",
            "https://{basic_host}:{target_port}",
        ]
    );
    assert_eq!(
        bound("token"),
        [
            "tls://{target_host}:{target_port}",
            "tcp://{target_host}:{target_port}",
            "https://{target_host}:{target_port}",
        ]
    );
}
