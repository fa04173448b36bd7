//! Storing mail on SQLite and PostgreSQL: one row per real message across
//! accounts and folders, threads from headers and provider thread ids, IDN
//! and every participant header matched, and disconnect purging only what
//! no other account holds.

use std::collections::BTreeMap;

use mailroom_crm::accounts::{self, Account, Connect};
use mailroom_crm::contacts::{self, ContactInput};
use mailroom_crm::index::ContactIndex;
use mailroom_crm::messages::{self, AccountContext, Copy, Outcome};
use mailroom_crm::users::{self, NewUser, Plan, Role, User};
use mailroom_store::{Db, sqlx};
use mailroom_test_support::both_backends;
use mailroom_test_support::db::{Kind, TestDb};
use mailroom_vault::Vault;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Fixture {
    db: Db,
    vault: Vault,
    _tdb: TestDb,
}

impl Fixture {
    async fn new(kind: Kind) -> Self {
        let tdb = TestDb::new(kind).await;
        Fixture {
            db: Db::open(tdb.url()).await.unwrap(),
            vault: Vault::from_base64(KEY, "test").unwrap(),
            _tdb: tdb,
        }
    }

    async fn contact(&self, email: &str) {
        let input = ContactInput {
            emails: Some(vec![email.into()]),
            ..Default::default()
        };
        contacts::create(&self.db, &input).await.unwrap();
    }

    async fn user(&self, email: &str) -> User {
        users::create(&self.db, NewUser::new(email, Role::Member, Plan::Lite))
            .await
            .unwrap()
    }

    async fn account(&self, owner: &User) -> (Account, AccountContext) {
        let account = accounts::connect(
            &self.db,
            &self.vault,
            owner,
            &Connect::new(
                "scripted",
                owner.email.clone(),
                BTreeMap::new(),
                BTreeMap::new(),
            ),
        )
        .await
        .unwrap();
        let ctx = AccountContext {
            id: account.id,
            scope: account.scope,
            own: vec![account.address.clone()],
        };
        (account, ctx)
    }

    async fn ingest(
        &self,
        ctx: &AccountContext,
        id: &str,
        thread: Option<&str>,
        raw: &str,
    ) -> Outcome {
        let index = ContactIndex::load(&self.db).await.unwrap();
        let parsed = mailroom_mail::parse(raw.as_bytes()).unwrap();
        let mut tx = self.db.begin().await.unwrap();
        let out = messages::ingest(
            &mut tx,
            ctx,
            &index,
            Copy {
                provider_id: id,
                folder: "INBOX",
                provider_thread: thread,
                received_at: 1_750_000_000,
            },
            &parsed,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        out
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }

    async fn thread_of(&self, message: i64) -> String {
        sqlx::query_scalar("SELECT thread_key FROM messages WHERE id = $1")
            .bind(message)
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }
}

fn mail(headers: &str, body: &str) -> String {
    format!("{headers}Date: Mon, 16 Jun 2025 10:00:00 +0000\r\nSubject: Plans\r\n\r\n{body}\r\n")
}

fn stored(o: Outcome) -> i64 {
    match o {
        Outcome::Stored { message, .. } => message,
        other => panic!("not stored: {other:?}"),
    }
}

async fn dedupe_and_threads(kind: Kind) {
    let f = Fixture::new(kind).await;
    let a = f.user("a@corp.test").await;
    let b = f.user("b@corp.test").await;
    f.contact("client@bücher.example").await;
    let (_, ca) = f.account(&a).await;
    let (account_b, cb) = f.account(&b).await;

    // A reply arrives before its root (backfill runs newest first); both land in the root's thread.
    let reply = mail(
        "Message-ID: <reply@x>\r\nReferences: <root@x>\r\nIn-Reply-To: <root@x>\r\nFrom: a@corp.test\r\nTo: Client <client@xn--bcher-kva.example>\r\n",
        "Sounds good.",
    );
    let root = mail(
        "Message-ID: <root@x>\r\nFrom: client@BÜCHER.example\r\nTo: a@corp.test\r\n",
        "Shall we?",
    );
    let reply_id = stored(f.ingest(&ca, "INBOX:2", None, &reply).await);
    let root_id = stored(f.ingest(&ca, "INBOX:1", None, &root).await);
    assert_eq!(f.thread_of(reply_id).await, f.thread_of(root_id).await);

    // The same message in another account (with its own transport headers) is one row, two copies.
    let copy =
        format!("Received: from mx.corp.test by b; Mon, 16 Jun 2025 10:00:02 +0000\r\n{root}");
    assert_eq!(
        f.ingest(&cb, "b:77", None, &copy).await,
        Outcome::Stored {
            message: root_id,
            new: false
        }
    );
    // The same copy again (a page written twice) changes nothing.
    assert_eq!(
        f.ingest(&cb, "b:77", None, &copy).await,
        Outcome::AlreadyHeld
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM messages").await, 2);
    assert_eq!(f.count("SELECT COUNT(*) FROM message_sources").await, 3);

    // No Message-ID: deduplicated by content; a reused Message-ID with other content is another message.
    let bare = mail(
        "From: client@xn--bcher-kva.example\r\nTo: a@corp.test\r\n",
        "No id here.",
    );
    let first = stored(f.ingest(&ca, "INBOX:3", Some("T9"), &bare).await);
    assert_eq!(stored(f.ingest(&cb, "b:78", None, &bare).await), first);
    let reused = mail(
        "Message-ID: <root@x>\r\nFrom: client@xn--bcher-kva.example\r\nTo: a@corp.test\r\n",
        "Different text.",
    );
    let other = stored(f.ingest(&ca, "INBOX:4", None, &reused).await);
    assert_ne!(other, root_id);
    assert_eq!(f.count("SELECT COUNT(*) FROM messages").await, 4);

    // A message with no thread headers joins its provider thread.
    let follow = mail(
        "Message-ID: <follow@x>\r\nFrom: client@xn--bcher-kva.example\r\nTo: a@corp.test\r\n",
        "Ping.",
    );
    let follow_id = stored(f.ingest(&ca, "INBOX:5", Some("T9"), &follow).await);
    assert_eq!(f.thread_of(follow_id).await, f.thread_of(first).await);

    // Sender, Cc, Bcc and Reply-To all match; the own address never does.
    for (n, header) in ["Sender", "Cc", "Bcc", "Reply-To"].iter().enumerate() {
        let m = mail(
            &format!(
                "Message-ID: <h{n}@x>\r\nFrom: a@corp.test\r\nTo: a@corp.test\r\n{header}: client@xn--bcher-kva.example\r\n"
            ),
            header,
        );
        stored(f.ingest(&ca, &format!("INBOX:h{n}"), None, &m).await);
    }
    let own = mail(
        "Message-ID: <own@x>\r\nFrom: a@corp.test\r\nTo: b@corp.test\r\n",
        "Internal.",
    );
    assert_eq!(
        f.ingest(&ca, "INBOX:own", None, &own).await,
        Outcome::Unmatched
    );

    // Disconnecting B removes only what B alone held: the shared root and bare message stay.
    let before = f.count("SELECT COUNT(*) FROM messages").await;
    accounts::disconnect(&f.db, &f.vault, &b, account_b.id)
        .await
        .unwrap();
    assert_eq!(f.count("SELECT COUNT(*) FROM messages").await, before);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM message_sources").await,
        before
    );
}
both_backends!(one_row_per_message_and_threads, dedupe_and_threads);

async fn one_page(kind: Kind) {
    let f = Fixture::new(kind).await;
    let a = f.user("a@corp.test").await;
    f.contact("client@x.test").await;
    let (_, ctx) = f.account(&a).await;
    let index = ContactIndex::load(&f.db).await.unwrap();
    let root = mail(
        "Message-ID: <p1@x>\r\nFrom: client@x.test\r\nTo: a@corp.test\r\n",
        "One.",
    );
    let reused = mail(
        "Message-ID: <p1@x>\r\nFrom: client@x.test\r\nTo: a@corp.test\r\n",
        "Two.",
    );
    let stranger = mail(
        "Message-ID: <p2@x>\r\nFrom: nobody@y.test\r\nTo: a@corp.test\r\n",
        "Spam.",
    );
    let parsed: Vec<_> = [&root, &root, &reused, &stranger, &root]
        .iter()
        .map(|m| mailroom_mail::parse(m.as_bytes()).unwrap())
        .collect();
    let copy = |id: &'static str, folder: &'static str| Copy {
        provider_id: id,
        folder,
        provider_thread: Some("T1"),
        received_at: 1_750_000_000,
    };
    let items = [
        (copy("INBOX:1", "INBOX"), &parsed[0]),
        (copy("Archive:1", "Archive"), &parsed[1]),
        (copy("INBOX:2", "INBOX"), &parsed[2]),
        (copy("INBOX:3", "INBOX"), &parsed[3]),
        (copy("INBOX:1", "INBOX"), &parsed[4]),
    ];
    let mut tx = f.db.begin().await.unwrap();
    let out = messages::ingest_page(&mut tx, &ctx, &index, &items)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // One message in two folders is one row; a reused id is another; a stranger is only indexed;
    // the same copy twice in a page is held once.
    let first = stored(out[0]);
    assert_eq!(
        out[1],
        Outcome::Stored {
            message: first,
            new: false
        }
    );
    assert!(matches!(out[2], Outcome::Stored { message, new: true } if message != first));
    assert_eq!(out[3], Outcome::Unmatched);
    assert_eq!(out[4], Outcome::AlreadyHeld);
    assert_eq!(f.count("SELECT COUNT(*) FROM messages").await, 2);
    assert_eq!(f.count("SELECT COUNT(*) FROM message_sources").await, 3);
    assert_eq!(f.count("SELECT COUNT(*) FROM header_index").await, 4);
    // Both share the provider thread.
    assert_eq!(f.thread_of(first).await, f.thread_of(stored(out[2])).await);
}
both_backends!(a_page_with_repeats_is_written_once, one_page);

async fn deletions(kind: Kind) {
    let f = Fixture::new(kind).await;
    let a = f.user("a@corp.test").await;
    f.contact("client@x.test").await;
    let (_, ctx) = f.account(&a).await;
    let raw = mail(
        "Message-ID: <d1@x>\r\nFrom: client@x.test\r\nTo: a@corp.test\r\n",
        "Moved around.",
    );
    let message = stored(f.ingest(&ctx, "INBOX:7:1", None, &raw).await);
    stored(f.ingest(&ctx, "Archive:9:4", None, &raw).await);
    let forget = |ids: &[&str]| {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let db = f.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            messages::forget(&mut tx, ctx.id, &ids).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    // One copy gone (moved out of INBOX): the message and its link stay.
    forget(&["INBOX:7:1", "never:1:1"]).await;
    assert_eq!(f.count("SELECT COUNT(*) FROM message_sources").await, 1);
    assert_eq!(f.count("SELECT COUNT(*) FROM message_contacts").await, 1);
    assert_eq!(f.count("SELECT COUNT(*) FROM header_index").await, 1);
    // The last copy gone: the message leaves with its links.
    forget(&["Archive:9:4"]).await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE id = $1")
        .bind(message)
        .fetch_one(f.db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(f.count("SELECT COUNT(*) FROM message_contacts").await, 0);
    assert_eq!(f.count("SELECT COUNT(*) FROM header_index").await, 0);
}
both_backends!(copies_reported_gone_are_forgotten, deletions);
