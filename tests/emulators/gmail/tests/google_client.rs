//! Google's own Python client (`google-api-python-client`, static discovery,
//! `api_endpoint` pointed at the emulator) talks to the emulator: profile,
//! list with paging, get raw, send, history.

use std::path::Path;

use gmail_emulator::Emulator;
use serde_json::Value;

#[tokio::test]
async fn googles_python_client_lists_gets_sends_and_reads_history() {
    let emulator = Emulator::start().await.expect("emulator");
    let me = "ann@example.com";
    let token = emulator.access_token(me);
    let mut ids = Vec::new();
    for (i, label) in ["INBOX", "INBOX", "SPAM", "INBOX"].iter().enumerate() {
        let raw =
            format!("From: c{i}@example.net\r\nTo: {me}\r\nSubject: number {i}\r\n\r\nbody\r\n");
        ids.push(emulator.deliver(me, raw.as_bytes(), &[label], 1_780_000_000 + i as i64 * 60));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/google_client.py");
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(emulator.url())
        .arg(&token)
        .output()
        .await
        .expect("python3 runs (scripts/setup installs google-api-python-client)");
    assert!(
        output.status.success(),
        "Google's client failed against the emulator:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(got["email"], me);
    // Newest first, across two pages of two, spam left out.
    let expected: Vec<Value> = [&ids[3], &ids[1], &ids[0]]
        .iter()
        .map(|s| Value::from(s.as_str()))
        .collect();
    assert_eq!(got["listed"], Value::Array(expected));
    assert_eq!(got["first_subject"][0], "Subject: number 3");
    assert_eq!(got["first_labels"][0], "INBOX");
    assert_eq!(got["sent_labels"][0], "SENT");
    assert_eq!(
        got["history_added"],
        serde_json::json!([got["sent"].clone()])
    );
    let sent = got["sent"].as_str().expect("an id");
    let stored = emulator.messages(me);
    let copy = stored
        .iter()
        .find(|(id, _, _)| id == sent)
        .expect("the sent copy is in the mailbox");
    assert_eq!(copy.1, vec!["SENT".to_string()]);
    assert!(String::from_utf8_lossy(&copy.2).contains("Subject: sent by Google's client"));
    let calls = emulator.calls();
    assert_eq!(
        calls.get("gmail.users.messages.list"),
        Some(&2),
        "{calls:?}"
    );
    assert_eq!(calls.get("gmail.users.history.list"), Some(&1), "{calls:?}");
}
