//! Inputs the fuzzers (fuzz/, see fuzz/run.sh) found problems with, replayed on stable Rust in
//! every `cargo test`: each file under fuzz/regressions/TARGET/ goes through the same checks
//! as the fuzz target TARGET.

use std::path::Path;

use std::borrow::Cow;

use hushtale::privacy::scrub::scrub_text;
use hushtale::privacy::url::{normalize_url, UrlPolicy};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Same as fuzz/fuzz_targets/url.rs.
fn check_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (policy, raw) = match text.split_once('\n') {
        Some((p, u)) => (UrlPolicy { allowed_params: p.split(',').map(str::to_owned).collect() }, u),
        None => (UrlPolicy { allowed_params: vec!["utm_*".into()] }, text),
    };
    let Some(n) = normalize_url(raw, &policy) else { return };
    assert!(n.url.starts_with("http://") || n.url.starts_with("https://"), "{raw:?} -> {}", n.url);
    assert!(n.path.starts_with('/'), "{raw:?} -> path {}", n.path);
    assert!(!n.url.contains('#'), "fragment kept: {raw:?} -> {}", n.url);
    let parsed = url::Url::parse(&n.url).unwrap_or_else(|e| panic!("{raw:?} -> {} is not a URL: {e}", n.url));
    assert!(parsed.username().is_empty() && parsed.password().is_none(), "credentials kept: {}", n.url);
    for (name, _) in parsed.query_pairs() {
        assert!(policy.allows(&name), "parameter {name} kept from {raw:?}");
    }
    let again = normalize_url(&n.url, &policy).unwrap_or_else(|| panic!("{raw:?} -> {} is refused", n.url));
    assert_eq!(again.url, n.url, "normalising {raw:?} twice changed it");
    assert_eq!(again.path, n.path);
}

#[test]
fn url_regressions() {
    let cases = inputs("url");
    assert!(!cases.is_empty());
    for (name, data) in cases {
        eprintln!("url regression {name}");
        check_url(&data);
    }
}

#[test]
fn a_parameter_whose_name_is_a_secret_is_dropped_not_rewritten() {
    let policy = UrlPolicy { allowed_params: vec!["utm_*".into()] };
    let n =
        normalize_url("https://e.example/?utm_so2a8c1e-1111-2222-3333-444455556666=1&utm_source=x", &policy).unwrap();
    assert_eq!(n.url, "https://e.example/?utm_source=x");
}

/// Same as fuzz/fuzz_targets/scrub.rs.
fn check_scrub(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let once = scrub_text(text);
    if let Cow::Borrowed(b) = &once {
        assert_eq!(*b, text, "a borrowed answer is the input itself");
    }
    let twice = scrub_text(&once);
    assert_eq!(twice, once, "scrubbing twice changed {text:?}");
}

#[test]
fn scrub_regressions() {
    let cases = inputs("scrub");
    assert!(!cases.is_empty());
    for (name, data) in cases {
        eprintln!("scrub regression {name}");
        check_scrub(&data);
    }
}

#[test]
fn digits_glued_to_an_email_are_scrubbed_too() {
    assert_eq!(scrub_text("write jane.doe@example.cde0532013000 now"), "write [email][phone] now");
}
