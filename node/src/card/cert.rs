//! The JPKI user-authentication certificate (length header, card key, public
//! key, chain check): the shared `mykey-jpki` crate, which the hub uses too
//! when it registers a card's key and verifies card proofs.

pub use mykey_jpki::cert::*;
