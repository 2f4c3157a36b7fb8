//! Domain types shared by every layer: what a stored batch, event and session are. No I/O here.

use serde::{Deserialize, Serialize};

mod segment;

/// A 128-bit id sent by the snippet as 32 lowercase hex characters (`vid`, `sid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id128(pub [u8; 16]);

impl Id128 {
    /// Parses exactly 32 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The pseudonymous key a visitor is stored under: `HMAC-SHA256(secret, site ‖ vid)`, truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VisitorKey(pub [u8; 16]);

impl VisitorKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Id128::parse(s).map(|id| Self(id.0))
    }
}

/// One event as stored: scrubbed, with the server-corrected time in ms since the epoch.
/// Serialised flat, as in the batch format: `{"t":…,"k":"click","x":…}`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub t: i64,
    #[serde(flatten)]
    pub data: EventData,
}

/// Written by hand because serde's `flatten` buffers every field: events are serialised on the
/// writer's hot path.
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2 + self.data.field_count()))?;
        m.serialize_entry("t", &self.t)?;
        m.serialize_entry("k", self.data.kind())?;
        self.data.serialize_fields(&mut m)?;
        m.end()
    }
}

/// Writes `key` only when there is a value.
fn entry_if<M: serde::ser::SerializeMap, T: Serialize>(
    m: &mut M,
    key: &str,
    value: Option<&T>,
) -> Result<(), M::Error> {
    match value {
        Some(v) => m.serialize_entry(key, v),
        None => Ok(()),
    }
}

impl EventData {
    /// How many entries [`EventData::serialize_fields`] writes (a map's length comes first).
    fn field_count(&self) -> usize {
        match self {
            EventData::View(v) => v.field_count(),
            EventData::Click { ex, ey, dead, .. } => {
                3 + usize::from(ex.is_some()) + usize::from(ey.is_some()) + usize::from(*dead)
            }
            EventData::Move { .. } | EventData::Resize { .. } | EventData::Input { .. } => 2,
            EventData::Focus { .. } => 2,
            EventData::Blur { .. } => 3,
            EventData::Submit { .. } => 1,
            EventData::Scroll { .. }
            | EventData::Vis { .. }
            | EventData::Err { .. }
            | EventData::Snap { .. }
            | EventData::Mut { .. } => 1,
        }
    }

    /// The entries besides `t` and `k`, flat, as in the batch format.
    fn serialize_fields<M: serde::ser::SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        match self {
            EventData::View(v) => v.serialize_fields(m)?,
            EventData::Move { x, y } => {
                m.serialize_entry("x", x)?;
                m.serialize_entry("y", y)?;
            }
            EventData::Click { x, y, sel, ex, ey, dead } => {
                m.serialize_entry("x", x)?;
                m.serialize_entry("y", y)?;
                m.serialize_entry("sel", sel)?;
                entry_if(m, "ex", ex.as_ref())?;
                entry_if(m, "ey", ey.as_ref())?;
                entry_if(m, "dead", dead.then_some(&true))?;
            }
            EventData::Scroll { y } => m.serialize_entry("y", y)?,
            EventData::Resize { w, h } => {
                m.serialize_entry("w", w)?;
                m.serialize_entry("h", h)?;
            }
            EventData::Input { sel, len } => {
                m.serialize_entry("sel", sel)?;
                m.serialize_entry("len", len)?;
            }
            EventData::Focus { sel, form } => {
                m.serialize_entry("sel", sel)?;
                m.serialize_entry("form", form)?;
            }
            EventData::Blur { sel, form, len } => {
                m.serialize_entry("sel", sel)?;
                m.serialize_entry("form", form)?;
                m.serialize_entry("len", len)?;
            }
            EventData::Submit { form } => m.serialize_entry("form", form)?,
            EventData::Vis { hidden } => m.serialize_entry("hidden", hidden)?,
            EventData::Err { msg } => m.serialize_entry("msg", msg)?,
            EventData::Snap { d } | EventData::Mut { d } => m.serialize_entry("d", d)?,
        }
        Ok(())
    }
}

impl View {
    fn field_count(&self) -> usize {
        6 + usize::from(self.referrer.is_some())
            + usize::from(self.title.is_some())
            + usize::from(self.load_ms.is_some())
            + usize::from(self.ttfb_ms.is_some())
            + usize::from(self.spa)
    }

    fn serialize_fields<M: serde::ser::SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("url", &self.url)?;
        m.serialize_entry("path", &self.path)?;
        entry_if(m, "ref", self.referrer.as_ref())?;
        entry_if(m, "title", self.title.as_ref())?;
        m.serialize_entry("vw", &self.vw)?;
        m.serialize_entry("vh", &self.vh)?;
        m.serialize_entry("dw", &self.dw)?;
        m.serialize_entry("dh", &self.dh)?;
        entry_if(m, "load_ms", self.load_ms.as_ref())?;
        entry_if(m, "ttfb_ms", self.ttfb_ms.as_ref())?;
        entry_if(m, "spa", self.spa.then_some(&true))
    }
}

/// What happened. Field names match the batch format of `../shared/DESIGN.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum EventData {
    View(View),
    Move {
        x: f64,
        y: f64,
    },
    Click {
        x: f64,
        y: f64,
        sel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ex: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ey: Option<u16>,
        #[serde(default, skip_serializing_if = "is_false")]
        dead: bool,
    },
    Scroll {
        y: f64,
    },
    Resize {
        w: f64,
        h: f64,
    },
    Input {
        sel: String,
        len: u32,
    },
    /// A form field gained focus; `form` is the form's short CSS path, `""` outside a form.
    Focus {
        sel: String,
        form: String,
    },
    /// A form field lost focus, holding `len` characters (never the value).
    Blur {
        sel: String,
        form: String,
        len: u32,
    },
    Submit {
        form: String,
    },
    Vis {
        hidden: bool,
    },
    Err {
        msg: String,
    },
    Snap {
        d: serde_json::Value,
    },
    Mut {
        d: serde_json::Value,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A page view. `url` is normalised (allowed query parameters only); `path` is what rollups group by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct View {
    pub url: String,
    pub path: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub vw: f64,
    pub vh: f64,
    pub dw: f64,
    pub dh: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<f64>,
    /// A same-document navigation (history API or hash route): no load timing of its own.
    #[serde(default, skip_serializing_if = "is_false")]
    pub spa: bool,
}

impl EventData {
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::View(_) => "view",
            EventData::Move { .. } => "move",
            EventData::Click { .. } => "click",
            EventData::Scroll { .. } => "scroll",
            EventData::Resize { .. } => "resize",
            EventData::Input { .. } => "input",
            EventData::Focus { .. } => "focus",
            EventData::Blur { .. } => "blur",
            EventData::Submit { .. } => "submit",
            EventData::Vis { .. } => "vis",
            EventData::Err { .. } => "err",
            EventData::Snap { .. } => "snap",
            EventData::Mut { .. } => "mut",
        }
    }
}

/// Coarse client facts derived from the User-Agent; the UA itself is never kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub device: String,
    pub browser: String,
}

/// A batch that passed decoding and the privacy layer: the only shape that reaches a store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    pub site: String,
    pub visitor: VisitorKey,
    pub sid: Id128,
    pub seq: u32,
    /// Server receive time, ms since the epoch.
    pub received: i64,
    pub client: Client,
    /// Events in time order. Once queued for the writer, the `d` of `snap`/`mut` events is
    /// `null`: `encoded` holds it, and nothing after the queue reads it.
    pub events: Vec<Event>,
    /// `events` as a JSON array, encoded by the request handler so the single writer only
    /// copies bytes.
    pub encoded: bytes::Bytes,
}

impl StoredBatch {
    /// A batch of already-protected `events`, encoded once for the segment.
    pub fn new(
        site: String,
        visitor: VisitorKey,
        sid: Id128,
        seq: u32,
        received: i64,
        client: Client,
        events: Vec<Event>,
    ) -> Self {
        let encoded = Self::encode_events(&events);
        Self { site, visitor, sid, seq, received, client, events, encoded }
    }

    /// Encodes `events` into [`StoredBatch::encoded`] (a JSON array that reads back as the same
    /// events; see [`segment`]).
    pub fn encode_events(events: &[Event]) -> bytes::Bytes {
        bytes::Bytes::from(segment::encode(events))
    }
}

/// A session's events in the client's own order: batch by batch in `seq` order, each batch in
/// its stored order (the client's time order, same-time events as sent). Each batch's clock
/// correction differs (it includes that batch's network delay), so corrected times of
/// neighbouring batches can cross; a time earlier than the one before it is raised to it, so the
/// list is also in time order and a stable sort by `t` (as the replay does) keeps it as the
/// client recorded it.
pub fn in_client_order(mut batches: Vec<(u32, Vec<Event>)>) -> Vec<Event> {
    batches.sort_by_key(|(seq, _)| *seq);
    let mut out: Vec<Event> = Vec::with_capacity(batches.iter().map(|(_, e)| e.len()).sum());
    for (_, events) in batches {
        out.extend(events);
    }
    raise_to_running_max(&mut out);
    out
}

/// Makes `t` non-decreasing in list order without moving any event.
pub fn raise_to_running_max(events: &mut [Event]) {
    let mut last = i64::MIN;
    for e in events {
        last = last.max(e.t);
        e.t = last;
    }
}

/// What the operator API shows of one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionSummary {
    pub id: String,
    pub visitor: String,
    pub start: i64,
    pub duration_ms: i64,
    pub pageviews: u32,
    pub events: u32,
    pub clicks: u32,
    pub entry: Option<String>,
    pub device: String,
    pub browser: String,
    pub replay: bool,
    /// 3+ clicks within 1 s inside 30 px, counted once per burst.
    pub rage_clicks: u32,
    /// Clicks the snippet reported as changing nothing.
    pub dead_clicks: u32,
    /// Clicks followed within 1 s by an error on the same page.
    #[serde(default)]
    pub error_clicks: u32,
    /// Pageviews left within 5 s by returning to the previous path.
    #[serde(default)]
    pub quick_backs: u32,
}

/// A site: who may send to it and how its data is treated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteSettings {
    pub id: String,
    /// Allowed `Origin`s (`scheme://host[:port]`); `["*"]` accepts any.
    pub origins: Vec<String>,
    #[serde(default)]
    pub keep_titles: bool,
    /// Query parameters kept in stored URLs: exact names or prefixes ending in `*`.
    #[serde(default = "default_allowed_params")]
    pub allowed_params: Vec<String>,
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Origins whose stylesheets, images and fonts the collector captures for replays; `None`:
    /// the site's `origins` (without `"*"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_origins: Option<Vec<String>>,
    /// Allow capturing assets from private, loopback or link-local addresses (intranet sites).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assets_private: bool,
    /// How the replay masks page text (snippet and server alike).
    #[serde(default)]
    pub mask_text: MaskText,
    /// Replays carry low-rate PNG/JPEG frames of the page's `<canvas>` elements (a canvas can show
    /// what a visitor typed or drew, and pixels cannot be masked: off unless the site asks; never
    /// with `mask_text = "all"`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay_canvas: bool,
}

/// Replay text masking of a site: `digits` masks every word with a digit or `@` in it (numbers,
/// e-mails, dates, prices) and leaves other words readable; `all` masks every character of page
/// text (Clarity's strict mode), because names and street addresses have no pattern.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaskText {
    #[default]
    Digits,
    All,
}

impl MaskText {
    pub fn as_str(self) -> &'static str {
        match self {
            MaskText::Digits => "digits",
            MaskText::All => "all",
        }
    }
}

pub fn default_allowed_params() -> Vec<String> {
    vec!["utm_*".to_owned()]
}

pub fn default_retention_days() -> u32 {
    30
}

impl SiteSettings {
    pub fn accepts_any_origin(&self) -> bool {
        self.origins.iter().any(|o| o == "*")
    }

    /// `Origin: null` can come from any sandboxed frame anywhere: not even `"*"` accepts it,
    /// only a site that lists `"null"` itself.
    pub fn allows_origin(&self, origin: &str) -> bool {
        (self.accepts_any_origin() && origin != "null") || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Whether replays may carry canvas frames: asked for, and page text not masked entirely.
    pub fn canvas_frames(&self) -> bool {
        self.replay_canvas && self.mask_text != MaskText::All
    }
}

/// Site ids are short, URL-safe and lowercase so they can be used in paths and keys verbatim.
pub fn valid_site_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 (UTC) for a time in ms since the epoch.
/// The one clock: ms since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub fn day_of(ms: i64) -> i32 {
    ms.div_euclid(DAY_MS) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id128_requires_32_lowercase_hex() {
        assert!(Id128::parse("0123456789abcdef0123456789abcdef").is_some());
        assert!(Id128::parse("0123456789ABCDEF0123456789abcdef").is_none());
        assert!(Id128::parse("0123456789abcdef0123456789abcde").is_none());
        assert!(Id128::parse("0123456789abcdef0123456789abcdeg").is_none());
    }

    #[test]
    fn events_round_trip_with_batch_field_names() {
        let e = Event {
            t: 5,
            data: EventData::Click { x: 1.0, y: 2.0, sel: "a".into(), ex: Some(10), ey: None, dead: false },
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json, serde_json::json!({"t":5,"k":"click","x":1.0,"y":2.0,"sel":"a","ex":10}));
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
        let bytes = rmp_serde::to_vec_named(&e).unwrap();
        assert_eq!(rmp_serde::from_slice::<Event>(&bytes).unwrap(), e);
        let view = Event {
            t: 1,
            data: EventData::View(View {
                url: "https://a.example/".into(),
                path: "/".into(),
                referrer: Some("https://b.example".into()),
                title: None,
                vw: 1.0,
                vh: 2.0,
                dw: 3.0,
                dh: 4.0,
                load_ms: Some(5.0),
                ttfb_ms: None,
                spa: false,
            }),
        };
        let bytes = rmp_serde::to_vec_named(&view).unwrap();
        assert_eq!(rmp_serde::from_slice::<Event>(&bytes).unwrap(), view);
    }

    /// The hand-written `Serialize` writes what serde's derive on `EventData` would, plus `t`,
    /// and announces the right map length (MessagePack writes it first).
    #[test]
    fn hand_written_serialization_matches_the_derive_for_every_kind() {
        let view = |some: bool| {
            EventData::View(View {
                url: "https://a.example/".into(),
                path: "/".into(),
                referrer: some.then(|| "https://b.example".into()),
                title: some.then(|| "T".into()),
                vw: 1.0,
                vh: 2.0,
                dw: 3.0,
                dh: 4.0,
                load_ms: some.then_some(5.0),
                ttfb_ms: some.then_some(6.0),
                spa: some,
            })
        };
        let click = |some: bool| EventData::Click {
            x: 1.0,
            y: 2.0,
            sel: "a".into(),
            ex: some.then_some(3),
            ey: some.then_some(4),
            dead: some,
        };
        let all = [
            view(true),
            view(false),
            click(true),
            click(false),
            EventData::Move { x: 1.0, y: 2.0 },
            EventData::Scroll { y: 3.0 },
            EventData::Resize { w: 1.0, h: 2.0 },
            EventData::Input { sel: "i".into(), len: 3 },
            EventData::Focus { sel: "i".into(), form: "f".into() },
            EventData::Blur { sel: "i".into(), form: "f".into(), len: 2 },
            EventData::Submit { form: "f".into() },
            EventData::Vis { hidden: true },
            EventData::Err { msg: "m".into() },
            EventData::Snap { d: serde_json::json!({"a": 1}) },
            EventData::Mut { d: serde_json::json!([1]) },
        ];
        for data in all {
            let e = Event { t: 7, data };
            let mut derived = serde_json::to_value(&e.data).unwrap();
            derived["t"] = 7.into();
            assert_eq!(serde_json::to_value(&e).unwrap(), derived);
            let bytes = rmp_serde::to_vec_named(&e).unwrap();
            assert_eq!(rmp_serde::from_slice::<Event>(&bytes).unwrap(), e);
        }
    }

    #[test]
    fn client_order_is_seq_then_position_whatever_the_corrected_times() {
        let ev = |t: i64, y: f64| Event { t, data: EventData::Scroll { y } };
        // batch 1 arrived with a smaller delay than batch 0: its corrected times are earlier
        let batches = vec![(1, vec![ev(90, 3.0), ev(95, 4.0)]), (0, vec![ev(100, 1.0), ev(80, 2.0)])];
        let out = in_client_order(batches);
        let ys: Vec<f64> = out
            .iter()
            .map(|e| match e.data {
                EventData::Scroll { y } => y,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ys, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(out.iter().map(|e| e.t).collect::<Vec<_>>(), [100, 100, 100, 100]);
    }

    #[test]
    fn form_events_round_trip() {
        for (data, json) in [
            (
                EventData::Focus { sel: "input[name=email]".into(), form: "form#signup".into() },
                serde_json::json!({"t":1,"k":"focus","sel":"input[name=email]","form":"form#signup"}),
            ),
            (
                EventData::Blur { sel: "input#q".into(), form: "".into(), len: 4 },
                serde_json::json!({"t":1,"k":"blur","sel":"input#q","form":"","len":4}),
            ),
            (
                EventData::Submit { form: "form#signup".into() },
                serde_json::json!({"t":1,"k":"submit","form":"form#signup"}),
            ),
        ] {
            let e = Event { t: 1, data };
            assert_eq!(serde_json::to_value(&e).unwrap(), json);
            assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
            let bytes = rmp_serde::to_vec_named(&e).unwrap();
            assert_eq!(rmp_serde::from_slice::<Event>(&bytes).unwrap(), e);
        }
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(-1), -1);
    }
}
