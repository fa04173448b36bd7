//! Each hostile plugin attack is contained with its own specific error, and
//! another plugin keeps working in the same host afterwards (or meanwhile).

mod common;

use std::time::{Duration, Instant};

use common::{hostile, load, runtime, scripted_sync};
use mailroom_runtime::{CallError, Denial, Limits, OperatorGrant, ProviderError, Secret, Secrets};
use mailroom_test_support::{EchoServer, Mode, TestCa};

const PASSWORD: &str = "hunter2-Secret!";
/// With characters that JSON and URL encoding change.
const TOKEN: &str = "tok/8c1f+2e0d=x";

fn secrets() -> Secrets {
    let mut s = Secrets::new();
    s.insert("password", Secret::new(PASSWORD));
    s.insert("token", Secret::new(TOKEN));
    s
}

fn loopback(plaintext_credentials: bool) -> OperatorGrant {
    OperatorGrant {
        private_networks: vec!["127.0.0.0/8".parse().unwrap()],
        plaintext_credentials,
        ..OperatorGrant::default()
    }
}

/// Run one attack through `verify` and return the error the host reports.
async fn attack(
    limits: Limits,
    ca: Option<&TestCa>,
    settings: &[(&str, &str)],
    grant: OperatorGrant,
) -> CallError {
    attack_recorded(limits, ca, settings, grant).await.0
}

/// The same, with the denials the host recorded (and counted in the
/// plugin's health) during the call.
async fn attack_recorded(
    limits: Limits,
    ca: Option<&TestCa>,
    settings: &[(&str, &str)],
    grant: OperatorGrant,
) -> (CallError, Vec<Denial>) {
    let rt = runtime(limits, ca.map(TestCa::ca_file));
    let mut run = hostile(&rt, settings, secrets(), &grant).await;
    let err = run.verify().await.expect_err("the attack must not succeed");
    let denials = run.denials();
    // Whatever happened, the host goes on serving other plugins.
    let scripted = load(&rt, "scripted").await;
    assert_eq!(scripted_sync(&rt, &scripted, 20).await, 20);
    (err, denials)
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

/// A secret attack against a TLS echo peer on `localhost`, with extra
/// settings: the plugin's report, the peer, and the denials recorded.
async fn secret_attack(
    mode: Mode,
    name: &str,
    extra: &[(&str, &str)],
) -> (String, EchoServer, Vec<Denial>) {
    let ca = TestCa::new();
    let server = EchoServer::start(&ca, mode).await;
    let port = server.port.to_string();
    let mut settings = vec![
        ("attack", name),
        ("target_host", "localhost"),
        ("target_port", port.as_str()),
    ];
    settings.extend_from_slice(extra);
    let (err, denials) =
        attack_recorded(Limits::default(), Some(&ca), &settings, loopback(false)).await;
    (reported(err), server, denials)
}

/// Whether anything the peer received holds the password.
fn got_password(server: &EchoServer) -> bool {
    server.received().iter().any(|l| l.contains(PASSWORD))
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
    let stars = "*".repeat(PASSWORD.len() + 2);
    assert_eq!(text, format!("echo: A1 LOGIN bob {stars}\r\n"));
    // The server did get the real password: the plugin used it without reading it.
    assert_eq!(
        server.received(),
        vec![format!("A1 LOGIN bob \"{PASSWORD}\"")]
    );
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
        format!("echo: A1 LOGIN bob {}\r\n", "*".repeat(PASSWORD.len() + 2))
    );
    assert_eq!(
        server.received(),
        vec![
            "A0 STARTTLS".to_string(),
            format!("A1 LOGIN bob \"{PASSWORD}\"")
        ]
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

#[tokio::test(flavor = "multi_thread")]
async fn a_password_cannot_be_made_the_body_of_a_mail_to_a_third_party() {
    let (text, server, denials) = secret_attack(Mode::Tls, "smtp-exfil", &[]).await;
    // Around the secret: not a sign-in step.
    assert!(
        text.contains("around: refused: NetError::Denied(")
            && text.contains("is not a sign-in step"),
        "{text}"
    );
    // Written first, the mail makes the connection unfit for any secret.
    assert!(
        text.contains("after: refused: NetError::Denied(") && text.contains("carried `MAIL FROM"),
        "{text}"
    );
    assert!(!got_password(&server), "{:?}", server.received());
    // Both refusals are recorded (and so counted in the plugin's health).
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert!(denials[0].attempted.contains("writing secret `password`"));
    assert!(denials[1].would_allow.contains("a sign-in step"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_goes_once_per_connection_and_never_as_a_mailbox_name() {
    let (text, server, denials) = secret_attack(Mode::Tls, "imap-create", &[]).await;
    let stars = "*".repeat(PASSWORD.len() + 2);
    assert!(
        text.contains(&format!("login: A1 LOGIN bob {stars}")),
        "{text}"
    );
    assert!(
        text.contains("create: refused: NetError::Denied(") && text.contains("already written"),
        "{text}"
    );
    let with_password: Vec<_> = server
        .received()
        .into_iter()
        .filter(|l| l.contains(PASSWORD))
        .collect();
    assert_eq!(with_password, vec![format!("A1 LOGIN bob \"{PASSWORD}\"")]);
    assert_eq!(denials.len(), 1, "{denials:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_left_open_before_the_sign_in_is_refused() {
    let (text, server, denials) = secret_attack(Mode::Tls, "unfinished-line", &[]).await;
    assert!(text.contains("unfinished line"), "{text}");
    assert!(!got_password(&server), "{:?}", server.received());
    assert_eq!(denials.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_over_injected_plaintext_is_refused() {
    let (text, _server, _) = secret_attack(Mode::PlainInjecting, "starttls-inject", &[]).await;
    assert!(
        text.contains("starttls: NetError::Tls(") && text.contains("injected plaintext"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_basic_credential_echoed_back_is_blanked_whatever_the_user_name() {
    use base64::Engine as _;
    for user in ["bob", "carol", "b", "dave@example.com"] {
        let (text, server, _) = secret_attack(
            Mode::Https,
            "basic-http",
            &[("basic_host", "127.0.0.1"), ("user", user)],
        )
        .await;
        let sent = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"));
        assert!(
            server.received().join("\n").contains(&sent),
            "the server gets the credential"
        );
        // No run of base64 the plugin read decodes to the password.
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c))) {
            for skip in 0..4.min(word.len()) {
                let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(word[skip..].trim_end_matches('=').as_bytes())
                    .unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains("Secret"),
                    "{user}: {text}"
                );
            }
        }
        assert!(
            text.contains("x-echo-authorization: Basic ****"),
            "{user}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_echoed_upper_cased_json_escaped_or_url_encoded_is_blanked() {
    let json = TOKEN.replace('/', "\\/");
    let url = TOKEN
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    for path in ["/upper", "/json", "/url"] {
        let (text, server, _) = secret_attack(Mode::Https, "secret-http", &[("path", path)]).await;
        assert!(server.received().join("\n").contains(TOKEN));
        let lower = text.to_ascii_lowercase();
        for form in [TOKEN, json.as_str(), url.as_str()] {
            assert!(
                !lower.contains(&form.to_ascii_lowercase()),
                "{path}: {text}"
            );
        }
        assert!(text.contains("****"), "{path}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_in_a_response_trailer_is_blanked() {
    let (text, _server, _) = secret_attack(Mode::Https, "http-trailer", &[]).await;
    let stars = "*".repeat(TOKEN.len());
    assert!(text.contains(&format!("x-echo: Bearer {stars}")), "{text}");
}

/// As many looping plugins as worker threads, and one more: each gives its
/// worker back at every epoch tick, so another account's sync, itself a task
/// needing a worker, completes while every loop is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_plugins_on_every_worker_do_not_starve_another_account() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let limits = Limits {
        call_timeout: Duration::from_secs(8),
        ..Limits::default()
    };
    let rt = runtime(limits, None);
    let scripted = load(&rt, "scripted").await;
    let ended = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    for _ in 0..3 {
        let (rt, ended) = (rt.clone(), ended.clone());
        let mut run = hostile(
            &rt,
            &[("attack", "loop")],
            Secrets::new(),
            &OperatorGrant::all_declared(),
        )
        .await;
        loops.push(tokio::spawn(async move {
            let out = run.verify().await;
            ended.fetch_add(1, Ordering::SeqCst);
            out
        }));
    }
    let other = {
        let rt = rt.clone();
        tokio::spawn(async move { scripted_sync(&rt, &scripted, 50).await })
    };
    assert_eq!(other.await.expect("the sync task"), 50);
    assert_eq!(
        ended.load(Ordering::SeqCst),
        0,
        "the other account synced while every loop still ran"
    );
    for l in loops {
        let out = l.await.expect("a loop task");
        assert!(matches!(out, Err(CallError::Timeout(_))), "{out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_hoarding_host_resources_is_stopped_at_the_table_limit() {
    let err = attack(
        Limits::default(),
        None,
        &[("attack", "resources")],
        OperatorGrant::all_declared(),
    )
    .await;
    // It never holds its 100,000 fields: the run ends at the table's limit.
    assert!(matches!(err, CallError::Crashed(_)), "{err:?}");
    assert!(!err.to_string().contains("held 100000"), "{err}");
}
