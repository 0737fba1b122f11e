//! The holder's own read of their points (issue 19), proved by the card.
//!
//! A holder asks, at a node, for their balances, what expires when, and
//! where their points came from and went. The hub answers only for the
//! holder of the card, proved the same way as a redeem above the PIN
//! threshold: the card's JPKI user-authentication key signs a challenge.
//! Here the challenge is the hub's own: [`SignedHolderChallenge`] names the
//! asking node and the card, the hub's clock and a random nonce, signed by
//! the hub key, so the hub needs no table of challenges and a node cannot
//! make one up or reuse one past [`HOLDER_CHALLENGE_TTL_MS`]. The card signs
//! [`HolderBinding::signed_message`] (`CARD_PROOF_CONTEXT || SHA-256(domain
//! || binding)` with a domain of its own, so no holder proof is a redeem
//! proof and the other way round). A node owner without the card and its
//! PIN cannot read anyone's history.
//!
//! Privacy by construction (DESIGN §9): the history carries transfers only.
//! No type here has a field for what was bought or borrowed, and none
//! accepts one: every struct and struct variant refuses unknown fields, and
//! a test holds the field names to a closed list.

use crate::card_proof::{CARD_PROOF_CONTEXT, CardSignature};
use crate::codec;
use crate::ids::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId, NodeId,
    PointOperator, Points, ProgramId, UnixMillis,
};
use crate::link_request::{LinkRequest, LinkRequestAnswered, SignedLinkRequestAsk};
use crate::tx::signing_input;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain of the hub's signature over a [`HolderChallenge`].
pub const HOLDER_CHALLENGE_DOMAIN: &[u8] = b"mykey-edge/holder-challenge/v1\0";
/// Domain of the hash the card signs for a holder action.
pub const HOLDER_BINDING_DOMAIN: &[u8] = b"mykey-edge/holder-binding/v1\0";
/// Domain of the hash the card signs for a holder's order ([`HolderOrder`]).
pub const HOLDER_ORDER_DOMAIN: &[u8] = b"mykey-edge/holder-order/v1\0";
/// Upper bound of a card certificate carried with a registration order.
pub const MAX_CERTIFICATE_BYTES: usize = 8 * 1024;
/// How long a challenge stays good, by the hub's clock: long enough to enter
/// a PIN at a kiosk, short enough that a captured proof is soon worthless.
pub const HOLDER_CHALLENGE_TTL_MS: u64 = 120_000;
/// Upper bound of history entries in one answer (newest first).
pub const MAX_HISTORY_ENTRIES: u32 = 500;
/// Upper bound of municipalities in one answer.
pub const MAX_HISTORY_MUNICIPALITIES: usize = 64;
/// Upper bound of expiry lines per municipality.
pub const MAX_EXPIRY_LINES: usize = 64;

/// A holder request, carried by [`crate::wire::Request::Holder`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum HolderRequest {
    /// A fresh challenge for this card, to be signed by it.
    Challenge {
        /// The card tapped.
        card: CardKey,
    },
    /// The holder's history, proved by the card's signature over the
    /// challenge and [`HolderAction::ReadHistory`].
    History {
        /// The challenge the hub gave.
        challenge: SignedHolderChallenge,
        /// The card's signature over its [`HolderBinding`].
        proof: CardSignature,
        /// At most this many entries (clamped to [`MAX_HISTORY_ENTRIES`]).
        max_entries: u32,
    },
    /// A change the holder ordered at a node ([`HolderOrder`]: register the
    /// card, change the My Key ID), signed by the card after its PIN. It
    /// needs no hub challenge, so a node offline queues it and sends it
    /// when its link returns.
    Order {
        /// What the holder ordered, where and when.
        order: HolderOrder,
        /// The card's signature over [`HolderOrder::signed_message`].
        proof: CardSignature,
        /// The card's user-authentication certificate (DER), for a
        /// registration: the hub checks its chain and keeps its key.
        #[serde(with = "serde_bytes")]
        certificate: Option<Vec<u8>>,
    },
    /// Whether a My Key ID is free, asked before the holder signs for it
    /// (no proof: IDs are not secret, every node of a municipality learns
    /// its holders' IDs from the hub's facts).
    MyKeyIdFree {
        /// The ID the holder typed.
        my_key_id: MyKeyId,
    },
    /// A facility's node lists, confirms or refuses the kiosk link requests
    /// of its facility, signed with the node's key
    /// ([`crate::link_request`]).
    LinkRequests(SignedLinkRequestAsk),
}

/// The hub's answer, carried by [`crate::wire::Response::Holder`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum HolderResponse {
    /// The challenge to sign.
    Challenge(SignedHolderChallenge),
    /// The holder's points and their history.
    History(HolderHistory),
    /// Not answered, for this reason.
    Refused(HolderRefusal),
    /// A [`HolderRequest::Order`] was carried out.
    Done(HolderDone),
    /// The answer to [`HolderRequest::MyKeyIdFree`]: false when the ID is
    /// (or was) anyone's, ignoring case.
    MyKeyIdFree(bool),
    /// The facility's pending link requests, oldest first (at most
    /// [`crate::link_request::MAX_LINK_REQUESTS_LISTED`]).
    LinkRequests(Vec<LinkRequest>),
    /// A link request was confirmed or refused.
    LinkRequestAnswered(LinkRequestAnswered),
}

/// What a holder's order changed at the hub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum HolderDone {
    /// The card now belongs to a new account with this My Key ID.
    Registered {
        /// The new account.
        account: AccountId,
        /// Its My Key ID.
        my_key_id: MyKeyId,
        /// Its base municipality (the kiosk's node's).
        municipality: MunicipalityCode,
    },
    /// The account's My Key ID changed; the old one stays the account's.
    MyKeyIdChanged {
        /// The account.
        account: AccountId,
        /// The ID it had (still resolvable, never anyone else's).
        from: MyKeyId,
        /// The ID it has now.
        to: MyKeyId,
    },
    /// A facility card number was linked to (or unlinked from) the account;
    /// the facility's nodes learn it.
    FacilityCard {
        /// The account.
        account: AccountId,
        /// The facility.
        facility: FacilityId,
        /// The number.
        number: FacilityCardNumber,
        /// True: linked; false: unlinked.
        linked: bool,
    },
    /// The facility confirms links itself: the request waits at the hub
    /// until one of its nodes confirms or refuses it (or it expires).
    LinkRequested {
        /// The request's id, as the facility's node lists it.
        request: u64,
        /// The account.
        account: AccountId,
        /// The facility.
        facility: FacilityId,
        /// The number.
        number: FacilityCardNumber,
    },
}

/// Why the hub did not answer a holder request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(deny_unknown_fields)]
pub enum HolderRefusal {
    /// The card is not registered.
    #[error("this card is not registered: register it first (at a counter or the kiosk)")]
    UnknownCard,
    /// The hub holds no certificate key for the card, so it cannot check a
    /// PIN proof.
    #[error(
        "the hub has no certificate key for this card: have it registered again from its certificate at a counter"
    )]
    NoCardKey,
    /// The card is suspended or superseded.
    #[error("this card is not active (suspended or replaced): ask at a municipal counter")]
    CardNotActive,
    /// The challenge is older than [`HOLDER_CHALLENGE_TTL_MS`] or from the future.
    #[error("the request took too long: tap the card again")]
    StaleChallenge,
    /// The challenge is not the hub's, or was given to another node or card.
    #[error("the challenge was not issued for this node and card: tap the card again")]
    ForeignChallenge,
    /// The card's signature does not verify with the key the hub kept.
    #[error("the card's signature does not verify: tap the card again and re-enter the PIN")]
    BadProof,
    /// The hub could not read its store; nothing was changed.
    #[error("the hub cannot answer just now: try again in a minute")]
    Unavailable,
    /// The hub does not serve holder requests.
    #[error("this hub does not serve holder requests: it must be upgraded")]
    NotServed,
    /// The My Key ID is (or was) someone's.
    #[error("this My Key ID is taken (IDs are never reused, ignoring case): choose another")]
    MyKeyIdTaken,
    /// A registration for a card that already has an account.
    #[error("this card is registered already: change the My Key ID instead")]
    AlreadyRegistered,
    /// The order names a My Key ID the account no longer has: it was
    /// changed since the card signed (or the order is a replay).
    #[error("the My Key ID changed since this was signed: tap the card again")]
    MyKeyIdMoved,
    /// The hub has no trusted JPKI CA, so it registers no card from a node.
    #[error(
        "this hub does not register cards at a kiosk (no trusted JPKI CA is configured): register at a municipal counter"
    )]
    NoRegistrationHere,
    /// The certificate is missing, unreadable, expired or not from a trusted CA.
    #[error(
        "the card's certificate is not one the hub trusts (expired, or not a JPKI card): ask at a municipal counter"
    )]
    UntrustedCertificate,
    /// Reading one's history needs the hub's fresh challenge, not an order.
    #[error("reading the history needs the hub's challenge: tap the card again")]
    ReadNeedsChallenge,
    /// No such facility.
    #[error("there is no such facility: check its name")]
    UnknownFacility,
    /// The facility links its cards at its own counter only (sent by hubs
    /// before kiosk link requests; a hub now answers
    /// [`HolderDone::LinkRequested`] instead).
    #[error(
        "this facility confirms card links at its own counter: show both cards there (unlinking works here)"
    )]
    FacilityConfirms,
    /// The number is linked to another account.
    #[error("this card number is linked to someone else: ask the facility")]
    NumberTaken,
    /// The number is not linked to this account.
    #[error("this card number is not linked to your account")]
    NotLinked,
    /// The node's signature on a link-request ask does not verify, or it
    /// names another node, or its clock is too far from the hub's.
    #[error(
        "the node's signature on this request does not verify, or its clock is more than 2 minutes from the hub's: check the node's clock and that it runs with its own key"
    )]
    BadNodeSignature,
    /// The asking node is not enrolled, or its key was revoked.
    #[error(
        "this node is not enrolled at the hub (or its key was revoked): enrol it with `mykey-hub node enrol`"
    )]
    NodeNotEnrolled,
    /// No link request with this id at the asking node's facility.
    #[error(
        "there is no link request with this number at this node's facility: list them with `mykey-node link-requests list`"
    )]
    NoSuchLinkRequest,
    /// The link request was confirmed or refused already, or it expired.
    #[error(
        "this link request was answered already or has expired: nothing changed (the holder can ask again at the kiosk)"
    )]
    LinkRequestClosed,
    /// The card has as many pending link requests as allowed.
    #[error(
        "this card has too many link requests waiting for facilities: ask at the facility's counter"
    )]
    TooManyLinkRequests,
    /// This very order (the same card signature's challenge) was carried out
    /// already: a node that kept a copy cannot play it again.
    #[error("this order was carried out already; the second time changed nothing")]
    Replayed,
}

/// What the hub hands out for one holder action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderChallenge {
    /// The node that asked (the transport-authenticated peer).
    pub node: NodeId,
    /// The card it asked for.
    pub card: CardKey,
    /// The hub's clock when it was made.
    pub issued_at: UnixMillis,
    /// Random bytes from the hub, so no two challenges are alike.
    pub nonce: [u8; 16],
}

/// A [`HolderChallenge`] with the hub's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHolderChallenge {
    /// The challenge.
    pub challenge: HolderChallenge,
    /// The hub's ed25519 signature over `HOLDER_CHALLENGE_DOMAIN || canonical(challenge)`.
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// Why a challenge was not accepted back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Not signed by this hub.
    #[error("challenge not signed by this hub")]
    NotOurs,
    /// Past its time, or issued in the future.
    #[error("challenge out of its time window")]
    Stale,
    /// Issued to another node or for another card.
    #[error("challenge issued to another node or card")]
    Elsewhere,
}

impl SignedHolderChallenge {
    /// Signs `challenge` with the hub key.
    pub fn sign(challenge: HolderChallenge, hub_key: &SigningKey) -> Self {
        let bytes = codec::encode(&challenge);
        let signature = hub_key
            .sign(&signing_input(HOLDER_CHALLENGE_DOMAIN, &bytes))
            .to_bytes();
        SignedHolderChallenge {
            challenge,
            signature,
        }
    }

    /// Checks that `hub` signed it, for `node` and `card`, and that it is
    /// fresh at `now` (the hub's clock).
    pub fn check(
        &self,
        hub: &NodeId,
        node: &NodeId,
        card: &CardKey,
        now: UnixMillis,
    ) -> Result<(), ChallengeError> {
        let key = hub.verifying_key().map_err(|_| ChallengeError::NotOurs)?;
        let bytes = codec::encode(&self.challenge);
        key.verify(
            &signing_input(HOLDER_CHALLENGE_DOMAIN, &bytes),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| ChallengeError::NotOurs)?;
        let c = &self.challenge;
        if &c.node != node || &c.card != card {
            return Err(ChallengeError::Elsewhere);
        }
        if c.issued_at.0 > now.0 || now.0 - c.issued_at.0 > HOLDER_CHALLENGE_TTL_MS {
            return Err(ChallengeError::Stale);
        }
        Ok(())
    }
}

/// What the holder's PIN signature authorises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum HolderAction {
    /// Read one's own balances and history.
    ReadHistory,
    /// Register the card: a new account with this My Key ID, in the
    /// municipality of the node's facility.
    Register {
        /// The ID chosen.
        my_key_id: MyKeyId,
    },
    /// Change the account's My Key ID from `from` (the one the node showed:
    /// the hub refuses the order once the account has another, so a replay
    /// changes nothing) to `to`.
    ChangeMyKeyId {
        /// The ID the holder had when signing.
        from: MyKeyId,
        /// The ID chosen.
        to: MyKeyId,
    },
    /// Link a facility's card number (a library card) to the account: done
    /// at once where the facility's policy at the hub is `auto`, else a
    /// request its nodes confirm ([`HolderDone::LinkRequested`]).
    LinkFacilityCard {
        /// The facility that issued the number.
        facility: FacilityId,
        /// The number.
        number: FacilityCardNumber,
    },
    /// Unlink one of the account's facility card numbers.
    UnlinkFacilityCard {
        /// The facility.
        facility: FacilityId,
        /// The number.
        number: FacilityCardNumber,
    },
}

/// A holder's order, made at a node and signed by the card after its PIN:
/// the node, the card, the node's clock, a nonce of the node's and what the
/// holder authorises. Unlike [`HolderBinding`] it carries no hub challenge,
/// so it can be signed offline and sent later; the hub makes replays
/// harmless from the action itself (a registration of a registered card,
/// a change from an ID the account no longer has, are refused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderOrder {
    /// The node where the holder signed (the hub refuses it from any other).
    pub node: NodeId,
    /// The card that signs.
    pub card: CardKey,
    /// The node's clock when signed (informative).
    pub signed_at: UnixMillis,
    /// Random bytes of the node's, so no two orders are alike.
    pub nonce: [u8; 16],
    /// What the holder authorises.
    pub action: HolderAction,
}

impl HolderOrder {
    /// The 32-byte challenge the card signs after its context.
    pub fn challenge(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(HOLDER_ORDER_DOMAIN);
        h.update(codec::encode(self));
        h.finalize().into()
    }

    /// What the card signs: [`CARD_PROOF_CONTEXT`] then [`Self::challenge`].
    pub fn signed_message(&self) -> Vec<u8> {
        [CARD_PROOF_CONTEXT, &self.challenge()[..]].concat()
    }
}

/// What the card signs for a holder action: the hub's challenge and the action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HolderBinding {
    /// The hub's challenge (the signed form, so the hub's signature is bound too).
    pub challenge: SignedHolderChallenge,
    /// What the holder authorises.
    pub action: HolderAction,
}

impl HolderBinding {
    /// The 32-byte challenge the card signs after its context.
    pub fn challenge(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(HOLDER_BINDING_DOMAIN);
        h.update(codec::encode(self));
        h.finalize().into()
    }

    /// What the card signs: [`CARD_PROOF_CONTEXT`] then [`Self::challenge`]
    /// (PKCS#1 v1.5 over SHA-256 of these bytes), as for a redeem's proof.
    pub fn signed_message(&self) -> Vec<u8> {
        [CARD_PROOF_CONTEXT, &self.challenge()[..]].concat()
    }
}

/// A holder's points and where they came from, as the hub's ledger holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderHistory {
    /// The account.
    pub account: AccountId,
    /// Its current My Key ID.
    pub my_key_id: MyKeyId,
    /// The hub's clock when read.
    pub as_of: UnixMillis,
    /// One line per municipality whose points the holder has or had.
    pub balances: Vec<MunicipalityBalance>,
    /// Movements, newest first.
    pub entries: Vec<HistoryEntry>,
    /// Older entries exist beyond `entries`.
    pub more: bool,
}

/// A holder's points in one municipality.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MunicipalityBalance {
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Spendable now.
    pub spendable: Points,
    /// Exchanged points still in their holding period.
    pub held: Points,
    /// Owed from an offline overdraft.
    pub debt: Points,
    /// What expires when, earliest first.
    pub expiries: Vec<ExpiryLine>,
}

/// Points that expire together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryLine {
    /// How many.
    pub points: Points,
    /// When (the hub's clock).
    pub expires_at: UnixMillis,
}

/// One movement of the holder's points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// Its ledger position.
    pub pos: u64,
    /// When the hub posted it.
    pub at: UnixMillis,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// How many.
    pub points: Points,
    /// What moved them.
    pub movement: Movement,
}

/// What moved a holder's points. Transfers only: never what was bought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Movement {
    /// A municipal programme granted points.
    Grant {
        /// The programme.
        programme: ProgramId,
    },
    /// A national point operator's points became regional points.
    ExchangeIn {
        /// The operator.
        operator: PointOperator,
        /// Operator points given up.
        operator_points: u64,
        /// Regional points at the operator's rate.
        regional: Points,
        /// The campaign premium on top.
        premium: Points,
        /// When they became (or become) spendable.
        available_at: UnixMillis,
    },
    /// Exchanged points left their holding period.
    Released,
    /// Points spent: amount, place and time only.
    Redemption {
        /// The accepting facility.
        place: FacilityId,
        /// The node's clock when it was signed (the counter's time).
        signed_at: Option<UnixMillis>,
        /// The part that went beyond the balance and became debt.
        on_debt: bool,
    },
    /// A later credit paid back debt.
    DebtRecovery,
    /// Points expired.
    Expiry,
    /// An operator's correction.
    Correction {
        /// True when it added points.
        credit: bool,
    },
    /// Points given to a donation programme: at a kiosk (`operator` none),
    /// or exchanged by a national point operator straight into it.
    Donation {
        /// The donation programme.
        programme: ProgramId,
        /// The operator whose points were exchanged into it, if so.
        operator: Option<PointOperator>,
    },
    /// Points turned into vouchers at a kiosk (issue 17 part 1(a)); or,
    /// `returned`, the unredeemed ones back after their last valid day.
    Vouchers {
        /// The unredeemed vouchers' points came back.
        returned: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn node(seed: u8) -> NodeId {
        let k = SigningKey::from_bytes(&[seed; 32]);
        NodeId::from_bytes(k.verifying_key().to_bytes()).unwrap()
    }

    fn card(n: u8) -> CardKey {
        CardKey::new(vec![0x30, 1], vec![n]).unwrap()
    }

    fn pts(n: u64) -> Points {
        Points::new(n).unwrap()
    }

    fn every_movement() -> Vec<Movement> {
        vec![
            Movement::Grant {
                programme: ProgramId::parse("volunteer").unwrap(),
            },
            Movement::ExchangeIn {
                operator: PointOperator::parse("card-x").unwrap(),
                operator_points: 1000,
                regional: pts(1000),
                premium: pts(100),
                available_at: UnixMillis(5),
            },
            Movement::Released,
            Movement::Redemption {
                place: FacilityId::parse("shop-1").unwrap(),
                signed_at: Some(UnixMillis(4)),
                on_debt: false,
            },
            Movement::DebtRecovery,
            Movement::Expiry,
            Movement::Correction { credit: true },
            Movement::Donation {
                programme: ProgramId::parse("noto-relief").unwrap(),
                operator: Some(PointOperator::parse("card-x").unwrap()),
            },
            Movement::Vouchers { returned: false },
        ]
    }

    fn history() -> HolderHistory {
        HolderHistory {
            account: AccountId::new(2).unwrap(),
            my_key_id: MyKeyId::parse("Alice01").unwrap(),
            as_of: UnixMillis(9),
            balances: vec![MunicipalityBalance {
                municipality: MunicipalityCode::parse("131059").unwrap(),
                spendable: pts(900),
                held: pts(0),
                debt: pts(0),
                expiries: vec![ExpiryLine {
                    points: pts(900),
                    expires_at: UnixMillis(99),
                }],
            }],
            entries: every_movement()
                .into_iter()
                .enumerate()
                .map(|(i, movement)| HistoryEntry {
                    pos: i as u64 + 1,
                    at: UnixMillis(i as u64),
                    municipality: MunicipalityCode::parse("131059").unwrap(),
                    points: pts(10),
                    movement,
                })
                .collect(),
            more: false,
        }
    }

    /// Every field name any history type may carry. A new field must be
    /// added here on purpose, after asking whether it says what was bought.
    const ALLOWED_FIELDS: &[&str] = &[
        "account",
        "my_key_id",
        "as_of",
        "balances",
        "entries",
        "more",
        "municipality",
        "spendable",
        "held",
        "debt",
        "expiries",
        "points",
        "expires_at",
        "pos",
        "at",
        "movement",
        "programme",
        "operator",
        "operator_points",
        "regional",
        "premium",
        "available_at",
        "place",
        "signed_at",
        "on_debt",
        "credit",
        // Whether unredeemed kiosk vouchers came back (not what they bought).
        "returned",
    ];

    /// Every object (the JSON form of a struct or struct variant) in `v`.
    fn objects<'a>(v: &'a Value, out: &mut Vec<&'a serde_json::Map<String, Value>>) {
        match v {
            Value::Object(m) => {
                out.push(m);
                for x in m.values() {
                    objects(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| objects(x, out)),
            _ => {}
        }
    }

    #[test]
    fn history_field_names_are_a_closed_list_with_no_item() {
        let v = serde_json::to_value(history()).unwrap();
        let mut objs = Vec::new();
        objects(&v, &mut objs);
        let mut seen = 0;
        for m in objs {
            for k in m.keys() {
                // An enum's JSON form is an object keyed by the variant name.
                let variant = k.chars().next().is_some_and(|c| c.is_ascii_uppercase());
                assert!(
                    variant || ALLOWED_FIELDS.contains(&k.as_str()),
                    "history field {k:?} is not on the closed list"
                );
                seen += 1;
            }
        }
        assert!(seen > 30, "the walk saw the fields ({seen})");
        for banned in ["item", "items", "product", "title", "goods", "sku", "isbn"] {
            assert!(!ALLOWED_FIELDS.contains(&banned));
        }
    }

    /// Inserts `"item"` into every object of `v` in turn and checks that
    /// decoding refuses each one.
    fn refuses_an_item_everywhere<T: serde::de::DeserializeOwned + std::fmt::Debug>(v: &Value) {
        fn paths(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
            match v {
                Value::Object(m) => {
                    out.push(here.clone());
                    for (k, x) in m {
                        let mut p = here.clone();
                        p.push(k.clone());
                        paths(x, p, out);
                    }
                }
                Value::Array(a) => {
                    for (i, x) in a.iter().enumerate() {
                        let mut p = here.clone();
                        p.push(i.to_string());
                        paths(x, p, out);
                    }
                }
                _ => {}
            }
        }
        let mut all = Vec::new();
        paths(v, Vec::new(), &mut all);
        if let Value::String(unit) = v {
            // A unit variant has no fields to add to; given some, it is refused.
            let with = serde_json::json!({ unit.as_str(): { "item": "a book" } });
            assert!(
                serde_json::from_value::<T>(with).is_err(),
                "{unit} took an item"
            );
            return;
        }
        assert!(!all.is_empty());
        for path in all {
            let mut w = v.clone();
            let mut at = &mut w;
            for step in &path {
                at = match at {
                    Value::Object(m) => m.get_mut(step).unwrap(),
                    Value::Array(a) => &mut a[step.parse::<usize>().unwrap()],
                    _ => unreachable!(),
                };
            }
            let Value::Object(m) = at else { unreachable!() };
            m.insert("item".into(), Value::String("Harry Potter vol. 1".into()));
            let got = serde_json::from_value::<T>(w);
            assert!(got.is_err(), "an item at {path:?} was accepted: {got:?}");
        }
    }

    #[test]
    fn no_history_type_accepts_an_item() {
        // Round trip first: the value as it is decodes.
        let h = history();
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(
            serde_json::from_value::<HolderHistory>(v.clone()).unwrap(),
            h
        );
        refuses_an_item_everywhere::<HolderHistory>(&v);
        for m in every_movement() {
            let v = serde_json::to_value(&m).unwrap();
            assert_eq!(serde_json::from_value::<Movement>(v.clone()).unwrap(), m);
            refuses_an_item_everywhere::<Movement>(&v);
        }
        let resp = HolderResponse::History(h);
        let v = serde_json::to_value(&resp).unwrap();
        refuses_an_item_everywhere::<HolderResponse>(&v);
    }

    #[test]
    fn every_movement_is_listed() {
        // A new variant fails to compile here until it is added to
        // `every_movement`, so the privacy tests above see it.
        for m in every_movement() {
            match m {
                Movement::Grant { .. }
                | Movement::ExchangeIn { .. }
                | Movement::Released
                | Movement::Redemption { .. }
                | Movement::DebtRecovery
                | Movement::Expiry
                | Movement::Correction { .. }
                | Movement::Donation { .. }
                | Movement::Vouchers { .. } => {}
            }
        }
        assert_eq!(every_movement().len(), 9);
    }

    #[test]
    fn a_challenge_checks_its_hub_node_card_and_age() {
        let hub = SigningKey::from_bytes(&[9; 32]);
        let hub_id = NodeId::from_bytes(hub.verifying_key().to_bytes()).unwrap();
        let c = SignedHolderChallenge::sign(
            HolderChallenge {
                node: node(1),
                card: card(1),
                issued_at: UnixMillis(1_000),
                nonce: [3; 16],
            },
            &hub,
        );
        let ok = |now| c.check(&hub_id, &node(1), &card(1), UnixMillis(now));
        assert_eq!(ok(1_000), Ok(()));
        assert_eq!(ok(1_000 + HOLDER_CHALLENGE_TTL_MS), Ok(()));
        assert_eq!(
            ok(1_001 + HOLDER_CHALLENGE_TTL_MS),
            Err(ChallengeError::Stale)
        );
        assert_eq!(ok(999), Err(ChallengeError::Stale));
        assert_eq!(
            c.check(&hub_id, &node(2), &card(1), UnixMillis(1_000)),
            Err(ChallengeError::Elsewhere)
        );
        assert_eq!(
            c.check(&hub_id, &node(1), &card(2), UnixMillis(1_000)),
            Err(ChallengeError::Elsewhere)
        );
        assert_eq!(
            c.check(&node(7), &node(1), &card(1), UnixMillis(1_000)),
            Err(ChallengeError::NotOurs)
        );
        let mut forged = c.clone();
        forged.challenge.issued_at = UnixMillis(50_000);
        assert_eq!(
            forged.check(&hub_id, &node(1), &card(1), UnixMillis(50_000)),
            Err(ChallengeError::NotOurs)
        );
        // Canonical round trip of the wire form.
        let bytes = codec::encode(&c);
        let back: SignedHolderChallenge =
            codec::decode_canonical("holder challenge", &bytes, 4096).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_holder_binding_is_never_a_redeem_binding() {
        let hub = SigningKey::from_bytes(&[9; 32]);
        let c = SignedHolderChallenge::sign(
            HolderChallenge {
                node: node(1),
                card: card(1),
                issued_at: UnixMillis(1_000),
                nonce: [3; 16],
            },
            &hub,
        );
        let b = HolderBinding {
            challenge: c.clone(),
            action: HolderAction::ReadHistory,
        };
        let mut other = c;
        other.challenge.nonce = [4; 16];
        let b2 = HolderBinding {
            challenge: other,
            action: HolderAction::ReadHistory,
        };
        assert_ne!(b.challenge(), b2.challenge());
        assert!(b.signed_message().starts_with(CARD_PROOF_CONTEXT));
        // Same bytes under the redeem domain hash differently.
        let mut h = Sha256::new();
        h.update(crate::card_proof::CARD_CHALLENGE_DOMAIN);
        h.update(codec::encode(&b));
        let as_redeem: [u8; 32] = h.finalize().into();
        assert_ne!(as_redeem, b.challenge());
    }

    #[test]
    fn an_order_binds_its_node_card_and_action_and_is_no_other_proof() {
        let order = HolderOrder {
            node: node(1),
            card: card(1),
            signed_at: UnixMillis(1_000),
            nonce: [3; 16],
            action: HolderAction::ChangeMyKeyId {
                from: MyKeyId::parse("Alice01").unwrap(),
                to: MyKeyId::parse("Alice02").unwrap(),
            },
        };
        let mut others = vec![];
        for change in 0..4 {
            let mut o = order.clone();
            match change {
                0 => o.node = node(2),
                1 => o.card = card(2),
                2 => {
                    o.action = HolderAction::ChangeMyKeyId {
                        from: MyKeyId::parse("Alice01").unwrap(),
                        to: MyKeyId::parse("Mallory").unwrap(),
                    }
                }
                _ => {
                    o.action = HolderAction::Register {
                        my_key_id: MyKeyId::parse("Alice02").unwrap(),
                    }
                }
            }
            others.push(o.challenge());
        }
        assert!(others.iter().all(|c| *c != order.challenge()));
        assert!(order.signed_message().starts_with(CARD_PROOF_CONTEXT));
        // The same bytes under the binding's domain hash differently.
        let mut h = Sha256::new();
        h.update(HOLDER_BINDING_DOMAIN);
        h.update(codec::encode(&order));
        let as_binding: [u8; 32] = h.finalize().into();
        assert_ne!(as_binding, order.challenge());
        let bytes = codec::encode(&HolderRequest::Order {
            order: order.clone(),
            proof: CardSignature::new(vec![1; 256]).unwrap(),
            certificate: Some(vec![2; 900]),
        });
        let back: HolderRequest = codec::decode_canonical("order", &bytes, 1 << 20).unwrap();
        assert!(matches!(back, HolderRequest::Order { order: o, .. } if o == order));
    }
}
