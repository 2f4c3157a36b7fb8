//! The connection to ClickHouse: the `clickhouse` crate's HTTP client, set up for every server
//! from Debian 12's 18.16 on — `RowBinary` both ways with schema validation off (18.16 has no
//! `RowBinaryWithNamesAndTypes`), no compression (18.16 does not speak the crate's LZ4 framing
//! over `Accept-Encoding`), and values bound with `?` (the crate escapes them).

use std::time::Duration;

use clickhouse::query::Query;
use clickhouse::{Client, RowOwned, RowRead, RowWrite};

use super::target::ClickHouseTarget;
use crate::store::StoreError;

/// Longest a single insert may take before it fails (and the group answers 5xx).
const INSERT_TIMEOUT: Duration = Duration::from_secs(60);

/// The store's database on one ClickHouse server. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    client: Client,
    /// The client without a database, to create it.
    global: Client,
    pub database: String,
}

impl Db {
    pub fn new(target: &ClickHouseTarget) -> Self {
        let mut global = Client::default()
            .with_url(&target.endpoint)
            .with_validation(false)
            .with_compression(clickhouse::Compression::None)
            // Replicated tables would otherwise drop a rollup block identical to a recent one
            // (two groups with the same deltas).
            .with_setting("insert_deduplicate", "0");
        if let Some(user) = &target.user {
            global = global.with_user(user);
        }
        if let Some(password) = &target.password {
            global = global.with_password(password);
        }
        let client = global.clone().with_database(&target.database);
        Self { client, global, database: target.database.clone() }
    }

    /// A statement in the store's database, to `bind` values to and run or fetch.
    pub fn query(&self, sql: &str) -> Query {
        self.client.query(sql)
    }

    /// Runs one statement (DDL, `ALTER`, …) that returns nothing.
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.client.query(sql).execute().await.map_err(backend)
    }

    /// Runs one statement outside any database (to create it).
    pub async fn execute_global(&self, sql: &str) -> Result<(), StoreError> {
        self.global.query(sql).execute().await.map_err(backend)
    }

    /// Every row `query` returns.
    pub async fn fetch<T: RowOwned + RowRead>(query: Query) -> Result<Vec<T>, StoreError> {
        query.fetch_all().await.map_err(backend)
    }

    /// Inserts `rows` into `table` as one `INSERT` (one block, so all or none of them land);
    /// returns once ClickHouse acknowledged it.
    pub async fn insert<T: RowWrite>(&self, table: &str, rows: &[T::Value<'_>]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert =
            self.client.insert::<T>(table).await.map_err(backend)?.with_timeouts(None, Some(INSERT_TIMEOUT));
        for row in rows {
            insert.write(row).await.map_err(backend)?;
        }
        insert.end().await.map_err(backend)
    }
}

fn backend(e: clickhouse::error::Error) -> StoreError {
    StoreError::Backend(format!("ClickHouse: {e}"))
}

/// A 16-byte id as SQL. Hex through `unhex`, not a bound value: the crate binds bytes as
/// `X'…'` literals, which 18.16 cannot parse.
pub fn id_sql(id: &[u8; 16]) -> String {
    format!("toFixedString(unhex('{}'), 16)", hex::encode(id))
}

/// Ids as the inside of an `IN (…)` list.
pub fn id_list<'a>(ids: impl IntoIterator<Item = &'a [u8; 16]>) -> String {
    ids.into_iter().map(id_sql).collect::<Vec<_>>().join(", ")
}
