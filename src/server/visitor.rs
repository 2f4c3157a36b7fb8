//! The visitor's own endpoints: the opt-out and opt-in pages (full pages, and `?embed=1` widgets
//! a site frames on its privacy page), the opt-out status, and the right to see (`/me/export`)
//! and erase (`/me/forget`) what is kept about them.
//!
//! Which cookie reaches the collector later: the full page's cookie lives in the collector's own
//! (unpartitioned) jar, so it is sent when the collector is same-site with the page, or when the
//! browser allows third-party cookies. The widget's cookie is `Partitioned` (CHIPS): kept for the
//! top-level site that framed it, and sent with that site's later requests to the collector even
//! where third-party cookies are blocked.

use std::net::IpAddr;

use bytes::Bytes;
use cookie::{Cookie, SameSite};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, StatusCode, Uri};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::response::{self, Resp};
use super::{body, cors};
use crate::app::App;
use crate::error::ApiError;
use crate::model::Id128;
use crate::privacy::optout::{has_optout_cookie, OPTOUT_COOKIE};
use crate::query::{ExportedSession, VisitorExport};

const DISABLE_PAGE: &str = include_str!("pages/disable.html");
const ENABLE_PAGE: &str = include_str!("pages/enable.html");
const WIDGET: &str = include_str!("pages/widget.html");
const HTTP_NOTE: &str = "<p><strong>This collector is served over plain HTTP</strong>, so browsers send its \
cookie only from pages on the same site.</p>";
pub const PAGE_STYLE: &str = include_str!("pages/style.css");

/// Browsers cap cookie lifetimes at 400 days; that is the "at least a year" of the contract.
const OPTOUT_DAYS: i64 = 400;
const MAX_ME_BODY: usize = 4 * 1024;

/// Served over HTTPS (directly, or behind a trusted proxy that says so: `server::client` has
/// replaced whatever a stranger sent in `X-Forwarded-Proto` with its own conclusion)?
fn is_https(app: &App, headers: &HeaderMap) -> bool {
    app.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
        || headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// Asked for as the framed widget (`?embed=1`)?
fn is_embed(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "embed" && v == "1"))
}

/// The opt-out cookie. Over HTTPS it is `SameSite=None; Secure` so a cross-site collector can
/// receive it at all; `partitioned` adds CHIPS' `Partitioned` (only meaningful, and only allowed,
/// with `Secure`). Its `Path` is the collector's base path.
fn optout_cookie(app: &App, headers: &HeaderMap, value: &'static str, days: i64, partitioned: bool) -> HeaderValue {
    let secure = is_https(app, headers);
    let path = if app.config.base_path.is_empty() { "/" } else { app.config.base_path.as_str() };
    let c = Cookie::build((OPTOUT_COOKIE, value))
        .path(path)
        .http_only(true)
        .max_age(cookie::time::Duration::days(days))
        .same_site(if secure { SameSite::None } else { SameSite::Lax })
        .secure(secure)
        .partitioned(secure && partitioned)
        .build();
    HeaderValue::from_str(&c.to_string()).expect("cookie is ASCII")
}

/// An HTML page; `frame_ancestors` is who may frame it (`'none'` for full pages).
fn html(body: String, frame_ancestors: &str) -> Resp {
    let mut r = response::with_body(StatusCode::OK, "text/html; charset=utf-8", Bytes::from(body));
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let csp = format!("default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors {frame_ancestors}");
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'")),
    );
    if frame_ancestors == "'none'" {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    r
}

/// Who may frame the widget: the origins of the configured sites (any, when a site accepts any),
/// so no stranger can frame the opt-in button under a decoy.
fn widget_ancestors(app: &App) -> String {
    let sites = app.sites.all();
    if sites.iter().any(|s| s.settings.accepts_any_origin()) {
        return "*".into();
    }
    let mut origins: Vec<&str> = sites.iter().flat_map(|s| s.settings.origins.iter().map(String::as_str)).collect();
    origins.sort_unstable();
    origins.dedup();
    // Origins were validated as scheme://host[:port]; nothing else can reach the header.
    if origins.is_empty() {
        "'none'".into()
    } else {
        origins.join(" ")
    }
}

/// Fills a page template: links under the base path, and the host it is served as.
fn page(app: &App, headers: &HeaderMap, template: &str) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("this collector");
    let host: String =
        host.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')).collect();
    template.replace("{{BASE}}", &app.config.base_path).replace("{{HOST}}", &host)
}

/// `GET /disable` (or the `?embed=1` widget): sets the opt-out cookie and explains what it does.
pub fn disable<B>(app: &App, req: &Request<B>) -> Resp {
    let headers = req.headers();
    let embed = is_embed(req.uri());
    let mut r = if embed {
        widget(app, headers, false)
    } else {
        let note = if is_https(app, headers) { "" } else { HTTP_NOTE };
        html(page(app, headers, DISABLE_PAGE).replace("{{HTTP_NOTE}}", note), "'none'")
    };
    r.headers_mut().insert(header::SET_COOKIE, optout_cookie(app, headers, "1", OPTOUT_DAYS, embed));
    r
}

/// The framed widget in its state (`on`: recording allowed).
fn widget(app: &App, headers: &HeaderMap, on: bool) -> Resp {
    let (class, text, action) = if on {
        ("on", "Recording is allowed in this browser", "disable")
    } else {
        ("off", "Recording is off for this browser on this site", "enable")
    };
    let body = page(app, headers, WIDGET)
        .replace("{{STATE_CLASS}}", class)
        .replace("{{STATE_TEXT}}", text)
        .replace("{{ACTION}}", action)
        .replace("{{METHOD}}", if on { "get" } else { "post" })
        .replace("{{BUTTON}}", if on { "Turn recording off" } else { "Allow recording again" });
    html(body, &widget_ancestors(app))
}

/// `GET /enable` (or `?embed=1`): the opt-in button, showing the current state.
pub fn enable_page<B>(app: &App, req: &Request<B>) -> Resp {
    let headers = req.headers();
    let off = has_optout_cookie(headers);
    if is_embed(req.uri()) {
        return widget(app, headers, !off);
    }
    let (class, text) =
        if off { ("off", "Recording is off for this browser") } else { ("on", "Recording is allowed in this browser") };
    html(page(app, headers, ENABLE_PAGE).replace("{{STATE_CLASS}}", class).replace("{{STATE_TEXT}}", text), "'none'")
}

/// `POST /enable`: clears the cookie (both kinds: the collector's own and the partitioned one of
/// the widget), but only for a form posted from this server's own page — no other site may opt a
/// visitor back in.
pub fn enable<B>(app: &App, req: &Request<B>) -> Result<Resp, ApiError> {
    let headers = req.headers();
    let own = own_origin(app, headers).ok_or_else(|| ApiError::Forbidden("cannot tell this server's origin".into()))?;
    let from = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
        .map(str::to_owned)
        .or_else(|| {
            let referer = headers.get(header::REFERER)?.to_str().ok()?;
            Some(url::Url::parse(referer).ok()?.origin().ascii_serialization())
        })
        .ok_or_else(|| ApiError::Forbidden("opting back in needs the form on this server's /enable page".into()))?;
    if !from.eq_ignore_ascii_case(&own) {
        return Err(ApiError::Forbidden(format!("only {own} may opt a visitor back in, not {from}")));
    }
    let mut r = response::empty(StatusCode::SEE_OTHER);
    let back = format!("{}/enable{}", app.config.base_path, if is_embed(req.uri()) { "?embed=1" } else { "" });
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_str(&back).map_err(|e| ApiError::Internal(e.to_string()))?);
    h.append(header::SET_COOKIE, optout_cookie(app, headers, "", 0, false));
    if is_https(app, headers) {
        h.append(header::SET_COOKIE, optout_cookie(app, headers, "", 0, true));
    }
    Ok(r)
}

/// This server's origin: the configured public URL, else scheme + `Host` of the request.
fn own_origin(app: &App, headers: &HeaderMap) -> Option<String> {
    if let Some(u) = &app.config.public_url {
        return Some(url::Url::parse(u).ok()?.origin().ascii_serialization());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if is_https(app, headers) { "https" } else { "http" };
    Some(format!("{scheme}://{host}").to_ascii_lowercase())
}

/// `GET /optout`: whether this browser carries the collector's opt-out cookie.
pub fn status(app: &App, headers: &HeaderMap, query: Option<&str>) -> Resp {
    // The snippet asks with `?site=ID` to learn how its replay masks page text.
    let site = query.and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "site"));
    let site = site.and_then(|(_, id)| app.sites.get(&id));
    let answer = OptOutStatus {
        opted_out: has_optout_cookie(headers),
        mask_text: site.as_ref().map(|s| s.settings.mask_text),
        replay_canvas: site.as_ref().is_some_and(|s| s.settings.canvas_frames()),
    };
    let mut r = response::no_store(response::json(StatusCode::OK, &answer));
    match cors::origin(headers) {
        Some(o) if app.sites.any_allows_origin(o) => cors::allow(&mut r, o),
        _ => cors::vary_origin(&mut r),
    }
    r
}

/// The body of `POST /me/export` and `POST /me/forget`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct MeRequest {
    /// Site id.
    site: String,
    /// The visitor's own id, 32 lowercase hex.
    vid: String,
}

/// `GET /optout`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OptOutStatus {
    pub opted_out: bool,
    /// How the replay masks page text on the site named by `?site=`, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_text: Option<crate::model::MaskText>,
    /// Whether the replay records low-rate frames of `<canvas>` elements on that site.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replay_canvas: bool,
}

/// `POST /me/export` and `POST /me/forget`: the visitor proves who they are with their own `vid`.
pub async fn me(app: &App, req: Request<Incoming>, peer: IpAddr, forget: bool) -> Result<Resp, ApiError> {
    app.visitor_limiter.check(peer).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let (parts, incoming) = req.into_parts();
    let origin = cors::origin(&parts.headers).map(str::to_owned);
    let bytes = body::read_limited(&parts.headers, incoming, MAX_ME_BODY, app.config.server.body_timeout).await?;
    let me: MeRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"site\",\"vid\"}}: {e}")))?;
    let site = app.sites.get(&me.site).ok_or_else(|| ApiError::not_found(format!("site {:?}", me.site)))?;
    if let Some(o) = &origin {
        if !site.settings.allows_origin(o) {
            return Err(ApiError::Forbidden(format!("origin {o} may not act for site {}", site.settings.id)));
        }
    }
    let vid = Id128::parse(&me.vid).ok_or_else(|| ApiError::BadRequest("vid must be 32 lowercase hex".into()))?;
    let visitor = app.keyer.key(&site.settings.id, &vid);
    let mut r = if forget {
        let erased = app.writer.forget(&site.settings.id, visitor).await?;
        tracing::info!(site = %site.settings.id, sessions = erased, "visitor erased at their request");
        response::empty(StatusCode::NO_CONTENT)
    } else {
        let sessions = app.store.visitor_sessions(&site.settings.id, visitor).await?;
        let sessions =
            sessions.into_iter().map(|(summary, events)| ExportedSession { session: summary, events }).collect();
        let export = VisitorExport { site: site.settings.id.clone(), visitor_key: visitor.to_hex(), sessions };
        response::json(StatusCode::OK, &export)
    };
    r = response::no_store(r);
    if let Some(o) = origin {
        cors::allow(&mut r, &o);
    }
    Ok(r)
}
