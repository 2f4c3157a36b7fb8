//! MessagePack batch decoding and validation: the checks of `hushtale::fuzz_checks::batch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hushtale::fuzz_checks::batch(hushtale::ingest::Format::MessagePack, data));
