//! The registry of sites this collector accepts: configured ones plus those created by the API.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::model::SiteSettings;
use crate::privacy::url::{UrlCache, UrlPolicy};

/// A site with its rules compiled for the hot path.
#[derive(Debug)]
pub struct Site {
    pub settings: SiteSettings,
    pub url_policy: UrlPolicy,
    /// Page URLs already normalised under `url_policy` (dropped with the site when its
    /// settings change).
    pub page_urls: UrlCache,
}

impl Site {
    pub fn new(settings: SiteSettings) -> Self {
        let url_policy = UrlPolicy { allowed_params: settings.allowed_params.clone() };
        Self { settings, url_policy, page_urls: UrlCache::default() }
    }
}

/// All known sites, shared by request handlers; writes (site creation) are rare.
#[derive(Debug, Default)]
pub struct Sites {
    by_id: RwLock<BTreeMap<String, Arc<Site>>>,
}

impl Sites {
    pub fn new(sites: impl IntoIterator<Item = SiteSettings>) -> Self {
        let registry = Self::default();
        for s in sites {
            registry.insert(s);
        }
        registry
    }

    pub fn get(&self, id: &str) -> Option<Arc<Site>> {
        self.by_id.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    pub fn insert(&self, settings: SiteSettings) -> Arc<Site> {
        let site = Arc::new(Site::new(settings));
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).insert(site.settings.id.clone(), site.clone());
        site
    }

    pub fn all(&self) -> Vec<Arc<Site>> {
        self.by_id.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// True when some site accepts this origin (used for the CORS of `/optout`).
    pub fn any_allows_origin(&self, origin: &str) -> bool {
        self.by_id.read().unwrap_or_else(|e| e.into_inner()).values().any(|s| s.settings.allows_origin(origin))
    }
}
