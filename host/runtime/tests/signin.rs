//! The 1.1 sign-in: the host performs the whole step (`net.connection.authenticate`)
//! and a secret goes only to the endpoints the plugin bound it to, once per
//! connection, before any ordinary command. Each attack is one of the `thief`
//! plugin's, run against a loopback echo peer that records what it got.

mod common;

use common::{account, load, runtime};
use mailroom_runtime::{CallError, Denial, Limits, OperatorGrant, ProviderError, Secret, Secrets};
use mailroom_test_support::{EchoServer, Mode, TestCa};

const PASSWORD: &str = "hunter2-Secret!";
const TOKEN: &str = "tok/8c1f+2e0d=x";

/// Run `attack` against a TLS echo peer; the plugin's report, the peer and
/// the denials recorded.
async fn thief(attack: &str) -> (String, EchoServer, Vec<Denial>) {
    let grant = OperatorGrant {
        private_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..OperatorGrant::all_declared()
    };
    thief_under(attack, &grant).await
}

/// The same under `grant`.
async fn thief_under(attack: &str, grant: &OperatorGrant) -> (String, EchoServer, Vec<Denial>) {
    let ca = TestCa::new();
    let server = EchoServer::start(&ca, Mode::Tls).await;
    let rt = runtime(Limits::default(), Some(ca.ca_file()));
    let plugin = load(&rt, "thief").await;
    let port = server.port.to_string();
    let mut secrets = Secrets::new();
    secrets.insert("password", Secret::new(PASSWORD));
    secrets.insert("token", Secret::new(TOKEN));
    let input = account(
        &[
            ("attack", attack),
            ("target_host", "localhost"),
            ("other_host", "127.0.0.1"),
            ("target_port", &port),
        ],
        secrets,
    );
    let mut run = rt.start(&plugin, &input, grant).await.expect("starts");
    let text = match run.verify().await {
        Err(CallError::Provider(ProviderError::Other(text))) => text,
        other => panic!("expected the plugin's report, got {other:?}"),
    };
    (text, server, run.denials())
}

fn got_secret(server: &EchoServer) -> bool {
    server
        .received()
        .iter()
        .any(|l| l.contains(PASSWORD) || l.contains(TOKEN))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_signs_in_and_hands_back_the_answer_blanked() {
    let (text, server, denials) = thief("login").await;
    // The echo peer answers the LOGIN line with itself, which ends the step
    // (it starts with the tag); the plugin sees it with the password blanked.
    let stars = "*".repeat(PASSWORD.len() + 2);
    assert_eq!(
        text,
        format!("answered \"A1 LOGIN \\\"bob\\\" {stars}\\r\\n\"")
    );
    assert_eq!(
        server.received(),
        vec![format!("A1 LOGIN \"bob\" \"{PASSWORD}\"")]
    );
    assert!(denials.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_goes_only_to_an_endpoint_it_is_bound_to() {
    let (text, server, denials) = thief("unbound-endpoint").await;
    assert!(
        text.contains("refused NetError::Denied") && text.contains("not bound to this endpoint"),
        "{text}"
    );
    assert!(!got_secret(&server), "{:?}", server.received());
    assert_eq!(denials.len(), 1);
    assert!(denials[0].attempted.contains("tls://127.0.0.1:"));

    let (text, server, _) = thief("unbound-secret").await;
    assert!(text.contains("not bound to this endpoint"), "{text}");
    assert!(!got_secret(&server));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_sign_in_per_connection_and_only_before_other_commands() {
    let (text, server, denials) = thief("twice").await;
    assert!(text.starts_with("first: answered"), "{text}");
    assert!(
        text.contains("second: refused") && text.contains("already written"),
        "{text}"
    );
    let with_secret = server
        .received()
        .into_iter()
        .filter(|l| l.contains(PASSWORD))
        .count();
    assert_eq!(with_secret, 1);
    assert_eq!(denials.len(), 1);

    let (text, server, _) = thief("after-commands").await;
    assert!(
        text.contains("refused") && text.contains("carried `A1 SELECT INBOX`"),
        "{text}"
    );
    assert!(!got_secret(&server));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_name_cannot_carry_a_second_command() {
    let (text, server, _) = thief("injected-user").await;
    assert!(
        text.contains("Denied") && text.contains("line break"),
        "{text}"
    );
    assert!(server.received().is_empty(), "{:?}", server.received());
}

/// The IMAP plugin against a server whose answer to STARTTLS comes with an
/// injected `* CAPABILITY` line: it refuses to go on (for IMAP and, sending,
/// for SMTP), and never starts TLS on top of it.
#[tokio::test(flavor = "multi_thread")]
async fn the_imap_plugin_refuses_plaintext_injected_after_starttls() {
    use mailroom_runtime::Outgoing;
    use mailroom_test_support::{Injector, MailProtocol};
    let imap = Injector::start(MailProtocol::Imap).await;
    let smtp = Injector::start(MailProtocol::Smtp).await;
    let rt = runtime(Limits::default(), None);
    let plugin = load(&rt, "imap").await;
    let (imap_port, smtp_port) = (imap.port.to_string(), smtp.port.to_string());
    let mut secrets = Secrets::new();
    secrets.insert("password", Secret::new(PASSWORD));
    let input = account(
        &[
            ("imap_host", "localhost"),
            ("imap_port", &imap_port),
            ("imap_security", "starttls"),
            ("smtp_host", "localhost"),
            ("smtp_port", &smtp_port),
            ("smtp_security", "starttls"),
        ],
        secrets,
    );
    let grant = OperatorGrant {
        private_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..OperatorGrant::all_declared()
    };
    let mut run = rt.start(&plugin, &input, &grant).await.expect("starts");
    let err = run.verify().await.unwrap_err().to_string();
    assert!(err.contains("injected plaintext"), "{err}");
    assert!(!imap.handshake_attempted());

    let mut run = rt.start(&plugin, &input, &grant).await.expect("starts");
    let message = Outgoing {
        sender: "me@example.com".into(),
        recipients: vec!["you@example.com".into()],
        raw: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
    };
    let err = run.send(&message).await.unwrap_err().to_string();
    assert!(err.contains("injected plaintext"), "{err}");
    assert!(!smtp.handshake_attempted());
}

/// A private network granted to one plugin (`MAILROOM_GRANT=thief:private=…`)
/// is that plugin's alone: the hostile plugin, under the same grant, is
/// refused the same loopback server, and the refusal it reports names no address.
#[tokio::test(flavor = "multi_thread")]
async fn a_grant_to_one_plugin_is_not_a_grant_to_another() {
    let mut grant = OperatorGrant::all_declared();
    grant.add("thief:private=127.0.0.0/8").unwrap();
    let (text, _server, _) = thief_under("login", &grant).await;
    assert!(text.starts_with("answered"), "{text}");

    let ca = TestCa::new();
    let server = EchoServer::start(&ca, Mode::Tls).await;
    let rt = runtime(Limits::default(), Some(ca.ca_file()));
    let hostile = load(&rt, "hostile").await;
    let port = server.port.to_string();
    let input = account(
        &[
            ("attack", "private"),
            ("target_host", "localhost"),
            ("target_port", &port),
        ],
        Secrets::new(),
    );
    let mut run = rt.start(&hostile, &input, &grant).await.expect("starts");
    let err = run.verify().await.unwrap_err().to_string();
    assert!(err.contains("loopback address"), "{err}");
    let shown = mailroom_runtime::without_addresses(&err);
    assert!(!shown.contains("127.0.0.1"), "{shown}");
}
