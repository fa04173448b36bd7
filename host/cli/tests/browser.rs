//! The web UI in a real browser: Playwright (`playwright-core`) driving
//! Debian's Chromium against `mailroom serve` with a real Dovecot. The
//! browser steps are `tests/browser/connected-emails.mjs`; this test starts
//! the peers, seeds the mailbox and the CRM, changes the password on the
//! server between the two phases, and stops everything by PID. Screenshots
//! of each page land in `target/tmp/browser-artifacts`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{Crm, LOGIN_PASSWORD, Process, letter, now};
use mailroom_test_support::db::Kind;
use mailroom_test_support::dovecot::Dovecot;
use mailroom_test_support::{plugin, repo_root};

const MAILBOX: &str = "sam@corp.test";
const PASSWORD: &str = "Imap-Passw0rd-Browser-5521";
const NEW_PASSWORD: &str = "Imap-Passw0rd-Rotated-8840";
const DAY: i64 = 86_400;
const SUBJECTS: [&str; 3] = ["Renewal pricing", "Contract draft", "Kickoff call"];
const HOSTILE_SUBJECT: &str = "Quarterly numbers";

/// A small HTTP server standing in for a sender's tracking pixel: it counts
/// requests by path and answers `/count` with the counts as JSON.
struct Tracker {
    base: String,
}

impl Tracker {
    fn start() -> Tracker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (kind, body) = if path == "/count" {
                    let counts = hits.lock().unwrap().clone();
                    ("application/json", serde_json::to_vec(&counts).unwrap())
                } else {
                    *hits.lock().unwrap().entry(path).or_default() += 1;
                    // A 1x1 transparent GIF.
                    ("image/gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec())
                };
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                     Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Tracker { base }
    }
}

/// An HTML message from Ann carrying script, event-handler, frame and
/// remote-image payloads (each would call the tracker), and an attachment.
fn hostile(tracker: &str, at: i64) -> Vec<u8> {
    let date =
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at as u64));
    let ran = format!("{tracker}/script-ran");
    format!(
        "Message-ID: <hostile@mailroom.test>\r\nFrom: Ann Acme <ann@acme.test>\r\nTo: {MAILBOX}\r\n\
Subject: {HOSTILE_SUBJECT}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\r\n\
--outer\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p onclick=\"fetch('{ran}')\">Quarterly numbers attached.</p>\r\n\
<script>fetch('{ran}'); window.parent.owned = 1; alert('owned');</script>\r\n\
<img src=\"{tracker}/pixel.gif\" onerror=\"fetch('{ran}')\" alt=\"Acme logo\">\r\n\
<a href=\"javascript:fetch('{ran}')\">details</a>\r\n\
<svg onload=\"fetch('{ran}')\"></svg><iframe src=\"{ran}\"></iframe>\r\n\
<form action=\"{ran}\"><input name=q></form>\r\n\
--outer\r\nContent-Type: application/pdf; name=\"quote.pdf\"\r\n\
Content-Disposition: attachment; filename=\"quote.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQh\r\n--outer--\r\n"
    )
    .into_bytes()
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts")
}

/// Start one phase of the browser steps; its output goes to `PHASE.log`.
fn start_browser(phase: &str, env: &[(&str, String)]) -> Process {
    std::fs::create_dir_all(artifacts()).unwrap();
    let log = std::fs::File::create(artifacts().join(format!("{phase}.log"))).unwrap();
    let child = Command::new("node")
        .arg(repo_root().join("tests/browser/connected-emails.mjs"))
        .arg(phase)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("node runs (scripts/setup installs it with playwright-core)");
    Process(child)
}

/// Wait for a phase to end; fail with what it printed.
fn finish_browser(mut browser: Process, phase: &str) {
    let status = browser.0.wait().unwrap();
    let said =
        std::fs::read_to_string(artifacts().join(format!("{phase}.log"))).unwrap_or_default();
    assert!(
        status.success(),
        "browser phase `{phase}` failed (screenshots in {}):\n{said}",
        artifacts().display()
    );
    println!("{said}");
}

/// While the browser watches, hold the server still once the backfill has
/// stored its first page, so that the progress bar is on screen for a
/// while however fast this machine backfills; then let it finish.
async fn hold_backfill(crm: &Crm, dovecot: &Dovecot, browser: &mut Process) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if browser.0.try_wait().unwrap().is_some() {
            return; // the phase ended early: finish_browser reports why
        }
        let (_, accounts) = crm.api.call("GET", "/api/accounts", &crm.token, None).await;
        let started = accounts.as_array().into_iter().flatten().any(|a| {
            a["sync"]["phase"] == "backfilling" && a["sync"]["progress_done"].as_i64() > Some(0)
        });
        if started {
            dovecot.pause();
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            dovecot.resume();
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backfill never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_connects_a_mailbox_and_reads_its_mail_in_chromium() {
    let dovecot = Dovecot::start();
    dovecot.add_user(MAILBOX, PASSWORD);
    let tracker = Tracker::start();
    let t = now();
    // Enough mail from strangers that the backfill takes many pages; Ann's is stored.
    let mut seeded: Vec<(Vec<u8>, i64)> = (0..1500)
        .map(|i| {
            let at = t - 2 * DAY - i * 600;
            (
                letter(
                    &format!("someone{i}@elsewhere.test"),
                    MAILBOX,
                    &format!("Noise {i}"),
                    at,
                ),
                at,
            )
        })
        .collect();
    for (i, subject) in SUBJECTS.iter().enumerate() {
        let at = t - DAY - i as i64 * 3600;
        seeded.push((letter("Ann Acme <ann@acme.test>", MAILBOX, subject, at), at));
    }
    seeded.push((hostile(&tracker.base, t - 3600), t - 3600));
    dovecot.seed(MAILBOX, "INBOX", &seeded);

    let site = common::Site::new(Kind::Sqlite).await;
    site.install("imap");
    let (_, token) = site.user(MAILBOX, "admin", true);
    site.user("olga@corp.test", "member", false);
    let server = site.serve_for(&dovecot);
    let crm = site.crm(&server, token.unwrap());
    let ann = crm.contact("Ann Acme", "ann@acme.test").await;
    crm.deal("Acme renewal", ann, None).await;

    let _ = std::fs::remove_dir_all(artifacts());
    let env = [
        ("MAILROOM_BASE", server.base.clone()),
        ("ARTIFACTS", artifacts().display().to_string()),
        ("TRACKER", tracker.base.clone()),
        ("SALES_EMAIL", MAILBOX.to_string()),
        ("SALES_PASSWORD", LOGIN_PASSWORD.to_string()),
        ("OTHER_EMAIL", "olga@corp.test".to_string()),
        ("OTHER_PASSWORD", LOGIN_PASSWORD.to_string()),
        ("MAILBOX", MAILBOX.to_string()),
        ("MAILBOX_PASSWORD", PASSWORD.to_string()),
        ("NEW_PASSWORD", NEW_PASSWORD.to_string()),
        ("IMAPS_PORT", dovecot.imaps_port.to_string()),
        ("SUBJECTS", SUBJECTS.join("|")),
        ("HOSTILE_SUBJECT", HOSTILE_SUBJECT.to_string()),
        (
            "UPGRADE_PLUGIN",
            plugin("scripted-next").display().to_string(),
        ),
    ];
    let mut sync = start_browser("sync", &env);
    hold_backfill(&crm, &dovecot, &mut sync).await;
    finish_browser(sync, "sync");
    dovecot.set_password(MAILBOX, NEW_PASSWORD);
    finish_browser(start_browser("reauth", &env), "reauth");
    for shot in [
        "05-active",
        "08-message-images-blocked",
        "13-sign-in-needed",
        "14-active-again",
    ] {
        assert!(
            artifacts().join(format!("{shot}.png")).is_file(),
            "screenshot {shot}"
        );
    }
}
