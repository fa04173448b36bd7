//! What the CLI's end-to-end tests share: a Mailroom home with its own
//! database, and a server stopped by PID however a test ends.
#![allow(dead_code, reason = "each test binary uses only some of these helpers")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use mailroom_test_support::db::{Kind, TestDb};
use mailroom_test_support::plugin;
use serde_json::Value;

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A plain message whose Message-ID follows from its subject.
pub fn letter(from: &str, to: &str, subject: &str, at: i64) -> Vec<u8> {
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(at as u64));
    format!(
        "Message-ID: <{}@mailroom.test>\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: {date}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAbout {subject}.\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

/// The mailbox the Microsoft 365 and Exchange tests both start from,
/// delivered into an emulator with `deliver(folder, raw, received_at) -> id`:
/// `dave`'s mail to `carol` just outside the year, just inside it and
/// recent, `carol`'s reply in Sent Items, and 60 fillers from a stranger.
/// The recent message's id.
pub fn seed_mailbox(
    carol: &str,
    dave: &str,
    t0: i64,
    deliver: impl Fn(&str, &[u8], i64) -> String,
) -> String {
    const DAY: i64 = 86_400;
    deliver(
        "inbox",
        &letter(dave, carol, "too old", t0 - 366 * DAY),
        t0 - 366 * DAY,
    );
    deliver(
        "inbox",
        &letter(dave, carol, "just in", t0 - 364 * DAY),
        t0 - 364 * DAY,
    );
    let recent = deliver(
        "inbox",
        &letter(dave, carol, "recent", t0 - 2 * DAY),
        t0 - 2 * DAY,
    );
    deliver(
        "sentitems",
        &letter(carol, dave, "we wrote", t0 - DAY),
        t0 - DAY,
    );
    for i in 0..60 {
        let at = t0 - 10 * DAY - i * 3600;
        deliver("inbox", &letter("y@stranger.test", carol, "filler", at), at);
    }
    recent
}

/// `mailroom plugin build plugins/pop3` (componentize-py) into `dir`: the component.
pub fn build_pop3(dir: &Path) -> PathBuf {
    let out = dir.join("pop3.wasm");
    let run = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["plugin", "build"])
        .arg(mailroom_test_support::repo_root().join("plugins/pop3"))
        .arg("--out")
        .arg(&out)
        .env("MAILROOM_HOME", dir)
        .output()
        .expect("mailroom runs");
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

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
        site.install("scripted");
        site
    }

    /// `mailroom plugin install` of a built plugin.
    pub fn install(&self, name: &str) {
        let out = self.run(&["plugin", "install", plugin(name).to_str().unwrap()], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `mailroom serve` for a test Dovecot on loopback: its CA trusted,
    /// loopback granted, syncing every two seconds, retrying after one.
    pub fn serve_for(&self, dovecot: &mailroom_test_support::dovecot::Dovecot) -> Server {
        let ca = dovecot.ca.ca_file();
        self.serve_with(&[
            ("MAILROOM_EXTRA_CA", ca.to_str().unwrap()),
            ("MAILROOM_GRANT_PRIVATE", "127.0.0.0/8"),
            ("MAILROOM_SYNC_INTERVAL", "2"),
            ("MAILROOM_RETRY_SECONDS", "1"),
        ])
    }

    /// The CRM's view of `server`, calling with `token`.
    pub fn crm(&self, server: &Server, token: String) -> Crm {
        Crm {
            api: Api {
                http: reqwest::Client::new(),
                base: server.base.clone(),
            },
            token,
            log: self.log(),
        }
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
        self.user_with(email, role, token, &[])
    }

    /// `mailroom user add …` with more flags (`--name`, `--plan`).
    pub fn user_with(
        &self,
        email: &str,
        role: &str,
        token: bool,
        more: &[&str],
    ) -> (i64, Option<String>) {
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
        args.extend(more);
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

/// One signed-in caller of a running server's API, with the waits and
/// reads the end-to-end tests share.
pub struct Crm {
    pub api: Api,
    pub token: String,
    /// The server's log, shown when a wait times out.
    pub log: PathBuf,
}

impl Crm {
    /// POST a component file to `/api/plugins` as `token`: the status and the answer.
    pub async fn upload_plugin(&self, token: &str, bytes: Vec<u8>) -> (u16, Value) {
        let res = self
            .api
            .http
            .post(format!("{}/api/plugins", self.api.base))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let code = res.status().as_u16();
        (code, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (code, v) = self.api.call("POST", path, &self.token, Some(body)).await;
        assert!(code == 201 || code == 200, "{path}: {code} {v}");
        v
    }

    pub async fn contact(&self, name: &str, email: &str) -> i64 {
        self.post("/api/contacts", json!({"name": name, "emails": [email]}))
            .await["id"]
            .as_i64()
            .unwrap()
    }

    /// Wait until a record's Emails tab shows `subject`; `why` says what failed.
    /// A deal with `primary` as its primary contact (and `status`, when given); its id.
    pub async fn deal(&self, title: &str, primary: i64, status: Option<&str>) -> i64 {
        let mut body = json!({"title": title, "primary_contact_id": primary});
        if let Some(status) = status {
            body["status"] = json!(status);
        }
        self.post("/api/deals", body).await["id"].as_i64().unwrap()
    }

    /// "Connect" (or, for `account`, "Update authentication") through an
    /// emulated OAuth provider: begin the flow, answer its consent page as
    /// `email` with `decision` the way a browser submits the form, and follow
    /// the redirect back to the host. The callback page's status and text,
    /// and the consent URL the host sent the browser to.
    pub async fn sign_in(
        &self,
        provider: &str,
        account: Option<i64>,
        email: &str,
        decision: &str,
    ) -> (u16, String, String) {
        let body = match account {
            Some(id) => json!({"account_id": id}),
            None => json!({}),
        };
        let begun = self.post(&format!("/api/oauth/{provider}"), body).await;
        let url = begun["authorize_url"].as_str().unwrap();
        let (status, page) = self.consent(url, email, decision).await;
        (status, page, url.to_string())
    }

    /// Answer a provider's consent page at `url` as `email` with
    /// `decision`, the way a browser submits its form, and follow the
    /// redirect back to the host: the callback page's status and text.
    pub async fn consent(&self, url: &str, email: &str, decision: &str) -> (u16, String) {
        let url = reqwest::Url::parse(url).unwrap();
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("code_challenge_method").as_deref(),
            Some("S256"),
            "PKCE: {url}"
        );
        assert!(get("state").is_some_and(|s| s.len() >= 16), "{url}");
        let page = self.api.http.get(url.clone()).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("Choose an account"));
        // The form's hidden fields are the request's.
        let mut form: Vec<(String, String)> = query
            .into_iter()
            .filter(|(k, _)| {
                [
                    "client_id",
                    "redirect_uri",
                    "scope",
                    "state",
                    "code_challenge",
                    "code_challenge_method",
                ]
                .contains(&k.as_str())
            })
            .collect();
        form.push(("email".into(), email.into()));
        form.push(("decision".into(), decision.into()));
        let mut action = url.clone();
        action.set_query(None);
        let back = self.api.http.post(action).form(&form).send().await.unwrap();
        let status = back.status().as_u16();
        (status, back.text().await.unwrap())
    }

    /// Each subject on a record's Emails tab, sorted; there must be no duplicates.
    pub async fn subjects_once(&self, record: &str) -> Vec<String> {
        let mut subjects = self.subjects(record).await;
        let n = subjects.len();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), n, "duplicates on {record}: {subjects:?}");
        subjects
    }

    /// Wait until `subject` has left a record's Emails tab (a deletion synced).
    pub async fn wait_gone(&self, record: &str, subject: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.subjects(record).await.iter().any(|s| s == subject) {
            assert!(Instant::now() < deadline, "`{subject}` stayed on {record}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_for_subject(&self, record: &str, subject: &str, why: impl Fn() -> String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.subjects(record).await.iter().any(|s| s == subject) {
            assert!(
                Instant::now() < deadline,
                "`{subject}` never reached {record}: {}",
                why()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `PATCH /api/accounts/{id}` with `change`, which must be accepted; the account.
    pub async fn change_account(&self, id: i64, change: Value) -> Value {
        let (code, a) = self
            .api
            .call(
                "PATCH",
                &format!("/api/accounts/{id}"),
                &self.token,
                Some(change),
            )
            .await;
        assert_eq!(code, 200, "{a}");
        a
    }

    pub async fn account(&self, id: i64) -> Value {
        let (code, a) = self
            .api
            .call("GET", &format!("/api/accounts/{id}"), &self.token, None)
            .await;
        assert_eq!(code, 200, "{a}");
        a
    }

    /// Wait until the account's sync satisfies `done`; its last state.
    pub async fn wait(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let a = self.account(id).await;
            if done(&a["sync"]) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}: {a}\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait for a completed sync that started after `after` (Unix seconds).
    pub async fn synced_after(&self, id: i64, after: i64) -> Value {
        self.wait(id, "a sync after now", |s| {
            s["phase"] == "active" && s["last_sync_at"].as_i64().is_some_and(|t| t > after)
        })
        .await
    }

    /// The subjects on a contact's or deal's Emails tab.
    pub async fn subjects(&self, record: &str) -> Vec<String> {
        let (code, list) = self
            .api
            .call(
                "GET",
                &format!("{record}/emails?limit=500"),
                &self.token,
                None,
            )
            .await;
        assert_eq!(code, 200, "{list}");
        list.as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The web pages as a browser without a cookie jar reaches them: cookies
/// are passed by hand and redirects are not followed, so each can be checked.
pub struct Pages {
    pub http: reqwest::Client,
    pub base: String,
}

/// `name=value` of the cookie `name` a response sets.
pub fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// The value of the first hidden `_csrf` field of a page.
pub fn form_token(page: &str) -> String {
    let at = page.find("name=\"_csrf\" value=\"").expect("a form token") + 20;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

impl Pages {
    pub fn new(base: &str) -> Pages {
        Pages {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
        }
    }

    /// Sign in through the sign-in form, asking to go to `next`; the session cookie.
    pub async fn sign_in(&self, email: &str, next: &str) -> String {
        let form = self.get("/login", "").await;
        let login_cookie = set_cookie(&form, "mailroom_login").expect("the sign-in form's cookie");
        let token = form_token(&form.text().await.unwrap());
        let res = self
            .post(
                "/login",
                &login_cookie,
                &[
                    ("email", email),
                    ("password", LOGIN_PASSWORD),
                    ("_csrf", &token),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(res.status(), reqwest::StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[reqwest::header::LOCATION], next);
        set_cookie(&res, "mailroom_session").expect("a session cookie")
    }

    /// A page, with the cookies given (`""` for none).
    pub async fn get(&self, path: &str, cookies: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, cookies)
            .send()
            .await
            .unwrap()
    }

    /// A form posted, with the cookies given.
    pub async fn post(
        &self,
        path: &str,
        cookies: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, cookies)
            .form(form)
            .send()
            .await
            .unwrap()
    }
}
