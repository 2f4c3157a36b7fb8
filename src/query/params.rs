//! The operator API's query strings as typed structs: parsed once with serde (a bad value is a
//! 400 that names the parameter), documented for the OpenAPI description by their `IntoParams`
//! derive (the doc comment of a field is the parameter's description), and turned into what a
//! store is asked ([`Params::into_query`]): the stores never see a query string.

use std::borrow::Cow;

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};

use super::funnel::{FunnelQuery, Step, DEFAULT_WITHIN_MS, MAX_WITHIN_MS};
use super::{parse_day, DayRange, HeatmapQuery, PageQuery, PagesQuery, SessionCursor, SessionFilter, SessionQuery};
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

/// A query string that becomes what a store is asked, checked against the clock `now_ms`
/// (a missing `to` is today).
pub trait Params: DeserializeOwned {
    type Query;
    fn into_query(self, now_ms: i64) -> Result<Self::Query, String>;
}

/// A UTC day, `YYYY-MM-DD`, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(value_type = String, format = Date)]
pub struct Day(pub i32);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        parse_day(&s).map(Day).map_err(serde::de::Error::custom)
    }
}

/// `from`/`to` of every query over days (`GET /api/sites/{site}/stats` takes only these); the
/// other queries flatten it in and list it first in their `params(..)`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Days {
    /// First UTC day (inclusive); default 29 days before `to`.
    #[param(inline)]
    pub from: Option<Day>,
    /// Last UTC day (inclusive); default today. A range spans at most 3660 days.
    #[param(inline)]
    pub to: Option<Day>,
}

impl Params for Days {
    type Query = DayRange;

    fn into_query(self, now_ms: i64) -> Result<DayRange, String> {
        DayRange::new(self.from.map(|d| d.0), self.to.map(|d| d.0), now_ms)
    }
}

fn page_size(limit: Option<usize>) -> Result<usize, String> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(format!("limit must be 1..={MAX_PAGE}"))
    }
}

/// A page path as the rollups know it: the normalised path of a URL or of a path.
fn page_path(raw: &str) -> Result<String, String> {
    if raw.starts_with("http://") || raw.starts_with("https://") {
        return crate::privacy::url::normalize_url(raw, &Default::default())
            .map(|n| n.path)
            .ok_or_else(|| "path is not a usable URL".into());
    }
    if !raw.starts_with('/') {
        return Err("path must start with /".into());
    }
    Ok(crate::privacy::url::normalize_path(raw))
}

/// `GET /api/sites/{site}/pages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PagesParams {
    #[serde(flatten)]
    #[param(ignore)]
    pub days: Days,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<usize>,
    /// Rows to skip (the `next` of the previous page).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<usize>,
}

impl Params for PagesParams {
    type Query = PagesQuery;

    fn into_query(self, now_ms: i64) -> Result<PagesQuery, String> {
        let range = self.days.into_query(now_ms)?;
        Ok(PagesQuery { range, offset: self.offset.unwrap_or(0), limit: page_size(self.limit)? })
    }
}

/// `GET /api/sites/{site}/{scroll,forms,attention}`: one page's figures.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[serde(flatten)]
    #[param(ignore)]
    pub days: Days,
    /// Page path starting with `/` (normalised like stored paths), or a full http(s) URL.
    pub path: String,
}

impl Params for PageParams {
    type Query = PageQuery;

    fn into_query(self, now_ms: i64) -> Result<PageQuery, String> {
        Ok(PageQuery { range: self.days.into_query(now_ms)?, path: page_path(&self.path)? })
    }
}

/// `GET /api/sites/{site}/heatmap`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeatmapParams {
    #[serde(flatten)]
    #[param(ignore)]
    pub days: Days,
    /// Page path starting with `/` (normalised like stored paths), or a full http(s) URL.
    pub path: String,
    /// `click` (default), `move`, or `dead` (only the clicks that changed nothing).
    #[serde(default)]
    #[param(inline)]
    pub kind: HeatKind,
    #[serde(default, deserialize_with = "width_or_all")]
    #[param(schema_with = width_schema)]
    pub width: Option<WidthClass>,
}

impl Params for HeatmapParams {
    type Query = HeatmapQuery;

    fn into_query(self, now_ms: i64) -> Result<HeatmapQuery, String> {
        let (range, path) = (self.days.into_query(now_ms)?, page_path(&self.path)?);
        Ok(HeatmapQuery { path, kind: self.kind, width: self.width, range })
    }
}

/// `width`: a [`WidthClass`], or `all` for every class summed.
fn width_or_all<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WidthClass>, D::Error> {
    let s = <Cow<'de, str>>::deserialize(d)?;
    match WidthClass::parse(&s) {
        Some(class) => Ok(Some(class)),
        None if s == "all" => Ok(None),
        None => Err(serde::de::Error::unknown_variant(&s, &["all", "mobile", "tablet", "desktop"])),
    }
}

fn width_schema() -> utoipa::openapi::Object {
    let classes = WidthClass::ALL.map(WidthClass::as_str);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("Viewport width class, or `all` (default) for every class summed."))
        .enum_values(Some(std::iter::once("all").chain(classes)))
        .default(Some("all".into()))
        .build()
}

/// `GET /api/sites/{site}/funnel`; `from`/`to` select the sessions by their start.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    #[serde(flatten)]
    #[param(ignore)]
    pub days: Days,
    /// 2 to 10 comma-separated normalised paths in order; `*` matches one segment.
    pub steps: String,
    /// Most ms between two steps (1 ms to 30 days); default 30 minutes.
    pub within_ms: Option<i64>,
}

impl Params for FunnelParams {
    type Query = FunnelQuery;

    fn into_query(self, now_ms: i64) -> Result<FunnelQuery, String> {
        let range = self.days.into_query(now_ms)?;
        let steps = Step::parse_list(&self.steps)?;
        let within_ms = self.within_ms.unwrap_or(DEFAULT_WITHIN_MS);
        if !(1..=MAX_WITHIN_MS).contains(&within_ms) {
            return Err(format!("within_ms must be 1..={MAX_WITHIN_MS}"));
        }
        Ok(FunnelQuery { steps, within_ms, range })
    }
}

/// `GET /api/sites/{site}/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsParams {
    #[serde(flatten)]
    #[param(ignore)]
    pub days: Days,
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

impl Params for SessionsParams {
    type Query = SessionQuery;

    fn into_query(self, now_ms: i64) -> Result<SessionQuery, String> {
        let range = self.days.into_query(now_ms)?;
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

    fn ask<P: Params>(query: &str) -> Result<P::Query, String> {
        parse::<P>(Some(query))?.into_query(0)
    }

    #[test]
    fn a_bad_parameter_is_named() {
        let e = parse::<PagesParams>(Some("limit=x")).unwrap_err();
        assert!(e.contains("limit"), "{e}");
        let e = parse::<HeatmapParams>(Some("from=2026-01-01")).unwrap_err();
        assert!(e.contains("path"), "{e}");
        let e = parse::<HeatmapParams>(Some("path=/a&kind=hover")).unwrap_err();
        assert!(e.contains("kind"), "{e}");
        let e = parse::<HeatmapParams>(Some("path=/a&width=huge")).unwrap_err();
        assert!(e.contains("width"), "{e}");
        let e = parse::<PageParams>(Some("path=/a&from=yesterday")).unwrap_err();
        assert!(e.contains("yesterday"), "{e}");
    }

    #[test]
    fn values_parse_into_queries() {
        let q = ask::<HeatmapParams>("path=%2Fa&kind=move&width=mobile&from=1970-01-01&to=1970-01-02").unwrap();
        let range = DayRange { from: 0, to: 1 };
        assert_eq!(q, HeatmapQuery { path: "/a".into(), kind: HeatKind::Move, width: Some(WidthClass::Mobile), range });
        let q = ask::<HeatmapParams>("path=/a&width=all&to=1970-01-01").unwrap();
        assert_eq!((q.kind, q.width), (HeatKind::Click, None));
        let q = ask::<SessionsParams>("replay=true&min_rage_clicks=2&limit=5").unwrap();
        assert_eq!((q.limit, q.filter.replay, q.filter.min_rage_clicks), (5, Some(true), Some(2)));
        let q = ask::<PagesParams>("offset=10&to=1970-01-30").unwrap();
        assert_eq!(q, PagesQuery { range: DayRange { from: 0, to: 29 }, offset: 10, limit: DEFAULT_PAGE });
        assert!(ask::<PagesParams>("limit=0").is_err());
        assert!(ask::<PageParams>("path=pricing").is_err());
        assert!(ask::<Days>("from=1970-01-03&to=1970-01-02").is_err());
        assert!(ask::<FunnelParams>("steps=/a,/b&within_ms=0").is_err());
    }
}
