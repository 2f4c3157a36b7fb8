//! Insight queries on the sled store: each reads only rollup values for the requested days
//! (one per day and path, or per day and band of heatmap rows), never raw events.

use super::keys;
use super::write::decode;
use super::SledStore;
use crate::query::insights::{Heatmap, Pages, ScrollReach};
use crate::query::{DayRange, HeatmapQuery, PageQuery, PagesQuery};
use crate::rollup::heat::{ElementClicks, HeatCells, HeatKind, WidthClass};
use crate::rollup::page::PageRollup;
use crate::store::StoreError;

impl SledStore {
    fn page_rollups(&self, site: &str, range: DayRange) -> Result<Vec<(String, PageRollup)>, StoreError> {
        let day_prefix = keys::prefix(keys::NS_PAGE_ROLLUP, site).len() + 4;
        let start = keys::page_rollup(site, range.from, "");
        let end = keys::page_rollup(site, range.to + 1, "");
        let mut out = Vec::new();
        for item in self.tree.range(start..end) {
            let (k, v) = item?;
            let path =
                String::from_utf8(k[day_prefix..].to_vec()).map_err(|_| StoreError::Corrupt("page key".into()))?;
            out.push((path, decode::<PageRollup>(&v)?));
        }
        Ok(out)
    }

    pub(super) fn read_pages(&self, site: &str, q: &PagesQuery) -> Result<Pages, StoreError> {
        Ok(Pages::from_rollups(self.page_rollups(site, q.range)?, q.offset, q.limit))
    }

    pub(super) fn read_scroll(&self, site: &str, q: &PageQuery) -> Result<ScrollReach, StoreError> {
        let (path, range) = (q.path.as_str(), q.range);
        let mut rollups = Vec::new();
        for day in range.days() {
            if let Some(v) = self.tree.get(keys::page_rollup(site, day, path))? {
                rollups.push(decode::<PageRollup>(&v)?);
            }
        }
        Ok(ScrollReach::from_rollups(path, rollups))
    }

    pub(super) fn read_heatmap(&self, site: &str, q: &HeatmapQuery) -> Result<Heatmap, StoreError> {
        let (path, kind, width, range) = (q.path.as_str(), q.kind, q.width, q.range);
        let widths: Vec<WidthClass> = width.map_or(WidthClass::ALL.to_vec(), |w| vec![w]);
        let mut cells = Vec::new();
        for w in widths {
            let start = keys::heat(site, path, kind, w, range.from, 0);
            let end = keys::heat(site, path, kind, w, range.to + 1, 0);
            for item in self.tree.range(start..end) {
                cells.push(decode::<HeatCells>(&item?.1)?);
            }
        }
        let mut elements = Vec::new();
        if kind == HeatKind::Click {
            let start = keys::elements(site, path, range.from);
            let end = keys::elements(site, path, range.to + 1);
            for item in self.tree.range(start..end) {
                elements.push(decode::<ElementClicks>(&item?.1)?);
            }
        }
        Ok(Heatmap::from_rollups(path, kind, width, cells, elements))
    }
}
