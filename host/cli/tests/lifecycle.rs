//! The plugins' lifecycle without a restart: upgrade, roll back and remove
//! through the API, an install by the command line picked up by the running
//! server, every change recorded with who and which digests; syncing goes on
//! through all of it.

mod common;

use std::time::{Duration, Instant};

use common::{Site, now};
use mailroom_test_support::db::Kind;
use mailroom_test_support::{plugin, plugin_bytes};
use serde_json::{Value, json};

/// The installed version of `name`, as the running server lists it.
async fn version(crm: &common::Crm, name: &str) -> Option<String> {
    let (_, list) = crm.api.call("GET", "/api/plugins", &crm.token, None).await;
    list.as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["version"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_are_upgraded_rolled_back_and_removed_while_the_server_runs() {
    let site = Site::new(Kind::Sqlite).await;
    let (_, admin) = site.user("ops@corp.test", "admin", true);
    let (_, member) = site.user("sam@corp.test", "member", true);
    let server = site.serve_with(&[
        ("MAILROOM_SYNC_INTERVAL", "1"),
        ("MAILROOM_RETRY_SECONDS", "1"),
    ]);
    let crm = site.crm(&server, admin.unwrap());
    let member = member.unwrap();
    assert_eq!(version(&crm, "scripted").await.as_deref(), Some("1.0.0"));

    // An account keeps syncing through every change below.
    crm.contact("Ann", "ann@acme.test").await;
    let account = crm
        .post(
            "/api/accounts",
            json!({"provider": "scripted", "address": "ops@corp.test",
                   "settings": {"messages": "30", "contacts": "ann@acme.test"}, "secrets": {"password": "pw"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    crm.synced_after(account, now() - 1).await;

    // Upgrade through the API (admins only; a broken file changes nothing).
    let (code, _) = crm
        .upload_plugin(&member, plugin_bytes("scripted-next"))
        .await;
    assert_eq!(code, 403);
    let (code, err) = crm
        .upload_plugin(&crm.token, b"not a component".to_vec())
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("unchanged"),
        "{err}"
    );
    let (code, up) = crm
        .upload_plugin(&crm.token, plugin_bytes("scripted-next"))
        .await;
    assert_eq!(code, 201, "{up}");
    assert_eq!(
        (
            up["action"].as_str(),
            up["from_version"].as_str(),
            up["to_version"].as_str()
        ),
        (Some("upgrade"), Some("1.0.0"), Some("1.1.0"))
    );
    assert_eq!(version(&crm, "scripted").await.as_deref(), Some("1.1.0"));

    // Roll back: the version it replaced, by its digest.
    let (code, back) = crm
        .api
        .call("POST", "/api/plugins/scripted/rollback", &crm.token, None)
        .await;
    assert_eq!(code, 200, "{back}");
    assert_eq!(back["to_version"], "1.0.0");
    assert_eq!(back["to_digest"], up["from_digest"]);
    assert_eq!(version(&crm, "scripted").await.as_deref(), Some("1.0.0"));
    let (code, err) = crm
        .api
        .call("POST", "/api/plugins/nosuch/rollback", &crm.token, None)
        .await;
    assert_eq!(code, 404, "{err}");

    // The command line installs beside the running server; the server picks it up.
    let out = site.run(
        &[
            "plugin",
            "install",
            plugin("scripted-next").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while version(&crm, "scripted").await.as_deref() != Some("1.1.0") {
        assert!(
            Instant::now() < deadline,
            "the server did not pick up the new version"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Removing: refused while an account uses it; a plugin nobody uses goes.
    let (code, err) = crm
        .api
        .call("DELETE", "/api/plugins/scripted", &crm.token, None)
        .await;
    assert_eq!(code, 409, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("disconnect them first"),
        "{err}"
    );
    let (code, _) = crm
        .upload_plugin(&crm.token, plugin_bytes("other-contract"))
        .await;
    assert_eq!(code, 422, "another contract is refused");
    let (code, _) = crm.upload_plugin(&crm.token, plugin_bytes("hostile")).await;
    assert_eq!(code, 201);
    let (code, gone) = crm
        .api
        .call("DELETE", "/api/plugins/hostile", &crm.token, None)
        .await;
    assert_eq!(code, 200, "{gone}");
    assert_eq!(version(&crm, "hostile").await, None);
    assert!(!site.home.path().join("plugins/hostile.wasm").exists());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        version(&crm, "hostile").await,
        None,
        "a removed plugin stays removed"
    );

    // Every change, newest first, with who and which digests.
    let (code, changes) = crm
        .api
        .call("GET", "/api/plugins/changes", &crm.token, None)
        .await;
    assert_eq!(code, 200, "{changes}");
    let seen: Vec<(String, String, String)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_string(),
                c["plugin"].as_str().unwrap().to_string(),
                c["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("remove", "hostile", "ops@corp.test"),
        ("install", "hostile", "ops@corp.test"),
        ("upgrade", "scripted", "cli"),
        ("rollback", "scripted", "ops@corp.test"),
        ("upgrade", "scripted", "ops@corp.test"),
    ];
    for (i, (action, name, actor)) in expect.iter().enumerate() {
        assert_eq!(
            (seen[i].0.as_str(), seen[i].1.as_str(), seen[i].2.as_str()),
            (*action, *name, *actor),
            "{changes}"
        );
    }
    let (code, _) = crm
        .api
        .call("GET", "/api/plugins/changes", &member, None)
        .await;
    assert_eq!(code, 403);

    // The account synced on through every swap.
    let a = crm.synced_after(account, now()).await;
    assert_eq!(a["sync"]["phase"], "active", "{a}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_whose_first_calls_fail_is_rolled_back_on_its_own() {
    let site = Site::new(Kind::Sqlite).await;
    let (_, admin) = site.user("ops@corp.test", "admin", true);
    let server = site.serve_with(&[
        ("MAILROOM_SYNC_INTERVAL", "1"),
        ("MAILROOM_RETRY_SECONDS", "1"),
    ]);
    let crm = site.crm(&server, admin.unwrap());
    crm.contact("Ann", "ann@acme.test").await;
    let account = crm
        .post(
            "/api/accounts",
            json!({"provider": "scripted", "address": "ops@corp.test",
                   "settings": {"messages": "20", "contacts": "ann@acme.test"}, "secrets": {"password": "pw"}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    crm.synced_after(account, now() - 1).await;

    // 1.2.0 panics in every sync: its first calls fail, and it goes.
    let (code, up) = crm
        .upload_plugin(&crm.token, plugin_bytes("scripted-broken"))
        .await;
    assert_eq!(code, 201, "{up}");
    assert_eq!(up["to_version"], "1.2.0");
    let deadline = Instant::now() + Duration::from_secs(60);
    while version(&crm, "scripted").await.as_deref() != Some("1.0.0") {
        assert!(Instant::now() < deadline, "1.2.0 was not rolled back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, changes) = crm
        .api
        .call("GET", "/api/plugins/changes", &crm.token, None)
        .await;
    let last = &changes[0];
    assert_eq!(
        (
            last["action"].as_str(),
            last["actor"].as_str(),
            last["from_version"].as_str(),
            last["to_version"].as_str()
        ),
        (
            Some("rollback"),
            Some("auto-rollback"),
            Some("1.2.0"),
            Some("1.0.0")
        ),
        "{changes}"
    );
    // The account recovers on the version rolled back to.
    let a = crm.synced_after(account, now()).await;
    assert_eq!(a["sync"]["phase"], "active", "{a}");
}

/// `mailroom plugin keygen`: (secret, public).
fn keygen(site: &Site) -> (String, String) {
    let out = site.run(&["plugin", "keygen"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap()
            .to_string()
    };
    (field("secret"), field("public"))
}

#[tokio::test(flavor = "multi_thread")]
async fn with_signatures_required_only_plugins_signed_by_a_trusted_key_are_installed() {
    let site = Site::new(Kind::Sqlite).await;
    let (_, admin) = site.user("ops@corp.test", "admin", true);
    let (secret, public) = keygen(&site);
    let (stranger, _) = keygen(&site);
    let trust = format!("release={public}");
    let strict = [
        ("MAILROOM_TRUSTED_KEYS", trust.as_str()),
        ("MAILROOM_REQUIRE_SIGNED", "true"),
    ];
    let server = site.serve_with(&strict);
    let crm = site.crm(&server, admin.unwrap());
    assert_eq!(
        version(&crm, "scripted").await,
        None,
        "the unsigned file is not served"
    );

    // Unsigned, or signed by a key nobody trusts: refused.
    let (code, err) = crm
        .upload_plugin(&crm.token, plugin_bytes("scripted-next"))
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("unsigned plugins are refused"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scripted-next.wasm");
    std::fs::copy(plugin("scripted-next"), &file).unwrap();
    let sign = |key: &str| {
        let out = site.run(
            &[
                "plugin",
                "sign",
                file.to_str().unwrap(),
                "--key-env",
                "SIGNING_KEY",
            ],
            &[("SIGNING_KEY", key)],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(dir.path().join("scripted-next.wasm.sig")).unwrap()
    };
    let forged = sign(&stranger);
    let signed_upload = |signature: String| {
        crm.api
            .http
            .post(format!("{}/api/plugins", crm.api.base))
            .bearer_auth(&crm.token)
            .header("x-mailroom-signature", signature)
            .body(plugin_bytes("scripted-next"))
            .send()
    };
    let res = signed_upload(forged).await.unwrap();
    assert_eq!(res.status().as_u16(), 422);
    assert!(res.text().await.unwrap().contains("not by any trusted key"));

    // Signed by the trusted key: installed, and the change says by whom.
    let good = sign(&secret);
    let res = signed_upload(good).await.unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let change: Value = res.json().await.unwrap();
    assert_eq!(change["signed_by"], "release", "{change}");
    assert_eq!(version(&crm, "scripted").await.as_deref(), Some("1.1.0"));

    // The command line takes FILE.sig beside the file; unsigned, it is refused there too.
    let out = site.run(
        &[
            "plugin",
            "install",
            plugin("scripted-broken").to_str().unwrap(),
        ],
        &strict,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsigned plugins are refused"));
    let out = site.run(&["plugin", "install", file.to_str().unwrap()], &strict);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_declaring_new_endpoints_waits_for_an_operator_to_approve_it() {
    let site = Site::new(Kind::Sqlite).await;
    let (_, admin) = site.user("ops@corp.test", "admin", true);
    let (_, member) = site.user("sam@corp.test", "member", true);
    let server = site.serve_with(&[("MAILROOM_SYNC_INTERVAL", "1")]);
    let crm = site.crm(&server, admin.unwrap());

    // 1.3.0 declares https://usage.example.com, which 1.0.0 does not: kept,
    // not made current; 1.0.0 goes on serving.
    let (code, up) = crm
        .upload_plugin(&crm.token, plugin_bytes("scripted-wider"))
        .await;
    assert_eq!(code, 202, "{up}");
    assert_eq!(
        (up["action"].as_str(), up["to_version"].as_str()),
        (Some("pending"), Some("1.3.0")),
        "{up}"
    );
    assert_eq!(version(&crm, "scripted").await.as_deref(), Some("1.0.0"));
    let (code, waiting) = crm
        .api
        .call("GET", "/api/plugins/pending", &crm.token, None)
        .await;
    assert_eq!(code, 200, "{waiting}");
    assert_eq!(
        waiting[0]["new_endpoints"],
        json!(["https://usage.example.com"]),
        "{waiting}"
    );
    // The command line and the Plugins page say so too.
    let listed = site.run(&["plugin", "list"], &[]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("1.3.0      pending approval: new endpoints https://usage.example.com"),
        "{listed}"
    );
    let pages = common::Pages::new(&server.base);
    let cookies = pages.sign_in("ops@corp.test", "/plugins").await;
    let page = pages.get("/plugins", &cookies).await.text().await.unwrap();
    assert!(
        page.contains("Approve scripted 1.3.0 and grant its endpoints"),
        "{page}"
    );

    // Members cannot approve; an admin can, and it is current at once.
    let (code, _) = crm
        .api
        .call(
            "POST",
            "/api/plugins/scripted/approve",
            &member.unwrap(),
            None,
        )
        .await;
    assert_eq!(code, 403);
    let (code, approved) = crm
        .api
        .call("POST", "/api/plugins/scripted/approve", &crm.token, None)
        .await;
    assert_eq!(code, 200, "{approved}");
    assert_eq!(
        (approved["action"].as_str(), approved["actor"].as_str()),
        (Some("approve"), Some("ops@corp.test"))
    );
    assert_eq!(version(&crm, "scripted").await.as_deref(), Some("1.3.0"));
    let (code, waiting) = crm
        .api
        .call("GET", "/api/plugins/pending", &crm.token, None)
        .await;
    assert_eq!((code, waiting), (200, json!([])));
    let (code, again) = crm
        .api
        .call("POST", "/api/plugins/scripted/approve", &crm.token, None)
        .await;
    assert_eq!(code, 409, "{again}");

    // The log has both steps; going back to 1.0.0 (which declares less) needs no approval.
    let (_, log) = crm
        .api
        .call("GET", "/api/plugins/changes", &crm.token, None)
        .await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(&actions[..2], ["approve", "pending"], "{log}");
    let out = site.run(&["plugin", "rollback", "scripted"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
}
