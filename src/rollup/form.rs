//! Form analytics at write time: per pageview, which forms were started and submitted, which
//! field had the focus since when, and what length each field was left with; rolled up per
//! site, day and path into counts and sums (never a typed value: only lengths reach here).
//!
//! Drop-offs are kept exact at every moment without waiting for a pageview to end: a started,
//! unsubmitted form counts one drop-off on its last focused field, moved (−1/+1) when the focus
//! moves on and withdrawn (−1) when the form is submitted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::track::Deltas;
use crate::model::{day_of, Event, EventData};

/// Forms and fields tracked per pageview; more are ignored (a page generating hundreds of
/// fields must not grow a session's state without bound).
pub const MAX_FORMS_PER_VIEW: usize = 16;
pub const MAX_FIELDS_PER_VIEW: usize = 64;
/// Fields kept per form, page and day in a rollup; the least used are dropped first.
pub const MAX_FIELDS_PER_FORM: usize = 200;

/// One field's figures, summed over pageviews.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldRollup {
    /// Focus count.
    pub interactions: u64,
    /// Sum and count of focus → blur times.
    pub time_sum_ms: u64,
    pub time_n: u64,
    /// Sum and count of focus → first input times.
    pub hesitation_sum_ms: u64,
    pub hesitation_n: u64,
    pub refills: u64,
    /// Submits at which the field's last length was above 0.
    pub filled_on_submit: u64,
    /// Started, unsubmitted forms whose last focused field is this one (deltas may be negative).
    pub drop_offs: i64,
    /// Sum and count of the field's rank (1 = first focused) in its form per pageview: orders
    /// the fields as visitors meet them.
    pub order_sum: u64,
    pub order_n: u64,
}

impl FieldRollup {
    pub fn merge(&mut self, o: &FieldRollup) {
        self.interactions += o.interactions;
        self.time_sum_ms += o.time_sum_ms;
        self.time_n += o.time_n;
        self.hesitation_sum_ms += o.hesitation_sum_ms;
        self.hesitation_n += o.hesitation_n;
        self.refills += o.refills;
        self.filled_on_submit += o.filled_on_submit;
        self.drop_offs += o.drop_offs;
        self.order_sum += o.order_sum;
        self.order_n += o.order_n;
    }
}

/// One form's figures, summed over pageviews.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FormRollup {
    /// Pageviews with a focus in the form.
    pub starters: u64,
    /// Pageviews with its submit.
    pub submits: u64,
    /// Starters that also submitted (a submit without any focus is not a start).
    pub submitted_starters: u64,
    pub fields: BTreeMap<String, FieldRollup>,
}

impl FormRollup {
    pub fn merge(&mut self, o: &FormRollup) {
        self.starters += o.starters;
        self.submits += o.submits;
        self.submitted_starters += o.submitted_starters;
        for (sel, f) in &o.fields {
            self.fields.entry(sel.clone()).or_default().merge(f);
        }
        if self.fields.len() > MAX_FIELDS_PER_FORM {
            let mut counts: Vec<u64> = self.fields.values().map(|f| f.interactions).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let keep_at_least = counts[MAX_FIELDS_PER_FORM - 1];
            self.fields.retain(|_, f| f.interactions >= keep_at_least);
        }
    }

    fn field(&mut self, sel: &str) -> &mut FieldRollup {
        if !self.fields.contains_key(sel) {
            self.fields.insert(sel.to_owned(), FieldRollup::default());
        }
        self.fields.get_mut(sel).expect("inserted above")
    }
}

/// Every form of one page on one day, by the form's short CSS path (`""`: fields outside forms).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageForms {
    pub forms: BTreeMap<String, FormRollup>,
}

impl PageForms {
    pub fn merge(&mut self, o: &PageForms) {
        for (form, f) in &o.forms {
            self.forms.entry(form.clone()).or_default().merge(f);
        }
    }
}

/// The open pageview's forms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FormTracking {
    /// `(path, day)` of the pageview these forms are on.
    pub page: Option<(String, i32)>,
    pub forms: Vec<OpenForm>,
    pub focus: Option<Focused>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenForm {
    pub form: String,
    pub started: bool,
    pub submitted: bool,
    pub last_field: Option<String>,
    pub fields: Vec<OpenField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenField {
    pub sel: String,
    /// Length when last left (blur), for refills.
    pub left_len: Option<u32>,
    /// Latest length known (input or blur), for blank-on-submit.
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Focused {
    pub form: String,
    pub sel: String,
    pub t: i64,
    pub typed: bool,
}

impl FormTracking {
    /// Adds what one event (in time order) contributes to the form rollups.
    pub fn observe(&mut self, site: &str, e: &Event, deltas: &mut Deltas) {
        match &e.data {
            EventData::View(v) => {
                *self = FormTracking { page: Some((v.path.clone(), day_of(e.t))), ..Default::default() };
            }
            EventData::Focus { sel, form } => self.focus(site, e.t, sel, form, deltas),
            EventData::Input { sel, len } => self.input(site, e.t, sel, *len, deltas),
            EventData::Blur { sel, form, len } => self.blur(site, e.t, sel, form, *len, deltas),
            EventData::Submit { form } => self.submit(site, form, deltas),
            _ => {}
        }
    }

    /// The rollup delta of `form` on the open page, or `None` before the first pageview.
    fn delta<'d>(&self, site: &str, form: &str, deltas: &'d mut Deltas) -> Option<&'d mut FormRollup> {
        let (path, day) = self.page.as_ref()?;
        let page = deltas.forms.entry((site.to_owned(), path.clone(), *day)).or_default();
        if !page.forms.contains_key(form) {
            page.forms.insert(form.to_owned(), FormRollup::default());
        }
        page.forms.get_mut(form)
    }

    fn form_index(&mut self, form: &str) -> Option<usize> {
        if let Some(i) = self.forms.iter().position(|f| f.form == form) {
            return Some(i);
        }
        if self.forms.len() >= MAX_FORMS_PER_VIEW || self.page.is_none() {
            return None;
        }
        self.forms.push(OpenForm {
            form: form.to_owned(),
            started: false,
            submitted: false,
            last_field: None,
            fields: Vec::new(),
        });
        Some(self.forms.len() - 1)
    }

    /// The field's index in form `fi`, and whether it was added now.
    fn field_index(&mut self, fi: usize, sel: &str) -> Option<(usize, bool)> {
        let fields_in_view: usize = self.forms.iter().map(|f| f.fields.len()).sum();
        let form = &mut self.forms[fi];
        if let Some(i) = form.fields.iter().position(|f| f.sel == sel) {
            return Some((i, false));
        }
        if fields_in_view >= MAX_FIELDS_PER_VIEW {
            return None;
        }
        form.fields.push(OpenField { sel: sel.to_owned(), left_len: None, len: 0 });
        Some((form.fields.len() - 1, true))
    }

    fn focus(&mut self, site: &str, t: i64, sel: &str, form: &str, deltas: &mut Deltas) {
        let Some(fi) = self.form_index(form) else { return };
        let Some((_, new)) = self.field_index(fi, sel) else { return };
        let rank = self.forms[fi].fields.len() as u64;
        let open = &mut self.forms[fi];
        let start = !open.started;
        open.started = true;
        let moved_from = if open.submitted { None } else { Some(open.last_field.replace(sel.to_owned())) };
        let Some(d) = self.delta(site, form, deltas) else { return };
        d.starters += u64::from(start);
        if let Some(previous) = moved_from {
            if let Some(previous) = previous {
                d.field(&previous).drop_offs -= 1;
            }
            d.field(sel).drop_offs += 1;
        }
        let f = d.field(sel);
        f.interactions += 1;
        if new {
            f.order_sum += rank;
            f.order_n += 1;
        }
        self.focus = Some(Focused { form: form.to_owned(), sel: sel.to_owned(), t, typed: false });
    }

    fn input(&mut self, site: &str, t: i64, sel: &str, len: u32, deltas: &mut Deltas) {
        // Input events name the field only: it belongs to the focused form, else to the first
        // form of this pageview that has a field of that name.
        let form = match &self.focus {
            Some(f) if f.sel == sel => Some(f.form.clone()),
            _ => self.forms.iter().find(|f| f.fields.iter().any(|x| x.sel == sel)).map(|f| f.form.clone()),
        };
        let Some(form) = form else { return };
        if let Some(fi) = self.forms.iter().position(|f| f.form == form) {
            if let Some(field) = self.forms[fi].fields.iter_mut().find(|f| f.sel == sel) {
                field.len = len;
            }
        }
        let hesitation = match &mut self.focus {
            Some(f) if f.sel == sel && !f.typed => {
                f.typed = true;
                Some((t - f.t).max(0) as u64)
            }
            _ => None,
        };
        if let (Some(h), Some(d)) = (hesitation, self.delta(site, &form, deltas)) {
            let f = d.field(sel);
            f.hesitation_sum_ms += h;
            f.hesitation_n += 1;
        }
    }

    fn blur(&mut self, site: &str, t: i64, sel: &str, form: &str, len: u32, deltas: &mut Deltas) {
        let Some(fi) = self.form_index(form) else { return };
        let Some((i, _)) = self.field_index(fi, sel) else { return };
        let field = &mut self.forms[fi].fields[i];
        let refill = field.left_len.is_some_and(|before| before > 0 && before != len);
        field.left_len = Some(len);
        field.len = len;
        let time = match &self.focus {
            Some(f) if f.sel == sel && f.form == form => Some((t - f.t).max(0) as u64),
            _ => None,
        };
        if time.is_some() {
            self.focus = None;
        }
        let Some(d) = self.delta(site, form, deltas) else { return };
        let f = d.field(sel);
        f.refills += u64::from(refill);
        if let Some(ms) = time {
            f.time_sum_ms += ms;
            f.time_n += 1;
        }
    }

    fn submit(&mut self, site: &str, form: &str, deltas: &mut Deltas) {
        let Some(fi) = self.form_index(form) else { return };
        let open = &mut self.forms[fi];
        if open.submitted {
            return;
        }
        open.submitted = true;
        let open = open.clone();
        let Some(d) = self.delta(site, form, deltas) else { return };
        d.submits += 1;
        if open.started {
            d.submitted_starters += 1;
            if let Some(last) = &open.last_field {
                d.field(last).drop_offs -= 1;
            }
        }
        for field in open.fields.iter().filter(|f| f.len > 0) {
            d.field(&field.sel).filled_on_submit += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::View;

    fn ev(t: i64, data: EventData) -> Event {
        Event { t, data }
    }

    fn view(t: i64) -> Event {
        ev(
            t,
            EventData::View(View {
                url: "https://a.example/signup".into(),
                path: "/signup".into(),
                referrer: None,
                title: None,
                vw: 1000.0,
                vh: 500.0,
                dw: 1000.0,
                dh: 2000.0,
                load_ms: None,
                ttfb_ms: None,
                spa: false,
            }),
        )
    }

    fn focus(t: i64, sel: &str) -> Event {
        ev(t, EventData::Focus { sel: sel.into(), form: "form#f".into() })
    }

    fn blur(t: i64, sel: &str, len: u32) -> Event {
        ev(t, EventData::Blur { sel: sel.into(), form: "form#f".into(), len })
    }

    fn input(t: i64, sel: &str, len: u32) -> Event {
        ev(t, EventData::Input { sel: sel.into(), len })
    }

    fn submit(t: i64) -> Event {
        ev(t, EventData::Submit { form: "form#f".into() })
    }

    fn run(batches: &[Vec<Event>]) -> PageForms {
        let mut tr = FormTracking::default();
        let mut d = Deltas::default();
        for b in batches {
            for e in b {
                tr.observe("s", e, &mut d);
            }
        }
        let mut all = PageForms::default();
        for p in d.forms.values() {
            all.merge(p);
        }
        all
    }

    #[test]
    fn a_submitted_visit_counts_times_hesitation_and_filled_fields() {
        let forms = run(&[
            vec![view(0), focus(1000, "input#name"), input(1400, "input#name", 5)],
            vec![blur(3000, "input#name", 5), focus(3000, "input#email"), blur(4000, "input#email", 0), submit(4100)],
        ]);
        let f = &forms.forms["form#f"];
        assert_eq!((f.starters, f.submits, f.submitted_starters), (1, 1, 1));
        let name = &f.fields["input#name"];
        assert_eq!((name.interactions, name.time_sum_ms, name.time_n), (1, 2000, 1));
        assert_eq!((name.hesitation_sum_ms, name.hesitation_n), (400, 1));
        assert_eq!((name.filled_on_submit, name.drop_offs, name.order_sum), (1, 0, 1));
        let email = &f.fields["input#email"];
        assert_eq!((email.filled_on_submit, email.drop_offs, email.order_sum, email.hesitation_n), (0, 0, 2, 0));
    }

    #[test]
    fn an_abandoned_visit_drops_off_on_its_last_field_across_batches() {
        let forms = run(&[
            vec![view(0), focus(100, "input#name"), blur(200, "input#name", 3)],
            vec![focus(300, "input#email"), blur(400, "input#email", 4)],
            vec![focus(500, "input#name"), blur(600, "input#name", 0)],
        ]);
        let f = &forms.forms["form#f"];
        assert_eq!((f.starters, f.submits), (1, 0));
        assert_eq!(f.fields["input#name"].drop_offs, 1, "the last focused field");
        assert_eq!(f.fields["input#email"].drop_offs, 0);
        assert_eq!(f.fields["input#name"].interactions, 2);
        assert_eq!(f.fields["input#name"].refills, 1, "left with 3, refocused and left with 0");
        assert_eq!(f.fields["input#name"].order_n, 1, "ranked once per pageview");
    }

    #[test]
    fn a_new_pageview_starts_afresh_and_refills_need_a_changed_length() {
        let forms = run(&[vec![
            view(0),
            focus(1, "input#a"),
            blur(2, "input#a", 4),
            focus(3, "input#a"),
            blur(4, "input#a", 4),
            view(10),
            focus(11, "input#a"),
            blur(12, "input#a", 2),
            submit(13),
            submit(14),
        ]]);
        let f = &forms.forms["form#f"];
        assert_eq!((f.starters, f.submits, f.submitted_starters), (2, 1, 1), "one submit per pageview");
        assert_eq!(f.fields["input#a"].refills, 0, "same length is not a refill; a new pageview forgets");
        assert_eq!(f.fields["input#a"].drop_offs, 1);
        assert_eq!(f.fields["input#a"].filled_on_submit, 1);
    }

    #[test]
    fn fields_per_pageview_are_bounded() {
        let mut events = vec![view(0)];
        for i in 0..(MAX_FIELDS_PER_VIEW + 10) {
            events.push(focus(i as i64 + 1, &format!("input#f{i}")));
        }
        let forms = run(&[events]);
        assert_eq!(forms.forms["form#f"].fields.len(), MAX_FIELDS_PER_VIEW);
    }
}
