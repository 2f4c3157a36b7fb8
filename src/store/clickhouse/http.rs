//! A small ClickHouse client over its HTTP interface: statements as the POST body, inserts as
//! `INSERT … FORMAT RowBinary` with the rows as the body, reads as `FORMAT JSONEachRow`.
//!
//! Why not the `clickhouse` crate: it needs `RowBinaryWithNamesAndTypes` (missing before
//! ClickHouse 19.x) unless validation is turned off, and its row derive adds a second schema
//! description to keep in step. These few requests work unchanged from 18.16 to current
//! releases. No TLS: run collectors next to ClickHouse or behind a TLS-terminating proxy.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::config::ClickHouseTarget;
use crate::store::StoreError;

/// Longest any single request may take before it fails (and the group answers 5xx).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings sent with every request. `insert_deduplicate=0`: Replicated tables would otherwise
/// silently drop a rollup block identical to a recent one (two groups with the same deltas).
const SETTINGS: &str = "output_format_json_quote_64bit_integers=0&insert_deduplicate=0";

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    pub database: String,
    auth: Option<HeaderValue>,
}

impl Http {
    pub fn new(target: &ClickHouseTarget) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(20)).build(connector);
        let auth = target.user.as_ref().map(|u| {
            let pair = format!("{u}:{}", target.password.as_deref().unwrap_or(""));
            let mut v = HeaderValue::from_str(&format!("Basic {}", base64(pair.as_bytes())))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            v.set_sensitive(true);
            v
        });
        Self { client, endpoint: target.endpoint.clone(), database: target.database.clone(), auth }
    }

    /// Runs one statement (DDL, ALTER, …) in the store's database; returns the raw answer.
    pub async fn execute(&self, sql: &str) -> Result<Bytes, StoreError> {
        self.request(Some(&self.database), None, Bytes::from(sql.to_owned())).await
    }

    /// Runs one statement outside any database (to create it).
    pub async fn execute_global(&self, sql: &str) -> Result<Bytes, StoreError> {
        self.request(None, None, Bytes::from(sql.to_owned())).await
    }

    /// Runs a `SELECT` and parses one `T` per row.
    pub async fn select<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, StoreError> {
        let body = self.request(Some(&self.database), None, Bytes::from(format!("{sql} FORMAT JSONEachRow"))).await?;
        let mut rows = Vec::new();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            rows.push(
                serde_json::from_slice(line).map_err(|e| {
                    StoreError::Corrupt(format!("ClickHouse row {}: {e}", String::from_utf8_lossy(line)))
                })?,
            );
        }
        Ok(rows)
    }

    /// Inserts RowBinary `rows` into `table (columns)`; returns once ClickHouse acknowledged.
    pub async fn insert(&self, table: &str, columns: &str, rows: Vec<u8>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let query = format!("INSERT INTO {table} ({columns}) FORMAT RowBinary");
        self.request(Some(&self.database), Some(&query), Bytes::from(rows)).await.map(|_| ())
    }

    async fn request(&self, database: Option<&str>, query: Option<&str>, body: Bytes) -> Result<Bytes, StoreError> {
        let mut uri = format!("{}/?{SETTINGS}", self.endpoint);
        if let Some(db) = database {
            uri.push_str("&database=");
            uri.push_str(db);
        }
        if let Some(q) = query {
            uri.push_str("&query=");
            uri.extend(url::form_urlencoded::byte_serialize(q.as_bytes()));
        }
        let mut req = Request::builder().method(Method::POST).uri(&uri).header(CONTENT_TYPE, "text/plain");
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let req = req.body(Full::new(body)).map_err(|e| StoreError::Backend(format!("ClickHouse request: {e}")))?;
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| backend(format!("cannot reach ClickHouse: {e}")))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| backend(format!("reading ClickHouse's answer: {e}")))?
                .to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body);
                return Err(backend(format!("ClickHouse answered {status}: {}", text.trim())));
            }
            Ok(body)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work).await.map_err(|_| backend("ClickHouse timed out".into()))?
    }
}

fn backend(m: String) -> StoreError {
    StoreError::Backend(m)
}

/// A string literal for SQL: quoted, with `\` and `'` escaped (ClickHouse's escaping rules).
pub fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A 16-byte id as a `FixedString(16)` literal.
pub fn id_lit(id: &[u8; 16]) -> String {
    format!("toFixedString(unhex('{}'), 16)", hex::encode(id))
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(lit("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(lit("/x\n"), "'/x\\n'");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"default:"), "ZGVmYXVsdDo=");
    }
}
