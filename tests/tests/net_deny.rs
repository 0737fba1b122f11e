//! A suspension made by the operator while the hub serves reaches a connected
//! node through the live link, and the node refuses the card from then on.

mod net_common;

use net_common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn suspension_reaches_a_connected_node() {
    let w = World::create(1, 2);
    let dir = &w.nodes[0];
    let (_hub, addr) = start_hub(&w.hub_dir, 0);
    let _node = start_node("node", dir, Some(&addr), &[]);
    wait_until("first sync", Duration::from_secs(30), || caught_up(dir));
    let lost = card_arg(&w.holders[0].0);
    assert!(node_cli(dir, &["lookup", "--card", &lost]).contains("registered"));

    hub_cli(&w.hub_dir, &["card", "suspend", "--card", &lost]);
    wait_until(
        "the suspension to reach the node",
        Duration::from_secs(30),
        || node_cli(dir, &["lookup", "--card", &lost]).contains("SUSPENDED"),
    );
    let refused = Command::new(bin("mykey-node"))
        .arg("--data")
        .arg(dir)
        .args(["redeem", "--card", &lost, "--points", "1"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a suspended card is refused");
    let other = card_arg(&w.holders[1].0);
    assert!(node_cli(dir, &["lookup", "--card", &other]).contains("registered"));
}
