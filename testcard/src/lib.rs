//! A virtual JPKI (My Number) card for tests, the demo and the simulation.
//!
//! - [`card`]: [`TestCard`], the card's logic: it answers raw command APDU
//!   bytes (SELECT of the JPKI AP and its EFs, READ BINARY, VERIFY with a
//!   3-try counter, the user-authentication signature) with raw response
//!   bytes. `vjpki serve` puts it behind vpcd for the process tests; the
//!   simulation and in-process tests put it behind the node's `CardChannel`.
//! - [`cert`]: test keys (RSA-2048, deterministic from a seed) and X.509
//!   certificates (a CA, card certificates it signs) built with the rsa crate,
//!   so a caller needs neither the openssl CLI nor files.
//!
//! Nothing here is for production: the PIN is compared in plain bytes and
//! the keys come from a seed.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod card;
pub mod cert;
mod der;

pub use card::{ATR, JPKI_AID, MAX_TRIES, TestCard};
pub use cert::{CertError, TestCa, key_from_seed};
