//! Per-session state that turns a stream of batches into rollup deltas: the open pageview
//! (for scroll reach and heatmap geometry), recent clicks and errors (for rage and error
//! clicks) and the path before it (for quick backs). It is stored with the session so a
//! pageview spanning many batches is still counted exactly once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::attention::{AttentionRollup, AttentionTracking};
use super::form::{FormTracking, PageForms};
use super::heat::{self, ElementClicks, HeatCells, HeatKind, WidthClass};
use super::page::{reach_pct, PageRollup};
use super::DayRollup;
use crate::model::{day_of, Event, EventData, View};

/// Moves per pageview that count towards the move heatmap, so one restless visitor cannot
/// dominate it.
pub const MAX_MOVES_PER_VIEW: u16 = 300;
/// A rage click: this many clicks within [`RAGE_WINDOW_MS`] inside [`RAGE_RADIUS_PX`].
pub const RAGE_CLICKS: usize = 3;
pub const RAGE_WINDOW_MS: i64 = 1000;
pub const RAGE_RADIUS_PX: f64 = 30.0;
/// An error click: an `err` within this many ms after a click on the same page.
pub const ERROR_WINDOW_MS: i64 = 1000;
/// How far before its click an error may appear and still be the click's. A click and the
/// error its handler throws are stamped the same millisecond by the browser, but they often
/// travel in different batches, and each batch's times are corrected by that batch's own
/// measured clock skew, network and queueing delay included: a few ms of difference between two
/// batches can put the error just before its click.
pub const ERROR_SKEW_SLACK_MS: i64 = 250;
/// Where `error_t - click_t` must fall for the error to be the click's.
const ERROR_AFTER_CLICK: std::ops::RangeInclusive<i64> = -ERROR_SKEW_SLACK_MS..=ERROR_WINDOW_MS;
/// A quick back: a pageview left within this many ms by returning to the previous path.
pub const QUICK_BACK_MS: i64 = 5000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracking {
    pub page: Option<OpenPage>,
    /// Recent clicks `(t, x, y)` of the current burst.
    pub burst: Vec<(i64, f64, f64)>,
    pub rage_clicks: u32,
    pub dead_clicks: u32,
    #[serde(default)]
    pub error_clicks: u32,
    #[serde(default)]
    pub quick_backs: u32,
    /// The last click on the open page not yet followed by an error.
    #[serde(default)]
    pub last_click: Option<i64>,
    /// The last error on the open page not yet matched to a click (a click delayed by the
    /// snippet's dead-click check can arrive in a later batch than the error it caused).
    #[serde(default)]
    pub last_err: Option<i64>,
    /// The path viewed before the open page.
    #[serde(default)]
    pub previous_path: Option<String>,
    /// The open pageview's forms (form analytics).
    #[serde(default)]
    pub forms: FormTracking,
    /// The open pageview's viewport, visibility and activity (attention).
    #[serde(default)]
    pub attention: AttentionTracking,
}

/// A frustration signal, as the replay timeline marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    Rage,
    Dead,
    Error,
    #[serde(rename = "quickback")]
    QuickBack,
}

impl SignalKind {
    pub const ALL: [SignalKind; 4] = [SignalKind::Rage, SignalKind::Dead, SignalKind::Error, SignalKind::QuickBack];

    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Rage => "rage",
            SignalKind::Dead => "dead",
            SignalKind::Error => "error",
            SignalKind::QuickBack => "quickback",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One signal in a session: when (the click, or the navigation back) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Signal {
    pub t: i64,
    pub kind: SignalKind,
    /// The page it happened on (for a quick back: the page left).
    pub path: String,
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
    /// When it was viewed.
    #[serde(default)]
    pub start: i64,
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
    /// When set, every signal is also listed here in order (for one session's replay; the
    /// writer leaves it unset).
    pub signals: Option<Vec<Signal>>,
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

    fn signal(&mut self, t: i64, kind: SignalKind, page: &OpenPage) {
        if let Some(list) = &mut self.signals {
            list.push(Signal { t, kind, path: page.path.clone() });
        }
    }
}

/// The map keys of the open page in [`Deltas`], built on first use in a batch rather than for
/// every event: a click or move would otherwise copy the site and path into a fresh key (and
/// drop it again when the entry exists), the applier's most frequent allocations.
#[derive(Default)]
struct PageKeys {
    page: Option<(String, i32, String)>,
    heat: Option<HeatKey>,
    elements: Option<(String, String, i32)>,
}

impl PageKeys {
    fn page<'d>(&mut self, deltas: &'d mut Deltas, site: &str, page: &OpenPage) -> &'d mut PageRollup {
        let key = self.page.get_or_insert_with(|| (site.to_owned(), page.day, page.path.clone()));
        entry(&mut deltas.pages, key)
    }

    fn heat(&mut self, deltas: &mut Deltas, site: &str, page: &OpenPage, kind: HeatKind, cell: (u16, u16)) {
        let key = self.heat.get_or_insert_with(|| HeatKey {
            site: site.to_owned(),
            path: page.path.clone(),
            kind,
            width: WidthClass::of(page.vw),
            day: page.day,
            band: 0,
        });
        // The page's width can change within a batch (a resize); kind and band per event.
        key.kind = kind;
        key.width = WidthClass::of(page.vw);
        key.band = cell.1 / heat::BAND_ROWS;
        entry(&mut deltas.heat, key).add(cell, 1);
    }

    fn elements<'d>(&mut self, deltas: &'d mut Deltas, site: &str, page: &OpenPage) -> &'d mut ElementClicks {
        let key = self.elements.get_or_insert_with(|| (site.to_owned(), page.path.clone(), page.day));
        entry(&mut deltas.elements, key)
    }
}

/// `map[key]`, inserted as the default when missing; the key is cloned only then.
fn entry<'m, K: Ord + Clone, V: Default>(map: &'m mut BTreeMap<K, V>, key: &K) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.clone(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// The signals of one session, from its events in time order, by the same rules the writer
/// counts them with (for the replay timeline).
pub fn signals_of(events: &[Event]) -> Vec<Signal> {
    let mut deltas = Deltas { signals: Some(Vec::new()), ..Deltas::default() };
    Tracking::default().apply("", events, &mut deltas);
    deltas.signals.unwrap_or_default()
}

impl Tracking {
    /// Adds what `events` (one batch, in time order) contribute to the rollups.
    pub fn apply(&mut self, site: &str, events: &[Event], deltas: &mut Deltas) {
        let mut keys = PageKeys::default();
        for e in events {
            self.forms.observe(site, e, deltas);
            self.attention.observe(site, e, deltas);
            match &e.data {
                EventData::View(v) => {
                    self.view(site, e.t, v, deltas);
                    keys = PageKeys::default();
                }
                EventData::Scroll { y } => {
                    if let Some(page) = &mut self.page {
                        let reach = reach_pct(y + page.vh, page.dh);
                        if reach > page.reach_pct {
                            let from = page.reach_pct;
                            page.reach_pct = reach;
                            keys.page(deltas, site, page).deepen(Some(from), reach);
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
                    let click = Click { t: e.t, x: *x, y: *y, sel, offset: ex.zip(*ey), dead: *dead };
                    self.click(site, click, &mut keys, deltas)
                }
                EventData::Move { x, y } => {
                    let Some(page) = &mut self.page else { continue };
                    let Some(cell) = heat::cell(*x, *y, page.dw) else { continue };
                    if page.moves >= MAX_MOVES_PER_VIEW || page.last_move_cell == Some(cell) {
                        continue;
                    }
                    page.moves += 1;
                    page.last_move_cell = Some(cell);
                    keys.heat(deltas, site, page, HeatKind::Move, cell);
                }
                EventData::Err { .. } => self.error(site, e.t, &mut keys, deltas),
                _ => {}
            }
        }
        self.attention.settle(site, deltas);
    }

    fn view(&mut self, site: &str, t: i64, v: &View, deltas: &mut Deltas) {
        let page = OpenPage {
            path: v.path.clone(),
            day: day_of(t),
            vw: v.vw,
            vh: v.vh,
            dw: if v.dw > 0.0 { v.dw } else { v.vw },
            dh: v.dh,
            reach_pct: reach_pct(v.vh, v.dh),
            moves: 0,
            last_move_cell: None,
            start: t,
        };
        if let Some(left) = self.page.take() {
            let back = self.previous_path.as_deref() == Some(v.path.as_str()) && left.path != v.path;
            if back && t - left.start <= QUICK_BACK_MS {
                self.quick_backs += 1;
                deltas.page(site, &left).quick_backs += 1;
                deltas.signal(t, SignalKind::QuickBack, &left);
            }
            if left.path != v.path {
                self.previous_path = Some(left.path);
            }
        }
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
        self.last_click = None;
        self.last_err = None;
    }

    /// An error within [`ERROR_WINDOW_MS`] after the last click makes that click an error click
    /// (once per click).
    fn error(&mut self, site: &str, t: i64, keys: &mut PageKeys, deltas: &mut Deltas) {
        match self.last_click {
            Some(c) if ERROR_AFTER_CLICK.contains(&(t - c)) => {
                self.last_click = None;
                self.error_click(site, c, keys, deltas);
            }
            _ => self.last_err = Some(t),
        }
    }

    fn error_click(&mut self, site: &str, t: i64, keys: &mut PageKeys, deltas: &mut Deltas) {
        self.error_clicks += 1;
        let Some(page) = &self.page else { return };
        keys.page(deltas, site, page).error_clicks += 1;
        deltas.signal(t, SignalKind::Error, page);
    }

    fn click(&mut self, site: &str, c: Click<'_>, keys: &mut PageKeys, deltas: &mut Deltas) {
        let (t, x, y, dead) = (c.t, c.x, c.y, c.dead);
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
        match self.last_err {
            Some(err) if ERROR_AFTER_CLICK.contains(&(err - t)) => {
                self.last_err = None;
                self.error_click(site, t, keys, deltas);
            }
            _ => self.last_click = Some(t),
        }
        let Some(page) = &self.page else { return };
        let p = keys.page(deltas, site, page);
        p.clicks += 1;
        p.rage_clicks += u64::from(rage);
        p.dead_clicks += u64::from(dead);
        if let Some(cell) = heat::cell(x, y, page.dw) {
            keys.heat(deltas, site, page, HeatKind::Click, cell);
            if dead {
                keys.heat(deltas, site, page, HeatKind::Dead, cell);
            }
        }
        if dead {
            deltas.signal(t, SignalKind::Dead, page);
        }
        if rage {
            deltas.signal(t, SignalKind::Rage, page);
        }
        keys.elements(deltas, site, page).add(c.sel, c.offset);
    }
}

/// One click's fields, as [`Tracking::click`] needs them.
struct Click<'e> {
    t: i64,
    x: f64,
    y: f64,
    sel: &'e str,
    offset: Option<(u16, u16)>,
    dead: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

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
                spa: false,
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
    fn a_resize_within_a_batch_moves_later_clicks_to_their_width_class() {
        let mut tr = Tracking::default();
        let mut d = Deltas::default();
        let resize = Event { t: 20, data: EventData::Resize { w: 400.0, h: 800.0 } };
        tr.apply("s", &[view(0, "/a"), click(10, 100.0, 100.0), resize, click(30, 100.0, 2000.0)], &mut d);
        let widths: Vec<(WidthClass, u16)> = d.heat.keys().map(|k| (k.width, k.band)).collect();
        let far_band = heat::cell(100.0, 2000.0, 1000.0).unwrap().1 / heat::BAND_ROWS;
        assert_eq!(widths, vec![(WidthClass::Mobile, far_band), (WidthClass::Tablet, 0)]);
        assert_eq!(d.pages[&("s".to_owned(), 0, "/a".to_owned())].clicks, 2);
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

    fn at(t: i64, data: EventData) -> Event {
        Event { t, data }
    }

    fn err(t: i64) -> Event {
        at(t, EventData::Err { msg: "boom".into() })
    }

    fn page_of<'d>(d: &'d Deltas, path: &str) -> &'d PageRollup {
        &d.pages[&("s".to_owned(), 0, path.to_owned())]
    }

    #[test]
    fn an_error_within_a_second_after_a_click_makes_one_error_click() {
        let mut tr = Tracking::default();
        let mut d = Deltas { signals: Some(Vec::new()), ..Deltas::default() };
        tr.apply("s", &[view(0, "/a"), click(100, 10.0, 10.0), err(600), err(700)], &mut d);
        assert_eq!(tr.error_clicks, 1, "two errors after one click are one error click");
        tr.apply("s", &[click(5_000, 10.0, 10.0), err(6_001)], &mut d);
        assert_eq!(tr.error_clicks, 1, "an error 1001 ms later is not the click's");
        // The snippet holds a click back for its dead-click check: its error can arrive first.
        tr.apply("s", &[err(9_300)], &mut d);
        tr.apply("s", &[click(9_000, 10.0, 10.0)], &mut d);
        assert_eq!(tr.error_clicks, 2);
        tr.apply("s", &[click(20_000, 10.0, 10.0), view(20_100, "/b"), err(20_200)], &mut d);
        assert_eq!(tr.error_clicks, 2, "an error on the next page is not the click's");
        assert_eq!(page_of(&d, "/a").error_clicks, 2);
        let kinds: Vec<(i64, SignalKind)> = d.signals.unwrap().iter().map(|s| (s.t, s.kind)).collect();
        assert_eq!(kinds, vec![(100, SignalKind::Error), (9_000, SignalKind::Error)]);
    }

    #[test]
    fn an_error_a_few_ms_before_its_click_after_skew_correction_is_still_the_clicks() {
        // Click and error stamped the same ms by the browser; the click's batch (sent after the
        // dead-click wait) was corrected by a skew 3 ms larger than the error's batch.
        let mut tr = Tracking::default();
        let mut d = Deltas::default();
        tr.apply("s", &[view(0, "/a")], &mut d);
        tr.apply("s", &[err(10_000)], &mut d);
        tr.apply("s", &[click(10_003, 10.0, 10.0)], &mut d);
        assert_eq!(tr.error_clicks, 1, "error batch first");
        tr.apply("s", &[click(20_003, 10.0, 10.0)], &mut d);
        tr.apply("s", &[err(20_000)], &mut d);
        assert_eq!(tr.error_clicks, 2, "click batch first");
        tr.apply("s", &[err(30_000)], &mut d);
        tr.apply("s", &[click(30_000 + ERROR_SKEW_SLACK_MS + 1, 10.0, 10.0)], &mut d);
        assert_eq!(tr.error_clicks, 2, "an error well before a click is not the click's");
        assert_eq!(page_of(&d, "/a").error_clicks, 2);
    }

    #[test]
    fn returning_to_the_previous_path_within_five_seconds_is_a_quick_back() {
        let mut tr = Tracking::default();
        let mut d = Deltas { signals: Some(Vec::new()), ..Deltas::default() };
        tr.apply("s", &[view(0, "/a"), view(1_000, "/b"), view(3_000, "/a")], &mut d);
        assert_eq!(tr.quick_backs, 1);
        assert_eq!(page_of(&d, "/b").quick_backs, 1, "counted on the page that was left");
        assert_eq!(page_of(&d, "/a").quick_backs, 0);
        // /a → /c after 10 s, back to /a 8 s later: too slow; /c → /c (a reload) is no return.
        tr.apply("s", &[view(13_000, "/c"), view(21_000, "/a"), view(22_000, "/d"), view(23_000, "/d")], &mut d);
        assert_eq!(tr.quick_backs, 1);
        // Forward to a new path is not back, however fast.
        tr.apply("s", &[view(23_500, "/e")], &mut d);
        assert_eq!(tr.quick_backs, 1);
        tr.apply("s", &[view(24_000, "/d")], &mut d);
        assert_eq!(tr.quick_backs, 2);
        let signals = d.signals.unwrap();
        assert_eq!(signals.len(), 2);
        assert_eq!((signals[0].t, signals[0].kind, signals[0].path.as_str()), (3_000, SignalKind::QuickBack, "/b"));
    }

    #[test]
    fn dead_clicks_have_their_own_heatmap_and_signals_in_order() {
        let mut tr = Tracking::default();
        let mut d = Deltas { signals: Some(Vec::new()), ..Deltas::default() };
        let dead = |t| at(t, EventData::Click { x: 10.0, y: 10.0, sel: "#b".into(), ex: None, ey: None, dead: true });
        tr.apply("s", &[view(0, "/a"), dead(100), dead(200), dead(300), click(400, 500.0, 500.0)], &mut d);
        assert_eq!(tr.dead_clicks, 3);
        assert_eq!(page_of(&d, "/a").dead_clicks, 3);
        let dead_cells: u64 =
            d.heat.iter().filter(|(k, _)| k.kind == HeatKind::Dead).flat_map(|(_, h)| h.cells.values()).sum();
        let click_cells: u64 =
            d.heat.iter().filter(|(k, _)| k.kind == HeatKind::Click).flat_map(|(_, h)| h.cells.values()).sum();
        assert_eq!((dead_cells, click_cells), (3, 4));
        let kinds: Vec<SignalKind> = d.signals.unwrap().iter().map(|s| s.kind).collect();
        use SignalKind::*;
        assert_eq!(kinds, vec![Dead, Dead, Dead, Rage]);
    }
}
