//! Shared fixtures for Mailroom's tests: where the built plugins are, a
//! throw-away certificate authority, and small loopback peers that echo what
//! they receive (to prove that a secret reached the server but never came
//! back to the plugin). Peers bind 127.0.0.1 on a free port and stop when
//! dropped.
//!
//! Test code only: never a dependency of the host.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub mod corpus;
pub mod db;
pub mod dovecot;
pub mod injector;
pub mod postfix;

pub use injector::{Injector, MailProtocol};

/// The path of a plugin component built by `scripts/build-plugins`.
pub fn plugin(name: &str) -> PathBuf {
    built("plugins", name)
}

/// The path of a plugin component built with Debian's toolchain (`make plugins-debian`).
pub fn debian_plugin(name: &str) -> PathBuf {
    built("plugins-debian", name)
}

/// The repository root: the nearest directory above the working directory
/// (a package root, under `cargo test`) that holds `wit/provider.wit`. Found
/// at run time, because compiled paths go stale when one cargo target
/// directory serves several checkouts.
pub fn repo_root() -> PathBuf {
    let cwd = std::env::current_dir().expect("a working directory");
    cwd.ancestors()
        .find(|dir| dir.join("wit/provider.wit").is_file())
        .unwrap_or_else(|| panic!("no wit/provider.wit above {}", cwd.display()))
        .to_path_buf()
}

fn built(dir: &str, name: &str) -> PathBuf {
    let path = repo_root()
        .join("build")
        .join(dir)
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make {dir}` (make test does)",
        path.display()
    );
    path
}

/// The bytes of a built plugin.
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    std::fs::read(plugin(name)).expect("reading a built plugin")
}

/// Build `n` of a plugin: its component with a custom section
/// `mailroom-build` = `n` appended. It behaves as the plugin does, but its
/// digest is its own, so the host compiles, checks and swaps it in as a
/// new version (as it would a rebuild from changed source).
pub fn plugin_build(name: &str, n: u32) -> Vec<u8> {
    let mut bytes = plugin_bytes(name);
    let section_name = b"mailroom-build";
    let payload = n.to_string().into_bytes();
    let mut body = leb128(section_name.len());
    body.extend_from_slice(section_name);
    body.extend_from_slice(&payload);
    bytes.push(0); // a custom section
    bytes.extend(leb128(body.len()));
    bytes.extend(body);
    bytes
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A certificate authority made for one test, with a server certificate for
/// `localhost` and `127.0.0.1`, and the CA written to a PEM file.
pub struct TestCa {
    dir: tempfile::TempDir,
    acceptor: TlsAcceptor,
}

impl TestCa {
    /// Make a CA and a server certificate signed by it.
    pub fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        let server = server_params
            .signed_by(&server_key, &ca)
            .expect("server certificate");

        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("writing ca.pem");
        std::fs::write(dir.path().join("server.pem"), server.pem()).expect("writing server.pem");
        std::fs::write(
            dir.path().join("server-key.pem"),
            server_key.serialize_pem(),
        )
        .expect("writing server-key.pem");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(server.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .expect("server TLS config");
        TestCa {
            dir,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }

    /// The CA certificate as a PEM file, for the host's extra-CA setting.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (for `localhost` and `127.0.0.1`) as a PEM
    /// file, for peers that read their certificate from disk (Dovecot).
    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server certificate's private key as a PEM file.
    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// How an echo peer starts its connections.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// TLS from the first byte.
    Tls,
    /// Plain; `STARTTLS` upgrades.
    Plain,
    /// Plain; the answer to `STARTTLS` comes with an injected
    /// `* CAPABILITY` line in the same segment, as a man in the middle's would.
    PlainInjecting,
    /// HTTPS: answers one request with the request's head as the body.
    Https,
}

/// A loopback peer that echoes each line (`ECHO …`) back and records it.
pub struct EchoServer {
    /// The port it listens on.
    pub port: u16,
    received: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl EchoServer {
    /// Start one on 127.0.0.1.
    pub async fn start(ca: &TestCa, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let acceptor = ca.acceptor.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), log.clone());
                tokio::spawn(async move {
                    let _ = serve(tcp, acceptor, mode, log).await;
                });
            }
        });
        EchoServer {
            port,
            received,
            task,
        }
    }

    /// Every line or request head the peer received, as sent on the wire.
    pub fn received(&self) -> Vec<String> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    mode: Mode,
    log: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    match mode {
        Mode::Tls => echo_lines(acceptor.accept(tcp).await?, mode, &log)
            .await
            .map(|_| ()),
        Mode::Https => http_echo(acceptor.accept(tcp).await?, &log).await,
        Mode::Plain | Mode::PlainInjecting => {
            if let Some(tcp) = echo_lines(tcp, mode, &log).await? {
                echo_lines(acceptor.accept(tcp).await?, Mode::Tls, &log).await?;
            }
            Ok(())
        }
    }
}

/// Echo lines until EOF; on `STARTTLS`, answer `OK` and hand the stream back.
async fn echo_lines<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    mode: Mode,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<Option<S>> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        if let Ok(mut l) = log.lock() {
            l.push(line.trim_end().to_string());
        }
        // `STARTTLS` (SMTP) or `TAG STARTTLS` (IMAP).
        if line.trim_end().ends_with("STARTTLS") {
            let answer: &[u8] = if mode == Mode::PlainInjecting {
                b"OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN LOGINDISABLED\r\n"
            } else {
                b"OK\r\n"
            };
            reader.get_mut().write_all(answer).await?;
            return Ok(Some(reader.into_inner()));
        }
        reader.get_mut().write_all(line.as_bytes()).await?;
    }
}

/// `text` as a JSON string, escaped as JSON encoders do.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` percent-encoded, all but letters, digits and `-._~`.
fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Answer one HTTP request: the request head as the body (or, under
/// `/upper`, `/json` and `/url`, transformed as echoing servers do; under
/// `/trailer`, the `Authorization` header in a trailer), and the
/// `Authorization` header reflected in `x-echo-authorization`; except
/// `GET /redirect`, answered with a redirect to `https://undeclared.example.com/`.
async fn http_echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        if stream.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if let Ok(mut l) = log.lock() {
        l.push(head.clone());
    }
    let auth = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("authorization: ")
                .or_else(|| l.strip_prefix("Authorization: "))
        })
        .unwrap_or("")
        .to_string();
    if head.starts_with("GET /redirect ") {
        let response = "HTTP/1.1 302 Found\r\nlocation: https://undeclared.example.com/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        stream.write_all(response.as_bytes()).await?;
        return stream.shutdown().await;
    }
    let path = head.split(' ').nth(1).unwrap_or("/");
    if path == "/trailer" {
        // The Authorization header in a trailer of a chunked body.
        let response = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-echo\r\nconnection: close\r\n\r\n2\r\nok\r\n0\r\nx-echo: {auth}\r\n\r\n"
        );
        stream.write_all(response.as_bytes()).await?;
        return stream.shutdown().await;
    }
    // The head as a server would echo it: as it is, upper-cased, in a JSON
    // string, or URL-encoded.
    let body = match path {
        "/upper" => head.to_ascii_uppercase(),
        "/json" => format!("{{\"head\":{}}}", json_string(&head)),
        "/url" => url_encoded(&head),
        _ => head.clone(),
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-echo-authorization: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
