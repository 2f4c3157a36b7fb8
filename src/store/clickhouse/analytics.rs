//! Form analytics, attention and funnels on ClickHouse: the same deltas and builders as sled.
//!
//! | table | engine | key | what |
//! |---|---|---|---|
//! | `form_rollups` | SummingMergeTree | site, path, day, form, field | per-field sums; the form's own counts on the row whose `field` is `""` |
//! | `attention_rollups` | SummingMergeTree | site, path, day | pageviews and visible-and-active ms per 5 % band |
//! | `session_views` | ReplacingMergeTree by month of the session's anchor | site, anchor, sid, t, path | the funnel index: one row per pageview of a won session version |
//!
//! Funnels read `session_views` grouped per session, newest anchor first, and run the shared
//! matcher over each session's views — never the raw events.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::claims::date;
use super::client::{id_list, Db};
use crate::model::{day_of, EventData, StoredBatch};
use crate::query::forms::{Attention, Forms};
use crate::query::funnel::{Funnel, FunnelCounter, FunnelQuery, MAX_VIEWS_PER_SESSION};
use crate::query::{DayRange, PageQuery};
use crate::rollup::attention::{AttentionRollup, BANDS};
use crate::rollup::form::{FieldRollup, FormRollup, PageForms};
use crate::rollup::track::Deltas;
use crate::store::StoreError;

pub const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS form_rollups (site String, path String, day Int32, form String, field String,
       starters UInt64, submits UInt64, submitted_starters UInt64, interactions UInt64, time_sum_ms UInt64,
       time_n UInt64, hesitation_sum_ms UInt64, hesitation_n UInt64, refills UInt64, filled_on_submit UInt64,
       drop_offs Int64, order_sum UInt64, order_n UInt64)
     ENGINE = SummingMergeTree ORDER BY (site, path, day, form, field)",
    "CREATE TABLE IF NOT EXISTS attention_rollups (site String, path String, day Int32, pageviews UInt64,
       bandMap Nested(band UInt8, ms UInt64))
     ENGINE = SummingMergeTree ORDER BY (site, path, day)",
    "CREATE TABLE IF NOT EXISTS session_views (site String, anchor Int64, sid FixedString(16), t Int64,
       path String, day Date)
     ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(day) ORDER BY (site, anchor, sid, t, path)",
];

/// `form_rollups`: one field's sums, or (with `field` empty) the form's own counts.
#[derive(Row, Serialize, Deserialize, Debug, Clone, Default)]
pub struct FormRow {
    pub site: String,
    pub path: String,
    pub day: i32,
    pub form: String,
    pub field: String,
    pub starters: u64,
    pub submits: u64,
    pub submitted_starters: u64,
    pub interactions: u64,
    pub time_sum_ms: u64,
    pub time_n: u64,
    pub hesitation_sum_ms: u64,
    pub hesitation_n: u64,
    pub refills: u64,
    pub filled_on_submit: u64,
    pub drop_offs: i64,
    pub order_sum: u64,
    pub order_n: u64,
}

impl FormRow {
    fn field(&self) -> FieldRollup {
        FieldRollup {
            interactions: self.interactions,
            time_sum_ms: self.time_sum_ms,
            time_n: self.time_n,
            hesitation_sum_ms: self.hesitation_sum_ms,
            hesitation_n: self.hesitation_n,
            refills: self.refills,
            filled_on_submit: self.filled_on_submit,
            drop_offs: self.drop_offs,
            order_sum: self.order_sum,
            order_n: self.order_n,
        }
    }
}

/// `attention_rollups`.
#[derive(Row, Serialize, Debug, Clone)]
pub struct AttentionRow {
    pub site: String,
    pub path: String,
    pub day: i32,
    pub pageviews: u64,
    #[serde(rename = "bandMap.band")]
    pub bands: Vec<u8>,
    #[serde(rename = "bandMap.ms")]
    pub ms: Vec<u64>,
}

/// `session_views`: one pageview of a session, for funnels.
#[derive(Row, Serialize, Debug, Clone)]
pub struct ViewRow<'a> {
    pub site: &'a str,
    pub anchor: i64,
    pub sid: [u8; 16],
    pub t: i64,
    pub path: &'a str,
    pub day: u16,
}

fn form_rows(d: &Deltas) -> Vec<FormRow> {
    let mut rows = Vec::new();
    for ((site, path, day), page) in &d.forms {
        for (form, f) in &page.forms {
            let base =
                FormRow { site: site.clone(), path: path.clone(), day: *day, form: form.clone(), ..Default::default() };
            rows.push(FormRow {
                starters: f.starters,
                submits: f.submits,
                submitted_starters: f.submitted_starters,
                ..base.clone()
            });
            for (sel, x) in &f.fields {
                rows.push(FormRow {
                    field: sel.clone(),
                    interactions: x.interactions,
                    time_sum_ms: x.time_sum_ms,
                    time_n: x.time_n,
                    hesitation_sum_ms: x.hesitation_sum_ms,
                    hesitation_n: x.hesitation_n,
                    refills: x.refills,
                    filled_on_submit: x.filled_on_submit,
                    drop_offs: x.drop_offs,
                    order_sum: x.order_sum,
                    order_n: x.order_n,
                    ..base.clone()
                });
            }
        }
    }
    rows
}

fn attention_rows(d: &Deltas) -> Vec<AttentionRow> {
    d.attention
        .iter()
        .map(|((site, day, path), r)| {
            let bands: Vec<(u8, u64)> =
                r.band_ms.iter().enumerate().filter(|(_, ms)| **ms > 0).map(|(i, ms)| (i as u8, *ms)).collect();
            AttentionRow {
                site: site.clone(),
                path: path.clone(),
                day: *day,
                pageviews: r.pageviews,
                bands: bands.iter().map(|b| b.0).collect(),
                ms: bands.iter().map(|b| b.1).collect(),
            }
        })
        .collect()
}

/// Inserts the form and attention rows of won sessions' deltas.
pub async fn insert_rollups(db: &Db, d: &Deltas) -> Result<(), StoreError> {
    let (forms, attention) = (form_rows(d), attention_rows(d));
    let (a, b) = tokio::join!(
        db.insert::<FormRow>("form_rollups", &forms),
        db.insert::<AttentionRow>("attention_rollups", &attention)
    );
    a.and(b)
}

/// Inserts the pageviews of stored batches `(anchor, batch)` into the funnel index.
pub async fn insert_views(db: &Db, stored: &[(i64, &StoredBatch)]) -> Result<(), StoreError> {
    let mut rows = Vec::new();
    for &(anchor, b) in stored {
        for e in &b.events {
            if let EventData::View(v) = &e.data {
                let day = date(day_of(anchor));
                rows.push(ViewRow { site: &b.site, anchor, sid: b.sid.0, t: e.t, path: &v.path, day });
            }
        }
    }
    db.insert::<ViewRow>("session_views", &rows).await
}

/// Removes sessions from the funnel index (erasure and retention).
pub fn erase_condition(sids: &[[u8; 16]]) -> String {
    format!("site = ? AND sid IN ({})", id_list(sids))
}

fn day_filter(range: DayRange) -> String {
    format!("day >= {} AND day <= {}", range.from, range.to)
}

pub async fn forms(db: &Db, site: &str, q: &PageQuery) -> Result<Forms, StoreError> {
    let (path, range) = (q.path.as_str(), q.range);
    // Rows are read in column order (names are not checked): `any_day` fills `day`, and must not
    // be called `day`, which would shadow the column in WHERE.
    let sql = format!(
        "SELECT site, path, toInt32(0) AS any_day, form, field, sum(starters) AS starters, sum(submits) AS submits, \
         sum(submitted_starters) AS submitted_starters, sum(interactions) AS interactions, \
         sum(time_sum_ms) AS time_sum_ms, sum(time_n) AS time_n, sum(hesitation_sum_ms) AS hesitation_sum_ms, \
         sum(hesitation_n) AS hesitation_n, sum(refills) AS refills, sum(filled_on_submit) AS filled_on_submit, \
         sum(drop_offs) AS drop_offs, sum(order_sum) AS order_sum, sum(order_n) AS order_n \
         FROM form_rollups WHERE site = ? AND path = ? AND {} GROUP BY site, path, form, field",
        day_filter(range)
    );
    let rows: Vec<FormRow> = Db::fetch(db.query(&sql).bind(site).bind(path)).await?;
    let mut page = PageForms::default();
    for r in rows {
        let form: &mut FormRollup = page.forms.entry(r.form.clone()).or_default();
        if r.field.is_empty() {
            form.starters += r.starters;
            form.submits += r.submits;
            form.submitted_starters += r.submitted_starters;
        } else {
            form.fields.entry(r.field.clone()).or_default().merge(&r.field());
        }
    }
    Ok(Forms::from_rollups(path, [page]))
}

#[derive(Row, Deserialize)]
struct AttentionSum {
    pageviews: u64,
    bands: (Vec<u8>, Vec<u64>),
}

pub async fn attention(db: &Db, site: &str, q: &PageQuery) -> Result<Attention, StoreError> {
    let (path, range) = (q.path.as_str(), q.range);
    let sql = format!(
        "SELECT sum(pageviews) AS pageviews, sumMap(bandMap.band, bandMap.ms) AS bands FROM attention_rollups \
         WHERE site = ? AND path = ? AND {}",
        day_filter(range)
    );
    let rows: Vec<AttentionSum> = Db::fetch(db.query(&sql).bind(site).bind(path)).await?;
    let rollups = rows.into_iter().map(|r| {
        let mut band_ms = vec![0; BANDS];
        for (b, ms) in r.bands.0.into_iter().zip(r.bands.1) {
            if let Some(slot) = band_ms.get_mut(b as usize) {
                *slot = ms;
            }
        }
        AttentionRollup { pageviews: r.pageviews, band_ms }
    });
    Ok(Attention::from_rollups(path, rollups))
}

#[derive(Row, Deserialize)]
struct SessionViews {
    anchor: i64,
    sid: [u8; 16],
    ts: Vec<i64>,
    paths: Vec<String>,
}

/// Sessions fetched per query while walking the index.
const FUNNEL_CHUNK: usize = 10_000;

pub async fn funnel(db: &Db, site: &str, q: &FunnelQuery) -> Result<Funnel, StoreError> {
    let mut counter = FunnelCounter::new(q.steps.clone(), q.within_ms);
    // Newest first, in chunks: the anchor range shrinks from the top as sessions are read.
    let mut upper: Option<(i64, [u8; 16])> = None;
    loop {
        let before = match upper {
            None => format!("anchor < {}", q.range.end_ms()),
            Some((a, sid)) => format!("(anchor < {a} OR (anchor = {a} AND sid < {}))", id_list([&sid])),
        };
        let sql = format!(
            "SELECT anchor, sid, groupArray({MAX_VIEWS_PER_SESSION})(t) AS ts, groupArray({MAX_VIEWS_PER_SESSION})(path) AS paths \
             FROM (SELECT DISTINCT anchor, sid, t, path FROM session_views WHERE site = ? AND anchor >= {} AND {before}) \
             GROUP BY anchor, sid ORDER BY anchor DESC, sid DESC LIMIT {FUNNEL_CHUNK}",
            q.range.start_ms()
        );
        let rows: Vec<SessionViews> = Db::fetch(db.query(&sql).bind(site)).await?;
        for r in &rows {
            counter.add(&r.sid, r.ts.iter().copied().zip(r.paths.iter().map(|p| p.as_bytes())));
        }
        match rows.last() {
            Some(last) if rows.len() == FUNNEL_CHUNK => upper = Some((last.anchor, last.sid)),
            _ => break,
        }
    }
    Ok(counter.finish())
}
