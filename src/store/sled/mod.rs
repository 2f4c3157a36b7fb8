//! The embedded default store on sled 0.34: one tree, group-committed batches, rollups merged
//! at write time (see [`keys`] for the layout and why).

mod analytics;
mod erase;
mod insights;
pub mod keys;
#[cfg(test)]
mod rollup_tests;
mod rollups;
mod write;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::{Store, StoreError, WriteOutcome};
use crate::model::{in_client_order, Event, Id128, SessionSummary, SiteSettings, StoredBatch, VisitorKey};
use crate::query::forms::{Attention, Forms};
use crate::query::funnel::{Funnel, FunnelQuery};
use crate::query::insights::{Heatmap, Pages, ScrollReach};
use crate::query::{
    DayRange, HeatmapQuery, PageQuery, PagesQuery, SessionCursor, SessionPage, SessionQuery, Stats,
    MAX_SESSIONS_SCANNED,
};
use crate::rollup::DayRollup;
use write::{decode, SessionRecord};

/// The two sled trees: segments (large values) and everything else.
pub struct Trees {
    pub main: sled::Tree,
    pub segments: sled::Tree,
}

/// sled-backed [`Store`]. Blocking sled calls run on tokio's blocking pool.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    segments: sled::Tree,
    /// The last segment id handed out; ids increase even if the clock steps back.
    last_segment: Arc<AtomicU64>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // We flush explicitly after every group commit; no need for a background flusher.
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let tree = db.open_tree("hushtale")?;
        // Large values live apart so they never bloat the nodes of the index tree.
        let segments = db.open_tree("segments")?;
        rollups::backfill(&tree)?;
        let last = match tree.get(keys::LAST_SEGMENT)? {
            Some(v) => {
                u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt("last segment".into()))?)
            }
            None => 0,
        };
        Ok(Self { db, tree, segments, last_segment: Arc::new(AtomicU64::new(last)) })
    }

    fn trees(&self) -> Trees {
        Trees { main: self.tree.clone(), segments: self.segments.clone() }
    }

    /// A segment id greater than all before it: µs since the epoch, bumped when needed.
    fn next_segment_id(&self) -> u64 {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let mut prev = self.last_segment.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self.last_segment.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
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

    fn read_stats(&self, site: &str, range: DayRange) -> Result<Stats, StoreError> {
        let from = keys::day_rollup(site, range.from);
        let to = keys::day_rollup(site, range.to);
        let prefix_len = keys::prefix(keys::NS_DAY_ROLLUP, site).len();
        let mut rollups = Vec::new();
        for item in self.tree.range(from..=to) {
            let (k, v) = item?;
            let day = keys::day_from_bytes(&k[prefix_len..]).ok_or_else(|| StoreError::Corrupt("rollup key".into()))?;
            rollups.push((day, decode::<DayRollup>(&v)?));
        }
        let unique = Stats::distinct_visitors(&rollups);
        Ok(Stats::from_rollups(site, range, &rollups, unique))
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
        let mut segments: HashMap<u64, sled::IVec> = HashMap::new();
        for r in &record.batches {
            let segment = match segments.entry(r.segment()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    self.segments
                        .get(keys::segment(site, r.segment()))?
                        .ok_or_else(|| StoreError::Corrupt("missing segment".into()))?,
                ),
            };
            let bytes =
                segment.get(r.range()).ok_or_else(|| StoreError::Corrupt("reference outside segment".into()))?;
            let events = serde_json::from_slice::<Vec<Event>>(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
        self.blocking(move |s| write::write_group(&s.trees(), &|| s.next_segment_id(), &batches)).await
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
        self.blocking(move |s| s.read_stats(&site, range)).await
    }

    async fn sessions(&self, site: &str, query: &SessionQuery) -> Result<SessionPage, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.blocking(move |s| s.read_sessions(&site, &query)).await
    }

    async fn pages(&self, site: &str, query: &PagesQuery) -> Result<Pages, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.blocking(move |s| s.read_pages(&site, &query)).await
    }

    async fn heatmap(&self, site: &str, query: &HeatmapQuery) -> Result<Heatmap, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.blocking(move |s| s.read_heatmap(&site, &query)).await
    }

    async fn scroll(&self, site: &str, query: &PageQuery) -> Result<ScrollReach, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.blocking(move |s| s.read_scroll(&site, &query)).await
    }

    async fn forms(&self, site: &str, query: &PageQuery) -> Result<Forms, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.blocking(move |s| s.read_forms(&site, &query)).await
    }

    async fn attention(&self, site: &str, query: &PageQuery) -> Result<Attention, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.blocking(move |s| s.read_attention(&site, &query)).await
    }

    async fn funnel(&self, site: &str, query: &FunnelQuery) -> Result<Funnel, StoreError> {
        let (site, query) = (site.to_owned(), query.clone());
        self.blocking(move |s| s.read_funnel(&site, &query)).await
    }

    async fn session_events(&self, site: &str, sid: Id128) -> Result<Option<Vec<Event>>, StoreError> {
        let site = site.to_owned();
        self.blocking(move |s| s.read_session_events(&site, sid)).await
    }

    async fn visitor_sessions(
        &self,
        site: &str,
        visitor: VisitorKey,
    ) -> Result<Vec<(SessionSummary, Vec<Event>)>, StoreError> {
        let site = site.to_owned();
        self.blocking(move |s| s.read_visitor_sessions(&site, visitor)).await
    }

    async fn forget_visitor(&self, site: &str, visitor: VisitorKey) -> Result<usize, StoreError> {
        let site = site.to_owned();
        self.blocking(move |s| erase::forget_visitor(&s.trees(), &site, visitor)).await
    }

    async fn expire(&self, site: &str, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        let site = site.to_owned();
        self.blocking(move |s| erase::expire(&s.trees(), &site, before_ms, limit)).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|s| {
            s.db.flush()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Client, EventData};

    fn batch(n: u8, seq: u32, events: usize) -> StoredBatch {
        let events: Vec<Event> =
            (0..events).map(|i| Event { t: 1_000 + i as i64, data: EventData::Scroll { y: i as f64 } }).collect();
        StoredBatch {
            site: "s".into(),
            visitor: VisitorKey([n; 16]),
            sid: Id128([n; 16]),
            seq,
            received: 1_000,
            client: Client { device: "desktop".into(), browser: "chrome".into() },
            encoded: StoredBatch::encode_events(&events),
            events,
        }
    }

    #[tokio::test]
    async fn a_group_larger_than_one_segment_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 16 << 20).unwrap();
        // 40 sessions × 3 batches × 200 events ≈ 1 MB: cut into many segments.
        let batches: Vec<StoredBatch> = (0..40u8).flat_map(|n| (0..3).map(move |seq| batch(n, seq, 200))).collect();
        let outcomes = store.write(batches.into()).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == WriteOutcome::Stored));
        assert!(store.segments.len() > 5, "segments were cut: {}", store.segments.len());
        for n in 0..40u8 {
            let events = store.session_events("s", Id128([n; 16])).await.unwrap().unwrap();
            assert_eq!(events.len(), 600);
        }
        let again = store.write(vec![batch(7, 1, 200)].into()).await.unwrap();
        assert_eq!(again, vec![WriteOutcome::Duplicate]);
    }
}
