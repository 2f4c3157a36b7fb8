//! Per-session state that turns a stream of batches into rollup deltas: the open pageview
//! (for scroll reach and heatmap geometry) and recent clicks (for rage clicks). It is stored
//! with the session so a pageview spanning many batches is still counted exactly once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::attention::{AttentionRollup, AttentionTracking};
use super::form::{FormTracking, PageForms};
use super::heat::{self, ElementClicks, HeatCells, HeatKind, WidthClass};
use super::page::{reach_pct, PageRollup};
use super::DayRollup;
use crate::model::{day_of, Event, EventData};

/// Moves per pageview that count towards the move heatmap, so one restless visitor cannot
/// dominate it.
pub const MAX_MOVES_PER_VIEW: u16 = 300;
/// A rage click: this many clicks within [`RAGE_WINDOW_MS`] inside [`RAGE_RADIUS_PX`].
pub const RAGE_CLICKS: usize = 3;
pub const RAGE_WINDOW_MS: i64 = 1000;
pub const RAGE_RADIUS_PX: f64 = 30.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracking {
    pub page: Option<OpenPage>,
    /// Recent clicks `(t, x, y)` of the current burst.
    pub burst: Vec<(i64, f64, f64)>,
    pub rage_clicks: u32,
    pub dead_clicks: u32,
    /// The open pageview's forms (form analytics).
    #[serde(default)]
    pub forms: FormTracking,
    /// The open pageview's viewport, visibility and activity (attention).
    #[serde(default)]
    pub attention: AttentionTracking,
}

/// The pageview being recorded: where it is and how far it has been read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenPage {
    pub path: String,
    pub day: i32,
    pub vw: f64,
    pub vh: f64,
    pub dw: f64,
    pub dh: f64,
    pub reach_pct: u8,
    pub moves: u16,
    pub last_move_cell: Option<(u16, u16)>,
}

/// Where one heatmap value lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeatKey {
    pub site: String,
    pub path: String,
    pub kind: HeatKind,
    pub width: WidthClass,
    pub day: i32,
    pub band: u16,
}

/// The rollup deltas of one group commit, ready to be merged by any backend.
#[derive(Debug, Default)]
pub struct Deltas {
    pub days: BTreeMap<(String, i32), DayRollup>,
    pub pages: BTreeMap<(String, i32, String), PageRollup>,
    pub heat: BTreeMap<HeatKey, HeatCells>,
    pub elements: BTreeMap<(String, String, i32), ElementClicks>,
    /// Form analytics per `(site, path, day)`.
    pub forms: BTreeMap<(String, String, i32), PageForms>,
    /// Attention per `(site, day, path)`.
    pub attention: BTreeMap<(String, i32, String), AttentionRollup>,
}

impl Deltas {
    /// Adds `other` into these deltas. Elements are not pruned here (stores prune when they
    /// keep or read them), so merged deltas add up to the same totals.
    pub fn merge(&mut self, other: &Deltas) {
        for (k, v) in &other.days {
            self.days.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.pages {
            self.pages.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.heat {
            self.heat.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.elements {
            let into = self.elements.entry(k.clone()).or_default();
            for (sel, cell) in &v.by_selector {
                let c = into.by_selector.entry(sel.clone()).or_default();
                c.n += cell.n;
                for (p, n) in &cell.points {
                    *c.points.entry(*p).or_default() += n;
                }
            }
        }
        for (k, v) in &other.forms {
            self.forms.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.attention {
            self.attention.entry(k.clone()).or_default().merge(v);
        }
    }

    pub fn day(&mut self, site: &str, day: i32) -> &mut DayRollup {
        self.days.entry((site.to_owned(), day)).or_default()
    }

    fn page(&mut self, site: &str, page: &OpenPage) -> &mut PageRollup {
        self.pages.entry((site.to_owned(), page.day, page.path.clone())).or_default()
    }

    fn heat(&mut self, site: &str, page: &OpenPage, kind: HeatKind, cell: (u16, u16)) {
        let key = HeatKey {
            site: site.to_owned(),
            path: page.path.clone(),
            kind,
            width: WidthClass::of(page.vw),
            day: page.day,
            band: cell.1 / heat::BAND_ROWS,
        };
        self.heat.entry(key).or_default().add(cell, 1);
    }
}

impl Tracking {
    /// Adds what `events` (one batch, in time order) contribute to the rollups.
    pub fn apply(&mut self, site: &str, events: &[Event], deltas: &mut Deltas) {
        for e in events {
            self.forms.observe(site, e, deltas);
            self.attention.observe(site, e, deltas);
            match &e.data {
                EventData::View(v) => {
                    let page = OpenPage {
                        path: v.path.clone(),
                        day: day_of(e.t),
                        vw: v.vw,
                        vh: v.vh,
                        dw: if v.dw > 0.0 { v.dw } else { v.vw },
                        dh: v.dh,
                        reach_pct: reach_pct(v.vh, v.dh),
                        moves: 0,
                        last_move_cell: None,
                    };
                    let day = deltas.day(site, page.day);
                    day.pageviews += 1;
                    if let Some(load) = v.load_ms {
                        day.load.record(load);
                    }
                    let p = deltas.page(site, &page);
                    p.pageviews += 1;
                    if let Some(load) = v.load_ms {
                        p.load.record(load);
                    }
                    p.fold_sum_px += page.vh;
                    p.fold_sum_pct += if page.dh > 0.0 { (page.vh / page.dh * 100.0).min(100.0) } else { 100.0 };
                    p.deepen(None, page.reach_pct);
                    self.page = Some(page);
                    self.burst.clear();
                }
                EventData::Scroll { y } => {
                    if let Some(page) = &mut self.page {
                        let reach = reach_pct(y + page.vh, page.dh);
                        if reach > page.reach_pct {
                            let from = page.reach_pct;
                            page.reach_pct = reach;
                            deltas.page(site, page).deepen(Some(from), reach);
                        }
                    }
                }
                EventData::Resize { w, h } => {
                    if let Some(page) = &mut self.page {
                        page.vw = *w;
                        page.vh = *h;
                    }
                }
                EventData::Click { x, y, sel, ex, ey, dead } => {
                    self.click(site, e.t, *x, *y, sel, ex.zip(*ey), *dead, deltas)
                }
                EventData::Move { x, y } => {
                    let Some(page) = &mut self.page else { continue };
                    let Some(cell) = heat::cell(*x, *y, page.dw) else { continue };
                    if page.moves >= MAX_MOVES_PER_VIEW || page.last_move_cell == Some(cell) {
                        continue;
                    }
                    page.moves += 1;
                    page.last_move_cell = Some(cell);
                    deltas.heat(site, page, HeatKind::Move, cell);
                }
                _ => {}
            }
        }
        self.attention.settle(site, deltas);
    }

    #[allow(clippy::too_many_arguments)]
    fn click(
        &mut self,
        site: &str,
        t: i64,
        x: f64,
        y: f64,
        sel: &str,
        offset: Option<(u16, u16)>,
        dead: bool,
        deltas: &mut Deltas,
    ) {
        self.burst.retain(|(bt, bx, by)| {
            t - bt <= RAGE_WINDOW_MS && ((bx - x).powi(2) + (by - y).powi(2)).sqrt() <= RAGE_RADIUS_PX
        });
        self.burst.push((t, x, y));
        let rage = self.burst.len() == RAGE_CLICKS;
        if rage {
            self.rage_clicks += 1;
        }
        if dead {
            self.dead_clicks += 1;
        }
        let Some(page) = self.page.clone() else { return };
        let p = deltas.page(site, &page);
        p.clicks += 1;
        p.rage_clicks += u64::from(rage);
        p.dead_clicks += u64::from(dead);
        if let Some(cell) = heat::cell(x, y, page.dw) {
            deltas.heat(site, &page, HeatKind::Click, cell);
        }
        deltas.elements.entry((site.to_owned(), page.path.clone(), page.day)).or_default().add(sel, offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::View;

    fn view(t: i64, path: &str) -> Event {
        Event {
            t,
            data: EventData::View(View {
                url: format!("https://a.example{path}"),
                path: path.into(),
                referrer: None,
                title: None,
                vw: 1000.0,
                vh: 500.0,
                dw: 1000.0,
                dh: 2000.0,
                load_ms: Some(100.0),
                ttfb_ms: None,
            }),
        }
    }

    fn click(t: i64, x: f64, y: f64) -> Event {
        Event { t, data: EventData::Click { x, y, sel: "#b".into(), ex: Some(500), ey: Some(500), dead: false } }
    }

    #[test]
    fn a_pageview_spanning_batches_counts_reach_once() {
        let mut tr = Tracking::default();
        let mut d = Deltas::default();
        tr.apply("s", &[view(0, "/a")], &mut d);
        tr.apply("s", &[Event { t: 1, data: EventData::Scroll { y: 500.0 } }], &mut d);
        tr.apply("s", &[Event { t: 2, data: EventData::Scroll { y: 250.0 } }], &mut d);
        let p = &d.pages[&("s".to_owned(), 0, "/a".to_owned())];
        assert_eq!(p.pageviews, 1);
        assert_eq!(p.depth_sum_pct, 50, "deepest point is (500+500)/2000");
        assert_eq!(p.reach[10], 1);
        assert_eq!(p.reach[11], 0);
        assert_eq!(p.fold_sum_px, 500.0);
    }

    #[test]
    fn rage_clicks_need_three_quick_close_clicks() {
        let mut tr = Tracking::default();
        let mut d = Deltas::default();
        tr.apply(
            "s",
            &[view(0, "/a"), click(10, 100.0, 100.0), click(300, 105.0, 100.0), click(600, 100.0, 110.0)],
            &mut d,
        );
        assert_eq!(tr.rage_clicks, 1);
        tr.apply("s", &[click(700, 100.0, 100.0)], &mut d);
        assert_eq!(tr.rage_clicks, 1, "one burst is one rage click");
        tr.apply("s", &[click(5000, 100.0, 100.0), click(5100, 400.0, 400.0), click(5200, 100.0, 100.0)], &mut d);
        assert_eq!(tr.rage_clicks, 1, "far apart clicks are not rage");
        let p = &d.pages[&("s".to_owned(), 0, "/a".to_owned())];
        assert_eq!(p.clicks, 7);
        assert_eq!(p.rage_clicks, 1);
        let cell = heat::cell(100.0, 100.0, 1000.0).unwrap();
        let key = HeatKey {
            site: "s".into(),
            path: "/a".into(),
            kind: HeatKind::Click,
            width: WidthClass::Tablet,
            day: 0,
            band: 0,
        };
        assert_eq!(d.heat[&key].cells[&cell], 6);
    }

    #[test]
    fn moves_are_capped_per_pageview() {
        let mut tr = Tracking::default();
        let mut d = Deltas::default();
        let moves: Vec<Event> = (0..1000)
            .map(|i| Event { t: i, data: EventData::Move { x: (i % 1000) as f64, y: (i * 20) as f64 } })
            .collect();
        tr.apply("s", &[view(0, "/a")], &mut d);
        tr.apply("s", &moves, &mut d);
        let total: u64 = d.heat.values().flat_map(|h| h.cells.values()).sum();
        assert_eq!(total, MAX_MOVES_PER_VIEW as u64);
    }
}
