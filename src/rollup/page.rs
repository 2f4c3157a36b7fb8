//! Per-page figures for one site, day and normalised path: pageviews, load time, clicks,
//! scroll depth and scroll reach; their stored encoding, and [`PageSums`], the accumulator a
//! query adds stored values into.

use serde::{Deserialize, Serialize};

use super::codec::{self, Corrupt};
use super::{quantile_of, Histogram, HISTOGRAM_BUCKETS};

/// First byte of a stored page rollup in the [`codec`] format (older stores hold MessagePack).
const PAGE_FORMAT: u8 = 0x01;

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
        self.merge_figures(other);
        for (b, n) in &other.load.buckets {
            *self.load.buckets.entry(*b).or_default() += n;
        }
    }

    /// [`Self::merge`] but for the load histogram's buckets.
    fn merge_figures(&mut self, other: &PageRollup) {
        self.pageviews += other.pageviews;
        self.load.count += other.load.count;
        self.load.sum += other.load.sum;
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

    /// The stored value: counts as varints, sums as f64, reach and load buckets as [`codec`]
    /// arrays.
    pub fn to_stored(&self) -> Vec<u8> {
        self.encode(self.load.buckets.iter().map(|(b, n)| (usize::from(*b), *n)))
    }

    /// The stored value of these figures with these load buckets (in bucket order).
    fn encode(&self, buckets: impl IntoIterator<Item = (usize, u64)>) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.push(PAGE_FORMAT);
        for n in self.counts() {
            codec::put_varint(&mut out, n);
        }
        for v in [self.load.sum, self.fold_sum_px, self.fold_sum_pct] {
            codec::put_f64(&mut out, v);
        }
        codec::put_varint(&mut out, self.reach.len() as u64);
        for n in &self.reach {
            codec::put_varint(&mut out, *n);
        }
        codec::put_sparse_counts(&mut out, buckets);
        out
    }

    /// Reads a stored value (this format, or the MessagePack older versions wrote).
    pub fn from_stored(bytes: &[u8]) -> Result<Self, Corrupt> {
        let mut sums = PageSums::default();
        sums.add_stored(bytes)?;
        Ok(sums.into_rollup())
    }

    /// The integer figures, in their stored order.
    fn counts(&self) -> [u64; 9] {
        [
            self.pageviews,
            self.load.count,
            self.clicks,
            self.rage_clicks,
            self.dead_clicks,
            self.error_clicks,
            self.quick_backs,
            self.depth_sum_pct,
            0, // reserved
        ]
    }

    fn counts_mut(&mut self) -> [&mut u64; 8] {
        [
            &mut self.pageviews,
            &mut self.load.count,
            &mut self.clicks,
            &mut self.rage_clicks,
            &mut self.dead_clicks,
            &mut self.error_clicks,
            &mut self.quick_backs,
            &mut self.depth_sum_pct,
        ]
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

/// The sum of many page rollups, with the load histogram kept as a dense array so that adding
/// a stored value is one pass over its bytes (no map per value).
#[derive(Debug, Clone, Default)]
pub struct PageSums {
    /// Every figure but the load histogram's buckets (left empty).
    totals: PageRollup,
    /// Load-time histogram counts by bucket, as long as the highest bucket seen.
    load_buckets: Vec<u64>,
}

impl PageSums {
    pub fn add(&mut self, r: &PageRollup) {
        self.totals.merge_figures(r);
        if let Some((last, _)) = r.load.buckets.last_key_value() {
            if self.load_buckets.len() <= usize::from(*last) {
                self.load_buckets.resize(usize::from(*last) + 1, 0);
            }
        }
        for (b, n) in &r.load.buckets {
            self.load_buckets[usize::from(*b)] += n;
        }
    }

    /// Adds a stored page rollup (either format) straight into the sums.
    pub fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        if bytes.first() != Some(&PAGE_FORMAT) {
            let legacy: PageRollup = rmp_serde::from_slice(bytes).map_err(|_| Corrupt("page rollup"))?;
            self.add(&legacy);
            return Ok(());
        }
        let mut at = 1;
        for field in self.totals.counts_mut() {
            *field += codec::varint(bytes, &mut at)?;
        }
        codec::varint(bytes, &mut at)?; // reserved
        let t = &mut self.totals;
        for sum in [&mut t.load.sum, &mut t.fold_sum_px, &mut t.fold_sum_pct] {
            *sum += codec::f64_at(bytes, &mut at)?;
        }
        let steps = codec::varint(bytes, &mut at)?;
        if steps > REACH_STEPS as u64 {
            return Err(Corrupt("page rollup: reach steps"));
        }
        t.reach.resize(REACH_STEPS, 0);
        for step in 0..steps as usize {
            t.reach[step] += codec::varint(bytes, &mut at)?;
        }
        codec::add_counts_growing(bytes, at, &mut self.load_buckets, HISTOGRAM_BUCKETS)
    }

    /// Every figure but the load histogram (whose buckets are left empty).
    pub fn figures(&self) -> &PageRollup {
        &self.totals
    }

    pub fn pageviews(&self) -> u64 {
        self.totals.pageviews
    }

    pub fn load_mean(&self) -> Option<f64> {
        self.totals.load.mean()
    }

    pub fn load_quantile(&self, q: f64) -> Option<f64> {
        let buckets = self.load_buckets.iter().enumerate().map(|(b, n)| (b as u16, *n));
        quantile_of(self.totals.load.count, buckets, q)
    }

    pub fn to_stored(&self) -> Vec<u8> {
        self.totals.encode(self.load_buckets.iter().copied().enumerate())
    }

    pub fn into_rollup(self) -> PageRollup {
        let mut r = self.totals;
        r.load.buckets =
            self.load_buckets.into_iter().enumerate().filter(|(_, n)| *n > 0).map(|(b, n)| (b as u16, n)).collect();
        r.reach.resize(REACH_STEPS, 0);
        r
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

    fn sample(seed: u64) -> PageRollup {
        let mut r = PageRollup { pageviews: seed, clicks: 3 * seed, fold_sum_px: 900.5, ..Default::default() };
        r.deepen(None, (seed * 13 % 100) as u8);
        for v in [12.0, 150.0, 2000.0 + seed as f64, 1e9] {
            r.load.record(v);
        }
        r.rage_clicks = seed / 2;
        r.quick_backs = 1;
        r
    }

    #[test]
    fn stored_values_round_trip_and_sum_like_merge() {
        let (a, b) = (sample(3), sample(40));
        assert_eq!(PageRollup::from_stored(&a.to_stored()).unwrap(), a);
        let legacy = rmp_serde::to_vec_named(&b).unwrap();
        assert_eq!(PageRollup::from_stored(&legacy).unwrap(), b, "older MessagePack values still read");
        let mut merged = a.clone();
        merged.merge(&b);
        let mut sums = PageSums::default();
        sums.add_stored(&a.to_stored()).unwrap();
        sums.add_stored(&legacy).unwrap();
        assert_eq!(
            (sums.load_quantile(0.5), sums.load_quantile(0.95)),
            (merged.load.quantile(0.5), merged.load.quantile(0.95))
        );
        assert_eq!(PageRollup::from_stored(&sums.to_stored()).unwrap(), merged);
        assert_eq!(sums.into_rollup(), merged);
        assert!(PageRollup::from_stored(&a.to_stored()[..20]).is_err());
        assert!(PageRollup::from_stored(&[PAGE_FORMAT]).is_err());
    }

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
