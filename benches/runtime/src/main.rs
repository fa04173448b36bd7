//! `benches/runtime`: what a plugin call costs.
//!
//! Measures, for the scripted plugin's `verify` (a trivial provider call):
//! a fresh instance from the pooling allocator plus its first call (what
//! every sync run pays), a call on a live instance, loading the plugin from
//! the compiled-component cache, and — as the reference — the very same
//! plugin code compiled natively into this benchmark and called directly.
//! And what a plugin's reads cost once secrets are being blanked out of
//! them, beside plain copies of the same reads.
//! Each figure is the best of several timed batches.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use mailroom_runtime::{AccountInput, OperatorGrant, Runtime, RuntimeConfig, Secrets};
use scripted::exports::mailroom::provider::provider::{Account, Guest};

/// The scripted plugin's own source, compiled for the host: the reference.
#[allow(dead_code)]
#[path = "../../../plugins/scripted/src/lib.rs"]
mod scripted;

const BATCHES: usize = 15;

/// The best, over batches, of the time per iteration of `$body`, in
/// microseconds: like Python's `timeit`, the minimum is the figure least
/// disturbed by whatever else the machine is doing.
macro_rules! measure {
    ($iterations:expr, $body:block) => {{
        let iterations: usize = $iterations;
        for _ in 0..iterations.min(100) $body
        let mut per_iteration: Vec<f64> = Vec::with_capacity(BATCHES);
        for _ in 0..BATCHES {
            let start = Instant::now();
            for _ in 0..iterations $body
            per_iteration.push(start.elapsed().as_secs_f64() * 1e6 / iterations as f64);
        }
        per_iteration.into_iter().fold(f64::INFINITY, f64::min)
    }};
}

fn settings() -> Vec<(String, String)> {
    vec![
        ("messages".into(), "100".into()),
        ("page_size".into(), "10".into()),
    ]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bytes = mailroom_test_support::plugin_bytes("scripted");
    let cache = tempfile::tempdir().expect("temp dir");
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config.clone()).expect("runtime");
    let plugin = runtime.load(&bytes).await.expect("scripted loads");
    let account = AccountInput {
        id: "bench".into(),
        address: "me@example.com".into(),
        settings: settings().into_iter().collect::<BTreeMap<_, _>>(),
        secrets: Secrets::new(),
    };
    let grant = OperatorGrant::all_declared();

    let instantiate = measure!(2_000, {
        let mut run = runtime
            .start(&plugin, &account, &grant)
            .await
            .expect("start");
        run.verify().await.expect("verify");
    });

    let mut live = runtime
        .start(&plugin, &account, &grant)
        .await
        .expect("start");
    let live_call = measure!(20_000, {
        live.verify().await.expect("verify");
    });
    drop(live);

    let second = Runtime::new(config).expect("runtime");
    let cached_load = measure!(20, {
        black_box(second.load(&bytes).await.expect("cached load"));
    });

    let native_account = Account {
        id: "bench".into(),
        address: "me@example.com".into(),
        settings: settings(),
        secrets: vec![],
    };
    let native = measure!(200_000, {
        black_box(scripted::Scripted::verify(black_box(
            native_account.clone(),
        )))
        .expect("native verify");
    });

    // What a plugin's reads cost once it has had the host write a secret:
    // every byte read back is scanned for the account's secrets.
    let mut secrets = mailroom_policy::Secrets::new();
    secrets.insert(
        "password",
        mailroom_policy::Secret::new("correct horse battery staple"),
    );
    secrets.insert(
        "token",
        mailroom_policy::Secret::new("ya29.a0AfH6SMBx-token"),
    );
    let line = b"From: ann@acme.test\r\nSubject: hello\r\n";
    let stream: Vec<u8> = line.iter().copied().cycle().take(4 << 20).collect();
    let mb = stream.len() as f64 / 1e6;
    let redact = measure!(3, {
        let mut redactor = secrets.redactor();
        for chunk in stream.chunks(64 << 10) {
            black_box(redactor.feed(chunk));
        }
    });
    let copy = measure!(3, {
        for chunk in stream.chunks(64 << 10) {
            black_box(chunk.to_vec());
        }
    });
    let (redact_mbs, copy_mbs) = (mb / (redact / 1e6), mb / (copy / 1e6));

    println!("runtime benchmark: scripted plugin, verify() — best of {BATCHES} batches");
    println!(
        "  {:<44} {:>10.2} µs",
        "instantiate + first call (pooling)", instantiate
    );
    println!("  {:<44} {:>10.2} µs", "call on a live instance", live_call);
    println!(
        "  {:<44} {:>10.2} µs",
        "load a cached compiled component", cached_load
    );
    println!(
        "  {:<44} {:>10.2} µs",
        "the same call, native (reference)", native
    );
    println!(
        "  {:<44} {:>10.1} x",
        "live call / native",
        live_call / native
    );
    println!(
        "  {:<44} {:>10.1} x",
        "instantiate + call / native",
        instantiate / native
    );
    println!(
        "  {:<44} {:>10.0} MB/s",
        "reading with secrets redacted", redact_mbs
    );
    println!(
        "  {:<44} {:>10.0} MB/s",
        "copying the same reads (reference)", copy_mbs
    );
    println!("instantiate-first-call: {instantiate:.2} us");
    println!("live-call: {live_call:.2} us");
    println!("cached-load: {cached_load:.1} us");
    println!("native-call: {native:.3} us");
    println!("redacted-read: {redact_mbs:.0} MB/s");
    println!("copied-read: {copy_mbs:.0} MB/s");
}
