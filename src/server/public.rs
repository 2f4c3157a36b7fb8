//! Public, unauthenticated endpoints other than `/collect`: metrics and static assets.

use bytes::Bytes;
use http::StatusCode;

use super::response::{self, Resp};
use crate::app::App;
use crate::error::ApiError;

pub fn metrics(app: &App) -> Result<Resp, ApiError> {
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

/// A static asset compiled into the binary, cacheable for an hour.
pub fn asset(content_type: &'static str, body: &'static [u8]) -> Resp {
    let mut r = response::with_body(StatusCode::OK, content_type, Bytes::from_static(body));
    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=3600"));
    r
}

/// The OpenAPI 3 description of every endpoint (`GET /api/openapi.json`), kept true by
/// `tests/openapi.rs`.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn openapi() -> Resp {
    let mut r = response::with_body(StatusCode::OK, "application/json", Bytes::from_static(OPENAPI.as_bytes()));
    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    r
}
