//! The batch exactly as it arrives (JSON or MessagePack), lenient about unknown fields; each
//! event is turned into what the store keeps as soon as it is decoded.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::validate::{event_data, DropReason};
use crate::model::EventData;

/// Hard cap on events decoded from one batch, whatever the configured limit: decoding stops here
/// so that a small body of tiny events cannot blow up into a huge vector.
pub const HARD_MAX_EVENTS: usize = 10_000;

/// Events a batch usually carries (the snippet sends up to 50 at a time).
const TYPICAL_EVENTS: usize = 64;

/// A batch as the snippet sends it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct WireBatch<'a> {
    pub v: u32,
    #[serde(borrow)]
    pub site: Cow<'a, str>,
    #[serde(borrow)]
    pub vid: Cow<'a, str>,
    #[serde(borrow)]
    pub sid: Cow<'a, str>,
    pub seq: u32,
    pub sent: f64,
    #[schema(value_type = Vec<WireEvent>)]
    pub events: BoundedEvents,
}

/// The events of a batch, each already turned into what the store keeps (see [`DecodedEvent`]);
/// `truncated` is set when more than [`HARD_MAX_EVENTS`] were sent.
#[derive(Debug, Default)]
pub struct BoundedEvents {
    pub items: Vec<DecodedEvent>,
    pub truncated: bool,
}

/// One event as decoded: the client's time, and the event the store keeps — or why it cannot be
/// kept. Its strings are owned and free of control characters; the time and the length limits
/// are checked by [`super::validate`], which knows the batch's `sent` and the configured limits.
#[derive(Debug)]
pub struct DecodedEvent {
    pub t: Option<f64>,
    pub data: Result<EventData, DropReason>,
}

/// One event with every field any kind may carry; which ones must be present depends on `k`.
/// Filled field by field on the decoder's stack and turned into a [`DecodedEvent`] there: these
/// ~450 bytes of `Option`s are never moved into a vector.
#[derive(Debug, Default, utoipa::ToSchema)]
pub struct WireEvent<'a> {
    pub k: Option<Cow<'a, str>>,
    pub t: Option<f64>,
    pub url: Option<Cow<'a, str>>,
    #[serde(rename = "ref")]
    pub referrer: Option<Cow<'a, str>>,
    pub title: Option<Cow<'a, str>>,
    pub vw: Option<f64>,
    pub vh: Option<f64>,
    pub dw: Option<f64>,
    pub dh: Option<f64>,
    pub load_ms: Option<f64>,
    pub ttfb_ms: Option<f64>,
    pub spa: Option<bool>,
    pub x: Option<f64>,
    pub y: Option<f64>,
    pub sel: Option<Cow<'a, str>>,
    pub ex: Option<f64>,
    pub ey: Option<f64>,
    pub dead: Option<bool>,
    pub w: Option<f64>,
    pub h: Option<f64>,
    pub len: Option<f64>,
    pub hidden: Option<bool>,
    pub msg: Option<Cow<'a, str>>,
    pub d: Option<serde_json::Value>,
    pub form: Option<Cow<'a, str>>,
}

/// The keys of [`WireEvent`]; any other key is read and ignored.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    K,
    T,
    Url,
    Ref,
    Title,
    Vw,
    Vh,
    Dw,
    Dh,
    LoadMs,
    TtfbMs,
    Spa,
    X,
    Y,
    Sel,
    Ex,
    Ey,
    Dead,
    W,
    H,
    Len,
    Hidden,
    Msg,
    D,
    Form,
    #[serde(other)]
    Other,
}

impl<'de> WireEvent<'de> {
    /// Reads the value of `field` from `map` into its slot.
    fn read<A: MapAccess<'de>>(&mut self, field: Field, map: &mut A) -> Result<(), A::Error> {
        match field {
            Field::K => text(&mut self.k, "k", map),
            Field::T => slot(&mut self.t, "t", map),
            Field::Url => text(&mut self.url, "url", map),
            Field::Ref => text(&mut self.referrer, "ref", map),
            Field::Title => text(&mut self.title, "title", map),
            Field::Vw => slot(&mut self.vw, "vw", map),
            Field::Vh => slot(&mut self.vh, "vh", map),
            Field::Dw => slot(&mut self.dw, "dw", map),
            Field::Dh => slot(&mut self.dh, "dh", map),
            Field::LoadMs => slot(&mut self.load_ms, "load_ms", map),
            Field::TtfbMs => slot(&mut self.ttfb_ms, "ttfb_ms", map),
            Field::Spa => slot(&mut self.spa, "spa", map),
            Field::X => slot(&mut self.x, "x", map),
            Field::Y => slot(&mut self.y, "y", map),
            Field::Sel => text(&mut self.sel, "sel", map),
            Field::Ex => slot(&mut self.ex, "ex", map),
            Field::Ey => slot(&mut self.ey, "ey", map),
            Field::Dead => slot(&mut self.dead, "dead", map),
            Field::W => slot(&mut self.w, "w", map),
            Field::H => slot(&mut self.h, "h", map),
            Field::Len => slot(&mut self.len, "len", map),
            Field::Hidden => slot(&mut self.hidden, "hidden", map),
            Field::Msg => text(&mut self.msg, "msg", map),
            Field::D => slot(&mut self.d, "d", map),
            Field::Form => text(&mut self.form, "form", map),
            Field::Other => map.next_value::<IgnoredAny>().map(drop),
        }
    }
}

/// A field's value (`null` reads as absent); a key sent twice is an error, as serde's derive has it.
fn slot<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(A::Error::duplicate_field(name));
    }
    *slot = map.next_value()?;
    Ok(())
}

/// A string field, borrowed from the body unless it had escapes.
fn text<'de, A: MapAccess<'de>>(
    slot: &mut Option<Cow<'de, str>>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(A::Error::duplicate_field(name));
    }
    *slot = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
    Ok(())
}

/// `Cow<str>` that borrows when the deserializer can (serde's own `Cow` impl always copies).
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for DecodedEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor;

        impl<'de> Visitor<'de> for EventVisitor {
            type Value = DecodedEvent;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut wire = WireEvent::default();
                while let Some(field) = map.next_key::<Field>()? {
                    wire.read(field, &mut map)?;
                }
                Ok(DecodedEvent { t: wire.t, data: event_data(&mut wire) })
            }
        }

        deserializer.deserialize_map(EventVisitor)
    }
}

impl<'de> Deserialize<'de> for BoundedEvents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bounded;

        impl<'de> Visitor<'de> for Bounded {
            type Value = BoundedEvents;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of events")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // JSON gives no length: room for a typical batch instead of growing (and moving) it 7 times.
                let hint = seq.size_hint().unwrap_or(TYPICAL_EVENTS).min(HARD_MAX_EVENTS);
                let mut out = BoundedEvents { items: Vec::with_capacity(hint), truncated: false };
                while let Some(event) = seq.next_element::<DecodedEvent>()? {
                    if out.items.len() == HARD_MAX_EVENTS {
                        // Stop materialising; the caller rejects the batch as too large.
                        out.truncated = true;
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        break;
                    }
                    out.items.push(event);
                }
                Ok(out)
            }
        }

        deserializer.deserialize_seq(Bounded)
    }
}
