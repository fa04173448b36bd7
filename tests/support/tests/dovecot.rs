//! The Dovecot test peer itself: it starts on its own ports, serves IMAP in
//! the clear with STARTTLS and over TLS with the test CA's certificate,
//! authenticates its passwd-file users, holds what `doveadm save` stored,
//! and leaves no process behind.

use std::sync::Arc;

use mailroom_test_support::dovecot::Dovecot;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Send a tagged command and read up to its tagged reply; every line read.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    tag: &str,
    cmd: &str,
) -> String {
    io.get_mut()
        .write_all(format!("{tag} {cmd}\r\n").as_bytes())
        .await
        .unwrap();
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(
            io.read_line(&mut line).await.unwrap() > 0,
            "closed after: {all}"
        );
        all.push_str(&line);
        if line.starts_with(&format!("{tag} ")) {
            return all;
        }
    }
}

fn tls(ca: &std::path::Path) -> tokio_rustls::TlsConnector {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn dovecot_processes(dir: &std::path::Path) -> usize {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmd| String::from_utf8_lossy(cmd).contains(&needle))
        .count()
}

#[tokio::test]
async fn dovecot_serves_plain_starttls_and_imaps_then_stops() {
    let dovecot = Dovecot::start();
    dovecot.add_user("ann@example.test", "secret-pw");
    dovecot.save(
        "ann@example.test",
        "INBOX",
        b"From: bob@example.test\r\nTo: ann@example.test\r\nSubject: hello\r\nMessage-ID: <1@example.test>\r\n\r\nHi Ann.\r\n",
    );

    // Plain, then STARTTLS on the same connection.
    let tcp = TcpStream::connect(("127.0.0.1", dovecot.imap_port))
        .await
        .unwrap();
    let mut io = BufReader::new(tcp);
    let mut greeting = String::new();
    io.read_line(&mut greeting).await.unwrap();
    assert!(
        greeting.starts_with("* OK") && greeting.contains("STARTTLS"),
        "{greeting}"
    );
    let reply = command(&mut io, "a", "LOGIN ann@example.test wrong").await;
    assert!(reply.contains("a NO"), "{reply}");
    let reply = command(&mut io, "b", "STARTTLS").await;
    assert!(reply.contains("b OK"), "{reply}");
    let tls_stream = tls(&dovecot.ca.ca_file())
        .connect(ServerName::try_from("localhost").unwrap(), io.into_inner())
        .await
        .expect("STARTTLS handshake with the test CA");
    let mut io = BufReader::new(tls_stream);
    let reply = command(&mut io, "c", "LOGIN ann@example.test secret-pw").await;
    assert!(reply.contains("c OK"), "{reply}");
    let reply = command(&mut io, "d", "SELECT INBOX").await;
    assert!(
        reply.contains("* 1 EXISTS") && reply.contains("UIDVALIDITY"),
        "{reply}"
    );
    let reply = command(&mut io, "e", "LIST \"\" \"*\"").await;
    assert!(
        reply.contains("\\Sent"),
        "a Sent folder with its special use: {reply}"
    );

    // IMAPS.
    let tcp = TcpStream::connect(("127.0.0.1", dovecot.imaps_port))
        .await
        .unwrap();
    let tls_stream = tls(&dovecot.ca.ca_file())
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("IMAPS handshake with the test CA");
    let mut io = BufReader::new(tls_stream);
    let mut greeting = String::new();
    io.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let reply = command(&mut io, "a", "LOGIN ann@example.test secret-pw").await;
    assert!(reply.contains("a OK"), "{reply}");
    let reply = command(&mut io, "b", "EXAMINE INBOX").await;
    assert!(reply.contains("b OK"), "{reply}");
    let reply = command(
        &mut io,
        "c",
        "UID FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
    )
    .await;
    assert!(reply.contains("Subject: hello"), "{reply}");
    drop(io);

    let dir = dovecot.dir().to_path_buf();
    assert!(dovecot_processes(&dir) > 0);
    drop(dovecot);
    assert_eq!(dovecot_processes(&dir), 0, "no Dovecot process is left");
}
