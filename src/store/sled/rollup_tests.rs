//! Week and month rollups must answer exactly as summing days does, for any range, and a store
//! written by the older encoding (MessagePack day values, no weeks or months) must open and
//! answer the same after its week and month values are built.

use std::sync::Arc;

use super::insights::spans;
use super::{keys, SledStore};
use crate::model::{Client, Event, EventData, Id128, StoredBatch, View, VisitorKey};
use crate::query::{DayRange, HeatmapQuery, PageQuery, PagesQuery};
use crate::rollup::codec::Layout;
use crate::rollup::heat::{self, ElementClicks, HeatCells, HeatKind, WidthClass, BAND_CELLS};
use crate::rollup::page::{self, PageRollup, PageSums, SitePages};
use crate::rollup::period::Span;
use crate::store::Store;

/// 2026-09-20: a Sunday, ten days before a month ends.
const FIRST_DAY: i32 = 20_716;
const DAYS: i32 = 100;
const DAY_MS: i64 = 86_400_000;
const PATHS: [&str; 4] = ["/", "/pricing", "/blog/a", "/docs"];

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A session of a few batches on random days; numbers chosen so every f64 sum is exact in any
/// order (integers, and folds of 100 %, 50 %, 25 % or 12.5 %).
fn session(rng: &mut Rng, n: u64) -> Vec<StoredBatch> {
    let mut t = (FIRST_DAY as i64 + rng.below(DAYS as u64) as i64) * DAY_MS + rng.below(DAY_MS as u64) as i64;
    let vw = [390.0, 820.0, 1440.0][rng.below(3) as usize];
    let vh = [400.0, 800.0][rng.below(2) as usize];
    let mut sid = [0u8; 16];
    sid[..8].copy_from_slice(&n.to_be_bytes());
    let (mut dh, mut scroll) = (vh, 0.0);
    (0..1 + rng.below(4) as u32)
        .map(|seq| {
            let mut events = Vec::new();
            if seq == 0 || rng.below(3) == 0 {
                dh = vh * [1.0, 2.0, 4.0, 8.0][rng.below(4) as usize];
                scroll = 0.0;
                let path = PATHS[rng.below(PATHS.len() as u64) as usize].to_owned();
                let view = View {
                    url: format!("https://t.example{path}"),
                    path,
                    referrer: None,
                    title: None,
                    vw,
                    vh,
                    dw: vw,
                    dh,
                    load_ms: Some(rng.below(3000) as f64),
                    ttfb_ms: None,
                    spa: false,
                };
                events.push(Event { t, data: EventData::View(view) });
            }
            for _ in 0..rng.below(40) {
                t += 200 + rng.below(5000) as i64;
                let (x, y) = (rng.below(vw as u64) as f64, (scroll + rng.below(vh as u64) as f64).min(dh - 1.0));
                let data = match rng.below(10) {
                    0..=5 => EventData::Move { x, y },
                    6..=7 => {
                        scroll = (scroll + rng.below(600) as f64).min(dh - vh);
                        EventData::Scroll { y: scroll }
                    }
                    _ => EventData::Click {
                        x,
                        y,
                        sel: format!("#b{}", rng.below(6)),
                        ex: Some(rng.below(1001) as u16),
                        ey: Some(rng.below(1001) as u16),
                        dead: rng.below(4) == 0,
                    },
                };
                events.push(Event { t, data });
            }
            let client = Client { device: "desktop".into(), browser: "chrome".into() };
            StoredBatch::new("s".into(), VisitorKey([n as u8; 16]), Id128(sid), seq, t, client, events)
        })
        .collect()
}

/// Writes `sessions` sessions in groups of random sizes (several days in one group too).
async fn load(store: &SledStore, rng: &mut Rng, sessions: std::ops::Range<u64>) {
    let mut group = Vec::new();
    for n in sessions.clone() {
        group.extend(session(rng, n));
        if rng.below(8) == 0 || n + 1 == sessions.end {
            let batches: Arc<[StoredBatch]> = std::mem::take(&mut group).into();
            store.write(batches).await.unwrap();
        }
    }
    // The tests read sled directly: write the applier's memtable to it first.
    store.pipeline.drain().unwrap();
}

/// Every answer over `range`, from the fewest values and from days alone, must be equal.
fn assert_same_as_days(store: &SledStore, range: DayRange) {
    let cover = spans(range);
    let days = [Span::Days { from: range.from, to: range.to }];
    let what = format!("{range:?} as {cover:?}");
    let pages = store.read_pages_in("s", &cover, 0, 100).unwrap();
    assert_eq!(pages, store.read_pages_in("s", &days, 0, 100).unwrap(), "{what}");
    assert_eq!(pages, store.read_pages_by_path_in("s", &days, 0, 100).unwrap(), "all-pages values: {what}");
    for path in PATHS {
        assert_eq!(
            store.read_scroll_in("s", path, &cover).unwrap(),
            store.read_scroll_in("s", path, &days).unwrap(),
            "{what}"
        );
        for kind in [HeatKind::Click, HeatKind::Move, HeatKind::Dead] {
            for width in [None, Some(WidthClass::Mobile), Some(WidthClass::Desktop)] {
                let a = store.read_heatmap_in("s", path, kind, width, &cover).unwrap();
                let b = store.read_heatmap_in("s", path, kind, width, &days).unwrap();
                assert_eq!(a, b, "{path} {kind:?} {width:?} {what}");
            }
        }
    }
}

fn random_range(rng: &mut Rng) -> DayRange {
    let from = FIRST_DAY - 5 + rng.below(DAYS as u64 + 10) as i32;
    DayRange { from, to: from + rng.below(120) as i32 }
}

#[tokio::test]
async fn weeks_and_months_answer_exactly_as_days_on_random_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    load(&store, &mut rng, 0..400).await;
    let whole = DayRange { from: FIRST_DAY, to: FIRST_DAY + DAYS };
    let pages = store.read_pages_in("s", &spans(whole), 0, 100).unwrap();
    assert_eq!(pages.total, PATHS.len(), "the data is there: {pages:?}");
    assert!(spans(whole).iter().any(|s| matches!(s, Span::Whole(_))), "the range uses weeks or months");
    assert_same_as_days(&store, whole);
    for _ in 0..25 {
        assert_same_as_days(&store, random_range(&mut rng));
    }
}

/// Rewrites the store as an older version left it: day values in MessagePack, no week or
/// month values, no all-pages values, no format key.
fn downgrade(tree: &sled::Tree) {
    let mut batch = sled::Batch::default();
    for item in tree.scan_prefix([keys::NS_PAGE_ROLLUP]) {
        let (k, v) = item.unwrap();
        batch.insert(k, rmp_serde::to_vec_named(&PageRollup::from_stored(&v).unwrap()).unwrap());
    }
    for item in tree.scan_prefix([keys::NS_HEAT]) {
        let (k, v) = item.unwrap();
        let band = u16::from_be_bytes(k[k.len() - 2..].try_into().unwrap());
        let mut counts = vec![0; BAND_CELLS];
        heat::add_stored_band(&v, &mut counts).unwrap();
        let mut cells = HeatCells::default();
        for (slot, n) in counts.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            cells.add(heat::cell_of_slot(band, slot).unwrap(), n);
        }
        batch.insert(k, rmp_serde::to_vec_named(&cells).unwrap());
    }
    for item in tree.scan_prefix([keys::NS_ELEMENTS]) {
        let (k, v) = item.unwrap();
        batch.insert(k, rmp_serde::to_vec_named(&ElementClicks::from_stored(&v).unwrap()).unwrap());
    }
    for ns in [
        keys::NS_PAGE_PERIOD,
        keys::NS_HEAT_PERIOD,
        keys::NS_ELEMENTS_PERIOD,
        keys::NS_SITE_PAGES,
        keys::NS_SITE_PAGES_PERIOD,
    ] {
        for item in tree.scan_prefix([ns]) {
            batch.remove(item.unwrap().0);
        }
    }
    batch.remove(keys::ROLLUP_FORMAT);
    tree.apply_batch(batch).unwrap();
    tree.flush().unwrap();
}

#[tokio::test]
async fn a_store_in_the_older_encoding_opens_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0dd_5eed_0002);
    let whole = DayRange { from: FIRST_DAY, to: FIRST_DAY + DAYS };
    let before = {
        let store = SledStore::open(dir.path(), 16 << 20).unwrap();
        load(&store, &mut rng, 0..150).await;
        let answers = (
            store.read_pages("s", &PagesQuery { range: whole, offset: 0, limit: 100 }).unwrap(),
            store
                .read_heatmap("s", &HeatmapQuery { path: "/".into(), kind: HeatKind::Click, width: None, range: whole })
                .unwrap(),
            store.read_scroll("s", &PageQuery { path: "/docs".into(), range: whole }).unwrap(),
        );
        downgrade(&store.tree);
        assert!(store.tree.scan_prefix([keys::NS_HEAT_PERIOD]).next().is_none());
        // Days alone still read (the older encoding), as an old store would be read.
        let days = [Span::Days { from: whole.from, to: whole.to }];
        assert_eq!(store.read_pages_by_path_in("s", &days, 0, 100).unwrap(), answers.0);
        answers
    };
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    assert!(store.tree.get(keys::ROLLUP_FORMAT).unwrap().is_some(), "weeks and months were built");
    assert_eq!(store.read_pages("s", &PagesQuery { range: whole, offset: 0, limit: 100 }).unwrap(), before.0);
    assert_eq!(
        store
            .read_heatmap("s", &HeatmapQuery { path: "/".into(), kind: HeatKind::Click, width: None, range: whole })
            .unwrap(),
        before.1
    );
    assert_eq!(store.read_scroll("s", &PageQuery { path: "/docs".into(), range: whole }).unwrap(), before.2);
    // New writes merge into the older day values and the rebuilt periods alike.
    load(&store, &mut rng, 150..300).await;
    assert_same_as_days(&store, whole);
    for _ in 0..10 {
        assert_same_as_days(&store, random_range(&mut rng));
    }
}

/// A store of format 1 (weeks and months, no all-pages values) gets them built when opened,
/// and answers the same.
#[tokio::test]
async fn a_store_without_all_pages_values_gets_them_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0dd_5eed_0003);
    let whole = DayRange { from: FIRST_DAY, to: FIRST_DAY + DAYS };
    let before = {
        let store = SledStore::open(dir.path(), 16 << 20).unwrap();
        load(&store, &mut rng, 0..150).await;
        let answer = store.read_pages("s", &PagesQuery { range: whole, offset: 0, limit: 100 }).unwrap();
        let mut batch = sled::Batch::default();
        for ns in [keys::NS_SITE_PAGES, keys::NS_SITE_PAGES_PERIOD] {
            for item in store.tree.scan_prefix([ns]) {
                batch.remove(item.unwrap().0);
            }
        }
        batch.insert(keys::ROLLUP_FORMAT, &[1]);
        store.tree.apply_batch(batch).unwrap();
        store.tree.flush().unwrap();
        answer
    };
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    assert!(store.tree.scan_prefix([keys::NS_SITE_PAGES_PERIOD]).next().is_some(), "built");
    assert_eq!(store.read_pages("s", &PagesQuery { range: whole, offset: 0, limit: 100 }).unwrap(), before);
    load(&store, &mut rng, 150..300).await;
    assert_same_as_days(&store, whole);
    for _ in 0..10 {
        assert_same_as_days(&store, random_range(&mut rng));
    }
}

/// A store of format 2 (all-pages values in the row layout, as the eighth session wrote them)
/// answers the same through the new code before it is reopened (reading the rows), gets its
/// values rewritten in the column layout when opened, and answers the same after.
#[tokio::test]
async fn a_store_with_all_pages_values_in_rows_reads_them_and_gets_columns_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0dd_5eed_0006);
    let whole = DayRange { from: FIRST_DAY, to: FIRST_DAY + DAYS };
    let ranges: Vec<DayRange> = std::iter::once(whole).chain((0..10).map(|_| random_range(&mut rng))).collect();
    let answers = |store: &SledStore| -> Vec<_> {
        let pages = |r: &DayRange| store.read_pages("s", &PagesQuery { range: *r, offset: 0, limit: 100 }).unwrap();
        ranges.iter().map(pages).collect()
    };
    let all_pages = |store: &SledStore| -> Vec<(sled::IVec, sled::IVec)> {
        let tree = &store.tree;
        let values = tree.scan_prefix([keys::NS_SITE_PAGES]).chain(tree.scan_prefix([keys::NS_SITE_PAGES_PERIOD]));
        values.map(Result::unwrap).collect()
    };
    let before = {
        let store = SledStore::open(dir.path(), 16 << 20).unwrap();
        load(&store, &mut rng, 0..150).await;
        let before = answers(&store);
        let mut batch = sled::Batch::default();
        for (k, v) in all_pages(&store) {
            assert!(!page::is_site_pages_rows(&v), "written in columns");
            let mut all = SitePages::default();
            all.add_stored(&v).unwrap();
            batch.insert(k, all.to_stored_rows(Layout::Chosen));
        }
        batch.insert(keys::ROLLUP_FORMAT, &[2]);
        store.tree.apply_batch(batch).unwrap();
        store.tree.flush().unwrap();
        assert!(all_pages(&store).iter().all(|(_, v)| page::is_site_pages_rows(v)));
        assert_eq!(answers(&store), before, "rows read by the new code");
        before
    };
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(store.tree.get(keys::ROLLUP_FORMAT).unwrap().unwrap().as_ref(), [3]);
    let values = all_pages(&store);
    assert!(values.len() > 50, "{} all-pages values", values.len());
    assert!(values.iter().all(|(_, v)| !page::is_site_pages_rows(v)), "rewritten");
    assert_eq!(answers(&store), before);
    load(&store, &mut rng, 150..300).await;
    assert_same_as_days(&store, whole);
    for _ in 0..10 {
        assert_same_as_days(&store, random_range(&mut rng));
    }
}

/// A day, week or month with more paths than one all-pages value holds is read path by path,
/// with the same answer.
#[tokio::test]
async fn periods_with_too_many_paths_are_read_path_by_path() {
    use crate::rollup::page::MAX_SITE_PATHS;
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    let mut rng = Rng(0x0dd_5eed_0004);
    load(&store, &mut rng, 0..100).await;
    // One busy day (in a week and month that also hold other days) with many paths.
    let busy = FIRST_DAY + 20;
    let batches: Vec<StoredBatch> = (0..MAX_SITE_PATHS as u64 + 20)
        .map(|n| {
            let path = format!("/many/{n}");
            let view = View {
                url: format!("https://t.example{path}"),
                path,
                referrer: None,
                title: None,
                vw: 800.0,
                vh: 800.0,
                dw: 800.0,
                dh: 1600.0,
                load_ms: Some(n as f64),
                ttfb_ms: None,
                spa: false,
            };
            let events = vec![Event { t: busy as i64 * DAY_MS + n as i64, data: EventData::View(view) }];
            let client = Client { device: "desktop".into(), browser: "chrome".into() };
            let sid = Id128([[0xee; 8], (1000 + n).to_be_bytes()].concat().try_into().unwrap());
            StoredBatch::new("s".into(), VisitorKey([7; 16]), sid, 0, busy as i64 * DAY_MS + n as i64, client, events)
        })
        .collect();
    store.write(batches.into()).await.unwrap();
    load(&store, &mut rng, 100..200).await;
    let marker = store.tree.get(keys::site_pages("s", busy)).unwrap().unwrap();
    assert!(!crate::rollup::page::for_each_site_page(&marker, |_, _| Ok(())).unwrap(), "the busy day is a marker");
    let whole = DayRange { from: FIRST_DAY, to: FIRST_DAY + DAYS };
    let pages = store.read_pages_in("s", &spans(whole), 0, 1000).unwrap();
    assert_eq!(pages.total, PATHS.len() + MAX_SITE_PATHS + 20);
    assert_same_as_days(&store, whole);
    for _ in 0..10 {
        assert_same_as_days(&store, random_range(&mut rng));
    }
}

/// Rewrites every heat band, page value and all-pages value in `layout` (tokens: as versions
/// before the dense block wrote them all).
fn relayout(tree: &sled::Tree, layout: Layout) {
    let mut batch = sled::Batch::default();
    for item in tree.scan_prefix([keys::NS_HEAT]).chain(tree.scan_prefix([keys::NS_HEAT_PERIOD])) {
        let (k, v) = item.unwrap();
        let mut counts = vec![0; BAND_CELLS];
        heat::add_stored_band(&v, &mut counts).unwrap();
        batch.insert(k, heat::encode_band_in(&counts, layout));
    }
    for item in tree.scan_prefix([keys::NS_PAGE_ROLLUP]).chain(tree.scan_prefix([keys::NS_PAGE_PERIOD])) {
        let (k, v) = item.unwrap();
        let mut sums = PageSums::default();
        sums.add_stored(&v).unwrap();
        batch.insert(k, sums.to_stored_in(layout));
    }
    for item in tree.scan_prefix([keys::NS_SITE_PAGES]).chain(tree.scan_prefix([keys::NS_SITE_PAGES_PERIOD])) {
        let (k, v) = item.unwrap();
        let mut all = SitePages::default();
        all.add_stored(&v).unwrap();
        batch.insert(k, all.to_stored_in(layout));
    }
    tree.apply_batch(batch).unwrap();
}

/// Bands and load histograms answer the same whether stored as tokens (what stores written
/// before the dense block hold) or dense blocks, and new writes merge into either.
#[tokio::test]
async fn token_and_dense_values_answer_the_same_and_take_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0dd_5eed_0005);
    let whole = DayRange { from: FIRST_DAY, to: FIRST_DAY + DAYS };
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    load(&store, &mut rng, 0..150).await;
    let answers = |store: &SledStore| {
        let pages = store.read_pages("s", &PagesQuery { range: whole, offset: 0, limit: 100 }).unwrap();
        let path = "/".to_owned();
        let q = HeatmapQuery { path, kind: HeatKind::Move, width: None, range: whole };
        (pages, store.read_heatmap("s", &q).unwrap())
    };
    let before = answers(&store);
    assert!(!before.1.cells.is_empty() && !before.0.pages.is_empty());
    for layout in [Layout::Dense, Layout::Tokens] {
        relayout(&store.tree, layout);
        assert_eq!(answers(&store), before, "{layout:?}");
        assert_same_as_days(&store, whole);
    }
    load(&store, &mut rng, 150..300).await;
    assert_same_as_days(&store, whole);
    relayout(&store.tree, Layout::Dense);
    load(&store, &mut rng, 300..400).await;
    assert_same_as_days(&store, whole);
    for _ in 0..10 {
        assert_same_as_days(&store, random_range(&mut rng));
    }
}
