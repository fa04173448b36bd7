//! `make bench-exchange-backfill`: how fast Mailroom backfills a Microsoft
//! 365 mailbox through Microsoft Graph, beside what the Graph emulator can
//! serve. (The EWS connector and its emulator are still to come; their
//! figures will join these.)
//!
//! The Graph emulator (in this process) holds 10,000 messages in Inbox: the
//! SpamAssassin corpus cycled, each from one of 100 known contacts, over the
//! last 300 days. Measured, in messages per second:
//!
//! - `mailroom-graph`: the sync engine running the Microsoft 365 plugin (in
//!   its sandbox, over `wasi:http`, the host serving
//!   `https://graph.microsoft.com` from the emulator's base URL): message
//!   delta pages of 100, MIME four at a time, parsed, matched and stored into
//!   a SQLite file, from the first call to done.
//! - `graph-emulator-raw`: the same requests (the delta pages, then every
//!   `$value`, four at a time) by a bare native client that discards the
//!   answers: the emulator's serving rate.
//!
//! Each runs three times, interleaved; the medians are printed.

use std::collections::BTreeMap;

use bench_support::{Backfill, DAY, ROUNDS, mailbox, now, versus_raw};
use graph_emulator::Emulator;
use mailroom_runtime::OperatorGrant;
use serde_json::Value;

const MESSAGES: usize = 10_000;
const USER: &str = "bench@contoso.test";
const PAGE: usize = 100;
/// Requests in flight at once, as the plugin sends them.
const CONCURRENCY: usize = 4;

/// The bare client: page the delta query and get every MIME; messages got.
async fn raw_serving(emulator: &Emulator, token: &str) -> usize {
    let http = reqwest::Client::new();
    let base = format!("{}/v1.0/me", emulator.url());
    let since = now() - 365 * DAY;
    let first = format!(
        "{base}/mailFolders/inbox/messages/delta?$filter=receivedDateTime ge {}",
        chrono::DateTime::from_timestamp(since, 0)
            .expect("a time")
            .format("%Y-%m-%dT%H:%M:%SZ")
    );
    let mut link = Some(first);
    let mut got = 0;
    while let Some(url) = link.take() {
        let page: Value = http
            .get(&url)
            .bearer_auth(token)
            .header("prefer", format!("odata.maxpagesize={PAGE}"))
            .send()
            .await
            .expect("delta")
            .json()
            .await
            .expect("delta JSON");
        let ids: Vec<String> = page["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for chunk in ids.chunks(CONCURRENCY) {
            let mut tasks = Vec::new();
            for id in chunk {
                let request = http
                    .get(format!("{base}/messages/{id}/$value"))
                    .bearer_auth(token);
                tasks.push(tokio::spawn(async move {
                    request
                        .send()
                        .await
                        .expect("$value")
                        .bytes()
                        .await
                        .expect("MIME")
                        .len()
                }));
            }
            for t in tasks {
                assert!(t.await.expect("task") > 0);
                got += 1;
            }
        }
        link = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    got
}

#[tokio::main]
async fn main() {
    bench_support::init_log();
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = Emulator::start().await.expect("emulator");
    let mail = mailbox(MESSAGES, USER);
    let bytes: usize = mail.iter().map(|(m, _)| m.len()).sum();
    for (raw, at) in &mail {
        emulator.deliver(USER, "inbox", raw, *at);
    }
    let token = emulator.identity().access_token(USER);
    eprintln!(
        "the Graph emulator holds {MESSAGES} messages ({:.1} MB)",
        bytes as f64 / 1e6
    );
    let backfill = Backfill {
        plugin: "microsoft365",
        address: USER.into(),
        settings: BTreeMap::from([
            ("folders".to_string(), "inbox".to_string()),
            ("page_size".to_string(), PAGE.to_string()),
        ]),
        secrets: BTreeMap::from([("access_token".to_string(), token.clone())]),
        grant: OperatorGrant {
            private_networks: vec!["127.0.0.0/8".parse().expect("a network")],
            origins: vec![
                format!("https://graph.microsoft.com={}", emulator.url())
                    .parse()
                    .expect("an origin"),
            ],
            ..OperatorGrant::default()
        },
        extra_ca: None,
        contacts: bench_support::contacts(),
    };

    let (mailroom_rate, raw_rate, counts) = versus_raw(&backfill, dir.path(), MESSAGES, || {
        raw_serving(&emulator, &token)
    })
    .await;
    println!(
        "Microsoft 365 (Graph) backfill of {MESSAGES} messages ({:.1} MB, SpamAssassin corpus cycled) from the Graph emulator; \
         Mailroom stored {}, skipped {} with a reason; medians of {ROUNDS} interleaved rounds:",
        bytes as f64 / 1e6,
        counts.stored,
        counts.failed
    );
    println!(
        "mailroom vs emulator: {:.0}%",
        100.0 * mailroom_rate / raw_rate
    );
    println!("mailroom-graph: {mailroom_rate:.0} msg/s");
    println!("graph-emulator-raw: {raw_rate:.0} msg/s");
}
