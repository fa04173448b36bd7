//! `mailroom plugin test`: the conformance suite passes the IMAP and POP3
//! plugins on a real Dovecot and the Gmail and Exchange plugins on their emulators, and
//! catches plugins that break the contract's obligations.

mod common;

use std::process::Command;

use common::{KEY, build_pop3, letter, now};
use mailroom_test_support::dovecot::Dovecot;
use mailroom_test_support::plugin;

const MAILBOX: &str = "ann@corp.test";
const PASSWORD: &str = "Imap-Passw0rd-Conformance-4417";

/// `mailroom plugin test` with `args`; its exit code and report.
fn suite(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["plugin", "test"])
        .args(args)
        .env("MAILROOM_HOME", home.path())
        .env("MAILROOM_SECRET_KEY", KEY)
        .envs(env.iter().copied())
        .output()
        .expect("mailroom runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every obligation of the report is met.
fn all_met(code: i32, report: &str) {
    assert_eq!(code, 0, "{report}");
    for obligation in OBLIGATIONS {
        assert_eq!(outcome(report, obligation), "ok", "{obligation}:\n{report}");
    }
    assert!(report.ends_with("passed\n"), "{report}");
}

const OBLIGATIONS: [&str; 10] = [
    "info",
    "verify",
    "verify-wrong-secret",
    "backfill",
    "paging-idempotent",
    "resume",
    "incremental",
    "errors-typed",
    "declared-endpoints-only",
    "limits",
];

/// `suite` off the test's runtime (its emulator must keep answering).
async fn suite_beside(args: Vec<String>, env: Vec<(String, String)>) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        suite(&args, &env)
    })
    .await
    .unwrap()
}

/// Messages from `bob@x.test` to `to`, one every two hours back from an hour ago.
fn notes(to: &str, n: i64) -> Vec<(Vec<u8>, i64)> {
    let t = now();
    (0..n)
        .map(|i| {
            let at = t - 3600 - i * 7200;
            (letter("bob@x.test", to, &format!("Note {i}"), at), at)
        })
        .collect()
}

/// The outcome word (`ok`, `FAIL`, `skip`) the report gives an obligation.
fn outcome<'a>(report: &'a str, obligation: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(obligation))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{obligation}` in:\n{report}"))
}

#[test]
fn the_imap_plugin_meets_every_obligation_on_dovecot() {
    let dovecot = Dovecot::start();
    dovecot.add_user(MAILBOX, PASSWORD);
    dovecot.seed(MAILBOX, "INBOX", &notes(MAILBOX, 130));
    let port = dovecot.imaps_port.to_string();
    let (code, report) = suite(
        &[
            plugin("imap").to_str().unwrap(),
            "--address",
            MAILBOX,
            "--set",
            "imap_host=localhost",
            "--set",
            &format!("imap_port={port}"),
            "--set",
            "batch_size=25",
            "--secret-env",
            "password=IMAP_PASSWORD",
            "--grant-private",
            "127.0.0.0/8",
        ],
        &[
            ("IMAP_PASSWORD", PASSWORD),
            ("MAILROOM_EXTRA_CA", dovecot.ca.ca_file().to_str().unwrap()),
        ],
    );
    all_met(code, &report);
    assert!(report.contains("130 messages in 6 pages"), "{report}");
}

#[test]
fn the_pop3_plugin_built_from_python_meets_every_obligation_on_dovecot() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = build_pop3(dir.path());
    let dovecot = Dovecot::start();
    dovecot.add_user(MAILBOX, PASSWORD);
    dovecot.seed(MAILBOX, "INBOX", &notes(MAILBOX, 130));
    let port = dovecot.pop3s_port.to_string();
    let (code, report) = suite(
        &[
            wasm.to_str().unwrap(),
            "--address",
            MAILBOX,
            "--set",
            "pop3_host=localhost",
            "--set",
            &format!("pop3_port={port}"),
            "--set",
            "batch_size=25",
            "--secret-env",
            "password=POP3_PASSWORD",
            "--grant-private",
            "127.0.0.0/8",
        ],
        &[
            ("POP3_PASSWORD", PASSWORD),
            ("MAILROOM_EXTRA_CA", dovecot.ca.ca_file().to_str().unwrap()),
        ],
    );
    all_met(code, &report);
    assert!(report.contains("130 messages in 6 pages"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gmail_plugin_meets_every_obligation_on_the_emulator() {
    let gmail = gmail_emulator::Emulator::start().await.expect("emulator");
    let ann = "ann@gmail.test";
    gmail.add_user(ann);
    for (raw, at) in notes(ann, 130) {
        gmail.deliver(ann, &raw, &["INBOX"], at);
    }
    let args = [
        plugin("gmail").display().to_string(),
        "--address".into(),
        ann.into(),
        "--set".into(),
        "quota_units_per_second=100000".into(),
        "--secret-env".into(),
        "access_token=GMAIL_TOKEN".into(),
        "--grant-private".into(),
        "127.0.0.0/8".into(),
        "--base-url".into(),
        format!("https://gmail.googleapis.com={}", gmail.url()),
    ];
    let env = vec![("GMAIL_TOKEN".to_string(), gmail.access_token(ann))];
    let (code, report) = suite_beside(args.to_vec(), env).await;
    all_met(code, &report);
    assert!(report.contains("130 messages in"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_plugin_meets_every_obligation_on_the_emulator() {
    let ews = ews_emulator::Emulator::start().await.expect("emulator");
    let carol = "carol@contoso.test";
    ews.add_user(carol, PASSWORD, None);
    for (raw, at) in notes(carol, 130) {
        ews.deliver(carol, "inbox", &raw, at);
    }
    let origins = ["autodiscover.contoso.test", "contoso.test"]
        .map(|host| format!("https://{host}={}", ews.url()));
    let mut args = vec![
        plugin("exchange").display().to_string(),
        "--address".into(),
        carol.into(),
        "--secret-env".into(),
        "password=EWS_PASSWORD".into(),
        "--grant-private".into(),
        "127.0.0.0/8".into(),
    ];
    for origin in origins {
        args.extend(["--base-url".to_string(), origin]);
    }
    let env = vec![("EWS_PASSWORD".to_string(), PASSWORD.to_string())];
    let (code, report) = suite_beside(args, env).await;
    all_met(code, &report);
    assert!(report.contains("130 messages in"), "{report}");
}

#[test]
fn plugins_that_break_the_contract_fail_it_with_the_reason() {
    let hostile = plugin("hostile");
    let (code, report) = suite(
        &[hostile.to_str().unwrap(), "--set", "attack=undeclared"],
        &[],
    );
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        outcome(&report, "info"),
        "FAIL",
        "fields without help: {report}"
    );
    assert_eq!(
        outcome(&report, "declared-endpoints-only"),
        "FAIL",
        "{report}"
    );
    assert!(report.contains("undeclared.example.com"), "{report}");

    let (code, report) = suite(&[hostile.to_str().unwrap(), "--set", "attack=panic"], &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        outcome(&report, "errors-typed"),
        "FAIL",
        "a panic is no typed error: {report}"
    );

    // The scripted test plugin takes any password: the suite says so.
    let (code, report) = suite(
        &[
            plugin("scripted").to_str().unwrap(),
            "--set",
            "messages=60",
            "--set",
            "page_size=20",
            "--secret-env",
            "password=PW",
        ],
        &[("PW", "right")],
    );
    assert_eq!(code, 1, "{report}");
    assert_eq!(outcome(&report, "verify-wrong-secret"), "FAIL", "{report}");
    assert!(report.contains("a wrong secret was accepted"), "{report}");
    assert_eq!(outcome(&report, "resume"), "ok", "{report}");
}
