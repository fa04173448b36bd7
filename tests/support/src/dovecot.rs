//! A real Dovecot for tests: one instance per test, configured from
//! `tests/peers/dovecot.conf`, listening on loopback ports of its own
//! (IMAP with STARTTLS, and IMAPS with a certificate from a [`TestCa`]),
//! with passwd-file users and Maildir mail under a temp directory. Stopped
//! (SIGTERM to the master, by PID, which stops its children) when dropped.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    /// The CA its certificate is signed by (`ca_file()` for MAILROOM_EXTRA_CA).
    pub ca: TestCa,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Dovecot {
    /// Start one, and wait until both ports accept connections.
    pub fn start() -> Dovecot {
        let dir = tempfile::tempdir().expect("temp dir");
        // Dovecot's unprivileged processes (as `nobody`) must reach the mail.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let status = Command::new("chown")
            .args(["nobody:nogroup"])
            .arg(dir.path().join("mail"))
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown of the mail directory");
        std::fs::write(dir.path().join("users"), "").expect("users file");
        let ca = TestCa::new();
        let (imap_port, imaps_port) = (free_port(), free_port());
        let template = std::fs::read_to_string(repo_root().join("tests/peers/dovecot.conf"))
            .expect("tests/peers/dovecot.conf");
        let config = template
            .replace("@DIR@", &dir.path().display().to_string())
            .replace("@IMAP_PORT@", &imap_port.to_string())
            .replace("@IMAPS_PORT@", &imaps_port.to_string())
            .replace("@CERT@", &ca.server_cert_file().display().to_string())
            .replace("@KEY@", &ca.server_key_file().display().to_string());
        std::fs::write(dir.path().join("dovecot.conf"), config).expect("dovecot.conf");
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(dir.path().join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot starts (scripts/setup installs dovecot-imapd)");
        let dovecot = Dovecot {
            dir,
            child,
            imap_port,
            imaps_port,
            ca,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [imap_port, imaps_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "dovecot did not listen on {port}: {}",
                    dovecot.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        dovecot
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
        // SIGTERM lets the master stop its children; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
