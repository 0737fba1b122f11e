#![no_main]
// The body and its input format: fuzz/harness/src/voucher.rs
libfuzzer_sys::fuzz_target!(|data: &[u8]| mykey_fuzz_harness::voucher::text(data));
