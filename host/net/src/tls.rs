//! The host's TLS client configuration: the public web roots plus any CA the
//! operator adds (a company CA, or the tests' own).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A problem with the operator's extra CA file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read or holds no usable certificate.
    #[error("extra CA file {path}: {why}")]
    ExtraCa {
        /// The configured path.
        path: String,
        /// What went wrong.
        why: String,
    },
}

/// A shareable TLS client configuration.
#[derive(Clone)]
pub struct TlsConfig {
    connector: TlsConnector,
}

impl TlsConfig {
    /// The webpki roots, plus every certificate in the PEM file `extra_ca` if given.
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, TlsError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = extra_ca {
            let err = |why: String| TlsError::ExtraCa {
                path: path.display().to_string(),
                why,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no certificate in it".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| err(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::ExtraCa {
                path: String::new(),
                why: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConfig {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The rustls client configuration (for the host's own HTTP clients).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.connector.config().clone()
    }

    /// The TLS handshake over `tcp`, verifying the certificate for `host`.
    pub async fn handshake(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{host}: {e}"))
    }
}
