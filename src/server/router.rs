//! Dispatch: finds the request's route in the table ([`super::routes`]), checks the operator
//! token where the route needs it, and is the one place errors become responses (logged by
//! class, counted by status) and refusals are logged and counted ([`refused`]).

use std::net::IpAddr;

use http::header::{HeaderValue, ALLOW, WWW_AUTHENTICATE};
use http::Request;
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use super::response::{self, Resp};
use super::routes::{self, Access, Miss, ROUTES};
use crate::app::App;
use crate::error::ApiError;
use crate::ingest::Reason;
use crate::telemetry::metrics::StatusLabel;

pub async fn handle(app: &App, req: Request<Incoming>, peer: IpAddr) -> Resp {
    let resp = match route(app, req, peer).await {
        Ok(r) => r,
        Err(e) => {
            refused(app, &e, None);
            error_response(&e)
        }
    };
    app.metrics.responses.get_or_create(&StatusLabel { status: resp.status().as_u16() }).inc();
    resp
}

/// The one place a refused request is logged, and counted under its reason when it has one
/// (`/collect` batches).
pub(super) fn refused(app: &App, error: &ApiError, reason: Option<Reason>) {
    if let Some(reason) = reason {
        app.metrics.reject(reason);
    }
    let (status, reason) = (error.status().as_u16(), reason.map(Reason::as_str));
    if error.status().is_server_error() && !matches!(error, ApiError::Overloaded { .. }) {
        tracing::error!(status, reason, error = ?error, "request failed");
    } else {
        // Not the message: it can quote what the request sent, and a batch may hold personal data.
        tracing::debug!(status, reason, "request refused");
    }
}

fn error_response(e: &ApiError) -> Resp {
    let mut r = response::error(e);
    match e {
        ApiError::MethodNotAllowed { allow } => {
            r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::Unauthorized => {
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        _ => {}
    }
    r
}

async fn route(app: &App, req: Request<Incoming>, peer: IpAddr) -> Result<Resp, ApiError> {
    let (route, params) = match ROUTES.find(req.method(), req.uri().path()) {
        Ok(found) => found,
        Err(Miss::MethodNotAllowed(allow)) => return Err(ApiError::MethodNotAllowed { allow }),
        Err(Miss::NotFound) => return Err(ApiError::NotFound(format!("no route for {}", req.uri().path()))),
    };
    match route.access {
        Access::Public => (route.handler)(routes::call(app, req, peer, params)).await,
        Access::Operator => {
            authorize(app, &req, peer, &[&app.admin_token])?;
            let resp = (route.handler)(routes::call(app, req, peer, params)).await?;
            Ok(response::no_store(resp))
        }
    }
}

/// Checks the bearer token against `tokens`; wrong tokens are counted per address and an address
/// with too many is refused (429) before its token is even looked at.
pub(super) fn authorize(app: &App, req: &Request<Incoming>, peer: IpAddr, tokens: &[&str]) -> Result<(), ApiError> {
    app.auth_throttle.check(peer).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    if tokens.iter().any(|t| bool::from(given.as_bytes().ct_eq(t.as_bytes()))) {
        Ok(())
    } else {
        app.auth_throttle.failed(peer);
        Err(ApiError::Unauthorized)
    }
}
