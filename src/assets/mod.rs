//! Server-side asset capture. When a stored snapshot names a stylesheet, image or font of one
//! of the site's own origins, the collector fetches it once (bounded in size, time and count,
//! never from a private address unless the site says so: see [`policy`]), keeps it
//! content-addressed ([`store`]) with the site's retention, and serves it at
//! `/dashboard/asset/{sha256}`. Stylesheets are stored rewritten so that the fonts and images
//! they name come from the collector too. The session API hands the dashboard a map from each
//! recorded URL to its asset, so a replay or heatmap frame loads nothing from anywhere else.

pub mod fetch;
pub mod policy;
pub mod refs;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use url::Url;

use self::fetch::{FetchLimits, Fetcher};
use self::policy::Policy;
use self::refs::{Kind, Refs};
use self::store::{AssetStore, Entry};
use crate::model::{Event, EventData, Id128, SiteSettings};

/// The path assets are served under.
pub const ROUTE: &str = "/dashboard/asset/";
/// Jobs waiting at most; more are dropped (and offered again by later snapshots).
const QUEUE: usize = 1024;
const WORKERS: usize = 2;
/// A stylesheet brings at most this many assets of its own, this many `@import`s deep.
const MAX_CSS_DEPTH: u8 = 2;
/// Sessions whose page address is remembered, to resolve relative URLs of later mutations.
const MAX_BASES: usize = 10_000;

/// Bounds of capture (`[assets]` in the config).
#[derive(Debug, Clone)]
pub struct AssetLimits {
    pub enabled: bool,
    pub max_bytes: usize,
    pub timeout: Duration,
    /// URLs kept per site (captured or failed); more are not fetched.
    pub max_per_site: usize,
}

impl Default for AssetLimits {
    fn default() -> Self {
        Self { enabled: true, max_bytes: 5 << 20, timeout: Duration::from_secs(10), max_per_site: 5000 }
    }
}

struct Job {
    site: String,
    policy: Policy,
    url: Url,
}

struct Inner {
    store: AssetStore,
    fetcher: Fetcher,
    limits: AssetLimits,
    /// (site, url) queued or being fetched: offered once however many batches name it.
    busy: Mutex<HashSet<(String, String)>>,
    bases: Mutex<HashMap<Id128, Url>>,
}

/// The capture service; cheap to share.
#[derive(Clone)]
pub struct Assets {
    inner: Option<Arc<Inner>>,
    tx: Option<mpsc::Sender<Job>>,
}

impl Assets {
    /// Capture turned off: nothing is fetched, every URL maps to nothing.
    pub fn disabled() -> Self {
        Self { inner: None, tx: None }
    }

    /// Opens the asset store in `dir` and starts the fetch workers (inside a Tokio runtime).
    pub fn start(dir: &Path, limits: AssetLimits) -> sled::Result<Self> {
        if !limits.enabled {
            return Ok(Self::disabled());
        }
        let fetcher = Fetcher::new(FetchLimits { max_bytes: limits.max_bytes, timeout: limits.timeout });
        let inner = Arc::new(Inner {
            store: AssetStore::open(dir)?,
            fetcher,
            limits,
            busy: Mutex::default(),
            bases: Mutex::default(),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..WORKERS {
            let (inner, rx) = (inner.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let Some(job) = rx.lock().await.recv().await else { break };
                    inner.capture(&job).await;
                    inner.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&(job.site, job.url.to_string()));
                }
            });
        }
        Ok(Self { inner: Some(inner), tx: Some(tx) })
    }

    /// Queues the assets named by a batch's `snap`/`mut` events that the site's policy allows
    /// and that were not tried yet. Never waits: a full queue drops the rest.
    pub fn offer(&self, site: &SiteSettings, sid: Id128, events: &[Event]) {
        let (Some(inner), Some(tx)) = (&self.inner, &self.tx) else { return };
        let policy = Policy::of(site);
        if !policy.captures_anything()
            || !events.iter().any(|e| matches!(e.data, EventData::Snap { .. } | EventData::Mut { .. }))
        {
            return;
        }
        let found = inner.refs_of(Some(sid), events);
        for (url, _) in found {
            if !policy.allows(&url) || inner.store.entry(&site.id, url.as_str()).is_some() {
                continue;
            }
            let key = (site.id.clone(), url.to_string());
            let mut busy = inner.busy.lock().unwrap_or_else(|e| e.into_inner());
            if busy.len() >= QUEUE || !busy.insert(key.clone()) {
                continue;
            }
            drop(busy);
            if tx.try_send(Job { site: site.id.clone(), policy: policy.clone(), url }).is_err() {
                inner.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            }
        }
    }

    /// For the replay: every asset URL the events name, with the collector path of its
    /// captured copy, or `None` (not captured: not allowed, failed, or not fetched yet).
    pub fn map_for(&self, site: &str, events: &[Event]) -> BTreeMap<String, Option<String>> {
        let Some(inner) = &self.inner else {
            return Refs::of_events(events).into_iter().map(|(u, _)| (u.to_string(), None)).collect();
        };
        let mut out = BTreeMap::new();
        for (url, _) in inner.refs_of(None, events) {
            let path = match inner.store.entry(site, url.as_str()) {
                Some(Entry::Captured(hash)) => Some(format!("{ROUTE}{}", hex::encode(hash))),
                _ => None,
            };
            out.insert(url.to_string(), path);
        }
        out
    }

    /// The asset at `/dashboard/asset/{hex}`: (content type, bytes).
    pub fn serve(&self, hex_hash: &str) -> Option<(String, Vec<u8>)> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex_hash, &mut hash).ok()?;
        self.inner.as_ref()?.store.blob(&hash)
    }

    /// Drops what `site` captured before `before_ms` (its retention), and unnamed blobs.
    pub fn expire(&self, site: &str, before_ms: i64) -> usize {
        let Some(inner) = &self.inner else { return 0 };
        inner.store.expire(site, before_ms).unwrap_or_else(|e| {
            tracing::error!(error = %e, "asset retention failed");
            0
        })
    }
}

impl Refs {
    /// The references of `events`, each payload resolved against the page it was recorded on.
    pub fn of_events(events: &[Event]) -> std::collections::BTreeSet<(Url, Kind)> {
        let mut refs = Refs::default();
        let mut base = None;
        for e in events {
            refs.event(&mut base, e);
        }
        refs.found
    }

    fn event(&mut self, base: &mut Option<Url>, e: &Event) {
        match &e.data {
            EventData::View(v) => *base = Url::parse(&v.url).ok().or(base.take()),
            EventData::Snap { d } | EventData::Mut { d } => {
                if let Some(u) = d.get("u").and_then(Value::as_str).and_then(|u| Url::parse(u).ok()) {
                    *base = Some(u);
                }
                if let Some(b) = base.as_ref() {
                    self.payload(b, d);
                }
            }
            _ => {}
        }
    }
}

impl Inner {
    fn refs_of(&self, sid: Option<Id128>, events: &[Event]) -> std::collections::BTreeSet<(Url, Kind)> {
        let mut refs = Refs::default();
        let mut base = sid.and_then(|s| self.bases.lock().unwrap_or_else(|e| e.into_inner()).get(&s).cloned());
        for e in events {
            refs.event(&mut base, e);
        }
        if let (Some(sid), Some(b)) = (sid, base) {
            let mut bases = self.bases.lock().unwrap_or_else(|e| e.into_inner());
            if bases.len() >= MAX_BASES && !bases.contains_key(&sid) {
                bases.clear();
            }
            bases.insert(sid, b);
        }
        refs.found
    }

    async fn capture(&self, job: &Job) {
        if self.store.count(&job.site) >= self.limits.max_per_site {
            return;
        }
        let mut budget = refs::MAX_REFS;
        self.capture_one(job, &job.url, 0, &mut budget).await;
    }

    /// Fetches and stores `url` (a stylesheet with what it names, depth-first); returns the
    /// collector path of the stored copy.
    fn capture_one<'a>(
        &'a self,
        job: &'a Job,
        url: &'a Url,
        depth: u8,
        budget: &'a mut usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + 'a>> {
        Box::pin(async move {
            match self.store.entry(&job.site, url.as_str()) {
                Some(Entry::Captured(hash)) => return Some(format!("{ROUTE}{}", hex::encode(hash))),
                Some(Entry::Failed) => return None,
                None => {}
            }
            let now = crate::model::now_ms();
            let fetched = match self.fetcher.fetch(&job.policy, url.clone()).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(site = %job.site, error = %e, "asset not captured");
                    let _ = self.store.fail(&job.site, url.as_str(), now);
                    return None;
                }
            };
            let body = if fetched.content_type.starts_with("text/css") {
                let css = String::from_utf8_lossy(&fetched.body).into_owned();
                self.rewrite_css(job, &fetched.url, css, depth, budget).await.into_bytes()
            } else {
                fetched.body
            };
            let hash = self.store.put(&job.site, url.as_str(), fetched.content_type, &body, now).ok()?;
            Some(format!("{ROUTE}{}", hex::encode(hash)))
        })
    }

    /// `css` with every `url()`/`@import` pointing at the collector's copy (or emptied).
    async fn rewrite_css(&self, job: &Job, base: &Url, css: String, depth: u8, budget: &mut usize) -> String {
        let mut found: HashMap<String, Option<String>> = HashMap::new();
        let named: Vec<(String, Kind)> = refs::css_urls(&css).map(|(r, k)| (r.to_owned(), k)).collect();
        for (raw, kind) in named {
            if found.contains_key(&raw) {
                continue;
            }
            let target = refs::resolve(base, &raw).filter(|u| job.policy.allows(u));
            let path = match target {
                Some(u) if *budget > 0 && (kind == Kind::Other || depth < MAX_CSS_DEPTH) => {
                    *budget -= 1;
                    self.capture_one(job, &u, depth + 1, budget).await
                }
                _ => None,
            };
            found.insert(raw, path);
        }
        refs::rewrite_css(&css, |raw| found.get(raw).cloned().flatten())
    }
}
