//! The stored segment: a batch's events as one JSON array, written straight into bytes by the
//! request handler (serde's map serialiser was ~10 % of a collect's request-task CPU).
//!
//! Same keys, in the same order, as [`Event`]'s `Serialize`; whole numbers are written as
//! integers (`300`, not `300.0`), which every reader (serde into `f64`, JavaScript) reads as the
//! same number. Strings that need escaping, non-whole numbers and replay documents go through
//! serde_json.

use super::{Event, EventData, View};

/// `events` as a JSON array.
pub fn encode(events: &[Event]) -> Vec<u8> {
    let mut out = Out(Vec::with_capacity(64 * events.len() + 2));
    out.0.push(b'[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.0.push(b',');
        }
        out.event(event);
    }
    out.0.push(b']');
    out.0
}

struct Out(Vec<u8>);

impl Out {
    fn event(&mut self, e: &Event) {
        self.raw("{\"t\":");
        self.0.extend_from_slice(itoa::Buffer::new().format(e.t).as_bytes());
        self.raw(",\"k\":\"");
        self.raw(e.data.kind());
        self.0.push(b'"');
        match &e.data {
            EventData::View(v) => self.view(v),
            EventData::Move { x, y } => {
                self.number("x", *x);
                self.number("y", *y);
            }
            EventData::Click { x, y, sel, ex, ey, dead } => {
                self.number("x", *x);
                self.number("y", *y);
                self.string("sel", sel);
                if let Some(ex) = ex {
                    self.number("ex", f64::from(*ex));
                }
                if let Some(ey) = ey {
                    self.number("ey", f64::from(*ey));
                }
                if *dead {
                    self.raw(",\"dead\":true");
                }
            }
            EventData::Scroll { y } => self.number("y", *y),
            EventData::Resize { w, h } => {
                self.number("w", *w);
                self.number("h", *h);
            }
            EventData::Input { sel, len } => {
                self.string("sel", sel);
                self.number("len", f64::from(*len));
            }
            EventData::Focus { sel, form } => {
                self.string("sel", sel);
                self.string("form", form);
            }
            EventData::Blur { sel, form, len } => {
                self.string("sel", sel);
                self.string("form", form);
                self.number("len", f64::from(*len));
            }
            EventData::Submit { form } => self.string("form", form),
            EventData::Vis { hidden } => self.raw(if *hidden { ",\"hidden\":true" } else { ",\"hidden\":false" }),
            EventData::Err { msg } => self.string("msg", msg),
            EventData::Snap { d } | EventData::Mut { d } => {
                self.key("d");
                serde_json::to_writer(&mut self.0, d).expect("a JSON value always serialises");
            }
        }
        self.0.push(b'}');
    }

    fn view(&mut self, v: &View) {
        self.string("url", &v.url);
        self.string("path", &v.path);
        if let Some(r) = &v.referrer {
            self.string("ref", r);
        }
        if let Some(t) = &v.title {
            self.string("title", t);
        }
        self.number("vw", v.vw);
        self.number("vh", v.vh);
        self.number("dw", v.dw);
        self.number("dh", v.dh);
        if let Some(ms) = v.load_ms {
            self.number("load_ms", ms);
        }
        if let Some(ms) = v.ttfb_ms {
            self.number("ttfb_ms", ms);
        }
        if v.spa {
            self.raw(",\"spa\":true");
        }
    }

    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    /// `,"name":` (every field but `t` follows another).
    fn key(&mut self, name: &str) {
        self.raw(",\"");
        self.raw(name);
        self.raw("\":");
    }

    fn number(&mut self, name: &str, v: f64) {
        self.key(name);
        // Exactly representable as an integer, so reading it back gives the same `f64`. (The cast
        // round trip tells a whole number without `fract`, a libm call on baseline x86-64.)
        let whole = v as i64;
        if whole as f64 == v && v.abs() < 9_007_199_254_740_992.0 {
            self.0.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
        } else {
            serde_json::to_writer(&mut self.0, &v).expect("a number always serialises");
        }
    }

    fn string(&mut self, name: &str, s: &str) {
        self.key(name);
        if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            serde_json::to_writer(&mut self.0, s).expect("a string always serialises");
        } else {
            self.0.push(b'"');
            self.raw(s);
            self.0.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::View;

    fn every_kind() -> Vec<EventData> {
        let view = |some: bool| {
            EventData::View(View {
                url: "https://a.example/\"q\"".into(),
                path: "/".into(),
                referrer: some.then(|| "https://b.example".into()),
                title: some.then(|| "T \\ \u{e9}".into()),
                vw: 1280.0,
                vh: 720.5,
                dw: -3.0,
                dh: 1e300,
                load_ms: some.then_some(812.5),
                ttfb_ms: some.then_some(95.0),
                spa: some,
            })
        };
        let click = |some: bool| EventData::Click {
            x: 0.1,
            y: -0.0,
            sel: "main > a:nth-child(3)".into(),
            ex: some.then_some(512),
            ey: some.then_some(0),
            dead: some,
        };
        vec![
            view(true),
            view(false),
            click(true),
            click(false),
            EventData::Move { x: 9_007_199_254_740_993.0, y: 2.0 },
            EventData::Scroll { y: 3.25 },
            EventData::Resize { w: 1.0, h: 2.0 },
            EventData::Input { sel: "i\u{1}".into(), len: 3 },
            EventData::Focus { sel: "i".into(), form: "".into() },
            EventData::Blur { sel: "i".into(), form: "f".into(), len: 2 },
            EventData::Submit { form: "f".into() },
            EventData::Vis { hidden: true },
            EventData::Vis { hidden: false },
            EventData::Err { msg: "m\n".into() },
            EventData::Snap { d: serde_json::json!({"a": [1, 2.5, "x"]}) },
            EventData::Mut { d: serde_json::json!([1]) },
        ]
    }

    /// The segment holds what serde would write, numbers compared by value, and reads back as
    /// the same events.
    #[test]
    fn reads_back_as_the_same_events_with_the_same_keys_in_order() {
        let events: Vec<Event> =
            every_kind().into_iter().enumerate().map(|(i, data)| Event { t: i as i64 - 1, data }).collect();
        let encoded = encode(&events);
        let back: Vec<Event> = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(back, events);
        let ours: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
        let serde = serde_json::to_value(&events).unwrap();
        assert_eq!(ours.as_array().unwrap().len(), events.len());
        for (a, b) in ours.as_array().unwrap().iter().zip(serde.as_array().unwrap()) {
            let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for (k, v) in a {
                match (v, &b[k]) {
                    (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
                        assert_eq!(x.as_f64(), y.as_f64(), "{k}");
                    }
                    (x, y) => assert_eq!(x, y, "{k}"),
                }
            }
        }
    }

    #[test]
    fn whole_numbers_are_integers_and_empty_is_an_array() {
        let e = Event { t: 7, data: EventData::Move { x: 300.0, y: 0.5 } };
        assert_eq!(encode(&[e]), br#"[{"t":7,"k":"move","x":300,"y":0.5}]"#);
        assert_eq!(encode(&[]), b"[]");
    }
}
