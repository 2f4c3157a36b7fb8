//! Funnel queries from the sled funnel index at 10 k and 1 M sessions, side by side in one run.
//!
//! Sessions are written through the real writer path (`Store::write`: group commits with
//! rollups and the funnel index), one batch of 2–6 pageviews each, anchored over 30 UTC days,
//! walking a shop: `/` → `/product/N` (200 products) → `/cart` → `/checkout` → `/thanks`, with
//! blog and docs pages in between and people leaving at every step. The query is the 4-step
//! funnel `/,/product/*,/cart,/checkout` over the 30 days (every session examined). A second
//! bench runs the same matcher over sequences already in memory: the difference is the cost of
//! walking the index.
//!
//! `cargo bench --bench funnel` (building the 1 M store takes a few minutes). Without `--bench`
//! (as `cargo test --benches` runs it) only the 10 k store is built.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hushtale::model::{Client, Event, EventData, Id128, StoredBatch, View, VisitorKey};
use hushtale::query::funnel::{FunnelCounter, FunnelQuery, Step};
use hushtale::query::DayRange;
use hushtale::store::sled::SledStore;
use hushtale::store::Store;

const DAYS: i64 = 30;
/// 2026-10-31T00:00:00Z: the first of the 30 days.
const FIRST_DAY_MS: i64 = 1_793_404_800_000;
const DAY_MS: i64 = 86_400_000;
const SITE: &str = "bench";
const GROUP: usize = 1024;
const STEPS: &str = "/,/product/*,/cart,/checkout";

/// xorshift64*: deterministic and fast.
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
}

/// One visit's pages: a walk down the shop with an exit chance at each step and detours.
fn journey(rng: &mut Rng) -> Vec<String> {
    let mut pages = vec![match rng.below(10) {
        0..=5 => "/".to_owned(),
        6 | 7 => format!("/blog/post-{}", rng.below(50)),
        _ => format!("/product/{}", rng.below(200)),
    }];
    for next in ["/product", "/cart", "/checkout", "/thanks"] {
        if rng.below(100) < 35 || pages.len() >= 6 {
            break;
        }
        if rng.below(4) == 0 {
            pages.push(format!("/docs/guide-{}", rng.below(10)));
        }
        pages.push(if next == "/product" { format!("/product/{}", rng.below(200)) } else { next.to_owned() });
    }
    if pages.len() == 1 {
        pages.push("/".into());
    }
    pages
}

fn session(n: u64, rng: &mut Rng) -> StoredBatch {
    let start = FIRST_DAY_MS + (n as i64 * DAY_MS * DAYS) / 1_000_000 % (DAY_MS * DAYS);
    let events: Vec<Event> = journey(rng)
        .into_iter()
        .enumerate()
        .map(|(i, path)| Event {
            t: start + i as i64 * (5_000 + rng.below(120_000) as i64),
            data: EventData::View(View {
                url: format!("https://shop.example{path}"),
                path,
                referrer: None,
                title: None,
                vw: 1280.0,
                vh: 800.0,
                dw: 1280.0,
                dh: 3000.0,
                load_ms: Some(300.0),
                ttfb_ms: None,
                spa: false,
            }),
        })
        .collect();
    let mut sid = [0u8; 16];
    sid[..8].copy_from_slice(&n.to_be_bytes());
    sid[8..].copy_from_slice(&rng.next().to_be_bytes());
    let mut visitor = [0u8; 16];
    visitor[..8].copy_from_slice(&rng.next().to_be_bytes());
    let client = Client { device: "desktop".into(), browser: "chrome".into() };
    StoredBatch::new(SITE.into(), VisitorKey(visitor), Id128(sid), 0, start, client, events)
}

/// A session id and its views `(t, path)`.
type Views = ([u8; 16], Vec<(i64, String)>);

struct Loaded {
    _dir: tempfile::TempDir,
    store: SledStore,
    /// The same sessions' views in memory, for the matcher-only bench.
    views: Vec<Views>,
}

fn load(rt: &tokio::runtime::Runtime, sessions: u64) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 512 << 20).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut views = Vec::with_capacity(sessions as usize);
    let mut group = Vec::with_capacity(GROUP);
    for n in 0..sessions {
        let b = session(n, &mut rng);
        let seq = b.events.iter().map(|e| match &e.data {
            EventData::View(v) => (e.t, v.path.clone()),
            _ => unreachable!(),
        });
        views.push((b.sid.0, seq.collect()));
        group.push(b);
        if group.len() == GROUP || n + 1 == sessions {
            let batch: Arc<[StoredBatch]> = std::mem::take(&mut group).into();
            rt.block_on(store.write(batch)).unwrap();
        }
    }
    eprintln!("# loaded {sessions} sessions");
    Loaded { _dir: dir, store, views }
}

fn query() -> FunnelQuery {
    let first = (FIRST_DAY_MS / DAY_MS) as i32;
    FunnelQuery {
        steps: Step::parse_list(STEPS).unwrap(),
        within_ms: 30 * 60 * 1000,
        range: DayRange { from: first, to: first + DAYS as i32 - 1 },
    }
}

fn bench_funnel(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[u64] = if full { &[10_000, 1_000_000] } else { &[10_000] };
    let q = query();
    let mut g = c.benchmark_group("funnel_4_steps_30_days");
    g.sample_size(10);
    for &n in sizes {
        let data = load(&rt, n);
        let answer = rt.block_on(data.store.funnel(SITE, &q)).unwrap();
        let counts: Vec<u64> = answer.steps.iter().map(|s| s.sessions).collect();
        eprintln!("# {n} sessions: steps reached {counts:?}");
        assert!(counts[0] > n / 2 && counts[3] > 0, "{counts:?}");
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("sled index", n), &data, |b, d| {
            b.iter(|| rt.block_on(d.store.funnel(SITE, &q)).unwrap().steps[3].sessions)
        });
        g.bench_with_input(BenchmarkId::new("matcher only (in memory)", n), &data, |b, d| {
            b.iter(|| {
                let mut counter = FunnelCounter::new(q.steps.clone(), q.within_ms);
                for (sid, views) in d.views.iter().rev() {
                    counter.add(sid, views.iter().map(|(t, p)| (*t, p.as_bytes())));
                }
                counter.finish().steps[3].sessions
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_funnel);
criterion_main!(benches);
