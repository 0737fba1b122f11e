//! `/mykey/lan/1`: what nodes of one municipality tell each other on a LAN.
//!
//! A node offers its own signed transactions to each peer it is connected
//! to, from the first one the peer lacks; the peer verifies every signature,
//! checks each is signed by the key the transport authenticated (a node
//! offers only its own chain), stores them, and answers how far it now holds
//! the sender's chain. Stored peer transactions count as pending spends in
//! the receiver's balance view until the hub reports their signer's progress,
//! and a node with a hub link carries them to the hub (the hub deduplicates
//! by id; the signature proves origin, not the carrier).
//!
//! Peers also merge their common shards of the replicated cache (the deny
//! and municipality shards of their municipality) with the same automerge
//! sync messages as the hub link (`ShardSync`), deny shards first; every item
//! is verified on read, so a suspension crosses the LAN while the hub is
//! unreachable and a peer can forge nothing. Facility shards (card numbers)
//! never cross the LAN.
//!
//! Messages are `version (u16, big-endian) || canonical(postcard)` in the
//! same length-prefixed frames as `/mykey/sync/1`, with the same bounds.

use crate::Node;
use libp2p::StreamProtocol;
use mykey_sync_proto::codec::{self, DecodeError};
use mykey_sync_proto::shard::{ShardId, ShardScope};
use mykey_sync_proto::wire::{MAX_MESSAGE_BYTES, MAX_SHARD_MESSAGE_BYTES, ShardSync};
use mykey_sync_proto::{NodeId, SignedTx, UnixMillis};
use serde::{Deserialize, Serialize};
use tracing::info;

/// The LAN protocol.
pub const LAN_PROTOCOL: StreamProtocol = StreamProtocol::new("/mykey/lan/1");
/// Its message version.
pub const LAN_VERSION: u16 = 1;
/// Upper bound of transactions in one offer.
pub const MAX_OFFER_TXS: usize = 500;

/// What a node sends a LAN peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LanRequest {
    /// Some of the sender's own transactions, in seq order (empty: only
    /// asking how far the peer holds the sender's chain).
    Offer {
        /// The transactions.
        txs: Vec<SignedTx>,
    },
    /// One sync message about a shard both peers hold.
    ShardSync(ShardSync),
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LanResponse {
    /// The highest seq of the sender's chain the peer now holds without a
    /// gap (counting from what the hub has processed of it, as far as the
    /// peer knows).
    Ack {
        /// That seq.
        have_through: u64,
    },
    /// The offer was refused, for this reason.
    Refused(String),
    /// The answering sync message.
    ShardSync(ShardSync),
}

/// A LAN message that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanWireError {
    /// Shorter than the version prefix.
    #[error("message is truncated ({0} bytes)")]
    Truncated(usize),
    /// Another version.
    #[error("LAN protocol version {got} is not supported (this build speaks {LAN_VERSION})")]
    Version {
        /// Received.
        got: u16,
    },
    /// The body did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Too many transactions.
    #[error("offer holds {0} transactions, above the limit of {MAX_OFFER_TXS}")]
    TooMany(usize),
    /// A shard sync message past its bound.
    #[error("shard sync message of {0} bytes is above the limit of {MAX_SHARD_MESSAGE_BYTES}")]
    TooBig(usize),
}

fn check_shard(s: &ShardSync) -> Result<(), LanWireError> {
    let n = s.message.as_ref().map_or(0, Vec::len);
    if n > MAX_SHARD_MESSAGE_BYTES {
        return Err(LanWireError::TooBig(n));
    }
    Ok(())
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = LAN_VERSION.to_be_bytes().to_vec();
    out.extend(codec::encode(v));
    out
}

fn decode<T: Serialize + serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, LanWireError> {
    let (v, body) = bytes
        .split_first_chunk::<2>()
        .ok_or(LanWireError::Truncated(bytes.len()))?;
    let got = u16::from_be_bytes(*v);
    if got != LAN_VERSION {
        return Err(LanWireError::Version { got });
    }
    Ok(codec::decode_canonical(what, body, MAX_MESSAGE_BYTES)?)
}

impl LanRequest {
    /// Encodes with the version prefix.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decodes and checks bounds.
    pub fn decode(bytes: &[u8]) -> Result<LanRequest, LanWireError> {
        let r: LanRequest = decode("LAN request", bytes)?;
        match &r {
            LanRequest::Offer { txs } if txs.len() > MAX_OFFER_TXS => {
                Err(LanWireError::TooMany(txs.len()))
            }
            LanRequest::ShardSync(s) => check_shard(s).map(|()| r),
            _ => Ok(r),
        }
    }
}

impl LanResponse {
    /// Encodes with the version prefix.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<LanResponse, LanWireError> {
        let r: LanResponse = decode("LAN response", bytes)?;
        match &r {
            LanResponse::ShardSync(s) => check_shard(s).map(|()| r),
            _ => Ok(r),
        }
    }
}

/// Why a LAN request was refused (answered with [`LanResponse::Refused`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanRefusal {
    /// The peer is not admitted now: no roster from the hub names both it
    /// and this node, or its key is revoked. The transport drops it.
    #[error("you are not admitted as a LAN peer: {0}")]
    NotAdmitted(String),
    /// The request could not be used (malformed, not authentic, another
    /// node's transactions, a shard not shared on the LAN, a store error).
    #[error("{0}")]
    Bad(String),
}

/// The shards LAN peers merge: their municipality's deny and municipality
/// shards (facility shards, with card numbers, stay between node and hub).
pub fn crosses_lan(shard: &ShardId) -> bool {
    matches!(
        shard.scope,
        ShardScope::Deny(_) | ShardScope::Municipality(_)
    )
}

/// Why `peer` is not admitted as a LAN peer now (`None`: it is). A peer is
/// admitted only while the latest roster of some LAN group names both it and
/// this node and its key is not revoked; rosters arrive as hub facts, so a
/// change takes effect at the next connection or gossip round.
pub fn admission(node: &Node, peer: &NodeId) -> Option<String> {
    match node.lan_admits(peer) {
        Ok(true) => None,
        Ok(false) => Some(
            "no LAN roster from the hub names both it and this node (or its key is revoked); \
             the hub operator adds stalls with `mykey-hub lan roster`"
                .to_owned(),
        ),
        Err(e) => Some(format!("cannot read the LAN rosters: {e}")),
    }
}

/// The one handler of `/mykey/lan/1` requests, sans IO: the bytes of a
/// request from `peer` (the key the transport authenticated) in, the answer
/// out. The node's run loop and the simulation both call it.
///
/// An offer is taken only from an admitted peer, only if every transaction
/// verifies and is signed by that peer (nodes offer only their own chain);
/// the answer says how far this node now holds the peer's chain. A shard
/// sync message is answered only for a deny or municipality shard this node
/// holds in the same epoch; every item is verified on read.
pub fn answer_request(
    node: &mut Node,
    peer: &NodeId,
    request: &[u8],
    now: UnixMillis,
) -> Result<LanResponse, LanRefusal> {
    if let Some(why) = admission(node, peer) {
        return Err(LanRefusal::NotAdmitted(why));
    }
    match LanRequest::decode(request).map_err(|e| LanRefusal::Bad(e.to_string()))? {
        LanRequest::Offer { txs } => answer_offer(node, peer, &txs, now)
            .map(|have_through| LanResponse::Ack { have_through })
            .map_err(LanRefusal::Bad),
        LanRequest::ShardSync(s) => answer_shard(node, peer, s).map_err(LanRefusal::Bad),
    }
}

fn answer_offer(
    node: &mut Node,
    peer: &NodeId,
    txs: &[SignedTx],
    now: UnixMillis,
) -> Result<u64, String> {
    let mut verified = Vec::with_capacity(txs.len());
    for tx in txs {
        let v = tx
            .verify()
            .map_err(|e| format!("transaction not authentic: {e}"))?;
        if v.payload().node != *peer {
            return Err(format!(
                "offered a transaction signed by {}, not by the peer {}: nodes offer only their own",
                v.payload().node.short(),
                peer.short()
            ));
        }
        verified.push(v);
    }
    if !verified.is_empty() {
        let n = node
            .accept_verified_peer_txs(&verified, now)
            .map_err(|e| e.to_string())?;
        if n > 0 {
            info!(peer = %peer.short(), new = n, "stored a LAN peer's transactions");
        }
    }
    node.peer_have_through(peer)
        .map_err(|e| format!("store: {e}"))
}

fn answer_shard(node: &mut Node, peer: &NodeId, s: ShardSync) -> Result<LanResponse, String> {
    let held = node.held_shards().map_err(|e| format!("store: {e}"))?;
    let holds = held
        .iter()
        .any(|(shard, h)| *shard == s.shard && h.epoch == s.epoch);
    if !crosses_lan(&s.shard) || !holds {
        return Err(format!(
            "shard {} epoch {} is not one this node shares on the LAN",
            s.shard, s.epoch
        ));
    }
    let (next, got) = node
        .shard_turn(peer, &s.shard, s.epoch, s.message.as_deref(), s.start)
        .map_err(|e| e.to_string())?;
    if got.applied > 0 {
        info!(peer = %peer.short(), shard = %s.shard, items = got.applied, "merged a LAN peer's shard items");
    }
    Ok(LanResponse::ShardSync(ShardSync {
        shard: s.shard,
        epoch: s.epoch,
        message: next,
        start: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Node, NodeKey};
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::wire::Facts;
    use mykey_sync_proto::{
        AccountId, CardKey, FacilityId, FactBody, FactPayload, MunicipalityCode, MyKeyId, NodeId,
        NodeLimits, OpKind, Points, Scope, SignedFact, UnixMillis,
    };

    const T: UnixMillis = UnixMillis(1_750_000_000_000);

    struct Hub {
        key: SigningKey,
        seq: u64,
    }

    impl Hub {
        fn id(&self) -> NodeId {
            NodeId::from_bytes(self.key.verifying_key().to_bytes()).unwrap()
        }
        fn facts(&mut self, bodies: Vec<FactBody>) -> Facts {
            let m = MunicipalityCode::parse("131059").unwrap();
            let facts: Vec<SignedFact> = bodies
                .into_iter()
                .map(|body| {
                    self.seq += 1;
                    let p = FactPayload {
                        hub_seq: self.seq,
                        issued_at: T,
                        scope: Scope::Municipality(m),
                        body,
                    };
                    SignedFact::sign(&p, &self.key)
                })
                .collect();
            Facts {
                facts,
                cursor: self.seq,
                more: false,
            }
        }
    }

    /// A node with limits, and one holder with `balance` confirmed points.
    fn node(dir: &std::path::Path, secret: u8, hub: &mut Hub, balance: u64) -> Node {
        let key = NodeKey::from_secret([secret; 32]);
        let id = key.id();
        let mut n = Node::open(&dir.join(format!("n{secret}.sqlite")), key, hub.id()).unwrap();
        let m = MunicipalityCode::parse("131059").unwrap();
        let account = AccountId::new(1).unwrap();
        let facts = hub.facts(vec![
            FactBody::NodeLimits(NodeLimits {
                node: id,
                facility: FacilityId::parse(&format!("stall-{secret}")).unwrap(),
                municipality: m,
                allowed_ops: vec![OpKind::Redeem],
                per_card_offline_limit: Points::new(10_000).unwrap(),
                node_exposure_limit: Points::new(10_000).unwrap(),
                pin_threshold: Points::new(10_000).unwrap(),
                valid_until: T.plus_ms(86_400_000),
            }),
            FactBody::CardRegistered {
                card: card(),
                account,
                my_key_id: MyKeyId::parse("Hanako").unwrap(),
                municipality: m,
            },
            FactBody::ConfirmedBalance {
                account,
                municipality: m,
                balance: Points::new(balance).unwrap(),
                debt: Points::ZERO,
                ledger_pos: 1,
            },
        ]);
        n.apply_facts(&facts).unwrap();
        n
    }

    fn card() -> CardKey {
        CardKey::new(b"JPKI".to_vec(), vec![1, 2, 3]).unwrap()
    }

    fn pending(n: &Node) -> u64 {
        let m = MunicipalityCode::parse("131059").unwrap();
        n.balance(AccountId::new(1).unwrap(), m).unwrap().2.get()
    }

    #[test]
    fn peers_pending_spends_count_until_the_hub_reports_their_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut hub = Hub {
            key: SigningKey::from_bytes(&[9; 32]),
            seq: 0,
        };
        let mut a = node(dir.path(), 1, &mut hub, 1000);
        let mut b = node(dir.path(), 2, &mut hub, 1000);
        // Stalls trust each other only on a hub roster that names them both.
        let txs0 = {
            let mut c = node(dir.path(), 3, &mut hub, 1000);
            c.redeem(&card(), Points::new(10).unwrap(), None, T)
                .unwrap();
            c.outbox_from(1, 10).unwrap()
        };
        assert!(b.accept_peer_txs(&txs0, T).is_err(), "no roster yet");
        let roster = hub.facts(vec![FactBody::LanRoster {
            municipality: MunicipalityCode::parse("131059").unwrap(),
            group: mykey_sync_proto::LanGroup::parse("fest").unwrap(),
            members: mykey_sync_proto::Roster::new(vec![a.id(), b.id()]).unwrap(),
        }]);
        for n in [&mut a, &mut b] {
            n.apply_facts(&roster).unwrap();
        }
        assert!(b.lan_admits(&a.id()).unwrap() && a.lan_admits(&b.id()).unwrap());
        assert!(
            b.accept_peer_txs(&txs0, T).is_err(),
            "the third stall is not on it"
        );
        assert_eq!(pending(&b), 0);
        let done = a
            .redeem(&card(), Points::new(600).unwrap(), None, T)
            .unwrap();
        let txs = a.outbox_from(1, 10).unwrap();

        assert_eq!(b.accept_peer_txs(&txs, T).unwrap(), 1);
        assert_eq!(b.accept_peer_txs(&txs, T).unwrap(), 0, "idempotent");
        assert_eq!(pending(&b), 600);
        assert_eq!(b.peer_have_through(&a.id()).unwrap(), 1);
        assert_eq!(b.peer_txs_undelivered(10, 0).unwrap(), txs);
        // B cannot spend what A took.
        assert!(
            b.redeem(&card(), Points::new(500).unwrap(), None, T)
                .is_err()
        );
        b.redeem(&card(), Points::new(400).unwrap(), None, T)
            .unwrap();
        // A node never stores its own transactions as a peer's.
        assert_eq!(a.accept_peer_txs(&txs, T).unwrap(), 0);

        // A forged transaction drops the whole batch.
        let mut forged = txs[0].to_bytes();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let forged = mykey_sync_proto::SignedTx::from_bytes(&forged).unwrap();
        assert!(b.accept_peer_txs(&[forged], T).is_err());

        // The hub processed A's seq 1 (and confirmed the balance first).
        let m = MunicipalityCode::parse("131059").unwrap();
        let facts = hub.facts(vec![
            FactBody::ConfirmedBalance {
                account: AccountId::new(1).unwrap(),
                municipality: m,
                balance: Points::new(400).unwrap(),
                debt: Points::ZERO,
                ledger_pos: 2,
            },
            FactBody::NodeProgress {
                node: a.id(),
                through_seq: 1,
                head: done.tx,
            },
        ]);
        b.apply_facts(&facts).unwrap();
        assert_eq!(pending(&b), 400, "only B's own spend is still pending");
        assert!(b.peer_txs_undelivered(10, 0).unwrap().is_empty());
    }

    /// The one handler, bytes in: a peer no roster names is refused before
    /// anything is read, an admitted peer's own chain is taken and acked,
    /// another node's transactions and junk are refused and change nothing.
    #[test]
    fn answer_request_takes_only_an_admitted_peers_own_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut hub = Hub {
            key: SigningKey::from_bytes(&[9; 32]),
            seq: 0,
        };
        let mut a = node(dir.path(), 1, &mut hub, 1000);
        let mut b = node(dir.path(), 2, &mut hub, 1000);
        let mut c = node(dir.path(), 3, &mut hub, 1000);
        a.redeem(&card(), Points::new(600).unwrap(), None, T)
            .unwrap();
        c.redeem(&card(), Points::new(10).unwrap(), None, T)
            .unwrap();
        let offer = LanRequest::Offer {
            txs: a.outbox_from(1, 10).unwrap(),
        }
        .encode();
        assert!(matches!(
            answer_request(&mut b, &a.id(), &offer, T),
            Err(LanRefusal::NotAdmitted(_))
        ));
        assert_eq!(pending(&b), 0);
        let roster = hub.facts(vec![FactBody::LanRoster {
            municipality: MunicipalityCode::parse("131059").unwrap(),
            group: mykey_sync_proto::LanGroup::parse("fest").unwrap(),
            members: mykey_sync_proto::Roster::new(vec![a.id(), b.id()]).unwrap(),
        }]);
        for n in [&mut a, &mut b] {
            n.apply_facts(&roster).unwrap();
        }
        // A relays C's transaction as its own: refused.
        let relayed = LanRequest::Offer {
            txs: c.outbox_from(1, 10).unwrap(),
        }
        .encode();
        assert!(matches!(
            answer_request(&mut b, &a.id(), &relayed, T),
            Err(LanRefusal::Bad(_))
        ));
        assert!(matches!(
            answer_request(&mut b, &a.id(), &[0, 1, 9, 9], T),
            Err(LanRefusal::Bad(_))
        ));
        // A's own transaction with its signature changed: the offer's handler
        // is the only check on this path (the store is handed verified
        // transactions), so it must refuse it.
        let mut forged = a.outbox_from(1, 1).unwrap()[0].to_bytes();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let forged = LanRequest::Offer {
            txs: vec![mykey_sync_proto::SignedTx::from_bytes(&forged).unwrap()],
        }
        .encode();
        assert!(matches!(
            answer_request(&mut b, &a.id(), &forged, T),
            Err(LanRefusal::Bad(why)) if why.contains("not authentic")
        ));
        assert_eq!(pending(&b), 0);
        let ack = answer_request(&mut b, &a.id(), &offer, T).unwrap();
        assert_eq!(ack, LanResponse::Ack { have_through: 1 });
        assert_eq!(pending(&b), 600);
        // An empty offer asks how far B holds A's chain.
        let ask = LanRequest::Offer { txs: vec![] }.encode();
        assert_eq!(
            answer_request(&mut b, &a.id(), &ask, T).unwrap(),
            LanResponse::Ack { have_through: 1 }
        );
    }

    #[test]
    fn round_trip_and_refusals() {
        let r = LanRequest::Offer { txs: vec![] };
        assert_eq!(LanRequest::decode(&r.encode()).unwrap(), r);
        let a = LanResponse::Ack { have_through: 7 };
        assert_eq!(LanResponse::decode(&a.encode()).unwrap(), a);
        let mut v2 = r.encode();
        v2[1] = 2;
        assert_eq!(
            LanRequest::decode(&v2),
            Err(LanWireError::Version { got: 2 })
        );
        assert_eq!(LanRequest::decode(&[1]), Err(LanWireError::Truncated(1)));
        assert!(LanRequest::decode(&[0, 1, 9, 9, 9]).is_err());
    }
}
