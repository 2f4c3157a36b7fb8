//! Checks a decoded batch against the contract: the envelope must be right, each event is kept
//! only if it is well-formed, and client clocks are corrected to the server's.

use std::borrow::Cow;

use super::wire::{BoundedEvents, WireBatch, WireEvent, HARD_MAX_EVENTS};
use super::{IngestError, Reason};
use crate::model::{Event, EventData, Id128, View};
use crate::privacy::control;

/// Per-batch limits (see `[limits]` in the config).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_events_per_batch: usize,
    pub max_url_len: usize,
    pub max_title_len: usize,
    pub max_sel_len: usize,
    pub max_msg_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_events_per_batch: 2000, max_url_len: 2048, max_title_len: 512, max_sel_len: 256, max_msg_len: 1024 }
    }
}

/// Why one event was dropped while the rest of its batch was kept: the [`Reason`]s that apply to
/// one event, so that [`Dropped`] counts them in a small array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    UnknownKind,
    MissingField,
    BadNumber,
    BadTime,
    TooLong,
    BadUrl,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::UnknownKind,
        DropReason::MissingField,
        DropReason::BadNumber,
        DropReason::BadTime,
        DropReason::TooLong,
        DropReason::BadUrl,
    ];

    pub fn as_str(self) -> &'static str {
        Reason::from(self).as_str()
    }
}

impl From<DropReason> for Reason {
    fn from(r: DropReason) -> Self {
        match r {
            DropReason::UnknownKind => Reason::UnknownKind,
            DropReason::MissingField => Reason::MissingField,
            DropReason::BadNumber => Reason::BadNumber,
            DropReason::BadTime => Reason::BadTime,
            DropReason::TooLong => Reason::TooLong,
            DropReason::BadUrl => Reason::BadUrl,
        }
    }
}

/// Count of dropped events per reason, without allocating.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped([u32; DropReason::ALL.len()]);

impl Dropped {
    pub fn add(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }

    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u32)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.0[*r as usize])).filter(|(_, n)| *n > 0)
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self.iter().map(|(r, n)| format!("{n} {}", r.as_str())).collect();
        if parts.is_empty() {
            "events is empty".into()
        } else {
            format!("dropped: {}", parts.join(", "))
        }
    }
}

/// A batch whose envelope is valid, with its surviving events in corrected time order (stable:
/// events of the same time stay in the order they were sent).
#[derive(Debug)]
pub struct ValidBatch {
    pub site: String,
    pub vid: Id128,
    pub sid: Id128,
    pub seq: u32,
    pub events: Vec<Event>,
    pub dropped: Dropped,
}

/// How far an event may lie before the batch's `sent` (client clock).
const MAX_EVENT_AGE_MS: f64 = 24.0 * 3600.0 * 1000.0;
/// How far after `sent` an event may claim to be (clock jitter within one client).
const MAX_EVENT_LEAD_MS: f64 = 60_000.0;
/// Coordinates and sizes beyond this are not from a real page.
const MAX_COORD: f64 = 10_000_000.0;

/// Validates `batch`, received at `now_ms` (server clock).
pub fn validate(batch: WireBatch<'_>, limits: &Limits, now_ms: i64) -> Result<ValidBatch, IngestError> {
    if batch.v != 1 {
        return Err(IngestError::BadEnvelope(format!("unsupported version {} (this server speaks v1)", batch.v)));
    }
    let vid = Id128::parse(&batch.vid)
        .ok_or_else(|| IngestError::BadEnvelope("vid must be 32 lowercase hex characters".into()))?;
    let sid = Id128::parse(&batch.sid)
        .ok_or_else(|| IngestError::BadEnvelope("sid must be 32 lowercase hex characters".into()))?;
    if !batch.sent.is_finite() || batch.sent <= 0.0 {
        return Err(IngestError::BadEnvelope("sent must be a positive time in ms since the epoch".into()));
    }
    let limit = limits.max_events_per_batch.min(HARD_MAX_EVENTS);
    if batch.events.truncated || batch.events.len() > limit {
        return Err(IngestError::TooManyEvents(limit));
    }

    let skew = now_ms as f64 - batch.sent;
    let mut dropped = Dropped::default();
    for &(t, reason) in &batch.events.refused {
        dropped.add(check_time(t, batch.sent).err().unwrap_or(reason));
    }
    let BoundedEvents { kept: mut events, client_t, .. } = batch.events;
    let mut times = client_t.into_iter();
    events.retain_mut(|event| {
        let t = times.next().flatten();
        match validate_event(event, t, limits, batch.sent, skew) {
            Ok(()) => true,
            Err(reason) => {
                dropped.add(reason);
                false
            }
        }
    });
    if events.is_empty() {
        return Err(IngestError::NoValidEvent(dropped.describe()));
    }
    // One correction for the whole batch, so this is the client's own time order; the sort is
    // stable, so events of the same time (a snapshot's parts) keep the order they were sent in.
    // A batch is nearly always sent in order already, and the sort would allocate its scratch.
    if !events.is_sorted_by_key(|e| e.t) {
        events.sort_by_key(|e| e.t);
    }
    Ok(ValidBatch { site: batch.site.into_owned(), vid, sid, seq: batch.seq, events, dropped })
}

/// A missing or impossible time drops the event whatever else it has.
fn check_time(t: Option<f64>, sent: f64) -> Result<f64, DropReason> {
    let t = t.ok_or(DropReason::MissingField)?;
    if !t.is_finite() || t < sent - MAX_EVENT_AGE_MS || t > sent + MAX_EVENT_LEAD_MS {
        return Err(DropReason::BadTime);
    }
    Ok(t)
}

/// The time first, then the configured lengths (what decoding found wrong was refused already);
/// sets the event's corrected time.
fn validate_event(e: &mut Event, t: Option<f64>, limits: &Limits, sent: f64, skew: f64) -> Result<(), DropReason> {
    let t = check_time(t, sent)?;
    if !within_limits(&e.data, limits) {
        return Err(DropReason::TooLong);
    }
    e.t = (t + skew).round() as i64;
    Ok(())
}

/// Whether every string of `data` fits its configured length (bytes, after control characters
/// were removed).
fn within_limits(data: &EventData, limits: &Limits) -> bool {
    let fits = |s: &str, max: usize| s.len() <= max;
    let opt_fits = |s: &Option<String>, max: usize| s.as_deref().is_none_or(|s| s.len() <= max);
    let sel = limits.max_sel_len;
    match data {
        EventData::View(v) => {
            fits(&v.url, limits.max_url_len)
                && opt_fits(&v.referrer, limits.max_url_len)
                && opt_fits(&v.title, limits.max_title_len)
        }
        EventData::Click { sel: s, .. } | EventData::Input { sel: s, .. } => fits(s, sel),
        EventData::Focus { sel: s, form } | EventData::Blur { sel: s, form, .. } => fits(s, sel) && fits(form, sel),
        EventData::Submit { form } => fits(form, sel),
        EventData::Err { msg } => fits(msg, limits.max_msg_len),
        EventData::Move { .. }
        | EventData::Scroll { .. }
        | EventData::Resize { .. }
        | EventData::Vis { .. }
        | EventData::Snap { .. }
        | EventData::Mut { .. } => true,
    }
}

/// Turns a decoded event into what the store keeps, by its kind: the fields the kind needs must
/// be there and plausible; every other field is left behind (an input's value has no place).
pub(super) fn event_data(e: &mut WireEvent<'_>) -> Result<EventData, DropReason> {
    let kind = e.k.as_deref().ok_or(DropReason::MissingField)?;
    Ok(match kind {
        "view" => view(e)?,
        "move" => EventData::Move { x: coord(e.x)?, y: coord(e.y)? },
        "click" => EventData::Click {
            x: coord(e.x)?,
            y: coord(e.y)?,
            sel: text(e.sel.take())?,
            ex: opt_permille(e.ex)?,
            ey: opt_permille(e.ey)?,
            dead: e.dead.unwrap_or(false),
        },
        "scroll" => EventData::Scroll { y: coord(e.y)? },
        "resize" => EventData::Resize { w: coord(e.w)?, h: coord(e.h)? },
        "input" => EventData::Input { sel: text(e.sel.take())?, len: count(e.len)? },
        "focus" => EventData::Focus { sel: text(e.sel.take())?, form: text(e.form.take())? },
        "blur" => EventData::Blur { sel: text(e.sel.take())?, form: text(e.form.take())?, len: count(e.len)? },
        "submit" => EventData::Submit { form: text(e.form.take())? },
        "vis" => EventData::Vis { hidden: e.hidden.ok_or(DropReason::MissingField)? },
        "err" => EventData::Err { msg: text(e.msg.take())? },
        "snap" => EventData::Snap { d: document(e.d.take())? },
        "mut" => EventData::Mut { d: document(e.d.take())? },
        _ => return Err(DropReason::UnknownKind),
    })
}

/// A same-document (`spa`) view has no load of its own: any timing it carries is ignored, so
/// load figures only ever describe real page loads.
fn view(e: &mut WireEvent<'_>) -> Result<EventData, DropReason> {
    let spa = e.spa.unwrap_or(false);
    let timing = |v: Option<f64>| if spa { Ok(None) } else { opt_duration(v) };
    Ok(EventData::View(View {
        url: text(e.url.take())?,
        path: String::new(),
        referrer: opt_text(e.referrer.take()),
        title: opt_text(e.title.take()),
        vw: coord(e.vw)?,
        vh: coord(e.vh)?,
        dw: coord(e.dw)?,
        dh: coord(e.dh)?,
        load_ms: timing(e.load_ms)?,
        ttfb_ms: timing(e.ttfb_ms)?,
        spa,
    }))
}

/// Every stored string passes here (or [`document`]): control characters never reach storage.
fn text(value: Option<Cow<'_, str>>) -> Result<String, DropReason> {
    Ok(control::strip_controls(value.ok_or(DropReason::MissingField)?))
}

fn document(value: Option<serde_json::Value>) -> Result<serde_json::Value, DropReason> {
    let mut d = value.ok_or(DropReason::MissingField)?;
    control::strip_controls_in_document(&mut d);
    Ok(d)
}

fn opt_text(value: Option<Cow<'_, str>>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(control::strip_controls)
}

fn coord(value: Option<f64>) -> Result<f64, DropReason> {
    let v = value.ok_or(DropReason::MissingField)?;
    if v.is_finite() && v.abs() <= MAX_COORD {
        Ok(v)
    } else {
        Err(DropReason::BadNumber)
    }
}

fn opt_duration(value: Option<f64>) -> Result<Option<f64>, DropReason> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && (0.0..=3_600_000.0).contains(&v) => Ok(Some(v)),
        Some(_) => Err(DropReason::BadNumber),
    }
}

fn opt_permille(value: Option<f64>) -> Result<Option<u16>, DropReason> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => Ok(Some(v.round() as u16)),
        Some(_) => Err(DropReason::BadNumber),
    }
}

fn count(value: Option<f64>) -> Result<u32, DropReason> {
    let v = value.ok_or(DropReason::MissingField)?;
    if v.is_finite() && (0.0..=1_000_000.0).contains(&v) {
        Ok(v.round() as u32)
    } else {
        Err(DropReason::BadNumber)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decode::{parse, Format};

    const NOW: i64 = 1_764_374_400_000;

    fn batch(events: &str) -> String {
        format!(
            r#"{{"v":1,"site":"demo","vid":"{v}","sid":"{s}","seq":0,"sent":{NOW},"events":{events}}}"#,
            v = "a".repeat(32),
            s = "b".repeat(32)
        )
    }

    fn run(events: &str) -> Result<ValidBatch, IngestError> {
        let body = batch(events);
        validate(parse(Format::Json, body.as_bytes()).unwrap(), &Limits::default(), NOW)
    }

    #[test]
    fn keeps_good_events_and_counts_bad_ones() {
        let ok = run(&format!(
            r#"[{{"k":"move","t":{NOW},"x":1,"y":2}},{{"k":"warp","t":{NOW}}},{{"k":"scroll","t":{NOW}}},{{"k":"click","t":{NOW},"x":1,"y":1,"sel":"a","ex":2000}}]"#
        ))
        .unwrap();
        assert_eq!(ok.events.len(), 1);
        assert_eq!(ok.dropped.total(), 3);
        assert_eq!(ok.dropped.0[DropReason::UnknownKind as usize], 1);
        assert_eq!(ok.dropped.0[DropReason::MissingField as usize], 1);
        assert_eq!(ok.dropped.0[DropReason::BadNumber as usize], 1);
    }

    #[test]
    fn form_events_need_their_fields_and_never_keep_a_value() {
        let ok = run(&format!(
            r#"[{{"k":"focus","t":{NOW},"sel":"input#a","form":"form#f"}},{{"k":"blur","t":{NOW},"sel":"input#a","form":"","len":3,"value":"abc"}},{{"k":"submit","t":{NOW},"form":"form#f"}},{{"k":"blur","t":{NOW},"sel":"input#a","form":"f"}},{{"k":"focus","t":{NOW},"sel":"input#a"}}]"#
        ))
        .unwrap();
        assert_eq!(ok.events.len(), 3);
        assert_eq!(ok.dropped.0[DropReason::MissingField as usize], 2);
        assert_eq!(ok.events[1].data, EventData::Blur { sel: "input#a".into(), form: "".into(), len: 3 });
        let stored = serde_json::to_string(&ok.events).unwrap();
        assert!(!stored.contains("abc"), "no field can hold a value: {stored}");
    }

    #[test]
    fn decoding_keeps_only_known_fields_and_checks_lengths_after() {
        let long = "s".repeat(Limits::default().max_sel_len + 1);
        let ok = run(&format!(
            r#"[{{"k":"click","t":{NOW},"x":1,"y":1,"sel":"a\"b\u00e9","ex":null,"value":"secret","extra":{{"deep":[1]}}}},{{"k":"click","t":{NOW},"x":1,"y":1,"sel":"{long}"}},{{"t":{NOW},"x":1}}]"#
        ))
        .unwrap();
        assert_eq!(ok.events.len(), 1);
        let click = EventData::Click { x: 1.0, y: 1.0, sel: "a\"b\u{e9}".into(), ex: None, ey: None, dead: false };
        assert_eq!(ok.events[0].data, click, "escaped strings decode, null reads as absent");
        assert_eq!(ok.dropped.0[DropReason::TooLong as usize], 1);
        assert_eq!(ok.dropped.0[DropReason::MissingField as usize], 1);
        assert!(!serde_json::to_string(&ok.events).unwrap().contains("secret"), "unknown fields are never kept");
    }

    #[test]
    fn a_key_sent_twice_is_malformed() {
        let body = batch(&format!(r#"[{{"k":"move","t":{NOW},"x":1,"x":2,"y":2}}]"#));
        let err = parse(Format::Json, body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("duplicate field `x`"), "{err}");
    }

    #[test]
    fn nothing_valid_is_an_error() {
        assert!(matches!(run("[]"), Err(IngestError::NoValidEvent(_))));
        assert!(matches!(run(r#"[{"k":"move","t":1,"x":1,"y":2}]"#), Err(IngestError::NoValidEvent(_))));
    }

    #[test]
    fn corrects_client_clock_skew() {
        let body = format!(
            r#"{{"v":1,"site":"demo","vid":"{v}","sid":"{v}","seq":0,"sent":1000000,"events":[{{"k":"scroll","t":999000,"y":5}}]}}"#,
            v = "c".repeat(32)
        );
        let b = validate(parse(Format::Json, body.as_bytes()).unwrap(), &Limits::default(), NOW).unwrap();
        assert_eq!(b.events[0].t, NOW - 1000);
    }

    #[test]
    fn envelope_errors() {
        let body = batch("[]").replace(r#""v":1"#, r#""v":2"#);
        let err = validate(parse(Format::Json, body.as_bytes()).unwrap(), &Limits::default(), NOW).unwrap_err();
        assert!(err.to_string().contains("version"));
        let body = batch("[]").replace(&"a".repeat(32), "A");
        assert!(validate(parse(Format::Json, body.as_bytes()).unwrap(), &Limits::default(), NOW).is_err());
    }
}
