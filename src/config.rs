//! Configuration in two stages: [`RawConfig`] is what a TOML file, `HUSHTALE_*` variables and
//! flags say (every field documented with its default); [`Config`] is the validated result that
//! the rest of the program receives as one struct.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ingest::Limits as EventLimits;
use crate::model::{default_allowed_params, default_retention_days, valid_site_id, MaskText, SiteSettings};
use crate::privacy::OptOutPolicy;
use crate::store::clickhouse::ClickHouseTarget;
use crate::store::retention::Retention;
use crate::store::writer::WriterConfig;
use crate::telemetry::LogFormat;

/// The config file, as written. Unknown keys are an error so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Data folder (store, admin token, secret). Default `./hushtale-data`.
    pub data: Option<PathBuf>,
    /// `sled` (default, embedded in the data folder) or
    /// `clickhouse+http://[USER[:PASSWORD]@]HOST:PORT/DATABASE`.
    pub store: Option<String>,
    /// Credentials for a ClickHouse store (`HUSHTALE_CLICKHOUSE_USER` / `_PASSWORD` override).
    #[serde(default)]
    pub clickhouse: RawClickHouse,
    /// `text` (default) or `json` log lines.
    pub log_format: Option<LogFormat>,
    /// Public base URL of this collector (e.g. `https://t.example.com`), used in printed links
    /// and to recognise the server's own origin. Default: `http://` + listen address.
    pub public_url: Option<String>,
    #[serde(default)]
    pub privacy: RawPrivacy,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub assets: RawAssets,
    /// HTTPS: certificate files or automatic certificates from an ACME CA.
    #[serde(default)]
    pub tls: RawTls,
    /// Bearer token `GET /metrics` asks for (env `HUSHTALE_METRICS_TOKEN`), at least 16
    /// characters. Default none: the metrics are public.
    pub metrics_token: Option<String>,
    /// Proxies whose `Forwarded`/`X-Forwarded-For`/`X-Forwarded-Proto` are believed, as CIDRs
    /// (`["127.0.0.1/32", "10.0.0.0/8"]`). Default none: those headers are ignored.
    pub trusted_proxies: Option<Vec<String>>,
    /// Sites accepted by this collector. None configured: one `demo` site accepting any origin.
    #[serde(default, rename = "site")]
    pub sites: Vec<RawSite>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClickHouse {
    /// ClickHouse user. Default `default`.
    pub user: Option<String>,
    /// ClickHouse password. Default empty.
    pub password: Option<String>,
}

/// ClickHouse credentials from the environment, which win over the URL and the file.
#[derive(Debug, Default, Clone)]
pub struct ClickHouseEnv {
    pub user: Option<String>,
    pub password: Option<String>,
}

impl ClickHouseEnv {
    /// `HUSHTALE_CLICKHOUSE_USER` and `HUSHTALE_CLICKHOUSE_PASSWORD`.
    pub fn read() -> Self {
        Self {
            user: std::env::var("HUSHTALE_CLICKHOUSE_USER").ok(),
            password: std::env::var("HUSHTALE_CLICKHOUSE_PASSWORD").ok(),
        }
    }
}

impl RawClickHouse {
    /// The target of store URL `url`: credentials from `env`, else the URL, else this section.
    fn target(&self, url: &str, env: ClickHouseEnv) -> Result<ClickHouseTarget, String> {
        let mut target = ClickHouseTarget::parse(url, self.user.clone(), self.password.clone())?;
        target.user = env.user.or(target.user);
        target.password = env.password.or(target.password);
        Ok(target)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain (with `key`): serve HTTPS on `listen`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Domains to get a certificate for from an ACME CA (instead of `cert`/`key`).
    #[serde(default)]
    pub acme_domains: Vec<String>,
    /// Contact for the ACME account, like `mailto:ops@example.com`.
    pub acme_contact: Option<String>,
    /// ACME directory URL. Default Let's Encrypt's production directory.
    pub acme_directory: Option<String>,
    /// Extra PEM trust root for the ACME directory (a private or test CA).
    pub acme_ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivacy {
    /// Honour `DNT: 1`. Default true.
    pub honour_dnt: Option<bool>,
    /// Honour `Sec-GPC: 1`. Default true.
    pub honour_gpc: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest `/collect` body on the wire. Default 1 MiB.
    pub max_body_bytes: Option<usize>,
    /// Largest body after gzip inflation. Default 4 MiB.
    pub max_decompressed_bytes: Option<usize>,
    /// Most events in one batch (at most 10000). Default 2000.
    pub max_events_per_batch: Option<usize>,
    /// Longest `url`/`ref`. Default 2048.
    pub max_url_len: Option<usize>,
    /// Longest `title`. Default 512.
    pub max_title_len: Option<usize>,
    /// Longest `sel`. Default 256.
    pub max_sel_len: Option<usize>,
    /// Longest `msg`. Default 1024.
    pub max_msg_len: Option<usize>,
    /// Batches waiting for the writer before `/collect` answers 503. Default 4096.
    pub queue_batches: Option<usize>,
    /// Decoded bytes waiting for the writer before `/collect` answers 503. Default 128 MiB.
    pub queue_bytes: Option<usize>,
    /// Most batches per group commit. Default 4096.
    pub max_group: Option<usize>,
    /// Open connections; more wait in the accept backlog. Default 10000.
    pub max_connections: Option<usize>,
    /// Time allowed to send request headers, in ms; also the deadline for a new connection's
    /// TLS handshake and first request. Default 10000.
    pub header_timeout_ms: Option<u64>,
    /// A connection with no request in flight is closed after this long, in ms (HTTP/1.1
    /// keep-alive and HTTP/2 alike, PINGs or not). Default 60000.
    pub idle_timeout_ms: Option<u64>,
    /// Open connections from one client address (IPv6: one /64); trusted proxies are exempt.
    /// Default 256.
    pub max_connections_per_ip: Option<usize>,
    /// Time allowed to send a request body, in ms. Default 15000.
    pub body_timeout_ms: Option<u64>,
    /// sled page cache. Default 64 MiB (sled itself holds up to about twice that).
    pub store_cache_bytes: Option<u64>,
    /// Bytes of batches the sled applier holds in memory before it writes them to sled between
    /// its once-a-second checkpoints. Default 8 MiB.
    pub store_memtable_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Sustained `/collect` requests per second per client IP (0 = unlimited). Default 100.
    pub collect_per_second: Option<u32>,
    /// Burst of `/collect` requests per client IP. Default 1000.
    pub collect_burst: Option<u32>,
    /// `/me/export` + `/me/forget` requests per minute per client IP (0 = unlimited). Default 10.
    pub visitor_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// How often expired sessions are deleted, in seconds. Default 3600.
    pub interval_secs: Option<u64>,
    /// Sessions deleted per step; steps are spaced so ingest never stalls. Default 500.
    pub step: Option<usize>,
    /// For testing retention only: act as if it were this many days later. Default 0.
    pub clock_skew_days: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// Site id used in the snippet's `data-site` (lowercase letters, digits, `-`, `_`).
    pub id: String,
    /// Origins allowed to send, like `https://www.example.com`; `"*"` accepts any.
    pub origins: Vec<String>,
    /// Keep (scrubbed) page titles. Default false: titles often carry names.
    #[serde(default)]
    pub keep_titles: bool,
    /// Query parameters kept in URLs (exact, or prefix ending in `*`). Default `["utm_*"]`.
    pub allowed_params: Option<Vec<String>>,
    /// Days raw events are kept. Default 30.
    pub retention_days: Option<u32>,
    /// Origins assets are captured from for replays (default: `origins`, without `"*"`).
    pub asset_origins: Option<Vec<String>>,
    /// Capture assets from private/loopback addresses too (intranet sites). Default false.
    #[serde(default)]
    pub assets_private: bool,
    /// Replay text masking: `"digits"` (default) or `"all"`.
    #[serde(default)]
    pub mask_text: MaskText,
    /// Low-rate PNG/JPEG frames of `<canvas>` elements in replays. Default false.
    #[serde(default)]
    pub replay_canvas: bool,
}

/// Which backend stores the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    Sled,
    /// Many collectors, one ClickHouse (see `store::clickhouse`).
    ClickHouse(ClickHouseTarget),
}

/// Transport and queue limits of the server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub store_cache_bytes: u64,
    pub store_memtable_bytes: usize,
}

/// Per-IP rate limits (in memory only).
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub collect_per_second: u32,
    pub collect_burst: u32,
    pub visitor_per_minute: u32,
}

/// `[assets]`: capture of replay assets (stylesheets, images, fonts) by the collector.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssets {
    /// Default true.
    pub enabled: Option<bool>,
    /// Largest asset fetched, in bytes. Default 5 MiB.
    pub max_bytes: Option<usize>,
    /// Deadline of one fetch (redirects included), in seconds. Default 10.
    pub timeout_secs: Option<u64>,
    /// Asset URLs kept per site (captured or failed). Default 5000.
    pub max_per_site: Option<usize>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub store: StoreKind,
    pub log_format: LogFormat,
    pub public_url: Option<String>,
    /// The path of `public_url` (`/stats` for `https://shop.example/stats`), or empty: every
    /// link, redirect and cookie `Path` the server hands out starts with it.
    pub base_path: String,
    pub tls: Option<TlsSource>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub sites: Vec<SiteSettings>,
    /// No site configured: the `demo` site accepts any origin.
    pub demo_mode: bool,
    pub admin_token: Option<String>,
    /// Needed by `GET /metrics` when set (the operator token works too).
    pub metrics_token: Option<String>,
    pub optout: OptOutPolicy,
    pub events: EventLimits,
    pub server: ServerLimits,
    pub writer: WriterConfig,
    pub rate_limit: RateLimits,
    pub retention: Retention,
    pub assets: crate::assets::AssetLimits,
}

/// Values given on the command line or in the environment; they override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub store: Option<String>,
    pub log_format: Option<LogFormat>,
    pub admin_token: Option<String>,
    /// `--tls-cert` / `HUSHTALE_TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key` / `HUSHTALE_TLS_KEY`.
    pub tls_key: Option<PathBuf>,
    /// `HUSHTALE_TRUSTED_PROXIES`, comma-separated CIDRs.
    pub trusted_proxies: Option<String>,
}

/// Where the HTTPS certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    Acme(AcmeSettings),
}

/// Automatic certificates (see `server::acme`).
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub domains: Vec<String>,
    pub contact: Option<String>,
    pub directory: String,
    pub ca_file: Option<PathBuf>,
}

pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Shortest token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// `token`, unless it is too short to stand against guessing.
pub fn strong_token(name: &str, token: Option<String>) -> Result<Option<String>, ConfigError> {
    match token {
        Some(t) if t.chars().count() < MIN_TOKEN_LEN => Err(ConfigError::Invalid(format!(
            "{name} is {} characters long; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 16`)",
            t.chars().count()
        ))),
        t => Ok(t),
    }
}

impl RawConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies overrides and defaults and checks everything.
    pub fn validate(self, over: Overrides) -> Result<Config, ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(m);
        let listen_text = over.listen.or(self.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr =
            listen_text.parse().map_err(|_| invalid(format!("listen address {listen_text:?} is not IP:PORT")))?;
        let store = store_kind(over.store.or(self.store).as_deref(), &self.clickhouse)?;
        let (events, server) = (self.limits.events()?, self.limits.server()?);
        let writer = self.limits.writer(&server);
        let (sites, demo_mode) = validate_sites(self.sites)?;
        let tls = validate_tls(self.tls, over.tls_cert, over.tls_key)?;
        let trusted_proxies = match over.trusted_proxies {
            Some(text) => parse_cidrs(text.split(',').map(str::trim).filter(|s| !s.is_empty()))?,
            None => parse_cidrs(self.trusted_proxies.iter().flatten().map(String::as_str))?,
        };
        let public_url = self.public_url.map(|u| u.trim_end_matches('/').to_owned());
        let base_path = match &public_url {
            Some(u) => public_base_path(u)?,
            None => String::new(),
        };
        let metrics_token = std::env::var("HUSHTALE_METRICS_TOKEN").ok().or(self.metrics_token);
        Ok(Config {
            listen,
            data: over.data.or(self.data).unwrap_or_else(|| PathBuf::from("./hushtale-data")),
            store,
            log_format: over.log_format.or(self.log_format).unwrap_or(LogFormat::Text),
            public_url,
            base_path,
            tls,
            trusted_proxies,
            sites,
            demo_mode,
            admin_token: strong_token("HUSHTALE_ADMIN_TOKEN", over.admin_token.filter(|t| !t.is_empty()))?,
            metrics_token: strong_token("metrics_token", metrics_token.filter(|t| !t.is_empty()))?,
            optout: OptOutPolicy {
                honour_dnt: self.privacy.honour_dnt.unwrap_or(true),
                honour_gpc: self.privacy.honour_gpc.unwrap_or(true),
            },
            events,
            server,
            writer,
            rate_limit: self.rate_limit.resolve(),
            retention: self.retention.resolve(),
            assets: self.assets.resolve(),
        })
    }
}

/// `store = "sled"` (default) or `"clickhouse+http://HOST:PORT/DATABASE"`.
fn store_kind(store: Option<&str>, clickhouse: &RawClickHouse) -> Result<StoreKind, ConfigError> {
    match store {
        None | Some("sled") => Ok(StoreKind::Sled),
        Some(url) if url.starts_with("clickhouse+") => {
            Ok(StoreKind::ClickHouse(clickhouse.target(url, ClickHouseEnv::read()).map_err(ConfigError::Invalid)?))
        }
        Some(other) => Err(ConfigError::Invalid(format!(
            "unknown store {other:?}: use \"sled\" or \"clickhouse+http://HOST:PORT/DATABASE\""
        ))),
    }
}

/// The configured sites, or the demo site (any origin) when there is none; the flag says which.
fn validate_sites(raw: Vec<RawSite>) -> Result<(Vec<SiteSettings>, bool), ConfigError> {
    if raw.is_empty() {
        let demo = SiteSettings {
            id: "demo".into(),
            origins: vec!["*".into()],
            keep_titles: false,
            allowed_params: default_allowed_params(),
            retention_days: default_retention_days(),
            asset_origins: None,
            assets_private: false,
            mask_text: MaskText::default(),
            replay_canvas: false,
        };
        return Ok((vec![demo], true));
    }
    let sites: Vec<SiteSettings> = raw.into_iter().map(validate_site).collect::<Result<_, _>>()?;
    let mut ids: Vec<&str> = sites.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(ConfigError::Invalid("two [[site]] entries share an id".into()));
    }
    Ok((sites, false))
}

impl RawLimits {
    fn events(&self) -> Result<EventLimits, ConfigError> {
        let events = EventLimits {
            max_events_per_batch: self.max_events_per_batch.unwrap_or(2000),
            max_url_len: self.max_url_len.unwrap_or(2048),
            max_title_len: self.max_title_len.unwrap_or(512),
            max_sel_len: self.max_sel_len.unwrap_or(256),
            max_msg_len: self.max_msg_len.unwrap_or(1024),
        };
        if events.max_events_per_batch == 0 || events.max_events_per_batch > crate::ingest::wire::HARD_MAX_EVENTS {
            return Err(ConfigError::Invalid("limits.max_events_per_batch must be 1..=10000".into()));
        }
        Ok(events)
    }

    fn server(&self) -> Result<ServerLimits, ConfigError> {
        let server = ServerLimits {
            max_body_bytes: self.max_body_bytes.unwrap_or(1 << 20),
            max_decompressed_bytes: self.max_decompressed_bytes.unwrap_or(4 << 20),
            max_connections: self.max_connections.unwrap_or(10_000).max(1),
            max_connections_per_ip: self.max_connections_per_ip.unwrap_or(256).max(1),
            header_timeout: Duration::from_millis(self.header_timeout_ms.unwrap_or(10_000).max(1)),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.unwrap_or(60_000).max(1)),
            body_timeout: Duration::from_millis(self.body_timeout_ms.unwrap_or(15_000)),
            store_cache_bytes: self.store_cache_bytes.unwrap_or(64 << 20),
            store_memtable_bytes: self
                .store_memtable_bytes
                .map_or(crate::store::sled::DEFAULT_MEMTABLE_BYTES, |b| b as usize),
        };
        if server.max_decompressed_bytes < server.max_body_bytes {
            return Err(ConfigError::Invalid("limits.max_decompressed_bytes must be ≥ max_body_bytes".into()));
        }
        Ok(server)
    }

    /// The queue holds at least one largest batch.
    fn writer(&self, server: &ServerLimits) -> WriterConfig {
        WriterConfig {
            queue_batches: self.queue_batches.unwrap_or(4096).max(1),
            queue_bytes: self.queue_bytes.unwrap_or(128 << 20).max(server.max_decompressed_bytes),
            max_group: self.max_group.unwrap_or(4096).max(1),
        }
    }
}

impl RawRateLimit {
    fn resolve(self) -> RateLimits {
        RateLimits {
            collect_per_second: self.collect_per_second.unwrap_or(100),
            collect_burst: self.collect_burst.unwrap_or(1000),
            visitor_per_minute: self.visitor_per_minute.unwrap_or(10),
        }
    }
}

impl RawRetention {
    fn resolve(self) -> Retention {
        Retention {
            interval: Duration::from_secs(self.interval_secs.unwrap_or(3600).max(1)),
            step: self.step.unwrap_or(500).max(1),
            clock_skew_ms: self.clock_skew_days.unwrap_or(0) * crate::model::DAY_MS,
        }
    }
}

impl RawAssets {
    fn resolve(self) -> crate::assets::AssetLimits {
        let d = crate::assets::AssetLimits::default();
        crate::assets::AssetLimits {
            enabled: self.enabled.unwrap_or(d.enabled),
            max_bytes: self.max_bytes.unwrap_or(d.max_bytes).clamp(1024, 64 << 20),
            timeout: self.timeout_secs.map(|s| Duration::from_secs(s.clamp(1, 120))).unwrap_or(d.timeout),
            max_per_site: self.max_per_site.unwrap_or(d.max_per_site),
        }
    }
}

fn validate_tls(raw: RawTls, cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsSource>, ConfigError> {
    let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
    let (cert, key) = (cert.or(raw.cert), key.or(raw.key));
    match (cert, key, raw.acme_domains.is_empty()) {
        (Some(cert), Some(key), true) => Ok(Some(TlsSource::Files { cert, key })),
        (Some(_), None, _) | (None, Some(_), _) => {
            invalid("tls: give both a certificate (--tls-cert) and a key (--tls-key)")
        }
        (Some(_), Some(_), false) => invalid("tls: use either cert/key files or acme_domains, not both"),
        (None, None, true) => Ok(None),
        (None, None, false) => {
            if let Some(d) = raw.acme_domains.iter().find(|d| d.is_empty() || d.contains(['/', ':', ' ', '*'])) {
                return Err(ConfigError::Invalid(format!("tls.acme_domains: {d:?} is not a host name")));
            }
            let directory = raw.acme_directory.unwrap_or_else(|| LETS_ENCRYPT_DIRECTORY.into());
            if !directory.starts_with("https://") {
                return invalid("tls.acme_directory must be an https:// URL");
            }
            Ok(Some(TlsSource::Acme(AcmeSettings {
                domains: raw.acme_domains,
                contact: raw.acme_contact,
                directory,
                ca_file: raw.acme_ca_file,
            })))
        }
    }
}

fn parse_cidrs<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    items
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| ConfigError::Invalid(format!("trusted_proxies: {s:?} is not an address or CIDR")))
        })
        .collect()
}

/// `/stats` for `https://shop.example/stats`; empty for a URL without a path.
fn public_base_path(public_url: &str) -> Result<String, ConfigError> {
    let u = url::Url::parse(public_url)
        .map_err(|_| ConfigError::Invalid(format!("public_url {public_url:?} is not a URL")))?;
    if !matches!(u.scheme(), "http" | "https")
        || u.host_str().is_none()
        || u.query().is_some()
        || u.fragment().is_some()
    {
        return Err(ConfigError::Invalid(format!("public_url {public_url:?} must be http(s)://host[:port][/path]")));
    }
    Ok(u.path().trim_end_matches('/').to_owned())
}

/// Checks one site definition (from the config file or `POST /api/sites`).
pub fn validate_site(raw: RawSite) -> Result<SiteSettings, ConfigError> {
    if !valid_site_id(&raw.id) {
        return Err(ConfigError::Invalid(format!("site id {:?} must be 1-64 characters of a-z, 0-9, - and _", raw.id)));
    }
    if raw.origins.is_empty() {
        return Err(ConfigError::Invalid(format!("site {} needs at least one origin", raw.id)));
    }
    let origins = raw
        .origins
        .into_iter()
        .map(|o| {
            normalize_origin(&o).ok_or_else(|| {
                ConfigError::Invalid(format!("origin {o:?} is not scheme://host[:port], \"*\" or \"null\""))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let retention_days = raw.retention_days.unwrap_or_else(default_retention_days);
    if retention_days == 0 {
        return Err(ConfigError::Invalid(format!("site {}: retention_days must be at least 1", raw.id)));
    }
    Ok(SiteSettings {
        id: raw.id,
        origins,
        keep_titles: raw.keep_titles,
        allowed_params: raw.allowed_params.unwrap_or_else(default_allowed_params),
        retention_days,
        asset_origins: raw
            .asset_origins
            .map(|list| {
                list.iter()
                    .map(|o| {
                        normalize_origin(o).filter(|o| o != "*").ok_or_else(|| {
                            ConfigError::Invalid(format!("asset origin {o:?} is not scheme://host[:port]"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?,
        assets_private: raw.assets_private,
        mask_text: raw.mask_text,
        replay_canvas: raw.replay_canvas,
    })
}

fn normalize_origin(o: &str) -> Option<String> {
    if o == "*" || o == "null" {
        return Some(o.to_owned());
    }
    let u = url::Url::parse(o).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || u.path() != "/" || u.query().is_some() {
        return None;
    }
    Some(u.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_demo_site() {
        let c = RawConfig::default().validate(Overrides::default()).unwrap();
        assert!(c.demo_mode);
        assert_eq!(c.sites[0].id, "demo");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.max_body_bytes, 1 << 20);
    }

    #[test]
    fn file_sites_and_overrides() {
        let raw = RawConfig::parse(
            r#"
            listen = "0.0.0.0:9000"
            [[site]]
            id = "shop"
            origins = ["https://Shop.Example.com/"]
            retention_days = 7
            "#,
        )
        .unwrap();
        let c = raw.validate(Overrides { listen: Some("127.0.0.1:1".into()), ..Default::default() }).unwrap();
        assert_eq!(c.listen.port(), 1);
        assert!(!c.demo_mode);
        assert_eq!(c.sites[0].origins, vec!["https://shop.example.com"]);
        assert_eq!(c.sites[0].retention_days, 7);
    }

    #[test]
    fn store_memory_limits_have_defaults_and_can_be_set() {
        let c = RawConfig::default().validate(Overrides::default()).unwrap();
        assert_eq!((c.server.store_cache_bytes, c.server.store_memtable_bytes), (64 << 20, 8 << 20));
        let raw = RawConfig::parse("[limits]\nstore_cache_bytes = 1048576\nstore_memtable_bytes = 65536").unwrap();
        let c = raw.validate(Overrides::default()).unwrap();
        assert_eq!((c.server.store_cache_bytes, c.server.store_memtable_bytes), (1 << 20, 1 << 16));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(RawConfig::parse("lisen = 1").is_err());
        let err = RawConfig::parse("[[site]]\nid = \"Bad Id\"\norigins = [\"*\"]")
            .unwrap()
            .validate(Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("Bad Id"));
    }

    #[test]
    fn clickhouse_store_urls() {
        let c =
            RawConfig::parse("store = \"clickhouse+http://ch.internal:9123/analytics\"\n[clickhouse]\nuser = \"w\"\n")
                .unwrap()
                .validate(Overrides::default())
                .unwrap();
        let StoreKind::ClickHouse(t) = c.store else { panic!("not clickhouse") };
        assert_eq!(t.endpoint, "http://ch.internal:9123");
        assert_eq!(t.database, "analytics");
        assert_eq!(t.user.as_deref(), Some("w"));
        let t = ClickHouseTarget::parse("clickhouse+http://u:p%40ss@127.0.0.1/db_1", None, None).unwrap();
        assert_eq!(
            (t.endpoint.as_str(), t.user.as_deref(), t.password.as_deref()),
            ("http://127.0.0.1:8123", Some("u"), Some("p@ss"))
        );
        assert!(!format!("{t:?}").contains("p@ss"), "passwords stay out of logs");
        let env = ClickHouseEnv { user: Some("e".into()), password: Some("pw".into()) };
        let t = RawClickHouse::default().target("clickhouse+http://u:p@h:1/db", env).unwrap();
        assert_eq!((t.user.as_deref(), t.password.as_deref()), (Some("e"), Some("pw")), "the environment wins");
        for bad in
            ["clickhouse+https://h:1/db", "clickhouse+http://h:1/", "clickhouse+http://h:1/a-b", "clickhouse://h/db"]
        {
            let over = Overrides { store: Some(bad.into()), ..Default::default() };
            assert!(RawConfig::default().validate(over).is_err(), "{bad}");
        }
    }
}
