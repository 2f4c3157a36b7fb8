//! Attention at write time: how long each 5 % band of a page's document was inside the
//! viewport while the tab was visible and the visitor active, summed per site, day and path.
//!
//! Derived from events the snippet sends anyway — nothing extra on the wire: `view` (document
//! and viewport height; arriving counts as activity), `scroll` (where the viewport is),
//! `resize` (its height), `vis` (hidden or not), and every event a visitor's input causes
//! (`move`, `click`, `scroll`, `input`, `focus`, `blur`, `submit`, `resize`, a tab shown again)
//! as activity. Between two events the viewport is where the earlier one left it; time counts
//! until the next event, but never more than [`ACTIVE_MS`] after the last input. Each band gets
//! the share of that time matching the part of the band inside the viewport.

use serde::{Deserialize, Serialize};

use super::track::Deltas;
use crate::model::{day_of, Event, EventData};

pub const BANDS: usize = 20;
/// A visitor counts as active this long after their last input.
pub const ACTIVE_MS: i64 = 30_000;

/// Per page and day: pageviews, and the visible-and-active ms of each band summed over them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttentionRollup {
    pub pageviews: u64,
    /// `BANDS` sums in ms (empty until the first counted time).
    pub band_ms: Vec<u64>,
}

impl AttentionRollup {
    pub fn merge(&mut self, o: &AttentionRollup) {
        self.pageviews += o.pageviews;
        if self.band_ms.len() < BANDS && !o.band_ms.is_empty() {
            self.band_ms.resize(BANDS, 0);
        }
        for (a, b) in self.band_ms.iter_mut().zip(&o.band_ms) {
            *a += b;
        }
    }
}

/// The open pageview's viewport, visibility and last input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttentionTracking {
    /// `(path, day)` of the open pageview.
    pub page: Option<(String, i32)>,
    /// Time up to which attention has been counted.
    pub counted_to: i64,
    pub last_input: i64,
    pub hidden: bool,
    /// Viewport top (scrollY) and height, document height, in CSS px.
    pub top: f64,
    pub vh: f64,
    pub dh: f64,
    /// Band time counted for the open pageview but not yet added to the deltas: adding it per
    /// event would build a map key per event on the writer's hot path. Empty between batches.
    #[serde(skip)]
    pub pending_ms: Vec<u64>,
    /// The bands the viewport covers and their shares, kept while `top`, `vh` and `dh` stay
    /// as they were (most events — moves, clicks, inputs — leave the viewport where it is).
    #[serde(skip)]
    bands: ViewBands,
}

/// The bands a viewport covers, worked out once per viewport: `[first, last)`, and per band
/// the share of it inside the viewport (`inside`) and whether it is wholly inside (`whole`).
#[derive(Debug, Clone, Default)]
struct ViewBands {
    /// `(top, vh, dh)` they were worked out for, as bits (`None`: not yet).
    of: Option<[u64; 3]>,
    first: usize,
    last: usize,
    inside: [f64; BANDS],
    whole: [bool; BANDS],
}

/// Derived from the other fields only: equal whatever it holds.
impl PartialEq for ViewBands {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl ViewBands {
    /// Works them out for `(top, vh, dh)` unless they already are (`dh > 0`).
    fn update(&mut self, top: f64, vh: f64, dh: f64) {
        let of = [top.to_bits(), vh.to_bits(), dh.to_bits()];
        if self.of == Some(of) {
            return;
        }
        self.of = Some(of);
        let band_px = dh / BANDS as f64;
        let (top, bottom) = (top.max(0.0), (top + vh).min(dh));
        // Only the bands the viewport overlaps get time; the rest would add 0.
        self.first = floor_index(top / band_px);
        self.last = ceil_index(bottom / band_px);
        // A band wholly in view gets all the time: its `inside` is then 1 within a few ulps, so
        // for fewer than 2^40 ms the rounded product is the whole time exactly.
        let normal = band_px.is_normal();
        for i in self.first..self.last.max(self.first) {
            let (from, to) = (i as f64 * band_px, (i + 1) as f64 * band_px);
            self.whole[i] = normal && top <= from && to <= bottom;
            self.inside[i] = (bottom.min(to) - top.max(from)).max(0.0) / band_px;
        }
    }
}

impl AttentionTracking {
    /// Counts the time up to `e` for the open pageview, then applies `e`.
    pub fn observe(&mut self, site: &str, e: &Event, deltas: &mut Deltas) {
        self.count_until(e.t);
        let input = match &e.data {
            EventData::View(v) => {
                self.settle(site, deltas);
                let page = (v.path.clone(), day_of(e.t));
                deltas.attention.entry((site.to_owned(), page.1, page.0.clone())).or_default().pageviews += 1;
                *self = AttentionTracking {
                    page: Some(page),
                    counted_to: e.t,
                    last_input: e.t,
                    hidden: false,
                    top: 0.0,
                    vh: v.vh,
                    dh: v.dh,
                    pending_ms: std::mem::take(&mut self.pending_ms),
                    bands: std::mem::take(&mut self.bands),
                };
                true
            }
            EventData::Scroll { y } => {
                self.top = *y;
                true
            }
            EventData::Resize { h, .. } => {
                self.vh = *h;
                true
            }
            EventData::Vis { hidden } => {
                self.hidden = *hidden;
                !*hidden
            }
            EventData::Move { .. }
            | EventData::Click { .. }
            | EventData::Input { .. }
            | EventData::Focus { .. }
            | EventData::Blur { .. }
            | EventData::Submit { .. } => true,
            _ => false,
        };
        if input {
            self.last_input = self.last_input.max(e.t);
        }
    }

    /// Adds the band time counted so far to the open pageview's rollup in `deltas`. Called at
    /// the end of every batch and before a new pageview.
    pub fn settle(&mut self, site: &str, deltas: &mut Deltas) {
        let Some((path, day)) = &self.page else { return };
        if self.pending_ms.iter().all(|ms| *ms == 0) {
            return;
        }
        let r = deltas.attention.entry((site.to_owned(), *day, path.clone())).or_default();
        if r.band_ms.len() < BANDS {
            r.band_ms.resize(BANDS, 0);
        }
        for (sum, pending) in r.band_ms.iter_mut().zip(self.pending_ms.iter_mut()) {
            *sum += std::mem::take(pending);
        }
    }

    fn count_until(&mut self, t: i64) {
        let Some(_) = &self.page else { return };
        let end = t.min(self.last_input + ACTIVE_MS);
        if !self.hidden && end > self.counted_to && self.dh > 0.0 {
            let whole_ms = end - self.counted_to;
            let ms = whole_ms as f64;
            let exact = whole_ms < 1 << 40;
            let bands = &mut self.bands;
            bands.update(self.top, self.vh, self.dh);
            if bands.first < bands.last {
                if self.pending_ms.len() < BANDS {
                    self.pending_ms.resize(BANDS, 0);
                }
                for i in bands.first..bands.last {
                    self.pending_ms[i] +=
                        if exact && bands.whole[i] { whole_ms as u64 } else { round(ms * bands.inside[i]) };
                }
            }
        }
        self.counted_to = self.counted_to.max(t);
    }
}

/// `(q.floor() as usize).min(BANDS)` for the non-negative (or NaN) quotients above, without
/// `floor` (a libm call on baseline x86-64): the saturating cast truncates, which is the floor
/// there.
fn floor_index(q: f64) -> usize {
    (q as usize).min(BANDS)
}

/// `(q.ceil().max(0.0) as usize).min(BANDS)` without `ceil` (a libm call on baseline x86-64).
fn ceil_index(q: f64) -> usize {
    if q >= BANDS as f64 {
        return BANDS;
    }
    // Below BANDS (or NaN, or negative: the cast gives 0 then, as `max(0.0)` did).
    let whole = q as usize;
    whole + usize::from((whole as f64) < q)
}

/// `x.round() as u64` for the non-negative products above, without `round` (a libm call on
/// baseline x86-64, one per band per event): the truncation plus one if the dropped fraction is
/// at least a half — exact, since `x - trunc(x)` is.
fn round(x: f64) -> u64 {
    let whole = x as u64;
    whole.saturating_add(u64::from(x - whole as f64 >= 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::View;

    #[test]
    fn round_is_f64_round_for_non_negative_values() {
        let mut rng = crate::test_rng::XorShift(0x1234_5678_9abc_def0);
        for _ in 0..100_000 {
            let s = rng.next_u64();
            let x = (s >> 11) as f64 / (1u64 << 53) as f64 * if s & 1 == 0 { 40_000.0 } else { 40.0 };
            assert_eq!(round(x), x.round() as u64, "{x}");
        }
        for x in [0.0, 0.5, 1.5, 2.5, 0.499_999_999_999_999_94, 4_503_599_627_370_495.5, 1e300, f64::INFINITY] {
            assert_eq!(round(x), x.round() as u64, "{x}");
        }
    }

    /// `count_until` as it was before whole bands and the index bounds took their shortcuts.
    fn count_until_by_division(tr: &mut AttentionTracking, t: i64) {
        let Some(_) = &tr.page else { return };
        let end = t.min(tr.last_input + ACTIVE_MS);
        if !tr.hidden && end > tr.counted_to && tr.dh > 0.0 {
            let ms = (end - tr.counted_to) as f64;
            let band_px = tr.dh / BANDS as f64;
            let (top, bottom) = (tr.top.max(0.0), (tr.top + tr.vh).min(tr.dh));
            let first = ((top / band_px).floor() as usize).min(BANDS);
            let last = ((bottom / band_px).ceil().max(0.0) as usize).min(BANDS);
            if first < last {
                if tr.pending_ms.len() < BANDS {
                    tr.pending_ms.resize(BANDS, 0);
                }
                for (i, sum) in tr.pending_ms.iter_mut().enumerate().take(last).skip(first) {
                    let (from, to) = (i as f64 * band_px, (i + 1) as f64 * band_px);
                    let inside = (bottom.min(to) - top.max(from)).max(0.0) / band_px;
                    *sum += (ms * inside).round() as u64;
                }
            }
        }
        tr.counted_to = tr.counted_to.max(t);
    }

    #[test]
    fn whole_bands_and_index_bounds_count_as_the_division_did() {
        let mut rng = crate::test_rng::XorShift(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64();
        let mut unit = || (next() >> 11) as f64 / (1u64 << 53) as f64;
        let specials = [0.0, -0.0, 1e-310, f64::MIN_POSITIVE, 1e300, f64::MAX, f64::INFINITY, f64::NAN, -5.0];
        for round in 0..200_000 {
            let pick = |u: f64, scale: f64, special: usize| {
                if round % 17 == 0 {
                    specials[special % specials.len()]
                } else {
                    (u * scale).round() * if u > 0.9 { 0.37 } else { 1.0 }
                }
            };
            let dh = pick(unit(), 20_000.0, round / 17);
            let top = pick(unit(), 22_000.0, round / 7) - if round % 5 == 0 { 500.0 } else { 0.0 };
            let vh = pick(unit(), 3_000.0, round / 3);
            let counted_to = 1_764_374_400_000i64;
            let step = match round % 4 {
                0 => (unit() * 100.0) as i64,
                1 => (unit() * 40_000.0) as i64,
                2 => (unit() * 1e13) as i64,
                _ => 1 + (unit() * 5.0) as i64,
            };
            let mut a = AttentionTracking {
                page: Some(("/p".into(), 0)),
                counted_to,
                last_input: counted_to + step,
                hidden: false,
                top,
                vh,
                dh,
                pending_ms: vec![3; BANDS],
                bands: ViewBands::default(),
            };
            let mut b = a.clone();
            a.count_until(counted_to + step);
            count_until_by_division(&mut b, counted_to + step);
            assert_eq!(a.pending_ms, b.pending_ms, "top {top} vh {vh} dh {dh} step {step}");
            // Further events, the viewport kept (the worked-out bands reused) or scrolled.
            for later in 1..4i64 {
                if round % 3 == later as usize {
                    a.top += 100.0 * later as f64;
                    b.top = a.top;
                }
                let t = counted_to + step + later * 700;
                a.last_input = t;
                b.last_input = t;
                a.count_until(t);
                count_until_by_division(&mut b, t);
                assert_eq!(a.pending_ms, b.pending_ms, "top {} vh {vh} dh {dh} at {t}", a.top);
            }
        }
    }

    fn ev(t: i64, data: EventData) -> Event {
        Event { t, data }
    }

    fn view(t: i64) -> Event {
        ev(
            t,
            EventData::View(View {
                url: "https://a.example/long".into(),
                path: "/long".into(),
                referrer: None,
                title: None,
                vw: 1000.0,
                vh: 500.0,
                dw: 1000.0,
                dh: 5000.0,
                load_ms: None,
                ttfb_ms: None,
                spa: false,
            }),
        )
    }

    fn bands(batches: &[Vec<Event>]) -> AttentionRollup {
        let mut tr = AttentionTracking::default();
        let mut d = Deltas::default();
        for b in batches {
            for e in b {
                tr.observe("s", e, &mut d);
            }
            tr.settle("s", &mut d);
        }
        d.attention.into_values().next().unwrap()
    }

    #[test]
    fn time_goes_to_the_bands_in_view_while_active_and_visible() {
        let r = bands(&[
            vec![view(0), ev(2000, EventData::Move { x: 1.0, y: 1.0 })],
            // scrolled to the middle: bands 10 and 11 (2500–3000 px) in view
            vec![ev(4000, EventData::Scroll { y: 2500.0 }), ev(7000, EventData::Vis { hidden: true })],
            // hidden for a minute: nothing counts; back, then 30 s active and 60 s idle
            vec![ev(67_000, EventData::Vis { hidden: false }), ev(157_000, EventData::Vis { hidden: true })],
        ]);
        assert_eq!(r.pageviews, 1);
        assert_eq!(r.band_ms[0], 4000);
        assert_eq!(r.band_ms[1], 4000);
        assert_eq!(r.band_ms[2], 0);
        assert_eq!(r.band_ms[10], 3000 + 30_000);
        assert_eq!(r.band_ms[11], 3000 + 30_000);
        assert_eq!(r.band_ms.iter().sum::<u64>(), 2 * (4000 + 33_000));
    }

    #[test]
    fn partly_visible_bands_get_their_share_and_a_new_view_closes_the_last() {
        let r = bands(&[vec![
            view(0),
            ev(0, EventData::Scroll { y: 125.0 }),
            ev(1000, EventData::Move { x: 1.0, y: 1.0 }),
            view(2000),
        ]]);
        assert_eq!(r.pageviews, 2);
        // 125–625 px: half of band 0, all of band 1, half of band 2
        assert_eq!(&r.band_ms[..4], &[1000, 2000, 1000, 0]);
    }

    #[test]
    fn idle_time_stops_counting_after_thirty_seconds() {
        let r = bands(&[vec![
            view(0),
            ev(100_000, EventData::Move { x: 1.0, y: 1.0 }),
            ev(101_000, EventData::Vis { hidden: true }),
        ]]);
        assert_eq!(r.band_ms[0], 30_000 + 1000);
    }
}
