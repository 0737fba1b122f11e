//! Wire messages between a node and the hub (and, later, LAN peers).
//!
//! One request/response protocol: the node asks, the hub answers. Every
//! message travels as `version (u16, big-endian) || canonical(postcard)`,
//! bounded by [`MAX_MESSAGE_BYTES`]; batch sizes are bounded too, and a
//! message past any bound is refused, never truncated or guessed at.

use crate::codec::{self, DecodeError};
use crate::fact::SignedFact;
use crate::holder::{HolderRequest, HolderResponse};
use crate::ids::{AccountId, MunicipalityCode, NodeId, Points, TxId, UnixMillis};
use crate::receipts::{ReceiptRanges, ReceiptsError};
use crate::shard::{Epoch, ShardHead, ShardId};
use crate::tx::SignedTx;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 4;
/// Upper bound of one encoded message.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Upper bound of transactions in one push.
pub const MAX_PUSH_TXS: usize = 1000;
/// Upper bound of facts in one answer.
pub const MAX_FACTS_PER_ANSWER: usize = 2000;
/// Upper bound of shards in one list (a node's municipality and facility).
pub const MAX_SHARDS_PER_LIST: usize = 2 * crate::shard::MAX_BUCKETS as usize + 64;
/// Upper bound of one automerge sync message inside a [`ShardSync`]: room
/// for the envelope within [`MAX_MESSAGE_BYTES`].
pub const MAX_SHARD_MESSAGE_BYTES: usize = MAX_MESSAGE_BYTES - 4096;
/// Upper bound of the free-text software version a node reports.
pub const MAX_SOFTWARE_LEN: usize = 64;

/// What a node sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message of a session.
    Hello(Hello),
    /// Signed transactions, in `seq` order per signing node.
    Push(Push),
    /// Facts after a cursor.
    PullFacts(PullFacts),
    /// Which shards this node holds and what the hub last wrote to each.
    Shards,
    /// One automerge sync message for one shard (also between LAN peers).
    ShardSync(ShardSync),
    /// A card holder's own request (issue 19): a challenge, or their
    /// history proved by the card's PIN signature (`crate::holder`).
    Holder(Box<HolderRequest>),
}

/// What the hub answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The session is open.
    Welcome(Welcome),
    /// The receipts of a push, as ranges (`crate::receipts`): one per
    /// (signer, seq) the hub looked at once expanded.
    Receipts(ReceiptRanges),
    /// Facts in hub order.
    Facts(Facts),
    /// The node's shards.
    Shards(ShardList),
    /// The answering sync message for one shard.
    ShardSync(ShardSync),
    /// The request was refused; the session is over.
    Refused(Refusal),
    /// The answer to a [`Request::Holder`]; a refusal of it leaves the
    /// session open.
    Holder(Box<HolderResponse>),
}

/// Opens a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The node (must match the transport-authenticated peer).
    pub node: NodeId,
    /// The node's clock, for skew reporting.
    pub node_time: UnixMillis,
    /// The highest seq the node has signed.
    pub last_seq: u64,
    /// The node's fact cursor (highest hub_seq it has applied).
    pub fact_cursor: u64,
    /// Software version string.
    pub software: String,
}

/// The hub's answer to [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The hub's clock.
    pub hub_time: UnixMillis,
    /// The highest seq of this node the hub has processed (0: none).
    pub processed_seq: u64,
}

/// A batch of signed transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The transactions.
    pub txs: Vec<SignedTx>,
}

/// Asks for facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullFacts {
    /// Facts with `hub_seq` above this.
    pub after: u64,
    /// At most this many.
    pub max: u32,
    /// None above this `hub_seq` (the hub's log end when the round's shard
    /// list was made), so a progress fact never arrives before the balances
    /// that the node got through its shards.
    pub upto: u64,
}

/// The shards a node receives, deny shards first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardList {
    /// Each shard with its epoch and last write.
    pub shards: Vec<ShardHead>,
    /// The hub's fact-log end when the list was made.
    pub hub_seq: u64,
}

/// One automerge sync message about one shard. `message: None` asks the
/// other side for its next message without sending one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSync {
    /// The shard.
    pub shard: ShardId,
    /// Its epoch.
    pub epoch: Epoch,
    /// An automerge sync message (`automerge::sync::Message::encode`).
    #[serde(with = "serde_bytes")]
    pub message: Option<Vec<u8>>,
    /// The first message of an exchange: the receiver starts its sync state
    /// with the sender afresh (from what it stored), so an exchange never
    /// depends on the in-flight bookkeeping of an earlier one.
    pub start: bool,
}

/// Receipts for a push, one by one: what the hub decides and what a node
/// applies; they travel as [`ReceiptRanges`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipts {
    /// One per transaction the hub looked at, in order (expanded from the
    /// wire: one per (signer, seq), signer by signer).
    pub receipts: Vec<Receipt>,
    /// The highest seq of the requesting node now processed.
    pub processed_seq: u64,
}

/// The hub's verdict on one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The signing node.
    pub node: NodeId,
    /// Its seq.
    pub seq: u64,
    /// The transaction id: always from the hub's ingest; from the wire only
    /// with a rejection (an accepted one is matched by (node, seq)).
    pub tx: Option<TxId>,
    /// Applied or rejected.
    pub outcome: Outcome,
}

/// Applied or rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied to the ledger.
    Accepted {
        /// The ledger position of its effect.
        ledger_pos: u64,
        /// The account's new confirmed balance, where it touched one.
        balance: Option<BalanceSnapshot>,
        /// Debt the hub recorded because the balance fell short (offline overdraft).
        debt_created: Points,
        /// Points of a redeem the hub held in quarantine instead of paying:
        /// the spend went beyond the bounds it enrolled for this node (no
        /// valid card proof above the PIN threshold, or past its per-card or
        /// exposure allowance). An operator releases or rejects them.
        quarantined: Points,
    },
    /// Not applied, for this reason.
    Rejected(RejectReason),
}

/// A confirmed balance carried in a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceSnapshot {
    /// The account.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Spendable.
    pub balance: Points,
    /// Owed from overdraft.
    pub debt: Points,
}

/// Why the hub did not apply a transaction. Chain-level reasons (`BadSignature`,
/// `ChainGap`, `ChainFork`, `UnknownNode`, `RevokedNode`) leave the node's
/// chain where it was; the others consume the seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RejectReason {
    /// Not decodable or not canonical.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("signature does not verify (forged or corrupted)")]
    BadSignature,
    /// The signing key is not enrolled.
    #[error("node key is not enrolled at the hub")]
    UnknownNode,
    /// The signing key was revoked.
    #[error("node key is revoked")]
    RevokedNode,
    /// The seq is not the next one expected.
    #[error("chain gap: expected seq {expected}, got {got}")]
    ChainGap {
        /// Next seq the hub expects.
        expected: u64,
        /// Seq received.
        got: u64,
    },
    /// Same seq as a processed transaction but different content, or a
    /// prev_hash that does not match.
    #[error("chain fork at seq {seq}: prev_hash or content differs from what the hub holds")]
    ChainFork {
        /// Where.
        seq: u64,
    },
    /// The node's facility may not perform this operation.
    #[error("operation {0} is not allowed for this node")]
    NotAllowed(String),
    /// The card key is not registered.
    #[error("card is not registered")]
    UnknownCard,
    /// The card does not belong to the account named.
    #[error("card does not belong to account {0}")]
    WrongAccount(AccountId),
    /// The card is suspended (online spends are refused; DESIGN §6).
    #[error("card is suspended")]
    CardSuspended,
    /// The programme is unknown or not of this municipality.
    #[error("unknown programme {0}")]
    UnknownProgram(String),
    /// The facility is unknown.
    #[error("unknown facility {0}")]
    UnknownFacility(String),
    /// The municipality is unknown or not the node's.
    #[error("municipality {0} is not served by this node")]
    WrongMunicipality(MunicipalityCode),
    /// The card number is already linked to another account at this facility.
    #[error("facility card number is linked to another account")]
    NumberTaken,
    /// Unlink of a number that is not linked.
    #[error("facility card number is not linked to this account")]
    NotLinked,
    /// The node's certificate from the hub expired (past its `valid_until`
    /// and the hub's grace, by the hub's clock): nothing is applied until an
    /// operator renews the enrolment; the node resends then.
    #[error(
        "this node's certificate expired at the hub: ask the hub operator to renew its enrolment (mykey-hub node enrol)"
    )]
    CertificateExpired,
}

impl RejectReason {
    /// True when the hub did not consume the seq (the node cannot move past it
    /// on its own: it needs an operator).
    pub fn is_chain_level(&self) -> bool {
        matches!(
            self,
            RejectReason::Malformed(_)
                | RejectReason::BadSignature
                | RejectReason::UnknownNode
                | RejectReason::RevokedNode
                | RejectReason::ChainGap { .. }
                | RejectReason::ChainFork { .. }
                | RejectReason::CertificateExpired
        )
    }
}

/// Facts in hub order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Priority facts (deny list) first, then the rest in `hub_seq` order.
    pub facts: Vec<SignedFact>,
    /// The cursor after applying these (the highest hub_seq the hub looked at).
    pub cursor: u64,
    /// More facts are waiting.
    pub more: bool,
}

/// Why the hub ended a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The node key is not enrolled.
    #[error("this node's key is not enrolled at the hub: ask the hub operator to enrol it")]
    NotEnrolled,
    /// The node key is revoked.
    #[error("this node's key is revoked")]
    Revoked,
    /// The protocol version is not spoken.
    #[error("protocol version {got} is not supported (hub speaks {supported})")]
    Version {
        /// Version received.
        got: u16,
        /// Version spoken.
        supported: u16,
    },
    /// The message broke a protocol rule (Hello not first, peer mismatch, bounds).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The node's certificate expired at the hub (past `valid_until` and
    /// the hub's grace, by the hub's clock).
    #[error(
        "this node's certificate expired: ask the hub operator to renew its enrolment (mykey-hub node enrol)"
    )]
    CertificateExpired,
}

/// A message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the version prefix.
    #[error("message is truncated ({0} bytes)")]
    Truncated(usize),
    /// Another protocol version.
    #[error("protocol version {got} is not supported (this build speaks {supported})")]
    Version {
        /// Received.
        got: u16,
        /// Spoken.
        supported: u16,
    },
    /// Body did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Receipt ranges that do not hold together.
    #[error("receipts refused: {0}")]
    Receipts(#[from] ReceiptsError),
    /// A batch bound was exceeded.
    #[error("{what} holds {n} items, above the limit of {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Items.
        n: usize,
        /// Bound.
        max: usize,
    },
}

fn encode_versioned<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = PROTOCOL_VERSION.to_be_bytes().to_vec();
    out.extend(codec::encode(value));
    out
}

fn decode_versioned<T: Serialize + serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, WireError> {
    let (v, body) = bytes
        .split_first_chunk::<2>()
        .ok_or(WireError::Truncated(bytes.len()))?;
    let got = u16::from_be_bytes(*v);
    if got != PROTOCOL_VERSION {
        return Err(WireError::Version {
            got,
            supported: PROTOCOL_VERSION,
        });
    }
    Ok(codec::decode_canonical(what, body, MAX_MESSAGE_BYTES)?)
}

impl Request {
    /// Encodes with the version prefix.
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(self)
    }
    /// Decodes and checks bounds.
    pub fn decode(bytes: &[u8]) -> Result<Request, WireError> {
        let r: Request = decode_versioned("request", bytes)?;
        match &r {
            Request::Push(p) if p.txs.len() > MAX_PUSH_TXS => Err(WireError::TooMany {
                what: "push",
                n: p.txs.len(),
                max: MAX_PUSH_TXS,
            }),
            Request::Hello(h) if h.software.len() > MAX_SOFTWARE_LEN => Err(WireError::TooMany {
                what: "software version",
                n: h.software.len(),
                max: MAX_SOFTWARE_LEN,
            }),
            Request::ShardSync(s) => check_shard_sync(s).map(|()| r),
            _ => Ok(r),
        }
    }
}

impl Response {
    /// Encodes with the version prefix.
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(self)
    }
    /// Decodes and checks bounds.
    pub fn decode(bytes: &[u8]) -> Result<Response, WireError> {
        let r: Response = decode_versioned("response", bytes)?;
        match &r {
            Response::Facts(f) if f.facts.len() > MAX_FACTS_PER_ANSWER => Err(WireError::TooMany {
                what: "facts",
                n: f.facts.len(),
                max: MAX_FACTS_PER_ANSWER,
            }),
            Response::Receipts(rr) => match rr.check(MAX_PUSH_TXS) {
                Ok(_) => Ok(r),
                Err(ReceiptsError::TooMany { max }) => Err(WireError::TooMany {
                    what: "receipts",
                    n: rr.len(),
                    max,
                }),
                Err(e) => Err(WireError::Receipts(e)),
            },
            Response::Shards(l) if l.shards.len() > MAX_SHARDS_PER_LIST => {
                Err(WireError::TooMany {
                    what: "shard list",
                    n: l.shards.len(),
                    max: MAX_SHARDS_PER_LIST,
                })
            }
            Response::ShardSync(s) => check_shard_sync(s).map(|()| r),
            Response::Holder(h) => check_holder(h).map(|()| r),
            _ => Ok(r),
        }
    }
}

fn check_holder(h: &HolderResponse) -> Result<(), WireError> {
    use crate::holder::{MAX_EXPIRY_LINES, MAX_HISTORY_ENTRIES, MAX_HISTORY_MUNICIPALITIES};
    use crate::link_request::MAX_LINK_REQUESTS_LISTED;
    let too_many = |what, n, max| Err(WireError::TooMany { what, n, max });
    let h = match h {
        HolderResponse::History(h) => h,
        HolderResponse::LinkRequests(l) if l.len() > MAX_LINK_REQUESTS_LISTED => {
            return too_many("link requests", l.len(), MAX_LINK_REQUESTS_LISTED);
        }
        _ => return Ok(()),
    };
    if h.entries.len() > MAX_HISTORY_ENTRIES as usize {
        return too_many(
            "history entries",
            h.entries.len(),
            MAX_HISTORY_ENTRIES as usize,
        );
    }
    if h.balances.len() > MAX_HISTORY_MUNICIPALITIES {
        return too_many(
            "history municipalities",
            h.balances.len(),
            MAX_HISTORY_MUNICIPALITIES,
        );
    }
    match h.balances.iter().map(|b| b.expiries.len()).max() {
        Some(n) if n > MAX_EXPIRY_LINES => too_many("expiry lines", n, MAX_EXPIRY_LINES),
        _ => Ok(()),
    }
}

fn check_shard_sync(s: &ShardSync) -> Result<(), WireError> {
    let n = s.message.as_ref().map_or(0, Vec::len);
    if n > MAX_SHARD_MESSAGE_BYTES {
        return Err(WireError::TooMany {
            what: "shard sync message bytes",
            n,
            max: MAX_SHARD_MESSAGE_BYTES,
        });
    }
    if s.shard.bucket >= crate::shard::MAX_BUCKETS {
        return Err(WireError::TooMany {
            what: "shard bucket",
            n: usize::from(s.shard.bucket),
            max: usize::from(crate::shard::MAX_BUCKETS) - 1,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_garbage_are_refused() {
        let r = Request::PullFacts(PullFacts {
            after: 3,
            max: 10,
            upto: 9,
        });
        let bytes = r.encode();
        assert_eq!(Request::decode(&bytes).unwrap(), r);
        let mut wrong = bytes.clone();
        wrong[1] = 9;
        assert!(matches!(
            Request::decode(&wrong),
            Err(WireError::Version { got: 9, .. })
        ));
        assert!(matches!(
            Request::decode(&[0]),
            Err(WireError::Truncated(1))
        ));
        assert!(Request::decode(&[0, 1, 0xff, 0xff, 0xff]).is_err());
        let mut trailing = bytes;
        trailing.push(0);
        assert!(Request::decode(&trailing).is_err());
    }
}
