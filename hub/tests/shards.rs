//! The hub's shard documents: derived from the fact log, rebuilt with the
//! same changes after a restart, synced only to the nodes entitled to them,
//! and compacted into a new epoch.

mod common;

use common::*;
use mykey_cache::{ShardDoc, SyncState};
use mykey_hub::Hub;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::shard::{ShardHead, ShardId, ShardScope, verify_item};
use mykey_sync_proto::wire::{Hello, MAX_SHARD_MESSAGE_BYTES, Refusal, ShardSync};
use mykey_sync_proto::{CardKey, FactBody, MyKeyId, NodeId, Scope, UnixMillis};

fn hello(node: NodeId) -> Hello {
    Hello {
        node,
        node_time: T0,
        last_seq: 0,
        fact_cursor: 0,
        software: "test".into(),
    }
}

/// Syncs one shard from the hub into `doc` as a node would; returns the
/// number of sync round trips.
fn pull_shard(hub: &mut Hub, node: NodeId, head: &ShardHead, doc: &mut ShardDoc) -> u32 {
    let mut state = SyncState::new();
    let mut hub_sent = true;
    let mut rounds = 0;
    loop {
        let m = doc.generate(&mut state);
        if m.is_none() && !hub_sent {
            return rounds;
        }
        rounds += 1;
        assert!(rounds < 20);
        let answer = hub
            .shard_sync(
                &node,
                ShardSync {
                    shard: head.shard.clone(),
                    epoch: head.epoch,
                    message: m,
                    start: rounds == 1,
                },
                T0,
            )
            .unwrap();
        hub_sent = answer.message.is_some();
        if let Some(r) = &answer.message {
            assert!(
                r.len() <= MAX_SHARD_MESSAGE_BYTES,
                "{}: a message of {} bytes",
                head.shard,
                r.len()
            );
        }
        if let Some(r) = answer.message {
            doc.receive(&mut state, &r).unwrap();
        }
    }
}

fn some_activity(f: &mut Fixture) {
    f.hub
        .admin_grant(f.alice, &program(), pts(500), T0.plus_ms(5))
        .unwrap();
    f.hub.suspend_card(&card(2), T0.plus_ms(6)).unwrap();
    let tx = f.library.sign(link(f.alice, "lib-1", "L-7"));
    let r = f.hub.ingest(&f.library.id, vec![tx], T0.plus_ms(7));
    assert!(r.receipts.len() == 1);
    let tx = f.shop.sign(redeem(f.alice, 1, 30));
    let r = f.hub.ingest(&f.shop.id, vec![tx], T0.plus_ms(8));
    assert!(r.receipts.len() == 1);
}

#[test]
fn shards_are_listed_deny_first_and_rebuilt_with_the_same_heads() {
    let mut f = Fixture::new();
    some_activity(&mut f);
    f.hub.open(&hello(f.library.id), T0).unwrap();
    let list = f.hub.shards(&f.library.id).unwrap();
    assert!(list.shards[0].shard.is_deny(), "{:?}", list.shards);
    let kinds: Vec<_> = list.shards.iter().map(|h| h.shard.scope.clone()).collect();
    assert!(kinds.contains(&ShardScope::Municipality(muni())));
    assert!(kinds.contains(&ShardScope::Facility(fid("lib-1"))));
    assert!(
        !kinds
            .iter()
            .any(|k| matches!(k, ShardScope::Facility(x) if *x != fid("lib-1")))
    );
    let mut heads = vec![];
    for h in &list.shards {
        assert!(h.last_seq > 0, "{h:?} holds something");
        heads.push(f.hub.shard_heads(&h.shard).unwrap());
    }
    // A node syncs every shard and reads back only genuine, placed facts.
    let mut docs = vec![];
    for h in &list.shards {
        let mut doc = ShardDoc::new();
        pull_shard(&mut f.hub, f.library.id, h, &mut doc);
        for k in doc.keys() {
            for v in doc.values(&k) {
                verify_item(&h.shard, h.buckets, &k, &v, &f.hub.hub_id()).unwrap();
            }
        }
        assert_eq!(doc.heads(), f.hub.shard_heads(&h.shard).unwrap());
        docs.push(doc);
    }
    // A restart: the hub rebuilds the same changes from its log.
    let db = f.db_path();
    drop(std::mem::replace(
        &mut f.hub,
        Hub::open(db.parent().unwrap()).unwrap(),
    ));
    for (h, before) in list.shards.iter().zip(&heads) {
        assert_eq!(&f.hub.shard_heads(&h.shard).unwrap(), before, "{}", h.shard);
    }
    // New writes after the restart merge into the node's copies: one round
    // brings only the new change.
    f.hub
        .admin_grant(f.alice, &program(), pts(1), T0.plus_ms(50))
        .unwrap();
    f.hub.open(&hello(f.library.id), T0).unwrap();
    let list2 = f.hub.shards(&f.library.id).unwrap();
    for (h, doc) in list2.shards.iter().zip(docs.iter_mut()) {
        pull_shard(&mut f.hub, f.library.id, h, doc);
        assert_eq!(doc.heads(), f.hub.shard_heads(&h.shard).unwrap());
    }
    // And the in-memory rebuild (drop_shard_docs) agrees with the restart.
    let after: Vec<_> = list2
        .shards
        .iter()
        .map(|h| f.hub.shard_heads(&h.shard).unwrap())
        .collect();
    f.hub.drop_shard_docs();
    for (h, a) in list2.shards.iter().zip(after) {
        assert_eq!(f.hub.shard_heads(&h.shard).unwrap(), a);
    }
}

#[test]
fn a_node_gets_only_its_own_shards() {
    let mut f = Fixture::new();
    some_activity(&mut f);
    f.hub.open(&hello(f.shop.id), T0).unwrap();
    // The shop may not sync the library's facility shard, nor another
    // municipality's shards.
    for shard in [
        ShardId {
            scope: ShardScope::Facility(fid("lib-1")),
            bucket: 0,
        },
        ShardId {
            scope: ShardScope::Municipality(other_muni()),
            bucket: 0,
        },
        ShardId {
            scope: ShardScope::Deny(muni()),
            bucket: 3,
        },
    ] {
        let r = f.hub.shard_sync(
            &f.shop.id,
            ShardSync {
                shard: shard.clone(),
                epoch: 0,
                message: Some(ShardDoc::new().generate(&mut SyncState::new()).unwrap()),
                start: true,
            },
            T0,
        );
        assert!(matches!(r, Err(Refusal::Protocol(_))), "{shard}: {r:?}");
    }
    // An unenrolled key gets nothing.
    let stranger = Chain::new(99).id;
    assert!(matches!(f.hub.shards(&stranger), Err(Refusal::NotEnrolled)));
    // The shop's own list has no facility shard holding card numbers.
    let list = f.hub.shards(&f.shop.id).unwrap();
    for h in &list.shards {
        let mut doc = ShardDoc::new();
        pull_shard(&mut f.hub, f.shop.id, h, &mut doc);
        for k in doc.keys() {
            for v in doc.values(&k) {
                let fact = verify_item(&h.shard, h.buckets, &k, &v, &f.hub.hub_id()).unwrap();
                assert!(!matches!(
                    fact.payload().body,
                    FactBody::FacilityCard { .. }
                ));
            }
        }
    }
    // Log facts no longer carry what the shards do.
    let log = f.hub.facts(&f.shop.id, 0, 2000, u64::MAX);
    for s in &log.facts {
        let v = s.verify(&f.hub.hub_id()).unwrap();
        assert!(mykey_sync_proto::shard::item_of(v.payload()).is_none());
    }
}

#[test]
fn unenrolled_and_revoked_nodes_are_refused_both_the_list_and_the_sync() {
    let mut f = Fixture::new();
    some_activity(&mut f);
    let head = f.hub.shards(&f.shop.id).unwrap().shards[0].clone();
    let sync = || ShardSync {
        shard: head.shard.clone(),
        epoch: head.epoch,
        message: None,
        start: true,
    };
    let stranger = Chain::new(99).id;
    assert_eq!(
        f.hub.shard_list(&stranger).unwrap(),
        Err(Refusal::NotEnrolled)
    );
    assert_eq!(
        f.hub.sync_shard(&stranger, sync()).unwrap(),
        Err(Refusal::NotEnrolled)
    );
    assert!(f.hub.sync_shard(&f.shop.id, sync()).unwrap().is_ok());
    f.hub.revoke_node(f.shop.id, T0.plus_ms(9)).unwrap();
    assert_eq!(f.hub.shard_list(&f.shop.id).unwrap(), Err(Refusal::Revoked));
    assert_eq!(
        f.hub.sync_shard(&f.shop.id, sync()).unwrap(),
        Err(Refusal::Revoked)
    );
}

#[test]
fn compaction_starts_a_new_epoch_with_the_latest_items() {
    let mut f = Fixture::new();
    some_activity(&mut f);
    for i in 0..5 {
        f.hub
            .admin_grant(f.alice, &program(), pts(1), T0.plus_ms(100 + i))
            .unwrap();
    }
    f.hub.open(&hello(f.shop.id), T0).unwrap();
    let old = f.hub.shards(&f.shop.id).unwrap();
    let muni_shard = old
        .shards
        .iter()
        .find(|h| h.shard.scope == ShardScope::Municipality(muni()))
        .unwrap()
        .clone();
    let (_, old_items) = f.hub.shard_items(&muni_shard.shard).unwrap();
    let mut old_doc = ShardDoc::new();
    pull_shard(&mut f.hub, f.shop.id, &muni_shard, &mut old_doc);
    let old_bytes = old_doc.save().len();

    assert!(f.hub.compact_shards(UnixMillis(T0.0 + 1000)).unwrap() >= 2);
    let new = f.hub.shards(&f.shop.id).unwrap();
    // Scopes with items move to epoch 1 (the shop's facility has none).
    for h in &new.shards {
        let want = u32::from(!matches!(h.shard.scope, ShardScope::Facility(_)));
        assert_eq!(h.epoch, want, "{}", h.shard);
    }
    let h = new
        .shards
        .iter()
        .find(|h| h.shard == muni_shard.shard)
        .unwrap();
    let (epoch, items) = f.hub.shard_items(&h.shard).unwrap();
    assert_eq!(epoch, 1);
    assert_eq!(items, old_items, "the same latest item per key");
    let mut doc = ShardDoc::new();
    pull_shard(&mut f.hub, f.shop.id, h, &mut doc);
    assert!(doc.save().len() < old_bytes, "history is gone");
    // An old-epoch request is answered with the current epoch, nothing else.
    let r = f
        .hub
        .shard_sync(
            &f.shop.id,
            ShardSync {
                shard: muni_shard.shard.clone(),
                epoch: 0,
                message: None,
                start: true,
            },
            T0,
        )
        .unwrap();
    assert_eq!((r.epoch, r.message), (1, None));
    // The new epoch is rebuilt identically too.
    let heads = f.hub.shard_heads(&h.shard).unwrap();
    f.hub.drop_shard_docs();
    assert_eq!(f.hub.shard_heads(&h.shard).unwrap(), heads);
}

#[test]
fn the_cli_starts_a_new_epoch() {
    let mut f = Fixture::new();
    some_activity(&mut f);
    let data = f.db_path().parent().unwrap().to_owned();
    drop(std::mem::replace(&mut f.hub, Hub::open(&data).unwrap()));
    let out = ok(&data, &["shards", "compact"]);
    assert!(out.contains("started a new shard epoch for"), "{out}");
    let mut hub = Hub::open(&data).unwrap();
    hub.open(&hello(f.shop.id), T0).unwrap();
    let list = hub.shards(&f.shop.id).unwrap();
    assert!(list.shards.iter().any(|h| h.epoch == 1), "{list:?}");
}

/// Registers `n` more cards in the fixture's municipality (card bytes 10..).
fn register_cards(f: &mut Fixture, n: u8) -> Vec<CardKey> {
    (0..n)
        .map(|i| {
            let c = card(10 + i);
            let id = MyKeyId::parse(&format!("Holder{i}")).unwrap();
            f.hub
                .register_account(&id, muni(), &c, T0.plus_ms(10 + u64::from(i)))
                .unwrap();
            c
        })
        .collect()
}

/// Syncs every shard of the shop's list into fresh documents and returns the
/// cards the municipality shards hold a registration of; every item is
/// checked by the read rule, and each shard's item count is returned too.
fn sync_all(f: &mut Fixture) -> (Vec<CardKey>, Vec<(ShardHead, usize)>) {
    f.hub.open(&hello(f.shop.id), T0).unwrap();
    let list = f.hub.shards(&f.shop.id).unwrap();
    let mut cards = vec![];
    let mut sizes = vec![];
    for h in &list.shards {
        let mut doc = ShardDoc::new();
        pull_shard(&mut f.hub, f.shop.id, h, &mut doc);
        assert_eq!(doc.heads(), f.hub.shard_heads(&h.shard).unwrap());
        let keys = doc.keys();
        for k in &keys {
            for v in doc.values(k) {
                let fact = verify_item(&h.shard, h.buckets, k, &v, &f.hub.hub_id()).unwrap();
                if let FactBody::CardRegistered { card, .. } = &fact.payload().body {
                    cards.push(card.clone());
                }
            }
        }
        sizes.push((h.clone(), keys.len()));
    }
    (cards, sizes)
}

#[test]
fn a_shard_past_twice_the_target_gets_a_new_epoch_on_the_tick() {
    let mut f = Fixture::new();
    let target = 8;
    f.hub.set_shard_target(target);
    // Within bounds (two cards, a few balances): the tick leaves epoch 0.
    some_activity(&mut f);
    assert_eq!(f.hub.shard_tick(T0.plus_ms(1)).unwrap(), vec![]);
    let mut cards = register_cards(&mut f, 60);
    cards.extend([card(1), card(2)]);
    let (_, before) = sync_all(&mut f);
    let muni_shard = |h: &ShardHead| h.shard.scope == ShardScope::Municipality(muni());
    let (h0, n0) = before.iter().find(|(h, _)| muni_shard(h)).unwrap();
    assert_eq!((h0.epoch, h0.buckets), (0, 1));
    assert!(*n0 as u64 > 2 * target, "{n0} items");

    let started = f.hub.shard_tick(UnixMillis(T0.0 + 1000)).unwrap();
    // The other town's shard holds the same registrations (as visitors'
    // cards), so it grew past the target too.
    let mut scopes: Vec<_> = started.iter().map(|e| e.scope.clone()).collect();
    scopes.sort_by_key(|s| format!("{s:?}"));
    let mut want = vec![
        Scope::Municipality(muni()),
        Scope::Municipality(other_muni()),
    ];
    want.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(scopes, want, "{started:?}");
    let e = started
        .iter()
        .find(|e| e.scope == Scope::Municipality(muni()))
        .unwrap();
    assert_eq!(e.epoch, 1);
    assert!(e.largest_shard_items > 2 * target, "{e:?}");
    assert!(e.buckets >= 8, "about {target} items per shard: {e:?}");

    // A node syncs every shard of the new epoch, each message within the
    // bound, each shard within twice the target, and finds every card.
    let (mut found, after) = sync_all(&mut f);
    for (h, n) in &after {
        if muni_shard(h) {
            assert_eq!((h.epoch, h.buckets), (1, e.buckets));
            assert!(*n as u64 <= 2 * target, "{}: {n} items", h.shard);
        }
    }
    assert_eq!(
        after.iter().filter(|(h, _)| muni_shard(h)).count(),
        usize::from(e.buckets)
    );
    found.sort();
    cards.sort();
    assert_eq!(found, cards, "every registered card, once");

    // No churn: shards within bounds keep their epoch, tick after tick, and
    // after a restart (which looks at every scope again).
    assert_eq!(f.hub.shard_tick(UnixMillis(T0.0 + 2000)).unwrap(), vec![]);
    f.hub
        .admin_grant(f.alice, &program(), pts(1), T0.plus_ms(3000))
        .unwrap();
    assert_eq!(f.hub.shard_tick(UnixMillis(T0.0 + 4000)).unwrap(), vec![]);
    let data = f.db_path().parent().unwrap().to_owned();
    drop(std::mem::replace(&mut f.hub, Hub::open(&data).unwrap()));
    f.hub.set_shard_target(target);
    assert_eq!(f.hub.shard_tick(UnixMillis(T0.0 + 5000)).unwrap(), vec![]);
    let (_, again) = sync_all(&mut f);
    assert!(again.iter().all(|(h, _)| !muni_shard(h) || h.epoch == 1));
}

#[test]
fn the_tick_leaves_shards_within_bounds_alone() {
    let mut f = Fixture::new();
    some_activity(&mut f);
    register_cards(&mut f, 30);
    // The default target (10k) is far away: no epoch, however often it runs.
    for i in 0..3 {
        assert_eq!(f.hub.shard_tick(T0.plus_ms(100 + i)).unwrap(), vec![]);
    }
    // A shard of n items, with a target of n / 2 rounded up, is still within
    // twice the target.
    let (_, sizes) = sync_all(&mut f);
    let (_, n) = sizes
        .iter()
        .find(|(h, _)| h.shard.scope == ShardScope::Municipality(muni()))
        .unwrap();
    assert!(*n > 30, "{n} items");
    f.hub.set_shard_target((*n as u64).div_ceil(2));
    assert_eq!(f.hub.shard_tick(T0.plus_ms(200)).unwrap(), vec![]);
    // A restart looks at every scope again, and starts nothing either.
    let data = f.db_path().parent().unwrap().to_owned();
    drop(std::mem::replace(&mut f.hub, Hub::open(&data).unwrap()));
    f.hub.set_shard_target((*n as u64).div_ceil(2));
    assert_eq!(f.hub.shard_tick(T0.plus_ms(300)).unwrap(), vec![]);
    let (_, sizes) = sync_all(&mut f);
    assert!(sizes.iter().all(|(h, _)| h.epoch == 0), "{sizes:?}");
}
