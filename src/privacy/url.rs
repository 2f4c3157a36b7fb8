//! URL normalisation: reduces a page URL or referrer to what may be stored (no fragment but a
//! hash route, no credentials, only allow-listed query parameters, identifier-like path
//! segments as `:id`).

use std::borrow::Cow;

use url::form_urlencoded;
use url::Url;

use super::scrub::{has_random_piece, scrub_text};

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

/// A single-page app's hash route (`#/settings`, `#!/users/42`) normalised like a path, cut at
/// its own query (`?`, `&`, `=`); `None` for any other fragment: those can carry tokens
/// (`#access_token=…`) and are dropped.
pub fn hash_route(fragment: &str) -> Option<String> {
    let (bang, route) = match fragment.strip_prefix('!') {
        Some(rest) => ("#!", rest),
        None => ("#", fragment),
    };
    let route = route.split(['?', '&', '=']).next().unwrap_or_default();
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
    for segment in trimmed.split('/') {
        out.push('/');
        out.push_str(if is_identifier(segment) { ID_SEGMENT } else { segment });
    }
    out
}

/// `scheme://host[:port]` of an absolute http(s) URL, e.g. for a referrer; `None` otherwise.
pub fn referrer_origin(raw: &str) -> Option<String> {
    parse_web_url(raw).map(|url| origin(&url))
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
    let mut query = form_urlencoded::Serializer::new(String::new());
    // A name the scrubber would rewrite carries personal data or a secret itself: drop the
    // parameter rather than keep a rewritten name the allow-list never allowed.
    let kept = |name: &str| policy.allows(name) && matches!(scrub_text(name), Cow::Borrowed(_));
    for (name, value) in url.query_pairs().filter(|(name, _)| kept(name)) {
        query.append_pair(&name, &scrub_text(&value));
    }
    query.finish()
}

fn is_identifier(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let decoded = percent_decode(segment);
    let s = decoded.as_ref();
    is_long_number(s) || is_uuid(s) || is_long_hex(s) || is_token(s) || matches!(scrub_text(s), Cow::Owned(_))
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

/// Decodes `%XX` escapes (invalid ones are kept as they are); borrowed when there are none.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%').then(|| bytes.get(i + 1..i + 3)).flatten().and_then(hex_byte);
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let [high, low] = pair else { return None };
    Some(hex_digit(*high)? << 4 | hex_digit(*low)?)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> NormalizedUrl {
        normalize_url(raw, &UrlPolicy::default()).unwrap_or_else(|| panic!("{raw:?} was rejected"))
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
    fn referrer_is_reduced_to_its_origin() {
        assert_eq!(referrer_origin("https://news.example.com/a?b").as_deref(), Some("https://news.example.com"));
        assert_eq!(referrer_origin("http://Example.com:8080/x#y").as_deref(), Some("http://example.com:8080"));
        assert_eq!(referrer_origin("https://u:p@example.com/").as_deref(), Some("https://example.com"));
        assert_eq!(referrer_origin("android-app://com.example"), None);
        assert_eq!(referrer_origin("junk"), None);
        assert_eq!(referrer_origin(""), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b"), "a@b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+1x"), "%+1x");
        assert!(matches!(percent_decode("plain"), Cow::Borrowed(_)));
    }
}
