//! The holder's card proof, bound to one redeem.
//!
//! Above a node's PIN threshold a redeem carries the holder's proof of
//! possession: the card's JPKI user-authentication key (RSA-2048, PKCS#1
//! v1.5 with SHA-256) signs [`RedeemBinding::signed_message`], which is
//! `CARD_PROOF_CONTEXT || challenge` with the challenge a SHA-256 over the
//! redeem's own fields: signing node, seq, time, card, wallet, amount and
//! merchant. A proof made for one transaction therefore verifies for no
//! other: not another seq of the same node, not another amount, not another
//! node. The hub verifies it with the certificate key it kept when the card
//! was registered; the node checks it against the card's chain-verified
//! certificate before it signs the redeem. The RSA arithmetic lives with
//! them: this module only fixes the bytes both sides agree on.

use crate::codec;
use crate::ids::ProgramId;
use crate::ids::{AccountId, CardKey, FacilityId, MunicipalityCode, NodeId, Points, UnixMillis};
use crate::tx::{Donate, KioskIssue, Redeem, TxBody, TxPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the card signs before the challenge: a proof made here is useless
/// as a login to any other JPKI service, and the other way round.
pub const CARD_PROOF_CONTEXT: &[u8] = b"MyKey Edge card proof v1\0";
/// Domain of the challenge hash.
pub const CARD_CHALLENGE_DOMAIN: &[u8] = b"mykey-edge/card-challenge/v1\0";
/// Domain of a donation's challenge hash: a donation proof is never a
/// redeem proof, and the other way round.
pub const DONATION_CHALLENGE_DOMAIN: &[u8] = b"mykey-edge/donation-challenge/v1\0";
/// Domain of a kiosk voucher issue's challenge hash: such a proof is no
/// redeem's or donation's proof, and the other way round.
pub const VOUCHER_ISSUE_CHALLENGE_DOMAIN: &[u8] = b"mykey-edge/voucher-issue-challenge/v1\0";
/// Upper bound of a card signature (RSA-4096 would be 512 bytes; JPKI uses 2048).
pub const MAX_CARD_SIGNATURE_BYTES: usize = 512;

/// The card's signature over a redeem's binding, as carried in the redeem.
/// Nothing in it is trusted until a verifier checks it against the card's
/// certificate key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_bytes::ByteBuf", into = "serde_bytes::ByteBuf")]
pub struct CardSignature(Vec<u8>);

/// A card signature of an impossible length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a card signature is 1 to {MAX_CARD_SIGNATURE_BYTES} bytes, this one is {0}: the card or the node is faulty"
)]
pub struct CardSignatureError(pub usize);

impl CardSignature {
    /// Wraps signature bytes, refusing empty or oversized ones.
    pub fn new(bytes: Vec<u8>) -> Result<Self, CardSignatureError> {
        if bytes.is_empty() || bytes.len() > MAX_CARD_SIGNATURE_BYTES {
            return Err(CardSignatureError(bytes.len()));
        }
        Ok(CardSignature(bytes))
    }
    /// The signature bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for CardSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardSignature({} bytes)", self.0.len())
    }
}

impl TryFrom<serde_bytes::ByteBuf> for CardSignature {
    type Error = CardSignatureError;
    fn try_from(raw: serde_bytes::ByteBuf) -> Result<Self, Self::Error> {
        CardSignature::new(raw.into_vec())
    }
}

impl From<CardSignature> for serde_bytes::ByteBuf {
    fn from(s: CardSignature) -> Self {
        serde_bytes::ByteBuf::from(s.0)
    }
}

/// The fields of one redeem that its card proof is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RedeemBinding {
    /// The signing node.
    pub node: NodeId,
    /// The redeem's seq in that node's chain.
    pub seq: u64,
    /// The redeem's `created_at`.
    pub created_at: UnixMillis,
    /// The card presented.
    pub card: CardKey,
    /// The holder's account.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// How many.
    pub points: Points,
    /// The accepting facility.
    pub merchant: FacilityId,
}

impl RedeemBinding {
    /// The binding of a redeem that `node` signs as `seq` at `created_at`.
    pub fn new(node: NodeId, seq: u64, created_at: UnixMillis, redeem: &Redeem) -> Self {
        RedeemBinding {
            node,
            seq,
            created_at,
            card: redeem.card.clone(),
            account: redeem.account,
            municipality: redeem.municipality,
            points: redeem.points,
            merchant: redeem.merchant.clone(),
        }
    }

    /// The binding of a signed redeem's payload (`None` for other bodies).
    pub fn of(payload: &TxPayload) -> Option<Self> {
        match &payload.body {
            TxBody::Redeem(r) => Some(Self::new(payload.node, payload.seq, payload.created_at, r)),
            _ => None,
        }
    }

    /// The 32-byte challenge: SHA-256 over the domain and the canonical
    /// encoding of the binding.
    pub fn challenge(&self) -> [u8; 32] {
        bound_challenge(CARD_CHALLENGE_DOMAIN, self)
    }

    /// What the card signs: [`CARD_PROOF_CONTEXT`] then the challenge. The
    /// card's signature is PKCS#1 v1.5 over SHA-256 of these bytes.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(&self.challenge())
    }
}

/// The fields of one donation that its card proof is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DonationBinding {
    /// The signing node.
    pub node: NodeId,
    /// The donation's seq in that node's chain.
    pub seq: u64,
    /// The donation's `created_at`.
    pub created_at: UnixMillis,
    /// The card presented.
    pub card: CardKey,
    /// The holder's account.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// How many.
    pub points: Points,
    /// The donation programme.
    pub programme: ProgramId,
}

impl DonationBinding {
    /// The binding of a donation that `node` signs as `seq` at `created_at`.
    pub fn new(node: NodeId, seq: u64, created_at: UnixMillis, d: &Donate) -> Self {
        DonationBinding {
            node,
            seq,
            created_at,
            card: d.card.clone(),
            account: d.account,
            municipality: d.municipality,
            points: d.points,
            programme: d.programme.clone(),
        }
    }

    /// The binding of a signed donation's payload (`None` for other bodies).
    pub fn of(payload: &TxPayload) -> Option<Self> {
        match &payload.body {
            TxBody::Donate(d) => Some(Self::new(payload.node, payload.seq, payload.created_at, d)),
            _ => None,
        }
    }

    /// The 32-byte challenge: SHA-256 over the domain and the canonical
    /// encoding of the binding.
    pub fn challenge(&self) -> [u8; 32] {
        bound_challenge(DONATION_CHALLENGE_DOMAIN, self)
    }

    /// What the card signs: [`CARD_PROOF_CONTEXT`] then the challenge.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(&self.challenge())
    }
}

/// The fields of one kiosk voucher issue that its card proof is bound to:
/// everything the issue says but the proof itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VoucherIssueBinding {
    /// The signing node.
    pub node: NodeId,
    /// The issue's seq in that node's chain.
    pub seq: u64,
    /// The issue's `created_at`.
    pub created_at: UnixMillis,
    /// The card presented.
    pub card: CardKey,
    /// The holder's account.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// How many in all.
    pub points: Points,
    /// Each voucher's points.
    pub denominations: Vec<u32>,
    /// The node's kiosk batch.
    pub batch: u16,
    /// The vouchers' last valid day (days since 1970-01-01).
    pub expires_days: u16,
}

impl VoucherIssueBinding {
    /// The binding of an issue that `node` signs as `seq` at `created_at`.
    pub fn new(node: NodeId, seq: u64, created_at: UnixMillis, k: &KioskIssue) -> Self {
        VoucherIssueBinding {
            node,
            seq,
            created_at,
            card: k.card.clone(),
            account: k.account,
            municipality: k.municipality,
            points: k.points,
            denominations: k.denominations.clone(),
            batch: k.batch,
            expires_days: k.expires_days,
        }
    }

    /// The binding of a signed issue's payload (`None` for other bodies).
    pub fn of(payload: &TxPayload) -> Option<Self> {
        match &payload.body {
            TxBody::IssueVouchers(k) => {
                Some(Self::new(payload.node, payload.seq, payload.created_at, k))
            }
            _ => None,
        }
    }

    /// The 32-byte challenge: SHA-256 over the domain and the canonical
    /// encoding of the binding.
    pub fn challenge(&self) -> [u8; 32] {
        bound_challenge(VOUCHER_ISSUE_CHALLENGE_DOMAIN, self)
    }

    /// What the card signs: [`CARD_PROOF_CONTEXT`] then the challenge.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(&self.challenge())
    }
}

/// A binding's 32-byte challenge: SHA-256 over its domain and its
/// canonical encoding.
fn bound_challenge(domain: &[u8], binding: &impl Serialize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(codec::encode(binding));
    h.finalize().into()
}

/// What the card signs for `challenge`: [`CARD_PROOF_CONTEXT`] then it.
fn signed_message(challenge: &[u8; 32]) -> Vec<u8> {
    [CARD_PROOF_CONTEXT, &challenge[..]].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::Basis;

    fn redeem(points: u64) -> Redeem {
        Redeem {
            card: CardKey::new(vec![0x30, 1], vec![7]).unwrap(),
            account: AccountId::new(3).unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            points: Points::new(points).unwrap(),
            merchant: FacilityId::parse("shop-1").unwrap(),
            basis: None,
            card_proof: None,
        }
    }

    fn node(seed: u8) -> NodeId {
        let k = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        NodeId::from_bytes(k.verifying_key().to_bytes()).unwrap()
    }

    #[test]
    fn every_bound_field_changes_the_challenge() {
        let base = RedeemBinding::new(node(1), 5, UnixMillis(10), &redeem(100));
        let c = base.challenge();
        let variants = [
            RedeemBinding {
                node: node(2),
                ..base.clone()
            },
            RedeemBinding {
                seq: 6,
                ..base.clone()
            },
            RedeemBinding {
                created_at: UnixMillis(11),
                ..base.clone()
            },
            RedeemBinding {
                card: CardKey::new(vec![0x30, 1], vec![8]).unwrap(),
                ..base.clone()
            },
            RedeemBinding {
                account: AccountId::new(4).unwrap(),
                ..base.clone()
            },
            RedeemBinding {
                municipality: MunicipalityCode::parse("011002").unwrap(),
                ..base.clone()
            },
            RedeemBinding {
                points: Points::new(101).unwrap(),
                ..base.clone()
            },
            RedeemBinding {
                merchant: FacilityId::parse("shop-2").unwrap(),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.challenge(), c, "{v:?}");
        }
        // The basis and the proof itself are not bound: the node learns the
        // basis inside its write transaction, after the card has signed.
        let mut r = redeem(100);
        r.basis = Some(Basis {
            ledger_pos: 9,
            balance: Points::new(5).unwrap(),
            debt: Points::ZERO,
        });
        assert_eq!(RedeemBinding::new(node(1), 5, UnixMillis(10), &r), base);
        assert!(base.signed_message().starts_with(CARD_PROOF_CONTEXT));
    }

    #[test]
    fn signature_lengths_are_bounded() {
        assert!(CardSignature::new(vec![]).is_err());
        assert!(CardSignature::new(vec![1; MAX_CARD_SIGNATURE_BYTES + 1]).is_err());
        let s = CardSignature::new(vec![1; 256]).unwrap();
        let bytes = codec::encode(&s);
        let back: CardSignature = codec::decode_canonical("card signature", &bytes, 1024).unwrap();
        assert_eq!(back, s);
        let empty = codec::encode(&serde_bytes::ByteBuf::from(Vec::<u8>::new()));
        assert!(codec::decode_canonical::<CardSignature>("card signature", &empty, 1024).is_err());
    }

    fn donation(points: u64, programme: &str) -> Donate {
        let r = redeem(points);
        Donate {
            card: r.card,
            account: r.account,
            municipality: r.municipality,
            points: r.points,
            programme: ProgramId::parse(programme).unwrap(),
            card_proof: crate::card_proof::CardSignature::new(vec![1]).unwrap(),
        }
    }

    /// A donation's proof binds every field, and is never a redeem's proof
    /// (nor the other way round): its domain differs.
    #[test]
    fn a_donation_proof_binds_its_fields_and_is_no_redeem_proof() {
        let base = DonationBinding::new(node(1), 5, UnixMillis(10), &donation(100, "relief"));
        let c = base.challenge();
        let variants = [
            DonationBinding::new(node(2), 5, UnixMillis(10), &donation(100, "relief")),
            DonationBinding::new(node(1), 6, UnixMillis(10), &donation(100, "relief")),
            DonationBinding::new(node(1), 5, UnixMillis(11), &donation(100, "relief")),
            DonationBinding::new(node(1), 5, UnixMillis(10), &donation(101, "relief")),
            DonationBinding::new(node(1), 5, UnixMillis(10), &donation(100, "relief-2")),
        ];
        for v in variants {
            assert_ne!(v.challenge(), c, "{v:?}");
        }
        let as_redeem = RedeemBinding::new(node(1), 5, UnixMillis(10), &redeem(100));
        assert_ne!(as_redeem.challenge(), c);
        let mut h = Sha256::new();
        h.update(CARD_CHALLENGE_DOMAIN);
        h.update(codec::encode(&base));
        let under_redeem_domain: [u8; 32] = h.finalize().into();
        assert_ne!(under_redeem_domain, c);
        // The signed payload's binding is the one the node asked the card for.
        let payload = TxPayload {
            node: node(1),
            seq: 5,
            prev_hash: crate::ids::TxId::GENESIS,
            created_at: UnixMillis(10),
            body: TxBody::Donate(donation(100, "relief")),
        };
        assert_eq!(DonationBinding::of(&payload), Some(base));
    }

    fn issue(denominations: &[u32], batch: u16, expires_days: u16) -> KioskIssue {
        let r = redeem(denominations.iter().map(|d| u64::from(*d)).sum());
        KioskIssue {
            card: r.card,
            account: r.account,
            municipality: r.municipality,
            points: r.points,
            denominations: denominations.to_vec(),
            batch,
            expires_days,
            card_proof: CardSignature::new(vec![1]).unwrap(),
        }
    }

    /// A kiosk issue's proof binds every field (the split into vouchers,
    /// the batch and the expiry too) and is no redeem's or donation's proof.
    #[test]
    fn a_voucher_issue_proof_binds_its_fields_and_is_no_other_proof() {
        let b = |n: u8, seq: u64, at: u64, k: &KioskIssue| {
            VoucherIssueBinding::new(node(n), seq, UnixMillis(at), k)
        };
        let base = b(1, 5, 10, &issue(&[500, 500], 1, 20_000));
        let c = base.challenge();
        let variants = [
            b(2, 5, 10, &issue(&[500, 500], 1, 20_000)),
            b(1, 6, 10, &issue(&[500, 500], 1, 20_000)),
            b(1, 5, 11, &issue(&[500, 500], 1, 20_000)),
            b(1, 5, 10, &issue(&[1000], 1, 20_000)),
            b(1, 5, 10, &issue(&[400, 600], 1, 20_000)),
            b(1, 5, 10, &issue(&[500, 500], 2, 20_000)),
            b(1, 5, 10, &issue(&[500, 500], 1, 20_001)),
        ];
        for v in variants {
            assert_ne!(v.challenge(), c, "{v:?}");
        }
        assert_ne!(
            RedeemBinding::new(node(1), 5, UnixMillis(10), &redeem(1000)).challenge(),
            c
        );
        let payload = TxPayload {
            node: node(1),
            seq: 5,
            prev_hash: crate::ids::TxId::GENESIS,
            created_at: UnixMillis(10),
            body: TxBody::IssueVouchers(issue(&[500, 500], 1, 20_000)),
        };
        assert_eq!(VoucherIssueBinding::of(&payload), Some(base));
    }

    #[test]
    fn a_kiosk_issue_holds_together() {
        use crate::tx::{KioskIssueError as E, MAX_KIOSK_VOUCHERS};
        assert_eq!(issue(&[500, 300, 200], 1, 9).check(), Ok(()));
        let mut k = issue(&[500, 500], 1, 9);
        k.points = Points::new(999).unwrap();
        assert!(matches!(k.check(), Err(E::Sum { sum: 1000, .. })));
        let mut k = issue(&[500], 1, 9);
        k.denominations.clear();
        assert_eq!(k.check(), Err(E::Count(0)));
        let many = vec![1u32; MAX_KIOSK_VOUCHERS + 1];
        assert_eq!(
            issue(&many, 1, 9).check(),
            Err(E::Count(MAX_KIOSK_VOUCHERS + 1))
        );
        assert_eq!(issue(&[5, 0, 5], 1, 9).check(), Err(E::ZeroVoucher(2)));
        assert!(matches!(
            issue(&[100_001], 1, 9).check(),
            Err(E::TooMany(_))
        ));
        assert_eq!(issue(&[5], 0, 9).check(), Err(E::BatchZero));
    }
}
