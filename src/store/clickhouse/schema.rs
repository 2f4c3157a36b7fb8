//! The tables, created on start when missing, and the schema version they carry.
//!
//! | table | engine | key | what |
//! |---|---|---|---|
//! | `schema_version` | MergeTree | version | versions applied |
//! | `sites` | ReplacingMergeTree(updated) | id | sites created through the API |
//! | `batches` | ReplacingMergeTree(keep) by month of arrival | site, sid, seq | raw events: one row per batch, the events as the JSON array the writer received |
//! | `sessions` | MergeTree by month of the session's anchor | site, sid, version, token | session state: claims (`mark` 0, with the version's pending rollup rows), retractions (1), confirmations (2), counted (3); see the module doc of `clickhouse` |
//! | `day_visitors` | ReplacingMergeTree | site, day, visitor | who came on which day (for exact unique visitors) |
//! | `day_sketches` | ReplacingMergeTree(rank) | site, day, idx | the day's visitor HyperLogLog: max rank per register |
//! | `day_rollups` | SummingMergeTree | site, day | pageviews, sessions, load histogram, erased visitors |
//! | `page_rollups` | SummingMergeTree | site, day, path | per-page figures and scroll reach |
//! | `heat_rollups` | SummingMergeTree | site, path, kind, width, day, band | heatmap cells |
//! | `element_rollups` | SummingMergeTree | site, path, day, sel | clicks per element |
//!
//! Maps (histogram buckets, reach steps, cells, element points) are `Nested` columns whose names
//! end in `Map`, which SummingMergeTree adds up key by key when it merges parts. Queries never
//! rely on merges having happened: they always `GROUP BY` with `sum`/`sumMap`. The rollup
//! tables also hold marker rows (`site` starting with `#`, see `rollups`) that no query reads.
//!
//! On a cluster (`?cluster=NAME`) each table is created on every shard as `NAME_local`, with
//! `NAME` a `Distributed` table over all of them: collectors insert into their own server's
//! local tables (one insert stays one block on one server, so it lands whole) and every query
//! reads the `Distributed` tables. `ON CLUSTER` would need ZooKeeper; this needs only
//! `remote_servers`.

use clickhouse::Row;
use serde::Deserialize;

use super::claims::{CONFIRM, COUNTED};
use super::client::Db;
use crate::store::StoreError;

/// Bump when a table changes; [`ensure`] refuses to run against a newer schema.
/// 2: `sessions` gains `rollups` (a claim's rollup rows, until counted) and `written`, and
/// versions are marked counted.
pub const SCHEMA_VERSION: u32 = 2;

const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS schema_version (version UInt32, applied DateTime DEFAULT now())
     ENGINE = MergeTree ORDER BY version",
    "CREATE TABLE IF NOT EXISTS sites (id String, settings String, updated UInt64)
     ENGINE = ReplacingMergeTree(updated) ORDER BY id",
    "CREATE TABLE IF NOT EXISTS batches (site String, sid FixedString(16), seq UInt32, received Int64,
       day Date, keep UInt64, events String)
     ENGINE = ReplacingMergeTree(keep) PARTITION BY toYYYYMM(day) ORDER BY (site, sid, seq)",
    "CREATE TABLE IF NOT EXISTS sessions (site String, sid FixedString(16), version UInt32, token UInt64,
       mark UInt8, anchor Int64, day Date, visitor FixedString(16), record String, rollups String,
       written DateTime DEFAULT now())
     ENGINE = MergeTree PARTITION BY toYYYYMM(day) ORDER BY (site, sid, version, token)",
    "CREATE TABLE IF NOT EXISTS day_visitors (site String, day Int32, visitor FixedString(16))
     ENGINE = ReplacingMergeTree ORDER BY (site, day, visitor)",
    "CREATE TABLE IF NOT EXISTS day_sketches (site String, day Int32, idx UInt16, rank UInt8)
     ENGINE = ReplacingMergeTree(rank) ORDER BY (site, day, idx)",
    "CREATE TABLE IF NOT EXISTS day_rollups (site String, day Int32, pageviews UInt64, sessions UInt64,
       visitors_gone UInt64, load_count UInt64, load_sum Float64, loadMap Nested(bucket UInt16, n UInt64))
     ENGINE = SummingMergeTree ORDER BY (site, day)",
    "CREATE TABLE IF NOT EXISTS page_rollups (site String, day Int32, path String, pageviews UInt64,
       load_count UInt64, load_sum Float64, loadMap Nested(bucket UInt16, n UInt64), clicks UInt64,
       rage_clicks UInt64, dead_clicks UInt64, depth_sum_pct UInt64, reachMap Nested(step UInt8, n UInt64),
       fold_sum_px Float64, fold_sum_pct Float64, error_clicks UInt64, quick_backs UInt64)
     ENGINE = SummingMergeTree ORDER BY (site, day, path)",
    "CREATE TABLE IF NOT EXISTS heat_rollups (site String, path String, kind UInt8, width UInt8, day Int32,
       band UInt16, cellsMap Nested(cell UInt32, n UInt64))
     ENGINE = SummingMergeTree ORDER BY (site, path, kind, width, day, band)",
    "CREATE TABLE IF NOT EXISTS element_rollups (site String, path String, day Int32, sel String, n UInt64,
       pointsMap Nested(point UInt16, n UInt64))
     ENGINE = SummingMergeTree ORDER BY (site, path, day, sel)",
];

/// Columns added to tables of an existing database: `(table, column, type)`. They default to
/// 0, so older collectors writing beside newer ones stay correct and no version bump is needed.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("page_rollups", "error_clicks", "UInt64"),
    ("page_rollups", "quick_backs", "UInt64"),
    ("sessions", "rollups", "String"),
    ("sessions", "written", "DateTime DEFAULT now()"),
];

#[derive(Row, Deserialize)]
struct Version {
    v: u32,
}

#[derive(Row, Deserialize)]
struct Count {
    n: u64,
}

async fn has_column(db: &Db, table: &str, column: &str) -> Result<bool, StoreError> {
    let sql = "SELECT count() AS n FROM system.columns WHERE database = ? AND table = ? AND name = ?";
    let rows: Vec<Count> = Db::fetch(db.query(sql).bind(&db.database).bind(table).bind(column)).await?;
    Ok(rows.first().is_some_and(|c| c.n > 0))
}

/// Adds the [`ADDED_COLUMNS`] a database created by an older hushtale lacks (ClickHouse 18
/// has no `ADD COLUMN IF NOT EXISTS`; a collector starting at the same moment may add one
/// first, so a failed add is checked again).
async fn add_columns(db: &Db) -> Result<(), StoreError> {
    for (table, column, kind) in ADDED_COLUMNS {
        if has_column(db, table, column).await? {
            continue;
        }
        if let Err(e) = db.execute(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}")).await {
            if !has_column(db, table, column).await? {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Creates the database and tables when missing (on every shard) and records the schema
/// version.
pub async fn ensure(db: &Db) -> Result<(), StoreError> {
    for shard in db.shards() {
        create(&shard, db.cluster()).await?;
    }
    add_columns(db).await?;
    let found: Vec<Version> = Db::fetch(db.query("SELECT max(version) AS v FROM schema_version")).await?;
    let found = found.first().map_or(0, |r| r.v);
    if found > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "database {} has schema version {found}, this hushtale knows only up to {SCHEMA_VERSION}: upgrade hushtale",
            db.database
        )));
    }
    if found == 1 && db.cluster().is_none() {
        // Version 1 inserted rollups right after confirming: its confirmed versions count.
        db.execute(&format!(
            "INSERT INTO sessions (site, sid, version, token, mark, anchor, day, visitor, record, rollups) \
             SELECT site, sid, version, token, {COUNTED}, anchor, day, visitor, '', '' FROM sessions \
             WHERE mark = {CONFIRM}"
        ))
        .await?;
    }
    if found < SCHEMA_VERSION {
        db.execute(&format!("INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION})")).await?;
    }
    Ok(())
}

/// The database and tables on one server. On a cluster each table is `NAME_local` there, plus
/// `NAME`, a `Distributed` table over every shard's `NAME_local` (so any server answers
/// queries); the schema version stays a plain table on each server.
async fn create(shard: &Db, cluster: Option<&str>) -> Result<(), StoreError> {
    shard.execute_global(&format!("CREATE DATABASE IF NOT EXISTS {}", shard.database)).await?;
    for ddl in TABLES {
        let name = ddl.trim_start_matches(CREATE).split_whitespace().next().unwrap_or_default();
        match cluster {
            Some(cluster) if name != "schema_version" => {
                let local = shard.local(name);
                shard.execute(&ddl.replacen(&format!("{CREATE}{name} "), &format!("{CREATE}{local} "), 1)).await?;
                shard
                    .execute(&format!(
                        "{CREATE}{name} AS {local} ENGINE = Distributed({cluster}, {}, {local}, rand())",
                        shard.database
                    ))
                    .await?;
            }
            _ => shard.execute(ddl).await?,
        }
    }
    Ok(())
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS ";
