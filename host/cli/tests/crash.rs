//! `mailroom sync` killed with SIGKILL at random moments during backfill and
//! incremental sync, restarted, ends in the same state as a run never
//! interrupted: no message lost, none doubled. On SQLite and PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{KEY, Process, Site};
use mailroom_crm::accounts::{self, Account, Change, Connect};
use mailroom_crm::contacts::{self, ContactInput};
use mailroom_crm::deals::{self, DealInput};
use mailroom_crm::users::{self, NewUser, Plan, Role, User};
use mailroom_store::Db;
use mailroom_sync::schedule_now;
use mailroom_test_support::both_backends;
use mailroom_test_support::db::{Kind, mail_snapshot};
use mailroom_vault::Vault;

const MAILBOX: &str = "ann@x.test,bob@x.test,zed@x.test";

/// A user, two contacts (one on an open deal) and one scripted account, due now.
async fn populate(site: &Site, messages: u32) -> (Db, User, Account) {
    let db = Db::open(site.db.url()).await.unwrap();
    let vault = Vault::from_base64(KEY, "test").unwrap();
    let me = users::create(&db, NewUser::new("me@corp.test", Role::Member, Plan::Lite))
        .await
        .unwrap();
    let ann = contacts::create(
        &db,
        &ContactInput {
            emails: Some(vec!["ann@x.test".into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    contacts::create(
        &db,
        &ContactInput {
            emails: Some(vec!["bob@x.test".into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    deals::create(
        &db,
        &DealInput {
            title: Some("D".into()),
            primary_contact_id: Some(Some(ann.id)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let settings = BTreeMap::from([
        ("messages".to_string(), messages.to_string()),
        ("page_size".to_string(), "10".to_string()),
        ("span_days".to_string(), "300".to_string()),
        ("delay_ms".to_string(), "20".to_string()),
        ("contacts".to_string(), MAILBOX.to_string()),
    ]);
    let account = accounts::connect(
        &db,
        &vault,
        &me,
        &Connect::new("scripted", "me@corp.test", settings, BTreeMap::new()),
    )
    .await
    .unwrap();
    schedule_now(&db, account.id).await.unwrap();
    (db, me, account)
}

async fn more_mail(db: &Db, me: &User, account: &Account, messages: u32) {
    let vault = Vault::from_base64(KEY, "test").unwrap();
    let mut settings = account.settings.clone();
    settings.insert("messages".into(), messages.to_string());
    accounts::change(
        db,
        &vault,
        me,
        account.id,
        &Change {
            settings: Some(settings),
            ..Change::default()
        },
    )
    .await
    .unwrap();
    schedule_now(db, account.id).await.unwrap();
}

const SYNC: &[&str] = &["sync", "--node", "crash-test", "--lease-seconds", "600"];

/// Run `mailroom sync` to the end.
fn sync(site: &Site) {
    let out = site.run(SYNC, &[("MAILROOM_LOG", "warn")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Start `mailroom sync` and SIGKILL it after a random moment, until a run
/// finishes by itself with the account caught up (a killed host's
/// transaction may hold the account's row a moment longer, and a pass that
/// found it locked skipped it). Returns how many runs were killed.
async fn sync_with_kills(site: &Site, db: &Db, account: i64) -> u32 {
    let mut kills = 0;
    for _ in 0..500 {
        let mut child = Process(
            site.command(SYNC, &[("MAILROOM_LOG", "warn")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_millis(50 + rand::random::<u64>() % 300);
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                assert!(status.success(), "sync failed: {status}");
                let st = mailroom_sync::status(db, account).await.unwrap().unwrap();
                if st
                    .next_run_at
                    .is_some_and(|t| t > mailroom_store::unix_now())
                {
                    return kills;
                }
                break;
            }
            if Instant::now() >= deadline {
                child.0.kill().unwrap(); // SIGKILL
                child.0.wait().unwrap();
                kills += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    panic!("never caught up after {kills} kills");
}

async fn killed_and_restarted(kind: Kind) {
    let reference = Site::new(kind).await;
    let (db, me, account) = populate(&reference, 300).await;
    sync(&reference);
    more_mail(&db, &me, &account, 360).await;
    sync(&reference);
    db.close().await;
    let expected = mail_snapshot(reference.db.url()).await;
    assert!(expected.len() > 200, "{}", expected.len());

    let site = Site::new(kind).await;
    let (db, me, account) = populate(&site, 300).await;
    let mut kills = sync_with_kills(&site, &db, account.id).await;
    more_mail(&db, &me, &account, 360).await;
    kills += sync_with_kills(&site, &db, account.id).await;
    db.close().await;
    assert!(kills > 0, "no run was interrupted");
    eprintln!("{kills} runs killed");
    assert_eq!(
        mail_snapshot(site.db.url()).await,
        expected,
        "after {kills} kills"
    );
}
both_backends!(
    sync_killed_at_random_moments_loses_and_doubles_nothing,
    killed_and_restarted
);
