//! What operators ask and what they get back: the shapes of the read API, shared by every
//! store backend so that both answer identically.

pub mod forms;
pub mod funnel;
pub mod insights;
pub mod params;

use serde::Serialize;
use time::{Date, Duration, Month};

use crate::model::{day_of, SessionSummary};
use crate::rollup::day::DaySums;
use crate::rollup::heat::{HeatKind, WidthClass};
use crate::rollup::sketch::VisitorSketch;
use crate::rollup::track::SignalKind;
use crate::rollup::DayRollup;

/// An inclusive range of UTC days, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: i32,
    pub to: i32,
}

/// Most days one query may span.
pub const MAX_RANGE_DAYS: i32 = 3660;

impl DayRange {
    /// `from`..=`to` in days since 1970-01-01: a missing `to` is today, a missing `from` 29 days
    /// before `to`; at most [`MAX_RANGE_DAYS`].
    pub fn new(from: Option<i32>, to: Option<i32>, now_ms: i64) -> Result<Self, String> {
        let to = to.unwrap_or_else(|| day_of(now_ms));
        let from = from.unwrap_or(to - 29);
        if from > to {
            return Err("from is after to".into());
        }
        if to - from >= MAX_RANGE_DAYS {
            return Err(format!("a range spans at most {MAX_RANGE_DAYS} days"));
        }
        Ok(Self { from, to })
    }

    pub fn days(&self) -> impl Iterator<Item = i32> {
        self.from..=self.to
    }

    pub fn start_ms(&self) -> i64 {
        self.from as i64 * crate::model::DAY_MS
    }

    pub fn end_ms(&self) -> i64 {
        (self.to as i64 + 1) * crate::model::DAY_MS
    }
}

fn epoch() -> Date {
    Date::from_calendar_date(1970, Month::January, 1).expect("valid date")
}

pub fn parse_day(s: &str) -> Result<i32, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(s, &format).map_err(|_| format!("invalid date {s:?}: use YYYY-MM-DD"))?;
    Ok((date - epoch()).whole_days() as i32)
}

pub fn format_day(day: i32) -> String {
    let date = epoch() + Duration::days(day as i64);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(&format).unwrap_or_default()
}

/// `GET /api/sites/{site}/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub site: String,
    pub days: Vec<DayStats>,
    /// Over the whole range; `visitors` counts each visitor once however many days they came
    /// (exact within one day, estimated to about 1.6 % across several).
    pub totals: Figures,
}

/// One day's figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayStats {
    pub day: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The figures of a day or of a range.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    pub pageviews: u64,
    pub sessions: u64,
    pub visitors: u64,
    pub avg_load_ms: Option<f64>,
    pub p50_load_ms: Option<f64>,
    pub p95_load_ms: Option<f64>,
}

impl Figures {
    fn of(r: &DaySums, visitors: u64) -> Self {
        Figures {
            pageviews: r.pageviews,
            sessions: r.sessions,
            visitors,
            avg_load_ms: r.load_mean().map(round1),
            p50_load_ms: r.load_quantile(0.5).map(round1),
            p95_load_ms: r.load_quantile(0.95).map(round1),
        }
    }
}

/// One decimal, as every figure of the API is shown.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl Stats {
    /// Distinct visitors over the days of `rollups`: exact when they fall on one day, else the
    /// union of the days' sketches (≈1.6 % error), kept between the busiest day and the sum.
    pub fn distinct_visitors(rollups: &[(i32, DayRollup)]) -> u64 {
        let mut visitors = DistinctVisitors::default();
        for (_, r) in rollups {
            visitors.add(r.visitors, &r.visitor_sketch);
        }
        visitors.estimate()
    }

    /// Builds the answer from one rollup per day (missing days count as zero).
    pub fn from_rollups(site: &str, range: DayRange, rollups: &[(i32, DayRollup)], unique_visitors: u64) -> Self {
        let mut stats = StatsBuilder::new(site, range);
        let mut sums = DaySums::default();
        for (day, r) in rollups {
            sums.clear();
            sums.add(r);
            stats.add_day(*day, &sums);
        }
        let mut answer = stats.finish();
        answer.totals.visitors = unique_visitors;
        answer
    }
}

/// The stats answer, built one day at a time in increasing day order (a store adds each
/// stored day as it reads it, no list of decoded days kept).
pub struct StatsBuilder {
    site: String,
    range: DayRange,
    days: Vec<DayStats>,
    total: DaySums,
    visitors: DistinctVisitors,
}

impl StatsBuilder {
    pub fn new(site: &str, range: DayRange) -> Self {
        let days = Vec::with_capacity((range.to - range.from + 1).max(0) as usize);
        StatsBuilder { site: site.to_owned(), range, days, total: DaySums::default(), visitors: Default::default() }
    }

    /// Adds `day`'s figures; days before it without figures count as zero. A day outside the
    /// range, or not after the last one added, is ignored.
    pub fn add_day(&mut self, day: i32, sums: &DaySums) {
        let next = self.range.from + self.days.len() as i32;
        if day < next || day > self.range.to {
            return;
        }
        self.fill_to(day);
        self.total.add_figures(sums);
        self.visitors.add(sums.visitors, &sums.visitor_sketch);
        self.days.push(DayStats { day: format_day(day), figures: Figures::of(sums, sums.visitors) });
    }

    fn fill_to(&mut self, day: i32) {
        let empty = Figures::of(&DaySums::default(), 0);
        for d in self.range.from + self.days.len() as i32..day {
            self.days.push(DayStats { day: format_day(d), figures: empty.clone() });
        }
    }

    pub fn finish(mut self) -> Stats {
        self.fill_to(self.range.to + 1);
        let totals = Figures::of(&self.total, self.visitors.estimate());
        Stats { site: self.site, days: self.days, totals }
    }
}

/// Distinct visitors over several days: exact for one day, else the union of the days'
/// sketches (≈1.6 % error), kept between the busiest day and the sum.
#[derive(Default)]
struct DistinctVisitors {
    days: usize,
    busiest: u64,
    sum: u64,
    union: VisitorSketch,
}

impl DistinctVisitors {
    fn add(&mut self, visitors: u64, sketch: &VisitorSketch) {
        if visitors == 0 {
            return;
        }
        self.days += 1;
        self.busiest = self.busiest.max(visitors);
        self.sum += visitors;
        self.union.merge(sketch);
    }

    fn estimate(&self) -> u64 {
        match self.days {
            0 | 1 => self.sum,
            _ => self.union.estimate().clamp(self.busiest, self.sum),
        }
    }
}

/// A page of the per-page figures (`GET /api/sites/{site}/pages`), most viewed first.
#[derive(Debug, Clone, PartialEq)]
pub struct PagesQuery {
    pub range: DayRange,
    pub offset: usize,
    pub limit: usize,
}

/// One page's figures: its scroll reach, forms or attention.
#[derive(Debug, Clone, PartialEq)]
pub struct PageQuery {
    /// A normalised path, as the rollups know it.
    pub path: String,
    pub range: DayRange,
}

/// One page's heatmap (`GET /api/sites/{site}/heatmap`).
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapQuery {
    /// A normalised path, as the rollups know it.
    pub path: String,
    pub kind: HeatKind,
    /// `None` sums every viewport class.
    pub width: Option<WidthClass>,
    pub range: DayRange,
}

/// `GET /api/sites/{site}/sessions` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionQuery {
    pub range: DayRange,
    pub limit: usize,
    /// Continue strictly after this `(start, sid)` in newest-first order.
    pub cursor: Option<SessionCursor>,
    pub filter: SessionFilter,
}

/// Optional conditions on listed sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFilter {
    pub entry: Option<String>,
    pub device: Option<String>,
    pub min_duration_ms: Option<i64>,
    pub replay: Option<bool>,
    pub min_rage_clicks: Option<u32>,
    /// Sessions with at least one of these signals (empty: no condition).
    pub signals: Vec<SignalKind>,
}

/// Most sessions one list request examines; a filtered list continues from its cursor.
pub const MAX_SESSIONS_SCANNED: usize = 20_000;

impl SessionFilter {
    pub fn matches(&self, s: &SessionSummary) -> bool {
        self.entry.as_ref().is_none_or(|e| s.entry.as_deref() == Some(e.as_str()))
            && self.device.as_ref().is_none_or(|d| &s.device == d)
            && self.min_duration_ms.is_none_or(|m| s.duration_ms >= m)
            && self.replay.is_none_or(|r| s.replay == r)
            && self.min_rage_clicks.is_none_or(|r| s.rage_clicks >= r)
            && (self.signals.is_empty() || self.signals.iter().any(|k| signal_count(s, *k) > 0))
    }

    /// Parses `signal=rage,dead,error,quickback` (any of them).
    pub fn parse_signals(list: &str) -> Result<Vec<SignalKind>, String> {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                SignalKind::parse(s).ok_or_else(|| {
                    format!("unknown signal {s:?}: use rage, dead, error or quickback (comma-separated)")
                })
            })
            .collect()
    }
}

/// How many times a session showed one signal.
pub fn signal_count(s: &SessionSummary, kind: SignalKind) -> u32 {
    match kind {
        SignalKind::Rage => s.rage_clicks,
        SignalKind::Dead => s.dead_clicks,
        SignalKind::Error => s.error_clicks,
        SignalKind::QuickBack => s.quick_backs,
    }
}

/// Position in the newest-first session list: the session's anchor time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCursor {
    pub start: i64,
    pub sid: [u8; 16],
}

impl SessionCursor {
    pub fn encode(&self) -> String {
        format!("{}-{}", self.start, hex::encode(self.sid))
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (start, sid) = s.split_once('-')?;
        let sid = crate::model::Id128::parse(sid)?;
        Some(Self { start: start.parse().ok()?, sid: sid.0 })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SessionPage {
    pub sessions: Vec<SessionSummary>,
    pub next: Option<String>,
}

/// `POST /me/export`: everything kept about one visitor.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VisitorExport {
    pub site: String,
    /// The pseudonymous key the visitor is stored under.
    pub visitor_key: String,
    pub sessions: Vec<ExportedSession>,
}

/// One session of a [`VisitorExport`]: its summary and its events in time order.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExportedSession {
    pub session: SessionSummary,
    pub events: Vec<crate::model::Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(parse_day("1970-01-02").unwrap(), 1);
        assert_eq!(format_day(parse_day("2026-11-29").unwrap()), "2026-11-29");
        assert!(parse_day("2026-13-01").is_err());
        assert!(DayRange::new(parse_day("2026-02-01").ok(), parse_day("2026-01-01").ok(), 0).is_err());
        assert!(DayRange::new(Some(0), Some(MAX_RANGE_DAYS), 0).is_err());
        assert_eq!(DayRange::new(None, Some(100), 0), Ok(DayRange { from: 71, to: 100 }));
    }

    #[test]
    fn cursor_round_trip() {
        let c = SessionCursor { start: 17, sid: [3; 16] };
        assert_eq!(SessionCursor::decode(&c.encode()), Some(c));
        assert_eq!(SessionCursor::decode("x"), None);
    }
}
