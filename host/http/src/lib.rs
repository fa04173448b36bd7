//! `wasi:http/outgoing-handler` for plugins, under the account's grants.
//!
//! Every request a plugin sends goes through [`HttpHooks::send_request`]:
//! its scheme, host and port are checked against the [`AccountPolicy`]
//! before DNS, the connection is made by `mailroom-net` (which checks the
//! resolved address), TLS uses the host's roots, and the credential the plugin
//! declared for that endpoint is attached by the host. A redirect is just
//! another request from the plugin, so each hop is checked the same way.
//! Whatever comes back is scrubbed of the account's secrets, so a server that
//! echoes headers cannot hand a token to the plugin.
//!
//! This crate must not open sockets itself or decide grants.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderValue};
use http_body::Frame;
use http_body_util::BodyExt;
use mailroom_net::{Audit, ConnectError, ConnectionBudget, ConnectionPermit, TlsConfig, connect};
use mailroom_policy::{AccountPolicy, Endpoint, Redactor, Scheme, Secret};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// The HTTP side of one run: one plugin, one account.
#[derive(Clone)]
pub struct HttpHooks {
    policy: Arc<AccountPolicy>,
    /// `Authorization` values by declared-endpoint index.
    credentials: Arc<Vec<Option<Secret>>>,
    redactor: Redactor,
    tls: TlsConfig,
    audit: Audit,
    budget: ConnectionBudget,
}

impl HttpHooks {
    /// Hooks for a run. `credentials[i]` is the `Authorization` header value
    /// for requests to the plugin's `i`-th declared endpoint, if any;
    /// `redactor` blanks the account's secrets out of responses; each
    /// request holds one share of `budget` until its response body is dropped.
    pub fn new(
        policy: Arc<AccountPolicy>,
        credentials: Arc<Vec<Option<Secret>>>,
        redactor: Redactor,
        tls: TlsConfig,
        audit: Audit,
        budget: ConnectionBudget,
    ) -> Self {
        HttpHooks {
            policy,
            credentials,
            redactor,
            tls,
            audit,
            budget,
        }
    }
}

/// The `Authorization` value for HTTP Basic.
pub fn basic_credential(user: &str, password: &Secret) -> Secret {
    use base64::Engine as _;
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()));
    Secret::new(format!("Basic {token}"))
}

/// The `Authorization` value for a bearer token.
pub fn bearer_credential(token: &Secret) -> Secret {
    Secret::new(format!("Bearer {}", token.expose()))
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let hooks = self.clone();
        Box::new(async move { hooks.send(request).await })
    }
}

type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

impl HttpHooks {
    /// Check, connect, attach the credential, send, and scrub the response.
    async fn send(self, mut request: http::Request<WasiBody>) -> Result<Sent, Error> {
        let HttpHooks {
            policy,
            credentials,
            redactor,
            tls,
            audit,
            budget,
        } = self;
        let permit = budget.take().ok_or(Error::ConnectionLimitReached)?;
        let uri = request.uri().clone();
        let scheme = match uri.scheme_str() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            _ => return Err(Error::HttpProtocolError),
        };
        let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == Scheme::Https { 443 } else { 80 });
        let endpoint =
            Endpoint::new(scheme, host, port).map_err(|_| Error::HttpRequestUriInvalid)?;
        let (tcp, index) = connect(&policy, &endpoint, &audit)
            .await
            .map_err(|e| match e {
                ConnectError::Denied(_) => Error::HttpRequestDenied,
                ConnectError::AddressDenied(_) => Error::DestinationIpProhibited,
                ConnectError::NameNotFound { .. } => Error::DnsError {
                    rcode: Some("NXDOMAIN".into()),
                    info_code: None,
                },
                ConnectError::Connection { .. } => Error::ConnectionRefused,
            })?;
        let target = policy.served_at(&endpoint);
        let io: Box<dyn Stream> = if target.scheme == Scheme::Https {
            let stream = tls.handshake(&target.host, tcp).await.map_err(|e| {
                tracing::debug!("plugin HTTPS handshake failed: {e}");
                Error::TlsCertificateError
            })?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(Error::from)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("plugin HTTP connection ended: {e}");
            }
        });

        // Origin-form on the wire; the host's credential replaces any the plugin set.
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        if let Some(Some(credential)) = credentials.get(index) {
            let mut value =
                HeaderValue::from_str(credential.expose()).map_err(|_| Error::HttpRequestDenied)?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, keep_taking(body));
        let response = sender.send_request(request).await.map_err(Error::from)?;
        let (mut parts, body) = response.into_parts();
        scrub_headers(&redactor, &mut parts.headers);
        let body = Redacted {
            inner: body.map_err(Error::from).boxed_unsync(),
            redactor,
            done: false,
            _permit: permit,
        };
        Ok((
            http::Response::from_parts(parts, body.boxed_unsync()),
            Box::new(async { Ok(()) }),
        ))
    }
}

/// The plugin's request body, passed on to the connection by a task that
/// goes on taking it after the connection stops wanting it (the server
/// answered early, or before reading the body): the plugin's late writes then
/// succeed and it reads the answer, instead of finding its body stream closed.
fn keep_taking(mut body: WasiBody) -> WasiBody {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let mut wanted = true;
        while let Some(frame) = body.frame().await {
            if wanted && tx.send(frame).await.is_err() {
                wanted = false;
            }
        }
    });
    Forwarded { rx }.boxed_unsync()
}

/// The receiving end of [`keep_taking`].
struct Forwarded {
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Error>>,
}

impl http_body::Body for Forwarded {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.rx.poll_recv(cx)
    }
}

/// Blank the secrets out of header values, and drop a header whose name
/// carries one (a name cannot hold the `*` that would blank it).
fn scrub_headers(redactor: &Redactor, headers: &mut http::HeaderMap) {
    if redactor.is_empty() {
        return;
    }
    let named: Vec<_> = headers
        .keys()
        .filter(|name| redactor.finds(name.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in named {
        headers.remove(&name);
    }
    for value in headers.values_mut() {
        let scrubbed = redactor.scrub(value.as_bytes());
        if scrubbed != value.as_bytes() {
            *value = HeaderValue::from_bytes(&scrubbed)
                .unwrap_or_else(|_| HeaderValue::from_static("***"));
        }
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A response body with the account's secrets blanked out. It holds the
/// request's share of the connection budget until the plugin drops it.
struct Redacted {
    inner: WasiBody,
    redactor: Redactor,
    done: bool,
    _permit: ConnectionPermit,
}

impl http_body::Body for Redacted {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = self.redactor.feed(&data);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        // Trailers are scrubbed like the head.
                        let frame = match frame.into_trailers() {
                            Ok(mut trailers) => {
                                scrub_headers(&self.redactor, &mut trailers);
                                Frame::trailers(trailers)
                            }
                            Err(frame) => frame,
                        };
                        return Poll::Ready(Some(Ok(frame)));
                    }
                },
                Poll::Ready(None) => {
                    self.done = true;
                    let rest = self.redactor.finish();
                    return Poll::Ready(
                        (!rest.is_empty()).then(|| Ok(Frame::data(Bytes::from(rest)))),
                    );
                }
                other => return other,
            }
        }
    }
}
