//! Insights through the real server: per-page figures, heatmaps, scroll reach and session
//! filters computed from known input.

mod common;

use common::*;
use serde_json::{json, Value};

fn page_view(t: i64, path: &str, vw: f64, vh: f64, dh: f64, load: f64) -> Value {
    json!({"k":"view","t":t,"url":format!("https://shop.example{path}"),"vw":vw,"vh":vh,"dw":vw,"dh":dh,"load_ms":load})
}

fn get(s: &TestServer, path: &str) -> Value {
    let (status, body) = s.api(path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[test]
fn pages_are_ranked_with_exact_figures_and_stable_paging() {
    let s = TestServer::start();
    let t = now_ms();
    // /a: 3 views, /b: 2 views, /c: 1 view; loads known; clicks on /a only.
    let views = [("/a", 100.0), ("/a", 200.0), ("/a", 300.0), ("/b", 50.0), ("/b", 150.0), ("/c", 10.0)];
    for (i, (path, load)) in views.iter().enumerate() {
        let mut events = vec![page_view(t + i as i64, path, 1000.0, 500.0, 1000.0, *load)];
        if *path == "/a" {
            events.push(click(t + i as i64 + 1, 10.0, 10.0, "#x"));
        }
        assert_eq!(s.post_json(&batch(&id(1), &id(10 + i as u64), 0, events)).status(), 204);
    }
    let p = get(&s, "/api/sites/demo/pages");
    assert_eq!(p["total"], 3);
    let rows = p["pages"].as_array().unwrap();
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/a", "/b", "/c"]);
    assert_eq!(rows[0]["pageviews"], 3);
    assert_eq!(rows[0]["avg_load_ms"], 200.0);
    assert_eq!(rows[0]["clicks"], 3);
    assert_eq!(rows[1]["avg_load_ms"], 100.0);
    // Initial reach: viewport 500 of 1000 px document = 50 %.
    assert_eq!(rows[0]["avg_scroll_pct"], 50.0);

    let first = get(&s, "/api/sites/demo/pages?limit=2");
    assert_eq!(first["pages"].as_array().unwrap().len(), 2);
    assert_eq!(first["next"], 2);
    let second = get(&s, "/api/sites/demo/pages?limit=2&offset=2");
    assert_eq!(second["pages"][0]["path"], "/c");
    assert_eq!(second["next"], Value::Null);
    assert_eq!(s.api("/api/sites/demo/pages?limit=x").0, 400);
}

#[test]
fn heatmap_puts_the_hottest_cell_where_the_clicks_were() {
    let s = TestServer::start();
    let t = now_ms();
    // Desktop: 5 clicks at (960, 1210) on a 1280 px wide document, 1 elsewhere.
    let mut events = vec![page_view(t, "/landing", 1280.0, 800.0, 4000.0, 100.0)];
    for i in 0..5 {
        events.push(json!({"k":"click","t":t + 2000 * (i + 1),"x":960,"y":1210,"sel":"#buy","ex":250,"ey":900}));
    }
    events.push(click(t + 20_000, 10.0, 10.0, "header a"));
    events.extend((0..10).map(|i| json!({"k":"move","t":t + 30_000 + i,"x":500,"y":100 + i * 50})));
    assert_eq!(s.post_json(&batch(&id(1), &id(2), 0, events)).status(), 204);
    // A mobile visitor clicks somewhere else on the same page.
    let mobile = vec![page_view(t, "/landing", 375.0, 700.0, 6000.0, 100.0), click(t + 5, 100.0, 5000.0, "#menu")];
    assert_eq!(s.post_json(&batch(&id(3), &id(4), 0, mobile)).status(), 204);

    let h = get(&s, "/api/sites/demo/heatmap?path=/landing&kind=click&width=desktop");
    assert_eq!(h["geometry"]["columns"], 50);
    assert_eq!(h["geometry"]["row_px"], 20.0);
    let hottest = &h["cells"][0];
    assert_eq!((hottest["x"].as_u64(), hottest["y"].as_u64(), hottest["n"].as_u64()), (Some(37), Some(60), Some(5)));
    assert_eq!(h["cells"].as_array().unwrap().len(), 2, "mobile clicks are not in the desktop map");
    let buy = &h["elements"][0];
    assert_eq!(buy["sel"], "#buy");
    assert_eq!(buy["n"], 5);
    assert_eq!(buy["points"], json!([[2, 9, 5]]));

    let all = get(&s, "/api/sites/demo/heatmap?path=/landing&kind=click");
    let total: u64 = all["cells"].as_array().unwrap().iter().map(|c| c["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 7);
    let moves = get(&s, "/api/sites/demo/heatmap?path=https://shop.example/landing?x=1&kind=move");
    let total: u64 = moves["cells"].as_array().unwrap().iter().map(|c| c["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 10);
    assert_eq!(moves["elements"], json!([]));
    assert_eq!(s.api("/api/sites/demo/heatmap?path=/landing&kind=hover").0, 400);
    assert_eq!(s.api("/api/sites/demo/heatmap?kind=click").0, 400);
}

#[test]
fn scroll_reach_matches_hand_computed_shares() {
    let s = TestServer::start();
    let t = now_ms();
    // Document 2000 px, viewport 500 px. Deepest points: 25 % (no scroll), 50 %, 100 %, 75 %
    // (the last over two batches, scrolling back up in between).
    let deepest_scroll = [None, Some(500.0), Some(1500.0)];
    for (i, scroll) in deepest_scroll.iter().enumerate() {
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

    let r = get(&s, "/api/sites/demo/scroll?path=/article");
    assert_eq!(r["pageviews"], 4);
    let share =
        |pct: u64| r["reach"].as_array().unwrap().iter().find(|x| x["pct"] == pct).unwrap()["share"].as_f64().unwrap();
    assert_eq!(share(0), 1.0);
    assert_eq!(share(25), 1.0);
    assert_eq!(share(30), 0.75);
    assert_eq!(share(50), 0.75);
    assert_eq!(share(55), 0.5);
    assert_eq!(share(75), 0.5);
    assert_eq!(share(80), 0.25);
    assert_eq!(share(100), 0.25);
    assert_eq!(r["avg_depth_pct"], 62.5);
    assert_eq!(r["fold_px"], 500.0);
    assert_eq!(r["fold_pct"], 25.0);
}

#[test]
fn sessions_filter_and_summarise_rage_clicks() {
    let s = TestServer::start();
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
    let calm = vec![page_view(t, "/home", 1200.0, 800.0, 1600.0, 100.0)];
    assert_eq!(s.post_json(&batch(&id(2), &id(41), 0, calm)).status(), 204);

    let all = get(&s, "/api/sites/demo/sessions");
    let angry = all["sessions"].as_array().unwrap().iter().find(|x| x["id"] == id(40)).unwrap().clone();
    assert_eq!(angry["rage_clicks"], 1);
    assert_eq!(angry["dead_clicks"], 1);
    assert_eq!(angry["clicks"], 4);
    assert_eq!(angry["duration_ms"], 30_000);
    assert_eq!(angry["replay"], true);

    let ids = |q: &str| -> Vec<String> {
        get(&s, &format!("/api/sites/demo/sessions?{q}"))["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids("entry=/checkout"), vec![id(40)]);
    assert_eq!(ids("replay=true"), vec![id(40)]);
    assert_eq!(ids("replay=false"), vec![id(41)]);
    assert_eq!(ids("min_duration_ms=1000"), vec![id(40)]);
    assert_eq!(ids("min_rage_clicks=1"), vec![id(40)]);
    assert_eq!(ids("device=desktop").len(), 2);
    assert_eq!(ids("device=mobile").len(), 0);
}
