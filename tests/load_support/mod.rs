//! Helpers shared by the load and attack tests (`overload`, `crash`, `slow_clients`): a browser
//! client, a config without per-IP rate limits (every request comes from 127.0.0.1), and the
//! server's process id and peak memory from `/proc`.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// Batches without a browser User-Agent are dropped as bots.
pub const UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A client like a browser's; `timeout` bounds every request so a test can never hang.
pub fn client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(UA)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

/// `extra` TOML plus `collect_per_second = 0`: load from one address (every test request comes
/// from 127.0.0.1) must meet the queue, not the per-IP rate limiter.
pub fn config(extra: &str) -> String {
    format!("{extra}\n[rate_limit]\ncollect_per_second = 0\n")
}

/// The pid of the `hushtale` process serving `data` (its command line names the folder).
pub fn pid_of(data: &Path) -> u32 {
    let want = data.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.first().is_some_and(|a| a.ends_with("hushtale")) && args.contains(&want) {
            return pid;
        }
    }
    panic!("no hushtale process serves {want}");
}

/// Peak resident memory (`VmHWM`) of `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024
}

/// A small deterministic generator (xorshift): tests print their seed so a run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_time() -> Self {
        let seed = std::env::var("HUSHTALE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("seed: HUSHTALE_TEST_SEED={seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
