//! The URL normaliser: the checks of `hushtale::fuzz_checks::url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hushtale::fuzz_checks::url(data));
