//! What one session adds up to, updated batch by batch: the summary operators list and the
//! tracking state its rollups need. Shared by every store so their summaries agree.

use serde::{Deserialize, Serialize};

use super::track::{Deltas, Tracking};
use crate::model::{EventData, SessionSummary, StoredBatch, VisitorKey};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub visitor: VisitorKey,
    pub start: i64,
    pub last: i64,
    pub pageviews: u32,
    pub events: u32,
    pub clicks: u32,
    pub entry: Option<String>,
    pub device: String,
    pub browser: String,
    pub replay: bool,
    /// State for rollups that span batches (open pageview, click bursts).
    #[serde(default)]
    pub track: Tracking,
}

impl SessionState {
    /// The state of a session whose first stored batch is `batch` (not yet applied).
    pub fn new(batch: &StoredBatch) -> Self {
        let first = batch.events.first().map_or(batch.received, |e| e.t);
        Self {
            visitor: batch.visitor,
            start: first,
            last: first,
            pageviews: 0,
            events: 0,
            clicks: 0,
            entry: None,
            device: batch.client.device.clone(),
            browser: batch.client.browser.clone(),
            replay: false,
            track: Tracking::default(),
        }
    }

    /// Adds one batch: the summary's counts, and its rollup deltas into `deltas`.
    pub fn apply(&mut self, batch: &StoredBatch, deltas: &mut Deltas) {
        for e in &batch.events {
            self.start = self.start.min(e.t);
            self.last = self.last.max(e.t);
            self.events += 1;
            match &e.data {
                EventData::View(v) => {
                    self.pageviews += 1;
                    if self.entry.is_none() || e.t <= self.start {
                        self.entry = Some(v.path.clone());
                    }
                }
                EventData::Click { .. } => self.clicks += 1,
                EventData::Snap { .. } => self.replay = true,
                _ => {}
            }
        }
        self.track.apply(&batch.site, &batch.events, deltas);
    }

    pub fn summary(&self, sid: &[u8; 16]) -> SessionSummary {
        SessionSummary {
            id: hex::encode(sid),
            visitor: self.visitor.to_hex(),
            start: self.start,
            duration_ms: self.last - self.start,
            pageviews: self.pageviews,
            events: self.events,
            clicks: self.clicks,
            entry: self.entry.clone(),
            device: self.device.clone(),
            browser: self.browser.clone(),
            replay: self.replay,
            rage_clicks: self.track.rage_clicks,
            dead_clicks: self.track.dead_clicks,
            error_clicks: self.track.error_clicks,
            quick_backs: self.track.quick_backs,
        }
    }
}
