//! The replicated cache at a real node: shards synced from the real hub into
//! the node's SQLite store, the read rule against a rogue peer (forged,
//! moved and rolled-back items), a restart that replays nothing, and an
//! epoch switch that leaves lookups unchanged and drops the old document, and
//! the automatic epoch of a municipality whose shard outgrew its target.

use ed25519_dalek::SigningKey;
use mykey_cache::{ShardDoc, SyncState};
use mykey_node::Node;
use mykey_node::node::Lookup;
use mykey_sync_proto::shard::{ShardId, ShardScope, placement};
use mykey_sync_proto::{FactBody, FactPayload, NodeId, SignedFact, UnixMillis};
use mykey_tests::world::{World, bunkyo, health, pts};

const STALL: usize = 2;

fn world() -> (tempfile::TempDir, World) {
    let dir = tempfile::tempdir().unwrap();
    let w = World::create(dir.path(), UnixMillis(1_750_000_000_000)).unwrap();
    (dir, w)
}

fn muni_shard() -> ShardId {
    ShardId {
        scope: ShardScope::Municipality(bunkyo()),
        bucket: 0,
    }
}

/// Runs a sync exchange between `rogue` (a LAN peer's document) and the
/// node; returns (applied, refused).
fn exchange(
    node: &mut Node,
    peer: NodeId,
    rogue: &mut ShardDoc,
    shard: &ShardId,
) -> (usize, usize) {
    let mut rs = SyncState::new();
    let (mut applied, mut refused) = (0, 0);
    let mut msg = rogue.generate(&mut rs);
    for i in 0..20 {
        let (answer, got) = node
            .shard_turn(&peer, shard, 0, msg.as_deref(), i == 0)
            .unwrap();
        applied += got.applied;
        refused += got.refused;
        if let Some(a) = &answer {
            rogue.receive(&mut rs, a).unwrap();
        }
        msg = rogue.generate(&mut rs);
        if msg.is_none() && answer.is_none() {
            return (applied, refused);
        }
    }
    panic!("exchange did not end");
}

#[test]
fn a_rogue_peer_cannot_forge_move_or_roll_back_items() {
    let (_dir, mut w) = world();
    let hanako = w.holders[0].account;
    w.hub
        .admin_grant(hanako, &health(), pts(1000), w.now)
        .unwrap();
    let old_fact = w
        .hub
        .received_facts(&w.sites[STALL].node.id(), 0, 2000)
        .unwrap()
        .facts
        .into_iter()
        .rev()
        .find(|f| {
            matches!(
                f.verify(&w.hub.hub_id()).unwrap().payload().body,
                FactBody::ConfirmedBalance { .. }
            )
        })
        .unwrap();
    w.hub
        .admin_grant(hanako, &health(), pts(500), w.now)
        .unwrap();
    let r = w.sync(STALL).unwrap();
    assert!(
        r.facts >= 3,
        "registrations and balances came through shards: {r:?}"
    );
    let node = &mut w.sites[STALL].node;
    assert_eq!(node.balance(hanako, bunkyo()).unwrap().0, pts(1500));

    // The rogue's document: the older genuine balance under its own key
    // (a rollback), a forged balance, and a genuine fact under another key.
    let old = old_fact.verify(&w.hub.hub_id()).unwrap();
    let (shard, key) = placement(old.payload(), 1).unwrap();
    assert_eq!(shard, muni_shard());
    let mut forged_payload: FactPayload = old.payload().clone();
    forged_payload.hub_seq += 1_000;
    if let FactBody::ConfirmedBalance { balance, .. } = &mut forged_payload.body {
        *balance = pts(999_999);
    }
    let forged = SignedFact::sign(&forged_payload, &SigningKey::from_bytes(&[66; 32]));
    let mut rogue = ShardDoc::new();
    let old_bytes = old_fact.to_bytes();
    let forged_bytes = forged.to_bytes();
    rogue.put_batch(
        [
            (key.as_str(), old_bytes.as_slice()),
            ("bal/A999/131059", forged_bytes.as_slice()),
            ("reg/00", old_bytes.as_slice()),
        ],
        1,
    );
    let peer =
        NodeId::from_bytes(SigningKey::from_bytes(&[67; 32]).verifying_key().to_bytes()).unwrap();
    let (applied, refused) = exchange(node, peer, &mut rogue, &shard);
    assert_eq!(applied, 0, "nothing the rogue sent changed a row");
    assert_eq!(refused, 2, "the forged and the moved item");
    assert_eq!(node.balance(hanako, bunkyo()).unwrap().0, pts(1500));
    // The node still syncs with the hub afterwards.
    w.hub.admin_grant(hanako, &health(), pts(1), w.now).unwrap();
    w.sync(STALL).unwrap();
    assert_eq!(
        w.sites[STALL].node.balance(hanako, bunkyo()).unwrap().0,
        pts(1501)
    );
}

#[test]
fn a_restart_replays_nothing_and_an_epoch_switch_keeps_lookups() {
    let (_dir, mut w) = world();
    let hanako = w.holders[0].account;
    let taro_card = w.holders[1].card.clone();
    w.hub
        .admin_grant(hanako, &health(), pts(700), w.now)
        .unwrap();
    w.hub.suspend_card(&taro_card, w.now).unwrap();
    w.sync_all().unwrap();
    let site = w.sites.remove(STALL);
    let lookups = |n: &Node| {
        (
            n.lookup(&w.holders[0].card).unwrap(),
            n.lookup(&taro_card).unwrap(),
            n.balance(hanako, bunkyo()).unwrap(),
        )
    };
    let before = lookups(&site.node);
    assert_eq!(before.1, Lookup::Suspended);
    assert!(matches!(before.0, Lookup::Found { .. }));
    // Restart: the documents load from SQLite, a new sync moves no items.
    drop(site.node);
    let mut node = mykey_node::config::DataDir::new(&site.dir).open().unwrap();
    let r = mykey_tests::harness::sync(&mut node, &mut w.hub, w.now).unwrap();
    assert_eq!(r.facts, 0, "{r:?}");
    assert_eq!(lookups(&node), before);
    assert_eq!(node.shard_doc_epochs(&muni_shard()).unwrap(), vec![0]);

    // Compaction: the node syncs epoch 1, serves the same answers, and
    // drops epoch 0.
    w.hub.compact_shards(w.now).unwrap();
    let r = mykey_tests::harness::sync(&mut node, &mut w.hub, w.now).unwrap();
    assert_eq!(r.facts, 0, "same facts, nothing to apply again: {r:?}");
    assert_eq!(lookups(&node), before);
    assert_eq!(node.shard_doc_epochs(&muni_shard()).unwrap(), vec![1]);
    let held = node.held_shards().unwrap();
    assert!(
        held.iter()
            .filter(|(s, _)| !matches!(s.scope, ShardScope::Facility(_)))
            .all(|(_, h)| h.epoch == 1),
        "{held:?}"
    );
    // And new writes after the switch arrive.
    w.hub.admin_grant(hanako, &health(), pts(3), w.now).unwrap();
    mykey_tests::harness::sync(&mut node, &mut w.hub, w.now).unwrap();
    assert_eq!(node.balance(hanako, bunkyo()).unwrap().0, pts(703));
}

#[test]
fn a_municipality_past_twice_the_target_is_split_and_every_card_is_found() {
    let (_dir, mut w) = world();
    let target = 8;
    w.hub.set_shard_target(target);
    let cards: Vec<_> = (0..60u8)
        .map(|i| mykey_sync_proto::CardKey::new(vec![0x30, 0x0c, i], vec![i, 0x77]).unwrap())
        .collect();
    for (i, c) in cards.iter().enumerate() {
        let id = mykey_sync_proto::MyKeyId::parse(&format!("Many{i}")).unwrap();
        w.hub.register_account(&id, bunkyo(), c, w.now).unwrap();
    }
    w.sync(STALL).unwrap();
    assert_eq!(
        w.sites[STALL].node.shard_doc_epochs(&muni_shard()).unwrap(),
        vec![0]
    );
    // The serving loop's tick: one shard holds far more than twice the
    // target, so the municipality gets a new epoch with more buckets.
    let started = w.hub.shard_tick(w.now).unwrap();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(
        started[0].scope,
        mykey_sync_proto::Scope::Municipality(bunkyo())
    );
    let buckets = started[0].buckets;
    assert!(buckets >= 8, "{started:?}");
    // The node switches on its own (every message within the wire bound,
    // or the sync would be refused) and finds every card.
    // Cards registered after the split live only in the new epoch's shards.
    let mut cards = cards;
    for i in 60..70u8 {
        let c = mykey_sync_proto::CardKey::new(vec![0x30, 0x0c, i], vec![i, 0x77]).unwrap();
        let id = mykey_sync_proto::MyKeyId::parse(&format!("Many{i}")).unwrap();
        w.hub.register_account(&id, bunkyo(), &c, w.now).unwrap();
        cards.push(c);
    }
    let node = &mut w.sites[STALL].node;
    mykey_tests::harness::sync(node, &mut w.hub, w.now).unwrap();
    let held = node.held_shards().unwrap();
    let muni_held: Vec<_> = held
        .iter()
        .filter(|(s, _)| s.scope == ShardScope::Municipality(bunkyo()))
        .collect();
    assert_eq!(muni_held.len(), usize::from(buckets), "{held:?}");
    assert!(muni_held.iter().all(|(_, h)| h.epoch == 1), "{held:?}");
    for c in &cards {
        assert!(
            matches!(node.lookup(c).unwrap(), Lookup::Found { .. }),
            "a card not found after the split"
        );
    }
    // Within bounds now: the next ticks start nothing.
    assert_eq!(w.hub.shard_tick(w.now).unwrap(), vec![]);
    assert_eq!(w.hub.shard_tick(w.now).unwrap(), vec![]);
}
