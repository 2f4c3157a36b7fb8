//! gzip inflation under a limit: the checks of `hushtale::fuzz_checks::gzip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hushtale::fuzz_checks::gzip(data));
