//! The sync engine driving the real `scripted` plugin into real SQLite and
//! PostgreSQL databases: backfill, incremental sync, crash and resume,
//! every typed error, matching rules, late contacts and deduplication.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mailroom_crm::accounts::{self, Account, Change, Connect, Scope, Visibility};
use mailroom_crm::contacts::{self, ContactInput};
use mailroom_crm::deals::{self, DealInput, Status};
use mailroom_crm::messages;
use mailroom_crm::timeline::{self, Record};
use mailroom_crm::users::{self, NewUser, Plan, Role, User};
use mailroom_runtime::{Registry, Runtime, RuntimeConfig};
use mailroom_store::{Db, sqlx, unix_now};
use mailroom_sync::{Engine, EngineConfig, Phase, schedule_now, status};
use mailroom_test_support::both_backends;
use mailroom_test_support::db::{Kind, TestDb, mail_snapshot};
use mailroom_vault::Vault;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mailroom-test-cache")
}

struct World {
    db: Db,
    vault: Arc<Vault>,
    registry: Arc<Registry>,
    tdb: TestDb,
}

async fn world(kind: Kind) -> World {
    let tdb = TestDb::new(kind).await;
    let db = Db::open(tdb.url()).await.expect("database opens");
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        max_instances: Some(16),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let registry = Arc::new(Registry::new(runtime));
    registry
        .install(mailroom_test_support::plugin_bytes("scripted"))
        .await
        .expect("scripted installs");
    World {
        db,
        vault: Arc::new(Vault::from_base64(KEY, "test").unwrap()),
        registry,
        tdb,
    }
}

impl World {
    fn engine(&self, node: &str) -> Engine {
        Engine::new(
            self.db.clone(),
            self.vault.clone(),
            self.registry.clone(),
            EngineConfig {
                node: node.into(),
                lease: Duration::from_secs(30),
                backoff_base: Duration::from_secs(10),
                ..EngineConfig::default()
            },
        )
    }

    async fn user(&self, email: &str, plan: Plan) -> User {
        users::create(&self.db, NewUser::new(email, Role::Member, plan))
            .await
            .unwrap()
    }

    async fn contact(&self, emails: &[&str]) -> i64 {
        contacts::create(
            &self.db,
            &ContactInput {
                name: None,
                emails: Some(emails.iter().map(|s| s.to_string()).collect()),
                external_id: None,
            },
        )
        .await
        .unwrap()
        .id
    }

    async fn deal(&self, status: Status, primary: Option<i64>, others: &[i64]) -> i64 {
        deals::create(
            &self.db,
            &DealInput {
                title: Some("Deal".into()),
                status: Some(status),
                primary_contact_id: Some(primary),
                contact_ids: Some(others.to_vec()),
                ..DealInput::default()
            },
        )
        .await
        .unwrap()
        .id
    }

    async fn connect(
        &self,
        owner: &User,
        address: &str,
        settings: &[(&str, &str)],
        scope: Scope,
    ) -> Account {
        let mut map: BTreeMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("span_days".into()).or_insert("300".into());
        let account = accounts::connect(
            &self.db,
            &self.vault,
            owner,
            &Connect {
                scope,
                ..Connect::new(
                    "scripted",
                    address,
                    map,
                    BTreeMap::from([("password".into(), "s3cret-pw".into())]),
                )
            },
        )
        .await
        .unwrap();
        schedule_now(&self.db, account.id).await.unwrap();
        account
    }

    async fn set(&self, owner: &User, account: &Account, settings: &[(&str, &str)]) {
        let mut map = accounts::get(&self.db, &self.vault, account.id)
            .await
            .unwrap()
            .settings;
        for (k, v) in settings {
            map.insert(k.to_string(), v.to_string());
        }
        accounts::change(
            &self.db,
            &self.vault,
            owner,
            account.id,
            &Change {
                settings: Some(map),
                ..Change::default()
            },
        )
        .await
        .unwrap();
        schedule_now(&self.db, account.id).await.unwrap();
    }

    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }
}

/// Message `i` of a scripted mailbox with `contacts` goes to `contacts[i % n]`.
fn expected_ids(messages: usize, contacts: &[&str], matching: &[&str]) -> Vec<String> {
    (0..messages)
        .filter(|i| matching.contains(&contacts[i % contacts.len()]))
        .map(|i| format!("{}:{i}", if i % 3 == 2 { "Sent" } else { "INBOX" }))
        .collect()
}

async fn backfill_then_incremental(kind: Kind) {
    let w = world(kind).await;
    let me = w.user("me@corp.test", Plan::Lite).await;
    w.contact(&["Ann@X.test"]).await;
    w.contact(&["bob@x.test"]).await;
    let mailbox = ["ann@x.test", "bob@x.test", "carl@x.test"];
    let acct = w
        .connect(
            &me,
            "me@corp.test",
            &[
                ("messages", "50"),
                ("page_size", "7"),
                ("contacts", &mailbox.join(",")),
            ],
            Scope::AllContacts,
        )
        .await;
    let engine = w.engine("a");
    assert_eq!(engine.run_until_idle().await.unwrap(), 1);
    let st = status(&w.db, acct.id).await.unwrap().unwrap();
    assert_eq!(st.phase, Phase::Active, "{st:?}");
    assert!(st.text.starts_with("active (last sync at "), "{}", st.text);
    assert_eq!(st.progress_done, 50);
    let counts = messages::counts(&w.db, acct.id).await.unwrap();
    let expected = expected_ids(50, &mailbox, &["ann@x.test", "bob@x.test"]);
    assert_eq!(counts.stored as usize, expected.len());
    assert_eq!(counts.seen, 50, "every message is in the header index");
    let stored: Vec<String> = sqlx::query_scalar("SELECT provider_id FROM message_sources")
        .fetch_all(w.db.pool())
        .await
        .unwrap();
    let mut stored = stored;
    stored.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(
        stored, expected_sorted,
        "exactly the mail with contacts is stored"
    );
    // Nothing due until the interval passes.
    assert_eq!(engine.run_until_idle().await.unwrap(), 0);
    // New mail arrives; an incremental run picks up only it.
    w.set(&me, &acct, &[("messages", "60")]).await;
    assert_eq!(engine.run_until_idle().await.unwrap(), 1);
    let counts = messages::counts(&w.db, acct.id).await.unwrap();
    assert_eq!(
        counts.stored as usize,
        expected_ids(60, &mailbox, &["ann@x.test", "bob@x.test"]).len()
    );
    assert_eq!(counts.seen, 60);
    assert_eq!(
        w.scalar("SELECT COUNT(*) FROM messages").await,
        counts.stored
    );
}
both_backends!(backfill_then_incremental_sync, backfill_then_incremental);

/// Cancel the engine at random points (the transaction in flight is rolled
/// back, as in a crash), restart, and compare with an uninterrupted run.
/// A user with two contacts (one the primary of an open deal) and a
/// scripted account of 120 messages, due now.
async fn populated(kind: Kind) -> (World, User, Account) {
    let w = world(kind).await;
    let me = w.user("me@corp.test", Plan::Lite).await;
    let ann = w.contact(&["ann@x.test"]).await;
    w.contact(&["bob@x.test"]).await;
    w.deal(Status::Open, Some(ann), &[]).await;
    let settings = [
        ("messages", "120"),
        ("page_size", "9"),
        ("delay_ms", "4"),
        ("contacts", "ann@x.test,bob@x.test,zed@x.test"),
    ];
    let acct = w
        .connect(&me, "me@corp.test", &settings, Scope::AllContacts)
        .await;
    (w, me, acct)
}

/// Whether the account finished a run and is not due again yet.
async fn caught_up(db: &Db, account: i64) -> bool {
    let st = status(db, account).await.unwrap().unwrap();
    st.phase == Phase::Active && st.next_run_at.is_some_and(|t| t > unix_now())
}

async fn crash_and_resume(kind: Kind) {
    let reference = {
        let (w, me, acct) = populated(kind).await;
        w.engine("ref").run_until_idle().await.unwrap();
        w.set(&me, &acct, &[("messages", "150")]).await;
        w.engine("ref").run_until_idle().await.unwrap();
        mail_snapshot(w.tdb.url()).await
    };
    assert!(reference.len() > 90, "{}", reference.len());

    let (w, me, acct) = populated(kind).await;
    let mut crashes = 0;
    for stage in 0..2 {
        if stage == 1 {
            w.set(&me, &acct, &[("messages", "150")]).await;
        }
        loop {
            // A fresh engine each time: nothing survives the "crash" but the database.
            let engine = w.engine("crashy");
            // A whole run takes over 50 ms (14 pages of 4 ms and more): most budgets cut it.
            let budget = Duration::from_millis(rand::random::<u64>() % 50 + 1);
            match tokio::time::timeout(budget, engine.run_until_idle()).await {
                Ok(done) => {
                    done.unwrap();
                    // A "crashed" transaction may still hold the account's row for
                    // a moment (its rollback is flushed asynchronously), in which case
                    // this pass skipped it: done only when the account is not due.
                    if caught_up(&w.db, acct.id).await {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => crashes += 1,
            }
            assert!(crashes < 500, "never finished");
        }
    }
    assert!(crashes > 0, "the test never interrupted a run");
    assert_eq!(
        mail_snapshot(w.tdb.url()).await,
        reference,
        "after {crashes} crashes"
    );
    let st = status(&w.db, acct.id).await.unwrap().unwrap();
    assert_eq!(st.phase, Phase::Active, "{st:?}");
}
both_backends!(crash_at_random_points_and_resume, crash_and_resume);

async fn outcome(kind: Kind, settings: &[(&str, &str)]) -> (mailroom_sync::SyncStatus, World, i64) {
    let w = world(kind).await;
    let me = w.user("me@corp.test", Plan::Lite).await;
    w.contact(&["contact@example.com"]).await;
    let acct = w
        .connect(&me, "me@corp.test", settings, Scope::AllContacts)
        .await;
    w.engine("a").run_until_idle().await.unwrap();
    let st = status(&w.db, acct.id).await.unwrap().unwrap();
    (st, w, acct.id)
}

async fn typed_errors(kind: Kind) {
    let before = unix_now();
    let (st, ..) = outcome(kind, &[("fail", "1:auth-failed")]).await;
    assert_eq!(st.phase, Phase::ReauthRequired, "{st:?}");
    assert_eq!(st.next_run_at, None, "waits for the user");
    assert!(
        st.text.contains("update the account's authentication"),
        "{}",
        st.text
    );

    let (st, ..) = outcome(kind, &[("fail", "1:unreachable")]).await;
    assert_eq!(st.phase, Phase::Error, "{st:?}");
    let next = st.next_run_at.expect("a retry is scheduled");
    assert!(next >= before + 5 && next <= unix_now() + 10, "{st:?}");
    assert!(st.text.contains("next retry at"), "{}", st.text);

    let (st, ..) = outcome(kind, &[("fail", "1:rate-limited")]).await;
    assert!(
        st.next_run_at.unwrap() >= before + 30,
        "honours retry-after: {st:?}"
    );

    let (st, ..) = outcome(kind, &[("fail", "1:bad-config")]).await;
    assert_eq!(st.phase, Phase::Error, "{st:?}");
    assert_eq!(st.next_run_at, None);
    assert!(
        st.text.contains("messages:"),
        "names the field: {}",
        st.text
    );

    let (st, ..) = outcome(kind, &[("fail", "1:panic")]).await;
    assert_eq!(st.phase, Phase::Error, "{st:?}");
    assert!(st.next_run_at.is_some());

    // One bad message (page-level error or in a page's failed list): recorded, skipped, the rest synced.
    let (st, w, id) = outcome(
        kind,
        &[
            ("messages", "30"),
            ("page_size", "10"),
            ("fail", "2:message-failed"),
            ("bad", "3,4"),
        ],
    )
    .await;
    assert_eq!(st.phase, Phase::Active, "{st:?}");
    let failures = messages::failures(&w.db, id).await.unwrap();
    let ids: Vec<&str> = failures.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["INBOX:3", "INBOX:4", "page-2"], "{failures:?}");
    assert_eq!(messages::counts(&w.db, id).await.unwrap().stored, 28);

    // The auth error clears once the credentials are updated and work.
    let (_, w, id) = outcome(kind, &[("fail", "1:auth-failed")]).await;
    let owner = users::list(&w.db).await.unwrap().remove(0);
    let mut settings = accounts::get(&w.db, &w.vault, id).await.unwrap().settings;
    settings.remove("fail");
    accounts::change(
        &w.db,
        &w.vault,
        &owner,
        id,
        &Change {
            settings: Some(settings),
            secrets: Some(BTreeMap::from([("password".into(), "new-pw".into())])),
            ..Change::default()
        },
    )
    .await
    .unwrap();
    schedule_now(&w.db, id).await.unwrap();
    w.engine("a").run_until_idle().await.unwrap();
    assert_eq!(
        status(&w.db, id).await.unwrap().unwrap().phase,
        Phase::Active
    );
}
both_backends!(each_typed_error_leads_to_its_status, typed_errors);

async fn cursor_expiry(kind: Kind) {
    let (st, w, id) = outcome(kind, &[("messages", "30"), ("page_size", "8")]).await;
    assert_eq!(st.phase, Phase::Active);
    let owner = users::list(&w.db).await.unwrap().remove(0);
    let account = accounts::get(&w.db, &w.vault, id).await.unwrap();
    // The mailbox shrinks under the cursor (like a new UIDVALIDITY): the window is synced again.
    w.set(&owner, &account, &[("messages", "20")]).await;
    w.engine("a").run_until_idle().await.unwrap();
    let st = status(&w.db, id).await.unwrap().unwrap();
    assert_eq!(st.phase, Phase::Active, "{st:?}");
    assert_eq!(
        messages::counts(&w.db, id).await.unwrap().stored,
        30,
        "nothing doubled"
    );
    assert_eq!(w.scalar("SELECT COUNT(*) FROM messages").await, 30);
}
both_backends!(cursor_expiry_resyncs_the_window, cursor_expiry);

async fn scopes_and_own_address(kind: Kind) {
    let w = world(kind).await;
    let me = w.user("me@corp.test", Plan::Lite).await;
    let loner = w.contact(&["loner@x.test"]).await; // no deal
    let primary = w.contact(&["primary@x.test"]).await; // primary on an open deal
    let other = w.contact(&["other@x.test"]).await; // other contact on that deal
    let won = w.contact(&["won@x.test"]).await; // primary on a won deal
    let myself = w.contact(&["me@corp.test"]).await; // the connected address as a contact
    let open = w.deal(Status::Open, Some(primary), &[other]).await;
    let won_deal = w.deal(Status::Won, Some(won), &[]).await;
    let mailbox = "loner@x.test,primary@x.test,other@x.test,won@x.test,me@corp.test";
    let now = unix_now().to_string();
    let settings = [
        ("messages", "25"),
        ("contacts", mailbox),
        ("now", now.as_str()),
    ];
    let all = w
        .connect(&me, "me@corp.test", &settings, Scope::AllContacts)
        .await;
    let me2 = w.user("me2@corp.test", Plan::Lite).await;
    let narrow = w
        .connect(&me2, "me2@corp.test", &settings, Scope::PrimaryOpenDeals)
        .await;
    w.engine("a").run_until_idle().await.unwrap();
    let linked = |account: i64, table: &'static str, column: &'static str| {
        let db = w.db.clone();
        async move {
            let mut v: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT DISTINCT {column} FROM {table} WHERE account_id = $1"
            ))
            .bind(account)
            .fetch_all(db.pool())
            .await
            .unwrap();
            v.sort();
            v
        }
    };
    let mut contacts_all = vec![loner, primary, other, won];
    contacts_all.sort();
    assert_eq!(
        linked(all.id, "message_contacts", "contact_id").await,
        contacts_all
    );
    let mut deals_all = vec![open, won_deal];
    deals_all.sort();
    assert_eq!(linked(all.id, "message_deals", "deal_id").await, deals_all);
    assert_eq!(
        linked(narrow.id, "message_contacts", "contact_id").await,
        vec![primary]
    );
    assert_eq!(
        linked(narrow.id, "message_deals", "deal_id").await,
        vec![open]
    );
    assert!(
        !linked(all.id, "message_contacts", "contact_id")
            .await
            .contains(&myself)
    );
    // The received copies both accounts hold (same Message-ID, same content) are stored once;
    // the one sent copy with primary@ reuses the Message-ID with another sender (`From: me2@`),
    // so it is another message, keyed by its content hash.
    assert_eq!(
        w.scalar("SELECT COUNT(*) FROM message_sources").await,
        20 + 5
    );
    assert_eq!(w.scalar("SELECT COUNT(*) FROM messages").await, 21);
    assert_eq!(
        w.scalar("SELECT COUNT(*) FROM messages WHERE message_key LIKE '#%'")
            .await,
        1
    );
    // The deal is won now: under the narrow scope its mail goes; under all contacts it stays.
    deals::update(
        &w.db,
        open,
        &DealInput {
            status: Some(Status::Won),
            ..DealInput::default()
        },
    )
    .await
    .unwrap();
    schedule_now(&w.db, all.id).await.unwrap();
    schedule_now(&w.db, narrow.id).await.unwrap();
    w.engine("a").run_until_idle().await.unwrap();
    assert_eq!(
        linked(narrow.id, "message_contacts", "contact_id").await,
        Vec::<i64>::new()
    );
    assert_eq!(messages::counts(&w.db, narrow.id).await.unwrap().stored, 0);
    assert_eq!(linked(all.id, "message_deals", "deal_id").await, deals_all);
}
both_backends!(
    scopes_link_exactly_and_own_address_never_matches,
    scopes_and_own_address
);

async fn late_contact(kind: Kind) {
    let w = world(kind).await;
    let me = w.user("me@corp.test", Plan::Lite).await;
    w.contact(&["ann@x.test"]).await;
    let acct = w
        .connect(
            &me,
            "me@corp.test",
            &[
                ("messages", "40"),
                ("page_size", "10"),
                ("contacts", "ann@x.test,newbie@x.test"),
            ],
            Scope::AllContacts,
        )
        .await;
    w.engine("a").run_until_idle().await.unwrap();
    assert_eq!(messages::counts(&w.db, acct.id).await.unwrap().stored, 20);
    // A contact added later (through a new address on an existing contact here) gets its past mail.
    let ann = contacts::list(&w.db, 10, 0).await.unwrap().remove(0);
    contacts::update(
        &w.db,
        ann.id,
        &ContactInput {
            emails: Some(vec!["ann@x.test".into(), "NEWBIE@x.test".into()]),
            ..ContactInput::default()
        },
    )
    .await
    .unwrap();
    schedule_now(&w.db, acct.id).await.unwrap();
    w.engine("a").run_until_idle().await.unwrap();
    let counts = messages::counts(&w.db, acct.id).await.unwrap();
    assert_eq!(counts.stored, 40, "{counts:?}");
    assert_eq!(counts.seen, 40, "the mailbox was not synced again");
    let emails = timeline::emails(&w.db, Record::Contact(ann.id), me.id, 100, 0)
        .await
        .unwrap();
    assert_eq!(emails.len(), 40);
    assert!(
        emails.windows(2).all(|p| p[0].sent_at >= p[1].sent_at),
        "newest first"
    );
}
both_backends!(late_contact_gets_its_past_mail_without_resync, late_contact);

async fn visibility(kind: Kind) {
    let w = world(kind).await;
    let a = w.user("a@corp.test", Plan::Lite).await;
    let b = w.user("b@corp.test", Plan::Lite).await;
    let c = w.contact(&["client@x.test"]).await;
    let deal = w.deal(Status::Open, Some(c), &[]).await;
    let acct = w
        .connect(
            &a,
            "a@corp.test",
            &[("messages", "6"), ("contacts", "client@x.test")],
            Scope::AllContacts,
        )
        .await;
    w.engine("a").run_until_idle().await.unwrap();
    for record in [Record::Contact(c), Record::Deal(deal)] {
        assert_eq!(
            timeline::emails(&w.db, record, a.id, 50, 0)
                .await
                .unwrap()
                .len(),
            6
        );
        assert_eq!(
            timeline::activities(&w.db, record, a.id, 50)
                .await
                .unwrap()
                .len(),
            6
        );
        assert!(
            timeline::emails(&w.db, record, b.id, 50, 0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            timeline::activities(&w.db, record, b.id, 50)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert!(
        accounts::get_owned(&w.db, &w.vault, &b, acct.id)
            .await
            .is_err()
    );
    assert!(
        accounts::list_owned(&w.db, &w.vault, b.id)
            .await
            .unwrap()
            .is_empty()
    );
    accounts::change(
        &w.db,
        &w.vault,
        &a,
        acct.id,
        &Change {
            visibility: Some(Visibility::Public),
            ..Change::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        timeline::emails(&w.db, Record::Deal(deal), b.id, 50, 0)
            .await
            .unwrap()
            .len(),
        6
    );
    // Disconnecting purges the mail no other account holds.
    accounts::disconnect(&w.db, &w.vault, &a, acct.id)
        .await
        .unwrap();
    assert_eq!(w.scalar("SELECT COUNT(*) FROM messages").await, 0);
    assert_eq!(w.scalar("SELECT COUNT(*) FROM header_index").await, 0);
}
both_backends!(
    private_mail_and_connections_stay_with_their_owner,
    visibility
);

async fn broken_account_isolated(kind: Kind) {
    let w = world(kind).await;
    let me = w.user("me@corp.test", Plan::Lite).await;
    w.contact(&["contact@example.com"]).await;
    let broken = w
        .connect(
            &me,
            "me@corp.test",
            &[("messages", "5")],
            Scope::AllContacts,
        )
        .await;
    let fine = w
        .connect(
            &me,
            "me2@corp.test",
            &[("messages", "5")],
            Scope::AllContacts,
        )
        .await;
    // Its sealed credentials no longer open (altered, or sealed under another key).
    sqlx::query("UPDATE accounts SET sealed_secrets = $1 WHERE id = $2")
        .bind(vec![1u8; 60])
        .bind(broken.id)
        .execute(w.db.pool())
        .await
        .unwrap();
    assert_eq!(w.engine("a").run_until_idle().await.unwrap(), 2);
    let st = status(&w.db, broken.id).await.unwrap().unwrap();
    assert_eq!(st.phase, Phase::Error, "{st:?}");
    assert!(st.next_run_at.is_some(), "retried later: {st:?}");
    let st = status(&w.db, fine.id).await.unwrap().unwrap();
    assert_eq!(st.phase, Phase::Active, "{st:?}");
    assert_eq!(messages::counts(&w.db, fine.id).await.unwrap().stored, 5);
}
both_backends!(
    a_broken_account_does_not_hold_up_the_others,
    broken_account_isolated
);

async fn two_hosts(kind: Kind) {
    let w = world(kind).await;
    let me = w.user("me@corp.test", Plan::Lite).await;
    w.contact(&["contact@example.com"]).await;
    let mut accounts = Vec::new();
    let now = unix_now().to_string();
    for i in 0..6 {
        let settings = [
            ("messages", "40"),
            ("page_size", "5"),
            ("delay_ms", "2"),
            ("now", now.as_str()),
        ];
        accounts.push(
            w.connect(
                &me,
                &format!("box{i}@corp.test"),
                &settings,
                Scope::AllContacts,
            )
            .await,
        );
    }
    // Two hosts share the database: each account is run by exactly one of them.
    let (a, b) = (w.engine("host-a"), w.engine("host-b"));
    let (ra, rb) = tokio::join!(a.run_until_idle(), b.run_until_idle());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra + rb, accounts.len(), "runs: {ra} + {rb}");
    assert!(ra > 0 && rb > 0, "both hosts worked: {ra} + {rb}");
    for acct in &accounts {
        assert_eq!(messages::counts(&w.db, acct.id).await.unwrap().stored, 40);
        let st = status(&w.db, acct.id).await.unwrap().unwrap();
        assert_eq!(st.phase, Phase::Active, "{st:?}");
    }
    // The 27 received messages every mailbox holds are stored once; the 13
    // sent ones differ per mailbox (`From: boxN@`), so each is its own message.
    assert_eq!(w.scalar("SELECT COUNT(*) FROM messages").await, 27 + 13 * 6);
    assert_eq!(
        w.scalar("SELECT COUNT(*) FROM message_sources").await,
        40 * 6
    );
}
both_backends!(two_hosts_share_the_accounts_without_overlap, two_hosts);

/// A re-authorisation campaign, held to a clock the test moves: before the
/// deadline a due account keeps syncing (its owner sees the notice); at the
/// deadline it stops with `reauth_required`; signing in again clears it and
/// sync resumes from its cursor with nothing doubled. An account connected
/// after the date, or of another provider, is never touched.
async fn reauth_campaign(kind: Kind) {
    use mailroom_crm::campaigns::{self, NewCampaign};
    use mailroom_sync::Clock;
    use std::sync::atomic::{AtomicI64, Ordering};

    let w = world(kind).await;
    let me = w.user("me@corp.test", Plan::Lite).await;
    w.contact(&["ann@x.test"]).await;
    let settings = [
        ("messages", "30"),
        ("page_size", "10"),
        ("contacts", "ann@x.test"),
    ];
    let old = w
        .connect(&me, "old@corp.test", &settings, Scope::AllContacts)
        .await;
    let now = Arc::new(AtomicI64::new(unix_now()));
    let clock = {
        let now = now.clone();
        Clock::new(move || now.load(Ordering::SeqCst))
    };
    let engine = Engine::new(
        w.db.clone(),
        w.vault.clone(),
        w.registry.clone(),
        EngineConfig {
            node: "a".into(),
            lease: Duration::from_secs(30),
            clock,
            ..EngineConfig::default()
        },
    );
    engine.run_until_idle().await.unwrap();
    assert_eq!(messages::counts(&w.db, old.id).await.unwrap().stored, 30);

    let t = unix_now();
    let campaign = campaigns::create(
        &w.db,
        &NewCampaign {
            provider: "scripted".into(),
            connected_before: t + 1,
            deadline: t + 86_400,
        },
    )
    .await
    .unwrap();
    let refused = campaigns::create(
        &w.db,
        &NewCampaign {
            provider: "scripted".into(),
            connected_before: t,
            deadline: t - 1,
        },
    )
    .await;
    assert!(refused.is_err(), "a deadline before the date is refused");
    let old = accounts::get(&w.db, &w.vault, old.id).await.unwrap();
    let notice = campaigns::notice(&w.db, &old)
        .await
        .unwrap()
        .expect("a notice");
    assert_eq!(notice.deadline, campaign.deadline);

    // Before the deadline: more mail still syncs.
    w.set(&me, &old, &[("messages", "40")]).await;
    let old = accounts::get(&w.db, &w.vault, old.id).await.unwrap();
    engine.run_until_idle().await.unwrap();
    assert_eq!(
        status(&w.db, old.id).await.unwrap().unwrap().phase,
        Phase::Active
    );
    assert_eq!(messages::counts(&w.db, old.id).await.unwrap().stored, 40);

    // The clock passes the deadline: the account stops, with the reason.
    now.store(campaign.deadline, Ordering::SeqCst);
    schedule_now(&w.db, old.id).await.unwrap();
    w.set(&me, &old, &[("messages", "50")]).await;
    engine.run_until_idle().await.unwrap();
    let st = status(&w.db, old.id).await.unwrap().unwrap();
    assert_eq!(st.phase, Phase::ReauthRequired, "{st:?}");
    assert!(st.text.contains("deadline"), "{}", st.text);
    assert_eq!(messages::counts(&w.db, old.id).await.unwrap().stored, 40);

    // Signing in again (new credentials, after the campaign began) clears it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    accounts::change(
        &w.db,
        &w.vault,
        &me,
        old.id,
        &Change {
            secrets: Some(BTreeMap::from([("password".into(), "new-pw".into())])),
            ..Change::default()
        },
    )
    .await
    .unwrap();
    schedule_now(&w.db, old.id).await.unwrap();
    let old = accounts::get(&w.db, &w.vault, old.id).await.unwrap();
    assert_eq!(campaigns::notice(&w.db, &old).await.unwrap(), None);
    engine.run_until_idle().await.unwrap();
    assert_eq!(
        status(&w.db, old.id).await.unwrap().unwrap().phase,
        Phase::Active
    );
    assert_eq!(
        messages::counts(&w.db, old.id).await.unwrap().stored,
        50,
        "resumed, nothing doubled"
    );

    // Connected after the date: no notice, never stopped.
    let new = w
        .connect(&me, "new@corp.test", &settings, Scope::AllContacts)
        .await;
    engine.run_until_idle().await.unwrap();
    let new = accounts::get(&w.db, &w.vault, new.id).await.unwrap();
    assert_eq!(campaigns::notice(&w.db, &new).await.unwrap(), None);
    assert_eq!(
        status(&w.db, new.id).await.unwrap().unwrap().phase,
        Phase::Active
    );
}
both_backends!(
    a_reauthorisation_campaign_stops_accounts_at_its_deadline,
    reauth_campaign
);
