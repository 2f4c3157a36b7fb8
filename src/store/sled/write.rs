//! One group commit: turns many batches into one atomic `sled::Batch` of events, session
//! summaries, indexes and merged rollups (made durable by the group log, see `pipeline`).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::keys;
use super::rollup_cache::RollupCache;
use crate::model::{day_of, EventData, SessionSummary, StoredBatch, VisitorKey};
use crate::query::funnel::{count_views, encode_views, MAX_VIEWS_PER_SESSION};
use crate::rollup::attention::AttentionRollup;
use crate::rollup::form::PageForms;
use crate::rollup::session::SessionState;
use crate::rollup::track::Deltas;
use crate::store::{StoreError, WriteOutcome};

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
    fn new(batch: &StoredBatch) -> Self {
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

/// A session touched by this group: where it is keyed and its updated summary.
struct OpenSession {
    anchor: i64,
    record: SessionRecord,
}

/// Everything one group commit will write, with the reads it needs answered from pending
/// state first (the sled batch is invisible until applied).
struct Group<'t> {
    tree: &'t sled::Tree,
    /// Hands out segment ids, each greater than every id before it.
    next_id: &'t dyn Fn() -> u64,
    /// Per site: the segment being filled (id, bytes).
    open_segments: HashMap<String, (u64, Vec<u8>)>,
    /// Segments filled up to [`SEGMENT_BYTES`] in this group.
    full_segments: Vec<(String, u64, Vec<u8>)>,
    last_id: u64,
    sessions: HashMap<(String, [u8; 16]), OpenSession>,
    day_visitors: HashSet<Vec<u8>>,
    deltas: Deltas,
    /// Funnel index entries touched by this group: key → encoded views.
    session_paths: HashMap<Vec<u8>, Vec<u8>>,
    batch: sled::Batch,
    rollups: &'t mut RollupCache,
}

impl<'t> Group<'t> {
    fn session(&mut self, b: &StoredBatch) -> Result<&mut OpenSession, StoreError> {
        let id = (b.site.clone(), b.sid.0);
        if !self.sessions.contains_key(&id) {
            let open = match self.tree.get(keys::session_index(&b.site, &b.sid.0))? {
                Some(anchor) => {
                    let anchor = i64::from_be_bytes(
                        anchor.as_ref().try_into().map_err(|_| StoreError::Corrupt("session anchor".into()))?,
                    );
                    let record = match self.tree.get(keys::session(&b.site, anchor, &b.sid.0))? {
                        Some(v) => decode(&v)?,
                        None => SessionRecord::new(b),
                    };
                    OpenSession { anchor, record }
                }
                None => {
                    let anchor = b.received;
                    self.batch.insert(keys::session_index(&b.site, &b.sid.0), &anchor.to_be_bytes());
                    self.batch.insert(keys::visitor_session(&b.site, &b.visitor.0, anchor, &b.sid.0), &[]);
                    let record = SessionRecord::new(b);
                    self.deltas.day(&b.site, day_of(record.state.start)).sessions += 1;
                    OpenSession { anchor, record }
                }
            };
            self.sessions.insert(id.clone(), open);
        }
        Ok(self.sessions.get_mut(&id).expect("inserted above"))
    }

    fn add(&mut self, b: &StoredBatch) -> Result<WriteOutcome, StoreError> {
        if self.session(b)?.record.batches.iter().any(|r| r.seq() == b.seq) {
            return Ok(WriteOutcome::Duplicate);
        }
        let mut reference = self.append(&b.site, &b.encoded);
        reference.0 = b.seq;
        let session = &mut self.sessions.get_mut(&(b.site.clone(), b.sid.0)).expect("opened above").record;
        session.batches.push(reference);
        session.state.apply(b, &mut self.deltas);
        let anchor = self.sessions[&(b.site.clone(), b.sid.0)].anchor;
        self.index_views(b, anchor)?;

        let mut last_day = None;
        for e in &b.events {
            let day = day_of(e.t);
            if last_day != Some(day) {
                last_day = Some(day);
                self.count_visitor(&b.site, day, &b.visitor)?;
            }
        }
        Ok(WriteOutcome::Stored)
    }

    /// Appends the batch's pageviews to its session's funnel index entry.
    fn index_views(&mut self, b: &StoredBatch, anchor: i64) -> Result<(), StoreError> {
        let mut views = b.events.iter().filter_map(|e| match &e.data {
            EventData::View(v) => Some((e.t, v.path.as_str())),
            _ => None,
        });
        let Some(first) = views.next() else { return Ok(()) };
        let key = keys::session_paths(&b.site, anchor, &b.sid.0);
        if !self.session_paths.contains_key(&key) {
            let stored = self.tree.get(&key)?.map(|v| v.to_vec()).unwrap_or_default();
            self.session_paths.insert(key.clone(), stored);
        }
        let entry = self.session_paths.get_mut(&key).expect("inserted above");
        let room = MAX_VIEWS_PER_SESSION.saturating_sub(count_views(entry));
        encode_views(entry, std::iter::once(first).chain(views).take(room));
        Ok(())
    }

    fn count_visitor(&mut self, site: &str, day: i32, visitor: &VisitorKey) -> Result<(), StoreError> {
        let key = keys::day_visitor(site, day, &visitor.0);
        if self.day_visitors.contains(&key) || self.tree.contains_key(&key)? {
            return Ok(());
        }
        self.batch.insert(key.as_slice(), &[]);
        self.day_visitors.insert(key);
        let day = self.deltas.day(site, day);
        day.visitors += 1;
        day.visitor_sketch.add(visitor);
        Ok(())
    }

    /// Adds `delta` to the stored value under `key` (read-modify-write through the applier's
    /// cache: only the applier writes rollups, so this cannot race).
    fn merge<T>(&mut self, key: Vec<u8>, delta: &T, merge: fn(&mut T, &T)) -> Result<(), StoreError>
    where
        T: Default + Serialize + for<'de> Deserialize<'de> + Send + 'static,
    {
        let tree = self.tree;
        let load = |key: &[u8]| tree.get(key)?.map(|v| decode(&v)).transpose();
        let weight = super::rollup_cache::weight_of_encoded::<T>;
        let (key, value) = self.rollups.update(key, load, |v| merge(v, delta), encode, weight)?;
        self.batch.insert(key, value);
        Ok(())
    }

    /// Appends one batch's events to the site's open segment, starting a new one when full.
    fn append(&mut self, site: &str, encoded: &[u8]) -> BatchRef {
        if self.open_segments.get(site).is_some_and(|(_, bytes)| bytes.len() + encoded.len() > SEGMENT_BYTES) {
            let (id, bytes) = self.open_segments.remove(site).expect("checked above");
            self.full_segments.push((site.to_owned(), id, bytes));
        }
        let next_id = self.next_id;
        let (id, bytes) = self.open_segments.entry(site.to_owned()).or_insert_with(|| (next_id(), Vec::new()));
        self.last_id = self.last_id.max(*id);
        let offset = bytes.len() as u32;
        bytes.extend_from_slice(encoded);
        BatchRef(0, *id, offset, encoded.len() as u32)
    }

    /// The segments (for the segment tree) and everything else (for the main tree).
    fn finish(mut self) -> Result<(sled::Batch, sled::Batch), StoreError> {
        let mut segments = sled::Batch::default();
        let open = std::mem::take(&mut self.open_segments).into_iter().map(|(site, (id, bytes))| (site, id, bytes));
        for (site, id, bytes) in std::mem::take(&mut self.full_segments).into_iter().chain(open) {
            segments.insert(keys::segment(&site, id), bytes);
        }
        self.batch.insert(keys::LAST_SEGMENT, &self.last_id.to_be_bytes());
        for ((site, sid), open) in &self.sessions {
            self.batch.insert(keys::session(site, open.anchor, sid), encode(&open.record)?);
        }
        let deltas = std::mem::take(&mut self.deltas);
        super::rollups::merge_insights(self.tree, &mut self.batch, self.rollups, &deltas)?;
        for ((site, path, day), delta) in &deltas.forms {
            self.merge(keys::page_day(keys::NS_FORMS, site, path, *day), delta, PageForms::merge)?;
        }
        for ((site, day, path), delta) in &deltas.attention {
            self.merge(keys::page_day(keys::NS_ATTENTION, site, path, *day), delta, AttentionRollup::merge)?;
        }
        for (key, views) in std::mem::take(&mut self.session_paths) {
            self.batch.insert(key, views);
        }
        Ok((segments, self.batch))
    }
}

/// Segments are cut at about this size so sled keeps them inline in its log instead of writing
/// each as a separate blob file (its threshold is a quarter of its 512 KiB log segment).
pub const SEGMENT_BYTES: usize = 96 * 1024;

/// Writes `batches` into new segments whose ids come from `next_id` (each greater than every
/// id before it), recording `position` (the group log's id of the last group among them).
/// Segments go to their own tree first, then pointers, summaries and rollups as one atomic
/// batch: sled recovers a prefix of its single log, so after a crash every pointer finds its
/// segment, rollups are never counted without their events (or the reverse), and the recorded
/// position says which logged groups sled holds. Nothing is flushed here: the group log makes
/// a group durable, and the pipeline flushes sled every few seconds. Rollup values come from
/// (and go back into) `rollups`, which is emptied if the group fails.
pub fn write_group(
    trees: &super::Trees,
    next_id: &dyn Fn() -> u64,
    batches: &[&StoredBatch],
    position: u64,
    rollups: &mut RollupCache,
) -> Result<Vec<WriteOutcome>, StoreError> {
    let written = build_and_apply(trees, next_id, batches, position, rollups);
    if written.is_err() {
        // Some values in the cache may be ahead of what sled holds.
        rollups.clear();
    }
    written
}

fn build_and_apply(
    trees: &super::Trees,
    next_id: &dyn Fn() -> u64,
    batches: &[&StoredBatch],
    position: u64,
    rollups: &mut RollupCache,
) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut group = Group {
        tree: &trees.main,
        next_id,
        open_segments: HashMap::new(),
        full_segments: Vec::new(),
        last_id: 0,
        sessions: HashMap::new(),
        day_visitors: HashSet::new(),
        deltas: Deltas::default(),
        session_paths: HashMap::new(),
        batch: sled::Batch::default(),
        rollups,
    };
    let outcomes = batches.iter().map(|b| group.add(b)).collect::<Result<Vec<_>, _>>()?;
    if outcomes.contains(&WriteOutcome::Stored) {
        let (segments, mut main) = group.finish()?;
        main.insert(keys::LOG_APPLIED, &position.to_be_bytes());
        trees.segments.apply_batch(segments)?;
        trees.main.apply_batch(main)?;
    }
    Ok(outcomes)
}
