#![no_main]
//! See mailroom::fuzzing::pop3.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::pop3(data));
