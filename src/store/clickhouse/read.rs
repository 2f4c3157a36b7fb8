//! Operator queries on ClickHouse: SQL over the rollup tables (never over raw events), fed
//! into the same builders as the sled store so both answer alike.

use std::collections::{BTreeMap, HashMap};

use clickhouse::Row;
use serde::Deserialize;

use super::claims::{read_states, Resolved, SessionKey, CLAIM, CONFIRM};
use super::client::{id_list, id_sql, Db};
use super::rows::SiteRow;
use super::{corrupt, Record};
use crate::model::{Event, Id128, SessionSummary, SiteSettings, VisitorKey};
use crate::query::insights::{Heatmap, Pages, ScrollReach};
use crate::query::{
    DayRange, HeatmapQuery, PageQuery, PagesQuery, SessionCursor, SessionPage, SessionQuery, Stats,
    MAX_SESSIONS_SCANNED,
};
use crate::rollup::heat::{ElementCell, ElementClicks, HeatCells, HeatKind, WidthClass};
use crate::rollup::page::{PageRollup, REACH_STEPS};
use crate::rollup::sketch::VisitorSketch;
use crate::rollup::{DayRollup, Histogram};
use crate::store::StoreError;

/// Sessions fetched per query while listing.
const LIST_CHUNK: usize = 1000;

#[derive(Row, Deserialize)]
struct Settings {
    settings: String,
}

pub async fn load_sites(db: &Db) -> Result<Vec<SiteSettings>, StoreError> {
    let q = db.query("SELECT argMax(settings, updated) AS settings FROM sites GROUP BY id ORDER BY id");
    let rows: Vec<Settings> = Db::fetch(q).await?;
    rows.iter().map(|r| serde_json::from_str(&r.settings).map_err(corrupt)).collect()
}

pub async fn put_site(db: &Db, site: &SiteSettings) -> Result<(), StoreError> {
    let settings = serde_json::to_vec(site).map_err(corrupt)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    db.insert::<SiteRow>("sites", &[SiteRow { id: &site.id, settings: &settings, updated: now }]).await
}

fn histogram(count: u64, sum: f64, buckets: (Vec<u16>, Vec<u64>)) -> Histogram {
    Histogram { count, sum, buckets: buckets.0.into_iter().zip(buckets.1).collect() }
}

#[derive(Row, Deserialize)]
struct DayRow {
    day: i32,
    pageviews: u64,
    sessions: u64,
    gone: u64,
    load_count: u64,
    load_sum: f64,
    load: (Vec<u16>, Vec<u64>),
}

#[derive(Row, Deserialize)]
struct DayCount {
    day: i32,
    n: u64,
}

#[derive(Row, Deserialize)]
struct Register {
    day: i32,
    idx: u16,
    rank: u8,
}

fn day_filter(range: DayRange) -> String {
    format!("day >= {} AND day <= {}", range.from, range.to)
}

pub async fn stats(db: &Db, site: &str, range: DayRange) -> Result<Stats, StoreError> {
    let days = day_filter(range);
    let rows: Vec<DayRow> = Db::fetch(
        db.query(&format!(
            "SELECT day, sum(pageviews) AS pageviews, sum(sessions) AS sessions, sum(visitors_gone) AS gone, \
             sum(load_count) AS load_count, sum(load_sum) AS load_sum, sumMap(loadMap.bucket, loadMap.n) AS load \
             FROM day_rollups WHERE site = ? AND {days} GROUP BY day ORDER BY day"
        ))
        .bind(site),
    )
    .await?;
    let marks: Vec<DayCount> = Db::fetch(
        db.query(&format!(
            "SELECT day, uniqExact(visitor) AS n FROM day_visitors WHERE site = ? AND {days} GROUP BY day ORDER BY day"
        ))
        .bind(site),
    )
    .await?;
    let mut by_day: BTreeMap<i32, DayRollup> = BTreeMap::new();
    for r in rows {
        let d = by_day.entry(r.day).or_default();
        d.pageviews = r.pageviews;
        d.sessions = r.sessions;
        d.visitors += r.gone;
        d.load = histogram(r.load_count, r.load_sum, r.load);
    }
    for m in &marks {
        by_day.entry(m.day).or_default().visitors += m.n;
    }
    let registers: Vec<Register> = Db::fetch(
        db.query(&format!(
            "SELECT day, idx, max(rank) AS rank FROM day_sketches WHERE site = ? AND {days} GROUP BY day, idx"
        ))
        .bind(site),
    )
    .await?;
    let mut sketches: BTreeMap<i32, Vec<(u16, u8)>> = BTreeMap::new();
    for r in registers {
        sketches.entry(r.day).or_default().push((r.idx, r.rank));
    }
    for (day, regs) in sketches {
        by_day.entry(day).or_default().visitor_sketch = VisitorSketch::from_registers(regs);
    }
    let rollups: Vec<(i32, DayRollup)> = by_day.into_iter().collect();
    let unique = Stats::distinct_visitors(&rollups);
    Ok(Stats::from_rollups(site, range, &rollups, unique))
}

#[derive(Row, Deserialize)]
struct PageRow {
    path: String,
    pageviews: u64,
    load_count: u64,
    load_sum: f64,
    load: (Vec<u16>, Vec<u64>),
    clicks: u64,
    rage: u64,
    dead: u64,
    depth: u64,
    reach: (Vec<u8>, Vec<u64>),
    fold_px: f64,
    fold_pct: f64,
    errors: u64,
    quick_backs: u64,
}

impl PageRow {
    fn rollup(self) -> (String, PageRollup) {
        let mut reach = vec![0; REACH_STEPS];
        for (k, n) in self.reach.0.into_iter().zip(self.reach.1) {
            if let Some(slot) = reach.get_mut(k as usize) {
                *slot = n;
            }
        }
        let r = PageRollup {
            pageviews: self.pageviews,
            load: histogram(self.load_count, self.load_sum, self.load),
            clicks: self.clicks,
            rage_clicks: self.rage,
            dead_clicks: self.dead,
            depth_sum_pct: self.depth,
            reach,
            fold_sum_px: self.fold_px,
            fold_sum_pct: self.fold_pct,
            error_clicks: self.errors,
            quick_backs: self.quick_backs,
        };
        (self.path, r)
    }
}

const PAGE_COLUMNS: &str = "sum(pageviews) AS pageviews, sum(load_count) AS load_count, sum(load_sum) AS load_sum, \
     sumMap(loadMap.bucket, loadMap.n) AS load, sum(clicks) AS clicks, sum(rage_clicks) AS rage, \
     sum(dead_clicks) AS dead, sum(depth_sum_pct) AS depth, sumMap(reachMap.step, reachMap.n) AS reach, \
     sum(fold_sum_px) AS fold_px, sum(fold_sum_pct) AS fold_pct, sum(error_clicks) AS errors, \
     sum(quick_backs) AS quick_backs";

pub async fn pages(db: &Db, site: &str, q: &PagesQuery) -> Result<Pages, StoreError> {
    let (range, offset, limit) = (q.range, q.offset, q.limit);
    let sql =
        format!("SELECT path, {PAGE_COLUMNS} FROM page_rollups WHERE site = ? AND {} GROUP BY path", day_filter(range));
    let rows: Vec<PageRow> = Db::fetch(db.query(&sql).bind(site)).await?;
    Ok(Pages::from_rollups(rows.into_iter().map(PageRow::rollup), offset, limit))
}

pub async fn scroll(db: &Db, site: &str, q: &PageQuery) -> Result<ScrollReach, StoreError> {
    let (path, range) = (q.path.as_str(), q.range);
    let sql = format!(
        "SELECT path, {PAGE_COLUMNS} FROM page_rollups WHERE site = ? AND path = ? AND {} GROUP BY path",
        day_filter(range)
    );
    let rows: Vec<PageRow> = Db::fetch(db.query(&sql).bind(site).bind(path)).await?;
    Ok(ScrollReach::from_rollups(path, rows.into_iter().map(|r| r.rollup().1)))
}

#[derive(Row, Deserialize)]
struct CellsRow {
    cells: (Vec<u32>, Vec<u64>),
}

#[derive(Row, Deserialize)]
struct ElementRow {
    day: i32,
    sel: String,
    n: u64,
    points: (Vec<u16>, Vec<u64>),
}

pub async fn heatmap(db: &Db, site: &str, q: &HeatmapQuery) -> Result<Heatmap, StoreError> {
    let (path, kind, width, range) = (q.path.as_str(), q.kind, q.width, q.range);
    let widths: Vec<String> =
        width.map_or(WidthClass::ALL.to_vec(), |w| vec![w]).iter().map(|w| w.tag().to_string()).collect();
    let days = day_filter(range);
    let sql = format!(
        "SELECT sumMap(cellsMap.cell, cellsMap.n) AS cells FROM heat_rollups WHERE site = ? AND path = ? \
         AND kind = {} AND width IN ({}) AND {days}",
        kind.tag(),
        widths.join(", ")
    );
    let rows: Vec<CellsRow> = Db::fetch(db.query(&sql).bind(site).bind(path)).await?;
    let cells = rows.into_iter().map(|r| HeatCells {
        cells: r.cells.0.into_iter().map(|c| ((c >> 16) as u16, (c & 0xffff) as u16)).zip(r.cells.1).collect(),
    });
    let mut elements: BTreeMap<i32, ElementClicks> = BTreeMap::new();
    if kind == HeatKind::Click {
        let sql = format!(
            "SELECT day, sel, sum(n) AS n, sumMap(pointsMap.point, pointsMap.n) AS points FROM element_rollups \
             WHERE site = ? AND path = ? AND {days} GROUP BY day, sel"
        );
        let rows: Vec<ElementRow> = Db::fetch(db.query(&sql).bind(site).bind(path)).await?;
        for r in rows {
            let points = r.points.0.into_iter().map(|b| (b >> 8, b & 0xff)).zip(r.points.1).collect();
            elements.entry(r.day).or_default().by_selector.insert(r.sel, ElementCell { n: r.n, points });
        }
    }
    Ok(Heatmap::from_rollups(path, kind, width, cells, elements.into_values()))
}

#[derive(Row, Deserialize)]
struct ListRow {
    anchor: i64,
    sid: [u8; 16],
    record: String,
}

/// The newest confirmed version of each session matching `cond` (no `?` in it), in `order`,
/// at most `limit`.
async fn latest(db: &Db, site: &str, cond: &str, order: &str, limit: usize) -> Result<Vec<ListRow>, StoreError> {
    let sql = format!(
        "SELECT anchor, sid, record FROM sessions \
         WHERE site = ? AND mark = {CLAIM} AND ({cond}) \
           AND (sid, version, token) IN (SELECT sid, version, token FROM sessions WHERE site = ? AND mark = {CONFIRM}) \
         ORDER BY {order}, version DESC, token ASC LIMIT 1 BY sid LIMIT {limit}"
    );
    Db::fetch(db.query(&sql).bind(site).bind(site)).await
}

pub async fn sessions(db: &Db, site: &str, q: &SessionQuery) -> Result<SessionPage, StoreError> {
    let mut upper = match q.cursor {
        Some(c) => (c.start, c.sid),
        None => (q.range.end_ms(), [0u8; 16]),
    };
    let lower = q.range.start_ms();
    let mut sessions = Vec::with_capacity(q.limit.min(1000));
    let mut last: Option<(i64, [u8; 16])> = None;
    let mut scanned = 0usize;
    // The same walk as sled's reverse range scan, fetched in chunks.
    loop {
        let cond = format!(
            "anchor >= {lower} AND (anchor < {a} OR (anchor = {a} AND sid < {sid}))",
            a = upper.0,
            sid = id_sql(&upper.1)
        );
        let rows = latest(db, site, &cond, "anchor DESC, sid DESC", LIST_CHUNK).await?;
        let n = rows.len();
        for r in rows {
            if sessions.len() == q.limit || scanned == MAX_SESSIONS_SCANNED {
                let next = last.map(|(start, sid)| SessionCursor { start, sid }.encode());
                return Ok(SessionPage { sessions, next });
            }
            let sid = r.sid;
            let record: Record = serde_json::from_str(&r.record).map_err(corrupt)?;
            let summary = record.summary(&sid);
            if q.filter.matches(&summary) {
                sessions.push(summary);
            }
            last = Some((r.anchor, sid));
            upper = (r.anchor, sid);
            scanned += 1;
        }
        if n < LIST_CHUNK {
            return Ok(SessionPage { sessions, next: None });
        }
    }
}

#[derive(Row, Deserialize)]
struct EventsRow {
    sid: [u8; 16],
    seq: u32,
    events: String,
}

/// The events of sessions `(sid, record)`, each in time order (equal times in arrival order).
async fn events_of(
    db: &Db,
    site: &str,
    sessions: &[([u8; 16], Record)],
) -> Result<HashMap<[u8; 16], Vec<Event>>, StoreError> {
    let mut out = HashMap::new();
    if sessions.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT sid, seq, events FROM batches WHERE site = ? AND sid IN ({}) \
         ORDER BY sid, seq, keep DESC LIMIT 1 BY sid, seq",
        id_list(sessions.iter().map(|(sid, _)| sid))
    );
    let rows: Vec<EventsRow> = Db::fetch(db.query(&sql).bind(site)).await?;
    let mut by_batch: HashMap<([u8; 16], u32), String> = HashMap::new();
    for r in rows {
        by_batch.insert((r.sid, r.seq), r.events);
    }
    for (sid, record) in sessions {
        let mut batches = Vec::with_capacity(record.seqs.len());
        // Only batches the session's state lists are stored; others are leftovers of lost races.
        for seq in &record.seqs {
            if let Some(json) = by_batch.get(&(*sid, *seq)) {
                batches.push((*seq, serde_json::from_str::<Vec<Event>>(json).map_err(corrupt)?));
            }
        }
        out.insert(*sid, crate::model::in_client_order(batches));
    }
    Ok(out)
}

pub async fn session_events(db: &Db, site: &str, sid: Id128) -> Result<Option<Vec<Event>>, StoreError> {
    let key: SessionKey = (site.to_owned(), sid.0);
    let record = match read_states(db, std::slice::from_ref(&key), |_, _| true).await?.remove(&key) {
        Some((Resolved::Known(s), _)) | Some((Resolved::InDoubt(Some(s)), _)) => s.record,
        _ => return Ok(None),
    };
    let mut events = events_of(db, site, &[(sid.0, record)]).await?;
    Ok(events.remove(&sid.0).filter(|e| !e.is_empty()))
}

/// Every session of `visitor`, oldest first, with its state.
pub async fn visitor_records(
    db: &Db,
    site: &str,
    visitor: VisitorKey,
) -> Result<Vec<(i64, [u8; 16], Record)>, StoreError> {
    let rows = latest(db, site, &format!("visitor = {}", id_sql(&visitor.0)), "anchor, sid", 1_000_000).await?;
    rows.into_iter().map(|r| Ok((r.anchor, r.sid, serde_json::from_str(&r.record).map_err(corrupt)?))).collect()
}

pub async fn visitor_sessions(
    db: &Db,
    site: &str,
    visitor: VisitorKey,
) -> Result<Vec<(SessionSummary, Vec<Event>)>, StoreError> {
    let records: Vec<([u8; 16], Record)> =
        visitor_records(db, site, visitor).await?.into_iter().map(|(_, sid, r)| (sid, r)).collect();
    let mut events = events_of(db, site, &records).await?;
    Ok(records.iter().map(|(sid, r)| (r.summary(sid), events.remove(sid).unwrap_or_default())).collect())
}
