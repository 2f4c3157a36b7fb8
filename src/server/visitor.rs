//! The visitor's own endpoints: the opt-out and opt-in pages, the opt-out status, and the right
//! to see (`/me/export`) and erase (`/me/forget`) what is kept about them.

use std::net::IpAddr;

use bytes::Bytes;
use cookie::{Cookie, SameSite};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, StatusCode};
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
pub const PAGE_STYLE: &str = include_str!("pages/style.css");

/// Browsers cap cookie lifetimes at 400 days; that is the "at least a year" of the contract.
const OPTOUT_DAYS: i64 = 400;
const MAX_ME_BODY: usize = 4 * 1024;

/// Served over HTTPS (directly or behind a proxy that says so)?
fn is_https(app: &App, headers: &HeaderMap) -> bool {
    app.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
        || headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn optout_cookie(app: &App, headers: &HeaderMap, value: &'static str, days: i64) -> HeaderValue {
    let secure = is_https(app, headers);
    let c = Cookie::build((OPTOUT_COOKIE, value))
        .path("/")
        .http_only(true)
        .max_age(cookie::time::Duration::days(days))
        .same_site(if secure { SameSite::None } else { SameSite::Lax })
        .secure(secure)
        .build();
    HeaderValue::from_str(&c.to_string()).expect("cookie is ASCII")
}

fn html(body: String) -> Resp {
    let mut r = response::with_body(StatusCode::OK, "text/html; charset=utf-8", Bytes::from(body));
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// `GET /disable`: sets the opt-out cookie and explains what it does.
pub fn disable(app: &App, headers: &HeaderMap) -> Resp {
    let mut r = html(DISABLE_PAGE.to_owned());
    r.headers_mut().insert(header::SET_COOKIE, optout_cookie(app, headers, "1", OPTOUT_DAYS));
    r
}

/// `GET /enable`: the page with the opt-in button, showing the current state.
pub fn enable_page(headers: &HeaderMap) -> Resp {
    let (class, text) = if has_optout_cookie(headers) {
        ("off", "Recording is off for this browser")
    } else {
        ("on", "Recording is allowed in this browser")
    };
    html(ENABLE_PAGE.replace("{{STATE_CLASS}}", class).replace("{{STATE_TEXT}}", text))
}

/// `POST /enable`: clears the cookie, but only for a form posted from this server's own page —
/// no other site may opt a visitor back in.
pub fn enable(app: &App, headers: &HeaderMap) -> Result<Resp, ApiError> {
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
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/enable"));
    h.insert(header::SET_COOKIE, optout_cookie(app, headers, "", 0));
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
pub fn status(app: &App, headers: &HeaderMap) -> Resp {
    let mut r =
        response::no_store(response::json(StatusCode::OK, &OptOutStatus { opted_out: has_optout_cookie(headers) }));
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
        let erased = app.writer.forget(&site.settings.id, visitor).await.map_err(ApiError::Internal)?;
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
