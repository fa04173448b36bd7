//! Sentiment analysis end to end: mail in an IMAP mailbox on a real
//! Dovecot, scored by the default analyser component
//! (`plugins/lexicon-sentiment`) that `mailroom serve` runs. Only mail
//! received from a contact on an open deal is scored, only while the
//! account allows it; a contact's and a deal's current sentiment and trend
//! come from the last scored emails.

mod common;

use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{Crm, Pages, Site, now};
use mailroom_test_support::db::Kind;
use mailroom_test_support::dovecot::Dovecot;
use mailroom_test_support::plugin;
use serde_json::{Value, json};

const OWNER: &str = "sam@corp.test";
const PASSWORD: &str = "Imap-Passw0rd-Sentiment-3310";
const DAY: i64 = 86_400;

fn mail(from: &str, to: &str, subject: &str, body: &str, at: i64) -> Vec<u8> {
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(at as u64));
    format!(
        "Message-ID: <{}@mailroom.test>\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: {date}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

async fn summary(crm: &Crm, record: &str) -> Value {
    let (code, s) = crm
        .api
        .call("GET", &format!("{record}/sentiment"), &crm.token, None)
        .await;
    assert_eq!(code, 200, "{s}");
    s
}

async fn wait_scored(crm: &Crm, record: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = summary(crm, record).await;
        if s["recent"].as_array().map_or(0, Vec::len) >= n {
            return s;
        }
        assert!(Instant::now() < deadline, "{record}: never {n} scored: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_from_contacts_on_open_deals_is_scored_only_while_allowed() {
    let dovecot = Dovecot::start();
    dovecot.add_user(OWNER, PASSWORD);
    let t = now();
    let older = [
        (
            "Delays again",
            "We are very disappointed with the delays on this project.",
        ),
        (
            "Invoice wrong",
            "This is the third time the invoice is wrong, unacceptable.",
        ),
        (
            "Outage",
            "We had constant outages this month and our users are frustrated.",
        ),
        (
            "Lieferung",
            "Wir sind leider sehr enttäuscht von der Lieferung.",
        ),
        (
            "Support",
            "Your support has not answered in two weeks, this is terrible.",
        ),
    ];
    let newer = [
        (
            "Fixed",
            "Thank you, the issue is resolved and everything works well.",
        ),
        (
            "Demo",
            "The demo was excellent, the whole team was impressed.",
        ),
        ("Angebot", "Vielen Dank, das Angebot gefällt uns sehr gut."),
        ("Renewal", "We are happy to renew, great service this year."),
        ("Training", "Everyone loved the training, thanks so much."),
    ];
    let mut seeded = Vec::new();
    for (i, (subject, body)) in older.iter().chain(newer.iter()).enumerate() {
        let at = t - 20 * DAY + i as i64 * DAY;
        seeded.push((
            mail("Ann Acme <ann@acme.test>", OWNER, subject, body, at),
            at,
        ));
    }
    // Not scored: a contact whose only deal is lost, and the owner's own mail to Ann.
    let at = t - 2 * DAY;
    seeded.push((
        mail(
            "bob@globex.test",
            OWNER,
            "Complaint",
            "This is awful and I am angry.",
            at,
        ),
        at,
    ));
    seeded.push((
        mail(
            OWNER,
            "ann@acme.test",
            "Our reply",
            "We are terribly sorry, awful of us.",
            at,
        ),
        at,
    ));
    dovecot.seed(OWNER, "INBOX", &seeded);

    // On PostgreSQL (the automation test covers SQLite).
    let site = Site::new(Kind::Postgres).await;
    site.install("imap");
    let (_, token) = site.user(OWNER, "admin", true);
    let analyzer = plugin("lexicon-sentiment");
    let server = site.serve_with(&[
        ("MAILROOM_EXTRA_CA", dovecot.ca.ca_file().to_str().unwrap()),
        ("MAILROOM_GRANT_PRIVATE", "127.0.0.0/8"),
        ("MAILROOM_SYNC_INTERVAL", "2"),
        ("MAILROOM_RETRY_SECONDS", "1"),
        ("MAILROOM_ANALYZER", analyzer.to_str().unwrap()),
    ]);
    let crm = site.crm(&server, token.unwrap());
    let ann = crm.contact("Ann Acme", "ann@acme.test").await;
    let bob = crm.contact("Bob Globex", "bob@globex.test").await;
    let deal = crm.deal("Acme renewal", ann, None).await;
    crm.deal("Globex", bob, Some("lost")).await;
    let account = crm
        .post(
            "/api/accounts",
            json!({"provider": "imap", "address": OWNER,
                   "settings": {"imap_host": "localhost", "imap_port": dovecot.imaps_port.to_string()},
                   "secrets": {"password": PASSWORD}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    crm.synced_after(account, now() - 1).await;
    let (deal_path, ann_path, bob_path) = (
        format!("/api/deals/{deal}"),
        format!("/api/contacts/{ann}"),
        format!("/api/contacts/{bob}"),
    );
    assert_eq!(
        crm.subjects(&deal_path).await.len(),
        11,
        "Ann's ten and the reply to her"
    );

    // Sentiment is off by default: nothing is scored.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = summary(&crm, &deal_path).await;
    assert!(
        s["current"].is_null() && s["recent"].as_array().unwrap().is_empty(),
        "{s}"
    );

    // Allowed: Ann's stored mail is scored in the background.
    let a = crm
        .change_account(account, json!({"sentiment": true}))
        .await;
    assert_eq!(a["sentiment"], true);
    let s = wait_scored(&crm, &deal_path, 10).await;
    let recent = s["recent"].as_array().unwrap();
    assert_eq!(
        recent.len(),
        10,
        "only Ann's mail, not the owner's reply: {s}"
    );
    let label = |subject: &str| {
        recent
            .iter()
            .find(|e| e["subject"] == subject)
            .map(|e| e["label"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    for (subject, _) in older {
        assert_eq!(label(subject), "negative", "{subject}: {s}");
    }
    for (subject, _) in newer {
        assert_eq!(label(subject), "positive", "{subject}: {s}");
    }
    for e in recent {
        let v = e["value"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&v), "{e}");
    }
    assert_eq!(s["label"], "positive", "the last five are positive: {s}");
    assert_eq!(s["trend"], "improving", "{s}");
    assert!(s["change"].as_f64().unwrap() > 0.5, "{s}");
    let contact = summary(&crm, &ann_path).await;
    assert_eq!(contact["recent"].as_array().unwrap().len(), 10, "{contact}");
    assert_eq!(contact["trend"], "improving");
    let bob_s = summary(&crm, &bob_path).await;
    assert!(
        bob_s["recent"].as_array().unwrap().is_empty(),
        "a lost deal's contact is not scored: {bob_s}"
    );

    // The deal's page shows it.
    let pages = Pages::new(&server.base);
    let session = pages.sign_in(OWNER, "/emails").await;
    let page = pages
        .get(&format!("/deals/{deal}"), &session)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Sentiment") && page.contains("Positive (+0.") && page.contains("improving"),
        "{page}"
    );

    // Turned off: the scores are no longer shown, at once.
    crm.change_account(account, json!({"sentiment": false}))
        .await;
    let s = summary(&crm, &deal_path).await;
    assert!(
        s["current"].is_null() && s["recent"].as_array().unwrap().is_empty(),
        "{s}"
    );
}

/// Under `MAILROOM_REQUIRE_SIGNED`, an unsigned analyser is refused before
/// it is compiled or run, as an unsigned plugin is: `serve` says why and stops.
#[tokio::test]
async fn an_unsigned_analyser_is_refused_where_signatures_are_required() {
    let site = Site::new(Kind::Sqlite).await;
    let analyzer = plugin("lexicon-sentiment");
    let mut serve = site
        .command(
            &["serve", "--listen", "127.0.0.1:0"],
            &[
                ("MAILROOM_ANALYZER", analyzer.to_str().unwrap()),
                ("MAILROOM_REQUIRE_SIGNED", "true"),
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mailroom starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = serve.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = serve.kill();
            let _ = serve.wait();
            panic!("serve ran with an unsigned analyser");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut said = String::new();
    if let Some(mut err) = serve.stderr.take() {
        use std::io::Read as _;
        let _ = err.read_to_string(&mut said);
    }
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("MAILROOM_ANALYZER") && said.contains("unsigned"),
        "{said}"
    );
}
