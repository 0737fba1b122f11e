//! The bodies of the MyKey Edge fuzz targets: every boundary where bytes
//! come from outside (peers, cards, operators, bank data files).
//!
//! Each target is one `pub fn NAME(data: &[u8])` listed in [`TARGETS`].
//! `fuzz/fuzz_targets/NAME.rs` hands libFuzzer's input to it, and
//! `cargo test -p mykey-fuzz-harness` replays every file under
//! `fuzz/regressions/NAME/` (each crash the fuzzer found) and the checked-in
//! corpus `fuzz/corpus/NAME/` through the same function, so a fixed crash
//! stays fixed without a fuzzer.
//!
//! A target panics only when the code under test broke a rule: a panic in
//! the decoder, or a property the module docs state (a decoded message
//! re-encodes to its bytes, a verified fact sits where its placement says,
//! a Zengin file is whole records, the ledger balances). Bad input that is
//! refused with an error is the expected outcome.
//!
//! Inputs that need structure carry it in a few header bytes (documented per
//! target, and built by the module's `input` function, so the seed generator
//! `cargo run -p mykey-tests --bin fuzz-seeds` and the targets agree), or are
//! read with `arbitrary` (the session targets and the Zengin writer).
//!
//! A new codec gets a module here, a line in [`TARGETS`], a `[[bin]]` in
//! `fuzz/Cargo.toml` and seeds (see `fuzz/README.md`).
#![forbid(unsafe_code)]
// A harness states properties with assertions: a failed one is the finding.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod bank;
pub mod card;
pub mod exchange;
pub mod frame;
pub mod hub_session;
pub mod hubfile;
pub mod node_peer;
pub mod session;
pub mod shard;
pub mod sip2;
pub mod tx;
pub mod voucher;
pub mod wire;
pub mod zengin;

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the binary, the corpus and regression
/// directories) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("wire_request", wire::request),
    ("wire_response", wire::response),
    ("lan_message", wire::lan),
    ("signed_tx", tx::signed_tx),
    ("signed_fact", tx::signed_fact),
    ("shard_read", shard::read),
    ("net_frame", frame::frames),
    ("card_answers", card::answers),
    ("card_cert", card::cert),
    ("card_proof", card::proof),
    ("exchange_body", exchange::body),
    ("bank_data", bank::data),
    ("zengin_write", zengin::write),
    ("session", session::run),
    ("hub_session", hub_session::run),
    ("node_peer", node_peer::run),
    ("sip2_codec", sip2::codec),
    ("sip2_bridge", sip2::bridge),
    ("voucher_text", voucher::text),
];

/// The target of this name.
pub fn target(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// A cursor over fuzz input for targets with a small header: every read
/// either takes what it asks for or says the input is too short.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Reads from the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }
    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    /// A big-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(*self.array::<2>()?))
    }
    /// A big-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(*self.array::<8>()?))
    }
    /// `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        let (a, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(a)
    }
    /// `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(a)
    }
    /// A chunk prefixed by its u16 length.
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    /// A chunk prefixed by its u8 length.
    pub fn short_chunk(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    /// Whatever is left.
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

#[cfg(test)]
mod tests;
