//! Per-page figures for one site, day and normalised path: pageviews, load time, clicks,
//! scroll depth and scroll reach; their stored encoding, and [`PageSums`], the accumulator a
//! query adds stored values into.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::{self, Corrupt, GrowingDenseSums, Layout};
use super::{quantile_of_counts, Histogram, HISTOGRAM_BUCKETS};

/// First byte of a stored page rollup in the [`codec`] format (older stores hold MessagePack).
const PAGE_FORMAT: u8 = 0x01;
/// Like [`PAGE_FORMAT`] but the load histogram is a [`codec::add_dense`] block (see
/// [`codec::put_counts_chosen`]: a busy page's load times fill a span of buckets).
const PAGE_DENSE_FORMAT: u8 = 0x02;

/// Scroll reach is counted in steps of this many percent (0, 5, …, 100).
pub const REACH_STEP_PCT: u8 = 5;
pub const REACH_STEPS: usize = 100 / REACH_STEP_PCT as usize + 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageRollup {
    pub pageviews: u64,
    pub load: Histogram,
    pub clicks: u64,
    pub rage_clicks: u64,
    pub dead_clicks: u64,
    #[serde(default)]
    pub error_clicks: u64,
    #[serde(default)]
    pub quick_backs: u64,
    /// Sum over pageviews of the deepest point reached, in percent of the document.
    pub depth_sum_pct: u64,
    /// `reach[k]`: pageviews whose deepest point reached `k * 5` percent.
    pub reach: Vec<u64>,
    /// Sums over pageviews of the fold line (viewport height), in px and percent of document.
    pub fold_sum_px: f64,
    pub fold_sum_pct: f64,
}

impl PageRollup {
    pub fn merge(&mut self, other: &PageRollup) {
        self.merge_figures(other);
        for (b, n) in &other.load.buckets {
            *self.load.buckets.entry(*b).or_default() += n;
        }
    }

    /// [`Self::merge`] but for the load histogram's buckets.
    fn merge_figures(&mut self, other: &PageRollup) {
        self.pageviews += other.pageviews;
        self.load.count += other.load.count;
        self.load.sum += other.load.sum;
        self.clicks += other.clicks;
        self.rage_clicks += other.rage_clicks;
        self.dead_clicks += other.dead_clicks;
        self.error_clicks += other.error_clicks;
        self.quick_backs += other.quick_backs;
        self.depth_sum_pct += other.depth_sum_pct;
        if self.reach.len() < REACH_STEPS {
            self.reach.resize(REACH_STEPS, 0);
        }
        for (a, b) in self.reach.iter_mut().zip(&other.reach) {
            *a += b;
        }
        self.fold_sum_px += other.fold_sum_px;
        self.fold_sum_pct += other.fold_sum_pct;
    }

    /// The stored value: counts as varints, sums as f64, reach and load buckets as [`codec`]
    /// arrays.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut buckets = vec![0u64; self.load.buckets.last_key_value().map_or(0, |(b, _)| usize::from(*b) + 1)];
        for (b, n) in &self.load.buckets {
            buckets[usize::from(*b)] = *n;
        }
        self.encode(&buckets, Layout::Chosen)
    }

    /// The stored value of these figures with these load bucket counts (by bucket).
    fn encode(&self, buckets: &[u64], layout: Layout) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.push(PAGE_FORMAT);
        for n in self.counts() {
            codec::put_varint(&mut out, n);
        }
        for v in [self.load.sum, self.fold_sum_px, self.fold_sum_pct] {
            codec::put_f64(&mut out, v);
        }
        codec::put_varint(&mut out, self.reach.len() as u64);
        for n in &self.reach {
            codec::put_varint(&mut out, *n);
        }
        if codec::put_counts_in(&mut out, buckets, layout) {
            out[0] = PAGE_DENSE_FORMAT;
        }
        out
    }

    /// Reads a stored value (this format, or the MessagePack older versions wrote).
    pub fn from_stored(bytes: &[u8]) -> Result<Self, Corrupt> {
        let mut sums = PageSums::default();
        sums.add_stored(bytes)?;
        Ok(sums.into_rollup())
    }

    /// The integer figures, in their stored order.
    fn counts(&self) -> [u64; 9] {
        [
            self.pageviews,
            self.load.count,
            self.clicks,
            self.rage_clicks,
            self.dead_clicks,
            self.error_clicks,
            self.quick_backs,
            self.depth_sum_pct,
            0, // reserved
        ]
    }

    /// The integer figure `c` of [`Self::counts_mut`].
    fn count_mut(&mut self, c: usize) -> &mut u64 {
        match c {
            0 => &mut self.pageviews,
            1 => &mut self.load.count,
            2 => &mut self.clicks,
            3 => &mut self.rage_clicks,
            4 => &mut self.dead_clicks,
            5 => &mut self.error_clicks,
            6 => &mut self.quick_backs,
            _ => &mut self.depth_sum_pct,
        }
    }

    fn counts_mut(&mut self) -> [&mut u64; 8] {
        [
            &mut self.pageviews,
            &mut self.load.count,
            &mut self.clicks,
            &mut self.rage_clicks,
            &mut self.dead_clicks,
            &mut self.error_clicks,
            &mut self.quick_backs,
            &mut self.depth_sum_pct,
        ]
    }

    /// Records that a pageview's deepest point moved from `from_pct` to `to_pct` (0–100): each
    /// 5 % step crossed counts once, so reach stays exact however many batches a view spans.
    pub fn deepen(&mut self, from_pct: Option<u8>, to_pct: u8) {
        if self.reach.len() < REACH_STEPS {
            self.reach.resize(REACH_STEPS, 0);
        }
        let to_pct = to_pct.min(100);
        let from_step = from_pct.map_or(-1, |f| (f / REACH_STEP_PCT) as i32);
        for step in (from_step + 1)..=(to_pct / REACH_STEP_PCT) as i32 {
            self.reach[step as usize] += 1;
        }
        self.depth_sum_pct += to_pct.saturating_sub(from_pct.unwrap_or(0)) as u64;
    }
}

/// The sum of many page rollups, with the load histogram kept as a dense array so that adding
/// a stored value is one pass over its bytes (no map per value).
#[derive(Debug, Clone, Default)]
pub struct PageSums {
    /// Every figure but the load histogram's buckets (left empty).
    totals: PageRollup,
    /// Load-time histogram counts by bucket, as long as the highest bucket seen.
    load_buckets: Vec<u64>,
}

impl PageSums {
    pub fn add(&mut self, r: &PageRollup) {
        self.totals.merge_figures(r);
        if let Some((last, _)) = r.load.buckets.last_key_value() {
            if self.load_buckets.len() <= usize::from(*last) {
                self.load_buckets.resize(usize::from(*last) + 1, 0);
            }
        }
        for (b, n) in &r.load.buckets {
            self.load_buckets[usize::from(*b)] += n;
        }
    }

    /// Adds a stored page rollup (either format) straight into the sums.
    pub fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        let dense = bytes.first() == Some(&PAGE_DENSE_FORMAT);
        if bytes.first() != Some(&PAGE_FORMAT) && !dense {
            let legacy: PageRollup = rmp_serde::from_slice(bytes).map_err(|_| Corrupt("page rollup"))?;
            self.add(&legacy);
            return Ok(());
        }
        let mut at = 1;
        for field in self.totals.counts_mut() {
            *field += codec::varint(bytes, &mut at)?;
        }
        codec::varint(bytes, &mut at)?; // reserved
        let t = &mut self.totals;
        for sum in [&mut t.load.sum, &mut t.fold_sum_px, &mut t.fold_sum_pct] {
            *sum += codec::f64_at(bytes, &mut at)?;
        }
        let steps = codec::varint(bytes, &mut at)?;
        if steps > REACH_STEPS as u64 {
            return Err(Corrupt("page rollup: reach steps"));
        }
        t.reach.resize(REACH_STEPS, 0);
        for step in 0..steps as usize {
            t.reach[step] += codec::varint(bytes, &mut at)?;
        }
        match dense {
            true => codec::add_dense_growing(bytes, at, &mut self.load_buckets, HISTOGRAM_BUCKETS),
            false => codec::add_counts_growing(bytes, at, &mut self.load_buckets, HISTOGRAM_BUCKETS),
        }
    }

    /// Adds a load histogram of the column layout (a kind byte and its [`codec`] counts, or
    /// nothing).
    fn add_load(&mut self, hist: &[u8]) -> Result<(), Corrupt> {
        match hist.first() {
            None => Ok(()),
            Some(&LOAD_TOKENS) => codec::add_counts_growing(hist, 1, &mut self.load_buckets, HISTOGRAM_BUCKETS),
            Some(&LOAD_DENSE) => codec::add_dense_growing(hist, 1, &mut self.load_buckets, HISTOGRAM_BUCKETS),
            Some(_) => Err(Corrupt("all-pages value: load histogram kind")),
        }
    }

    /// Adds load histogram counts by bucket.
    fn add_load_buckets(&mut self, buckets: Vec<u64>) {
        if self.load_buckets.is_empty() {
            self.load_buckets = buckets;
            return;
        }
        if self.load_buckets.len() < buckets.len() {
            self.load_buckets.resize(buckets.len(), 0);
        }
        self.load_buckets.iter_mut().zip(buckets).for_each(|(a, b)| *a += b);
    }

    /// Every figure but the load histogram (whose buckets are left empty).
    pub fn figures(&self) -> &PageRollup {
        &self.totals
    }

    pub fn pageviews(&self) -> u64 {
        self.totals.pageviews
    }

    pub fn load_mean(&self) -> Option<f64> {
        self.totals.load.mean()
    }

    pub fn load_quantile(&self, q: f64) -> Option<f64> {
        quantile_of_counts(self.totals.load.count, &self.load_buckets, q)
    }

    pub fn to_stored(&self) -> Vec<u8> {
        self.to_stored_in(Layout::Chosen)
    }

    /// Like [`Self::to_stored`] with the load histogram in `layout`.
    pub fn to_stored_in(&self, layout: Layout) -> Vec<u8> {
        self.totals.encode(&self.load_buckets, layout)
    }

    /// About the bytes the sums hold on the heap.
    pub fn heap_bytes(&self) -> usize {
        (self.load_buckets.capacity() + self.totals.reach.capacity()) * std::mem::size_of::<u64>()
    }

    pub fn into_rollup(self) -> PageRollup {
        let mut r = self.totals;
        r.load.buckets =
            self.load_buckets.into_iter().enumerate().filter(|(_, n)| *n > 0).map(|(b, n)| (b as u16, n)).collect();
        r.reach.resize(REACH_STEPS, 0);
        r
    }
}

/// First byte of a stored all-pages value in the row layout that versions before the ninth
/// session wrote: per path, its path and its page value ([`PageSums::to_stored`]).
const SITE_PAGES_ROWS: u8 = 0x01;
/// The whole stored all-pages value of a period that has more than [`MAX_SITE_PATHS`] paths:
/// its figures are read from the per-path values instead.
const SITE_PAGES_TOO_MANY: u8 = 0x02;
/// First byte of a stored all-pages value in the column layout ([`SitePages::to_stored_in`]):
/// every path's figure side by side, so a query adds a figure of all paths in one loop.
const SITE_PAGES_COLUMNS: u8 = 0x03;
/// Most paths an all-pages value holds, so that it stays a small sled value that each group
/// commit can rewrite (about 100–300 bytes per path on a busy site).
pub const MAX_SITE_PATHS: usize = 256;
/// The integer figures a page value stores ([`PageRollup::counts`] but the reserved one).
const COUNT_COLUMNS: usize = 8;
/// Load histogram kinds in the column layout: tokens or a dense block ([`codec`]).
const LOAD_TOKENS: u8 = 1;
const LOAD_DENSE: u8 = 2;

/// Every path's page figures of one site and day, week or month, kept in one value so that a
/// range is a handful of reads instead of one per path and period. A site with more than
/// [`MAX_SITE_PATHS`] paths in the period stores a marker instead (see [`SitePages::fits`]).
#[derive(Debug, Clone, Default)]
pub struct SitePages {
    paths: BTreeMap<String, PageSums>,
    too_many: bool,
}

/// One group's page deltas of one site and day, by path.
#[derive(Debug, Clone, Default)]
pub struct SitePagesDelta(pub BTreeMap<String, PageRollup>);

impl SitePagesDelta {
    pub fn merge(&mut self, other: &SitePagesDelta) {
        for (path, r) in &other.0 {
            self.0.entry(path.clone()).or_default().merge(r);
        }
    }
}

impl SitePages {
    /// False once the period has had more than [`MAX_SITE_PATHS`] paths (then nothing is kept).
    pub fn fits(&self) -> bool {
        !self.too_many
    }

    pub fn add_delta(&mut self, delta: &SitePagesDelta) {
        for (path, r) in &delta.0 {
            if let Some(sums) = self.entry(path) {
                sums.add(r);
            }
        }
    }

    /// Adds one path's stored page value (either format).
    pub fn add_stored_path(&mut self, path: &str, bytes: &[u8]) -> Result<(), Corrupt> {
        match self.entry(path) {
            Some(sums) => sums.add_stored(bytes),
            None => Ok(()),
        }
    }

    /// The sums of `path`, or `None` once the period has too many paths.
    fn entry(&mut self, path: &str) -> Option<&mut PageSums> {
        if !self.too_many && !self.paths.contains_key(path) {
            if self.paths.len() == MAX_SITE_PATHS {
                self.too_many = true;
                self.paths = BTreeMap::new();
            } else {
                self.paths.insert(path.to_owned(), PageSums::default());
            }
        }
        self.paths.get_mut(path)
    }

    /// Adds a stored all-pages value (column or row layout, or the marker).
    pub fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        let fits = match bytes.first() {
            Some(&SITE_PAGES_COLUMNS) => {
                let columns = PageColumns::parse(bytes)?;
                let mut hists = columns.load_histograms();
                columns.for_each_path(|i, path| {
                    let hist = hists.next().ok_or(Corrupt("all-pages value: load histograms"))??;
                    let path = std::str::from_utf8(path).map_err(|_| Corrupt("all-pages value: path"))?;
                    if let Some(sums) = self.entry(path) {
                        columns.add_row(i, sums)?;
                        sums.add_load(hist)?;
                    }
                    Ok(())
                })?;
                if hists.next().is_some() {
                    return Err(Corrupt("all-pages value: load histograms"));
                }
                true
            }
            _ => for_each_site_page(bytes, |path, value| {
                let path = std::str::from_utf8(path).map_err(|_| Corrupt("all-pages value: path"))?;
                self.add_stored_path(path, value)
            })?,
        };
        if !fits {
            self.too_many = true;
            self.paths = BTreeMap::new();
        }
        Ok(())
    }

    /// The stored value, in the column layout ([`Self::to_stored_in`]).
    pub fn to_stored(&self) -> Vec<u8> {
        self.to_stored_in(Layout::Chosen)
    }

    /// The stored value in the column layout, with every path's load histogram in `layout`:
    /// the path count; the path table (its length, then per path in path order its length and
    /// bytes); the eight integer figures ([`PageRollup::counts`]), each as a column (a width
    /// byte, 0, 1, 2, 4 or 8, then each path's figure as a little-endian integer of that many
    /// bytes); the load sum, fold px and fold % columns (each path's f64); the load histograms
    /// (their length, then per path its length and, if not empty, a kind byte and its
    /// [`codec`] counts); the reach steps (their number, then a column per step).
    pub fn to_stored_in(&self, layout: Layout) -> Vec<u8> {
        if self.too_many {
            return vec![SITE_PAGES_TOO_MANY];
        }
        let sums: Vec<&PageSums> = self.paths.values().collect();
        let mut out = Vec::with_capacity(16 + self.paths.len() * 200);
        out.push(SITE_PAGES_COLUMNS);
        codec::put_varint(&mut out, sums.len() as u64);
        let mut table = Vec::with_capacity(self.paths.len() * 16);
        for path in self.paths.keys() {
            codec::put_varint(&mut table, path.len() as u64);
            table.extend_from_slice(path.as_bytes());
        }
        codec::put_varint(&mut out, table.len() as u64);
        out.extend_from_slice(&table);
        for c in 0..COUNT_COLUMNS {
            put_column(&mut out, sums.iter().map(|s| s.totals.counts()[c]));
        }
        for f in 0..3 {
            for s in &sums {
                let t = &s.totals;
                codec::put_f64(&mut out, [t.load.sum, t.fold_sum_px, t.fold_sum_pct][f]);
            }
        }
        let mut hists = Vec::with_capacity(sums.len() * 64);
        let mut one = Vec::new();
        for s in &sums {
            one.clear();
            if s.load_buckets.iter().any(|n| *n > 0) {
                one.push(LOAD_TOKENS);
                if codec::put_counts_in(&mut one, &s.load_buckets, layout) {
                    one[0] = LOAD_DENSE;
                }
            }
            codec::put_varint(&mut hists, one.len() as u64);
            hists.extend_from_slice(&one);
        }
        codec::put_varint(&mut out, hists.len() as u64);
        out.extend_from_slice(&hists);
        codec::put_varint(&mut out, REACH_STEPS as u64);
        for step in 0..REACH_STEPS {
            put_column(&mut out, sums.iter().map(|s| s.totals.reach.get(step).copied().unwrap_or(0)));
        }
        out
    }

    /// The stored value in the row layout that versions before the ninth session wrote (per
    /// path in path order: its length and bytes, then its page value's length and bytes).
    pub fn to_stored_rows(&self, layout: Layout) -> Vec<u8> {
        if self.too_many {
            return vec![SITE_PAGES_TOO_MANY];
        }
        let mut out = Vec::with_capacity(1 + self.paths.len() * 160);
        out.push(SITE_PAGES_ROWS);
        for (path, sums) in &self.paths {
            codec::put_varint(&mut out, path.len() as u64);
            out.extend_from_slice(path.as_bytes());
            let value = sums.to_stored_in(layout);
            codec::put_varint(&mut out, value.len() as u64);
            out.extend_from_slice(&value);
        }
        out
    }

    /// Every path's figures, in path order (`None` for a period with too many paths).
    pub fn rollups(&self) -> Option<Vec<(String, PageRollup)>> {
        let all = self.paths.iter().map(|(path, sums)| (path.clone(), sums.clone().into_rollup()));
        self.fits().then(|| all.collect())
    }

    /// About the bytes the decoded value holds (for the applier's cache).
    pub fn heap_bytes(&self) -> usize {
        let per_path = |(path, sums): (&String, &PageSums)| path.len() + 64 + sums.heap_bytes();
        self.paths.iter().map(per_path).sum::<usize>() + 64
    }
}

/// True if `bytes` is an all-pages value in the row layout (what a store of format 2 holds).
pub fn is_site_pages_rows(bytes: &[u8]) -> bool {
    bytes.first() == Some(&SITE_PAGES_ROWS)
}

/// Appends a column: the width byte, then each value in that many little-endian bytes.
fn put_column(out: &mut Vec<u8>, values: impl Iterator<Item = u64> + Clone) {
    let width: usize = match values.clone().max().unwrap_or(0) {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    };
    out.push(width as u8);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
}

/// One stored column: each path's figure in `width` little-endian bytes (0: all zero).
#[derive(Clone, Copy)]
struct Column<'a> {
    width: usize,
    data: &'a [u8],
}

impl<'a> Column<'a> {
    fn parse(bytes: &'a [u8], at: &mut usize, n: usize) -> Result<Self, Corrupt> {
        let width = usize::from(*bytes.get(*at).ok_or(Corrupt("all-pages value: column"))?);
        if !matches!(width, 0 | 1 | 2 | 4 | 8) {
            return Err(Corrupt("all-pages value: column width"));
        }
        let end = (*at + 1).checked_add(n * width).filter(|end| *end <= bytes.len());
        let end = end.ok_or(Corrupt("all-pages value: column beyond the value"))?;
        let data = &bytes[*at + 1..end];
        *at = end;
        Ok(Column { width, data })
    }

    fn get(&self, i: usize) -> u64 {
        let mut le = [0u8; 8];
        le[..self.width].copy_from_slice(&self.data[i * self.width..(i + 1) * self.width]);
        u64::from_le_bytes(le)
    }

    /// Calls `f(path index, figure)` for every path, one loop per width.
    #[inline]
    fn for_each(&self, mut f: impl FnMut(usize, u64)) {
        match self.width {
            0 => {}
            1 => self.data.iter().enumerate().for_each(|(i, b)| f(i, u64::from(*b))),
            2 => self
                .data
                .chunks_exact(2)
                .enumerate()
                .for_each(|(i, b)| f(i, u64::from(u16::from_le_bytes([b[0], b[1]])))),
            4 => self
                .data
                .chunks_exact(4)
                .enumerate()
                .for_each(|(i, b)| f(i, u64::from(u32::from_le_bytes(b.try_into().expect("4"))))),
            _ => self
                .data
                .chunks_exact(8)
                .enumerate()
                .for_each(|(i, b)| f(i, u64::from_le_bytes(b.try_into().expect("8")))),
        }
    }
}

/// A stored all-pages value in the column layout, split into its sections (nothing decoded).
struct PageColumns<'a> {
    n: usize,
    table: &'a [u8],
    counts: [Column<'a>; COUNT_COLUMNS],
    /// Load sum, fold px and fold %: `n` f64 each.
    sums: [&'a [u8]; 3],
    hists: &'a [u8],
    /// The reach steps (their number, then a column each).
    reach: &'a [u8],
}

impl<'a> PageColumns<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, Corrupt> {
        if bytes.first() != Some(&SITE_PAGES_COLUMNS) {
            return Err(Corrupt("all-pages value: format"));
        }
        let mut at = 1;
        let n = codec::varint(bytes, &mut at)?;
        let n = usize::try_from(n).ok().filter(|n| *n <= MAX_SITE_PATHS).ok_or(Corrupt("all-pages value: paths"))?;
        let table = slice(bytes, &mut at)?;
        let mut counts = [Column { width: 0, data: &[] }; COUNT_COLUMNS];
        for c in &mut counts {
            *c = Column::parse(bytes, &mut at, n)?;
        }
        let mut sums: [&[u8]; 3] = [&[]; 3];
        for s in &mut sums {
            let end = at.checked_add(n * 8).filter(|end| *end <= bytes.len());
            let end = end.ok_or(Corrupt("all-pages value: sums beyond the value"))?;
            *s = &bytes[at..end];
            at = end;
        }
        let hists = slice(bytes, &mut at)?;
        Ok(PageColumns { n, table, counts, sums, hists, reach: &bytes[at..] })
    }

    /// Calls `f(index, path)` for each path of the table, in order; an error unless the table
    /// holds exactly `n` paths.
    fn for_each_path(&self, mut f: impl FnMut(usize, &'a [u8]) -> Result<(), Corrupt>) -> Result<(), Corrupt> {
        let (mut at, mut i) = (0, 0);
        while at < self.table.len() {
            let path = slice(self.table, &mut at)?;
            if i == self.n {
                break;
            }
            f(i, path)?;
            i += 1;
        }
        if i != self.n || at != self.table.len() {
            return Err(Corrupt("all-pages value: path table"));
        }
        Ok(())
    }

    /// Each path's load histogram (its kind byte and counts; empty if it has none), in order.
    fn load_histograms(&self) -> impl Iterator<Item = Result<&'a [u8], Corrupt>> {
        let hists = self.hists;
        let mut at = 0;
        std::iter::from_fn(move || (at < hists.len()).then(|| slice(hists, &mut at)))
    }

    fn sum(&self, f: usize, i: usize) -> f64 {
        f64::from_le_bytes(self.sums[f][i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    }

    /// Adds path `i`'s figures but its load histogram (see [`PageSums::add_load`]) to `sums`.
    fn add_row(&self, i: usize, sums: &mut PageSums) -> Result<(), Corrupt> {
        let t = &mut sums.totals;
        for (field, column) in t.counts_mut().into_iter().zip(&self.counts) {
            *field += column.get(i);
        }
        for (f, sum) in [&mut t.load.sum, &mut t.fold_sum_px, &mut t.fold_sum_pct].into_iter().enumerate() {
            *sum += self.sum(f, i);
        }
        let mut at = 0;
        let steps = codec::varint(self.reach, &mut at)?;
        if steps > REACH_STEPS as u64 {
            return Err(Corrupt("all-pages value: reach steps"));
        }
        t.reach.resize(REACH_STEPS, 0);
        for step in 0..steps as usize {
            t.reach[step] += Column::parse(self.reach, &mut at, self.n)?.get(i);
        }
        if at != self.reach.len() {
            return Err(Corrupt("all-pages value: after the reach steps"));
        }
        Ok(())
    }
}

/// The length-prefixed slice at `*at` (advanced past it).
fn slice<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a [u8], Corrupt> {
    let len = codec::varint(bytes, at)?;
    let end = usize::try_from(len).ok().and_then(|len| at.checked_add(len)).filter(|end| *end <= bytes.len());
    let end = end.ok_or(Corrupt("all-pages value: length beyond the value"))?;
    let s = &bytes[*at..end];
    *at = end;
    Ok(s)
}

/// What a pages query sums: per path, the figures its answer shows (pageviews, clicks and the
/// other counts, the load sum and histogram; not the scroll reach or fold, which `pages` does
/// not show), added from all-pages values. A column-layout value adds each figure of all its
/// paths in one loop; its paths are matched to the sums' once per distinct path table (the
/// periods of a busy site list the same paths, so mostly once per query).
#[derive(Debug, Default)]
pub struct AllPagesSums {
    /// Every path seen and its index in `sums` and `loads`, in path order.
    index: Vec<(Box<[u8]>, usize)>,
    sums: Vec<PageSums>,
    /// Each path's load histogram from column-layout values (low bytes in 16-bit lanes).
    loads: Vec<GrowingDenseSums>,
    /// The path table of the last column-layout value added, and its paths' indices.
    table: Vec<u8>,
    map: Vec<usize>,
}

impl AllPagesSums {
    /// Adds a stored all-pages value (either layout); `Ok(false)`, adding nothing, for the
    /// marker of a period with too many paths (read its per-path values instead).
    pub fn add_stored(&mut self, bytes: &[u8]) -> Result<bool, Corrupt> {
        if bytes.first() != Some(&SITE_PAGES_COLUMNS) {
            return for_each_site_page(bytes, |path, value| self.add_path_value(path, value));
        }
        let columns = PageColumns::parse(bytes)?;
        if columns.table != self.table.as_slice() {
            // A table lists its paths in path order, as `index` does: step a cursor through it.
            let mut map = std::mem::take(&mut self.map);
            map.clear();
            let mut cursor = 0;
            columns.for_each_path(|_, path| {
                if cursor > 0 && *self.index[cursor - 1].0 >= *path {
                    cursor = 0; // not in order (a foreign value): search from the start
                }
                while self.index.get(cursor).is_some_and(|(p, _)| **p < *path) {
                    cursor += 1;
                }
                map.push(self.index_at(cursor, path));
                cursor += 1;
                Ok(())
            })?;
            self.map = map;
            self.table.clear();
            self.table.extend_from_slice(columns.table);
        }
        let (map, sums) = (&self.map, &mut self.sums);
        for (c, column) in columns.counts.iter().enumerate() {
            column.for_each(|i, n| *sums[map[i]].totals.count_mut(c) += n);
        }
        for (i, s) in columns.sums[0].chunks_exact(8).enumerate() {
            sums[map[i]].totals.load.sum += f64::from_le_bytes(s.try_into().expect("8 bytes"));
        }
        let mut hists = columns.load_histograms();
        for &at in map {
            let hist = hists.next().ok_or(Corrupt("all-pages value: load histograms"))??;
            let load = &mut self.loads[at];
            match hist.first() {
                None => {}
                Some(&LOAD_TOKENS) => load.add_counts(hist, 1, HISTOGRAM_BUCKETS)?,
                Some(&LOAD_DENSE) => load.add_dense(hist, 1, HISTOGRAM_BUCKETS)?,
                Some(_) => return Err(Corrupt("all-pages value: load histogram kind")),
            }
        }
        if hists.next().is_some() {
            return Err(Corrupt("all-pages value: load histograms"));
        }
        Ok(true)
    }

    /// Adds one path's stored page value (either format).
    pub fn add_path_value(&mut self, path: &[u8], value: &[u8]) -> Result<(), Corrupt> {
        let at = self.index.partition_point(|(p, _)| **p < *path);
        let at = self.index_at(at, path);
        self.sums[at].add_stored(value)
    }

    /// The index of `path`, which is `index[at]` or belongs there (then it is added).
    fn index_at(&mut self, at: usize, path: &[u8]) -> usize {
        if let Some((p, i)) = self.index.get(at) {
            if **p == *path {
                return *i;
            }
        }
        if self.sums.is_empty() {
            // One allocation each for a typical site's paths.
            self.index.reserve(64);
            self.sums.reserve(64);
            self.loads.reserve(64);
        }
        let i = self.sums.len();
        self.sums.push(PageSums::default());
        self.loads.push(GrowingDenseSums::default());
        self.index.insert(at, (path.into(), i));
        i
    }

    /// Every path and its sums, side by side (in the order the paths were first seen).
    pub fn finish(self) -> (Vec<Box<[u8]>>, Vec<PageSums>) {
        let (mut sums, loads) = (self.sums, self.loads);
        for (s, load) in sums.iter_mut().zip(loads) {
            s.add_load_buckets(load.into_sums());
        }
        let mut paths: Vec<Box<[u8]>> = vec![Box::default(); sums.len()];
        for (path, i) in self.index {
            paths[i] = path;
        }
        (paths, sums)
    }
}

/// Calls `f(path, page value)` for each path of a stored all-pages value in the row layout, in
/// path order. Returns `Ok(false)`, calling nothing, when the value is the marker of a period
/// with too many paths (its figures are in the per-path values).
pub fn for_each_site_page(
    bytes: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), Corrupt>,
) -> Result<bool, Corrupt> {
    match bytes.first() {
        Some(&SITE_PAGES_ROWS) => {}
        Some(&SITE_PAGES_TOO_MANY) if bytes.len() == 1 => return Ok(false),
        _ => return Err(Corrupt("all-pages value: format")),
    }
    let mut at = 1;
    while at < bytes.len() {
        let path = slice(bytes, &mut at)?;
        f(path, slice(bytes, &mut at)?)?;
    }
    Ok(true)
}

/// How far down a document a viewport bottom at `bottom_px` is, in whole percent (0–100).
pub fn reach_pct(bottom_px: f64, document_px: f64) -> u8 {
    if document_px <= 0.0 {
        return 100;
    }
    ((bottom_px / document_px) * 100.0).floor().clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64) -> PageRollup {
        let mut r = PageRollup { pageviews: seed, clicks: 3 * seed, fold_sum_px: 900.5, ..Default::default() };
        r.deepen(None, (seed * 13 % 100) as u8);
        for v in [12.0, 150.0, 2000.0 + seed as f64, 1e9] {
            r.load.record(v);
        }
        r.rage_clicks = seed / 2;
        r.quick_backs = 1;
        r
    }

    #[test]
    fn stored_values_round_trip_and_sum_like_merge() {
        let (a, b) = (sample(3), sample(40));
        assert_eq!(PageRollup::from_stored(&a.to_stored()).unwrap(), a);
        let legacy = rmp_serde::to_vec_named(&b).unwrap();
        assert_eq!(PageRollup::from_stored(&legacy).unwrap(), b, "older MessagePack values still read");
        let mut merged = a.clone();
        merged.merge(&b);
        let mut sums = PageSums::default();
        sums.add_stored(&a.to_stored()).unwrap();
        sums.add_stored(&legacy).unwrap();
        assert_eq!(
            (sums.load_quantile(0.5), sums.load_quantile(0.95)),
            (merged.load.quantile(0.5), merged.load.quantile(0.95))
        );
        assert_eq!(PageRollup::from_stored(&sums.to_stored()).unwrap(), merged);
        assert_eq!(sums.into_rollup(), merged);
        assert!(PageRollup::from_stored(&a.to_stored()[..20]).is_err());
        assert!(PageRollup::from_stored(&[PAGE_FORMAT]).is_err());
    }

    #[test]
    fn busy_load_histograms_store_dense_and_add_with_sparse_ones() {
        let mut busy = PageRollup { pageviews: 5000, ..Default::default() };
        busy.deepen(None, 40);
        for i in 0..5000u64 {
            busy.load.record(150.0 + (i * 7919 % 2000) as f64);
        }
        let stored = busy.to_stored();
        assert_eq!(stored[0], PAGE_DENSE_FORMAT);
        assert_eq!(PageRollup::from_stored(&stored).unwrap(), busy);
        let sparse = sample(2);
        assert_eq!(sparse.to_stored()[0], PAGE_FORMAT);
        let mut merged = busy.clone();
        merged.merge(&sparse);
        let mut sums = PageSums::default();
        sums.add_stored(&sparse.to_stored()).unwrap();
        sums.add_stored(&stored).unwrap();
        assert_eq!(sums.load_quantile(0.95), merged.load.quantile(0.95));
        assert_eq!(sums.to_stored(), merged.to_stored());
        assert_eq!(sums.into_rollup(), merged);
        assert!(PageRollup::from_stored(&stored[..stored.len() - 1]).is_err());
    }

    fn delta(seed: u64, paths: u64) -> SitePagesDelta {
        SitePagesDelta((0..paths).map(|i| (format!("/p{}", (i * 7 + seed) % 400), sample(seed + i))).collect())
    }

    fn decoded(bytes: &[u8]) -> Option<Vec<(String, PageRollup)>> {
        let mut all = SitePages::default();
        all.add_stored(bytes).unwrap();
        all.rollups()
    }

    #[test]
    fn all_pages_values_round_trip_and_merge_associatively() {
        let (a, b, c) = (delta(1, 5), delta(2, 9), delta(3, 2));
        let mut one = SitePages::default();
        one.add_delta(&a);
        let mut read = SitePages::default();
        read.add_stored(&one.to_stored()).unwrap();
        assert_eq!(read.to_stored(), one.to_stored());
        let expected: Vec<_> = a.0.clone().into_iter().collect();
        assert_eq!(decoded(&one.to_stored()).unwrap(), expected);
        // ((a + b) stored) + c == a + (b + c) == the per-path merge.
        let mut left = SitePages::default();
        left.add_delta(&a);
        left.add_delta(&b);
        let mut left2 = SitePages::default();
        left2.add_stored(&left.to_stored()).unwrap();
        left2.add_delta(&c);
        let mut bc = b.clone();
        bc.merge(&c);
        let mut right = SitePages::default();
        right.add_delta(&a);
        right.add_delta(&bc);
        assert_eq!(left2.to_stored(), right.to_stored());
        let mut merged = a.clone();
        merged.merge(&bc);
        assert_eq!(decoded(&right.to_stored()).unwrap(), merged.0.into_iter().collect::<Vec<_>>());
        assert_eq!(decoded(&SitePages::default().to_stored()).unwrap(), []);
    }

    #[test]
    fn too_many_paths_store_a_marker_that_stays() {
        let mut all = SitePages::default();
        all.add_delta(&delta(0, MAX_SITE_PATHS as u64));
        assert!(all.fits());
        let full = all.to_stored();
        all.add_delta(&SitePagesDelta([("/one-more".to_owned(), sample(1))].into()));
        assert!(!all.fits());
        assert_eq!(all.to_stored(), [SITE_PAGES_TOO_MANY]);
        assert_eq!(decoded(&all.to_stored()), None);
        let mut again = SitePages::default();
        again.add_stored(&all.to_stored()).unwrap();
        again.add_delta(&delta(5, 1));
        assert_eq!(again.to_stored(), [SITE_PAGES_TOO_MANY], "once too many, always too many");
        let mut reread = SitePages::default();
        reread.add_stored(&full).unwrap();
        assert!(reread.fits());
    }

    #[test]
    fn corrupt_all_pages_values_are_an_error_not_a_panic() {
        let mut all = SitePages::default();
        all.add_delta(&delta(4, 3));
        let good = all.to_stored();
        for end in 1..good.len() {
            // Cut between two paths, a value is a shorter valid one; inside a path, an error.
            let _ = SitePages::default().add_stored(&good[..end]);
        }
        for end in good.len() - 10..good.len() {
            assert!(SitePages::default().add_stored(&good[..end]).is_err(), "truncated at {end}");
        }
        for bad in
            [&[][..], &[0x03], &[0x04], &[SITE_PAGES_TOO_MANY, 0], &[SITE_PAGES_ROWS, 0xff, 0xff, 0xff, 0xff, 0x7f]]
        {
            assert!(SitePages::default().add_stored(bad).is_err(), "{bad:?}");
        }
        assert!(SitePages::default().add_stored(&[SITE_PAGES_ROWS, 1, 0xff, 1, 0]).is_err(), "path not UTF-8");
    }

    #[test]
    fn row_and_column_layouts_hold_the_same_figures() {
        let mut all = SitePages::default();
        all.add_delta(&delta(7, 12));
        all.add_delta(&SitePagesDelta([("/empty".to_owned(), PageRollup::default())].into()));
        let mut busy = sample(9);
        for i in 0..3000u64 {
            busy.load.record(150.0 + (i * 7919 % 2000) as f64);
        }
        busy.pageviews = 70_000; // a 4-byte column
        busy.clicks = 1 << 40; // an 8-byte column
        all.add_delta(&SitePagesDelta([("/busy".to_owned(), busy)].into()));
        let columns = all.to_stored();
        assert_eq!(columns[0], SITE_PAGES_COLUMNS);
        for layout in [Layout::Chosen, Layout::Tokens, Layout::Dense] {
            let rows = all.to_stored_rows(layout);
            assert_eq!(rows[0], SITE_PAGES_ROWS);
            assert!(is_site_pages_rows(&rows) && !is_site_pages_rows(&columns));
            assert_eq!(decoded(&rows), all.rollups(), "{layout:?}");
            assert_eq!(decoded(&all.to_stored_in(layout)), all.rollups(), "{layout:?}");
            let mut from_rows = SitePages::default();
            from_rows.add_stored(&rows).unwrap();
            assert_eq!(from_rows.to_stored(), columns, "rows rewritten as columns: {layout:?}");
        }
        assert_eq!(decoded(&columns).unwrap().len(), 14);
    }

    /// A query's sums over values of both layouts and of different path sets answer as the
    /// per-path values summed.
    #[test]
    fn all_pages_sums_add_like_the_per_path_values() {
        use crate::query::insights::Pages;
        let deltas = [delta(1, 5), delta(2, 9), delta(1, 5), delta(3, 2), delta(2, 9), delta(8, 30)];
        let mut sums = AllPagesSums::default();
        let mut by_path: Vec<(String, PageRollup)> = Vec::new();
        for (i, d) in deltas.iter().enumerate() {
            let mut all = SitePages::default();
            all.add_delta(d);
            let stored = match i % 3 {
                0 => all.to_stored(),
                1 => all.to_stored_rows(Layout::Chosen),
                _ => all.to_stored_in(Layout::Tokens),
            };
            assert!(sums.add_stored(&stored).unwrap());
            by_path.extend(d.0.clone());
        }
        let one = sample(77);
        sums.add_path_value(b"/by-path", &one.to_stored()).unwrap();
        by_path.push(("/by-path".to_owned(), one));
        let (paths, sums) = sums.finish();
        let all: Vec<(String, PageSums)> =
            paths.into_iter().map(|p| String::from_utf8(p.into()).unwrap()).zip(sums).collect();
        let expected = Pages::from_rollups(by_path, 0, 1000);
        assert_eq!(Pages::from_sums(all, 0, 1000), expected);
        assert!(expected.total > 30);
        let mut marker = AllPagesSums::default();
        assert!(!marker.add_stored(&[SITE_PAGES_TOO_MANY]).unwrap());
        assert_eq!(marker.finish().0.len(), 0);
    }

    #[test]
    fn corrupt_column_values_are_an_error_not_a_panic() {
        let mut all = SitePages::default();
        all.add_delta(&delta(4, 6));
        let good = all.to_stored_in(Layout::Dense);
        for end in 1..good.len() {
            assert!(SitePages::default().add_stored(&good[..end]).is_err(), "truncated at {end}");
            let _ = AllPagesSums::default().add_stored(&good[..end]);
        }
        for at in 1..good.len() {
            for bit in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= bit;
                let _ = SitePages::default().add_stored(&bad);
                let _ = AllPagesSums::default().add_stored(&bad);
            }
        }
        let mut twice = AllPagesSums::default();
        twice.add_stored(&good).unwrap();
        twice.add_stored(&good).unwrap();
    }

    #[test]
    fn reach_counts_each_step_once_across_deepenings() {
        let mut p = PageRollup::default();
        p.deepen(None, 30); // first sight: 0..=30 → steps 0,5,…,30
        p.deepen(Some(30), 52); // 35..=50
        p.deepen(Some(52), 52);
        assert_eq!(p.reach[..12], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(p.depth_sum_pct, 52);
        p.deepen(None, 100);
        assert_eq!(p.reach[20], 1);
        assert_eq!(p.reach[0], 2);
        assert_eq!(reach_pct(1500.0, 3000.0), 50);
        assert_eq!(reach_pct(5000.0, 3000.0), 100);
    }
}
