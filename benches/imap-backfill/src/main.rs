//! `make bench-imap-backfill`: how fast Mailroom backfills a real IMAP
//! mailbox, beside the tools people use today, in one run on one machine.
//!
//! A Dovecot (started here, as the tests start it) holds 10,000 messages: the
//! SpamAssassin corpus cycled, each with a unique Message-ID, from one of 100
//! known contacts to the account. Measured, in messages per second:
//!
//! - `mailroom`: the sync engine running the IMAP plugin over TLS (IMAPS),
//!   parsing, matching and storing into a SQLite file, from connect to done;
//! - `raw-tls-ceiling`: one `UID FETCH 1:* BODY.PEEK[]` of the same mailbox
//!   over TLS by a bare client that discards the bytes (what the network and
//!   Dovecot allow at most);
//! - `mbsync`: isync pulling the same mailbox into a Maildir;
//! - `imap-plugin-alone`: the plugin pulling the window through the runtime
//!   with the pages dropped (where the sandboxed side stands on its own).
//!
//! Each runs three times, interleaved; the medians are printed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bench_support::{Backfill, DAY, ROUNDS, mailbox, median, now};
use mailroom_runtime::{
    AccountInput, OperatorGrant, Registry, Runtime, RuntimeConfig, Secret, Secrets, Window,
};
use mailroom_test_support::dovecot::Dovecot;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGES: usize = 10_000;
const USER: &str = "bench@corp.test";
const PASSWORD: &str = "Bench-Passw0rd-2718";

/// The bare client: sign in, `UID FETCH 1:* BODY.PEEK[]`, discard; bytes read.
async fn raw_fetch(dovecot: &Dovecot) -> usize {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dovecot.ca.ca_file()).expect("CA file") {
        roots.add(cert.expect("a certificate")).expect("a root");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", dovecot.imaps_port))
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut io = tls.connect(name, tcp).await.expect("TLS");
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    let mut tail: Vec<u8> = Vec::new();
    for (tag, command) in [
        ("a1", format!("LOGIN {USER} {PASSWORD}")),
        ("a2", "SELECT INBOX".to_string()),
        ("a3", "UID FETCH 1:* BODY.PEEK[]".to_string()),
        ("a4", "LOGOUT".to_string()),
    ] {
        io.write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .expect("write");
        let done = format!("\r\n{tag} ");
        tail.clear();
        loop {
            let n = io.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before {tag} completed");
            total += n;
            tail.extend_from_slice(&buf[..n]);
            if tail.windows(done.len()).any(|w| w == done.as_bytes()) {
                break;
            }
            let keep = tail.len().saturating_sub(done.len() + 64);
            tail.drain(..keep);
        }
    }
    total
}

/// mbsync pulling the mailbox into a fresh Maildir; files written.
fn mbsync(dovecot: &Dovecot, dir: &Path) -> usize {
    let maildir = dir.join("mbsync");
    std::fs::create_dir_all(&maildir).expect("mkdir");
    // isync trusts the certificates listed here as the server's own: list the CA and the server's.
    let certs = dir.join("mbsync-certs.pem");
    let mut pem = std::fs::read(dovecot.ca.ca_file()).expect("CA file");
    pem.extend(std::fs::read(dovecot.ca.server_cert_file()).expect("server certificate"));
    std::fs::write(&certs, pem).expect("certificate file");
    let config = dir.join("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount bench\nHost localhost\nPort {}\nUser {USER}\nPass {PASSWORD}\n\
             SSLType IMAPS\nCertificateFile {}\n\n\
             IMAPStore remote\nAccount bench\n\n\
             MaildirStore local\nPath {}/\nInbox {}/INBOX\n\n\
             Channel bench\nFar :remote:INBOX\nNear :local:INBOX\nSync Pull\nCreate Near\nSyncState *\n\n",
            dovecot.imaps_port,
            certs.display(),
            maildir.display(),
            maildir.display(),
        ),
    )
    .expect("mbsyncrc");
    let status = std::process::Command::new("mbsync")
        .arg("-c")
        .arg(&config)
        .arg("-q")
        .arg("bench")
        .status()
        .expect("mbsync runs (scripts/setup installs isync)");
    assert!(status.success(), "mbsync failed");
    std::fs::read_dir(maildir.join("INBOX/cur"))
        .map(|d| d.count())
        .unwrap_or(0)
        + std::fs::read_dir(maildir.join("INBOX/new"))
            .map(|d| d.count())
            .unwrap_or(0)
}

/// The IMAP plugin alone pulling the window through the runtime, pages
/// dropped (from the start of the run, the plugin already compiled):
/// messages pulled, seconds.
async fn plugin_only(dovecot: &Dovecot, dir: &Path) -> (usize, f64) {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.parent().unwrap_or(dir).join("cache")),
        extra_ca: Some(dovecot.ca.ca_file()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let registry = Registry::new(runtime.clone());
    let (plugin, _) = registry
        .install(mailroom_test_support::plugin_bytes("imap"))
        .await
        .expect("the imap plugin");
    let mut secrets = Secrets::new();
    secrets.insert("password".to_string(), Secret::new(PASSWORD.to_string()));
    let input = AccountInput {
        id: "bench".into(),
        address: USER.into(),
        settings: imap_settings(dovecot),
        secrets,
    };
    let start = Instant::now();
    let mut run = runtime
        .start(&plugin, &input, &grant())
        .await
        .expect("start");
    run.open().await.expect("open");
    let window = Window {
        since: now() - 365 * DAY,
        skip: vec![],
    };
    let mut cursor = None;
    let mut pulled = 0;
    loop {
        let page = run.sync(cursor.as_deref(), &window).await.expect("page");
        pulled += page.messages.len();
        if !page.more {
            return (pulled, start.elapsed().as_secs_f64());
        }
        cursor = Some(page.cursor);
    }
}

fn imap_settings(dovecot: &Dovecot) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("imap_host".to_string(), "localhost".to_string()),
        ("imap_port".to_string(), dovecot.imaps_port.to_string()),
        ("imap_security".to_string(), "tls".to_string()),
    ])
}

fn grant() -> OperatorGrant {
    OperatorGrant {
        private_networks: vec!["127.0.0.0/8".parse().expect("a network")],
        ..OperatorGrant::default()
    }
}

/// The sync engine backfilling the account.
async fn mailroom(dovecot: &Dovecot, dir: &Path) -> (f64, mailroom_crm::messages::Counts) {
    Backfill {
        plugin: "imap",
        address: USER.into(),
        settings: imap_settings(dovecot),
        secrets: BTreeMap::from([("password".to_string(), PASSWORD.to_string())]),
        grant: grant(),
        extra_ca: Some(dovecot.ca.ca_file()),
        contacts: bench_support::contacts(),
    }
    .run(dir)
    .await
}

#[tokio::main]
async fn main() {
    bench_support::init_log();
    let dir = tempfile::tempdir().expect("temp dir");
    let dovecot = Dovecot::start();
    dovecot.add_user(USER, PASSWORD);
    let mail = mailbox(MESSAGES, USER);
    let bytes: usize = mail.iter().map(|(m, _)| m.len()).sum();
    dovecot.seed(USER, "INBOX", &mail);
    eprintln!(
        "Dovecot holds {MESSAGES} messages ({:.1} MB); warming its index…",
        bytes as f64 / 1e6
    );
    raw_fetch(&dovecot).await;

    // The machine is shared and noisy: each tool runs ROUNDS times,
    // interleaved, and the median rate is reported.
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut counts = mailroom_crm::messages::Counts::default();
    for round in 0..ROUNDS {
        let here = dir.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&here).expect("mkdir");

        let start = Instant::now();
        let read = raw_fetch(&dovecot).await;
        rates[0].push(MESSAGES as f64 / start.elapsed().as_secs_f64());
        assert!(read >= bytes, "the bare client read the whole mailbox");

        let start = Instant::now();
        let pulled = mbsync(&dovecot, &here);
        rates[1].push(MESSAGES as f64 / start.elapsed().as_secs_f64());
        assert_eq!(pulled, MESSAGES, "mbsync pulled every message");

        let (pulled, secs) = plugin_only(&dovecot, &here).await;
        rates[2].push(MESSAGES as f64 / secs);
        assert_eq!(pulled, MESSAGES, "the plugin pulled every message");

        let (secs, c) = mailroom(&dovecot, &here).await;
        assert_eq!(
            (c.seen + c.failed) as usize,
            MESSAGES,
            "Mailroom indexed or skipped every message"
        );
        rates[3].push(MESSAGES as f64 / secs);
        counts = c;
        eprintln!(
            "round {}: ceiling {:.0}, mbsync {:.0}, plugin alone {:.0}, mailroom {:.0} msg/s",
            round + 1,
            rates[0][round],
            rates[1][round],
            rates[2][round],
            rates[3][round]
        );
    }
    let [raw_rate, mbsync_rate, plugin_rate, mailroom_rate] = rates.map(median);

    println!(
        "IMAP backfill of {MESSAGES} messages ({:.1} MB, SpamAssassin corpus cycled) from Dovecot over TLS; \
         Mailroom stored {}, skipped {} with a reason; medians of {ROUNDS} interleaved rounds:",
        bytes as f64 / 1e6,
        counts.stored,
        counts.failed
    );
    println!(
        "mailroom vs ceiling: {:.0}%, vs mbsync: {:.1}x",
        100.0 * mailroom_rate / raw_rate,
        mailroom_rate / mbsync_rate
    );
    println!("mailroom: {mailroom_rate:.0} msg/s");
    println!("raw-tls-ceiling: {raw_rate:.0} msg/s");
    println!("mbsync: {mbsync_rate:.0} msg/s");
    println!("imap-plugin-alone: {plugin_rate:.0} msg/s");
}
