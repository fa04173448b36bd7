//! Checked connects: grant by name, DNS, grant by address, then TCP.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailroom_policy::{AccountPolicy, Denial, Endpoint};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many denials one run keeps and logs; further ones are only counted.
const KEPT_DENIALS: usize = 100;

/// Where denials go: the log (inside the caller's span, which names the
/// plugin, its version and the account) and a list the host can inspect.
/// Bounded: a plugin refused in a loop fills neither the log nor memory;
/// past [`KEPT_DENIALS`] a denial is counted, and the first one past it says so.
#[derive(Clone, Default, Debug)]
pub struct Audit {
    denials: Arc<Mutex<(Vec<Denial>, usize)>>,
}

impl Audit {
    /// Record and log one denial.
    pub fn denied(&self, denial: &Denial) {
        let Ok(mut guard) = self.denials.lock() else {
            return;
        };
        let (kept, count) = &mut *guard;
        *count += 1;
        if kept.len() < KEPT_DENIALS {
            tracing::warn!(
                attempted = %denial.attempted,
                reason = %denial.reason,
                would_allow = %denial.would_allow,
                "plugin network access denied"
            );
            kept.push(denial.clone());
        } else if *count == KEPT_DENIALS + 1 {
            tracing::warn!(
                "more than {KEPT_DENIALS} denials in this run: the rest are only counted"
            );
        }
    }

    /// The denials recorded so far (the first [`KEPT_DENIALS`]).
    pub fn denials(&self) -> Vec<Denial> {
        self.denials.lock().map(|l| l.0.clone()).unwrap_or_default()
    }

    /// How many denials there were, kept or not.
    pub fn count(&self) -> usize {
        self.denials.lock().map(|l| l.1).unwrap_or_default()
    }
}

/// Why a connect failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The policy refused the endpoint (scheme, host name, port).
    #[error("{0}")]
    Denied(Denial),
    /// The policy refused every address the endpoint's name resolved to.
    #[error("{0}")]
    AddressDenied(Denial),
    /// The name did not resolve.
    #[error("{host}: {why}")]
    NameNotFound {
        /// The host name.
        host: String,
        /// The resolver's answer.
        why: String,
    },
    /// No connection could be made to any allowed address.
    #[error("{endpoint}: {why}")]
    Connection {
        /// The endpoint.
        endpoint: String,
        /// What happened.
        why: String,
    },
}

/// Open a TCP connection to `endpoint` if the policy allows it, to an address
/// the policy allows. Returns the stream and the index of the declared
/// template that grants the endpoint. Where the operator serves the
/// endpoint's origin from another base URL, the connection goes there
/// (see [`AccountPolicy::served_at`]), and that address is checked.
pub async fn connect(
    policy: &AccountPolicy,
    endpoint: &Endpoint,
    audit: &Audit,
) -> Result<(TcpStream, usize), ConnectError> {
    let index = policy.check_endpoint(endpoint).map_err(|denial| {
        audit.denied(&denial);
        ConnectError::Denied(denial)
    })?;
    let endpoint = policy.served_at(endpoint);
    let addresses = resolve(endpoint).await?;
    let mut first_denial = None;
    let allowed: Vec<SocketAddr> = addresses
        .into_iter()
        .filter(|addr| match policy.check_address(endpoint, addr.ip()) {
            Ok(()) => true,
            Err(denial) => {
                first_denial.get_or_insert(denial);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(match first_denial {
            Some(denial) => {
                audit.denied(&denial);
                ConnectError::AddressDenied(denial)
            }
            None => ConnectError::NameNotFound {
                host: endpoint.host.clone(),
                why: "no address".into(),
            },
        });
    }
    let mut last_error = String::new();
    for addr in allowed {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, index));
            }
            Ok(Err(e)) => last_error = format!("{addr}: {e}"),
            Err(_) => last_error = format!("{addr}: timed out"),
        }
    }
    Err(ConnectError::Connection {
        endpoint: endpoint.to_string(),
        why: last_error,
    })
}

async fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, endpoint.port)]);
    }
    let not_found = |why: String| ConnectError::NameNotFound {
        host: endpoint.host.clone(),
        why,
    };
    let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
    match tokio::time::timeout(CONNECT_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(e)) => Err(not_found(e.to_string())),
        Err(_) => Err(not_found("DNS lookup timed out".into())),
    }
}
