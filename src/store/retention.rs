//! Retention: a background task that deletes raw sessions and events older than each site's
//! `retention_days`, in small steps through the writer so ingest never stalls. Rollups stay.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::model::DAY_MS;

/// Pause between steps, letting group commits run in between.
const STEP_PAUSE: Duration = Duration::from_millis(20);

pub async fn run(app: Arc<App>) {
    let mut tick = tokio::time::interval(app.config.retention.interval);
    loop {
        tick.tick().await;
        app.collect_limiter.prune();
        app.visitor_limiter.prune();
        let now = crate::server::now_ms() + app.config.retention.clock_skew_ms;
        for site in app.sites.all() {
            let before = now - site.settings.retention_days as i64 * DAY_MS;
            let (assets, id) = (app.assets.clone(), site.settings.id.clone());
            let _ = tokio::task::spawn_blocking(move || assets.expire(&id, before)).await;
            let mut total = 0;
            loop {
                match app.writer.expire(&site.settings.id, before, app.config.retention.step).await {
                    Ok(n) => {
                        total += n;
                        if n < app.config.retention.step {
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
