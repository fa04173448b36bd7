//! The Gmail plugin end to end, through `mailroom serve`, its HTTP API and
//! the Google sign-in, against the Gmail emulator (Google's OAuth endpoints
//! and the Gmail API, held to Google's description by the emulator's own
//! tests). The host serves `https://gmail.googleapis.com` from the
//! emulator's base URL; the plugin and its grant are the production ones.

mod common;

use std::time::{Duration, Instant};

use common::{Crm, Pages, Server, Site, form_token, letter, now};
use gmail_emulator::{Client, Emulator, Fault};
use mailroom_test_support::db::Kind;
use serde_json::{Value, json};

const ANN: &str = "ann@gmail.test";
const BOB: &str = "bob@client.test";
const DAY: i64 = 86_400;
const CLIENT_ID: &str = "mailroom-test.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "GOCSPX-emulator-secret";

struct Rig {
    gmail: Emulator,
    site: Site,
    _server: Server,
    crm: Crm,
}

impl Rig {
    async fn new() -> Rig {
        let gmail = Emulator::start().await.expect("emulator");
        gmail.add_user(ANN);
        let site = Site::new(Kind::Sqlite).await;
        site.install("gmail");
        let (_, token) = site.user("owner@crm.test", "admin", true);
        let base_url = format!("https://gmail.googleapis.com={}", gmail.url());
        let server = site.serve_with(&[
            ("MAILROOM_GRANT_PRIVATE", "127.0.0.0/8"),
            ("MAILROOM_SYNC_INTERVAL", "2"),
            ("MAILROOM_RETRY_SECONDS", "1"),
            ("MAILROOM_BASE_URLS", &base_url),
            ("MAILROOM_GOOGLE_CLIENT_ID", CLIENT_ID),
            ("MAILROOM_GOOGLE_CLIENT_SECRET", CLIENT_SECRET),
            ("MAILROOM_GOOGLE_AUTHORIZE_URL", &gmail.authorize_url()),
            ("MAILROOM_GOOGLE_TOKEN_URL", &gmail.token_url()),
            ("MAILROOM_GOOGLE_REVOKE_URL", &gmail.revoke_url()),
        ]);
        gmail.register_client(Client {
            id: CLIENT_ID.into(),
            secret: CLIENT_SECRET.into(),
            redirect_uris: vec![format!("{}/oauth/gmail/callback", server.base)],
        });
        let crm = site.crm(&server, token.unwrap());
        Rig {
            gmail,
            site,
            _server: server,
            crm,
        }
    }

    async fn sign_in(&self, account: Option<i64>, email: &str, decision: &str) -> (u16, String) {
        let (code, page, url) = self.crm.sign_in("gmail", account, email, decision).await;
        assert!(url.contains("gmail.modify"), "{url}");
        (code, page)
    }

    async fn accounts(&self) -> Vec<Value> {
        let (code, list) = self
            .crm
            .api
            .call("GET", "/api/accounts", &self.crm.token, None)
            .await;
        assert_eq!(code, 200, "{list}");
        list.as_array().unwrap().clone()
    }

    async fn wait_for(&self, record: &str, subject: &str) {
        let log = self.site.log();
        self.crm
            .wait_for_subject(record, subject, || {
                std::fs::read_to_string(&log).unwrap_or_default()
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_signs_in_backfills_follows_history_throttles_reauthorises_and_sends() {
    let rig = Rig::new().await;
    let t0 = now();
    let bob = rig.crm.contact("Bob", BOB).await;
    let deal = rig.crm.deal("Bob's deal", bob, None).await;
    let (bob_tab, deal_tab) = (format!("/api/contacts/{bob}"), format!("/api/deals/{deal}"));

    // A mailbox with mail on both sides of the 365-day edge, spam, trash, a
    // sent message and mail from a stranger.
    let g = &rig.gmail;
    g.deliver(
        ANN,
        &letter(BOB, ANN, "too old", t0 - 366 * DAY),
        &["INBOX"],
        t0 - 366 * DAY,
    );
    g.deliver(
        ANN,
        &letter(BOB, ANN, "just in", t0 - 364 * DAY),
        &["INBOX"],
        t0 - 364 * DAY,
    );
    let recent = g.deliver(
        ANN,
        &letter(BOB, ANN, "recent", t0 - 2 * DAY),
        &["INBOX", "UNREAD"],
        t0 - 2 * DAY,
    );
    g.deliver(
        ANN,
        &letter(BOB, ANN, "spam", t0 - DAY),
        &["SPAM"],
        t0 - DAY,
    );
    g.deliver(
        ANN,
        &letter(BOB, ANN, "trash", t0 - DAY),
        &["TRASH"],
        t0 - DAY,
    );
    g.deliver(
        ANN,
        &letter(ANN, BOB, "we wrote", t0 - DAY),
        &["SENT"],
        t0 - DAY,
    );
    g.deliver(
        ANN,
        &letter("x@stranger.test", ANN, "stranger", t0 - DAY),
        &["INBOX"],
        t0 - DAY,
    );

    // "Sign in with Gmail" on the Connected emails page begins the same
    // consent flow; refused there, it connects nothing.
    let pages = Pages::new(&rig.crm.api.base);
    let session = pages.sign_in("owner@crm.test", "/emails").await;
    let connect = pages.get("/emails", &session).await.text().await.unwrap();
    assert!(connect.contains("Sign in with Gmail"), "{connect}");
    let res = pages
        .post(
            "/emails/connect/gmail/oauth",
            &session,
            &[("_csrf", &form_token(&connect)), ("address", ANN)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let consent = res.headers()["location"].to_str().unwrap().to_string();
    assert!(consent.starts_with(&rig.gmail.authorize_url()), "{consent}");
    assert!(consent.contains("login_hint="), "{consent}");
    let (code, page) = rig.crm.consent(&consent, ANN, "deny").await;
    assert_eq!(code, 400, "{page}");
    assert!(page.contains("not completed"), "{page}");
    assert!(rig.accounts().await.is_empty());

    // "Connect Gmail": consent, callback, tokens sealed, backfill.
    let (code, page) = rig.sign_in(None, ANN, "allow").await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains(ANN), "{page}");
    let accounts = rig.accounts().await;
    assert_eq!(accounts.len(), 1);
    let id = accounts[0]["id"].as_i64().unwrap();
    assert_eq!(accounts[0]["provider"], "gmail");
    assert_eq!(accounts[0]["address"], ANN);
    rig.crm
        .wait(id, "the backfill", |s| s["phase"] == "active")
        .await;
    let expected = ["just in", "recent", "we wrote"];
    for tab in [&bob_tab, &deal_tab] {
        assert_eq!(rig.crm.subjects_once(tab).await, expected, "{tab}");
    }
    // Exactly the window's messages were fetched: spam and trash were not even listed.
    assert_eq!(
        g.calls().get("gmail.users.messages.get"),
        Some(&4),
        "{:?}",
        g.calls()
    );

    // New mail arrives within a poll interval or so.
    g.deliver(ANN, &letter(BOB, ANN, "new one", now()), &["INBOX"], now());
    let asked = Instant::now();
    rig.wait_for(&bob_tab, "new one").await;
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "{:?}",
        asked.elapsed()
    );

    // A deletion reported by the history leaves the timelines.
    assert!(g.delete(ANN, &recent));
    rig.crm.wait_gone(&bob_tab, "recent").await;

    // An expired history id: the window is synced again, with no duplicates.
    g.expire_history(ANN);
    g.deliver(
        ANN,
        &letter(BOB, ANN, "after expiry", now()),
        &["INBOX"],
        now(),
    );
    rig.wait_for(&bob_tab, "after expiry").await;
    assert_eq!(
        rig.crm.subjects_once(&bob_tab).await,
        ["after expiry", "just in", "new one", "we wrote"]
    );

    // Throttling: 429 with Retry-After, then a 403 rate limit and a 503: the
    // engine waits as told and then goes on.
    g.fail_next(1, Fault::too_many_requests(Some(4)));
    g.fail_next(1, Fault::user_rate_limit(Some(1)));
    g.fail_next(1, Fault::unavailable());
    let throttled = Instant::now();
    g.deliver(
        ANN,
        &letter(BOB, ANN, "after throttling", now()),
        &["INBOX"],
        now(),
    );
    let seen = rig
        .crm
        .wait(id, "the rate-limit error", |s| s["phase"] == "error")
        .await;
    assert!(
        seen["sync"]["error"].as_str().unwrap().contains("rate"),
        "{seen}"
    );
    rig.wait_for(&bob_tab, "after throttling").await;
    assert!(
        throttled.elapsed() >= Duration::from_secs(4),
        "Retry-After not honoured: {:?}",
        throttled.elapsed()
    );

    // An access token cut short is renewed with the refresh token; the account stays active.
    g.expire_access_tokens(ANN);
    g.deliver(
        ANN,
        &letter(BOB, ANN, "after renewal", now()),
        &["INBOX"],
        now(),
    );
    rig.wait_for(&bob_tab, "after renewal").await;
    assert_eq!(rig.crm.account(id).await["sync"]["phase"], "active");

    // Revoked at Google: reauth_required, mail waits; "Update authentication" resumes.
    g.revoke(ANN);
    let a = rig
        .crm
        .wait(id, "reauth_required", |s| s["phase"] == "reauth_required")
        .await;
    assert!(a["sync"]["error"].as_str().unwrap().contains("sign"), "{a}");
    g.deliver(
        ANN,
        &letter(BOB, ANN, "while revoked", now()),
        &["INBOX"],
        now(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !rig.crm
            .subjects(&bob_tab)
            .await
            .iter()
            .any(|s| s == "while revoked")
    );
    let (code, page) = rig
        .sign_in(Some(id), "someone.else@gmail.test", "allow")
        .await;
    assert_eq!(
        code, 400,
        "signing in as another address must be refused: {page}"
    );
    let (code, page) = rig.sign_in(Some(id), ANN, "allow").await;
    assert_eq!(code, 200, "{page}");
    rig.wait_for(&bob_tab, "while revoked").await;
    rig.crm
        .wait(id, "active again", |s| s["phase"] == "active")
        .await;

    // Send: through users.messages.send, into Sent mail, onto the timelines.
    let (code, sent) = rig
        .crm
        .api
        .call(
            "POST",
            &format!("/api/accounts/{id}/send"),
            &rig.crm.token,
            Some(json!({"to": [BOB], "subject": "Proposal from Gmail", "text": "Here it is."})),
        )
        .await;
    assert_eq!(code, 202, "{sent}");
    let provider_id = sent["provider_id"].as_str().unwrap().to_string();
    let copy = g
        .messages(ANN)
        .into_iter()
        .find(|(mid, _, _)| *mid == provider_id)
        .expect("the sent copy is in Gmail");
    assert_eq!(copy.1, vec!["SENT".to_string()]);
    assert!(String::from_utf8_lossy(&copy.2).contains("Subject: Proposal from Gmail"));
    rig.wait_for(&bob_tab, "Proposal from Gmail").await;
    rig.wait_for(&deal_tab, "Proposal from Gmail").await;
    rig.crm.subjects_once(&deal_tab).await;

    // Disconnecting revokes the grant at Google.
    assert!(g.active_grants(ANN) > 0);
    let (code, _) = rig
        .crm
        .api
        .call(
            "DELETE",
            &format!("/api/accounts/{id}"),
            &rig.crm.token,
            None,
        )
        .await;
    assert_eq!(code, 204);
    assert_eq!(g.active_grants(ANN), 0, "the grant outlived the account");

    // No token ever reached the log.
    let log = std::fs::read_to_string(rig.site.log()).unwrap();
    assert!(
        !log.contains("ya29.") && !log.contains("1//0g"),
        "a token was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_backfills_a_mailbox_of_many_pages_without_loss() {
    let rig = Rig::new().await;
    let t0 = now();
    let bob = rig.crm.contact("Bob", BOB).await;
    let total = 450;
    for i in 0..total {
        let at = t0 - 3600 - i * 1800;
        let subject = format!("page mail {i:03}");
        rig.gmail
            .deliver(ANN, &letter(BOB, ANN, &subject, at), &["INBOX"], at);
    }
    // Connected with a token straight from Google (not through the consent
    // page): the API takes the plugin's secret field like any other.
    let body = json!({
        "provider": "gmail",
        "address": ANN,
        "secrets": {"access_token": rig.gmail.access_token(ANN)},
        "settings": {"page_size": "100"},
    });
    let id = rig.crm.post("/api/accounts", body).await["id"]
        .as_i64()
        .unwrap();
    let a = rig
        .crm
        .wait(id, "the backfill", |s| s["phase"] == "active")
        .await;
    assert_eq!(a["mail"]["stored"], total, "{a}");
    let subjects = rig.crm.subjects_once(&format!("/api/contacts/{bob}")).await;
    assert_eq!(subjects.len(), total as usize);
    // Five listings of 100, each message fetched once.
    let calls = rig.gmail.calls();
    assert_eq!(
        calls.get("gmail.users.messages.list"),
        Some(&5),
        "{calls:?}"
    );
    assert_eq!(
        calls.get("gmail.users.messages.get"),
        Some(&(total as u64)),
        "{calls:?}"
    );
}
