//! The web pages over plain HTTP, for what a browser test would not show
//! plainly: every page needs a session, every form the session's token,
//! the sign-in form its own; pages and message bodies carry their security
//! policies; a Private account's email cannot be opened by anyone else; a
//! member cannot reach the Plugins page. With the `scripted` plugin on SQLite.

mod common;

use common::{Crm, LOGIN_PASSWORD, Site};
use mailroom_test_support::db::Kind;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

/// A browser without cookies of its own: redirects are not followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of the cookie `name` a response sets.
fn cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// The value of the first hidden `_csrf` field of a page.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"_csrf\" value=\"").expect("a form token") + 20;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

/// Sign in through the sign-in form; the session cookie.
async fn sign_in(http: &reqwest::Client, base: &str, email: &str) -> String {
    let form = http.get(format!("{base}/login")).send().await.unwrap();
    let login_cookie = cookie(&form, "mailroom_login").expect("the sign-in form's cookie");
    let token = csrf(&form.text().await.unwrap());
    let res = http
        .post(format!("{base}/login"))
        .header(COOKIE, &login_cookie)
        .form(&[
            ("email", email),
            ("password", LOGIN_PASSWORD),
            ("_csrf", &token),
            ("next", "/deals"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/deals");
    cookie(&res, "mailroom_session").expect("a session cookie")
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_need_a_session_forms_need_its_token_and_private_mail_stays_private() {
    let site = Site::new(Kind::Sqlite).await;
    let (_, admin) = site.user("alice@corp.test", "admin", true);
    site.user("bob@corp.test", "member", false);
    let server = site.serve_with(&[("MAILROOM_SYNC_INTERVAL", "1")]);
    let crm = Crm {
        api: common::Api {
            http: reqwest::Client::new(),
            base: server.base.clone(),
        },
        token: admin.unwrap(),
        log: site.log(),
    };
    let base = server.base.clone();
    let http = browser();

    // No session: every page sends the browser to sign in, and back after.
    for path in [
        "/emails",
        "/contacts",
        "/deals/1",
        "/messages/1",
        "/plugins",
    ] {
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        let to = res.headers()[LOCATION].to_str().unwrap().to_string();
        assert!(to.starts_with("/login?next=%2F"), "{path} → {to}");
    }
    // A sign-in posted from elsewhere (without the form's cookie) gets no session.
    let res = http
        .post(format!("{base}/login"))
        .form(&[
            ("email", "alice@corp.test"),
            ("password", LOGIN_PASSWORD),
            ("_csrf", "forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie(&res, "mailroom_session").is_none());
    assert!(res.text().await.unwrap().contains("expired"));
    // A `next` elsewhere is not followed.
    let form = http
        .get(format!("{base}/login?next=//evil.test/"))
        .send()
        .await
        .unwrap();
    assert!(
        form.text()
            .await
            .unwrap()
            .contains("name=\"next\" value=\"/emails\"")
    );

    let alice = sign_in(&http, &base, "alice@corp.test").await;
    let bob = sign_in(&http, &base, "bob@corp.test").await;
    let page = |path: &str, session: &str| {
        http.get(format!("{base}{path}"))
            .header(COOKIE, session)
            .send()
    };

    // Pages forbid inline script and framing; Alice's page has her form token.
    let res = page("/emails", &alice).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let policy = res.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    let alice_token = csrf(&res.text().await.unwrap());

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

    // A form without the session's token, or with another session's, changes nothing.
    let settings = format!("{base}/emails/{account}/settings");
    let bob_token = csrf(&page("/emails", &bob).await.unwrap().text().await.unwrap());
    for token in ["", "forged", bob_token.as_str()] {
        let res = http
            .post(&settings)
            .header(COOKIE, &alice)
            .form(&[("_csrf", token), ("visibility", "public")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "token `{token}`");
    }
    assert_eq!(crm.account(account).await["visibility"], "private");

    // Private: Bob can neither list nor open Alice's email; Alice can.
    assert_eq!(
        page(&format!("/messages/{message}"), &bob)
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let deal_page = page(&format!("/deals/{deal}?tab=emails"), &bob)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        deal_page.contains("No emails you may see yet"),
        "{deal_page}"
    );
    assert_eq!(
        page(&format!("/messages/{message}"), &alice)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // With her token the change is saved; now Bob may open it.
    let res = http
        .post(&settings)
        .header(COOKIE, &alice)
        .form(&[("_csrf", alice_token.as_str()), ("visibility", "public")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(crm.account(account).await["visibility"], "public");
    assert_eq!(
        page(&format!("/messages/{message}"), &bob)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A message body is served under a policy that allows no script and no remote image.
    let body = page(&format!("/messages/{message}/body"), &alice)
        .await
        .unwrap();
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

    // Bad choices name the field; Bob cannot change or disconnect Alice's account.
    let res = http
        .post(&settings)
        .header(COOKIE, &alice)
        .form(&[("_csrf", alice_token.as_str()), ("sentiment", "maybe")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("sentiment: `maybe` is neither")
    );
    let res = http
        .post(format!("{base}/emails/{account}/disconnect"))
        .header(COOKIE, &bob)
        .form(&[("_csrf", bob_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // The Plugins page is for admins.
    assert_eq!(
        page("/plugins", &bob).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let plugins = page("/plugins", &alice)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        plugins.contains("scripted") && plugins.contains("sha256:"),
        "{plugins}"
    );

    // Connecting with a form that misses a required field says which, on the form.
    let res = http
        .post(format!("{base}/emails/connect"))
        .header(COOKIE, &alice)
        .form(&[
            ("_csrf", alice_token.as_str()),
            ("provider", "scripted"),
            ("address", "not-an-address"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("role=\"alert\"") && text.contains("data-open"),
        "{text}"
    );

    // Disconnecting through the dialog's form removes the account and its mail.
    let res = http
        .post(format!("{base}/emails/{account}/disconnect"))
        .header(COOKIE, &alice)
        .form(&[("_csrf", alice_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page(&format!("/messages/{message}"), &alice)
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // Signing out ends the session.
    let res = http
        .post(format!("{base}/logout"))
        .header(COOKIE, &alice)
        .form(&[("_csrf", alice_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page("/emails", &alice).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
}
