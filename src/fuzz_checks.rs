//! What must hold for any input of the fuzzed parsers, whatever its bytes: one copy, run by the
//! cargo-fuzz targets (`fuzz/fuzz_targets/*`, coverage-guided, nightly) and by
//! `tests/fuzz_regressions.rs` (saved inputs and a mutation smoke run, stable). Each check
//! returns quietly or panics with what broke. Not API: hidden from the docs.

use std::borrow::Cow;
use std::io::{Read, Write};

use crate::ingest::{decode, validate, Encoding, Format, IngestError, Limits};
use crate::model::{Event, StoredBatch};
use crate::privacy::scrub::{self, scrub_text};
use crate::privacy::url::{normalize_url, UrlPolicy};

/// The server clock the batch check pretends it is (a fixed time keeps runs reproducible).
pub const NOW: i64 = 1_764_374_400_000;

/// The inflation limit of the gzip check.
pub const GZIP_LIMIT: usize = 64 * 1024;

/// Batch decoding and validation (`decode::parse` + `validate::validate`): what is accepted is
/// in time order, within the limits, and reads back as the store writes it.
pub fn batch(format: Format, data: &[u8]) {
    let limits = Limits { max_events_per_batch: 64, ..Limits::default() };
    same_as_serde(format, data);
    let Ok(wire) = decode::parse(format, data) else { return };
    match validate::validate(wire, &limits, NOW) {
        Ok(batch) => {
            assert!(!batch.events.is_empty(), "a valid batch has events");
            assert!(batch.events.len() <= limits.max_events_per_batch);
            assert!(batch.events.windows(2).all(|w| w[0].t <= w[1].t), "events are in time order");
            // Whatever is accepted must read back: this is exactly what the store writes for a
            // batch and what `GET /api/sites/{site}/sessions/{sid}` parses again.
            let encoded = StoredBatch::encode_events(&batch.events);
            let back: Vec<Event> = serde_json::from_slice(&encoded).unwrap_or_else(|e| {
                panic!("stored events do not read back: {e}: {}", String::from_utf8_lossy(&encoded))
            });
            assert_eq!(back.len(), batch.events.len());
            for (a, b) in back.iter().zip(&batch.events) {
                assert_eq!(a.t, b.t);
                assert_eq!(a.data.kind(), b.data.kind());
            }
        }
        Err(IngestError::TooManyEvents(n)) => assert_eq!(n, limits.max_events_per_batch),
        Err(_) => {}
    }
}

/// The direct batch reader in front of serde (`ingest::fast`) answers what serde alone answers:
/// the same batch, field for field (compared through `Debug`, which tells every `f64` apart,
/// `-0.0` and NaN included), or the same refusal.
pub fn same_as_serde(format: Format, data: &[u8]) {
    let direct = decode::parse(format, data).map(|b| format!("{b:?}")).map_err(|e| e.to_string());
    let serde = decode::parse_serde(format, data).map(|b| format!("{b:?}")).map_err(|e| e.to_string());
    assert_eq!(direct, serde, "the direct reader and serde differ on {:?}", String::from_utf8_lossy(data));
}

/// The one-call inflate in front of the streaming gzip decoder (`decode::decompress`) answers
/// what the streaming decoder alone answers: the same bytes or the same refusal.
pub fn gzip_same_as_stream(gz: &[u8], limit: usize) {
    let direct = decode::decompress(bytes::Bytes::copy_from_slice(gz), Encoding::Gzip, limit);
    let stream = decode::gunzip_stream(gz, limit);
    assert_eq!(
        direct.as_deref().map_err(ToString::to_string),
        stream.as_deref().map_err(ToString::to_string),
        "the one-call inflate and the streaming decoder differ on {gz:?}"
    );
}

/// The URL normaliser: only http(s), no fragment but a hash route, no credentials, only allowed
/// parameters, and normalising twice changes nothing. An optional allow-list comes before a
/// newline: `utm_*,ref\nhttps://…`.
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
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
}

/// The scrubber: never panics, borrows only when nothing changed, leaves nothing for a second
/// pass (replacement tokens are chosen so that no later rule matches them).
pub fn scrub(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let once = scrub_text(text);
    if let Cow::Borrowed(b) = &once {
        assert_eq!(*b, text, "a borrowed answer is the input itself");
    }
    let twice = scrub_text(&once);
    assert_eq!(twice, once, "scrubbing twice changed {text:?}");
    if !scrub::may_hold_a_match(text) {
        let by_regexes = scrub::scrub_once_with_regexes(text);
        assert!(matches!(by_regexes, Cow::Borrowed(_)), "the byte scan let {text:?} pass, the rules scrub it");
    }
}

/// gzip inflation under a limit (`decode::decompress`): never more than the limit, never a
/// wrong answer about the limit. The first byte picks the mode: even, the rest is a gzip body;
/// odd, the rest is plaintext, repeated `(byte >> 1) * 64 + 1` times (at most twice the limit),
/// gzipped, and must round trip.
pub fn gzip(data: &[u8]) {
    let inflate = |gz: &[u8]| {
        let mut reference = Vec::new();
        let read = flate2::read::GzDecoder::new(gz).take(GZIP_LIMIT as u64 + 1).read_to_end(&mut reference);
        (read, reference)
    };
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        gzip_same_as_stream(rest, GZIP_LIMIT);
        match decode::decompress(bytes::Bytes::copy_from_slice(rest), Encoding::Gzip, GZIP_LIMIT) {
            Ok(out) => {
                // The same bytes inflated without our limit (capped just above it) agree.
                let (read, reference) = inflate(rest);
                assert!(out.len() <= GZIP_LIMIT && read.is_ok());
                assert_eq!(&out[..], &reference[..]);
            }
            Err(IngestError::DecompressedTooLarge) => {
                let (_, reference) = inflate(rest);
                assert!(reference.len() > GZIP_LIMIT, "refused as too large but inflates to {}", reference.len());
            }
            Err(IngestError::BadGzip(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    } else {
        // Capped at twice the limit: more only makes each run slower (25 runs/s uncapped).
        let times = usize::from(mode >> 1) * 64 + 1;
        let plain: Vec<u8> = rest.iter().copied().cycle().take((rest.len() * times).min(2 * GZIP_LIMIT)).collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&plain).expect("writing to a Vec");
        let gz = enc.finish().expect("a Vec");
        gzip_same_as_stream(&gz, GZIP_LIMIT);
        match decode::decompress(bytes::Bytes::from(gz), Encoding::Gzip, GZIP_LIMIT) {
            Ok(out) => assert_eq!(&out[..], &plain[..]),
            Err(IngestError::DecompressedTooLarge) => assert!(plain.len() > GZIP_LIMIT),
            Err(e) => panic!("valid gzip of {} bytes refused: {e:?}", plain.len()),
        }
    }
}
