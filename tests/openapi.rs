//! `GET /api/openapi.json` is true: every documented operation answers on the real server with a
//! documented status (and, for JSON answers, a body that the documented schema accepts, checked
//! with the `jsonschema` crate), every undocumented method of a documented path answers 405 with
//! the documented methods in `Allow`, and nothing else is routed. The document is generated from
//! the route table (src/server/routes.rs), so this checks the table against the live server.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const METHODS: [&str; 7] = ["get", "head", "post", "put", "patch", "delete", "options"];

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}"));
            resolve(doc, target)
        }
        None => v,
    }
}

/// Errors of `value` against `schema`, a schema of the document whose `$ref`s point into its
/// components: the components go along at the root so that the references resolve.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut root = schema.clone();
    match root.as_object_mut() {
        Some(obj) => {
            obj.insert("components".into(), doc["components"].clone());
        }
        None => return vec![format!("{at}: schema is not an object")],
    }
    let validator = jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{at}: bad schema: {e}"));
    validator.iter_errors(value).map(|e| format!("{at}: {} at {}", e, e.instance_path())).collect()
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
    assert_eq!(doc["openapi"], "3.1.0");
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
    let concrete = concrete(f, path);
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
        let expected_refusal = method == "post" && path == "/enable" && status == 403;
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
            failures.extend(check(&doc, &media_doc["schema"], &body, &format!("{method} {path}")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn undocumented_methods_answer_405_with_the_documented_ones_and_nothing_else_is_routed() {
    let f = fixture();
    let s = &f.server;
    let doc = document(s);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = concrete(&f, path);
        let mut allowed: Vec<String> = item.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        allowed.sort();
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
            assert_eq!(r.status(), 405, "{m} {path} is not documented");
            let mut allow: Vec<String> =
                r.headers()["allow"].to_str().unwrap().split(", ").map(str::to_owned).collect();
            allow.sort();
            assert_eq!(allow, allowed, "Allow of {path}");
            if m != "head" {
                let body: Value = r.json().unwrap();
                assert!(body["error"].is_string(), "{m} {path}: {body}");
            }
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

fn concrete(f: &Fixture, path: &str) -> String {
    path.replace("{site}", "demo")
        .replace("{sid}", &f.sid)
        .replace("{visitor_key}", &f.visitor_key)
        .replace("{file}", "app.js")
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
        let concrete = concrete(&f, &path);
        let r = s.http.request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), s.url(&concrete)).send();
        let r = r.unwrap();
        assert_eq!(r.status(), 401, "{method} {path} without a token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{method} {path}");
    }
}
