#![no_main]
//! See mailroom::fuzzing::smtp.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::smtp(data));
