//! exchangelib, the Python EWS client, talks to the EWS emulator as to an
//! Exchange server: sign-in with an Exchange username, folder lookup,
//! restricted and paged listing, MIME, folder sync, and sending with a copy
//! in Sent Items. Every answer it got validates against Microsoft's EWS schema.

mod schema;

use std::path::Path;

use ews_emulator::Emulator;

const CAROL: &str = "carol@contoso.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchangelib_lists_fetches_syncs_and_sends() {
    let ews = Emulator::start().await.expect("emulator");
    ews.add_user(CAROL, "Exch-Passw0rd", Some("CONTOSO\\carol"));
    let day = 86_400;
    let now = 1_795_000_000;
    for (i, subject) in ["first", "second", "third"].iter().enumerate() {
        let raw =
            format!("From: dave@client.test\r\nTo: {CAROL}\r\nSubject: {subject}\r\n\r\nbody\r\n");
        ews.deliver(CAROL, "inbox", raw.as_bytes(), now - (3 - i as i64) * day);
    }
    ews.deliver(
        CAROL,
        "inbox",
        b"Subject: ancient\r\n\r\nold\r\n",
        1_500_000_000,
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/exchangelib_client.py");
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(ews.ews_url())
        .arg("CONTOSO\\carol")
        .arg("Exch-Passw0rd")
        .arg(CAROL)
        .output()
        .await
        .expect("python3 runs (scripts/setup installs exchangelib)");
    assert!(
        output.status.success(),
        "exchangelib failed against the emulator:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        got["subjects"],
        serde_json::json!(["third", "second", "first"]),
        "{got}"
    );
    assert_eq!(got["mime_subjects"][0], "Subject: third", "{got}");
    assert_eq!(got["inbox_total"], 4, "{got}");
    assert_eq!(got["synced"].as_array().map(Vec::len), Some(4), "{got}");
    let sent = ews.messages(CAROL, "sentitems");
    assert!(
        sent.iter()
            .any(|m| String::from_utf8_lossy(m).contains("Subject: sent by exchangelib"))
    );
    let calls = ews.calls();
    for op in [
        "GetFolder",
        "FindItem",
        "GetItem",
        "SyncFolderItems",
        "CreateItem",
    ] {
        assert!(
            calls.contains_key(op),
            "exchangelib never called {op}: {calls:?}"
        );
    }
    // Every answer fits Microsoft's schema. (exchangelib's own requests ask
    // for properties of later Exchange versions, such as `item:TextBody`,
    // which this schema predates, so they are not held to it.)
    let exchanges = ews.exchanges();
    let answers: Vec<(&str, &str)> = exchanges
        .iter()
        .map(|(_, a)| ("answer", a.as_str()))
        .collect();
    schema::validate_all(&answers);
}
