//! What a running collector holds, shared by every connection.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::privacy::VisitorKeyer;
use crate::server::ratelimit::{AuthThrottle, IpLimiter};
use crate::sites::Sites;
use crate::store::writer::Writer;
use crate::store::Store;
use crate::telemetry::Metrics;

pub struct App {
    pub config: Config,
    pub sites: Arc<Sites>,
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub metrics: Metrics,
    pub registry: Registry,
    pub admin_token: String,
    pub keyer: VisitorKeyer,
    /// Per-IP limits on `/collect` and on the visitor-rights endpoints.
    pub collect_limiter: IpLimiter,
    pub visitor_limiter: IpLimiter,
    /// Replay assets captured by the collector (see [`crate::assets`]).
    pub assets: crate::assets::Assets,
    /// Failed operator-token attempts per address.
    pub auth_throttle: AuthThrottle,
}
