//! Automatic certificates from an ACME CA (Let's Encrypt by default), with `rustls-acme`: it
//! orders over TLS-ALPN-01 on the HTTPS port itself (no port 80 needed), renews when a third of
//! the certificate's life is left, and starts from the kept copy, so a restart serves the kept
//! certificate without asking the CA. The certificate and the account key are kept in
//! `DATA/acme/` (folder 0700, files 0600), named by the directory and domains they belong to.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_acme::{AccountCache, AcmeConfig, CertCache};
use sha2::{Digest, Sha256};

use crate::config::AcmeSettings;

/// The two server configurations a listener needs: one for visitors (the current certificate)
/// and one that answers the CA's TLS-ALPN-01 validation handshakes.
pub struct AcmeTls {
    pub default: Arc<ServerConfig>,
    pub challenge: Arc<ServerConfig>,
}

/// Starts the certificate manager in the background and returns the configurations it feeds.
pub fn start(settings: &AcmeSettings, data: &Path, alpn: &[&[u8]]) -> Result<AcmeTls, String> {
    let client = Arc::new(client_config(settings.ca_file.as_deref())?);
    let cache = FileCache::new(data.join("acme"), &settings.directory, &settings.domains)?;
    let mut state = AcmeConfig::new_with_client_config(&settings.domains, client)
        .contact(settings.contact.iter())
        .directory(&settings.directory)
        .cache(cache)
        .state();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut default = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(state.resolver());
    default.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let challenge = state.challenge_rustls_config_with_provider(provider);
    let domains = settings.domains.join(",");
    tokio::spawn(async move {
        while let Some(event) = state.next().await {
            match event {
                Ok(ok) => tracing::info!(domains = %domains, event = ?ok, "acme"),
                Err(err) => tracing::warn!(domains = %domains, error = ?err, "acme: will retry"),
            }
        }
    });
    Ok(AcmeTls { default: Arc::new(default), challenge })
}

/// Trusts the usual web roots plus, for a private or test CA, the roots in `ca_file`.
fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("tls.acme_ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("tls.acme_ca_file {}: no certificate in it", path.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("tls.acme_ca_file {}: {e}", path.display()))?;
        }
    }
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| e.to_string())
}

/// Keeps the certificate and account key as private files in the data folder.
struct FileCache {
    cert: PathBuf,
    account: PathBuf,
}

impl FileCache {
    fn new(dir: PathBuf, directory_url: &str, domains: &[String]) -> Result<Self, String> {
        create_private_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut h = Sha256::new();
        h.update(directory_url.as_bytes());
        let account_tag = hex::encode(&h.clone().finalize()[..8]);
        for d in domains {
            h.update(b"\0");
            h.update(d.as_bytes());
        }
        let cert_tag = hex::encode(&h.finalize()[..8]);
        Ok(Self {
            cert: dir.join(format!("cert-{cert_tag}.pem")),
            account: dir.join(format!("account-{account_tag}.pem")),
        })
    }
}

fn read_if_present(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` as a 0600 file, via a temporary file and a rename so a crash never
/// leaves half a key behind.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[async_trait]
impl CertCache for FileCache {
    type EC = std::io::Error;
    async fn load_cert(&self, _domains: &[String], _directory_url: &str) -> Result<Option<Vec<u8>>, Self::EC> {
        read_if_present(&self.cert)
    }
    async fn store_cert(&self, _domains: &[String], _directory_url: &str, cert: &[u8]) -> Result<(), Self::EC> {
        write_private(&self.cert, cert)
    }
}

#[async_trait]
impl AccountCache for FileCache {
    type EA = std::io::Error;
    async fn load_account(&self, _contact: &[String], _directory_url: &str) -> Result<Option<Vec<u8>>, Self::EA> {
        read_if_present(&self.account)
    }
    async fn store_account(&self, _contact: &[String], _directory_url: &str, account: &[u8]) -> Result<(), Self::EA> {
        write_private(&self.account, account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = FileCache::new(tmp.path().join("acme"), "https://ca/dir", &["a.example".into()]).unwrap();
        write_private(&cache.cert, b"secret").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&cache.cert), 0o600);
            assert_eq!(mode(&tmp.path().join("acme")), 0o700);
        }
        assert_eq!(read_if_present(&cache.cert).unwrap().as_deref(), Some(&b"secret"[..]));
        assert!(read_if_present(&cache.account).unwrap().is_none());
    }
}
