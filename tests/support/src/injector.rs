//! A mail server that answers `STARTTLS` (`STLS`) with one line more in the
//! same segment, as a man in the middle injecting into the plaintext part of
//! a connection would, and then records whether the client went on to a TLS
//! handshake built on it. For the tests that prove a plugin refuses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Which protocol the server speaks (just enough of it to reach STARTTLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailProtocol {
    /// IMAP: `CAPABILITY`, `STARTTLS`.
    Imap,
    /// SMTP: `EHLO`, `STARTTLS`.
    Smtp,
    /// POP3: `CAPA`, `STLS`.
    Pop3,
}

/// The server; it stops when dropped.
pub struct Injector {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    handshake: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Injector {
    /// Start one.
    pub async fn start(protocol: MailProtocol) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handshake = Arc::new(AtomicBool::new(false));
        let seen = handshake.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let _ = serve(tcp, protocol, &seen).await;
                });
            }
        });
        Injector {
            port,
            handshake,
            task,
        }
    }

    /// Whether a client sent a TLS handshake after the injected line.
    pub fn handshake_attempted(&self) -> bool {
        self.handshake.load(Ordering::SeqCst)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(tcp: TcpStream, protocol: MailProtocol, seen: &AtomicBool) -> std::io::Result<()> {
    let mut reader = BufReader::new(tcp);
    let greeting: &[u8] = match protocol {
        MailProtocol::Imap => b"* OK IMAP ready\r\n",
        MailProtocol::Smtp => b"220 smtp.test ESMTP ready\r\n",
        MailProtocol::Pop3 => b"+OK POP3 ready\r\n",
    };
    reader.get_mut().write_all(greeting).await?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (tag, verb) = match (protocol, words.as_slice()) {
            (MailProtocol::Imap, [tag, verb, ..]) => (*tag, verb.to_ascii_uppercase()),
            (_, [verb, ..]) => ("", verb.to_ascii_uppercase()),
            _ => ("", String::new()),
        };
        let answer = match (protocol, verb.as_str()) {
            (MailProtocol::Imap, "CAPABILITY") => {
                format!("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n{tag} OK done\r\n")
            }
            (MailProtocol::Smtp, "EHLO") => "250-smtp.test\r\n250 STARTTLS\r\n".into(),
            (MailProtocol::Pop3, "CAPA") => "+OK\r\nSTLS\r\nUIDL\r\n.\r\n".into(),
            (MailProtocol::Imap, "STARTTLS") => {
                format!("{tag} OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
            }
            (MailProtocol::Smtp, "STARTTLS") => "220 go ahead\r\n250 AUTH PLAIN\r\n".into(),
            (MailProtocol::Pop3, "STLS") => "+OK begin TLS\r\n+OK injected\r\n".into(),
            (MailProtocol::Imap, _) => format!("{tag} BAD unknown\r\n"),
            (MailProtocol::Smtp, _) => "500 unknown\r\n".into(),
            (MailProtocol::Pop3, _) => "-ERR unknown\r\n".into(),
        };
        reader.get_mut().write_all(answer.as_bytes()).await?;
        if verb == "STARTTLS" || verb == "STLS" {
            // A TLS ClientHello starts with the handshake record type, 0x16.
            let mut first = [0u8; 1];
            if reader.read(&mut first).await? == 1 && first[0] == 0x16 {
                seen.store(true, Ordering::SeqCst);
            }
            return Ok(());
        }
    }
}
