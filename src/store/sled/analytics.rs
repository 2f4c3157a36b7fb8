//! Form, attention and funnel queries on the sled store: forms and attention read one rollup
//! value per requested day; funnels walk the funnel index (`q`: one small value per session,
//! its views as `(t, path)`), newest session first, never the raw events.

use super::keys;
use super::write::decode;
use super::SledStore;
use crate::query::forms::{Attention, Forms};
use crate::query::funnel::{decode_views, Funnel, FunnelCounter, FunnelQuery};
use crate::query::{DayRange, PageQuery};
use crate::rollup::attention::AttentionRollup;
use crate::rollup::form::PageForms;
use crate::store::StoreError;

impl SledStore {
    fn page_day_values<T: for<'de> serde::Deserialize<'de>>(
        &self,
        ns: u8,
        site: &str,
        path: &str,
        range: DayRange,
    ) -> Result<Vec<T>, StoreError> {
        let start = keys::page_day(ns, site, path, range.from);
        let end = keys::page_day(ns, site, path, range.to + 1);
        self.tree.range(start..end).map(|item| decode::<T>(&item?.1)).collect()
    }

    pub(super) fn read_forms(&self, site: &str, q: &PageQuery) -> Result<Forms, StoreError> {
        let rollups = self.page_day_values::<PageForms>(keys::NS_FORMS, site, &q.path, q.range)?;
        Ok(Forms::from_rollups(&q.path, rollups))
    }

    pub(super) fn read_attention(&self, site: &str, q: &PageQuery) -> Result<Attention, StoreError> {
        let rollups = self.page_day_values::<AttentionRollup>(keys::NS_ATTENTION, site, &q.path, q.range)?;
        Ok(Attention::from_rollups(&q.path, rollups))
    }

    pub(super) fn read_funnel(&self, site: &str, q: &FunnelQuery) -> Result<Funnel, StoreError> {
        let prefix_len = keys::prefix(keys::NS_SESSION_PATHS, site).len();
        let start = keys::session_paths(site, q.range.start_ms(), &[0; 16]);
        let end = keys::session_paths(site, q.range.end_ms(), &[0; 16]);
        let mut counter = FunnelCounter::new(q.steps.clone(), q.within_ms);
        for item in self.tree.range(start..end).rev() {
            let (k, v) = item?;
            let (_, sid) =
                keys::parse_session(&k, prefix_len).ok_or_else(|| StoreError::Corrupt("funnel index key".into()))?;
            counter.add(&sid, decode_views(&v));
        }
        Ok(counter.finish())
    }
}
