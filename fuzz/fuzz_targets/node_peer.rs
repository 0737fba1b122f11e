#![no_main]
// The body and its input format: fuzz/harness/src/node_peer.rs
libfuzzer_sys::fuzz_target!(|data: &[u8]| mykey_fuzz_harness::node_peer::run(data));
