//! Domain types shared by every layer: what a stored batch, event and session are. No I/O here.

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub t: i64,
    #[serde(flatten)]
    pub data: EventData,
}

/// What happened. Field names match the batch format of DESIGN.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Events in time order.
    pub events: Vec<Event>,
}

/// What the operator API shows of one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// A site: who may send to it and how its data is treated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.accepts_any_origin() || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Site ids are short, URL-safe and lowercase so they can be used in paths and keys verbatim.
pub fn valid_site_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 (UTC) for a time in ms since the epoch.
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
        let bytes = rmp_serde::to_vec_named(&e).unwrap();
        assert_eq!(rmp_serde::from_slice::<Event>(&bytes).unwrap(), e);
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(-1), -1);
    }
}
