//! `make bench-exchange-backfill`: how fast Mailroom backfills an Exchange
//! mailbox, through Microsoft Graph (Microsoft 365) and through EWS
//! (Exchange servers), beside what each emulator can serve.
//!
//! Each emulator (in this process) holds 10,000 messages in Inbox: the
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
//! - `mailroom-ews`: the sync engine running the Exchange plugin against the
//!   EWS emulator as `https://mail.contoso.test`: the baseline sync state,
//!   `FindItem` pages of 100, `GetItem` with MIME for each page, stored.
//! - `ews-emulator-raw`: the same SOAP requests by a bare native client.
//!
//! Each runs three times, interleaved; the medians are printed.

use std::collections::BTreeMap;

use bench_support::{Backfill, DAY, ROUNDS, loopback_grant, mailbox, now, versus_raw};
use ews_emulator::Emulator as EwsEmulator;
use ews_emulator::requests::{envelope, find_item, get_item, sync};
use graph_emulator::Emulator;
use serde_json::Value;

const MESSAGES: usize = 10_000;
const USER: &str = "bench@contoso.test";
const EWS_USER: &str = "ews-bench@contoso.test";
const EWS_PASSWORD: &str = "Bench-Exch-Passw0rd";
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

/// The bare EWS client: the baseline state, then every page of the window
/// listed and fetched with MIME; messages got.
async fn raw_ews(emulator: &EwsEmulator) -> usize {
    let http = reqwest::Client::new();
    let post = |body: String| {
        let request = http
            .post(emulator.ews_url())
            .basic_auth(EWS_USER, Some(EWS_PASSWORD))
            .header("content-type", "text/xml; charset=utf-8")
            .body(envelope(&body));
        async move {
            request
                .send()
                .await
                .expect("EWS")
                .text()
                .await
                .expect("answer")
        }
    };
    let ids = |text: &str| -> Vec<String> {
        text.split("<t:ItemId Id=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next().map(str::to_string))
            .collect()
    };
    let mut state = String::new();
    loop {
        let answer = post(sync("inbox", &state, 512)).await;
        state = answer
            .split("<m:SyncState>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_default()
            .to_string();
        if answer.contains("<m:IncludesLastItemInRange>true<") {
            break;
        }
    }
    let since = chrono::DateTime::from_timestamp(now() - 365 * DAY, 0)
        .expect("a time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (mut offset, mut got) = (0, 0);
    loop {
        let page = post(find_item("inbox", &since, offset, PAGE)).await;
        let listed = ids(&page);
        offset += listed.len();
        if !listed.is_empty() {
            let refs: Vec<&str> = listed.iter().map(String::as_str).collect();
            let items = post(get_item(&refs)).await;
            got += items.matches("<t:MimeContent").count();
        }
        if page.contains("IncludesLastItemInRange=\"true\"") {
            return got;
        }
    }
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
        grant: loopback_grant("https://graph.microsoft.com", &emulator.url()),
        extra_ca: None,
        contacts: bench_support::contacts(),
    };

    let (mailroom_rate, raw_rate, counts) = versus_raw(&backfill, dir.path(), MESSAGES, || {
        raw_serving(&emulator, &token)
    })
    .await;
    let ews = EwsEmulator::start().await.expect("EWS emulator");
    ews.add_user(EWS_USER, EWS_PASSWORD, None);
    for (raw, at) in &mailbox(MESSAGES, EWS_USER) {
        ews.deliver(EWS_USER, "inbox", raw, *at);
    }
    let ews_backfill = Backfill {
        plugin: "exchange",
        address: EWS_USER.into(),
        settings: BTreeMap::from([
            (
                "exchange_server".to_string(),
                "mail.contoso.test".to_string(),
            ),
            ("folders".to_string(), "inbox".to_string()),
            ("batch_size".to_string(), PAGE.to_string()),
        ]),
        secrets: BTreeMap::from([("password".to_string(), EWS_PASSWORD.to_string())]),
        grant: loopback_grant("https://mail.contoso.test", &ews.url()),
        extra_ca: None,
        contacts: bench_support::contacts(),
    };
    let (ews_rate, ews_raw_rate, ews_counts) =
        versus_raw(&ews_backfill, &dir.path().join("ews"), MESSAGES, || {
            raw_ews(&ews)
        })
        .await;

    println!(
        "Exchange backfill of {MESSAGES} messages ({:.1} MB, SpamAssassin corpus cycled) from each emulator; \
         medians of {ROUNDS} interleaved rounds. Graph: Mailroom stored {}, skipped {}; EWS: stored {}, skipped {}:",
        bytes as f64 / 1e6,
        counts.stored,
        counts.failed,
        ews_counts.stored,
        ews_counts.failed
    );
    println!(
        "mailroom vs emulator: Graph {:.0}%, EWS {:.0}%",
        100.0 * mailroom_rate / raw_rate,
        100.0 * ews_rate / ews_raw_rate
    );
    println!("mailroom-graph: {mailroom_rate:.0} msg/s");
    println!("graph-emulator-raw: {raw_rate:.0} msg/s");
    println!("mailroom-ews: {ews_rate:.0} msg/s");
    println!("ews-emulator-raw: {ews_raw_rate:.0} msg/s");
}
