//! Hub + 3 nodes as processes on 127.0.0.1: an outage, the hub killed in the
//! middle of the catch-up push, nodes serving from their stores meanwhile,
//! then a restart on the same port and full reconciliation: every
//! transaction applied exactly once, balances conserved.

mod net_common;

use mykey_node::config::DataDir;
use net_common::*;
use std::time::Duration;

const BACKLOG_PER_NODE: usize = 400;

#[test]
fn hub_killed_mid_push_then_everything_reconciles_once() {
    let w = World::create(3, 4);
    for dir in &w.nodes {
        // Small batches, so the catch-up takes many round trips and the hub
        // can be killed in the middle of it.
        write_net_toml(
            dir,
            "batch_txs = 10\nbackoff_base_ms = 50\nbackoff_cap_ms = 500\n",
        );
    }
    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let port = port_of(&addr);
    let mut nodes: Vec<Proc> = w
        .nodes
        .iter()
        .enumerate()
        .map(|(i, d)| start_node(&format!("node{i}"), d, Some(&addr), &[]))
        .collect();
    for d in &w.nodes {
        wait_until("first sync", Duration::from_secs(30), || caught_up(d));
    }

    // Outage: the hub goes away; the nodes keep taking payments.
    hub.terminate();
    for (i, d) in w.nodes.iter().enumerate() {
        let mut node = DataDir::new(d).open().unwrap();
        for k in 0..BACKLOG_PER_NODE {
            let (card, _) = &w.holders[(i + k) % w.holders.len()];
            node.redeem(card, pts(1 + (k as u64 % 3)), None, now())
                .unwrap();
        }
    }

    // The hub comes back; kill it hard as soon as the catch-up is under way.
    let (mut hub, _) = start_hub(&w.hub_dir, port);
    wait_until("the catch-up to start", Duration::from_secs(30), || {
        w.nodes
            .iter()
            .any(|d| status(d)["receipted_seq"].as_u64().unwrap() > 0)
    });
    hub.kill9();
    let mid: Vec<(u64, u64)> = w
        .nodes
        .iter()
        .map(|d| {
            let s = status(d);
            (
                s["receipted_seq"].as_u64().unwrap(),
                s["last_seq"].as_u64().unwrap(),
            )
        })
        .collect();
    eprintln!("(receipted, signed) per node when the hub died: {mid:?}");
    assert!(
        mid.iter().any(|(r, l)| r < l),
        "the hub died after the catch-up, not during it: {mid:?}"
    );

    // Nodes serve from their stores while the hub is dead.
    let (card0, _) = &w.holders[0];
    let out = node_cli(&w.nodes[0], &["lookup", "--card", &card_arg(card0)]);
    assert!(out.contains("registered"), "{out}");
    let out = node_cli(
        &w.nodes[1],
        &["redeem", "--card", &card_arg(card0), "--points", "7"],
    );
    assert!(out.contains("redeemed"), "{out}");

    // Restart on the same port: everything reconciles.
    let (mut hub, _) = start_hub(&w.hub_dir, port);
    for d in &w.nodes {
        wait_until("reconciliation", Duration::from_secs(60), || caught_up(d));
    }
    for n in &mut nodes {
        assert!(n.terminate().success(), "{} exits cleanly", n.name);
    }
    assert!(hub.terminate().success());

    // Exactly once, nothing lost: every signed transaction is processed by
    // the hub once, and balances add up.
    let mut h = w.open_hub();
    let mut spent = std::collections::HashMap::new();
    for (i, d) in w.nodes.iter().enumerate() {
        let node = DataDir::new(d).open().unwrap();
        let (last, receipted, _) = node.sync_position().unwrap();
        assert_eq!(last, receipted);
        assert_eq!(h.chain_head(&w.node_ids[i]).unwrap().processed_seq, last);
        for tx in node.outbox_from(1, 100_000).unwrap() {
            assert_eq!(h.tx_applications(&tx.id()).unwrap(), 1, "tx {}", tx.id());
            let v = tx.verify().unwrap();
            if let mykey_sync_proto::TxBody::Redeem(r) = &v.payload().body {
                *spent.entry(r.account).or_insert(0u64) += r.points.get();
            }
        }
    }
    for (_, account) in &w.holders {
        let b = h.balance(*account, bunkyo()).unwrap();
        let want = START_POINTS - spent.get(account).copied().unwrap_or(0);
        assert_eq!(b.balance.get(), want, "balance of {account}");
    }
    h.check_conservation().unwrap();
}
