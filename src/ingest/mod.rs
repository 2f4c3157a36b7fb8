//! Ingest: from the bytes of `POST /collect` to typed, validated events (before privacy).

pub mod decode;
pub mod validate;
pub mod wire;

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
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Malformed(_) => "malformed",
            IngestError::BadEnvelope(_) => "bad_envelope",
            IngestError::NoValidEvent(_) => "no_valid_event",
            IngestError::BodyTooLarge(_) => "body_too_large",
            IngestError::DecompressedTooLarge => "decompressed_too_large",
            IngestError::TooManyEvents(_) => "too_many_events",
            IngestError::UnsupportedContentType => "unsupported_content_type",
            IngestError::UnsupportedEncoding => "unsupported_encoding",
            IngestError::BadGzip(_) => "bad_gzip",
        }
    }
}
