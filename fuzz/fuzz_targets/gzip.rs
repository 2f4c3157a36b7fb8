//! gzip inflation under a limit (`decode::decompress`): never more than the limit, never a
//! wrong answer about the limit, whatever the stream.
#![no_main]

use std::io::{Read, Write};

use bytes::Bytes;
use hushtale::ingest::{decode, Encoding, IngestError};

const LIMIT: usize = 64 * 1024;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        // Arbitrary bytes as a gzip body.
        match decode::decompress(Bytes::copy_from_slice(rest), Encoding::Gzip, LIMIT) {
            Ok(out) => {
                assert!(out.len() <= LIMIT);
                // The same bytes inflated without our limit (capped just above it) agree.
                let mut reference = Vec::new();
                let read = flate2::read::GzDecoder::new(rest).take(LIMIT as u64 + 1).read_to_end(&mut reference);
                assert!(read.is_ok());
                assert_eq!(&out[..], &reference[..]);
            }
            Err(IngestError::DecompressedTooLarge) => {
                let mut reference = Vec::new();
                let _ = flate2::read::GzDecoder::new(rest).take(LIMIT as u64 + 1).read_to_end(&mut reference);
                assert!(reference.len() > LIMIT, "refused as too large but inflates to {}", reference.len());
            }
            Err(IngestError::BadGzip(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    } else {
        // Arbitrary plaintext, gzipped (repeated to reach the limit sometimes): round trip. Capped
        // at twice the limit: more only makes each run slower (it was 25 runs/s uncapped).
        let times = usize::from(mode >> 1) * 64 + 1;
        let plain: Vec<u8> = rest.iter().copied().cycle().take((rest.len() * times).min(2 * LIMIT)).collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        match decode::decompress(Bytes::from(gz), Encoding::Gzip, LIMIT) {
            Ok(out) => assert_eq!(&out[..], &plain[..]),
            Err(IngestError::DecompressedTooLarge) => assert!(plain.len() > LIMIT),
            Err(e) => panic!("valid gzip of {} bytes refused: {e:?}", plain.len()),
        }
    }
});
