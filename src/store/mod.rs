//! Persistence behind one trait: the embedded sled store (default) and ClickHouse (scale-out).
//! Every backend writes batches durably in groups and answers the same queries.

pub mod clickhouse;
pub mod log;
pub mod retention;
pub mod sled;
pub mod writer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{Event, Id128, SessionSummary, SiteSettings, StoredBatch, VisitorKey};
use crate::query::forms::{Attention, Forms};
use crate::query::funnel::{Funnel, FunnelQuery};
use crate::query::insights::{Heatmap, Pages, ScrollReach};
use crate::query::{DayRange, HeatmapQuery, PageQuery, PagesQuery, SessionPage, SessionQuery, Stats};

/// What happened to one batch of a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Stored,
    /// This `(sid, seq)` was stored before; nothing was written or counted again.
    Duplicate,
}

/// A future of a group commit's stages.
pub type Stage<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// A group commit in progress ([`Store::begin_write`]).
pub struct PendingWrite {
    /// Resolves once every batch of the group is on disk, for a store that knows that before
    /// the outcomes (sled: the group log has synced, the applier may still be adding the group
    /// to its memtable); the writer answers requests then. `None`: only `outcomes` tells.
    pub durable: Option<Stage<()>>,
    /// Resolves as [`Store::write`] does (after `durable`, when there is one).
    pub outcomes: Stage<Vec<WriteOutcome>>,
}

impl PendingWrite {
    /// A commit whose durability is only known with its outcomes.
    pub fn outcomes(outcomes: Stage<Vec<WriteOutcome>>) -> Self {
        Self { durable: None, outcomes }
    }

    /// Waits for both stages: what [`Store::write`] returns.
    pub async fn finish(self) -> Result<Vec<WriteOutcome>, StoreError> {
        if let Some(durable) = self.durable {
            durable.await?;
        }
        self.outcomes.await
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes a group of batches and their rollup deltas atomically and durably: when this
    /// returns `Ok`, every batch is on disk. Returns one outcome per batch, in order.
    async fn write(&self, batches: Arc<[StoredBatch]>) -> Result<Vec<WriteOutcome>, StoreError>;

    /// Starts a group commit and returns at once. A store that pipelines groups orders them by
    /// this call, so the writer may start the next group before the last is durable (up to
    /// [`Store::groups_in_flight`]); by default the group is written when the future is polled.
    fn begin_write(self: Arc<Self>, batches: Arc<[StoredBatch]>) -> PendingWrite {
        PendingWrite::outcomes(Box::pin(async move { self.write(batches).await }))
    }

    /// How many groups the writer may have in flight at once (1: one after the other).
    fn groups_in_flight(&self) -> usize {
        1
    }

    /// Sites created through the API (configured ones live in the config).
    async fn load_sites(&self) -> Result<Vec<SiteSettings>, StoreError>;
    async fn put_site(&self, site: &SiteSettings) -> Result<(), StoreError>;

    async fn stats(&self, site: &str, range: DayRange) -> Result<Stats, StoreError>;
    async fn sessions(&self, site: &str, query: &SessionQuery) -> Result<SessionPage, StoreError>;
    /// Per-page figures, most viewed first, `limit` from `offset`.
    async fn pages(&self, site: &str, query: &PagesQuery) -> Result<Pages, StoreError>;
    /// Heatmap of one path; `width` `None` sums all viewport classes.
    async fn heatmap(&self, site: &str, query: &HeatmapQuery) -> Result<Heatmap, StoreError>;
    async fn scroll(&self, site: &str, query: &PageQuery) -> Result<ScrollReach, StoreError>;
    /// Form analytics of one path (from form rollups).
    async fn forms(&self, site: &str, query: &PageQuery) -> Result<Forms, StoreError>;
    /// Attention bands of one path (from attention rollups).
    async fn attention(&self, site: &str, query: &PageQuery) -> Result<Attention, StoreError>;
    /// A conversion funnel over the sessions that started in the range (from the index of
    /// per-session page sequences).
    async fn funnel(&self, site: &str, query: &FunnelQuery) -> Result<Funnel, StoreError>;

    /// All events of a session in the client's order (`seq`, then position in batch; times
    /// never go backwards: [`crate::model::in_client_order`]); `None` when the session is unknown.
    async fn session_events(&self, site: &str, sid: Id128) -> Result<Option<Vec<Event>>, StoreError>;

    /// Every session (summary and events) of one visitor, oldest first.
    async fn visitor_sessions(
        &self,
        site: &str,
        visitor: VisitorKey,
    ) -> Result<Vec<(SessionSummary, Vec<Event>)>, StoreError>;

    /// Erases a visitor's sessions and events durably; returns how many sessions were erased.
    /// Rollups stay (they are aggregate). Called only by the writer task, never concurrently
    /// with [`Store::write`].
    async fn forget_visitor(&self, site: &str, visitor: VisitorKey) -> Result<usize, StoreError>;

    /// Deletes up to `limit` sessions whose first batch arrived before `before_ms`, with their
    /// events; returns how many were deleted (fewer than `limit` means done). Writer task only.
    async fn expire(&self, site: &str, before_ms: i64, limit: usize) -> Result<usize, StoreError>;

    /// Makes everything written so far durable (used at shutdown).
    async fn flush(&self) -> Result<(), StoreError>;
}
