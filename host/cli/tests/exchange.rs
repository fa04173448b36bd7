//! The Exchange (EWS) plugin end to end, through `mailroom serve` and its
//! HTTP API, against the EWS emulator (itself checked against Microsoft's
//! EWS schema and driven by exchangelib in its own tests). The host serves
//! the customer's HTTPS hosts from the emulator's base URL; the plugin and its
//! grant are the production ones.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Site, letter, now, seed_mailbox};
use ews_emulator::{Emulator, Fault};
use mailroom_test_support::db::Kind;
use serde_json::{Value, json};

const CAROL: &str = "carol@contoso.test";
const ERIN: &str = "erin@fabrikam.test";
const DAVE: &str = "dave@client.test";
const PASSWORD: &str = "Exch-Passw0rd-77";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_autodiscovers_backfills_syncs_throttles_reauthorises_and_sends() {
    let ews = Emulator::start().await.expect("emulator");
    ews.add_user(CAROL, PASSWORD, Some("CONTOSO\\carol"));
    ews.add_user(ERIN, PASSWORD, None);
    let site = Site::new(Kind::Sqlite).await;
    site.install("exchange");
    let (_, token) = site.user("owner@crm.test", "admin", true);
    let base = ews.url();
    let origins = [
        "autodiscover.contoso.test",
        "contoso.test",
        "mail.fabrikam.test",
    ]
    .map(|host| format!("https://{host}={base}"))
    .join(",");
    let server: Server = site.serve_with(&[
        ("MAILROOM_GRANT_PRIVATE", "127.0.0.0/8"),
        ("MAILROOM_SYNC_INTERVAL", "2"),
        ("MAILROOM_RETRY_SECONDS", "1"),
        ("MAILROOM_BASE_URLS", &origins),
    ]);
    let crm = site.crm(&server, token.unwrap());
    let log = site.log();
    let why = || std::fs::read_to_string(&log).unwrap_or_default();
    let connect = |address: &str, settings: Value, password: &str| json!({"provider": "exchange", "address": address, "settings": settings, "secrets": {"password": password}});

    let t0 = now();
    let dave = crm.contact("Dave", DAVE).await;
    let deal = crm.deal("Dave's deal", dave, None).await;
    let (dave_tab, deal_tab) = (
        format!("/api/contacts/{dave}"),
        format!("/api/deals/{deal}"),
    );
    let recent = seed_mailbox(CAROL, DAVE, t0, |folder, raw, at| {
        ews.deliver(CAROL, folder, raw, at)
    });

    // A wrong password, then a Windows username the server does not know:
    // both refused with what to try.
    let (code, err) = crm
        .api
        .call(
            "POST",
            "/api/accounts",
            &crm.token,
            Some(connect(CAROL, json!({}), "wrong")),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("Exchange username"),
        "{err}"
    );
    // No server and no Autodiscover for the domain: asked for the server.
    let (code, err) = crm
        .api
        .call(
            "POST",
            "/api/accounts",
            &crm.token,
            Some(connect("frank@nowhere.test", json!({}), PASSWORD)),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("settings.exchange_server")),
        "{err}"
    );
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("enter the Exchange server"),
        "{err}"
    );

    // A server that cannot be reached: said so, with the VPN hint.
    let body = connect(
        CAROL,
        json!({"exchange_server": "down.contoso.test"}),
        PASSWORD,
    );
    let (code, err) = crm
        .api
        .call("POST", "/api/accounts", &crm.token, Some(body))
        .await;
    assert_eq!(code, 502, "{err}");
    assert!(err["error"].as_str().unwrap().contains("VPN"), "{err}");

    // Connected by Autodiscover with the Exchange username; the autodiscover
    // host redirects to the domain's own, which is granted, so it is followed.
    ews.redirect_autodiscover(
        "autodiscover.contoso.test",
        "https://contoso.test/autodiscover/autodiscover.xml",
    );
    let body = connect(
        CAROL,
        json!({"exchange_username": "CONTOSO\\carol"}),
        PASSWORD,
    );
    let id = crm.post("/api/accounts", body).await["id"]
        .as_i64()
        .unwrap();
    crm.wait(id, "the backfill", |s| s["phase"] == "active")
        .await;
    for tab in [&dave_tab, &deal_tab] {
        assert_eq!(
            crm.subjects_once(tab).await,
            ["just in", "recent", "we wrote"],
            "{tab}"
        );
    }
    let calls = ews.calls();
    assert!(
        calls.get("FindItem").is_some_and(|n| *n >= 3),
        "Inbox paged: {calls:?}"
    );
    assert!(
        calls.get("Autodiscover").is_some_and(|n| *n >= 2),
        "the redirect was followed: {calls:?}"
    );

    // Incremental through SyncFolderItems: new mail, then a deletion.
    ews.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "new one", now()),
        now(),
    );
    crm.wait_for_subject(&dave_tab, "new one", why).await;
    assert!(ews.delete(CAROL, &recent));
    crm.wait_gone(&dave_tab, "recent").await;

    // An invalid sync state: the window again, nothing doubled.
    ews.expire_sync_states(CAROL);
    ews.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "after expiry", now()),
        now(),
    );
    crm.wait_for_subject(&dave_tab, "after expiry", why).await;
    assert_eq!(
        crm.subjects_once(&dave_tab).await,
        ["after expiry", "just in", "new one", "we wrote"]
    );

    // Throttled (ErrorServerBusy with a 3 s back-off), then a 503.
    ews.fail_next(1, Fault::Busy(3000));
    ews.fail_next(1, Fault::Unavailable);
    let throttled = Instant::now();
    ews.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "after throttling", now()),
        now(),
    );
    crm.wait(id, "the throttling error", |s| s["phase"] == "error")
        .await;
    crm.wait_for_subject(&dave_tab, "after throttling", why)
        .await;
    assert!(
        throttled.elapsed() >= Duration::from_secs(3),
        "{:?}",
        throttled.elapsed()
    );

    // The server unreachable during sync: said so, with the VPN hint; back
    // online, the waiting mail arrives.
    ews.set_offline(true);
    ews.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "after outage", now()),
        now(),
    );
    let down = crm.wait(id, "the outage", |s| s["phase"] == "error").await;
    let text = down["sync"]["error"].as_str().unwrap();
    assert!(
        text.contains("could not be reached") && text.contains("VPN"),
        "{down}"
    );
    ews.set_offline(false);
    crm.wait_for_subject(&dave_tab, "after outage", why).await;

    // The password changed on the server: reauth_required with what to try;
    // "Update authentication" with the new one resumes from the cursor.
    ews.set_password(CAROL, "New-Exch-Passw0rd");
    let a = crm
        .wait(id, "reauth_required", |s| s["phase"] == "reauth_required")
        .await;
    assert!(
        a["sync"]["error"]
            .as_str()
            .unwrap()
            .contains("login failed"),
        "{a}"
    );
    ews.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "while locked out", now()),
        now(),
    );
    let (code, changed) = crm
        .api
        .call(
            "PATCH",
            &format!("/api/accounts/{id}"),
            &crm.token,
            Some(json!({"secrets": {"password": "New-Exch-Passw0rd"}})),
        )
        .await;
    assert_eq!(code, 200, "{changed}");
    crm.wait_for_subject(&dave_tab, "while locked out", why)
        .await;

    // Send: CreateItem with SendAndSaveCopy; the copy reaches the timelines.
    let (code, sent) = crm
        .api
        .call(
            "POST",
            &format!("/api/accounts/{id}/send"),
            &crm.token,
            Some(json!({"to": [DAVE], "subject": "Proposal from Exchange", "text": "Here it is."})),
        )
        .await;
    assert_eq!(code, 202, "{sent}");
    assert!(
        ews.messages(CAROL, "sentitems")
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains("Subject: Proposal from Exchange"))
    );
    crm.wait_for_subject(&deal_tab, "Proposal from Exchange", why)
        .await;
    crm.subjects_once(&deal_tab).await;

    // A server given by hand, for a domain without Autodiscover.
    let body = connect(
        ERIN,
        json!({"exchange_server": "mail.fabrikam.test"}),
        PASSWORD,
    );
    let erin = crm.post("/api/accounts", body).await["id"]
        .as_i64()
        .unwrap();
    crm.wait(erin, "Erin's backfill", |s| s["phase"] == "active")
        .await;
    let log = std::fs::read_to_string(site.log()).unwrap();
    assert!(!log.contains(PASSWORD), "the password was logged");
}
