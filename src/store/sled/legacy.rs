//! Stores written before segment files kept each segment as a value of sled's `segments` tree:
//! at open, those are moved to segment files once ([`move_to_files`]), so everything after
//! reads one place.

use super::keys;
use super::segfiles::SegmentFiles;
use crate::store::StoreError;

/// Bytes of segments moved per step: each step is appended, synced, indexed and flushed.
const STEP_BYTES: usize = 32 << 20;

/// Moves every segment of `legacy` to `files`, in steps: append and sync the step's segments,
/// write their index entries (one atomic batch, flushed), then remove them from `legacy`. A
/// crash in between leaves either unindexed bytes (cut off at the next open) or segments both
/// indexed and in `legacy` (removed from `legacy` by the next open). Returns how many moved.
pub fn move_to_files(
    db: &sled::Db,
    main: &sled::Tree,
    legacy: &sled::Tree,
    files: &SegmentFiles,
) -> Result<usize, StoreError> {
    let mut moved = 0;
    loop {
        let mut step = Vec::new();
        let mut done = Vec::new();
        let mut bytes = 0;
        for item in legacy.iter() {
            let (key, value) = item?;
            if main.contains_key(&key)? {
                done.push(key);
                continue;
            }
            keys::parse_segment(&key).ok_or_else(|| StoreError::Corrupt("segment key".into()))?;
            bytes += value.len();
            step.push((key, value));
            if bytes >= STEP_BYTES {
                break;
            }
        }
        if step.is_empty() && done.is_empty() {
            return Ok(moved);
        }
        move_step(db, main, files, &step)?;
        moved += step.len();
        // A key is in `done` (indexed already) or in `step`, never both.
        let mut remove = sled::Batch::default();
        for key in step.iter().map(|(k, _)| k).chain(&done) {
            remove.remove(key);
        }
        legacy.apply_batch(remove)?;
        db.flush()?;
    }
}

fn move_step(
    db: &sled::Db,
    main: &sled::Tree,
    files: &SegmentFiles,
    step: &[(sled::IVec, sled::IVec)],
) -> Result<(), StoreError> {
    if step.is_empty() {
        return Ok(());
    }
    let mut files = files.lock();
    let segments = step.iter().map(|(k, v)| {
        let (site, id) = keys::parse_segment(k).expect("checked by the caller");
        (site, id, v.as_ref())
    });
    let appended = files.append(segments).map_err(|e| StoreError::Backend(format!("segment files: {e}")))?;
    let mut batch = sled::Batch::default();
    appended.put_into(&mut batch);
    if let Err(e) = main.apply_batch(batch) {
        files.undo(&appended);
        return Err(e.into());
    }
    db.flush()?;
    Ok(())
}
