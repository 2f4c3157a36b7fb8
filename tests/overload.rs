//! Overload: offered load above what the store absorbs is refused at once with 503 and
//! `Retry-After` (never queued without bound), memory stays under the documented bound, the
//! server serves normally as soon as the load drops, and no acknowledged batch is lost.
//! No assertion depends on timing: a burst is repeated until the queue has been seen full.

mod common;
mod load_support;

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{batch, id, moves, now_ms, TestServer};
use load_support::{client, config, peak_rss_mib, pid_of};
use serde_json::Value;

/// What one sender saw: acknowledged sessions and how many 503s.
#[derive(Default)]
struct Seen {
    acked: Vec<String>,
    overloaded: usize,
}

/// `threads` senders released together, each sending `each` batches back to back.
fn burst(
    s: &TestServer,
    round: u64,
    threads: u64,
    each: u64,
    body: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> Seen {
    let body = Arc::new(body);
    let gate = Arc::new(Barrier::new(threads as usize));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, gate, body) = (s.url("/collect"), gate.clone(), body.clone());
            std::thread::spawn(move || {
                let http = client(Duration::from_secs(30));
                let mut seen = Seen::default();
                gate.wait();
                for i in 0..each {
                    let sid = id(round * 1_000_000 + t * 1000 + i);
                    let r = http.post(&url).header("content-type", "application/json").body(body(&sid)).send().unwrap();
                    match r.status().as_u16() {
                        204 => seen.acked.push(sid),
                        503 => {
                            let retry: u32 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                            assert!(retry >= 1, "Retry-After must ask for a pause");
                            let e: Value = r.json().unwrap();
                            assert!(e["error"].as_str().unwrap().contains("overload"), "{e}");
                            seen.overloaded += 1;
                        }
                        other => panic!("status {other} under overload: {}", r.text().unwrap_or_default()),
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Seen::default();
    for h in handles {
        let seen = h.join().unwrap();
        all.acked.extend(seen.acked);
        all.overloaded += seen.overloaded;
    }
    all
}

fn small_batch(sid: &str) -> Vec<u8> {
    serde_json::to_vec(&batch(&id(7), sid, 0, moves(now_ms(), 20))).unwrap()
}

fn assert_stored(s: &TestServer, acked: &[String]) {
    for sid in acked {
        assert_eq!(s.api(&format!("/api/sites/demo/sessions/{sid}")).0, 200, "acknowledged {sid} is missing");
    }
}

#[test]
fn above_capacity_answers_503_then_recovers_and_loses_nothing() {
    // A queue of two batches and one batch per commit: every flush lets two more in.
    let s = TestServer::start_with_config(Some(&config("[limits]\nqueue_batches = 2\nmax_group = 1\n")));
    let mut acked = Vec::new();
    let mut overloaded = 0;
    for round in 1..=50 {
        let seen = burst(&s, round, 24, 8, small_batch);
        acked.extend(seen.acked);
        overloaded += seen.overloaded;
        if overloaded > 0 {
            break;
        }
    }
    assert!(overloaded > 0, "50 bursts of 24 senders never filled a 2-batch queue");
    assert_eq!(s.metric("hushtale_batches_rejected_total{reason=\"overloaded\"}"), overloaded as f64);

    // Load drops to one sender: one batch in flight never fills the queue, so every one is stored.
    let http = client(Duration::from_secs(30));
    for i in 0..30 {
        let sid = id(900_000 + i);
        let r = http
            .post(s.url("/collect"))
            .header("content-type", "application/json")
            .body(small_batch(&sid))
            .send()
            .unwrap();
        assert_eq!(r.status(), 204, "after the overload, batch {i} was refused");
        acked.push(sid);
    }
    assert_stored(&s, &acked);
    assert_eq!(s.metric("hushtale_batches_accepted_total"), acked.len() as f64);
}

/// The most memory one request can ask for: a body at the wire limit that inflates to the
/// decompressed limit, all of it a DOM snapshot of tiny JSON values (each a node in memory).
fn snapshot_bomb(sid: &str, inflated: usize) -> Vec<u8> {
    let t = now_ms();
    let mut doc = format!(
        r#"{{"v":1,"site":"demo","vid":"{}","sid":"{sid}","seq":0,"sent":{t},"events":[{{"k":"scroll","t":{t},"y":1}},{{"k":"snap","t":{t},"d":["#,
        id(9)
    );
    let zeros = (inflated - doc.len() - 8) / 2;
    doc.push_str(&"0,".repeat(zeros));
    doc.push_str("0]}]}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(doc.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn memory_stays_bounded_when_every_request_is_as_large_as_allowed() {
    // Default limits (1 MiB body, 4 MiB inflated, 128 MiB queue), except: no per-IP rate limit.
    let s = TestServer::start_with_config(Some(&config("")));
    let pid = pid_of(s.data_dir());
    assert!(snapshot_bomb(&id(1), (4 << 20) - 1024).len() < 1 << 20);
    let threads = 10;
    let gate = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (url, gate) = (s.url("/collect"), gate.clone());
            std::thread::spawn(move || {
                let http = client(Duration::from_secs(120));
                let mut statuses = Vec::new();
                gate.wait();
                for i in 0..1 {
                    let body = snapshot_bomb(&id(t * 100 + i), (4 << 20) - 1024);
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("content-encoding", "gzip")
                        .body(body)
                        .send()
                        .unwrap();
                    statuses.push(r.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let peak = peak_rss_mib(pid);
    eprintln!("peak RSS {peak} MiB; statuses {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 204 | 503)), "{statuses:?}");
    assert!(peak <= 512, "peak RSS {peak} MiB is over the documented 512 MiB bound");
    assert!(s.http.get(s.url("/healthz")).send().unwrap().status().is_success());
}
