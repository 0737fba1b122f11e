//! The JPKI user-authentication certificate and the card proof, shared by
//! the node (which reads cards) and the hub (which registers card keys and
//! verifies the proofs that redeems carry).
//!
//! Pure: bytes in, values or typed errors out; the time of a chain check is
//! an argument. No I/O, no clock, no randomness.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod cert;
mod digest;
pub mod proof;

pub use cert::{
    CardCert, CertHeaderError, CertParseError, ChainError, ChainOk, MAX_CERT_BYTES, TrustedCert,
    cert_total_len, rfc3339, trust, verify_chain, verify_sha256,
};
pub use digest::{DigestInfo, SHA256_DIGEST_INFO_PREFIX};
pub use proof::{
    ProofError, verify_donation_proof, verify_holder_order, verify_holder_proof,
    verify_redeem_proof, verify_voucher_issue_proof,
};
