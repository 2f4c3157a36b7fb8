//! Turns the bytes of a `POST /collect` body into a [`WireBatch`]: format, gzip, limits.

use std::io::Read;

use bytes::Bytes;
use flate2::bufread::GzDecoder;

use serde::Deserialize;

use super::wire::WireBatch;
use super::IngestError;

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
        Encoding::Gzip => {
            let mut out = Vec::with_capacity(inflated_size_hint(&body).min(max_decompressed));
            // The body is in memory already: reading it as a `BufRead` spares the 32 KiB buffer
            // (zeroed per request) that `read::GzDecoder` would put in front of it.
            let mut limited = GzDecoder::new(&body[..]).take(max_decompressed as u64 + 1);
            limited.read_to_end(&mut out).map_err(|e| IngestError::BadGzip(e.to_string()))?;
            if out.len() > max_decompressed {
                return Err(IngestError::DecompressedTooLarge);
            }
            Ok(Bytes::from(out))
        }
    }
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
/// The fast path decodes directly; only a failing body is decoded again to name the field.
pub fn parse(format: Format, bytes: &[u8]) -> Result<WireBatch<'_>, IngestError> {
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
