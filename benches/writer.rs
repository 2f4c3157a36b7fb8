//! The sled store's group commit: batches per second at different group sizes, each group
//! written atomically with its rollups and flushed (what one `204` costs, amortised).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hushtale::model::{Client, Event, EventData, Id128, StoredBatch, View, VisitorKey};
use hushtale::store::sled::SledStore;
use hushtale::store::Store;

fn batch(n: u64, seq: u32) -> StoredBatch {
    let t = 1_764_374_400_000 + n as i64;
    let mut events = vec![Event {
        t,
        data: EventData::View(View {
            url: "https://shop.example/products/:id".into(),
            path: "/products/:id".into(),
            referrer: None,
            title: None,
            vw: 1280.0,
            vh: 720.0,
            dw: 1280.0,
            dh: 5000.0,
            load_ms: Some(400.0 + (n % 300) as f64),
            ttfb_ms: None,
            spa: false,
        }),
    }];
    for i in 1..50 {
        events.push(Event { t: t + i, data: EventData::Move { x: i as f64, y: 2.0 * i as f64 } });
    }
    let mut sid = [0u8; 16];
    sid[..8].copy_from_slice(&n.to_be_bytes());
    let client = Client { device: "desktop".into(), browser: "chrome".into() };
    StoredBatch::new("demo".into(), VisitorKey([(n % 97) as u8; 16]), Id128(sid), seq, t, client, events)
}

fn bench_group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 256 << 20).unwrap();
    let mut g = c.benchmark_group("sled_group_commit_50_event_batches");
    g.sample_size(20);
    let mut next = 0u64;
    for group in [1usize, 16, 256] {
        g.throughput(Throughput::Elements(group as u64));
        g.bench_with_input(BenchmarkId::from_parameter(group), &group, |b, &group| {
            // Built outside the timed part: the writer gets batches ready-made.
            b.iter_batched(
                || {
                    (0..group)
                        .map(|_| {
                            next += 1;
                            batch(next / 4, (next % 4) as u32)
                        })
                        .collect::<Vec<_>>()
                        .into()
                },
                |batches: Arc<[StoredBatch]>| rt.block_on(store.write(batches)).unwrap(),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_group_commit);
criterion_main!(benches);
