//! # hushtale
//!
//! A self-hosted, privacy-first session-recording and in-page analytics collector.
//!
//! ## The path of an event
//!
//! 1. A visitor's browser runs the snippet (`js-snippet/`, served at `/hushtale.js`). It records
//!    a click, batches it with other events and `POST`s the batch to `/collect`.
//! 2. [`server`] accepts the connection (bounded by a connection limit and header/body
//!    timeouts) and routes the request to the collect handler.
//! 3. Before reading the body, [`privacy::optout`] looks at the headers: the `hushtale_optout`
//!    cookie, `DNT: 1` or `Sec-GPC: 1` end the request with 204, nothing decoded or stored.
//! 4. [`ingest`] reads the body under a wire-size limit, inflates gzip under a second limit,
//!    decodes JSON or MessagePack into borrowed wire types, checks the site and `Origin`, and
//!    validates the envelope and each event (invalid events are dropped and counted).
//! 5. [`privacy`] rewrites what remains: URLs normalised (query allow-list, `:id` segments),
//!    every string scrubbed of e-mails, card numbers, phones and secrets, the User-Agent reduced
//!    to a device class (bots dropped), the visitor id replaced by a keyed hash.
//! 6. The clean [`model::StoredBatch`] goes into the bounded queue of [`store::writer`]; a full
//!    queue answers 503 at once. One writer task takes everything waiting, and the [`store`]
//!    writes it as one atomic group with its [`rollup`] deltas and flushes to disk.
//! 7. Only then does every waiting request get its 204: 204 means durable.
//! 8. Operators read [`query`] answers (stats, sessions) through the bearer-token API; they come
//!    from rollups and indexes, never from scanning raw events.

// The team standard: no function over 80 lines (threshold in clippy.toml; clippy counts code
// lines, not comments or blank ones).
#![warn(clippy::too_many_lines)]

pub mod app;
pub mod assets;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod error;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod ingest;
pub mod model;
pub mod privacy;
pub mod query;
pub mod rollup;
pub mod secrets;
pub mod server;
pub mod sites;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod test_rng;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::App;
use crate::config::{Config, StoreKind};
use crate::secrets::AdminToken;
use crate::sites::Sites;
use crate::store::clickhouse::ClickHouseStore;
use crate::store::sled::SledStore;
use crate::store::writer::Writer;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("data folder {path}: {source}")]
    Data { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Tls(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("could not start the per-core threads: {0}")]
    Cores(std::io::Error),
}

/// Runs the collector on `listener` until `shutdown` resolves; then stops accepting, lets open
/// requests finish, drains the write queue and flushes. `main` calls this; the integration tests
/// start the real binary on port 0 (`tests/common/mod.rs`).
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let data_err = |source| RunError::Data { path: config.data.display().to_string(), source };
    datadir::create_private(&config.data).map_err(data_err)?;
    let token = secrets::admin_token(&config.data, config.admin_token.as_deref()).map_err(data_err)?;
    config::strong_token("the operator token", Some(token.value().to_owned()))?;
    let secret = secrets::server_secret(&config.data).map_err(data_err)?;

    let store: Arc<dyn Store> = match &config.store {
        StoreKind::Sled => Arc::new(SledStore::open_with_memtable(
            &config.data.join("store"),
            config.server.store_cache_bytes,
            config.server.store_memtable_bytes,
        )?),
        StoreKind::ClickHouse(target) => {
            tracing::info!(endpoint = %target.endpoint, database = %target.database, "store: ClickHouse");
            Arc::new(ClickHouseStore::connect(target).await?)
        }
    };
    let assets = assets::Assets::start(&config.data.join("assets"), config.assets.clone()).map_err(|e| {
        RunError::Data { path: config.data.join("assets").display().to_string(), source: std::io::Error::other(e) }
    })?;
    // One pass once every store has created its files (sled creates them 0644).
    datadir::make_private(&config.data).map_err(data_err)?;
    let sites = Sites::new(config.sites.clone());
    for site in store.load_sites().await? {
        if sites.get(&site.id).is_none() {
            sites.insert(site);
        }
    }

    let (metrics, registry) = Metrics::new();
    let mut cores = server::cores::Cores::start().map_err(RunError::Cores)?;
    let (writer, writer_task) = Writer::spawn(store.clone(), &config.writer, metrics.clone(), &cores.handles());
    let tls = server::tls::TlsAcceptor::from_config(&config).map_err(RunError::Tls)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let local = format!("{scheme}://{}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    announce(&config, &local, &token);

    let rate = &config.rate_limit;
    let app = Arc::new(App {
        assets,
        collect_limiter: server::ratelimit::IpLimiter::per_second(rate.collect_per_second, rate.collect_burst),
        visitor_limiter: server::ratelimit::IpLimiter::per_minute(rate.visitor_per_minute, rate.visitor_per_minute),
        auth_throttle: Default::default(),
        keyer: privacy::VisitorKeyer::new(&secret),
        admin_token: token.value().to_owned(),
        config,
        sites: Arc::new(sites),
        store: store.clone(),
        writer,
        metrics,
        registry,
    });
    let retention =
        store::retention::run(app.writer.clone(), app.sites.clone(), app.config.retention.clone(), app.assets.clone());
    let housekeeping = [tokio::spawn(retention), tokio::spawn(server::ratelimit::prune(app.clone()))];
    server::serve(listener, app.clone(), tls, &mut cores, shutdown).await;
    for task in housekeeping {
        task.abort();
        let _ = task.await;
    }
    // Connections are closed (or were given up on): the writer drains its lanes, then the
    // cores stop, dropping whatever connection outlived the drain.
    drop(app);
    writer_task.finish().await;
    cores.stop().await;
    store.flush().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Prints where things are: `local` is the bound address, links use `public_url` when set.
fn announce(config: &Config, local: &str, token: &AdminToken) {
    let base = config.public_url.as_deref().unwrap_or(local);
    tracing::info!(listen = %local, public = %base, data = %config.data.display(), "hushtale is listening");
    if config.demo_mode {
        tracing::warn!("development mode: no [[site]] configured, site \"demo\" accepts batches from ANY origin");
    }
    println!("hushtale listening on {local}");
    if base != local {
        println!("  public URL  : {base}");
    }
    let site = config.sites.first().map_or("demo", |s| s.id.as_str());
    println!("  snippet tag : <script async src=\"{base}/hushtale.js\" data-site=\"{site}\"></script>");
    println!("  demo page   : {base}/demo");
    println!("  dashboard   : {base}/dashboard");
    println!("  opt-out page: {base}/disable");
    match token {
        AdminToken::Generated { token, path } => {
            println!("  operator token (shown once, kept in {}): {token}", path.display());
        }
        AdminToken::Existing(_) => {
            println!("  operator token: in {}", config.data.join(secrets::ADMIN_TOKEN_FILE).display())
        }
        AdminToken::FromEnv(_) => println!("  operator token: from HUSHTALE_ADMIN_TOKEN"),
    }
}
