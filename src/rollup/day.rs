//! The stored encoding of a site's day rollup and [`DaySums`], what the writer merges deltas
//! into and the stats query adds stored days into: counts as varints, the load histogram as a
//! [`codec`] array (no map per value), the visitor sketch's registers as they are.
//!
//! Values start with a format byte MessagePack never begins a map with, so days written by
//! older versions (MessagePack [`DayRollup`]s) are told apart and still read.

use super::codec::{self, Corrupt};
use super::sketch::VisitorSketch;
use super::{quantile_of, DayRollup, HISTOGRAM_BUCKETS};

const DAY_FORMAT: u8 = 0x01;

/// A day rollup (or the sum of several) with the load histogram as a dense array.
#[derive(Debug, Clone, Default)]
pub struct DaySums {
    pub pageviews: u64,
    pub sessions: u64,
    /// Exact distinct visitors of the day (of one day only: summed days count a visitor twice).
    pub visitors: u64,
    load_count: u64,
    load_sum: f64,
    /// Load-time counts by bucket, as long as the highest bucket seen (or longer, zeros).
    load_buckets: Vec<u64>,
    pub visitor_sketch: VisitorSketch,
}

impl DaySums {
    pub fn add(&mut self, r: &DayRollup) {
        self.pageviews += r.pageviews;
        self.sessions += r.sessions;
        self.visitors += r.visitors;
        self.load_count += r.load.count;
        self.load_sum += r.load.sum;
        if let Some((last, _)) = r.load.buckets.last_key_value() {
            if self.load_buckets.len() <= usize::from(*last) {
                self.load_buckets.resize(usize::from(*last) + 1, 0);
            }
        }
        for (b, n) in &r.load.buckets {
            self.load_buckets[usize::from(*b)] += n;
        }
        self.visitor_sketch.merge(&r.visitor_sketch);
    }

    /// Adds every figure of `other` but its visitor sketch (what a range's totals need).
    pub fn add_figures(&mut self, other: &DaySums) {
        self.pageviews += other.pageviews;
        self.sessions += other.sessions;
        self.visitors += other.visitors;
        self.load_count += other.load_count;
        self.load_sum += other.load_sum;
        if self.load_buckets.len() < other.load_buckets.len() {
            self.load_buckets.resize(other.load_buckets.len(), 0);
        }
        for (a, b) in self.load_buckets.iter_mut().zip(&other.load_buckets) {
            *a += b;
        }
    }

    /// Adds a stored day (this format, or the MessagePack older versions wrote).
    pub fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        if bytes.first() != Some(&DAY_FORMAT) {
            let legacy: DayRollup = rmp_serde::from_slice(bytes).map_err(|_| Corrupt("day rollup"))?;
            self.add(&legacy);
            return Ok(());
        }
        let mut at = 1;
        for field in [&mut self.pageviews, &mut self.sessions, &mut self.visitors, &mut self.load_count] {
            *field += codec::varint(bytes, &mut at)?;
        }
        self.load_sum += codec::f64_at(bytes, &mut at)?;
        let registers = codec::varint(bytes, &mut at)?;
        let end = usize::try_from(registers).ok().and_then(|n| at.checked_add(n)).filter(|end| *end <= bytes.len());
        let end = end.ok_or(Corrupt("day rollup: sketch beyond the value"))?;
        self.visitor_sketch.merge_registers(&bytes[at..end])?;
        codec::add_counts_growing(bytes, end, &mut self.load_buckets, HISTOGRAM_BUCKETS)
    }

    pub fn to_stored(&self) -> Vec<u8> {
        let registers = self.visitor_sketch.registers();
        let mut out = Vec::with_capacity(64 + registers.len() + self.load_buckets.len());
        out.push(DAY_FORMAT);
        for n in [self.pageviews, self.sessions, self.visitors, self.load_count] {
            codec::put_varint(&mut out, n);
        }
        codec::put_f64(&mut out, self.load_sum);
        codec::put_varint(&mut out, registers.len() as u64);
        out.extend_from_slice(registers);
        codec::put_counts(&mut out, self.load_buckets.iter().copied());
        out
    }

    pub fn load_mean(&self) -> Option<f64> {
        (self.load_count > 0).then(|| self.load_sum / self.load_count as f64)
    }

    pub fn load_quantile(&self, q: f64) -> Option<f64> {
        let buckets = self.load_buckets.iter().enumerate().map(|(b, n)| (b as u16, *n));
        quantile_of(self.load_count, buckets, q)
    }

    /// Empties the sums, keeping their allocations.
    pub fn clear(&mut self) {
        let (mut buckets, mut sketch) =
            (std::mem::take(&mut self.load_buckets), std::mem::take(&mut self.visitor_sketch));
        buckets.iter_mut().for_each(|n| *n = 0);
        sketch.clear();
        *self = DaySums { load_buckets: buckets, visitor_sketch: sketch, ..DaySums::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VisitorKey;

    fn day(seed: u64) -> DayRollup {
        let mut r = DayRollup { pageviews: 3 * seed, sessions: seed, ..Default::default() };
        for v in 0..seed {
            r.load.record((v * 37 % 3000) as f64);
            r.visitor_sketch.add(&VisitorKey([(v * 11 + seed) as u8; 16]));
            r.visitors += 1;
        }
        r
    }

    fn figures(s: &DaySums) -> (u64, u64, u64, Option<f64>, Option<f64>, Option<f64>, u64) {
        let quantiles = (s.load_quantile(0.5), s.load_quantile(0.95));
        (s.pageviews, s.sessions, s.visitors, s.load_mean(), quantiles.0, quantiles.1, s.visitor_sketch.estimate())
    }

    #[test]
    fn days_round_trip_and_sum_like_merge_in_either_format() {
        let (a, b, c) = (day(40), day(7), day(0));
        let mut merged = a.clone();
        merged.merge(&b);
        merged.merge(&c);
        let stored = |r: &DayRollup| {
            let mut s = DaySums::default();
            s.add(r);
            s.to_stored()
        };
        let mut sums = DaySums::default();
        sums.add_stored(&stored(&a)).unwrap();
        sums.add_stored(&rmp_serde::to_vec_named(&b).unwrap()).unwrap();
        sums.add_stored(&stored(&c)).unwrap();
        let mut expected = DaySums::default();
        expected.add(&merged);
        assert_eq!(figures(&sums), figures(&expected));
        assert_eq!(sums.to_stored(), expected.to_stored(), "(a + b) + c = a + (b + c), stored");
        assert_eq!(sums.load_quantile(0.5), merged.load.quantile(0.5));
        let mut reread = DaySums::default();
        reread.add_stored(&sums.to_stored()).unwrap();
        assert_eq!(reread.to_stored(), sums.to_stored());
        let mut totals = DaySums::default();
        totals.add_figures(&sums);
        totals.add_figures(&reread);
        assert_eq!(totals.pageviews, 2 * merged.pageviews);
        assert_eq!(totals.load_quantile(0.95), merged.load.quantile(0.95));
        sums.clear();
        assert_eq!(sums.to_stored(), DaySums::default().to_stored());
    }

    #[test]
    fn corrupt_days_are_an_error_not_a_panic() {
        let mut s = DaySums::default();
        s.add(&day(30));
        let good = s.to_stored();
        // Format, four one-byte counts, the load sum, the sketch's length and registers; past
        // them, a cut value is a shorter histogram (no error), before them an error.
        let histogram_at = 1 + 4 + 8 + 2 + 4096;
        for end in 1..good.len() {
            let result = DaySums::default().add_stored(&good[..end]);
            assert!(end >= histogram_at || result.is_err(), "truncated at {end}");
        }
        let bad_sketch = [DAY_FORMAT, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3];
        assert!(DaySums::default().add_stored(&bad_sketch).is_err(), "a sketch is 0 or 4096 registers");
        let far_bucket = [&good[..good.len() - 1], &[0xff, 0xff, 0x03, 2]].concat();
        assert!(DaySums::default().add_stored(&far_bucket).is_err(), "bucket past the histogram");
        assert!(DaySums::default().add_stored(b"junk").is_err());
    }
}
