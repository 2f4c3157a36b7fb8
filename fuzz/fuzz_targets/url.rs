//! The URL normaliser (`privacy::url::normalize_url`): only http(s), no fragment, no
//! credentials, only allowed parameters, and normalising twice changes nothing.
#![no_main]

use hushtale::privacy::url::{normalize_url, UrlPolicy};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Optional allow-list before a newline: `utm_*,ref\nhttps://…`.
    let (policy, raw) = match text.split_once('\n') {
        Some((p, u)) => (UrlPolicy { allowed_params: p.split(',').map(str::to_owned).collect() }, u),
        None => (UrlPolicy { allowed_params: vec!["utm_*".into()] }, text),
    };
    let Some(n) = normalize_url(raw, &policy) else { return };
    assert!(n.url.starts_with("http://") || n.url.starts_with("https://"), "{raw:?} -> {}", n.url);
    assert!(n.path.starts_with('/'), "{raw:?} -> path {}", n.path);
    // Only a hash route (`#/…`, `#!/…`, a single-page app's path) survives, as a path.
    if let Some((_, route)) = n.url.split_once('#') {
        assert!(route.starts_with('/') || route.starts_with("!/"), "fragment kept: {raw:?} -> {}", n.url);
        assert!(!route.contains(['#', '?']), "hash route with a query or fragment: {raw:?} -> {}", n.url);
    }
    let parsed = url::Url::parse(&n.url).unwrap_or_else(|e| panic!("{raw:?} -> {} is not a URL: {e}", n.url));
    assert!(parsed.username().is_empty() && parsed.password().is_none(), "credentials kept: {}", n.url);
    for (name, _) in parsed.query_pairs() {
        assert!(policy.allows(&name), "parameter {name} kept from {raw:?}");
    }
    let again = normalize_url(&n.url, &policy).unwrap_or_else(|| panic!("{raw:?} -> {} is refused", n.url));
    assert_eq!(again.url, n.url, "normalising {raw:?} twice changed it");
    assert_eq!(again.path, n.path);
});
