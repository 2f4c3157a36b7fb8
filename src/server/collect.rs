//! `POST /collect` and its preflight: the hot path from request to durable 204.
//!
//! Order matters for privacy and cost: opt-out is decided from headers before the body is read;
//! the cheap checks (type, size) come before inflating; the site and origin are checked before
//! events are validated; nothing reaches the writer before the privacy layer has rewritten it.

use std::net::IpAddr;

use http::header::{CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;

use super::response::{self, Resp};
use super::{body, cors};
use crate::app::App;
use crate::error::ApiError;
use crate::ingest::{decode, validate, Encoding, Format, IngestError};
use crate::model::{now_ms, Client, EventData};
use crate::privacy::{self, useragent, OptOutSignal};
use crate::store::writer::SubmitError;
use crate::store::WriteOutcome;

/// Seconds a client is asked to wait when the queue is full.
const OVERLOAD_RETRY_SECS: u32 = 1;

pub async fn handle(app: &App, req: Request<Incoming>, peer: IpAddr) -> Resp {
    let origin = cors::origin(req.headers()).map(str::to_owned);
    let (resp, allow_origin) = match accept(app, req, peer).await {
        Ok(()) => (response::empty(StatusCode::NO_CONTENT), true),
        Err(Refusal { error, reason }) => {
            app.metrics.reject(reason);
            let forbidden = matches!(error, ApiError::Forbidden(_));
            if error.status().is_server_error() && !matches!(error, ApiError::Overloaded { .. }) {
                tracing::error!(reason, error = ?error, "collect failed");
            } else {
                // Not the message: decoding errors can quote the batch, which may hold personal data.
                tracing::debug!(reason, status = error.status().as_u16(), "collect refused");
            }
            (response::error(&error), !forbidden)
        }
    };
    let mut resp = resp;
    match origin {
        Some(o) if allow_origin => cors::allow(&mut resp, &o),
        _ => cors::vary_origin(&mut resp),
    }
    resp
}

/// An error plus the label it is counted under.
struct Refusal {
    error: ApiError,
    reason: &'static str,
}

impl From<IngestError> for Refusal {
    fn from(e: IngestError) -> Self {
        Refusal { reason: e.reason(), error: e.into() }
    }
}

fn refuse(reason: &'static str, error: ApiError) -> Refusal {
    Refusal { error, reason }
}

/// Runs the pipeline; `Ok` means 204 (stored, a duplicate, or deliberately dropped).
async fn accept(app: &App, req: Request<Incoming>, peer: IpAddr) -> Result<(), Refusal> {
    app.collect_limiter
        .check(peer)
        .map_err(|retry_after| refuse("rate_limited", ApiError::TooManyRequests { retry_after }))?;
    let (parts, incoming) = req.into_parts();
    if let Some(signal) = app.config.optout.check(&parts.headers) {
        app.metrics.drop_batch(match signal {
            OptOutSignal::Cookie => "optout",
            OptOutSignal::DoNotTrack => "optout_dnt",
            OptOutSignal::GlobalPrivacyControl => "optout_gpc",
        });
        return Ok(());
    }
    let format = Format::from_content_type(header(&parts.headers, CONTENT_TYPE))?;
    let encoding = Encoding::from_header(header(&parts.headers, CONTENT_ENCODING))?;
    let limits = &app.config.server;
    let wire = body::read_limited(&parts.headers, incoming, limits.max_body_bytes, limits.body_timeout)
        .await
        .map_err(|e| refuse(if matches!(e, ApiError::Timeout) { "body_timeout" } else { "body_too_large" }, e))?;
    app.metrics.bytes_in.inc_by(wire.len() as u64);
    let raw = decode::decompress(wire, encoding, limits.max_decompressed_bytes)?;
    let decoded_len = raw.len();
    let received = now_ms();

    // Decoding borrows from `raw`; everything that outlives this block is owned.
    let (site, batch) = {
        let wire_batch = decode::parse(format, &raw)?;
        let site = app
            .sites
            .get(&wire_batch.site)
            .ok_or_else(|| refuse("unknown_site", ApiError::not_found(format!("site {:?}", wire_batch.site))))?;
        if let Some(origin) = cors::origin(&parts.headers) {
            if !site.settings.allows_origin(origin) {
                return Err(refuse(
                    "origin_not_allowed",
                    ApiError::Forbidden(format!("origin {origin} may not send to site {}", site.settings.id)),
                ));
            }
        }
        let batch = validate::validate(wire_batch, &app.config.events, received)?;
        (site, batch)
    };

    let client = match useragent::classify(header(&parts.headers, USER_AGENT)) {
        useragent::UaVerdict::Human(c) => {
            Client { device: c.device.as_str().to_owned(), browser: c.browser.as_str().to_owned() }
        }
        useragent::UaVerdict::Bot => {
            app.metrics.drop_batch("bot");
            return Ok(());
        }
    };

    let mut dropped = batch.dropped;
    let stored = privacy::protect(&app.keyer, &site, batch, client, received, &mut dropped);
    for (reason, n) in dropped.iter() {
        app.metrics.drop_events(reason.as_str(), n as u64);
    }
    let stored = stored.ok_or_else(|| {
        refuse("no_valid_event", ApiError::BadRequest("no valid event in batch (every URL was unusable)".into()))
    })?;

    // The writer needs each event's kind, never a snapshot's tree: `encoded` already holds it,
    // and in memory a tree of tiny values takes ~30× its encoded size, which the queue's byte
    // bound (counted in encoded bytes) would not see.
    let mut stored = stored;
    app.assets.offer(&site.settings, stored.sid, &stored.events);
    for event in &mut stored.events {
        if let EventData::Snap { d } | EventData::Mut { d } = &mut event.data {
            *d = serde_json::Value::Null;
        }
    }
    let queued_bytes = decoded_len.max(stored.encoded.len());
    let done = app.writer.submit(stored, queued_bytes).map_err(|e| match e {
        SubmitError::Full => refuse("overloaded", ApiError::Overloaded { retry_after: OVERLOAD_RETRY_SECS }),
        SubmitError::Closed => refuse("shutting_down", ApiError::Overloaded { retry_after: OVERLOAD_RETRY_SECS }),
    })?;
    match done.await {
        Ok(Ok(WriteOutcome::Stored | WriteOutcome::Duplicate)) => Ok(()),
        Ok(Err(e)) => Err(refuse("store_failed", ApiError::Internal(e))),
        Err(_) => Err(refuse("store_failed", ApiError::Internal("writer stopped".into()))),
    }
}

/// `OPTIONS` for `/collect` and the visitor endpoints: the site is only known from the body, so
/// an origin is allowed when any site accepts it; the real check happens on the POST.
pub fn preflight(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let origin = cors::origin(req.headers()).ok_or_else(|| ApiError::BadRequest("preflight without Origin".into()))?;
    if !app.sites.any_allows_origin(origin) {
        return Err(ApiError::Forbidden(format!("origin {origin} may not send to this collector")));
    }
    let mut resp = response::empty(StatusCode::NO_CONTENT);
    cors::preflight(&mut resp, origin);
    Ok(resp)
}

fn header(headers: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
