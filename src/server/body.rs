//! Reading request bodies under a size limit and a deadline.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use crate::error::ApiError;

/// A body over the limit by at most this factor is read and discarded before the 413, so the
/// client sees the answer instead of a connection reset; larger ones are cut off at once.
const DRAIN_FACTOR: usize = 4;

/// Reads the whole body, refusing more than `max` bytes (checked against `Content-Length`
/// before reading, then while streaming) or a body slower than `timeout`.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("body is larger than {max} bytes"));
    if let Some(len) = headers.get(http::header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::BadRequest("invalid Content-Length".into()))?;
        if len > max as u64 {
            if len <= (max * DRAIN_FACTOR) as u64 {
                drain(body, max * DRAIN_FACTOR, timeout).await;
            }
            return Err(too_large());
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = body;
    let mut parts: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(ApiError::Timeout),
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => return Err(ApiError::BadRequest(format!("could not read body: {e}"))),
        };
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total > max {
                drop(parts);
                drain_inner(body, max * DRAIN_FACTOR - total.min(max * DRAIN_FACTOR), deadline).await;
                return Err(too_large());
            }
            parts.push(data);
        }
    }
    Ok(match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().expect("one part"),
        _ => {
            let mut all = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in parts {
                all.extend_from_slice(&p);
            }
            Bytes::from(all)
        }
    })
}

async fn drain(body: Incoming, budget: usize, timeout: std::time::Duration) {
    drain_inner(body, budget, tokio::time::Instant::now() + timeout).await;
}

/// Reads and discards up to `budget` bytes before `deadline`.
async fn drain_inner(mut body: Incoming, budget: usize, deadline: tokio::time::Instant) {
    let mut seen = 0usize;
    while !body.is_end_stream() && seen <= budget {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}
