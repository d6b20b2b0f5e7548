#![no_main]
//! See mailroom::fuzzing::tables.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::tables(data));
