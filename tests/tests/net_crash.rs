//! `kill -9` of a running node right after a redeem was reported done: the
//! transaction was committed before the report, so a restarted node delivers
//! it, and the hub applies it once.

mod net_common;

use mykey_node::config::DataDir;
use net_common::*;
use std::time::Duration;

#[test]
fn redeem_reported_then_node_killed_is_delivered_after_restart() {
    let w = World::create(1, 1);
    let dir = &w.nodes[0];
    // The running node looks for new transactions rarely, so the kill lands
    // before it could have pushed the redeem.
    write_net_toml(dir, "outbox_poll_ms = 60000\n");
    let (_hub, addr) = start_hub(&w.hub_dir, 0);
    let mut node = start_node("node", dir, Some(&addr), &[]);
    wait_until("first sync", Duration::from_secs(30), || caught_up(dir));

    let (card, _) = &w.holders[0];
    let out = node_cli(
        dir,
        &["redeem", "--card", &card_arg(card), "--points", "250"],
    );
    assert!(out.starts_with("redeemed 250"), "{out}");
    node.kill9();
    let s = status(dir);
    assert_eq!(s["pending"], 1, "the redeem is pending, not lost: {s}");

    let _node = start_node("node (restarted)", dir, Some(&addr), &[]);
    wait_until("delivery after restart", Duration::from_secs(30), || {
        caught_up(dir)
    });
    let n = DataDir::new(dir).open().unwrap();
    let txs = n.outbox_from(1, 10).unwrap();
    assert_eq!(txs.len(), 1);
    drop(n);
    drop(_node);
    drop(_hub);
    let mut h = w.open_hub();
    assert_eq!(h.tx_applications(&txs[0].id()).unwrap(), 1);
    let b = h.balance(w.holders[0].1, bunkyo()).unwrap();
    assert_eq!(b.balance.get(), START_POINTS - 250);
}
