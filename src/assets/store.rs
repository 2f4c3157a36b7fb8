//! Captured assets on disk: content-addressed blobs (SHA-256 of what is served) and, per site,
//! which URL was captured as which blob and when. Its own sled database in the data folder, so
//! it works whichever event store is configured. Entries expire with the site's retention; a
//! blob goes when no entry names it any more.

use std::collections::HashSet;
use std::path::Path;

use sha2::{Digest, Sha256};

/// What became of one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Captured: the blob's hash.
    Captured([u8; 32]),
    /// Tried and refused or failed (not allowed, too big, behind auth, …): not tried again
    /// until the entry expires.
    Failed,
}

pub struct AssetStore {
    urls: sled::Tree,
    blobs: sled::Tree,
}

fn url_key(site: &str, url: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(site.len() + url.len() + 1);
    k.extend_from_slice(site.as_bytes());
    k.push(0);
    k.extend_from_slice(url.as_bytes());
    k
}

impl AssetStore {
    pub fn open(dir: &Path) -> sled::Result<Self> {
        let db = sled::Config::new().path(dir).cache_capacity(16 << 20).open()?;
        Ok(Self { urls: db.open_tree("urls")?, blobs: db.open_tree("blobs")? })
    }

    /// The entry for `url` of `site`, if it was tried.
    pub fn entry(&self, site: &str, url: &str) -> Option<Entry> {
        let v = self.urls.get(url_key(site, url)).ok()??;
        match v.len() {
            40 => Some(Entry::Captured(v[8..40].try_into().ok()?)),
            _ => Some(Entry::Failed),
        }
    }

    /// How many URLs of `site` have an entry.
    pub fn count(&self, site: &str) -> usize {
        let mut prefix = site.as_bytes().to_vec();
        prefix.push(0);
        self.urls.scan_prefix(prefix).count()
    }

    /// Stores `body` (served as `content_type`) for `url` and returns its hash.
    pub fn put(&self, site: &str, url: &str, content_type: &str, body: &[u8], now_ms: i64) -> sled::Result<[u8; 32]> {
        let hash: [u8; 32] =
            Sha256::new().chain_update(content_type.as_bytes()).chain_update([0]).chain_update(body).finalize().into();
        if !self.blobs.contains_key(hash)? {
            let mut v = Vec::with_capacity(1 + content_type.len() + body.len());
            v.push(content_type.len() as u8);
            v.extend_from_slice(content_type.as_bytes());
            v.extend_from_slice(body);
            self.blobs.insert(hash, v)?;
        }
        let mut e = now_ms.to_be_bytes().to_vec();
        e.extend_from_slice(&hash);
        self.urls.insert(url_key(site, url), e)?;
        Ok(hash)
    }

    pub fn fail(&self, site: &str, url: &str, now_ms: i64) -> sled::Result<()> {
        self.urls.insert(url_key(site, url), now_ms.to_be_bytes().to_vec())?;
        Ok(())
    }

    /// The blob `hash`: (content type, bytes).
    pub fn blob(&self, hash: &[u8; 32]) -> Option<(String, Vec<u8>)> {
        let v = self.blobs.get(hash).ok()??;
        let n = *v.first()? as usize;
        let ct = std::str::from_utf8(v.get(1..1 + n)?).ok()?.to_owned();
        Some((ct, v.get(1 + n..)?.to_vec()))
    }

    /// Drops `site`'s entries older than `before_ms`, then every blob no entry names; returns
    /// how many entries went.
    pub fn expire(&self, site: &str, before_ms: i64) -> sled::Result<usize> {
        let mut prefix = site.as_bytes().to_vec();
        prefix.push(0);
        let mut gone = 0;
        for item in self.urls.scan_prefix(&prefix) {
            let (k, v) = item?;
            let at = v.get(..8).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes).unwrap_or(0);
            if at < before_ms {
                self.urls.remove(k)?;
                gone += 1;
            }
        }
        if gone > 0 {
            let named: HashSet<Vec<u8>> = self
                .urls
                .iter()
                .values()
                .filter_map(|v| v.ok())
                .filter(|v| v.len() == 40)
                .map(|v| v[8..].to_vec())
                .collect();
            for k in self.blobs.iter().keys() {
                let k = k?;
                if !named.contains(k.as_ref()) {
                    self.blobs.remove(k)?;
                }
            }
        }
        self.urls.flush()?;
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_addressed_with_retention() {
        let dir = tempfile::tempdir().unwrap();
        let s = AssetStore::open(dir.path()).unwrap();
        let a = s.put("shop", "https://s/a.css", "text/css", b"body{}", 1000).unwrap();
        let b = s.put("blog", "https://b/same.css", "text/css", b"body{}", 5000).unwrap();
        assert_eq!(a, b, "same content, one blob");
        s.fail("shop", "https://s/private.png", 1000).unwrap();
        assert_eq!(s.entry("shop", "https://s/a.css"), Some(Entry::Captured(a)));
        assert_eq!(s.entry("shop", "https://s/private.png"), Some(Entry::Failed));
        assert_eq!(s.entry("shop", "https://s/never.png"), None);
        assert_eq!(s.blob(&a), Some(("text/css".into(), b"body{}".to_vec())));
        assert_eq!(s.expire("shop", 2000).unwrap(), 2);
        assert_eq!(s.entry("shop", "https://s/a.css"), None);
        assert!(s.blob(&a).is_some(), "still named by the other site");
        assert_eq!(s.expire("blog", 6000).unwrap(), 1);
        assert!(s.blob(&a).is_none());
    }
}
