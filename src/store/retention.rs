//! Retention: a background task that deletes raw sessions and events older than each site's
//! `retention_days`, in small steps through the writer so ingest never stalls. Rollups stay.

use std::sync::Arc;
use std::time::Duration;

use crate::model::{now_ms, DAY_MS};
use crate::sites::Sites;
use crate::store::writer::Writer;

/// Pause between steps, letting group commits run in between.
const STEP_PAUSE: Duration = Duration::from_millis(20);

/// The retention task's schedule (`[retention]` in the config).
#[derive(Debug, Clone)]
pub struct Retention {
    pub interval: Duration,
    /// Most sessions deleted per step (one writer maintenance job).
    pub step: usize,
    /// Added to the clock when deciding what is old (tests age data without waiting).
    pub clock_skew_ms: i64,
}

/// Runs until aborted: every `config.interval`, expires what each site no longer keeps (its
/// captured replay assets too).
pub async fn run(writer: Writer, sites: Arc<Sites>, config: Retention, assets: crate::assets::Assets) {
    let mut tick = tokio::time::interval(config.interval);
    loop {
        tick.tick().await;
        let now = now_ms() + config.clock_skew_ms;
        for site in sites.all() {
            let before = now - site.settings.retention_days as i64 * DAY_MS;
            let (assets, id) = (assets.clone(), site.settings.id.clone());
            let _ = tokio::task::spawn_blocking(move || assets.expire(&id, before)).await;
            let mut total = 0;
            loop {
                match writer.expire(&site.settings.id, before, config.step).await {
                    Ok(n) => {
                        total += n;
                        if n < config.step {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(site = %site.settings.id, error = %e, "retention step failed");
                        break;
                    }
                }
                tokio::time::sleep(STEP_PAUSE).await;
            }
            if total > 0 {
                tracing::info!(site = %site.settings.id, sessions = total, "expired old sessions");
            }
        }
    }
}
