#![no_main]
// The body and its input format: fuzz/harness/src/sip2.rs
libfuzzer_sys::fuzz_target!(|data: &[u8]| mykey_fuzz_harness::sip2::codec(data));
