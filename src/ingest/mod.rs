//! Ingest: from the bytes of `POST /collect` to typed, validated events (before privacy).

pub mod decode;
mod fast;
pub mod validate;
pub mod wire;

pub use crate::telemetry::Reason;
pub use decode::{Encoding, Format};
pub use validate::{DropReason, Dropped, Limits, ValidBatch};

/// Why a batch as a whole was refused. Each maps to one status in [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    BadEnvelope(String),
    #[error("no valid event in batch ({0})")]
    NoValidEvent(String),
    #[error("body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("decompressed body is over the limit")]
    DecompressedTooLarge,
    #[error("too many events in batch (limit {0})")]
    TooManyEvents(usize),
    #[error("unsupported content type: send application/json, text/plain or application/msgpack")]
    UnsupportedContentType,
    #[error("unsupported content encoding: send gzip or none")]
    UnsupportedEncoding,
    #[error("invalid gzip body: {0}")]
    BadGzip(String),
}

impl IngestError {
    /// What the refusal is counted under.
    pub fn reason(&self) -> Reason {
        match self {
            IngestError::Malformed(_) => Reason::Malformed,
            IngestError::BadEnvelope(_) => Reason::BadEnvelope,
            IngestError::NoValidEvent(_) => Reason::NoValidEvent,
            IngestError::BodyTooLarge(_) => Reason::BodyTooLarge,
            IngestError::DecompressedTooLarge => Reason::DecompressedTooLarge,
            IngestError::TooManyEvents(_) => Reason::TooManyEvents,
            IngestError::UnsupportedContentType => Reason::UnsupportedContentType,
            IngestError::UnsupportedEncoding => Reason::UnsupportedEncoding,
            IngestError::BadGzip(_) => Reason::BadGzip,
        }
    }
}
