//! The IMAP plugin end to end, against a real Dovecot (IMAPS, STARTTLS, LMTP,
//! submission) and a real Postfix, through `mailroom serve` and its HTTP API.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{Crm, Server, Site, now};
use mailroom_test_support::db::Kind;
use mailroom_test_support::dovecot::Dovecot;
use mailroom_test_support::postfix::Postfix;
use serde_json::{Value, json};

const ALICE: &str = "alice@corp.test";
const PASSWORD: &str = "Imap-Passw0rd-Secret-9931";
const DAY: i64 = 86_400;

/// A plain message.
fn letter(id: &str, from: &str, to: &str, subject: &str, at: i64) -> Vec<u8> {
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(at as u64));
    format!(
        "Message-ID: <{id}@mailroom.test>\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: {date}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello about {subject}.\r\n"
    )
    .into_bytes()
}

/// The running pieces of one test.
struct Rig {
    dovecot: Dovecot,
    site: Site,
    server: Server,
    crm: Crm,
}

impl Rig {
    async fn new(kind: Kind) -> Rig {
        let dovecot = Dovecot::start();
        dovecot.add_user(ALICE, PASSWORD);
        let site = Site::new(kind).await;
        site.install("imap");
        let (_, admin) = site.user(ALICE, "admin", true);
        let server = site.serve_for(&dovecot);
        let crm = site.crm(&server, admin.unwrap());
        Rig {
            dovecot,
            site,
            server,
            crm,
        }
    }

    /// Connect Alice's mailbox; its id.
    async fn connect(&self, settings: Value, secrets: Value) -> i64 {
        let body =
            json!({"provider": "imap", "address": ALICE, "settings": settings, "secrets": secrets});
        self.crm.post("/api/accounts", body).await["id"]
            .as_i64()
            .unwrap()
    }

    /// Try to connect Alice's mailbox with settings that must be refused: the status and error.
    async fn refused(&self, settings: Value, secrets: Value) -> (u16, Value) {
        let body =
            json!({"provider": "imap", "address": ALICE, "settings": settings, "secrets": secrets});
        self.crm
            .api
            .call("POST", "/api/accounts", &self.crm.token, Some(body))
            .await
    }

    /// The account's skipped messages, each with its reason.
    async fn skipped(&self, id: i64) -> Vec<Value> {
        let path = format!("/api/accounts/{id}/skipped");
        let (code, list) = self.crm.api.call("GET", &path, &self.crm.token, None).await;
        assert_eq!(code, 200, "{list}");
        list.as_array().unwrap().clone()
    }

    /// The IMAPS account settings.
    fn settings(&self) -> Value {
        json!({
            "imap_host": "localhost",
            "imap_port": self.dovecot.imaps_port.to_string(),
            "imap_security": "tls",
            "smtp_host": "localhost",
            "smtp_port": self.dovecot.submission_port.to_string(),
            "smtp_security": "starttls",
        })
    }
}

/// One message of the seeded mailbox.
struct Seeded {
    subject: String,
    counterpart: &'static str,
    at: i64,
}

#[tokio::test]
async fn imap_backfill_incremental_reauth_resync_and_send() {
    let rig = Rig::new(Kind::Sqlite).await;
    rig.dovecot.add_user("client@x.test", "client-pw");
    let t0 = now();

    // Contacts and deals: one on an open deal, one on a lost deal, one with
    // none, and a contact holding the connected address itself.
    let client = rig.crm.contact("Client", "client@x.test").await;
    let lost = rig.crm.contact("Lost", "lost@x.test").await;
    let other = rig.crm.contact("Other", "other@x.test").await;
    let own = rig.crm.contact("Alice herself", ALICE).await;
    let open_deal = rig.crm.deal("Open", client, None).await;
    let lost_deal = rig.crm.deal("Lost", lost, Some("lost")).await;

    // Fourteen months of mail in INBOX and Sent, to and from the contacts and
    // a stranger; none within two days of the window's edge.
    let people = [
        "client@x.test",
        "lost@x.test",
        "other@x.test",
        "stranger@nowhere.test",
    ];
    let mut seeded = Vec::new();
    let (mut inbox, mut sent) = (Vec::new(), Vec::new());
    for (n, days) in (3..425)
        .step_by(4)
        .filter(|d| !(362..=368).contains(d))
        .enumerate()
    {
        let counterpart = people[n % people.len()];
        let at = t0 - days * DAY;
        let subject = format!("m{n} d{days}");
        let id = format!("seed-{n}");
        if n % 5 == 0 {
            sent.push((letter(&id, ALICE, counterpart, &subject, at), at));
        } else {
            inbox.push((letter(&id, counterpart, ALICE, &subject, at), at));
        }
        seeded.push(Seeded {
            subject,
            counterpart,
            at,
        });
    }
    rig.dovecot.seed(ALICE, "INBOX", &inbox);
    rig.dovecot.seed(ALICE, "Sent", &sent);
    let expected = |who: &str| -> BTreeSet<String> {
        seeded
            .iter()
            .filter(|m| m.counterpart == who && m.at > t0 - 365 * DAY)
            .map(|m| m.subject.clone())
            .collect()
    };

    // A wrong password is refused on the form, naming what to try.
    let (code, err) = rig
        .refused(rig.settings(), json!({"password": "wrong"}))
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("sign-in failed"),
        "{err}"
    );

    // Plain IMAP: the host will not write the password into a connection that
    // is not encrypted, since this operator did not allow it.
    let mut plain = rig.settings();
    plain["imap_port"] = json!(rig.dovecot.imap_port.to_string());
    plain["imap_security"] = json!("plain");
    let (code, err) = rig.refused(plain, json!({"password": PASSWORD})).await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("settings.imap_security")),
        "{err}"
    );
    assert!(
        err["error"].as_str().unwrap().contains("not encrypted"),
        "{err}"
    );

    let id = rig
        .connect(rig.settings(), json!({"password": PASSWORD}))
        .await;
    let synced = rig.crm.synced_after(id, 0).await;
    let total: usize = [
        "client@x.test",
        "lost@x.test",
        "other@x.test",
        "stranger@nowhere.test",
    ]
    .iter()
    .map(|p| expected(p).len())
    .sum();
    assert_eq!(synced["sync"]["progress_done"], total as i64, "{synced}");

    // Exactly the last 365 days, by every rule: the contact's own mail, both
    // directions, deals of any status; never the connected address.
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        set(rig.crm.subjects(&format!("/api/contacts/{client}")).await),
        expected("client@x.test")
    );
    assert_eq!(
        set(rig.crm.subjects(&format!("/api/contacts/{lost}")).await),
        expected("lost@x.test")
    );
    assert_eq!(
        set(rig.crm.subjects(&format!("/api/contacts/{other}")).await),
        expected("other@x.test")
    );
    assert!(
        rig.crm
            .subjects(&format!("/api/contacts/{own}"))
            .await
            .is_empty()
    );
    assert_eq!(
        set(rig.crm.subjects(&format!("/api/deals/{open_deal}")).await),
        expected("client@x.test")
    );
    assert_eq!(
        set(rig.crm.subjects(&format!("/api/deals/{lost_deal}")).await),
        expected("lost@x.test")
    );
    let newest_first = rig.crm.subjects(&format!("/api/contacts/{client}")).await;
    let mut sorted = newest_first.clone();
    sorted.sort_by_key(|s| s.split(" d").nth(1).and_then(|d| d.parse::<i64>().ok()));
    assert_eq!(newest_first, sorted, "newest first");

    // Mail arriving from outside, through Postfix and LMTP, shows up within a poll interval.
    let postfix = Postfix::start(&rig.dovecot, "corp.test x.test");
    let before = now();
    postfix.deliver(
        "client@x.test",
        &[ALICE],
        &letter(
            "fresh-1",
            "client@x.test",
            ALICE,
            "fresh from outside",
            before,
        ),
    );
    rig.crm
        .wait_for_subject(
            &format!("/api/contacts/{client}"),
            "fresh from outside",
            || postfix.log(),
        )
        .await;

    // The password changes on the server: re-authorisation is asked for, with
    // the reason; giving the new one resumes the sync.
    rig.dovecot.set_password(ALICE, "Changed-Passw0rd-77");
    let a = rig
        .crm
        .wait(id, "reauth_required", |s| s["phase"] == "reauth_required")
        .await;
    assert!(
        a["sync"]["text"]
            .as_str()
            .unwrap()
            .contains("refused the sign-in"),
        "{a}"
    );
    let (code, a) = rig
        .crm
        .api
        .call(
            "PATCH",
            &format!("/api/accounts/{id}"),
            &rig.crm.token,
            Some(json!({"secrets": {"password": "Changed-Passw0rd-77"}})),
        )
        .await;
    assert_eq!(code, 200, "{a}");
    rig.crm.synced_after(id, now()).await;

    // The Sent folder is deleted and recreated with the same mail (a new
    // UIDVALIDITY): the window is synced again, nothing doubles.
    let counts_before = rig
        .crm
        .subjects(&format!("/api/contacts/{other}"))
        .await
        .len();
    rig.dovecot
        .doveadm(&["mailbox", "delete", "-u", ALICE, "Sent"], b"");
    rig.dovecot
        .doveadm(&["mailbox", "create", "-u", ALICE, "Sent"], b"");
    rig.dovecot.seed(ALICE, "Sent", &sent);
    let mark = now();
    rig.crm.synced_after(id, mark + 1).await;
    assert_eq!(
        rig.crm
            .subjects(&format!("/api/contacts/{other}"))
            .await
            .len(),
        counts_before
    );
    assert!(
        std::fs::read_to_string(rig.site.log())
            .unwrap()
            .contains("cursor expired"),
        "the resync went through cursor expiry"
    );

    // Sending: through Dovecot's submission (STARTTLS, AUTH PLAIN) to Postfix,
    // into the recipient's mailbox; the copy in Sent reaches the timelines.
    let (code, sent) = rig
        .crm
        .api
        .call(
            "POST",
            &format!("/api/accounts/{id}/send"),
            &rig.crm.token,
            Some(json!({"to": ["client@x.test"], "subject": "Our offer", "text": "Here it is."})),
        )
        .await;
    assert_eq!(code, 202, "{sent}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = rig.dovecot.doveadm(
            &[
                "search",
                "-u",
                "client@x.test",
                "mailbox",
                "INBOX",
                "subject",
                "Our offer",
            ],
            b"",
        );
        if !found.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered; postfix: {}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rig.crm
        .wait_for_subject(&format!("/api/deals/{open_deal}"), "Our offer", || {
            "the sent copy was not synced".into()
        })
        .await;
    drop(rig.server);
}

#[tokio::test]
async fn imap_starttls_xoauth2_outage_broken_message_and_moves_on_postgres() {
    let rig = Rig::new(Kind::Postgres).await;
    let t0 = now();
    let client = rig.crm.contact("Client", "client@x.test").await;
    let count = 400;
    let inbox: Vec<_> = (0..count)
        .map(|n| {
            let at = t0 - 3600 - n * (300 * DAY / count);
            let raw = letter(
                &format!("bulk-{n}"),
                "client@x.test",
                ALICE,
                &format!("bulk {n}"),
                at,
            );
            (raw, at)
        })
        .collect();
    rig.dovecot.seed(ALICE, "INBOX", &inbox);
    rig.dovecot.maildir(ALICE, "Archive");
    // One message the server cannot read: it answers NO for it.
    let broken = std::fs::read_dir(rig.dovecot.maildir(ALICE, "INBOX").join("cur"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".M13P"))
        .unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    rig.dovecot.add_token("tok-Oauth-Access-5531", ALICE);

    // STARTTLS on the plain port, XOAUTH2 with a host-held token, small pages.
    let settings = json!({
        "imap_host": "localhost",
        "imap_port": rig.dovecot.imap_port.to_string(),
        "imap_security": "starttls",
        "folders": "Archive",
        "batch_size": "5",
    });
    let (code, err) = rig
        .refused(settings.clone(), json!({"oauth_token": "tok-revoked"}))
        .await;
    assert_eq!(code, 422, "an unknown token is refused: {err}");
    let id = rig
        .connect(settings, json!({"oauth_token": "tok-Oauth-Access-5531"}))
        .await;

    // The server goes away mid-backfill: an error with a next retry; when it
    // is back the sync completes with nothing lost or doubled.
    rig.crm
        .wait(id, "the backfill under way", |s| {
            s["phase"] == "backfilling" && s["progress_done"].as_i64() > Some(0)
        })
        .await;
    let mut rig = rig;
    rig.dovecot.stop();
    let failed = rig
        .crm
        .wait(id, "an error", |s| {
            s["phase"] == "error" && s["next_run_at"].is_i64()
        })
        .await;
    assert!(
        failed["sync"]["text"]
            .as_str()
            .unwrap()
            .contains("next retry at"),
        "{failed}"
    );
    rig.dovecot.restart();
    rig.crm.synced_after(id, 0).await;
    let got = rig.crm.subjects(&format!("/api/contacts/{client}")).await;
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    let expected: BTreeSet<String> = (0..count)
        .filter(|n| *n != 13)
        .map(|n| format!("bulk {n}"))
        .collect();
    assert_eq!(got.len(), unique.len(), "no message twice");
    assert_eq!(unique, expected);
    let skipped = rig.skipped(id).await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("would not return"),
        "{skipped:?}"
    );

    // A message moved to another synced folder stays on the timeline, once.
    // (doveadm's search reads every message: make the broken one readable.)
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    rig.dovecot.doveadm(
        &[
            "move",
            "-u",
            ALICE,
            "Archive",
            "mailbox",
            "INBOX",
            "header",
            "Message-ID",
            "<bulk-7@mailroom.test>",
        ],
        b"",
    );
    rig.crm.synced_after(id, now()).await;
    let got = rig.crm.subjects(&format!("/api/contacts/{client}")).await;
    assert_eq!(got.iter().filter(|s| *s == "bulk 7").count(), 1);
    assert_eq!(got.len(), expected.len());
    let a = rig.crm.account(id).await;
    assert_eq!(a["mail"]["stored"], expected.len() as i64, "{a}");
}

/// Known messages of the corpus: their sender, and their subject as Python's
/// `email.header` decodes it.
const CHARSET_SAMPLES: &[(&str, &str, &str)] = &[
    (
        "hard-ham-1/00039.b2b936a8501444b213f61f9ff193b480.txt",
        "hito@opentext.com",
        "日本語の件名（サブジェクト）\u{3000}スパムメールではありません！",
    ),
    (
        "spam-1/00397.1a99f98a5b996f99f3661e9609782932.txt",
        "market@chinaemail.net",
        "50元获得一亿五千万EMAIL地址的机会",
    ),
    (
        "easy-ham-1/02434.37126367f2a918fead5ff8ea834cc334.txt",
        "billjac@earthlink.net",
        "Re: RE: [zzzzteana] Sitting Bull über alles [Long]",
    ),
    (
        "spam-1/00322.7d39d31fb7aad32c15dff84c14019b8c.txt",
        "epost@360cn.com",
        "Sunfrom lighting 您的满意是我们追求的目标",
    ),
];

#[tokio::test]
async fn the_spamassassin_corpus_syncs_without_loss() {
    let rig = Rig::new(Kind::Sqlite).await;
    let corpus = mailroom_test_support::corpus::messages();
    assert_eq!(corpus.len(), 6046);
    let t0 = now();
    let spread = 300 * DAY / corpus.len() as i64;
    let seeded: Vec<(Vec<u8>, i64)> = corpus
        .iter()
        .enumerate()
        .map(|(i, (_, raw))| (raw.clone(), t0 - 3600 - i as i64 * spread))
        .collect();
    rig.dovecot.seed(ALICE, "INBOX", &seeded);
    let mut contacts = Vec::new();
    for (_, from, _) in CHARSET_SAMPLES {
        contacts.push(rig.crm.contact(from, from).await);
    }
    let id = rig
        .connect(rig.settings(), json!({"password": PASSWORD}))
        .await;
    let a = rig.crm.synced_after(id, 0).await;

    // Every message is accounted for: indexed, or skipped with its reason.
    let (seen, failed) = (
        a["mail"]["seen"].as_i64().unwrap(),
        a["mail"]["failed"].as_i64().unwrap(),
    );
    assert_eq!(seen + failed, corpus.len() as i64, "{a}");
    for s in rig.skipped(id).await {
        assert!(!s["reason"].as_str().unwrap().is_empty(), "{s}");
    }
    let log = std::fs::read_to_string(rig.site.log()).unwrap();
    assert!(!log.contains("panicked"), "a panic in the log");

    // Subjects and senders decoded from their charsets.
    for ((file, from, subject), contact) in CHARSET_SAMPLES.iter().zip(&contacts) {
        let (code, emails) = rig
            .crm
            .api
            .call(
                "GET",
                &format!("/api/contacts/{contact}/emails?limit=500"),
                &rig.crm.token,
                None,
            )
            .await;
        assert_eq!(code, 200);
        let found = emails
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subject"] == *subject && e["from"] == *from);
        assert!(found, "{file}: no `{subject}` from {from} in {emails}");
    }
}
