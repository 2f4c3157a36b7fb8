//! The operator's web UI at `/dashboard`: static files from `dashboard/src/` embedded in the
//! binary (nothing is loaded from elsewhere), served with a strict CSP and framing forbidden.
//! The page itself holds no data and needs no token; its API calls carry one.
//!
//! `/dashboard/frame` is the empty document that replays and heatmaps are rebuilt into. The
//! dashboard frames it with `sandbox="allow-same-origin"` (no `allow-scripts`), and it carries
//! its own CSP (`script-src 'none'`), so nothing recorded on a visited page — a `<script>`, an
//! `on…=` handler, a `javascript:` URL — can run, whatever the recording holds.

use http::header::{self, HeaderValue};
use http::HeaderMap;

use super::assets::{self, Asset};
use super::response::{self, Resp};
use crate::app::App;

/// The dashboard's own documents: scripts and styles from this server only, data from its API,
/// frames only its replay frame, and nobody may frame the dashboard.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The replay frame: no script at all, and nothing loads from anywhere but this collector —
/// the recorded page's stylesheets, images and fonts come from its captured copies at
/// `/dashboard/asset/…` (see `crate::assets`); recorded inline styles still apply.
const FRAME_CSP: &str = "default-src 'self' data:; script-src 'none'; object-src 'none'; \
     style-src 'self' 'unsafe-inline'; connect-src 'none'; frame-src 'none'; worker-src 'none'; \
     media-src 'none'; manifest-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'";

/// A captured asset: never a document that could run anything, even when opened directly.
const ASSET_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; sandbox";

macro_rules! embed {
    ($name:literal, $type:expr) => {
        Asset::new($type, include_bytes!(concat!("../../dashboard/src/", $name)), "no-cache")
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static INDEX: Asset = embed!("index.html", "text/html; charset=utf-8");
static FRAME: Asset = embed!("frame.html", "text/html; charset=utf-8");

/// Files under `/dashboard/`, by name.
static FILES: [(&str, Asset); 13] = [
    ("app.css", embed!("app.css", CSS)),
    ("app.js", embed!("app.js", JS)),
    ("api.js", embed!("api.js", JS)),
    ("analytics.js", embed!("analytics.js", JS)),
    ("charts.js", embed!("charts.js", JS)),
    ("dom.js", embed!("dom.js", JS)),
    ("heatmap.js", embed!("heatmap.js", JS)),
    ("replay.js", embed!("replay.js", JS)),
    ("sessions.js", embed!("sessions.js", JS)),
    ("signals.js", embed!("signals.js", JS)),
    ("util.js", embed!("util.js", JS)),
    ("vendor/uPlot.iife.min.js", embed!("vendor/uPlot.iife.min.js", JS)),
    ("vendor/uPlot.min.css", embed!("vendor/uPlot.min.css", CSS)),
];

/// Answers `GET /dashboard` and `GET /dashboard/…`; `None` when there is no such file.
pub fn serve(path: &str, request: &HeaderMap) -> Option<Resp> {
    let name = path.strip_prefix("/dashboard").unwrap_or(path).trim_start_matches('/');
    let (asset, csp, frame) = match name {
        "" | "index.html" => (&INDEX, PAGE_CSP, "DENY"),
        "frame" => (&FRAME, FRAME_CSP, "SAMEORIGIN"),
        _ => (&FILES.iter().find(|(n, _)| *n == name)?.1, PAGE_CSP, "DENY"),
    };
    let mut r = assets::serve(asset, request);
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(frame));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    Some(r)
}

/// Answers `GET /dashboard/asset/{sha256}`: a captured stylesheet, image or font. Public like
/// the rest of `/dashboard/` (frames cannot send the operator's token): an asset is only found
/// by its content hash, which only the session API tells.
pub fn asset(app: &App, hex_hash: &str, request: &HeaderMap) -> Option<Resp> {
    if hex_hash.len() != 64 {
        return None;
    }
    let (content_type, body) = app.assets.serve(hex_hash)?;
    let etag = HeaderValue::from_str(&format!("\"{hex_hash}\"")).ok()?;
    let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|v| v == etag);
    let mut r = if fresh {
        response::empty(http::StatusCode::NOT_MODIFIED)
    } else {
        let mut r = response::with_body(http::StatusCode::OK, "application/octet-stream", body.into());
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(&content_type).ok()?);
        r
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(ASSET_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_forbids_framing_and_scripts_from_elsewhere() {
        let r = serve("/dashboard", &HeaderMap::new()).expect("index");
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
        let f = serve("/dashboard/frame", &HeaderMap::new()).expect("frame");
        let csp = f.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'none'") && csp.contains("frame-ancestors 'self'"));
        assert!(
            csp.starts_with("default-src 'self' data:;") && !csp.contains("http:"),
            "nothing from elsewhere: {csp}"
        );
        assert!(serve("/dashboard/app.js", &HeaderMap::new()).is_some());
        assert!(serve("/dashboard/../Cargo.toml", &HeaderMap::new()).is_none());
        assert!(serve("/dashboard/nope.js", &HeaderMap::new()).is_none());
    }

    /// One source for the width classes: the dashboard picks a heatmap's snapshot by the same
    /// thresholds the rollups class viewports by.
    #[test]
    fn the_dashboard_classes_widths_as_the_rollups_do() {
        use crate::rollup::heat::{WidthClass, DESKTOP_MIN_PX, TABLET_MIN_PX};
        let js = include_str!("../../dashboard/src/heatmap.js");
        let line = format!("export const WIDTH_CLASS_MIN = {{ tablet: {TABLET_MIN_PX}, desktop: {DESKTOP_MIN_PX} }};");
        assert!(js.contains(&line), "dashboard/src/heatmap.js must say: {line}");
        assert_eq!(WidthClass::of(TABLET_MIN_PX - 1.0), WidthClass::Mobile);
        assert_eq!(WidthClass::of(TABLET_MIN_PX), WidthClass::Tablet);
        assert_eq!(WidthClass::of(DESKTOP_MIN_PX), WidthClass::Desktop);
    }
}
