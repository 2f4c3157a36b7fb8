//! Aggregates maintained at write time — per site and UTC day, per page, heatmap cells —
//! and the per-session state needed to compute them. Backends store these and merge deltas
//! into them, so queries never touch raw events.

pub mod attention;
pub mod codec;
pub mod day;
pub mod form;
pub mod heat;
pub mod page;
pub mod period;
pub mod session;
pub mod sketch;
pub mod track;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Values below this many ms get a bucket per ms.
const LINEAR_LIMIT: f64 = 100.0;
/// Above [`LINEAR_LIMIT`], each bucket is this much wider than the last (2 % relative error).
const GROWTH: f64 = 1.02;
const MAX_BUCKET: u16 = 1000;
/// Buckets a histogram can have (a dense histogram's length at most).
pub const HISTOGRAM_BUCKETS: usize = MAX_BUCKET as usize + 1;

/// A mergeable histogram of durations in ms: exact count, sum and buckets with ≤ 2 % error,
/// stored sparsely (a day of page loads is a few dozen buckets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub count: u64,
    pub sum: f64,
    pub buckets: BTreeMap<u16, u64>,
}

impl Histogram {
    pub fn record(&mut self, value_ms: f64) {
        let v = value_ms.max(0.0);
        self.count += 1;
        self.sum += v;
        *self.buckets.entry(bucket_of(v)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.sum += other.sum;
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Nearest-rank quantile `q` in 0..=1, as the representative value of its bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_of(self.count, self.buckets.iter().map(|(b, n)| (*b, *n)), q)
    }
}

/// [`Histogram::quantile`] over `(bucket, count)` pairs in bucket order (sparse or dense).
pub fn quantile_of(count: u64, buckets: impl Iterator<Item = (u16, u64)>, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    let mut last = None;
    for (b, n) in buckets.filter(|(_, n)| *n > 0) {
        seen += n;
        if seen >= rank {
            return Some(representative(b));
        }
        last = Some(b);
    }
    last.map(representative)
}

/// Like [`quantile_of`] from counts by bucket (a query's dense sums): the same answer, found
/// by summing whole blocks of 16 buckets (vectorised) up to the one that holds the rank, then
/// that block's buckets one by one.
pub fn quantile_of_counts(count: u64, buckets: &[u64], q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let (mut seen, mut start) = (0, 0);
    for block in buckets.chunks_exact(16) {
        let in_block: u64 = block.iter().sum();
        if seen + in_block >= rank {
            break;
        }
        (seen, start) = (seen + in_block, start + 16);
    }
    // `seen` only grows at a filled bucket, so it first reaches `rank` (≥ 1) at one.
    for (b, n) in buckets[start..].iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(representative((start + b) as u16));
        }
    }
    buckets.iter().rposition(|n| *n > 0).map(|b| representative(b as u16))
}

fn bucket_of(v: f64) -> u16 {
    if v < LINEAR_LIMIT {
        v as u16
    } else {
        let b = LINEAR_LIMIT + ((v / LINEAR_LIMIT).ln() / GROWTH.ln()).floor();
        (b as u16).min(MAX_BUCKET)
    }
}

fn lower_bound(b: u16) -> f64 {
    if (b as f64) < LINEAR_LIMIT {
        b as f64
    } else {
        LINEAR_LIMIT * GROWTH.powf(b as f64 - LINEAR_LIMIT)
    }
}

/// The value a quantile falling in bucket `b` answers: [`representative_of`] of `b`, from a
/// table computed once (the same f64s; a `powf` per quantile was a few % of a pages query).
fn representative(b: u16) -> f64 {
    static TABLE: std::sync::LazyLock<Vec<f64>> =
        std::sync::LazyLock::new(|| (0..=MAX_BUCKET).map(representative_of).collect());
    TABLE.get(usize::from(b)).copied().unwrap_or_else(|| representative_of(b))
}

fn representative_of(b: u16) -> f64 {
    if (b as f64) < LINEAR_LIMIT {
        b as f64
    } else {
        // Geometric middle of the bucket.
        (lower_bound(b) * lower_bound(b + 1)).sqrt()
    }
}

/// One site's totals for one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayRollup {
    pub pageviews: u64,
    pub sessions: u64,
    /// Exact distinct visitors of the day.
    pub visitors: u64,
    pub load: Histogram,
    /// The same visitors as a sketch, for distinct visitors over several days.
    #[serde(default)]
    pub visitor_sketch: sketch::VisitorSketch,
}

impl DayRollup {
    pub fn merge(&mut self, other: &DayRollup) {
        self.pageviews += other.pageviews;
        self.sessions += other.sessions;
        self.visitors += other.visitors;
        self.load.merge(&other.load);
        self.visitor_sketch.merge(&other.visitor_sketch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v as f64 * 10.0);
        }
        assert_eq!(h.count, 1000);
        assert!((h.mean().unwrap() - 5005.0).abs() < 1e-6);
        let p50 = h.quantile(0.5).unwrap();
        let p95 = h.quantile(0.95).unwrap();
        assert!((p50 / 5000.0 - 1.0).abs() < 0.02, "{p50}");
        assert!((p95 / 9500.0 - 1.0).abs() < 0.02, "{p95}");
    }

    #[test]
    fn small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::default();
        a.record(42.0);
        let mut b = Histogram::default();
        b.record(42.0);
        b.record(7.0);
        a.merge(&b);
        assert_eq!(a.count, 3);
        assert_eq!(a.quantile(0.5), Some(42.0));
        assert_eq!(a.quantile(0.0), Some(7.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn quantiles_of_dense_counts_equal_the_histograms() {
        let mut h = Histogram::default();
        let mut dense = vec![0u64; HISTOGRAM_BUCKETS];
        for i in 0..3000u64 {
            let v = (i * 7919 % 5000) as f64 * (1.0 + (i % 3) as f64);
            h.record(v);
            dense[usize::from(bucket_of(v))] += 1;
        }
        for q in [0.0, 0.01, 0.5, 0.95, 0.999, 1.0] {
            assert_eq!(quantile_of_counts(h.count, &dense, q), h.quantile(q), "{q}");
        }
        // A count above the buckets' total falls back to the last filled bucket, as before.
        let short = Histogram { count: h.count + 10, ..h.clone() };
        assert_eq!(quantile_of_counts(short.count, &dense, 1.0), short.quantile(1.0));
        assert_eq!(quantile_of_counts(0, &dense, 0.5), None);
    }
}
