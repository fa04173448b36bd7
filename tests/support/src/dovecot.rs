//! A real Dovecot for tests: one instance per test, configured from
//! `tests/peers/dovecot.conf`, listening on loopback ports of its own
//! (IMAP with STARTTLS, IMAPS with a certificate from a [`TestCa`], POP3 with
//! STLS and POP3S, LMTP, and
//! submission relaying to a [`crate::postfix::Postfix`] on `relay_port`), with
//! passwd-file users, OAuth tokens checked at a small introspection endpoint
//! (XOAUTH2), and Maildir mail under a temp directory. Stopped (SIGTERM to the
//! master, by PID, which stops its children) when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use std::time::{Duration, Instant};

use crate::{TestCa, repo_root};

/// A running Dovecot.
pub struct Dovecot {
    dir: tempfile::TempDir,
    child: Child,
    /// Plain IMAP (STARTTLS offered).
    pub imap_port: u16,
    /// IMAP over TLS.
    pub imaps_port: u16,
    /// LMTP, for Postfix's deliveries.
    pub lmtp_port: u16,
    /// Submission (STARTTLS), relaying to `relay_port`.
    pub submission_port: u16,
    /// Plain POP3 (STLS offered).
    pub pop3_port: u16,
    /// POP3 over TLS.
    pub pop3s_port: u16,
    /// Where submission relays to: the port a Postfix for this Dovecot listens on.
    pub relay_port: u16,
    /// The CA its certificate is signed by (`ca_file()` for MAILROOM_EXTRA_CA).
    pub ca: TestCa,
    tokens: Tokens,
}

/// OAuth access tokens and the user each one signs in.
type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Dovecot {
    /// Start one, and wait until its ports accept connections.
    pub fn start() -> Dovecot {
        let dir = tempfile::tempdir().expect("temp dir");
        // Dovecot's unprivileged processes (as `nobody`) must reach the mail.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        chown_nobody(&[dir.path().join("mail")]);
        std::fs::write(dir.path().join("users"), "").expect("users file");
        let tokens = Tokens::default();
        let oauth_url = introspection(tokens.clone());
        std::fs::write(
            dir.path().join("oauth2.conf"),
            format!(
                "introspection_url = {oauth_url}\nintrospection_mode = post\n\
                 username_attribute = username\nactive_attribute = active\nactive_value = true\n"
            ),
        )
        .expect("oauth2.conf");
        let ca = TestCa::new();
        let (imap_port, imaps_port, lmtp_port) = (free_port(), free_port(), free_port());
        let (submission_port, relay_port) = (free_port(), free_port());
        let (pop3_port, pop3s_port) = (free_port(), free_port());
        let template = std::fs::read_to_string(repo_root().join("tests/peers/dovecot.conf"))
            .expect("tests/peers/dovecot.conf");
        let config = template
            .replace("@DIR@", &dir.path().display().to_string())
            .replace("@IMAP_PORT@", &imap_port.to_string())
            .replace("@IMAPS_PORT@", &imaps_port.to_string())
            .replace("@LMTP_PORT@", &lmtp_port.to_string())
            .replace("@SUBMISSION_PORT@", &submission_port.to_string())
            .replace("@RELAY_PORT@", &relay_port.to_string())
            .replace("@POP3_PORT@", &pop3_port.to_string())
            .replace("@POP3S_PORT@", &pop3s_port.to_string())
            .replace("@CERT@", &ca.server_cert_file().display().to_string())
            .replace("@KEY@", &ca.server_key_file().display().to_string());
        std::fs::write(dir.path().join("dovecot.conf"), config).expect("dovecot.conf");
        let child = launch(dir.path());
        let dovecot = Dovecot {
            dir,
            child,
            imap_port,
            imaps_port,
            lmtp_port,
            submission_port,
            relay_port,
            pop3_port,
            pop3s_port,
            ca,
            tokens,
        };
        dovecot.wait_listening();
        dovecot
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [
            self.imap_port,
            self.imaps_port,
            self.lmtp_port,
            self.submission_port,
            self.pop3_port,
            self.pop3s_port,
        ] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "dovecot did not listen on {port}: {}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stop the server (its mail stays), as an outage would.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Start it again after `stop`, on the same ports with the same mail.
    pub fn restart(&mut self) {
        terminate(&mut self.child);
        self.child = launch(self.dir.path());
        self.wait_listening();
    }

    /// Freeze every process of this instance, as an overloaded server stops
    /// answering mid-session, until [`Dovecot::resume`].
    pub fn pause(&self) {
        self.signal_workers("-STOP");
    }

    /// Let a paused instance answer again.
    pub fn resume(&self) {
        self.signal_workers("-CONT");
    }

    fn signal_workers(&self, signal: &str) {
        let status = Command::new("pkill")
            .args([signal, "-P", &self.child.id().to_string()])
            .status()
            .expect("pkill runs");
        assert!(
            status.success(),
            "pkill {signal}: no Dovecot worker process"
        );
    }

    /// Let `token` sign `user` in with XOAUTH2 / OAUTHBEARER.
    pub fn add_token(&self, token: &str, user: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(token.to_string(), user.to_string());
        }
    }

    /// The config file, for `doveadm -c`.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    /// What Dovecot logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Add a user (the passwd file is read again on the next login).
    pub fn add_user(&self, user: &str, password: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("users"))
            .expect("users file");
        writeln!(f, "{user}:{{PLAIN}}{password}").expect("writing a user");
    }

    /// Change a user's password.
    pub fn set_password(&self, user: &str, password: &str) {
        let path = self.dir.path().join("users");
        let text = std::fs::read_to_string(&path).expect("users file");
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{user}:")))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, format!("{kept}{user}:{{PLAIN}}{password}\n")).expect("users file");
    }

    /// A user's Maildir folder (`INBOX` or another name), created if missing.
    pub fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let root = self.dir.path().join("mail").join(user).join("Maildir");
        let dir = if folder == "INBOX" {
            root
        } else {
            root.join(format!(".{folder}"))
        };
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("maildir");
        }
        // Only what this made: a recursive chown would race Dovecot moving
        // and deleting its own files while it serves the mailbox.
        let user_dir = self.dir.path().join("mail").join(user);
        let mut made = vec![user_dir.clone(), user_dir.join("Maildir"), dir.clone()];
        made.extend(["cur", "new", "tmp"].map(|sub| dir.join(sub)));
        chown_nobody(&made);
        dir
    }

    /// Write messages straight into a user's folder (the fastest way to seed
    /// a mailbox): each with its received time (INTERNALDATE), as
    /// `(raw, unix seconds)`. Dovecot indexes them on the next SELECT.
    pub fn seed(&self, user: &str, folder: &str, messages: &[(Vec<u8>, i64)]) {
        let dir = self.maildir(user, folder).join("cur");
        let mut written = Vec::new();
        for (i, (raw, at)) in messages.iter().enumerate() {
            // S= is the size, W= the size with CRLF line ends (RFC822.SIZE),
            // as Dovecot's own deliveries name their files.
            let bare_lf = raw
                .iter()
                .enumerate()
                .filter(|(j, b)| **b == b'\n' && (*j == 0 || raw[j - 1] != b'\r'))
                .count();
            let name = format!(
                "{at}.M{i}P{}.mailroom-seed,S={},W={}:2,S",
                std::process::id(),
                raw.len(),
                raw.len() + bare_lf
            );
            let path = dir.join(name);
            std::fs::write(&path, raw).expect("writing a message");
            let when = SystemTime::UNIX_EPOCH + Duration::from_secs((*at).max(0) as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(when))
                .expect("setting the received time");
            written.push(path);
        }
        chown_nobody(&written);
    }

    /// Store a raw message in a user's mailbox with `doveadm save`.
    pub fn save(&self, user: &str, mailbox: &str, raw: &[u8]) {
        self.doveadm(&["save", "-u", user, "-m", mailbox], raw);
    }

    /// Run `doveadm` against this instance, with `stdin`; its stdout.
    pub fn doveadm(&self, args: &[&str], stdin: &[u8]) -> String {
        let mut child = Command::new("doveadm")
            .arg("-c")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("doveadm runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("writing to doveadm");
        let out = child.wait_with_output().expect("doveadm ends");
        assert!(
            out.status.success(),
            "doveadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The directory everything lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

fn launch(dir: &Path) -> Child {
    Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(dir.join("dovecot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dovecot starts (scripts/setup installs dovecot-imapd)")
}

/// SIGTERM lets the master stop its children; SIGKILL if it lingers.
fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // Workers a test paused could not hear the master's call to stop.
    let _ = Command::new("pkill")
        .args(["-CONT", "-P", &child.id().to_string()])
        .status();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Give `paths` (not what is under them) to `nobody`, Dovecot's mail user.
fn chown_nobody(paths: &[PathBuf]) {
    if paths.is_empty() {
        return;
    }
    let status = Command::new("chown")
        .arg("nobody:nogroup")
        .args(paths)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown of {paths:?}");
}

/// A token introspection endpoint (RFC 7662, as Dovecot's oauth2 passdb
/// calls it in `post` mode): `token=…` in, `{"active":…,"username":…}` out.
/// Its thread lives as long as the test process.
fn introspection(tokens: Tokens) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/introspect", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).to_string();
            let token = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .unwrap_or("")
                .to_string();
            let user = tokens.lock().ok().and_then(|t| t.get(&token).cloned());
            let json = match user {
                Some(u) => format!("{{\"active\":\"true\",\"username\":\"{u}\"}}"),
                None => "{\"active\":\"false\"}".to_string(),
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            );
        }
    });
    url
}
