//! A node's own offline voucher cap (issue 17), with the real binaries: the
//! hub's operator re-enrols a shop with `--voucher-cap 700` (its exposure
//! limit stays far above), `mykey-hub node list` and `mykey-node status`
//! show it, and offline the shop takes one 500-point voucher and refuses
//! the second with a message naming the cap; once the hub has confirmed
//! the first, the second is taken.

mod net_common;

use net_common::{World, caught_up, hub_cli, run_with_stdin, start_hub, start_node, wait_until};
use std::path::Path;
use std::time::Duration;

/// One `run` of the node until it has pushed everything and knows its limits.
fn sync_node(hub_dir: &Path, node: &Path) {
    let (mut hub, addr) = start_hub(hub_dir, 0);
    let mut p = start_node("shop-0", node, Some(&addr), &[]);
    wait_until("node caught up", Duration::from_secs(60), || {
        caught_up(node)
    });
    p.terminate();
    hub.terminate();
}

#[test]
fn a_shop_takes_vouchers_offline_within_its_own_cap() {
    let w = World::create(1, 0);
    let shop = w.nodes[0].as_path();
    let id = w.node_ids[0].to_string();
    let out = hub_cli(
        &w.hub_dir,
        &[
            "node",
            "enrol",
            "--node",
            &id,
            "--facility",
            "shop-0",
            "--ops",
            "redeem",
            "--card-limit",
            "3000",
            "--exposure-limit",
            "50000",
            "--pin-threshold",
            "1000",
            "--voucher-cap",
            "700",
        ],
    );
    assert!(out.contains("offline voucher cap 700 pt"), "{out}");
    let nodes: serde_json::Value =
        serde_json::from_str(&hub_cli(&w.hub_dir, &["node", "list", "--json"])).unwrap();
    assert_eq!(nodes[0]["voucher_cap"], 700, "{nodes:#}");

    let print = w.root.path().join("print");
    let out = hub_cli(
        &w.hub_dir,
        &[
            "voucher",
            "issue",
            "--programme",
            "health",
            "--count",
            "2",
            "--points",
            "500",
            "--expires",
            "2099-03-31",
            "--out",
            print.to_str().unwrap(),
            "--png",
        ],
    );
    assert!(out.contains("issued voucher batch 1"), "{out}");
    let text = |i: u16| {
        let png = std::fs::read(print.join(format!("voucher-1-{i:05}.png"))).unwrap();
        mykey_voucher::to_text(&mykey_voucher::decode_png(&png).unwrap()[0])
    };

    sync_node(&w.hub_dir, shop);
    let status: serde_json::Value =
        serde_json::from_str(&net_common::node_cli(shop, &["status", "--json"])).unwrap();
    assert_eq!(status["voucher_cap_points"], 700, "{status:#}");

    // Offline: the first is taken, the second would pass the cap.
    let (ok, out, err) = run_with_stdin(
        "mykey-node",
        shop,
        &["voucher", "redeem"],
        &format!("{}\n{}\n", text(1), text(2)),
    );
    assert!(!ok, "the refused voucher fails the run: {out}");
    assert!(out.contains("taken: voucher 1-00001"), "{out}");
    assert!(
        err.contains("past this node's offline voucher cap of 700 pt")
            && err.contains("--voucher-cap"),
        "{err}"
    );
    // Once the hub confirmed the first, the second fits.
    sync_node(&w.hub_dir, shop);
    let (ok, out, err) = run_with_stdin(
        "mykey-node",
        shop,
        &["voucher", "redeem"],
        &format!("{}\n", text(2)),
    );
    assert!(ok, "{err}");
    assert!(out.contains("taken: voucher 1-00002"), "{out}");
}
