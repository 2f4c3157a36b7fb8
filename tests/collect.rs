//! `POST /collect` through the real server: formats, status codes, CORS, resend-once, stats and
//! sessions matching what was sent.

mod common;

use std::io::Write;

use common::*;
use serde_json::{json, Value};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn stats_and_sessions_match_what_was_sent() {
    let s = TestServer::start();
    let t = now_ms() - 60_000;
    // Two visitors, three sessions, five pageviews with known load times.
    let (v1, v2) = (id(1), id(2));
    let loads = [100.0, 200.0, 300.0, 400.0, 500.0];
    let sessions = [(v1.clone(), id(10)), (v1.clone(), id(11)), (v2.clone(), id(12))];
    let mut k = 0;
    for (i, (vid, sid)) in sessions.iter().enumerate() {
        let n = if i == 0 { 3 } else { 1 };
        let mut events = vec![];
        for j in 0..n {
            events.push(view(t + i as i64 * 1000 + j as i64 * 10, "https://example.com/blog/post?ref=x", loads[k]));
            k += 1;
        }
        events.push(click(t + i as i64 * 1000 + 50, 10.0, 20.0, "main > a"));
        let r = s.post_json(&batch(vid, sid, 0, events));
        assert_eq!(r.status(), 204);
    }
    let (status, stats) = s.api(&format!("/api/sites/demo/stats?from={d}&to={d}", d = today()));
    assert_eq!(status, 200);
    let day = &stats["days"][0];
    assert_eq!(day["day"], today());
    assert_eq!(day["pageviews"], 5);
    assert_eq!(day["sessions"], 3);
    assert_eq!(day["visitors"], 2);
    assert_eq!(day["avg_load_ms"], 300.0);
    let p50 = day["p50_load_ms"].as_f64().unwrap();
    assert!((p50 - 300.0).abs() <= 6.0, "p50 {p50}");
    let p95 = day["p95_load_ms"].as_f64().unwrap();
    assert!((p95 - 500.0).abs() <= 10.0, "p95 {p95}");
    assert_eq!(stats["totals"]["pageviews"], 5);

    let (_, list) = s.api("/api/sites/demo/sessions");
    let list = list["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    // Newest first: sessions were posted in order 10, 11, 12.
    let ids: Vec<&str> = list.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![id(12), id(11), id(10)]);
    let first = list.iter().find(|x| x["id"] == id(10)).unwrap();
    assert_eq!(first["pageviews"], 3);
    assert_eq!(first["events"], 4);
    assert_eq!(first["entry"], "/blog/post");
    // Operators see a pseudonymous key, never the raw visitor id.
    assert_ne!(first["visitor"], v1);
    assert_eq!(first["visitor"].as_str().unwrap().len(), 32);
}

#[test]
fn session_events_come_back_in_time_order() {
    let s = TestServer::start();
    let t = now_ms() - 10_000;
    let (vid, sid) = (id(3), id(4));
    // Batch 1 arrives before batch 0, and events inside a batch are out of order.
    let b1 = batch(
        &vid,
        &sid,
        1,
        vec![json!({"k":"scroll","t":t + 300,"y":500}), json!({"k":"scroll","t":t + 200,"y":400})],
    );
    let b0 =
        batch(&vid, &sid, 0, vec![view(t, "https://example.com/", 50.0), json!({"k":"scroll","t":t + 100,"y":300})]);
    assert_eq!(s.post_json(&b1).status(), 204);
    assert_eq!(s.post_json(&b0).status(), 204);
    let (status, body) = s.api(&format!("/api/sites/demo/sessions/{sid}"));
    assert_eq!(status, 200);
    let ys: Vec<Value> = body["events"].as_array().unwrap().iter().map(|e| e["y"].clone()).collect();
    assert_eq!(ys, vec![Value::Null, json!(300.0), json!(400.0), json!(500.0)]);
    let ts: Vec<i64> = body["events"].as_array().unwrap().iter().map(|e| e["t"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(999))).0, 404);
}

#[test]
fn resent_batch_is_stored_and_counted_once() {
    let s = TestServer::start();
    let t = now_ms();
    let b = batch(&id(5), &id(6), 0, vec![view(t, "https://example.com/x", 80.0), click(t + 1, 1.0, 1.0, "a")]);
    for _ in 0..3 {
        assert_eq!(s.post_json(&b).status(), 204);
    }
    let (_, stats) = s.api("/api/sites/demo/stats");
    assert_eq!(stats["totals"]["pageviews"], 1);
    assert_eq!(stats["totals"]["sessions"], 1);
    let (_, body) = s.api(&format!("/api/sites/demo/sessions/{}", id(6)));
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    assert_eq!(s.metric("hushtale_batches_duplicate_total"), 2.0);
    assert_eq!(s.metric("hushtale_events_accepted_total"), 2.0);
}

#[test]
fn messagepack_and_gzip_are_the_same_batch() {
    let s = TestServer::start();
    let t = now_ms();
    let b = batch(&id(7), &id(8), 0, vec![view(t, "https://example.com/mp", 10.0)]);
    let mp = rmp_serde::to_vec_named(&b).unwrap();
    assert_eq!(s.post_collect(mp.clone(), "application/msgpack").status(), 204);

    let b2 = batch(&id(7), &id(8), 1, vec![click(t + 1000, 3.0, 4.0, "button")]);
    let r = s
        .http
        .post(s.url("/collect"))
        .header("content-type", "application/msgpack")
        .header("content-encoding", "gzip")
        .body(gzip(&rmp_serde::to_vec_named(&b2).unwrap()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    let b3 = batch(&id(7), &id(8), 2, vec![json!({"k":"scroll","t":t + 2000,"y":42})]);
    let r = s
        .http
        .post(s.url("/collect"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("content-encoding", "gzip")
        .body(gzip(&serde_json::to_vec(&b3).unwrap()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    let (_, body) = s.api(&format!("/api/sites/demo/sessions/{}", id(8)));
    let kinds: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["k"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["view", "click", "scroll"]);
}

#[test]
fn cors_echoes_allowed_origins_and_refuses_others() {
    let s = TestServer::start_with_config(Some(
        r#"
        [[site]]
        id = "shop"
        origins = ["https://shop.example"]
        "#,
    ));
    let pre = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/collect"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, content-encoding")
        .send()
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://shop.example");
    assert_eq!(pre.headers()["access-control-allow-credentials"], "true");
    assert!(pre.headers()["access-control-max-age"].to_str().unwrap().parse::<u32>().unwrap() > 0);
    assert!(pre.headers()["access-control-allow-headers"].to_str().unwrap().contains("content-encoding"));

    let evil_pre = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/collect"))
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(evil_pre.status(), 403);
    assert!(evil_pre.headers().get("access-control-allow-origin").is_none());

    let mut b = batch(&id(1), &id(2), 0, vec![view(now_ms(), "https://shop.example/", 5.0)]);
    b["site"] = json!("shop");
    let body = serde_json::to_vec(&b).unwrap();
    let ok = s
        .http
        .post(s.url("/collect"))
        .header("origin", "https://shop.example")
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://shop.example");
    assert_eq!(ok.headers()["vary"], "Origin");
    assert_eq!(ok.headers()["access-control-expose-headers"], "Retry-After", "pages can honour Retry-After");

    let evil = s
        .http
        .post(s.url("/collect"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(evil.status(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let err: Value = evil.json().unwrap();
    assert!(err["error"].as_str().unwrap().contains("evil.example"));
}

#[test]
fn full_queue_answers_503_and_loses_nothing_acknowledged() {
    let s = TestServer::start_with_config(Some("[limits]\nqueue_batches = 1\nmax_group = 1\n"));
    let base = s.url("/collect");
    let t = now_ms();
    let handles: Vec<_> = (0..16)
        .map(|thread| {
            let base = base.clone();
            std::thread::spawn(move || {
                let http = client();
                let mut acked = vec![];
                let mut overloaded = 0;
                for i in 0..20u64 {
                    let sid = id(1000 + thread * 100 + i);
                    let b = batch(&id(thread), &sid, 0, vec![view(t, "https://example.com/", 1.0)]);
                    let r = http.post(&base).json(&b).send().unwrap();
                    match r.status().as_u16() {
                        204 => acked.push(sid),
                        503 => {
                            assert!(r.headers().contains_key("retry-after"));
                            let e: Value = r.json().unwrap();
                            assert!(e["error"].as_str().unwrap().contains("overloaded"));
                            overloaded += 1;
                        }
                        other => panic!("unexpected status {other}"),
                    }
                }
                (acked, overloaded)
            })
        })
        .collect();
    let mut acked = vec![];
    let mut overloaded = 0;
    for h in handles {
        let (a, o) = h.join().unwrap();
        acked.extend(a);
        overloaded += o;
    }
    assert!(overloaded > 0, "16 concurrent senders never filled a 1-batch queue");
    for sid in &acked {
        assert_eq!(s.api(&format!("/api/sites/demo/sessions/{sid}")).0, 200, "acknowledged {sid} missing");
    }
    assert!(s.http.get(s.url("/healthz")).send().unwrap().status().is_success());
}
