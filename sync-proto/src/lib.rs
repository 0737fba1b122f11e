//! The shared language of MyKey Edge: identifiers, points, signed
//! transactions, hub-signed facts, wire messages and the sans-IO sync sessions.
//!
//! This crate does no I/O: it never reads a clock, opens a socket or draws OS
//! randomness. Time comes in as an argument (`now`), bytes come in and go out
//! through `handle_*` and `poll_*` calls. The node, the hub and the simulation
//! all drive the same code.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod ids;

pub use ids::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, IdError, LanGroup, MunicipalityCode,
    MyKeyId, NodeId, PointOperator, Points, ProgramId, TxId, UnixMillis,
};
pub mod card_proof;
pub mod codec;
pub mod fact;
pub mod holder;
pub mod link_request;
pub mod receipts;
pub mod session;
pub mod shard;
pub mod tx;
pub mod wire;

pub use card_proof::{CardSignature, DonationBinding, RedeemBinding, VoucherIssueBinding};
pub use fact::{
    CardStatus, DonationRecipient, DonationRecipientError, FactBody, FactError, FactPayload,
    NodeLimits, RedeemedBits, Roster, Scope, SignedFact, VOUCHER_MARK_CHUNK, VerifiedFact,
    voucher_mark_chunk,
};
pub use tx::{
    Basis, Donate, FacilityCardLink, Grant, KioskIssue, KioskIssueError, MAX_KIOSK_ISSUE_POINTS,
    MAX_KIOSK_VOUCHER_DAYS, MAX_KIOSK_VOUCHERS, OpKind, Redeem, RightAccept, RightTransfer,
    SignedTx, TxBody, TxPayload, VerifiedTx, VerifyError, VoucherRedeem,
};
