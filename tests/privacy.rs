//! The privacy promises, proven through the real server: opt-outs store nothing, no personal
//! datum reaches the API, an export or the bytes on disk, visitors can see and erase their
//! data, retention deletes old sessions, and clients are rate limited.

mod common;

use common::*;
use serde_json::{json, Value};

fn first_session_count(s: &TestServer) -> usize {
    s.api("/api/sites/demo/sessions").1["sessions"].as_array().unwrap().len()
}

#[test]
fn every_opt_out_signal_stores_nothing() {
    let s = TestServer::start();
    let signals: [(&str, &str); 4] =
        [("cookie", "hushtale_optout=1"), ("cookie", "theme=dark; hushtale_optout=1"), ("dnt", "1"), ("sec-gpc", "1")];
    for (i, (name, value)) in signals.iter().enumerate() {
        let sid = id(500 + i as u64);
        let b = batch(&id(9), &sid, 0, vec![view(now_ms(), "https://example.com/", 1.0)]);
        let r = s.http.post(s.url("/collect")).header(*name, *value).json(&b).send().unwrap();
        assert_eq!(r.status(), 204, "{name}: {value}");
        assert_eq!(s.api(&format!("/api/sites/demo/sessions/{sid}")).0, 404, "{name} stored a session");
    }
    assert_eq!(first_session_count(&s), 0);
    assert_eq!(s.api("/api/sites/demo/stats").1["totals"]["pageviews"], 0);
    assert_eq!(s.metric("hushtale_batches_dropped_total{reason=\"optout\"}"), 2.0);
    assert_eq!(s.metric("hushtale_batches_dropped_total{reason=\"optout_dnt\"}"), 1.0);
    assert_eq!(s.metric("hushtale_batches_dropped_total{reason=\"optout_gpc\"}"), 1.0);
    // Opted-out batches are dropped before decoding: even garbage gets a 204.
    let r = s.http.post(s.url("/collect")).header("sec-gpc", "1").body("not a batch").send().unwrap();
    assert_eq!(r.status(), 204);
}

#[test]
fn dnt_and_gpc_can_be_configured_off() {
    let s = TestServer::start_with_config(Some("[privacy]\nhonour_dnt = false\nhonour_gpc = false\n"));
    let b = batch(&id(9), &id(10), 0, vec![view(now_ms(), "https://example.com/", 1.0)]);
    let r = s.http.post(s.url("/collect")).header("dnt", "1").header("sec-gpc", "1").json(&b).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(first_session_count(&s), 1);
    // The cookie is always honoured.
    let b = batch(&id(9), &id(11), 0, vec![view(now_ms(), "https://example.com/", 1.0)]);
    s.http.post(s.url("/collect")).header("cookie", "hushtale_optout=1").json(&b).send().unwrap();
    assert_eq!(first_session_count(&s), 1);
}

#[test]
fn disable_page_sets_a_lasting_cookie_and_optout_reports_it() {
    let s = TestServer::start();
    let r = s.http.get(s.url("/disable")).send().unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let html = r.text().unwrap();
    assert!(html.contains("opted out"), "page explains itself");
    assert!(html.contains("/enable"), "page links to opting back in");
    assert!(cookie.starts_with("hushtale_optout=1"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "plain HTTP uses Lax: {cookie}");
    let max_age: i64 = cookie.split("Max-Age=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
    assert!(max_age >= 365 * 86_400, "{cookie}");

    // X-Forwarded-Proto from a peer that is not a trusted proxy is ignored...
    let r = s.http.get(s.url("/disable")).header("x-forwarded-proto", "https").send().unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("SameSite=Lax") && !cookie.contains("Secure"), "{cookie}");
    // ...and believed from one: behind an HTTPS proxy the cookie must work cross-site.
    let proxied = TestServer::start_with_config(Some("trusted_proxies = [\"127.0.0.1/32\"]\n"));
    let r = proxied.http.get(proxied.url("/disable")).header("x-forwarded-proto", "https").send().unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("SameSite=None") && cookie.contains("Secure"), "{cookie}");
    assert!(!cookie.contains("Partitioned"), "the full page sets the collector's own cookie: {cookie}");

    let status = |cookie: Option<&str>| -> Value {
        let mut req = s.http.get(s.url("/optout")).header("origin", "https://site.example");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().unwrap();
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
        assert_eq!(r.headers()["access-control-allow-origin"], "https://site.example");
        r.json().unwrap()
    };
    assert_eq!(status(Some("hushtale_optout=1")), json!({"opted_out": true}));
    assert_eq!(status(None), json!({"opted_out": false}));
}

#[test]
fn only_the_servers_own_page_can_opt_a_visitor_back_in() {
    let s = TestServer::start();
    let host = s.base.trim_start_matches("http://").to_owned();
    let post = |origin: Option<&str>, referer: Option<&str>| {
        let mut req = s.http.post(s.url("/enable")).header("cookie", "hushtale_optout=1");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        reqwest::blocking::Client::builder()
            .user_agent(BROWSER_UA)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .execute(req.build().unwrap())
            .unwrap()
    };
    for (origin, referer) in [
        (Some("https://evil.example"), None),
        (None, Some("https://evil.example/page")),
        (None, None),
        (Some("null"), None),
    ] {
        let r = post(origin, referer);
        assert_eq!(r.status(), 403, "{origin:?} {referer:?}");
        assert!(r.headers().get("set-cookie").is_none());
    }
    let r = post(Some(&s.base), None);
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("hushtale_optout=;") && cookie.contains("Max-Age=0"), "{cookie}");
    let r = post(None, Some(&format!("http://{host}/enable")));
    assert_eq!(r.status(), 303);
    let page = s.http.get(s.url("/enable")).send().unwrap().text().unwrap();
    assert!(page.contains("<form method=\"post\" action=\"/enable\">"));
}

const CANARIES: [&str; 9] = [
    "jane.doe@example.com",
    "4111111111111111",
    "4111-1111-1111-1111",
    "+1 (555) 867-5309",
    "sk_live_51HqLyjWDarjtT1zdp7dc",
    "secret-token-query",
    "fragment-canary",
    "Jane Doe Private Title",
    "typed-value-canary",
];

fn canary_batch(vid: &str, sid: &str) -> Value {
    let t = now_ms();
    batch(
        vid,
        sid,
        0,
        vec![
            json!({"k":"view","t":t,
                "url":"https://shop.example/users/jane.doe@example.com/orders?token=secret-token-query&utm_source=newsletter#fragment-canary",
                "ref":"https://mail.example/inbox/jane.doe@example.com?q=4111111111111111",
                "title":"Jane Doe Private Title","vw":1280,"vh":720,"dw":1280,"dh":3000,"load_ms":100}),
            json!({"k":"click","t":t+1,"x":5,"y":5,"sel":"a[href=\"mailto:jane.doe@example.com\"]"}),
            json!({"k":"err","t":t+2,"msg":"card 4111-1111-1111-1111 declined for +1 (555) 867-5309, key sk_live_51HqLyjWDarjtT1zdp7dc"}),
            json!({"k":"input","t":t+3,"sel":"#email","len":20,"value":"typed-value-canary"}),
            json!({"k":"snap","t":t+4,"d":{"html":"<p>Contact jane.doe@example.com or +1 (555) 867-5309</p>"}}),
        ],
    )
}

#[test]
fn no_canary_reaches_the_api_the_export_or_the_disk() {
    let mut s = TestServer::start();
    let (vid, sid) = (id(77), id(78));
    assert_eq!(s.post_json(&canary_batch(&vid, &sid)).status(), 204);

    let (_, session) = s.api(&format!("/api/sites/demo/sessions/{sid}"));
    let (_, list) = s.api("/api/sites/demo/sessions");
    let export: Value =
        s.http.post(s.url("/me/export")).json(&json!({"site": "demo", "vid": vid})).send().unwrap().json().unwrap();
    let seen = format!("{session}{list}{export}");
    for canary in CANARIES {
        assert!(!seen.contains(canary), "{canary} leaked through the API: {seen}");
    }
    assert!(!seen.contains(&vid), "the raw visitor id is never shown");
    assert!(seen.contains("utm_source=newsletter"), "allowed parameters survive: {seen}");
    assert!(seen.contains("/users/:id/orders"), "e-mail path segment becomes :id: {seen}");
    assert_eq!(session["events"].as_array().unwrap().len(), 5);

    assert_eq!(s.stop(), Some(0));
    let mut leaks = vec![];
    for entry in walk(s.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        for canary in CANARIES.iter().chain([vid.as_str()].iter()) {
            if bytes.windows(canary.len()).any(|w| w == canary.as_bytes()) {
                leaks.push(format!("{canary} in {}", entry.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "personal data on disk: {leaks:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn visitors_export_and_forget_their_data_and_it_stays_forgotten() {
    let mut s = TestServer::start();
    let (me, other) = (id(1), id(2));
    let t = now_ms();
    for (i, vid) in [&me, &me, &other].iter().enumerate() {
        let b = batch(
            vid,
            &id(100 + i as u64),
            0,
            vec![view(t, "https://example.com/a", 1.0), click(t + 1, 1.0, 1.0, "a")],
        );
        assert_eq!(s.post_json(&b).status(), 204);
    }
    let export = |s: &TestServer, vid: &str| -> Value {
        let r = s.http.post(s.url("/me/export")).json(&json!({"site": "demo", "vid": vid})).send().unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    let mine = export(&s, &me);
    assert_eq!(mine["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(mine["sessions"][0]["events"].as_array().unwrap().len(), 2);
    let key = mine["visitor_key"].as_str().unwrap().to_owned();

    let r = s.http.post(s.url("/me/forget")).json(&json!({"site": "demo", "vid": me})).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(export(&s, &me)["sessions"], json!([]));
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(100))).0, 404);
    assert_eq!(export(&s, &other)["sessions"].as_array().unwrap().len(), 1, "others are untouched");
    // Rollups are aggregate and stay.
    assert_eq!(s.api("/api/sites/demo/stats").1["totals"]["pageviews"], 3);

    s.kill();
    s.restart();
    assert_eq!(export(&s, &me)["sessions"], json!([]), "erasure survives a crash and restart");
    let remaining: Vec<String> = s.api("/api/sites/demo/sessions").1["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["visitor"].as_str().unwrap().to_owned())
        .collect();
    assert!(!remaining.contains(&key));
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(102))).0, 200);

    // Operators erase by pseudonymous key.
    let other_key = export(&s, &other)["visitor_key"].as_str().unwrap().to_owned();
    let r = s.http.delete(s.url(&format!("/api/sites/demo/visitors/{other_key}"))).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(first_session_count(&s), 0);
    let r = s.http.delete(s.url("/api/sites/demo/visitors/zz")).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(r.status(), 400);
    let r = s.http.delete(s.url(&format!("/api/sites/demo/visitors/{other_key}"))).send().unwrap();
    assert_eq!(r.status(), 401);

    let r = s.http.post(s.url("/me/export")).json(&json!({"site": "nope", "vid": me})).send().unwrap();
    assert_eq!(r.status(), 404);
    let r = s.http.post(s.url("/me/export")).json(&json!({"site": "demo", "vid": "x"})).send().unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn retention_removes_old_sessions_but_keeps_rollups() {
    let mut s = TestServer::start_with_config(Some("[retention]\ninterval_secs = 1\n"));
    let t = now_ms();
    for i in 0..3 {
        let b = batch(&id(1), &id(300 + i), 0, vec![view(t, "https://example.com/", 1.0)]);
        assert_eq!(s.post_json(&b).status(), 204);
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(first_session_count(&s), 3, "young sessions are kept");
    s.stop();
    // Restart 31 days "later": past the default 30-day retention.
    std::fs::write(s.data_dir().join("../hushtale.toml"), "[retention]\ninterval_secs = 1\nclock_skew_days = 31\n")
        .unwrap();
    s.restart();
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = s.api("/api/sites/demo/sessions").1["sessions"].as_array().unwrap().len();
        if left == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(left, 0, "expired sessions are deleted");
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(300))).0, 404);
    assert_eq!(s.api("/api/sites/demo/stats").1["totals"]["pageviews"], 3, "rollups stay");
}

#[test]
fn collect_is_rate_limited_per_client() {
    let s = TestServer::start_with_config(Some("[rate_limit]\ncollect_per_second = 1\ncollect_burst = 3\n"));
    let mut codes = vec![];
    for i in 0..6 {
        let b = batch(&id(1), &id(400 + i), 0, vec![view(now_ms(), "https://example.com/", 1.0)]);
        let r = s.post_json(&b);
        if r.status() == 429 {
            assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u32>().unwrap() >= 1);
        }
        codes.push(r.status().as_u16());
    }
    assert_eq!(&codes[..3], &[204, 204, 204]);
    assert!(codes[3..].contains(&429), "{codes:?}");
}

#[test]
fn bots_are_dropped_and_counted() {
    let s = TestServer::start();
    let b = batch(&id(1), &id(2), 0, vec![view(now_ms(), "https://example.com/", 1.0)]);
    let r = s
        .http
        .post(s.url("/collect"))
        .header("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
        .json(&b)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(first_session_count(&s), 0);
    assert_eq!(s.metric("hushtale_batches_dropped_total{reason=\"bot\"}"), 1.0);
}
