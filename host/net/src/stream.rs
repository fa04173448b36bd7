//! The `mailroom:provider/net` interface: byte streams a plugin reads and
//! writes, opened, secured and closed by the host.

use std::sync::Arc;

use mailroom_contract::v1::net::{self, Connection, NetError, SecretEncoding, Security};
use mailroom_policy::{Denial, Endpoint, Redactor, Scheme, Secrets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::budget::{ConnectionBudget, ConnectionPermit};
use crate::connect::{Audit, ConnectError, connect};
use crate::tls::TlsConfig;

/// The largest single read handed to a plugin.
const MAX_READ: usize = 256 * 1024;

/// The network state of one run: one plugin, one account.
pub struct NetCtx {
    policy: Arc<mailroom_policy::AccountPolicy>,
    secrets: Arc<Secrets>,
    tls: TlsConfig,
    audit: Audit,
    budget: ConnectionBudget,
}

impl NetCtx {
    /// State for a run under `policy`, able to use `secrets`.
    pub fn new(
        policy: Arc<mailroom_policy::AccountPolicy>,
        secrets: Arc<Secrets>,
        tls: TlsConfig,
        audit: Audit,
        budget: ConnectionBudget,
    ) -> Self {
        NetCtx {
            policy,
            secrets,
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
struct Conn {
    io: Io,
    endpoint: Endpoint,
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
        let (tcp, _) = connect(&self.ctx.policy, &endpoint, &self.ctx.audit).await?;
        let io = match security {
            Security::Tls => tls_handshake(self.ctx.tls.clone(), &endpoint.host, tcp).await?,
            Security::Plain => Io::Plain(tcp),
        };
        Ok(Conn {
            io,
            endpoint,
            redactor: Redactor::default(),
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
        if !conn.ready.is_empty() {
            return Ok(Ok(take_up_to(&mut conn.ready, max)));
        }
        if conn.buf.len() < max {
            conn.buf.resize(max, 0);
        }
        loop {
            if conn.eof {
                conn.ready = conn.redactor.finish();
                return Ok(Ok(take_up_to(&mut conn.ready, max)));
            }
            let n = match &mut conn.io {
                Io::Plain(s) => s.read(&mut conn.buf[..max]).await,
                Io::Tls(s) => s.read(&mut conn.buf[..max]).await,
                Io::Broken => return Ok(Err(NetError::Connection("connection is closed".into()))),
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => return Ok(Err(io_error(e))),
            };
            if n == 0 {
                conn.eof = true;
                continue;
            }
            conn.ready = conn.redactor.feed(&conn.buf[..n]);
            if !conn.ready.is_empty() {
                return Ok(Ok(take_up_to(&mut conn.ready, max)));
            }
        }
    }

    async fn write(
        &mut self,
        this: Resource<Connection>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), NetError>> {
        let conn = self.table.get_mut(&borrow(&this))?;
        Ok(write_all(&mut conn.io, &data).await)
    }

    async fn write_secret(
        &mut self,
        this: Resource<Connection>,
        before: Vec<u8>,
        secret: String,
        encoding: SecretEncoding,
        after: Vec<u8>,
    ) -> wasmtime::Result<Result<(), NetError>> {
        let Some(value) = self.ctx.secrets.get(&secret).cloned() else {
            return Ok(Err(NetError::UnknownSecret(secret)));
        };
        let conn = self.table.get_mut(&borrow(&this))?;
        if matches!(conn.io, Io::Plain(_)) && !self.ctx.policy.plaintext_credentials() {
            let denial = Denial {
                attempted: format!("writing secret `{secret}` to {}", conn.endpoint),
                reason: "the connection is not encrypted".into(),
                would_allow: "STARTTLS first, or a grant allowing plaintext credentials".into(),
            };
            self.ctx.audit.denied(&denial);
            return Ok(Err(NetError::Denied(denial.to_string())));
        }
        let encoded = match encoding {
            SecretEncoding::Raw => mailroom_policy::SecretEncoding::Raw,
            SecretEncoding::ImapQuoted => mailroom_policy::SecretEncoding::ImapQuoted,
            SecretEncoding::SaslPlain(user) => mailroom_policy::SecretEncoding::SaslPlain(user),
            SecretEncoding::Xoauth2(user) => mailroom_policy::SecretEncoding::Xoauth2(user),
        }
        .encode(&value);
        // From now on nothing read back from this connection may carry a secret.
        if conn.redactor.is_empty() {
            conn.redactor = self.ctx.secrets.redactor();
        }
        conn.redactor.add(encoded.as_bytes());
        let mut data = before;
        data.extend_from_slice(encoded.as_bytes());
        data.extend_from_slice(&after);
        Ok(write_all(&mut conn.io, &data).await)
    }

    async fn start_tls(
        &mut self,
        this: Resource<Connection>,
    ) -> wasmtime::Result<Result<(), NetError>> {
        let conn = self.table.get_mut(&borrow(&this))?;
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
