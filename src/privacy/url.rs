//! URL normalisation: reduces a page URL, a referrer or a URL inside a page (`href`, `src`,
//! `srcset`, CSS `url()`) to what may be stored: no fragment (but a single-page app's hash route
//! in a page URL, or an element id inside a page), no credentials, only allow-listed query
//! parameters, identifier-like path segments as `:id`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use percent_encoding::percent_decode_str;
use url::form_urlencoded;
use url::{Host, Url};

use super::scrub::{has_random_piece, scrub_text, IP_TOKEN};

/// What replaces an identifier-like path segment.
pub const ID_SEGMENT: &str = ":id";

/// Which query parameters survive normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Exact parameter names, or prefixes ending in `*` (`"utm_*"`).
    pub allowed_params: Vec<String>,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        Self { allowed_params: vec!["utm_*".to_owned()] }
    }
}

impl UrlPolicy {
    /// Whether the query parameter `name` may be kept (names are case-sensitive).
    pub fn allows(&self, name: &str) -> bool {
        self.allowed_params.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        })
    }
}

/// A URL as it may be stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedUrl {
    /// `scheme://host[:port]` + normalised path + allowed query (`?` only when there is one).
    pub url: String,
    /// The normalised path alone; always starts with `/`. A hash route is part of it
    /// (`/app#/settings`): single-page apps route there.
    pub path: String,
}

/// Normalises an absolute http(s) URL; `None` for anything else.
pub fn normalize_url(raw: &str, policy: &UrlPolicy) -> Option<NormalizedUrl> {
    let parsed = parse_web_url(raw)?;
    let mut path = normalize_path(parsed.path());
    let query = allowed_query(&parsed, policy);
    let route = parsed.fragment().and_then(hash_route);

    let mut url = origin(&parsed);
    url.push_str(&path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    if let Some(route) = route {
        url.push_str(&route);
        path.push_str(&route);
    }
    Some(NormalizedUrl { url, path })
}

/// Page URLs of one site already normalised: most views of a site are of a few pages, and
/// parsing, the path rules and the query filter cost a view several µs.
///
/// The cache holds results only, never a raw URL: its key is a salted SHA-256 (128 bits kept)
/// of the raw URL, the salt drawn at random per cache, so an e-mail or a token in a URL is not
/// kept in memory, nor can a key be matched against guessed URLs. Every value is what
/// [`normalize_url`] returned — already fit to store. `normalize_url` depends on the raw URL and
/// the policy only, and a cache serves one [`UrlPolicy`] (one [`crate::sites::Site`]: new
/// settings make a new site and a new cache), so a hit returns exactly what normalising would
/// (two URLs sharing a 128-bit key are not to be expected). Bounded: emptied when
/// [`UrlCache::MAX_URLS`] are held.
#[derive(Debug)]
pub struct UrlCache {
    salt: [u8; 16],
    results: Mutex<HashMap<[u8; 16], Option<NormalizedUrl>>>,
}

impl Default for UrlCache {
    fn default() -> Self {
        Self { salt: rand::random(), results: Mutex::default() }
    }
}

impl UrlCache {
    /// Most URLs held per site (~200 KiB at most).
    pub const MAX_URLS: usize = 1024;

    /// [`normalize_url`] of `raw` under `policy`, which must be the same policy on every call.
    pub fn normalize(&self, raw: &str, policy: &UrlPolicy) -> Option<NormalizedUrl> {
        let key = self.key(raw);
        if let Some(known) = self.lock().get(&key) {
            return known.clone();
        }
        let normalized = normalize_url(raw, policy);
        let mut results = self.lock();
        if results.len() >= Self::MAX_URLS {
            results.clear();
        }
        results.insert(key, normalized.clone());
        normalized
    }

    fn key(&self, raw: &str) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new().chain_update(self.salt).chain_update(raw.as_bytes()).finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Option<NormalizedUrl>>> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// URLs held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A single-page app's hash route (`#/settings`, `#!/users/42`) normalised like a path, cut at
/// its own query (`?`, `&`, `=`); `None` for any other fragment: those can carry tokens
/// (`#access_token=…`) and are dropped.
pub fn hash_route(fragment: &str) -> Option<String> {
    let (bang, route) = match fragment.strip_prefix('!') {
        Some(rest) => ("#!", rest),
        None => ("#", fragment),
    };
    // A second `#` starts no route part either (`#/cb#access_token=…`; found by the fuzz smoke).
    let route = route.split(['?', '&', '=', '#']).next().unwrap_or_default();
    if !route.starts_with('/') {
        return None;
    }
    Some(format!("{bang}{}", normalize_path(route)))
}

/// Rewrites identifier-like segments of `path` to `:id`, keeping every `/` (also a trailing
/// one); the result always starts with `/`. Segments are judged percent-decoded. A segment is
/// an identifier when it is a number of 4+ digits, a UUID, 16+ hex digits, a base64-ish token
/// (20+ characters with a random-looking piece), or holds anything [`scrub_text`] would replace
/// (an e-mail address, a phone number…).
pub fn normalize_path(path: &str) -> String {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let mut out = String::with_capacity(trimmed.len() + 1);
    out.push('/');
    push_segments(&mut out, trimmed);
    out
}

/// Appends `path` with identifier-like segments as `:id`, keeping its shape (relative or not).
fn push_segments(out: &mut String, path: &str) {
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_identifier(segment) { ID_SEGMENT } else { segment });
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL, e.g. for a referrer; `None` otherwise.
/// A host that is an IP address is a visitor's network, not a site: it reads `[ip]`.
pub fn referrer_origin(raw: &str) -> Option<String> {
    let url = parse_web_url(raw)?;
    Some(match url.host() {
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => format!("{}://{IP_TOKEN}", url.scheme()),
        _ => origin(&url),
    })
}

/// Normalises a URL found inside a page, absolute (`https://…`, `//cdn…`) or relative
/// (`theme/a.css`, `../x?y#z`), keeping its form so the replay resolves it as the page did.
/// The path and query follow the page URL rules; a fragment survives only when it names an
/// element (`#icon-star`, used by SVG sprites). Other schemes keep only `scheme:`, and an
/// http(s) URL that does not parse is dropped (empty).
pub fn normalize_reference(raw: &str, policy: &UrlPolicy) -> String {
    let raw = raw.trim();
    let (rest, fragment) = raw.split_once('#').map_or((raw, None), |(r, f)| (r, Some(f)));
    let mut out = match scheme_of(rest) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {
            normalize_url(rest, policy).map(|n| n.url).unwrap_or_default()
        }
        Some(scheme) => return format!("{scheme}:"),
        None if rest.starts_with("//") => normalize_url(&format!("https:{rest}"), policy)
            .map(|n| n.url.trim_start_matches("https:").to_owned())
            .unwrap_or_default(),
        None => relative_reference(rest, policy),
    };
    if let Some(id) = fragment.filter(|f| is_element_id(f)) {
        out.push('#');
        out.push_str(id);
    }
    out
}

/// A `srcset` list (`a.png 1x, b.png 2x`): each URL normalised, descriptors scrubbed.
pub fn normalize_srcset(raw: &str, policy: &UrlPolicy) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, item) in raw.split(',').map(str::trim).filter(|item| !item.is_empty()).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let (url, descriptor) = item.split_once(char::is_whitespace).unwrap_or((item, ""));
        out.push_str(&normalize_reference(url, policy));
        let descriptor = scrub_text(descriptor.trim());
        if !descriptor.is_empty() {
            out.push(' ');
            out.push_str(&descriptor);
        }
    }
    out
}

/// The scheme of an absolute URL (`mailto` of `mailto:x`); `None` for a relative reference.
fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once(':')?;
    let mut bytes = scheme.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(scheme)
}

fn relative_reference(rest: &str, policy: &UrlPolicy) -> String {
    let (path, query) = rest.split_once('?').map_or((rest, ""), |(p, q)| (p, q));
    let mut out = String::with_capacity(rest.len());
    push_segments(&mut out, path);
    let query = allowed_pairs(form_urlencoded::parse(query.as_bytes()), policy);
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    out
}

/// What an SVG `<use href="#icon">` or an in-page anchor names: an element id, not data.
fn is_element_id(fragment: &str) -> bool {
    let mut bytes = fragment.bytes();
    (1..=64).contains(&fragment.len())
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        && !is_identifier(fragment)
}

fn parse_web_url(raw: &str) -> Option<Url> {
    let url = Url::parse(raw.trim()).ok()?;
    let is_web = matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty());
    is_web.then_some(url)
}

/// The url crate lower-cases (and punycodes) the host and omits the scheme's default port.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The allowed parameters, in their original order, names and values scrubbed.
fn allowed_query(url: &Url, policy: &UrlPolicy) -> String {
    allowed_pairs(url.query_pairs(), policy)
}

fn allowed_pairs<'a>(pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>, policy: &UrlPolicy) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    // A name the scrubber would rewrite carries personal data or a secret itself: drop the
    // parameter rather than keep a rewritten name the allow-list never allowed.
    let kept = |name: &str| policy.allows(name) && matches!(scrub_text(name), Cow::Borrowed(_));
    for (name, value) in pairs.filter(|(name, _)| kept(name)) {
        query.append_pair(&name, &scrub_text(&value));
    }
    query.finish()
}

fn is_identifier(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let decoded = percent_decode_str(segment).decode_utf8_lossy();
    let s = decoded.as_ref();
    if let Some(unhashed) = fingerprinted_asset(s) {
        return matches!(scrub_text(&unhashed), Cow::Owned(_));
    }
    is_long_number(s) || is_uuid(s) || is_long_hex(s) || is_token(s) || matches!(scrub_text(s), Cow::Owned(_))
}

/// Extensions of files a page loads as assets, whose names build tools fingerprint.
const ASSET_EXTENSIONS: [&str; 18] = [
    "css", "js", "mjs", "cjs", "map", "svg", "png", "jpg", "jpeg", "gif", "webp", "avif", "ico", "woff", "woff2",
    "ttf", "otf", "wasm",
];

/// A content-hashed asset name (`rust-logo-9a9549ea.svg`, `main.4e2f1c8a.js`): a word, a hash,
/// an asset extension. Returns the name with its hash pieces blanked, so that only what is
/// left (an e-mail, a phone number…) can still make the segment an identifier; `None` for any
/// other segment, such as a name that is nothing but a hash (`0a1b…e1f.png`: could be a key).
fn fingerprinted_asset(s: &str) -> Option<String> {
    let (stem, ext) = s.rsplit_once('.')?;
    if !ASSET_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)) {
        return None;
    }
    let is_sep = |c: char| matches!(c, '-' | '.' | '_' | '~');
    let pieces = || stem.split(is_sep).filter(|p| !p.is_empty());
    let is_word = |p: &str| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_alphabetic());
    let is_hash = |p: &str| {
        p.len() >= 6
            && p.bytes().all(|b| b.is_ascii_alphanumeric())
            && p.bytes().any(|b| b.is_ascii_digit())
            && p.bytes().any(|b| b.is_ascii_alphabetic())
    };
    if !pieces().any(is_word) || !pieces().any(is_hash) {
        return None;
    }
    let unhashed: Vec<&str> = stem.split(is_sep).map(|p| if is_hash(p) { "h" } else { p }).collect();
    Some(format!("{}.{ext}", unhashed.join("-")))
}

fn is_long_number(s: &str) -> bool {
    s.len() >= 4 && s.bytes().all(|b| b.is_ascii_digit())
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_long_hex(s: &str) -> bool {
    s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 20+ characters of the base64url alphabet with a random-looking piece, so a slug like
/// `how-to-install-rust-2024-edition` is not a token.
fn is_token(s: &str) -> bool {
    s.len() >= 20
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'+'))
        && has_random_piece(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> NormalizedUrl {
        normalize_url(raw, &UrlPolicy::default()).unwrap_or_else(|| panic!("{raw:?} was rejected"))
    }

    #[test]
    fn cache_answers_as_normalising_and_holds_no_raw_url() {
        let policy = UrlPolicy { allowed_params: vec!["utm_*".into(), "page".into()] };
        let cache = UrlCache::default();
        let urls = [
            "https://shop.example/products/42?utm_source=mail&ref=abc",
            "https://shop.example/products/42?utm_source=mail&ref=abc",
            "https://shop.example/products/42?utm_source=mail",
            "https://shop.example/u/jane@example.com/orders?page=2",
            "https://shop.example/u/jane@example.com/orders?page=2",
            "https://shop.example/app#/settings",
            "https://shop.example/cb#access_token=abc",
            "https://shop.example/a?page=2&email=jane%40example.com",
            "https://Shop.Example:443/x",
            " https://shop.example/x ",
            "https://shop.example/orders/12345",
            "not a url",
            "not a url",
            "https://shop.example/products/42?utm_source=mail&ref=abc",
        ];
        for raw in urls {
            assert_eq!(cache.normalize(raw, &policy), normalize_url(raw, &policy), "{raw}");
        }
        assert_eq!(cache.len(), 10);
        // What it holds is what a store may hold: results only.
        for result in cache.lock().values().flatten() {
            assert!(!result.url.contains('@') && !result.url.contains("token") && !result.url.contains("email"));
        }
        // Another cache (another site) draws another salt.
        assert_ne!(UrlCache::default().key(urls[0]), cache.key(urls[0]));
    }

    #[test]
    fn cache_is_bounded() {
        let policy = UrlPolicy::default();
        let cache = UrlCache::default();
        for i in 0..UrlCache::MAX_URLS * 2 + 5 {
            let raw = format!("https://shop.example/p{i}");
            assert_eq!(cache.normalize(&raw, &policy), normalize_url(&raw, &policy));
            assert!(cache.len() <= UrlCache::MAX_URLS);
        }
        assert!(cache.len() > 0);
    }

    #[test]
    fn policy_matches_exact_names_and_prefixes() {
        let policy = UrlPolicy { allowed_params: vec!["utm_*".into(), "page".into()] };
        assert!(policy.allows("utm_source"));
        assert!(policy.allows("utm_"));
        assert!(policy.allows("page"));
        assert!(!policy.allows("pages"));
        assert!(!policy.allows("UTM_source"));
        assert!(!policy.allows("token"));
        assert!(!UrlPolicy { allowed_params: vec![] }.allows("utm_source"));
    }

    #[test]
    fn email_in_path_query_and_fragment_is_gone() {
        let n = norm("https://shop.example.com/users/jane@example.com/orders?email=jane@example.com#jane@example.com");
        assert_eq!(n.url, "https://shop.example.com/users/:id/orders");
        assert_eq!(n.path, "/users/:id/orders");
        assert!(!n.url.contains("jane"));
    }

    #[test]
    fn hash_routes_are_kept_like_paths_other_fragments_dropped() {
        let n = norm("https://app.example/app?utm_source=x&q=1#/users/jane@example.com/orders/12345?tab=2");
        assert_eq!(n.url, "https://app.example/app?utm_source=x#/users/:id/orders/:id");
        assert_eq!(n.path, "/app#/users/:id/orders/:id");
        assert_eq!(norm("https://app.example/#!/settings").path, "/#!/settings");
        assert_eq!(norm("https://app.example/#/cb&access_token=eyJhbGciOiJIUzI1NiJ9").path, "/#/cb");
        assert_eq!(norm("https://app.example/#/cb#state=s3cr3t-state").path, "/#/cb");
        for dropped in ["#access_token=abc", "#section-2", "#", "#!x", "#%2Fsettings"] {
            let n = norm(&format!("https://app.example/docs{dropped}"));
            assert_eq!((n.url.as_str(), n.path.as_str()), ("https://app.example/docs", "/docs"), "{dropped}");
        }
    }

    #[test]
    fn percent_encoded_email_segment_is_an_id() {
        assert_eq!(norm("https://example.com/u/jane%40example.com").path, "/u/:id");
        assert_eq!(norm("https://example.com/u/jane%40EXAMPLE.com/").path, "/u/:id/");
    }

    #[test]
    fn utm_parameters_survive() {
        assert_eq!(
            norm("https://example.com/?utm_source=newsletter").url,
            "https://example.com/?utm_source=newsletter"
        );
    }

    #[test]
    fn only_allowed_parameters_in_original_order() {
        assert_eq!(
            norm("https://example.com/p?token=abc&utm_campaign=x#frag").url,
            "https://example.com/p?utm_campaign=x"
        );
        assert_eq!(
            norm("https://example.com/p?utm_medium=m&q=secret&utm_campaign=c&utm_source=s").url,
            "https://example.com/p?utm_medium=m&utm_campaign=c&utm_source=s"
        );
    }

    #[test]
    fn allowed_values_are_scrubbed() {
        let n = norm("https://example.com/?utm_content=jane@example.com");
        assert_eq!(n.url, "https://example.com/?utm_content=%5Bemail%5D");
    }

    #[test]
    fn custom_policy() {
        let policy = UrlPolicy { allowed_params: vec!["page".into()] };
        let n = normalize_url("https://example.com/list?page=2&utm_source=x", &policy);
        assert_eq!(n.map(|n| n.url).as_deref(), Some("https://example.com/list?page=2"));
    }

    #[test]
    fn empty_query_leaves_no_question_mark() {
        assert_eq!(norm("https://example.com/a?").url, "https://example.com/a");
        assert_eq!(norm("https://example.com/a?session=1").url, "https://example.com/a");
    }

    #[test]
    fn identifier_segments_become_id() {
        assert_eq!(normalize_path("/orders/123e4567-e89b-12d3-a456-426614174000"), "/orders/:id");
        assert_eq!(normalize_path("/orders/123E4567-E89B-12D3-A456-426614174000/items"), "/orders/:id/items");
        assert_eq!(normalize_path("/files/0123456789abcdef0123"), "/files/:id");
        assert_eq!(normalize_path("/users/1234567"), "/users/:id");
        assert_eq!(normalize_path("/archive/2026/11"), "/archive/:id/11");
        assert_eq!(normalize_path("/s/aB3dE5fG7hJ9kL1mN2pQ4r"), "/s/:id");
        assert_eq!(normalize_path("/call/+44-20-7946-0958"), "/call/:id");
    }

    #[test]
    fn ordinary_segments_stay() {
        for path in [
            "/blog/hello-world",
            "/page/2",
            "/items/123",
            "/docs/v10.24.1/api",
            "/blog/how-to-install-rust-2024-edition",
            "/en-GB/checkout/cart",
            "/deadbeef",
        ] {
            assert_eq!(normalize_path(path), path);
        }
        assert_eq!(norm("https://example.com/blog/hello-world").url, "https://example.com/blog/hello-world");
    }

    #[test]
    fn slashes_are_preserved() {
        assert_eq!(normalize_path("/blog/"), "/blog/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("a/12345"), "/a/:id");
        assert_eq!(norm("https://example.com/blog/").path, "/blog/");
        assert_eq!(norm("https://example.com").path, "/");
    }

    #[test]
    fn credentials_dropped_host_lowercased_port_kept() {
        assert_eq!(norm("HTTPS://jane:hunter2@Shop.EXAMPLE.com:8443/Cart").url, "https://shop.example.com:8443/Cart");
        assert_eq!(norm("http://example.com:80/").url, "http://example.com/");
        assert_eq!(norm("  https://example.com/x  ").url, "https://example.com/x");
        assert_eq!(norm("http://[::1]:8080/demo").url, "http://[::1]:8080/demo");
    }

    #[test]
    fn junk_is_rejected() {
        for raw in [
            "",
            "not a url",
            "/relative/path",
            "//example.com/x",
            "javascript:alert(1)",
            "ftp://example.com/file",
            "mailto:jane@example.com",
            "data:text/html,hi",
            "http://",
            "https://exa mple.com/",
        ] {
            assert_eq!(normalize_url(raw, &UrlPolicy::default()), None, "{raw:?}");
        }
    }

    #[test]
    fn content_hashed_asset_names_stay() {
        for path in [
            "/theme/semantic-notes-9b5766c0.css",
            "/static/rust-logo-9a9549ea.svg",
            "/_next/static/chunks/pages/_app-0123456789abcdef0123.js",
            "/assets/index-BxK3mP9q.js",
            "/fonts/inter-v12-latin-a1b2c3d4e5f6a7b8c9d0e1f2.woff2",
            "/js/main.4e2f1c8a9b3d7e6f.chunk.js",
        ] {
            assert_eq!(normalize_path(path), path);
        }
        // A name that is only a hash could be a key or a hashed e-mail; personal data stays out.
        assert_eq!(normalize_path("/avatar/205e460b479e2e5b48aec07710c08d50.jpg"), "/avatar/:id");
        assert_eq!(normalize_path("/u/jane@example.com-9a9549ea.png"), "/u/:id");
        assert_eq!(normalize_path("/u/4111111111111111-9a9549ea.png"), "/u/:id");
    }

    #[test]
    fn references_inside_a_page() {
        let p = UrlPolicy::default();
        let r = |raw: &str| normalize_reference(raw, &p);
        assert_eq!(r("theme/semantic-notes-9b5766c0.css"), "theme/semantic-notes-9b5766c0.css");
        assert_eq!(r("/orders/98765432/invoice?uid=u-991&utm_source=x"), "/orders/:id/invoice?utm_source=x");
        assert_eq!(r("../orders/98765432/invoice#top"), "../orders/:id/invoice#top");
        assert_eq!(r("https://Shop.example/orders/98765432?uid=1#access_token=abc"), "https://shop.example/orders/:id");
        assert_eq!(r("//cdn.example/u/jane@example.com/a.png?x=1"), "//cdn.example/u/:id/a.png");
        assert_eq!(r("#icon-star"), "#icon-star");
        assert_eq!(r("sprite.svg#icon-star"), "sprite.svg#icon-star");
        assert_eq!(r("#/orders/98765432"), "");
        assert_eq!(r("?page=2&email=jane@example.com"), "");
        assert_eq!(r("mailto:jane@example.com"), "mailto:");
        assert_eq!(r("javascript:alert(document.cookie)"), "javascript:");
        assert_eq!(r("https://exa mple.com/"), "");
        assert_eq!(r("/call/192.168.1.20/status"), "/call/:id/status");
    }

    #[test]
    fn srcsets() {
        let p = UrlPolicy::default();
        assert_eq!(
            normalize_srcset("img/a-9a9549ea.png 1x,/u/98765432/b.png?sig=abc 2x", &p),
            "img/a-9a9549ea.png 1x, /u/:id/b.png 2x"
        );
        assert_eq!(normalize_srcset("a.png 640w, b.png 1280w", &p), "a.png 640w, b.png 1280w");
    }

    #[test]
    fn referrer_from_an_ip_host_does_not_keep_the_address() {
        assert_eq!(referrer_origin("http://192.168.1.20:3000/admin").as_deref(), Some("http://[ip]"));
        assert_eq!(referrer_origin("https://[2001:db8::1]/x").as_deref(), Some("https://[ip]"));
    }

    #[test]
    fn referrer_is_reduced_to_its_origin() {
        assert_eq!(referrer_origin("https://news.example.com/a?b").as_deref(), Some("https://news.example.com"));
        assert_eq!(referrer_origin("http://Example.com:8080/x#y").as_deref(), Some("http://example.com:8080"));
        assert_eq!(referrer_origin("https://u:p@example.com/").as_deref(), Some("https://example.com"));
        assert_eq!(referrer_origin("android-app://com.example"), None);
        assert_eq!(referrer_origin("junk"), None);
        assert_eq!(referrer_origin(""), None);
    }
}
