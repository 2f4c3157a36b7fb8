//! Answers built from form and attention rollups: `GET …/forms` and `GET …/attention`.
//! Backends fetch the rollups of the requested days; these builders shape them identically.

use serde::Serialize;

use crate::rollup::attention::{AttentionRollup, BANDS};
use crate::rollup::form::{FieldRollup, FormRollup, PageForms};

/// `GET /api/sites/{site}/forms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forms {
    pub path: String,
    /// Most started first.
    pub forms: Vec<FormStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormStats {
    /// The form's short CSS path; `""` gathers fields outside any form.
    pub form: String,
    pub starters: u64,
    pub submits: u64,
    /// Share of starters that did not submit; `null` without starters and for `""`.
    pub abandon_rate: Option<f64>,
    /// In the order visitors meet them (mean rank of first focus), a funnel of fields.
    pub fields: Vec<FieldStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldStats {
    pub field: String,
    pub interactions: u64,
    pub avg_time_ms: Option<f64>,
    pub avg_hesitation_ms: Option<f64>,
    pub refills: u64,
    pub blank_on_submit: u64,
    pub drop_offs: u64,
}

fn mean(sum: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| (sum as f64 / n as f64).round())
}

fn field_stats(field: String, f: &FieldRollup, submits: u64) -> FieldStats {
    FieldStats {
        field,
        interactions: f.interactions,
        avg_time_ms: mean(f.time_sum_ms, f.time_n),
        avg_hesitation_ms: mean(f.hesitation_sum_ms, f.hesitation_n),
        refills: f.refills,
        blank_on_submit: submits.saturating_sub(f.filled_on_submit),
        drop_offs: f.drop_offs.max(0) as u64,
    }
}

fn form_stats(form: String, r: FormRollup) -> FormStats {
    let mut fields: Vec<(f64, FieldStats)> = r
        .fields
        .iter()
        .map(|(sel, f)| {
            let rank = if f.order_n > 0 { f.order_sum as f64 / f.order_n as f64 } else { f64::MAX };
            (rank, field_stats(sel.clone(), f, r.submits))
        })
        .collect();
    fields.sort_by(|a, b| {
        a.0.total_cmp(&b.0).then(b.1.interactions.cmp(&a.1.interactions)).then(a.1.field.cmp(&b.1.field))
    });
    let abandon_rate = (r.starters > 0 && !form.is_empty()).then(|| {
        let abandoned = r.starters.saturating_sub(r.submitted_starters) as f64;
        (abandoned / r.starters as f64 * 1000.0).round() / 1000.0
    });
    FormStats {
        form,
        starters: r.starters,
        submits: r.submits,
        abandon_rate,
        fields: fields.into_iter().map(|(_, f)| f).collect(),
    }
}

impl Forms {
    pub fn from_rollups(path: &str, rollups: impl IntoIterator<Item = PageForms>) -> Self {
        let mut all = PageForms::default();
        for r in rollups {
            all.merge(&r);
        }
        let mut forms: Vec<FormStats> = all.forms.into_iter().map(|(form, r)| form_stats(form, r)).collect();
        forms.sort_by(|a, b| b.starters.cmp(&a.starters).then(b.submits.cmp(&a.submits)).then(a.form.cmp(&b.form)));
        Forms { path: path.to_owned(), forms }
    }
}

/// `GET /api/sites/{site}/attention`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attention {
    pub path: String,
    pub pageviews: u64,
    /// 20 bands of 5 % of the document height, top first.
    pub bands: Vec<Band>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    pub from_pct: u8,
    pub to_pct: u8,
    /// Mean ms per pageview that the band was in the viewport, the tab visible and the visitor
    /// active (input within the last 30 s).
    pub avg_visible_ms: f64,
}

impl Attention {
    pub fn from_rollups(path: &str, rollups: impl IntoIterator<Item = AttentionRollup>) -> Self {
        let mut all = AttentionRollup::default();
        for r in rollups {
            all.merge(&r);
        }
        let step = (100 / BANDS) as u8;
        let bands = (0..BANDS)
            .map(|i| Band {
                from_pct: i as u8 * step,
                to_pct: (i as u8 + 1) * step,
                avg_visible_ms: match (all.pageviews, all.band_ms.get(i)) {
                    (0, _) | (_, None) => 0.0,
                    (n, Some(ms)) => (*ms as f64 / n as f64).round(),
                },
            })
            .collect();
        Attention { path: path.to_owned(), pageviews: all.pageviews, bands }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_visitors_order_and_blank_counts_untouched_fields() {
        let mut form = FormRollup { starters: 4, submits: 2, submitted_starters: 2, ..Default::default() };
        form.fields.insert(
            "input#b".into(),
            FieldRollup { interactions: 2, order_sum: 4, order_n: 2, filled_on_submit: 1, ..Default::default() },
        );
        form.fields.insert(
            "input#a".into(),
            FieldRollup {
                interactions: 4,
                order_sum: 4,
                order_n: 4,
                time_sum_ms: 3000,
                time_n: 4,
                drop_offs: 2,
                ..Default::default()
            },
        );
        let mut page = PageForms::default();
        page.forms.insert("form#f".into(), form);
        let answer = Forms::from_rollups("/p", [page]);
        let f = &answer.forms[0];
        assert_eq!(f.abandon_rate, Some(0.5));
        assert_eq!(f.fields[0].field, "input#a");
        assert_eq!(f.fields[0].avg_time_ms, Some(750.0));
        assert_eq!(f.fields[0].blank_on_submit, 2, "never touched at either submit");
        assert_eq!(f.fields[1].blank_on_submit, 1);
        assert_eq!(f.fields[0].drop_offs, 2);
    }

    #[test]
    fn attention_has_twenty_bands_averaged_per_pageview() {
        let mut r = AttentionRollup { pageviews: 2, band_ms: vec![0; BANDS] };
        r.band_ms[0] = 3000;
        let a = Attention::from_rollups("/p", [r]);
        assert_eq!(a.bands.len(), 20);
        assert_eq!((a.bands[0].from_pct, a.bands[0].to_pct, a.bands[0].avg_visible_ms), (0, 5, 1500.0));
        assert_eq!((a.bands[19].from_pct, a.bands[19].to_pct), (95, 100));
        assert_eq!(Attention::from_rollups("/p", []).bands[3].avg_visible_ms, 0.0);
    }
}
