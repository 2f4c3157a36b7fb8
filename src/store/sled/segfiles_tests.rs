//! Tests of segment files: stores written before them, crashes that leave unindexed bytes
//! behind, and retention deleting whole files.

use std::path::Path;

use super::tests::{batch, copy_dir, raw_files, sessions_and_count};
use super::*;
use crate::model::StoredBatch;

fn group(sessions: std::ops::Range<u8>) -> Arc<[StoredBatch]> {
    sessions.map(|n| batch(n, 0, 20)).collect::<Vec<_>>().into()
}

fn segment_bytes(dir: &Path) -> usize {
    raw_files(&dir.join("segments")).iter().map(Vec::len).sum()
}

/// Turns a store into what earlier versions wrote: every segment a value of sled's `segments`
/// tree, no segment files, no index entries.
fn as_written_before_segment_files(dir: &Path) {
    let db = sled::Config::new().path(dir).open().unwrap();
    let (main, legacy) = (db.open_tree("hushtale").unwrap(), db.open_tree("segments").unwrap());
    let files = segfiles::SegmentFiles::open(&dir.join("segments"), &main).unwrap();
    let mut removed = sled::Batch::default();
    for item in main.scan_prefix([keys::NS_SEGMENT]) {
        let (key, value) = item.unwrap();
        let (site, _) = keys::parse_segment(&key).unwrap();
        let at = segfiles::Location::decode(&value).unwrap();
        legacy.insert(&key, files.lock().read(site, &at, 0..at.len as usize).unwrap()).unwrap();
        removed.remove(key);
    }
    for item in main.scan_prefix([keys::NS_SEGMENT_FILE]) {
        removed.remove(item.unwrap().0);
    }
    main.apply_batch(removed).unwrap();
    db.flush().unwrap();
    std::fs::remove_dir_all(dir.join("segments")).unwrap();
}

#[tokio::test]
async fn a_store_with_segments_in_sled_moves_them_to_files_once_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    store.write(group(0..6)).await.unwrap();
    store.flush().await.unwrap();
    drop(store);
    as_written_before_segment_files(dir.path());
    assert!(!dir.path().join("segments").exists());

    for written in [6, 7] {
        let store = SledStore::open(dir.path(), 16 << 20).unwrap();
        assert_eq!(sessions_and_count(&store, 8).await, (written, written as u64), "every session whole, once");
        assert!(segment_bytes(dir.path()) > 0, "the segments are in files");
        let again = store.write(vec![batch(3, 0, 20), batch(7, 0, 20)].into()).await.unwrap();
        assert_eq!(again[0], WriteOutcome::Duplicate);
        drop(store);
    }
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    assert_eq!(db.open_tree("segments").unwrap().len(), 0, "nothing left in sled's segment tree");
}

/// A crash after a drain wrote segment files but before sled was flushed: the bytes past what
/// sled holds (and a torn tail) are cut off at open, the group log re-applies the groups, and
/// every batch is there once — on disk too.
#[tokio::test]
async fn unindexed_segment_bytes_left_by_a_crash_are_cut_off_and_replayed_once() {
    let (live, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = SledStore::open_tuned(live.path(), 16 << 20, tests::no_checkpoints(memtable::BUDGET)).unwrap();
    store.write(group(0..4)).await.unwrap();
    store.flush().await.unwrap();
    copy_dir(live.path(), crashed.path());
    store.write(group(4..8)).await.unwrap();
    // A read drains: the segment files grow, sled is not flushed.
    assert_eq!(sessions_and_count(&store, 8).await, (8, 8));
    let written = segment_bytes(live.path());
    assert!(written > segment_bytes(crashed.path()));
    copy_dir(&live.path().join("grouplog"), &crashed.path().join("grouplog"));
    copy_dir(&live.path().join("segments"), &crashed.path().join("segments"));
    drop(store);
    for path in std::fs::read_dir(crashed.path().join("segments")).unwrap() {
        for file in std::fs::read_dir(path.unwrap().path()).unwrap() {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(file.unwrap().path()).unwrap();
            f.write_all(b"[{\"t\":1,\"torn").unwrap();
        }
    }

    for _ in 0..2 {
        let store = SledStore::open(crashed.path(), 16 << 20).unwrap();
        assert_eq!(sessions_and_count(&store, 9).await, (8, 8), "every acknowledged session once");
        assert_eq!(segment_bytes(crashed.path()), written, "each batch's bytes once on disk");
    }
}

/// Retention zeroes the segments it expires in a file that also holds younger ones, and
/// deletes a file once everything in it is past retention; writing goes on afterwards.
#[tokio::test]
async fn retention_zeroes_expired_segments_and_deletes_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    store.write(group(0..5)).await.unwrap();
    assert_eq!(sessions_and_count(&store, 5).await, (5, 5));
    let now = crate::model::now_ms();
    // Sessions are anchored in 1970; the segments were written today.
    assert_eq!(store.expire("s", now, 100).await.unwrap(), 5);
    let files = raw_files(&dir.path().join("segments"));
    assert_eq!(files.len(), 1, "today's file stays: the cutoff is within its day");
    assert!(files[0].iter().all(|&b| b == 0), "its expired segments are zeroed");
    assert_eq!(store.tree.scan_prefix([keys::NS_SEGMENT]).count(), 0);

    store.write(group(10..12)).await.unwrap();
    assert_eq!(store.session_events("s", Id128([10; 16])).await.unwrap().unwrap().len(), 20);
    assert_eq!(store.expire("s", now + 2 * 86_400_000, 100).await.unwrap(), 2);
    assert!(raw_files(&dir.path().join("segments")).is_empty(), "the whole file is deleted");
    assert_eq!(store.tree.scan_prefix([keys::NS_SEGMENT_FILE]).count(), 0);

    store.write(group(20..22)).await.unwrap();
    assert_eq!(store.session_events("s", Id128([21; 16])).await.unwrap().unwrap().len(), 20);
    drop(store);
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(store.session_events("s", Id128([21; 16])).await.unwrap().unwrap().len(), 20, "after reopening");
}
