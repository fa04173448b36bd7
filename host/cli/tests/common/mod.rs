//! What the CLI's end-to-end tests share: a Mailroom home with its own
//! database, and a server stopped by PID however a test ends.
#![allow(dead_code, reason = "each test binary uses only some of these helpers")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailroom_test_support::db::{Kind, TestDb};
use mailroom_test_support::plugin;
use serde_json::Value;

pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const LOGIN_PASSWORD: &str = "login-pw-Secret-42";

/// One Mailroom home with its database.
pub struct Site {
    pub home: tempfile::TempDir,
    pub db: TestDb,
}

impl Site {
    pub async fn new(kind: Kind) -> Site {
        let site = Site {
            home: tempfile::tempdir().unwrap(),
            db: TestDb::new(kind).await,
        };
        let out = site.run(
            &["plugin", "install", plugin("scripted").to_str().unwrap()],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        site
    }

    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mailroom"));
        c.args(args)
            .env("MAILROOM_HOME", self.home.path())
            .env(
                "MAILROOM_CACHE",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
            )
            .env("MAILROOM_DATABASE_URL", self.db.url())
            .env("MAILROOM_SECRET_KEY", KEY)
            .env("MAILROOM_LOG", "debug");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        self.command(args, env).output().expect("mailroom runs")
    }

    /// `mailroom user add …`: the id and, when asked, the token.
    pub fn user(&self, email: &str, role: &str, token: bool) -> (i64, Option<String>) {
        let mut args = vec![
            "user",
            "add",
            "--email",
            email,
            "--role",
            role,
            "--password-env",
            "PW",
        ];
        if token {
            args.extend(["--token", "crm"]);
        }
        let out = self.run(&args, &[("PW", LOGIN_PASSWORD)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let id = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("token "))
            .map(str::to_string);
        (id, token)
    }

    pub fn log(&self) -> PathBuf {
        self.home.path().join("serve.log")
    }

    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// `mailroom serve` with extra environment (grants, intervals, CA).
    pub fn serve_with(&self, env: &[(&str, &str)]) -> Server {
        let log = std::fs::File::create(self.log()).unwrap();
        let child = self
            .command(
                &["serve", "--listen", "127.0.0.1:0", "--node", "api-test"],
                env,
            )
            .stderr(Stdio::from(log))
            .stdout(Stdio::null())
            .spawn()
            .expect("serve starts");
        let mut server = Server {
            process: Process(child),
            base: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(self.log()).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.strip_prefix("mailroom: serving on "))
            {
                server.base = addr.trim().to_string();
                return server;
            }
            assert!(Instant::now() < deadline, "serve did not start: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The running server; stopped by PID however the test ends.
pub struct Server {
    pub process: Process,
    pub base: String,
}

/// A child process, killed (SIGKILL) and reaped however the test ends.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The HTTP API of a running server.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    /// One call with a bearer token; the status and the JSON (or text) body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}
