//! Decoding and validating a realistic 50-event batch: JSON vs MessagePack, plain vs gzip; and
//! the whole request path up to the writer's queue (inflate, decode, validate, privacy, the
//! encoded segment), the CPU a collect spends before the store sees it; and the steps of that
//! path replaced in the fifth session beside what they replaced.

use std::borrow::Cow;
use std::io::Write;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hushtale::ingest::{decode, validate, Dropped, Encoding, Format, Limits};
use hushtale::model::{Client, EventData, SiteSettings, StoredBatch};
use hushtale::privacy::{self, scrub, VisitorKeyer};
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

/// The batch decoder alone on the load batch (no validation beyond what decoding does): the
/// direct reader (`decode::parse`) beside the serde decoders it stands in front of.
fn bench_parse(c: &mut Criterion) {
    let batch = sample_batch(50);
    let json_bytes = serde_json::to_vec(&batch).unwrap();
    let mp_bytes = rmp_serde::to_vec_named(&batch).unwrap();
    let mut g = c.benchmark_group("parse_50_events");
    g.throughput(Throughput::Elements(50));
    for (name, format, body) in [("json", Format::Json, &json_bytes), ("msgpack", Format::MessagePack, &mp_bytes)] {
        g.bench_function(format!("{name}/direct"), |b| b.iter(|| decode::parse(format, body).unwrap().events.len()));
        g.bench_function(format!("{name}/serde"), |b| {
            b.iter(|| decode::parse_serde(format, body).unwrap().events.len())
        });
    }
    g.finish();
    // Inflating the MessagePack body: the one-call inflate beside flate2's streaming decoder.
    let mp_gz = Bytes::from(gzip(&mp_bytes));
    let mut g = c.benchmark_group("inflate_msgpack_body");
    g.bench_function("one_call", |b| {
        b.iter(|| decode::decompress(mp_gz.clone(), Encoding::Gzip, 4 << 20).unwrap().len())
    });
    g.bench_function("stream", |b| b.iter(|| decode::gunzip_stream(&mp_gz, 4 << 20).unwrap().len()));
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

/// The two steps of the request path this round replaced, each beside what it replaced, on the
/// load batch: the segment written by hand vs serde_json's map serialiser, and the scrubber with
/// its byte scan vs the regexes alone (the batch's selectors and form names).
fn bench_replaced_steps(c: &mut Criterion) {
    let batch = sample_batch(50);
    let json_bytes = serde_json::to_vec(&batch).unwrap();
    let limits = Limits::default();
    let now = 1_764_374_402_000;
    let events = validate::validate(decode::parse(Format::Json, &json_bytes).unwrap(), &limits, now).unwrap().events;
    let mut g = c.benchmark_group("segment_encode_50_events");
    g.throughput(Throughput::Elements(50));
    g.bench_function("serde_json", |b| b.iter(|| serde_json::to_vec(&events).unwrap().len()));
    g.bench_function("by_hand", |b| b.iter(|| StoredBatch::encode_events(&events).len()));
    g.finish();

    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::Click { sel, .. } | EventData::Input { sel, .. } => Some(sel.clone()),
            _ => None,
        })
        .collect();
    let mut g = c.benchmark_group("scrub_batch_selectors");
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("regexes", |b| {
        b.iter(|| texts.iter().filter(|t| matches!(scrub::scrub_once_with_regexes(t), Cow::Owned(_))).count())
    });
    g.bench_function("byte_scan_then_regexes", |b| {
        b.iter(|| texts.iter().filter(|t| matches!(scrub::scrub_text(t), Cow::Owned(_))).count())
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_parse, bench_request_path, bench_replaced_steps);
criterion_main!(benches);
