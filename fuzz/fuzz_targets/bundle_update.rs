#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_protocol::fuzzing::bundle_update(data));
