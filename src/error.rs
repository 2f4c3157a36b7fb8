//! The HTTP boundary's error type and the one place that maps errors to status codes and
//! `{"error": "..."}` bodies.

use http::StatusCode;

use crate::ingest::IngestError;
use crate::store::writer::WriteError;
use crate::store::StoreError;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong operator token: send Authorization: Bearer TOKEN")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not for this method; `allow` lists the methods it has.
    #[error("method not allowed: use {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("request body took too long to arrive")]
    Timeout,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests, retry after {retry_after}s")]
    TooManyRequests { retry_after: u32 },
    #[error("server overloaded, retry after {retry_after}s")]
    Overloaded { retry_after: u32 },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds for a `Retry-After` header, when the client should come back later.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::TooManyRequests { retry_after } | ApiError::Overloaded { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The body's message. Internal details stay in the log, not the response.
    pub fn public_message(&self) -> String {
        self.to_string()
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let message = e.to_string();
        match e {
            IngestError::Malformed(_)
            | IngestError::BadEnvelope(_)
            | IngestError::NoValidEvent(_)
            | IngestError::BadGzip(_) => ApiError::BadRequest(message),
            IngestError::BodyTooLarge(_) | IngestError::DecompressedTooLarge | IngestError::TooManyEvents(_) => {
                ApiError::PayloadTooLarge(message)
            }
            IngestError::UnsupportedContentType | IngestError::UnsupportedEncoding => {
                ApiError::UnsupportedMediaType(message)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        ApiError::Internal(e.to_string())
    }
}
