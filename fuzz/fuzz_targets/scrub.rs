//! The scrubber: the checks of `hushtale::fuzz_checks::scrub`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hushtale::fuzz_checks::scrub(data));
