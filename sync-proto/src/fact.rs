//! Hub-signed facts: what the hub tells nodes (registrations, confirmed
//! balances, suspensions, node limits and progress).
//!
//! Same discipline as transactions: the hub signs `FACT_DOMAIN ||
//! canonical(FactPayload)`, nodes verify against the hub key from their
//! configuration before using anything, and only [`SignedFact::verify`] makes
//! a [`VerifiedFact`]. Facts are numbered by `hub_seq` in one hub-wide order;
//! a node applies them in that order, so a balance fact is always seen before
//! the progress fact that says which pending spends it already includes.

use crate::codec::{self, DecodeError};
use crate::ids::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, LanGroup, MunicipalityCode, MyKeyId,
    NodeId, Points, ProgramId, TxId, UnixMillis,
};
use crate::tx::{OpKind, signing_input};
use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

/// Domain separation for fact signatures.
pub const FACT_DOMAIN: &[u8] = b"mykey-edge/fact/v1\0";
/// Upper bound of an encoded fact payload (a full LAN roster is ~3.3 KB).
pub const MAX_FACT_PAYLOAD_BYTES: usize = 4096;

/// A fact before signing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactPayload {
    /// Position in the hub's fact log, from 1.
    pub hub_seq: u64,
    /// The hub's clock when it issued the fact.
    pub issued_at: UnixMillis,
    /// Who receives it.
    pub scope: Scope,
    /// What it says.
    pub body: FactBody,
}

/// Which nodes receive a fact. A node receives `All`, its municipality's and
/// its facility's facts, and those addressed to it; so a facility node never
/// receives another facility's card numbers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Every node (deny list of revoked node keys).
    All,
    /// Nodes of one municipality (balances, suspensions, registrations).
    Municipality(MunicipalityCode),
    /// Nodes of one facility (that facility's card numbers).
    Facility(FacilityId),
    /// One node (its limits).
    Node(NodeId),
}

/// The state of a card key at the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CardStatus {
    /// Usable.
    Active,
    /// Replaced by a renewed certificate linked to the same account.
    Superseded,
    /// Reported lost: refused everywhere until a municipal counter reinstates it.
    Suspended,
}

impl CardStatus {
    /// Lower-case name for storage and display.
    pub fn name(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::Superseded => "superseded",
            CardStatus::Suspended => "suspended",
        }
    }
    /// Parses [`CardStatus::name`].
    pub fn parse(text: &str) -> Option<CardStatus> {
        [
            CardStatus::Active,
            CardStatus::Superseded,
            CardStatus::Suspended,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// The limits and permissions the hub gives a node for its facility: the
/// node's certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLimits {
    /// The node.
    pub node: NodeId,
    /// Its facility.
    pub facility: FacilityId,
    /// Its municipality.
    pub municipality: MunicipalityCode,
    /// Operations it may perform.
    pub allowed_ops: Vec<OpKind>,
    /// Points one card may spend at this node since the last hub confirmation.
    pub per_card_offline_limit: Points,
    /// All unconfirmed spend at this node.
    pub node_exposure_limit: Points,
    /// Spends above this need the PIN (card proof).
    pub pin_threshold: Points,
    /// The certificate is void after this time.
    pub valid_until: UnixMillis,
}

/// What a fact says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FactBody {
    /// A card key belongs to an account with this My Key ID.
    CardRegistered {
        /// The card.
        card: CardKey,
        /// The account.
        account: AccountId,
        /// The holder's current alias.
        my_key_id: MyKeyId,
        /// The holder's base municipality.
        municipality: MunicipalityCode,
    },
    /// A card's status changed (suspension is a deny-list entry).
    CardStatusChanged {
        /// The card.
        card: CardKey,
        /// Its new status.
        status: CardStatus,
    },
    /// A facility card number was linked (`linked`) or unlinked.
    FacilityCard {
        /// The account.
        account: AccountId,
        /// The facility.
        facility: FacilityId,
        /// The number.
        number: FacilityCardNumber,
        /// True for linked, false for unlinked.
        linked: bool,
    },
    /// The hub's balance of an account's regional points after applying its
    /// ledger up to `ledger_pos`.
    ConfirmedBalance {
        /// The account.
        account: AccountId,
        /// Whose points.
        municipality: MunicipalityCode,
        /// Spendable points.
        balance: Points,
        /// Debt from offline overdraft, recovered from later credits.
        debt: Points,
        /// The ledger position this balance reflects.
        ledger_pos: u64,
    },
    /// A node's limits and permissions (its certificate).
    NodeLimits(NodeLimits),
    /// The hub has processed (applied or rejected) `node`'s transactions up to
    /// `through_seq`; `head` is the id of that transaction.
    NodeProgress {
        /// The node.
        node: NodeId,
        /// Highest processed seq.
        through_seq: u64,
        /// Its id.
        head: TxId,
    },
    /// A node key is revoked: its transactions and certificates are refused.
    NodeRevoked {
        /// The node.
        node: NodeId,
    },
    /// The earliest-expiring points of an account in one municipality:
    /// `points` expire at `expires_at` (zero points: nothing expires).
    UpcomingExpiry {
        /// The account.
        account: AccountId,
        /// Whose points.
        municipality: MunicipalityCode,
        /// Points that expire at `expires_at`.
        points: Points,
        /// When they expire (hub clock).
        expires_at: UnixMillis,
    },
    /// Strict mode (DESIGN §6) is on or off for a municipality: when on, its
    /// nodes spend only within the rights the hub granted them.
    StrictMode {
        /// The municipality.
        municipality: MunicipalityCode,
        /// On or off.
        strict: bool,
    },
    /// The hub reserved `points` of an account's balance for `node` to spend
    /// offline (strict mode); `right_id` names the grant, so a node adds each
    /// right exactly once.
    SpendRight {
        /// The account.
        account: AccountId,
        /// Whose points.
        municipality: MunicipalityCode,
        /// The node that may spend them.
        node: NodeId,
        /// The hub's id of this grant.
        right_id: u64,
        /// How many points.
        points: Points,
    },
    /// The hub ended `node`'s rights on an account: their unused points went
    /// back to the account's balance, and the node must stop spending them.
    SpendRightReleased {
        /// The account.
        account: AccountId,
        /// Whose points.
        municipality: MunicipalityCode,
        /// The node.
        node: NodeId,
    },
    /// The nodes allowed to trust each other on a LAN: a group of one
    /// municipality (for example its festival stalls). A node admits a LAN
    /// peer only if the latest roster of some group names them both; a later
    /// roster of the same group replaces the earlier one, an empty one ends
    /// the group.
    LanRoster {
        /// Whose nodes.
        municipality: MunicipalityCode,
        /// The group's name.
        group: LanGroup,
        /// Its members, sorted, without duplicates.
        members: Roster,
    },
    /// The hub's redeemed bitmap of one chunk of a printed voucher batch
    /// (issue 17): the vouchers whose first redemption the hub has, or,
    /// with `cancelled`, the whole batch. A later fact of the same chunk
    /// only ever adds bits (redemptions are not undone), so a reader may
    /// merge what it holds with it by OR.
    VoucherMarks {
        /// Whose vouchers.
        municipality: MunicipalityCode,
        /// The batch.
        batch: u32,
        /// Which [`VOUCHER_MARK_CHUNK`] indices of it ([`voucher_mark_chunk`]).
        chunk: u8,
        /// The batch was cancelled: none of its vouchers may be taken.
        cancelled: bool,
        /// Redeemed indices of the chunk.
        redeemed: RedeemedBits,
    },
    /// A node's offline voucher cap (issue 17): the points of printed
    /// vouchers it may take while the hub has not confirmed them, and what
    /// the hub pays at most, less its earlier pays, for its double-redeem
    /// incidents. Apart from [`NodeLimits`] (whose encoding stays as it
    /// was), sent with it at every enrolment; a node without one holds to
    /// its exposure limit, as the hub did before the cap had a column.
    NodeVoucherCap {
        /// The node.
        node: NodeId,
        /// Its cap.
        offline_voucher_cap: Points,
    },
    /// The hub vouches for a node's key as a voucher issuer of a
    /// municipality (a kiosk where holders turn points into vouchers,
    /// issue 17 part 1(a)) under `issuer`, the number its vouchers' serials
    /// carry (`mykey_voucher::Issuer`); with `withdrawn`, no longer. Kept
    /// in the municipality's shards under `vi/<issuer>`, so a later
    /// statement of the same number replaces the earlier one, and a shop
    /// offline checks a kiosk's voucher with what it holds.
    VoucherIssuer {
        /// Whose vouchers.
        municipality: MunicipalityCode,
        /// The number the vouchers' serials carry (from 1).
        issuer: u16,
        /// The node whose key signs them.
        node: NodeId,
        /// The hub withdrew the node as an issuer (or revoked it).
        withdrawn: bool,
    },
    /// A donation programme of a municipality (issue 19) was declared
    /// (`open`) or closed: its nodes' kiosks offer the open ones, offline
    /// too. A later fact of the same programme replaces an earlier one (a
    /// node keeps the one with the highest `hub_seq`). The recipient's bank
    /// account stays at the hub.
    DonationProgramme {
        /// Whose points it takes.
        municipality: MunicipalityCode,
        /// The programme.
        programme: ProgramId,
        /// Who receives the money, as holders read it.
        recipient: DonationRecipient,
        /// Open (donations taken) or closed.
        open: bool,
    },
}

/// Who a donation programme pays, as holders read it at a kiosk: 1 to
/// [`DonationRecipient::MAX_CHARS`] characters, no control characters, no
/// leading or trailing white space (so one text has one encoding).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct DonationRecipient(String);

/// A recipient text that breaks [`DonationRecipient`]'s rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a donation recipient is 1 to {max} characters without control characters or surrounding spaces, not {0:?}",
    max = DonationRecipient::MAX_CHARS
)]
pub struct DonationRecipientError(pub String);

impl DonationRecipient {
    /// The most characters (the hub's declaration bound).
    pub const MAX_CHARS: usize = 80;

    /// Validates a recipient text.
    pub fn parse(text: &str) -> Result<Self, DonationRecipientError> {
        let n = text.chars().count();
        let ok = (1..=Self::MAX_CHARS).contains(&n)
            && !text.chars().any(char::is_control)
            && text.trim() == text;
        if !ok {
            return Err(DonationRecipientError(text.chars().take(100).collect()));
        }
        Ok(DonationRecipient(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DonationRecipient {
    type Error = DonationRecipientError;
    fn try_from(raw: String) -> Result<Self, DonationRecipientError> {
        DonationRecipient::parse(&raw)
    }
}

impl std::fmt::Display for DonationRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Voucher indices per [`FactBody::VoucherMarks`] chunk: 1 KiB of bits, so a
/// fact stays well within [`MAX_FACT_PAYLOAD_BYTES`]; a batch of 65,535
/// vouchers has 8 chunks.
pub const VOUCHER_MARK_CHUNK: u32 = 8192;

/// The chunk of a voucher index (from 1) and its bit within the chunk.
pub fn voucher_mark_chunk(index: u16) -> (u8, u32) {
    let i = u32::from(index.max(1)) - 1;
    // 65,535 / 8,192 < 8: fits a u8.
    ((i / VOUCHER_MARK_CHUNK) as u8, i % VOUCHER_MARK_CHUNK)
}

/// The bits of one voucher-mark chunk: bit `i` (byte `i / 8`, least
/// significant bit first) stands for index `chunk * 8192 + i + 1`. At most
/// [`RedeemedBits::MAX_BYTES`]; trailing zero bytes are dropped, so one set
/// of bits has one encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>")]
pub struct RedeemedBits(Vec<u8>);

/// Bits that break [`RedeemedBits`]' rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedeemedBitsError {
    /// Longer than a chunk.
    #[error("a voucher-mark chunk is at most {max} bytes, not {n}")]
    TooLong {
        /// Bytes given.
        n: usize,
        /// The bound.
        max: usize,
    },
    /// A trailing zero byte (two encodings of one set).
    #[error("a voucher-mark chunk does not end in a zero byte")]
    TrailingZero,
}

impl RedeemedBits {
    /// Bytes of a full chunk.
    pub const MAX_BYTES: usize = (VOUCHER_MARK_CHUNK / 8) as usize;

    /// Whether bit `offset` is set (false past the end).
    pub fn is_set(&self, offset: u32) -> bool {
        let byte = (offset / 8) as usize;
        self.0
            .get(byte)
            .is_some_and(|b| b & (1 << (offset % 8)) != 0)
    }

    /// Sets bit `offset` (below [`VOUCHER_MARK_CHUNK`]; others are ignored).
    pub fn set(&mut self, offset: u32) {
        if offset >= VOUCHER_MARK_CHUNK {
            return;
        }
        let byte = (offset / 8) as usize;
        if self.0.len() <= byte {
            self.0.resize(byte + 1, 0);
        }
        self.0[byte] |= 1 << (offset % 8);
    }

    /// Every bit set in either.
    pub fn or(&self, other: &RedeemedBits) -> RedeemedBits {
        let n = self.0.len().max(other.0.len());
        let at = |v: &Vec<u8>, i: usize| v.get(i).copied().unwrap_or(0);
        RedeemedBits((0..n).map(|i| at(&self.0, i) | at(&other.0, i)).collect())
    }

    /// Bits set.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }

    /// The bytes (for storage).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<Vec<u8>> for RedeemedBits {
    type Error = RedeemedBitsError;
    fn try_from(bytes: Vec<u8>) -> Result<Self, RedeemedBitsError> {
        if bytes.len() > RedeemedBits::MAX_BYTES {
            return Err(RedeemedBitsError::TooLong {
                n: bytes.len(),
                max: RedeemedBits::MAX_BYTES,
            });
        }
        if bytes.last() == Some(&0) {
            return Err(RedeemedBitsError::TrailingZero);
        }
        Ok(RedeemedBits(bytes))
    }
}

/// The members of a LAN group: sorted, unique, at most [`Roster::MAX`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<NodeId>")]
pub struct Roster(Vec<NodeId>);

/// A roster that breaks its rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// Too many members.
    #[error("a LAN roster holds at most {max} nodes, not {n}: split the group")]
    TooMany {
        /// Members given.
        n: usize,
        /// The bound.
        max: usize,
    },
    /// Not sorted or a node twice.
    #[error("a LAN roster lists each node once, in order")]
    NotSorted,
}

impl Roster {
    /// The most nodes one group holds (the fact stays within its size bound).
    pub const MAX: usize = 100;

    /// A roster of these nodes (sorted and deduplicated here).
    pub fn new(mut members: Vec<NodeId>) -> Result<Self, RosterError> {
        members.sort();
        members.dedup();
        Roster::try_from(members)
    }

    /// The members, sorted.
    pub fn members(&self) -> &[NodeId] {
        &self.0
    }

    /// Whether `node` is a member.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.0.binary_search(node).is_ok()
    }
}

impl TryFrom<Vec<NodeId>> for Roster {
    type Error = RosterError;
    fn try_from(members: Vec<NodeId>) -> Result<Self, RosterError> {
        if members.len() > Roster::MAX {
            return Err(RosterError::TooMany {
                n: members.len(),
                max: Roster::MAX,
            });
        }
        if members.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RosterError::NotSorted);
        }
        Ok(Roster(members))
    }
}

impl FactBody {
    /// Deny-list facts go to nodes before anything else (DESIGN §7).
    pub fn is_priority(&self) -> bool {
        matches!(
            self,
            FactBody::CardStatusChanged {
                status: CardStatus::Suspended,
                ..
            } | FactBody::NodeRevoked { .. }
        )
    }
}

/// A fact as carried and stored; untrusted until verified against the hub key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedFact {
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: [u8; 64],
}

impl std::fmt::Debug for SignedFact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignedFact({})", TxId::hash_of(&self.payload).short())
    }
}

/// Why a fact was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactError {
    /// The payload did not decode canonically.
    #[error("fact payload: {0}")]
    Decode(#[from] DecodeError),
    /// The signature is not the hub's.
    #[error("fact signature does not verify against the configured hub key")]
    BadSignature,
}

impl SignedFact {
    /// Signs a fact with the hub key.
    pub fn sign(payload: &FactPayload, hub_key: &SigningKey) -> SignedFact {
        let bytes = codec::encode(payload);
        assert!(
            bytes.len() <= MAX_FACT_PAYLOAD_BYTES,
            "fact payload too large"
        );
        let signature = hub_key.sign(&signing_input(FACT_DOMAIN, &bytes)).to_bytes();
        SignedFact {
            payload: bytes,
            signature,
        }
    }

    /// Verifies against the hub's public key.
    pub fn verify(&self, hub: &NodeId) -> Result<VerifiedFact, FactError> {
        let payload: FactPayload =
            codec::decode_canonical("fact payload", &self.payload, MAX_FACT_PAYLOAD_BYTES)?;
        let key = hub.verifying_key().map_err(|_| FactError::BadSignature)?;
        key.verify_strict(
            &signing_input(FACT_DOMAIN, &self.payload),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| FactError::BadSignature)?;
        Ok(VerifiedFact {
            payload,
            signed: self.clone(),
        })
    }

    /// Canonical bytes for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Rebuilds from stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedFact, DecodeError> {
        codec::decode_canonical("signed fact", bytes, MAX_FACT_PAYLOAD_BYTES + 80)
    }

    /// Test and fault-injection access.
    #[doc(hidden)]
    pub fn from_raw_parts(payload: Vec<u8>, signature: [u8; 64]) -> SignedFact {
        SignedFact { payload, signature }
    }
}

/// A fact whose hub signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedFact {
    payload: FactPayload,
    signed: SignedFact,
}

impl VerifiedFact {
    /// The verified contents.
    pub fn payload(&self) -> &FactPayload {
        &self.payload
    }
    /// The signed form, to keep or pass on (a spend right travels with its grant).
    pub fn signed(&self) -> &SignedFact {
        &self.signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeemed_bits_merge_by_or_and_have_one_encoding() {
        assert_eq!(voucher_mark_chunk(1), (0, 0));
        assert_eq!(voucher_mark_chunk(8192), (0, 8191));
        assert_eq!(voucher_mark_chunk(8193), (1, 0));
        assert_eq!(voucher_mark_chunk(u16::MAX), (7, 8190));
        let mut a = RedeemedBits::default();
        a.set(0);
        a.set(8191);
        a.set(8192); // past the chunk: ignored
        let mut b = RedeemedBits::default();
        b.set(9);
        let ab = a.or(&b);
        assert_eq!(ab, b.or(&a));
        assert_eq!(ab.or(&ab), ab);
        assert!(ab.is_set(0) && ab.is_set(9) && ab.is_set(8191) && !ab.is_set(1));
        assert_eq!(ab.count(), 3);
        assert_eq!(ab.as_bytes().len(), RedeemedBits::MAX_BYTES);
        let back: RedeemedBits =
            crate::codec::decode_canonical("bits", &crate::codec::encode(&ab), 2048).unwrap();
        assert_eq!(back, ab);
        assert_eq!(
            RedeemedBits::try_from(vec![1, 0]),
            Err(RedeemedBitsError::TrailingZero)
        );
        assert!(matches!(
            RedeemedBits::try_from(vec![1; RedeemedBits::MAX_BYTES + 1]),
            Err(RedeemedBitsError::TooLong { .. })
        ));
        // A full chunk's fact stays within the payload bound.
        let full = RedeemedBits::try_from(vec![0xff; RedeemedBits::MAX_BYTES]).unwrap();
        let p = FactPayload {
            hub_seq: u64::MAX,
            issued_at: UnixMillis(u64::MAX),
            scope: Scope::Municipality(MunicipalityCode::parse("131059").unwrap()),
            body: FactBody::VoucherMarks {
                municipality: MunicipalityCode::parse("131059").unwrap(),
                batch: u32::MAX,
                chunk: 7,
                cancelled: true,
                redeemed: full,
            },
        };
        assert!(crate::codec::encode(&p).len() <= MAX_FACT_PAYLOAD_BYTES);
    }

    #[test]
    fn a_donation_programme_fact_is_appended_bounded_and_strictly_decoded() {
        let m = MunicipalityCode::parse("131059").unwrap();
        let longest: String = "能".repeat(DonationRecipient::MAX_CHARS);
        let body = FactBody::DonationProgramme {
            municipality: m,
            programme: ProgramId::parse("noto-relief").unwrap(),
            recipient: DonationRecipient::parse(&longest).unwrap(),
            open: true,
        };
        let bytes = codec::encode(&body);
        // Appended after VoucherMarks (12), NodeVoucherCap (13) and
        // VoucherIssuer (14): older encodings are unchanged.
        assert_eq!(bytes[0], 15);
        assert_eq!(
            codec::decode_canonical::<FactBody>("fact body", &bytes, 4096).unwrap(),
            body
        );
        let p = FactPayload {
            hub_seq: u64::MAX,
            issued_at: UnixMillis(u64::MAX),
            scope: Scope::Municipality(m),
            body,
        };
        assert!(codec::encode(&p).len() <= MAX_FACT_PAYLOAD_BYTES);
        // A recipient text beyond the rules does not decode.
        for bad in [
            String::new(),
            "能".repeat(DonationRecipient::MAX_CHARS + 1),
            "relief\nfund".into(),
            " relief".into(),
        ] {
            assert!(DonationRecipient::parse(&bad).is_err(), "{bad:?}");
            let raw = codec::encode(&bad);
            assert!(
                codec::decode_canonical::<DonationRecipient>("recipient", &raw, 4096).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fact_signed_by_hub_verifies_and_not_by_others() {
        let hub = SigningKey::from_bytes(&[7; 32]);
        let hub_id = NodeId::from_bytes(hub.verifying_key().to_bytes()).unwrap();
        let other = SigningKey::from_bytes(&[8; 32]);
        let p = FactPayload {
            hub_seq: 1,
            issued_at: UnixMillis(5),
            scope: Scope::Municipality(MunicipalityCode::parse("131059").unwrap()),
            body: FactBody::CardStatusChanged {
                card: CardKey::new(vec![1], vec![2]).unwrap(),
                status: CardStatus::Suspended,
            },
        };
        let f = SignedFact::sign(&p, &hub);
        assert_eq!(f.verify(&hub_id).unwrap().payload(), &p);
        let forged = SignedFact::sign(&p, &other);
        assert_eq!(forged.verify(&hub_id), Err(FactError::BadSignature));
        assert!(p.body.is_priority());
        let back = SignedFact::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn upcoming_expiry_is_the_last_variant_and_round_trips() {
        let body = FactBody::UpcomingExpiry {
            account: AccountId::new(3).unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            points: Points::new(300).unwrap(),
            expires_at: UnixMillis(1_774_969_200_000),
        };
        let bytes = codec::encode(&body);
        // The variant index is part of the encoding: appended after NodeRevoked (6).
        assert_eq!(bytes[0], 7);
        assert_eq!(
            codec::decode_canonical::<FactBody>("fact body", &bytes, 1024).unwrap(),
            body
        );
        assert!(!body.is_priority());
    }

    #[test]
    fn strict_mode_facts_are_appended_after_upcoming_expiry() {
        let m = MunicipalityCode::parse("131059").unwrap();
        let a = AccountId::new(3).unwrap();
        let node = NodeId::from_bytes(SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes())
            .unwrap();
        let bodies = [
            (
                8,
                FactBody::StrictMode {
                    municipality: m,
                    strict: true,
                },
            ),
            (
                9,
                FactBody::SpendRight {
                    account: a,
                    municipality: m,
                    node,
                    right_id: 4,
                    points: Points::new(250).unwrap(),
                },
            ),
            (
                10,
                FactBody::SpendRightReleased {
                    account: a,
                    municipality: m,
                    node,
                },
            ),
        ];
        for (index, body) in bodies {
            let bytes = codec::encode(&body);
            assert_eq!(bytes[0], index, "{body:?}");
            assert_eq!(
                codec::decode_canonical::<FactBody>("fact body", &bytes, 1024).unwrap(),
                body
            );
            assert!(!body.is_priority());
        }
    }
}
