//! Turns the bytes of a `POST /collect` body into a [`WireBatch`]: format, gzip, limits.

use std::io::Read;

use bytes::Bytes;
use flate2::bufread::GzDecoder;

use serde::Deserialize;

use super::wire::WireBatch;
use super::{fast, IngestError};

/// Deepest nesting accepted anywhere in a batch (DOM snapshots included).
pub const MAX_DEPTH: usize = 128;

/// The two encodings of the same batch structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    MessagePack,
}

impl Format {
    /// Maps a `Content-Type` (parameters ignored) to a format. A missing type is read as JSON,
    /// because some beacon implementations omit it.
    pub fn from_content_type(value: Option<&str>) -> Result<Self, IngestError> {
        let Some(value) = value else {
            return Ok(Format::Json);
        };
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/json") || essence.eq_ignore_ascii_case("text/plain") {
            Ok(Format::Json)
        } else if essence.eq_ignore_ascii_case("application/msgpack")
            || essence.eq_ignore_ascii_case("application/x-msgpack")
            || essence.eq_ignore_ascii_case("application/vnd.msgpack")
        {
            Ok(Format::MessagePack)
        } else {
            Err(IngestError::UnsupportedContentType)
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::MessagePack => "msgpack",
        }
    }
}

/// `Content-Encoding` of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    pub fn from_header(value: Option<&str>) -> Result<Self, IngestError> {
        match value.map(str::trim) {
            None | Some("") => Ok(Encoding::Identity),
            Some(v) if v.eq_ignore_ascii_case("identity") => Ok(Encoding::Identity),
            Some(v) if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") => Ok(Encoding::Gzip),
            Some(_) => Err(IngestError::UnsupportedEncoding),
        }
    }
}

/// Undoes the content encoding, never producing more than `max_decompressed` bytes: inflation
/// stops at the limit, so a gzip bomb costs at most that much memory and time.
pub fn decompress(body: Bytes, encoding: Encoding, max_decompressed: usize) -> Result<Bytes, IngestError> {
    match encoding {
        Encoding::Identity if body.len() > max_decompressed => Err(IngestError::DecompressedTooLarge),
        Encoding::Identity => Ok(body),
        Encoding::Gzip => match inflate_whole(&body, max_decompressed) {
            Some(out) => Ok(Bytes::from(out)),
            None => gunzip_stream(&body, max_decompressed),
        },
    }
}

/// The usual body inflated in one call: a gzip member with a bare 10-byte header (no optional
/// fields) whose trailer's size is right and within the limit. The output is allocated once at
/// that size and inflated with `Finish`, so the inflater keeps no 32 KiB window and copies
/// nothing into it, and there is no reader in between. `None` — never an error — for anything
/// else (other flags, a wrong size, a stream that does not end, a bad checksum, a bad stream):
/// [`gunzip_stream`] then decides, so what is accepted and every refusal are its own. When this
/// returns bytes they are the ones `gunzip_stream` returns: same inflater (flate2's raw deflate),
/// the same checksum and size checked, at most the limit produced, and nothing after the
/// trailer read (flate2's `GzDecoder` reads one member).
fn inflate_whole(body: &[u8], max_decompressed: usize) -> Option<Vec<u8>> {
    let [0x1f, 0x8b, 8, 0, _, _, _, _, _, _, deflated @ ..] = body else { return None };
    let size = inflated_size_hint(body);
    if size > max_decompressed {
        return None;
    }
    let mut out = Vec::with_capacity(size);
    let mut inflater = flate2::Decompress::new(false);
    match inflater.decompress_vec(deflated, &mut out, flate2::FlushDecompress::Finish) {
        Ok(flate2::Status::StreamEnd) => {}
        _ => return None,
    }
    let used = usize::try_from(inflater.total_in()).ok()?;
    let trailer = deflated.get(used..used.checked_add(8)?)?;
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    let sent_crc = u32::from_le_bytes(trailer[..4].try_into().ok()?);
    let sent_size = u32::from_le_bytes(trailer[4..].try_into().ok()?);
    (crc.sum() == sent_crc && out.len() as u32 == sent_size).then_some(out)
}

/// Any gzip body, streamed through flate2's one-member `GzDecoder` under the limit.
#[doc(hidden)]
pub fn gunzip_stream(body: &[u8], max_decompressed: usize) -> Result<Bytes, IngestError> {
    let mut out = Vec::with_capacity(inflated_size_hint(body).min(max_decompressed));
    // The body is in memory already: reading it as a `BufRead` spares the 32 KiB buffer
    // (zeroed per request) that `read::GzDecoder` would put in front of it.
    let mut limited = GzDecoder::new(body).take(max_decompressed as u64 + 1);
    limited.read_to_end(&mut out).map_err(|e| IngestError::BadGzip(e.to_string()))?;
    if out.len() > max_decompressed {
        return Err(IngestError::DecompressedTooLarge);
    }
    Ok(Bytes::from(out))
}

/// The size a gzip member says it inflates to (its trailer's ISIZE), so the output is allocated
/// once; only a hint: the client wrote it, and the caller caps it.
fn inflated_size_hint(body: &[u8]) -> usize {
    match body.len().checked_sub(4).map(|at| &body[at..]) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    }
}

/// Decodes the batch structure strictly (types, required fields) but ignores unknown fields.
/// A batch of the plain shape the snippet sends is read directly ([`super::fast`]); anything
/// that reader is unsure of is decoded by [`parse_serde`], which alone decides what is refused
/// and how (a failing body is decoded a third time, to name the field).
pub fn parse(format: Format, bytes: &[u8]) -> Result<WireBatch<'_>, IngestError> {
    let direct = match format {
        Format::Json => std::str::from_utf8(bytes).ok().and_then(|text| fast::batch(&mut fast::Json::new(text))),
        Format::MessagePack => fast::batch(&mut fast::MsgPack::new(bytes)),
    };
    match direct {
        Some(batch) => Ok(batch),
        None => parse_serde(format, bytes),
    }
}

/// The serde decoders alone: what [`parse`] answers for any body its direct reader gives up on,
/// and what the differential checks (`fuzz_checks::batch`, this module's tests) compare it with.
#[doc(hidden)]
pub fn parse_serde(format: Format, bytes: &[u8]) -> Result<WireBatch<'_>, IngestError> {
    if bytes.is_empty() {
        return Err(IngestError::Malformed("empty body".into()));
    }
    match format {
        Format::Json => {
            // A body that is UTF-8 as a whole (one vectorised check) is read as `str`: serde_json
            // then checks no string again (it did per string: ~2 % of a request task's CPU).
            // What it accepts and how is the same; any other body is read exactly as before
            // (the slice reader checks only the strings it keeps, not those it skips).
            let result = match std::str::from_utf8(bytes) {
                Ok(text) => json_batch(&mut serde_json::Deserializer::from_str(text)),
                Err(_) => json_batch(&mut serde_json::Deserializer::from_slice(bytes)),
            };
            result.map_err(|_| explain_json(bytes))
        }
        Format::MessagePack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            de.set_max_depth(MAX_DEPTH);
            match WireBatch::deserialize(&mut de) {
                Ok(batch) => Ok(batch),
                Err(_) => Err(explain_msgpack(bytes)),
            }
        }
    }
}

/// A whole JSON body as one batch (nothing but whitespace after it).
fn json_batch<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
) -> Result<WireBatch<'de>, serde_json::Error> {
    let batch = WireBatch::deserialize(&mut *de)?;
    de.end()?;
    Ok(batch)
}

#[cold]
fn explain_json(bytes: &[u8]) -> IngestError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let message = match serde_path_to_error::deserialize::<_, serde::de::IgnoredAny>(&mut de).and(Ok(())) {
        Ok(()) => {
            match serde_path_to_error::deserialize::<_, WireBatch>(&mut serde_json::Deserializer::from_slice(bytes)) {
                Ok(_) => "trailing data after the batch".to_owned(),
                Err(e) => e.to_string(),
            }
        }
        Err(e) => e.to_string(),
    };
    IngestError::Malformed(format!("invalid JSON batch: {message}"))
}

#[cold]
fn explain_msgpack(bytes: &[u8]) -> IngestError {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    let message = match serde_path_to_error::deserialize::<_, WireBatch>(&mut de) {
        Ok(_) => "unexpected decoding failure".to_owned(),
        Err(e) => e.to_string(),
    };
    IngestError::Malformed(format!("invalid MessagePack batch: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::from_content_type(Some("text/plain;charset=UTF-8")).unwrap(), Format::Json);
        assert_eq!(Format::from_content_type(Some("application/msgpack")).unwrap(), Format::MessagePack);
        assert!(Format::from_content_type(Some("application/xml")).is_err());
    }

    #[test]
    fn gzip_bomb_stops_at_limit() {
        let bomb = gzip(&vec![b'a'; 50 << 20]);
        assert!(bomb.len() < 100_000);
        assert!(matches!(decompress(bomb, Encoding::Gzip, 1 << 20), Err(IngestError::DecompressedTooLarge)));
    }

    #[test]
    fn gzip_round_trip_and_garbage() {
        assert_eq!(&decompress(gzip(b"hello"), Encoding::Gzip, 10).unwrap()[..], b"hello");
        assert!(matches!(
            decompress(Bytes::from_static(b"not gzip"), Encoding::Gzip, 10),
            Err(IngestError::BadGzip(_))
        ));
    }

    /// The one-call inflate against the streaming decoder alone over gzip bodies of every kind
    /// the header and trailer allow (optional fields, lying and true sizes, bad checksums,
    /// trailing bytes, two members, over the limit) and mutations of them.
    #[test]
    fn one_call_inflate_answers_as_the_stream_does() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let limit = 4096;
        let mut bodies = Vec::new();
        for i in 0..400 {
            let len = [0, 1, 100, 2053, 4095, 4096, 4097, 9000][i % 8];
            let plain: Vec<u8> = (0..len).map(|_| b"abcab{}\"0123"[rng.below(12)]).collect();
            let mut gz = match i % 5 {
                0 => flate2::GzBuilder::new().filename("x.mp").write(Vec::new(), Compression::fast()),
                1 => flate2::GzBuilder::new().comment("c").extra(vec![1, 2]).write(Vec::new(), Compression::best()),
                _ => GzEncoder::new(Vec::new(), Compression::default()),
            };
            gz.write_all(&plain).unwrap();
            let mut gz = gz.finish().unwrap();
            let n = gz.len();
            match rng.below(8) {
                0 => gz[n - 8] ^= 1,                                // checksum
                1 => gz[n - 4] = gz[n - 4].wrapping_add(1),         // size one more
                2 => gz[n - 4] = gz[n - 4].wrapping_sub(1),         // size one less
                3 => gz.extend_from_slice(b"trailing"),             // bytes after the member
                4 => gz.extend_from_slice(&gzip(b"second member")), // a second member
                5 => gz[n - 1] = 0xff,                              // a size over any limit
                _ => {}
            }
            bodies.push(gz);
        }
        for gz in &bodies {
            crate::fuzz_checks::gzip_same_as_stream(gz, limit);
            for _ in 0..8 {
                crate::fuzz_checks::gzip_same_as_stream(&mutate(&mut rng, gz), limit);
            }
        }
        // Most plain bodies within the limit are taken by the one-call inflate.
        let plain = gzip(&[7u8; 2053]);
        assert!(inflate_whole(&plain, limit).is_some());
    }

    /// Each way the one-call inflate can be turned away ends in the streaming decoder's answer:
    /// the same bytes or the same refusal (and so the same status) as before it existed.
    #[test]
    fn one_call_fallbacks_answer_as_the_stream_does() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let plain: Vec<u8> = (0..2053).map(|_| b"abcab{}\"0123"[rng.below(12)]).collect();
        let gz = gzip(&plain);
        let n = gz.len();
        let set_size = |mut gz: Vec<u8>, size: u32| {
            let at = gz.len() - 4;
            gz[at..].copy_from_slice(&size.to_le_bytes());
            gz
        };
        let answer = |gz: &[u8], limit: usize| {
            crate::fuzz_checks::gzip_same_as_stream(gz, limit);
            decompress(Bytes::copy_from_slice(gz), Encoding::Gzip, limit)
        };
        let bad_gzip = |r: Result<Bytes, IngestError>| matches!(r, Err(IngestError::BadGzip(_)));
        let too_large = |r: Result<Bytes, IngestError>| matches!(r, Err(IngestError::DecompressedTooLarge));
        let limit = 4096;
        assert_eq!(&answer(&gz, limit).unwrap()[..], &plain[..]);
        assert!(inflate_whole(&gz, limit).is_some());
        // The trailer's size lies, by one either way and wildly: the member's own check fails.
        for size in [plain.len() as u32 + 1, plain.len() as u32 - 1, 0, 4000, u32::MAX] {
            let lying = set_size(gz.to_vec(), size);
            assert!(inflate_whole(&lying, limit).is_none(), "size {size}");
            assert!(bad_gzip(answer(&lying, limit)), "size {size}");
        }
        // A size under the truth within the limit while the body inflates past the limit: the
        // one-call buffer is too small, the stream stops at the limit.
        let big: Vec<u8> = plain.iter().copied().cycle().take(3 * limit).collect();
        let small_lie = set_size(gzip(&big).to_vec(), 100);
        assert!(inflate_whole(&small_lie, limit).is_none());
        assert!(too_large(answer(&small_lie, limit)));
        // Over the limit, with a true size: refused as too large, whichever decoder sees it.
        assert!(inflate_whole(&gz, plain.len() - 1).is_none());
        assert!(too_large(answer(&gz, plain.len() - 1)));
        assert_eq!(&answer(&gz, plain.len()).unwrap()[..], &plain[..]);
        // Two members: the first is the body, as `GzDecoder` reads it (one member), whether the
        // last four bytes (the second member's size) agree with the first member's or not.
        for second in [&b"second member"[..], &plain.iter().rev().copied().collect::<Vec<u8>>()[..]] {
            let mut two = gz.to_vec();
            two.extend_from_slice(&gzip(second));
            assert_eq!(&answer(&two, limit).unwrap()[..], &plain[..]);
        }
        // Truncated anywhere: refused as bad gzip.
        for cut in [n - 1, n - 4, n - 8, n - 9, n / 2, 11, 10, 3] {
            assert!(inflate_whole(&gz[..cut], limit).is_none(), "cut at {cut}");
            assert!(bad_gzip(answer(&gz[..cut], limit)), "cut at {cut}");
        }
        // Streams libdeflate reads and zlib refuses (found by mutating a deflate stream and
        // fixing its trailer up to libdeflate's output): a distance code past 30, a
        // literal/length symbol 286 or 287 of the fixed code, and the like. Never taken by
        // libdeflate; refused as before.
        for hex in [
            "1f8b08000000000002ff0dc841110031080441b49c021614ed440615ed5caa7e0d765cf5a2521055dec2ec8323d51d3e\
             caac3a33dca9cd99a064aff5b5d1e8c030d97c6c1c37fd26eb058d7ff14a4f8564000000",
            "1f8b08000000000000ff63604832487e36060016e13ebb08010000",
            "1f8b08000000000000ffab4d4a4a5cac360600a94ea4d408010000",
            "1f8b08000000000002ff0dca41110030080330b4a000a8a27632b86adff64fc25c5e05e9d6924d157b3d8719aed8e9\
             8c518342b32c5a83c1b7f7ee71ff912c947142548214d8bf15524ca51f7eb0523565000000",
        ] {
            let gz = hex::decode(hex).unwrap();
            assert!(libdeflater::Decompressor::new().gzip_decompress(&gz, &mut [0; 300]).is_ok());
            assert!(bad_gzip(answer(&gz, limit)), "{hex}");
        }
        // A fixed-code block (a short body) is not libdeflate's either, yet is inflated.
        let short = gzip(b"hello");
        assert_eq!(&answer(&short, limit).unwrap()[..], b"hello");
        // A flagged header (a file name) is the stream's alone.
        let mut named = flate2::GzBuilder::new().filename("x.mp").write(Vec::new(), Compression::default());
        named.write_all(&plain).unwrap();
        let named = named.finish().unwrap();
        assert!(inflate_whole(&named, limit).is_none());
        assert_eq!(&answer(&named, limit).unwrap()[..], &plain[..]);
    }

    /// The load run's batch (as `benches/ceiling.rs` writes it) is read directly in both
    /// encodings: the direct reader is not silently bypassed.
    #[test]
    fn the_load_batch_is_read_directly() {
        let t = 1_764_374_400_000i64;
        let mut events =
            vec![serde_json::json!({"k":"view","t":t,"url":"https://shop.example/p?utm_source=mail&ref=abc",
            "ref":"https://news.example/a","vw":1280,"vh":720,"dw":1280,"dh":5400,"load_ms":812.5,"ttfb_ms":95})];
        for i in 1..50i64 {
            events.push(match i % 10 {
                0 => serde_json::json!({"k":"click","t":t+i*40,"x":400+i,"y":900,"sel":"main > a.card","ex":512,"ey":300}),
                1 => serde_json::json!({"k":"scroll","t":t+i*40,"y":i*12}),
                2 => serde_json::json!({"k":"input","t":t+i*40,"sel":"form#signup input[name=email]","len":14}),
                _ => serde_json::json!({"k":"move","t":t+i*40,"x":300+i*3,"y":500+i*2}),
            });
        }
        let batch = serde_json::json!({"v":1,"site":"demo","vid":"0123456789abcdef0123456789abcdef",
            "sid":"fedcba9876543210fedcba9876543210","seq":3,"sent":t+2100,"events":events});
        let json = serde_json::to_string(&batch).unwrap();
        let mp = rmp_serde::to_vec_named(&batch).unwrap();
        assert_eq!(fast::batch(&mut fast::Json::new(&json)).unwrap().events.len(), 50);
        assert_eq!(fast::batch(&mut fast::MsgPack::new(&mp)).unwrap().events.len(), 50);
        crate::fuzz_checks::same_as_serde(Format::Json, json.as_bytes());
        crate::fuzz_checks::same_as_serde(Format::MessagePack, &mp);
        assert!(inflate_whole(&gzip(&mp), 1 << 20).is_some());
    }

    #[test]
    fn json_errors_name_the_path() {
        let err = parse(
            Format::Json,
            br#"{"v":1,"site":"s","vid":"a","sid":"b","seq":0,"sent":1,"events":[{"k":"move","x":"left"}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("events[0].x"), "{err}");
    }

    #[test]
    fn a_body_that_is_not_utf8_reads_as_before() {
        // An unknown field's string is skipped unchecked by the slice reader: still a batch.
        let mut body = br#"{"v":1,"site":"s","vid":"a","sid":"b","seq":0,"sent":1,"zz":"\xff","events":[]}"#.to_vec();
        let at = body.windows(4).position(|w| w == br"\xff").unwrap();
        body.splice(at..at + 4, [0xff]);
        assert!(std::str::from_utf8(&body).is_err());
        assert!(parse(Format::Json, &body).is_ok());
        // A kept string that is not UTF-8 is refused with serde_json's words for it.
        let bad = b"{\"v\":1,\"site\":\"s\xff\",\"vid\":\"a\",\"sid\":\"b\",\"seq\":0,\"sent\":1,\"events\":[]}";
        let err = parse(Format::Json, bad).unwrap_err();
        assert!(err.to_string().contains("invalid unicode code point"), "{err}");
    }

    /// A random value of the shapes a batch holds, encoded by hand so that duplicates, integer
    /// widths, whitespace and escapes can be chosen.
    #[derive(Clone)]
    enum V {
        Null,
        Bool(bool),
        Int(i64),
        F32(f32),
        F64(f64),
        Str(String),
        Arr(Vec<V>),
        Map(Vec<(String, V)>),
    }

    use crate::test_rng::XorShift as Rng;

    fn json(v: &V, rng: &mut Rng, out: &mut String) {
        let ws = |rng: &mut Rng, out: &mut String| {
            if rng.below(8) == 0 {
                let gap: &&str = rng.pick(&[" ", "\n", "\t ", "\r\n"]);
                out.push_str(gap);
            }
        };
        ws(rng, out);
        match v {
            V::Null => out.push_str("null"),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::Int(i) => match rng.below(40) {
                0 => out.push_str(&format!("{i}.0")),
                1 => out.push_str(&format!("{i}e0")),
                _ => out.push_str(&i.to_string()),
            },
            V::F32(f) => out.push_str(&(*f as f64).to_string()),
            V::F64(f) if f.is_finite() => out.push_str(&serde_json::to_string(f).unwrap()),
            V::F64(_) => out.push_str("1e400"),
            V::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            V::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json(item, rng, out);
                }
                ws(rng, out);
                out.push(']');
            }
            V::Map(entries) => {
                out.push('{');
                for (i, (k, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ws(rng, out);
                    out.push_str(&serde_json::to_string(k).unwrap());
                    ws(rng, out);
                    out.push(':');
                    json(item, rng, out);
                }
                ws(rng, out);
                out.push('}');
            }
        }
        ws(rng, out);
    }

    fn msgpack(v: &V, rng: &mut Rng, out: &mut Vec<u8>) {
        fn len(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, wide: u8, rng: &mut Rng) {
            match rng.below(4) {
                _ if n <= fix_max && rng.below(3) > 0 => out.push(fix | n as u8),
                0 | 1 => {
                    out.push(wide);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                _ => {
                    out.push(wide + 1);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
            }
        }
        match v {
            V::Null => out.push(0xc0),
            V::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            V::Int(i) => {
                let i = *i;
                match rng.below(4) {
                    0 if (0..128).contains(&i) => out.push(i as u8),
                    0 if (-32..0).contains(&i) => out.push(i as i8 as u8),
                    1 if i >= 0 => {
                        out.push(0xcf);
                        out.extend_from_slice(&(i as u64).to_be_bytes());
                    }
                    2 if i8::try_from(i).is_ok() => out.extend_from_slice(&[0xd0, i as i8 as u8]),
                    2 if u32::try_from(i).is_ok() => {
                        out.push(0xce);
                        out.extend_from_slice(&(i as u32).to_be_bytes());
                    }
                    _ => {
                        out.push(0xd3);
                        out.extend_from_slice(&i.to_be_bytes());
                    }
                }
            }
            V::F32(f) => {
                out.push(0xca);
                out.extend_from_slice(&f.to_be_bytes());
            }
            V::F64(f) => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            }
            V::Str(s) => {
                if s.len() < 32 && rng.below(3) > 0 {
                    out.push(0xa0 | s.len() as u8);
                } else if s.len() < 256 && rng.below(2) == 0 {
                    out.extend_from_slice(&[0xd9, s.len() as u8]);
                } else if rng.below(30) == 0 {
                    // The same bytes as binary: serde takes them for some strings, not others.
                    out.extend_from_slice(&[0xc4, s.len().min(255) as u8]);
                    out.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
                    return;
                } else {
                    out.push(0xda);
                    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                }
                out.extend_from_slice(s.as_bytes());
            }
            V::Arr(items) => {
                len(out, items.len(), 0x90, 15, 0xdc, rng);
                for item in items {
                    msgpack(item, rng, out);
                }
            }
            V::Map(entries) => {
                len(out, entries.len(), 0x80, 15, 0xde, rng);
                for (k, item) in entries {
                    msgpack(&V::Str(k.clone()), rng, out);
                    msgpack(item, rng, out);
                }
            }
        }
    }

    fn number(rng: &mut Rng) -> V {
        // A value serde refuses (a string, a boolean) makes the whole batch refused: rare.
        if rng.below(60) == 0 {
            return rng.pick(&[V::Str("12".into()), V::Bool(true)]).clone();
        }
        match rng.below(10) {
            0 => V::Null,
            1 => V::Int(-(rng.below(5000) as i64)),
            2 => V::Int(rng.next_u64() as i64 >> rng.below(64)),
            3 => V::F64(f64::from_bits(rng.next_u64())),
            4 => V::F64(rng.below(100_000) as f64 / 8.0),
            5 => V::F32(rng.below(100_000) as f32 / 3.0),
            6 => V::F64(*rng.pick(&[0.1, -0.0, 1e21, 9007199254740993.0, 2.5e-308, 812.5])),
            7 => V::Int(1_796_189_086_515 + rng.below(100_000) as i64),
            _ => V::Int(rng.below(3000) as i64),
        }
    }

    fn text(rng: &mut Rng) -> V {
        match rng.below(10) {
            0 => V::Null,
            1 if rng.below(30) == 0 => V::Int(3),
            2 => V::Str("quote \" and \\ back\u{1}slash".into()),
            3 => V::Str("caf\u{e9} \u{1F600} a@b.c 4111 1111 1111 1111".into()),
            4 => V::Str(String::new()),
            _ => V::Str(
                rng.pick(&[
                    "main > a.card:nth-child(3)",
                    "https://shop.example/p/42?utm_source=x",
                    "view",
                    "move",
                    "click",
                    "x",
                ])
                .to_string(),
            ),
        }
    }

    const KEYS: &[&str] = &[
        "k", "t", "url", "ref", "title", "vw", "vh", "dw", "dh", "load_ms", "ttfb_ms", "spa", "x", "y", "sel", "ex",
        "ey", "dead", "w", "h", "len", "hidden", "msg", "d", "form", "zz", "K", "",
    ];
    const KINDS: &[&str] = &[
        "view", "move", "click", "scroll", "resize", "input", "focus", "blur", "submit", "vis", "err", "snap", "nope",
    ];

    fn event(rng: &mut Rng) -> V {
        let mut entries = vec![("k".to_owned(), V::Str(rng.pick(KINDS).to_string()))];
        if rng.below(10) > 0 {
            entries.push(("t".to_owned(), V::Int(1_764_374_400_000 + rng.below(10_000) as i64)));
        }
        for _ in 0..rng.below(8) {
            let key = rng.pick(KEYS).to_string();
            // A key sent twice is refused (when the first was not null): now and then only.
            if entries.iter().any(|(k, _)| *k == key) && rng.below(20) > 0 {
                continue;
            }
            let value = match key.as_str() {
                "spa" | "dead" | "hidden" => rng.pick(&[V::Bool(true), V::Bool(false), V::Null]).clone(),
                "k" | "url" | "ref" | "title" | "sel" | "msg" | "form" => text(rng),
                "d" => V::Map(vec![("n".into(), V::Arr(vec![V::Int(1), V::Str("div".into())]))]),
                "zz" | "K" | "" => match rng.below(4) {
                    0 => V::Arr(vec![]),
                    1 => text(rng),
                    _ => number(rng),
                },
                _ => number(rng),
            }
            .clone();
            entries.push((key, value));
        }
        if rng.below(4) == 0 {
            let i = rng.below(entries.len());
            entries.swap(0, i);
        }
        V::Map(entries)
    }

    fn batch(rng: &mut Rng) -> V {
        let events = (0..rng.below(30)).map(|_| event(rng)).collect();
        let mut entries = vec![
            ("v".to_owned(), V::Int(1)),
            ("site".to_owned(), V::Str("demo".into())),
            ("vid".to_owned(), V::Str("0123456789abcdef0123456789abcdef".into())),
            ("sid".to_owned(), V::Str("fedcba9876543210fedcba9876543210".into())),
            ("seq".to_owned(), V::Int(rng.below(12) as i64)),
            ("sent".to_owned(), V::Int(1_764_374_400_100)),
            ("events".to_owned(), V::Arr(events)),
        ];
        for _ in 0..rng.below(3) {
            let at = rng.below(entries.len());
            match rng.below(6) {
                0 => entries[at].1 = number(rng),
                1 => entries[at].1 = text(rng),
                2 => entries.push(("extra".into(), number(rng))),
                3 => entries.push(entries[at].clone()),
                4 => {
                    entries.remove(at);
                }
                _ => {
                    let other = rng.below(entries.len());
                    entries.swap(at, other);
                }
            }
        }
        V::Map(entries)
    }

    /// Changes a few bytes of a valid encoding (flips, cuts, insertions, repeats).
    fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
        let mut data = data.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(data.len() + 1);
            match rng.below(5) {
                0 if !data.is_empty() => {
                    let i = at.min(data.len() - 1);
                    data[i] ^= 1 << rng.below(8);
                }
                1 => data.truncate(at),
                2 if at < data.len() => {
                    let end = (at + rng.below(6)).min(data.len());
                    data.drain(at..end);
                }
                3 => {
                    let piece: Vec<u8> = data[at.saturating_sub(rng.below(12))..at].to_vec();
                    data.splice(at..at, piece);
                }
                _ => data.insert(at, *rng.pick(b"{}[],:\"0-.e \x00\x80\xc0\xa1\x91\xcb\xff")),
            }
        }
        data
    }

    fn seeds(format: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(format);
        std::fs::read_dir(dir).unwrap().flatten().map(|e| std::fs::read(e.path()).unwrap()).collect()
    }

    /// The direct reader against serde alone, over the fuzz seeds, generated batches (both
    /// encodings of the same value) and mutations of all of them: every answer is the same
    /// batch or the same refusal, and the direct reader does take most generated batches (so
    /// the comparison is not vacuous).
    #[test]
    fn direct_reader_answers_as_serde_does() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut inputs: Vec<(Format, Vec<u8>)> = Vec::new();
        inputs.extend(seeds("batch_json").into_iter().map(|s| (Format::Json, s)));
        inputs.extend(seeds("batch_msgpack").into_iter().map(|s| (Format::MessagePack, s)));
        for _ in 0..3_000 {
            let value = batch(&mut rng);
            let mut text = String::new();
            json(&value, &mut rng, &mut text);
            inputs.push((Format::Json, text.into_bytes()));
            let mut mp = Vec::new();
            msgpack(&value, &mut rng, &mut mp);
            inputs.push((Format::MessagePack, mp));
        }
        let read = |format: Format, input: &[u8]| match format {
            Format::Json => {
                std::str::from_utf8(input).ok().and_then(|t| fast::batch(&mut fast::Json::new(t))).is_some()
            }
            Format::MessagePack => fast::batch(&mut fast::MsgPack::new(input)).is_some(),
        };
        let (mut direct, mut accepted, mut mutated_direct) = ([0usize; 2], [0usize; 2], [0usize; 2]);
        for (format, input) in &inputs {
            crate::fuzz_checks::same_as_serde(*format, input);
            let f = (*format == Format::MessagePack) as usize;
            direct[f] += read(*format, input) as usize;
            accepted[f] += parse_serde(*format, input).is_ok() as usize;
            for _ in 0..8 {
                let mutated = mutate(&mut rng, input);
                crate::fuzz_checks::same_as_serde(*format, &mutated);
                mutated_direct[f] += read(*format, &mutated) as usize;
            }
        }
        eprintln!(
            "(json, msgpack) accepted by serde {accepted:?}, read directly {direct:?}, mutations read directly {mutated_direct:?}"
        );
        for f in 0..2 {
            assert!(
                direct[f] >= 100 && mutated_direct[f] >= 100,
                "too few read directly: {direct:?} {mutated_direct:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(200_000);
        let doc =
            format!(r#"{{"v":1,"site":"s","vid":"a","sid":"b","seq":0,"sent":1,"events":[{{"k":"snap","d":{deep}"#);
        assert!(parse(Format::Json, doc.as_bytes()).is_err());
        let mut mp = vec![0x91u8; 200_000]; // fixarray(1) nested
        mp.push(0xc0);
        assert!(parse(Format::MessagePack, &mp).is_err());
    }
}
