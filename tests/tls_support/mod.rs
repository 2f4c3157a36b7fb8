//! Helpers for the HTTPS tests: a throw-away CA that issues certificates, the real binary started
//! with arguments of the test's choosing, and an HTTPS client that reports the negotiated
//! protocol and the certificate the server presented.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A CA that exists only for one test.
pub struct TestCa {
    pub cert_pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "hushtale test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert_pem: cert.pem(), cert, key }
    }

    /// A leaf certificate for `names` valid from `not_before` to `not_after`: (chain PEM, key PEM).
    pub fn issue(
        &self,
        names: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> (String, String) {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn issue_now(&self, names: &[&str]) -> (String, String) {
        let now = time::OffsetDateTime::now_utc();
        self.issue(names, now - time::Duration::hours(1), now + time::Duration::days(30))
    }
}

/// The real binary, started with `args` (plus a temp data folder and the test token).
pub struct Server {
    pub base: String,
    pub data: PathBuf,
    child: Child,
}

impl Server {
    pub fn start(data: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hushtale"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env("HUSHTALE_ADMIN_TOKEN", "test-operator-token")
            .env_remove("HUSHTALE_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("hushtale exited before listening").unwrap();
            if let Some(rest) = line.strip_prefix("hushtale listening on ") {
                break rest.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { base, data: data.to_owned(), child }
    }

    pub fn addr(&self) -> String {
        self.base.split("://").nth(1).unwrap().to_owned()
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the server.
    pub fn signal(&self, name: &str) {
        Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
    }

    pub fn stop(mut self) {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one HTTPS request saw.
pub struct Seen {
    pub alpn: Option<Vec<u8>>,
    pub status: u16,
    pub set_cookie: Option<String>,
    pub body: Vec<u8>,
    /// The certificate the server presented (leaf first).
    pub chain: Vec<CertificateDer<'static>>,
}

/// GET `path` over TLS to `addr`, trusting only `ca_pem`, offering `alpn`, naming `sni`.
pub async fn get(addr: &str, sni: &str, ca_pem: &str, alpn: &[&[u8]], path: &str) -> std::io::Result<Seen> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let tls = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
    let (_, session) = tls.get_ref();
    let negotiated = session.alpn_protocol().map(|p| p.to_vec());
    let chain = session.peer_certificates().unwrap_or_default().iter().map(|c| c.clone().into_owned()).collect();
    let req = http::Request::get(path).header("host", sni).body(Empty::<bytes::Bytes>::new()).unwrap();
    let resp = if negotiated.as_deref() == Some(b"h2") {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        let req = http::Request::get(format!("https://{sni}{path}")).body(Empty::<bytes::Bytes>::new()).unwrap();
        sender.send_request(req).await.map_err(std::io::Error::other)?
    } else {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(std::io::Error::other)?
    };
    let status = resp.status().as_u16();
    let set_cookie = resp.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes().to_vec();
    Ok(Seen { alpn: negotiated, status, set_cookie, body, chain })
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}
