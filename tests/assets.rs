//! Server-side asset capture against the real binary: a snapshot naming a stylesheet (which names
//! a font and an image) of the site's own origin gets them captured once, served from
//! `/dashboard/asset/…` with the stylesheet rewritten to the collector's copies; and the SSRF
//! guard: nothing is fetched from an origin the site does not own, from a private address unless
//! the site allows it, or beyond the size limit.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A tiny HTTP server on a free port: serves fixed bodies by path and logs every path asked.
struct Origin {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn origin(files: &[(&str, &str, Vec<u8>)]) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let files: BTreeMap<String, (String, Vec<u8>)> =
        files.iter().map(|(p, t, b)| (p.to_string(), (t.to_string(), b.clone()))).collect();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            seen.lock().unwrap().push(path.clone());
            let mut out = stream;
            let _ = match files.get(&path) {
                Some((t, b)) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {t}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    );
                    out.write_all(head.as_bytes()).and_then(|_| out.write_all(b))
                }
                None => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    Origin { url, log }
}

fn snapshot_batch(site: &str, sid: &str, page: &str, tree: Value) -> Value {
    let t = now_ms();
    json!({"v": 1, "site": site, "vid": id(900), "sid": sid, "seq": 0, "sent": t, "events": [
        {"k": "view", "t": t - 100, "url": page, "vw": 800, "vh": 600, "dw": 800, "dh": 600},
        {"k": "snap", "t": t - 50, "d": {"u": page, "w": 800, "h": 600, "x": 0, "y": 0, "a": [[0, 0, 1, tree]]}}
    ]})
}

/// The session's asset map, once every entry is decided or `wait` has passed.
fn assets_of(s: &TestServer, site: &str, sid: &str, wait: Duration) -> BTreeMap<String, Option<String>> {
    let end = Instant::now() + wait;
    loop {
        let (status, body) = s.api(&format!("/api/sites/{site}/sessions/{sid}"));
        assert_eq!(status, 200, "{body}");
        let map: BTreeMap<String, Option<String>> = serde_json::from_value(body["assets"].clone()).unwrap();
        if map.values().all(Option::is_some) || Instant::now() > end {
            return map;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(s: &TestServer, path: &str) -> reqwest::blocking::Response {
    s.http.get(s.url(path)).send().unwrap()
}

#[test]
fn stylesheets_images_and_fonts_of_the_site_are_captured_once_and_served_from_the_collector() {
    let png = b"\x89PNG\r\n\x1a\nfake".to_vec();
    let site = origin(&[
        (
            "/docs/theme/notes-9b5766c0.css",
            "text/css",
            b"@font-face{font-family:x;src:url(../fonts/x.woff2)} .a{background:url('/img/a.png')} .m{mask:url(#m)}"
                .to_vec(),
        ),
        ("/docs/fonts/x.woff2", "application/octet-stream", b"wOF2fake".to_vec()),
        ("/img/a.png", "image/png", png.clone()),
        ("/docs/img/logo.png", "image/png", png.clone()),
        ("/page.html", "text/html", b"<p>not an asset</p>".to_vec()),
    ]);
    let s = TestServer::start_with_config(Some(&format!(
        "[[site]]\nid = \"shop\"\norigins = [\"{}\"]\nassets_private = true\n",
        site.url
    )));
    let tree = json!(["html", {}, ["head", {}, ["link", {"rel": "stylesheet", "href": "theme/notes-9b5766c0.css"}]],
        ["body", {"style": "background:url(img/logo.png)"}, ["img", {"src": "/page.html"}], ["img", {"src": "https://elsewhere.example/t.gif"}]]]);
    let sid = id(901);
    let page = format!("{}/docs/", site.url);
    let mut batch = snapshot_batch("shop", &sid, &page, tree);
    batch["site"] = json!("shop");
    let r = s.http.post(s.url("/collect")).header("origin", &site.url).json(&batch).send().unwrap();
    assert_eq!(r.status(), 204);
    let map = assets_of(&s, "shop", &sid, Duration::from_secs(10));
    let css_url = format!("{}/docs/theme/notes-9b5766c0.css", site.url);
    assert_eq!(map.len(), 4, "{map:?}");
    assert_eq!(map[&format!("{}/page.html", site.url)], None, "an HTML page is not an asset");
    assert_eq!(map["https://elsewhere.example/t.gif"], None, "not the site's origin");
    let css_path = map[&css_url]
        .clone()
        .unwrap_or_else(|| panic!("stylesheet not captured: {map:?} {:?}", site.log.lock().unwrap()));
    assert!(css_path.starts_with("/dashboard/asset/") && css_path.len() == "/dashboard/asset/".len() + 64);

    let css = get(&s, &css_path);
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(css.headers()["x-content-type-options"], "nosniff");
    assert!(css.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    let text = css.text().unwrap();
    assert!(!text.contains(&site.url) && !text.contains("../fonts") && text.contains("url(#m)"), "{text}");
    let font = text.split("url(\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let font = get(&s, &font);
    assert_eq!(font.headers()["content-type"], "font/woff2");
    assert_eq!(font.bytes().unwrap().as_ref(), b"wOF2fake");
    let logo = map[&format!("{}/docs/img/logo.png", site.url)].clone().expect("style url() captured");
    assert_eq!(get(&s, &logo).bytes().unwrap().as_ref(), png.as_slice());
    assert_eq!(get(&s, &format!("/dashboard/asset/{}", "0".repeat(64))).status(), 404);
    assert_eq!(get(&s, "/dashboard/asset/../../Cargo.toml").status(), 404);

    // Once: a second session naming the same assets fetches nothing again.
    let before = site.log.lock().unwrap().len();
    let sid2 = id(902);
    let tree = json!(["html", {}, ["head", {}, ["link", {"rel": "stylesheet", "href": "theme/notes-9b5766c0.css"}]], ["body", {}]]);
    let r = s
        .http
        .post(s.url("/collect"))
        .header("origin", &site.url)
        .json(&snapshot_batch("shop", &sid2, &page, tree))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(assets_of(&s, "shop", &sid2, Duration::from_secs(5)).values().all(Option::is_some));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(site.log.lock().unwrap().len(), before, "fetched once");
    let log = site.log.lock().unwrap().clone();
    assert_eq!(log.iter().filter(|p| p.ends_with(".css")).count(), 1, "{log:?}");
}

#[test]
fn a_hostile_recording_makes_the_collector_fetch_nothing_it_should_not() {
    let big = vec![b'x'; 3000];
    let victim = origin(&[("/internal.css", "text/css", b".secret{}".to_vec()), ("/big.png", "image/png", big)]);
    let attacker = origin(&[("/a.css", "text/css", b".a{}".to_vec())]);
    // "shop" owns the victim's origin but did not allow private addresses; "lan" did, with a
    // tiny size limit; neither owns the attacker's.
    let s = TestServer::start_with_config(Some(&format!(
        "[assets]\nmax_bytes = 2048\n\n[[site]]\nid = \"shop\"\norigins = [\"{v}\"]\n\n[[site]]\nid = \"lan\"\norigins = [\"{v}\"]\nassets_private = true\n",
        v = victim.url
    )));
    let hostile = |target: &str| {
        json!(["html", {}, ["head", {}, ["link", {"rel": "stylesheet", "href": format!("{target}/internal.css")}],
            ["link", {"rel": "stylesheet", "href": format!("{}/a.css", attacker.url)}],
            ["style", {}, format!("@import '{}/a.css'; .x{{background:url(http://169.254.169.254/latest/meta-data/)}}", attacker.url)]],
            ["body", {}, ["img", {"src": format!("{target}/big.png")}], ["img", {"src": "http://localhost:1/x.png"}],
                ["img", {"src": "file:///etc/passwd"}]]])
    };
    let sid = id(910);
    let r = s
        .http
        .post(s.url("/collect"))
        .header("origin", &victim.url)
        .json(&snapshot_batch("shop", &sid, &format!("{}/", victim.url), hostile(&victim.url)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let map = assets_of(&s, "shop", &sid, Duration::from_secs(2));
    assert!(map.values().all(Option::is_none), "{map:?}");
    assert!(!map.keys().any(|u| u.starts_with("file:")));

    let sid = id(911);
    let r = s
        .http
        .post(s.url("/collect"))
        .header("origin", &victim.url)
        .json(&snapshot_batch("lan", &sid, &format!("{}/", victim.url), hostile(&victim.url)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let map = assets_of(&s, "lan", &sid, Duration::from_secs(3));
    assert!(map[&format!("{}/internal.css", victim.url)].is_some(), "allowed by configuration: {map:?}");
    assert_eq!(map[&format!("{}/big.png", victim.url)], None, "over max_bytes");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(attacker.log.lock().unwrap().clone(), Vec::<String>::new(), "the attacker's origin was never asked");
    let mut asked = victim.log.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked, ["/big.png", "/internal.css"], "only for the site that allows it, once each");
}
