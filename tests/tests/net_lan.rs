//! Two nodes of one municipality cut off from the hub but linked to each
//! other by static addresses: each sees the other's pending spends (so the
//! second cannot spend what the first already took), and the one that alone
//! reaches the hub again delivers the other's transactions, applied once.

mod net_common;

use mykey_node::config::DataDir;
use mykey_sync_proto::Points;
use net_common::*;
use std::time::Duration;

/// (confirmed balance, pending spends known) of an account, as a node sees it.
fn view(dir: &std::path::Path, w: &World) -> (u64, u64) {
    let n = DataDir::new(dir).open().unwrap();
    let (b, _debt, pending): (Points, Points, Points) =
        n.balance(w.holders[0].1, bunkyo()).unwrap();
    (b.get(), pending.get())
}

#[test]
fn cut_off_stalls_see_each_others_spends_and_one_carries_both() {
    let w = World::create(2, 1);
    let (a_dir, b_dir) = (&w.nodes[0], &w.nodes[1]);
    for d in [a_dir, b_dir] {
        write_net_toml(
            d,
            "backoff_base_ms = 50\nbackoff_cap_ms = 300\ngossip_ms = 100\nrelay_interval_ms = 300\n",
        );
    }
    let (mut hub, hub_addr) = start_hub(&w.hub_dir, 0);
    let port = port_of(&hub_addr);
    let (mut a, a_addr) = start_node_at("A", a_dir, Some(&hub_addr), &[]);
    let mut b = start_node("B", b_dir, Some(&hub_addr), &["--peer", &a_addr]);
    for d in [a_dir, b_dir] {
        wait_until("first sync", Duration::from_secs(30), || caught_up(d));
    }
    wait_until("A and B to link", Duration::from_secs(30), || {
        a.stderr().contains("LAN peer connected") && b.stderr().contains("LAN peer connected")
    });

    // The hub goes away: a festival with no WAN.
    hub.terminate();
    let card = card_arg(&w.holders[0].0);
    let out = node_cli(a_dir, &["redeem", "--card", &card, "--points", "600000"]);
    assert!(out.starts_with("redeemed"), "{out}");
    wait_until(
        "B to see A's pending spend",
        Duration::from_secs(30),
        || view(b_dir, &w) == (START_POINTS, 600_000),
    );
    // B cannot spend what A already took ...
    let declined = std::process::Command::new(bin("mykey-node"))
        .arg("--data")
        .arg(b_dir)
        .args(["redeem", "--card", &card, "--points", "500000"])
        .output()
        .unwrap();
    assert!(
        !declined.status.success(),
        "B must decline: the balance is spoken for"
    );
    let why = String::from_utf8_lossy(&declined.stderr);
    assert!(why.contains("declined"), "{why}");
    // ... but may spend what is left.
    let out = node_cli(b_dir, &["redeem", "--card", &card, "--points", "300000"]);
    assert!(out.starts_with("redeemed"), "{out}");
    wait_until(
        "A to see B's pending spend",
        Duration::from_secs(30),
        || view(a_dir, &w) == (START_POINTS, 900_000),
    );

    // B stays cut off from the hub; A alone reaches it again and carries B's spend.
    assert!(b.terminate().success());
    let b = start_node("B (no hub)", b_dir, None, &["--peer", &a_addr]);
    let (mut hub, _) = start_hub(&w.hub_dir, port);
    wait_until(
        "A to deliver its own and B's spends",
        Duration::from_secs(60),
        || caught_up(a_dir) && view(a_dir, &w) == (START_POINTS - 900_000, 0),
    );
    assert!(a.stderr().contains("delivered LAN peers' transactions"));
    assert_eq!(
        status(b_dir)["pending"],
        1,
        "B itself never reached the hub"
    );

    // B comes back to the hub: its spend is already there, and stays applied once.
    drop(b);
    let _b = start_node("B (back)", b_dir, Some(&hub_addr), &["--peer", &a_addr]);
    wait_until("B to reconcile", Duration::from_secs(60), || {
        caught_up(b_dir)
    });
    assert!(a.terminate().success());
    assert!(hub.terminate().success());
    drop(_b);
    let mut h = w.open_hub();
    for (i, d) in [a_dir, b_dir].into_iter().enumerate() {
        let n = DataDir::new(d).open().unwrap();
        let txs = n.outbox_from(1, 10).unwrap();
        assert_eq!(txs.len(), 1);
        assert_eq!(h.tx_applications(&txs[0].id()).unwrap(), 1);
        assert_eq!(h.chain_head(&w.node_ids[i]).unwrap().processed_seq, 1);
    }
    let bal = h.balance(w.holders[0].1, bunkyo()).unwrap();
    assert_eq!(bal.balance.get(), START_POINTS - 900_000);
    assert_eq!(bal.debt.get(), 0);
}

#[test]
fn a_suspension_crosses_the_lan_to_a_stall_without_a_hub_link() {
    let w = World::create(2, 2);
    let (a_dir, b_dir) = (&w.nodes[0], &w.nodes[1]);
    for d in [a_dir, b_dir] {
        write_net_toml(
            d,
            "backoff_base_ms = 50\nbackoff_cap_ms = 300\ngossip_ms = 100\nrelay_interval_ms = 300\n",
        );
    }
    let (mut hub, hub_addr) = start_hub(&w.hub_dir, 0);
    let (mut a, a_addr) = start_node_at("A", a_dir, Some(&hub_addr), &[]);
    // B syncs once with the hub (it holds the municipality's shards), then
    // runs with no hub link, only its LAN peer A.
    let mut b = start_node("B", b_dir, Some(&hub_addr), &[]);
    for d in [a_dir, b_dir] {
        wait_until("first sync", Duration::from_secs(30), || caught_up(d));
    }
    assert!(b.terminate().success());
    let mut b = start_node("B (no hub)", b_dir, None, &["--peer", &a_addr]);
    wait_until("A and B to link", Duration::from_secs(30), || {
        a.stderr().contains("LAN peer connected") && b.stderr().contains("LAN peer connected")
    });
    let lost = card_arg(&w.holders[0].0);
    assert!(node_cli(b_dir, &["lookup", "--card", &lost]).contains("registered"));

    // The operator suspends the card at the hub; A hears it from the hub,
    // B only from A.
    hub_cli(&w.hub_dir, &["card", "suspend", "--card", &lost]);
    wait_until(
        "the suspension to reach A from the hub",
        Duration::from_secs(30),
        || node_cli(a_dir, &["lookup", "--card", &lost]).contains("SUSPENDED"),
    );
    wait_until(
        "the suspension to cross the LAN to B",
        Duration::from_secs(30),
        || node_cli(b_dir, &["lookup", "--card", &lost]).contains("SUSPENDED"),
    );
    let refused = std::process::Command::new(bin("mykey-node"))
        .arg("--data")
        .arg(b_dir)
        .args(["redeem", "--card", &lost, "--points", "1"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "B refuses the suspended card");
    assert!(
        b.stderr().contains("merged a LAN peer's shard items"),
        "B got it over the LAN"
    );
    let other = card_arg(&w.holders[1].0);
    assert!(node_cli(b_dir, &["lookup", "--card", &other]).contains("registered"));
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    assert!(hub.terminate().success());
}
