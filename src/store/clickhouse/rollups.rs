//! Rollup deltas as rows: what a group commit adds to the SummingMergeTree rollup tables
//! (ClickHouse sums them when it merges parts; reads `GROUP BY` with `sum`/`sumMap`), and the
//! visitor marks and sketch registers it adds to the Replacing tables.

use std::collections::BTreeSet;

use super::client::Db;
use super::rows::{DayRollupRow, ElementRollupRow, HeatRollupRow, PageRollupRow, SketchRow, VisitorRow};
use crate::model::VisitorKey;
use crate::rollup::heat::{ElementClicks, HeatCells};
use crate::rollup::page::PageRollup;
use crate::rollup::sketch::VisitorSketch;
use crate::rollup::track::{Deltas, HeatKey};
use crate::rollup::DayRollup;
use crate::store::StoreError;

/// Who came on which day: `(site, day, visitor)`.
pub type Marks = BTreeSet<(String, i32, VisitorKey)>;

/// The rows some deltas add to each rollup table.
#[derive(Debug, Default)]
pub struct RollupRows {
    pub days: Vec<DayRollupRow>,
    pub pages: Vec<PageRollupRow>,
    pub heat: Vec<HeatRollupRow>,
    pub elements: Vec<ElementRollupRow>,
}

impl RollupRows {
    pub fn of(d: &Deltas) -> Self {
        Self {
            days: d.days.iter().map(|((site, day), r)| day_row(site, *day, r)).collect(),
            pages: d.pages.iter().map(|((site, day, path), r)| page_row(site, *day, path, r)).collect(),
            heat: d.heat.iter().map(|(k, cells)| heat_row(k, cells)).collect(),
            elements: d.elements.iter().flat_map(|((site, path, day), e)| element_rows(site, path, *day, e)).collect(),
        }
    }

    /// Inserts the rows, one `INSERT` per table, the tables concurrently.
    pub async fn insert(&self, db: &Db) -> Result<(), StoreError> {
        let (a, b, c, d) = tokio::join!(
            db.insert::<DayRollupRow>("day_rollups", &self.days),
            db.insert::<PageRollupRow>("page_rollups", &self.pages),
            db.insert::<HeatRollupRow>("heat_rollups", &self.heat),
            db.insert::<ElementRollupRow>("element_rollups", &self.elements),
        );
        a.and(b).and(c).and(d)
    }
}

/// Inserts visitor marks and their sketch registers. Both tables keep one row per key, so
/// inserting the same marks again changes nothing.
pub async fn insert_marks(db: &Db, marks: &Marks) -> Result<(), StoreError> {
    let visitors: Vec<VisitorRow> =
        marks.iter().map(|(site, day, v)| VisitorRow { site, day: *day, visitor: v.0 }).collect();
    let sketches: Vec<SketchRow> = marks
        .iter()
        .map(|(site, day, v)| {
            let (idx, rank) = VisitorSketch::register(v);
            SketchRow { site, day: *day, idx, rank }
        })
        .collect();
    let (a, b) = tokio::join!(
        db.insert::<VisitorRow>("day_visitors", &visitors),
        db.insert::<SketchRow>("day_sketches", &sketches)
    );
    a.and(b)
}

fn day_row(site: &str, day: i32, r: &DayRollup) -> DayRollupRow {
    DayRollupRow {
        site: site.to_owned(),
        day,
        pageviews: r.pageviews,
        sessions: r.sessions,
        visitors_gone: 0,
        load_count: r.load.count,
        load_sum: r.load.sum,
        load_buckets: r.load.buckets.keys().copied().collect(),
        load_counts: r.load.buckets.values().copied().collect(),
    }
}

fn page_row(site: &str, day: i32, path: &str, r: &PageRollup) -> PageRollupRow {
    let reach: Vec<(u8, u64)> =
        r.reach.iter().enumerate().filter(|(_, n)| **n > 0).map(|(k, n)| (k as u8, *n)).collect();
    PageRollupRow {
        site: site.to_owned(),
        day,
        path: path.to_owned(),
        pageviews: r.pageviews,
        load_count: r.load.count,
        load_sum: r.load.sum,
        load_buckets: r.load.buckets.keys().copied().collect(),
        load_counts: r.load.buckets.values().copied().collect(),
        clicks: r.clicks,
        rage_clicks: r.rage_clicks,
        dead_clicks: r.dead_clicks,
        depth_sum_pct: r.depth_sum_pct,
        reach_steps: reach.iter().map(|(k, _)| *k).collect(),
        reach_counts: reach.iter().map(|(_, n)| *n).collect(),
        fold_sum_px: r.fold_sum_px,
        fold_sum_pct: r.fold_sum_pct,
        error_clicks: r.error_clicks,
        quick_backs: r.quick_backs,
    }
}

fn heat_row(k: &HeatKey, cells: &HeatCells) -> HeatRollupRow {
    HeatRollupRow {
        site: k.site.clone(),
        path: k.path.clone(),
        kind: k.kind.tag(),
        width: k.width.tag(),
        day: k.day,
        band: k.band,
        cells: cells.cells.keys().map(|(x, y)| (u32::from(*x) << 16) | u32::from(*y)).collect(),
        counts: cells.cells.values().copied().collect(),
    }
}

fn element_rows<'a>(
    site: &'a str,
    path: &'a str,
    day: i32,
    e: &'a ElementClicks,
) -> impl Iterator<Item = ElementRollupRow> + 'a {
    e.by_selector.iter().map(move |(sel, cell)| ElementRollupRow {
        site: site.to_owned(),
        path: path.to_owned(),
        day,
        sel: sel.clone(),
        n: cell.n,
        points: cell.points.keys().map(|(x, y)| (*x << 8) | *y).collect(),
        counts: cell.points.values().copied().collect(),
    })
}
