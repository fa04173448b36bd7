//! The Microsoft 365 plugin end to end, through `mailroom serve`, its HTTP
//! API and the Microsoft sign-in, against the Graph emulator (Microsoft
//! Graph's message delta, MIME and sendMail, and the identity platform's
//! OAuth endpoints). The host serves `https://graph.microsoft.com` from the
//! emulator's base URL; the plugin and its grant are the production ones.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Site, letter, now, seed_mailbox};
use graph_emulator::{Client, Emulator, Fault};
use mailroom_test_support::db::Kind;
use mailroom_test_support::plugin;
use serde_json::json;

const CAROL: &str = "carol@contoso.test";
const DAVE: &str = "dave@client.test";
const DAY: i64 = 86_400;
const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const CLIENT_SECRET: &str = "emulator~secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft365_signs_in_backfills_follows_delta_throttles_reauthorises_and_sends() {
    let graph = Emulator::start().await.expect("emulator");
    graph.add_user(CAROL);
    let site = Site::new(Kind::Sqlite).await;
    let out = site.run(
        &[
            "plugin",
            "install",
            plugin("microsoft365").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, token) = site.user("owner@crm.test", "admin", true);
    let base_url = format!("https://graph.microsoft.com={}", graph.url());
    let server: Server = site.serve_with(&[
        ("MAILROOM_GRANT_PRIVATE", "127.0.0.0/8"),
        ("MAILROOM_SYNC_INTERVAL", "2"),
        ("MAILROOM_RETRY_SECONDS", "1"),
        ("MAILROOM_BASE_URLS", &base_url),
        ("MAILROOM_MICROSOFT_CLIENT_ID", CLIENT_ID),
        ("MAILROOM_MICROSOFT_CLIENT_SECRET", CLIENT_SECRET),
        ("MAILROOM_MICROSOFT_AUTHORITY", &graph.authority()),
    ]);
    graph.identity().register_client(Client {
        id: CLIENT_ID.into(),
        secret: CLIENT_SECRET.into(),
        redirect_uris: vec![format!("{}/oauth/microsoft365/callback", server.base)],
    });
    let crm = site.crm(&server, token.unwrap());
    let log = site.log();
    let wait_for = |record: String, subject: &'static str| {
        let crm = &crm;
        let log = log.clone();
        async move {
            crm.wait_for_subject(&record, subject, || {
                std::fs::read_to_string(&log).unwrap_or_default()
            })
            .await
        }
    };

    let t0 = now();
    let dave = crm.contact("Dave", DAVE).await;
    let deal = crm.deal("Dave's deal", dave, None).await;
    let (dave_tab, deal_tab) = (
        format!("/api/contacts/{dave}"),
        format!("/api/deals/{deal}"),
    );
    let recent = seed_mailbox(CAROL, DAVE, t0, |folder, raw, at| {
        graph.deliver(CAROL, folder, raw, at)
    });
    graph.deliver(
        CAROL,
        "inbox",
        &letter("x@stranger.test", CAROL, "stranger", t0 - DAY),
        t0 - DAY,
    );

    // "Connect Microsoft 365": consent, callback, backfill of Inbox and Sent Items.
    let (code, page, url) = crm.sign_in("microsoft365", None, CAROL, "allow").await;
    assert_eq!(code, 200, "{page}");
    assert!(
        url.contains("offline_access") && url.contains("Mail.Send"),
        "{url}"
    );
    let (_, accounts) = crm.api.call("GET", "/api/accounts", &crm.token, None).await;
    let id = accounts[0]["id"].as_i64().unwrap();
    assert_eq!(accounts[0]["address"], CAROL);
    crm.wait(id, "the backfill", |s| s["phase"] == "active")
        .await;
    for tab in [&dave_tab, &deal_tab] {
        assert_eq!(
            crm.subjects_once(tab).await,
            ["just in", "recent", "we wrote"],
            "{tab}"
        );
    }
    let calls = graph.calls();
    assert!(
        calls.get("delta").is_some_and(|n| *n >= 3),
        "Inbox paged with nextLink: {calls:?}"
    );

    // New mail, through the delta link.
    graph.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "new one", now()),
        now(),
    );
    wait_for(dave_tab.clone(), "new one").await;

    // A deletion (`@removed`) leaves the timeline.
    assert!(graph.delete(CAROL, &recent));
    crm.wait_gone(&dave_tab, "recent").await;

    // An expired delta token (410 syncStateNotFound): the window again, no duplicates.
    graph.expire_delta(CAROL);
    graph.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "after expiry", now()),
        now(),
    );
    wait_for(dave_tab.clone(), "after expiry").await;
    assert_eq!(
        crm.subjects_once(&dave_tab).await,
        ["after expiry", "just in", "new one", "we wrote"]
    );

    // Throttling: 429 with Retry-After, then a 503.
    graph.fail_next(1, Fault::throttled(4));
    graph.fail_next(1, Fault::unavailable(None));
    let throttled = Instant::now();
    graph.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "after throttling", now()),
        now(),
    );
    crm.wait(id, "the throttling error", |s| s["phase"] == "error")
        .await;
    wait_for(dave_tab.clone(), "after throttling").await;
    assert!(
        throttled.elapsed() >= Duration::from_secs(4),
        "{:?}",
        throttled.elapsed()
    );

    // Graph unreachable: the error says so and the account retries; back
    // online, the waiting mail arrives.
    graph.set_offline(true);
    graph.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "after outage", now()),
        now(),
    );
    let down = crm.wait(id, "the outage", |s| s["phase"] == "error").await;
    assert!(
        down["sync"]["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{down}"
    );
    graph.set_offline(false);
    wait_for(dave_tab.clone(), "after outage").await;

    // Consent withdrawn: reauth_required; "Update authentication" resumes.
    graph.identity().revoke(CAROL);
    crm.wait(id, "reauth_required", |s| s["phase"] == "reauth_required")
        .await;
    graph.deliver(
        CAROL,
        "inbox",
        &letter(DAVE, CAROL, "while revoked", now()),
        now(),
    );
    let (code, page, _) = crm.sign_in("microsoft365", Some(id), CAROL, "allow").await;
    assert_eq!(code, 200, "{page}");
    wait_for(dave_tab.clone(), "while revoked").await;
    crm.wait(id, "active again", |s| s["phase"] == "active")
        .await;

    // Send: /me/sendMail with MIME; Graph files the copy in Sent Items.
    let (code, sent) = crm
        .api
        .call(
            "POST",
            &format!("/api/accounts/{id}/send"),
            &crm.token,
            Some(json!({"to": [DAVE], "subject": "Proposal from Outlook", "text": "Here it is."})),
        )
        .await;
    assert_eq!(code, 202, "{sent}");
    let sent_items = graph.messages(CAROL, "sentitems");
    assert!(sent_items
        .iter()
        .any(|(_, raw)| String::from_utf8_lossy(raw).contains("Subject: Proposal from Outlook")));
    wait_for(deal_tab.clone(), "Proposal from Outlook").await;
    crm.subjects_once(&deal_tab).await;
    let log = std::fs::read_to_string(site.log()).unwrap();
    assert!(
        !log.contains("eyJ") && !log.contains("ya29."),
        "a token was logged"
    );
}
