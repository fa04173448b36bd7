//! A real Postfix for tests: accepts mail on a loopback port (the
//! [`Dovecot`]'s `relay_port`, so that Dovecot's submission relays to it) and
//! delivers it into that Dovecot over LMTP. Configured from
//! `tests/peers/postfix-{main,master}.cf`; run as `master -d` in the
//! foreground, stopped by PID when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dovecot::Dovecot;
use crate::repo_root;

/// A running Postfix.
pub struct Postfix {
    dir: tempfile::TempDir,
    child: Child,
    /// Where it accepts mail (SMTP, no authentication, from loopback).
    pub port: u16,
}

fn fill(template: &str, pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .fold(template.to_string(), |t, (k, v)| t.replace(k, v))
}

impl Postfix {
    /// Start one delivering `domains` (space-separated) into `dovecot`.
    pub fn start(dovecot: &Dovecot, domains: &str) -> Postfix {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        for sub in ["conf", "queue", "data", "log"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let port = dovecot.relay_port;
        let read = |name: &str| {
            std::fs::read_to_string(repo_root().join("tests/peers").join(name))
                .unwrap_or_else(|e| panic!("tests/peers/{name}: {e}"))
        };
        let pairs = [
            ("@DIR@", dir.path().display().to_string()),
            ("@DOMAINS@", domains.to_string()),
            ("@LMTP_PORT@", dovecot.lmtp_port.to_string()),
            ("@SMTP@", format!("127.0.0.1:{port}")),
        ];
        let conf = dir.path().join("conf");
        std::fs::write(conf.join("main.cf"), fill(&read("postfix-main.cf"), &pairs))
            .expect("main.cf");
        std::fs::write(
            conf.join("master.cf"),
            fill(&read("postfix-master.cf"), &pairs),
        )
        .expect("master.cf");
        let status = Command::new("postfix")
            .arg("-c")
            .arg(&conf)
            .args(["post-install", "create-missing"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("postfix runs (scripts/setup installs it)");
        assert!(status.success(), "postfix post-install");
        let status = Command::new("chown")
            .args(["-R", "postfix"])
            .arg(dir.path().join("data"))
            .status()
            .expect("chown runs");
        assert!(status.success());
        let child = Command::new("/usr/lib/postfix/sbin/master")
            .arg("-d")
            .env("MAIL_CONFIG", &conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postfix master starts");
        let postfix = Postfix { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postfix did not listen: {}",
                postfix.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        postfix
    }

    /// What Postfix logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/postfix.log")).unwrap_or_default()
    }

    /// The directory everything lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Hand a message to Postfix over SMTP, as a server on the Internet would.
    pub fn deliver(&self, from: &str, to: &[&str], raw: &[u8]) {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to postfix");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        expect(&mut reader, "220");
        let mut say = |line: &[u8], code: &str| {
            writer.write_all(line).expect("write");
            writer.write_all(b"\r\n").expect("write");
            expect(&mut reader, code);
        };
        say(b"EHLO outside.test", "250");
        say(format!("MAIL FROM:<{from}>").as_bytes(), "250");
        for rcpt in to {
            say(format!("RCPT TO:<{rcpt}>").as_bytes(), "250");
        }
        say(b"DATA", "354");
        let mut data = Vec::new();
        for line in raw.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(line);
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".");
        say(&data, "250");
        say(b"QUIT", "221");
    }
}

/// Read one (possibly multi-line) SMTP reply and check its code.
fn expect(reader: &mut BufReader<TcpStream>, code: &str) {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("postfix reply");
        assert!(
            line.starts_with(code),
            "postfix said {line:?}, wanted {code}"
        );
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
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
