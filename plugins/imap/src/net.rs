//! A connection the host opened for the plugin, and what its failures mean to
//! the account. Shared by IMAP and SMTP.

use crate::bindings::mailroom::provider::net::{Connection, NetError, Security, SignIn};
use crate::settings::Transport;

/// A network failure, kept with the endpoint it concerned.
#[derive(Debug)]
pub struct NetFailure {
    /// `imap.example.com:993`.
    pub endpoint: String,
    /// What the host reported.
    pub error: NetError,
}

/// One open connection.
pub struct Link {
    conn: Connection,
    endpoint: String,
}

impl Link {
    /// Open a connection for `transport`: TLS from the first byte, or plain
    /// (STARTTLS is the protocol's business).
    pub fn open(host: &str, port: u16, transport: Transport) -> Result<Link, NetFailure> {
        let security = match transport {
            Transport::Tls => Security::Tls,
            Transport::StartTls | Transport::Plain => Security::Plain,
        };
        let endpoint = format!("{host}:{port}");
        match Connection::open(host, port, security) {
            Ok(conn) => Ok(Link { conn, endpoint }),
            Err(error) => Err(NetFailure { endpoint, error }),
        }
    }

    fn fail(&self, error: NetError) -> NetFailure {
        NetFailure {
            endpoint: self.endpoint.clone(),
            error,
        }
    }

    /// Up to `max` bytes; empty when the peer closed the connection.
    pub fn read(&mut self, max: u32) -> Result<Vec<u8>, NetFailure> {
        self.conn.read(max).map_err(|e| self.fail(e))
    }

    /// Write all of `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), NetFailure> {
        self.conn.write(data).map_err(|e| self.fail(e))
    }

    /// Have the host sign in (it writes the whole step, secret included)
    /// and return the server's answers to it.
    pub fn authenticate(&mut self, step: &SignIn) -> Result<Vec<u8>, NetFailure> {
        self.conn.authenticate(step).map_err(|e| self.fail(e))
    }

    /// Upgrade to TLS after the protocol's STARTTLS exchange.
    pub fn start_tls(&mut self) -> Result<(), NetFailure> {
        self.conn.start_tls().map_err(|e| self.fail(e))
    }
}

impl std::fmt::Display for NetFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match &self.error {
            NetError::Denied(t) => format!("the host refused the connection: {t}"),
            NetError::NameNotFound(t) => format!("the server name was not found ({t})"),
            NetError::Connection(t) => format!(
                "the server could not be reached ({t}); a server only reachable over a VPN cannot be used"
            ),
            NetError::Tls(t) => format!("the secure connection failed ({t})"),
            NetError::TooManyConnections => "too many connections are open".into(),
            NetError::UnknownSecret(name) => format!("the account has no `{name}` value"),
        };
        write!(f, "{}: {why}", self.endpoint)
    }
}
