//! `make bench-gmail-backfill`: how fast Mailroom backfills a Gmail mailbox
//! through the Gmail API, beside what the Gmail emulator can serve.
//!
//! The emulator (in this process) holds 10,000 messages in INBOX: the
//! SpamAssassin corpus cycled, each from one of 100 known contacts, over the
//! last 300 days. Measured, in messages per second:
//!
//! - `mailroom`: the sync engine running the Gmail plugin (in its sandbox,
//!   over `wasi:http`, the host serving `https://gmail.googleapis.com` from
//!   the emulator's base URL), parsing, matching and storing into a SQLite
//!   file, from the first call to done. The plugin's quota pacing is off:
//!   with Google's 250 units per user per second and 5 units a
//!   `messages.get`, Gmail itself caps one account at 50 messages a second;
//!   this measures Mailroom, not the quota.
//! - `emulator-raw`: the same requests (`messages.list` pages of 100, then
//!   `messages.get?format=raw` four at a time, as the plugin asks) by a bare
//!   native client that discards the answers: the emulator's serving rate.
//!
//! Each runs three times, interleaved; the medians are printed.

use std::collections::BTreeMap;

use bench_support::{Backfill, DAY, ROUNDS, loopback_grant, mailbox, now, versus_raw};
use gmail_emulator::Emulator;
use serde_json::Value;

const MESSAGES: usize = 10_000;
const USER: &str = "bench@gmail.test";
/// Requests in flight at once, as the plugin sends them.
const CONCURRENCY: usize = 4;

/// The bare client: list the window and get every message raw; messages got.
async fn raw_serving(emulator: &Emulator, token: &str) -> usize {
    let http = reqwest::Client::new();
    let base = format!("{}/gmail/v1/users/me", emulator.url());
    let after = format!("after:{}", now() - 365 * DAY - 1);
    let mut page_token: Option<String> = None;
    let mut got = 0;
    loop {
        let mut query = vec![
            ("q", after.clone()),
            ("includeSpamTrash", "false".into()),
            ("maxResults", "100".into()),
        ];
        if let Some(t) = &page_token {
            query.push(("pageToken", t.clone()));
        }
        let list: Value = http
            .get(format!("{base}/messages"))
            .query(&query)
            .bearer_auth(token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list JSON");
        let ids: Vec<String> = list["messages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for chunk in ids.chunks(CONCURRENCY) {
            let gets = chunk.iter().map(|id| {
                let request = http
                    .get(format!("{base}/messages/{id}?format=raw"))
                    .bearer_auth(token);
                async move {
                    request
                        .send()
                        .await
                        .expect("get")
                        .bytes()
                        .await
                        .expect("body")
                        .len()
                }
            });
            for len in futures_join(gets).await {
                assert!(len > 0);
                got += 1;
            }
        }
        match list["nextPageToken"].as_str() {
            Some(t) => page_token = Some(t.to_string()),
            None => return got,
        }
    }
}

/// Run futures concurrently and collect their outputs in order.
async fn futures_join<F: Future<Output = usize> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<usize> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::main]
async fn main() {
    bench_support::init_log();
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = Emulator::start().await.expect("emulator");
    let mail = mailbox(MESSAGES, USER);
    let bytes: usize = mail.iter().map(|(m, _)| m.len()).sum();
    for (raw, at) in &mail {
        emulator.deliver(USER, raw, &["INBOX"], *at);
    }
    let token = emulator.access_token(USER);
    eprintln!(
        "the Gmail emulator holds {MESSAGES} messages ({:.1} MB)",
        bytes as f64 / 1e6
    );
    let backfill = Backfill {
        plugin: "gmail",
        address: USER.into(),
        settings: BTreeMap::from([("quota_units_per_second".to_string(), "0".to_string())]),
        secrets: BTreeMap::from([("access_token".to_string(), token.clone())]),
        grant: loopback_grant("https://gmail.googleapis.com", &emulator.url()),
        extra_ca: None,
        contacts: bench_support::contacts(),
    };

    let (mailroom_rate, raw_rate, counts) = versus_raw(&backfill, dir.path(), MESSAGES, || {
        raw_serving(&emulator, &token)
    })
    .await;
    println!(
        "Gmail backfill of {MESSAGES} messages ({:.1} MB, SpamAssassin corpus cycled) from the Gmail emulator; \
         Mailroom stored {}, skipped {} with a reason; medians of {ROUNDS} interleaved rounds:",
        bytes as f64 / 1e6,
        counts.stored,
        counts.failed
    );
    println!(
        "mailroom vs emulator: {:.0}%",
        100.0 * mailroom_rate / raw_rate
    );
    println!("mailroom: {mailroom_rate:.0} msg/s");
    println!("emulator-raw: {raw_rate:.0} msg/s");
}
