//! Erasure on ClickHouse: a visitor's right to be forgotten and retention, as `ALTER … DELETE`
//! mutations (waited for before answering) and, for retention, dropping whole partitions of
//! raw events when a month holds nothing else.
//!
//! Erased visitor marks are added to `day_rollups.visitors_gone` first, so past visitor counts
//! stay as they were (rollups are aggregate and stay, as in sled).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::Deserialize;

use super::claims::CLAIM;
use super::client::{id_list, id_sql, Db};
use super::read::visitor_records;
use super::rows::DayRollupRow;
use super::{corrupt, Record};
use crate::model::{day_of, VisitorKey};
use crate::store::StoreError;

/// Longest wait for a mutation before erasure reports failure (it still completes later).
const MUTATION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Row, Deserialize)]
struct Pending {
    n: u64,
}

/// Runs `ALTER TABLE table DELETE WHERE cond` (`?`s bound to `site`) on every shard and
/// waits until ClickHouse has applied it.
async fn delete(db: &Db, table: &str, cond: &str, site: &str) -> Result<(), StoreError> {
    for shard in db.shards() {
        let table = shard.local(table);
        let sql = format!("ALTER TABLE {table} DELETE WHERE {cond}");
        let q = (0..sql.matches('?').count()).fold(shard.query(&sql), |q, _| q.bind(site));
        q.execute().await.map_err(|e| StoreError::Backend(format!("ClickHouse: {e}")))?;
        wait_for_mutations(&shard, &table).await?;
    }
    Ok(())
}

async fn wait_for_mutations(shard: &Db, table: &str) -> Result<(), StoreError> {
    let started = Instant::now();
    loop {
        let q = shard
            .query("SELECT count() AS n FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0")
            .bind(&shard.database)
            .bind(table);
        let left: Vec<Pending> = Db::fetch(q).await?;
        if left.first().is_none_or(|p| p.n == 0) {
            return Ok(());
        }
        if started.elapsed() > MUTATION_TIMEOUT {
            return Err(StoreError::Backend(format!("deleting from {table} is still running")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[derive(Row, Deserialize)]
struct Mark {
    day: i32,
    n: u64,
}

/// Counts the marks matching `cond` (no `?` in it) per day into `visitors_gone`, then deletes
/// them.
async fn erase_marks(db: &Db, site: &str, cond: &str) -> Result<(), StoreError> {
    let sql = format!("SELECT day, uniqExact(visitor) AS n FROM day_visitors WHERE site = ? AND ({cond}) GROUP BY day");
    let marks: Vec<Mark> = Db::fetch(db.query(&sql).bind(site)).await?;
    if marks.is_empty() {
        return Ok(());
    }
    let rows: Vec<DayRollupRow> = marks
        .iter()
        .map(|m| DayRollupRow { site: site.to_owned(), day: m.day, visitors_gone: m.n, ..Default::default() })
        .collect();
    db.insert::<DayRollupRow>("day_rollups", &rows).await?;
    delete(db, "day_visitors", &format!("site = ? AND ({cond})"), site).await
}

/// Deletes the sessions `sids` (every version) and their raw events.
async fn erase_sessions(db: &Db, site: &str, sids: &[[u8; 16]]) -> Result<(), StoreError> {
    for chunk in sids.chunks(1000) {
        let cond = format!("site = ? AND sid IN ({})", id_list(chunk));
        delete(db, "batches", &cond, site).await?;
        delete(db, "sessions", &cond, site).await?;
    }
    Ok(())
}

pub async fn forget_visitor(db: &Db, site: &str, visitor: VisitorKey) -> Result<usize, StoreError> {
    let sessions = visitor_records(db, site, visitor).await?;
    let v = id_sql(&visitor.0);
    erase_marks(db, site, &format!("visitor = {v}")).await?;
    let sids: Vec<[u8; 16]> = sessions.iter().map(|(_, sid, _)| *sid).collect();
    erase_sessions(db, site, &sids).await?;
    // Claims that lost a race or were retracted carry the visitor too.
    delete(db, "sessions", &format!("site = ? AND visitor = {v}"), site).await?;
    Ok(sessions.len())
}

#[derive(Row, Deserialize)]
struct Old {
    sid: [u8; 16],
    record: String,
}

#[derive(Row, Deserialize)]
struct Partition {
    p: u32,
    newest: u16,
    others: u64,
}

pub async fn expire(db: &Db, site: &str, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
    let cutoff_day = day_of(before_ms);
    // Months of raw events that are all older than the cutoff and hold only this site go at
    // once: every batch in them belongs to a session anchored before the cutoff.
    let q = db.query(
        "SELECT toYYYYMM(day) AS p, toUInt16(max(day)) AS newest, countIf(site != ?) AS others FROM batches GROUP BY p",
    );
    let parts: Vec<Partition> = Db::fetch(q.bind(site)).await?;
    for part in parts.iter().filter(|p| p.others == 0 && i32::from(p.newest) < cutoff_day) {
        for shard in db.shards() {
            shard.execute(&format!("ALTER TABLE {} DROP PARTITION {}", shard.local("batches"), part.p)).await?;
        }
    }

    let sql = format!(
        "SELECT sid, record FROM sessions WHERE site = ? AND mark = {CLAIM} AND anchor < {before_ms} \
         ORDER BY anchor, sid, version DESC LIMIT 1 BY sid LIMIT {limit}"
    );
    let old: Vec<Old> = Db::fetch(db.query(&sql).bind(site)).await?;
    let mut sids = Vec::with_capacity(old.len());
    let mut days: BTreeMap<String, (i32, i32)> = BTreeMap::new();
    for o in &old {
        sids.push(o.sid);
        let r: Record = serde_json::from_str(&o.record).map_err(corrupt)?;
        let e = days.entry(id_sql(&r.state.visitor.0)).or_insert((i32::MAX, i32::MIN));
        e.0 = e.0.min(day_of(r.state.start));
        e.1 = e.1.max(day_of(r.state.last));
    }
    if !days.is_empty() {
        let cond: Vec<String> =
            days.iter().map(|(v, (a, b))| format!("(visitor = {v} AND day >= {a} AND day <= {b})")).collect();
        erase_marks(db, site, &cond.join(" OR ")).await?;
    }
    erase_sessions(db, site, &sids).await?;
    if old.len() < limit {
        erase_marks(db, site, &format!("day < {cutoff_day}")).await?;
    }
    Ok(old.len())
}
