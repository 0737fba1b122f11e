//! End-to-end test support for MyKey Edge: an in-process link that drives a
//! real node core and a real hub core through the sans-IO sessions and the
//! real wire encoding, and the demo.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod card;
pub mod harness;
pub mod sync_client;
pub mod vcard;
pub mod world;
