//! The operator API under `/api/`: sites, stats, pages, heatmaps, scroll reach, sessions and
//! erasure. Every handler here is routed as `Operator` (bearer token, never CORS, `no-store`).

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::body;
use super::response::{self, ErrorBody, QueryFailures, Resp};
use super::routes::Call;
use crate::config::{validate_site, RawSite};
use crate::error::ApiError;
use crate::model::{Event, Id128, SiteSettings, VisitorKey};
use crate::query::forms::{Attention, Forms};
use crate::query::funnel::Funnel;
use crate::query::insights::{Heatmap, Pages, ScrollReach};
use crate::query::params::{Days, FunnelParams, HeatmapParams, PageParams, PagesParams, SessionsParams};
use crate::query::{SessionPage, Stats};
use crate::rollup::track::Signal;

/// Largest body accepted by the operator API.
const MAX_API_BODY: usize = 64 * 1024;

/// `GET /api/sites`.
#[derive(Serialize, ToSchema)]
pub struct SiteList {
    pub sites: Vec<SiteSettings>,
}

/// `GET /api/sites/{site}/sessions/{sid}`: what the replay player needs.
#[derive(Serialize, ToSchema)]
pub struct SessionEvents {
    pub id: String,
    /// In the client's order: batch by batch (`seq`), then in time order; times never go back.
    pub events: Vec<Event>,
    /// Frustration signals, for the replay timeline.
    pub signals: Vec<Signal>,
    /// Every page asset (stylesheet, image, font) the recording names, by absolute URL: the
    /// collector's captured copy (`/dashboard/asset/{sha256}`), or null when it was not captured
    /// (not one of the site's asset origins, refused, failed, or not fetched yet). A replay loads
    /// assets only from here.
    pub assets: std::collections::BTreeMap<String, Option<String>>,
}

/// The `{site}` of the path, which must be a configured site.
fn site<'c>(call: &'c Call<'_>) -> Result<&'c str, ApiError> {
    let site = call.param("site");
    call.app.sites.get(site).map(|_| site).ok_or_else(|| ApiError::not_found(format!("site {site:?}")))
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

#[utoipa::path(get, path = "/api/sites", summary = "List sites",
    responses((status = 200, description = "Every site.", body = SiteList)))]
pub async fn list_sites(call: Call<'_>) -> Result<Resp, ApiError> {
    let sites = call.app.sites.all().iter().map(|s| s.settings.clone()).collect();
    Ok(response::json(StatusCode::OK, &SiteList { sites }))
}

#[utoipa::path(post, path = "/api/sites", summary = "Create a site",
    request_body(content = RawSite, description = "The site; unset fields take their defaults."),
    responses(
        (status = 201, description = "Created.", body = SiteSettings),
        (status = 400, description = "Invalid site.", body = ErrorBody),
        (status = 408, description = "The body took too long to arrive.", body = ErrorBody),
        (status = 409, description = "A site with this id exists.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Not JSON.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ))]
pub async fn create_site(call: Call<'_>) -> Result<Resp, ApiError> {
    let app = call.app;
    let (parts, incoming) = call.req.into_parts();
    let bytes = body::read_limited(&parts.headers, incoming, MAX_API_BODY, app.config.server.body_timeout).await?;
    let raw: RawSite = serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid site: {e}")))?;
    let settings = validate_site(raw).map_err(|e| bad(e.to_string()))?;
    if app.sites.get(&settings.id).is_some() {
        return Err(ApiError::Conflict("a site with this id exists".into()));
    }
    app.store.put_site(&settings).await?;
    app.sites.insert(settings.clone());
    tracing::info!("site created");
    Ok(response::json(StatusCode::CREATED, &settings))
}

#[utoipa::path(get, path = "/api/sites/{site}/stats", summary = "Per-day figures",
    params(("site" = String, Path, description = "Site id."), Days),
    responses(
        (status = 200, description = "One row per day of the range, and totals.", body = Stats),
        QueryFailures,
    ))]
pub async fn stats(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    let stats = call.app.store.stats(site, call.ask::<Days>()?).await?;
    Ok(response::json(StatusCode::OK, &stats))
}

#[utoipa::path(get, path = "/api/sites/{site}/pages", summary = "Per-page figures",
    params(("site" = String, Path, description = "Site id."), Days, PagesParams),
    responses(
        (status = 200, description = "Pages by pageviews, most viewed first.", body = Pages),
        QueryFailures,
    ))]
pub async fn pages(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    let pages = call.app.store.pages(site, &call.ask::<PagesParams>()?).await?;
    Ok(response::json(StatusCode::OK, &pages))
}

#[utoipa::path(get, path = "/api/sites/{site}/heatmap", summary = "Click or move heatmap of one page",
    description = "x is a column of the document width, y a row of row_px CSS px. Moves count at most 300 cells per page view.",
    params(("site" = String, Path, description = "Site id."), Days, HeatmapParams),
    responses(
        (status = 200, description = "The heatmap.", body = Heatmap),
        QueryFailures,
    ))]
pub async fn heatmap(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    let heatmap = call.app.store.heatmap(site, &call.ask::<HeatmapParams>()?).await?;
    Ok(response::json(StatusCode::OK, &heatmap))
}

#[utoipa::path(get, path = "/api/sites/{site}/scroll", summary = "Scroll reach of one page",
    params(("site" = String, Path, description = "Site id."), Days, PageParams),
    responses(
        (status = 200, description = "Share of pageviews that reached each depth.", body = ScrollReach),
        QueryFailures,
    ))]
pub async fn scroll(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    Ok(response::json(StatusCode::OK, &call.app.store.scroll(site, &call.ask::<PageParams>()?).await?))
}

#[utoipa::path(get, path = "/api/sites/{site}/sessions", summary = "Sessions, newest first",
    params(("site" = String, Path, description = "Site id."), Days, SessionsParams),
    responses(
        (status = 200, description = "A page of sessions; `next` continues the list.", body = SessionPage),
        QueryFailures,
    ))]
pub async fn sessions(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    let page = call.app.store.sessions(site, &call.ask::<SessionsParams>()?).await?;
    Ok(response::json(StatusCode::OK, &page))
}

#[utoipa::path(get, path = "/api/sites/{site}/sessions/{sid}", summary = "A session's events, for replay",
    params(
        ("site" = String, Path, description = "Site id."),
        ("sid" = String, Path, description = "Session id, 32 lowercase hex.", pattern = "^[0-9a-f]{32}$"),
    ),
    responses(
        (status = 200, description = "The session's events in time order.", body = SessionEvents),
        (status = 400, description = "The session id is malformed.", body = ErrorBody),
        (status = 404, description = "No such site or session.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ))]
pub async fn session(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    let sid = call.param("sid");
    let id = Id128::parse(sid).ok_or_else(|| bad("session id must be 32 lowercase hex".into()))?;
    let events =
        call.app.store.session_events(site, id).await?.ok_or_else(|| ApiError::not_found(format!("session {sid}")))?;
    let signals = crate::rollup::track::signals_of(&events);
    // Where the replay finds each page asset: the collector's copy, or nothing (never the site).
    let assets = call.app.assets.map_for(site, &events);
    Ok(response::json(StatusCode::OK, &SessionEvents { id: sid.to_owned(), events, signals, assets }))
}

#[utoipa::path(delete, path = "/api/sites/{site}/visitors/{visitor_key}", summary = "Erase one pseudonymous visitor",
    params(
        ("site" = String, Path, description = "Site id."),
        ("visitor_key" = String, Path, description = "The `visitor` of a session, 32 lowercase hex.", pattern = "^[0-9a-f]{32}$"),
    ),
    responses(
        (status = 204, description = "Erased (durably), or there was nothing to erase."),
        (status = 400, description = "The key is malformed.", body = ErrorBody),
        (status = 404, description = "No such site.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ))]
pub async fn forget_visitor(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    let key = call.param("visitor_key");
    let visitor = VisitorKey::parse(key).ok_or_else(|| bad("visitor key must be 32 lowercase hex".into()))?;
    let erased = call.app.writer.forget(site, visitor).await?;
    tracing::info!(sessions = erased, "visitor erased by an operator");
    Ok(response::empty(StatusCode::NO_CONTENT))
}

#[utoipa::path(get, path = "/api/sites/{site}/forms", summary = "Form analytics of one page",
    params(("site" = String, Path, description = "Site id."), Days, PageParams),
    responses(
        (status = 200, description = "Starters, submits, abandon rate and per-field figures of each form.", body = Forms),
        QueryFailures,
    ))]
pub async fn forms(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    Ok(response::json(StatusCode::OK, &call.app.store.forms(site, &call.ask::<PageParams>()?).await?))
}

#[utoipa::path(get, path = "/api/sites/{site}/attention", summary = "Attention per 5 % band of one page",
    params(("site" = String, Path, description = "Site id."), Days, PageParams),
    responses(
        (status = 200, description = "Mean visible, active time per pageview of 20 bands of the document.", body = Attention),
        QueryFailures,
    ))]
pub async fn attention(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    Ok(response::json(StatusCode::OK, &call.app.store.attention(site, &call.ask::<PageParams>()?).await?))
}

#[utoipa::path(get, path = "/api/sites/{site}/funnel", summary = "A conversion funnel over pages",
    description = "`from`/`to` select the sessions by the UTC day they started.",
    params(("site" = String, Path, description = "Site id."), Days, FunnelParams),
    responses(
        (status = 200, description = "Sessions, conversion and median time per step; sessions that left after each step.", body = Funnel),
        QueryFailures,
    ))]
pub async fn funnel(call: Call<'_>) -> Result<Resp, ApiError> {
    let site = site(&call)?;
    let funnel = call.app.store.funnel(site, &call.ask::<FunnelParams>()?).await?;
    Ok(response::json(StatusCode::OK, &funnel))
}
