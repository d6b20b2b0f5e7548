#![no_main]
//! See mailroom::fuzzing::argv.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::argv(data));
