//! Decoding and validating a realistic 50-event batch: JSON vs MessagePack, plain vs gzip; and
//! the whole request path up to the writer's queue (inflate, decode, validate, privacy, the
//! encoded segment), the CPU a collect spends before the store sees it.

use std::io::Write;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hushtale::ingest::{decode, validate, Dropped, Encoding, Format, Limits};
use hushtale::model::{Client, SiteSettings};
use hushtale::privacy::{self, VisitorKeyer};
use hushtale::sites::Site;
use serde_json::{json, Value};

pub fn sample_batch(n: usize) -> Value {
    let t = 1_764_374_400_000i64;
    let mut events = vec![json!({"k":"view","t":t,"url":"https://shop.example/products/42?utm_source=mail",
        "ref":"https://news.example/","vw":1280,"vh":720,"dw":1280,"dh":5400,"load_ms":812.5,"ttfb_ms":95})];
    for i in 1..n {
        events.push(match i % 10 {
            0 => json!({"k":"click","t":t+i as i64*40,"x":400+i,"y":900,"sel":"main > div.grid > a.card:nth-child(3)","ex":512,"ey":300}),
            1 => json!({"k":"scroll","t":t+i as i64*40,"y":i*12}),
            2 => json!({"k":"input","t":t+i as i64*40,"sel":"form#signup input[name=email]","len":14}),
            _ => json!({"k":"move","t":t+i as i64*40,"x":300+i*3,"y":500+i*2}),
        });
    }
    json!({"v":1,"site":"demo","vid":"0123456789abcdef0123456789abcdef","sid":"fedcba9876543210fedcba9876543210",
        "seq":3,"sent":t+n as i64*40,"events":events})
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn bench_decode(c: &mut Criterion) {
    let batch = sample_batch(50);
    let json_bytes = Bytes::from(serde_json::to_vec(&batch).unwrap());
    let mp_bytes = Bytes::from(rmp_serde::to_vec_named(&batch).unwrap());
    let json_gz = Bytes::from(gzip(&json_bytes));
    let mp_gz = Bytes::from(gzip(&mp_bytes));
    let limits = Limits::default();
    let now = 1_764_374_402_000;

    let mut g = c.benchmark_group("decode_validate_50_events");
    g.throughput(Throughput::Elements(50));
    for (name, format, encoding, body) in [
        ("json", Format::Json, Encoding::Identity, json_bytes),
        ("msgpack", Format::MessagePack, Encoding::Identity, mp_bytes),
        ("json+gzip", Format::Json, Encoding::Gzip, json_gz),
        ("msgpack+gzip", Format::MessagePack, Encoding::Gzip, mp_gz),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(format!("{name} ({} B)", body.len())), &body, |b, body| {
            b.iter(|| {
                let raw = decode::decompress(body.clone(), encoding, 4 << 20).unwrap();
                let wire = decode::parse(format, &raw).unwrap();
                validate::validate(wire, &limits, now).unwrap().events.len()
            })
        });
    }
    g.finish();
}

/// What `POST /collect` does between reading the body and queueing it for the writer.
fn bench_request_path(c: &mut Criterion) {
    let batch = sample_batch(50);
    let json_bytes = Bytes::from(serde_json::to_vec(&batch).unwrap());
    let mp_gz = Bytes::from(gzip(&rmp_serde::to_vec_named(&batch).unwrap()));
    let limits = Limits::default();
    let now = 1_764_374_402_000;
    let settings: SiteSettings = serde_json::from_value(json!({"id": "demo", "origins": ["*"]})).unwrap();
    let site = Site::new(settings);
    let keyer = VisitorKeyer::new(&[7; 32]);
    let client = Client { device: "desktop".into(), browser: "chrome".into() };

    let mut g = c.benchmark_group("request_path_50_events");
    g.throughput(Throughput::Elements(50));
    for (name, format, encoding, body) in [
        ("json", Format::Json, Encoding::Identity, json_bytes),
        ("msgpack+gzip", Format::MessagePack, Encoding::Gzip, mp_gz),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                let raw = decode::decompress(body.clone(), encoding, 4 << 20).unwrap();
                let wire = decode::parse(format, &raw).unwrap();
                let valid = validate::validate(wire, &limits, now).unwrap();
                let mut dropped = Dropped::default();
                privacy::protect(&keyer, &site, valid, client.clone(), now, &mut dropped).unwrap().encoded.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_request_path);
criterion_main!(benches);
