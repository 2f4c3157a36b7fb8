//! Insight queries on the sled store: each reads only rollup values, never raw events, and as
//! few of them as the range allows — whole months and weeks, then single days
//! ([`period::cover`]) — adding each stored value straight into the query's sums.

use std::collections::{BTreeMap, HashMap};

use super::keys;
use super::write::decode;
use super::SledStore;
use crate::query::insights::{HeatCell, Heatmap, Pages, ScrollReach};
use crate::query::{DayRange, HeatmapQuery, PageQuery, PagesQuery};
use crate::rollup::heat::{self, ElementClicks, HeatKind, WidthClass, BAND_CELLS};
use crate::rollup::page::PageSums;
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

impl SledStore {
    pub(super) fn read_pages(&self, site: &str, q: &PagesQuery) -> Result<Pages, StoreError> {
        self.read_pages_in(site, &spans(q.range), q.offset, q.limit)
    }

    pub(super) fn read_pages_in(
        &self,
        site: &str,
        spans: &[Span],
        offset: usize,
        limit: usize,
    ) -> Result<Pages, StoreError> {
        let prefix_len = keys::prefix(keys::NS_PAGE_ROLLUP, site).len();
        let mut by_path: HashMap<Box<[u8]>, PageSums> = HashMap::new();
        for span in spans {
            // Day keys hold the day (4 bytes) before the path; period keys a level byte too.
            let path_at = prefix_len + if matches!(span, Span::Days { .. }) { 4 } else { 5 };
            for item in values_of(&self.tree, *span, 0, |d| keys::page_rollup(site, d, "")) {
                let (k, v) = item?;
                let path = k.get(path_at..).ok_or_else(|| StoreError::Corrupt("page key".into()))?;
                match by_path.get_mut(path) {
                    Some(sums) => sums.add_stored(&v)?,
                    None => {
                        let mut sums = PageSums::default();
                        sums.add_stored(&v)?;
                        by_path.insert(path.into(), sums);
                    }
                }
            }
        }
        let all = by_path
            .into_iter()
            .map(|(path, sums)| {
                let path = String::from_utf8(path.into()).map_err(|_| StoreError::Corrupt("page key".into()))?;
                Ok((path, sums))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Pages::from_sums(all, offset, limit))
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
        // One dense array per band of rows, in band order.
        let mut bands: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
        for w in widths {
            for span in spans {
                for item in values_of(&self.tree, *span, 2, |d| keys::heat(site, path, kind, w, d, 0)) {
                    let (k, v) = item?;
                    let band = k
                        .get(k.len().saturating_sub(2)..)
                        .and_then(|b| b.try_into().ok())
                        .map(u16::from_be_bytes)
                        .ok_or_else(|| StoreError::Corrupt("heat key".into()))?;
                    heat::add_stored_band(&v, bands.entry(band).or_insert_with(|| vec![0; BAND_CELLS]))?;
                }
            }
        }
        let cells = bands
            .iter()
            .flat_map(|(band, counts)| {
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .filter_map(|(slot, &n)| heat::cell_of_slot(*band, slot).map(|(x, y)| HeatCell { x, y, n }))
            })
            .collect();
        let mut elements = Vec::new();
        if kind == HeatKind::Click {
            for span in spans {
                for item in values_of(&self.tree, *span, 0, |d| keys::elements(site, path, d)) {
                    elements.push(decode::<ElementClicks>(&item?.1)?);
                }
            }
        }
        Ok(Heatmap::from_cells(path, kind, width, cells, elements))
    }
}
