//! A link that dies without a word: the hub process is frozen (SIGSTOP), so
//! its TCP connection stays open but nothing answers. The node's pings fail,
//! it drops the link, keeps serving from its store, and reconciles once the
//! hub thaws (SIGCONT).

mod net_common;

use net_common::*;
use std::process::Command;
use std::time::Duration;

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", p.pid());
}

#[test]
fn frozen_hub_is_detected_and_the_node_reconciles_after_it_thaws() {
    let w = World::create(1, 1);
    let dir = &w.nodes[0];
    write_net_toml(
        dir,
        "ping_interval_ms = 300\nping_timeout_ms = 1000\nbackoff_base_ms = 50\nbackoff_cap_ms = 500\n",
    );
    let (hub, addr) = start_hub(&w.hub_dir, 0);
    let node = start_node("node", dir, Some(&addr), &[]);
    wait_until("first sync", Duration::from_secs(30), || caught_up(dir));

    signal(&hub, "-STOP");
    wait_until(
        "the node to notice the dead link",
        Duration::from_secs(30),
        || {
            let log = node.stderr();
            log.contains("ping failed") && log.contains("hub link lost")
        },
    );
    let card = card_arg(&w.holders[0].0);
    let out = node_cli(dir, &["redeem", "--card", &card, "--points", "42"]);
    assert!(out.starts_with("redeemed"), "{out}");
    assert_eq!(status(dir)["pending"], 1);

    signal(&hub, "-CONT");
    wait_until(
        "reconciliation after the thaw",
        Duration::from_secs(60),
        || caught_up(dir),
    );
}
