//! A denied connection is logged with the plugin, its version, the account
//! and the grant that would have allowed it. (Its own test binary: it
//! installs a global log subscriber.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{hostile, runtime};
use mailroom_runtime::{Limits, OperatorGrant, Secrets};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_is_logged_with_plugin_version_account_and_the_missing_grant() {
    let log = Buffer::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();

    let rt = runtime(Limits::default(), None);
    let mut run = hostile(
        &rt,
        &[("attack", "undeclared")],
        Secrets::new(),
        &OperatorGrant::all_declared(),
    )
    .await;
    run.verify().await.unwrap_err();

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("plugin network access denied"))
        .unwrap_or_else(|| panic!("no denial logged in:\n{text}"));
    for part in [
        "plugin{plugin=hostile version=6.6.6 account=acct-1}",
        "attempted=tls://undeclared.example.com:993",
        "would_allow=a plugin version declaring `tls://undeclared.example.com:993`, granted by the operator",
    ] {
        assert!(line.contains(part), "missing {part:?} in {line}");
    }
}
