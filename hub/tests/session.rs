//! The sync-proto sessions driven against the real hub: a node pushes its
//! chain in batches through `NodeSession` / `HubSession`, the link breaks
//! after the hub applied a push but before the node saw the receipts, and
//! the resumed session converges with every transaction applied once.

mod common;

use common::*;
use mykey_cache::{ShardDoc, SyncState};
use mykey_sync_proto::session::{HubSession, NodeEvent, NodeSession, NodeSessionConfig};
use mykey_sync_proto::shard::{ShardId, verify_item};
use mykey_sync_proto::wire::{Outcome, Receipt};
use mykey_sync_proto::{FactBody, SignedTx};
use std::collections::{BTreeMap, HashMap};

#[test]
fn node_session_pushes_its_chain_and_resumes_after_a_lost_answer() {
    let mut f = Fixture::new();
    f.hub
        .admin_grant(f.alice, &program(), pts(5_000), T0)
        .unwrap();
    let outbox: Vec<SignedTx> = (0..25)
        .map(|i| f.shop.sign(redeem(f.alice, 1, 100 + i)))
        .collect();
    let config = NodeSessionConfig {
        batch_txs: 10,
        ..NodeSessionConfig::default()
    };
    let mut node = NodeSession::new(f.shop.id, config);
    let mut receipts: BTreeMap<u64, Receipt> = BTreeMap::new();
    let mut cursor = 0u64;
    let mut balance_seen = None;
    let mut balance_seq = 0;
    let mut docs: HashMap<ShardId, ShardDoc> = HashMap::new();
    let mut states: HashMap<ShardId, SyncState> = HashMap::new();
    let mut buckets: HashMap<ShardId, u16> = HashMap::new();
    let mut now = T0;
    let mut dropped_one = false;
    for _connection in 0..3 {
        let mut hub_side = HubSession::new(f.shop.id);
        // Receipts are stored in order, so their count is the receipted seq.
        node.handle_connected(now, outbox.len() as u64, receipts.len() as u64, cursor);
        for _step in 0..200 {
            now = now.plus_ms(10);
            while let Some(ev) = node.poll_event() {
                match ev {
                    NodeEvent::NeedTxs { from_seq, max } => {
                        let from = (from_seq - 1) as usize;
                        let txs = outbox[from..].iter().take(max).cloned().collect();
                        node.provide_txs(txs, now).unwrap();
                    }
                    NodeEvent::Receipts(r) => {
                        for rc in r.receipts {
                            receipts.insert(rc.seq, rc);
                        }
                    }
                    NodeEvent::Facts(facts) => {
                        for s in &facts.facts {
                            let v = s.verify(&f.hub.hub_id()).unwrap();
                            if let FactBody::ConfirmedBalance { balance, debt, .. } =
                                v.payload().body
                            {
                                balance_seen = Some((balance.get(), debt.get()));
                            }
                        }
                        cursor = facts.cursor;
                    }
                    NodeEvent::Welcomed(_) => states.clear(),
                    NodeEvent::ShardsListed(list) => {
                        for h in &list.shards {
                            buckets.insert(h.shard.clone(), h.buckets);
                        }
                        let plan = list
                            .shards
                            .iter()
                            .filter(|h| h.last_seq > 0)
                            .map(|h| h.shard.clone())
                            .collect();
                        node.provide_shard_plan(plan, now);
                    }
                    NodeEvent::ShardTurn {
                        shard,
                        received,
                        start,
                        ..
                    } => {
                        let doc = docs.entry(shard.clone()).or_default();
                        if start {
                            let fresh = states
                                .get(&shard)
                                .map(|s| SyncState::decode(&s.encode()).unwrap())
                                .unwrap_or_default();
                            states.insert(shard.clone(), fresh);
                        }
                        let state = states.entry(shard.clone()).or_default();
                        if let Some(m) = &received {
                            for key in doc.receive(state, m).unwrap() {
                                for v in doc.values(&key) {
                                    let fact = verify_item(
                                        &shard,
                                        buckets[&shard],
                                        &key,
                                        &v,
                                        &f.hub.hub_id(),
                                    )
                                    .unwrap();
                                    let p = fact.payload();
                                    if let FactBody::ConfirmedBalance { balance, debt, .. } = p.body
                                        && p.hub_seq > balance_seq
                                    {
                                        balance_seq = p.hub_seq;
                                        balance_seen = Some((balance.get(), debt.get()));
                                    }
                                }
                            }
                        }
                        node.provide_shard_message(doc.generate(state), now);
                    }
                    NodeEvent::ShardSynced(_) => {}
                    other => panic!("unexpected event {other:?}"),
                }
            }
            let Some(req) = node.poll_transmit() else {
                if node.is_caught_up() {
                    break;
                }
                node.handle_timeout(now.plus_ms(5_000));
                now = now.plus_ms(5_000);
                continue;
            };
            let resp = hub_side.handle_request(req.clone(), now, &mut f.hub);
            // Break the link once, after the hub applied the second push.
            if matches!(req, mykey_sync_proto::wire::Request::Push(_))
                && !dropped_one
                && f.hub.chain_head(&f.shop.id).unwrap().processed_seq >= 20
            {
                dropped_one = true;
                node.handle_disconnected();
                break;
            }
            node.handle_response(resp, now).unwrap();
        }
        if node.is_caught_up() && receipts.len() == outbox.len() {
            break;
        }
    }
    // The last pull may have preceded the last push: fetch what is left.
    let rest = f.hub.received_facts(&f.shop.id, cursor, 2000).unwrap();
    for s in &rest.facts {
        let v = s.verify(&f.hub.hub_id()).unwrap();
        if let FactBody::ConfirmedBalance { balance, debt, .. } = v.payload().body
            && v.payload().hub_seq > balance_seq
        {
            balance_seq = v.payload().hub_seq;
            balance_seen = Some((balance.get(), debt.get()));
        }
    }
    assert!(dropped_one);
    assert_eq!(receipts.len(), 25, "a receipt for every transaction");
    for (seq, tx) in (1..).zip(&outbox) {
        assert_eq!(
            receipts[&seq].tx, None,
            "acceptances travel without their id"
        );
        assert!(matches!(receipts[&seq].outcome, Outcome::Accepted { .. }));
        assert_eq!(f.hub.tx_applications(&tx.id()).unwrap(), 1);
    }
    let spent: u64 = (0..25).map(|i| 100 + i).sum();
    let b = f.hub.balance(f.alice, muni()).unwrap();
    assert_eq!(b.balance.get() + spent, 5_000 + b.debt.get());
    assert_eq!(balance_seen, Some((b.balance.get(), b.debt.get())));
    f.hub.check_conservation().unwrap();
}
