//! Erasure in the sled store: a visitor's right to be forgotten, and retention. Both run on
//! the writer task only, so they never race a group commit.
//!
//! Events of many sessions share a segment, so erasing one session overwrites its byte ranges
//! in place with JSON whitespace (other sessions' offsets stay valid) and removes its summary
//! and index entries, in one atomic batch per tree, then flushes.

use std::collections::{BTreeSet, HashMap};

use super::keys;
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
        let mut batch = sled::Batch::default();
        let seg_start = keys::segment(site, 0);
        let seg_end = keys::segment(site, (before_ms.max(0) as u64).saturating_mul(1000));
        for item in trees.segments.range(seg_start..seg_end) {
            batch.remove(item?.0);
        }
        let day_start = keys::day_visitor(site, i32::MIN, &[0; 16]);
        let day_end = keys::day_visitor(site, day_of(before_ms), &[0; 16]);
        let mut marks = sled::Batch::default();
        for item in trees.main.range(day_start..day_end) {
            marks.remove(item?.0);
        }
        trees.segments.apply_batch(batch)?;
        trees.main.apply_batch(marks)?;
        trees.main.flush()?;
    }
    Ok(erased)
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
    let mut segments = sled::Batch::default();
    for (id, ranges) in blank {
        let key = keys::segment(site, id);
        if let Some(v) = trees.segments.get(&key)? {
            let mut bytes = v.to_vec();
            for r in ranges {
                if let Some(slice) = bytes.get_mut(r) {
                    slice.fill(b' ');
                }
            }
            segments.insert(key, bytes);
        }
    }
    trees.segments.apply_batch(segments)?;
    trees.main.apply_batch(main)?;
    trees.main.flush()?;
    Ok(erased)
}
