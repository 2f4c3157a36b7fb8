//! HTTPS built in (issue 11, item 1), against the real binary: `--tls-cert/--tls-key` serve
//! HTTP/2 and HTTP/1.1 by ALPN, the opt-out cookie is `Secure` over a direct TLS connection, and
//! a broken key is refused at start with a clear message.

mod tls_support;

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
