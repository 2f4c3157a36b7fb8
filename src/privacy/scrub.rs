//! SHIM (replaced by the real scrubber)
use std::borrow::Cow;
pub fn scrub_text(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}
