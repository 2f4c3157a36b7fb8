//! Shared harness: start the real `hushtale` binary on a free port with a temp data folder, talk
//! HTTP to it, stop it (SIGTERM or kill -9) and restart it on the same data.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub const TOKEN: &str = "test-operator-token";
/// Batches without a browser User-Agent are dropped as bots, so the harness looks like Chrome.
pub const BROWSER_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// An HTTP client that sends a browser User-Agent.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).user_agent(BROWSER_UA).build().unwrap()
}

pub struct TestServer {
    pub base: String,
    child: Option<Child>,
    pub data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    config: Option<PathBuf>,
    pub http: reqwest::blocking::Client,
}

impl TestServer {
    /// Development defaults: one `demo` site accepting any origin.
    pub fn start() -> Self {
        Self::start_with_config(None)
    }

    /// With a TOML config (written into the temp folder).
    pub fn start_with_config(config: Option<&str>) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let config_path = config.map(|c| {
            let p = tmp.path().join("hushtale.toml");
            std::fs::write(&p, c).unwrap();
            p
        });
        let mut s = Self::spawn(data, config_path);
        s._tmp = Some(tmp);
        s
    }

    fn spawn(data: PathBuf, config: Option<PathBuf>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hushtale"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(&data)
            .env("HUSHTALE_ADMIN_TOKEN", TOKEN)
            .env_remove("HUSHTALE_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(c) = &config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd.spawn().expect("start hushtale");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("hushtale exited before listening").unwrap();
            if let Some(rest) = line.strip_prefix("hushtale listening on ") {
                break rest.trim().to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let http = client();
        let s = Self { base, child: Some(child), data, _tmp: None, config, http };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(self.url("/healthz")).send() {
                if r.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("server never became healthy");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        let status = child.wait().unwrap();
        status.code()
    }

    /// kill -9, no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts again on the same data folder (a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        let next = Self::spawn(self.data.clone(), self.config.clone());
        self.base = next.base.clone();
        self.child = next.into_child();
    }

    fn into_child(mut self) -> Option<Child> {
        self.child.take()
    }

    pub fn post_collect(&self, body: Vec<u8>, content_type: &str) -> reqwest::blocking::Response {
        self.http.post(self.url("/collect")).header("content-type", content_type).body(body).send().unwrap()
    }

    pub fn post_json(&self, batch: &Value) -> reqwest::blocking::Response {
        self.post_collect(serde_json::to_vec(batch).unwrap(), "application/json")
    }

    pub fn api(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).bearer_auth(TOKEN).send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn metric(&self, name: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().unwrap().text().unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A fresh random-looking 32-hex id derived from `n`.
pub fn id(n: u64) -> String {
    format!("{:016x}{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n ^ 0xdead_beef)
}

/// A valid batch with the given events.
pub fn batch(vid: &str, sid: &str, seq: u32, events: Vec<Value>) -> Value {
    json!({"v": 1, "site": "demo", "vid": vid, "sid": sid, "seq": seq, "sent": now_ms(), "events": events})
}

pub fn view(t: i64, url: &str, load_ms: f64) -> Value {
    json!({"k": "view", "t": t, "url": url, "vw": 1280, "vh": 720, "dw": 1280, "dh": 3000, "load_ms": load_ms})
}

pub fn click(t: i64, x: f64, y: f64, sel: &str) -> Value {
    json!({"k": "click", "t": t, "x": x, "y": y, "sel": sel})
}

pub fn moves(t: i64, n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"k": "move", "t": t + i as i64, "x": i, "y": i * 2})).collect()
}

/// Sends one batch per session `id(n)` for each `n` in `sessions` (visitor `id(n % 5)`): a
/// pageview and `moves_each` moves, asserting each is acknowledged (204 = durable). Returns the
/// session ids.
pub fn send_sessions(s: &TestServer, sessions: std::ops::Range<u64>, moves_each: usize) -> Vec<String> {
    let t = now_ms();
    sessions
        .map(|n| {
            let sid = id(n);
            let mut events = vec![view(t, "https://example.com/p", 10.0)];
            events.extend(moves(t + 1, moves_each));
            assert_eq!(s.post_json(&batch(&id(n % 5), &sid, 0, events)).status(), 204);
            sid
        })
        .collect()
}

/// Every session sent by [`send_sessions`] is there whole (`events` events) and once: one
/// pageview and one session counted per session id.
pub fn assert_each_once(s: &TestServer, sids: &[String], events: usize) {
    for sid in sids {
        let (status, body) = s.api(&format!("/api/sites/demo/sessions/{sid}"));
        assert_eq!(status, 200, "acknowledged session {sid} lost");
        assert_eq!(body["events"].as_array().unwrap().len(), events, "session {sid} whole, once");
    }
    let (_, stats) = s.api("/api/sites/demo/stats");
    assert_eq!(stats["totals"]["pageviews"], sids.len() as u64, "each pageview counted once");
    assert_eq!(stats["totals"]["sessions"], sids.len() as u64, "each session counted once");
}

pub fn today() -> String {
    let days = now_ms() / 86_400_000;
    // Civil date from days since epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", if m <= 2 { y + 1 } else { y }, m, d)
}
