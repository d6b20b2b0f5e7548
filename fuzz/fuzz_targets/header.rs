#![no_main]
//! See mailroom::fuzzing::header.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::header(data));
