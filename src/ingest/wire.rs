//! The batch exactly as it arrives (JSON or MessagePack), lenient about unknown fields; each
//! event is turned into what the store keeps as soon as it is decoded.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::validate::{event_data, DropReason};
use crate::model::{Event, EventData};

/// Hard cap on events decoded from one batch, whatever the configured limit: decoding stops here
/// so that a small body of tiny events cannot blow up into a huge vector.
pub const HARD_MAX_EVENTS: usize = 10_000;

/// Events a batch usually carries (the snippet sends up to 50 at a time).
pub(super) const TYPICAL_EVENTS: usize = 64;

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
///
/// Kept events are laid out as the store wants them, so that validation checks and corrects
/// them in place instead of moving each (~180 bytes) into a second vector.
#[derive(Debug, Default)]
pub struct BoundedEvents {
    /// The events that decoded, in the order sent; `t` is 0 until validation sets it.
    pub kept: Vec<Event>,
    /// The client's time of each of `kept`, as sent (not yet checked).
    pub client_t: Vec<Option<f64>>,
    /// The events that cannot be kept whatever their time: the time sent, and why.
    pub refused: Vec<(Option<f64>, DropReason)>,
    pub truncated: bool,
}

impl BoundedEvents {
    /// Events decoded (kept or refused).
    pub fn len(&self) -> usize {
        self.kept.len() + self.refused.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn push(&mut self, event: DecodedEvent) {
        match event.data {
            Ok(data) => {
                self.kept.push(Event { t: 0, data });
                self.client_t.push(event.t);
            }
            Err(reason) => self.refused.push((event.t, reason)),
        }
    }
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

/// Decodes one event straight into the batch's vectors: returning it by value instead would
/// copy its ~200 bytes once per layer of serde's visitors (measured: ~6 % of the request path).
struct IntoBatch<'v>(&'v mut BoundedEvents);

impl<'de> DeserializeSeed<'de> for IntoBatch<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IntoBatch<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut wire = WireEvent::default();
        while let Some(field) = map.next_key::<Field>()? {
            wire.read(field, &mut map)?;
        }
        self.0.push(DecodedEvent { t: wire.t, data: event_data(&mut wire) });
        Ok(())
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
                let mut out = BoundedEvents {
                    kept: Vec::with_capacity(hint),
                    client_t: Vec::with_capacity(hint),
                    ..BoundedEvents::default()
                };
                while seq.next_element_seed(IntoBatch(&mut out))?.is_some() {
                    if out.len() > HARD_MAX_EVENTS {
                        // Stop materialising; the caller rejects the batch as too large.
                        out.truncated = true;
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        break;
                    }
                }
                Ok(out)
            }
        }

        deserializer.deserialize_seq(Bounded)
    }
}
