//! Insight queries on the sled store: each reads only rollup values, never raw events, and as
//! few of them as the range allows — whole months and weeks, then single days
//! ([`period::cover`]), and for pages one all-pages value per site and period rather than one
//! per path — adding each stored value straight into the query's sums.

use std::collections::BTreeMap;

use super::keys;
use super::SledStore;
use crate::query::insights::{self, Heatmap, Pages, ScrollReach};
use crate::query::{DayRange, HeatmapQuery, PageQuery, PagesQuery, Stats, StatsBuilder};
use crate::rollup::codec::DenseSums;
use crate::rollup::day::DaySums;
use crate::rollup::heat::{self, ElementSums, HeatKind, WidthClass, BAND_CELLS};
use crate::rollup::page::{AllPagesSums, PageSums};
use crate::rollup::period::{self, Span};
use crate::store::StoreError;

/// The fewest stored values that sum to `range`.
pub(super) fn spans(range: DayRange) -> Vec<Span> {
    period::cover(range.from, range.to)
}

/// The stored values of `span` in a day-keyed key family: `day_key(d)` is the first key of day
/// `d` (so days `from..=to` are one key range), ending in `trailer` bytes after the day that a
/// period's values differ in (a heat key's band).
fn values_of<'t>(
    tree: &'t sled::Tree,
    span: Span,
    trailer: usize,
    day_key: impl Fn(i32) -> Vec<u8>,
) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 't {
    match span {
        Span::Days { from, to } => tree.range(day_key(from)..day_key(to + 1)),
        Span::Whole(p) => {
            let mut prefix = keys::period_key(&day_key(p.start), p).expect("a day-keyed rollup");
            prefix.truncate(prefix.len() - trailer);
            tree.range(prefix.clone()..prefix_successor(prefix))
        }
    }
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_successor(mut prefix: Vec<u8>) -> Vec<u8> {
    while let Some(last) = prefix.pop() {
        if last < 0xff {
            prefix.push(last + 1);
            return prefix;
        }
    }
    vec![0xff; 64]
}

/// A pages query's sums as its answer (paths must be UTF-8).
fn into_pages(sums: AllPagesSums, offset: usize, limit: usize) -> Result<Pages, StoreError> {
    let (paths, sums) = sums.finish();
    let paths = paths
        .into_iter()
        .map(|path| String::from_utf8(path.into()).map_err(|_| StoreError::Corrupt("page path".into())))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Pages::from_paths_and_sums(paths, &sums, offset, limit))
}

impl SledStore {
    /// The stats answer: one stored day value per day of the range (its per-day series needs
    /// them all), each added straight into the answer as it is read.
    pub(super) fn read_stats(&self, site: &str, range: DayRange) -> Result<Stats, StoreError> {
        let prefix_len = keys::prefix(keys::NS_DAY_ROLLUP, site).len();
        let mut stats = StatsBuilder::new(site, range);
        let mut sums = DaySums::default();
        for item in self.tree.range(keys::day_rollup(site, range.from)..=keys::day_rollup(site, range.to)) {
            let (k, v) = item?;
            let day = k.get(prefix_len..).and_then(keys::day_from_bytes);
            let day = day.ok_or_else(|| StoreError::Corrupt("day rollup key".into()))?;
            sums.clear();
            sums.add_stored(&v)?;
            stats.add_day(day, &sums);
        }
        Ok(stats.finish())
    }

    pub(super) fn read_pages(&self, site: &str, q: &PagesQuery) -> Result<Pages, StoreError> {
        self.read_pages_in(site, &spans(q.range), q.offset, q.limit)
    }

    /// The pages answer over `spans`, from the sites' all-pages values (one per day or
    /// period); a day or period that had too many paths for one is read path by path.
    pub(super) fn read_pages_in(
        &self,
        site: &str,
        spans: &[Span],
        offset: usize,
        limit: usize,
    ) -> Result<Pages, StoreError> {
        let mut sums = AllPagesSums::default();
        let prefix_len = keys::prefix(keys::NS_SITE_PAGES, site).len();
        for span in spans {
            for item in values_of(&self.tree, *span, 0, |d| keys::site_pages(site, d)) {
                let (k, v) = item?;
                if !sums.add_stored(&v)? {
                    let one = match *span {
                        Span::Days { .. } => {
                            let day = k.get(prefix_len..).and_then(keys::day_from_bytes);
                            let day = day.ok_or_else(|| StoreError::Corrupt("all-pages key".into()))?;
                            Span::Days { from: day, to: day }
                        }
                        whole => whole,
                    };
                    self.add_pages_by_path(site, one, &mut sums)?;
                }
            }
        }
        into_pages(sums, offset, limit)
    }

    /// Like [`Self::read_pages_in`] from the per-path values only.
    #[cfg(test)]
    pub(super) fn read_pages_by_path_in(
        &self,
        site: &str,
        spans: &[Span],
        offset: usize,
        limit: usize,
    ) -> Result<Pages, StoreError> {
        let mut sums = AllPagesSums::default();
        for span in spans {
            self.add_pages_by_path(site, *span, &mut sums)?;
        }
        into_pages(sums, offset, limit)
    }

    /// Adds the per-path page values of `span` (one per path and day or period).
    fn add_pages_by_path(&self, site: &str, span: Span, sums: &mut AllPagesSums) -> Result<(), StoreError> {
        let prefix_len = keys::prefix(keys::NS_PAGE_ROLLUP, site).len();
        // Day keys hold the day (4 bytes) before the path; period keys a level byte too.
        let path_at = prefix_len + if matches!(span, Span::Days { .. }) { 4 } else { 5 };
        for item in values_of(&self.tree, span, 0, |d| keys::page_rollup(site, d, "")) {
            let (k, v) = item?;
            let path = k.get(path_at..).ok_or_else(|| StoreError::Corrupt("page key".into()))?;
            sums.add_path_value(path, &v)?;
        }
        Ok(())
    }

    pub(super) fn read_scroll(&self, site: &str, q: &PageQuery) -> Result<ScrollReach, StoreError> {
        self.read_scroll_in(site, &q.path, &spans(q.range))
    }

    pub(super) fn read_scroll_in(&self, site: &str, path: &str, spans: &[Span]) -> Result<ScrollReach, StoreError> {
        let mut sums = PageSums::default();
        for span in spans {
            let keys: Vec<Vec<u8>> = match *span {
                Span::Days { from, to } => (from..=to).map(|d| keys::page_rollup(site, d, path)).collect(),
                Span::Whole(p) => vec![keys::period_key(&keys::page_rollup(site, p.start, path), p).expect("page key")],
            };
            for key in keys {
                if let Some(v) = self.tree.get(key)? {
                    sums.add_stored(&v)?;
                }
            }
        }
        Ok(ScrollReach::from_sums(path, &sums))
    }

    pub(super) fn read_heatmap(&self, site: &str, q: &HeatmapQuery) -> Result<Heatmap, StoreError> {
        self.read_heatmap_in(site, &q.path, q.kind, q.width, &spans(q.range))
    }

    pub(super) fn read_heatmap_in(
        &self,
        site: &str,
        path: &str,
        kind: HeatKind,
        width: Option<WidthClass>,
        spans: &[Span],
    ) -> Result<Heatmap, StoreError> {
        let widths: Vec<WidthClass> = width.map_or(WidthClass::ALL.to_vec(), |w| vec![w]);
        // One array of sums per band of rows, in band order (low bytes in 16-bit lanes).
        let mut bands: BTreeMap<u16, DenseSums> = BTreeMap::new();
        for w in widths {
            for span in spans {
                for item in values_of(&self.tree, *span, 2, |d| keys::heat(site, path, kind, w, d, 0)) {
                    let (k, v) = item?;
                    let band = k
                        .get(k.len().saturating_sub(2)..)
                        .and_then(|b| b.try_into().ok())
                        .map(u16::from_be_bytes)
                        .ok_or_else(|| StoreError::Corrupt("heat key".into()))?;
                    heat::add_stored_band_to(&v, bands.entry(band).or_insert_with(|| DenseSums::new(BAND_CELLS)))?;
                }
            }
        }
        let bands: Vec<(u16, &[u64])> = bands.iter_mut().map(|(band, sums)| (*band, sums.sums())).collect();
        let cells = insights::hottest_first_of_bands(bands.iter().copied());
        let mut elements = ElementSums::default();
        if kind == HeatKind::Click {
            for span in spans {
                for item in values_of(&self.tree, *span, 0, |d| keys::elements(site, path, d)) {
                    elements.add_stored(&item?.1)?;
                }
            }
        }
        Ok(Heatmap::from_hottest_first(path, kind, width, cells, elements))
    }
}
