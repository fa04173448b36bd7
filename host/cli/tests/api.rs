//! End to end through the public surfaces: `mailroom user add`, `mailroom
//! serve` (engine + HTTP API) and `mailroom sync`, on SQLite and PostgreSQL,
//! with the real `scripted` plugin.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Api, LOGIN_PASSWORD, Site};
use mailroom_test_support::both_backends;
use mailroom_test_support::db::Kind;
use serde_json::{Value, json};

const PASSWORD: &str = "Sup3r-Secret-Passw0rd-4711";
const NEW_PASSWORD: &str = "tok-NEW-Secret-0815-xyz";

async fn api_end_to_end(kind: Kind) {
    let site = Site::new(kind).await;
    let (_, admin) = site.user("alice@corp.test", "admin", true);
    let admin = admin.unwrap();
    site.user("bob@corp.test", "member", false);
    let server = site.serve();
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };

    // Sign-in: a wrong password is refused; the right one gives a session.
    let (code, _) = api
        .call(
            "POST",
            "/api/login",
            "",
            Some(json!({"email": "bob@corp.test", "password": "nope"})),
        )
        .await;
    assert_eq!(code, 401);
    let (code, login) = api
        .call(
            "POST",
            "/api/login",
            "",
            Some(json!({"email": "BOB@corp.test", "password": LOGIN_PASSWORD})),
        )
        .await;
    assert_eq!(code, 200, "{login}");
    let bob = login["token"].as_str().unwrap().to_string();
    let (code, _) = api.call("GET", "/api/contacts", "", None).await;
    assert_eq!(code, 401);

    // The CRM pushes contacts and deals; bad input names the field.
    let (code, err) = api
        .call(
            "POST",
            "/api/contacts",
            &admin,
            Some(json!({"name": "X", "emails": ["ok@x.test", "not an address"]})),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("emails[1]")),
        "{err}"
    );
    let (code, err) = api
        .call(
            "POST",
            "/api/contacts",
            &admin,
            Some(json!({"name": "X", "emails": "ok@x.test"})),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("emails")),
        "{err}"
    );
    let (code, err) = api
        .call("POST", "/api/contacts", &admin, Some(json!({"nmae": "X"})))
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(err["error"].as_str().unwrap().contains("nmae"), "{err}");
    let (code, err) = api
        .call("GET", "/api/contacts?limit=abc", &admin, None)
        .await;
    assert_eq!((code, err["field"].as_str()), (422, Some("limit")), "{err}");
    let (code, err) = api.call("GET", "/api/contacts/abc", &admin, None).await;
    assert_eq!((code, err["field"].as_str()), (422, Some("id")), "{err}");
    let (code, imported) = api
        .call(
            "POST",
            "/api/contacts/import",
            &admin,
            Some(json!([
                {"name": "Client", "emails": ["client@x.test"], "external_id": "c-1"},
                {"name": "Other", "emails": ["other@x.test"], "external_id": "c-2"},
            ])),
        )
        .await;
    assert_eq!(code, 200, "{imported}");
    let client = imported["ids"][0].as_i64().unwrap();
    let (code, err) = api
        .call(
            "POST",
            "/api/contacts/import",
            &admin,
            Some(json!([{"name": "Y", "emails": ["y@x.test"]}, {"emails": ["bad"]}])),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("contacts[1].emails[0]")),
        "{err}"
    );
    let (_, listed) = api.call("GET", "/api/contacts", &admin, None).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "a failed import stores nothing: {listed}"
    );
    let (code, deal) = api
        .call(
            "POST",
            "/api/deals",
            &admin,
            Some(json!({"title": "Big one", "value": 1200.5, "primary_contact_id": client})),
        )
        .await;
    assert_eq!(code, 201, "{deal}");
    assert_eq!(deal["status"], "open");
    let deal = deal["id"].as_i64().unwrap();
    let (code, err) = api
        .call(
            "POST",
            "/api/deals",
            &admin,
            Some(json!({"title": "Bad", "primary_contact_id": 42})),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("primary_contact_id")),
        "{err}"
    );

    // Deals imported by external id: a second import updates instead of duplicating.
    let other = imported["ids"][1].as_i64().unwrap();
    let batch = json!([{"title": "Side deal", "status": "won", "external_id": "d-9", "contact_ids": [other]}]);
    let (code, first) = api
        .call("POST", "/api/deals/import", &admin, Some(batch.clone()))
        .await;
    assert_eq!(code, 200, "{first}");
    let (_, again) = api
        .call("POST", "/api/deals/import", &admin, Some(batch))
        .await;
    assert_eq!(first, again);
    let side = first["ids"][0].as_i64().unwrap();
    let (_, listed) = api.call("GET", "/api/deals", &admin, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let (code, err) = api
        .call(
            "POST",
            "/api/deals/import",
            &admin,
            Some(json!([{"title": "T", "currency": "euro"}])),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("deals[0].currency")),
        "{err}"
    );
    // Change and delete.
    let (code, changed) = api
        .call(
            "PATCH",
            &format!("/api/deals/{side}"),
            &admin,
            Some(json!({"status": "lost", "value": 10})),
        )
        .await;
    assert_eq!(
        (code, changed["status"].as_str(), changed["value"].as_f64()),
        (200, Some("lost"), Some(10.0)),
        "{changed}"
    );
    // A primary contact is set, kept when not mentioned, and removed with null.
    let path = format!("/api/deals/{side}");
    let (_, changed) = api
        .call(
            "PATCH",
            &path,
            &admin,
            Some(json!({"primary_contact_id": other})),
        )
        .await;
    assert_eq!(changed["primary_contact_id"], json!(other), "{changed}");
    let (_, changed) = api
        .call("PATCH", &path, &admin, Some(json!({"title": "Renamed"})))
        .await;
    assert_eq!(changed["primary_contact_id"], json!(other), "{changed}");
    let (_, changed) = api
        .call(
            "PATCH",
            &path,
            &admin,
            Some(json!({"primary_contact_id": null})),
        )
        .await;
    assert_eq!(changed["primary_contact_id"], Value::Null, "{changed}");
    let (code, _) = api
        .call("DELETE", &format!("/api/deals/{side}"), &admin, None)
        .await;
    assert_eq!(code, 204);
    let (code, _) = api
        .call("GET", &format!("/api/deals/{side}"), &admin, None)
        .await;
    assert_eq!(code, 404);
    let (code, changed) = api
        .call(
            "PATCH",
            &format!("/api/contacts/{other}"),
            &bob,
            Some(json!({"emails": ["Other@X.test", "second@x.test"]})),
        )
        .await;
    assert_eq!(
        (code, &changed["emails"]),
        (200, &json!(["other@x.test", "second@x.test"])),
        "{changed}"
    );

    // Users: only admins manage them; a signed-out token no longer works.
    let new_user = json!({"email": "carol@corp.test", "plan": "professional"});
    let (code, _) = api
        .call("POST", "/api/users", &bob, Some(new_user.clone()))
        .await;
    assert_eq!(code, 403);
    let (code, carol) = api.call("POST", "/api/users", &admin, Some(new_user)).await;
    assert_eq!(
        (code, carol["plan"].as_str()),
        (201, Some("professional")),
        "{carol}"
    );
    let (code, err) = api
        .call(
            "POST",
            "/api/users",
            &admin,
            Some(json!({"email": "x@corp.test", "plan": "gold"})),
        )
        .await;
    assert_eq!((code, err["field"].as_str()), (422, Some("plan")), "{err}");
    let (code, me) = api.call("GET", "/api/me", &bob, None).await;
    assert_eq!((code, me["email"].as_str()), (200, Some("bob@corp.test")));
    let (code, second) = api
        .call(
            "POST",
            "/api/login",
            "",
            Some(json!({"email": "bob@corp.test", "password": LOGIN_PASSWORD})),
        )
        .await;
    assert_eq!(code, 200);
    let second = second["token"].as_str().unwrap();
    let (code, _) = api.call("POST", "/api/logout", second, None).await;
    assert_eq!(code, 204);
    let (code, _) = api.call("GET", "/api/me", second, None).await;
    assert_eq!(code, 401);

    // Alice connects a mailbox; bad credentials and settings are refused at once.
    let connect = |settings: Value, secrets: Value| json!({"provider": "scripted", "address": "alice@corp.test", "settings": settings, "secrets": secrets});
    let (code, err) = api
        .call(
            "POST",
            "/api/accounts",
            &admin,
            Some(connect(
                json!({"fail": "0:auth-failed"}),
                json!({"password": PASSWORD}),
            )),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("secrets")),
        "{err}"
    );
    let (code, err) = api
        .call(
            "POST",
            "/api/accounts",
            &admin,
            Some(connect(json!({"colour": "red"}), json!({}))),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("settings.colour")),
        "{err}"
    );
    let (code, account) = api
        .call(
            "POST",
            "/api/accounts",
            &admin,
            Some(connect(json!({"messages": "12", "page_size": "5", "span_days": "300", "contacts": "client@x.test,stranger@x.test"}), json!({"password": PASSWORD}))),
        )
        .await;
    assert_eq!(code, 201, "{account}");
    assert_eq!(account["secret_names"], json!(["password"]));
    assert!(!account.to_string().contains(PASSWORD));
    let id = account["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, a) = api
            .call("GET", &format!("/api/accounts/{id}"), &admin, None)
            .await;
        // Done when the run finished (the last page makes it active, the end stamps the time).
        if a["sync"]["phase"] == "active" && a["sync"]["last_sync_at"].is_i64() {
            assert!(
                a["sync"]["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("active (last sync at"),
                "{a}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never synced: {a}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Alice sees the mail on the contact and the deal; Bob sees nothing of it, nor the account.
    for path in [
        format!("/api/contacts/{client}/emails"),
        format!("/api/contacts/{client}/activities"),
        format!("/api/deals/{deal}/emails"),
        format!("/api/deals/{deal}/activities"),
    ] {
        let (code, items) = api.call("GET", &path, &admin, None).await;
        assert_eq!(
            (code, items.as_array().map(Vec::len)),
            (200, Some(6)),
            "{path}: {items}"
        );
        let (code, items) = api.call("GET", &path, &bob, None).await;
        assert_eq!(
            (code, items.as_array().map(Vec::len)),
            (200, Some(0)),
            "{path}: {items}"
        );
    }
    let (_, accounts) = api.call("GET", "/api/accounts", &bob, None).await;
    assert_eq!(accounts, json!([]));
    for method in ["GET", "PATCH", "DELETE"] {
        let body = (method == "PATCH").then(|| json!({"visibility": "public"}));
        let (code, _) = api
            .call(method, &format!("/api/accounts/{id}"), &bob, body)
            .await;
        assert_eq!(code, 404, "{method}");
    }
    // Public: Bob sees the emails now.
    let (code, _) = api
        .call(
            "PATCH",
            &format!("/api/accounts/{id}"),
            &admin,
            Some(json!({"visibility": "public"})),
        )
        .await;
    assert_eq!(code, 200);
    let (_, items) = api
        .call("GET", &format!("/api/deals/{deal}/emails"), &bob, None)
        .await;
    assert_eq!(items.as_array().unwrap().len(), 6, "{items}");
    // Preferred needs the Professional plan.
    let (code, err) = api
        .call(
            "PATCH",
            &format!("/api/accounts/{id}"),
            &admin,
            Some(json!({"preferred": true})),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("preferred")),
        "{err}"
    );
    // Update authentication.
    let (code, a) = api
        .call(
            "PATCH",
            &format!("/api/accounts/{id}"),
            &admin,
            Some(json!({"secrets": {"password": NEW_PASSWORD}})),
        )
        .await;
    assert_eq!(code, 200, "{a}");

    // The OpenAPI document lists the timelines.
    let (code, doc) = api.call("GET", "/api/openapi.json", "", None).await;
    assert_eq!(code, 200);
    for path in [
        "/api/contacts/{id}/emails",
        "/api/deals/{id}/activities",
        "/api/accounts/{id}",
        "/api/contacts/import",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }

    // Disconnecting purges the account's mail.
    let (code, _) = api
        .call("DELETE", &format!("/api/accounts/{id}"), &admin, None)
        .await;
    assert_eq!(code, 204);
    let (_, items) = api
        .call(
            "GET",
            &format!("/api/contacts/{client}/emails"),
            &admin,
            None,
        )
        .await;
    assert_eq!(items, json!([]));
    drop(server);

    // No secret in clear in the database or the log.
    let log = std::fs::read(site.log()).unwrap();
    assert!(log.len() > 1000, "the log is not empty (debug level)");
    let mut haystacks = vec![("log", log)];
    match site.db.sqlite_path() {
        Some(path) => {
            for suffix in ["", "-wal"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                if let Ok(bytes) = std::fs::read(&file) {
                    haystacks.push(("database file", bytes));
                }
            }
        }
        None => {
            let dump = Command::new("pg_dump")
                .arg(site.db.url())
                .output()
                .expect("pg_dump runs");
            assert!(
                dump.status.success(),
                "{}",
                String::from_utf8_lossy(&dump.stderr)
            );
            haystacks.push(("database dump", dump.stdout));
        }
    }
    for (what, bytes) in &haystacks {
        for secret in [
            PASSWORD,
            NEW_PASSWORD,
            LOGIN_PASSWORD,
            admin.as_str(),
            bob.as_str(),
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "`{secret}` in the {what}"
            );
        }
    }
}
both_backends!(
    api_end_to_end_with_visibility_and_sealed_secrets,
    api_end_to_end
);

/// schemathesis generates requests from `/api/openapi.json` (every
/// operation, valid and invalid input, stateful sequences) and checks that
/// none of them makes the server fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzing_the_openapi_document_finds_no_server_error() {
    let site = Site::new(Kind::Sqlite).await;
    let (_, token) = site.user("fuzz@corp.test", "admin", true);
    let token = token.unwrap();
    let server = site.serve();
    let out = Command::new("st")
        .args([
            "run",
            &format!("{}/api/openapi.json", server.base),
            "-H",
            &format!("Authorization: Bearer {token}"),
            // Signing out would revoke the token the rest of the run uses.
            "--exclude-path",
            "/api/logout",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
        ])
        .output()
        .expect("schemathesis (`st`, installed by scripts/setup) runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}

/// A re-authorisation campaign begun from the CLI and the API: the owner of
/// an account connected before the date sees the notice with the deadline;
/// members may not begin one; bad input names the field.
#[tokio::test]
async fn a_reauthorisation_campaign_shows_its_notice_to_owners() {
    let site = Site::new(Kind::Sqlite).await;
    let (_, admin) = site.user("alice@corp.test", "admin", true);
    let admin = admin.unwrap();
    let (_, member) = site.user("bob@corp.test", "member", true);
    let member = member.unwrap();
    let server = site.serve();
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let connect = json!({"provider": "scripted", "address": "bob@corp.test",
        "settings": {"messages": "3"}, "secrets": {"password": PASSWORD}});
    let (code, account) = api
        .call("POST", "/api/accounts", &member, Some(connect))
        .await;
    assert_eq!(code, 201, "{account}");
    assert_eq!(account["reauth_notice"], Value::Null);

    let out = site.run(
        &[
            "reauth",
            "require",
            "--provider",
            "scripted",
            "--connected-before",
            "2999-01-01",
            "--deadline",
            "2999-02-01",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("must re-authorise by 2999-02-01"));
    let id = account["id"].as_i64().unwrap();
    let (_, seen) = api
        .call("GET", &format!("/api/accounts/{id}"), &member, None)
        .await;
    assert_eq!(
        seen["reauth_notice"]["deadline"], 32_474_822_400_i64,
        "{seen}"
    );
    assert!(
        seen["reauth_notice"]["message"]
            .as_str()
            .unwrap()
            .contains("Update authentication")
    );

    let campaign = json!({"provider": "scripted", "connected_before": 1, "deadline": 2});
    let (code, _) = api
        .call(
            "POST",
            "/api/reauth-campaigns",
            &member,
            Some(campaign.clone()),
        )
        .await;
    assert_eq!(code, 403, "members may not require re-authorisation");
    let (code, created) = api
        .call("POST", "/api/reauth-campaigns", &admin, Some(campaign))
        .await;
    assert_eq!(code, 201, "{created}");
    let bad = json!({"provider": "nosuch", "connected_before": 1, "deadline": 2});
    let (code, err) = api
        .call("POST", "/api/reauth-campaigns", &admin, Some(bad))
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("provider")),
        "{err}"
    );
    let bad = json!({"provider": "scripted", "connected_before": 5, "deadline": 2});
    let (code, err) = api
        .call("POST", "/api/reauth-campaigns", &admin, Some(bad))
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("deadline")),
        "{err}"
    );
    let (code, list) = api.call("GET", "/api/reauth-campaigns", &admin, None).await;
    assert_eq!(code, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
}
