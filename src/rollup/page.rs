//! Per-page figures for one site, day and normalised path: pageviews, load time, clicks,
//! scroll depth and scroll reach.

use serde::{Deserialize, Serialize};

use super::Histogram;

/// Scroll reach is counted in steps of this many percent (0, 5, …, 100).
pub const REACH_STEP_PCT: u8 = 5;
pub const REACH_STEPS: usize = 100 / REACH_STEP_PCT as usize + 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageRollup {
    pub pageviews: u64,
    pub load: Histogram,
    pub clicks: u64,
    pub rage_clicks: u64,
    pub dead_clicks: u64,
    #[serde(default)]
    pub error_clicks: u64,
    #[serde(default)]
    pub quick_backs: u64,
    /// Sum over pageviews of the deepest point reached, in percent of the document.
    pub depth_sum_pct: u64,
    /// `reach[k]`: pageviews whose deepest point reached `k * 5` percent.
    pub reach: Vec<u64>,
    /// Sums over pageviews of the fold line (viewport height), in px and percent of document.
    pub fold_sum_px: f64,
    pub fold_sum_pct: f64,
}

impl PageRollup {
    pub fn merge(&mut self, other: &PageRollup) {
        self.pageviews += other.pageviews;
        self.load.merge(&other.load);
        self.clicks += other.clicks;
        self.rage_clicks += other.rage_clicks;
        self.dead_clicks += other.dead_clicks;
        self.error_clicks += other.error_clicks;
        self.quick_backs += other.quick_backs;
        self.depth_sum_pct += other.depth_sum_pct;
        if self.reach.len() < REACH_STEPS {
            self.reach.resize(REACH_STEPS, 0);
        }
        for (a, b) in self.reach.iter_mut().zip(&other.reach) {
            *a += b;
        }
        self.fold_sum_px += other.fold_sum_px;
        self.fold_sum_pct += other.fold_sum_pct;
    }

    /// Records that a pageview's deepest point moved from `from_pct` to `to_pct` (0–100): each
    /// 5 % step crossed counts once, so reach stays exact however many batches a view spans.
    pub fn deepen(&mut self, from_pct: Option<u8>, to_pct: u8) {
        if self.reach.len() < REACH_STEPS {
            self.reach.resize(REACH_STEPS, 0);
        }
        let to_pct = to_pct.min(100);
        let from_step = from_pct.map_or(-1, |f| (f / REACH_STEP_PCT) as i32);
        for step in (from_step + 1)..=(to_pct / REACH_STEP_PCT) as i32 {
            self.reach[step as usize] += 1;
        }
        self.depth_sum_pct += to_pct.saturating_sub(from_pct.unwrap_or(0)) as u64;
    }
}

/// How far down a document a viewport bottom at `bottom_px` is, in whole percent (0–100).
pub fn reach_pct(bottom_px: f64, document_px: f64) -> u8 {
    if document_px <= 0.0 {
        return 100;
    }
    ((bottom_px / document_px) * 100.0).floor().clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_counts_each_step_once_across_deepenings() {
        let mut p = PageRollup::default();
        p.deepen(None, 30); // first sight: 0..=30 → steps 0,5,…,30
        p.deepen(Some(30), 52); // 35..=50
        p.deepen(Some(52), 52);
        assert_eq!(p.reach[..12], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(p.depth_sum_pct, 52);
        p.deepen(None, 100);
        assert_eq!(p.reach[20], 1);
        assert_eq!(p.reach[0], 2);
        assert_eq!(reach_pct(1500.0, 3000.0), 50);
        assert_eq!(reach_pct(5000.0, 3000.0), 100);
    }
}
