//! The HTTP server: accept loop with a connection limit (overall and per address), deadlines
//! and idle timeouts for every connection, optional TLS, HTTP/1.1 and HTTP/2, and a graceful stop
//! (stop accepting, let open requests finish).

mod acme;
mod api;
pub mod assets;
mod body;
mod certfiles;
pub mod client;
mod collect;
mod conn;
pub mod cores;
mod cors;
mod dashboard;
mod firstparty;
mod openapi;
mod public;
pub mod ratelimit;
pub mod response;
mod router;
mod routes;
pub mod tls;
mod visitor;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::app::App;
use crate::telemetry::metrics::CloseReason;
use conn::{Activity, PerAddress, TrackedBody};
use tls::TlsAcceptor;

/// How long open connections get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` (over TLS when `tls` is given) on `cores` until `shutdown` resolves, then
/// waits (bounded) for open connections; the caller stops `cores` once the writer is done.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    cores: &mut cores::Cores,
    shutdown: impl Future<Output = ()>,
) {
    let limits = &app.config.server;
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_ip);
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(protocols(&app));
    let tls = tls.map(Arc::new);

    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Proxies carry many visitors: only other peers are held to the per-address cap.
        let slot = if client::is_trusted(&app.config.trusted_proxies, peer.ip()) {
            None
        } else {
            match per_address.acquire(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    app.metrics.close(CloseReason::PerAddress);
                    continue; // dropping the stream closes it
                }
            }
        };
        let _ = stream.set_nodelay(true);
        // The socket leaves this runtime and is registered again on the core that serves it.
        let Ok(stream) = stream.into_std() else { continue };
        let (app, tls, builder, watcher) = (app.clone(), tls.clone(), builder.clone(), graceful.watcher());
        cores.spawn(async move {
            if let Ok(stream) = TcpStream::from_std(stream) {
                connection(stream, peer, app, tls, builder, watcher).await;
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; draining open connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
}

fn protocols(app: &App) -> auto::Builder<TokioExecutor> {
    let limits = &app.config.server;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// One connection from accept to close: the TLS handshake, then HTTP, all under a watchdog that
/// closes it when the first request is late or when it sits idle.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    tls: Option<Arc<TlsAcceptor>>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
) {
    let activity = Activity::new();
    let metrics = app.metrics.clone();
    let (first, idle) = (app.config.server.header_timeout, app.config.server.idle_timeout);
    let work = {
        let activity = activity.clone();
        async move {
            let Some(tls) = tls else {
                return http(stream, peer, false, app, activity, builder, watcher).await;
            };
            match tls.accept(stream).await {
                Ok(Some(stream)) => http(stream, peer, true, app, activity, builder, watcher).await,
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = activity.expired(first, idle) => {
            metrics.close(if activity.served_any() { CloseReason::Idle } else { CloseReason::Late });
        }
    }
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    is_tls: bool,
    app: Arc<App>,
    activity: Arc<Activity>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        let guard = activity.begin();
        let app = app.clone();
        async move {
            let client = client::resolve(&app.config.trusted_proxies, peer.ip(), is_tls, req.headers());
            client::normalise_headers(req.headers_mut(), client);
            firstparty::strip_base_path(&app.config.base_path, &mut req);
            let resp = firstparty::rebase_html(&app.config.base_path, router::handle(&app, req, client.ip).await);
            Ok::<_, Infallible>(resp.map(|body| TrackedBody::new(body, guard)))
        }
    });
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), service).into_owned());
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
