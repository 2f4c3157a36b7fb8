//! The load run's request body, shared by `benches/ceiling.rs` (which writes the bodies `wrk`
//! sends) and `benches/ingest.rs` (which measures inflating one of them).

use serde_json::{json, Value};

/// A batch as a visitor reading a page produces it: one view, then pointer moves, scrolls,
/// clicks and masked input, spread over two seconds.
pub fn batch(events: usize, sid: &str, seq: u32, t: i64) -> Value {
    let mut list = vec![json!({"k":"view","t":t,"url":"https://shop.example/products/42?utm_source=mail&ref=abc",
        "ref":"https://news.example/a","vw":1280,"vh":720,"dw":1280,"dh":5400,"load_ms":812.5,"ttfb_ms":95})];
    for i in 1..events {
        let ti = t + i as i64 * 40;
        list.push(match i % 10 {
            0 => json!({"k":"click","t":ti,"x":400+i,"y":900,"sel":"main > div.grid > a.card:nth-child(3)","ex":512,"ey":300}),
            1 => json!({"k":"scroll","t":ti,"y":i*12}),
            2 => json!({"k":"input","t":ti,"sel":"form#signup input[name=email]","len":14}),
            _ => json!({"k":"move","t":ti,"x":300+i*3,"y":500+i*2}),
        });
    }
    json!({"v":1,"site":"demo","vid":"0123456789abcdef0123456789abcdef","sid":sid,"seq":seq,
        "sent":t + events as i64 * 40 + 100,"events":list})
}
