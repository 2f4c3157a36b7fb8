//! Public, unauthenticated endpoints other than `/collect`: metrics.

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
