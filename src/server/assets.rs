//! Static files compiled into the binary (the snippet, the demo page), served with an `ETag`
//! so browsers revalidate cheaply, and `304 Not Modified` when it matches.

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use super::response::{self, Resp};

/// One embedded file.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// `Cache-Control` for it.
    pub cache: &'static str,
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    pub(crate) const fn new(content_type: &'static str, body: &'static [u8], cache: &'static str) -> Self {
        Self { content_type, body, cache, etag: OnceLock::new() }
    }
}

fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12]))).expect("hex is a valid header")
}

/// The snippet: short max-age so a new release spreads within minutes, ETag for revalidation.
pub static SNIPPET: Asset = Asset::new(
    "text/javascript; charset=utf-8",
    include_bytes!("../../js-snippet/dist/hushtale.js"),
    "public, max-age=300",
);
/// The snippet's lazily loaded part (single-page-app views, dead clicks, moves), loaded by
/// every recording page right after the core starts.
pub static MORE: Asset = Asset::new(
    "text/javascript; charset=utf-8",
    include_bytes!("../../js-snippet/dist/hushtale-more.js"),
    "public, max-age=300",
);
/// The replay recorder, loaded lazily by sampled sessions.
pub static REPLAY: Asset = Asset::new(
    "text/javascript; charset=utf-8",
    include_bytes!("../../js-snippet/dist/hushtale-replay.js"),
    "public, max-age=300",
);
/// The replay player used by the dashboard.
pub static PLAYER: Asset = Asset::new(
    "text/javascript; charset=utf-8",
    include_bytes!("../../js-snippet/dist/hushtale-player.js"),
    "public, max-age=300",
);
pub static DEMO: Asset =
    Asset::new("text/html; charset=utf-8", include_bytes!("../../js-snippet/demo/index.html"), "no-cache");

/// Serves `asset`, or 304 when the client already has this version.
pub fn serve(asset: &Asset, request: &HeaderMap) -> Resp {
    let etag = asset.etag.get_or_init(|| etag_of(asset.body));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.to_str().unwrap_or("") || t.trim() == "*"));
    let mut r = if fresh {
        response::empty(StatusCode::NOT_MODIFIED)
    } else {
        response::with_body(StatusCode::OK, asset.content_type, Bytes::from_static(asset.body))
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(asset.cache));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}
