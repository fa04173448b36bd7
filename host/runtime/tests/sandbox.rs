//! Each hostile plugin attack is contained with its own specific error, and
//! another plugin keeps working in the same host afterwards (or meanwhile).

mod common;

use std::time::{Duration, Instant};

use common::{hostile, load, runtime, scripted_sync};
use mailroom_runtime::{CallError, Limits, OperatorGrant, ProviderError, Secret, Secrets};
use mailroom_test_support::{EchoServer, Mode, TestCa};

const PASSWORD: &str = "hunter2-Secret!";
const TOKEN: &str = "tok-8c1f2e0d";

fn secrets() -> Secrets {
    let mut s = Secrets::new();
    s.insert("password", Secret::new(PASSWORD));
    s.insert("token", Secret::new(TOKEN));
    s
}

fn loopback(plaintext_credentials: bool) -> OperatorGrant {
    OperatorGrant {
        endpoints: None,
        private_networks: vec!["127.0.0.0/8".parse().unwrap()],
        plaintext_credentials,
        origins: Vec::new(),
    }
}

/// Run one attack through `verify` and return the error the host reports.
async fn attack(
    limits: Limits,
    ca: Option<&TestCa>,
    settings: &[(&str, &str)],
    grant: OperatorGrant,
) -> CallError {
    let rt = runtime(limits, ca.map(TestCa::ca_file));
    let mut run = hostile(&rt, settings, secrets(), &grant).await;
    let err = run.verify().await.expect_err("the attack must not succeed");
    // Whatever happened, the host goes on serving other plugins.
    let scripted = load(&rt, "scripted").await;
    assert_eq!(scripted_sync(&rt, &scripted, 20).await, 20);
    err
}

/// The text a plugin reported in an `other` error.
fn reported(err: CallError) -> String {
    match err {
        CallError::Provider(ProviderError::Other(text)) => text,
        other => panic!("expected the plugin's own report, got {other:?}"),
    }
}

/// What the plugin reports of an attack that needs no peer, under the defaults.
async fn report_of(name: &str) -> String {
    reported(
        attack(
            Limits::default(),
            None,
            &[("attack", name)],
            OperatorGrant::all_declared(),
        )
        .await,
    )
}

/// Run one attack against a fresh loopback echo peer at `host`, with the
/// test CA trusted or not; the plugin's report and the peer (to see what it got).
async fn attack_peer(
    mode: Mode,
    name: &str,
    host: &str,
    trusted: bool,
    grant: OperatorGrant,
    limits: Limits,
) -> (String, EchoServer) {
    let ca = TestCa::new();
    let server = EchoServer::start(&ca, mode).await;
    let port = server.port.to_string();
    let settings = [
        ("attack", name),
        ("target_host", host),
        ("target_port", port.as_str()),
    ];
    let trusted = trusted.then_some(&ca);
    (
        reported(attack(limits, trusted, &settings, grant).await),
        server,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_times_out_while_another_plugin_keeps_syncing() {
    let limits = Limits {
        call_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let rt = runtime(limits, None);
    let scripted = load(&rt, "scripted").await;
    let mut run = hostile(
        &rt,
        &[("attack", "loop")],
        Secrets::new(),
        &OperatorGrant::all_declared(),
    )
    .await;
    let started = Instant::now();
    let (looped, synced) = tokio::join!(run.verify(), scripted_sync(&rt, &scripted, 50));
    assert!(
        matches!(looped, Err(CallError::Timeout(d)) if d == Duration::from_secs(1)),
        "{looped:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(synced, 50);
    // The trapped instance is never entered again.
    let again = run.verify().await;
    assert!(
        matches!(again, Err(CallError::Ended(ref why)) if why.contains("timed out")),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let err = attack(
        limits,
        None,
        &[("attack", "memory")],
        OperatorGrant::all_declared(),
    )
    .await;
    assert!(
        matches!(err, CallError::MemoryExceeded { limit } if limit == 32 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("memory limit of 33554432 bytes"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_reported_with_its_message() {
    let err = attack(
        Limits::default(),
        None,
        &[("attack", "panic")],
        OperatorGrant::all_declared(),
    )
    .await;
    assert!(
        matches!(err, CallError::Crashed(ref m) if m.contains("hostile panic: boom")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undeclared_host_is_denied_by_name_and_the_denial_is_recorded() {
    let rt = runtime(Limits::default(), None);
    let mut run = hostile(
        &rt,
        &[("attack", "undeclared")],
        Secrets::new(),
        &OperatorGrant::all_declared(),
    )
    .await;
    let text = reported(run.verify().await.unwrap_err());
    assert!(
        text.contains("Denied") && text.contains("does not declare"),
        "{text}"
    );
    let denials = run.denials();
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].attempted, "tls://undeclared.example.com:993");
    assert!(
        denials[0]
            .would_allow
            .contains("declaring `tls://undeclared.example.com:993`")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_to_an_undeclared_host_is_denied() {
    let text = report_of("http-undeclared").await;
    assert!(text.contains("HttpRequestDenied"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_name_that_resolves_to_loopback_is_denied_unless_granted() {
    let public_only = OperatorGrant::all_declared();
    let (text, _) = attack_peer(
        Mode::Tls,
        "private",
        "localhost",
        true,
        public_only,
        Limits::default(),
    )
    .await;
    assert!(
        text.contains("Denied") && text.contains("a loopback address"),
        "{text}"
    );
    assert!(text.contains("a grant of the private network"), "{text}");

    // With the operator's grant of 127.0.0.0/8 the same plugin gets through.
    let (text, _) = attack_peer(
        Mode::Tls,
        "private",
        "localhost",
        true,
        loopback(false),
        Limits::default(),
    )
    .await;
    assert_eq!(text, "connected to a private address");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_filesystem_shows_no_directory_at_all() {
    let text = report_of("filesystem").await;
    assert!(
        text.starts_with("preopens: 0; read /etc/passwd: Err("),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_sockets_and_name_lookups_are_refused() {
    let text = report_of("sockets").await;
    let (tcp, dns) = text.split_once("; dns: ").expect("both reported");
    assert!(
        tcp.starts_with("tcp: Err(") && tcp.contains("access-denied"),
        "{text}"
    );
    assert!(
        dns.starts_with("Err(") && dns.contains("permanent-resolver-failure"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_environment_is_empty() {
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("MAILROOM_TEST_HOST_SECRET", "must-not-leak") };
    let text = report_of("environment").await;
    assert_eq!(text, "env: 0 vars []; args: []");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_result_is_refused() {
    let limits = Limits {
        result_bytes: 1 << 20,
        ..Limits::default()
    };
    let rt = runtime(limits, None);
    let size = (4 << 20).to_string();
    let mut run = hostile(
        &rt,
        &[("size", &size)],
        Secrets::new(),
        &OperatorGrant::all_declared(),
    )
    .await;
    run.open().await.unwrap();
    let err = run.sync(None, &common::window()).await.unwrap_err();
    assert!(
        matches!(err, CallError::ResultTooLarge { size, limit } if size > 4 << 20 && limit == 1 << 20),
        "{err:?}"
    );
    assert!(matches!(
        run.sync(None, &common::window()).await,
        Err(CallError::Ended(_))
    ));
    let scripted = load(&rt, "scripted").await;
    assert_eq!(scripted_sync(&rt, &scripted, 5).await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_is_never_among_the_settings_a_plugin_gets() {
    let text = reported(
        attack(
            Limits::default(),
            None,
            &[("attack", "settings"), ("password", PASSWORD)],
            OperatorGrant::all_declared(),
        )
        .await,
    );
    assert!(!text.contains(PASSWORD) && !text.contains(TOKEN), "{text}");
    assert!(text.contains(r#"secrets: ["password", "token"]"#), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_is_not_written_in_clear_without_the_operators_consent() {
    let (text, server) = attack_peer(
        Mode::Plain,
        "secret-plain",
        "127.0.0.1",
        true,
        loopback(false),
        Limits::default(),
    )
    .await;
    assert!(
        text.contains("write-secret refused") && text.contains("not encrypted"),
        "{text}"
    );
    assert!(server.received().iter().all(|l| !l.contains(PASSWORD)));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_echoed_secret_comes_back_blanked() {
    let (text, server) = attack_peer(
        Mode::Plain,
        "secret-plain",
        "127.0.0.1",
        true,
        loopback(true),
        Limits::default(),
    )
    .await;
    let stars = "*".repeat(PASSWORD.len());
    assert_eq!(text, format!("echo: ECHO {stars}\r\n"));
    // The server did get the real password: the plugin used it without reading it.
    assert_eq!(server.received(), vec![format!("ECHO {PASSWORD}")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_upgrades_with_the_extra_ca_and_the_secret_stays_hidden() {
    let (text, server) = attack_peer(
        Mode::Plain,
        "secret-starttls",
        "localhost",
        true,
        loopback(false),
        Limits::default(),
    )
    .await;
    assert_eq!(
        text,
        format!("echo: ECHO {}\r\n", "*".repeat(PASSWORD.len()))
    );
    assert_eq!(
        server.received(),
        vec!["STARTTLS".to_string(), format!("ECHO {PASSWORD}")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_to_a_server_the_host_does_not_trust_fails() {
    // No extra CA: the test CA is not trusted.
    let (text, _) = attack_peer(
        Mode::Tls,
        "private",
        "localhost",
        false,
        loopback(false),
        Limits::default(),
    )
    .await;
    assert!(
        text.contains("Tls(") && text.contains("UnknownIssuer"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_secret_name_is_refused() {
    let (text, _) = attack_peer(
        Mode::Tls,
        "secret-unknown",
        "localhost",
        true,
        loopback(false),
        Limits::default(),
    )
    .await;
    assert!(text.contains("UnknownSecret(\"no_such_secret\")"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_attaches_the_http_credential_and_blanks_its_echo() {
    let (text, server) = attack_peer(
        Mode::Https,
        "secret-http",
        "localhost",
        true,
        loopback(false),
        Limits::default(),
    )
    .await;
    let stars = "*".repeat(TOKEN.len());
    assert!(!text.contains(TOKEN), "{text}");
    assert!(
        text.contains(&format!("x-echo-authorization: Bearer {stars}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("authorization: Bearer {stars}")),
        "{text}"
    );
    let received = server.received().join("\n");
    assert!(
        received.contains(&format!("authorization: Bearer {TOKEN}")),
        "{received}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn net_streams_and_http_requests_share_the_connection_cap() {
    let limits = Limits {
        connections: 3,
        ..Limits::default()
    };
    for (mode, attack, expected) in [
        (
            Mode::Tls,
            "connections",
            "opened 3; then NetError::TooManyConnections",
        ),
        (
            Mode::Https,
            "http-connections",
            r#"held 3; refused ["ErrorCode::ConnectionLimitReached", "ErrorCode::ConnectionLimitReached"]"#,
        ),
    ] {
        let (text, _) = attack_peer(mode, attack, "localhost", true, loopback(false), limits).await;
        assert_eq!(text, expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_written_after_an_early_answer_does_not_fail() {
    // The peer answers on the request head; the plugin then writes its body.
    // The host keeps taking the body, so the plugin reads the answer rather
    // than a closed stream.
    let (text, _) = attack_peer(
        Mode::Https,
        "http-late-body",
        "localhost",
        true,
        loopback(false),
        Limits::default(),
    )
    .await;
    assert_eq!(text, "status 200; write ok; finish ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_redirect_hop_is_checked_again() {
    let (text, server) = attack_peer(
        Mode::Https,
        "http-redirect",
        "localhost",
        true,
        loopback(false),
        Limits::default(),
    )
    .await;
    assert_eq!(
        text,
        "302 to https://undeclared.example.com/; then ErrorCode::HttpRequestDenied"
    );
    assert_eq!(server.received().len(), 1);
}
