//! The operator API under `/api/`: bearer-token auth, sites, stats, sessions. Never CORS.

use std::collections::HashMap;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use super::body;
use super::collect::now_ms;
use super::response::{self, Resp};
use crate::app::App;
use crate::config::{validate_site, RawSite};
use crate::error::ApiError;
use crate::model::{Id128, VisitorKey};
use crate::query::{DayRange, SessionCursor, SessionFilter, SessionQuery};
use crate::rollup::heat::{HeatKind, WidthClass};

/// Largest body accepted by the operator API.
const MAX_API_BODY: usize = 64 * 1024;
/// Default and largest page of sessions.
const DEFAULT_SESSION_PAGE: usize = 50;
const MAX_SESSION_PAGE: usize = 1000;

pub async fn handle(app: &App, method: Method, req: Request<Incoming>) -> Result<Resp, ApiError> {
    authorize(app, &req)?;
    let path = req.uri().path().to_owned();
    let params = query_params(req.uri().query());
    let segments: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
    let resp = match (method, segments.as_slice()) {
        (Method::GET, ["sites"]) => list_sites(app),
        (Method::POST, ["sites"]) => create_site(app, req).await,
        (Method::GET, ["sites", site, "stats"]) => stats(app, site, &params).await,
        (Method::GET, ["sites", site, "sessions"]) => sessions(app, site, &params).await,
        (Method::GET, ["sites", site, "pages"]) => pages(app, site, &params).await,
        (Method::GET, ["sites", site, "heatmap"]) => heatmap(app, site, &params).await,
        (Method::GET, ["sites", site, "scroll"]) => scroll(app, site, &params).await,
        (Method::GET, ["sites", site, "sessions", sid]) => session(app, site, sid).await,
        (Method::DELETE, ["sites", site, "visitors", key]) => forget_visitor(app, site, key).await,
        (
            _,
            ["sites"]
            | ["sites", _, "stats" | "sessions" | "pages" | "heatmap" | "scroll"]
            | ["sites", _, "sessions" | "visitors", _],
        ) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound(format!("no route for {path}"))),
    }?;
    Ok(response::no_store(resp))
}

fn authorize(app: &App, req: &Request<Incoming>) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    if bool::from(given.as_bytes().ct_eq(app.admin_token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn query_params(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

fn known_site(app: &App, site: &str) -> Result<(), ApiError> {
    app.sites.get(site).map(|_| ()).ok_or_else(|| ApiError::not_found(format!("site {site:?}")))
}

fn day_range(params: &HashMap<String, String>) -> Result<DayRange, ApiError> {
    DayRange::parse(params.get("from").map(String::as_str), params.get("to").map(String::as_str), now_ms())
        .map_err(ApiError::BadRequest)
}

fn list_sites(app: &App) -> Result<Resp, ApiError> {
    let sites: Vec<_> = app.sites.all().iter().map(|s| s.settings.clone()).collect();
    Ok(response::json(StatusCode::OK, &serde_json::json!({ "sites": sites })))
}

async fn create_site(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let (parts, incoming) = req.into_parts();
    let bytes = body::read_limited(&parts.headers, incoming, MAX_API_BODY, app.config.server.body_timeout).await?;
    let raw: RawSite =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("invalid site: {e}")))?;
    let settings = validate_site(raw).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if app.sites.get(&settings.id).is_some() {
        return Err(ApiError::Conflict(format!("site {:?} exists", settings.id)));
    }
    app.store.put_site(&settings).await?;
    app.sites.insert(settings.clone());
    tracing::info!(site = %settings.id, "site created");
    Ok(response::json(StatusCode::CREATED, &settings))
}

async fn stats(app: &App, site: &str, params: &HashMap<String, String>) -> Result<Resp, ApiError> {
    known_site(app, site)?;
    let range = day_range(params)?;
    let stats = app.store.stats(site, range).await?;
    Ok(response::json(StatusCode::OK, &stats))
}

/// An optional numeric parameter, named in the error when it does not parse.
fn number<T: std::str::FromStr>(params: &HashMap<String, String>, name: &str) -> Result<Option<T>, ApiError> {
    params
        .get(name)
        .map(|v| v.parse().map_err(|_| ApiError::BadRequest(format!("{name} must be a number"))))
        .transpose()
}

fn required<'p>(params: &'p HashMap<String, String>, name: &str) -> Result<&'p str, ApiError> {
    params.get(name).map(String::as_str).ok_or_else(|| ApiError::BadRequest(format!("missing parameter {name}")))
}

/// A page path as the rollups know it: the normalised path of a URL or of a path.
fn page_path(params: &HashMap<String, String>) -> Result<String, ApiError> {
    let raw = required(params, "path")?;
    if raw.starts_with("http://") || raw.starts_with("https://") {
        return crate::privacy::url::normalize_url(raw, &Default::default())
            .map(|n| n.path)
            .ok_or_else(|| ApiError::BadRequest("path is not a usable URL".into()));
    }
    if !raw.starts_with('/') {
        return Err(ApiError::BadRequest("path must start with /".into()));
    }
    Ok(crate::privacy::url::normalize_path(raw))
}

async fn pages(app: &App, site: &str, params: &HashMap<String, String>) -> Result<Resp, ApiError> {
    known_site(app, site)?;
    let range = day_range(params)?;
    let limit = number(params, "limit")?.unwrap_or(DEFAULT_SESSION_PAGE);
    if !(1..=MAX_SESSION_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be 1..={MAX_SESSION_PAGE}")));
    }
    let offset = number(params, "offset")?.unwrap_or(0);
    Ok(response::json(StatusCode::OK, &app.store.pages(site, range, offset, limit).await?))
}

async fn heatmap(app: &App, site: &str, params: &HashMap<String, String>) -> Result<Resp, ApiError> {
    known_site(app, site)?;
    let range = day_range(params)?;
    let path = page_path(params)?;
    let kind = params.get("kind").map_or("click", String::as_str);
    let kind = HeatKind::parse(kind).ok_or_else(|| ApiError::BadRequest("kind must be click, move or dead".into()))?;
    let width = match params.get("width").map(String::as_str) {
        None | Some("all") => None,
        Some(w) => Some(
            WidthClass::parse(w)
                .ok_or_else(|| ApiError::BadRequest("width must be mobile, tablet, desktop or all".into()))?,
        ),
    };
    Ok(response::json(StatusCode::OK, &app.store.heatmap(site, &path, kind, width, range).await?))
}

async fn scroll(app: &App, site: &str, params: &HashMap<String, String>) -> Result<Resp, ApiError> {
    known_site(app, site)?;
    let range = day_range(params)?;
    let path = page_path(params)?;
    Ok(response::json(StatusCode::OK, &app.store.scroll(site, &path, range).await?))
}

async fn sessions(app: &App, site: &str, params: &HashMap<String, String>) -> Result<Resp, ApiError> {
    known_site(app, site)?;
    let range = day_range(params)?;
    let limit = number(params, "limit")?.unwrap_or(DEFAULT_SESSION_PAGE);
    if !(1..=MAX_SESSION_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be 1..={MAX_SESSION_PAGE}")));
    }
    let cursor = match params.get("cursor") {
        Some(c) => Some(SessionCursor::decode(c).ok_or_else(|| ApiError::BadRequest("invalid cursor".into()))?),
        None => None,
    };
    let replay = match params.get("replay").map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(_) => return Err(ApiError::BadRequest("replay must be true or false".into())),
    };
    let filter = SessionFilter {
        entry: params.get("entry").cloned(),
        device: params.get("device").cloned(),
        min_duration_ms: number(params, "min_duration_ms")?,
        replay,
        min_rage_clicks: number(params, "min_rage_clicks")?,
        signals: match params.get("signal") {
            Some(list) => SessionFilter::parse_signals(list).map_err(ApiError::BadRequest)?,
            None => Vec::new(),
        },
    };
    let page = app.store.sessions(site, &SessionQuery { range, limit, cursor, filter }).await?;
    Ok(response::json(StatusCode::OK, &page))
}

async fn session(app: &App, site: &str, sid: &str) -> Result<Resp, ApiError> {
    known_site(app, site)?;
    let id = Id128::parse(sid).ok_or_else(|| ApiError::BadRequest("session id must be 32 lowercase hex".into()))?;
    let events =
        app.store.session_events(site, id).await?.ok_or_else(|| ApiError::not_found(format!("session {sid}")))?;
    // Where the replay finds each page asset: the collector's copy, or nothing (never the site).
    let assets = app.assets.map_for(site, &events);
    let signals = crate::rollup::track::signals_of(&events);
    Ok(response::json(
        StatusCode::OK,
        &serde_json::json!({ "id": sid, "events": events, "signals": signals, "assets": assets }),
    ))
}

async fn forget_visitor(app: &App, site: &str, key: &str) -> Result<Resp, ApiError> {
    known_site(app, site)?;
    let visitor =
        VisitorKey::parse(key).ok_or_else(|| ApiError::BadRequest("visitor key must be 32 lowercase hex".into()))?;
    let erased = app.writer.forget(site, visitor).await.map_err(ApiError::Internal)?;
    tracing::info!(site, sessions = erased, "visitor erased by an operator");
    Ok(response::empty(StatusCode::NO_CONTENT))
}
