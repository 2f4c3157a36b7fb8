//! The batch exactly as it arrives (JSON or MessagePack): borrowed, lenient about unknown fields.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// Hard cap on events decoded from one batch, whatever the configured limit: decoding stops here
/// so that a small body of tiny events cannot blow up into a huge vector.
pub const HARD_MAX_EVENTS: usize = 10_000;

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
    #[serde(borrow)]
    #[schema(value_type = Vec<WireEvent>)]
    pub events: BoundedEvents<'a>,
}

/// The events of a batch; `truncated` is set when more than [`HARD_MAX_EVENTS`] were sent.
#[derive(Debug, Default)]
pub struct BoundedEvents<'a> {
    pub items: Vec<WireEvent<'a>>,
    pub truncated: bool,
}

/// One event with every field any kind may carry; which ones must be present depends on `k`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct WireEvent<'a> {
    #[serde(borrow)]
    pub k: Option<Cow<'a, str>>,
    pub t: Option<f64>,
    #[serde(borrow)]
    pub url: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "ref")]
    pub referrer: Option<Cow<'a, str>>,
    #[serde(borrow)]
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
    #[serde(borrow)]
    pub sel: Option<Cow<'a, str>>,
    pub ex: Option<f64>,
    pub ey: Option<f64>,
    pub dead: Option<bool>,
    pub w: Option<f64>,
    pub h: Option<f64>,
    pub len: Option<f64>,
    pub hidden: Option<bool>,
    #[serde(borrow)]
    pub msg: Option<Cow<'a, str>>,
    pub d: Option<serde_json::Value>,
    #[serde(borrow)]
    pub form: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for BoundedEvents<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bounded<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for Bounded<'a> {
            type Value = BoundedEvents<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of events")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let hint = seq.size_hint().unwrap_or(0).min(HARD_MAX_EVENTS);
                let mut out = BoundedEvents { items: Vec::with_capacity(hint), truncated: false };
                while let Some(event) = seq.next_element::<WireEvent<'a>>()? {
                    if out.items.len() == HARD_MAX_EVENTS {
                        // Stop materialising; the caller rejects the batch as too large.
                        out.truncated = true;
                        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                        break;
                    }
                    out.items.push(event);
                }
                Ok(out)
            }
        }

        deserializer.deserialize_seq(Bounded(PhantomData))
    }
}
