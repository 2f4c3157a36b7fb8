//! Erasure in the sled store: a visitor's right to be forgotten, and retention. Both run on
//! the writer task only, so they never race a group commit.
//!
//! Events of many sessions share a segment, so erasing one session overwrites its byte ranges
//! in its segment file with JSON whitespace (other sessions' offsets stay valid) and syncs the
//! file, then removes its summary and index entries in one atomic batch, then flushes.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::keys;
use super::segfiles::{FileKey, Location};
use super::write::{decode, SessionRecord};
use super::Trees;
use crate::model::{day_of, VisitorKey};
use crate::store::StoreError;

/// `(anchor, sid)` of every session of `visitor`, oldest first.
pub fn visitor_session_ids(
    tree: &sled::Tree,
    site: &str,
    visitor: &VisitorKey,
) -> Result<Vec<(i64, [u8; 16])>, StoreError> {
    let mut prefix = keys::prefix(keys::NS_VISITOR, site);
    prefix.extend_from_slice(&visitor.0);
    let mut out = Vec::new();
    for item in tree.scan_prefix(&prefix) {
        let (k, _) = item?;
        let rest = &k[prefix.len()..];
        let anchor = rest.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        let sid = rest.get(8..24).and_then(|b| <[u8; 16]>::try_from(b).ok());
        match (anchor, sid) {
            (Some(a), Some(s)) => out.push((a as i64, s)),
            _ => return Err(StoreError::Corrupt("visitor index key".into())),
        }
    }
    Ok(out)
}

/// Erases every session of `visitor`, its events and its per-day visitor marks.
pub fn forget_visitor(trees: &Trees, site: &str, visitor: VisitorKey) -> Result<usize, StoreError> {
    let sessions = visitor_session_ids(&trees.main, site, &visitor)?;
    erase_sessions(trees, site, &sessions)
}

/// Deletes up to `limit` sessions anchored before `before_ms`, then segments older than that.
pub fn expire(trees: &Trees, site: &str, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
    let start = keys::prefix(keys::NS_SESSION, site);
    let end = keys::session(site, before_ms, &[0; 16]);
    let mut old = Vec::new();
    for item in trees.main.range(start.clone()..end).take(limit) {
        let (k, _) = item?;
        old.push(keys::parse_session(&k, start.len()).ok_or_else(|| StoreError::Corrupt("session key".into()))?);
    }
    let erased = erase_sessions(trees, site, &old)?;
    if old.len() < limit {
        // Every session anchored before the cutoff is gone, so no live reference points into a
        // segment written before it (a segment is never older than the sessions it holds).
        expire_segments(trees, site, (before_ms.max(0) as u64).saturating_mul(1000))?;
        let day_start = keys::day_visitor(site, i32::MIN, &[0; 16]);
        let day_end = keys::day_visitor(site, day_of(before_ms), &[0; 16]);
        let mut marks = sled::Batch::default();
        for item in trees.main.range(day_start..day_end) {
            marks.remove(item?.0);
        }
        trees.main.apply_batch(marks)?;
        trees.main.flush()?;
    }
    Ok(erased)
}

/// Deletes the segments older than `cutoff_us` (a segment id): whole files when all of a file
/// is that old, else each segment's bytes zeroed (and synced) before its index entry goes.
fn expire_segments(trees: &Trees, site: &str, cutoff_us: u64) -> Result<(), StoreError> {
    let mut files = trees.files.lock();
    let whole: HashSet<FileKey> = files.older_than(site, cutoff_us).into_iter().collect();
    let mut batch = sled::Batch::default();
    let mut touched = HashSet::new();
    for item in trees.main.range(keys::segment(site, 0)..keys::segment(site, cutoff_us)) {
        let (key, value) = item?;
        let at = Location::decode(&value)?;
        if !whole.contains(&at.file(site)) {
            let whole_segment = 0..at.len as usize;
            touched.insert(files.overwrite(site, &at, std::slice::from_ref(&whole_segment), 0)?);
        }
        batch.remove(key);
    }
    for file in &whole {
        batch.remove(keys::segment_file(site, file.day, file.roll));
    }
    files.sync(&touched)?;
    trees.main.apply_batch(batch)?;
    trees.main.flush()?;
    for file in &whole {
        files.delete(file)?;
    }
    Ok(())
}

fn erase_sessions(trees: &Trees, site: &str, sessions: &[(i64, [u8; 16])]) -> Result<usize, StoreError> {
    if sessions.is_empty() {
        return Ok(0);
    }
    let mut main = sled::Batch::default();
    let mut blank: HashMap<u64, Vec<std::ops::Range<usize>>> = HashMap::new();
    let mut erased = 0;
    for (anchor, sid) in sessions {
        let key = keys::session(site, *anchor, sid);
        if let Some(v) = trees.main.get(&key)? {
            let record: SessionRecord = decode(&v)?;
            for r in &record.batches {
                blank.entry(r.segment()).or_default().push(r.range());
            }
            let days: BTreeSet<i32> = (day_of(record.state.start)..=day_of(record.state.last)).collect();
            for day in days {
                main.remove(keys::day_visitor(site, day, &record.state.visitor.0));
            }
            main.remove(keys::visitor_session(site, &record.state.visitor.0, *anchor, sid));
            erased += 1;
        }
        main.remove(key);
        main.remove(keys::session_index(site, sid));
        main.remove(keys::session_paths(site, *anchor, sid));
    }
    let mut files = trees.files.lock();
    let mut touched = HashSet::new();
    for (id, ranges) in blank {
        if let Some(v) = trees.main.get(keys::segment(site, id))? {
            touched.insert(files.overwrite(site, &Location::decode(&v)?, &ranges, b' ')?);
        }
    }
    // The bytes are gone from disk before the references to them.
    files.sync(&touched)?;
    trees.main.apply_batch(main)?;
    trees.main.flush()?;
    Ok(erased)
}
