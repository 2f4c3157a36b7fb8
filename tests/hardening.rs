//! Issue #14 item 5, against the real binary: `Origin: null` is foreign, the data folder is
//! private, short tokens are refused at start, wrong bearer tokens are throttled per address,
//! 401s say `WWW-Authenticate: Bearer`, request-supplied text never reaches the log, and
//! `metrics_token` guards `/metrics`.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

fn one_view(vid: &str, sid: &str) -> serde_json::Value {
    batch(vid, sid, 0, vec![view(now_ms(), "https://shop.example/a", 10.0)])
}

#[test]
fn origin_null_is_foreign_unless_a_site_lists_it() {
    let s = TestServer::start();
    let post = |origin: &str| {
        s.http.post(s.url("/collect")).header("origin", origin).json(&one_view(&id(1), &id(2))).send().unwrap()
    };
    // The demo site accepts any origin, but a sandboxed frame anywhere says `null`.
    assert_eq!(post("null").status(), 403);
    assert_eq!(post("https://shop.example").status(), 204);
    let preflight = s.http.request(reqwest::Method::OPTIONS, s.url("/collect")).header("origin", "null").send();
    assert_eq!(preflight.unwrap().status(), 403);

    let listed = TestServer::start_with_config(Some(
        "[[site]]\nid = \"framed\"\norigins = [\"null\"]\n[[site]]\nid = \"shop\"\norigins = [\"https://shop.example\"]\n",
    ));
    let mut b = one_view(&id(3), &id(4));
    b["site"] = json!("framed");
    let r = listed.http.post(listed.url("/collect")).header("origin", "null").json(&b).send().unwrap();
    assert_eq!(r.status(), 204, "a site that lists \"null\" takes it");
    b["site"] = json!("shop");
    let r = listed.http.post(listed.url("/collect")).header("origin", "null").json(&b).send().unwrap();
    assert_eq!(r.status(), 403);
}

#[cfg(unix)]
#[test]
fn the_data_folder_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = TestServer::start();
    assert_eq!(s.post_json(&one_view(&id(1), &id(2))).status(), 204);
    s.stop();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.data), 0o700, "data folder");
    let mut seen = 0;
    let mut stack = vec![s.data.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                stack.push(path);
            } else {
                assert_eq!(mode(&path) & 0o077, 0, "{} is readable by others", path.display());
                seen += 1;
            }
        }
    }
    assert!(s.data.join("store").join("db").exists() && seen >= 3, "the store's files were checked");
}

/// Starts the binary with `env`, expecting it to exit; returns its status and stderr.
fn start_expecting_exit(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hushtale"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"]).arg(tmp.path().join("data")).args(args);
    cmd.env_remove("HUSHTALE_ADMIN_TOKEN").env_remove("HUSHTALE_CONFIG").stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status.code(), err);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.kill().unwrap();
    panic!("hushtale kept running with {env:?}");
}

#[test]
fn short_tokens_are_refused_at_start_with_a_clear_message() {
    let (code, err) = start_expecting_exit(&[("HUSHTALE_ADMIN_TOKEN", "a")], &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("HUSHTALE_ADMIN_TOKEN") && err.contains("at least 16"), "{err}");
    let (code, err) =
        start_expecting_exit(&[("HUSHTALE_ADMIN_TOKEN", TOKEN), ("HUSHTALE_METRICS_TOKEN", "short")], &[]);
    assert_ne!(code, Some(0));
    assert!(err.contains("metrics_token") && err.contains("at least 16"), "{err}");
}

#[test]
fn wrong_bearer_tokens_are_throttled_per_address_and_401_names_the_scheme() {
    let s = TestServer::start();
    let get = |token: &str| s.http.get(s.url("/api/sites")).bearer_auth(token).send().unwrap();
    let first = get("wrong-token-wrong-token");
    assert_eq!(first.status(), 401);
    assert_eq!(first.headers()["www-authenticate"], "Bearer");
    let statuses: Vec<u16> = (0..12).map(|_| get("wrong-token-wrong-token").status().as_u16()).collect();
    assert!(statuses.ends_with(&[429, 429]), "{statuses:?}");
    let shut_out = get(TOKEN);
    assert_eq!(shut_out.status(), 429, "while throttled, not even the right token is checked");
    assert!(shut_out.headers().contains_key("retry-after"));
}

#[test]
fn request_supplied_text_never_reaches_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hushtale"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("data"))
        .env("HUSHTALE_ADMIN_TOKEN", TOKEN)
        .env_remove("HUSHTALE_CONFIG")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let base = loop {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        if let Some(rest) = line.strip_prefix("hushtale listening on ") {
            break rest.trim().to_owned();
        }
    };
    let http = client();
    let canary = "jane.doe.canary";
    let mut b = one_view(&id(1), &id(2));
    b["site"] = json!(format!("{canary}@example.com"));
    http.post(format!("{base}/collect")).json(&b).send().unwrap();
    http.get(format!("{base}/{canary}-path")).send().unwrap();
    http.post(format!("{base}/collect"))
        .header("origin", format!("https://{canary}.example"))
        .body("{")
        .send()
        .unwrap();
    http.post(format!("{base}/me/export")).json(&json!({"site": canary, "vid": id(1)})).send().unwrap();
    http.get(format!("{base}/api/sites/{canary}/stats")).bearer_auth(TOKEN).send().unwrap();
    http.get(format!("{base}/api/sites/demo/heatmap?path={canary}")).bearer_auth(TOKEN).send().unwrap();
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    child.wait().unwrap();
    assert!(err.contains("refused"), "the refusals are logged: {err}");
    assert!(!err.contains(canary), "request text in the log:\n{err}");
}

#[test]
fn metrics_token_guards_metrics() {
    let s = TestServer::start_with_config(Some("metrics_token = \"scrape-token-0123456789\"\n"));
    let r = s.http.get(s.url("/metrics")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = s.http.get(s.url("/metrics")).bearer_auth("scrape-token-0123456789").send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("hushtale_"));
    assert_eq!(s.http.get(s.url("/metrics")).bearer_auth(TOKEN).send().unwrap().status(), 200);
    let open = TestServer::start();
    assert_eq!(open.http.get(open.url("/metrics")).send().unwrap().status(), 200, "public without the setting");
}
