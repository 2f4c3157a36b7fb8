//! Answers built from page, heatmap and element rollups: per-page figures, heatmaps and scroll
//! reach. Backends fetch rollups; these builders turn them into the API's shapes identically.

use std::collections::HashMap;

use serde::Serialize;

use super::round1;
use crate::rollup::heat::{
    ElementClicks, ElementSum, ElementSums, HeatCells, HeatKind, WidthClass, BAND_ROWS, COLUMNS, ELEMENT_GRID, ROW_PX,
};
use crate::rollup::page::{PageRollup, PageSums, REACH_STEP_PCT};

/// `GET /api/sites/{site}/pages`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Pages {
    pub pages: Vec<PageStats>,
    /// Distinct paths in the range.
    pub total: usize,
    /// `offset` of the next page of results, if any.
    pub next: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PageStats {
    pub path: String,
    pub pageviews: u64,
    pub avg_load_ms: Option<f64>,
    pub p50_load_ms: Option<f64>,
    pub p95_load_ms: Option<f64>,
    /// Mean over pageviews of the deepest point reached, in % of the document.
    pub avg_scroll_pct: Option<f64>,
    pub clicks: u64,
    pub rage_clicks: u64,
    pub dead_clicks: u64,
    /// Clicks followed within 1 s by an error on the same page.
    pub error_clicks: u64,
    /// Views of this page left within 5 s by returning to the previous path.
    pub quick_backs: u64,
}

impl Pages {
    /// Sums rollups per path, sorts by pageviews (then path) and cuts `limit` from `offset`.
    pub fn from_rollups(rollups: impl IntoIterator<Item = (String, PageRollup)>, offset: usize, limit: usize) -> Self {
        let mut by_path: HashMap<String, PageSums> = HashMap::new();
        for (path, r) in rollups {
            by_path.entry(path).or_default().add(&r);
        }
        Self::from_sums(by_path.into_iter().collect(), offset, limit)
    }

    /// Like [`Self::from_rollups`] from each path's sum (one entry per path).
    pub fn from_sums(all: Vec<(String, PageSums)>, offset: usize, limit: usize) -> Self {
        let (paths, sums): (Vec<String>, Vec<PageSums>) = all.into_iter().unzip();
        Self::from_paths_and_sums(paths, &sums, offset, limit)
    }

    /// Like [`Self::from_sums`] from the paths and their sums side by side (`sums[i]` is
    /// `paths[i]`'s). Sorts indices, not the sums (a few hundred bytes each to move).
    pub fn from_paths_and_sums(mut paths: Vec<String>, sums: &[PageSums], offset: usize, limit: usize) -> Self {
        assert_eq!(paths.len(), sums.len(), "a sum per path");
        let mut order: Vec<usize> = (0..paths.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            sums[b].pageviews().cmp(&sums[a].pageviews()).then_with(|| paths[a].cmp(&paths[b]))
        });
        let total = paths.len();
        let pages = order
            .iter()
            .skip(offset)
            .take(limit)
            .map(|&i| PageStats::new(std::mem::take(&mut paths[i]), &sums[i]))
            .collect();
        let next = (offset + limit < total).then_some(offset + limit);
        Pages { pages, total, next }
    }
}

impl PageStats {
    fn new(path: String, sums: &PageSums) -> Self {
        let r = sums.figures();
        PageStats {
            avg_load_ms: sums.load_mean().map(round1),
            p50_load_ms: sums.load_quantile(0.5).map(round1),
            p95_load_ms: sums.load_quantile(0.95).map(round1),
            avg_scroll_pct: (r.pageviews > 0).then(|| round1(r.depth_sum_pct as f64 / r.pageviews as f64)),
            path,
            pageviews: r.pageviews,
            clicks: r.clicks,
            rage_clicks: r.rage_clicks,
            dead_clicks: r.dead_clicks,
            error_clicks: r.error_clicks,
            quick_backs: r.quick_backs,
        }
    }
}

/// `GET /api/sites/{site}/scroll`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScrollReach {
    pub path: String,
    pub pageviews: u64,
    /// Share of pageviews whose deepest point (max scrollY + viewport height, over document
    /// height) reached each 5 % step.
    pub reach: Vec<ReachStep>,
    pub avg_depth_pct: Option<f64>,
    /// The average fold: viewport height in px, and as % of the document height.
    pub fold_px: Option<f64>,
    pub fold_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReachStep {
    pub pct: u8,
    pub share: f64,
}

impl ScrollReach {
    pub fn from_rollups(path: &str, rollups: impl IntoIterator<Item = PageRollup>) -> Self {
        let mut sums = PageSums::default();
        for x in rollups {
            sums.add(&x);
        }
        Self::from_sums(path, &sums)
    }

    /// Like [`Self::from_rollups`] from their sum.
    pub fn from_sums(path: &str, sums: &PageSums) -> Self {
        let r = sums.figures();
        let n = r.pageviews;
        let reach = (0..crate::rollup::page::REACH_STEPS)
            .map(|k| ReachStep {
                pct: k as u8 * REACH_STEP_PCT,
                share: if n == 0 {
                    0.0
                } else {
                    (r.reach.get(k).copied().unwrap_or(0) as f64 / n as f64 * 1000.0).round() / 1000.0
                },
            })
            .collect();
        let per_view = |sum: f64| (n > 0).then(|| round1(sum / n as f64));
        ScrollReach {
            path: path.to_owned(),
            pageviews: n,
            reach,
            avg_depth_pct: per_view(r.depth_sum_pct as f64),
            fold_px: per_view(r.fold_sum_px),
            fold_pct: per_view(r.fold_sum_pct),
        }
    }
}

/// `GET /api/sites/{site}/heatmap`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Heatmap {
    pub path: String,
    pub kind: &'static str,
    /// `mobile`, `tablet`, `desktop`, or `all`.
    pub width: &'static str,
    pub geometry: Geometry,
    /// Sorted by `n`, hottest first.
    pub cells: Vec<HeatCell>,
    /// Clicks per element (kind=click only), most clicked first.
    pub elements: Vec<ElementHeat>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Geometry {
    /// Cell `x` is a column: the document width is split into `columns` equal columns.
    pub columns: u16,
    /// Cell `y` is a row of `row_px` CSS px from the top of the document.
    pub row_px: f64,
    /// Element offsets `[ex, ey]` are bins of a `element_grid`² grid over the element's box.
    pub element_grid: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HeatCell {
    pub x: u16,
    pub y: u16,
    pub n: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ElementHeat {
    pub sel: String,
    pub n: u64,
    /// `[ex_bin, ey_bin, n]`.
    pub points: Vec<[u64; 3]>,
}

/// Largest dense grid (cells) [`sum_cells`] allocates; taller documents are summed sparsely.
const MAX_DENSE_CELLS: usize = 1 << 20;

/// Sums many days' and bands' cells. A heatmap query merges one value per day, width and band
/// (hundreds of thousands of cells over a month of a busy page), so the sums go into a dense
/// row-major grid rather than a tree: one add per cell instead of a tree search and insert.
fn sum_cells(values: impl IntoIterator<Item = HeatCells>) -> Vec<HeatCell> {
    let values: Vec<HeatCells> = values.into_iter().collect();
    // Keys are (x, y): the lowest row is the largest y over all keys, not the last key.
    let rows = values.iter().flat_map(|v| v.cells.keys().map(|(_, y)| *y as usize + 1)).max();
    let columns = COLUMNS as usize;
    match rows {
        None => Vec::new(),
        Some(rows) if rows * columns <= MAX_DENSE_CELLS => {
            let mut grid = vec![0u64; rows * columns];
            for v in &values {
                for (&(x, y), &n) in &v.cells {
                    if let Some(slot) =
                        grid.get_mut(y as usize * columns + x as usize).filter(|_| (x as usize) < columns)
                    {
                        *slot += n;
                    }
                }
            }
            grid.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, &n)| HeatCell { x: (i % columns) as u16, y: (i / columns) as u16, n })
                .collect()
        }
        Some(_) => {
            let mut all = HeatCells::default();
            for v in &values {
                all.merge(v);
            }
            all.cells.into_iter().map(|((x, y), n)| HeatCell { x, y, n }).collect()
        }
    }
}

/// Sorts cells hottest first, then top to bottom, left to right. Cells are distinct, so an
/// unstable sort gives the one order a stable sort would. When every count fits in 32 bits
/// (always, in practice) each cell is sorted as one packed `u64` — several times faster than
/// comparing tuples, and a busy page's answer has thousands of cells.
fn sort_hottest_first(cells: &mut [HeatCell]) {
    let max = u64::from(u32::MAX);
    if cells.iter().any(|c| c.n > max) {
        cells.sort_unstable_by_key(|c| (std::cmp::Reverse(c.n), c.y, c.x));
        return;
    }
    if cells.is_sorted_by_key(|c| (c.y, c.x)) {
        let mut keys: Vec<u64> = cells.iter().map(|c| c.n << 32 | u64::from(c.y) << 16 | u64::from(c.x)).collect();
        let most = cells.iter().map(|c| c.n).max().unwrap_or(0);
        let least = cells.iter().map(|c| c.n).min().unwrap_or(0);
        radix_sort_by_count(&mut keys, most, least);
        for (cell, k) in cells.iter_mut().zip(keys) {
            *cell = cell_of_key(k);
        }
        return;
    }
    let mut keys: Vec<u64> = cells.iter().map(|c| (max - c.n) << 32 | u64::from(c.y) << 16 | u64::from(c.x)).collect();
    keys.sort_unstable();
    for (cell, k) in cells.iter_mut().zip(keys) {
        *cell = HeatCell { x: k as u16, y: (k >> 16) as u16, n: max - (k >> 32) };
    }
}

/// A cell packed as a radix key: its count in the high 32 bits, its row and column below.
fn cell_of_key(k: u64) -> HeatCell {
    HeatCell { x: k as u16, y: (k >> 16) as u16, n: k >> 32 }
}

/// The cells of a heatmap's bands, hottest first, then top to bottom, left to right — what
/// collecting every filled cell and [`sort_hottest_first`] give, in one pass over the bands
/// that packs each filled cell straight into its sort key and notes the counts' spread.
/// `bands` yields each band's number and its [`BAND_CELLS`](crate::rollup::heat::BAND_CELLS) counts (row-major), in
/// ascending band order; cells past the last row a `u16` can name are left out.
pub fn hottest_first_of_bands<'a, I>(bands: I) -> Vec<HeatCell>
where
    I: IntoIterator<Item = (u16, &'a [u64])> + Clone,
{
    let columns = usize::from(COLUMNS);
    let mut keys: Vec<u64> = Vec::new();
    // The largest count, and the smallest filled one less one (an empty slot wraps to the top).
    let (mut most, mut least_less_one) = (0u64, u64::MAX);
    for (band, counts) in bands.clone() {
        let first_row = u32::from(band) * u32::from(BAND_ROWS);
        for (r, row) in counts.chunks(columns).enumerate() {
            if row.iter().fold(0, |any, n| any | n) == 0 {
                continue; // a click heatmap's rows are mostly empty: one vectorised look each
            }
            let Ok(y) = u16::try_from(first_row + r as u32) else { break };
            // Written unconditionally, kept when filled: no branch on each slot.
            let mut filled = [0u64; COLUMNS as usize];
            let mut len = 0;
            for (x, &n) in row.iter().enumerate() {
                filled[len] = n << 32 | u64::from(y) << 16 | x as u64;
                len += usize::from(n != 0);
                most = most.max(n);
                least_less_one = least_less_one.min(n.wrapping_sub(1));
            }
            keys.extend_from_slice(&filled[..len]);
        }
    }
    if most > u64::from(u32::MAX) {
        // A count too large to pack (never seen in practice): collect and sort the cells.
        let mut cells: Vec<HeatCell> = bands
            .into_iter()
            .flat_map(|(band, counts)| {
                counts.iter().enumerate().filter(|(_, n)| **n > 0).filter_map(move |(slot, &n)| {
                    crate::rollup::heat::cell_of_slot(band, slot).map(|(x, y)| HeatCell { x, y, n })
                })
            })
            .collect();
        sort_hottest_first(&mut cells);
        return cells;
    }
    radix_sort_by_count(&mut keys, most, least_less_one.wrapping_add(1));
    keys.into_iter().map(cell_of_key).collect()
}

/// Whether cells whose counts spread over `spread` values are sorted by one counting pass (a
/// table of one running position per count, then one pass over the keys) rather than two or
/// more 8-bit passes: when the table is not much larger than the keys (a busy page's move
/// heatmap: a few thousand cells whose counts span a few thousand).
fn counting_sort_pays(spread: u64, keys: usize) -> bool {
    spread <= 2 * keys as u64 + 1024 && keys < u32::MAX as usize
}

/// Sorts `keys` (a count in the high 32 bits, a position in the low ones, the positions
/// already ascending) by count, largest first, keeping the positions' order among equal
/// counts: a counting sort when that pays ([`counting_sort_pays`]), else a
/// stable least-significant-digit radix sort, 8 bits a pass, on how far each count
/// is below `most` (the largest; `least` is the smallest), so only the bits of the counts'
/// spread are sorted on. Thousands of cells whose counts span a few thousand sort in two
/// passes over them. Each pass counts and places the first and the second half of the keys
/// side by side, the second half's keys of a digit after the first half's (so the pass stays
/// stable): most cells share a digit (small counts), and one running position per digit
/// would make each key wait for the previous one's.
fn radix_sort_by_count(keys: &mut Vec<u64>, most: u64, least: u64) {
    let spread = most - least.min(most);
    let mut spare = vec![0u64; keys.len()];
    if counting_sort_pays(spread, keys.len()) {
        // One counting pass: a running position per count (distinct counts rarely follow
        // each other, so the increments seldom wait on one another), then one placing pass.
        let mut at = vec![0u32; spread as usize + 1];
        for k in keys.iter() {
            at[(most - (k >> 32)) as usize] += 1;
        }
        let mut next = 0;
        for a in &mut at {
            (*a, next) = (next, next + *a);
        }
        for k in keys.iter() {
            let slot = &mut at[(most - (k >> 32)) as usize];
            spare[*slot as usize] = *k;
            *slot += 1;
        }
        std::mem::swap(keys, &mut spare);
        return;
    }
    let bits = 64 - spread.leading_zeros();
    let half = keys.len() / 2;
    for shift in (0..bits).step_by(8) {
        let digit = |k: u64| (((most - (k >> 32)) >> shift) & 0xff) as usize;
        let (first, second) = keys.split_at(half);
        let (mut in_first, mut in_second) = ([0usize; 256], [0usize; 256]);
        for (a, b) in first.iter().zip(second) {
            in_first[digit(*a)] += 1;
            in_second[digit(*b)] += 1;
        }
        let odd = second.get(half).copied();
        if let Some(last) = odd {
            in_second[digit(last)] += 1;
        }
        let (mut at_first, mut at_second) = ([0usize; 256], [0usize; 256]);
        let mut next = 0;
        for (d, (f, s)) in in_first.iter().zip(&in_second).enumerate() {
            (at_first[d], at_second[d]) = (next, next + f);
            next += f + s;
        }
        for (a, b) in first.iter().zip(second) {
            let (da, db) = (digit(*a), digit(*b));
            spare[at_first[da]] = *a;
            at_first[da] += 1;
            spare[at_second[db]] = *b;
            at_second[db] += 1;
        }
        if let Some(last) = odd {
            spare[at_second[digit(last)]] = last;
        }
        std::mem::swap(keys, &mut spare);
    }
}

/// Most elements listed in one heatmap answer.
pub const MAX_ELEMENTS_SHOWN: usize = 100;

impl Heatmap {
    pub fn from_rollups(
        path: &str,
        kind: HeatKind,
        width: Option<WidthClass>,
        cells: impl IntoIterator<Item = HeatCells>,
        elements: impl IntoIterator<Item = ElementClicks>,
    ) -> Self {
        let mut sums = ElementSums::default();
        for e in elements {
            sums.add(&e);
        }
        Self::from_cells(path, kind, width, sum_cells(cells), sums)
    }

    /// Like [`Self::from_rollups`] from cells already summed (each cell once) and the sum of
    /// the element clicks.
    pub fn from_cells(
        path: &str,
        kind: HeatKind,
        width: Option<WidthClass>,
        mut cells: Vec<HeatCell>,
        elements: ElementSums,
    ) -> Self {
        sort_hottest_first(&mut cells);
        Self::from_hottest_first(path, kind, width, cells, elements)
    }

    /// Like [`Self::from_cells`] from cells already in the answer's order (hottest first, then
    /// top to bottom, left to right: [`hottest_first_of_bands`]).
    pub fn from_hottest_first(
        path: &str,
        kind: HeatKind,
        width: Option<WidthClass>,
        cells: Vec<HeatCell>,
        elements: ElementSums,
    ) -> Self {
        let mut most: Vec<(Box<str>, ElementSum)> = elements.into_sums().collect();
        most.sort_unstable_by(|a, b| b.1.n.cmp(&a.1.n).then_with(|| a.0.cmp(&b.0)));
        most.truncate(MAX_ELEMENTS_SHOWN);
        let elements = most
            .into_iter()
            .map(|(sel, sum)| ElementHeat {
                n: sum.n,
                points: sum.points().map(|(x, y, n)| [u64::from(x), u64::from(y), n]).collect(),
                sel: sel.into(),
            })
            .collect();
        Heatmap {
            path: path.to_owned(),
            kind: kind.as_str(),
            width: width.map_or("all", WidthClass::as_str),
            geometry: Geometry { columns: COLUMNS, row_px: ROW_PX, element_grid: ELEMENT_GRID },
            cells,
            elements,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_cells_sum_across_values_dense_or_sparse() {
        let mut a = HeatCells::default();
        a.add((1, 2), 3);
        a.add((49, 0), 1);
        let mut b = HeatCells::default();
        b.add((1, 2), 4);
        let mut sums = sum_cells([a.clone(), b.clone()]);
        sums.sort_by_key(|c| (c.y, c.x));
        assert_eq!(sums, [HeatCell { x: 49, y: 0, n: 1 }, HeatCell { x: 1, y: 2, n: 7 }]);
        // A document too tall for a dense grid is summed sparsely, with the same result.
        let mut tall = HeatCells::default();
        tall.add((0, u16::MAX), 2);
        let mut sums = sum_cells([a, b, tall]);
        sums.sort_by_key(|c| (c.y, c.x));
        assert_eq!(sums.len(), 3);
        assert_eq!(sums[1], HeatCell { x: 1, y: 2, n: 7 });
        assert_eq!(sums[2], HeatCell { x: 0, y: u16::MAX, n: 2 });
        assert!(sum_cells(Vec::new()).is_empty());
    }

    #[test]
    fn cells_sort_hottest_first_then_by_position_whatever_the_counts() {
        let mut rng = crate::test_rng::XorShift(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64();
        for (big, len) in [(false, 3000), (true, 3000), (false, 2999), (false, 2)] {
            let mut cells: Vec<HeatCell> =
                (0..len).map(|i| HeatCell { x: (i % 50) as u16, y: (i / 50) as u16, n: next() % 40 }).collect();
            if big {
                cells[7].n = u64::from(u32::MAX) + 5;
            } else if len > 9 {
                cells[9].n = 70_000; // a spread over three radix passes
            }
            let mut expected = cells.clone();
            expected.sort_by_key(|c| (std::cmp::Reverse(c.n), c.y, c.x));
            let mut in_place = cells.clone(); // read top to bottom, left to right: the radix sort
            sort_hottest_first(&mut in_place);
            assert_eq!(in_place, expected);
            cells.reverse(); // out of order: the comparison sort
            sort_hottest_first(&mut cells);
            assert_eq!(cells, expected);
        }
    }

    #[test]
    fn cells_of_bands_come_hottest_first_as_collecting_and_sorting_gives() {
        use crate::rollup::heat::{cell_of_slot, BAND_CELLS};
        let mut rng = crate::test_rng::XorShift(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next_u64();
        let last_band = u16::MAX / BAND_ROWS;
        let shapes: [(&[u16], u64, u32); 8] = [
            (&[0, 2, 7], 30, 300),     // mostly empty rows, as a click heatmap's
            (&[0, 1, 2], 40, 3),       // sparse, small counts: the counting sort
            (&[0, 1, 5, 9], 5000, 1),  // dense, a spread the counting sort takes
            (&[3], 70_000, 2),         // a wider spread: three radix passes
            (&[0, 2], 1 << 31, 1),     // counts near the top of 32 bits
            (&[1, 4], 7, 0),           // every slot filled, equal-ish counts
            (&[0, last_band], 100, 2), // the last band: rows past u16::MAX are left out
            (&[], 1, 1),               // no bands
        ];
        for (bands, spread, empty_one_in) in shapes {
            let mut counts: Vec<(u16, Vec<u64>)> = bands
                .iter()
                .map(|b| {
                    let cells = (0..BAND_CELLS)
                        .map(|_| {
                            if empty_one_in > 0 && next() % u64::from(empty_one_in + 1) != 0 {
                                0
                            } else {
                                1 + next() % spread
                            }
                        })
                        .collect();
                    (*b, cells)
                })
                .collect();
            let check = |counts: &[(u16, Vec<u64>)]| {
                let mut expected: Vec<HeatCell> = counts
                    .iter()
                    .flat_map(|(band, c)| {
                        c.iter()
                            .enumerate()
                            .filter(|(_, n)| **n > 0)
                            .filter_map(move |(slot, &n)| cell_of_slot(*band, slot).map(|(x, y)| HeatCell { x, y, n }))
                    })
                    .collect();
                sort_hottest_first(&mut expected);
                let mut by_hand = expected.clone();
                by_hand.sort_by_key(|c| (std::cmp::Reverse(c.n), c.y, c.x));
                assert_eq!(expected, by_hand);
                let got = hottest_first_of_bands(counts.iter().map(|(b, c)| (*b, c.as_slice())));
                assert_eq!(got, expected, "bands {bands:?}, spread {spread}");
            };
            check(&counts);
            if let Some((_, first)) = counts.first_mut() {
                first[17] = u64::from(u32::MAX) + 3; // too large to pack: the fallback
                check(&counts);
            }
        }
    }

    #[test]
    fn cells_below_the_rightmost_cell_are_kept() {
        // Regression: the grid height was taken from the last key, (49, 0), dropping (1, 30).
        let mut v = HeatCells::default();
        v.add((49, 0), 1);
        v.add((1, 30), 5);
        let mut sums = sum_cells([v]);
        sums.sort_by_key(|c| (c.y, c.x));
        assert_eq!(sums, [HeatCell { x: 49, y: 0, n: 1 }, HeatCell { x: 1, y: 30, n: 5 }]);
    }
}
