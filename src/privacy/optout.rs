//! The opt-out decision: made from request headers alone, before a byte of the batch is decoded.

use http::HeaderMap;

use crate::telemetry::Reason;

/// Name of the collector's own opt-out cookie (set by `GET /disable`).
pub const OPTOUT_COOKIE: &str = "hushtale_optout";

/// Which browser signals are honoured besides the cookie (always honoured).
#[derive(Debug, Clone, Copy)]
pub struct OptOutPolicy {
    pub honour_dnt: bool,
    pub honour_gpc: bool,
}

impl Default for OptOutPolicy {
    fn default() -> Self {
        Self { honour_dnt: true, honour_gpc: true }
    }
}

/// The signal that opted a request out, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutSignal {
    Cookie,
    DoNotTrack,
    GlobalPrivacyControl,
}

impl From<OptOutSignal> for Reason {
    fn from(signal: OptOutSignal) -> Self {
        match signal {
            OptOutSignal::Cookie => Reason::OptOut,
            OptOutSignal::DoNotTrack => Reason::OptOutDnt,
            OptOutSignal::GlobalPrivacyControl => Reason::OptOutGpc,
        }
    }
}

impl OptOutPolicy {
    pub fn check(&self, headers: &HeaderMap) -> Option<OptOutSignal> {
        if has_optout_cookie(headers) {
            return Some(OptOutSignal::Cookie);
        }
        if self.honour_gpc && header_is_one(headers, "sec-gpc") {
            return Some(OptOutSignal::GlobalPrivacyControl);
        }
        if self.honour_dnt && header_is_one(headers, "dnt") {
            return Some(OptOutSignal::DoNotTrack);
        }
        None
    }
}

fn header_is_one(headers: &HeaderMap, name: &str) -> bool {
    headers.get_all(name).iter().any(|v| v.as_bytes().trim_ascii() == b"1")
}

/// True when any `Cookie` header carries `hushtale_optout=1`.
pub fn has_optout_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .any(|c| c.name() == OPTOUT_COOKIE && c.value() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cookie_among_others() {
        let h = headers(&[("cookie", "a=b; hushtale_optout=1; c=d")]);
        assert_eq!(OptOutPolicy::default().check(&h), Some(OptOutSignal::Cookie));
        let h = headers(&[("cookie", "hushtale_optout=0")]);
        assert_eq!(OptOutPolicy::default().check(&h), None);
    }

    #[test]
    fn dnt_and_gpc_are_configurable() {
        let h = headers(&[("dnt", "1"), ("sec-gpc", "1")]);
        assert_eq!(OptOutPolicy::default().check(&h), Some(OptOutSignal::GlobalPrivacyControl));
        let off = OptOutPolicy { honour_dnt: false, honour_gpc: false };
        assert_eq!(off.check(&h), None);
        assert_eq!(OptOutPolicy::default().check(&headers(&[("dnt", "0")])), None);
    }
}
