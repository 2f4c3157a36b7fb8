//! HTTPS on the listener: rustls with certificate files (`server::certfiles`, reloaded when
//! renewed) or automatic certificates (`server::acme`); HTTP/2 and HTTP/1.1 offered by ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::acme::{self, AcmeTls};
use super::certfiles::CertFiles;
use crate::config::{Config, TlsSource};

const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Turns accepted TCP connections into TLS streams.
pub enum TlsAcceptor {
    Files(tokio_rustls::TlsAcceptor),
    Acme(AcmeTls),
}

impl TlsAcceptor {
    /// `None` when TLS is not configured. Needs a running Tokio runtime (ACME works in the
    /// background).
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        Ok(match &config.tls {
            None => None,
            Some(TlsSource::Files { cert, key }) => {
                Some(Self::Files(tokio_rustls::TlsAcceptor::from(Arc::new(from_files(cert, key)?))))
            }
            Some(TlsSource::Acme(settings)) => Some(Self::Acme(acme::start(settings, &config.data, &ALPN)?)),
        })
    }

    /// The handshake; `Ok(None)` for a connection that only came to answer an ACME challenge.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Option<TlsStream<TcpStream>>> {
        match self {
            Self::Files(acceptor) => acceptor.accept(tcp).await.map(Some),
            Self::Acme(acme) => {
                let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
                if rustls_acme::is_tls_alpn_challenge(&start.client_hello()) {
                    tracing::info!("answering an ACME TLS-ALPN-01 validation");
                    let mut tls = start.into_stream(acme.challenge.clone()).await?;
                    tokio::io::AsyncWriteExt::shutdown(&mut tls).await?;
                    return Ok(None);
                }
                start.into_stream(acme.default.clone()).await.map(Some)
            }
        }
    }
}

fn from_files(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let files = CertFiles::load(cert, key, provider.clone())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(files);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
