#![no_main]
//! See mailroom::fuzzing::mbox.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailroom::fuzzing::mbox(data));
