//! JSON batch decoding and validation (`decode::parse` + `validate::validate`).
#![no_main]

#[path = "check_batch.rs"]
mod check_batch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_batch::check(hushtale::ingest::Format::Json, data));
