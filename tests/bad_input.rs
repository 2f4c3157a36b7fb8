//! Every kind of bad `/collect` input gets a 4xx with a JSON error naming the problem, the
//! server stays healthy, and nothing is stored.

mod common;

use std::io::Write;

use common::*;
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    content_type: &'static str,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    says: &'static str,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn json_case(name: &'static str, body: Value, status: u16, says: &'static str) -> Case {
    Case {
        name,
        content_type: "application/json",
        encoding: None,
        body: serde_json::to_vec(&body).unwrap(),
        status,
        says,
    }
}

fn cases() -> Vec<Case> {
    let t = now_ms();
    let good = batch(&id(1), &id(2), 0, vec![view(t, "https://example.com/", 1.0)]);
    let with = |key: &str, value: Value| {
        let mut b = good.clone();
        b[key] = value;
        b
    };
    let raw = |name, content_type, body: Vec<u8>, status, says| Case {
        name,
        content_type,
        encoding: None,
        body,
        status,
        says,
    };
    let mut deep =
        String::from(r#"{"v":1,"site":"demo","vid":"x","sid":"y","seq":0,"sent":1,"events":[{"k":"snap","d":"#);
    deep.push_str(&"[".repeat(200_000));
    let mut invalid_utf8 = serde_json::to_vec(&good).unwrap();
    let pos = invalid_utf8.windows(7).position(|w| w == b"example").unwrap();
    invalid_utf8[pos] = 0xff;
    let nan_mp = {
        let mut b = good.clone();
        b["events"] = json!([{"k": "move", "t": t, "x": 1.0, "y": 2.0}]);
        let mut bytes = rmp_serde::to_vec_named(&b).unwrap();
        // Replace the f64 1.0 (0xcb 3ff0000000000000) with NaN.
        let one = [0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0];
        let pos = bytes.windows(9).position(|w| w == one).expect("msgpack float");
        bytes[pos + 1..pos + 9].copy_from_slice(&f64::NAN.to_be_bytes());
        bytes
    };
    let many_events: Vec<Value> = (0..2001).map(|i| json!({"k":"scroll","t":t,"y":i})).collect();
    vec![
        raw("empty", "application/json", vec![], 400, "empty"),
        raw("not json", "application/json", b"hello there".to_vec(), 400, "invalid JSON"),
        raw("msgpack garbage", "application/msgpack", vec![0xc1, 0xff, 0x00, 0x13], 400, "MessagePack"),
        raw("invalid utf-8", "application/json", invalid_utf8, 400, "invalid"),
        raw("200k-deep nesting", "application/json", deep.into_bytes(), 400, "invalid JSON"),
        raw("NaN coordinate (msgpack)", "application/msgpack", nan_mp, 400, "no valid event"),
        json_case("wrong types", with("seq", json!("zero")), 400, "seq"),
        json_case(
            "event with wrong type",
            with("events", json!([{"k":"move","t":t,"x":"left","y":1}])),
            400,
            "events[0].x",
        ),
        json_case("future version", with("v", json!(2)), 400, "version"),
        json_case("bad vid", with("vid", json!("not-an-id")), 400, "vid"),
        json_case("uppercase sid", with("sid", json!("ABCDEFABCDEFABCDEFABCDEFABCDEFAB")), 400, "sid"),
        json_case(
            "missing events",
            {
                let mut b = good.clone();
                b.as_object_mut().unwrap().remove("events");
                b
            },
            400,
            "events",
        ),
        json_case("no valid event", with("events", json!([{"k":"teleport","t":t}])), 400, "unknown_kind"),
        json_case("empty events", with("events", json!([])), 400, "no valid event"),
        json_case("unknown site", with("site", json!("nobody")), 404, "nobody"),
        json_case("too many events", with("events", Value::Array(many_events)), 413, "too many events"),
        raw("oversized body", "application/json", vec![b' '; 2 << 20], 413, "larger than"),
        Case {
            name: "gzip bomb",
            content_type: "application/json",
            encoding: Some("gzip"),
            body: gzip(&vec![b' '; 64 << 20]),
            status: 413,
            says: "decompressed",
        },
        Case {
            name: "corrupt gzip",
            content_type: "application/json",
            encoding: Some("gzip"),
            body: b"\x1f\x8b garbage".to_vec(),
            status: 400,
            says: "gzip",
        },
        raw("unsupported content type", "application/xml", b"<batch/>".to_vec(), 415, "content type"),
        Case {
            name: "unsupported encoding",
            content_type: "application/json",
            encoding: Some("br"),
            body: serde_json::to_vec(&good).unwrap(),
            status: 415,
            says: "encoding",
        },
    ]
}

#[test]
fn bad_input_is_refused_with_a_named_json_error() {
    let s = TestServer::start();
    for case in cases() {
        let mut req = s.http.post(s.url("/collect")).header("content-type", case.content_type).body(case.body);
        if let Some(enc) = case.encoding {
            req = req.header("content-encoding", enc);
        }
        let r = req.send().unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(r.status().as_u16(), case.status, "{}", case.name);
        assert_eq!(r.headers()["content-type"], "application/json", "{}", case.name);
        let body: Value = r.json().unwrap_or_else(|e| panic!("{}: body not JSON: {e}", case.name));
        let msg = body["error"].as_str().unwrap_or_else(|| panic!("{}: no error field", case.name));
        assert!(msg.contains(case.says), "{}: {msg:?} does not mention {:?}", case.name, case.says);
        assert_eq!(s.http.get(s.url("/healthz")).send().unwrap().status(), 200, "after {}", case.name);
    }
    let (_, stats) = s.api("/api/sites/demo/stats");
    assert_eq!(stats["totals"]["pageviews"], 0);
    assert_eq!(s.api("/api/sites/demo/sessions").1["sessions"], json!([]));
    assert_eq!(s.metric("hushtale_batches_accepted_total"), 0.0);
}

#[test]
fn invalid_events_are_dropped_and_counted_but_the_rest_is_kept() {
    let s = TestServer::start();
    let t = now_ms();
    let b = batch(
        &id(1),
        &id(2),
        0,
        vec![
            view(t, "https://example.com/", 1.0),
            json!({"k": "click", "t": t, "x": 1, "y": 1}),
            json!({"k": "warp", "t": t}),
            json!({"k": "click", "t": t, "x": 1, "y": 1, "sel": "x".repeat(300)}),
            json!({"k": "input", "t": t, "sel": "#email", "len": 12, "value": "jane@example.com"}),
        ],
    );
    assert_eq!(s.post_json(&b).status(), 204);
    let (_, body) = s.api(&format!("/api/sites/demo/sessions/{}", id(2)));
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[1].get("value").is_none());
    assert_eq!(s.metric("hushtale_events_dropped_total{reason=\"missing_field\"}"), 1.0);
    assert_eq!(s.metric("hushtale_events_dropped_total{reason=\"unknown_kind\"}"), 1.0);
    assert_eq!(s.metric("hushtale_events_dropped_total{reason=\"too_long\"}"), 1.0);
}

#[test]
fn wrong_methods_and_paths_answer_json() {
    let s = TestServer::start();
    let r = s.http.get(s.url("/collect")).send().unwrap();
    assert_eq!(r.status(), 405);
    let r = s.http.get(s.url("/nothing-here")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().unwrap()["error"].is_string());
}
