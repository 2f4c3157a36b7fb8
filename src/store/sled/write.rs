//! What the sled store keeps per session, and the drain: the applier's memtable written to
//! sled as one atomic batch of session records, indexes and merged rollups after its segments
//! went to their files (made durable by the group log and the checkpoint, see `pipeline`).

use serde::{Deserialize, Serialize};

use super::keys;
use super::memtable::Memtable;
use super::rollup_cache::RollupCache;
use super::segfiles::Appended;
use crate::model::{SessionSummary, StoredBatch};
use crate::rollup::attention::AttentionRollup;
use crate::rollup::form::PageForms;
use crate::rollup::session::SessionState;
use crate::rollup::track::Deltas;
use crate::store::StoreError;

/// What is kept per session: its state, and where each of its batches lies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub state: SessionState,
    /// Where each stored batch of the session lies, in arrival order.
    #[serde(default)]
    pub batches: Vec<BatchRef>,
}

/// One stored batch: `(seq, segment id, offset, length)` — serialised as a 4-element array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRef(pub u32, pub u64, pub u32, pub u32);

impl BatchRef {
    pub fn seq(&self) -> u32 {
        self.0
    }
    pub fn segment(&self) -> u64 {
        self.1
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.2 as usize..self.2 as usize + self.3 as usize
    }
}

impl SessionRecord {
    pub fn new(batch: &StoredBatch) -> Self {
        Self { state: SessionState::new(batch), batches: Vec::new() }
    }

    pub fn summary(&self, sid: &[u8; 16]) -> SessionSummary {
        self.state.summary(sid)
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Writes the memtable to sled and empties it; returns the group log's id of the last group
/// it held (`None` when no group was applied since the last drain). Segments are appended to
/// their files and synced first ([`super::segfiles`]), then their index entries, pointers,
/// summaries, indexes and rollups go to sled with that position as one atomic batch: after a
/// crash every pointer finds its segment, rollups are never counted without their events (or
/// the reverse), and the recorded position says which logged groups sled holds. sled is not
/// flushed here: the group log makes a group durable, and the pipeline flushes sled at each
/// checkpoint. Rollup values come from (and go back into) `rollups`. On an error the memtable
/// is kept (a later drain retries), the appends are cut off again, and `rollups` emptied, as
/// some of its values may be ahead of sled.
pub fn drain(
    trees: &super::Trees,
    next_id: &dyn Fn() -> u64,
    table: &mut Memtable,
    rollups: &mut RollupCache,
) -> Result<Option<u64>, StoreError> {
    let Some(position) = table.last_group else { return Ok(None) };
    table.seal_segments(next_id);
    let mut files = trees.files.lock();
    let segments =
        table.full_segments.iter().map(|s| (s.site.as_str(), table.segment_ids[&s.provisional], s.bytes.as_slice()));
    let written =
        files.append(segments).map_err(|e| StoreError::Backend(format!("segment files: {e}"))).and_then(|appended| {
            let main = main_batch(&trees.main, table, rollups, position, &appended)
                .and_then(|main| Ok(trees.main.apply_batch(main)?));
            if main.is_err() {
                files.undo(&appended);
            }
            main
        });
    if let Err(e) = written {
        rollups.clear();
        return Err(e);
    }
    table.clear();
    Ok(Some(position))
}

/// The memtable as one sled batch, with the index entries and file lengths of its segments.
fn main_batch(
    tree: &sled::Tree,
    table: &mut Memtable,
    rollups: &mut RollupCache,
    position: u64,
    appended: &Appended,
) -> Result<sled::Batch, StoreError> {
    let mut main = sled::Batch::default();
    appended.put_into(&mut main);
    if let Some(last) = table.segment_ids.values().max() {
        main.insert(keys::LAST_SEGMENT, &last.to_be_bytes());
    }
    for (key, value) in &table.new_index {
        main.insert(key.as_slice(), value.as_slice());
    }
    for key in table.new_day_visitors() {
        main.insert(key, &[]);
    }
    for (key, views) in &table.session_paths {
        main.insert(key.as_slice(), views.as_slice());
    }
    for (site, sid, open) in table.dirty_sessions() {
        main.insert(keys::session(site, open.anchor, sid), encode(&open.record)?);
    }
    merge_rollups(&mut Target { tree, batch: &mut main, cache: rollups }, &table.deltas)?;
    main.insert(keys::LOG_APPLIED, &position.to_be_bytes());
    Ok(main)
}

/// Merges the deltas into their stored rollup values (site days and insights, forms,
/// attention).
fn merge_rollups(to: &mut Target<'_>, deltas: &Deltas) -> Result<(), StoreError> {
    super::rollups::merge_insights(to.tree, to.batch, to.cache, deltas)?;
    for ((site, path, day), delta) in &deltas.forms {
        merge(to, keys::page_day(keys::NS_FORMS, site, path, *day), delta, PageForms::merge)?;
    }
    for ((site, day, path), delta) in &deltas.attention {
        merge(to, keys::page_day(keys::NS_ATTENTION, site, path, *day), delta, AttentionRollup::merge)?;
    }
    Ok(())
}

/// Where merged rollup values are read from and written to.
struct Target<'a> {
    tree: &'a sled::Tree,
    batch: &'a mut sled::Batch,
    cache: &'a mut RollupCache,
}

/// Adds `delta` to the stored value under `key` (read-modify-write through the applier's
/// cache: only the applier writes rollups, so this cannot race).
fn merge<T>(to: &mut Target<'_>, key: Vec<u8>, delta: &T, merge: fn(&mut T, &T)) -> Result<(), StoreError>
where
    T: Default + Serialize + for<'de> Deserialize<'de> + Send + 'static,
{
    let tree = to.tree;
    let load = |key: &[u8]| tree.get(key)?.map(|v| decode(&v)).transpose();
    let weight = super::rollup_cache::weight_of_encoded::<T>;
    let (key, value) = to.cache.update(key, load, |v| merge(v, delta), encode, weight)?;
    to.batch.insert(key, value);
    Ok(())
}
