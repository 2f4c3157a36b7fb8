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

#[path = "load/batch.rs"]
mod load_batch;

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

/// The load run's MessagePack+gzip body (the batch `benches/ceiling.rs` writes, gzip level 6 as
/// there) inflated by each candidate, side by side (issue #15, ninth session). Every candidate
/// allocates the output at the trailer's size, as the server must (the bytes become the request's
/// `Bytes`), and checks the CRC and size; "new" builds the inflater per body, "reused" keeps one.
fn bench_inflate(c: &mut Criterion) {
    let batch = load_batch::batch(50, "ff6a3b1c2d0000000000000000000007", 3, 1_764_374_400_000);
    let mp = rmp_serde::to_vec_named(&batch).unwrap();
    let gz = gzip(&mp);
    let body = Bytes::from(gz.clone());
    let size = u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap()) as usize;
    assert_eq!(size, mp.len());
    let deflated = &gz[10..];
    let trailer_ok = |out: &[u8], used: usize| {
        let trailer = &deflated[used..used + 8];
        crc32fast::hash(out) == u32::from_le_bytes(trailer[..4].try_into().unwrap())
            && out.len() as u32 == u32::from_le_bytes(trailer[4..].try_into().unwrap())
    };
    let zlib_rs = |inflater: &mut flate2::Decompress, slack: usize| {
        let mut out = Vec::with_capacity(size + slack);
        let status = inflater.decompress_vec(deflated, &mut out, flate2::FlushDecompress::Finish).unwrap();
        assert_eq!(status, flate2::Status::StreamEnd);
        assert!(trailer_ok(&out, inflater.total_in() as usize));
        out.len()
    };
    let libdeflate = |inflater: &mut libdeflater::Decompressor| {
        let mut out = vec![0u8; size];
        assert_eq!(inflater.gzip_decompress(&gz, &mut out).unwrap(), size);
        out.len()
    };
    let miniz = |inflater: &mut miniz_oxide::inflate::core::DecompressorOxide| {
        use miniz_oxide::inflate::core::inflate_flags::*;
        let mut out = vec![0u8; size];
        inflater.init();
        let (status, used, written) = miniz_oxide::inflate::core::decompress(
            inflater,
            deflated,
            &mut out,
            0,
            TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
        );
        assert_eq!(status, miniz_oxide::inflate::TINFLStatus::Done);
        assert!(written == size && trailer_ok(&out, used));
        out.len()
    };

    let mut g = c.benchmark_group(format!("inflate_load_body ({} B -> {} B)", gz.len(), mp.len()));
    g.bench_function("decompress (the server's path)", |b| {
        b.iter(|| decode::decompress(body.clone(), Encoding::Gzip, 4 << 20).unwrap().len())
    });
    g.bench_function("stream (flate2 GzDecoder)", |b| b.iter(|| decode::gunzip_stream(&gz, 4 << 20).unwrap().len()));
    g.bench_function("zlib-rs one call/new", |b| b.iter(|| zlib_rs(&mut flate2::Decompress::new(false), 0)));
    // Room for zlib's fast loop to the end (it needs 258 bytes of output left).
    g.bench_function("zlib-rs one call/new, 300 B slack", |b| {
        b.iter(|| zlib_rs(&mut flate2::Decompress::new(false), 300))
    });
    g.bench_function("zlib-rs one call/reused", |b| {
        let mut inflater = flate2::Decompress::new(false);
        b.iter(|| {
            inflater.reset(false);
            zlib_rs(&mut inflater, 0)
        })
    });
    g.bench_function("libdeflate/new", |b| b.iter(|| libdeflate(&mut libdeflater::Decompressor::new())));
    // libdeflate reads a few streams zlib refuses (code-length counts past 286/30, the fixed
    // code's symbols 286/287 and 30/31, the missing codeword of a one-codeword code): taking it
    // without changing what is refused needs this check of the block header first.
    g.bench_function("libdeflate/new, after the header check", |b| {
        b.iter(|| {
            assert!(one_plain_dynamic_block(deflated));
            libdeflate(&mut libdeflater::Decompressor::new())
        })
    });
    g.bench_function("libdeflate/reused", |b| {
        let mut inflater = libdeflater::Decompressor::new();
        b.iter(|| libdeflate(&mut inflater))
    });
    g.bench_function("miniz_oxide presized/new", |b| {
        b.iter(|| miniz(&mut Box::<miniz_oxide::inflate::core::DecompressorOxide>::default()))
    });
    g.bench_function("miniz_oxide presized/reused", |b| {
        let mut inflater = Box::<miniz_oxide::inflate::core::DecompressorOxide>::default();
        b.iter(|| miniz(&mut inflater))
    });
    g.finish();
}

/// (Measured, not used by the server: README, issue #15, ninth session.) Whether a deflate
/// stream begins with a final block of dynamic Huffman codes (so it is the
/// only block) whose header zlib accepts and in which zlib and libdeflate decode every codeword
/// alike: at most 286 literal/length and 30 distance code lengths, a complete code-length code,
/// every repeat within the lengths, an end-of-block code, and complete literal/length and
/// distance codes (no codeword without a symbol). Reads only the block header (about 60 bytes);
/// `false` for anything else, however valid.
fn one_plain_dynamic_block(deflated: &[u8]) -> bool {
    /// Little-endian bits through a 64-bit buffer; past the end the stream reads as zeros, and
    /// `consumed` tells whether any of them were used.
    struct Bits<'a> {
        bytes: &'a [u8],
        next: usize,
        buf: u64,
        have: u32,
    }
    impl Bits<'_> {
        /// At least 56 bits in the buffer.
        #[inline(always)]
        fn refill(&mut self) {
            let word = match self.bytes.get(self.next..self.next + 8) {
                Some(word) => u64::from_le_bytes(word.try_into().unwrap_or_default()),
                None => {
                    let mut word = [0u8; 8];
                    for (to, from) in word.iter_mut().zip(self.bytes.get(self.next..).unwrap_or_default()) {
                        *to = *from;
                    }
                    u64::from_le_bytes(word)
                }
            };
            self.buf |= word << self.have;
            self.next += (63 - self.have as usize) / 8;
            self.have |= 56;
        }
        #[inline(always)]
        fn take(&mut self, n: u32) -> usize {
            let value = self.buf & ((1 << n) - 1);
            self.buf >>= n;
            self.have -= n;
            value as usize
        }
        fn overread(&self) -> bool {
            self.next * 8 - self.have as usize > self.bytes.len() * 8
        }
    }
    const ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
    /// Per code-length symbol: extra bits of its repeat count, and the count's base.
    const EXTRA: [u32; 19] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];
    const BASE: [usize; 19] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 11];
    /// Whether lengths counted per length (index 0 unused) make a complete code.
    fn complete(count: &[usize; 16]) -> bool {
        (1..16).map(|l| count[l] << (15 - l)).sum::<usize>() == 1 << 15
    }

    let mut bits = Bits { bytes: deflated, next: 0, buf: 0, have: 0 };
    bits.refill();
    if bits.take(3) != 0b101 {
        return false; // BFINAL = 1, BTYPE = 2 (dynamic)
    }
    let (nlen, ndist, ncode) = (bits.take(5) + 257, bits.take(5) + 1, bits.take(4) + 4);
    if nlen > 286 || ndist > 30 {
        return false;
    }
    let mut code_lens = [0u8; 19];
    for &sym in &ORDER[..ncode] {
        if bits.have < 3 {
            bits.refill();
        }
        code_lens[sym] = bits.take(3) as u8;
    }
    let mut count = [0usize; 16];
    for &l in &code_lens {
        count[usize::from(l)] += 1;
    }
    if !complete(&count) {
        return false;
    }
    // The code-length code as a 7-bit lookup table of (symbol, length): canonical codes, read
    // from the stream bit-reversed; a complete code fills every entry.
    let mut next_code = [0usize; 8];
    for len in 1..8 {
        next_code[len] = (next_code[len - 1] + if len > 1 { count[len - 1] } else { 0 }) << 1;
    }
    let mut table = [(0u8, 0u32); 128];
    for (sym, &len) in code_lens.iter().enumerate() {
        if len == 0 {
            continue;
        }
        let code = next_code[usize::from(len)];
        next_code[usize::from(len)] += 1;
        let reversed = (code as u8).reverse_bits() >> (8 - len);
        for entry in table.iter_mut().skip(usize::from(reversed)).step_by(1 << len) {
            *entry = (sym as u8, u32::from(len));
        }
    }
    // The code lengths, with no branch per symbol but the rare long run: each symbol writes 16
    // bytes (room is left past the end) and the runs are checked at the end.
    let total = nlen + ndist;
    let mut lens = [0u8; 286 + 30 + 138 + 16];
    let (mut have, mut prev, mut repeat_first) = (0usize, 0u8, false);
    let mut counts = [0usize; 16];
    while have < total {
        if bits.have < 14 {
            bits.refill(); // 7 bits for the symbol, at most 7 for its count
        }
        let (sym, len) = table[(bits.buf & 127) as usize];
        let s = usize::from(sym);
        let extra = ((bits.buf >> len) & ((1 << EXTRA[s]) - 1)) as usize;
        bits.buf >>= len + EXTRA[s];
        bits.have -= len + EXTRA[s];
        let repeat = BASE[s] + extra;
        let value = if sym < 16 {
            sym
        } else if sym == 16 {
            prev
        } else {
            0
        };
        repeat_first |= sym == 16 && have == 0;
        lens[have..have + 16].fill(value);
        if repeat > 16 {
            lens[have..have + repeat].fill(value);
        }
        counts[usize::from(value)] += repeat;
        have += repeat;
        prev = value;
    }
    if repeat_first || have != total || bits.overread() || lens[256] == 0 {
        return false;
    }
    // Counted per run as they were read; the few distance lengths apart.
    let mut dist = [0usize; 16];
    for &l in &lens[nlen..total] {
        dist[usize::from(l)] += 1;
    }
    for (all, dist) in counts.iter_mut().zip(dist) {
        *all -= dist;
    }
    complete(&counts) && complete(&dist)
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

criterion_group!(benches, bench_decode, bench_parse, bench_inflate, bench_request_path, bench_replaced_steps);
criterion_main!(benches);
