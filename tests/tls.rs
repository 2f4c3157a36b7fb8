//! HTTPS built in (issue 11, item 1), against the real binary: `--tls-cert/--tls-key` serve
//! HTTP/2 and HTTP/1.1 by ALPN, the opt-out cookie is `Secure` over a direct TLS connection, and
//! a broken key is refused at start with a clear message.

mod tls_support;

use rustls::pki_types::pem::PemObject;
use tls_support::{get, runtime, Server, TestCa};

#[test]
fn certificate_files_serve_http2_and_http1_by_alpn() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key) = ca.issue_now(&["localhost"]);
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()],
    );
    assert!(s.base.starts_with("https://"), "{}", s.base);
    runtime().block_on(async {
        let h2 = get(&s.addr(), "localhost", &ca.cert_pem, &[b"h2", b"http/1.1"], "/healthz").await.unwrap();
        assert_eq!((h2.alpn.as_deref(), h2.status), (Some(&b"h2"[..]), 200));
        let h1 = get(&s.addr(), "localhost", &ca.cert_pem, &[b"http/1.1"], "/healthz").await.unwrap();
        assert_eq!((h1.alpn.as_deref(), h1.status), (Some(&b"http/1.1"[..]), 200));
        let none = get(&s.addr(), "localhost", &ca.cert_pem, &[], "/disable").await.unwrap();
        assert_eq!(none.status, 200, "a client without ALPN speaks HTTP/1.1");
        let cookie = none.set_cookie.unwrap();
        assert!(cookie.contains("Secure") && cookie.contains("SameSite=None"), "{cookie}");
    });
    // Plain HTTP to the HTTPS port gets no answer.
    let plain = reqwest::blocking::Client::new().get(format!("http://{}/healthz", s.addr())).send();
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[test]
fn renewed_certificate_files_are_served_after_sighup_and_a_bad_pair_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let write = |(cert, key): (String, String)| {
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
    };
    write(ca.issue_now(&["localhost"]));
    let s = Server::start(
        &tmp.path().join("data"),
        &["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()],
    );
    let served = || {
        runtime().block_on(get(&s.addr(), "localhost", &ca.cert_pem, &[b"http/1.1"], "/healthz")).unwrap().chain[0]
            .to_vec()
    };
    let first = served();
    // certbot renews: new files, then `systemctl reload` sends SIGHUP.
    let renewed = ca.issue_now(&["localhost"]);
    write(renewed.clone());
    s.signal("HUP");
    let want = rustls::pki_types::CertificateDer::from_pem_slice(renewed.0.as_bytes()).unwrap().to_vec();
    let started = std::time::Instant::now();
    while served() != want {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the renewed certificate was never served");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_ne!(want, first);
    // A half-written renewal (a key that does not fit) is refused; the good certificate stays.
    let (other_cert, _) = ca.issue_now(&["localhost"]);
    std::fs::write(&cert_path, other_cert).unwrap();
    s.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(served(), want);
}

#[test]
fn a_key_that_does_not_fit_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, _) = ca.issue_now(&["localhost"]);
    let (_, other_key) = ca.issue_now(&["localhost"]);
    std::fs::write(tmp.path().join("cert.pem"), cert).unwrap();
    std::fs::write(tmp.path().join("key.pem"), other_key).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hushtale"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("data"))
        .env("HUSHTALE_TLS_CERT", tmp.path().join("cert.pem"))
        .env("HUSHTALE_TLS_KEY", tmp.path().join("key.pem"))
        .env("HUSHTALE_ADMIN_TOKEN", "test-operator-token")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not fit"), "{err}");
}
