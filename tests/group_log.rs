//! The sled store's group log (`src/store/log.rs`): a 204 means the batch is in the log on
//! disk, and sled is flushed only at checkpoints. So after `kill -9` the batches acknowledged
//! since the last checkpoint come back from the log — also when the crash tore the log's last
//! record in half, and when the log was being written over a recycled file's old records — each
//! once, rollups counted once, and the log is emptied afterwards.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// The group log's files with the given extension (`log`: the log; `spare`: ready to reuse).
fn files(data: &Path, extension: &str) -> Vec<PathBuf> {
    let dir = data.join("store").join("grouplog");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn batches_acknowledged_after_the_last_checkpoint_survive_kill_9_and_a_torn_log_tail() {
    let mut s = TestServer::start();
    let mut sids = send_sessions(&s, 1_000..1_030, 9);
    s.kill();
    let logs = files(s.data_dir(), "log");
    let newest = logs.last().expect("acknowledged groups are in the group log");
    assert!(std::fs::metadata(newest).unwrap().len() > 0);
    // The crash also cut the next write short: half a record header and some payload, right
    // after the last record (the end of a new file, or the start of the zeros of a file written
    // out ahead of time; records end in a non-zero byte).
    let bytes = std::fs::read(newest).unwrap();
    let tail = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let file = std::fs::OpenOptions::new().write(true).open(newest).unwrap();
    file.write_all_at(&[0x32, 0x4c, 0x54, 0x48, 0xff, 0x01, 0, 0, 7, 7, 7], tail as u64).unwrap();
    drop(file);

    s.restart();
    assert_each_once(&s, &sids, 10);
    assert!(files(s.data_dir(), "log").is_empty(), "recovery applied, flushed and retired the log");

    // Writing goes on after recovery, and a second crash recovers the same way.
    sids.extend(send_sessions(&s, 1_030..1_050, 9));
    s.kill();
    s.restart();
    assert_each_once(&s, &sids, 10);
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn batches_written_over_a_recycled_log_files_old_records_survive_kill_9() {
    let mut s = TestServer::start();
    let mut sids = Vec::new();
    // Each round outlives a checkpoint (every second): the log moves to another file and the
    // retired one becomes a spare, so later rounds write over earlier rounds' records.
    for round in 0..4 {
        let from = 2_000 + round * 10;
        sids.extend(send_sessions(&s, from..from + 10, 9));
        std::thread::sleep(Duration::from_millis(1_300));
    }
    sids.extend(send_sessions(&s, 3_000..3_010, 9));
    assert!(!files(s.data_dir(), "spare").is_empty(), "retired log files are kept as spares");
    s.kill();
    s.restart();
    assert_each_once(&s, &sids, 10);

    sids.extend(send_sessions(&s, 3_010..3_020, 9));
    s.kill();
    s.restart();
    assert_each_once(&s, &sids, 10);
}

/// How many files under `dir` (and its folders) hold `what`, read raw.
fn holding(dir: &Path, what: &[u8]) -> usize {
    // A checkpoint may rename or delete a file between listing and reading it: then the scan is
    // repeated, so a file is never missed (nor counted twice) because it moved.
    'scan: for _ in 0..100 {
        let mut count = 0;
        let mut dirs = vec![dir.to_owned()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let Ok(bytes) = std::fs::read(&path) else { continue 'scan };
                count += usize::from(bytes.windows(what.len()).any(|w| w == what));
            }
        }
        return count;
    }
    panic!("{} kept changing while it was read", dir.display());
}

#[test]
fn erasing_a_visitor_leaves_no_copy_in_the_log_its_spares_or_the_segment_files() {
    let s = TestServer::start();
    let (me, other) = (id(7), id(8));
    let send = |n: u64, vid: &str, path: &str| {
        let events = vec![view(now_ms(), &format!("https://example.com/{path}"), 10.0)];
        assert_eq!(s.post_json(&batch(vid, &id(n), 0, events)).status(), 204);
    };
    // After a checkpoint the first records sit in a retired (recycled) log file, the later ones
    // in the current file.
    send(5_000, &me, "erase-me");
    send(5_001, &other, "keep");
    std::thread::sleep(Duration::from_millis(1_300));
    send(5_002, &me, "erase-me");
    send(5_003, &other, "keep");
    let log = s.data_dir().join("store").join("grouplog");
    let segments = s.data_dir().join("store").join("segments");
    assert!(holding(&log, b"erase-me") > 0, "the log holds the visitor's events before the erasure");
    // A read drains the applier's memtable into the segment files.
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(5_002))).0, 200);
    assert!(holding(&segments, b"erase-me") > 0, "a segment file holds them too");

    let r = s.http.post(s.url("/me/forget")).json(&serde_json::json!({"site": "demo", "vid": me})).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(holding(&segments, b"erase-me"), 0, "no segment file keeps the erased events");
    // A spare being written out when the erasure came is deleted once written.
    for _ in 0..100 {
        if holding(&log, b"erase-me") == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(holding(&log, b"erase-me"), 0, "no log file or spare keeps the erased events");
    assert!(holding(&segments, b"keep") > 0, "others' events stay in the segment files");
    assert_eq!(s.api(&format!("/api/sites/demo/sessions/{}", id(5_001))).0, 200, "others stay");
}
