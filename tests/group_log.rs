//! The sled store's group log (`src/store/log.rs`): a 204 means the batch is in the log on
//! disk, and sled is flushed only at checkpoints. So after `kill -9` the batches acknowledged
//! since the last checkpoint come back from the log — here also when the crash tore the log's
//! last record in half — each once, rollups counted once, and the log is emptied afterwards.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;

fn log_files(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("store").join("grouplog");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn send(s: &TestServer, from: u64, n: u64) -> Vec<String> {
    let t = now_ms();
    (from..from + n)
        .map(|i| {
            let sid = id(1_000 + i);
            let mut events = vec![view(t, "https://example.com/logged", 10.0)];
            events.extend(moves(t + 1, 9));
            assert_eq!(s.post_json(&batch(&id(i % 5), &sid, 0, events)).status(), 204);
            sid
        })
        .collect()
}

fn assert_each_once(s: &TestServer, sids: &[String]) {
    for sid in sids {
        let (status, body) = s.api(&format!("/api/sites/demo/sessions/{sid}"));
        assert_eq!(status, 200, "acknowledged session {sid} lost");
        assert_eq!(body["events"].as_array().unwrap().len(), 10, "session {sid} whole, once");
    }
    let (_, stats) = s.api("/api/sites/demo/stats");
    assert_eq!(stats["totals"]["pageviews"], sids.len() as u64, "each pageview counted once");
    assert_eq!(stats["totals"]["sessions"], sids.len() as u64);
}

#[test]
fn batches_acknowledged_after_the_last_checkpoint_survive_kill_9_and_a_torn_log_tail() {
    let mut s = TestServer::start();
    let mut sids = send(&s, 0, 30);
    s.kill();
    let files = log_files(s.data_dir());
    let newest = files.last().expect("acknowledged groups are in the group log");
    assert!(std::fs::metadata(newest).unwrap().len() > 0);
    // The crash also cut the next append short: half a record header and some payload.
    let mut file = std::fs::OpenOptions::new().append(true).open(newest).unwrap();
    file.write_all(&[0x31, 0x4c, 0x54, 0x48, 0xff, 0x01, 0, 0, 7, 7, 7]).unwrap();
    drop(file);

    s.restart();
    assert_each_once(&s, &sids);
    assert!(log_files(s.data_dir()).is_empty(), "recovery applied, flushed and retired the log");

    // Writing goes on after recovery, and a second crash recovers the same way.
    sids.extend(send(&s, 30, 20));
    s.kill();
    s.restart();
    assert_each_once(&s, &sids);
    assert_eq!(s.stop(), Some(0));
}
