//! One row type per table, field for field in the column order of [`super::schema`] (rows go
//! as `RowBinary` without validation, so a field out of order or of another width is a bug
//! that only the shared backend suite catches). Nested `…Map` columns are two arrays.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// `batches`: one stored batch, its events as the JSON array the writer received.
#[derive(Row, Serialize)]
pub struct BatchRow<'a> {
    pub site: &'a str,
    pub sid: [u8; 16],
    pub seq: u32,
    pub received: i64,
    /// `Date`: days since the epoch.
    pub day: u16,
    /// Which copy of a resent `(sid, seq)` reads pick: the earliest received.
    pub keep: u64,
    #[serde(with = "serde_bytes")]
    pub events: &'a [u8],
}

/// `sessions`: a claim, retraction, confirmation or count of one session version.
#[derive(Row, Serialize)]
pub struct SessionRow<'a> {
    pub site: &'a str,
    pub sid: [u8; 16],
    pub version: u32,
    pub token: u64,
    pub mark: u8,
    pub anchor: i64,
    pub day: u16,
    pub visitor: [u8; 16],
    /// The session's [`super::Record`] as JSON on claims; empty on the other marks.
    #[serde(with = "serde_bytes")]
    pub record: &'a [u8],
    /// The claim's rollup rows ([`super::rollups::Pending`]) as JSON; empty on other marks.
    #[serde(with = "serde_bytes")]
    pub rollups: &'a [u8],
}

/// `sites`: a site created through the API; the newest `updated` wins.
#[derive(Row, Serialize)]
pub struct SiteRow<'a> {
    pub id: &'a str,
    #[serde(with = "serde_bytes")]
    pub settings: &'a [u8],
    pub updated: u64,
}

/// `day_visitors`: who came on which day.
#[derive(Row, Serialize)]
pub struct VisitorRow<'a> {
    pub site: &'a str,
    pub day: i32,
    pub visitor: [u8; 16],
}

/// `day_sketches`: a register of the day's visitor HyperLogLog and the rank set there.
#[derive(Row, Serialize)]
pub struct SketchRow<'a> {
    pub site: &'a str,
    pub day: i32,
    pub idx: u16,
    pub rank: u8,
}

/// `day_rollups`.
#[derive(Row, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct DayRollupRow {
    pub site: String,
    pub day: i32,
    pub pageviews: u64,
    pub sessions: u64,
    pub visitors_gone: u64,
    pub load_count: u64,
    pub load_sum: f64,
    #[serde(rename = "loadMap.bucket")]
    pub load_buckets: Vec<u16>,
    #[serde(rename = "loadMap.n")]
    pub load_counts: Vec<u64>,
}

/// `page_rollups`.
#[derive(Row, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct PageRollupRow {
    pub site: String,
    pub day: i32,
    pub path: String,
    pub pageviews: u64,
    pub load_count: u64,
    pub load_sum: f64,
    #[serde(rename = "loadMap.bucket")]
    pub load_buckets: Vec<u16>,
    #[serde(rename = "loadMap.n")]
    pub load_counts: Vec<u64>,
    pub clicks: u64,
    pub rage_clicks: u64,
    pub dead_clicks: u64,
    pub depth_sum_pct: u64,
    #[serde(rename = "reachMap.step")]
    pub reach_steps: Vec<u8>,
    #[serde(rename = "reachMap.n")]
    pub reach_counts: Vec<u64>,
    pub fold_sum_px: f64,
    pub fold_sum_pct: f64,
    pub error_clicks: u64,
    pub quick_backs: u64,
}

/// `heat_rollups`: cells `(x << 16) | y` of one band of a heatmap.
#[derive(Row, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct HeatRollupRow {
    pub site: String,
    pub path: String,
    pub kind: u8,
    pub width: u8,
    pub day: i32,
    pub band: u16,
    #[serde(rename = "cellsMap.cell")]
    pub cells: Vec<u32>,
    #[serde(rename = "cellsMap.n")]
    pub counts: Vec<u64>,
}

/// `element_rollups`: clicks on one selector, points `(ex << 8) | ey` inside its box.
#[derive(Row, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct ElementRollupRow {
    pub site: String,
    pub path: String,
    pub day: i32,
    pub sel: String,
    pub n: u64,
    #[serde(rename = "pointsMap.point")]
    pub points: Vec<u16>,
    #[serde(rename = "pointsMap.n")]
    pub counts: Vec<u64>,
}
