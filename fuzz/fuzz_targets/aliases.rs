#![no_main]
//! See mailroom::fuzzing::aliases.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::aliases(data));
