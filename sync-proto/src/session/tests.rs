//! Session tests: a node session against a small in-memory hub, with breaks
//! injected at random points. The real hub and node stores are exercised by
//! the end-to-end tests; this checks the protocol logic alone.

use super::*;
use crate::ids::{AccountId, CardKey, FacilityId, MunicipalityCode, Points, TxId};
use crate::shard::{ShardHead, ShardId, ShardScope};
use crate::tx::{Redeem, TxBody, TxPayload};
use crate::wire::{Outcome, Receipt};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

struct ToyHub {
    node: NodeId,
    applied: Vec<TxId>,
    apply_count: std::collections::HashMap<TxId, u32>,
    /// Toy shards: a version per shard instead of a document; a sync message
    /// is one byte, the sender's version.
    shards: Vec<(ShardId, u8)>,
}

fn toy_shards() -> Vec<(ShardId, u8)> {
    let m = MunicipalityCode::parse("131059").unwrap();
    vec![
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
    ]
}

fn toy_hub(node: NodeId, applied: Vec<TxId>) -> ToyHub {
    ToyHub {
        node,
        applied,
        apply_count: Default::default(),
        shards: toy_shards(),
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
            let v = tx.verify().expect("toy hub only gets good txs");
            let seq = v.payload().seq;
            let known = (seq as usize)
                .checked_sub(1)
                .and_then(|i| self.applied.get(i))
                .copied();
            if known == Some(v.id()) {
                // Replay: same receipt, no second effect.
            } else if seq == self.applied.len() as u64 + 1 {
                self.applied.push(v.id());
                *self.apply_count.entry(v.id()).or_default() += 1;
            } else {
                break;
            }
            receipts.push(Receipt {
                node: v.payload().node,
                seq,
                tx: Some(v.id()),
                outcome: Outcome::Accepted {
                    ledger_pos: seq,
                    balance: None,
                    debt_created: Points::ZERO,
                    quarantined: Points::ZERO,
                },
            });
        }
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

/// The node side of the toy shards: versions held, first message of a turn
/// is the version, later ones are empty.
#[derive(Default)]
struct ToyNodeShards {
    held: std::collections::HashMap<ShardId, u8>,
    synced: Vec<ShardId>,
    turns: Vec<ShardId>,
    asked: std::collections::HashSet<ShardId>,
}

impl ToyNodeShards {
    fn handle(&mut self, s: &mut NodeSession, ev: &NodeEvent, now: UnixMillis) {
        match ev {
            NodeEvent::ShardsListed(list) => {
                self.asked.clear();
                let plan = list
                    .shards
                    .iter()
                    .filter(|h| self.held.get(&h.shard).copied().unwrap_or(0) as u64 != h.last_seq)
                    .map(|h| h.shard.clone())
                    .collect();
                s.provide_shard_plan(plan, now);
            }
            NodeEvent::ShardTurn {
                shard, received, ..
            } => {
                self.turns.push(shard.clone());
                if let Some([v]) = received.as_deref() {
                    self.held.insert(shard.clone(), *v);
                }
                // Like automerge: say what you hold once per exchange.
                let first = received.is_none() && self.asked.insert(shard.clone());
                let msg = first.then(|| vec![self.held.get(shard).copied().unwrap_or(0)]);
                s.provide_shard_message(msg, now);
            }
            NodeEvent::ShardSynced(h) => self.synced.push(h.shard.clone()),
            _ => {}
        }
    }
}

fn chain(key: &SigningKey, n: u64) -> Vec<SignedTx> {
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let mut prev = TxId::GENESIS;
    (1..=n)
        .map(|seq| {
            let tx = SignedTx::sign(
                &TxPayload {
                    node,
                    seq,
                    prev_hash: prev,
                    created_at: UnixMillis(seq),
                    body: TxBody::Redeem(Redeem {
                        card: CardKey::new(vec![1], vec![2]).unwrap(),
                        account: AccountId::new(1).unwrap(),
                        municipality: MunicipalityCode::parse("131059").unwrap(),
                        points: Points::new(1).unwrap(),
                        merchant: FacilityId::parse("shop").unwrap(),
                        basis: None,
                        card_proof: None,
                    }),
                },
                key,
            );
            prev = tx.id();
            tx
        })
        .collect()
}

/// Drives a node session against the toy hub. `breaks` lists step numbers at
/// which the link drops (a request lost, or a response lost after the hub
/// applied it). Returns the hub.
fn run(n: u64, batch: usize, breaks: &[(u32, bool)]) -> (ToyHub, Vec<TxId>) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let outbox = chain(&key, n);
    let mut hub = toy_hub(node, vec![]);
    let mut shards = ToyNodeShards::default();
    let mut hub_session = HubSession::new(node);
    let config = NodeSessionConfig {
        batch_txs: batch,
        ..Default::default()
    };
    let mut s = NodeSession::new(node, config);
    let mut now = UnixMillis(1);
    let mut receipted = 0u64;
    s.handle_connected(now, n, receipted, 0);
    for step in 1..100_000u32 {
        now = now.plus_ms(1);
        while let Some(ev) = s.poll_event() {
            shards.handle(&mut s, &ev, now);
            if let NodeEvent::Receipts(r) = &ev {
                for rc in &r.receipts {
                    assert_eq!(rc.seq, receipted + 1, "receipts arrive contiguously");
                    receipted = rc.seq;
                }
            }
            if let NodeEvent::NeedTxs { from_seq, max } = ev {
                let txs = outbox
                    .iter()
                    .skip(from_seq as usize - 1)
                    .take(max)
                    .cloned()
                    .collect();
                s.provide_txs(txs, now).unwrap();
            }
        }
        if let Some(req) = s.poll_transmit() {
            let brk = breaks.iter().find(|(at, _)| *at == step);
            match brk {
                Some((_, false)) => {
                    // Request lost on the way.
                    s.handle_disconnected();
                    hub_session = HubSession::new(node);
                    s.handle_connected(now, n, receipted, 0);
                }
                Some((_, true)) => {
                    // Hub handles it; the answer is lost.
                    let _ = hub_session.handle_request(req, now, &mut hub);
                    s.handle_disconnected();
                    hub_session = HubSession::new(node);
                    s.handle_connected(now, n, receipted, 0);
                }
                None => {
                    let resp = hub_session.handle_request(req, now, &mut hub);
                    let bytes = resp.encode();
                    s.handle_response(Response::decode(&bytes).unwrap(), now)
                        .unwrap();
                }
            }
            continue;
        }
        if s.is_caught_up() {
            break;
        }
        if let Some(t) = s.poll_timeout() {
            now = now.max(t);
            s.handle_timeout(now);
        }
    }
    assert!(s.is_caught_up(), "session did not catch up");
    assert_eq!(receipted, n, "every receipt reached the node");
    for (shard, v) in toy_shards() {
        assert_eq!(shards.held.get(&shard), Some(&v), "{shard} converged");
    }
    let ids = outbox.iter().map(|t| t.id()).collect();
    (hub, ids)
}

#[test]
fn pushes_everything_in_batches() {
    let (hub, ids) = run(1234, 500, &[]);
    assert_eq!(hub.applied, ids);
}

#[test]
fn hub_ahead_of_node_is_loud() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let mut s = NodeSession::new(node, NodeSessionConfig::default());
    s.handle_connected(UnixMillis(0), 3, 0, 0);
    let _ = s.poll_transmit();
    let err = s
        .handle_response(
            Response::Welcome(Welcome {
                hub_time: UnixMillis(0),
                processed_seq: 5,
            }),
            UnixMillis(1),
        )
        .unwrap_err();
    assert!(matches!(err, SessionError::HubAhead { hub: 5, local: 3 }));
}

#[test]
fn an_answer_to_a_request_not_yet_sent_closes_the_session() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let mut s = NodeSession::new(node, NodeSessionConfig::default());
    s.handle_connected(UnixMillis(0), 3, 0, 0);
    // The Hello still waits for poll_transmit: no hub can have answered it.
    assert!(s.has_transmit());
    let err = s
        .handle_response(
            Response::Welcome(Welcome {
                hub_time: UnixMillis(0),
                processed_seq: 0,
            }),
            UnixMillis(1),
        )
        .unwrap_err();
    assert!(matches!(err, SessionError::Unexpected(_)), "{err:?}");
    assert!(!s.is_open());
    assert!(s.poll_transmit().is_none());
}

#[test]
fn request_timeout_closes_session() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let mut s = NodeSession::new(node, NodeSessionConfig::default());
    s.handle_connected(UnixMillis(0), 0, 0, 0);
    let _ = s.poll_transmit();
    let t = s.poll_timeout().unwrap();
    s.handle_timeout(t);
    assert!(matches!(
        s.poll_event(),
        Some(NodeEvent::Closed(SessionError::Timeout(_)))
    ));
    assert!(!s.is_open());
}

#[test]
fn push_before_hello_is_refused() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let mut hub = toy_hub(node, vec![]);
    let mut hs = HubSession::new(node);
    let r = hs.handle_request(Request::Push(Push { txs: vec![] }), UnixMillis(0), &mut hub);
    assert!(matches!(r, Response::Refused(Refusal::Protocol(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn resumes_after_random_breaks(
        n in 1u64..300,
        batch in 1usize..64,
        breaks in proptest::collection::vec((1u32..80, any::<bool>()), 0..12),
    ) {
        let (hub, ids) = run(n, batch, &breaks);
        prop_assert_eq!(&hub.applied, &ids);
        prop_assert!(hub.apply_count.values().all(|c| *c == 1));
    }
}

#[test]
fn first_request_after_welcome_is_the_shard_list_even_with_a_backlog() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let mut s = NodeSession::new(node, NodeSessionConfig::default());
    s.handle_connected(UnixMillis(0), 50, 0, 7);
    assert!(matches!(s.poll_transmit(), Some(Request::Hello(_))));
    s.handle_response(
        Response::Welcome(Welcome {
            hub_time: UnixMillis(0),
            processed_seq: 0,
        }),
        UnixMillis(1),
    )
    .unwrap();
    match s.poll_transmit() {
        Some(Request::Shards) => {}
        other => panic!("expected the shard list first, got {other:?}"),
    }
}

#[test]
fn a_round_syncs_deny_shards_first_then_pulls_facts_up_to_the_list() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let mut hub = toy_hub(node, vec![]);
    let mut hs = HubSession::new(node);
    let mut s = NodeSession::new(node, NodeSessionConfig::default());
    let mut shards = ToyNodeShards::default();
    let now = UnixMillis(1);
    s.handle_connected(now, 0, 0, 0);
    let mut pulls = vec![];
    for _ in 0..100 {
        while let Some(ev) = s.poll_event() {
            shards.handle(&mut s, &ev, now);
        }
        match s.poll_transmit() {
            Some(req) => {
                if let Request::PullFacts(p) = &req {
                    assert_eq!(shards.synced.len(), 2, "facts come after every shard");
                    pulls.push(p.upto);
                }
                let resp = hs.handle_request(req, now, &mut hub);
                s.handle_response(resp, now).unwrap();
            }
            None => break,
        }
    }
    assert!(s.is_caught_up());
    assert!(
        shards.turns[0].is_deny(),
        "deny shard first: {:?}",
        shards.turns
    );
    assert!(shards.synced[0].is_deny());
    assert_eq!(pulls, vec![10], "facts pulled up to the list's hub_seq");
    // A shard the hub does not list for the node is refused.
    let r = hs.handle_request(
        Request::ShardSync(ShardSync {
            shard: ShardId {
                scope: ShardScope::Facility(FacilityId::parse("other").unwrap()),
                bucket: 0,
            },
            epoch: 0,
            message: None,
            start: true,
        }),
        now,
        &mut hub,
    );
    assert!(matches!(r, Response::Refused(_)));
}

#[test]
fn receipts_are_fetched_even_when_a_peer_delivered_the_chain_first() {
    // A LAN peer already carried all 12 transactions to the hub: its
    // processed seq is 12, but one push of 5 returns only 5 receipts.
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let outbox = chain(&key, 12);
    let mut hub = toy_hub(node, outbox.iter().map(|t| t.id()).collect());
    let mut hs = HubSession::new(node);
    let config = NodeSessionConfig {
        batch_txs: 5,
        ..Default::default()
    };
    let mut s = NodeSession::new(node, config);
    let now = UnixMillis(1);
    s.handle_connected(now, 12, 0, 0);
    let mut receipted = 0u64;
    let mut shards = ToyNodeShards::default();
    for _ in 0..100 {
        while let Some(ev) = s.poll_event() {
            shards.handle(&mut s, &ev, now);
            match ev {
                NodeEvent::Receipts(r) => {
                    for rc in &r.receipts {
                        assert_eq!(rc.seq, receipted + 1);
                        receipted = rc.seq;
                    }
                }
                NodeEvent::NeedTxs { from_seq, max } => {
                    let txs = outbox
                        .iter()
                        .skip(from_seq as usize - 1)
                        .take(max)
                        .cloned()
                        .collect();
                    s.provide_txs(txs, now).unwrap();
                }
                _ => {}
            }
        }
        match s.poll_transmit() {
            Some(req) => {
                let resp = hs.handle_request(req, now, &mut hub);
                s.handle_response(resp, now).unwrap();
            }
            None => break,
        }
    }
    assert_eq!(receipted, 12, "every receipt reached the node");
    assert!(s.is_caught_up());
}

/// Drives a session as the node's driver does (a ready request is sent
/// before further events are handled) and cuts the link at each push whose
/// number (counted from 1 over the run) is in `cuts`, right after the hub
/// applied it, dropping the events the node had
/// not handled yet: receipts the hub applied but the node never stored.
/// Returns the hub and how many cuts fell inside the window (a push's
/// receipts not stored while the next push was already applied).
fn run_window(n: u64, batch: usize, cuts: &[u32]) -> (ToyHub, Vec<TxId>, u32) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let outbox = chain(&key, n);
    let mut hub = toy_hub(node, vec![]);
    let mut shards = ToyNodeShards::default();
    let mut hub_session = HubSession::new(node);
    let config = NodeSessionConfig {
        batch_txs: batch,
        ..Default::default()
    };
    let mut s = NodeSession::new(node, config);
    let mut now = UnixMillis(1);
    let mut receipted = 0u64;
    let mut cuts_in_window = 0;
    let mut pushes = 0u32;
    s.handle_connected(now, n, receipted, 0);
    for _ in 1..100_000u32 {
        now = now.plus_ms(1);
        while !s.has_transmit()
            && let Some(ev) = s.poll_event()
        {
            shards.handle(&mut s, &ev, now);
            match ev {
                NodeEvent::Receipts(r) => {
                    for rc in &r.receipts {
                        assert_eq!(rc.seq, receipted + 1, "receipts are stored contiguously");
                        receipted = rc.seq;
                    }
                }
                NodeEvent::NeedTxs { from_seq, max } => {
                    assert!(from_seq > receipted, "never asks for a stored seq");
                    let txs = outbox
                        .iter()
                        .skip(from_seq as usize - 1)
                        .take(max)
                        .cloned()
                        .collect();
                    s.provide_txs(txs, now).unwrap();
                }
                _ => {}
            }
        }
        if let Some(req) = s.poll_transmit() {
            let was_push = matches!(req, Request::Push(_));
            pushes += u32::from(was_push);
            let resp = hub_session.handle_request(req, now, &mut hub);
            if was_push && cuts.contains(&pushes) {
                // The node handled nothing more: its pending events are lost.
                let mut unstored = false;
                while let Some(ev) = s.poll_event() {
                    unstored |= matches!(ev, NodeEvent::Receipts(_));
                }
                if unstored {
                    cuts_in_window += 1;
                }
                s.handle_disconnected();
                hub_session = HubSession::new(node);
                s.handle_connected(now, n, receipted, 0);
                continue;
            }
            let bytes = resp.encode();
            s.handle_response(Response::decode(&bytes).unwrap(), now)
                .unwrap();
            continue;
        }
        if s.is_caught_up() {
            break;
        }
        if let Some(t) = s.poll_timeout() {
            now = now.max(t);
            s.handle_timeout(now);
        }
    }
    assert!(s.is_caught_up(), "session did not catch up");
    assert_eq!(receipted, n, "every receipt reached the node");
    let ids = outbox.iter().map(|t| t.id()).collect();
    (hub, ids, cuts_in_window)
}

#[test]
fn the_next_push_goes_out_before_the_receipts_are_stored() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let outbox = chain(&key, 30);
    let mut hub = toy_hub(node, vec![]);
    let mut hs = HubSession::new(node);
    let config = NodeSessionConfig {
        batch_txs: 10,
        ..Default::default()
    };
    let mut s = NodeSession::new(node, config);
    let now = UnixMillis(5);
    s.handle_connected(now, 30, 0, 0);
    let mut order = vec![];
    for _ in 0..200 {
        while !s.has_transmit()
            && let Some(ev) = s.poll_event()
        {
            match ev {
                NodeEvent::NeedTxs { from_seq, max } => {
                    order.push(format!("need {from_seq}"));
                    let txs = outbox[from_seq as usize - 1..]
                        .iter()
                        .take(max)
                        .cloned()
                        .collect();
                    s.provide_txs(txs, now).unwrap();
                }
                NodeEvent::Receipts(r) => order.push(format!("store ..{}", r.processed_seq)),
                NodeEvent::ShardsListed(_) => s.provide_shard_plan(vec![], now),
                _ => {}
            }
        }
        let Some(req) = s.poll_transmit() else { break };
        if let Request::Push(p) = &req {
            order.push(format!("push {}", p.txs.len()));
        }
        let resp = hs.handle_request(req, now, &mut hub);
        s.handle_response(resp, now).unwrap();
    }
    assert_eq!(
        order,
        [
            "need 1",
            "push 10",
            "need 11",
            "push 10",
            "store ..10",
            "need 21",
            "push 10",
            "store ..20",
            "store ..30"
        ]
    );
    assert!(s.is_caught_up());
}

#[test]
fn receipt_ranges_that_overlap_close_the_session() {
    use crate::receipts::{ReceiptRanges, ReceiptsError, Run, SignerRuns};
    let key = SigningKey::from_bytes(&[9; 32]);
    let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
    let outbox = chain(&key, 5);
    let mut hub = toy_hub(node, vec![]);
    let mut hs = HubSession::new(node);
    let mut s = NodeSession::new(node, NodeSessionConfig::default());
    let now = UnixMillis(5);
    s.handle_connected(now, 5, 0, 0);
    let run = |seq, count| Run::Accepted {
        seq,
        count,
        ledger_pos: 1,
        step: 1,
    };
    for _ in 0..50 {
        while let Some(ev) = s.poll_event() {
            match ev {
                NodeEvent::NeedTxs { from_seq, max } => {
                    let txs = outbox[from_seq as usize - 1..]
                        .iter()
                        .take(max)
                        .cloned()
                        .collect();
                    s.provide_txs(txs, now).unwrap();
                }
                NodeEvent::ShardsListed(_) => s.provide_shard_plan(vec![], now),
                NodeEvent::Receipts(_) => panic!("overlapping receipts were taken"),
                _ => {}
            }
        }
        let Some(req) = s.poll_transmit() else { break };
        let resp = match req {
            Request::Push(_) => Response::Receipts(ReceiptRanges {
                signers: vec![SignerRuns {
                    node,
                    runs: vec![run(1, 3), run(2, 3)],
                }],
                balances: vec![],
                processed_seq: 5,
            }),
            other => hs.handle_request(other, now, &mut hub),
        };
        if let Err(e) = s.handle_response(resp, now) {
            assert!(
                matches!(
                    e,
                    SessionError::BadReceipts(ReceiptsError::OutOfOrder {
                        seq: 2,
                        after: 3,
                        ..
                    })
                ),
                "{e}"
            );
            assert!(!s.is_open());
            assert!(hub.applied.is_empty(), "nothing reached the hub");
            return;
        }
    }
    panic!("the push was never answered");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn a_cut_inside_the_window_resends_and_applies_once(
        n in 1u64..300,
        batch in 1usize..64,
        cuts in proptest::collection::vec(1u32..40, 0..12),
    ) {
        let (hub, ids, _) = run_window(n, batch, &cuts);
        prop_assert_eq!(&hub.applied, &ids);
        prop_assert!(hub.apply_count.values().all(|c| *c == 1));
    }
}

#[test]
fn cuts_do_fall_inside_the_window() {
    // A cut right after the hub applied push k (k > 1, not the first
    // after a reconnection) loses the receipts of push k-1, which the node
    // had not stored yet: it resends both, and the hub applies each once.
    let (hub, ids, in_window) = run_window(100, 10, &[3, 6, 9]);
    assert!(in_window >= 2, "cuts inside the window: {in_window}");
    assert_eq!(hub.applied, ids);
    assert!(hub.apply_count.values().all(|c| *c == 1));
}
