//! The card reader: PC/SC access to My Number cards, JPKI application only.
//!
//! - [`apdu`]: the privacy guard, the closed set of commands the node can send.
//! - [`cert`]: the user-authentication certificate, card key, chain check.
//! - [`reader`]: pcscd, readers, waiting for a tap, sessions with a per-APDU deadline.
//! - [`jpki`]: reading the certificate and the PIN-based card proof.
//! - [`cli`]: `mykey-node card ...`.
//! - [`watch`]: `mykey-node watch`, the counter's tap loop.
//!
//! The node selects only the JPKI AP and reads only the user-authentication
//! certificate and its CA certificate (DESIGN.md §9). That is enforced by the
//! types in [`apdu`], not by convention: no code path can address the My
//! Number applets or the signature certificate.

pub mod apdu;
pub mod cert;
pub mod cli;
pub mod jpki;
pub mod reader;
pub mod watch;

pub use apdu::{Apdu, Pin, PinFormatError};
pub use cert::{CardCert, ChainError, ChainOk, MAX_CERT_BYTES, TrustedCert, trust, verify_chain};
pub use jpki::{
    CardProof, Challenge, PinStatus, PinStatusError, ProveError, ReadError, VerifiedCardProof,
    pin_status, prove, prove_donation, prove_holder, prove_order, prove_redeem,
    prove_voucher_issue, read_auth_cert,
};
pub use reader::{
    CardChannel, ConnectError, DEFAULT_APDU_TIMEOUT, Reader, ReaderError, Session, TransmitError,
    WaitError,
};
