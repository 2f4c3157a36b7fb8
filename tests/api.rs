//! The operator API: bearer auth, sites, paging, errors as JSON.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn operator_api_requires_the_token() {
    let s = TestServer::start();
    for auth in [None, Some("Bearer wrong"), Some("Basic dGVzdA=="), Some("Bearer ")] {
        let mut req = s.http.get(s.url("/api/sites")).header("origin", "https://evil.example");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert!(r.headers().get("access-control-allow-origin").is_none());
        let body: Value = r.json().unwrap();
        assert!(body["error"].as_str().unwrap().contains("token"));
    }
    let (status, body) = s.api("/api/sites");
    assert_eq!(status, 200);
    assert_eq!(body["sites"][0]["id"], "demo");
}

#[test]
fn sites_can_be_created_and_survive_restart() {
    let mut s = TestServer::start();
    let create =
        |s: &TestServer, body: Value| s.http.post(s.url("/api/sites")).bearer_auth(TOKEN).json(&body).send().unwrap();
    let r = create(&s, json!({"id": "blog", "origins": ["https://blog.example"]}));
    assert_eq!(r.status(), 201);
    assert_eq!(create(&s, json!({"id": "blog", "origins": ["*"]})).status(), 409);
    assert_eq!(create(&s, json!({"id": "Not OK", "origins": ["*"]})).status(), 400);
    assert_eq!(create(&s, json!({"id": "x", "origins": ["ftp://a"]})).status(), 400);

    let mut b = batch(&id(1), &id(2), 0, vec![view(now_ms(), "https://blog.example/", 1.0)]);
    b["site"] = json!("blog");
    assert_eq!(s.post_json(&b).status(), 204);

    assert_eq!(s.stop(), Some(0));
    s.restart();
    let (_, sites) = s.api("/api/sites");
    let ids: Vec<&str> = sites["sites"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"blog"), "{ids:?}");
    assert_eq!(s.api("/api/sites/blog/stats").1["totals"]["pageviews"], 1);
}

#[test]
fn unknown_sites_and_bad_parameters_are_named() {
    let s = TestServer::start();
    let (status, body) = s.api("/api/sites/nope/stats");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nope"));
    let (status, body) = s.api("/api/sites/demo/stats?from=yesterday");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("YYYY-MM-DD"));
    assert_eq!(s.api("/api/sites/demo/sessions?limit=0").0, 400);
    assert_eq!(s.api("/api/sites/demo/sessions?cursor=zzz").0, 400);
    assert_eq!(s.api("/api/sites/demo/sessions/not-hex").0, 400);
    assert_eq!(s.api("/api/nothing").0, 404);
}

#[test]
fn session_list_pages_with_a_stable_cursor() {
    let s = TestServer::start();
    let t = now_ms();
    let mut sent = vec![];
    for i in 0..7u64 {
        let sid = id(100 + i);
        assert_eq!(s.post_json(&batch(&id(1), &sid, 0, vec![view(t, "https://example.com/", 1.0)])).status(), 204);
        sent.push(sid);
    }
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/sites/demo/sessions?limit=3&cursor={c}"),
            None => "/api/sites/demo/sessions?limit=3".into(),
        };
        let (status, page) = s.api(&path);
        assert_eq!(status, 200);
        for x in page["sessions"].as_array().unwrap() {
            seen.push(x["id"].as_str().unwrap().to_owned());
        }
        // A batch arriving mid-paging must not shift later pages.
        if cursor.is_none() {
            assert_eq!(
                s.post_json(&batch(&id(1), &id(999), 0, vec![view(t, "https://example.com/", 1.0)])).status(),
                204
            );
        }
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    sent.reverse();
    assert_eq!(seen, sent);
    assert!(s.api("/api/sites/demo/sessions?limit=3").1["sessions"][0]["id"] == id(999));
}
