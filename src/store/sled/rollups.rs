//! Page, heat and element rollups on sled: a group commit merges each delta into its day value
//! *and* into the week and month values beside it (same merge code, [`keys::period_key`]), and
//! each site's page deltas into one all-pages value per day, week and month; a store written
//! before those existed gets them built once when it is opened ([`backfill`]).

use std::collections::BTreeMap;

use super::keys;
use super::rollup_cache::RollupCache;
use crate::rollup::codec::Corrupt;
use crate::rollup::day::DaySums;
use crate::rollup::heat::{self, ElementClicks, HeatCells, BAND_CELLS};
use crate::rollup::page::{is_site_pages_rows, PageRollup, PageSums, SitePages, SitePagesDelta};
use crate::rollup::period::Period;
use crate::rollup::track::Deltas;
use crate::rollup::DayRollup;
use crate::store::StoreError;

/// The current rollup format (see [`keys::ROLLUP_FORMAT`]).
const FORMAT: u8 = 3;
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
        self.merge(&ElementClicks::from_stored(bytes)?);
        Ok(())
    }
    fn add_delta(&mut self, delta: &ElementClicks) {
        self.merge(delta);
    }
    fn to_stored(&self) -> Vec<u8> {
        ElementClicks::to_stored(self)
    }
}

impl Stored for SitePages {
    type Delta = SitePagesDelta;
    fn merge_delta(into: &mut SitePagesDelta, delta: &SitePagesDelta) {
        into.merge(delta);
    }
    fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        SitePages::add_stored(self, bytes)
    }
    fn add_delta(&mut self, delta: &SitePagesDelta) {
        SitePages::add_delta(self, delta);
    }
    fn to_stored(&self) -> Vec<u8> {
        SitePages::to_stored(self)
    }
    fn weight(&self, _: &[u8]) -> usize {
        self.heap_bytes()
    }
}

impl Stored for DaySums {
    type Delta = DayRollup;
    fn merge_delta(into: &mut DayRollup, delta: &DayRollup) {
        into.merge(delta);
    }
    fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        DaySums::add_stored(self, bytes)
    }
    fn add_delta(&mut self, delta: &DayRollup) {
        self.add(delta);
    }
    fn to_stored(&self) -> Vec<u8> {
        DaySums::to_stored(self)
    }
}

/// The group's page deltas by site and day (for the all-pages values).
fn site_page_deltas(deltas: &Deltas) -> BTreeMap<(&str, i32), SitePagesDelta> {
    let mut by_day: BTreeMap<(&str, i32), SitePagesDelta> = BTreeMap::new();
    for ((site, day, path), d) in &deltas.pages {
        by_day.entry((site.as_str(), *day)).or_default().0.insert(path.clone(), d.clone());
    }
    by_day
}

/// Merges the group's site-day deltas into their day values, and its page, heat and element
/// deltas into their day, week and month values.
/// Only the applier writes rollups, so the read-modify-write (through its cache) cannot race.
pub fn merge_insights(
    tree: &sled::Tree,
    batch: &mut sled::Batch,
    cache: &mut RollupCache,
    deltas: &Deltas,
) -> Result<(), StoreError> {
    let mut to = Target { tree, batch, cache };
    // Site days: one value per day (no weeks or months: stats answer a series of days).
    for ((site, day), delta) in &deltas.days {
        write_sum::<DaySums>(&mut to, keys::day_rollup(site, *day), delta)?;
    }
    let pages = deltas.pages.iter().map(|((site, day, path), d)| (keys::page_rollup(site, *day, path), d));
    merge_levels::<PageSums>(&mut to, pages)?;
    let heat = deltas.heat.iter().map(|(k, d)| (keys::heat(&k.site, &k.path, k.kind, k.width, k.day, k.band), d));
    merge_levels::<Band>(&mut to, heat)?;
    let elements = deltas.elements.iter().map(|((site, path, day), d)| (keys::elements(site, path, *day), d));
    merge_levels::<ElementClicks>(&mut to, elements)?;
    let site_pages = site_page_deltas(deltas);
    merge_levels::<SitePages>(&mut to, site_pages.iter().map(|((site, day), d)| (keys::site_pages(site, *day), d)))
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

/// Builds what a store written by an older version lacks (once: the format key records it):
/// week and month values (format 1), then the all-pages values (format 2), or rewrites a
/// format-2 store's all-pages values from the row layout into the column layout (format 3).
/// Rerun from scratch if interrupted: each step clears what a previous run left, or (the
/// rewrite) skips values already in the column layout.
pub fn backfill(tree: &sled::Tree) -> Result<(), StoreError> {
    let format = tree.get(keys::ROLLUP_FORMAT)?.and_then(|v| v.first().copied()).unwrap_or(0);
    if format >= FORMAT {
        return Ok(());
    }
    let mut built = 0;
    if format < 1 {
        clear(tree, &[keys::NS_PAGE_PERIOD, keys::NS_HEAT_PERIOD, keys::NS_ELEMENTS_PERIOD])?;
        built += backfill_ns::<PageSums>(tree, keys::NS_PAGE_ROLLUP)?;
        built += backfill_ns::<Band>(tree, keys::NS_HEAT)?;
        built += backfill_ns::<ElementClicks>(tree, keys::NS_ELEMENTS)?;
    }
    if format < 2 {
        clear(tree, &[keys::NS_SITE_PAGES, keys::NS_SITE_PAGES_PERIOD])?;
        built += backfill_site_pages(tree)?;
    } else {
        built += site_pages_to_columns(tree)?;
    }
    tree.insert(keys::ROLLUP_FORMAT, &[FORMAT])?;
    tree.flush()?;
    if built > 0 {
        tracing::info!(values = built, from_format = format, "built rollups for data written by an older version");
    }
    Ok(())
}

fn clear(tree: &sled::Tree, namespaces: &[u8]) -> Result<(), StoreError> {
    for ns in namespaces {
        let mut clear = sled::Batch::default();
        for item in tree.scan_prefix([*ns]) {
            clear.remove(item?.0);
        }
        tree.apply_batch(clear)?;
    }
    Ok(())
}

/// Rewrites every all-pages value still in the row layout in the column layout (the same
/// figures); returns how many were rewritten.
fn site_pages_to_columns(tree: &sled::Tree) -> Result<usize, StoreError> {
    let mut written = 0;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    for item in tree.scan_prefix([keys::NS_SITE_PAGES]).chain(tree.scan_prefix([keys::NS_SITE_PAGES_PERIOD])) {
        let (key, value) = item?;
        if !is_site_pages_rows(&value) {
            continue;
        }
        let mut all = SitePages::default();
        all.add_stored(&value)?;
        batch.insert(key, all.to_stored());
        in_batch += 1;
        if in_batch == BACKFILL_CHUNK {
            tree.apply_batch(std::mem::take(&mut batch))?;
            (written, in_batch) = (written + in_batch, 0);
        }
    }
    tree.apply_batch(batch)?;
    Ok(written + in_batch)
}

/// Sums every per-path day value into its site's all-pages values of the day, week and month;
/// returns how many were written.
fn backfill_site_pages(tree: &sled::Tree) -> Result<usize, StoreError> {
    let mut sums: BTreeMap<Vec<u8>, SitePages> = BTreeMap::new();
    let mut written = 0;
    for item in tree.scan_prefix([keys::NS_PAGE_ROLLUP]) {
        let (key, value) = item?;
        let corrupt = || StoreError::Corrupt("page rollup key".into());
        let (day_key, path) = keys::site_pages_of(&key).ok_or_else(corrupt)?;
        let path = std::str::from_utf8(path).map_err(|_| corrupt())?;
        let day = keys::day_of_key(&day_key).ok_or_else(corrupt)?;
        for period in Period::all_of(day) {
            let pk = keys::period_key(&day_key, period).expect("a day-keyed rollup");
            sums.entry(pk).or_default().add_stored_path(path, &value)?;
        }
        sums.entry(day_key).or_default().add_stored_path(path, &value)?;
        if sums.len() >= BACKFILL_CHUNK / 8 {
            written += write_sums(tree, std::mem::take(&mut sums))?;
        }
    }
    written += write_sums(tree, sums)?;
    Ok(written)
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
