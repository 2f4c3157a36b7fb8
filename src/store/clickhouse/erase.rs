//! Erasure on ClickHouse: a visitor's right to be forgotten and retention, as `ALTER … DELETE`
//! mutations (waited for before answering) and, for retention, dropping whole partitions of
//! raw events when a month holds nothing else.
//!
//! Erased visitor marks are added to `day_rollups.visitors_gone` first, so past visitor counts
//! stay as they were (rollups are aggregate and stay, as in sled).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::http::{id_lit, lit, Http};
use super::read::visitor_records;
use super::rowbinary::Rows;
use super::{corrupt, parse_id, Record};
use crate::model::{day_of, VisitorKey};
use crate::store::StoreError;

/// Longest wait for a mutation before erasure reports failure (it still completes later).
const MUTATION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct Pending {
    n: u64,
}

/// Runs `ALTER TABLE table DELETE WHERE cond` and waits until ClickHouse has applied it.
async fn delete(http: &Http, table: &str, cond: &str) -> Result<(), StoreError> {
    http.execute(&format!("ALTER TABLE {table} DELETE WHERE {cond}")).await?;
    let started = Instant::now();
    loop {
        let left: Vec<Pending> = http
            .select(&format!(
                "SELECT count() AS n FROM system.mutations WHERE database = {} AND table = {} AND is_done = 0",
                lit(&http.database),
                lit(table)
            ))
            .await?;
        if left.first().is_none_or(|p| p.n == 0) {
            return Ok(());
        }
        if started.elapsed() > MUTATION_TIMEOUT {
            return Err(StoreError::Backend(format!("deleting from {table} is still running")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[derive(Deserialize)]
struct Mark {
    day: i32,
    n: u64,
}

/// Counts the marks matching `cond` per day into `visitors_gone`, then deletes them.
async fn erase_marks(http: &Http, site: &str, cond: &str) -> Result<(), StoreError> {
    let s = lit(site);
    let marks: Vec<Mark> = http
        .select(&format!(
            "SELECT day, uniqExact(visitor) AS n FROM day_visitors WHERE site = {s} AND ({cond}) GROUP BY day"
        ))
        .await?;
    if marks.is_empty() {
        return Ok(());
    }
    let mut rows = Rows::default();
    for m in &marks {
        rows.str(site);
        rows.i32(m.day);
        for v in [0, 0, m.n, 0] {
            rows.u64(v);
        }
        rows.f64(0.0);
        rows.uvarint(0);
        rows.uvarint(0);
    }
    http.insert(
        "day_rollups",
        "site, day, pageviews, sessions, visitors_gone, load_count, load_sum, `loadMap.bucket`, `loadMap.n`",
        rows.buf,
    )
    .await?;
    delete(http, "day_visitors", &format!("site = {s} AND ({cond})")).await
}

/// Deletes the sessions `sids` (every version) and their raw events.
async fn erase_sessions(http: &Http, site: &str, sids: &[[u8; 16]]) -> Result<(), StoreError> {
    let s = lit(site);
    for chunk in sids.chunks(1000) {
        let ids: Vec<String> = chunk.iter().map(id_lit).collect();
        let cond = format!("site = {s} AND sid IN ({})", ids.join(", "));
        delete(http, "batches", &cond).await?;
        delete(http, "sessions", &cond).await?;
    }
    Ok(())
}

pub async fn forget_visitor(http: &Http, site: &str, visitor: VisitorKey) -> Result<usize, StoreError> {
    let sessions = visitor_records(http, site, visitor).await?;
    let v = id_lit(&visitor.0);
    erase_marks(http, site, &format!("visitor = {v}")).await?;
    let sids: Vec<[u8; 16]> = sessions.iter().map(|(_, sid, _)| *sid).collect();
    erase_sessions(http, site, &sids).await?;
    // Claims that lost a race or were retracted carry the visitor too.
    delete(http, "sessions", &format!("site = {} AND visitor = {v}", lit(site))).await?;
    Ok(sessions.len())
}

#[derive(Deserialize)]
struct Old {
    hsid: String,
    record: String,
}

#[derive(Deserialize)]
struct Partition {
    p: u32,
    newest: u16,
    others: u64,
}

pub async fn expire(http: &Http, site: &str, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
    let s = lit(site);
    let cutoff_day = day_of(before_ms);
    // Months of raw events that are all older than the cutoff and hold only this site go at
    // once: every batch in them belongs to a session anchored before the cutoff.
    let parts: Vec<Partition> = http
        .select(&format!(
            "SELECT toYYYYMM(day) AS p, toUInt16(max(day)) AS newest, countIf(site != {s}) AS others FROM batches GROUP BY p"
        ))
        .await?;
    for part in parts.iter().filter(|p| p.others == 0 && i32::from(p.newest) < cutoff_day) {
        http.execute(&format!("ALTER TABLE batches DROP PARTITION {}", part.p)).await?;
    }

    let old: Vec<Old> = http
        .select(&format!(
            "SELECT lower(hex(sid)) AS hsid, record FROM sessions WHERE site = {s} AND mark = 0 AND anchor < {before_ms} \
             ORDER BY anchor, sid, version DESC LIMIT 1 BY sid LIMIT {limit}"
        ))
        .await?;
    let mut sids = Vec::with_capacity(old.len());
    let mut days: BTreeMap<String, (i32, i32)> = BTreeMap::new();
    for o in &old {
        sids.push(parse_id(&o.hsid)?);
        let r: Record = serde_json::from_str(&o.record).map_err(corrupt)?;
        let e = days.entry(id_lit(&r.state.visitor.0)).or_insert((i32::MAX, i32::MIN));
        e.0 = e.0.min(day_of(r.state.start));
        e.1 = e.1.max(day_of(r.state.last));
    }
    if !days.is_empty() {
        let cond: Vec<String> =
            days.iter().map(|(v, (a, b))| format!("(visitor = {v} AND day >= {a} AND day <= {b})")).collect();
        erase_marks(http, site, &cond.join(" OR ")).await?;
    }
    erase_sessions(http, site, &sids).await?;
    if old.len() < limit {
        erase_marks(http, site, &format!("day < {cutoff_day}")).await?;
    }
    Ok(old.len())
}
