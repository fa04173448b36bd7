//! The POP3 plugin — Python, built from `plugins/pop3` by `mailroom plugin
//! build` as a third party would build theirs — against Dovecot's POP3
//! service, through `mailroom serve`: it backfills, picks up new mail by
//! UIDL, drops deleted mail, and puts it all on the contacts' and deals'
//! timelines; and it refuses a server that injects plaintext after STLS.
//! (Its conformance run is in `conformance.rs`.)

mod common;

use std::collections::BTreeSet;

use common::{Site, build_pop3, letter, now};
use mailroom_test_support::db::Kind;
use mailroom_test_support::dovecot::Dovecot;
use mailroom_test_support::{Injector, MailProtocol};
use serde_json::json;

const ANN: &str = "ann@corp.test";
const PASSWORD: &str = "Pop3-Passw0rd-Secret-5521";
const DAY: i64 = 86_400;

#[tokio::test(flavor = "multi_thread")]
async fn pop3_backfill_incremental_by_uidl_and_deletions_on_the_timelines() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = build_pop3(dir.path());
    let site = Site::new(Kind::Sqlite).await;

    // A server whose answer to STLS comes with an injected line: the plugin
    // refuses to go on, and never starts TLS on top of it.
    let injector = Injector::start(MailProtocol::Pop3).await;
    let port = format!("pop3_port={}", injector.port);
    let out = site.run(
        &[
            "plugin",
            "run",
            wasm.to_str().unwrap(),
            "--set",
            "pop3_host=localhost",
            "--set",
            &port,
            "--set",
            "pop3_security=starttls",
            "--secret-env",
            "password=POP3_TEST_PASSWORD",
            "--grant-private",
            "127.0.0.0/8",
        ],
        &[("POP3_TEST_PASSWORD", PASSWORD)],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("injected plaintext"), "{said}");
    assert!(!injector.handshake_attempted());

    let dovecot = Dovecot::start();
    dovecot.add_user(ANN, PASSWORD);
    let out = site.run(&["plugin", "install", wasm.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, admin) = site.user(ANN, "admin", true);
    let server = site.serve_for(&dovecot);
    let crm = site.crm(&server, admin.unwrap());

    let client = crm.contact("Client", "client@x.test").await;
    let deal = crm.deal("Renewal", client, None).await;
    let t0 = now();
    // Two years of mail, every nine days; a third from the client, the rest
    // from a stranger. Only the last year is in the window.
    let mut mail = Vec::new();
    let mut expected = BTreeSet::new();
    for (n, days) in (2..730).step_by(9).enumerate() {
        let at = t0 - days * DAY;
        let from = if n % 3 == 0 {
            "client@x.test"
        } else {
            "stranger@nowhere.test"
        };
        let subject = format!("m{n} d{days}");
        if from == "client@x.test" && days < 365 {
            expected.insert(subject.clone());
        }
        mail.push((letter(from, ANN, &subject, at), at));
    }
    // Oldest first, as mail arrives: the maildrop's order.
    mail.reverse();
    dovecot.seed(ANN, "INBOX", &mail);

    let settings = json!({
        "pop3_host": "localhost",
        "pop3_port": dovecot.pop3_port.to_string(),
        "pop3_security": "starttls",
        "batch_size": "7",
    });
    // A wrong password is refused on the form, in the plugin's words.
    let (code, err) = crm
        .api
        .call(
            "POST",
            "/api/accounts",
            &crm.token,
            Some(json!({"provider": "pop3", "address": ANN,
                        "settings": settings, "secrets": {"password": "wrong"}})),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("check the user name and password"),
        "{err}"
    );

    let body = json!({"provider": "pop3", "address": ANN, "settings": settings,
                      "secrets": {"password": PASSWORD}});
    let id = crm.post("/api/accounts", body).await["id"]
        .as_i64()
        .unwrap();
    crm.synced_after(id, 0).await;
    let on = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        on(crm.subjects_once(&format!("/api/contacts/{client}")).await),
        expected
    );
    assert_eq!(
        on(crm.subjects_once(&format!("/api/deals/{deal}")).await),
        expected
    );

    // New mail: picked up by UIDL on the next poll, once.
    dovecot.save(
        ANN,
        "INBOX",
        &letter("client@x.test", ANN, "fresh by pop3", now()),
    );
    crm.wait_for_subject(&format!("/api/deals/{deal}"), "fresh by pop3", || {
        dovecot.log()
    })
    .await;
    let after = crm.subjects_once(&format!("/api/deals/{deal}")).await;
    assert_eq!(after.len(), expected.len() + 1, "{after:?}");

    // Deleted on the server (another POP3 client took it): gone from the timeline.
    dovecot.doveadm(
        &[
            "expunge",
            "-u",
            ANN,
            "mailbox",
            "INBOX",
            "header",
            "Subject",
            "fresh by pop3",
        ],
        b"",
    );
    crm.wait_gone(&format!("/api/deals/{deal}"), "fresh by pop3")
        .await;
    assert_eq!(
        on(crm.subjects_once(&format!("/api/contacts/{client}")).await),
        expected
    );
    drop(server);
}
