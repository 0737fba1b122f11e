//! In-process scenario: the real hub core and three real node cores, each on
//! its own SQLite files, linked through the sans-IO sessions and the real wire
//! encoding. Checks DESIGN §11 invariants 1, 2, 4 and 5.

use ed25519_dalek::SigningKey;
use mykey_node::node::{Lookup, OpError};
use mykey_node::rules::Decline;
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::{Outcome, RejectReason, Request};
use mykey_sync_proto::{
    FacilityCardNumber, FacilityId, NodeId, Points, Redeem, SignedTx, TxBody, TxId, TxPayload,
    UnixMillis,
};
use mykey_tests::harness::{self, sync};
use mykey_tests::world::{World, bunkyo, health, pts, volunteer};

const LIB: usize = 0;
const CC: usize = 1;
const STALL: usize = 2;

fn world() -> (tempfile::TempDir, World) {
    let dir = tempfile::tempdir().unwrap();
    let w = World::create(dir.path(), UnixMillis(1_750_000_000_000)).unwrap();
    (dir, w)
}

fn outbox_ids(node: &Node) -> Vec<TxId> {
    node.outbox_from(1, 10_000)
        .unwrap()
        .iter()
        .map(|t| t.id())
        .collect()
}

#[test]
fn offline_day_reconciles_with_invariants() {
    let (_dir, mut w) = world();
    let (hanako, taro) = (w.holders[0].account, w.holders[1].account);
    let (hanako_card, taro_card) = (w.holders[0].card.clone(), w.holders[1].card.clone());
    w.hub
        .admin_grant(hanako, &health(), pts(3000), w.now)
        .unwrap();
    w.sync_all().unwrap();

    // Online: the library links a card number, the centre grants points.
    let n = FacilityCardNumber::parse("LIB-0001").unwrap();
    w.sites[LIB]
        .node
        .link(&hanako_card, n.clone(), w.now)
        .unwrap();
    w.sites[CC]
        .node
        .grant(&taro_card, volunteer(), pts(500), w.now)
        .unwrap();
    w.sync_all().unwrap();
    match w.sites[LIB].node.lookup(&hanako_card).unwrap() {
        Lookup::Found { numbers, .. } => {
            assert_eq!(numbers.len(), 1);
            assert!(numbers[0].confirmed, "the hub confirmed the link");
        }
        other => panic!("{other:?}"),
    }
    // Only the library holds the library's numbers (DESIGN §9).
    match w.sites[STALL].node.lookup(&hanako_card).unwrap() {
        Lookup::Found { numbers, .. } => assert!(numbers.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.hub.balance(taro, bunkyo()).unwrap().balance, pts(500));

    // Outage: no syncs. Every node keeps serving from its cache.
    w.advance_ms(8 * 3600 * 1000);
    assert!(matches!(
        w.sites[LIB].node.lookup(&hanako_card).unwrap(),
        Lookup::Found { .. }
    ));
    // A cross-node double spend: both nodes see 3000 confirmed.
    w.sites[STALL]
        .node
        .redeem(&hanako_card, pts(1900), None, w.now)
        .unwrap();
    w.sites[CC]
        .node
        .redeem(&hanako_card, pts(1800), None, w.now)
        .unwrap();
    // Each node's own pending spend counts: the stall cannot go further.
    let e = w.sites[STALL]
        .node
        .redeem(&hanako_card, pts(1500), None, w.now)
        .unwrap_err();
    assert!(
        matches!(e, OpError::Declined(Decline::InsufficientBalance { .. })),
        "{e}"
    );
    let signed: Vec<(usize, Vec<TxId>)> =
        (0..3).map(|i| (i, outbox_ids(&w.sites[i].node))).collect();

    // Reconnect.
    w.advance_ms(60_000);
    w.sync_all().unwrap();
    w.sync_all().unwrap();

    // Invariant 2: every signed transaction applied exactly once, and every
    // node holds every receipt.
    for (i, ids) in &signed {
        for id in ids {
            assert_eq!(w.hub.tx_applications(id).unwrap(), 1, "site {i} tx {id:?}");
        }
        let s = w.sites[*i].node.status().unwrap();
        assert_eq!(s.outbox.pending, 0, "site {i}");
        assert_eq!(s.receipted_seq, s.last_seq);
    }
    // The hub honoured both spends: 3000 - 1900 - 1800 = 700 of debt.
    let b = w.hub.balance(hanako, bunkyo()).unwrap();
    assert_eq!((b.balance, b.debt), (pts(0), pts(700)));
    // Invariant 4: debt ≤ the sum of the per-card offline limits that allowed it.
    let bound = w.sites[STALL].policy.per_card_offline_limit.get()
        + w.sites[CC].policy.per_card_offline_limit.get();
    assert!(w.hub.total_debt().unwrap() <= bound);
    // Nodes learn the confirmed balance and debt.
    assert_eq!(
        w.sites[STALL].node.balance(hanako, bunkyo()).unwrap(),
        (pts(0), pts(700), pts(0))
    );
    // Invariant 1.
    w.hub.check_conservation().unwrap();

    // A later credit recovers the debt first.
    w.hub
        .admin_grant(hanako, &health(), pts(1000), w.now)
        .unwrap();
    let b = w.hub.balance(hanako, bunkyo()).unwrap();
    assert_eq!((b.balance, b.debt), (pts(300), pts(0)));
    w.hub.check_conservation().unwrap();
}

#[test]
fn replaying_a_push_changes_nothing() {
    let (_dir, mut w) = world();
    let card = w.holders[0].card.clone();
    w.hub
        .admin_grant(w.holders[0].account, &health(), pts(1000), w.now)
        .unwrap();
    w.sync_all().unwrap();
    for k in 0..5 {
        w.sites[STALL]
            .node
            .redeem(&card, pts(10 + k), None, w.now)
            .unwrap();
    }
    w.sync(STALL).unwrap();
    let totals = w.hub.ledger_totals().unwrap();
    // Push the same transactions again, as a node would after a lost answer.
    let txs = w.sites[STALL].node.outbox_from(1, 100).unwrap();
    let me = w.sites[STALL].node.id();
    let mut s = mykey_sync_proto::session::HubSession::new(me);
    let (last, _, cursor) = w.sites[STALL].node.sync_position().unwrap();
    let hello = Request::Hello(mykey_sync_proto::wire::Hello {
        node: me,
        node_time: w.now,
        last_seq: last,
        fact_cursor: cursor,
        software: "test".into(),
    });
    s.handle_request(hello, w.now, &mut w.hub);
    let again = s.handle_request(
        Request::Push(mykey_sync_proto::wire::Push { txs: txs.clone() }),
        w.now,
        &mut w.hub,
    );
    match again {
        mykey_sync_proto::wire::Response::Receipts(rr) => {
            let r = rr.expand(mykey_sync_proto::wire::MAX_PUSH_TXS).unwrap();
            assert_eq!(r.receipts.len(), 5);
            assert!(
                r.receipts
                    .iter()
                    .all(|x| matches!(x.outcome, Outcome::Accepted { .. }))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.hub.ledger_totals().unwrap(), totals, "no second effect");
    for t in &txs {
        assert_eq!(w.hub.tx_applications(&t.id()).unwrap(), 1);
    }
    // A session cut at every possible request resumes without loss or repeat.
    for k in 0..5 {
        w.sites[STALL]
            .node
            .redeem(&card, pts(1), None, w.now)
            .unwrap();
        let _ = harness::sync_with(&mut w.sites[STALL].node, &mut w.hub, w.now, |n| n == k + 2);
    }
    w.sync(STALL).unwrap();
    for t in w.sites[STALL].node.outbox_from(1, 100).unwrap() {
        assert_eq!(w.hub.tx_applications(&t.id()).unwrap(), 1);
    }
    assert_eq!(w.sites[STALL].node.status().unwrap().outbox.pending, 0);
    w.hub.check_conservation().unwrap();
}

#[test]
fn a_cut_inside_the_push_window_resends_and_applies_once() {
    let (_dir, mut w) = world();
    let card = w.holders[0].card.clone();
    let hanako = w.holders[0].account;
    w.hub
        .admin_grant(hanako, &health(), pts(1000), w.now)
        .unwrap();
    w.sync_all().unwrap();
    for _ in 0..30 {
        w.sites[STALL]
            .node
            .redeem(&card, pts(1), None, w.now)
            .unwrap();
    }
    let txs = w.sites[STALL].node.outbox_from(1, 100).unwrap();
    let config = mykey_sync_proto::session::NodeSessionConfig {
        batch_txs: 10,
        ..Default::default()
    };
    // Cut as the second push leaves: the first is applied at the hub, and
    // its receipts were not stored yet (the node sends the next push
    // before it writes them).
    let mut pushes = 0;
    harness::sync_cut(
        &mut w.sites[STALL].node,
        &mut w.hub,
        w.now,
        config,
        |_, req| {
            pushes += u32::from(matches!(req, Request::Push(_)));
            pushes == 2
        },
        |_, _| {},
    )
    .unwrap();
    let applied: Vec<u64> = txs
        .iter()
        .map(|t| w.hub.tx_applications(&t.id()).unwrap())
        .collect();
    assert_eq!(applied[..10], [1; 10], "the first push was applied");
    assert_eq!(applied[10..], [0; 20], "the second never arrived");
    let (_, receipted, _) = w.sites[STALL].node.sync_position().unwrap();
    assert_eq!(receipted, 0, "the cut fell inside the window");
    assert_eq!(w.sites[STALL].node.status().unwrap().outbox.pending, 30);
    w.sync(STALL).unwrap();
    for t in &txs {
        assert_eq!(w.hub.tx_applications(&t.id()).unwrap(), 1, "applied once");
    }
    assert_eq!(w.sites[STALL].node.status().unwrap().outbox.pending, 0);
    w.hub.check_conservation().unwrap();
}

#[test]
fn forged_unenrolled_and_out_of_chain_are_rejected_and_stored() {
    let (dir, mut w) = world();
    let card = w.holders[0].card.clone();
    let hanako = w.holders[0].account;
    w.hub
        .admin_grant(hanako, &health(), pts(1000), w.now)
        .unwrap();
    w.sync_all().unwrap();
    let totals = w.hub.ledger_totals().unwrap();
    let stall_id = w.sites[STALL].node.id();

    // A forged transaction claiming to be the stall, carried by the library.
    let rogue = SigningKey::from_bytes(&[0x66; 32]);
    let payload = TxPayload {
        node: stall_id,
        seq: 1,
        prev_hash: TxId::GENESIS,
        created_at: w.now,
        body: TxBody::Redeem(Redeem {
            card: card.clone(),
            account: hanako,
            municipality: bunkyo(),
            points: pts(999),
            merchant: FacilityId::parse("fest-stall-1").unwrap(),
            basis: None,
            card_proof: None,
        }),
    };
    let honest = SignedTx::sign(
        &TxPayload {
            node: NodeId::from_bytes(rogue.verifying_key().to_bytes()).unwrap(),
            ..payload.clone()
        },
        &rogue,
    );
    let forged = SignedTx::from_raw_parts(
        mykey_sync_proto::codec::encode(&payload),
        honest.signature_bytes(),
    );
    let lib_id = w.sites[LIB].node.id();
    let r = w.hub.ingest(&lib_id, vec![forged.clone()], w.now);
    assert!(matches!(
        r.receipts[0].outcome,
        Outcome::Rejected(RejectReason::BadSignature)
    ));
    // The carrier stores and shows the reason.
    w.sites[LIB].node.apply_receipts(&r, w.now).unwrap();
    assert_eq!(w.sites[LIB].node.status().unwrap().foreign_rejections, 1);

    // A validly signed transaction from a key the hub never enrolled.
    let r = w.hub.ingest(&lib_id, vec![honest], w.now);
    assert!(matches!(
        r.receipts[0].outcome,
        Outcome::Rejected(RejectReason::UnknownNode)
    ));
    // An unenrolled node's session is refused.
    let stranger = mykey_node::config::DataDir::new(dir.path().join("stranger"))
        .init(&mykey_node::config::NodeConfig {
            hub_key: w.hub.hub_id().to_string(),
            hub_addr: None,
        })
        .unwrap();
    let mut stranger = stranger;
    let e = sync(&mut stranger, &mut w.hub, w.now).unwrap_err();
    assert!(e.to_string().contains("not enrolled"), "{e}");

    // Out of chain: the stall's seq 2 arrives without seq 1 (a gap).
    w.sites[STALL]
        .node
        .redeem(&card, pts(10), None, w.now)
        .unwrap();
    w.sites[STALL]
        .node
        .redeem(&card, pts(20), None, w.now)
        .unwrap();
    let second = w.sites[STALL].node.outbox_from(2, 1).unwrap();
    let r = w.hub.ingest(&stall_id, second, w.now);
    assert!(matches!(
        r.receipts[0].outcome,
        Outcome::Rejected(RejectReason::ChainGap {
            expected: 1,
            got: 2
        })
    ));
    w.sites[STALL].node.apply_receipts(&r, w.now).unwrap();
    let s = w.sites[STALL].node.status().unwrap();
    assert_eq!(
        s.outbox.pending, 2,
        "a chain-level rejection consumes nothing"
    );
    assert!(
        s.troubled[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("chain gap")
    );
    // Nothing above changed a balance (invariant 5).
    assert_eq!(w.hub.ledger_totals().unwrap(), totals);
    // The honest chain still goes through.
    w.sync(STALL).unwrap();
    assert_eq!(w.sites[STALL].node.status().unwrap().outbox.accepted, 2);
    assert_eq!(
        w.hub.balance(hanako, bunkyo()).unwrap().balance,
        Points::new(970).unwrap()
    );
    w.hub.check_conservation().unwrap();
}

#[test]
fn suspension_reaches_nodes_and_is_refused() {
    let (_dir, mut w) = world();
    let card = w.holders[1].card.clone();
    w.hub
        .admin_grant(w.holders[1].account, &health(), pts(1000), w.now)
        .unwrap();
    w.sync_all().unwrap();
    w.hub.suspend_card(&card, w.now).unwrap();
    w.sync(STALL).unwrap();
    assert_eq!(
        w.sites[STALL].node.lookup(&card).unwrap(),
        Lookup::Suspended
    );
    let e = w.sites[STALL]
        .node
        .redeem(&card, pts(1), None, w.now)
        .unwrap_err();
    assert!(
        matches!(e, OpError::Declined(Decline::CardSuspended)),
        "{e}"
    );
}

#[test]
fn crash_right_after_done_is_delivered_on_restart() {
    let (_dir, mut w) = world();
    let card = w.holders[0].card.clone();
    let hanako = w.holders[0].account;
    w.hub
        .admin_grant(hanako, &health(), pts(1000), w.now)
        .unwrap();
    w.sync_all().unwrap();
    let site = w.sites.remove(STALL);
    let mut node = site.node;
    let done = node.redeem(&card, pts(250), None, w.now).unwrap();
    // The process dies right after reporting done: no shutdown, no sync.
    std::mem::forget(node);
    let dd = mykey_node::config::DataDir::new(&site.dir);
    let mut node = dd.open().unwrap();
    assert_eq!(node.outbox_from(1, 10).unwrap()[0].id(), done.tx);
    sync(&mut node, &mut w.hub, w.now).unwrap();
    assert_eq!(w.hub.tx_applications(&done.tx).unwrap(), 1);
    assert_eq!(w.hub.balance(hanako, bunkyo()).unwrap().balance, pts(750));
    let _ = NodeKey::from_secret([0; 32]);
}

#[test]
fn holders_and_nodes_see_upcoming_expiries() {
    use mykey_hub::economy::lots::ExpiryPolicy;
    let (_dir, mut w) = world();
    let (hanako, card) = (w.holders[0].account, w.holders[0].card.clone());
    w.hub
        .set_program_expiry(&health(), ExpiryPolicy::FiscalYearEnd { years: 0 })
        .unwrap();
    w.hub
        .admin_grant(hanako, &health(), pts(1200), w.now)
        .unwrap();
    assert_eq!(
        w.sites[STALL]
            .node
            .upcoming_expiry(hanako, bunkyo())
            .unwrap(),
        None,
        "nothing before a sync"
    );
    w.sync_all().unwrap();
    // Granted in June 2025: expires at 2026-04-01 00:00 JST.
    let (points, at) = w.sites[STALL]
        .node
        .upcoming_expiry(hanako, bunkyo())
        .unwrap()
        .expect("the stall learned the expiry");
    assert_eq!(
        mykey_node::expiry::line(points, at),
        "1200 pt expire on 2026-03-31"
    );
    // A spend at the stall shrinks the expiring lot.
    w.sites[STALL]
        .node
        .redeem(&card, pts(200), None, w.now)
        .unwrap();
    w.sync_all().unwrap();
    // The hub's economy tick (once a minute in `mykey-hub serve`) folds the
    // ingested spend into the lots and emits the new expiry.
    w.hub.economy_tick(w.now, 4).unwrap();
    w.sync_all().unwrap();
    for site in &w.sites {
        assert_eq!(
            site.node.upcoming_expiry(hanako, bunkyo()).unwrap(),
            Some((pts(1000), at)),
            "{}",
            site.name
        );
    }
}
