//! Strict mode end to end, in process: the real hub core and two real node
//! cores (the community centre and the festival stall, both taking points)
//! on their own SQLite files. Both are cut off from the hub; the centre
//! gives part of its right to the stall over the LAN message path
//! (`/mykey/lan/1` offer bytes into `accept_peer_txs`), both spend within
//! their rights and no more, then only the stall reaches the hub, carrying
//! the centre's transactions, and everything reconciles with zero debt.

use mykey_node::net::lan::LanRequest;
use mykey_node::node::OpError;
use mykey_node::rules::Decline;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::{Points, UnixMillis};
use mykey_tests::world::{World, bunkyo, health, pts};

const CC: usize = 1;
const STALL: usize = 2;

/// The centre's transactions from `from_seq`, through the LAN offer's bytes.
fn offer(w: &World, from: usize, from_seq: u64) -> Vec<mykey_sync_proto::SignedTx> {
    let txs = w.sites[from].node.outbox_from(from_seq, 500).unwrap();
    let bytes = LanRequest::Offer { txs }.encode();
    match LanRequest::decode(&bytes).unwrap() {
        LanRequest::Offer { txs } => txs,
        other => panic!("an offer decoded as {other:?}"),
    }
}

fn no_right(r: Result<mykey_node::Done, OpError>) -> (u64, u64) {
    match r {
        Err(OpError::Declined(Decline::NoRight { right, asked })) => (right.get(), asked.get()),
        other => panic!("expected a strict decline, got {other:?}"),
    }
}

#[test]
fn stalls_cut_off_from_the_hub_share_rights_and_never_overdraw() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::create(dir.path(), UnixMillis(1_750_000_000_000)).unwrap();
    let hanako = w.holders[0].account;
    let card = w.holders[0].card.clone();
    let m = bunkyo();
    w.hub
        .admin_grant(hanako, &health(), pts(1000), w.now)
        .unwrap();
    w.hub.set_strict_mode(m, true, w.now).unwrap();
    let (cc, stall) = (w.sites[CC].node.id(), w.sites[STALL].node.id());
    let g = w
        .hub
        .escrow_grant(m, &[cc, stall], Some(&[hanako]), w.now)
        .unwrap();
    assert_eq!(g.points, 1000);
    // The two may trust each other on the LAN: the hub's roster names them.
    let fest = mykey_sync_proto::LanGroup::parse("festival").unwrap();
    w.hub.set_lan_roster(m, &fest, &[cc, stall], w.now).unwrap();
    w.sync_all().unwrap();
    for s in [CC, STALL] {
        assert_eq!(w.sites[s].node.right(hanako, m).unwrap(), (pts(500), true));
        // The wallet's points are all reserved: nothing to spend outside rights.
        assert_eq!(w.sites[s].node.balance(hanako, m).unwrap().0, Points::ZERO);
    }

    // The WAN is gone for the rest of the day: no more syncs.
    w.advance_ms(60_000);
    w.sites[CC]
        .node
        .redeem(&card, pts(200), None, w.now)
        .unwrap();
    assert_eq!(
        no_right(w.sites[STALL].node.redeem(&card, pts(700), None, w.now)),
        (500, 700)
    );
    // The centre gives 200 of its right to the stall, on the LAN.
    w.sites[CC]
        .node
        .transfer_right(hanako, stall, pts(200), w.now)
        .unwrap();
    let txs = offer(&w, CC, 1);
    assert_eq!(w.sites[STALL].node.accept_peer_txs(&txs, w.now).unwrap(), 2);
    // A resent offer changes nothing.
    assert_eq!(w.sites[STALL].node.accept_peer_txs(&txs, w.now).unwrap(), 0);
    assert_eq!(w.sites[STALL].node.right(hanako, m).unwrap().0, pts(700));
    w.sites[STALL]
        .node
        .redeem(&card, pts(700), None, w.now)
        .unwrap();
    // The centre has 100 left, and not a point more.
    assert_eq!(
        no_right(w.sites[CC].node.redeem(&card, pts(101), None, w.now)),
        (100, 101)
    );
    w.sites[CC]
        .node
        .redeem(&card, pts(100), None, w.now)
        .unwrap();
    assert_eq!(
        no_right(w.sites[STALL].node.redeem(&card, pts(1), None, w.now)),
        (0, 1)
    );
    // The centre offers the rest of its chain; the stall holds all of it.
    let more = offer(&w, CC, 1);
    assert_eq!(
        w.sites[STALL].node.accept_peer_txs(&more, w.now).unwrap(),
        1
    );

    // At night only the stall reaches the hub: its own chain (the accepted
    // transfer, then its spend), then the centre's transactions it carries.
    w.advance_ms(8 * 3_600_000);
    w.sync(STALL).unwrap();
    let carried = w.sites[STALL].node.peer_txs_undelivered(500, 0).unwrap();
    assert_eq!(carried.len(), 3);
    let r = w.hub.ingest(&stall, carried, w.now);
    w.sites[STALL].node.apply_receipts(&r, w.now).unwrap();
    for rc in &r.receipts {
        assert!(
            matches!(rc.outcome, mykey_sync_proto::wire::Outcome::Accepted { debt_created, .. } if debt_created.is_zero()),
            "{rc:?}"
        );
    }
    assert_eq!(
        w.hub.total_debt().unwrap(),
        0,
        "no overdraft under the partition"
    );
    assert!(
        w.hub.escrow_status(m).unwrap().is_empty(),
        "every reserved point spent"
    );
    let b = w.hub.balance(hanako, m).unwrap();
    assert_eq!((b.balance.get(), b.debt.get()), (0, 0));
    w.hub.check_conservation().unwrap();

    // The centre comes back: its receipts are the stored verdicts, nothing
    // is applied twice, and both nodes agree with the hub.
    w.sync_all().unwrap();
    for s in [CC, STALL] {
        let st = w.sites[s].node.status().unwrap();
        assert_eq!(st.outbox.pending, 0);
        assert_eq!(st.outbox.rejected, 0);
        assert_eq!(
            w.sites[s].node.balance(hanako, m).unwrap(),
            (Points::ZERO, Points::ZERO, Points::ZERO)
        );
        assert_eq!(w.sites[s].node.right(hanako, m).unwrap().0, Points::ZERO);
    }
    // Ending the escrow returns nothing (all spent) and tells the nodes.
    let rel = w.hub.escrow_release(m, None, w.now).unwrap();
    assert_eq!((rel.rights, rel.points), (2, 0));
    w.sync_all().unwrap();
    w.hub.check_conservation().unwrap();
    assert_eq!(w.hub.total_debt().unwrap(), 0);
}
