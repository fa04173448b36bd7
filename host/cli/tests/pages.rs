//! The web pages over plain HTTP, for what a browser test would not show
//! plainly: every page needs a session, every form the session's token,
//! the sign-in form its own; pages and message bodies carry their security
//! policies; a Private account's email cannot be opened by anyone else; a
//! member cannot reach the Plugins page. With the `scripted` plugin on SQLite.

mod common;

use common::{LOGIN_PASSWORD, Pages, Site, form_token, set_cookie};
use mailroom_test_support::db::Kind;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn pages_need_a_session_forms_need_its_token_and_private_mail_stays_private() {
    let site = Site::new(Kind::Sqlite).await;
    let (_, admin) = site.user("alice@corp.test", "admin", true);
    site.user("bob@corp.test", "member", false);
    let server = site.serve_with(&[("MAILROOM_SYNC_INTERVAL", "1")]);
    let crm = site.crm(&server, admin.unwrap());
    let pages = Pages::new(&server.base);

    // No session: every page sends the browser to sign in, and back after.
    for path in [
        "/emails",
        "/contacts",
        "/deals/1",
        "/messages/1",
        "/plugins",
    ] {
        let res = pages.get(path, "").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        let to = res.headers()[LOCATION].to_str().unwrap().to_string();
        assert!(to.starts_with("/login?next=%2F"), "{path} → {to}");
    }
    // A sign-in posted from elsewhere (without the form's cookie) gets no session.
    let res = pages
        .post(
            "/login",
            "",
            &[
                ("email", "alice@corp.test"),
                ("password", LOGIN_PASSWORD),
                ("_csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&res, "mailroom_session").is_none());
    assert!(res.text().await.unwrap().contains("expired"));
    // A `next` elsewhere is not followed.
    let form = pages.get("/login?next=//evil.test/", "").await;
    assert!(
        form.text()
            .await
            .unwrap()
            .contains("name=\"next\" value=\"/emails\"")
    );

    let alice = pages.sign_in("alice@corp.test", "/deals").await;
    let bob = pages.sign_in("bob@corp.test", "/emails").await;

    // Pages forbid inline script and framing; Alice's page has her form token.
    let res = pages.get("/emails", &alice).await;
    assert_eq!(res.status(), StatusCode::OK);
    let policy = res.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    let alice_token = form_token(&res.text().await.unwrap());
    let bob_token = form_token(&pages.get("/emails", &bob).await.text().await.unwrap());

    // Alice connects a mailbox (over the API, as the CRM might); Ann's mail arrives.
    let ann = crm.contact("Ann Acme", "ann@acme.test").await;
    let deal = crm.deal("Acme renewal", ann, None).await;
    let account = crm
        .post(
            "/api/accounts",
            json!({"provider": "scripted", "address": "alice@corp.test",
                   "settings": {"messages": "40", "contacts": "ann@acme.test"},
                   "secrets": {"password": "pw"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    crm.synced_after(account, common::now() - 1).await;
    let (_, emails) = crm
        .api
        .call(
            "GET",
            &format!("/api/deals/{deal}/emails"),
            &crm.token,
            None,
        )
        .await;
    let message = emails[0]["id"].as_i64().expect("an email on the deal");
    let open = format!("/messages/{message}");

    // A form without the session's token, or with another session's, changes nothing.
    let settings = format!("/emails/{account}/settings");
    for token in ["", "forged", bob_token.as_str()] {
        let res = pages
            .post(
                &settings,
                &alice,
                &[("_csrf", token), ("visibility", "public")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "token `{token}`");
    }
    assert_eq!(crm.account(account).await["visibility"], "private");

    // Private: Bob can neither list nor open Alice's email; Alice can.
    assert_eq!(pages.get(&open, &bob).await.status(), StatusCode::NOT_FOUND);
    let deal_page = pages.get(&format!("/deals/{deal}?tab=emails"), &bob).await;
    let deal_page = deal_page.text().await.unwrap();
    assert!(
        deal_page.contains("No emails you may see yet"),
        "{deal_page}"
    );
    assert_eq!(pages.get(&open, &alice).await.status(), StatusCode::OK);

    // With her token the change is saved; now Bob may open it.
    let res = pages
        .post(
            &settings,
            &alice,
            &[("_csrf", &alice_token), ("visibility", "public")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(crm.account(account).await["visibility"], "public");
    assert_eq!(pages.get(&open, &bob).await.status(), StatusCode::OK);
    // A message body is served under a policy that allows no script and no remote image.
    let body = pages.get(&format!("{open}/body"), &alice).await;
    let policy = body.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("default-src 'none'")
            && policy.contains("img-src data:;")
            && policy.contains("sandbox"),
        "{policy}"
    );

    // Bad choices name the field; Bob cannot disconnect Alice's account.
    let res = pages
        .post(
            &settings,
            &alice,
            &[("_csrf", &alice_token), ("sentiment", "maybe")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("sentiment: `maybe` is neither")
    );
    let disconnect = format!("/emails/{account}/disconnect");
    let res = pages
        .post(&disconnect, &bob, &[("_csrf", &bob_token)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // The Plugins page is for admins.
    assert_eq!(
        pages.get("/plugins", &bob).await.status(),
        StatusCode::FORBIDDEN
    );
    let plugins = pages.get("/plugins", &alice).await.text().await.unwrap();
    assert!(
        plugins.contains("scripted") && plugins.contains("sha256:"),
        "{plugins}"
    );

    // A connect form the server refuses comes back open, saying why.
    let res = pages
        .post(
            "/emails/connect",
            &alice,
            &[
                ("_csrf", &alice_token),
                ("provider", "scripted"),
                ("address", "not-an-address"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("role=\"alert\"") && text.contains("data-open"),
        "{text}"
    );
    let res = pages
        .post(
            "/emails/connect",
            &alice,
            &[
                ("_csrf", &alice_token),
                ("provider", "nosuch"),
                ("address", "a@b.test"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("no plugin named `nosuch` is installed"),
        "{text}"
    );

    // Disconnecting through the dialog's form removes the account and its mail.
    let res = pages
        .post(&disconnect, &alice, &[("_csrf", &alice_token)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        pages.get(&open, &alice).await.status(),
        StatusCode::NOT_FOUND
    );

    // Signing out ends the session.
    let res = pages
        .post("/logout", &alice, &[("_csrf", &alice_token)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        pages.get("/emails", &alice).await.status(),
        StatusCode::SEE_OTHER
    );
}
