//! What the backfill benchmarks share: a mailbox made of the SpamAssassin
//! corpus (each message restamped with its own Message-ID, from one of
//! [`CONTACTS`] known contacts), medians, and the sync engine backfilling one
//! account of a given plugin into a fresh SQLite file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailroom_crm::accounts::{self, Connect};
use mailroom_crm::contacts::{self, ContactInput};
use mailroom_crm::messages::Counts;
use mailroom_crm::users::{self, NewUser, Plan, Role};
use mailroom_runtime::{OperatorGrant, Registry, Runtime, RuntimeConfig};
use mailroom_store::Db;
use mailroom_sync::{Engine, EngineConfig, schedule_now};
use mailroom_vault::Vault;

/// How many contacts the CRM knows; every message is from one of them.
pub const CONTACTS: usize = 100;
/// How many times each measured tool runs; the median is reported.
pub const ROUNDS: usize = 3;
/// A day in seconds.
pub const DAY: i64 = 86_400;

/// The `i`-th contact's address.
pub fn contact(i: usize) -> String {
    format!("contact{i}@client{}.test", i % 7)
}

/// The addresses of all [`CONTACTS`] contacts.
pub fn contacts() -> Vec<String> {
    (0..CONTACTS).map(contact).collect()
}

/// Log to stderr as `MAILROOM_LOG` asks (off by default).
pub fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAILROOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The median of some rates.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The `p`-th percentile (0–100) of some measurements, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The corpus message with its own identity: unique Message-ID, a contact as
/// sender, `to` as recipient (the originals' lines for these dropped).
pub fn restamp(raw: &[u8], n: usize, to: &str) -> Vec<u8> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 1))
        .unwrap_or(raw.len());
    let (head, body) = raw.split_at(split);
    let mut out = format!(
        "Message-ID: <bench-{n}@mailroom.bench>\r\nFrom: {}\r\nTo: {to}\r\n",
        contact(n % CONTACTS)
    )
    .into_bytes();
    let mut dropping = false;
    for line in head.split_inclusive(|b| *b == b'\n') {
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded {
            let lower = line.to_ascii_lowercase();
            dropping = ["message-id:", "from:", "to:", "cc:"]
                .iter()
                .any(|h| lower.starts_with(h.as_bytes()));
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

/// `count` corpus messages addressed to `to`, received over the last 300
/// days, newest first: each with its time.
pub fn mailbox(count: usize, to: &str) -> Vec<(Vec<u8>, i64)> {
    let corpus = mailroom_test_support::corpus::messages();
    let t0 = now();
    let spread = 300 * DAY / count.max(1) as i64;
    (0..count)
        .map(|n| {
            let (_, raw) = &corpus[n % corpus.len()];
            (restamp(raw, n, to), t0 - 3600 - n as i64 * spread)
        })
        .collect()
}

/// What a benchmark grants a plugin: loopback addresses, and the declared
/// `origin` served from `base_url` (an emulator).
pub fn loopback_grant(origin: &str, base_url: &str) -> OperatorGrant {
    OperatorGrant {
        private_networks: vec!["127.0.0.0/8".parse().expect("a network")],
        origins: vec![format!("{origin}={base_url}").parse().expect("an origin")],
        ..OperatorGrant::default()
    }
}

/// One account of one plugin, to backfill.
pub struct Backfill {
    /// The plugin (`build/plugins/NAME.wasm`).
    pub plugin: &'static str,
    /// The account's address.
    pub address: String,
    /// Its settings.
    pub settings: BTreeMap<String, String>,
    /// Its secrets.
    pub secrets: BTreeMap<String, String>,
    /// What the plugin is granted.
    pub grant: OperatorGrant,
    /// A CA the plugin's TLS trusts.
    pub extra_ca: Option<PathBuf>,
    /// The contacts' addresses the CRM knows.
    pub contacts: Vec<String>,
}

impl Backfill {
    /// The sync engine backfilling the account into a SQLite file in `dir`,
    /// the plugin compiled beforehand (cached beside `dir`): seconds from the
    /// first claim to done, and the account's mail counts.
    pub async fn run(&self, dir: &Path) -> (f64, Counts) {
        std::fs::create_dir_all(dir).expect("the benchmark's directory");
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.parent().unwrap_or(dir).join("cache")),
            extra_ca: self.extra_ca.clone(),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let registry = Arc::new(Registry::new(runtime));
        registry
            .install(mailroom_test_support::plugin_bytes(self.plugin))
            .await
            .expect("the plugin installs");
        let db = Db::open(&format!("sqlite:{}", dir.join("bench.db").display()))
            .await
            .expect("database");
        let vault = Arc::new(
            Vault::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "bench")
                .expect("key"),
        );
        let owner = users::create(&db, NewUser::new(&self.address, Role::Member, Plan::Lite))
            .await
            .expect("user");
        let items: Vec<ContactInput> = self
            .contacts
            .iter()
            .map(|address| ContactInput {
                emails: Some(vec![address.clone()]),
                ..Default::default()
            })
            .collect();
        contacts::import(&db, &items).await.expect("contacts");
        let connect = Connect::new(
            self.plugin,
            &self.address,
            self.settings.clone(),
            self.secrets.clone(),
        );
        let account = accounts::connect(&db, &vault, &owner, &connect)
            .await
            .expect("account");
        schedule_now(&db, account.id).await.expect("schedule");
        let engine = Engine::new(
            db.clone(),
            vault,
            registry,
            EngineConfig {
                lease: Duration::from_secs(3600),
                grant: self.grant.clone(),
                ..EngineConfig::default()
            },
        );
        let start = Instant::now();
        engine.run_until_idle().await.expect("sync");
        let secs = start.elapsed().as_secs_f64();
        if let Ok(Some(status)) = mailroom_sync::status(&db, account.id).await {
            eprintln!("the account after the backfill: {}", status.text);
        }
        let counts = mailroom_crm::messages::counts(&db, account.id)
            .await
            .expect("counts");
        (secs, counts)
    }
}

/// Medians of [`ROUNDS`] interleaved rounds of Mailroom's backfill and a bare
/// client's pass over the same `messages` (`raw` returns how many it got):
/// (Mailroom's rate, the bare client's rate, Mailroom's last counts), in
/// messages per second.
pub async fn versus_raw<F, Fut>(
    backfill: &Backfill,
    dir: &Path,
    messages: usize,
    raw: F,
) -> (f64, f64, Counts)
where
    F: Fn() -> Fut,
    Fut: Future<Output = usize>,
{
    let mut rates: [Vec<f64>; 2] = Default::default();
    let mut counts = Counts::default();
    for round in 0..ROUNDS {
        let (secs, c) = backfill.run(&dir.join(format!("round-{round}"))).await;
        assert_eq!(
            (c.seen + c.failed) as usize,
            messages,
            "Mailroom indexed or skipped every message"
        );
        rates[0].push(messages as f64 / secs);
        counts = c;

        let start = Instant::now();
        let got = raw().await;
        rates[1].push(messages as f64 / start.elapsed().as_secs_f64());
        assert_eq!(got, messages, "the bare client got every message");
        eprintln!(
            "round {}: mailroom {:.0}, bare client {:.0} msg/s",
            round + 1,
            rates[0][round],
            rates[1][round]
        );
    }
    let [mailroom, raw] = rates.map(median);
    (mailroom, raw, counts)
}
