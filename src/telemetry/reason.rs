//! Why a batch was refused or dropped, or an event dropped: one name per outcome, used as the
//! metric label ([`Reason::as_str`]) and in log lines (its `Display`).

use std::fmt;

/// Declares [`Reason`] from one table: variant, metric label, message.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $label:literal, $message:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// The metric label, e.g. `optout_dnt`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $label,)*
                }
            }

            fn message(self) -> &'static str {
                match self {
                    $(Reason::$variant => $message,)*
                }
            }
        }
    };
}

reasons! {
    // Batches refused with a 4xx or 5xx (`hushtale_batches_rejected_total`).
    RateLimited => "rate_limited", "too many batches from this address";
    BodyTimeout => "body_timeout", "the body took too long to arrive";
    BodyTooLarge => "body_too_large", "the body is over the size limit";
    DecompressedTooLarge => "decompressed_too_large", "the inflated body is over the size limit";
    UnsupportedContentType => "unsupported_content_type", "unsupported content type";
    UnsupportedEncoding => "unsupported_encoding", "unsupported content encoding";
    BadGzip => "bad_gzip", "the gzip body is invalid";
    Malformed => "malformed", "the batch cannot be decoded";
    BadEnvelope => "bad_envelope", "the batch's envelope is invalid";
    TooManyEvents => "too_many_events", "too many events in the batch";
    UnknownSite => "unknown_site", "no such site";
    OriginNotAllowed => "origin_not_allowed", "the origin may not send to this site";
    NoValidEvent => "no_valid_event", "no valid event in the batch";
    Overloaded => "overloaded", "the write queue is full";
    ShuttingDown => "shutting_down", "the server is shutting down";
    StoreFailed => "store_failed", "the store failed";
    // Batches answered 204 but deliberately not stored (`hushtale_batches_dropped_total`).
    OptOut => "optout", "the visitor opted out (cookie)";
    OptOutDnt => "optout_dnt", "the browser sends Do Not Track";
    OptOutGpc => "optout_gpc", "the browser sends Global Privacy Control";
    Bot => "bot", "the User-Agent is a bot";
    // Events dropped from otherwise valid batches (`hushtale_events_dropped_total`).
    UnknownKind => "unknown_kind", "unknown event kind";
    MissingField => "missing_field", "a required field is missing";
    BadNumber => "bad_number", "a number is out of range";
    BadTime => "bad_time", "the time is implausible";
    TooLong => "too_long", "a text is over its length limit";
    BadUrl => "bad_url", "the URL cannot be made safe";
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{} twice", r.as_str());
            assert!(r.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", r.as_str());
            assert!(!r.to_string().is_empty());
        }
    }
}
