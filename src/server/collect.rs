//! `POST /collect` and its preflight: the hot path from request to durable 204.
//!
//! Order matters for privacy and cost: opt-out is decided from headers before the body is read;
//! the cheap checks (type, size) come before inflating; the site and origin are checked before
//! events are validated; nothing reaches the writer before the privacy layer has rewritten it.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;

use super::response::{self, Resp};
use super::{body, cors, router};
use crate::app::App;
use crate::error::ApiError;
use crate::ingest::{decode, validate, Encoding, Format, IngestError, Reason, ValidBatch};
use crate::model::{now_ms, Client, EventData, StoredBatch};
use crate::privacy::{self, useragent};
use crate::sites::Site;
use crate::store::writer::SubmitError;
use crate::store::WriteOutcome;

/// Seconds a client is asked to wait when the queue is full.
const OVERLOAD_RETRY_SECS: u32 = 1;

pub async fn handle(app: &App, req: Request<Incoming>, peer: IpAddr) -> Resp {
    let origin = cors::origin(req.headers()).map(str::to_owned);
    let (mut resp, allow_origin) = match accept(app, req, peer).await {
        Ok(Accepted::Stored) => (response::empty(StatusCode::NO_CONTENT), true),
        Ok(Accepted::Dropped(reason)) => {
            app.metrics.drop_batch(reason);
            (response::empty(StatusCode::NO_CONTENT), true)
        }
        Err(Refusal { error, reason }) => {
            router::refused(app, &error, Some(reason));
            (response::error(&error), !matches!(error, ApiError::Forbidden(_)))
        }
    };
    match origin {
        Some(o) if allow_origin => cors::allow(&mut resp, &o),
        _ => cors::vary_origin(&mut resp),
    }
    resp
}

/// A batch answered 204.
enum Accepted {
    /// Durable (or a duplicate of a durable batch).
    Stored,
    /// Deliberately not stored (opt-out, bot).
    Dropped(Reason),
}

/// An error plus the reason it is counted under.
struct Refusal {
    error: ApiError,
    reason: Reason,
}

impl From<IngestError> for Refusal {
    fn from(e: IngestError) -> Self {
        Refusal { reason: e.reason(), error: e.into() }
    }
}

fn refuse(reason: Reason, error: ApiError) -> Refusal {
    Refusal { error, reason }
}

/// Steps 3–7 of the path of an event (see the crate documentation).
async fn accept(app: &App, req: Request<Incoming>, peer: IpAddr) -> Result<Accepted, Refusal> {
    app.collect_limiter
        .check(peer)
        .map_err(|retry_after| refuse(Reason::RateLimited, ApiError::TooManyRequests { retry_after }))?;
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    // 3. Opt-out is decided from the headers, before a byte of the body is read.
    if let Some(signal) = app.config.optout.check(headers) {
        return Ok(Accepted::Dropped(signal.into()));
    }
    // 4. Ingest: read and inflate under limits, decode, check site and origin, validate.
    let (format, raw) = read_body(app, headers, body).await?;
    let received = now_ms();
    let (site, batch) = decode_batch(app, headers, format, &raw, received)?;
    // 5. Privacy: bots are dropped, everything else rewritten.
    let Some(client) = client(headers) else {
        return Ok(Accepted::Dropped(Reason::Bot));
    };
    let stored = protect(app, &site, batch, client, received)?;
    // 6–7. Queued for the writer; answered once durable.
    store(app, &site, stored, raw.len()).await
}

/// Reads the body under the wire-size limit and inflates it under the second limit.
async fn read_body(app: &App, headers: &HeaderMap, body: Incoming) -> Result<(Format, Bytes), Refusal> {
    let format = Format::from_content_type(header(headers, CONTENT_TYPE))?;
    let encoding = Encoding::from_header(header(headers, CONTENT_ENCODING))?;
    let limits = &app.config.server;
    let wire = body::read_limited(headers, body, limits.max_body_bytes, limits.body_timeout).await.map_err(|e| {
        let reason = if matches!(e, ApiError::Timeout) { Reason::BodyTimeout } else { Reason::BodyTooLarge };
        refuse(reason, e)
    })?;
    app.metrics.bytes_in.inc_by(wire.len() as u64);
    Ok((format, decode::decompress(wire, encoding, limits.max_decompressed_bytes)?))
}

/// Decodes the batch (borrowing from `raw`), finds its site, checks the page's origin against it
/// and validates the events; what it returns is owned.
fn decode_batch(
    app: &App,
    headers: &HeaderMap,
    format: Format,
    raw: &[u8],
    received: i64,
) -> Result<(Arc<Site>, ValidBatch), Refusal> {
    let wire_batch = decode::parse(format, raw)?;
    let site = app
        .sites
        .get(&wire_batch.site)
        .ok_or_else(|| refuse(Reason::UnknownSite, ApiError::not_found(format!("site {:?}", wire_batch.site))))?;
    if let Some(origin) = cors::origin(headers) {
        if !site.settings.allows_origin(origin) {
            let message = format!("origin {origin} may not send to site {}", site.settings.id);
            return Err(refuse(Reason::OriginNotAllowed, ApiError::Forbidden(message)));
        }
    }
    let batch = validate::validate(wire_batch, &app.config.events, received)?;
    Ok((site, batch))
}

/// The visitor's device class, or `None` for a bot.
fn client(headers: &HeaderMap) -> Option<Client> {
    match useragent::classify(header(headers, USER_AGENT)) {
        useragent::UaVerdict::Human(c) => {
            Some(Client { device: c.device.as_str().to_owned(), browser: c.browser.as_str().to_owned() })
        }
        useragent::UaVerdict::Bot => None,
    }
}

/// Rewrites the batch into what a store may see, counting the events dropped on the way.
fn protect(app: &App, site: &Site, batch: ValidBatch, client: Client, received: i64) -> Result<StoredBatch, Refusal> {
    let mut dropped = batch.dropped;
    let stored = privacy::protect(&app.keyer, site, batch, client, received, &mut dropped);
    for (reason, n) in dropped.iter() {
        app.metrics.drop_events(reason, n as u64);
    }
    stored.ok_or_else(|| {
        let error = ApiError::BadRequest("no valid event in batch (every URL was unusable)".into());
        refuse(Reason::NoValidEvent, error)
    })
}

/// Offers the replay's assets for capture, queues the batch (a full queue is a 503 at once) and
/// waits until the writer has made it durable.
async fn store(app: &App, site: &Site, mut batch: StoredBatch, decoded_len: usize) -> Result<Accepted, Refusal> {
    app.assets.offer(&site.settings, batch.sid, &batch.events);
    // The writer needs each event's kind, never a snapshot's tree: `encoded` already holds it,
    // and in memory a tree of tiny values takes ~30× its encoded size, which the queue's byte
    // bound (counted in encoded bytes) would not see.
    for event in &mut batch.events {
        if let EventData::Snap { d } | EventData::Mut { d } = &mut event.data {
            *d = serde_json::Value::Null;
        }
    }
    let queued_bytes = decoded_len.max(batch.encoded.len());
    let pending = app.writer.submit(batch, queued_bytes).map_err(|e| {
        let reason = match e {
            SubmitError::Full => Reason::Overloaded,
            SubmitError::Closed => Reason::ShuttingDown,
        };
        refuse(reason, ApiError::Overloaded { retry_after: OVERLOAD_RETRY_SECS })
    })?;
    match pending.outcome().await {
        Ok(WriteOutcome::Stored | WriteOutcome::Duplicate) => Ok(Accepted::Stored),
        Err(e) => Err(refuse(Reason::StoreFailed, e.into())),
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
