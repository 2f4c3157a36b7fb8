//! Building responses: JSON bodies, empty answers, errors, common headers.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::error::ApiError;

pub type Resp = Response<Full<Bytes>>;

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, "application/json", Bytes::from(body)),
        Err(e) => error(&ApiError::Internal(e.to_string())),
    }
}

pub fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Every 4xx/5xx body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

/// The failures every query of one site's data documents: a bad parameter, an unknown site, a
/// failed store (`responses((status = 200, ..), QueryFailures)`).
#[derive(utoipa::IntoResponses)]
pub enum QueryFailures {
    /// A parameter is invalid.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No such site.
    #[response(status = 404)]
    NoSuchSite(ErrorBody),
    /// The store failed.
    #[response(status = 500)]
    StoreFailed(ErrorBody),
}

/// `{"error": "..."}` with the error's status (and `Retry-After` where it applies).
pub fn error(e: &ApiError) -> Resp {
    let body = serde_json::to_vec(&ErrorBody { error: e.public_message() }).unwrap_or_default();
    let mut r = with_body(e.status(), "application/json", Bytes::from(body));
    if let Some(secs) = e.retry_after() {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// Operator data must never be cached by browsers or proxies.
pub fn no_store(mut r: Resp) -> Resp {
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
