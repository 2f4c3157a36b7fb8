//! Heatmap geometry and cells: clicks and moves counted on a grid in document coordinates, and
//! clicks anchored to the element that was clicked.
//!
//! The grid's x axis is normalised to the document width ([`COLUMNS`] columns), so layouts of
//! different widths line up; y is in CSS px ([`ROW_PX`] per row), because content keeps its
//! vertical position far better than its horizontal one. Rows are stored in bands of
//! [`BAND_ROWS`] so a long page's cells are split over several small values, each stored as a
//! fixed-shape array of [`BAND_CELLS`] counts ([`encode_band`], [`add_stored_band`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::{self, Corrupt};

pub const COLUMNS: u16 = 50;
pub const ROW_PX: f64 = 20.0;
pub const BAND_ROWS: u16 = 50;
/// Cells in one band: [`BAND_ROWS`] rows of [`COLUMNS`] columns, row-major.
pub const BAND_CELLS: usize = BAND_ROWS as usize * COLUMNS as usize;
/// First byte of a stored band in the [`codec`] format (older stores hold MessagePack).
const BAND_FORMAT: u8 = 0x01;
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
    let mut out = Vec::with_capacity(64);
    out.push(BAND_FORMAT);
    codec::put_counts(&mut out, counts.iter().copied());
    out
}

/// Adds a stored band value to `acc` (a band's [`BAND_CELLS`] counts). Reads both this format
/// and the MessagePack `HeatCells` older versions wrote.
pub fn add_stored_band(bytes: &[u8], acc: &mut [u64]) -> Result<(), Corrupt> {
    if bytes.first() == Some(&BAND_FORMAT) {
        return codec::add_counts(bytes, 1, acc);
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
        let e = self.by_selector.entry(selector.to_owned()).or_default();
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
