//! Fetching one asset under the capture rules: no proxy, no cookies or credentials, at most a
//! few redirects (each target checked against the site's policy), every resolved address
//! checked at connect time (so a name that points at a private address is refused, whatever
//! it resolved to before), a size cap read incrementally and one deadline for the whole fetch.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::policy::{is_public, Policy};

const MAX_REDIRECTS: usize = 3;

/// Bounds of one fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// A fetched asset: its final URL, the content type it is served as, and its bytes.
#[derive(Debug)]
pub struct Fetched {
    pub url: Url,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not allowed by the site's capture policy")]
    NotAllowed,
    #[error("status {0}")]
    Status(u16),
    #[error("not a stylesheet, image or font")]
    Type,
    #[error("larger than the limit")]
    TooBig,
    #[error("timed out")]
    Timeout,
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// Resolves names, keeping only addresses the policy allows.
struct Guard {
    private_ok: bool,
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let private_ok = self.private_ok;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let ok: Vec<SocketAddr> = found.filter(|a| private_ok || is_public(a.ip())).collect();
            if ok.is_empty() {
                return Err("no address the capture policy allows".into());
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// Two clients: one that only ever connects to public addresses, one for sites whose assets
/// are on private addresses by configuration.
pub struct Fetcher {
    public: reqwest::Client,
    any: reqwest::Client,
    limits: FetchLimits,
}

fn client(private_ok: bool, limits: FetchLimits) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(Guard { private_ok }))
        .connect_timeout(limits.timeout)
        .timeout(limits.timeout)
        .user_agent(concat!("hushtale-asset-capture/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with static settings builds")
}

impl Fetcher {
    pub fn new(limits: FetchLimits) -> Self {
        Self { public: client(false, limits), any: client(true, limits), limits }
    }

    /// Fetches `url` for a site with `policy`.
    pub async fn fetch(&self, policy: &Policy, url: Url) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(self.limits.timeout, self.follow(policy, url)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn follow(&self, policy: &Policy, mut url: Url) -> Result<Fetched, FetchError> {
        let client = if policy.private_ok { &self.any } else { &self.public };
        for _ in 0..=MAX_REDIRECTS {
            if !policy.allows(&url) {
                return Err(FetchError::NotAllowed);
            }
            let mut resp = client.get(url.clone()).header("accept", "text/css,image/*,font/*,*/*;q=0.1").send().await?;
            let status = resp.status();
            if status.is_redirection() {
                let next = resp.headers().get("location").and_then(|l| l.to_str().ok()).and_then(|l| url.join(l).ok());
                url = next.ok_or(FetchError::Status(status.as_u16()))?;
                continue;
            }
            if status != reqwest::StatusCode::OK {
                return Err(FetchError::Status(status.as_u16()));
            }
            let declared = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
            let content_type = served_type(declared, url.path()).ok_or(FetchError::Type)?;
            if resp.content_length().is_some_and(|n| n as usize > self.limits.max_bytes) {
                return Err(FetchError::TooBig);
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > self.limits.max_bytes {
                    return Err(FetchError::TooBig);
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(Fetched { url, content_type, body });
        }
        Err(FetchError::Status(310))
    }
}

/// The type an asset is served as by the collector: only stylesheets, images and fonts; a
/// generic or missing type is decided by the file extension.
pub fn served_type(declared: &str, path: &str) -> Option<&'static str> {
    let mime = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let by_type = match mime.as_str() {
        "text/css" => Some("text/css; charset=utf-8"),
        "image/png" => Some("image/png"),
        "image/jpeg" | "image/jpg" => Some("image/jpeg"),
        "image/gif" => Some("image/gif"),
        "image/webp" => Some("image/webp"),
        "image/avif" => Some("image/avif"),
        "image/svg+xml" => Some("image/svg+xml"),
        "image/x-icon" | "image/vnd.microsoft.icon" => Some("image/x-icon"),
        "font/woff2" => Some("font/woff2"),
        "font/woff" | "application/font-woff" | "application/x-font-woff" => Some("font/woff"),
        "font/ttf" | "font/otf" | "font/sfnt" | "application/font-sfnt" | "application/x-font-ttf" => Some("font/ttf"),
        _ => None,
    };
    if by_type.is_some() || !matches!(mime.as_str(), "" | "application/octet-stream" | "binary/octet-stream") {
        return by_type;
    }
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "woff2" => Some("font/woff2"),
        "woff" => Some("font/woff"),
        "ttf" | "otf" => Some("font/ttf"),
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "css" => Some("text/css; charset=utf-8"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stylesheets_images_and_fonts() {
        assert_eq!(served_type("text/css; charset=utf-8", "/a.css"), Some("text/css; charset=utf-8"));
        assert_eq!(served_type("image/svg+xml", "/a"), Some("image/svg+xml"));
        assert_eq!(served_type("application/octet-stream", "/f/x.woff2"), Some("font/woff2"));
        assert_eq!(served_type("", "/x.png"), Some("image/png"));
        assert_eq!(served_type("text/html", "/x.css"), None, "a page is not a stylesheet");
        assert_eq!(served_type("application/javascript", "/x.png"), None);
        assert_eq!(served_type("", "/x.svg"), None, "SVG only when declared");
    }
}
