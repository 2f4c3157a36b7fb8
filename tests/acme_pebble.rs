//! Automatic certificates for real (issue 11, item 1): the binary gets a certificate from Pebble,
//! the ACME test CA Let's Encrypt publishes (Debian's `pebble`, challenges always valid, on free
//! loopback ports, with a TLS certificate made here); keeps it and the account key as 0600 files
//! in the data folder; serves the kept copy after a restart while the CA is down; and renews a
//! kept certificate that is near its end.
//!
//! Needs `pebble` on the PATH. Without it the test says so and passes, unless
//! `HUSHTALE_REQUIRE_PEBBLE=1` (set by `./test`, which installs it).

mod tls_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tls_support::{get, runtime, Server, TestCa};

const DOMAIN: &str = "shop.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Pebble {
    child: Child,
    directory: String,
    management: String,
}

impl Pebble {
    /// Starts Pebble on the loopback ports `api` and `management` with a certificate from `ca`.
    fn start(dir: &Path, ca: &TestCa, api: u16, management: u16) -> Self {
        let (cert, key) = ca.issue_now(&["localhost"]);
        std::fs::write(dir.join("pebble-cert.pem"), cert).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key).unwrap();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{api}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .env("PEBBLE_VA_ALWAYS_VALID", "1")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "pebble never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, directory: format!("https://localhost:{api}/dir"), management: format!("127.0.0.1:{management}") }
    }

    /// Pebble's root for this run (it makes a new one every start).
    fn root(&self, ca: &TestCa) -> String {
        let seen = runtime().block_on(get(&self.management, "localhost", &ca.cert_pem, &[], "/roots/0")).unwrap();
        assert_eq!(seen.status, 200);
        String::from_utf8(seen.body).unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The certificate the server presents for `DOMAIN`, once it verifies against `root`.
fn served_leaf(s: &Server, root: &str) -> Vec<u8> {
    let started = Instant::now();
    loop {
        match runtime().block_on(get(&s.addr(), DOMAIN, root, &[b"h2", b"http/1.1"], "/healthz")) {
            Ok(seen) => {
                assert_eq!(seen.status, 200);
                return seen.chain[0].to_vec();
            }
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(60), "no certificate from that CA was served: {e}");
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

fn kept(data: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(data.join("acme"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* file kept in the data folder"))
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn certificates_from_an_acme_ca_are_kept_reused_offline_and_renewed() {
    if Command::new("pebble").arg("-h").output().is_err() {
        assert!(std::env::var_os("HUSHTALE_REQUIRE_PEBBLE").is_none(), "pebble is not installed");
        eprintln!("SKIPPED: pebble is not installed (apt-get install pebble)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    std::fs::write(tmp.path().join("test-ca.pem"), &ca.cert_pem).unwrap();
    let data = tmp.path().join("data");
    let ports = (free_port(), free_port());
    let pebble = Pebble::start(tmp.path(), &ca, ports.0, ports.1);
    let config = tmp.path().join("hushtale.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nacme_domains = [\"{DOMAIN}\"]\nacme_contact = \"mailto:ops@shop.test\"\nacme_directory = \"{}\"\nacme_ca_file = \"{}\"\n",
            pebble.directory,
            tmp.path().join("test-ca.pem").display()
        ),
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];

    // First start: a certificate from Pebble, kept privately.
    let s = Server::start(&data, &args);
    let first = served_leaf(&s, &pebble.root(&ca));
    let (cert_file, account_file) = (kept(&data, "cert-"), kept(&data, "account-"));
    #[cfg(unix)]
    assert_eq!((mode(&data.join("acme")), mode(&cert_file), mode(&account_file)), (0o700, 0o600, 0o600));
    s.stop();

    // Restart with the CA gone: the kept certificate is served.
    let root = pebble.root(&ca);
    drop(pebble);
    let s = Server::start(&data, &args);
    assert_eq!(served_leaf(&s, &root), first, "after a restart the kept certificate is served");
    s.stop();

    // A kept certificate with under a third of its life left is renewed at start.
    let now = time::OffsetDateTime::now_utc();
    let (old_cert, old_key) = ca.issue(&[DOMAIN], now - time::Duration::days(80), now + time::Duration::days(10));
    std::fs::write(&cert_file, format!("{old_key}{old_cert}")).unwrap();
    let pebble = Pebble::start(tmp.path(), &ca, ports.0, ports.1);
    let s = Server::start(&data, &args);
    let renewed = served_leaf(&s, &pebble.root(&ca));
    assert_ne!(renewed, first);
    let stored = std::fs::read_to_string(&cert_file).unwrap();
    assert!(!stored.contains(old_cert.trim()), "the renewed certificate replaced the kept one");
    #[cfg(unix)]
    assert_eq!(mode(&cert_file), 0o600);
    s.stop();
}
