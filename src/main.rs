//! The `hushtale` binary: parse flags, load config, start logging, bind, run — or run one of the
//! operator CLI's reports against a running server (`hushtale stats|pages|heatmap`, see `cli`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hushtale::config::{Overrides, RawConfig};
use hushtale::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(name = "hushtale", version, about = "Privacy-first session recording and analytics collector")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector (the default).
    Serve(ServeArgs),
    /// Per-day figures of a site, from a running server.
    Stats(hushtale::cli::StatsArgs),
    /// Per-page figures of a site, from a running server.
    Pages(hushtale::cli::PagesArgs),
    /// Heatmap of one page, from a running server.
    Heatmap(hushtale::cli::HeatmapArgs),
    /// Form analytics of one page (starters, submits, fields), from a running server.
    Forms(hushtale::cli::FormsArgs),
    /// A conversion funnel over pages, from a running server.
    Funnel(hushtale::cli::FunnelArgs),
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "HUSHTALE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "HUSHTALE_LISTEN")]
    listen: Option<String>,
    /// Data folder [default: ./hushtale-data].
    #[arg(long, env = "HUSHTALE_DATA")]
    data: Option<PathBuf>,
    /// Store: `sled` or `clickhouse+http://HOST:PORT/DATABASE` [default: sled].
    #[arg(long, env = "HUSHTALE_STORE")]
    store: Option<String>,
    /// Log format.
    #[arg(long, env = "HUSHTALE_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// PEM certificate chain: serve HTTPS (HTTP/1.1 and HTTP/2) on --listen.
    #[arg(long, env = "HUSHTALE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "HUSHTALE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Stats(a)) => return hushtale::cli::run(hushtale::cli::Report::Stats(a)),
        Some(Command::Pages(a)) => return hushtale::cli::run(hushtale::cli::Report::Pages(a)),
        Some(Command::Heatmap(a)) => return hushtale::cli::run(hushtale::cli::Report::Heatmap(a)),
        Some(Command::Forms(a)) => return hushtale::cli::run(hushtale::cli::Report::Forms(a)),
        Some(Command::Funnel(a)) => return hushtale::cli::run(hushtale::cli::Report::Funnel(a)),
        None => cli.serve,
    };
    let raw = match &args.config {
        Some(path) => RawConfig::load(path),
        None => Ok(RawConfig::default()),
    };
    let overrides = Overrides {
        listen: args.listen,
        data: args.data,
        store: args.store,
        log_format: args.log_format,
        admin_token: std::env::var("HUSHTALE_ADMIN_TOKEN").ok(),
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        trusted_proxies: std::env::var("HUSHTALE_TRUSTED_PROXIES").ok(),
    };
    let config = match raw.and_then(|r| r.validate(overrides)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hushtale: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(config.log_format);
    // Connections are served on one thread per core (`server::serve`); this runtime keeps the
    // accept loop, the writer and the housekeeping tasks.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("hushtale: cannot listen on {}: {e}", config.listen);
                return ExitCode::from(1);
            }
        };
        match hushtale::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "hushtale stopped with an error");
                ExitCode::FAILURE
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}
