//! 204 means durable: batches acknowledged before SIGTERM, and before kill -9, are all there
//! after a restart, and a clean stop exits 0.

mod common;

use common::*;

#[test]
fn acknowledged_batches_survive_sigterm() {
    let mut s = TestServer::start();
    let sids = send_sessions(&s, 0..50, 20);
    assert_eq!(s.stop(), Some(0), "clean stop exits 0");
    s.restart();
    assert_each_once(&s, &sids, 21);
}

#[test]
fn acknowledged_batches_survive_kill_9() {
    let mut s = TestServer::start();
    let mut sids = send_sessions(&s, 0..40, 20);
    s.kill();
    s.restart();
    assert_each_once(&s, &sids, 21);
    // And again, with the store reopened after a crash.
    sids.extend(send_sessions(&s, 100..140, 20));
    s.kill();
    s.restart();
    assert_each_once(&s, &sids, 21);
}
