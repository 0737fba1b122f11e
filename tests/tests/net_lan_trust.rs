//! LAN trust with the real binaries on 127.0.0.1 (DESIGN §6): a stall
//! admits LAN peers only from the hub's roster. A node whose key the hub
//! never enrolled, and an enrolled node that is not on the roster, each with
//! its own store edited to believe it may talk to the stall (the one also
//! that it holds a 1,000,000 pt spend right), connect to the stall with
//! `--peer`, give it the right and send it pending spends: nothing is
//! credited, no holder is frozen, nothing is carried to the hub. Stalls on a
//! roster still move rights on the LAN; a roster issued or ended while they
//! run takes effect without a restart.

mod net_common;

use ed25519_dalek::SigningKey;
use mykey_node::config::DataDir;
use mykey_node::store::CardRow;
use mykey_sync_proto::{
    FacilityId, FactBody, FactPayload, LanGroup, MyKeyId, NodeId, NodeLimits, OpKind, Roster,
    Scope, SignedFact, UnixMillis, codec,
};
use net_common::*;
use std::path::Path;
use std::time::Duration;

fn fast_net(dir: &Path) {
    write_net_toml(
        dir,
        "backoff_base_ms = 50\nbackoff_cap_ms = 300\ngossip_ms = 100\nrelay_interval_ms = 300\n",
    );
}

/// Edits a node's own store so that it believes a roster names it and
/// `stall`, and (for an unenrolled key) that it is a strict-mode stall of
/// Bunkyo-ku holding a `right_points` spend right on the first holder,
/// granted by a "hub" that is really a key of its own making.
fn edit_store(dir: &Path, w: &World, stall: NodeId, right_points: Option<u64>) {
    let mut node = DataDir::new(dir).open().unwrap();
    let me = node.id();
    let m = bunkyo();
    let acct = w.holders[0].1;
    node.store_mut()
        .write(|wr| {
            let roster = Roster::new(vec![me, stall]).unwrap();
            wr.put_roster(m, &LanGroup::parse("my-own").unwrap(), &roster, 1_000_000)?;
            if let Some(points) = right_points {
                let limits = NodeLimits {
                    node: me,
                    facility: FacilityId::parse("no-such-stall").unwrap(),
                    municipality: m,
                    allowed_ops: vec![OpKind::Redeem],
                    per_card_offline_limit: pts(10_000_000),
                    node_exposure_limit: pts(10_000_000),
                    pin_threshold: pts(10_000_000),
                    valid_until: now().plus_ms(86_400_000),
                };
                wr.set_meta("limits", &codec::encode(&limits))?;
                wr.set_strict(m, true)?;
                for (i, (card, a)) in w.holders.iter().enumerate() {
                    wr.put_card(
                        card,
                        &CardRow {
                            account: *a,
                            my_key_id: MyKeyId::parse(&format!("holder{i}")).unwrap(),
                            municipality: m,
                        },
                    )?;
                    wr.put_balance(*a, m, pts(START_POINTS), pts(0), 1)?;
                }
                wr.credit_right(acct, m, pts(points), 77)?;
                wr.credit_right(w.holders[1].1, m, pts(points), 78)?;
                let forged = SignedFact::sign(
                    &FactPayload {
                        hub_seq: 1,
                        issued_at: UnixMillis(1),
                        scope: Scope::Node(me),
                        body: FactBody::SpendRight {
                            account: acct,
                            municipality: m,
                            node: me,
                            right_id: 77,
                            points: pts(points),
                        },
                    },
                    &SigningKey::from_bytes(&[0x5a; 32]),
                );
                wr.put_right_grant(77, acct, m, &forged)?;
            }
            Ok::<_, mykey_node::store::StoreError>(())
        })
        .unwrap();
}

/// (pending spends counted, right) on the first holder, as the node sees it.
fn view(dir: &Path, w: &World) -> (u64, u64) {
    let n = DataDir::new(dir).open().unwrap();
    let (_, _, pending) = n.balance(w.holders[0].1, bunkyo()).unwrap();
    (
        pending.get(),
        n.right(w.holders[0].1, bunkyo()).unwrap().0.get(),
    )
}

fn times(text: &str, what: &str) -> usize {
    text.matches(what).count()
}

#[test]
fn an_unenrolled_or_off_roster_peer_gets_no_right_credited_no_holder_frozen_nothing_carried() {
    // A and B are on the festival roster; C is enrolled but not on it.
    let w = World::create_with_roster(&std::env::temp_dir(), 3, 2, 2);
    let (a_dir, c_dir) = (&w.nodes[0], &w.nodes[2]);
    let s_dir = w.stranger();
    for d in [a_dir, c_dir, &s_dir] {
        fast_net(d);
    }
    let a_id = w.node_ids[0];
    let (mut hub, hub_addr) = start_hub(&w.hub_dir, 0);
    let (mut a, a_addr) = start_node_at("A", a_dir, Some(&hub_addr), &[]);
    let mut c = start_node("C", c_dir, Some(&hub_addr), &[]);
    for d in [a_dir, c_dir] {
        wait_until("first sync", Duration::from_secs(30), || caught_up(d));
    }
    assert!(c.terminate().success());

    // The stranger: a 2,000,000 pt "right" in its own store, of which it
    // spends 900,000 on each holder and gives A 1,000,000.
    edit_store(&s_dir, &w, a_id, Some(2_000_000));
    let card0 = card_arg(&w.holders[0].0);
    let card1 = card_arg(&w.holders[1].0);
    let acct0 = w.holders[0].1.get().to_string();
    for c in [&card0, &card1] {
        let out = node_cli(&s_dir, &["redeem", "--card", c, "--points", "900000"]);
        assert!(out.starts_with("redeemed"), "{out}");
    }
    let out = node_cli(
        &s_dir,
        &[
            "give-right",
            "--account",
            &acct0,
            "--to",
            &a_id.to_string(),
            "--points",
            "1000000",
        ],
    );
    assert!(out.starts_with("signed: 1000000 pt"), "{out}");
    // C, enrolled but off the roster, spends 900,000 of the first holder's
    // points offline and believes A is its LAN peer.
    edit_store(c_dir, &w, a_id, None);
    let out = node_cli(c_dir, &["redeem", "--card", &card0, "--points", "900000"]);
    assert!(out.starts_with("redeemed"), "{out}");

    let s = start_node("stranger", &s_dir, None, &["--peer", &a_addr]);
    let c = start_node("C (off roster)", c_dir, None, &["--peer", &a_addr]);
    let (s_id, c_id) = (DataDir::new(&s_dir).open().unwrap().id(), w.node_ids[2]);
    // Each connects again and again (and would offer its chain each time).
    wait_until(
        "the peers to try A repeatedly",
        Duration::from_secs(30),
        || {
            times(&s.stderr(), "LAN peer connected") >= 3
                && times(&c.stderr(), "LAN peer connected") >= 3
        },
    );
    let log = a.stderr();
    for id in [s_id, c_id] {
        let refused = log
            .lines()
            .filter(|l| l.contains("refused LAN peer") && l.contains(&id.short()))
            .collect::<Vec<_>>();
        assert!(
            !refused.is_empty() && refused[0].contains("no LAN roster from the hub names both"),
            "A logs why it refused {}: {log}",
            id.short()
        );
    }
    assert!(!log.contains("LAN peer connected"), "{log}");
    assert!(!log.contains("right received on the LAN"), "{log}");
    // Nothing of theirs reached A's store.
    {
        let n = DataDir::new(a_dir).open().unwrap();
        assert_eq!(n.peer_have_through(&s_id).unwrap(), 0);
        assert_eq!(n.peer_have_through(&c_id).unwrap(), 0);
        assert!(n.peer_txs_undelivered(500, 0).unwrap().is_empty());
    }
    assert_eq!(
        view(a_dir, &w),
        (0, 0),
        "no pending spend counted, no right credited"
    );

    // The holder is not frozen: A takes the whole balance, and delivers it.
    let out = node_cli(a_dir, &["redeem", "--card", &card0, "--points", "1000000"]);
    assert!(out.starts_with("redeemed"), "{out}");
    wait_until("A to deliver its spend", Duration::from_secs(30), || {
        caught_up(a_dir)
    });
    assert!(!a.stderr().contains("delivered LAN peers' transactions"));
    drop((s, c));
    assert!(a.terminate().success());
    assert!(hub.terminate().success());
    // The hub never saw the stranger's or C's transactions.
    let mut h = w.open_hub();
    assert_eq!(h.chain_head(&c_id).unwrap().processed_seq, 0);
    assert_eq!(h.chain_head(&s_id).unwrap().processed_seq, 0);
    for dir in [&s_dir, c_dir] {
        let n = DataDir::new(dir).open().unwrap();
        for tx in n.outbox_from(1, 10).unwrap() {
            assert_eq!(h.tx_applications(&tx.id()).unwrap(), 0);
        }
    }
    let bal = h.balance(w.holders[0].1, bunkyo()).unwrap();
    assert_eq!((bal.balance.get(), bal.debt.get()), (0, 0));
}

#[test]
fn rostered_stalls_move_rights_and_rosters_take_effect_without_a_restart() {
    // No roster yet; strict mode, each stall holds half of the holder's points.
    let w = World::create_with_roster(&std::env::temp_dir(), 2, 1, 0);
    let (a_dir, b_dir) = (&w.nodes[0], &w.nodes[1]);
    for d in [a_dir, b_dir] {
        fast_net(d);
    }
    let (a_id, b_id) = (w.node_ids[0].to_string(), w.node_ids[1].to_string());
    hub_cli(
        &w.hub_dir,
        &["municipality", "strict", "--code", "131059", "--on"],
    );
    let nodes = format!("{a_id},{b_id}");
    hub_cli(
        &w.hub_dir,
        &[
            "escrow",
            "grant",
            "--municipality",
            "131059",
            "--nodes",
            &nodes,
            "--all",
        ],
    );
    let (mut hub, hub_addr) = start_hub(&w.hub_dir, 0);
    let (mut a, a_addr) = start_node_at("A", a_dir, Some(&hub_addr), &[]);
    let mut b = start_node("B", b_dir, Some(&hub_addr), &["--peer", &a_addr]);
    let acct = w.holders[0].1.get().to_string();
    for d in [a_dir, b_dir] {
        wait_until("rights to arrive", Duration::from_secs(30), || {
            caught_up(d)
                && node_cli(d, &["right", "--account", &acct]).contains("may spend 500000 pt")
        });
    }
    wait_until("A to refuse B: no roster", Duration::from_secs(30), || {
        a.stderr().contains("refused LAN peer")
    });
    assert!(!a.stderr().contains("LAN peer connected"));

    // The operator issues the festival's roster while everything runs.
    let out = hub_cli(
        &w.hub_dir,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "festival",
            "--nodes",
            &nodes,
        ],
    );
    assert!(out.contains("2 nodes"), "{out}");
    wait_until(
        "A and B to admit each other",
        Duration::from_secs(30),
        || a.stderr().contains("LAN peer connected") && b.stderr().contains("LAN peer connected"),
    );
    let st = status(a_dir);
    assert_eq!(st["lan_groups"][0]["group"], "festival", "{st}");

    // A gives B part of its hub-granted right on the LAN; B checks the
    // grant it carries and credits it; the hub moves the reservation.
    let out = node_cli(
        a_dir,
        &[
            "give-right",
            "--account",
            &acct,
            "--to",
            &b_id,
            "--points",
            "200000",
        ],
    );
    assert!(out.starts_with("signed: 200000 pt"), "{out}");
    wait_until("B to take the right", Duration::from_secs(30), || {
        node_cli(b_dir, &["right", "--account", &acct]).contains("may spend 700000 pt")
    });
    assert!(b.stderr().contains("right received on the LAN"));
    wait_until("both to deliver", Duration::from_secs(30), || {
        caught_up(a_dir) && caught_up(b_dir)
    });
    assert_eq!(
        status(b_dir)["withdrawn_rights"].as_array().unwrap().len(),
        0
    );

    // The group ends: they drop each other without a restart.
    hub_cli(
        &w.hub_dir,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "festival",
            "--clear",
        ],
    );
    // Whichever learns it first closes the link; the other then refuses the
    // redial. Neither keeps the group.
    wait_until(
        "A and B to drop each other",
        Duration::from_secs(30),
        || {
            (a.stderr().contains("no longer admitted") || b.stderr().contains("no longer admitted"))
                && [a_dir, b_dir].iter().all(|d| {
                    status(d)["lan_groups"]
                        .as_array()
                        .is_some_and(|g| g.is_empty())
                })
        },
    );
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    assert!(hub.terminate().success());
    let mut h = w.open_hub();
    let mut reserved: Vec<(NodeId, u64)> = h
        .escrow_status(bunkyo())
        .unwrap()
        .into_iter()
        .map(|l| (l.node, l.points.get()))
        .collect();
    reserved.sort_by_key(|(_, p)| *p);
    assert_eq!(
        reserved,
        vec![(w.node_ids[0], 300_000), (w.node_ids[1], 700_000)]
    );
}
