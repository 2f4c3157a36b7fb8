//! The operator CLI (`hushtale stats|pages|heatmap`) against a real running server.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};

fn hushtale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hushtale"))
        .args(args)
        .env_remove("HUSHTALE_URL")
        .env_remove("HUSHTALE_ADMIN_TOKEN")
        .env("HUSHTALE_DATA", "/nonexistent-hushtale-data")
        .output()
        .expect("run hushtale")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A server with known figures today: /pricing 3 views (loads 100, 200, 300 ms) and 4 clicks at
/// one spot; /about 1 view.
fn server() -> TestServer {
    let s = TestServer::start();
    let t = now_ms();
    for (i, load) in [100.0, 200.0, 300.0].into_iter().enumerate() {
        let mut events = vec![view(t + i as i64, "https://shop.example/pricing", load)];
        if i == 0 {
            // 4 clicks, 2 s apart (no rage), in column 37 (960 of 1280 px), row 60 (1210 px).
            events.extend((0..4).map(|k| json!({"k":"click","t":t + 2000 * (k + 1),"x":960,"y":1210,"sel":"#buy"})));
        }
        assert_eq!(s.post_json(&batch(&id(i as u64), &id(100 + i as u64), 0, events)).status(), 204);
    }
    assert_eq!(
        s.post_json(&batch(&id(9), &id(109), 0, vec![view(t, "https://shop.example/about", 50.0)])).status(),
        204
    );
    s
}

#[test]
fn stats_pages_and_heatmap_print_tables_with_the_figures() {
    let s = server();
    let base = s.base.as_str();
    let today = today();
    let common = ["--site", "demo", "--url", base, "--token", TOKEN, "--from", &today, "--to", &today];

    let out = hushtale(&[&["stats"][..], &common].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row = text.lines().find(|l| l.starts_with(&today)).unwrap_or_else(|| panic!("no row for today:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // day, pageviews, sessions, visitors, avg load, p50, p95
    assert_eq!(&cols[..5], [today.as_str(), "4", "4", "4", "162.5"], "{text}");
    assert!(text.lines().any(|l| l.starts_with("total") && l.split_whitespace().nth(1) == Some("4")), "{text}");
    // Aligned: header, rule and rows share one width.
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).skip(1).collect();
    assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");

    let out = hushtale(&[&["pages"][..], &common].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let pricing: Vec<&str> =
        text.lines().find(|l| l.starts_with("/pricing")).expect("pricing row").split_whitespace().collect();
    assert_eq!(pricing[1], "3", "pageviews: {text}");
    assert_eq!(pricing[2], "200.0", "avg load: {text}");
    assert_eq!(pricing[6], "4", "clicks: {text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('/')).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0].starts_with("/pricing") && rows[1].starts_with("/about"), "most viewed first: {text}");
    assert!(text.contains("2 of 2 paths"), "{text}");

    let out = hushtale(&[&["heatmap", "--path", "/pricing", "--kind", "click"][..], &common].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let hottest: Vec<&str> =
        text.lines().find(|l| l.contains("1200-1220")).expect("the clicked row").split_whitespace().collect();
    assert_eq!(hottest, ["74-76", "1200-1220", "4", "100.0%"], "{text}");
    assert!(text.lines().any(|l| l.starts_with("#buy") && l.ends_with(" 4")), "{text}");
}

#[test]
fn json_flag_prints_the_apis_json_and_env_vars_work() {
    let s = server();
    let out = Command::new(env!("CARGO_BIN_EXE_hushtale"))
        .args(["pages", "--site", "demo", "--json"])
        .env("HUSHTALE_URL", &s.base)
        .env("HUSHTALE_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("--json prints JSON");
    assert_eq!(v, s.api("/api/sites/demo/pages").1);
    assert_eq!(v["pages"][0]["path"], "/pricing");
    assert_eq!(v["pages"][0]["pageviews"], 3);

    for cmd in [&["stats"][..], &["heatmap", "--path", "/pricing", "--kind", "move"][..]] {
        let args = [cmd, &["--site", "demo", "--json", "--url", &s.base, "--token", TOKEN][..]].concat();
        let out = hushtale(&args);
        assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("--json prints JSON");
        assert!(v.is_object());
    }
}

#[test]
fn errors_are_clear_and_have_exit_codes() {
    let s = server();
    let base = s.base.as_str();

    let out = hushtale(&["stats", "--site", "demo", "--url", base, "--token", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401") && stderr(&out).contains("--token"), "{}", stderr(&out));

    let out = hushtale(&["pages", "--site", "nosuch", "--url", base, "--token", TOKEN]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404") && stderr(&out).contains("nosuch"), "{}", stderr(&out));

    let out = hushtale(&["stats", "--site", "demo", "--url", base, "--token", TOKEN, "--from", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("400") && stderr(&out).contains("YYYY-MM-DD"), "{}", stderr(&out));

    // Nothing listens on port 9 of localhost.
    let out = hushtale(&["stats", "--site", "demo", "--url", "http://127.0.0.1:9", "--token", TOKEN]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("connection refused"), "{}", stderr(&out));

    let out = hushtale(&["stats", "--site", "demo", "--url", base]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no operator token"), "{}", stderr(&out));

    let out = hushtale(&["heatmap", "--site", "demo", "--url", base, "--token", TOKEN]);
    assert_eq!(out.status.code(), Some(2), "--path is required");
    assert!(stdout(&out).is_empty());
}

#[test]
fn forms_and_funnel_print_where_visitors_leave() {
    let s = TestServer::start();
    let t = now_ms() - 60_000;
    let form = |k: &str, dt: i64, sel: &str, len: Option<u32>| {
        let mut e = json!({"k": k, "t": t + dt, "sel": sel, "form": "form#signup"});
        if let Some(len) = len {
            e["len"] = json!(len);
        }
        e
    };
    // Two visitors start the signup form; one gives up on the e-mail field, one submits.
    let quitter = vec![
        view(t, "https://shop.example/signup", 10.0),
        form("focus", 100, "input#name", None),
        form("blur", 1100, "input#name", Some(3)),
        form("focus", 1200, "input#email", None),
    ];
    let buyer = vec![
        view(t, "https://shop.example/signup", 10.0),
        view(t + 5000, "https://shop.example/thanks", 10.0),
        form("focus", 100, "input#name", None),
        form("blur", 600, "input#name", Some(4)),
        json!({"k":"submit","t":t + 700,"form":"form#signup"}),
    ];
    assert_eq!(s.post_json(&batch(&id(1), &id(1), 0, quitter)).status(), 204);
    assert_eq!(s.post_json(&batch(&id(2), &id(2), 0, buyer)).status(), 204);
    let common = ["--site", "demo", "--url", s.base.as_str(), "--token", TOKEN];

    let out = hushtale(&[&["forms", "--path", "/signup"][..], &common].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("form#signup on /signup: 2 starters, 1 submits, abandon rate 50.0%"), "{text}");
    let email = text.lines().find(|l| l.starts_with("input#email")).unwrap_or_else(|| panic!("{text}"));
    assert!(email.ends_with("1 <"), "the e-mail field loses people: {text}");

    let out = hushtale(&[&["funnel", "--steps", "/signup,/thanks"][..], &common].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let second = text.lines().find(|l| l.starts_with("2. /thanks")).unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = second.split_whitespace().collect();
    assert_eq!(&cols[2..5], ["1", "50.0%", "5000.0"], "{text}");
    assert!(text.contains(&format!("left after step 1 (newest first): {}", id(1))), "{text}");

    let out = hushtale(&[&["funnel", "--steps", "/only-one"][..], &common].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("2 to 10 steps"), "{}", stderr(&out));
}
