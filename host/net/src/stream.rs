//! The `mailroom:provider/net` interface: byte streams a plugin reads and
//! writes, opened, secured and closed by the host.

use std::sync::Arc;

use std::collections::BTreeMap;

use mailroom_contract::v1::net::{self, Connection, NetError, SecretEncoding, Security, SignIn};
use mailroom_policy::{Denial, Endpoint, Redactor, Refusal, Scheme, Secret, Secrets, WireGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::budget::{ConnectionBudget, ConnectionPermit};
use crate::connect::{Audit, ConnectError, connect};
use crate::signin;
use crate::tls::TlsConfig;

/// The largest single read handed to a plugin.
const MAX_READ: usize = 256 * 1024;

/// The network state of one run: one plugin, one account.
pub struct NetCtx {
    policy: Arc<mailroom_policy::AccountPolicy>,
    secrets: Arc<Secrets>,
    /// For each secret field, the indices of the declared endpoints it may go to.
    bound: BTreeMap<String, Vec<usize>>,
    /// Armed on every connection from its first byte.
    redactor: Redactor,
    tls: TlsConfig,
    audit: Audit,
    budget: ConnectionBudget,
}

impl NetCtx {
    /// State for a run under `policy`, able to use `secrets`, each only on
    /// connections to the declared endpoints `bound` lists for it (by
    /// index); `redactor` blanks them (and whatever else the host put on the
    /// wire for the account) out of everything read back.
    pub fn new(
        policy: Arc<mailroom_policy::AccountPolicy>,
        secrets: Arc<Secrets>,
        bound: BTreeMap<String, Vec<usize>>,
        redactor: Redactor,
        tls: TlsConfig,
        audit: Audit,
        budget: ConnectionBudget,
    ) -> Self {
        NetCtx {
            policy,
            secrets,
            bound,
            redactor,
            tls,
            audit,
            budget,
        }
    }
}

/// A borrowed view of the network state and the resource table, as the
/// `net` host functions see it.
pub struct NetView<'a> {
    /// The run's network state.
    pub ctx: &'a mut NetCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Implemented by a store's data to give the `net` interface its view.
pub trait WasiNetView: Send {
    /// The view for this store.
    fn net(&mut self) -> NetView<'_>;
}

/// Marker for `add_to_linker`.
pub struct Net;

impl HasData for Net {
    type Data<'a> = NetView<'a>;
}

/// Add `mailroom:provider/net` to a linker.
pub fn add_to_linker<T: WasiNetView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    net::add_to_linker::<T, Net>(linker, T::net)
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A failed STARTTLS leaves nothing usable.
    Broken,
}

/// One open connection.
pub(crate) struct Conn {
    io: Io,
    endpoint: Endpoint,
    /// The declared endpoint it was opened to, by index.
    template: usize,
    /// Decides whether a secret may go on this connection.
    guard: WireGuard,
    redactor: Redactor,
    /// Bytes already redacted but beyond what the last `read` asked for.
    ready: Vec<u8>,
    /// The read buffer, kept between reads so it is not zeroed each time.
    buf: Vec<u8>,
    eof: bool,
    _permit: ConnectionPermit,
}

fn own(r: Resource<Connection>) -> Resource<Conn> {
    Resource::new_own(r.rep())
}

fn borrow(r: &Resource<Connection>) -> Resource<Conn> {
    Resource::new_borrow(r.rep())
}

fn io_error(e: std::io::Error) -> NetError {
    NetError::Connection(e.to_string())
}

impl From<ConnectError> for NetError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Denied(d) | ConnectError::AddressDenied(d) => {
                NetError::Denied(d.to_string())
            }
            ConnectError::NameNotFound { .. } => NetError::NameNotFound(e.to_string()),
            ConnectError::Connection { .. } => NetError::Connection(e.to_string()),
        }
    }
}

async fn tls_handshake(tls: TlsConfig, host: &str, tcp: TcpStream) -> Result<Io, NetError> {
    let stream = tls.handshake(host, tcp).await.map_err(NetError::Tls)?;
    Ok(Io::Tls(Box::new(stream)))
}

impl NetView<'_> {
    async fn open_conn(
        &mut self,
        host: String,
        port: u16,
        security: Security,
    ) -> Result<Conn, NetError> {
        let permit = self.ctx.budget.take().ok_or(NetError::TooManyConnections)?;
        let scheme = match security {
            Security::Tls => Scheme::Tls,
            Security::Plain => Scheme::Tcp,
        };
        let endpoint = Endpoint::new(scheme, &host, port)
            .map_err(|e| NetError::Denied(format!("{e}: not a host a grant can name")))?;
        let (tcp, template) = connect(&self.ctx.policy, &endpoint, &self.ctx.audit).await?;
        let io = match security {
            Security::Tls => tls_handshake(self.ctx.tls.clone(), &endpoint.host, tcp).await?,
            Security::Plain => Io::Plain(tcp),
        };
        Ok(Conn {
            io,
            endpoint,
            template,
            guard: WireGuard::new(),
            redactor: self.ctx.redactor.clone(),
            ready: Vec::new(),
            buf: Vec::new(),
            eof: false,
            _permit: permit,
        })
    }
}

impl net::Host for NetView<'_> {}

impl net::HostConnection for NetView<'_> {
    async fn open(
        &mut self,
        host: String,
        port: u16,
        security: Security,
    ) -> wasmtime::Result<Result<Resource<Connection>, NetError>> {
        let conn = match self.open_conn(host, port, security).await {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        tracing::debug!(endpoint = %conn.endpoint, "plugin connection opened");
        let handle = self.table.push(conn)?;
        Ok(Ok(Resource::new_own(handle.rep())))
    }

    async fn read(
        &mut self,
        this: Resource<Connection>,
        max: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, NetError>> {
        let conn = self.table.get_mut(&borrow(&this))?;
        let max = (max as usize).clamp(1, MAX_READ);
        while conn.ready.is_empty() && !conn.eof {
            if let Err(e) = conn.fill(max).await {
                return Ok(Err(e));
            }
        }
        Ok(Ok(take_up_to(&mut conn.ready, max)))
    }

    async fn write(
        &mut self,
        this: Resource<Connection>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), NetError>> {
        let conn = self.table.get_mut(&borrow(&this))?;
        conn.guard.wrote(&data);
        Ok(conn.send(&data).await)
    }

    async fn write_secret(
        &mut self,
        this: Resource<Connection>,
        before: Vec<u8>,
        secret: String,
        encoding: SecretEncoding,
        after: Vec<u8>,
    ) -> wasmtime::Result<Result<(), NetError>> {
        let conn = self.table.get_mut(&borrow(&this))?;
        let value = match self.ctx.usable(conn, &secret) {
            Ok(value) => value,
            Err(e) => return Ok(Err(e)),
        };
        let encoding = match encoding {
            SecretEncoding::Raw => mailroom_policy::SecretEncoding::Raw,
            SecretEncoding::ImapQuoted => mailroom_policy::SecretEncoding::ImapQuoted,
            SecretEncoding::SaslPlain(user) => mailroom_policy::SecretEncoding::SaslPlain(user),
            SecretEncoding::Xoauth2(user) => mailroom_policy::SecretEncoding::Xoauth2(user),
        };
        if let Err(refusal) = conn
            .guard
            .authorize(&before, &encoding, value.expose(), &after)
        {
            return Ok(Err(self.ctx.refuse(conn, &secret, &refusal)));
        }
        let encoded = encoding.encode(&value);
        conn.redactor.add(encoded.as_bytes());
        let mut data = before;
        data.extend_from_slice(encoded.as_bytes());
        data.extend_from_slice(&after);
        Ok(conn.send(&data).await)
    }

    async fn authenticate(
        &mut self,
        this: Resource<Connection>,
        step: SignIn,
    ) -> wasmtime::Result<Result<Vec<u8>, NetError>> {
        let conn = self.table.get_mut(&borrow(&this))?;
        let value = match self.ctx.usable(conn, &step.secret) {
            Ok(value) => value,
            Err(e) => return Ok(Err(e)),
        };
        let plan = match signin::plan(&step, &value) {
            Ok(plan) => plan,
            Err(why) => {
                let denial = Denial {
                    attempted: format!("signing in with `{}` to {}", step.secret, conn.endpoint),
                    reason: why,
                    would_allow: "a well-formed sign-in step (see `net.sign-in`)".into(),
                };
                self.ctx.audit.denied(&denial);
                return Ok(Err(NetError::Denied(denial.to_string())));
            }
        };
        if let Err(refusal) = conn.guard.begin(plan.protocol) {
            return Ok(Err(self.ctx.refuse(conn, &step.secret, &refusal)));
        }
        for form in &plan.written {
            conn.redactor.add(form.as_bytes());
        }
        Ok(signin::perform(conn, &plan).await)
    }

    async fn start_tls(
        &mut self,
        this: Resource<Connection>,
    ) -> wasmtime::Result<Result<(), NetError>> {
        let conn = self.table.get_mut(&borrow(&this))?;
        // Plaintext that arrived before the upgrade could be a man in the
        // middle's injected answers: refuse rather than let it be read as
        // if it came over TLS.
        let unread = !conn.ready.is_empty()
            || conn.redactor.holds()
            || match &conn.io {
                Io::Plain(tcp) => matches!(tcp.try_read(&mut [0u8; 1]), Ok(n) if n > 0),
                _ => false,
            };
        if unread && matches!(conn.io, Io::Plain(_)) {
            conn.io = Io::Broken;
            return Ok(Err(NetError::Tls(
                "the server sent more before the TLS upgrade than its answer to STARTTLS \
                 (injected plaintext?); the connection is closed"
                    .into(),
            )));
        }
        let tcp = match std::mem::replace(&mut conn.io, Io::Broken) {
            Io::Plain(tcp) => tcp,
            other => {
                conn.io = other;
                return Ok(Err(NetError::Tls(
                    "the connection is not a plain one".into(),
                )));
            }
        };
        let host = conn.endpoint.host.clone();
        let upgraded = tls_handshake(self.ctx.tls.clone(), &host, tcp).await;
        let conn = self.table.get_mut(&borrow(&this))?;
        Ok(match upgraded {
            Ok(io) => {
                conn.io = io;
                Ok(())
            }
            Err(e) => Err(e),
        })
    }

    async fn drop(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        let mut conn = self.table.delete(own(this))?;
        match &mut conn.io {
            Io::Plain(s) => {
                let _ = s.shutdown().await;
            }
            Io::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Io::Broken => {}
        }
        Ok(())
    }
}

/// The first `max` bytes of `ready`, leaving the rest there.
fn take_up_to(ready: &mut Vec<u8>, max: usize) -> Vec<u8> {
    let rest = ready.split_off(max.min(ready.len()));
    std::mem::replace(ready, rest)
}

impl NetCtx {
    /// The value of `secret`, where it may go on `conn`: the account has it,
    /// it is bound to the endpoint `conn` was opened to, and the connection
    /// is encrypted (or the operator allowed plaintext credentials).
    fn usable(&self, conn: &Conn, secret: &str) -> Result<Secret, NetError> {
        let Some(value) = self.secrets.get(secret).cloned() else {
            return Err(NetError::UnknownSecret(secret.to_string()));
        };
        let deny = |reason: String, would_allow: &str| {
            let denial = Denial {
                attempted: format!("writing secret `{secret}` to {}", conn.endpoint),
                reason,
                would_allow: would_allow.into(),
            };
            self.audit.denied(&denial);
            Err(NetError::Denied(denial.to_string()))
        };
        if !self
            .bound
            .get(secret)
            .is_some_and(|endpoints| endpoints.contains(&conn.template))
        {
            return deny(
                "the secret is not bound to this endpoint".into(),
                "the plugin binding the secret to this endpoint (`bindings`) and the operator approving it",
            );
        }
        if matches!(conn.io, Io::Plain(_)) && !self.policy.plaintext_credentials() {
            return deny(
                "the connection is not encrypted".into(),
                "STARTTLS first, or a grant allowing plaintext credentials",
            );
        }
        Ok(value)
    }

    /// Record and report a sign-in the wire guard refused.
    fn refuse(&self, conn: &Conn, secret: &str, refusal: &Refusal) -> NetError {
        let denial = Denial {
            attempted: format!("writing secret `{secret}` to {}", conn.endpoint),
            reason: refusal.to_string(),
            would_allow:
                "a sign-in step: IMAP LOGIN or AUTHENTICATE, SMTP AUTH, POP3 PASS or AUTH, \
                 once, on a connection that carried only pre-authentication commands"
                    .into(),
        };
        self.audit.denied(&denial);
        NetError::Denied(denial.to_string())
    }
}

impl Conn {
    /// Read once from the wire into `ready`, redacted; at the end of the
    /// stream, release what the redactor held back.
    async fn fill(&mut self, max: usize) -> Result<(), NetError> {
        if self.buf.len() < max {
            self.buf.resize(max, 0);
        }
        let n = match &mut self.io {
            Io::Plain(s) => s.read(&mut self.buf[..max]).await,
            Io::Tls(s) => s.read(&mut self.buf[..max]).await,
            Io::Broken => return Err(NetError::Connection("connection is closed".into())),
        }
        .map_err(io_error)?;
        if n == 0 {
            self.eof = true;
            let rest = self.redactor.finish();
            self.ready.extend_from_slice(&rest);
        } else {
            self.guard.read(&self.buf[..n]);
            let out = self.redactor.feed(&self.buf[..n]);
            self.ready.extend_from_slice(&out);
        }
        Ok(())
    }

    /// One line (with its line break), redacted, at most `max` bytes; what
    /// follows it stays for the plugin's reads.
    pub(crate) async fn read_line(&mut self, max: usize) -> Result<Vec<u8>, NetError> {
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.ready) {
                return Ok(take_up_to(&mut self.ready, at + 1));
            }
            if self.ready.len() > max {
                return Err(NetError::Connection(
                    "the server's answer to the sign-in is too long".into(),
                ));
            }
            if self.eof {
                return Err(NetError::Connection(
                    "the server closed the connection during the sign-in".into(),
                ));
            }
            self.fill(4096).await?;
        }
    }

    /// Write all of `data`.
    pub(crate) async fn send(&mut self, data: &[u8]) -> Result<(), NetError> {
        write_all(&mut self.io, data).await
    }
}

async fn write_all(io: &mut Io, data: &[u8]) -> Result<(), NetError> {
    let result = match io {
        Io::Plain(s) => s.write_all(data).await,
        Io::Tls(s) => match s.write_all(data).await {
            Ok(()) => s.flush().await,
            Err(e) => Err(e),
        },
        Io::Broken => return Err(NetError::Connection("connection is closed".into())),
    };
    result.map_err(io_error)
}
