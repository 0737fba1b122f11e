//! `session`: the sans-IO sync sessions, `NodeSession` and `HubSession`,
//! driven by a sequence of events (`arbitrary`): the node signs redeems,
//! requests are delivered, lost on the way or after the hub handled them,
//! links drop and come back, time jumps past deadlines, the node restarts,
//! the driver hands the wrong outbox, a LAN peer carries the node's chain
//! to the hub first, earlier requests are replayed to the hub, and (once
//! in a while) the node is handed bytes that are not the hub's answer.
//!
//! The hub is an in-memory `HubService` like the one of the session unit
//! tests, with one wallet (credited, redeemed, balance, debt) and two toy
//! shards; every message crosses as bytes (`encode`, `decode`).
//!
//! Properties, at every step: nothing panics; the hub applies each
//! transaction at most once and in chain order; credited − redeemed =
//! balance − debt (conservation). After the events, unless the node was
//! handed bytes that are not the hub's answer, the link heals and the
//! session runs to the end (bounded): every transaction the node signed is
//! applied exactly once and receipted at the node (no loss), the points the
//! hub redeemed are the points the node signed, and the node holds every
//! shard as the hub wrote it.

use crate::tx::id_of;
use arbitrary::{Arbitrary, Unstructured};
use ed25519_dalek::SigningKey;
use mykey_sync_proto::receipts::{BalanceAt, ReceiptRanges, Run, Said, SignerRuns};
use mykey_sync_proto::session::{
    HubService, HubSession, NodeEvent, NodeSession, NodeSessionConfig,
};
use mykey_sync_proto::shard::{ShardHead, ShardId, ShardScope};
use mykey_sync_proto::wire::{
    BalanceSnapshot, Facts, Hello, Outcome, Receipt, Receipts, Refusal, RejectReason, Request,
    Response, ShardList, ShardSync, Welcome,
};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, NodeId, Points, Redeem, SignedTx, TxBody,
    TxId, TxPayload, UnixMillis,
};
use std::collections::{HashMap, HashSet};

/// Events per case, at most.
const MAX_OPS: usize = 256;
/// Exchanges while healing, at most.
const MAX_HEAL_STEPS: usize = 20_000;
/// Events drained per step, at most.
const MAX_EVENTS: usize = 10_000;
/// Points credited to the wallet at the start.
const CREDITED: u64 = 10_000;

/// One thing that happens.
#[derive(Arbitrary, Debug, Clone)]
enum Op {
    /// The node signs a redeem of this many points (1 to 5000).
    Sign(u16),
    /// Up to this many requests are delivered and answered.
    Deliver(u8),
    /// The request in flight is lost; the link drops.
    LoseRequest,
    /// The hub handles the request in flight, its answer is lost; the link drops.
    LoseAnswer,
    /// The link comes (back) up.
    Connect,
    /// The link drops.
    Disconnect,
    /// Time passes.
    Tick(u16),
    /// Time jumps to the session's next deadline.
    Timeout,
    /// The driver answers the next outbox request with the wrong transactions.
    WrongOutbox,
    /// The node process restarts: only what it stored survives.
    Restart,
    /// A LAN peer carries the node's first transactions to the hub.
    PeerCarries(u8),
    /// An earlier request reaches the hub again (a relay, a retransmission).
    Replay(u8),
    /// The node is handed bytes that are not the hub's answer.
    Hostile(Vec<u8>),
    /// The node is handed receipt ranges the hub did not make: its own or
    /// another signer's, overlapping, out of order, past any bound.
    HostileReceipts(HostileRanges),
}

/// Receipt ranges from the fuzzer's bytes, shaped enough to reach past the
/// decoder's first checks.
#[derive(Arbitrary, Debug, Clone)]
struct HostileRanges {
    signers: Vec<HostileGroup>,
    /// Receipt indices of balance snapshots.
    balances: Vec<u16>,
    processed_seq: u64,
}

/// One signer's group: the node's own or another's.
#[derive(Arbitrary, Debug, Clone)]
struct HostileGroup {
    own: bool,
    runs: Vec<HostileRun>,
}

/// A run of acceptances, or one rejection at `seq`.
#[derive(Arbitrary, Debug, Clone)]
struct HostileRun {
    accepted: bool,
    seq: u64,
    count: u16,
    ledger_pos: u64,
    step: u8,
}

impl HostileRanges {
    fn ranges(&self, mine: NodeId, other: NodeId) -> ReceiptRanges {
        let snapshot = BalanceSnapshot {
            account: AccountId::new(1).expect("account"),
            municipality: municipality(),
            balance: Points::ZERO,
            debt: Points::ZERO,
        };
        ReceiptRanges {
            signers: self
                .signers
                .iter()
                .map(|g| SignerRuns {
                    node: if g.own { mine } else { other },
                    runs: g
                        .runs
                        .iter()
                        .map(|r| match r.accepted {
                            true => Run::Accepted {
                                seq: r.seq,
                                count: u32::from(r.count),
                                ledger_pos: r.ledger_pos,
                                step: u64::from(r.step),
                            },
                            false => Run::One {
                                seq: r.seq,
                                said: Said::Rejected {
                                    tx: None,
                                    reason: RejectReason::ChainGap {
                                        expected: r.seq,
                                        got: r.ledger_pos,
                                    },
                                },
                            },
                        })
                        .collect(),
                })
                .collect(),
            balances: self
                .balances
                .iter()
                .map(|&index| BalanceAt {
                    index: u32::from(index),
                    balance: snapshot.clone(),
                })
                .collect(),
            processed_seq: self.processed_seq,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Case {
    batch_txs: u8,
    ops: Vec<Op>,
}

/// The in-memory hub.
struct ToyHub {
    node: NodeId,
    applied: Vec<TxId>,
    apply_count: HashMap<TxId, u32>,
    balance: u64,
    debt: u64,
    redeemed: u64,
    shards: Vec<(ShardId, u8)>,
}

fn municipality() -> MunicipalityCode {
    MunicipalityCode::parse("131059").expect("code")
}

impl ToyHub {
    fn new(node: NodeId) -> Self {
        let m = municipality();
        ToyHub {
            node,
            applied: vec![],
            apply_count: HashMap::new(),
            balance: CREDITED,
            debt: 0,
            redeemed: 0,
            shards: vec![
                (
                    ShardId {
                        scope: ShardScope::Municipality(m),
                        bucket: 0,
                    },
                    3,
                ),
                (
                    ShardId {
                        scope: ShardScope::Deny(m),
                        bucket: 0,
                    },
                    2,
                ),
            ],
        }
    }

    fn check_conservation(&self) {
        assert_eq!(
            i128::from(CREDITED) - i128::from(self.redeemed),
            i128::from(self.balance) - i128::from(self.debt),
            "credited − redeemed = balance − debt"
        );
        assert!(
            self.apply_count.values().all(|n| *n == 1),
            "a transaction is applied at most once"
        );
    }

    fn receipt(node: NodeId, seq: u64, tx: TxId, outcome: Outcome) -> Receipt {
        Receipt {
            node,
            seq,
            tx: Some(tx),
            outcome,
        }
    }
}

impl HubService for ToyHub {
    fn open(&mut self, hello: &Hello, _now: UnixMillis) -> Result<Welcome, Refusal> {
        if hello.node != self.node {
            return Err(Refusal::NotEnrolled);
        }
        Ok(Welcome {
            hub_time: UnixMillis(0),
            processed_seq: self.applied.len() as u64,
        })
    }

    fn ingest(&mut self, _carrier: &NodeId, txs: Vec<SignedTx>, _now: UnixMillis) -> Receipts {
        let mut receipts = vec![];
        for tx in txs {
            let Ok(v) = tx.verify() else {
                receipts.push(Self::receipt(
                    self.node,
                    0,
                    tx.id(),
                    Outcome::Rejected(RejectReason::BadSignature),
                ));
                break;
            };
            let p = v.payload();
            let (node, seq) = (p.node, p.seq);
            let next = self.applied.len() as u64 + 1;
            let prev = self.applied.last().copied().unwrap_or(TxId::GENESIS);
            let accepted = Outcome::Accepted {
                ledger_pos: seq,
                balance: None,
                debt_created: Points::ZERO,
                quarantined: Points::ZERO,
            };
            let outcome = if seq >= 1 && seq < next {
                if self.applied[seq as usize - 1] == v.id() {
                    accepted
                } else {
                    Outcome::Rejected(RejectReason::ChainFork { seq })
                }
            } else if seq == next && p.prev_hash == prev {
                let TxBody::Redeem(r) = &p.body else {
                    panic!("the toy node signs redeems only");
                };
                let points = r.points.get();
                let from_balance = points.min(self.balance);
                self.balance -= from_balance;
                self.debt += points - from_balance;
                self.redeemed += points;
                self.applied.push(v.id());
                *self.apply_count.entry(v.id()).or_default() += 1;
                accepted
            } else if seq == next {
                Outcome::Rejected(RejectReason::ChainFork { seq })
            } else {
                Outcome::Rejected(RejectReason::ChainGap {
                    expected: next,
                    got: seq,
                })
            };
            let chain_level = matches!(&outcome, Outcome::Rejected(r) if r.is_chain_level());
            receipts.push(Self::receipt(node, seq, v.id(), outcome));
            if chain_level {
                break;
            }
        }
        self.check_conservation();
        Receipts {
            receipts,
            processed_seq: self.applied.len() as u64,
        }
    }

    fn facts(&mut self, _node: &NodeId, after: u64, _max: u32, upto: u64) -> Facts {
        Facts {
            facts: vec![],
            cursor: after.max(upto),
            more: false,
        }
    }

    fn shards(&mut self, _node: &NodeId) -> Result<ShardList, Refusal> {
        Ok(ShardList {
            shards: self
                .shards
                .iter()
                .map(|(shard, v)| ShardHead {
                    shard: shard.clone(),
                    epoch: 0,
                    buckets: 1,
                    last_seq: u64::from(*v),
                })
                .collect(),
            hub_seq: 10,
        })
    }

    fn shard_sync(
        &mut self,
        _node: &NodeId,
        sync: ShardSync,
        _now: UnixMillis,
    ) -> Result<ShardSync, Refusal> {
        let Some((_, hv)) = self.shards.iter().find(|(s, _)| *s == sync.shard) else {
            return Err(Refusal::Protocol("not your shard".into()));
        };
        let message = match sync.message.as_deref() {
            Some([nv]) if nv < hv => Some(vec![*hv]),
            _ => None,
        };
        Ok(ShardSync { message, ..sync })
    }
}

/// The node's durable state and its driver.
struct ToyNode {
    key: SigningKey,
    id: NodeId,
    outbox: Vec<SignedTx>,
    points: Vec<u64>,
    /// Highest seq up to which every receipt is stored.
    receipted: u64,
    fact_cursor: u64,
    held: HashMap<ShardId, u8>,
    asked: HashSet<ShardId>,
    wrong_outbox: bool,
    /// False once the node was handed bytes that are not the hub's.
    trust_hub: bool,
}

impl ToyNode {
    fn sign(&mut self, points: u64, now: UnixMillis) -> u64 {
        let seq = self.outbox.len() as u64 + 1;
        let prev_hash = self.outbox.last().map_or(TxId::GENESIS, SignedTx::id);
        let payload = TxPayload {
            node: self.id,
            seq,
            prev_hash,
            created_at: now,
            body: TxBody::Redeem(Redeem {
                card: CardKey::new(vec![0x30, 0], vec![1]).expect("card key"),
                account: AccountId::new(1).expect("account"),
                municipality: municipality(),
                points: Points::new(points).expect("points"),
                merchant: FacilityId::parse("stall").expect("facility"),
                basis: None,
                card_proof: None,
            }),
        };
        self.outbox.push(SignedTx::sign(&payload, &self.key));
        self.points.push(points);
        seq
    }

    fn connect(&self, s: &mut NodeSession, now: UnixMillis) {
        s.handle_connected(
            now,
            self.outbox.len() as u64,
            self.receipted,
            self.fact_cursor,
        );
    }

    /// Handles the session's events as the node's driver does.
    fn drain(&mut self, s: &mut NodeSession, now: UnixMillis) {
        for _ in 0..MAX_EVENTS {
            let Some(ev) = s.poll_event() else {
                return;
            };
            match ev {
                NodeEvent::NeedTxs { from_seq, max } => {
                    assert!(from_seq >= 1 && max >= 1);
                    let skip = from_seq as usize - 1 + usize::from(self.wrong_outbox);
                    let txs: Vec<SignedTx> =
                        self.outbox.iter().skip(skip).take(max).cloned().collect();
                    let wrong = self.wrong_outbox && !txs.is_empty();
                    self.wrong_outbox = false;
                    let r = s.provide_txs(txs, now);
                    assert_eq!(
                        r.is_err(),
                        wrong,
                        "the wrong outbox is refused, the right one taken"
                    );
                }
                NodeEvent::Receipts(r) => {
                    for rc in &r.receipts {
                        let chain_level =
                            matches!(&rc.outcome, Outcome::Rejected(x) if x.is_chain_level());
                        let mine = rc.node == self.id && rc.seq == self.receipted + 1;
                        if mine && !chain_level && rc.seq <= self.outbox.len() as u64 {
                            if self.trust_hub {
                                let signed = self.outbox[rc.seq as usize - 1].id();
                                assert!(rc.tx.is_none_or(|tx| tx == signed));
                                assert!(matches!(rc.outcome, Outcome::Accepted { .. }));
                            }
                            self.receipted = rc.seq;
                        }
                    }
                }
                NodeEvent::Facts(f) => self.fact_cursor = self.fact_cursor.max(f.cursor),
                NodeEvent::ShardsListed(list) => {
                    self.asked.clear();
                    let plan = list
                        .shards
                        .iter()
                        .filter(|h| {
                            u64::from(self.held.get(&h.shard).copied().unwrap_or(0)) != h.last_seq
                        })
                        .map(|h| h.shard.clone())
                        .collect();
                    s.provide_shard_plan(plan, now);
                }
                NodeEvent::ShardTurn {
                    shard, received, ..
                } => {
                    if let Some([v]) = received.as_deref() {
                        self.held.insert(shard.clone(), *v);
                    }
                    let first = received.is_none() && self.asked.insert(shard.clone());
                    let msg = first.then(|| vec![self.held.get(&shard).copied().unwrap_or(0)]);
                    s.provide_shard_message(msg, now);
                }
                NodeEvent::Welcomed(_)
                | NodeEvent::ShardSynced(_)
                | NodeEvent::Refused(_)
                | NodeEvent::Closed(_) => {}
            }
        }
        panic!("a session emits a bounded number of events");
    }
}

/// The node, the hub, the link between them and a clock.
struct World {
    node: ToyNode,
    hub: ToyHub,
    session: NodeSession,
    hub_side: HubSession,
    config: NodeSessionConfig,
    now: UnixMillis,
    history: Vec<Request>,
}

impl World {
    fn new(batch_txs: u8) -> World {
        let key = SigningKey::from_bytes(&[0x4e; 32]);
        let id = id_of(&key);
        let config = NodeSessionConfig {
            batch_txs: usize::from(batch_txs % 16) + 1,
            ..NodeSessionConfig::default()
        };
        World {
            node: ToyNode {
                key,
                id,
                outbox: vec![],
                points: vec![],
                receipted: 0,
                fact_cursor: 0,
                held: HashMap::new(),
                asked: HashSet::new(),
                wrong_outbox: false,
                trust_hub: true,
            },
            hub: ToyHub::new(id),
            session: NodeSession::new(id, config.clone()),
            hub_side: HubSession::new(id),
            config,
            now: UnixMillis(1_000),
            history: vec![],
        }
    }

    fn link_down(&mut self) {
        self.session.handle_disconnected();
        self.hub_side = HubSession::new(self.node.id);
    }

    /// The request in flight, if any, crossed as bytes.
    fn take_request(&mut self) -> Option<Request> {
        let req = self.session.poll_transmit()?;
        let req = Request::decode(&req.encode()).expect("a request the node made decodes");
        if self.history.len() < 64 {
            self.history.push(req.clone());
        }
        Some(req)
    }

    fn deliver(&mut self) -> bool {
        self.node.drain(&mut self.session, self.now);
        let Some(req) = self.take_request() else {
            return false;
        };
        let resp = self.hub_side.handle_request(req, self.now, &mut self.hub);
        let resp = Response::decode(&resp.encode()).expect("an answer the hub made decodes");
        let r = self.session.handle_response(resp, self.now);
        if self.node.trust_hub {
            assert!(r.is_ok(), "an honest hub's answer is in turn: {r:?}");
        }
        self.node.drain(&mut self.session, self.now);
        true
    }

    fn step(&mut self, op: Op) {
        self.node.drain(&mut self.session, self.now);
        match op {
            Op::Sign(p) => {
                let seq = self.node.sign(u64::from(p % 5000) + 1, self.now);
                self.session.note_local_seq(seq, self.now);
            }
            Op::Deliver(n) => {
                for _ in 0..=n % 8 {
                    if !self.deliver() {
                        break;
                    }
                }
            }
            Op::LoseRequest => {
                if self.take_request().is_some() {
                    self.link_down();
                }
            }
            Op::LoseAnswer => {
                if let Some(req) = self.take_request() {
                    let _ = self.hub_side.handle_request(req, self.now, &mut self.hub);
                    self.link_down();
                }
            }
            Op::Connect => {
                self.hub_side = HubSession::new(self.node.id);
                self.node.connect(&mut self.session, self.now);
            }
            Op::Disconnect => self.link_down(),
            Op::Tick(ms) => {
                self.now = self.now.plus_ms(u64::from(ms));
                self.session.handle_timeout(self.now);
            }
            Op::Timeout => {
                if let Some(t) = self.session.poll_timeout() {
                    self.now = self.now.max(t);
                    self.session.handle_timeout(self.now);
                }
            }
            Op::WrongOutbox => self.node.wrong_outbox = true,
            Op::Restart => {
                self.session = NodeSession::new(self.node.id, self.config.clone());
                self.hub_side = HubSession::new(self.node.id);
            }
            Op::PeerCarries(n) => {
                let txs: Vec<SignedTx> = self
                    .node
                    .outbox
                    .iter()
                    .take(usize::from(n))
                    .cloned()
                    .collect();
                let peer = id_of(&SigningKey::from_bytes(&[0x50; 32]));
                let _ = self.hub.ingest(&peer, txs, self.now);
            }
            Op::Replay(i) => {
                if !self.history.is_empty() {
                    let req = self.history[usize::from(i) % self.history.len()].clone();
                    let mut relay = HubSession::new(self.node.id);
                    let hello = Request::Hello(Hello {
                        node: self.node.id,
                        node_time: self.now,
                        last_seq: self.node.outbox.len() as u64,
                        fact_cursor: self.node.fact_cursor,
                        software: "relay".into(),
                    });
                    let _ = relay.handle_request(hello, self.now, &mut self.hub);
                    let _ = relay.handle_request(req, self.now, &mut self.hub);
                }
            }
            Op::Hostile(bytes) => {
                if let Ok(resp) = Response::decode(&bytes) {
                    self.node.trust_hub = false;
                    let _ = self.session.handle_response(resp, self.now);
                }
            }
            Op::HostileReceipts(h) => {
                let other = id_of(&SigningKey::from_bytes(&[0x51; 32]));
                let bytes = Response::Receipts(h.ranges(self.node.id, other)).encode();
                // What the decoder lets through, the session takes or refuses.
                if let Ok(resp) = Response::decode(&bytes) {
                    self.node.trust_hub = false;
                    let _ = self.session.handle_response(resp, self.now);
                }
            }
        }
        self.node.drain(&mut self.session, self.now);
        self.hub.check_conservation();
    }

    /// The link comes back and stays up until the node is caught up.
    fn heal(&mut self) {
        self.node.wrong_outbox = false;
        self.link_down();
        self.node.connect(&mut self.session, self.now);
        for _ in 0..MAX_HEAL_STEPS {
            if self.deliver() {
                continue;
            }
            if self.session.is_caught_up() {
                return;
            }
            match self.session.poll_timeout() {
                Some(t) => {
                    self.now = self.now.max(t).plus_ms(1);
                    self.session.handle_timeout(self.now);
                }
                None => panic!("a healed session neither sends, waits nor is caught up"),
            }
        }
        panic!("a healed session did not catch up within {MAX_HEAL_STEPS} exchanges");
    }
}

/// A case: the push batch size and the events.
pub fn run(data: &[u8]) {
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut w = World::new(case.batch_txs);
    w.node.connect(&mut w.session, w.now);
    for op in case.ops.into_iter().take(MAX_OPS) {
        w.step(op);
    }
    if !w.node.trust_hub {
        return;
    }
    w.heal();
    let ids: Vec<TxId> = w.node.outbox.iter().map(SignedTx::id).collect();
    assert_eq!(
        w.hub.applied, ids,
        "every signed transaction is applied, in order"
    );
    assert_eq!(
        w.node.receipted,
        ids.len() as u64,
        "every receipt reached the node"
    );
    assert_eq!(
        w.hub.redeemed,
        w.node.points.iter().sum::<u64>(),
        "points redeemed = points signed"
    );
    w.hub.check_conservation();
    for (shard, v) in &w.hub.shards {
        assert_eq!(w.node.held.get(shard), Some(v), "shard {shard} converged");
    }
}
