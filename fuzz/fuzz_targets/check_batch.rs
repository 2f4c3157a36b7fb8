//! What must hold for any body `POST /collect` decodes, whatever its bytes.

use hushtale::ingest::{decode, validate, Format, IngestError, Limits};
use hushtale::model::{Event, StoredBatch};

/// The server clock the fuzzer pretends it is (a fixed time keeps runs reproducible).
pub const NOW: i64 = 1_764_374_400_000;

pub fn check(format: Format, data: &[u8]) {
    let limits = Limits { max_events_per_batch: 64, ..Limits::default() };
    let Ok(wire) = decode::parse(format, data) else { return };
    match validate::validate(wire, &limits, NOW) {
        Ok(batch) => {
            assert!(!batch.events.is_empty(), "a valid batch has events");
            assert!(batch.events.len() <= limits.max_events_per_batch);
            assert!(batch.events.windows(2).all(|w| w[0].t <= w[1].t), "events are in time order");
            // Whatever is accepted must read back: this is exactly what the store writes for a
            // batch and what `GET /api/sites/{site}/sessions/{sid}` parses again.
            let encoded = StoredBatch::encode_events(&batch.events);
            let back: Vec<Event> = serde_json::from_slice(&encoded).unwrap_or_else(|e| {
                panic!("stored events do not read back: {e}: {}", String::from_utf8_lossy(&encoded))
            });
            assert_eq!(back.len(), batch.events.len());
            for (a, b) in back.iter().zip(&batch.events) {
                assert_eq!(a.t, b.t);
                assert_eq!(a.data.kind(), b.data.kind());
            }
        }
        Err(IngestError::TooManyEvents(n)) => assert_eq!(n, limits.max_events_per_batch),
        Err(_) => {}
    }
}
