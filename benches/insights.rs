//! Insight queries at growing data sizes, in one run: synthetic sessions are written through the
//! real sled writer path (`Store::write`, group commits with rollups), and `stats`, `pages`,
//! `heatmap` (click and move) and `scroll` are timed after 10 k, 1 M and 10 M events.
//!
//! `cargo bench --bench insights` (about 5-10 minutes; `-- --max 1000000` stops at 1 M events).
//! Without `--bench` (as `cargo test --benches` runs it) it only smoke-tests the 10 k step.
//!
//! For profiling one query at one size: `INSIGHTS_STORE=DIR` keeps the store in `DIR` between
//! runs (steps smaller than what `DIR` already holds are skipped), `--only QUERY` times one
//! query and `--budget SECS` times it for that long, e.g.
//! `INSIGHTS_STORE=/tmp/i10m cargo bench --bench insights -- --only pages --budget 20`.
//!
//! The data: sessions of 10 batches × 50 events (a view every third batch; otherwise about
//! 70 % moves, 18 % scrolls, 12 % clicks on ~10 selectors per page) over 50 paths of
//! Zipf-like popularity, 60 % desktop / 30 % mobile / 10 % tablet viewports, two sessions per
//! visitor, starting anywhere in 30 UTC days. Queries span those 30 days; heatmap and scroll
//! ask for the most viewed path (the most data).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hushtale::model::{Client, Event, EventData, Id128, StoredBatch, View, VisitorKey};
use hushtale::query::{DayRange, HeatmapQuery, PageQuery, PagesQuery};
use hushtale::rollup::heat::HeatKind;
use hushtale::store::sled::SledStore;
use hushtale::store::Store;

const EVENTS_PER_BATCH: usize = 50;
const BATCHES_PER_SESSION: u32 = 10;
const EVENTS_PER_SESSION: u64 = EVENTS_PER_BATCH as u64 * BATCHES_PER_SESSION as u64;
/// Batches per group commit while loading.
const GROUP: usize = 512;
const PAGES: usize = 50;
const DAYS: i64 = 30;
/// 2026-10-31T00:00:00Z: the first of the 30 days.
const FIRST_DAY_MS: i64 = 1_793_404_800_000;
const DAY_MS: i64 = 86_400_000;
const SITE: &str = "bench";

/// xorshift64*: deterministic, fast, good enough for synthetic traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Site {
    paths: Vec<String>,
    /// Cumulative Zipf weights over `paths`.
    cumulative: Vec<f64>,
    heights: Vec<f64>,
}

impl Site {
    fn new() -> Self {
        let mut paths = vec!["/".to_owned(), "/pricing".into(), "/signup".into(), "/docs".into(), "/blog".into()];
        paths.extend((0..20).map(|i| format!("/blog/post-{i}")));
        paths.extend((0..15).map(|i| format!("/products/item-{i}")));
        paths.extend((0..10).map(|i| format!("/docs/guide-{i}")));
        assert_eq!(paths.len(), PAGES);
        let mut total = 0.0;
        let cumulative = (0..PAGES)
            .map(|i| {
                total += 1.0 / (i as f64 + 1.0);
                total
            })
            .collect();
        let heights = (0..PAGES).map(|i| 1500.0 + (i * 137 % 60) as f64 * 100.0).collect();
        Self { paths, cumulative, heights }
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        let x = rng.unit() * self.cumulative[PAGES - 1];
        self.cumulative.iter().position(|c| x < *c).unwrap_or(PAGES - 1)
    }
}

/// The 10 batches of session `n`.
fn session(site: &Site, n: u64) -> Vec<StoredBatch> {
    let mut rng = Rng(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let start = FIRST_DAY_MS + rng.below(DAYS as u64 * DAY_MS as u64) as i64;
    let (device, vw, vh) = match rng.below(10) {
        0..=5 => ("desktop", 1440.0, 900.0),
        6..=8 => ("mobile", 390.0, 844.0),
        _ => ("tablet", 820.0, 1180.0),
    };
    let client = Client { device: device.into(), browser: "chrome".into() };
    let mut sid = [0u8; 16];
    sid[..8].copy_from_slice(&n.to_be_bytes());
    sid[8..].copy_from_slice(&rng.next().to_be_bytes());
    let mut visitor = [0u8; 16];
    visitor[..8].copy_from_slice(&(n / 2).to_be_bytes());
    let mut t = start;
    let mut page = 0;
    let mut scroll_y = 0.0;
    (0..BATCHES_PER_SESSION)
        .map(|seq| {
            let mut events = Vec::with_capacity(EVENTS_PER_BATCH);
            if seq % 3 == 0 {
                page = site.pick(&mut rng);
                scroll_y = 0.0;
                events.push(Event {
                    t,
                    data: EventData::View(View {
                        url: format!("https://bench.example{}", site.paths[page]),
                        path: site.paths[page].clone(),
                        referrer: None,
                        title: None,
                        vw,
                        vh,
                        dw: vw,
                        dh: site.heights[page],
                        load_ms: Some(150.0 + rng.below(2000) as f64 * rng.unit()),
                        ttfb_ms: Some(20.0 + rng.below(200) as f64),
                        spa: false,
                    }),
                });
            }
            let dh = site.heights[page];
            while events.len() < EVENTS_PER_BATCH {
                t += 50 + rng.below(400) as i64;
                let data = match rng.below(100) {
                    0..=69 => EventData::Move { x: rng.unit() * vw, y: (scroll_y + rng.unit() * vh).min(dh - 1.0) },
                    70..=87 => {
                        scroll_y = (scroll_y + rng.below(400) as f64).min((dh - vh).max(0.0));
                        EventData::Scroll { y: scroll_y }
                    }
                    _ => {
                        let target = rng.below(10);
                        EventData::Click {
                            x: (0.1 + 0.08 * target as f64) * vw,
                            y: (scroll_y + rng.unit() * vh).min(dh - 1.0),
                            sel: format!("main>section:nth-child({target})>a"),
                            ex: Some(rng.below(1001) as u16),
                            ey: Some(rng.below(1001) as u16),
                            dead: rng.below(20) == 0,
                        }
                    }
                };
                events.push(Event { t, data });
            }
            StoredBatch::new(SITE.into(), VisitorKey(visitor), Id128(sid), seq, t + 100, client.clone(), events)
        })
        .collect()
}

/// Writes sessions `from..to` in group commits of [`GROUP`] batches.
fn load(rt: &tokio::runtime::Runtime, store: &SledStore, site: &Site, from: u64, to: u64) -> Duration {
    let started = Instant::now();
    let mut group = Vec::with_capacity(GROUP + BATCHES_PER_SESSION as usize);
    for n in from..to {
        group.extend(session(site, n));
        if group.len() >= GROUP || n + 1 == to {
            let batches: Arc<[StoredBatch]> = std::mem::take(&mut group).into();
            rt.block_on(store.write(batches)).expect("write");
        }
    }
    started.elapsed()
}

/// Median and 90th percentile of repeated calls: at least `min_runs`, for at least `budget`.
fn time(mut f: impl FnMut(), min_runs: usize, budget: Duration) -> (Duration, Duration, usize) {
    for _ in 0..3 {
        f();
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < min_runs || (started.elapsed() < budget && samples.len() < 10_000) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 9 / 10], samples.len())
}

const QUERIES: [&str; 5] = ["stats", "pages", "heatmap click", "heatmap move", "scroll"];

/// How the queries are timed (from the command line).
struct Timing {
    quick: bool,
    budget: Duration,
    only: Option<String>,
}

fn measure(
    rt: &tokio::runtime::Runtime,
    store: &SledStore,
    path: &str,
    timing: &Timing,
) -> Vec<(Duration, Duration, usize)> {
    let range = DayRange { from: (FIRST_DAY_MS / DAY_MS) as i32, to: (FIRST_DAY_MS / DAY_MS + DAYS - 1) as i32 };
    let (min_runs, budget) = if timing.quick { (3, Duration::ZERO) } else { (20, timing.budget) };
    let pages = PagesQuery { range, offset: 0, limit: 50 };
    let heatmap = |kind| HeatmapQuery { path: path.to_owned(), kind, width: None, range };
    let (click, moves) = (heatmap(HeatKind::Click), heatmap(HeatKind::Move));
    let page = PageQuery { path: path.to_owned(), range };
    QUERIES
        .iter()
        .map(|q| {
            if timing.only.as_deref().is_some_and(|only| only != *q) {
                return (Duration::ZERO, Duration::ZERO, 0);
            }
            let mut call = || match *q {
                "stats" => drop(rt.block_on(store.stats(SITE, range)).unwrap()),
                "pages" => drop(rt.block_on(store.pages(SITE, &pages)).unwrap()),
                "heatmap click" => drop(rt.block_on(store.heatmap(SITE, &click)).unwrap()),
                "heatmap move" => drop(rt.block_on(store.heatmap(SITE, &moves)).unwrap()),
                "scroll" => drop(rt.block_on(store.scroll(SITE, &page)).unwrap()),
                _ => unreachable!(),
            };
            time(&mut call, min_runs, budget)
        })
        .collect()
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = !args.iter().any(|a| a == "--bench");
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let max: u64 = flag("--max").map_or(10_000_000, |v| v.parse().expect("--max EVENTS"));
    let timing = Timing {
        quick,
        budget: Duration::from_secs(flag("--budget").map_or(2, |v| v.parse().expect("--budget SECS"))),
        only: flag("--only").cloned(),
    };
    let steps: Vec<u64> =
        if quick { vec![10_000] } else { [10_000, 1_000_000, 10_000_000].into_iter().filter(|s| *s <= max).collect() };

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("INSIGHTS_STORE").map(std::path::PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| temp.path().to_owned());
    // The server's default page cache (`store_cache_bytes`).
    let store = SledStore::open(&dir, 256 << 20).unwrap();
    let site = Site::new();
    let path = site.paths[0].clone();
    let marker = dir.join("bench-sessions-loaded");
    let mut loaded: u64 = std::fs::read_to_string(&marker).map_or(0, |s| s.trim().parse().expect("marker"));
    let mut results = Vec::new();
    for events in &steps {
        let sessions = events / EVENTS_PER_SESSION;
        if sessions < loaded {
            eprintln!("skipping {events} events: {} holds {loaded} sessions", dir.display());
            continue;
        }
        let took = load(&rt, &store, &site, loaded, sessions);
        let new_events = (sessions - loaded) * EVENTS_PER_SESSION;
        loaded = sessions;
        if kept.is_some() {
            rt.block_on(store.flush()).expect("flush");
            std::fs::write(&marker, loaded.to_string()).unwrap();
        }
        let disk = dir_size(&dir);
        if new_events == 0 {
            eprintln!("reusing {events} events in {} ({:.0} MB on disk)", dir.display(), disk as f64 / 1e6);
        } else {
            eprintln!(
                "loaded {} events ({} batches, {} sessions) in {:.1} s: {:.0} events/s, {:.0} MB on disk",
                events,
                sessions * BATCHES_PER_SESSION as u64,
                sessions,
                took.as_secs_f64(),
                new_events as f64 / took.as_secs_f64(),
                disk as f64 / 1e6
            );
        }
        let r = measure(&rt, &store, &path, &timing);
        for (q, (median, p90, n)) in QUERIES.iter().zip(&r) {
            eprintln!("  {q:<14} median {:>10}  p90 {:>10}  ({n} runs)", fmt(*median), fmt(*p90));
        }
        results.push((*events, r));
    }

    // The table for the README (Insights at scale).
    let label = |e: u64| match e {
        e if e >= 1_000_000 => format!("{} M", e / 1_000_000),
        e => format!("{} k", e / 1000),
    };
    let mut head = "| query |".to_owned();
    let mut rule = "| --- |".to_owned();
    for (e, _) in &results {
        head += &format!(" {} events |", label(*e));
        rule += " ---: |";
    }
    if results.len() > 1 {
        let (first, last) = (results[0].0, results[results.len() - 1].0);
        head += &format!(" ratio {} / {} |", label(last), label(first));
        rule += " ---: |";
    }
    println!("\n{head}\n{rule}");
    for (i, q) in QUERIES.iter().enumerate() {
        let mut line = format!("| `{q}` |");
        for (_, r) in &results {
            line += &format!(" {} |", fmt(r[i].0));
        }
        if results.len() > 1 {
            let ratio = results[results.len() - 1].1[i].0.as_secs_f64() / results[0].1[i].0.as_secs_f64();
            line += &format!(" {ratio:.1}× |");
        }
        println!("{line}");
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
