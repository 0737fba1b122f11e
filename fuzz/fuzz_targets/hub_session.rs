#![no_main]
// The body and its input format: fuzz/harness/src/hub_session.rs
libfuzzer_sys::fuzz_target!(|data: &[u8]| mykey_fuzz_harness::hub_session::run(data));
