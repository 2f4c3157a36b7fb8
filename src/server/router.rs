//! Routing: which handler answers which method and path, and the one place errors become
//! responses (logged by class, counted by status).

use std::net::IpAddr;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::response::{self, Resp};
use super::{api, assets, collect, dashboard, public, visitor};
use crate::app::App;
use crate::error::ApiError;
use crate::telemetry::metrics::StatusLabel;

pub async fn handle(app: &App, req: Request<Incoming>, peer: IpAddr) -> Resp {
    let resp = match route(app, req, peer).await {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::error!(status = e.status().as_u16(), error = ?e, "request failed");
            } else {
                tracing::debug!(status = e.status().as_u16(), error = %e, "request refused");
            }
            response::error(&e)
        }
    };
    app.metrics.responses.get_or_create(&StatusLabel { status: resp.status().as_u16() }).inc();
    resp
}

async fn route(app: &App, req: Request<Incoming>, peer: IpAddr) -> Result<Resp, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::POST, "/collect") => Ok(collect::handle(app, req, peer).await),
        (Method::OPTIONS, "/collect") => collect::preflight(app, &req),
        (Method::GET | Method::HEAD, "/healthz") => {
            Ok(response::json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
        }
        (Method::GET, "/metrics") => public::metrics(app),
        (Method::GET | Method::HEAD, "/hushtale.js") => Ok(assets::serve(&assets::SNIPPET, req.headers())),
        (Method::GET | Method::HEAD, "/hushtale-replay.js") => Ok(assets::serve(&assets::REPLAY, req.headers())),
        (Method::GET | Method::HEAD, "/hushtale-more.js") => Ok(assets::serve(&assets::MORE, req.headers())),
        (Method::GET | Method::HEAD, "/hushtale-player.js") => Ok(assets::serve(&assets::PLAYER, req.headers())),
        (Method::GET, "/demo") => Ok(assets::serve(&assets::DEMO, req.headers())),
        (Method::GET | Method::HEAD, p) if p.starts_with(crate::assets::ROUTE) => {
            dashboard::asset(app, &p[crate::assets::ROUTE.len()..], req.headers())
                .ok_or_else(|| ApiError::NotFound(format!("no asset {path}")))
        }
        (Method::GET | Method::HEAD, p) if p == "/dashboard" || p.starts_with("/dashboard/") => {
            dashboard::serve(p, req.headers()).ok_or_else(|| ApiError::NotFound(format!("no route for {path}")))
        }
        (Method::GET, "/disable") => Ok(visitor::disable(app, &req)),
        (Method::GET, "/enable") => Ok(visitor::enable_page(app, &req)),
        (Method::POST, "/enable") => visitor::enable(app, &req),
        (Method::GET, "/optout") => Ok(visitor::status(app, req.headers())),
        (Method::POST, "/me/export") => visitor::me(app, req, peer, false).await,
        (Method::POST, "/me/forget") => visitor::me(app, req, peer, true).await,
        (Method::OPTIONS, "/me/export" | "/me/forget" | "/optout") => collect::preflight(app, &req),
        (Method::GET, "/pages/style.css") => {
            Ok(public::asset("text/css; charset=utf-8", visitor::PAGE_STYLE.as_bytes()))
        }
        (
            _,
            "/collect" | "/healthz" | "/metrics" | "/disable" | "/enable" | "/optout" | "/me/export" | "/me/forget",
        ) => Err(ApiError::MethodNotAllowed),
        (Method::GET | Method::HEAD, "/api/openapi.json") => Ok(public::openapi()),
        (method, p) if p == "/api" || p.starts_with("/api/") => api::handle(app, method, req).await,
        _ => Err(ApiError::NotFound(format!("no route for {path}"))),
    }
}
