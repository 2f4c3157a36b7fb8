//! CORS for the public endpoints: an allowed `Origin` is echoed with credentials; the operator
//! API never answers cross-origin.

use http::header::{self, HeaderValue};
use http::HeaderMap;

use super::response::Resp;

/// How long browsers may cache a preflight answer, in seconds.
pub const PREFLIGHT_MAX_AGE: u32 = 86_400;

/// The request's `Origin`. `null` (sandboxed frames, `file:` pages, some redirects) is an origin
/// like any other: only a site that lists `"null"` accepts it.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// Lets `origin` read this response (and its `Retry-After`) with credentials.
pub fn allow(resp: &mut Resp, origin: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Retry-After"));
    }
    vary_origin(resp);
}

pub fn vary_origin(resp: &mut Resp) {
    resp.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Adds the preflight answer for `POST /collect` from `origin`.
pub fn preflight(resp: &mut Resp, origin: &str) {
    allow(resp, origin);
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, content-encoding"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(PREFLIGHT_MAX_AGE));
}
