//! The `mailroom` command as an operator uses it.

use std::path::Path;
use std::process::{Command, Output};

use mailroom_test_support::{debian_plugin, plugin};

fn mailroom(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(args)
        .env("MAILROOM_HOME", home)
        // One compiled-component cache for all tests: each plugin compiles once.
        .env(
            "MAILROOM_CACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .env_remove("MAILROOM_LOG")
        .output()
        .expect("mailroom runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_describes_a_plugin() {
    let home = tempfile::tempdir().unwrap();
    let path = plugin("scripted");
    let out = mailroom(home.path(), &["plugin", "check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "name:        scripted",
        "version:     1.0.0",
        "contract:    mailroom:provider@1.1.0",
        "digest:      sha256:",
        "  password       Password                 secret",
        "  (none: this plugin gets no network)",
        "secrets (where each may go):",
        "  password       nowhere",
        "  mailroom:provider/log@1.1.0",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }

    let hostile = plugin("hostile");
    let out = mailroom(
        home.path(),
        &["plugin", "check", "--json", hostile.to_str().unwrap()],
    );
    assert!(out.status.success());
    let json = text(&out.stdout);
    assert!(
        json.contains(r#""template": "https://{target_host}:{target_port}""#),
        "{json}"
    );
    assert!(
        json.contains(r#""kind": "bearer""#) && json.contains(r#""secret_field": "token""#),
        "{json}"
    );
    // A 1.0 plugin declares no bindings: the operator sees the 1.0 rule spelled out.
    assert!(
        json.contains(r#""secret_bindings_declared": false"#),
        "{json}"
    );
    let described: serde_json::Value = serde_json::from_str(&json).unwrap();
    let token = described["secret_bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["secret"] == "token")
        .unwrap();
    assert!(
        token["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "https://{target_host}:{target_port}"),
        "{json}"
    );
}

/// Exit status 2 and exactly one line on stderr, containing `reason`.
fn assert_refused(out: &Output, reason: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(reason), "expected {reason:?} in {stderr:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn check_refuses_what_is_not_a_provider_plugin_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "hello").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let future = plugin("other-contract");
    for (file, reason) in [
        (text_file.as_path(), "not a WebAssembly file"),
        (core.as_path(), "a core WebAssembly module, not a component"),
        (
            future.as_path(),
            "implements mailroom:provider@3.0.0, but this host speaks mailroom:provider@1.1.0 (1.x) and mailroom:provider@2.1.0 (2.x)",
        ),
        (Path::new("/nonexistent.wasm"), "No such file"),
    ] {
        assert_refused(
            &mailroom(home.path(), &["plugin", "check", file.to_str().unwrap()]),
            reason,
        );
    }
}

#[test]
fn install_list_and_run() {
    let home = tempfile::tempdir().unwrap();
    let out = mailroom(home.path(), &["plugin", "list"]);
    assert!(text(&out.stdout).starts_with("no plugins installed"));

    for name in ["scripted", "hostile"] {
        let path = plugin(name);
        let out = mailroom(home.path(), &["plugin", "install", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with(&format!("installed {name} ")));
    }
    let list = text(&mailroom(home.path(), &["plugin", "list"]).stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("hostile") && lines[0].contains("6.6.6"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("scripted")
            && lines[1].contains("mailroom:provider@1.1.0")
            && lines[1].contains("sha256:"),
        "{list}"
    );

    let out = mailroom(
        home.path(),
        &[
            "plugin",
            "run",
            "scripted",
            "--set",
            "messages=120",
            "--set",
            "page_size=50",
            "--set",
            "span_days=100",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("page 1: 50 messages, 0 failed, progress 50 of ~120"),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("synced 120 messages (") && last.ends_with(" bytes) in 3 pages; 0 failed"),
        "{stdout}"
    );

    let out = mailroom(
        home.path(),
        &["plugin", "run", "scripted", "--set", "page_size=zero"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "mailroom: page_size: `zero` is not a whole number"
    );
}

/// What `plugin check` says of a plugin, without the parts a toolchain decides
/// (the digest, and the WASI interfaces its standard library imports).
fn described(home: &Path, file: &Path) -> String {
    let out = mailroom(home, &["plugin", "check", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let upto = stdout.find("imports:").unwrap_or(stdout.len());
    stdout[..upto]
        .lines()
        .filter(|l| !l.starts_with("digest:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn plugins_built_with_either_toolchain_behave_alike() {
    let home = tempfile::tempdir().unwrap();
    for name in ["scripted", "scripted-next", "hostile"] {
        assert_eq!(
            described(home.path(), &plugin(name)),
            described(home.path(), &debian_plugin(name)),
            "{name}"
        );
    }
    let scripted = debian_plugin("scripted");
    let out = mailroom(
        home.path(),
        &[
            "plugin",
            "run",
            scripted.to_str().unwrap(),
            "--set",
            "messages=30",
            "--set",
            "span_days=100",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("synced 30 messages"));
    let hostile = debian_plugin("hostile");
    for (attack, expected) in [
        ("panic", "hostile panic: boom"),
        ("environment", "env: 0 vars []"),
        ("filesystem", "preopens: 0; read /etc/passwd: Err("),
    ] {
        let out = mailroom(
            home.path(),
            &[
                "plugin",
                "run",
                hostile.to_str().unwrap(),
                "--set",
                &format!("attack={attack}"),
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(expected),
            "{attack}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn serve_lists_the_installed_plugins() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;

    let home = tempfile::tempdir().unwrap();
    let scripted = plugin("scripted");
    assert!(
        mailroom(
            home.path(),
            &["plugin", "install", scripted.to_str().unwrap()]
        )
        .status
        .success()
    );
    /// Stops the server (by its PID) however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("MAILROOM_HOME", home.path())
        .env(
            "MAILROOM_CACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = server.stderr.take().unwrap();
    let server = Stop(server);
    let mut first = String::new();
    BufReader::new(stderr).read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("mailroom: serving on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let health = get("/healthz");
    let plugins = get("/api/plugins");
    drop(server);
    assert!(
        health.starts_with("HTTP/1.0 200") && health.ends_with("ok"),
        "{health}"
    );
    assert!(
        plugins.contains(r#""name":"scripted""#) && plugins.contains(r#""version":"1.0.0""#),
        "{plugins}"
    );
}
