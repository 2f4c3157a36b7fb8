//! The ClickHouse store: many stateless collectors writing to one ClickHouse server or a
//! sharded cluster, answering the same API as the embedded sled store.
//!
//! # What lives where
//!
//! See [`schema`] for the tables. Raw events are one `batches` row per batch (the JSON array
//! the request handler already encoded), partitioned by month so retention can drop whole
//! partitions. Rollups are rows of *deltas* in SummingMergeTree tables, computed by the same
//! [`crate::rollup::track::Tracking::apply`] as sled and read back through the same builders in [`crate::query`], so
//! both backends answer identically. A day's visitors are counted exactly from `day_visitors`
//! (plus a count of erased marks, so erasure does not change past totals, as in sled); visitors
//! over several days come from the same per-day HyperLogLog sketches as sled, kept as the max
//! rank per register in `day_sketches`.
//!
//! # The shape of the code (read this before adding a rollup or a query)
//!
//! | module | owns |
//! |---|---|
//! | `target` | [`ClickHouseTarget`], parsed from the `clickhouse+http://…` store URL |
//! | `client` | `Db`: the `clickhouse` crate's client (RowBinary, validation off, for 18.16 on) |
//! | `schema` | the `CREATE TABLE`s and the schema version |
//! | `rows` | one row struct per table, fields in column order |
//! | `claims` | the versioned-claim protocol below: resolving, claiming, checking |
//! | `write` | one group commit: rounds of read → plan → claim → check → rollups |
//! | `rollups` | [`crate::rollup::track::Deltas`] → rows of the rollup tables, and their insert |
//! | `read`, `erase` | operator queries; erasure and retention |
//!
//! To add a rollup: a field in `Deltas` (shared with sled, in `rollup/track.rs`); a
//! `CREATE TABLE IF NOT EXISTS … ENGINE = SummingMergeTree ORDER BY (site, day, …)` in
//! `schema::TABLES` (maps as `Nested` columns named `…Map`, summed key by key); a row struct in
//! `rows` (`#[derive(Row, Serialize, Deserialize, Clone, Default)]`, fields exactly in column
//! order and width — rows travel as `RowBinary` unchecked, the shared backend suite is what
//! catches a mismatch); a field in `rollups::RollupRows` filled in `RollupRows::of` and
//! inserted in `RollupRows::insert`. To read it: a `#[derive(Row, Deserialize)]` struct whose
//! fields are the `SELECT`'s columns in order (`sum(UInt64)` → `u64`, `sumMap(k, n)` →
//! `(Vec<K>, Vec<u64>)`), fetched with `Db::fetch(db.query("… WHERE site = ? …").bind(site))`;
//! always `GROUP BY` with `sum`/`sumMap`, never rely on merges having happened. Bind strings
//! with `?`; ids go in as `client::id_sql` (hex, see there why).
//!
//! # Session state with many collectors: versioned claims
//!
//! Rollups that span batches (an open pageview's scroll reach, click bursts) need the session's
//! state, and a resent `(sid, seq)` must be stored once even when it reaches two collectors.
//! There is no sticky routing and no collector-local state: the state lives in ClickHouse, in
//! `sessions`, as one row per *version* of each session (`site, sid, version, token`), holding
//! the summary, the `seq`s applied so far (in arrival order) and the [`crate::rollup::track::Tracking`] state.
//!
//! Each row is marked: a *claim* of a version (with the new state and the version's rollup
//! rows), a *retraction* of a claim, a *confirmation* of one, or *counted* (its rollups are
//! all in). A group commit, per session it touches:
//!
//! 1. reads every row of the session (small rows, no records) and resolves the newest
//!    *confirmed* version `v`, then fetches only that version's state (two queries for the
//!    whole group). If a newer claim is neither confirmed nor retracted yet, or `v` is not
//!    counted yet, another collector is mid-commit: wait and read again;
//! 2. drops batches whose `seq` that version already holds (→ [`WriteOutcome::Duplicate`]),
//!    applies the rest, and computes the rollup deltas;
//! 3. inserts the new batches' events (harmless if this attempt loses: reads only show batches
//!    that a confirmed session version lists, and pick one copy per `seq`);
//! 4. inserts its claim: a version above every version the session has, a random 64-bit
//!    token, the new state and the rollup rows it will add;
//! 5. reads all claims of that version back. If any *other* unretracted claim is there, it
//!    lost: it inserts a retraction and retries the session from step 1 (random back-off, for
//!    at most 30 s, then the group fails with 5xx and the client resends). If its claim is
//!    alone, it won, and inserts a confirmation;
//! 6. counts: the winners' rollup rows go into each rollup table in one insert with a marker
//!    row per version (see `rollups`), their visitor marks too, then `counted` marks; then the
//!    requests get their 204.
//!
//! At most one claim per version wins: a claim wins only if its check (step 5) saw no other
//! claim, so of two claims the later-inserted one always sees the earlier and loses (both may
//! lose, never both win). Writers and readers build only on confirmed claims, and a confirmed
//! claim is never retracted, so no state is built on one that later loses. This needs only
//! what every ClickHouse version offers: an acknowledged INSERT is visible to the next SELECT
//! on that server (on a cluster: on the shard that took it, which every read consults).
//!
//! # Crashes: nothing lost, nothing counted twice
//!
//! A collector that dies (`kill -9`) mid-commit leaves its session unsettled; writers wait for
//! it while its rows stand still for 10 s, then give up on it:
//!
//! - died before confirming: the claim is void (it neither counted nor answered 204); the
//!   next claim goes above it;
//! - died after confirming, before `counted`: the version is kept, and whoever wins the next
//!   version of the session counts it first — table by table, only where its marker is
//!   missing (an insert lands whole or not at all, so a marker proves the rows are in). A
//!   session that gets no further batch is found by a sweep every collector runs every 5 s,
//!   which claims an empty next version to do the same.
//!
//! `tests/crash.rs` kills a collector at random moments round after round and checks that
//! every acknowledged batch is stored once and pageviews and sessions are counted exactly.
//! Timing assumption: a live collector confirms within its 2 s lease (a claim checked later is
//! withdrawn and retried) and counts within the 10 s others wait; a ClickHouse stalled for
//! longer than that could let a version be built or counted twice.
//!
//! Why not the alternatives: `insert_deduplication_token` and block deduplication only exist
//! for Replicated tables (or from 21.x), and they dedupe identical *blocks*, not batches
//! inside groups that differ; a ReplacingMergeTree on `(site, sid, seq)` alone would keep the
//! events once but could not stop the rollups from being counted twice; sticky routing by
//! `sid` needs a load balancer that can hash a JSON body and breaks on failover.
//!
//! # Limits (said plainly)
//!
//! - Cluster (`?cluster=NAME&shards=H:P,…`): every shard one server, no replicas — a shard
//!   that is down makes reads and claim checks fail (5xx, the client resends) rather than
//!   answer from part of the data. With Replicated shards the claim check would also need
//!   `insert_quorum` + `select_sequential_consistency`.
//! - Marker rows (one per session version and rollup table it added to) are kept; they are
//!   small and no query reads them.
//! - Old session versions are kept until the session expires (one small row per group that
//!   touched the session); erasure and retention use `ALTER … DELETE` mutations, which rewrite
//!   parts and are waited for before answering.
//! - Elements per page and day are pruned to the 500 most clicked when read, not when
//!   written: beyond 500 selectors a day the two backends may list different tails.

mod analytics;
mod claims;
mod client;
mod erase;
mod read;
mod rollups;
mod rows;
pub mod schema;
mod target;
mod write;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::Event;
use crate::model::{Id128, SessionSummary, SiteSettings, StoredBatch, VisitorKey};
use crate::query::forms::{Attention, Forms};
use crate::query::funnel::{Funnel, FunnelQuery};
use crate::query::insights::{Heatmap, Pages, ScrollReach};
use crate::query::{DayRange, HeatmapQuery, PageQuery, PagesQuery, SessionPage, SessionQuery, Stats};
use crate::rollup::session::SessionState;
use crate::store::{Store, StoreError, WriteOutcome};
use client::Db;
pub use target::ClickHouseTarget;

/// [`Store`] on ClickHouse over HTTP. Cheap to clone; holds no session state.
#[derive(Clone)]
pub struct ClickHouseStore {
    db: Db,
}

impl ClickHouseStore {
    /// Connects, creates the database and tables when missing, and checks the schema version.
    pub async fn connect(target: &ClickHouseTarget) -> Result<Self, StoreError> {
        let db = Db::connect(target).await?;
        schema::ensure(&db).await?;
        tokio::spawn(write::sweep(db.clone()));
        Ok(Self { db })
    }
}

/// A session's state as kept in each `sessions` row (JSON in `record`): the same state as
/// the sled store keeps, so summaries agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub state: SessionState,
    /// `seq` of every stored batch, in the order they were applied.
    pub seqs: Vec<u32>,
}

impl Record {
    fn new(batch: &StoredBatch) -> Self {
        Self { state: SessionState::new(batch), seqs: Vec::new() }
    }

    fn summary(&self, sid: &[u8; 16]) -> SessionSummary {
        self.state.summary(sid)
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

#[async_trait]
impl Store for ClickHouseStore {
    async fn write(&self, batches: Arc<[StoredBatch]>) -> Result<Vec<WriteOutcome>, StoreError> {
        write::write_group(&self.db, &batches).await
    }

    async fn load_sites(&self) -> Result<Vec<SiteSettings>, StoreError> {
        read::load_sites(&self.db).await
    }

    async fn put_site(&self, site: &SiteSettings) -> Result<(), StoreError> {
        read::put_site(&self.db, site).await
    }

    async fn stats(&self, site: &str, range: DayRange) -> Result<Stats, StoreError> {
        read::stats(&self.db, site, range).await
    }

    async fn sessions(&self, site: &str, query: &SessionQuery) -> Result<SessionPage, StoreError> {
        read::sessions(&self.db, site, query).await
    }

    async fn pages(&self, site: &str, query: &PagesQuery) -> Result<Pages, StoreError> {
        read::pages(&self.db, site, query).await
    }

    async fn heatmap(&self, site: &str, query: &HeatmapQuery) -> Result<Heatmap, StoreError> {
        read::heatmap(&self.db, site, query).await
    }

    async fn scroll(&self, site: &str, query: &PageQuery) -> Result<ScrollReach, StoreError> {
        read::scroll(&self.db, site, query).await
    }

    async fn forms(&self, site: &str, query: &PageQuery) -> Result<Forms, StoreError> {
        analytics::forms(&self.db, site, query).await
    }

    async fn attention(&self, site: &str, query: &PageQuery) -> Result<Attention, StoreError> {
        analytics::attention(&self.db, site, query).await
    }

    async fn funnel(&self, site: &str, query: &FunnelQuery) -> Result<Funnel, StoreError> {
        analytics::funnel(&self.db, site, query).await
    }

    async fn session_events(&self, site: &str, sid: Id128) -> Result<Option<Vec<Event>>, StoreError> {
        read::session_events(&self.db, site, sid).await
    }

    async fn visitor_sessions(
        &self,
        site: &str,
        visitor: VisitorKey,
    ) -> Result<Vec<(SessionSummary, Vec<Event>)>, StoreError> {
        read::visitor_sessions(&self.db, site, visitor).await
    }

    async fn forget_visitor(&self, site: &str, visitor: VisitorKey) -> Result<usize, StoreError> {
        erase::forget_visitor(&self.db, site, visitor).await
    }

    async fn expire(&self, site: &str, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        erase::expire(&self.db, site, before_ms, limit).await
    }

    /// Every write was acknowledged by ClickHouse before it returned: nothing is buffered here.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
