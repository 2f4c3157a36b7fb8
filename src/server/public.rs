//! The public, unauthenticated endpoints as routed handlers: `/collect`, health and metrics, the
//! snippet and other static files, the dashboard's files, the visitor's own pages and requests,
//! and the OpenAPI document. Each one delegates to the module that owns its behaviour.

use std::sync::LazyLock;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::response::{self, ErrorBody, Resp};
use super::routes::Call;
use super::{assets, collect, dashboard, visitor};
use crate::error::ApiError;
use crate::ingest::wire::WireBatch;
use crate::query::VisitorExport;

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

#[utoipa::path(post, path = "/collect", summary = "Send one batch of events",
    description = "Opt-out signals (`hushtale_optout=1` cookie, `DNT: 1`, `Sec-GPC: 1`) make the batch be dropped unread with 204. Batches whose User-Agent is not a browser are dropped as bots (204).",
    params(("Content-Encoding" = Option<String>, Header, description = "`gzip` compresses the body.")),
    request_body(content(
        (WireBatch = "application/json"),
        (String = "text/plain"),
        (Vec<u8> = "application/msgpack"),
    ), description = "The batch: JSON, JSON as text (as navigator.sendBeacon sends it) or MessagePack."),
    responses(
        (status = 204, description = "Durably stored (flushed to disk), a duplicate of a stored (sid, seq), or deliberately dropped (opted out, bot)."),
        (status = 400, description = "The batch is malformed or has no valid event.", body = ErrorBody),
        (status = 403, description = "The Origin may not send to this site.", body = ErrorBody),
        (status = 404, description = "No such site.", body = ErrorBody),
        (status = 408, description = "The body took too long to arrive.", body = ErrorBody),
        (status = 413, description = "Body, inflated body or event count too large.", body = ErrorBody),
        (status = 415, description = "Unsupported Content-Type or Content-Encoding.", body = ErrorBody),
        (status = 429, description = "Rate limited.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait."))),
        (status = 500, description = "The store failed.", body = ErrorBody),
        (status = 503, description = "Queue full or shutting down.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait."))),
    ))]
pub async fn collect(call: Call<'_>) -> Result<Resp, ApiError> {
    Ok(collect::handle(call.app, call.req, call.peer).await)
}

/// The documented answers of a CORS preflight.
#[rustfmt::skip]
macro_rules! preflight {
    ($name:ident, $path:literal) => {
        #[utoipa::path(options, path = $path, summary = "CORS preflight",
            params(("Origin" = String, Header, description = "The page's origin.")),
            responses(
                (status = 204, description = "Some site accepts this origin."),
                (status = 400, description = "No Origin.", body = ErrorBody),
                (status = 403, description = "No site accepts this origin.", body = ErrorBody),
            ))]
        pub async fn $name(call: Call<'_>) -> Result<Resp, ApiError> {
            collect::preflight(call.app, &call.req)
        }
    };
}

preflight!(collect_preflight, "/collect");
preflight!(optout_preflight, "/optout");
preflight!(me_export_preflight, "/me/export");
preflight!(me_forget_preflight, "/me/forget");

#[utoipa::path(method(get, head), path = "/healthz", summary = "Readiness",
    responses((status = 200, description = "Ready.", body = Health)))]
pub async fn healthz(_call: Call<'_>) -> Result<Resp, ApiError> {
    Ok(response::json(StatusCode::OK, &Health { status: "ok" }))
}

#[utoipa::path(get, path = "/metrics", summary = "Prometheus metrics",
    description = "OpenMetrics text; every metric name starts with `hushtale_`. With `metrics_token` configured it needs `Authorization: Bearer` with that token (or the operator token).",
    responses(
        (status = 200, description = "The metrics.", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "`metrics_token` is set and was not sent.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody),
        (status = 500, description = "Encoding failed.", body = ErrorBody),
    ))]
pub async fn metrics(call: Call<'_>) -> Result<Resp, ApiError> {
    let app = call.app;
    if let Some(token) = &app.config.metrics_token {
        super::router::authorize(app, &call.req, call.peer, &[token, &app.admin_token])?;
    }
    app.metrics.queue_depth.set(app.writer.depth() as i64);
    let mut text = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &app.registry)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(response::with_body(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        Bytes::from(text),
    ))
}

/// A static file with `ETag` revalidation: its documented answers.
#[rustfmt::skip]
macro_rules! static_file {
    ($name:ident, $methods:tt, $path:literal, $summary:literal, $type:literal, $asset:expr) => {
        #[utoipa::path(method $methods, path = $path, summary = $summary,
            params(("If-None-Match" = Option<String>, Header, description = "A previous `ETag`.")),
            responses(
                (status = 200, description = "The file.", content_type = $type, body = String),
                (status = 304, description = "Not modified since the `ETag` sent."),
            ))]
        pub async fn $name(call: Call<'_>) -> Result<Resp, ApiError> {
            Ok(assets::serve(&$asset, call.headers()))
        }
    };
}

static_file!(
    snippet,
    (get, head),
    "/hushtale.js",
    "The recording snippet, minified",
    "text/javascript",
    assets::SNIPPET
);
static_file!(
    replay_recorder,
    (get, head),
    "/hushtale-replay.js",
    "The DOM replay recorder, loaded lazily by sampled sessions",
    "text/javascript",
    assets::REPLAY
);
static_file!(
    replay_player,
    (get, head),
    "/hushtale-player.js",
    "The replay player used by the dashboard",
    "text/javascript",
    assets::PLAYER
);
static_file!(
    more,
    (get, head),
    "/hushtale-more.js",
    "The snippet's lazily loaded part: SPA views, dead clicks, pointer moves and resizes",
    "text/javascript",
    assets::MORE
);
static_file!(demo, (get), "/demo", "Demo page embedding the snippet", "text/html", assets::DEMO);

#[utoipa::path(method(get, head), path = "/dashboard",
    summary = "The operator dashboard (loads without a token; its API calls carry one)",
    params(("If-None-Match" = Option<String>, Header, description = "A previous `ETag`.")),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String),
        (status = 304, description = "Not modified since the `ETag` sent."),
    ))]
pub async fn dashboard(call: Call<'_>) -> Result<Resp, ApiError> {
    dashboard::serve("/dashboard", call.headers()).ok_or_else(|| ApiError::not_found("file"))
}

#[utoipa::path(method(get, head), path = "/dashboard/{*file}",
    summary = "A file of the dashboard (scripts, styles, the replay frame), or a captured page asset",
    description = "`asset/{sha256}`: a stylesheet (rewritten to name the collector's copies of its fonts and images), image or font of a site's own origins, captured by the collector for replays; found only by the hash the session API gives; served with nosniff and a sandboxing CSP.",
    params(
        ("file" = String, Path, description = "File name, like `app.js` or `frame`."),
        ("If-None-Match" = Option<String>, Header, description = "A previous `ETag`."),
    ),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/javascript"), (String = "text/css"), (String = "text/html"))),
        (status = 304, description = "Not modified since the `ETag` sent."),
        (status = 404, description = "No such file.", body = ErrorBody),
    ))]
pub async fn dashboard_file(call: Call<'_>) -> Result<Resp, ApiError> {
    let path = call.req.uri().path();
    // `/dashboard/asset/{sha256}`: a page asset captured for replays (see `crate::assets`).
    if let Some(hash) = path.strip_prefix(crate::assets::ROUTE) {
        return dashboard::asset(call.app, hash, call.headers()).ok_or_else(|| ApiError::not_found("asset"));
    }
    dashboard::serve(path, call.headers()).ok_or_else(|| ApiError::not_found("file"))
}

#[utoipa::path(get, path = "/disable", summary = "Opt this browser out",
    description = "Explains what is recorded and sets the cookie `hushtale_optout=1` for 400 days (`Path` is the base path of `public_url`; `SameSite=None; Secure` over HTTPS), and says plainly that a cross-site collector cannot be reached this way where third-party cookies are blocked.",
    params(("embed" = Option<String>, Query, description = "`1`: the compact widget a site frames on its privacy page (framable by the configured sites' origins; over HTTPS its cookie is `Partitioned`).")),
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)))]
pub async fn disable(call: Call<'_>) -> Result<Resp, ApiError> {
    Ok(visitor::disable(call.app, &call.req))
}

#[utoipa::path(get, path = "/enable", summary = "Opt-in page",
    params(("embed" = Option<String>, Query, description = "`1`: the compact widget a site frames on its privacy page (framable by the configured sites' origins; over HTTPS its cookie is `Partitioned`).")),
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)))]
pub async fn enable_page(call: Call<'_>) -> Result<Resp, ApiError> {
    Ok(visitor::enable_page(call.app, &call.req))
}

#[utoipa::path(post, path = "/enable", summary = "Opt this browser back in",
    description = "Clears the opt-out cookie, only for a form posted from this server's own origin (`Origin`, else `Referer`).",
    params(("embed" = Option<String>, Query, description = "`1`: the compact widget a site frames on its privacy page (framable by the configured sites' origins; over HTTPS its cookie is `Partitioned`).")),
    responses(
        (status = 303, description = "Opted back in; back to `/enable`."),
        (status = 403, description = "Not posted from this server's own page.", body = ErrorBody),
    ))]
pub async fn enable(call: Call<'_>) -> Result<Resp, ApiError> {
    visitor::enable(call.app, &call.req)
}

#[utoipa::path(get, path = "/optout", summary = "Whether this browser opted out",
    description = "CORS with credentials for origins any site accepts.",
    params(("site" = Option<String>, Query, description = "A site id: the answer then says how its replay masks text.")),
    responses((status = 200, description = "The state.", body = visitor::OptOutStatus)))]
pub async fn optout(call: Call<'_>) -> Result<Resp, ApiError> {
    Ok(visitor::status(call.app, call.headers(), call.req.uri().query()))
}

/// The documented answers of a visitor's own request.
#[rustfmt::skip]
macro_rules! me {
    ($name:ident, $path:literal, $summary:literal, $description:literal, $ok:tt, $forget:expr) => {
        #[utoipa::path(post, path = $path, summary = $summary, description = $description,
            request_body = visitor::MeRequest,
            responses(
            $ok,
                (status = 400, description = "Not `{\"site\",\"vid\"}` with a valid vid.", body = ErrorBody),
                (status = 403, description = "The Origin may not act for this site.", body = ErrorBody),
                (status = 404, description = "No such site.", body = ErrorBody),
                (status = 408, description = "The body took too long to arrive.", body = ErrorBody),
                (status = 413, description = "Body too large.", body = ErrorBody),
                (status = 429, description = "Rate limited.", body = ErrorBody,
                    headers(("Retry-After" = u32, description = "Seconds to wait."))),
                (status = 500, description = "The store failed.", body = ErrorBody),
            ))]
        pub async fn $name(call: Call<'_>) -> Result<Resp, ApiError> {
            visitor::me(call.app, call.req, call.peer, $forget).await
        }
    };
}

me!(
    me_export,
    "/me/export",
    "Everything stored about a visitor",
    "The visitor proves who they are with their own vid. Rate-limited per IP.",
    (status = 200, description = "Every session kept of the visitor, with its events.", body = VisitorExport),
    false
);
me!(
    me_forget,
    "/me/forget",
    "Erase a visitor's sessions and events",
    "Durable erasure; aggregate rollups stay. Rate-limited per IP.",
    (status = 204, description = "Erased."),
    true
);

#[utoipa::path(get, path = "/pages/style.css", summary = "Stylesheet of the opt-out pages",
    responses((status = 200, description = "The stylesheet.", content_type = "text/css", body = String)))]
pub async fn page_style(_call: Call<'_>) -> Result<Resp, ApiError> {
    Ok(asset("text/css; charset=utf-8", visitor::PAGE_STYLE.as_bytes()))
}

/// A static asset compiled into the binary, cacheable for an hour.
pub fn asset(content_type: &'static str, body: &'static [u8]) -> Resp {
    let mut r = response::with_body(StatusCode::OK, content_type, Bytes::from_static(body));
    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=3600"));
    r
}

/// The document, generated once from the route table.
static OPENAPI: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(super::openapi::document().to_json().expect("the document serialises")));

#[utoipa::path(method(get, head), path = "/api/openapi.json", summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1, generated from the route table.", body = Object)))]
pub async fn openapi(_call: Call<'_>) -> Result<Resp, ApiError> {
    let mut r = response::with_body(StatusCode::OK, "application/json", OPENAPI.clone());
    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    Ok(r)
}
