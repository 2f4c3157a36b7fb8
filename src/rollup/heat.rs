//! Heatmap geometry and cells: clicks and moves counted on a grid in document coordinates, and
//! clicks anchored to the element that was clicked.
//!
//! The grid's x axis is normalised to the document width ([`COLUMNS`] columns), so layouts of
//! different widths line up; y is in CSS px ([`ROW_PX`] per row), because content keeps its
//! vertical position far better than its horizontal one. Rows are stored in bands of
//! [`BAND_ROWS`] so a long page's cells are split over several small values, each stored as a
//! fixed-shape array of [`BAND_CELLS`] counts ([`encode_band`], [`add_stored_band`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::codec::{self, Corrupt};

pub const COLUMNS: u16 = 50;
pub const ROW_PX: f64 = 20.0;
pub const BAND_ROWS: u16 = 50;
/// Cells in one band: [`BAND_ROWS`] rows of [`COLUMNS`] columns, row-major.
pub const BAND_CELLS: usize = BAND_ROWS as usize * COLUMNS as usize;
/// First byte of a stored band in the [`codec`] format (older stores hold MessagePack).
const BAND_FORMAT: u8 = 0x01;
/// First byte of a band stored as a [`codec::add_dense`] block (see [`codec::put_counts_chosen`]).
const BAND_DENSE_FORMAT: u8 = 0x02;
/// Element-anchored click offsets (0–1000) are binned into a grid this many cells wide.
pub const ELEMENT_GRID: u16 = 10;
/// Most selectors kept per page and day; the rarest are dropped first.
pub const MAX_ELEMENTS: usize = 500;

/// Which heatmap: clicks, pointer moves, or only the dead clicks (also the API's `kind`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum HeatKind {
    #[default]
    Click,
    Move,
    /// Only the clicks the snippet reported as dead (same cells as `Click`, a subset).
    Dead,
}

impl HeatKind {
    pub fn tag(self) -> u8 {
        match self {
            HeatKind::Click => b'c',
            HeatKind::Move => b'm',
            HeatKind::Dead => b'd',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HeatKind::Click => "click",
            HeatKind::Move => "move",
            HeatKind::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "click" => Some(HeatKind::Click),
            "move" => Some(HeatKind::Move),
            "dead" => Some(HeatKind::Dead),
            _ => None,
        }
    }
}

/// The narrowest viewports (CSS px) of the tablet and desktop classes. The dashboard's
/// `WIDTH_CLASS_MIN` (dashboard/src/heatmap.js) says the same; a test in `server::dashboard`
/// holds the two together.
pub const TABLET_MIN_PX: f64 = 768.0;
pub const DESKTOP_MIN_PX: f64 = 1024.0;

/// Viewport-width classes, so a mobile heatmap is not drawn over a desktop layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidthClass {
    Mobile,
    Tablet,
    Desktop,
}

impl WidthClass {
    pub const ALL: [WidthClass; 3] = [WidthClass::Mobile, WidthClass::Tablet, WidthClass::Desktop];

    pub fn of(viewport_width: f64) -> Self {
        if viewport_width < TABLET_MIN_PX {
            WidthClass::Mobile
        } else if viewport_width < DESKTOP_MIN_PX {
            WidthClass::Tablet
        } else {
            WidthClass::Desktop
        }
    }

    pub fn tag(self) -> u8 {
        match self {
            WidthClass::Mobile => b'm',
            WidthClass::Tablet => b't',
            WidthClass::Desktop => b'd',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WidthClass::Mobile => "mobile",
            WidthClass::Tablet => "tablet",
            WidthClass::Desktop => "desktop",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// The cell of a point, or `None` when it lies outside the document.
pub fn cell(x: f64, y: f64, document_width: f64) -> Option<(u16, u16)> {
    if document_width <= 0.0 || x < 0.0 || y < 0.0 || x > document_width {
        return None;
    }
    let col = ((x / document_width) * COLUMNS as f64).floor().min(COLUMNS as f64 - 1.0) as u16;
    let row = (y / ROW_PX).floor().min(u16::MAX as f64) as u16;
    Some((col, row))
}

/// Sparse counts per `(column, row)` cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeatCells {
    pub cells: BTreeMap<(u16, u16), u64>,
}

impl HeatCells {
    pub fn add(&mut self, cell: (u16, u16), n: u64) {
        *self.cells.entry(cell).or_default() += n;
    }

    pub fn merge(&mut self, other: &HeatCells) {
        for (c, n) in &other.cells {
            self.add(*c, *n);
        }
    }
}

/// The slot of a cell inside its band's array, or `None` for a column outside the grid.
pub fn band_slot((col, row): (u16, u16)) -> Option<usize> {
    (col < COLUMNS).then(|| (row % BAND_ROWS) as usize * COLUMNS as usize + col as usize)
}

/// The cell of `slot` of band `band` (`None` past the last row a `u16` can name).
pub fn cell_of_slot(band: u16, slot: usize) -> Option<(u16, u16)> {
    let row = u32::from(band) * u32::from(BAND_ROWS) + (slot / COLUMNS as usize) as u32;
    Some(((slot % COLUMNS as usize) as u16, u16::try_from(row).ok()?))
}

/// One band's counts ([`BAND_CELLS`] of them, see [`band_slot`]) as a stored value.
pub fn encode_band(counts: &[u64]) -> Vec<u8> {
    encode_band_in(counts, codec::Layout::Chosen)
}

/// Like [`encode_band`] in `layout` (tests write the older layout with it).
pub fn encode_band_in(counts: &[u64], layout: codec::Layout) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(BAND_FORMAT);
    if codec::put_counts_in(&mut out, counts, layout) {
        out[0] = BAND_DENSE_FORMAT;
    }
    out
}

/// Like [`add_stored_band`] into a query's [`codec::DenseSums`] (of [`BAND_CELLS`] slots): a
/// dense band's low bytes go into its 16-bit lanes.
pub fn add_stored_band_to(bytes: &[u8], acc: &mut codec::DenseSums) -> Result<(), Corrupt> {
    match bytes.first() {
        Some(&BAND_DENSE_FORMAT) => acc.add_dense(bytes, 1),
        _ => add_stored_band(bytes, acc.sums_mut()),
    }
}

/// Adds a stored band value to `acc` (a band's [`BAND_CELLS`] counts). Reads both layouts of
/// this format and the MessagePack `HeatCells` older versions wrote.
pub fn add_stored_band(bytes: &[u8], acc: &mut [u64]) -> Result<(), Corrupt> {
    match bytes.first() {
        Some(&BAND_FORMAT) => return codec::add_counts(bytes, 1, acc),
        Some(&BAND_DENSE_FORMAT) => return codec::add_dense(bytes, 1, acc),
        _ => {}
    }
    let legacy: HeatCells = rmp_serde::from_slice(bytes).map_err(|_| Corrupt("heat cells"))?;
    for (&cell, &n) in &legacy.cells {
        if let Some(slot) = band_slot(cell).and_then(|s| acc.get_mut(s)) {
            *slot += n;
        }
    }
    Ok(())
}

/// The stored band `existing` plus `delta` (cells of that one band), encoded anew.
pub fn merged_band(existing: Option<&[u8]>, delta: &HeatCells) -> Result<Vec<u8>, Corrupt> {
    let mut counts = vec![0u64; BAND_CELLS];
    if let Some(bytes) = existing {
        add_stored_band(bytes, &mut counts)?;
    }
    for (&cell, &n) in &delta.cells {
        if let Some(slot) = band_slot(cell) {
            counts[slot] += n;
        }
    }
    Ok(encode_band(&counts))
}

/// Clicks per selector, with where inside the element they landed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ElementClicks {
    pub by_selector: BTreeMap<String, ElementCell>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ElementCell {
    pub n: u64,
    /// Counts per `(ex, ey)` bin of [`ELEMENT_GRID`]² over the element's box.
    pub points: BTreeMap<(u16, u16), u64>,
}

impl ElementClicks {
    pub fn add(&mut self, selector: &str, offset: Option<(u16, u16)>) {
        // The selector is copied only when new (per click, the copy and its free were most of
        // this function's time).
        if !self.by_selector.contains_key(selector) {
            self.by_selector.insert(selector.to_owned(), ElementCell::default());
        }
        let e = self.by_selector.get_mut(selector).expect("inserted above");
        e.n += 1;
        if let Some((ex, ey)) = offset {
            let bin = |v: u16| (v.min(999) * ELEMENT_GRID / 1000).min(ELEMENT_GRID - 1);
            *e.points.entry((bin(ex), bin(ey))).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &ElementClicks) {
        for (sel, cell) in &other.by_selector {
            let e = self.by_selector.entry(sel.clone()).or_default();
            e.n += cell.n;
            for (p, n) in &cell.points {
                *e.points.entry(*p).or_default() += n;
            }
        }
        if self.by_selector.len() > MAX_ELEMENTS {
            let mut counts: Vec<u64> = self.by_selector.values().map(|e| e.n).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let keep_at_least = counts[MAX_ELEMENTS - 1];
            self.by_selector.retain(|_, e| e.n >= keep_at_least);
        }
    }
}

/// First byte of stored element clicks in the dense format (older stores hold MessagePack).
const ELEMENTS_FORMAT: u8 = 0x01;
/// Point bins per element: [`ELEMENT_GRID`]², slot `ex * ELEMENT_GRID + ey` (so slot order is
/// the `(ex, ey)` order the answer lists points in).
pub const ELEMENT_POINTS: usize = ELEMENT_GRID as usize * ELEMENT_GRID as usize;

impl ElementClicks {
    /// The stored value: the selector count, then per selector (in selector order) its length
    /// and bytes, its click count, and its point bins as a length-prefixed [`codec`] array.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.by_selector.len() * 48);
        out.push(ELEMENTS_FORMAT);
        codec::put_varint(&mut out, self.by_selector.len() as u64);
        let mut tokens = Vec::with_capacity(64);
        for (sel, cell) in &self.by_selector {
            codec::put_varint(&mut out, sel.len() as u64);
            out.extend_from_slice(sel.as_bytes());
            codec::put_varint(&mut out, cell.n);
            tokens.clear();
            let slots = cell.points.iter().filter_map(|(&bin, &n)| Some((point_slot(bin)?, n)));
            codec::put_sparse_counts(&mut tokens, slots);
            codec::put_varint(&mut out, tokens.len() as u64);
            out.extend_from_slice(&tokens);
        }
        out
    }

    /// Reads a stored value (this format, or the MessagePack older versions wrote).
    pub fn from_stored(bytes: &[u8]) -> Result<Self, Corrupt> {
        if bytes.first() != Some(&ELEMENTS_FORMAT) {
            return rmp_serde::from_slice(bytes).map_err(|_| Corrupt("element clicks"));
        }
        let mut out = ElementClicks::default();
        let mut points = [0u64; ELEMENT_POINTS];
        for_each_stored_element(bytes, |sel, n, tokens| {
            points.fill(0);
            codec::add_counts(tokens, 0, &mut points)?;
            let cell = ElementCell { n, points: point_map(&points) };
            out.by_selector.insert(sel.to_owned(), cell);
            Ok(())
        })?;
        Ok(out)
    }
}

/// The slot of an `(ex, ey)` bin, `None` outside the grid.
fn point_slot((x, y): (u16, u16)) -> Option<usize> {
    (x < ELEMENT_GRID && y < ELEMENT_GRID).then(|| usize::from(x) * ELEMENT_GRID as usize + usize::from(y))
}

/// The non-zero bins of dense `points`, keyed `(ex, ey)`.
fn point_map(points: &[u64; ELEMENT_POINTS]) -> BTreeMap<(u16, u16), u64> {
    let grid = ELEMENT_GRID as usize;
    let filled = points.iter().enumerate().filter(|(_, n)| **n > 0);
    filled.map(|(slot, &n)| (((slot / grid) as u16, (slot % grid) as u16), n)).collect()
}

/// Calls `f(selector, clicks, point tokens)` for each selector of a dense stored value.
fn for_each_stored_element(
    bytes: &[u8],
    mut f: impl FnMut(&str, u64, &[u8]) -> Result<(), Corrupt>,
) -> Result<(), Corrupt> {
    let mut at = 1;
    let count = codec::varint(bytes, &mut at)?;
    let slice = |at: &mut usize| -> Result<&[u8], Corrupt> {
        let len = codec::varint(bytes, at)?;
        let end = usize::try_from(len).ok().and_then(|len| at.checked_add(len)).filter(|end| *end <= bytes.len());
        let end = end.ok_or(Corrupt("element clicks: length beyond the value"))?;
        let s = &bytes[*at..end];
        *at = end;
        Ok(s)
    };
    for _ in 0..count {
        let sel = std::str::from_utf8(slice(&mut at)?).map_err(|_| Corrupt("element clicks: selector"))?;
        let n = codec::varint(bytes, &mut at)?;
        f(sel, n, slice(&mut at)?)?;
    }
    if at != bytes.len() {
        return Err(Corrupt("element clicks: bytes after the last selector"));
    }
    Ok(())
}

/// The sum of many element-click values, as a query adds them: one dense bin array per
/// selector, and stored values added straight in (no map per value or per point).
#[derive(Debug, Clone, Default)]
pub struct ElementSums {
    by_selector: HashMap<Box<str>, ElementSum>,
}

#[derive(Debug, Clone)]
pub struct ElementSum {
    pub n: u64,
    pub points: [u64; ELEMENT_POINTS],
}

impl ElementSums {
    /// Adds one value, then keeps the [`MAX_ELEMENTS`] most clicked selectors exactly as
    /// [`ElementClicks::merge`] does (so both give the same sums in the same order).
    pub fn add(&mut self, value: &ElementClicks) {
        for (sel, cell) in &value.by_selector {
            let sum = self.entry(sel);
            sum.n += cell.n;
            for (&bin, &n) in &cell.points {
                if let Some(slot) = point_slot(bin) {
                    sum.points[slot] += n;
                }
            }
        }
        self.keep_most_clicked();
    }

    /// Adds a stored value (either format) like [`Self::add`].
    pub fn add_stored(&mut self, bytes: &[u8]) -> Result<(), Corrupt> {
        if bytes.first() != Some(&ELEMENTS_FORMAT) {
            self.add(&ElementClicks::from_stored(bytes)?);
            return Ok(());
        }
        for_each_stored_element(bytes, |sel, n, tokens| {
            let sum = self.entry(sel);
            sum.n += n;
            codec::add_counts(tokens, 0, &mut sum.points)
        })?;
        self.keep_most_clicked();
        Ok(())
    }

    fn entry(&mut self, sel: &str) -> &mut ElementSum {
        if !self.by_selector.contains_key(sel) {
            self.by_selector.insert(sel.into(), ElementSum { n: 0, points: [0; ELEMENT_POINTS] });
        }
        self.by_selector.get_mut(sel).expect("inserted above")
    }

    fn keep_most_clicked(&mut self) {
        if self.by_selector.len() > MAX_ELEMENTS {
            let mut counts: Vec<u64> = self.by_selector.values().map(|e| e.n).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let keep_at_least = counts[MAX_ELEMENTS - 1];
            self.by_selector.retain(|_, e| e.n >= keep_at_least);
        }
    }

    /// The sums, one per selector (in no particular order); each sum's non-zero bins by
    /// [`ElementSum::points`].
    pub fn into_sums(self) -> impl Iterator<Item = (Box<str>, ElementSum)> {
        self.by_selector.into_iter()
    }
}

impl ElementSum {
    /// The non-zero bins as `(ex, ey, n)`, in `(ex, ey)` order.
    pub fn points(&self) -> impl Iterator<Item = (u16, u16, u64)> + '_ {
        let grid = ELEMENT_GRID as usize;
        let filled = self.points.iter().enumerate().filter(|(_, n)| **n > 0);
        filled.map(move |(slot, &n)| ((slot / grid) as u16, (slot % grid) as u16, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_normalise_x_and_keep_y_in_px() {
        assert_eq!(cell(0.0, 0.0, 1000.0), Some((0, 0)));
        assert_eq!(cell(500.0, 45.0, 1000.0), Some((25, 2)));
        assert_eq!(cell(1000.0, 0.0, 1000.0), Some((49, 0)));
        assert_eq!(cell(250.0, 0.0, 500.0), cell(500.0, 0.0, 1000.0), "responsive layouts line up");
        assert_eq!(cell(-1.0, 0.0, 1000.0), None);
        assert_eq!(WidthClass::of(375.0), WidthClass::Mobile);
        assert_eq!(WidthClass::of(1280.0), WidthClass::Desktop);
    }

    #[test]
    fn full_bands_store_dense_and_add_like_their_tokens() {
        let counts: Vec<u64> = (0..BAND_CELLS as u64).map(|i| if i < 60 { 0 } else { i % 200 + 1 }).collect();
        let stored = encode_band(&counts);
        assert_eq!(stored[0], BAND_DENSE_FORMAT);
        let mut tokens = vec![BAND_FORMAT];
        codec::put_counts(&mut tokens, counts.iter().copied());
        assert!(stored.len() < tokens.len());
        let (mut a, mut b) = (vec![1u64; BAND_CELLS], vec![1u64; BAND_CELLS]);
        add_stored_band(&stored, &mut a).unwrap();
        add_stored_band(&tokens, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(merged_band(Some(&tokens), &HeatCells::default()).unwrap(), stored, "rewritten when merged");
        let mut sparse = HeatCells::default();
        sparse.add((3, 1), 1);
        sparse.add((40, 45), 1);
        assert_eq!(merged_band(None, &sparse).unwrap()[0], BAND_FORMAT, "a sparse band stays tokens");
        assert!(add_stored_band(&[BAND_DENSE_FORMAT, 1, 0xc4, 0x13, 1, 5], &mut a).is_err(), "past the band");
    }

    #[test]
    fn bands_store_as_arrays_and_read_older_values_too() {
        let mut delta = HeatCells::default();
        delta.add((3, 101), 2); // band 2, row 1
        delta.add((49, 149), 7); // band 2, last cell
        let stored = merged_band(None, &delta).unwrap();
        let stored = merged_band(Some(&stored), &delta).unwrap();
        let legacy = rmp_serde::to_vec_named(&delta).unwrap();
        let mut acc = vec![0u64; BAND_CELLS];
        add_stored_band(&stored, &mut acc).unwrap();
        add_stored_band(&legacy, &mut acc).unwrap();
        let filled: Vec<_> = acc.iter().enumerate().filter(|(_, n)| **n > 0).collect();
        assert_eq!(filled, [(53, &6), (BAND_CELLS - 1, &21)]);
        assert_eq!(cell_of_slot(2, 53), Some((3, 101)));
        assert_eq!(cell_of_slot(2, BAND_CELLS - 1), Some((49, 149)));
        assert_eq!(cell_of_slot(u16::MAX / BAND_ROWS, BAND_CELLS - 1), None);
        assert!(add_stored_band(&[0x01, 0xff], &mut acc).is_err());
        assert!(add_stored_band(b"junk", &mut acc).is_err());
    }

    /// A selector, its clicks and its `(ex, ey, n)` points.
    type Row = (String, u64, Vec<(u16, u16, u64)>);

    fn clicks(seed: u64, selectors: u64) -> ElementClicks {
        let mut e = ElementClicks::default();
        for i in 0..selectors * 7 {
            let k = (i * 2654435761 + seed) % 1_000_003;
            let offset = (!k.is_multiple_of(5)).then_some(((k % 1000) as u16, (k / 7 % 1001) as u16));
            e.add(&format!("main>a:nth-child({})", k % selectors), offset);
        }
        e
    }

    fn sums_of(values: &[&[u8]]) -> Vec<Row> {
        let mut sums = ElementSums::default();
        for v in values {
            sums.add_stored(v).unwrap();
        }
        let mut out: Vec<_> = sums.into_sums().map(|(sel, s)| (sel.into(), s.n, s.points().collect())).collect();
        out.sort();
        out
    }

    fn as_rows(e: &ElementClicks) -> Vec<Row> {
        let rows = e.by_selector.iter();
        rows.map(|(sel, c)| (sel.clone(), c.n, c.points.iter().map(|(&(x, y), &n)| (x, y, n)).collect())).collect()
    }

    #[test]
    fn element_clicks_round_trip_and_sum_like_merge() {
        let (a, b) = (clicks(1, 12), clicks(99, 30));
        assert_eq!(ElementClicks::from_stored(&a.to_stored()).unwrap(), a);
        let legacy = rmp_serde::to_vec_named(&b).unwrap();
        assert_eq!(ElementClicks::from_stored(&legacy).unwrap(), b, "older MessagePack values still read");
        assert!(a.to_stored().len() < rmp_serde::to_vec_named(&a).unwrap().len(), "denser");
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(sums_of(&[&a.to_stored(), &legacy]), as_rows(&merged));
        // Associative: (a + b) + c = a + (b + c), stored or not.
        let c = clicks(7, 5);
        let mut left = merged.clone();
        left.merge(&c);
        let mut bc = b.clone();
        bc.merge(&c);
        let mut right = a.clone();
        right.merge(&ElementClicks::from_stored(&bc.to_stored()).unwrap());
        assert_eq!(left, right);
        assert_eq!(sums_of(&[&left.to_stored()]), sums_of(&[&a.to_stored(), &b.to_stored(), &c.to_stored()]));
        assert_eq!(
            ElementClicks::from_stored(&ElementClicks::default().to_stored()).unwrap(),
            ElementClicks::default()
        );
    }

    #[test]
    fn element_sums_keep_the_most_clicked_like_merge() {
        let mut many = ElementClicks::default();
        for i in 0..MAX_ELEMENTS + 80 {
            for _ in 0..i % 13 + 1 {
                many.add(&format!("#s{i}"), Some((i as u16, 500)));
            }
        }
        let few = clicks(4, 40);
        let mut merged = ElementClicks::default();
        merged.merge(&few);
        merged.merge(&many);
        assert!(merged.by_selector.len() < MAX_ELEMENTS + 120, "the rarest were dropped");
        assert_eq!(sums_of(&[&few.to_stored(), &many.to_stored()]), as_rows(&merged));
    }

    #[test]
    fn corrupt_element_values_are_an_error_not_a_panic() {
        let good = clicks(5, 4).to_stored();
        for end in 1..good.len() {
            assert!(ElementClicks::from_stored(&good[..end]).is_err(), "truncated at {end}");
            assert!(ElementSums::default().add_stored(&good[..end]).is_err(), "truncated at {end}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(ElementClicks::from_stored(&trailing).is_err());
        let huge_count = [ELEMENTS_FORMAT, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(ElementSums::default().add_stored(&huge_count).is_err());
        let huge_len = [ELEMENTS_FORMAT, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(ElementClicks::from_stored(&huge_len).is_err());
        let bad_utf8 = [ELEMENTS_FORMAT, 1, 1, 0xff, 1, 0];
        assert!(ElementClicks::from_stored(&bad_utf8).is_err());
        let bin_outside = [ELEMENTS_FORMAT, 1, 1, b'a', 1, 3, 0xc9, 0x01, 2]; // skip 100, count 1: past the grid
        assert!(ElementSums::default().add_stored(&bin_outside).is_err());
        assert!(ElementClicks::from_stored(b"junk").is_err());
        // Random bytes after the format byte: an answer or an error, never a panic.
        let mut rng = crate::test_rng::XorShift(0x9e37_79b9);
        for _ in 0..2000 {
            let len = rng.0 % 40;
            let bytes: Vec<u8> =
                std::iter::once(ELEMENTS_FORMAT).chain((0..len).map(|_| rng.next_u64() as u8)).collect();
            let _ = ElementSums::default().add_stored(&bytes);
            let _ = ElementClicks::from_stored(&bytes);
        }
    }

    #[test]
    fn element_offsets_are_binned() {
        let mut e = ElementClicks::default();
        e.add("#buy", Some((0, 999)));
        e.add("#buy", Some((50, 950)));
        e.add("#buy", None);
        let buy = &e.by_selector["#buy"];
        assert_eq!(buy.n, 3);
        assert_eq!(buy.points[&(0, 9)], 2);
    }
}
