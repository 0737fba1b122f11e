//! Signed transactions: every change a node makes.
//!
//! A node signs `DOMAIN || canonical(TxPayload)` with its ed25519 key. The
//! transaction id is the SHA-256 of the same bytes, so it covers every field
//! and nothing else. `seq` grows by one per node and `prev_hash` chains to the
//! previous transaction's id, so a gap, a fork or a rewrite is detectable.
//! Only [`SignedTx::verify`] (or its batch form [`SignedTx::verify_batch`])
//! makes a [`VerifiedTx`], and the hub's ledger and
//! the node's cache only apply verified transactions.

use crate::card_proof::CardSignature;
use crate::codec::{self, DecodeError};
use crate::fact::SignedFact;
use crate::ids::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, MunicipalityCode, NodeId, Points,
    ProgramId, TxId, UnixMillis,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Domain separation for transaction signatures: a signature made for a
/// transaction can never be replayed as a fact, a handshake or anything else.
pub const TX_DOMAIN: &[u8] = b"mykey-edge/tx/v1\0";
/// Upper bound of an encoded transaction payload.
pub const MAX_TX_PAYLOAD_BYTES: usize = 2048;

/// What a transaction says, before signing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxPayload {
    /// The signing node.
    pub node: NodeId,
    /// 1 for the node's first transaction, then +1 each.
    pub seq: u64,
    /// The id of the node's previous transaction, [`TxId::GENESIS`] for seq 1.
    pub prev_hash: TxId,
    /// The node's clock when it signed (informative: the hub orders by arrival).
    pub created_at: UnixMillis,
    /// The change.
    pub body: TxBody,
}

/// The changes a node can make. New kinds are appended (vouchers come later),
/// never reordered, because the variant index is part of the encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxBody {
    /// Points spent at a merchant facility.
    Redeem(Redeem),
    /// Points granted from a municipal programme.
    Grant(Grant),
    /// A facility card number linked to the holder's account.
    LinkFacilityCard(FacilityCardLink),
    /// A facility card number unlinked from the holder's account.
    UnlinkFacilityCard(FacilityCardLink),
    /// Strict mode: part of this node's spend right on an account given to
    /// another node (a bounded-counter transfer, made offline on a LAN).
    RightTransfer(RightTransfer),
    /// Strict mode: this node took a [`TxBody::RightTransfer`] addressed to
    /// it into its rights. Carrying the sender's signed transfer in the
    /// receiver's own chain lets the hub move the reservation before any
    /// spend that relies on it, whichever chain reaches the hub first.
    RightAccept(RightAccept),
    /// A printed QR point voucher taken at the signing node's facility.
    RedeemVoucher(VoucherRedeem),
    /// Points a holder gives to a municipality's donation programme at a
    /// kiosk, proved by the card's PIN signature (issue 19).
    Donate(Donate),
    /// Points a holder turned into printed vouchers at a kiosk (issue 17
    /// part 1(a)), proved by the card's PIN signature; the signing node
    /// signs the vouchers with its own key under the issuer number the hub
    /// vouched for it with.
    IssueVouchers(KioskIssue),
}

impl TxBody {
    /// The operation kind, for permission checks and display.
    pub fn kind(&self) -> OpKind {
        match self {
            TxBody::Redeem(_) => OpKind::Redeem,
            TxBody::Grant(_) => OpKind::Grant,
            TxBody::LinkFacilityCard(_) => OpKind::Link,
            TxBody::UnlinkFacilityCard(_) => OpKind::Unlink,
            // Moving a spend right is part of taking points.
            TxBody::RightTransfer(_) | TxBody::RightAccept(_) => OpKind::Redeem,
            // Taking a voucher is taking points at a merchant.
            TxBody::RedeemVoucher(_) => OpKind::Redeem,
            // Giving points away is taking them from the wallet, at a node
            // allowed to take points.
            TxBody::Donate(_) => OpKind::Redeem,
            // So is turning them into vouchers.
            TxBody::IssueVouchers(_) => OpKind::Redeem,
        }
    }

    /// The body's own name, for stores and displays ("redeem" only for a
    /// spend, so sums of pending spends never count a right transfer).
    pub fn name(&self) -> &'static str {
        match self {
            TxBody::RightTransfer(_) => "right-transfer",
            TxBody::RightAccept(_) => "right-accept",
            TxBody::RedeemVoucher(_) => "voucher-redeem",
            TxBody::Donate(_) => "donation",
            TxBody::IssueVouchers(_) => "voucher-issue",
            other => other.kind().name(),
        }
    }
}

/// A spend right given by the signing node to another node of its
/// municipality. Carries no card and nothing about what is bought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightTransfer {
    /// The holder's account whose reserved points the right draws on.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// The receiving node.
    pub to: NodeId,
    /// How many points of the right move.
    pub points: Points,
    /// The hub's right this part comes from (the sender's).
    pub right_id: u64,
    /// The hub-signed `SpendRight` fact that granted the sender `right_id`:
    /// the receiver checks the transfer against it before crediting anything.
    pub grant: SignedFact,
}

/// A printed voucher redeemed: the voucher's bytes as scanned (its body and
/// the hub's signature, `mykey-voucher`'s 81 bytes), so the hub checks the
/// voucher again and keeps it as evidence; and the facility to pay. No card,
/// no holder: a voucher is a bearer instrument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherRedeem {
    /// The whole voucher (body and hub signature).
    #[serde(with = "serde_bytes")]
    pub voucher: Vec<u8>,
    /// The facility that took it and is paid.
    pub merchant: FacilityId,
}

/// Points given to a donation programme. Always carries the card's PIN
/// signature over its [`crate::card_proof::DonationBinding`] (whatever the
/// amount): a donation cannot be undone at a counter, so no holder gives
/// points without their PIN. The hub decides it from what it verifies (the
/// proof with the card's registered key, the programme open, the confirmed
/// balance); a donation beyond the balance is refused, never made debt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Donate {
    /// The card that was presented.
    pub card: CardKey,
    /// The holder's account the card resolved to.
    pub account: AccountId,
    /// Whose regional points are given.
    pub municipality: MunicipalityCode,
    /// How many.
    pub points: Points,
    /// The donation programme (declared by the municipality at the hub).
    pub programme: ProgramId,
    /// The card's signature over this donation's binding.
    pub card_proof: CardSignature,
}

/// Most vouchers one kiosk issue makes (a receipt's worth).
pub const MAX_KIOSK_VOUCHERS: usize = 20;
/// Most points one kiosk issue turns into vouchers.
pub const MAX_KIOSK_ISSUE_POINTS: u64 = 100_000;
/// The longest a kiosk voucher may be valid, in days after the day of its
/// issue (a year and a day); the hub refuses a later last day.
pub const MAX_KIOSK_VOUCHER_DAYS: u16 = 366;

/// Points a holder turned into vouchers at a kiosk. Always carries the
/// card's PIN signature over its [`crate::card_proof::VoucherIssueBinding`]
/// (whatever the amount): the vouchers are bearer instruments once printed.
/// The vouchers' serials are the signing node's kiosk batch `batch` under
/// the issuer number the hub gave the node, indices 1 through the number of
/// `denominations`; the hub records the batch once per issuer and refuses
/// another transaction naming it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskIssue {
    /// The card that was presented.
    pub card: CardKey,
    /// The holder's account the card resolved to.
    pub account: AccountId,
    /// Whose regional points.
    pub municipality: MunicipalityCode,
    /// The points taken from the wallet: the sum of `denominations`.
    pub points: Points,
    /// Each voucher's points, by index (voucher 1 first).
    pub denominations: Vec<u32>,
    /// The node's own kiosk batch number (1, 2, …): the low 16 bits of the
    /// vouchers' batch ([`KioskIssue`] docs).
    pub batch: u16,
    /// The vouchers' last valid day, in days since 1970-01-01 (JST dates,
    /// as `mykey_voucher::ExpiryDate` counts them).
    pub expires_days: u16,
    /// The card's signature over this issue's binding.
    pub card_proof: CardSignature,
}

/// Why a kiosk issue's own fields do not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KioskIssueError {
    /// No vouchers, or more than a receipt holds.
    #[error("a kiosk issue makes 1 to {MAX_KIOSK_VOUCHERS} vouchers, not {0}")]
    Count(usize),
    /// A voucher of 0 points.
    #[error("voucher {0} of the issue is of 0 points: each voucher carries at least 1")]
    ZeroVoucher(usize),
    /// The vouchers do not add up to the points taken.
    #[error("the vouchers add up to {sum} points, but the issue takes {points}")]
    Sum {
        /// The denominations' sum.
        sum: u64,
        /// The points taken.
        points: Points,
    },
    /// More points than one issue may take.
    #[error("a kiosk issue takes at most {MAX_KIOSK_ISSUE_POINTS} points, not {0}")]
    TooMany(Points),
    /// Batch 0 is not a batch.
    #[error("kiosk batch numbers start at 1")]
    BatchZero,
}

impl KioskIssue {
    /// Checks what the issue's own fields must say together: 1 to
    /// [`MAX_KIOSK_VOUCHERS`] vouchers of at least 1 point adding up to
    /// `points`, at most [`MAX_KIOSK_ISSUE_POINTS`], a batch from 1.
    pub fn check(&self) -> Result<(), KioskIssueError> {
        let n = self.denominations.len();
        if n == 0 || n > MAX_KIOSK_VOUCHERS {
            return Err(KioskIssueError::Count(n));
        }
        if let Some(i) = self.denominations.iter().position(|d| *d == 0) {
            return Err(KioskIssueError::ZeroVoucher(i + 1));
        }
        let sum: u64 = self.denominations.iter().map(|d| u64::from(*d)).sum();
        if sum != self.points.get() {
            return Err(KioskIssueError::Sum {
                sum,
                points: self.points,
            });
        }
        if self.points.get() > MAX_KIOSK_ISSUE_POINTS {
            return Err(KioskIssueError::TooMany(self.points));
        }
        if self.batch == 0 {
            return Err(KioskIssueError::BatchZero);
        }
        Ok(())
    }
}

/// A right transfer the signing node received, with the sender's signed
/// transaction as it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightAccept {
    /// The sender's signed [`TxBody::RightTransfer`].
    pub transfer: SignedTx,
}

/// A spend. Carries amount, merchant and time only: never what was bought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redeem {
    /// The card that was presented.
    pub card: CardKey,
    /// The holder's account the card resolved to.
    pub account: AccountId,
    /// Whose regional points are spent.
    pub municipality: MunicipalityCode,
    /// How many.
    pub points: Points,
    /// The facility that accepted them and will be reimbursed.
    pub merchant: FacilityId,
    /// The hub-confirmed balance of the wallet the node decided on (`None`:
    /// it held none). The hub checks it issued exactly this balance and
    /// bounds what it pays from its own records (DESIGN §6).
    pub basis: Option<Basis>,
    /// The holder's PIN proof: the card's signature over this redeem's
    /// [`crate::card_proof::RedeemBinding`]. Required above the node's PIN
    /// threshold; the hub verifies it with the card's registered key.
    pub card_proof: Option<CardSignature>,
}

/// A wallet's balance as the hub confirmed it at a ledger position (from a
/// receipt or a `ConfirmedBalance` fact): what a node decided a spend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    /// The ledger position the balance reflects.
    pub ledger_pos: u64,
    /// Spendable points there.
    pub balance: Points,
    /// Debt there.
    pub debt: Points,
}

/// A grant from a programme's budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The card that was presented.
    pub card: CardKey,
    /// The holder's account.
    pub account: AccountId,
    /// The granting municipality.
    pub municipality: MunicipalityCode,
    /// The programme whose budget pays.
    pub program: ProgramId,
    /// How many.
    pub points: Points,
}

/// A facility card number (library card …) attached to or removed from an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilityCardLink {
    /// The holder's account.
    pub account: AccountId,
    /// The facility that issued the number.
    pub facility: FacilityId,
    /// The number.
    pub number: FacilityCardNumber,
}

/// Operation kinds a node may be allowed to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpKind {
    /// Spend points.
    Redeem,
    /// Grant points.
    Grant,
    /// Link a facility card.
    Link,
    /// Unlink a facility card.
    Unlink,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; 4] = [OpKind::Redeem, OpKind::Grant, OpKind::Link, OpKind::Unlink];

    /// Lower-case name used in configs and CLIs.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Redeem => "redeem",
            OpKind::Grant => "grant",
            OpKind::Link => "link",
            OpKind::Unlink => "unlink",
        }
    }

    /// Parses a name as [`OpKind::name`] prints it.
    pub fn parse(text: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.name() == text)
    }
}

/// A transaction as carried on the wire and stored: the exact payload bytes
/// that were signed, and the signature. Nothing in it is trusted until
/// [`SignedTx::verify`] succeeds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: [u8; 64],
}

impl std::fmt::Debug for SignedTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignedTx({})", self.id().short())
    }
}

/// Why a signed transaction was not accepted as authentic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The payload bytes did not decode canonically.
    #[error("transaction payload: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not match the payload and the named node's key.
    #[error("signature does not verify against node {node}'s key")]
    BadSignature {
        /// The claimed signer (short form).
        node: String,
    },
}

impl SignedTx {
    /// Signs a payload. The key must be the payload's node key: signing for
    /// another node is a programmer error.
    pub fn sign(payload: &TxPayload, key: &SigningKey) -> SignedTx {
        assert_eq!(
            key.verifying_key().as_bytes(),
            payload.node.as_bytes(),
            "a node signs only its own transactions"
        );
        let bytes = codec::encode(payload);
        assert!(
            bytes.len() <= MAX_TX_PAYLOAD_BYTES,
            "transaction payload too large"
        );
        let signature = key.sign(&signing_input(TX_DOMAIN, &bytes)).to_bytes();
        SignedTx {
            payload: bytes,
            signature,
        }
    }

    /// Rebuilds a transaction from stored bytes (as [`SignedTx::to_bytes`] made them).
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedTx, DecodeError> {
        codec::decode_canonical("signed transaction", bytes, MAX_TX_PAYLOAD_BYTES + 80)
    }

    /// The canonical encoding, for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The id: SHA-256 over the signed bytes (domain and payload).
    pub fn id(&self) -> TxId {
        TxId::hash_of(&signing_input(TX_DOMAIN, &self.payload))
    }

    /// The payload bytes as signed.
    pub fn payload_bytes(&self) -> &[u8] {
        &self.payload
    }

    /// Decodes the payload and checks the signature against the node key the
    /// payload names. Whether that node is enrolled is the caller's question.
    pub fn verify(&self) -> Result<VerifiedTx, VerifyError> {
        self.verify_with(|_| None)
    }

    /// [`SignedTx::verify`] for a verifier that keeps signers' keys at hand:
    /// `known` may return the already decompressed key of the payload's node,
    /// so a hub checking thousands of transactions from a few nodes does not
    /// decompress the same key each time. A key that is not the node's is
    /// ignored, so the outcome is always that of `verify`.
    pub fn verify_with(
        &self,
        known: impl FnOnce(&NodeId) -> Option<VerifyingKey>,
    ) -> Result<VerifiedTx, VerifyError> {
        let (payload, key) = self.prepare(known)?;
        self.check_signature(&payload, &key)?;
        Ok(VerifiedTx {
            id: self.id(),
            payload,
            signed: self.clone(),
        })
    }

    /// [`SignedTx::verify_with`] over many transactions at once, with one
    /// ed25519 batch check (`verify_batch`, about twice the single rate)
    /// instead of one check each. The answer for each transaction is that
    /// of `verify_with`: a batch that fails is checked again one by one, so
    /// one bad signature is refused alone and the rest still pass, and a
    /// transaction the strict check would refuse for its form (a signature
    /// scalar out of range, an `R` or key of small order, an `R` encoded
    /// out of range) never enters a batch. One difference remains, by the
    /// nature of batch checks: a signature whose `R` has a small-order
    /// component may pass a batch where `verify` refuses it. Only the key's
    /// holder can make one (the challenge hashes `R`, so adding such a
    /// point to a signature someone saw breaks it for batches too: tested
    /// in `hub/tests/ingest.rs`), so the signed bytes are authentic either
    /// way; but a node could push its own transactions with signatures that
    /// a later strict re-check (the quarantine page) reports as not
    /// verifying. Closing that costs one scalar multiplication per
    /// signature (`R` torsion-free), most of the batch gain.
    pub fn verify_batch(
        txs: &[SignedTx],
        known: impl Fn(&NodeId) -> Option<VerifyingKey>,
    ) -> Vec<Result<VerifiedTx, VerifyError>> {
        // A batch is mostly one signer's chain: a key `known` does not hold
        // is decompressed once for the batch, not once per transaction.
        let mut last: Option<(NodeId, VerifyingKey)> = None;
        let prepared: Vec<Result<(TxPayload, VerifyingKey), VerifyError>> = txs
            .iter()
            .map(|tx| {
                let p = tx.prepare(|node| {
                    known(node).or_else(|| last.filter(|(id, _)| id == node).map(|(_, k)| k))
                });
                if let Ok((payload, key)) = &p {
                    last = Some((payload.node, *key));
                }
                p
            })
            .collect();
        // Only well-formed signatures go in the batch; the rest get the single check.
        let batchable: Vec<bool> = txs
            .iter()
            .zip(&prepared)
            .map(|(tx, p)| p.as_ref().is_ok_and(|(_, k)| batch_safe(k, &tx.signature)))
            .collect();
        let inputs: Vec<Vec<u8>> = txs
            .iter()
            .zip(&batchable)
            .filter(|(_, b)| **b)
            .map(|(tx, _)| signing_input(TX_DOMAIN, &tx.payload))
            .collect();
        let messages: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let (signatures, keys): (Vec<Signature>, Vec<VerifyingKey>) = txs
            .iter()
            .zip(&prepared)
            .zip(&batchable)
            .filter(|(_, b)| **b)
            .filter_map(|((tx, p), _)| {
                let (_, k) = p.as_ref().ok()?;
                Some((Signature::from_bytes(&tx.signature), *k))
            })
            .unzip();
        let batch_ok = !messages.is_empty()
            && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        txs.iter()
            .zip(prepared)
            .zip(batchable)
            .map(|((tx, p), in_batch)| {
                let (payload, key) = p?;
                if !(in_batch && batch_ok) {
                    tx.check_signature(&payload, &key)?;
                }
                Ok(VerifiedTx {
                    id: tx.id(),
                    payload,
                    signed: tx.clone(),
                })
            })
            .collect()
    }

    /// The decoded payload and its node's key (`known`'s if it is that key).
    fn prepare(
        &self,
        known: impl FnOnce(&NodeId) -> Option<VerifyingKey>,
    ) -> Result<(TxPayload, VerifyingKey), VerifyError> {
        let payload: TxPayload =
            codec::decode_canonical("transaction payload", &self.payload, MAX_TX_PAYLOAD_BYTES)?;
        let key = match known(&payload.node) {
            Some(k) if k.as_bytes() == payload.node.as_bytes() => k,
            _ => payload
                .node
                .verifying_key()
                .map_err(|_| bad_signature(&payload))?,
        };
        Ok((payload, key))
    }

    /// The strict single check of the signature over `DOMAIN || payload`.
    fn check_signature(&self, payload: &TxPayload, key: &VerifyingKey) -> Result<(), VerifyError> {
        key.verify_strict(
            &signing_input(TX_DOMAIN, &self.payload),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| bad_signature(payload))
    }

    /// Test and fault-injection access: the same transaction with raw parts replaced.
    #[doc(hidden)]
    pub fn from_raw_parts(payload: Vec<u8>, signature: [u8; 64]) -> SignedTx {
        SignedTx { payload, signature }
    }

    /// Test and fault-injection access to the signature bytes.
    #[doc(hidden)]
    pub fn signature_bytes(&self) -> [u8; 64] {
        self.signature
    }
}

/// A transaction whose signature checked out. The only way to make one is
/// [`SignedTx::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    id: TxId,
    payload: TxPayload,
    signed: SignedTx,
}

impl VerifiedTx {
    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.id
    }
    /// The verified contents.
    pub fn payload(&self) -> &TxPayload {
        &self.payload
    }
    /// The signed form, to store or forward.
    pub fn signed(&self) -> &SignedTx {
        &self.signed
    }
}

fn bad_signature(payload: &TxPayload) -> VerifyError {
    VerifyError::BadSignature {
        node: payload.node.short(),
    }
}

/// Whether a signature is of the form `verify_strict` accepts, so a batch
/// check (which would take some of the others) may stand in for it: the
/// key and `R` not of small order, `R`'s y below the field prime (the
/// strict check compares `R`'s bytes with a canonical encoding), and `s`
/// below the group order (checked by the batch itself, which then fails).
fn batch_safe(key: &VerifyingKey, signature: &[u8; 64]) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(&signature[..32]);
    y[31] &= 0x7f; // the sign of x
    // y >= p = 2^255 - 19 exactly when bits 8..255 are all set and the low byte is >= 0xed.
    let y_out_of_range = y[0] >= 0xed && y[1..31].iter().all(|b| *b == 0xff) && y[31] == 0x7f;
    // Below p, the small-order points are exactly those with these y (either sign of x).
    !key.is_weak() && !y_out_of_range && !SMALL_ORDER_Y.contains(&y)
}

/// The y coordinates (little-endian, below p) of the eight points of small
/// order: 1 (order 1), p - 1 (order 2), 0 (order 4), and two of order 8.
/// A test decompresses each with either sign and finds a small-order point.
const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [
        0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [0; 32],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
];

/// `domain || payload`: the bytes that are signed and hashed.
pub(crate) fn signing_input(domain: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(domain.len() + payload.len());
    v.extend_from_slice(domain);
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn node(k: &SigningKey) -> NodeId {
        NodeId::from_bytes(k.verifying_key().to_bytes()).unwrap()
    }

    fn sample(k: &SigningKey, seq: u64, points: u64) -> TxPayload {
        TxPayload {
            node: node(k),
            seq,
            prev_hash: TxId::GENESIS,
            created_at: UnixMillis(1_700_000_000_000),
            body: TxBody::Redeem(Redeem {
                card: CardKey::new(vec![0x30, 1, 2], vec![9, 9]).unwrap(),
                account: AccountId::new(7).unwrap(),
                municipality: MunicipalityCode::parse("131059").unwrap(),
                points: Points::new(points).unwrap(),
                merchant: FacilityId::parse("shop-1").unwrap(),
                basis: Some(Basis {
                    ledger_pos: 4,
                    balance: Points::new(900).unwrap(),
                    debt: Points::ZERO,
                }),
                card_proof: Some(CardSignature::new(vec![0xab; 256]).unwrap()),
            }),
        }
    }

    #[test]
    fn right_bodies_are_appended_and_carry_a_transfer_whole() {
        let a = key(1);
        let b = key(2);
        let m = MunicipalityCode::parse("131059").unwrap();
        let transfer = TxBody::RightTransfer(RightTransfer {
            account: AccountId::new(7).unwrap(),
            municipality: m,
            to: node(&b),
            points: Points::new(40).unwrap(),
            right_id: 3,
            grant: crate::fact::SignedFact::sign(
                &crate::fact::FactPayload {
                    hub_seq: 8,
                    issued_at: UnixMillis(1),
                    scope: crate::fact::Scope::Node(node(&a)),
                    body: crate::fact::FactBody::SpendRight {
                        account: AccountId::new(7).unwrap(),
                        municipality: m,
                        node: node(&a),
                        right_id: 3,
                        points: Points::new(100).unwrap(),
                    },
                },
                &key(9),
            ),
        });
        // The variant index is part of the encoding: after UnlinkFacilityCard (3).
        assert_eq!(codec::encode(&transfer)[0], 4);
        assert_eq!(transfer.name(), "right-transfer");
        assert_eq!(transfer.kind(), OpKind::Redeem);
        let signed = SignedTx::sign(
            &TxPayload {
                node: node(&a),
                seq: 1,
                prev_hash: TxId::GENESIS,
                created_at: UnixMillis(5),
                body: transfer.clone(),
            },
            &a,
        );
        let accept = TxBody::RightAccept(RightAccept {
            transfer: signed.clone(),
        });
        assert_eq!(codec::encode(&accept)[0], 5);
        assert_eq!(accept.name(), "right-accept");
        let outer = SignedTx::sign(
            &TxPayload {
                node: node(&b),
                seq: 1,
                prev_hash: TxId::GENESIS,
                created_at: UnixMillis(6),
                body: accept,
            },
            &b,
        );
        let v = outer.verify().unwrap();
        let TxBody::RightAccept(r) = &v.payload().body else {
            panic!("not an accept")
        };
        assert_eq!(r.transfer, signed);
        assert_eq!(r.transfer.verify().unwrap().payload().body, transfer);
    }

    #[test]
    fn sign_verify_round_trip() {
        let k = key(1);
        let tx = SignedTx::sign(&sample(&k, 1, 500), &k);
        let v = tx.verify().unwrap();
        assert_eq!(v.payload(), &sample(&k, 1, 500));
        assert_eq!(v.id(), tx.id());
        let back = SignedTx::from_bytes(&tx.to_bytes()).unwrap();
        assert_eq!(back, tx);
    }

    #[test]
    fn signature_by_another_key_fails() {
        let k = key(1);
        let other = key(2);
        let payload = sample(&k, 1, 500);
        let bytes = codec::encode(&payload);
        let sig = other.sign(&signing_input(TX_DOMAIN, &bytes)).to_bytes();
        let forged = SignedTx::from_raw_parts(bytes, sig);
        assert!(matches!(
            forged.verify(),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    #[test]
    fn verify_with_a_known_key_agrees_with_verify() {
        let k = key(1);
        let tx = SignedTx::sign(&sample(&k, 1, 500), &k);
        let own = k.verifying_key();
        assert_eq!(tx.verify_with(|_| Some(own)).unwrap(), tx.verify().unwrap());
        // Another node's key is ignored, not trusted.
        let other = key(2).verifying_key();
        assert_eq!(
            tx.verify_with(|_| Some(other)).unwrap(),
            tx.verify().unwrap()
        );
        let forged = SignedTx::from_raw_parts(tx.payload_bytes().to_vec(), [7; 64]);
        assert!(forged.verify_with(|_| Some(own)).is_err());
    }

    #[test]
    fn trailing_bytes_are_not_canonical() {
        let k = key(1);
        let tx = SignedTx::sign(&sample(&k, 1, 5), &k);
        let mut payload = tx.payload_bytes().to_vec();
        payload.push(0);
        let t = SignedTx::from_raw_parts(payload, tx.signature_bytes());
        assert!(matches!(
            t.verify(),
            Err(VerifyError::Decode(DecodeError::NotCanonical { .. }))
        ));
    }

    /// `n` transactions signed by two nodes, alternating.
    fn batch_of(n: u64) -> Vec<SignedTx> {
        let (a, b) = (key(5), key(6));
        (1..=n)
            .map(|i| {
                let k = if i % 2 == 0 { &a } else { &b };
                SignedTx::sign(&sample(k, i, i * 3), k)
            })
            .collect()
    }

    fn verdicts(results: &[Result<VerifiedTx, VerifyError>]) -> Vec<Result<TxId, VerifyError>> {
        results
            .iter()
            .map(|r| r.as_ref().map(VerifiedTx::id).map_err(Clone::clone))
            .collect()
    }

    #[test]
    fn a_forgery_in_the_middle_of_a_batch_is_refused_alone() {
        let mut txs = batch_of(200);
        let victim = txs[100].clone();
        let forged_sig = key(9)
            .sign(&signing_input(TX_DOMAIN, victim.payload_bytes()))
            .to_bytes();
        txs[100] = SignedTx::from_raw_parts(victim.payload_bytes().to_vec(), forged_sig);
        let results = SignedTx::verify_batch(&txs, |_| None);
        for (i, r) in results.iter().enumerate() {
            if i == 100 {
                assert!(matches!(r, Err(VerifyError::BadSignature { .. })), "{r:?}");
            } else {
                assert_eq!(r.as_ref().unwrap(), &txs[i].verify().unwrap());
            }
        }
    }

    #[test]
    fn the_small_order_list_is_the_small_order_points() {
        // Every listed y decompresses, with either sign of x, to a point of
        // small order (a wrong constant would fail to decompress about half
        // the time, and otherwise give a point of large order).
        let mut n = 0;
        for y in SMALL_ORDER_Y {
            for sign in [0, 0x80] {
                let mut b = y;
                b[31] |= sign;
                let point = VerifyingKey::from_bytes(&b).expect("decompresses");
                assert!(point.is_weak(), "{b:02x?}");
                n += 1;
            }
        }
        assert_eq!(n, 10);
        // And a real key's point is not among them.
        let real = key(1).verifying_key().to_bytes();
        let mut y = real;
        y[31] &= 0x7f;
        assert!(!SMALL_ORDER_Y.contains(&y));
    }

    #[test]
    fn malformed_signatures_stay_out_of_batches() {
        let good = batch_of(1).remove(0);
        let sig = good.signature_bytes();
        let key = key(6).verifying_key();
        assert!(batch_safe(&key, &sig));
        // R the identity (small order).
        let mut identity = sig;
        identity[..32].copy_from_slice(&[0; 32]);
        identity[0] = 1;
        assert!(!batch_safe(&key, &identity));
        // R's y = p + 1, an out-of-range encoding of the identity.
        let mut high = sig;
        high[..32].copy_from_slice(&[0xff; 32]);
        high[0] = 0xee;
        high[31] = 0x7f;
        assert!(!batch_safe(&key, &high));
        // R's y = p - 1 (order 2), and p - 1 with x's sign set: small order.
        let mut minus_one = [0xff_u8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        for sign in [0, 0x80] {
            let mut s = sig;
            s[..32].copy_from_slice(&minus_one);
            s[31] |= sign;
            assert!(!batch_safe(&key, &s));
        }
        // y = p - 19 and y = p - 1 - 256 are in range and not small order:
        // the checks are exact at the bound.
        for (low, second) in [(0xda, 0xff), (0xec, 0xfe)] {
            let mut s = sig;
            s[..32].copy_from_slice(&minus_one);
            s[0] = low;
            s[1] = second;
            assert!(batch_safe(&key, &s), "{low:x} {second:x}");
        }
        // Each malformed one in a batch gets the single check's answer.
        let mut txs = batch_of(40);
        for (i, s) in [(3, identity), (17, high)] {
            txs[i] = SignedTx::from_raw_parts(txs[i].payload_bytes().to_vec(), s);
        }
        let singles: Vec<_> = txs.iter().map(SignedTx::verify).collect();
        assert_eq!(
            verdicts(&SignedTx::verify_batch(&txs, |_| None)),
            verdicts(&singles)
        );
        assert!(singles[3].is_err() && singles[17].is_err() && singles[4].is_ok());
    }

    #[test]
    fn batch_uses_a_known_key_only_if_it_is_the_nodes() {
        let txs = batch_of(50);
        let wrong = key(9).verifying_key();
        let results = SignedTx::verify_batch(&txs, |_| Some(wrong));
        assert!(results.iter().all(Result::is_ok));
        assert!(SignedTx::verify_batch(&[], |_| None).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn batch_agrees_with_single_checks(
            n in 1u64..80,
            damage in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1u8..=255), 0..4),
        ) {
            let mut txs = batch_of(n);
            for (which, byte, flip) in damage {
                let i = which.index(txs.len());
                let mut payload = txs[i].payload_bytes().to_vec();
                let mut sig = txs[i].signature_bytes();
                let j = byte.index(payload.len() + sig.len());
                if j < payload.len() { payload[j] ^= flip } else { sig[j - payload.len()] ^= flip }
                txs[i] = SignedTx::from_raw_parts(payload, sig);
            }
            let singles: Vec<_> = txs.iter().map(SignedTx::verify).collect();
            prop_assert_eq!(verdicts(&SignedTx::verify_batch(&txs, |_| None)), verdicts(&singles));
        }
    }

    proptest! {
        #[test]
        fn any_tampered_byte_fails_verification(
            seq in 1u64..1_000_000, points in 0u64..1_000_000,
            which in any::<prop::sample::Index>(), flip in 1u8..=255,
        ) {
            let k = key(3);
            let tx = SignedTx::sign(&sample(&k, seq, points), &k);
            let mut payload = tx.payload_bytes().to_vec();
            let mut sig = tx.signature_bytes();
            let n = payload.len() + sig.len();
            let i = which.index(n);
            if i < payload.len() { payload[i] ^= flip } else { sig[i - payload.len()] ^= flip }
            let t = SignedTx::from_raw_parts(payload, sig);
            prop_assert!(t.verify().is_err());
        }

        #[test]
        fn codec_round_trip(seq in 1u64..u64::MAX, points in 0u64..=Points::MAX, at in any::<u64>()) {
            let k = key(4);
            let mut p = sample(&k, seq, points);
            p.created_at = UnixMillis(at);
            let tx = SignedTx::sign(&p, &k);
            let back = SignedTx::from_bytes(&tx.to_bytes()).unwrap();
            let v = back.verify().unwrap();
            prop_assert_eq!(v.payload(), &p);
        }
    }
}
