//! The embedded default store on sled 0.34: group-committed batches, rollups merged at write
//! time (see [`keys`] for the layout and why), written to sled through the applier's memtable
//! (`pipeline`, `memtable`) and read behind a barrier that drains it first.

mod analytics;
mod erase;
mod insights;
pub mod keys;
mod legacy;
mod memtable;
/// Default bytes the applier's memtable holds before it drains between checkpoints.
pub use memtable::BUDGET as DEFAULT_MEMTABLE_BYTES;
mod pipeline;
mod rollup_cache;
#[cfg(test)]
mod rollup_tests;
mod rollups;
mod segfiles;
#[cfg(test)]
mod segfiles_tests;
mod write;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::{PendingWrite, Store, StoreError, WriteOutcome};
use crate::model::{in_client_order, Event, Id128, SessionSummary, SiteSettings, StoredBatch, VisitorKey};
use crate::query::forms::{Attention, Forms};
use crate::query::funnel::{Funnel, FunnelQuery};
use crate::query::insights::{Heatmap, Pages, ScrollReach};
use crate::query::{
    DayRange, HeatmapQuery, PageQuery, PagesQuery, SessionCursor, SessionPage, SessionQuery, Stats,
    MAX_SESSIONS_SCANNED,
};
use write::{decode, SessionRecord};

/// A segment id greater than all before it: µs since the epoch, bumped when needed.
fn next_segment_id(last: &AtomicU64) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let mut prev = last.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match last.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => prev = actual,
        }
    }
}

/// Where the store keeps things: sled's tree, and the segment files it indexes.
pub struct Trees {
    pub main: sled::Tree,
    pub files: Arc<segfiles::SegmentFiles>,
}

/// sled-backed [`Store`]. Blocking sled calls run on tokio's blocking pool.
#[derive(Clone)]
pub struct SledStore {
    tree: sled::Tree,
    files: Arc<segfiles::SegmentFiles>,
    /// Group log + applier + checkpointer: how groups are written.
    pipeline: Arc<pipeline::Pipeline>,
}

/// Groups the writer may have in flight: the logger and the applier each merge whatever has
/// queued into one sync / one sled batch, so more in flight means larger merged groups.
const GROUPS_IN_FLIGHT: usize = 16;

impl SledStore {
    /// Opens (or creates) the store in `dir` and applies what its group log holds beyond what
    /// sled made durable before a crash. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_tuned(dir, cache_bytes, pipeline::Tuning::default())
    }

    /// [`SledStore::open`] with another memtable budget (`limits.store_memtable_bytes`).
    pub fn open_with_memtable(dir: &Path, cache_bytes: u64, memtable_bytes: usize) -> Result<Self, StoreError> {
        Self::open_tuned(dir, cache_bytes, pipeline::Tuning { memtable_bytes, ..Default::default() })
    }

    /// [`SledStore::open`] with another checkpoint interval or memtable budget.
    fn open_tuned(dir: &Path, cache_bytes: u64, tuning: pipeline::Tuning) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // The pipeline flushes (checkpoints) on its own schedule.
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let tree = db.open_tree("hushtale")?;
        rollups::backfill(&tree)?;
        let files = Arc::new(segfiles::SegmentFiles::open(&dir.join("segments"), &tree)?);
        // Stores written before segment files kept segments in this tree.
        let moved = legacy::move_to_files(&db, &tree, &db.open_tree("segments")?, &files)?;
        if moved > 0 {
            tracing::info!(segments = moved, "moved segments out of sled into segment files");
        }
        let last = match tree.get(keys::LAST_SEGMENT)? {
            Some(v) => {
                u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt("last segment".into()))?)
            }
            None => 0,
        };
        let last_segment = Arc::new(AtomicU64::new(last));
        let trees = Trees { main: tree.clone(), files: files.clone() };
        let (log, replayed) =
            pipeline::recover(&dir.join("grouplog"), &db, &trees, &last_segment, tuning.memtable_bytes)?;
        if replayed > 0 {
            tracing::warn!(batches = replayed, "recovered batches from the group log that sled had not made durable");
        }
        let pipeline = pipeline::Pipeline::start(db, dir.join("db"), trees, log, last_segment, tuning)
            .map_err(|e| StoreError::Backend(format!("starting the write pipeline: {e}")))?;
        Ok(Self { tree, files, pipeline: Arc::new(pipeline) })
    }

    fn trees(&self) -> Trees {
        Trees { main: self.tree.clone(), files: self.files.clone() }
    }

    /// A stuck pipeline's log holds groups sled does not (see `pipeline::Applier::run`): an
    /// erasure now could not reach them, and the restart would bring the erased events back.
    fn refuse_erasure_if_stuck(&self) -> Result<(), StoreError> {
        if self.pipeline.is_stuck() {
            return Err(StoreError::Backend("the store is failing; erasure waits for a restart".into()));
        }
        Ok(())
    }

    /// After an erasure: checkpoints, so that no copy of the erased events stays in the log.
    fn erased(&self, erased: Result<usize, StoreError>) -> Result<usize, StoreError> {
        let erased = erased?;
        self.pipeline.checkpoint(true)?;
        Ok(erased)
    }

    /// Runs `f` on the blocking pool behind the read barrier: every group answered so far is
    /// drained from the applier's memtable into sled first, so reads see every 204'd batch.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    {
        self.blocking(move |s| {
            s.pipeline.drain()?;
            f(s)
        })
        .await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    fn read_sessions(&self, site: &str, q: &SessionQuery) -> Result<SessionPage, StoreError> {
        let prefix_len = keys::prefix(keys::NS_SESSION, site).len();
        // Sessions are listed by anchor (the server time their first batch arrived), newest first.
        let lower = keys::session(site, q.range.start_ms(), &[0; 16]);
        let upper = match q.cursor {
            Some(c) => keys::session(site, c.start, &c.sid),
            None => keys::session(site, q.range.end_ms(), &[0; 16]),
        };
        let mut sessions = Vec::with_capacity(q.limit.min(1000));
        let mut last = None;
        let mut next = None;
        for (scanned, item) in self.tree.range(lower..upper).rev().enumerate() {
            let (k, v) = item?;
            if sessions.len() == q.limit || scanned == MAX_SESSIONS_SCANNED {
                // More may follow: continue after the last session examined.
                next = last.map(|(start, sid)| SessionCursor { start, sid }.encode());
                break;
            }
            let (anchor, sid) =
                keys::parse_session(&k, prefix_len).ok_or_else(|| StoreError::Corrupt("session key".into()))?;
            let summary = decode::<SessionRecord>(&v)?.summary(&sid);
            if q.filter.matches(&summary) {
                sessions.push(summary);
            }
            last = Some((anchor, sid));
        }
        Ok(SessionPage { sessions, next })
    }

    fn read_session_events(&self, site: &str, sid: Id128) -> Result<Option<Vec<Event>>, StoreError> {
        let Some(anchor) = self.tree.get(keys::session_index(site, &sid.0))? else {
            return Ok(None);
        };
        let anchor = i64::from_be_bytes(anchor.as_ref().try_into().map_err(|_| StoreError::Corrupt("anchor".into()))?);
        let Some(record) = self.tree.get(keys::session(site, anchor, &sid.0))? else {
            return Ok(None);
        };
        let record: SessionRecord = decode(&record)?;
        let events = self.events_of(site, &record)?;
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some(events))
    }

    /// All events a session record points to, in the client's order ([`in_client_order`]).
    fn events_of(&self, site: &str, record: &SessionRecord) -> Result<Vec<Event>, StoreError> {
        let mut batches = Vec::with_capacity(record.batches.len());
        let mut locations: HashMap<u64, segfiles::Location> = HashMap::new();
        let mut files = self.files.lock();
        for r in &record.batches {
            let at = match locations.entry(r.segment()) {
                std::collections::hash_map::Entry::Occupied(e) => *e.get(),
                std::collections::hash_map::Entry::Vacant(e) => *e.insert(segfiles::Location::decode(
                    &self
                        .tree
                        .get(keys::segment(site, r.segment()))?
                        .ok_or_else(|| StoreError::Corrupt("missing segment".into()))?,
                )?),
            };
            let bytes = files.read(site, &at, r.range())?;
            let events =
                serde_json::from_slice::<Vec<Event>>(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            batches.push((r.seq(), events));
        }
        Ok(in_client_order(batches))
    }

    fn read_visitor_sessions(
        &self,
        site: &str,
        visitor: VisitorKey,
    ) -> Result<Vec<(SessionSummary, Vec<Event>)>, StoreError> {
        let mut out = Vec::new();
        for (anchor, sid) in erase::visitor_session_ids(&self.tree, site, &visitor)? {
            if let Some(v) = self.tree.get(keys::session(site, anchor, &sid))? {
                let record: SessionRecord = decode(&v)?;
                let events = self.events_of(site, &record)?;
                out.push((record.summary(&sid), events));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for SledStore {
    async fn write(&self, batches: Arc<[StoredBatch]>) -> Result<Vec<WriteOutcome>, StoreError> {
        self.pipeline.submit(batches).finish().await
    }

    fn begin_write(self: Arc<Self>, batches: Arc<[StoredBatch]>) -> PendingWrite {
        self.pipeline.submit(batches)
    }

    fn groups_in_flight(&self) -> usize {
        // `HUSHTALE_GROUPS_IN_FLIGHT` exists for the load run's comparisons (benches/load).
        std::env::var("HUSHTALE_GROUPS_IN_FLIGHT").ok().and_then(|v| v.parse().ok()).unwrap_or(GROUPS_IN_FLIGHT)
    }

    async fn load_sites(&self) -> Result<Vec<SiteSettings>, StoreError> {
        self.blocking(|s| {
            s.tree
                .scan_prefix([keys::NS_SITE])
                .map(|item| {
                    let (_, v) = item?;
                    serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .collect()
        })
        .await
    }

    async fn put_site(&self, site: &SiteSettings) -> Result<(), StoreError> {
        let key = keys::site_key(&site.id);
        let value = serde_json::to_vec(site).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.blocking(move |s| {
            s.tree.insert(key, value)?;
            s.tree.flush()?;
            Ok(())
        })
        .await
    }

    async fn stats(&self, site: &str, range: DayRange) -> Result<Stats, StoreError> {
        let site = site.to_owned();
        self.read(move |s| s.read_stats(&site, range)).await
    }

    async fn sessions(&self, site: &str, query: &SessionQuery) -> Result<SessionPage, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.read(move |s| s.read_sessions(&site, &query)).await
    }

    async fn pages(&self, site: &str, query: &PagesQuery) -> Result<Pages, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.read(move |s| s.read_pages(&site, &query)).await
    }

    async fn heatmap(&self, site: &str, query: &HeatmapQuery) -> Result<Heatmap, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.read(move |s| s.read_heatmap(&site, &query)).await
    }

    async fn scroll(&self, site: &str, query: &PageQuery) -> Result<ScrollReach, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.read(move |s| s.read_scroll(&site, &query)).await
    }

    async fn forms(&self, site: &str, query: &PageQuery) -> Result<Forms, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.read(move |s| s.read_forms(&site, &query)).await
    }

    async fn attention(&self, site: &str, query: &PageQuery) -> Result<Attention, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.read(move |s| s.read_attention(&site, &query)).await
    }

    async fn funnel(&self, site: &str, query: &FunnelQuery) -> Result<Funnel, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.read(move |s| s.read_funnel(&site, &query)).await
    }

    async fn session_events(&self, site: &str, sid: Id128) -> Result<Option<Vec<Event>>, StoreError> {
        let site = site.to_owned();
        self.read(move |s| s.read_session_events(&site, sid)).await
    }

    async fn visitor_sessions(
        &self,
        site: &str,
        visitor: VisitorKey,
    ) -> Result<Vec<(SessionSummary, Vec<Event>)>, StoreError> {
        let site = site.to_owned();
        self.read(move |s| s.read_visitor_sessions(&site, visitor)).await
    }

    async fn forget_visitor(&self, site: &str, visitor: VisitorKey) -> Result<usize, StoreError> {
        self.refuse_erasure_if_stuck()?;
        let site = site.to_owned();
        // The writer has no group in flight here: the drain leaves no data of the visitor in the
        // memtable, and the checkpoint empties the group log, so the erased events stay nowhere.
        self.read(move |s| s.erased(erase::forget_visitor(&s.trees(), &site, visitor))).await
    }

    async fn expire(&self, site: &str, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        self.refuse_erasure_if_stuck()?;
        let site = site.to_owned();
        self.read(move |s| s.erased(erase::expire(&s.trees(), &site, before_ms, limit))).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|s| s.pipeline.checkpoint(false)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Client, EventData};

    pub(super) fn batch(n: u8, seq: u32, events: usize) -> StoredBatch {
        let events: Vec<Event> =
            (0..events).map(|i| Event { t: 1_000 + i as i64, data: EventData::Scroll { y: i as f64 } }).collect();
        let client = Client { device: "desktop".into(), browser: "chrome".into() };
        StoredBatch::new("s".into(), VisitorKey([n; 16]), Id128([n; 16]), seq, 1_000, client, events)
    }

    #[tokio::test]
    async fn a_group_larger_than_one_segment_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 16 << 20).unwrap();
        // 40 sessions × 3 batches × 200 events ≈ 1 MB: cut into many segments.
        let batches: Vec<StoredBatch> = (0..40u8).flat_map(|n| (0..3).map(move |seq| batch(n, seq, 200))).collect();
        let outcomes = store.write(batches.into()).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == WriteOutcome::Stored));
        for n in 0..40u8 {
            let events = store.session_events("s", Id128([n; 16])).await.unwrap().unwrap();
            assert_eq!(events.len(), 600);
        }
        let segments = store.tree.scan_prefix([keys::NS_SEGMENT]).count();
        assert!(segments > 5, "segments were cut: {segments}");
        let again = store.write(vec![batch(7, 1, 200)].into()).await.unwrap();
        assert_eq!(again, vec![WriteOutcome::Duplicate]);
    }

    /// The contents of every file under `dir`.
    pub(super) fn raw_files(dir: &Path) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(raw_files(&path));
            } else {
                out.push(std::fs::read(path).unwrap());
            }
        }
        out
    }

    pub(super) fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &to.join(entry.file_name()));
            } else {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }

    pub(super) async fn sessions_and_count(store: &SledStore, n: u8) -> (usize, u64) {
        let mut found = 0;
        for i in 0..n {
            if let Some(events) = store.session_events("s", Id128([i; 16])).await.unwrap() {
                assert_eq!(events.len(), 20, "session {i} whole");
                found += 1;
            }
        }
        let day = crate::model::day_of(1_000);
        let stats = store.stats("s", DayRange { from: day, to: day }).await.unwrap();
        (found, stats.totals.sessions)
    }

    /// The crash the group log exists for: sled kept only what it had flushed at the last
    /// checkpoint, the log holds the acknowledged groups after it. Reopening applies them once.
    #[tokio::test]
    async fn groups_after_the_last_checkpoint_are_recovered_from_the_log_once() {
        let live = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let store = SledStore::open(live.path(), 16 << 20).unwrap();
        store.write((0..4u8).map(|n| batch(n, 0, 20)).collect::<Vec<_>>().into()).await.unwrap();
        store.flush().await.unwrap();
        // What a crash right now would leave of sled: everything flushed so far.
        copy_dir(live.path(), crashed.path());
        // Acknowledged later: in the log only (sled is not flushed again before the "crash").
        store.write((4..8u8).map(|n| batch(n, 0, 20)).collect::<Vec<_>>().into()).await.unwrap();
        let again = store.write(vec![batch(8, 0, 20), batch(2, 0, 20)].into()).await.unwrap();
        assert_eq!(again, [WriteOutcome::Stored, WriteOutcome::Duplicate]);
        let log = live.path().join("grouplog");
        assert!(std::fs::read_dir(&log).unwrap().count() > 0, "groups since the checkpoint are in the log");
        copy_dir(&log, &crashed.path().join("grouplog"));
        drop(store);

        let recovered = SledStore::open(crashed.path(), 16 << 20).unwrap();
        assert_eq!(sessions_and_count(&recovered, 10).await, (9, 9), "every acknowledged session once");
        drop(recovered);
        // Recovery flushed and emptied the log: opening again changes nothing.
        let reopened = SledStore::open(crashed.path(), 16 << 20).unwrap();
        assert_eq!(sessions_and_count(&reopened, 10).await, (9, 9));
        let next = reopened.write(vec![batch(9, 0, 20), batch(5, 0, 20)].into()).await.unwrap();
        assert_eq!(next, [WriteOutcome::Stored, WriteOutcome::Duplicate], "ids and duplicates carry on");
    }

    /// A dropped store has let go of sled's lock: it opens again at once, every time (sled's
    /// I/O threads used to hold the database file for a moment after the drop returned).
    #[tokio::test]
    async fn a_dropped_store_opens_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..30u32 {
            let store = SledStore::open(dir.path(), 1 << 20).unwrap();
            store.write(vec![batch(1, round, 50)].into()).await.unwrap();
            store.pipeline.drain().unwrap();
            store.tree.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        assert!(store.session_events("s", Id128([1; 16])).await.unwrap().is_some());
    }

    /// No checkpoint during the test: only reads (and the budget) drain the memtable.
    pub(super) fn no_checkpoints(memtable_bytes: usize) -> pipeline::Tuning {
        pipeline::Tuning { checkpoint: std::time::Duration::from_secs(3600), memtable_bytes, ..Default::default() }
    }

    /// A group's requests are answered once it is in the log, before the applier is done: so a
    /// group the applier then fails must not be lost. The pipeline takes no later group, reads
    /// still answer from what was applied, erasure waits for a restart (the log may hold the
    /// visitor), and the restart applies the failed group from the log.
    #[tokio::test]
    async fn a_group_the_applier_fails_after_it_was_logged_is_kept_for_the_restart() {
        let dir = tempfile::tempdir().unwrap();
        let failing = pipeline::Tuning { fail_group: Some(2), ..no_checkpoints(memtable::BUDGET) };
        let store = Arc::new(SledStore::open_tuned(dir.path(), 16 << 20, failing).unwrap());
        let first = store.clone().begin_write(vec![batch(0, 0, 20)].into()).finish().await.unwrap();
        assert_eq!(first, [WriteOutcome::Stored]);

        let second = store.clone().begin_write(vec![batch(1, 0, 20)].into());
        second.durable.expect("sled knows durability first").await.expect("the group is in the log");
        let applied = second.outcomes.await;
        assert!(applied.is_err(), "the applier failed it");

        let third = store.clone().begin_write(vec![batch(2, 0, 20)].into()).finish().await;
        assert!(third.is_err(), "no group is taken after the failed one: {third:?}");
        assert_eq!(sessions_and_count(&store, 3).await, (1, 1), "reads answer from what was applied");
        assert!(store.forget_visitor("s", VisitorKey([1; 16])).await.is_err(), "erasure waits for the restart");
        drop(store);

        let store = SledStore::open_tuned(dir.path(), 16 << 20, no_checkpoints(memtable::BUDGET)).unwrap();
        assert_eq!(
            events_of_sessions(&store, 3).await,
            [20, 20, 0],
            "the failed group is back, the refused one never was"
        );
        assert_eq!(store.forget_visitor("s", VisitorKey([1; 16])).await.unwrap(), 1);
    }

    async fn events_of_sessions(store: &SledStore, n: u8) -> Vec<usize> {
        let mut found = Vec::new();
        for i in 0..n {
            found.push(store.session_events("s", Id128([i; 16])).await.unwrap().map_or(0, |e| e.len()));
        }
        found
    }

    /// A 204 means readable at once: nothing has drained the memtable into sled yet, so the
    /// read does (the read barrier), and duplicates are found in the memtable and in sled.
    #[tokio::test]
    async fn reads_right_after_a_write_see_it_before_any_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_tuned(dir.path(), 16 << 20, no_checkpoints(memtable::BUDGET)).unwrap();
        store.write((0..3u8).map(|n| batch(n, 0, 20)).collect::<Vec<_>>().into()).await.unwrap();
        let in_sled = |n: u8| store.tree.get(keys::session_index("s", &[n; 16])).unwrap().is_some();
        assert!(!in_sled(1), "the group is in the memtable only");
        assert_eq!(sessions_and_count(&store, 4).await, (3, 3));
        assert!(in_sled(1), "the read drained it");

        let next = store.write(vec![batch(1, 1, 20), batch(1, 1, 20), batch(4, 0, 20)].into()).await.unwrap();
        assert_eq!(next, [WriteOutcome::Stored, WriteOutcome::Duplicate, WriteOutcome::Stored], "memtable duplicate");
        let again = store.write(vec![batch(1, 0, 20), batch(1, 1, 20)].into()).await.unwrap();
        assert_eq!(again, [WriteOutcome::Duplicate, WriteOutcome::Duplicate], "duplicates of sled and memtable");
        assert!(!in_sled(4));
        assert_eq!(events_of_sessions(&store, 6).await, [20, 40, 20, 0, 20, 0]);
        let day = crate::model::day_of(1_000);
        assert_eq!(store.stats("s", DayRange { from: day, to: day }).await.unwrap().totals.sessions, 4);
    }

    /// A memtable larger than its budget is drained between checkpoints (unflushed); a crash
    /// then loses those drains with everything else since the last flush, and recovery —
    /// itself draining for size — restores every acknowledged batch once.
    #[tokio::test]
    async fn a_memtable_drained_for_its_size_then_lost_in_a_crash_is_recovered_once() {
        let (live, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let tuning = no_checkpoints(64 << 10);
        let store = SledStore::open_tuned(live.path(), 16 << 20, tuning).unwrap();
        store.write((0..4u8).map(|n| batch(n, 0, 20)).collect::<Vec<_>>().into()).await.unwrap();
        store.flush().await.unwrap();
        copy_dir(live.path(), crashed.path());
        // ~1 MiB in 30 groups: many drains for size; sessions span groups and drains.
        for seq in 0..5 {
            for sessions in (4..100u8).collect::<Vec<_>>().chunks(16) {
                let group: Vec<StoredBatch> = sessions.iter().map(|&n| batch(n, seq, 20)).collect();
                let outcomes = store.write(group.into()).await.unwrap();
                assert!(outcomes.iter().all(|o| *o == WriteOutcome::Stored));
            }
        }
        let dup = store.write(vec![batch(2, 0, 20), batch(50, 3, 20)].into()).await.unwrap();
        assert_eq!(dup, [WriteOutcome::Duplicate, WriteOutcome::Duplicate]);
        assert!(store.tree.get(keys::session_index("s", &[4; 16])).unwrap().is_some(), "drained for its size");
        copy_dir(&live.path().join("grouplog"), &crashed.path().join("grouplog"));
        drop(store);

        let expected: Vec<usize> = (0..101u8)
            .map(|n| {
                if n < 4 {
                    20
                } else if n < 100 {
                    100
                } else {
                    0
                }
            })
            .collect();
        let day = crate::model::day_of(1_000);
        for _ in 0..2 {
            // Recovery, then a plain reopen: the same answers.
            let store = SledStore::open_tuned(crashed.path(), 16 << 20, tuning).unwrap();
            assert_eq!(events_of_sessions(&store, 101).await, expected, "every batch whole and once");
            assert_eq!(store.stats("s", DayRange { from: day, to: day }).await.unwrap().totals.sessions, 100);
        }
    }

    /// Erasure drains first and erases in sled: no data of the visitor stays in the memtable,
    /// in sled's segments, or comes back when the store is reopened.
    #[tokio::test]
    async fn forgetting_a_visitor_whose_batches_are_still_in_the_memtable_erases_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_tuned(dir.path(), 16 << 20, no_checkpoints(memtable::BUDGET)).unwrap();
        let mut secret = batch(1, 1, 2);
        secret.events[0].data = EventData::View(crate::model::View {
            url: "https://t.example/x".into(),
            path: "/x".into(),
            referrer: None,
            title: Some("visitor-one-secret".into()),
            vw: 800.0,
            vh: 600.0,
            dw: 800.0,
            dh: 600.0,
            load_ms: None,
            ttfb_ms: None,
            spa: false,
        });
        let secret = StoredBatch::new(
            secret.site,
            secret.visitor,
            secret.sid,
            secret.seq,
            secret.received,
            secret.client,
            secret.events,
        );
        store.write(vec![batch(1, 0, 20), batch(2, 0, 20)].into()).await.unwrap();
        store.session_events("s", Id128([2; 16])).await.unwrap();
        store.write(vec![secret, batch(2, 1, 20)].into()).await.unwrap();
        // The raw bytes of every segment file.
        let holds_secret = |_: &SledStore| {
            raw_files(&dir.path().join("segments")).iter().any(|v| v.windows(18).any(|w| w == b"visitor-one-secret"))
        };
        store.session_events("s", Id128([2; 16])).await.unwrap();
        assert!(holds_secret(&store), "drained into a segment file");
        assert_eq!(store.forget_visitor("s", VisitorKey([1; 16])).await.unwrap(), 1);
        assert!(!holds_secret(&store));
        assert_eq!(events_of_sessions(&store, 3).await, [0, 0, 40]);
        drop(store);
        let store = SledStore::open_tuned(dir.path(), 16 << 20, no_checkpoints(memtable::BUDGET)).unwrap();
        assert!(!holds_secret(&store));
        assert_eq!(events_of_sessions(&store, 3).await, [0, 0, 40]);
    }
}
