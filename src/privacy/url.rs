//! SHIM
#[derive(Debug)]
pub struct UrlPolicy {
    pub allowed_params: Vec<String>,
}
pub struct NormalizedUrl {
    pub url: String,
    pub path: String,
}
pub fn normalize_url(raw: &str, _p: &UrlPolicy) -> Option<NormalizedUrl> {
    let u = url::Url::parse(raw).ok()?;
    Some(NormalizedUrl { url: format!("{}{}", u.origin().ascii_serialization(), u.path()), path: u.path().to_owned() })
}
pub fn referrer_origin(raw: &str) -> Option<String> {
    url::Url::parse(raw).ok().map(|u| u.origin().ascii_serialization())
}
