//! What the scrubber keeps and what it removes, through the real server: replay snapshots keep
//! what a page needs to be rebuilt (hashed asset names, chart paths, CSS numbers), and personal
//! data in the forms the first scrubber missed (IP addresses, dotted cards, spaced SSNs, URLs
//! inside snapshots) reaches neither the API nor the disk.

mod common;

use common::*;
use serde_json::{json, Value};

fn session_events(s: &TestServer, sid: &str) -> Vec<Value> {
    let (status, body) = s.api(&format!("/api/sites/demo/sessions/{sid}"));
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events.iter().find(|e| e["k"] == kind).unwrap_or_else(|| panic!("no {kind} event in {events:?}"))
}

/// Every file under `dir`, read.
fn disk_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(disk_bytes(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

const AREA_PATH: &str = "M 0 93.28513035220995 L 38.4111111111111111 53.28513035220995 C 77.2 12.5 115.5551234567 \
                         60.0 154.1 41.99999999999999 L 154.1 120 L 0 120 Z";

#[test]
fn replay_snapshots_keep_hashed_assets_chart_paths_and_css_numbers() {
    let s = TestServer::start();
    let (vid, sid) = (id(301), id(302));
    let t = now_ms();
    let style = "body{margin:0}.spark{width:53.28513035220995px;background:url(img/bg-9a9549ea.png)}";
    let snap = json!({"u": "https://doc.example/book/ch01.html", "w": 1280, "h": 720, "x": 0, "y": 0, "a": [[0, 0, 1,
        ["html",
         ["head", ["link", {"rel": "stylesheet", "href": "theme/semantic-notes-9b5766c0.css"}], ["style", style]],
         ["body",
          ["img", {"class": "logo", "src": "rust-logo-9a9549ea.svg", "alt": "Rust logo"}],
          ["svg", {"viewBox": "0 0 154.1 120", "width": "154.1", "height": "120"},
           ["path", {"d": AREA_PATH, "fill": "url(#SvgjsLinearGradient10011)", "transform": "translate(0.4111111111111111, 0)"}],
           ["polyline", {"points": "0,53.28513035220995 77.2,28.51303522099511"}]]]]]]});
    let mutation = json!({"m": [[9, {"d": "M 0 53.28513035220995 L 154.1 4.111111111111111", "style": "height:28.513035220995px"}]]});
    let body = batch(
        &vid,
        &sid,
        0,
        vec![
            view(t, "https://doc.example/book/ch01.html", 10.0),
            json!({"k": "snap", "t": t + 1, "d": snap}),
            json!({"k": "mut", "t": t + 2, "d": mutation}),
        ],
    );
    assert_eq!(s.post_json(&body).status(), 204);

    let events = session_events(&s, &sid);
    let stored = &event(&events, "snap")["d"];
    assert_eq!(stored, &snap, "the snapshot reaches the replay unchanged");
    assert_eq!(&event(&events, "mut")["d"], &mutation);
}

#[test]
fn new_forms_of_personal_data_never_reach_the_api_or_the_disk() {
    let mut s = TestServer::start();
    let (vid, sid) = (id(303), id(304));
    let t = now_ms();
    let snap = json!({"u": "https://shop.example/orders/98765432/invoice?uid=u-4242-canary#frag-canary", "a": [[0, 0, 1,
        ["body",
         ["a", {"href": "/orders/98765432/invoice?uid=u-4242-canary"}, "Invoice"],
         ["img", {"src": "https://cdn.example/u/98765432/p.png?sig=sig-canary", "srcset": "/u/98765432/a.png?sig=sig-canary 2x"}],
         ["p", "Logged in from 203.0.113.195 and 2001:db8:85a3::8a2e:370:7334"],
         ["p", "Card 4111.1111.1111.1111 or 5555\u{a0}5555\u{a0}5555\u{a0}4444, SSN 123 45 6789"]]]]});
    let body = batch(
        &vid,
        &sid,
        0,
        vec![
            json!({"k": "view", "t": t, "url": "https://shop.example/admin/203.0.113.195/orders/98765432/invoice?uid=u-4242-canary",
               "ref": "http://192.168.14.77:3000/intranet", "vw": 1280, "vh": 720, "dw": 1280, "dh": 2000}),
            click(t + 1, 5.0, 5.0, "tr[data-ip=\"198.51.100.23\"] > td"),
            json!({"k": "err", "t": t + 2, "msg": "fetch from fe80::1ff:fe23:4567:890a failed for 4111.1111.1111.1111 / 123 45 6789"}),
            json!({"k": "snap", "t": t + 3, "d": snap}),
        ],
    );
    assert_eq!(s.post_json(&body).status(), 204);

    let canaries = [
        "203.0.113.195",
        "2001:db8:85a3::8a2e:370:7334",
        "192.168.14.77",
        "198.51.100.23",
        "fe80::1ff:fe23:4567:890a",
        "4111.1111.1111.1111",
        "5555\u{a0}5555\u{a0}5555\u{a0}4444",
        "123 45 6789",
        "98765432",
        "u-4242-canary",
        "sig-canary",
        "frag-canary",
    ];
    let events = session_events(&s, &sid);
    let export: Value =
        s.http.post(s.url("/me/export")).json(&json!({"site": "demo", "vid": vid})).send().unwrap().json().unwrap();
    let seen = format!("{events:?}{export}");
    for canary in canaries {
        assert!(!seen.contains(canary), "{canary} leaked through the API: {seen}");
    }
    let view = event(&events, "view");
    assert_eq!(view["url"], "https://shop.example/admin/:id/orders/:id/invoice");
    assert_eq!(view["ref"], "http://[ip]");
    let snap = &event(&events, "snap")["d"];
    assert_eq!(snap["u"], "https://shop.example/orders/:id/invoice");
    let body_node = &snap["a"][0][3];
    assert_eq!(body_node[1][1]["href"], "/orders/:id/invoice", "same rules as the view URL");
    assert_eq!(body_node[2][1]["src"], "https://cdn.example/u/:id/p.png");
    assert_eq!(body_node[2][1]["srcset"], "/u/:id/a.png 2x");

    assert_eq!(s.stop(), Some(0));
    let mut leaks = vec![];
    for (path, bytes) in disk_bytes(s.data_dir()) {
        for canary in canaries {
            if bytes.windows(canary.len()).any(|w| w == canary.as_bytes()) {
                leaks.push(format!("{canary} in {}", path.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "personal data on disk: {leaks:?}");
}

#[test]
fn near_misses_survive_the_server() {
    let s = TestServer::start();
    let (vid, sid) = (id(305), id(306));
    let t = now_ms();
    let msg = "HTTP 503 after v1.2.3.4 (version 10.0.19045.3803) on 29 November 2026; total $1,299.99";
    let body = batch(
        &vid,
        &sid,
        0,
        vec![view(t, "https://shop.example/docs/v10.24.1/api", 10.0), json!({"k": "err", "t": t + 1, "msg": msg})],
    );
    assert_eq!(s.post_json(&body).status(), 204);
    let events = session_events(&s, &sid);
    assert_eq!(event(&events, "err")["msg"], msg);
    assert_eq!(event(&events, "view")["path"], "/docs/v10.24.1/api");
}

#[test]
fn a_site_with_mask_text_all_keeps_no_readable_page_text() {
    let s = TestServer::start_with_config(Some("[[site]]\nid = \"demo\"\norigins = [\"*\"]\nmask_text = \"all\"\n"));
    let (vid, sid) = (id(307), id(308));
    let t = now_ms();
    // An old or tampered snippet that sent names in the clear: the server masks them anyway.
    let snap = json!({"a": [[0, 0, 1, ["body", {"class": "page"}, ["p", {"title": "Jane Doe"}, "Ship to Jane Doe, Baker Street"],
                                        ["style", ".page{width:53.28513035220995px}"]]]],
                      "x": [[4, "Jane Doe"]]});
    let body =
        batch(&vid, &sid, 0, vec![view(t, "https://shop.example/", 10.0), json!({"k": "snap", "t": t + 1, "d": snap})]);
    assert_eq!(s.post_json(&body).status(), 204);
    let events = session_events(&s, &sid);
    let d = &event(&events, "snap")["d"];
    assert!(!format!("{d}").contains("Jane"), "{d}");
    assert_eq!(d["a"][0][3][2][2], "**** ** **** **** ***** ******");
    assert_eq!(d["a"][0][3][2][1]["title"], "**** ***");
    assert_eq!(d["a"][0][3][3][1], ".page{width:53.28513035220995px}", "style sheets are not page text");
    assert_eq!(d["x"][0][1], "**** ***");
}

/// ESC/BEL sequences: clear the screen, write the clipboard (OSC 52), and a C1 CSI.
const TERMINAL_ATTACK: &str = "#buy\u{1b}[2J\u{1b}]52;c;ZXZpbA==\u{7}\u{9b}31m";

fn has_controls(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

fn run_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hushtale"))
        .args(args)
        .env_remove("HUSHTALE_URL")
        .env_remove("HUSHTALE_ADMIN_TOKEN")
        .output()
        .expect("run hushtale")
}

#[test]
fn control_characters_never_reach_storage_nor_the_operators_terminal() {
    let mut s = TestServer::start();
    let (vid, sid) = (id(309), id(310));
    let t = now_ms();
    let body = batch(
        &vid,
        &sid,
        0,
        vec![
            view(t, "https://shop.example/pricing", 10.0),
            click(t + 1, 960.0, 1210.0, TERMINAL_ATTACK),
            json!({"k": "err", "t": t + 2, "msg": "boom\u{1b}[2J\nat line\t2"}),
            json!({"k": "snap", "t": t + 3, "d": {"a": [[0, 0, 1, ["pre", "fn main() {\n\tok\u{1b}[H\u{85}\n}"]]]}}),
        ],
    );
    assert_eq!(s.post_json(&body).status(), 204);

    let events = session_events(&s, &sid);
    assert_eq!(event(&events, "click")["sel"], "#buy[2J]52;c;ZXZpbA==31m");
    assert_eq!(event(&events, "err")["msg"], "boom[2J at line 2");
    assert_eq!(event(&events, "snap")["d"]["a"][0][3][1], "fn main() {\n\tok[H\n}", "layout whitespace stays");

    let today = today();
    let out = run_cli(&[
        "heatmap", "--path", "/pricing", "--kind", "click", "--site", "demo", "--url", &s.base, "--token", TOKEN,
        "--from", &today, "--to", &today,
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && text.contains("#buy[2J]52;c;ZXZpbA==31m"), "{text}");
    assert!(!has_controls(&text), "{text:?}");

    assert_eq!(s.stop(), Some(0));
    for (path, bytes) in disk_bytes(s.data_dir()) {
        assert!(
            !bytes.windows(4).any(|w| w == b"[2J\x07" || w == b"\x1b[2J"),
            "an escape sequence in {}",
            path.display()
        );
    }
}

/// Data stored by an older version (or any answer at all) is escaped before it is printed.
#[test]
fn the_cli_escapes_control_characters_in_whatever_the_server_answers() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answer =
        json!({"path": "/pricing", "kind": "click", "width": "all", "geometry": {"columns": 50, "row_px": 20.0},
                        "cells": [{"x": 1, "y": 1, "n": 2}], "elements": [{"sel": TERMINAL_ATTACK, "n": 2}]})
        .to_string();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                answer.len()
            );
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(answer.as_bytes()).unwrap();
        }
    });
    let args = ["heatmap", "--path", "/pricing", "--site", "demo", "--url", &base, "--token", TOKEN];
    let out = run_cli(&args);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!has_controls(&text), "{text:?}");
    assert!(text.contains("#buy\\u001b[2J\\u001b]52;c;ZXZpbA==\\u0007\\u009b31m"), "{text}");

    let out = run_cli(&[&args[..], &["--json"]].concat());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!has_controls(&text), "{text:?}");
    let v: Value = serde_json::from_str(&text).expect("--json output stays JSON");
    assert_eq!(v["elements"][0]["sel"], TERMINAL_ATTACK);
    server.join().unwrap();
}
