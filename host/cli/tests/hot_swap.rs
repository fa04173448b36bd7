//! Hot swap under load: while 50 accounts sync continuously against a real
//! Dovecot, the IMAP plugin is upgraded 10 times and rolled back once
//! through the API. No sync fails because of a swap, no message is lost or
//! doubled, and the server process is the same one throughout.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Site, letter, now};
use mailroom_test_support::db::Kind;
use mailroom_test_support::dovecot::Dovecot;
use mailroom_test_support::plugin_build;
use serde_json::json;

const ACCOUNTS: usize = 50;
const SEEDED: usize = 10;
const UPGRADES: u32 = 10;
const PASSWORD: &str = "Swap-Passw0rd-Secret-3141";

fn mailbox(i: usize) -> String {
    format!("user{i}@corp.test")
}

fn contact(i: usize) -> String {
    format!("c{i}@x.test")
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_accounts_sync_through_ten_upgrades_and_a_rollback_without_loss() {
    let dovecot = Dovecot::start();
    let site = Site::new(Kind::Postgres).await;
    site.install("imap");
    let (_, admin) = site.user("ops@corp.test", "admin", true);
    let mut server = site.serve_for(&dovecot);
    let crm = site.crm(&server, admin.unwrap());
    let t0 = now();

    // Fifty mailboxes, each with mail from its own contact.
    let mut expected: Vec<BTreeSet<String>> = vec![BTreeSet::new(); ACCOUNTS];
    let mut contacts = Vec::new();
    for (i, want) in expected.iter_mut().enumerate() {
        dovecot.add_user(&mailbox(i), PASSWORD);
        let mail: Vec<_> = (0..SEEDED)
            .map(|n| {
                let subject = format!("seeded a{i} n{n}");
                want.insert(subject.clone());
                let at = t0 - 3600 * (n as i64 + 1);
                (letter(&contact(i), &mailbox(i), &subject, at), at)
            })
            .collect();
        dovecot.seed(&mailbox(i), "INBOX", &mail);
        contacts.push(crm.contact(&format!("Contact {i}"), &contact(i)).await);
    }
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        let body = json!({"provider": "imap", "address": mailbox(i),
            "settings": {"imap_host": "localhost", "imap_port": dovecot.imaps_port.to_string()},
            "secrets": {"password": PASSWORD}});
        accounts.push(
            crm.post("/api/accounts", body).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    for id in &accounts {
        crm.synced_after(*id, 0).await;
    }

    // Ten upgrades, mail arriving all along; then one rollback.
    let deliver = |i: usize, subject: String, at: i64, want: &mut BTreeSet<String>| {
        dovecot.seed(
            &mailbox(i),
            "INBOX",
            &[(letter(&contact(i), &mailbox(i), &subject, at), at)],
        );
        want.insert(subject);
    };
    for k in 1..=UPGRADES {
        for j in 0..5 {
            let i = (k as usize * 5 + j) % ACCOUNTS;
            deliver(
                i,
                format!("live a{i} k{k}"),
                t0 + k as i64,
                &mut expected[i],
            );
        }
        let (code, change) = crm.upload_plugin(&crm.token, plugin_build("imap", k)).await;
        assert_eq!(code, 201, "{change}");
        assert_eq!(change["action"], "upgrade", "{change}");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (code, back) = crm
        .api
        .call("POST", "/api/plugins/imap/rollback", &crm.token, None)
        .await;
    assert_eq!(code, 200, "{back}");
    for (i, want) in expected.iter_mut().enumerate() {
        deliver(i, format!("final a{i}"), t0 + 100, want);
    }
    let after = now();
    for id in &accounts {
        crm.synced_after(*id, after).await;
    }

    // Every message on its contact's timeline, once; every account healthy.
    for (i, want) in expected.iter().enumerate() {
        let record = format!("/api/contacts/{}", contacts[i]);
        let final_subject = format!("final a{i}");
        crm.wait_for_subject(&record, &final_subject, String::new)
            .await;
        let got: BTreeSet<String> = crm.subjects_once(&record).await.into_iter().collect();
        assert_eq!(&got, want, "account {i}");
    }
    for id in &accounts {
        let a = crm.account(*id).await;
        assert_eq!(a["sync"]["phase"], "active", "{a}");
    }
    let log = std::fs::read_to_string(site.log()).unwrap();
    for failure in ["sync stopped", "sync run failed", "sync engine", "panicked"] {
        assert!(
            !log.contains(failure),
            "`{failure}` in the server's log:\n{}",
            log.lines()
                .filter(|l| l.contains(failure))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // One process all along, and the log says what happened.
    assert!(server.process.0.try_wait().unwrap().is_none());
    let (_, changes) = crm
        .api
        .call("GET", "/api/plugins/changes", &crm.token, None)
        .await;
    let actions: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "upgrade").count(), 10);
    assert_eq!(actions[0], "rollback");
}
