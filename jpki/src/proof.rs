//! Checking a redeem's card proof against a card's public key.
//!
//! The card signs `RedeemBinding::signed_message()` (PKCS#1 v1.5, SHA-256)
//! with its user-authentication key. The hub checks it with the key it kept
//! from the card's certificate at registration or renewal, so a node cannot
//! claim a PIN proof it does not have, and a proof made for one transaction
//! verifies for no other.

use mykey_sync_proto::holder::{HolderBinding, HolderOrder};
use mykey_sync_proto::{CardSignature, RedeemBinding};
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;

/// Why a card proof was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The stored key is not a DER SubjectPublicKeyInfo of an RSA key.
    #[error("the card's registered public key does not parse: re-register the card's certificate")]
    BadKey,
    /// The signature does not verify for this transaction with this key.
    #[error(
        "the card proof does not verify for this transaction with the card's registered key (another card, another transaction, or forged)"
    )]
    BadSignature(#[source] rsa::Error),
}

/// Verifies `signature` as the card's proof over `binding` with the card's
/// public key (DER SubjectPublicKeyInfo, as [`crate::CardCert::public_key_der`] gives).
pub fn verify_redeem_proof(
    public_key_der: &[u8],
    binding: &RedeemBinding,
    signature: &CardSignature,
) -> Result<(), ProofError> {
    verify_message(public_key_der, &binding.signed_message(), signature)
}

/// Verifies `signature` as the card's proof over a donation's `binding`
/// (issue 19: points given to a donation programme at a kiosk).
pub fn verify_donation_proof(
    public_key_der: &[u8],
    binding: &mykey_sync_proto::DonationBinding,
    signature: &CardSignature,
) -> Result<(), ProofError> {
    verify_message(public_key_der, &binding.signed_message(), signature)
}

/// Verifies `signature` as the card's proof over a kiosk voucher issue's
/// `binding` (issue 17 part 1(a): points turned into vouchers at a kiosk).
pub fn verify_voucher_issue_proof(
    public_key_der: &[u8],
    binding: &mykey_sync_proto::VoucherIssueBinding,
    signature: &CardSignature,
) -> Result<(), ProofError> {
    verify_message(public_key_der, &binding.signed_message(), signature)
}

/// Verifies `signature` as the card's proof over a holder action's
/// `binding` (issue 19: a holder reading their own history), with the same
/// key and the same check as a redeem's proof.
pub fn verify_holder_proof(
    public_key_der: &[u8],
    binding: &HolderBinding,
    signature: &CardSignature,
) -> Result<(), ProofError> {
    verify_message(public_key_der, &binding.signed_message(), signature)
}

/// Verifies `signature` as the card's proof over a holder's `order`
/// (issue 19: registering, changing the My Key ID), with the same key and
/// the same check as a redeem's proof.
pub fn verify_holder_order(
    public_key_der: &[u8],
    order: &HolderOrder,
    signature: &CardSignature,
) -> Result<(), ProofError> {
    verify_message(public_key_der, &order.signed_message(), signature)
}

/// The one check behind every proof: `signature` is the card key's PKCS#1
/// v1.5 signature over SHA-256 of `message` (what the card was asked to sign).
fn verify_message(
    public_key_der: &[u8],
    message: &[u8],
    signature: &CardSignature,
) -> Result<(), ProofError> {
    let key = RsaPublicKey::from_public_key_der(public_key_der).map_err(|_| ProofError::BadKey)?;
    crate::cert::verify_sha256(&key, message, signature.as_bytes())
        .map_err(ProofError::BadSignature)
}
