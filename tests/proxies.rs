//! Behind a proxy (issue 11, items 2 and 3), against the real binary: rate limits count the
//! visitor a trusted proxy forwards, never the proxy and never an address a stranger claims; and
//! first-party mode serves everything under `public_url`'s path, whether the proxy keeps or
//! strips the prefix.

mod common;

use std::sync::{Arc, Barrier};

use common::{batch, id, moves, now_ms, TestServer, BROWSER_UA};

/// Sends `n` batches from 10 threads released together; `forwarded_for(i)` is the
/// `X-Forwarded-For` of the i-th. Returns how many got 429.
fn send_through(s: &TestServer, n: u64, forwarded_for: fn(u64) -> String) -> usize {
    let threads = 10;
    let gate = Arc::new(Barrier::new(threads as usize));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, gate) = (s.url("/collect"), gate.clone());
            std::thread::spawn(move || {
                let http = common::client();
                gate.wait();
                let mut refused = 0;
                for i in (t..n).step_by(threads as usize) {
                    let b = batch(&id(i + 1), &id(i + 100_000), 0, moves(now_ms(), 2));
                    let r = http.post(&url).header("x-forwarded-for", forwarded_for(i)).json(&b).send().unwrap();
                    match r.status().as_u16() {
                        204 => {}
                        429 => refused += 1,
                        other => panic!("unexpected status {other}"),
                    }
                }
                refused
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

fn distinct(i: u64) -> String {
    format!("198.18.{}.{}", i / 250, i % 250 + 1)
}

/// A limit no loaded test machine can outrun: 100 at once, then one a second per client.
const LIMIT: &str = "[rate_limit]\ncollect_per_second = 1\ncollect_burst = 100\n";
const TRUSTED_LOOPBACK: &str = "trusted_proxies = [\"127.0.0.1/32\"]\n";

#[test]
fn many_visitors_behind_a_trusted_proxy_are_not_one_bucket() {
    let s = TestServer::start_with_config(Some(&format!("{TRUSTED_LOOPBACK}{LIMIT}")));
    assert_eq!(send_through(&s, 1500, distinct), 0, "visitors behind the proxy shared a rate limit");
}

#[test]
fn one_visitor_behind_a_trusted_proxy_is_still_limited() {
    let s = TestServer::start_with_config(Some(&format!("{TRUSTED_LOOPBACK}{LIMIT}")));
    // The visitor also forges a hop to the left; the proxy appended the address it saw.
    let refused = send_through(&s, 1500, |i| format!("{}, 203.0.113.7", distinct(i)));
    assert!(refused > 0, "1500 batches at once from one visitor were never limited");
}

#[test]
fn forged_addresses_from_an_untrusted_peer_do_not_escape_the_limit() {
    let s = TestServer::start_with_config(Some(&format!("trusted_proxies = [\"192.0.2.0/24\"]\n{LIMIT}")));
    let refused = send_through(&s, 1500, distinct);
    assert!(refused > 0, "forged X-Forwarded-For escaped the rate limit");
}

#[test]
fn the_environment_names_trusted_proxies_too() {
    // HUSHTALE_TRUSTED_PROXIES is read by the binary; a bad value is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hushtale"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data", "/nonexistent/never-created"])
        .env("HUSHTALE_TRUSTED_PROXIES", "127.0.0.1/32, not-a-cidr")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-a-cidr"));
}

const FIRST_PARTY: &str = "public_url = \"https://shop.example/stats\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .user_agent(BROWSER_UA)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[test]
fn first_party_mode_serves_everything_under_the_public_path() {
    let s = TestServer::start_with_config(Some(FIRST_PARTY));
    let http = no_redirects();
    // A proxy that keeps the prefix, and one that strips it: the same answers.
    for prefix in ["/stats", ""] {
        let get = |path: &str| {
            http.get(s.url(&format!("{prefix}{path}"))).header("x-forwarded-proto", "https").send().unwrap()
        };
        let r = get("/disable");
        assert_eq!(r.status(), 200, "{prefix}/disable");
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("Path=/stats;") || cookie.ends_with("Path=/stats"), "{cookie}");
        assert!(cookie.contains("Secure") && cookie.contains("SameSite=None"), "{cookie}");
        let page = r.text().unwrap();
        assert!(page.contains("href=\"/stats/pages/style.css\"") && page.contains("href=\"/stats/enable\""), "{page}");
        assert!(!page.contains("\"/enable\"") && !page.contains("\"/pages/"), "a link escaped the prefix");
        let page = get("/enable").text().unwrap();
        assert!(page.contains("action=\"/stats/enable\"") && page.contains("href=\"/stats/disable\""), "{page}");
        assert_eq!(get("/hushtale.js").status(), 200);
        let demo = get("/demo").text().unwrap();
        assert!(demo.contains("src=\"/stats/hushtale.js\"") && demo.contains("href=\"/stats/disable\""), "{demo}");
        let dashboard = get("/dashboard").text().unwrap();
        assert!(dashboard.contains("src=\"/stats/dashboard/app.js\""), "{dashboard}");
        assert_eq!(get("/pages/style.css").status(), 200);
        let b = batch(&id(1), &id(2), 0, moves(now_ms(), 2));
        let r = http.post(s.url(&format!("{prefix}/collect"))).json(&b).send().unwrap();
        assert_eq!(r.status(), 204, "{prefix}/collect");
        // Opting back in from the first-party page redirects under the prefix and clears the
        // cookie on the prefix's path.
        let r = http
            .post(s.url(&format!("{prefix}/enable")))
            .header("origin", "https://shop.example")
            .header("x-forwarded-proto", "https")
            .send()
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/stats/enable");
        let cleared: Vec<&str> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert!(cleared.iter().all(|c| c.contains("Path=/stats") && c.contains("Max-Age=0")), "{cleared:?}");
    }
    // `/statsx` is not under `/stats`.
    assert_eq!(http.get(s.url("/statsx/healthz")).send().unwrap().status(), 404);
}

#[test]
fn the_embedded_opt_out_sets_a_partitioned_cookie_and_may_be_framed_by_the_sites() {
    let config = "trusted_proxies = [\"127.0.0.1/32\"]\n[[site]]\nid = \"shop\"\norigins = [\"https://shop.example\", \"https://www.shop.example\"]\n";
    let s = TestServer::start_with_config(Some(config));
    let http = no_redirects();
    let r = http.get(s.url("/disable?embed=1")).header("x-forwarded-proto", "https").send().unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("Partitioned") && cookie.contains("Secure") && cookie.contains("SameSite=None"),
        "{cookie}"
    );
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors https://shop.example https://www.shop.example"), "{csp}");
    assert!(r.headers().get("x-frame-options").is_none());
    assert!(r.text().unwrap().contains("Recording is off"));
    // The full pages still refuse to be framed.
    let r = http.get(s.url("/disable")).header("x-forwarded-proto", "https").send().unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    // Opting back in from the widget clears both cookies and returns to the widget.
    let r = http
        .post(s.url("/enable?embed=1"))
        .header("origin", s.base.as_str())
        .header("x-forwarded-proto", "http")
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/enable?embed=1");
}
