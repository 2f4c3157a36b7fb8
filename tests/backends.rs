//! One suite, both backends: every scenario runs against the real server on sled and, when
//! `HUSHTALE_TEST_CLICKHOUSE` names a ClickHouse (`scripts/with-clickhouse.sh` starts one and
//! sets it), again on ClickHouse; each run checks known answers, and then the JSON answers of
//! the two runs must be equal (up to server-clock timestamps and per-server visitor keys).
//! Also: two collectors on one ClickHouse store a resent `(sid, seq)` once. When
//! `HUSHTALE_TEST_CLICKHOUSE_SHARDS` names a 2-shard cluster (`CH_SHARDS=2
//! scripts/with-clickhouse.sh`), every scenario runs a third time on it, with two collectors
//! (one writing to each shard) behind a round-robin proxy, and must answer as sled did.

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use common::*;
use serde_json::{json, Value};

/// The ClickHouse HTTP endpoint to test against, if any.
fn clickhouse() -> Option<String> {
    std::env::var("HUSHTALE_TEST_CLICKHOUSE").ok().map(|s| s.trim_end_matches('/').to_owned()).filter(|s| !s.is_empty())
}

fn skip_note(what: &str) {
    eprintln!(
        "NOTE: {what}: ClickHouse half skipped; set HUSHTALE_TEST_CLICKHOUSE=http://127.0.0.1:8123 \
         (scripts/with-clickhouse.sh cargo test does it for you)"
    );
}

/// A database of its own for each server group, so tests never see each other's data.
fn fresh_database() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("hushtale_test_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Runs SQL on the test ClickHouse (for checks only the database can answer, and cleanup).
fn ch_query(ch: &str, sql: &str) -> String {
    // Generous: dropping a database waits for its merges, slow on a busy machine.
    let http = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(180)).build().unwrap();
    let r = http.post(format!("{ch}/")).body(sql.to_owned()).send().unwrap();
    let status = r.status();
    let text = r.text().unwrap();
    assert!(status.is_success(), "{sql}: {text}");
    text
}

/// The 2-shard test cluster's `HOST:PORT`s, if one is running.
fn cluster_shards() -> Option<Vec<String>> {
    let shards = std::env::var("HUSHTALE_TEST_CLICKHOUSE_SHARDS").ok()?;
    let shards: Vec<String> = shards.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    (shards.len() >= 2).then_some(shards)
}

/// How a scenario's servers are configured: the `store = …` line (empty for sled).
struct Backend {
    store_line: String,
    /// ClickHouse servers (`http://…`) holding `database`, which is dropped afterwards.
    clickhouse: Vec<String>,
    database: String,
    /// On a cluster, the `store = …` line of a second collector, on the second shard.
    peer_line: Option<String>,
    /// Second collectors started so far (kept running until the scenario ends).
    peers: RefCell<Vec<TestServer>>,
}

impl Backend {
    fn sled() -> Self {
        Self::with(String::new(), vec![], String::new(), None)
    }

    fn clickhouse(ch: &str) -> Self {
        let db = fresh_database();
        Self::with(format!("store = \"clickhouse+{ch}/{db}\"\n"), vec![ch.to_owned()], db, None)
    }

    /// Two collectors, each writing to its own shard of the cluster `hushtale_test`.
    fn cluster(shards: &[String]) -> Self {
        let db = fresh_database();
        let list = shards.join(",");
        let line =
            |shard: &str| format!("store = \"clickhouse+http://{shard}/{db}?cluster=hushtale_test&shards={list}\"\n");
        let servers = shards.iter().map(|s| format!("http://{s}")).collect();
        Self::with(line(&shards[0]), servers, db.clone(), Some(line(&shards[1])))
    }

    fn with(store_line: String, clickhouse: Vec<String>, database: String, peer_line: Option<String>) -> Self {
        Self { store_line, clickhouse, database, peer_line, peers: RefCell::new(Vec::new()) }
    }

    /// A collector; on a cluster, a round-robin proxy in front of two collectors that share
    /// one secret (as collectors behind a load balancer must).
    fn start(&self, extra: &str) -> TestServer {
        let mut first = TestServer::start_with_config(Some(&format!("{}{extra}", self.store_line)));
        let Some(peer_line) = &self.peer_line else { return first };
        let mut peer = TestServer::start_with_config(Some(&format!("{peer_line}{extra}")));
        peer.stop();
        std::fs::copy(first.data_dir().join("secret"), peer.data_dir().join("secret")).unwrap();
        peer.restart();
        first.base = round_robin(vec![first.base.clone(), peer.base.clone()]);
        self.peers.borrow_mut().push(peer);
        first
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.peers.borrow_mut().clear();
        if !std::thread::panicking() && std::env::var_os("HUSHTALE_TEST_KEEP_DB").is_none() {
            for ch in &self.clickhouse {
                ch_query(ch, &format!("DROP DATABASE IF EXISTS {}", self.database));
            }
        }
    }
}

/// An HTTP proxy on a free port that sends each request to the next of `backends` in turn.
fn round_robin(backends: Vec<String>) -> String {
    use http_body_util::BodyExt;
    use hyper::body::Incoming;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let client = Client::builder(TokioExecutor::new()).build_http::<Incoming>();
            let next = Arc::new(AtomicUsize::new(0));
            while let Ok((stream, _)) = listener.accept().await {
                let (client, next, backends) = (client.clone(), next.clone(), backends.clone());
                let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    let to = &backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
                    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                    *req.uri_mut() = format!("{to}{path}").parse().unwrap();
                    let client = client.clone();
                    async move { client.request(req).await.map(|r| r.map(|b| b.boxed())) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
    });
    format!("http://{addr}")
}

/// Runs `scenario` on sled, then on ClickHouse if configured, and compares the answers.
fn both(name: &str, scenario: fn(&Backend) -> Value) {
    let sled = scenario(&Backend::sled());
    let Some(ch) = clickhouse() else {
        skip_note(name);
        return;
    };
    let other = scenario(&Backend::clickhouse(&ch));
    let mut diffs = vec![];
    compare("", &sled, &other, &mut diffs);
    assert!(diffs.is_empty(), "{name}: sled and ClickHouse answer differently:\n{}", diffs.join("\n"));
    let Some(shards) = cluster_shards() else {
        eprintln!("NOTE: {name}: 2-shard cluster half skipped (CH_SHARDS=2 scripts/with-clickhouse.sh runs it)");
        return;
    };
    // A fresh sled run next to it: server-clock fields are compared within seconds.
    let sled = scenario(&Backend::sled());
    let clustered = scenario(&Backend::cluster(&shards));
    compare("", &sled, &clustered, &mut diffs);
    assert!(diffs.is_empty(), "{name}: sled and the 2-shard cluster answer differently:\n{}", diffs.join("\n"));
}

/// Server-clock fields (the server corrects client skew on arrival) may differ by the time
/// the two runs took to send (starting two collectors on a busy machine takes seconds);
/// visitor keys differ because each test server has its own secret;
/// cursors embed arrival times.
fn compare(path: &str, a: &Value, b: &Value, diffs: &mut Vec<String>) {
    let key = path.rsplit('.').next().unwrap_or("");
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                compare(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    diffs,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                compare(&format!("{path}[{i}]"), p, q, diffs);
            }
        }
        (Value::Number(x), Value::Number(y)) if matches!(key, "t" | "start" | "duration_ms") => {
            let far = (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() > 20_000.0;
            far.then(|| diffs.push(format!("{path}: {x} vs {y}")));
        }
        (Value::String(x), Value::String(y)) if matches!(key, "visitor" | "visitor_key" | "next") => {
            let differ = x.len() != y.len() && key != "next";
            differ.then(|| diffs.push(format!("{path}: {x} vs {y}")));
        }
        _ if a != b => diffs.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

fn get(s: &TestServer, path: &str) -> Value {
    let (status, body) = s.api(path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn page_view(t: i64, path: &str, vw: f64, vh: f64, dh: f64, load: f64) -> Value {
    json!({"k":"view","t":t,"url":format!("https://shop.example{path}"),"vw":vw,"vh":vh,"dw":vw,"dh":dh,"load_ms":load})
}

fn export(s: &TestServer, vid: &str) -> Value {
    let r = s.http.post(s.url("/me/export")).json(&json!({"site": "demo", "vid": vid})).send().unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

fn session_ids(v: &Value) -> Vec<String> {
    v["sessions"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect()
}

// ---- scenarios: each asserts known answers and returns what it saw ----

fn field(k: &str, t: i64, sel: &str, form: &str, len: Option<u32>) -> Value {
    let mut e = json!({"k": k, "t": t, "sel": sel, "form": form});
    if let Some(len) = len {
        e["len"] = json!(len);
    }
    e
}

/// Forms, funnels and attention from known visits (batches split mid-pageview), then one
/// visitor forgotten: the funnel's drop-off lists never name an erased session.
fn forms_funnel_attention(b: &Backend) -> Value {
    let s = b.start("");
    let t = now_ms() - 600_000;
    let f = "form#signup";
    let post = |vid: u64, sid: u64, seq: u32, events: Vec<Value>| {
        assert_eq!(s.post_json(&batch(&id(vid), &id(sid), seq, events)).status(), 204);
    };
    // A submits: name 2 s (typing after 500 ms), email 1 s left blank, then submit. Timed pairs
    // stay within one batch (the server corrects each batch's clock on its own); the form's
    // state spans both.
    post(
        1,
        100,
        0,
        vec![
            page_view(t, "/signup", 1000.0, 500.0, 1000.0, 10.0),
            field("focus", t + 1000, "input#name", f, None),
            json!({"k":"input","t":t + 1500,"sel":"input#name","len":3}),
            field("blur", t + 3000, "input#name", f, Some(3)),
        ],
    );
    post(
        1,
        100,
        1,
        vec![
            field("focus", t + 3000, "input[name=email]", f, None),
            field("blur", t + 4000, "input[name=email]", f, Some(0)),
            json!({"k":"submit","t":t + 4100,"form":f}),
        ],
    );
    // B leaves at the e-mail field after refilling the name.
    post(
        2,
        101,
        0,
        vec![
            page_view(t, "/signup", 1000.0, 500.0, 1000.0, 10.0),
            field("focus", t + 1000, "input#name", f, None),
            field("blur", t + 2000, "input#name", f, Some(4)),
            field("focus", t + 2000, "input#name", f, None),
            field("blur", t + 5000, "input#name", f, Some(6)),
            field("focus", t + 6000, "input[name=email]", f, None),
            field("focus", t + 7000, "input#q", "", None),
            field("blur", t + 8000, "input#q", "", Some(2)),
        ],
    );
    let forms = get(&s, "/api/sites/demo/forms?path=/signup");
    let form = &forms["forms"][0];
    assert_eq!(
        (form["form"].as_str(), form["starters"].as_u64(), form["submits"].as_u64()),
        (Some(f), Some(2), Some(1))
    );
    assert_eq!(form["abandon_rate"], 0.5);
    let fields = form["fields"].as_array().unwrap();
    let name = &fields[0];
    assert_eq!(name["field"], "input#name", "fields in the order visitors meet them");
    assert_eq!((name["interactions"].as_u64(), name["refills"].as_u64()), (Some(3), Some(1)));
    assert_eq!(name["avg_time_ms"], 2000.0, "(2000 + 1000 + 3000) / 3");
    assert_eq!(name["avg_hesitation_ms"], 500.0);
    assert_eq!((name["blank_on_submit"].as_u64(), name["drop_offs"].as_u64()), (Some(0), Some(0)));
    let email = &fields[1];
    assert_eq!((email["blank_on_submit"].as_u64(), email["drop_offs"].as_u64()), (Some(1), Some(1)));
    let outside = forms["forms"].as_array().unwrap().iter().find(|x| x["form"] == "").unwrap();
    assert_eq!((outside["starters"].as_u64(), outside["abandon_rate"].clone()), (Some(1), Value::Null));

    // Funnel /, /product/*, /checkout within 60 s: sessions posted oldest first.
    let journeys: [(u64, &[(i64, &str)]); 5] = [
        (200, &[(0, "/"), (10_000, "/product/1"), (20_000, "/checkout")]),
        (201, &[(0, "/"), (5_000, "/product/2")]),
        (202, &[(0, "/"), (100_000, "/product/3")]),
        (203, &[(0, "/"), (2_000, "/product/1"), (32_000, "/checkout")]),
        (204, &[(0, "/product/1"), (1_000, "/")]),
    ];
    for (sid, views) in journeys {
        let events = views.iter().map(|(dt, p)| page_view(t + dt, p, 1000.0, 500.0, 1000.0, 10.0)).collect();
        post(sid, sid, 0, events);
    }
    let funnel = get(&s, "/api/sites/demo/funnel?steps=/,/product/*,/checkout&within_ms=60000");
    let counts: Vec<u64> =
        funnel["steps"].as_array().unwrap().iter().map(|x| x["sessions"].as_u64().unwrap()).collect();
    assert_eq!(counts, [5, 3, 2]);
    assert_eq!(funnel["steps"][1]["conversion"], 0.6);
    assert_eq!(funnel["steps"][1]["median_ms_from_previous"], 5000.0);
    assert_eq!(funnel["steps"][2]["median_ms_from_previous"], 20_000.0);
    assert_eq!(funnel["dropped"], json!([[id(204), id(202)], [id(201)]]), "newest first");

    // Attention on a long page: 4 s at the top, 3 s at the middle, then hidden.
    post(
        3,
        300,
        0,
        vec![
            page_view(t, "/long", 1000.0, 500.0, 5000.0, 10.0),
            json!({"k":"move","t":t + 2000,"x":5,"y":5}),
            json!({"k":"scroll","t":t + 4000,"y":2500}),
            json!({"k":"vis","t":t + 7000,"hidden":true}),
        ],
    );
    let attention = get(&s, "/api/sites/demo/attention?path=/long");
    let ms: Vec<f64> =
        attention["bands"].as_array().unwrap().iter().map(|x| x["avg_visible_ms"].as_f64().unwrap()).collect();
    assert_eq!(ms.len(), 20);
    assert_eq!((ms[0], ms[1], ms[2], ms[10], ms[11], ms[12]), (4000.0, 4000.0, 0.0, 3000.0, 3000.0, 0.0));

    let r = s.http.post(s.url("/me/forget")).json(&json!({"site": "demo", "vid": id(202)})).send().unwrap();
    assert_eq!(r.status(), 204);
    let after = get(&s, "/api/sites/demo/funnel?steps=/,/product/*,/checkout&within_ms=60000");
    assert_eq!(after["dropped"][0], json!([id(204)]), "an erased session is gone from the index");
    json!({"forms": forms, "funnel": funnel, "attention": attention, "after": after})
}

fn collect_stats_sessions_events(b: &Backend) -> Value {
    let s = b.start("");
    let t = now_ms() - 60_000;
    let loads = [100.0, 200.0, 300.0, 400.0, 500.0];
    let sessions = [(id(1), id(10)), (id(1), id(11)), (id(2), id(12))];
    let mut k = 0;
    for (i, (vid, sid)) in sessions.iter().enumerate() {
        let n = if i == 0 { 3 } else { 1 };
        let mut events = vec![];
        for j in 0..n {
            events.push(view(t + i as i64 * 1000 + j as i64 * 10, "https://example.com/blog/post?ref=x", loads[k]));
            k += 1;
        }
        events.push(click(t + i as i64 * 1000 + 50, 10.0, 20.0, "main > a"));
        assert_eq!(s.post_json(&batch(vid, sid, 0, events)).status(), 204);
    }
    // A session whose batches arrive out of order, one of them twice.
    let (vid, sid) = (id(3), id(4));
    // Each batch is built just before it is sent: the server corrects times by `sent`.
    let b1 = || {
        let events = vec![json!({"k":"scroll","t":t + 300,"y":500}), json!({"k":"scroll","t":t + 200,"y":400})];
        batch(&vid, &sid, 1, events)
    };
    let b0 = || {
        let events = vec![view(t, "https://example.com/", 50.0), json!({"k":"scroll","t":t + 100,"y":300})];
        batch(&vid, &sid, 0, events)
    };
    for b in [&b1 as &dyn Fn() -> Value, &b0, &b1] {
        assert_eq!(s.post_json(&b()).status(), 204);
    }
    let stats = get(&s, &format!("/api/sites/demo/stats?from={d}&to={d}", d = today()));
    assert_eq!(stats["days"][0]["pageviews"], 6);
    assert_eq!(stats["days"][0]["sessions"], 4);
    assert_eq!(stats["days"][0]["visitors"], 3);
    let week = get(&s, "/api/sites/demo/stats");
    assert_eq!(week["totals"]["visitors"], 3);
    let list = get(&s, "/api/sites/demo/sessions");
    assert_eq!(session_ids(&list), vec![id(4), id(12), id(11), id(10)]);
    let events = get(&s, &format!("/api/sites/demo/sessions/{sid}"));
    let ys: Vec<Value> = events["events"].as_array().unwrap().iter().map(|e| e["y"].clone()).collect();
    assert_eq!(ys, vec![Value::Null, json!(300.0), json!(400.0), json!(500.0)]);
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(999))).0, 404);
    assert_eq!(s.metric("hushtale_batches_duplicate_total"), 1.0);
    let pages = get(&s, "/api/sites/demo/pages");
    json!({"stats": stats, "week": week, "list": list, "events": events, "pages": pages})
}

fn insights_pages_heatmap_scroll(b: &Backend) -> Value {
    let s = b.start("");
    let t = now_ms();
    let views = [("/a", 100.0), ("/a", 200.0), ("/a", 300.0), ("/b", 50.0), ("/b", 150.0), ("/c", 10.0)];
    for (i, (path, load)) in views.iter().enumerate() {
        let mut events = vec![page_view(t + i as i64, path, 1000.0, 500.0, 1000.0, *load)];
        if *path == "/a" {
            events.push(click(t + i as i64 + 1, 10.0, 10.0, "#x"));
        }
        assert_eq!(s.post_json(&batch(&id(1), &id(10 + i as u64), 0, events)).status(), 204);
    }
    let mut events = vec![page_view(t, "/landing", 1280.0, 800.0, 4000.0, 100.0)];
    for i in 0..5 {
        events.push(json!({"k":"click","t":t + 2000 * (i + 1),"x":960,"y":1210,"sel":"#buy","ex":250,"ey":900}));
    }
    events.push(click(t + 20_000, 10.0, 10.0, "header a"));
    events.extend((0..10).map(|i| json!({"k":"move","t":t + 30_000 + i,"x":500,"y":100 + i * 50})));
    assert_eq!(s.post_json(&batch(&id(1), &id(2), 0, events)).status(), 204);
    let mobile = vec![page_view(t, "/landing", 375.0, 700.0, 6000.0, 100.0), click(t + 5, 100.0, 5000.0, "#menu")];
    assert_eq!(s.post_json(&batch(&id(3), &id(4), 0, mobile)).status(), 204);
    for (i, scroll) in [None, Some(500.0), Some(1500.0)].iter().enumerate() {
        let mut events = vec![page_view(t, "/article", 1200.0, 500.0, 2000.0, 100.0)];
        if let Some(y) = scroll {
            events.push(json!({"k":"scroll","t":t + 10,"y":y}));
        }
        assert_eq!(s.post_json(&batch(&id(1), &id(20 + i as u64), 0, events)).status(), 204);
    }
    let sid = id(30);
    let b0 = vec![page_view(t, "/article", 1200.0, 500.0, 2000.0, 100.0), json!({"k":"scroll","t":t + 10,"y":600})];
    assert_eq!(s.post_json(&batch(&id(2), &sid, 0, b0)).status(), 204);
    let b1 = vec![json!({"k":"scroll","t":t + 20,"y":200}), json!({"k":"scroll","t":t + 30,"y":1000})];
    assert_eq!(s.post_json(&batch(&id(2), &sid, 1, b1)).status(), 204);

    let pages = get(&s, "/api/sites/demo/pages");
    assert_eq!(pages["pages"][0]["path"], "/article");
    let a = pages["pages"].as_array().unwrap().iter().find(|p| p["path"] == "/a").unwrap().clone();
    assert_eq!(
        (a["pageviews"].as_u64(), a["avg_load_ms"].as_f64(), a["clicks"].as_u64()),
        (Some(3), Some(200.0), Some(3))
    );
    let paged = get(&s, "/api/sites/demo/pages?limit=2&offset=2");
    let desktop = get(&s, "/api/sites/demo/heatmap?path=/landing&kind=click&width=desktop");
    let hottest = &desktop["cells"][0];
    assert_eq!((hottest["x"].as_u64(), hottest["y"].as_u64(), hottest["n"].as_u64()), (Some(37), Some(60), Some(5)));
    assert_eq!(desktop["elements"][0]["points"], json!([[2, 9, 5]]));
    let all = get(&s, "/api/sites/demo/heatmap?path=/landing&kind=click");
    let moves = get(&s, "/api/sites/demo/heatmap?path=/landing&kind=move");
    let total: u64 = moves["cells"].as_array().unwrap().iter().map(|c| c["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 10);
    let scroll = get(&s, "/api/sites/demo/scroll?path=/article");
    assert_eq!(scroll["pageviews"], 4);
    assert_eq!(scroll["avg_depth_pct"], 62.5);
    let none = get(&s, "/api/sites/demo/scroll?path=/nowhere");
    json!({"pages": pages, "paged": paged, "desktop": desktop, "all": all, "moves": moves, "scroll": scroll, "none": none})
}

fn session_filters_and_paging(b: &Backend) -> Value {
    let s = b.start("");
    let t = now_ms() - 60_000;
    let rage = vec![
        page_view(t, "/checkout", 1200.0, 800.0, 1600.0, 100.0),
        click(t + 100, 500.0, 500.0, "#pay"),
        click(t + 300, 505.0, 502.0, "#pay"),
        click(t + 500, 498.0, 499.0, "#pay"),
        json!({"k":"click","t":t + 30_000,"x":10,"y":10,"sel":"#logo","dead":true}),
        json!({"k":"snap","t":t + 1,"d":{"html":"<p>hi</p>"}}),
    ];
    assert_eq!(s.post_json(&batch(&id(1), &id(40), 0, rage)).status(), 204);
    for i in 0..7u64 {
        let calm = vec![page_view(t, "/home", 1200.0, 800.0, 1600.0, 100.0)];
        assert_eq!(s.post_json(&batch(&id(2), &id(100 + i), 0, calm)).status(), 204);
    }
    let mut out = serde_json::Map::new();
    for q in [
        "entry=/checkout",
        "replay=true",
        "replay=false",
        "min_duration_ms=1000",
        "min_rage_clicks=1",
        "device=mobile",
        "limit=3&entry=/home",
    ] {
        out.insert(q.into(), get(&s, &format!("/api/sites/demo/sessions?{q}")));
    }
    assert_eq!(session_ids(&out["min_rage_clicks=1"]), vec![id(40)]);
    assert_eq!(out["min_rage_clicks=1"]["sessions"][0]["rage_clicks"], 1);
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/sites/demo/sessions?limit=3&cursor={c}"),
            None => "/api/sites/demo/sessions?limit=3".into(),
        };
        let page = get(&s, &path);
        seen.extend(session_ids(&page));
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    // Paging walks the whole newest-first list once, in order.
    let whole = session_ids(&get(&s, "/api/sites/demo/sessions?limit=100"));
    assert_eq!(whole.len(), 8);
    assert_eq!(seen, whole);
    out.insert("paged".into(), json!(seen));
    Value::Object(out)
}

fn spa_views_and_signals(b: &Backend) -> Value {
    let s = b.start("");
    let t = now_ms() - 60_000;
    let spa = |t: i64, path: &str, dh: f64| json!({"k":"view","t":t,"url":format!("https://shop.example{path}"),"vw":1200,"vh":800,"dw":1200,"dh":dh,"spa":true});
    let dead = |t: i64| json!({"k":"click","t":t,"x":40,"y":60,"sel":"#inert","dead":true});
    let err = |t: i64| json!({"k":"err","t":t,"msg":"boom"});
    let visit = vec![
        page_view(t, "/app", 1200.0, 800.0, 1600.0, 100.0),
        spa(t + 1_000, "/app/a", 4000.0),
        spa(t + 2_000, "/app/a#/settings", 900.0),
        spa(t + 4_000, "/app/a", 4000.0),
        dead(t + 10_000),
        dead(t + 10_300),
        dead(t + 10_600),
        click(t + 20_000, 400.0, 90.0, "#throws"),
    ];
    assert_eq!(s.post_json(&batch(&id(1), &id(50), 0, visit)).status(), 204);
    // The click's error arrives in the next batch (300 ms later: each batch's times are corrected
    // by its own clock skew, which varies by a few ms with latency).
    assert_eq!(s.post_json(&batch(&id(1), &id(50), 1, vec![err(t + 20_300)])).status(), 204);
    let calm = vec![page_view(t, "/app", 1200.0, 800.0, 1600.0, 100.0), click(t + 500, 5.0, 5.0, "#ok")];
    assert_eq!(s.post_json(&batch(&id(2), &id(51), 0, calm)).status(), 204);

    let pages = get(&s, "/api/sites/demo/pages");
    let row = |path: &str| pages["pages"].as_array().unwrap().iter().find(|p| p["path"] == path).unwrap().clone();
    let a = row("/app/a");
    let figures = |p: &Value| -> Vec<u64> {
        ["pageviews", "clicks", "dead_clicks", "rage_clicks", "error_clicks", "quick_backs"]
            .iter()
            .map(|k| p[k].as_u64().unwrap())
            .collect()
    };
    assert_eq!(figures(&a), [2, 4, 3, 1, 1, 0], "{pages}");
    assert_eq!(a["avg_load_ms"], Value::Null);
    assert_eq!(figures(&row("/app/a#/settings")), [1, 0, 0, 0, 0, 1]);
    let mut out = serde_json::Map::new();
    out.insert("pages".into(), pages.clone());
    for q in ["signal=rage", "signal=dead", "signal=error", "signal=quickback", "signal=dead,quickback"] {
        let answer = get(&s, &format!("/api/sites/demo/sessions?{q}"));
        assert_eq!(session_ids(&answer), vec![id(50)], "{q}");
        out.insert(q.into(), answer);
    }
    let dead_heat = get(&s, "/api/sites/demo/heatmap?path=/app/a&kind=dead");
    assert_eq!(dead_heat["cells"][0]["n"], 3);
    out.insert("dead_heatmap".into(), dead_heat);
    out.insert("detail".into(), get(&s, &format!("/api/sites/demo/sessions/{}", id(50))));
    Value::Object(out)
}

fn export_forget_and_canaries(b: &Backend) -> Value {
    let mut s = b.start("");
    let (me, other) = (id(1), id(2));
    let t = now_ms();
    for (i, vid) in [&me, &me, &other].iter().enumerate() {
        let events = vec![view(t, "https://example.com/a", 1.0), click(t + 1, 1.0, 1.0, "a")];
        assert_eq!(s.post_json(&batch(vid, &id(100 + i as u64), 0, events)).status(), 204);
    }
    let canary = batch(
        &other,
        &id(200),
        0,
        vec![
            json!({"k":"view","t":t,"url":"https://shop.example/users/jane.doe@example.com/orders?token=secret-token-query&utm_source=newsletter#fragment-canary","vw":1280,"vh":720,"dw":1280,"dh":3000}),
            json!({"k":"err","t":t+2,"msg":"card 4111-1111-1111-1111 declined for +1 (555) 867-5309"}),
            json!({"k":"input","t":t+3,"sel":"#email","len":20,"value":"typed-value-canary"}),
        ],
    );
    assert_eq!(s.post_json(&canary).status(), 204);
    let mine = export(&s, &me);
    assert_eq!(mine["sessions"].as_array().unwrap().len(), 2);
    let r = s.http.post(s.url("/me/forget")).json(&json!({"site": "demo", "vid": me})).send().unwrap();
    assert_eq!(r.status(), 204);
    let after = export(&s, &me);
    assert_eq!(after["sessions"], json!([]));
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(100))).0, 404);
    let stats = get(&s, "/api/sites/demo/stats");
    assert_eq!(stats["totals"]["pageviews"], 4, "rollups stay");
    let day = get(&s, &format!("/api/sites/demo/stats?from={d}&to={d}", d = today()));
    assert_eq!(day["totals"]["visitors"], 2, "a day's visitors are aggregate and stay");
    s.kill();
    s.restart();
    assert_eq!(export(&s, &me)["sessions"], json!([]), "erasure survives a restart");
    let theirs = export(&s, &other);
    let seen = theirs.to_string();
    for c in [
        "jane.doe@example.com",
        "secret-token-query",
        "fragment-canary",
        "4111-1111-1111-1111",
        "867-5309",
        "typed-value-canary",
    ] {
        assert!(!seen.contains(c), "{c} leaked: {seen}");
    }
    assert!(seen.contains("/users/:id/orders") && seen.contains("utm_source=newsletter"), "{seen}");
    if let Some(ch) = b.clickhouse.first() {
        let db = &b.database;
        // What ClickHouse holds, byte for byte, has no canary and no raw visitor id either.
        for table in ["batches", "sessions", "day_visitors", "page_rollups", "element_rollups"] {
            let dump = ch_query(ch, &format!("SELECT * FROM {db}.{table} FORMAT TSV"));
            for c in
                ["jane.doe@example.com", "secret-token-query", "4111-1111-1111-1111", "typed-value-canary", &other, &me]
            {
                assert!(!dump.contains(c), "{c} in ClickHouse table {table}");
            }
        }
    }
    let key = theirs["visitor_key"].as_str().unwrap().to_owned();
    let r = s.http.delete(s.url(&format!("/api/sites/demo/visitors/{key}"))).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(r.status(), 204);
    let list = get(&s, "/api/sites/demo/sessions");
    assert_eq!(list["sessions"], json!([]));
    let week = get(&s, "/api/sites/demo/stats");
    json!({"mine": mine, "after": after, "theirs": theirs, "stats": stats, "day": day, "week": week, "list": list})
}

fn retention_and_sites(b: &Backend) -> Value {
    let mut s = b.start("[retention]\ninterval_secs = 1\n");
    let created = s
        .http
        .post(s.url("/api/sites"))
        .bearer_auth(TOKEN)
        .json(&json!({"id": "blog", "origins": ["*"]}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let t = now_ms();
    for i in 0..3 {
        let b = batch(&id(1), &id(300 + i), 0, vec![view(t, "https://example.com/", 1.0)]);
        assert_eq!(s.post_json(&b).status(), 204);
    }
    let mut blog = batch(&id(1), &id(400), 0, vec![view(t, "https://blog.example/", 1.0)]);
    blog["site"] = json!("blog");
    assert_eq!(s.post_json(&blog).status(), 204);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(get(&s, "/api/sites/demo/sessions")["sessions"].as_array().unwrap().len(), 3, "young sessions stay");
    assert_eq!(s.stop(), Some(0));
    let config = format!("{}[retention]\ninterval_secs = 1\nclock_skew_days = 31\n", b.store_line);
    std::fs::write(s.data_dir().join("../hushtale.toml"), config).unwrap();
    s.restart();
    let mut left = usize::MAX;
    for _ in 0..200 {
        left = get(&s, "/api/sites/demo/sessions")["sessions"].as_array().unwrap().len();
        let blog_left = get(&s, "/api/sites/blog/sessions")["sessions"].as_array().unwrap().len();
        if left == 0 && blog_left == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(left, 0, "expired sessions are deleted");
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(300))).0, 404);
    let stats = get(&s, "/api/sites/demo/stats");
    assert_eq!(stats["totals"]["pageviews"], 3, "rollups stay");
    let day = get(&s, &format!("/api/sites/demo/stats?from={d}&to={d}", d = today()));
    let sites = get(&s, "/api/sites");
    assert!(sites.to_string().contains("\"blog\""), "sites survive a restart: {sites}");
    json!({"stats": stats, "day": day, "sites": sites, "blog": get(&s, "/api/sites/blog/stats")})
}

/// Two batches whose clock corrections differ by seconds (batch 0 took long to arrive) and that
/// arrive in reverse: the session still reads back in the client's order, times never backwards.
fn session_order_follows_the_client(b: &Backend) -> Value {
    let s = b.start("");
    let (vid, sid) = (id(70), id(71));
    let n = now_ms();
    let scroll = |t: i64, y: i64| json!({"k": "scroll", "t": t, "y": y});
    let mut late = batch(&vid, &sid, 0, vec![scroll(n - 5100, 1), scroll(n - 5050, 2), scroll(n - 5000, 3)]);
    late["sent"] = json!(n - 5000); // corrected by +5 s: its events would land after batch 1's
    let early = batch(&vid, &sid, 1, vec![scroll(n - 4900, 4), scroll(n - 4850, 5)]);
    assert_eq!(s.post_json(&early).status(), 204);
    assert_eq!(s.post_json(&late).status(), 204);
    let events = get(&s, &format!("/api/sites/demo/sessions/{sid}"))["events"].clone();
    let ys: Vec<f64> = events.as_array().unwrap().iter().map(|e| e["y"].as_f64().unwrap()).collect();
    assert_eq!(ys, [1.0, 2.0, 3.0, 4.0, 5.0], "seq, then position in the batch: {events}");
    let ts: Vec<i64> = events.as_array().unwrap().iter().map(|e| e["t"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "times never go backwards: {ts:?}");
    json!({ "ys": ys })
}

#[test]
fn session_order_is_the_clients_whatever_the_clock_correction() {
    both("order", session_order_follows_the_client);
}

#[test]
fn forms_funnels_and_attention_agree() {
    both("analytics", forms_funnel_attention);
}

#[test]
fn collect_stats_sessions_and_events_agree() {
    both("collect", collect_stats_sessions_events);
}

#[test]
fn insights_agree() {
    both("insights", insights_pages_heatmap_scroll);
}

#[test]
fn session_filters_and_paging_agree() {
    both("sessions", session_filters_and_paging);
}

#[test]
fn spa_views_and_signals_agree() {
    both("signals", spa_views_and_signals);
}

#[test]
fn export_forget_and_privacy_agree() {
    both("privacy", export_forget_and_canaries);
}

#[test]
fn retention_and_sites_agree() {
    both("retention", retention_and_sites);
}

/// Two collectors on one ClickHouse, sharing the visitor-key secret (as a deployment must).
fn two_collectors(b: &Backend) -> (TestServer, TestServer) {
    let a = b.start("");
    let mut c = b.start("");
    c.stop();
    std::fs::copy(a.data_dir().join("secret"), c.data_dir().join("secret")).unwrap();
    c.restart();
    (a, c)
}

#[test]
fn two_collectors_store_a_resent_batch_once() {
    let Some(ch) = clickhouse() else {
        skip_note("two collectors");
        return;
    };
    let backend = Backend::clickhouse(&ch);
    let (a, b) = two_collectors(&backend);
    let t = now_ms();
    const SESSIONS: u64 = 24;
    // Every batch goes to both collectors at the same instant; seq 1 of half the sessions also
    // races seq 2 of the same session on the other collector.
    let urls = [a.url("/collect"), b.url("/collect")];
    let start = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|side| {
            let url = urls[side].clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let http = client();
                start.wait();
                let mut codes = vec![];
                for n in 0..SESSIONS {
                    let (vid, sid) = (id(1000 + n % 5), id(2000 + n));
                    let b0 = batch(&vid, &sid, 0, vec![view(t + n as i64, "https://example.com/race", 10.0)]);
                    codes.push(http.post(&url).json(&b0).send().unwrap().status().as_u16());
                    let seq = if n % 2 == 0 { 1 } else { 1 + side as u32 };
                    let b1 = batch(&vid, &sid, seq, vec![click(t + 100 + seq as i64, 5.0, 5.0, "#go")]);
                    codes.push(http.post(&url).json(&b1).send().unwrap().status().as_u16());
                }
                codes
            })
        })
        .collect();
    let codes: Vec<u16> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(codes.iter().all(|c| *c == 204), "{codes:?}");

    // Sequential resends to the other collector are duplicates too.
    let again = batch(&id(1000), &id(2000), 0, vec![view(t, "https://example.com/race", 10.0)]);
    assert_eq!(b.post_json(&again).status(), 204);

    let odd = SESSIONS / 2;
    let expected_batches = SESSIONS * 2 + odd; // seq 0 and 1 everywhere, seq 2 on odd sessions
    for s in [&a, &b] {
        let stats = get(s, "/api/sites/demo/stats");
        assert_eq!(stats["totals"]["pageviews"], SESSIONS, "{stats}");
        assert_eq!(stats["totals"]["sessions"], SESSIONS);
        assert_eq!(stats["totals"]["visitors"], 5);
        let pages = get(s, "/api/sites/demo/pages");
        assert_eq!(pages["pages"][0]["clicks"], SESSIONS + odd, "{pages}");
        let list = get(s, "/api/sites/demo/sessions?limit=100");
        assert_eq!(list["sessions"].as_array().unwrap().len() as u64, SESSIONS);
        for n in 0..SESSIONS {
            let events = get(s, &format!("/api/sites/demo/sessions/{}", id(2000 + n)));
            let want = if n % 2 == 0 { 2 } else { 3 };
            assert_eq!(events["events"].as_array().unwrap().len(), want, "session {n}: {events}");
        }
    }
    let stored = a.metric("hushtale_batches_accepted_total") + b.metric("hushtale_batches_accepted_total");
    let dups = a.metric("hushtale_batches_duplicate_total") + b.metric("hushtale_batches_duplicate_total");
    assert_eq!(stored as u64, expected_batches, "each batch stored by exactly one collector");
    assert_eq!((stored + dups) as u64, SESSIONS * 4 + 1, "every request answered as stored or duplicate");

    // Erasure through one collector is seen by the other.
    let r = a.http.post(a.url("/me/forget")).json(&json!({"site": "demo", "vid": id(1000)})).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(export(&b, &id(1000))["sessions"], json!([]));
    assert_eq!(b.api(&format!("/api/sites/demo/sessions/{}", id(2000))).0, 404);
    assert_eq!(get(&b, "/api/sites/demo/stats")["totals"]["pageviews"], SESSIONS, "rollups stay");
}
