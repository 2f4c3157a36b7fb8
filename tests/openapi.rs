//! `GET /api/openapi.json` is true: every documented operation answers on the real server with a
//! documented status (and, for JSON answers, a body matching its schema), and every route the
//! router serves is documented.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const METHODS: [&str; 7] = ["get", "head", "post", "put", "patch", "delete", "options"];

/// Every `(method, path)` the router serves (src/server/router.rs and api.rs). A new route must be
/// added here and to src/server/openapi.json.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/collect"),
    ("options", "/collect"),
    ("get", "/healthz"),
    ("head", "/healthz"),
    ("get", "/metrics"),
    ("get", "/hushtale.js"),
    ("head", "/hushtale.js"),
    ("get", "/hushtale-replay.js"),
    ("head", "/hushtale-replay.js"),
    ("get", "/hushtale-player.js"),
    ("head", "/hushtale-player.js"),
    ("get", "/demo"),
    ("get", "/dashboard"),
    ("head", "/dashboard"),
    ("get", "/dashboard/{file}"),
    ("head", "/dashboard/{file}"),
    ("get", "/dashboard/asset/{hash}"),
    ("get", "/disable"),
    ("get", "/enable"),
    ("post", "/enable"),
    ("get", "/optout"),
    ("options", "/optout"),
    ("post", "/me/export"),
    ("options", "/me/export"),
    ("post", "/me/forget"),
    ("options", "/me/forget"),
    ("get", "/pages/style.css"),
    ("get", "/api/openapi.json"),
    ("head", "/api/openapi.json"),
    ("get", "/api/sites"),
    ("post", "/api/sites"),
    ("get", "/api/sites/{site}/stats"),
    ("get", "/api/sites/{site}/pages"),
    ("get", "/api/sites/{site}/heatmap"),
    ("get", "/api/sites/{site}/scroll"),
    ("get", "/api/sites/{site}/sessions"),
    ("get", "/api/sites/{site}/sessions/{sid}"),
    ("delete", "/api/sites/{site}/visitors/{visitor_key}"),
];

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// A small JSON-schema check covering what the document uses: `$ref`, `type`, `nullable`,
/// `required`, `properties`, `items`, `enum`, `minimum`/`maximum`, `allOf`, `oneOf`.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = resolve(doc, schema);
    if v.is_null() {
        if s.get("type").is_some() && s.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(doc, sub, v, at, errors);
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let matching = one
            .iter()
            .filter(|sub| {
                let mut e = Vec::new();
                check(doc, sub, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{at}: matches {matching} of oneOf: {v}"));
        }
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        if !values.contains(v) {
            errors.push(format!("{at}: {v} not in {values:?}"));
        }
    }
    let ok = match s.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("boolean") => v.is_boolean(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some(t) => panic!("unknown type {t}"),
    };
    if !ok {
        errors.push(format!("{at}: {v} is not {}", s["type"]));
        return;
    }
    if let Some(n) = v.as_f64() {
        if s.get("minimum").and_then(Value::as_f64).is_some_and(|m| n < m) {
            errors.push(format!("{at}: {n} below minimum"));
        }
        if s.get("maximum").and_then(Value::as_f64).is_some_and(|m| n > m) {
            errors.push(format!("{at}: {n} above maximum"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{at}: missing required {r}"));
            }
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                if let Some(x) = obj.get(k) {
                    check(doc, sub, x, &format!("{at}.{k}"), errors);
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(doc, items, x, &format!("{at}[{i}]"), errors);
        }
    }
}

/// The server with one session of known ids in it.
struct Fixture {
    server: TestServer,
    vid: String,
    sid: String,
    visitor_key: String,
}

fn fixture() -> Fixture {
    let server = TestServer::start();
    let (vid, sid) = (id(1), id(2));
    let t = now_ms();
    let mut events = vec![view(t, "https://shop.example/a", 120.0), click(t + 5, 10.0, 20.0, "main>button")];
    events.extend(moves(t + 10, 5));
    events.push(json!({"k": "scroll", "t": t + 20, "y": 400}));
    assert_eq!(server.post_json(&batch(&vid, &sid, 0, events)).status(), 204);
    let (status, sessions) = server.api("/api/sites/demo/sessions");
    assert_eq!(status, 200);
    let visitor_key = sessions["sessions"][0]["visitor"].as_str().expect("a session").to_owned();
    Fixture { server, vid, sid, visitor_key }
}

fn document(s: &TestServer) -> Value {
    let r = s.http.get(s.url("/api/openapi.json")).send().unwrap();
    assert_eq!(r.status(), 200, "the document is public");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = r.json().unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    doc
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            out.push((method.clone(), path.clone(), op.clone()));
        }
    }
    out
}

/// A request for one documented operation, with real ids and the body it needs.
fn request(f: &Fixture, doc: &Value, method: &str, path: &str, op: &Value) -> reqwest::blocking::RequestBuilder {
    let concrete = path
        .replace("{site}", "demo")
        .replace("{sid}", &f.sid)
        .replace("{visitor_key}", &f.visitor_key)
        .replace("{file}", "app.js")
        .replace("{hash}", &"0".repeat(64));
    assert!(!concrete.contains('{'), "unknown path parameter in {path}");
    let s = &f.server;
    let mut rb = s.http.request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), s.url(&concrete));
    let mut query = Vec::new();
    for p in op.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        let p = resolve(doc, p);
        if p["required"] != true {
            continue;
        }
        let name = p["name"].as_str().unwrap();
        match (p["in"].as_str().unwrap(), name) {
            ("path", _) => {}
            ("query", "path") => query.push(("path", "/a")),
            ("header", "Origin") => rb = rb.header("origin", "http://localhost:9"),
            (place, _) => panic!("no value for required {place} parameter {name} of {method} {path}"),
        }
    }
    rb = rb.query(&query);
    if op.get("security").is_some() {
        rb = rb.bearer_auth(TOKEN);
    }
    if let Some(body) = op.get("requestBody") {
        let types = body["content"].as_object().unwrap();
        assert!(types.contains_key("application/json"), "{method} {path}: a JSON body is documented");
        let value = match path {
            "/collect" => batch(&id(3), &id(4), 0, vec![view(now_ms(), "https://shop.example/b", 80.0)]),
            "/me/export" | "/me/forget" => json!({"site": "demo", "vid": f.vid}),
            "/api/sites" => json!({"id": "docs", "origins": ["https://docs.example"]}),
            _ => panic!("no example body for {method} {path}"),
        };
        rb = rb.json(&value);
    }
    rb
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let f = fixture();
    let doc = document(&f.server);
    let mut ops = operations(&doc);
    // Erasing runs last so that the reads see the session.
    ops.sort_by_key(|(m, p, _)| (m == "delete" || p == "/me/forget", p.clone(), m.clone()));
    let mut failures = Vec::new();
    for (method, path, op) in &ops {
        let resp = request(&f, &doc, method, path, op).send().unwrap();
        let status = resp.status().as_u16();
        let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().unwrap();
        assert_ne!(status, 405, "{method} {path}: method not allowed: {text}");
        assert!(!text.contains("no route for"), "{method} {path}: not routed: {text}");
        let Some(documented) = op["responses"].get(status.to_string()) else {
            failures.push(format!("{method} {path}: status {status} is not documented: {text}"));
            continue;
        };
        let documented = resolve(&doc, documented);
        if status >= 400 {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(body["error"].is_string(), "{method} {path}: {status} without {{\"error\"}}: {text}");
        }
        // Every operation succeeds with the fixture's values (bar the cross-site opt-in form).
        // (and an asset nothing was captured for: tests/assets.rs serves real ones)
        let expected_refusal = (method == "post" && path == "/enable" && status == 403)
            || (path == "/dashboard/asset/{hash}" && status == 404);
        if !(200..300).contains(&status) && !expected_refusal {
            failures.push(format!("{method} {path}: {status}: {text}"));
        }
        let Some(content) = documented.get("content").and_then(Value::as_object) else {
            if method != "head" && status != 304 {
                assert!(text.is_empty(), "{method} {path}: {status} documents no body but got {text}");
            }
            continue;
        };
        if method == "head" {
            continue;
        }
        let ctype = ctype.unwrap_or_else(|| panic!("{method} {path}: no content-type"));
        let media = ctype.split(';').next().unwrap().trim();
        let Some(media_doc) = content.get(media) else {
            failures.push(format!("{method} {path}: {status} content-type {media} not documented"));
            continue;
        };
        if media == "application/json" {
            let body: Value = serde_json::from_str(&text).unwrap();
            let mut errors = Vec::new();
            check(&doc, &media_doc["schema"], &body, &format!("{method} {path}"), &mut errors);
            failures.extend(errors);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_route_is_documented_and_nothing_else_answers() {
    let f = fixture();
    let s = &f.server;
    let doc = document(s);
    let documented: Vec<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    for (m, p) in ROUTES {
        assert!(documented.contains(&(m.to_string(), p.to_string())), "{m} {p} is served but not documented");
    }
    for (m, p) in &documented {
        assert!(ROUTES.contains(&(m.as_str(), p.as_str())), "{m} {p} is documented but not in ROUTES");
    }
    // Methods a documented path does not document are refused (405, or 404 "no route").
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{site}", "demo")
            .replace("{sid}", &f.sid)
            .replace("{visitor_key}", &f.visitor_key)
            .replace("{file}", "app.js")
            .replace("{hash}", &"0".repeat(64));
        for m in METHODS {
            if item.get(m).is_some() {
                continue;
            }
            let r = s
                .http
                .request(Method::from_bytes(m.to_uppercase().as_bytes()).unwrap(), s.url(&concrete))
                .bearer_auth(TOKEN)
                .header("origin", "http://localhost:9")
                .send()
                .unwrap();
            let status = r.status().as_u16();
            assert!(status == 405 || status == 404, "{m} {path} answers {status} but is not documented");
        }
    }
    // Paths nobody documented are not routes.
    for path in ["/", "/api", "/api/nope", "/collect/x", "/api/sites/demo/nope", "/api/sites/demo/sessions/x/y", "/me"]
    {
        let r = s.http.get(s.url(path)).bearer_auth(TOKEN).send().unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().unwrap();
        assert!(body["error"].as_str().unwrap().starts_with("no route for"), "{path}: {body}");
    }
}

#[test]
fn operator_operations_need_the_bearer_token() {
    let f = fixture();
    let s = &f.server;
    let doc = document(s);
    assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    for (method, path, op) in operations(&doc) {
        let operator = path.starts_with("/api/") && path != "/api/openapi.json";
        assert_eq!(op.get("security").is_some(), operator, "{method} {path}: security");
        if !operator {
            continue;
        }
        assert!(op["responses"].get("401").is_some(), "{method} {path}: 401 documented");
        let concrete = path
            .replace("{site}", "demo")
            .replace("{sid}", &f.sid)
            .replace("{visitor_key}", &f.visitor_key)
            .replace("{file}", "app.js")
            .replace("{hash}", &"0".repeat(64));
        let r = s.http.request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), s.url(&concrete)).send();
        assert_eq!(r.unwrap().status(), 401, "{method} {path} without a token");
    }
}
