//! 204 means durable: batches acknowledged before SIGTERM, and before kill -9, are all there
//! after a restart, and a clean stop exits 0.

mod common;

use common::*;

fn send_many(s: &TestServer, from: u64, n: u64) -> Vec<String> {
    let t = now_ms();
    (from..from + n)
        .map(|i| {
            let sid = id(i);
            let mut events = vec![view(t, "https://example.com/p", 10.0)];
            events.extend(moves(t + 1, 20));
            let r = s.post_json(&batch(&id(i % 7), &sid, 0, events));
            assert_eq!(r.status(), 204);
            sid
        })
        .collect()
}

fn assert_all_there(s: &TestServer, sids: &[String]) {
    for sid in sids {
        let (status, body) = s.api(&format!("/api/sites/demo/sessions/{sid}"));
        assert_eq!(status, 200, "acknowledged session {sid} lost");
        assert_eq!(body["events"].as_array().unwrap().len(), 21);
    }
    let (_, stats) = s.api("/api/sites/demo/stats");
    assert_eq!(stats["totals"]["pageviews"], sids.len() as u64);
}

#[test]
fn acknowledged_batches_survive_sigterm() {
    let mut s = TestServer::start();
    let sids = send_many(&s, 0, 50);
    assert_eq!(s.stop(), Some(0), "clean stop exits 0");
    s.restart();
    assert_all_there(&s, &sids);
}

#[test]
fn acknowledged_batches_survive_kill_9() {
    let mut s = TestServer::start();
    let mut sids = send_many(&s, 0, 40);
    s.kill();
    s.restart();
    assert_all_there(&s, &sids);
    // And again, with the store reopened after a crash.
    sids.extend(send_many(&s, 100, 40));
    s.kill();
    s.restart();
    assert_all_there(&s, &sids);
}
