#![no_main]
//! See mailroom::fuzzing::qf.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::qf(data));
