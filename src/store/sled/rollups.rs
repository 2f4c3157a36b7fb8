//! Page, heat and element rollups on sled: a group commit merges each delta into its day value
//! *and* into the week and month values beside it (same merge code, [`keys::period_key`]), and
//! a store written before those existed gets them built once when it is opened ([`backfill`]).

use std::collections::BTreeMap;

use super::keys;
use super::rollup_cache::RollupCache;
use crate::rollup::codec::Corrupt;
use crate::rollup::heat::{self, ElementClicks, HeatCells, BAND_CELLS};
use crate::rollup::page::{PageRollup, PageSums};
use crate::rollup::period::Period;
use crate::rollup::track::Deltas;
use crate::store::StoreError;

/// The current rollup format (see [`keys::ROLLUP_FORMAT`]).
const FORMAT: u8 = 1;
/// Week and month values built in memory before the backfill writes them out.
const BACKFILL_CHUNK: usize = 1024;

impl From<Corrupt> for StoreError {
    fn from(e: Corrupt) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// A stored rollup as the writer sums it: start empty, add the stored value, add deltas, encode.
trait Stored: Default + Send + 'static {
    type Delta: Default;
    /// Sums two deltas (the rollup's own merge).
    fn merge_delta(into: &mut Self::Delta, delta: &Self::Delta);
    fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt>;
    fn add_delta(&mut self, delta: &Self::Delta);
    fn to_stored(&self) -> Vec<u8>;
    /// About the bytes the decoded value holds (what the applier's cache counts).
    fn weight(&self, encoded: &[u8]) -> usize {
        super::rollup_cache::weight_of_encoded(self, encoded)
    }
}

impl Stored for PageSums {
    type Delta = PageRollup;
    fn merge_delta(into: &mut PageRollup, delta: &PageRollup) {
        into.merge(delta);
    }
    fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        PageSums::add_stored(self, bytes)
    }
    fn add_delta(&mut self, delta: &PageRollup) {
        self.add(delta);
    }
    fn to_stored(&self) -> Vec<u8> {
        PageSums::to_stored(self)
    }
}

/// One band's counts.
struct Band(Vec<u64>);

impl Default for Band {
    fn default() -> Self {
        Band(vec![0; BAND_CELLS])
    }
}

impl Stored for Band {
    type Delta = HeatCells;
    fn merge_delta(into: &mut HeatCells, delta: &HeatCells) {
        into.merge(delta);
    }
    fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        heat::add_stored_band(bytes, &mut self.0)
    }
    fn add_delta(&mut self, delta: &HeatCells) {
        for (&cell, &n) in &delta.cells {
            if let Some(slot) = heat::band_slot(cell) {
                self.0[slot] += n;
            }
        }
    }
    fn to_stored(&self) -> Vec<u8> {
        heat::encode_band(&self.0)
    }
    fn weight(&self, _: &[u8]) -> usize {
        self.0.len() * std::mem::size_of::<u64>()
    }
}

impl Stored for ElementClicks {
    type Delta = ElementClicks;
    fn merge_delta(into: &mut ElementClicks, delta: &ElementClicks) {
        into.merge(delta);
    }
    fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        self.merge(&rmp_serde::from_slice(bytes).map_err(|_| Corrupt("element clicks"))?);
        Ok(())
    }
    fn add_delta(&mut self, delta: &ElementClicks) {
        self.merge(delta);
    }
    fn to_stored(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("element clicks serialise")
    }
}

/// Merges the group's page, heat and element deltas into their day, week and month values.
/// Only the applier writes rollups, so the read-modify-write (through its cache) cannot race.
pub fn merge_insights(
    tree: &sled::Tree,
    batch: &mut sled::Batch,
    cache: &mut RollupCache,
    deltas: &Deltas,
) -> Result<(), StoreError> {
    let mut to = Target { tree, batch, cache };
    let pages = deltas.pages.iter().map(|((site, day, path), d)| (keys::page_rollup(site, *day, path), d));
    merge_levels::<PageSums>(&mut to, pages)?;
    let heat = deltas.heat.iter().map(|(k, d)| (keys::heat(&k.site, &k.path, k.kind, k.width, k.day, k.band), d));
    merge_levels::<Band>(&mut to, heat)?;
    let elements = deltas.elements.iter().map(|((site, path, day), d)| (keys::elements(site, path, *day), d));
    merge_levels::<ElementClicks>(&mut to, elements)
}

/// Where merged values are read from and written to.
struct Target<'a> {
    tree: &'a sled::Tree,
    batch: &'a mut sled::Batch,
    cache: &'a mut RollupCache,
}

fn merge_levels<'d, S: Stored + 'd>(
    to: &mut Target<'_>,
    deltas: impl Iterator<Item = (Vec<u8>, &'d S::Delta)>,
) -> Result<(), StoreError> {
    // Several days of one group can fall in the same week: sum their deltas first, so each
    // value is read and written once (the batch is invisible until applied).
    let mut periods: BTreeMap<Vec<u8>, S::Delta> = BTreeMap::new();
    for (key, delta) in deltas {
        let day = keys::day_of_key(&key).ok_or_else(|| StoreError::Corrupt("rollup key".into()))?;
        for period in Period::all_of(day) {
            let pk = keys::period_key(&key, period).expect("a day-keyed rollup");
            S::merge_delta(periods.entry(pk).or_default(), delta);
        }
        write_sum::<S>(to, key, delta)?;
    }
    for (key, delta) in periods {
        write_sum::<S>(to, key, &delta)?;
    }
    Ok(())
}

fn write_sum<S: Stored>(to: &mut Target<'_>, key: Vec<u8>, delta: &S::Delta) -> Result<(), StoreError> {
    let tree = to.tree;
    let load = |key: &[u8]| -> Result<Option<S>, StoreError> {
        let Some(stored) = tree.get(key)? else { return Ok(None) };
        let mut sum = S::default();
        sum.add_stored(&stored)?;
        Ok(Some(sum))
    };
    let (key, value) = to.cache.update(key, load, |sum| sum.add_delta(delta), |sum| Ok(sum.to_stored()), S::weight)?;
    to.batch.insert(key, value);
    Ok(())
}

/// Builds the week and month values of a store written before they existed (once: the format
/// key records it). Rerun from scratch if interrupted: it clears what a previous run left.
pub fn backfill(tree: &sled::Tree) -> Result<(), StoreError> {
    if tree.get(keys::ROLLUP_FORMAT)?.is_some() {
        return Ok(());
    }
    for ns in [keys::NS_PAGE_PERIOD, keys::NS_HEAT_PERIOD, keys::NS_ELEMENTS_PERIOD] {
        let mut clear = sled::Batch::default();
        for item in tree.scan_prefix([ns]) {
            clear.remove(item?.0);
        }
        tree.apply_batch(clear)?;
    }
    let mut built = 0;
    built += backfill_ns::<PageSums>(tree, keys::NS_PAGE_ROLLUP)?;
    built += backfill_ns::<Band>(tree, keys::NS_HEAT)?;
    built += backfill_ns::<ElementClicks>(tree, keys::NS_ELEMENTS)?;
    tree.insert(keys::ROLLUP_FORMAT, &[FORMAT])?;
    tree.flush()?;
    if built > 0 {
        tracing::info!(values = built, "built week and month rollups for data written by an older version");
    }
    Ok(())
}

/// Sums every day value of namespace `ns` into its week and month values; returns how many
/// period values were written.
fn backfill_ns<S: Stored>(tree: &sled::Tree, ns: u8) -> Result<usize, StoreError> {
    let mut sums: BTreeMap<Vec<u8>, S> = BTreeMap::new();
    let mut written = 0;
    for item in tree.scan_prefix([ns]) {
        let (key, value) = item?;
        let day = keys::day_of_key(&key).ok_or_else(|| StoreError::Corrupt("rollup key".into()))?;
        for period in Period::all_of(day) {
            let pk = keys::period_key(&key, period).expect("a day-keyed rollup");
            sums.entry(pk).or_default().add_stored(&value)?;
        }
        if sums.len() >= BACKFILL_CHUNK {
            written += write_sums(tree, std::mem::take(&mut sums))?;
        }
    }
    written += write_sums(tree, sums)?;
    Ok(written)
}

/// Adds `sums` to what is stored under their keys (an earlier chunk's part of the same period).
fn write_sums<S: Stored>(tree: &sled::Tree, sums: BTreeMap<Vec<u8>, S>) -> Result<usize, StoreError> {
    let mut batch = sled::Batch::default();
    let n = sums.len();
    for (key, mut sum) in sums {
        if let Some(stored) = tree.get(&key)? {
            sum.add_stored(&stored)?;
        }
        batch.insert(key, sum.to_stored());
    }
    tree.apply_batch(batch)?;
    Ok(n)
}
