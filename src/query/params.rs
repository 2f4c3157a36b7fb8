//! The operator API's query strings as typed structs: parsed once with serde (a bad value is a
//! 400 that names the parameter), and documented for the OpenAPI description by their
//! `IntoParams` derive — the doc comment of a field is the parameter's description.

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{parse_day, DayRange, SessionCursor, SessionFilter, SessionQuery, MAX_RANGE_DAYS};
use crate::rollup::heat::{HeatKind, WidthClass};

/// Default and largest page of a list.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 1000;

/// Parses a query string into `T`; the error names the parameter at fault.
pub fn parse<T: DeserializeOwned>(query: Option<&str>) -> Result<T, String> {
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.unwrap_or("").as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| match e.path().to_string().as_str() {
        "." => format!("invalid query: {}", e.inner()),
        name => format!("invalid query parameter {name}: {}", e.inner()),
    })
}

/// A UTC day, `YYYY-MM-DD`, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(value_type = String, format = Date)]
pub struct Day(pub i32);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_day(&s).map(Day).map_err(serde::de::Error::custom)
    }
}

/// `from`/`to` of a query: a missing `to` is today, a missing `from` 29 days before `to`.
pub fn day_range(from: Option<Day>, to: Option<Day>, now_ms: i64) -> Result<DayRange, String> {
    let to = to.map_or_else(|| crate::model::day_of(now_ms), |d| d.0);
    let from = from.map_or(to - 29, |d| d.0);
    if from > to {
        return Err("from is after to".into());
    }
    if to - from >= MAX_RANGE_DAYS {
        return Err(format!("a range spans at most {MAX_RANGE_DAYS} days"));
    }
    Ok(DayRange { from, to })
}

fn page_size(limit: Option<usize>) -> Result<usize, String> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(format!("limit must be 1..={MAX_PAGE}"))
    }
}

/// `GET /api/sites/{site}/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// First UTC day (inclusive); default 29 days before `to`.
    #[param(inline)]
    pub from: Option<Day>,
    /// Last UTC day (inclusive); default today. A range spans at most 3660 days.
    #[param(inline)]
    pub to: Option<Day>,
}

impl StatsQuery {
    pub fn range(&self, now_ms: i64) -> Result<DayRange, String> {
        day_range(self.from, self.to, now_ms)
    }
}

/// `GET /api/sites/{site}/pages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PagesQuery {
    /// First UTC day (inclusive); default 29 days before `to`.
    #[param(inline)]
    pub from: Option<Day>,
    /// Last UTC day (inclusive); default today. A range spans at most 3660 days.
    #[param(inline)]
    pub to: Option<Day>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<usize>,
    /// Rows to skip (the `next` of the previous page).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<usize>,
}

impl PagesQuery {
    pub fn range(&self, now_ms: i64) -> Result<DayRange, String> {
        day_range(self.from, self.to, now_ms)
    }

    pub fn limit(&self) -> Result<usize, String> {
        page_size(self.limit)
    }
}

/// Which heatmap: clicks, pointer moves, or only the dead clicks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindParam {
    #[default]
    Click,
    Move,
    /// Only the clicks the snippet reported as dead.
    Dead,
}

impl From<KindParam> for HeatKind {
    fn from(k: KindParam) -> Self {
        match k {
            KindParam::Click => HeatKind::Click,
            KindParam::Move => HeatKind::Move,
            KindParam::Dead => HeatKind::Dead,
        }
    }
}

/// Which viewport widths a heatmap shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WidthParam {
    #[default]
    All,
    Mobile,
    Tablet,
    Desktop,
}

impl WidthParam {
    pub fn class(self) -> Option<WidthClass> {
        match self {
            WidthParam::All => None,
            WidthParam::Mobile => Some(WidthClass::Mobile),
            WidthParam::Tablet => Some(WidthClass::Tablet),
            WidthParam::Desktop => Some(WidthClass::Desktop),
        }
    }
}

/// `GET /api/sites/{site}/heatmap`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeatmapQuery {
    /// First UTC day (inclusive); default 29 days before `to`.
    #[param(inline)]
    pub from: Option<Day>,
    /// Last UTC day (inclusive); default today. A range spans at most 3660 days.
    #[param(inline)]
    pub to: Option<Day>,
    /// Page path starting with `/` (normalised like stored paths), or a full http(s) URL.
    pub path: String,
    /// `click` (default), `move`, or `dead` (only the clicks that changed nothing).
    #[serde(default)]
    #[param(inline)]
    pub kind: KindParam,
    /// Viewport width class; default `all`.
    #[serde(default)]
    #[param(inline)]
    pub width: WidthParam,
}

impl HeatmapQuery {
    pub fn range(&self, now_ms: i64) -> Result<DayRange, String> {
        day_range(self.from, self.to, now_ms)
    }
}

/// `GET /api/sites/{site}/scroll`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScrollQuery {
    /// First UTC day (inclusive); default 29 days before `to`.
    #[param(inline)]
    pub from: Option<Day>,
    /// Last UTC day (inclusive); default today. A range spans at most 3660 days.
    #[param(inline)]
    pub to: Option<Day>,
    /// Page path starting with `/` (normalised like stored paths), or a full http(s) URL.
    pub path: String,
}

impl ScrollQuery {
    pub fn range(&self, now_ms: i64) -> Result<DayRange, String> {
        day_range(self.from, self.to, now_ms)
    }
}

/// `GET /api/sites/{site}/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    /// First UTC day (inclusive); default 29 days before `to`.
    #[param(inline)]
    pub from: Option<Day>,
    /// Last UTC day (inclusive); default today. A range spans at most 3660 days.
    #[param(inline)]
    pub to: Option<Day>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Only sessions that entered on this path.
    pub entry: Option<String>,
    /// Only sessions from this device class (`desktop`, `mobile`, `tablet`).
    pub device: Option<String>,
    /// Only sessions at least this long.
    pub min_duration_ms: Option<i64>,
    /// Only sessions with (`true`) or without (`false`) a replay.
    pub replay: Option<bool>,
    /// Only sessions with at least this many rage clicks.
    pub min_rage_clicks: Option<u32>,
    /// Only sessions with any of these signals: `rage`, `dead`, `error`, `quickback`, comma-separated.
    pub signal: Option<String>,
}

impl SessionsQuery {
    /// The validated query the stores answer.
    pub fn into_query(self, now_ms: i64) -> Result<SessionQuery, String> {
        let range = day_range(self.from, self.to, now_ms)?;
        let limit = page_size(self.limit)?;
        let cursor = match &self.cursor {
            Some(c) => Some(SessionCursor::decode(c).ok_or("invalid cursor")?),
            None => None,
        };
        let filter = SessionFilter {
            entry: self.entry,
            device: self.device,
            min_duration_ms: self.min_duration_ms,
            replay: self.replay,
            min_rage_clicks: self.min_rage_clicks,
            signals: match &self.signal {
                Some(list) => SessionFilter::parse_signals(list)?,
                None => Vec::new(),
            },
        };
        Ok(SessionQuery { range, limit, cursor, filter })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_parameter_is_named() {
        let e = parse::<PagesQuery>(Some("limit=x")).unwrap_err();
        assert!(e.contains("limit"), "{e}");
        let e = parse::<HeatmapQuery>(Some("from=2026-01-01")).unwrap_err();
        assert!(e.contains("path"), "{e}");
        let e = parse::<HeatmapQuery>(Some("path=/a&kind=hover")).unwrap_err();
        assert!(e.contains("kind"), "{e}");
    }

    #[test]
    fn values_parse_into_types() {
        let q = parse::<HeatmapQuery>(Some("path=%2Fa&kind=move&width=mobile&from=1970-01-02")).unwrap();
        assert_eq!(
            (q.path.as_str(), q.kind, q.width, q.from),
            ("/a", KindParam::Move, WidthParam::Mobile, Some(Day(1)))
        );
        let q = parse::<SessionsQuery>(Some("replay=true&min_rage_clicks=2&limit=5")).unwrap();
        let q = q.into_query(0).unwrap();
        assert_eq!((q.limit, q.filter.replay, q.filter.min_rage_clicks), (5, Some(true), Some(2)));
        assert!(parse::<PagesQuery>(Some("limit=0")).unwrap().limit().is_err());
        assert!(day_range(Some(Day(2)), Some(Day(1)), 0).is_err());
    }
}
