//! The automation action "Send a personalized email" end to end: a deal
//! owned by a user whose preferred account is an IMAP mailbox on a real
//! Dovecot; the email goes out through Dovecot's submission and a real
//! Postfix into the contact's mailbox, with the owner's address in From and
//! the tags filled in; a repeated idempotency key sends nothing more; an
//! outage is retried with backoff; the sent copy reaches both timelines.

mod common;

use std::time::{Duration, Instant};

use common::{Crm, Site, now};
use mailroom_test_support::db::Kind;
use mailroom_test_support::dovecot::Dovecot;
use mailroom_test_support::postfix::Postfix;
use serde_json::{Value, json};

const OWNER: &str = "olivia@corp.test";
const PASSWORD: &str = "Imap-Passw0rd-Owner-7731";
const CLIENT: &str = "carla@x.test";

/// The messages in a Dovecot user's INBOX whose subject contains `subject`, as `doveadm fetch` prints them.
fn inbox(dovecot: &Dovecot, user: &str, subject: &str) -> Vec<String> {
    let out = dovecot.doveadm(
        &[
            "fetch", "-u", user, "text", "mailbox", "INBOX", "subject", subject,
        ],
        b"",
    );
    out.split("\u{c}")
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

async fn wait_delivered(dovecot: &Dovecot, postfix: &Postfix, subject: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = inbox(dovecot, CLIENT, subject);
        if !found.is_empty() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered; postfix: {}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn action(crm: &Crm, token: &str, body: Value) -> (u16, Value) {
    crm.api
        .call("POST", "/api/automations/send-email", token, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_personalized_email_goes_out_once_from_the_deal_owners_preferred_account() {
    let dovecot = Dovecot::start();
    dovecot.add_user(OWNER, PASSWORD);
    dovecot.add_user(CLIENT, "Client-Passw0rd-1");
    let site = Site::new(Kind::Sqlite).await;
    site.install("imap");
    let (owner_id, token) = site.user_with(
        OWNER,
        "member",
        true,
        &["--name", "Olivia Owner", "--plan", "professional"],
    );
    let (_, colleague) = site.user("mike@corp.test", "member", true);
    let colleague = colleague.unwrap();
    let server = site.serve_for(&dovecot);
    let crm = site.crm(&server, token.unwrap());
    let postfix = Postfix::start(&dovecot, "corp.test x.test");

    let carla = crm.contact("Carla Client", CLIENT).await;
    let deal = crm
        .post(
            "/api/deals",
            json!({"title": "Acme renewal", "value": 24000, "currency": "EUR",
                   "primary_contact_id": carla, "owner_id": owner_id}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let account = crm
        .post(
            "/api/accounts",
            json!({"provider": "imap", "address": OWNER,
                   "settings": {"imap_host": "localhost", "imap_port": dovecot.imaps_port.to_string(),
                                "smtp_host": "localhost", "smtp_port": dovecot.submission_port.to_string(),
                                "smtp_security": "starttls"},
                   "secrets": {"password": PASSWORD}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    crm.synced_after(account, now() - 1).await;

    let request = |key: &str, subject: &str| {
        json!({"deal_id": deal, "sender": "%deal_owner_email%", "idempotency_key": key,
               "subject": subject,
               "body": "Hi %FIRSTNAME% %LASTNAME% (%EMAIL%), the renewal is %DEAL_VALUE%. %DEAL_OWNER_NAME%"})
    };

    // No preferred account yet: refused, saying what to set.
    let (code, err) = action(&crm, &crm.token, request("k-0", "Renewal for %DEAL_TITLE%")).await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["field"], "sender");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("no preferred email account"),
        "{err}"
    );

    // The owner (on the Professional plan) marks the IMAP account as preferred.
    let a = crm
        .change_account(account, json!({"preferred": true}))
        .await;
    assert_eq!(a["preferred"], true);

    // Sent from the owner's preferred account, the tags filled in.
    let (code, sent) = action(&crm, &crm.token, request("k-1", "Renewal for %DEAL_TITLE%")).await;
    assert_eq!(code, 201, "{sent}");
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["from"], OWNER);
    assert_eq!(sent["to"], CLIENT);
    assert_eq!(sent["subject"], "Renewal for Acme renewal");

    // The same key again: the same record back, nothing sent again.
    let (code, again) = action(&crm, &crm.token, request("k-1", "Renewal for %DEAL_TITLE%")).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["repeated"], true);
    assert_eq!(again["message_id"], sent["message_id"]);
    // The same key for another email is refused.
    let (code, err) = action(&crm, &crm.token, request("k-1", "Something else")).await;
    assert_eq!(code, 409, "{err}");

    let delivered = wait_delivered(&dovecot, &postfix, "Renewal for Acme renewal").await;
    let text = &delivered[0];
    let from = text
        .lines()
        .find(|l| l.starts_with("From:"))
        .unwrap_or_default();
    assert!(
        from.contains("Olivia Owner") && from.contains(&format!("<{OWNER}>")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("To:") && l.contains(CLIENT)),
        "{text}"
    );
    assert!(
        text.contains("Hi Carla Client (carla@x.test), the renewal is 24000.00 EUR. Olivia Owner"),
        "{text}"
    );
    // The sent copy reaches the deal's and the contact's timelines.
    for record in [
        format!("/api/deals/{deal}"),
        format!("/api/contacts/{carla}"),
    ] {
        crm.wait_for_subject(&record, "Renewal for Acme renewal", || {
            std::fs::read_to_string(site.log()).unwrap_or_default()
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        inbox(&dovecot, CLIENT, "Renewal for Acme renewal").len(),
        1,
        "delivered exactly once"
    );

    // Senders the caller may not use, and tags that do not exist, are refused with why.
    let (code, err) = action(&crm, &colleague, request("k-2", "Hello")).await;
    assert_eq!(code, 403, "{err}");
    let mut from_other = request("k-3", "Hello");
    from_other["sender"] = json!(OWNER);
    let (code, err) = action(&crm, &colleague, from_other).await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("not one of your connected accounts"),
        "{err}"
    );
    let (code, err) = action(&crm, &crm.token, request("k-4", "Hi %NICKNAME%")).await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("%NICKNAME% is not a personalisation tag"),
        "{err}"
    );

    // An outage: recorded as retrying with the reason, sent once the server is back.
    let mut dovecot = dovecot;
    dovecot.stop();
    let (code, pending) = action(
        &crm,
        &crm.token,
        request("k-5", "Follow-up on %DEAL_TITLE%"),
    )
    .await;
    assert_eq!(code, 201, "{pending}");
    assert_eq!(pending["status"], "retrying", "{pending}");
    assert!(
        pending["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{pending}"
    );
    assert!(pending["next_attempt_at"].as_i64().is_some(), "{pending}");
    dovecot.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, now_) = crm
            .api
            .call("GET", "/api/automations/send-email/k-5", &crm.token, None)
            .await;
        assert_eq!(code, 200, "{now_}");
        if now_["status"] == "sent" {
            assert!(now_["attempts"].as_i64().unwrap() >= 2, "{now_}");
            break;
        }
        assert!(Instant::now() < deadline, "never sent: {now_}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_delivered(&dovecot, &postfix, "Follow-up on Acme renewal").await;
}
