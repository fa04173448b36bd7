//! `make bench-hot-swap`: what swapping a plugin costs the accounts syncing
//! through it, measured in one run on one machine.
//!
//! A Dovecot (started here, as the tests start it) holds 50 mailboxes of 20
//! messages each; the sync engine (4 workers, each account due every second)
//! keeps all 50 in sync over IMAPS while a new message arrives every 100 ms.
//! A run is one account's sync from claim to release (sign in, look for
//! news, store it). Two phases of the same length and load:
//!
//! - `no-upgrades`: the IMAP plugin left alone (the reference);
//! - `upgrades`: the plugin upgraded 10 times and rolled back once through
//!   the lifecycle (each build checked, compiled and swapped in while the
//!   runs go on; runs under way finish on the version they started with).
//!
//! Printed: the median and p99 run latency of each phase, and the accounts
//! whose last run failed at the end of each phase (0 expected).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bench_support::{now, percentile};
use mailroom_crm::accounts::{self, Connect};
use mailroom_crm::contacts::{self, ContactInput};
use mailroom_crm::users::{self, NewUser, Plan, Role};
use mailroom_lifecycle::{Lifecycle, Trust};
use mailroom_runtime::{OperatorGrant, Registry, Runtime, RuntimeConfig};
use mailroom_store::Db;
use mailroom_sync::{Engine, EngineConfig, schedule_now};
use mailroom_test_support::dovecot::Dovecot;
use mailroom_test_support::{plugin_build, plugin_bytes};
use mailroom_vault::Vault;

const ACCOUNTS: usize = 50;
const SEEDED: usize = 20;
const WORKERS: usize = 4;
const UPGRADES: u32 = 10;
const PHASE: Duration = Duration::from_secs(40);
const PASSWORD: &str = "Bench-Passw0rd-1618";

fn mailbox(i: usize) -> String {
    format!("user{i}@corp.test")
}

fn contact(i: usize) -> String {
    format!("c{i}@x.test")
}

fn letter(i: usize, subject: &str, at: i64) -> (Vec<u8>, i64) {
    let raw = format!(
        "Message-ID: <{}-{at}@bench.test>\r\nFrom: {}\r\nTo: {}\r\nSubject: {subject}\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nAbout {subject}.\r\n",
        subject.replace(' ', "-"),
        contact(i),
        mailbox(i)
    );
    (raw.into_bytes(), at)
}

/// The host's side: the engine, and the lifecycle of its plugins.
struct Host {
    engine: Arc<Engine>,
    lifecycle: Arc<Lifecycle>,
    db: Db,
    accounts: Vec<i64>,
}

impl Host {
    /// Accounts whose last run failed, or whose engine tick failed.
    async fn in_error(&self, engine_errors: usize) -> usize {
        let mut failing = engine_errors;
        for id in &self.accounts {
            let status = mailroom_sync::status(&self.db, *id).await.ok().flatten();
            if status.is_none_or(|s| s.error.is_some()) {
                failing += 1;
            }
        }
        failing
    }
}

async fn host(dovecot: &Dovecot, dir: &std::path::Path) -> Host {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.join("cache")),
        extra_ca: Some(dovecot.ca.ca_file()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let registry = Arc::new(Registry::new(runtime));
    let db = Db::open(&format!("sqlite:{}", dir.join("bench.db").display()))
        .await
        .expect("database");
    let vault = Arc::new(
        Vault::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "bench").expect("key"),
    );
    let lifecycle = Arc::new(Lifecycle::new(
        dir.join("plugins"),
        registry.clone(),
        db.clone(),
        Trust::new("", false).expect("no keys"),
    ));
    lifecycle
        .install(&plugin_bytes("imap"), None, "bench")
        .await
        .expect("the IMAP plugin installs");
    let owner = users::create(
        &db,
        NewUser::new("ops@corp.test", Role::Admin, Plan::Enterprise),
    )
    .await
    .expect("user");
    let people: Vec<ContactInput> = (0..ACCOUNTS)
        .map(|i| ContactInput {
            emails: Some(vec![contact(i)]),
            ..Default::default()
        })
        .collect();
    contacts::import(&db, &people).await.expect("contacts");
    let mut ids = Vec::new();
    for i in 0..ACCOUNTS {
        let settings = BTreeMap::from([
            ("imap_host".to_string(), "localhost".to_string()),
            ("imap_port".to_string(), dovecot.imaps_port.to_string()),
        ]);
        let secrets = BTreeMap::from([("password".to_string(), PASSWORD.to_string())]);
        let account = accounts::connect(
            &db,
            &vault,
            &owner,
            &Connect::new("imap", mailbox(i), settings, secrets),
        )
        .await
        .expect("account");
        schedule_now(&db, account.id).await.expect("schedule");
        ids.push(account.id);
    }
    let engine = Arc::new(Engine::new(
        db.clone(),
        vault,
        registry,
        EngineConfig {
            interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            grant: OperatorGrant {
                private_networks: vec!["127.0.0.0/8".parse().expect("a network")],
                ..OperatorGrant::default()
            },
            ..EngineConfig::default()
        },
    ));
    Host {
        engine,
        lifecycle,
        db,
        accounts: ids,
    }
}

/// Run the engine for [`PHASE`] under the delivery load, upgrading the plugin
/// meanwhile when asked: each run's latency in milliseconds, and how many
/// accounts were failing at the end.
async fn phase(
    host: &Host,
    dovecot: &Arc<Dovecot>,
    upgrades: bool,
    first_build: u32,
) -> (Vec<f64>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (engine, stop, failed) = (host.engine.clone(), stop.clone(), failed.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                match engine.tick().await {
                    Ok(true) => latencies.push(start.elapsed().as_secs_f64() * 1000.0),
                    Ok(false) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        });
    }
    let delivering = {
        let (dovecot, stop) = (dovecot.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let i = n % ACCOUNTS;
                dovecot.seed(
                    &mailbox(i),
                    "INBOX",
                    &[letter(i, &format!("live {n}"), now())],
                );
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    if upgrades {
        let gap = PHASE / (UPGRADES + 2);
        for k in 0..UPGRADES {
            tokio::time::sleep(gap).await;
            let change = host
                .lifecycle
                .install(&plugin_build("imap", first_build + k), None, "bench")
                .await
                .expect("an upgrade");
            assert_eq!(change.action, "upgrade");
        }
        tokio::time::sleep(gap).await;
        host.lifecycle
            .rollback("imap", "bench")
            .await
            .expect("the rollback");
        tokio::time::sleep(gap).await;
    } else {
        tokio::time::sleep(PHASE).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.expect("a worker"));
    }
    delivering.await.expect("the deliveries went on all along");
    (
        latencies,
        host.in_error(failed.load(Ordering::Relaxed)).await,
    )
}

fn main() {
    bench_support::init_log();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let dovecot = Arc::new(Dovecot::start());
        let t0 = now();
        for i in 0..ACCOUNTS {
            dovecot.add_user(&mailbox(i), PASSWORD);
            let mail: Vec<_> = (0..SEEDED)
                .map(|n| letter(i, &format!("seeded {n}"), t0 - 3600 * (n as i64 + 1)))
                .collect();
            dovecot.seed(&mailbox(i), "INBOX", &mail);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let host = host(&dovecot, dir.path()).await;
        let runs = host.engine.run_until_idle().await.expect("the backfill");
        eprintln!("backfilled {ACCOUNTS} accounts in {runs} runs; measuring {PHASE:?} per phase");
        // Every build compiled once beforehand is not the point: the upgrade
        // phase compiles each new build while the runs go on, as in production.
        let (quiet, quiet_failed) = phase(&host, &dovecot, false, 0).await;
        let (swapping, swapping_failed) = phase(&host, &dovecot, true, 1).await;
        eprintln!(
            "runs: {} without upgrades, {} during upgrades",
            quiet.len(),
            swapping.len()
        );
        println!("no-upgrades-median: {:.1} ms", percentile(&quiet, 50.0));
        println!("no-upgrades-p99: {:.1} ms", percentile(&quiet, 99.0));
        println!("upgrades-median: {:.1} ms", percentile(&swapping, 50.0));
        println!("upgrades-p99: {:.1} ms", percentile(&swapping, 99.0));
        println!("accounts-in-error-no-upgrades: {quiet_failed} accounts");
        println!("accounts-in-error-upgrades: {swapping_failed} accounts");
    });
}
