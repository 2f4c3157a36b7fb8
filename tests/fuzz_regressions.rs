//! Inputs the fuzzers (fuzz/, see fuzz/run.sh) found problems with, replayed on stable Rust in
//! every `cargo test`: each file under fuzz/regressions/TARGET/ goes through the checks of the
//! fuzz target TARGET, which are the library's `hushtale::fuzz_checks` (one copy for both).

use std::path::Path;

use hushtale::fuzz_checks;
use hushtale::ingest::Format;
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

#[test]
fn url_regressions() {
    let cases = inputs("url");
    assert!(!cases.is_empty());
    for (name, data) in cases {
        eprintln!("url regression {name}");
        fuzz_checks::url(&data);
    }
}

#[test]
fn a_parameter_whose_name_is_a_secret_is_dropped_not_rewritten() {
    let policy = UrlPolicy { allowed_params: vec!["utm_*".into()] };
    let n =
        normalize_url("https://e.example/?utm_so2a8c1e-1111-2222-3333-444455556666=1&utm_source=x", &policy).unwrap();
    assert_eq!(n.url, "https://e.example/?utm_source=x");
}

#[test]
fn scrub_regressions() {
    let cases = inputs("scrub");
    assert!(!cases.is_empty());
    for (name, data) in cases {
        eprintln!("scrub regression {name}");
        fuzz_checks::scrub(&data);
    }
}

#[test]
fn digits_glued_to_an_email_are_scrubbed_too() {
    assert_eq!(scrub_text("write jane.doe@example.cde0532013000 now"), "write [email][phone] now");
}

#[test]
fn gzip_regressions() {
    for (name, data) in inputs("gzip") {
        eprintln!("gzip regression {name}");
        fuzz_checks::gzip(&data);
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz smoke: the fuzz targets' checks on stable Rust, in seconds, over inputs made by mutating
// the seeds and regressions (not coverage-guided: cargo fuzz does that, see fuzz/run.sh). With
// HUSHTALE_FUZZ_SMOKE_SECS (./test sets it) each target runs that long from a seed taken from
// the clock and printed; otherwise a fixed seed and 1 500 inputs, the same every run.

/// Bytes the rules care about: separators of e-mails, URLs, IPs, cards; escapes; no-break space.
const DICTIONARY: &[&[u8]] = &[
    b"@",
    b".",
    b"%40",
    b"/",
    b":",
    b"::",
    b"#",
    b"?",
    b"&",
    b"=",
    b"-",
    b" ",
    b"4111",
    b"192.168.",
    b"utm_",
    b"\xc2\xa0",
    b"\x1b[",
    b"https://",
    b"0",
    b"9",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut XorShift, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(5) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let word = DICTIONARY[rng.below(DICTIONARY.len())];
                data.splice(at..at, word.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = (at + rng.below(8)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len());
                let piece = &other[from..(from + rng.below(32)).min(other.len())];
                data.splice(at..at, piece.iter().copied());
            }
            _ => data.insert(at, rng.next() as u8),
        }
    }
    data
}

fn smoke(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut corpus: Vec<Vec<u8>> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| std::fs::read(e.path()).unwrap()).collect();
    corpus.extend(inputs(target).into_iter().map(|(_, data)| data));
    assert!(!corpus.is_empty(), "no seeds for {target}");
    let secs: Option<u64> = std::env::var("HUSHTALE_FUZZ_SMOKE_SECS").ok().and_then(|s| s.parse().ok());
    let seed = match secs {
        Some(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1,
        None => 0x9e37_79b9_7f4a_7c15,
    };
    let deadline = secs.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
    let mut rng = XorShift(seed);
    let mut runs = 0u64;
    while deadline.map_or(runs < 1_500, |d| std::time::Instant::now() < d) {
        let input = mutate(&mut rng, &corpus);
        if std::panic::catch_unwind(|| check(&input)).is_err() {
            panic!(
                "{target} smoke (seed {seed:#x}, run {runs}) failed on {input:?}: add it to fuzz/regressions/{target}/"
            );
        }
        runs += 1;
    }
    eprintln!("fuzz smoke {target}: {runs} inputs from seed {seed:#x}, no failure");
}

#[test]
fn fuzz_smoke_url() {
    smoke("url", fuzz_checks::url);
}

#[test]
fn fuzz_smoke_scrub() {
    smoke("scrub", fuzz_checks::scrub);
}

#[test]
fn fuzz_smoke_gzip() {
    smoke("gzip", fuzz_checks::gzip);
}

#[test]
fn fuzz_smoke_batch_json() {
    smoke("batch_json", |data| fuzz_checks::batch(Format::Json, data));
}

#[test]
fn fuzz_smoke_batch_msgpack() {
    smoke("batch_msgpack", |data| fuzz_checks::batch(Format::MessagePack, data));
}
