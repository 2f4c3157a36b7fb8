//! Modern sites through the real server: single-page-app views, and the frustration signals
//! (rage, dead and error clicks, quick backs) per page, per session, as a session filter, as a
//! heatmap and on the replay timeline.

mod common;

use common::*;
use serde_json::{json, Value};

fn get(s: &TestServer, path: &str) -> Value {
    let (status, body) = s.api(path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn spa_view(t: i64, url: &str, dh: f64) -> Value {
    json!({"k":"view","t":t,"url":url,"vw":1280,"vh":720,"dw":1280,"dh":dh,"spa":true,"load_ms":9999})
}

fn dead_click(t: i64, x: f64, y: f64, sel: &str) -> Value {
    json!({"k":"click","t":t,"x":x,"y":y,"sel":sel,"dead":true})
}

fn err(t: i64) -> Value {
    json!({"k":"err","t":t,"msg":"TypeError: x is undefined"})
}

fn page<'a>(pages: &'a Value, path: &str) -> &'a Value {
    pages["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == path)
        .unwrap_or_else(|| panic!("no {path}: {pages}"))
}

fn session_ids(s: &TestServer, query: &str) -> Vec<String> {
    let mut ids: Vec<String> = get(s, &format!("/api/sites/demo/sessions?{query}"))["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// One single-page-app visit: /app/start (loaded), pushState to /app/a, a hash route, back to
/// /app/a within 5 s (a quick back on the hash route), an inert button clicked three times
/// (dead, and one rage click), a throwing button (an error click).
fn spa_visit(t: i64) -> Vec<Value> {
    let o = "https://spa.example";
    vec![
        view(t, &format!("{o}/app/start"), 300.0),
        spa_view(t + 1_000, &format!("{o}/app/a"), 1500.0),
        spa_view(t + 10_000, &format!("{o}/app/a#/settings/jane@example.com?tab=2"), 900.0),
        spa_view(t + 12_000, &format!("{o}/app/a"), 1500.0),
        dead_click(t + 20_000, 100.0, 110.0, "button#inert"),
        dead_click(t + 20_200, 102.0, 112.0, "button#inert"),
        dead_click(t + 20_400, 101.0, 108.0, "button#inert"),
        click(t + 30_000, 600.0, 200.0, "button#throws"),
        err(t + 30_004),
    ]
}

#[test]
fn spa_views_count_as_pageviews_of_their_route_without_load_times() {
    let s = TestServer::start();
    let t = now_ms() - 120_000;
    assert_eq!(s.post_json(&batch(&id(1), &id(2), 0, spa_visit(t))).status(), 204);
    let pages = get(&s, "/api/sites/demo/pages");
    assert_eq!(pages["total"], 3, "{pages}");
    assert_eq!(page(&pages, "/app/start")["avg_load_ms"], 300.0);
    let a = page(&pages, "/app/a");
    assert_eq!(a["pageviews"], 2);
    assert_eq!(a["avg_load_ms"], Value::Null, "a same-document view has no load time");
    assert_eq!(a["avg_scroll_pct"], 48.0, "720 of the route's own 1500 px");
    let settings = page(&pages, "/app/a#/settings/:id");
    assert_eq!(settings["pageviews"], 1);
    let stats = get(&s, "/api/sites/demo/stats");
    assert_eq!(stats["totals"]["pageviews"], 4);
    assert_eq!(stats["totals"]["avg_load_ms"], 300.0);

    let events = get(&s, &format!("/api/sites/demo/sessions/{}", id(2)))["events"].clone();
    let views: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["k"] == "view").collect();
    assert_eq!(views[1]["spa"], true);
    assert_eq!(views[1].get("load_ms"), None);
    assert_eq!(views[0].get("spa"), None);
    assert_eq!(views[2]["url"], "https://spa.example/app/a#/settings/:id");
}

#[test]
fn signals_are_counted_per_page_and_per_session_and_filter_sessions() {
    let s = TestServer::start();
    let t = now_ms() - 120_000;
    assert_eq!(s.post_json(&batch(&id(1), &id(2), 0, spa_visit(t))).status(), 204);
    // A calm session: a working click, an unrelated error 5 s later, a slow return.
    let o = "https://spa.example";
    let calm = vec![
        view(t, &format!("{o}/app/start"), 100.0),
        click(t + 100, 10.0, 10.0, "a#go"),
        err(t + 5_100),
        view(t + 10_000, &format!("{o}/app/b"), 100.0),
        view(t + 20_000, &format!("{o}/app/start"), 100.0),
    ];
    assert_eq!(s.post_json(&batch(&id(3), &id(4), 0, calm)).status(), 204);
    // Only a quick back, with the error arriving in a later batch than its click.
    let bounce = vec![
        view(t, &format!("{o}/app/start"), 100.0),
        view(t + 1_000, &format!("{o}/app/b"), 100.0),
        view(t + 3_000, &format!("{o}/app/start"), 100.0),
        err(t + 4_500),
    ];
    assert_eq!(s.post_json(&batch(&id(5), &id(6), 0, bounce)).status(), 204);
    assert_eq!(s.post_json(&batch(&id(5), &id(6), 1, vec![click(t + 4_000, 5.0, 5.0, "#x")])).status(), 204);

    let pages = get(&s, "/api/sites/demo/pages");
    let a = page(&pages, "/app/a");
    assert_eq!((a["clicks"].as_u64(), a["dead_clicks"].as_u64()), (Some(4), Some(3)));
    assert_eq!((a["rage_clicks"].as_u64(), a["error_clicks"].as_u64()), (Some(1), Some(1)));
    assert_eq!(page(&pages, "/app/a#/settings/:id")["quick_backs"], 1);
    assert_eq!(page(&pages, "/app/b")["quick_backs"], 1, "the bounce, not the calm slow return");
    assert_eq!(page(&pages, "/app/start")["error_clicks"], 1, "the click whose error came in a later batch");
    assert_eq!(page(&pages, "/app/a")["quick_backs"], 0);

    let all = get(&s, "/api/sites/demo/sessions");
    let spa = all["sessions"].as_array().unwrap().iter().find(|x| x["id"] == id(2)).unwrap();
    let counts: Vec<&Value> =
        ["rage_clicks", "dead_clicks", "error_clicks", "quick_backs"].iter().map(|k| &spa[k]).collect();
    assert_eq!(counts, [1, 3, 1, 1]);

    let mut spa_and_bounce = vec![id(2), id(6)];
    spa_and_bounce.sort();
    assert_eq!(session_ids(&s, "signal=rage"), vec![id(2)]);
    assert_eq!(session_ids(&s, "signal=dead"), vec![id(2)]);
    assert_eq!(session_ids(&s, "signal=error"), spa_and_bounce);
    assert_eq!(session_ids(&s, "signal=quickback"), spa_and_bounce);
    assert_eq!(session_ids(&s, "signal=rage,quickback"), spa_and_bounce, "any of them");
    assert_eq!(session_ids(&s, "signal=rage&entry=/app/start").len(), 1);
    assert_eq!(session_ids(&s, "").len(), 3);
    let (status, body) = s.api("/api/sites/demo/sessions?signal=rage,angry");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("angry"), "{body}");
}

#[test]
fn dead_clicks_have_a_heatmap_and_the_replay_timeline_lists_every_signal() {
    let s = TestServer::start();
    let t = now_ms() - 120_000;
    assert_eq!(s.post_json(&batch(&id(1), &id(2), 0, spa_visit(t))).status(), 204);
    let dead = get(&s, "/api/sites/demo/heatmap?path=/app/a&kind=dead");
    assert_eq!(dead["kind"], "dead");
    let cells = dead["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "{dead}");
    assert_eq!((cells[0]["x"].as_u64(), cells[0]["y"].as_u64(), cells[0]["n"].as_u64()), (Some(3), Some(5), Some(3)));
    let clicks = get(&s, "/api/sites/demo/heatmap?path=/app/a&kind=click");
    let total: u64 = clicks["cells"].as_array().unwrap().iter().map(|c| c["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 4);
    assert_eq!(s.api("/api/sites/demo/heatmap?path=/app/a&kind=angry").0, 400);

    let detail = get(&s, &format!("/api/sites/demo/sessions/{}", id(2)));
    // Times as stored (corrected for the client's clock), relative to the first view.
    let t = detail["events"][0]["t"].as_i64().unwrap();
    let signals: Vec<(i64, &str, &str)> = detail["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["t"].as_i64().unwrap() - t, x["kind"].as_str().unwrap(), x["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        signals,
        vec![
            (12_000, "quickback", "/app/a#/settings/:id"),
            (20_000, "dead", "/app/a"),
            (20_200, "dead", "/app/a"),
            (20_400, "dead", "/app/a"),
            (20_400, "rage", "/app/a"),
            (30_000, "error", "/app/a"),
        ]
    );
}
