//! `make bench-engine`: how fast the sync engine takes mail in, and how fast
//! a participant is matched against a large CRM.
//!
//! 1. Ingest: the real `scripted` plugin serves 100,000 messages; the engine
//!    pulls them page by page and parses, matches and stores them in a
//!    SQLite file, one transaction per page. The reference is parsing the
//!    same raw messages alone (the floor any ingest pays).
//! 2. Lookups: participant addresses matched against 1,000,000 contacts in
//!    the contact index, beside the same lookups in a bare `HashSet<String>`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bench_support::Backfill;
use mailroom_crm::index::ContactIndex;
use mailroom_runtime::{
    AccountInput, OperatorGrant, Registry, Runtime, RuntimeConfig, Secrets, Window,
};

const MESSAGES: usize = 100_000;
const PAGE: usize = 500;
const CORRESPONDENTS: usize = 100;
const CONTACTS: usize = 1_000_000;
const LOOKUPS: usize = 5_000_000;

fn correspondents() -> String {
    (0..CORRESPONDENTS)
        .map(|i| format!("person{i}@client{}.test", i % 7))
        .collect::<Vec<_>>()
        .join(",")
}

fn settings() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("messages".to_string(), MESSAGES.to_string()),
        ("page_size".to_string(), PAGE.to_string()),
        ("span_days".to_string(), "300".to_string()),
        ("body_bytes".to_string(), "400".to_string()),
        ("contacts".to_string(), correspondents()),
    ])
}

/// The engine taking the plugin's mailbox into a SQLite file: messages per
/// second, and how many were stored (the rest were only indexed).
async fn ingest(dir: &std::path::Path) -> (f64, u64) {
    // Four in five correspondents are contacts: their mail is stored, the rest only indexed.
    let contacts = (0..CORRESPONDENTS)
        .filter(|i| i % 5 != 4)
        .map(|i| format!("person{i}@client{}.test", i % 7))
        .collect();
    let backfill = Backfill {
        plugin: "scripted",
        address: "owner@corp.test".into(),
        settings: settings(),
        secrets: BTreeMap::new(),
        grant: OperatorGrant::default(),
        extra_ca: None,
        contacts,
    };
    let (secs, counts) = backfill.run(dir).await;
    assert_eq!(counts.seen as usize, MESSAGES, "every message was taken in");
    (MESSAGES as f64 / secs, counts.stored as u64)
}

/// The raw messages, pulled through the plugin alone, and that rate.
async fn raw_messages(runtime: &Arc<Runtime>, registry: &Registry) -> (Vec<Vec<u8>>, f64) {
    let plugin = registry.get("scripted").expect("installed");
    let input = AccountInput {
        id: "bench".into(),
        address: "owner@corp.test".into(),
        settings: settings(),
        secrets: Secrets::new(),
    };
    let mut run = runtime
        .start(&plugin, &input, &OperatorGrant::default())
        .await
        .expect("start");
    run.open().await.expect("open");
    let window = Window {
        since: 0,
        skip: vec![],
    };
    let start = Instant::now();
    let mut cursor = None;
    let mut raws = Vec::with_capacity(MESSAGES);
    loop {
        let page = run.sync(cursor.as_deref(), &window).await.expect("page");
        raws.extend(page.messages.into_iter().map(|m| m.raw));
        if !page.more {
            break;
        }
        cursor = Some(page.cursor);
    }
    let rate = raws.len() as f64 / start.elapsed().as_secs_f64();
    (raws, rate)
}

fn parse_only(raws: &[Vec<u8>]) -> f64 {
    let start = Instant::now();
    let mut participants = 0;
    for raw in raws {
        participants += mailroom_mail::parse(raw)
            .expect("parses")
            .participants
            .len();
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(participants >= raws.len());
    raws.len() as f64 / secs
}

fn lookups() -> (f64, f64) {
    let mut index = ContactIndex::default();
    let mut bare = HashSet::with_capacity(CONTACTS);
    for i in 0..CONTACTS {
        let address = format!("contact{i}@company{}.example", i % 5000);
        index.add_address(&address, i as i64);
        bare.insert(address);
    }
    // Half hits, half misses, in random order.
    let probes: Vec<String> = (0..LOOKUPS)
        .map(|_| {
            let i = rand::random::<u64>() as usize % (CONTACTS * 2);
            format!("contact{i}@company{}.example", i % 5000)
        })
        .collect();
    let start = Instant::now();
    let mut hits = 0usize;
    for p in &probes {
        hits += index.lookup(p).len();
    }
    let ours = LOOKUPS as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut bare_hits = 0usize;
    for p in &probes {
        bare_hits += usize::from(bare.contains(p));
    }
    let reference = LOOKUPS as f64 / start.elapsed().as_secs_f64();
    assert_eq!(hits, bare_hits);
    (ours, reference)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let registry = Arc::new(Registry::new(runtime.clone()));
    registry
        .install(mailroom_test_support::plugin_bytes("scripted"))
        .await
        .expect("scripted");

    eprintln!("ingesting {MESSAGES} scripted messages into SQLite…");
    let (ingest_rate, stored) = ingest(&dir.path().join("ingest")).await;
    let (raws, plugin_rate) = raw_messages(&runtime, &registry).await;
    assert_eq!(raws.len(), MESSAGES);
    let parse_rate = parse_only(&raws);
    eprintln!("matching against {CONTACTS} contacts…");
    let (lookup_rate, bare_rate) = lookups();

    println!(
        "ingest of {MESSAGES} messages ({stored} matched and stored, the rest header-indexed), page size {PAGE}:"
    );
    println!(
        "  {:<44} {:>12.0} msg/s",
        "mailroom sync (plugin, parse, match, store)", ingest_rate
    );
    println!(
        "  {:<44} {:>12.0} msg/s",
        "parse only, same messages (reference)", parse_rate
    );
    println!(
        "  {:<44} {:>12.0} msg/s",
        "plugin pages only, no host work (reference)", plugin_rate
    );
    println!("participant lookups against {CONTACTS} contacts:");
    println!(
        "  {:<44} {:>12.0} lookups/s",
        "mailroom contact index", lookup_rate
    );
    println!(
        "  {:<44} {:>12.0} lookups/s",
        "bare HashSet<String> (reference)", bare_rate
    );
    println!("mailroom-ingest: {ingest_rate:.0} msg/s");
    println!("parse-only: {parse_rate:.0} msg/s");
    println!("plugin-only: {plugin_rate:.0} msg/s");
    println!("mailroom-lookups: {lookup_rate:.0} lookups/s");
    println!("hashset-lookups: {bare_rate:.0} lookups/s");
}
