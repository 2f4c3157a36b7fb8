//! Rollup deltas as rows: what a group commit adds to the SummingMergeTree rollup tables
//! (ClickHouse sums them when it merges parts; reads `GROUP BY` with `sum`/`sumMap`), and the
//! visitor marks and sketch registers it adds to the Replacing tables.
//!
//! Counting is idempotent per session version: each table's rows go in one `INSERT` together
//! with a *marker* row per version they count (`site` = the version's [`tag`], which no site
//! id can equal, so no query ever reads it). The insert lands whole or not at all, so a marker
//! in a table proves that version's rows are in it; counting a version again after a crash
//! inserts only into the tables without its marker. Visitor marks need no marker: inserting
//! them twice changes nothing.

use clickhouse::{Row, RowOwned, RowWrite};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::analytics::{attention_rows, form_rows, AttentionRow, FormRow};
use super::claims::SessionKey;
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
pub type Marks = std::collections::BTreeSet<(String, i32, VisitorKey)>;

/// A row of a SummingMergeTree rollup table.
pub trait RollupRow: RowOwned + RowWrite + Serialize + DeserializeOwned + Send + Sync {
    const TABLE: &'static str;
    /// The marker row of `tag`: `site` = `tag`, and a summed column not zero (SummingMergeTree
    /// drops rows whose sums are all zero when it merges).
    fn marker(tag: &str) -> Self;
}

/// The marker `site` of one session version: `#` cannot start a site id.
pub fn tag(key: &SessionKey, version: u32, token: u64) -> String {
    format!("#{}/{}/{version}/{token:x}", key.0, hex::encode(key.1))
}

/// The rows some deltas add to each rollup table.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RollupRows {
    pub days: Vec<DayRollupRow>,
    pub pages: Vec<PageRollupRow>,
    pub heat: Vec<HeatRollupRow>,
    pub elements: Vec<ElementRollupRow>,
    /// Absent from claims written before forms and attention were counted like the rest.
    #[serde(default)]
    pub forms: Vec<FormRow>,
    #[serde(default)]
    pub attention: Vec<AttentionRow>,
}

/// What a claim keeps until its version is counted: its rollup rows and visitor marks.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Pending {
    pub rows: RollupRows,
    pub marks: Vec<(String, i32, VisitorKey)>,
}

/// Rows that count for the session versions `tags`.
pub struct Part<'a> {
    pub tags: Vec<String>,
    pub rows: &'a RollupRows,
}

impl RollupRows {
    pub fn of(d: &Deltas) -> Self {
        Self {
            days: d.days.iter().map(|((site, day), r)| day_row(site, *day, r)).collect(),
            pages: d.pages.iter().map(|((site, day, path), r)| page_row(site, *day, path, r)).collect(),
            heat: d.heat.iter().map(|(k, cells)| heat_row(k, cells)).collect(),
            elements: d.elements.iter().flat_map(|((site, path, day), e)| element_rows(site, path, *day, e)).collect(),
            forms: form_rows(d),
            attention: attention_rows(d),
        }
    }
}

/// Inserts `parts`, one `INSERT` per table (the tables concurrently), each with the markers of
/// its parts' tags. `only_missing`: leave out, table by table, the parts already counted there.
pub async fn insert(db: &Db, parts: &[Part<'_>], only_missing: bool) -> Result<(), StoreError> {
    let (a, b, c, d, e, f) = tokio::join!(
        table(db, parts, |r| &r.days, only_missing),
        table(db, parts, |r| &r.pages, only_missing),
        table(db, parts, |r| &r.heat, only_missing),
        table(db, parts, |r| &r.elements, only_missing),
        table(db, parts, |r| &r.forms, only_missing),
        table(db, parts, |r| &r.attention, only_missing),
    );
    a.and(b).and(c).and(d).and(e).and(f)
}

#[derive(Row, Deserialize)]
struct Site {
    site: String,
}

async fn table<T: RollupRow + Clone>(
    db: &Db,
    parts: &[Part<'_>],
    pick: impl Fn(&RollupRows) -> &Vec<T>,
    only_missing: bool,
) -> Result<(), StoreError> {
    let mut counted = std::collections::HashSet::new();
    let tags: Vec<&String> = parts.iter().flat_map(|p| &p.tags).collect();
    if only_missing && !tags.is_empty() {
        let sql =
            format!("SELECT DISTINCT site FROM {} WHERE site IN ({})", T::TABLE, vec!["?"; tags.len()].join(", "));
        let q = tags.iter().fold(db.query(&sql), |q, t| q.bind(t.as_str()));
        counted.extend(Db::fetch::<Site>(q).await?.into_iter().map(|s| s.site));
    }
    let mut rows = Vec::new();
    // Parts without rows for this table need no marker: counting them again adds nothing.
    let todo = |p: &&Part| !pick(p.rows).is_empty() && !p.tags.iter().all(|t| counted.contains(t));
    for part in parts.iter().filter(todo) {
        rows.extend(pick(part.rows).iter().cloned());
        rows.extend(part.tags.iter().map(|t| T::marker(t)));
    }
    db.insert::<T>(T::TABLE, &rows).await
}

/// Inserts visitor marks and their sketch registers. Both tables keep one row per key, so
/// inserting the same marks again changes nothing.
pub async fn insert_marks<'a>(
    db: &Db,
    marks: impl Iterator<Item = &'a (String, i32, VisitorKey)> + Clone,
) -> Result<(), StoreError> {
    let visitors: Vec<VisitorRow> =
        marks.clone().map(|(site, day, v)| VisitorRow { site, day: *day, visitor: v.0 }).collect();
    let sketches: Vec<SketchRow> = marks
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

impl RollupRow for DayRollupRow {
    const TABLE: &'static str = "day_rollups";
    fn marker(tag: &str) -> Self {
        Self { site: tag.to_owned(), sessions: 1, ..Default::default() }
    }
}

impl RollupRow for PageRollupRow {
    const TABLE: &'static str = "page_rollups";
    fn marker(tag: &str) -> Self {
        Self { site: tag.to_owned(), pageviews: 1, ..Default::default() }
    }
}

impl RollupRow for HeatRollupRow {
    const TABLE: &'static str = "heat_rollups";
    fn marker(tag: &str) -> Self {
        Self { site: tag.to_owned(), cells: vec![0], counts: vec![1], ..Default::default() }
    }
}

impl RollupRow for FormRow {
    const TABLE: &'static str = "form_rollups";
    fn marker(tag: &str) -> Self {
        Self { site: tag.to_owned(), starters: 1, ..Default::default() }
    }
}

impl RollupRow for AttentionRow {
    const TABLE: &'static str = "attention_rollups";
    fn marker(tag: &str) -> Self {
        Self { site: tag.to_owned(), pageviews: 1, ..Default::default() }
    }
}

impl RollupRow for ElementRollupRow {
    const TABLE: &'static str = "element_rollups";
    fn marker(tag: &str) -> Self {
        Self { site: tag.to_owned(), n: 1, ..Default::default() }
    }
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
