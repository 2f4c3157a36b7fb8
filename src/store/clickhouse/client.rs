//! The connection to ClickHouse: the `clickhouse` crate's HTTP client, set up for every server
//! from Debian 12's 18.16 on — `RowBinary` both ways with schema validation off (18.16 has no
//! `RowBinaryWithNamesAndTypes`), no compression (18.16 does not speak the crate's LZ4 framing
//! over `Accept-Encoding`), and values bound with `?` (the crate escapes them).

use std::sync::Arc;
use std::time::Duration;

use clickhouse::query::Query;
use clickhouse::{Client, RowOwned, RowRead, RowWrite};

use super::target::ClickHouseTarget;
use crate::store::StoreError;

/// What a table's local part is called on a cluster.
const LOCAL: &str = "_local";

/// Longest a single insert may take before it fails (and the group answers 5xx).
const INSERT_TIMEOUT: Duration = Duration::from_secs(60);

/// The store's database on one ClickHouse server, or on a cluster. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    client: Client,
    /// The client without a database, to create it.
    global: Client,
    pub database: String,
    /// `_local` on a cluster: the tables this server writes to are `NAME_local`, and `NAME`
    /// is the `Distributed` table over every shard's `NAME_local` that queries read.
    suffix: &'static str,
    cluster: Option<Arc<Shards>>,
}

/// A cluster's name and a [`Db`] on each shard's server (for DDL and mutations).
struct Shards {
    name: String,
    each: Vec<Db>,
}

impl Db {
    /// Connects to `target`; on a cluster without a `shards=` list, asks the server for its
    /// shards (assuming they serve HTTP on the same port).
    pub async fn connect(target: &ClickHouseTarget) -> Result<Self, StoreError> {
        let one = |endpoint: &str, suffix| Self::on(target, endpoint, suffix);
        let Some(cluster) = &target.cluster else { return Ok(one(&target.endpoint, "")) };
        let mut endpoints = cluster.shards.clone();
        if endpoints.is_empty() {
            endpoints = one(&target.endpoint, "").discover(&cluster.name, &target.endpoint).await?;
        }
        let each = endpoints.iter().map(|e| one(e, LOCAL)).collect();
        let mut db = one(&target.endpoint, LOCAL);
        // `IN (SELECT … FROM sessions)` inside a query on `sessions`: run the subquery once
        // over the cluster, not once per shard over the cluster again.
        db.client = db.client.with_setting("distributed_product_mode", "global");
        db.cluster = Some(Arc::new(Shards { name: cluster.name.clone(), each }));
        Ok(db)
    }

    fn on(target: &ClickHouseTarget, endpoint: &str, suffix: &'static str) -> Self {
        let mut global = Client::default()
            .with_url(endpoint)
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
        Self { client, global, database: target.database.clone(), suffix, cluster: None }
    }

    /// The HTTP endpoints of `cluster`'s shards (one server per shard).
    async fn discover(&self, cluster: &str, endpoint: &str) -> Result<Vec<String>, StoreError> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Host {
            host: String,
        }
        let port = endpoint.rsplit(':').next().unwrap_or("8123");
        let q = self.global.query(
            "SELECT any(host_address) AS host FROM system.clusters WHERE cluster = ? GROUP BY shard_num ORDER BY shard_num",
        );
        let hosts: Vec<Host> = Db::fetch(q.bind(cluster)).await?;
        if hosts.is_empty() {
            return Err(StoreError::Backend(format!("ClickHouse has no cluster {cluster:?} in its remote_servers")));
        }
        Ok(hosts.into_iter().map(|h| format!("http://{}:{port}", h.host)).collect())
    }

    /// The table this server writes `table`'s rows to (`table` itself unless on a cluster).
    pub fn local(&self, table: &str) -> String {
        format!("{table}{}", self.suffix)
    }

    /// The cluster's name, if the store is on one.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.name.as_str())
    }

    /// A `Db` on every shard's server (just this one unless on a cluster), for statements
    /// that must run where the rows are: DDL, mutations, dropping partitions.
    pub fn shards(&self) -> Vec<Db> {
        self.cluster.as_ref().map_or_else(|| vec![self.clone()], |c| c.each.clone())
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
        let table = self.local(table);
        let mut insert =
            self.client.insert::<T>(&table).await.map_err(backend)?.with_timeouts(None, Some(INSERT_TIMEOUT));
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
