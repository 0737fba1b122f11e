//! What a shop's node knows, offline, before it takes a printed voucher
//! (issue 17 part 4), with the real binaries: its LAN peers' redemptions
//! and the hub-signed redeemed bitmap of each batch (cache shards).
//!
//! Shops A and B run on one LAN roster with the hub away: A takes voucher
//! 1-00001 from a photo, and B, once A's chain reached it, refuses a copy
//! as taken by its peer. Back at the hub, A's redemption marks the batch's
//! bitmap, and batch 2 is cancelled (a lost sheet); shop C syncs, goes
//! offline, and refuses the copy of 1-00001 (the hub's bitmap) and the
//! voucher of batch 2 (cancelled), while 1-00002 is taken.

mod net_common;

use mykey_node::config::DataDir;
use mykey_voucher::Serial;
use net_common::*;
use std::path::Path;
use std::time::Duration;

fn issue(hub: &Path, out: &Path, count: &str) -> String {
    hub_cli(
        hub,
        &[
            "voucher",
            "issue",
            "--programme",
            "health",
            "--count",
            count,
            "--points",
            "300",
            "--expires",
            "2099-03-31",
            "--out",
            out.to_str().unwrap(),
            "--png",
        ],
    )
}

fn text_of(png: &Path) -> String {
    let bytes = std::fs::read(png).unwrap();
    mykey_voucher::to_text(&mykey_voucher::decode_png(&bytes).unwrap()[0])
}

fn scan(node: &Path, line: &str) -> (bool, String, String) {
    run_with_stdin(
        "mykey-node",
        node,
        &["voucher", "redeem"],
        &format!("{line}\n"),
    )
}

#[test]
fn offline_shops_refuse_what_lan_peers_or_the_hub_bitmap_say_was_taken() {
    let w = World::create(3, 0);
    let (a_dir, b_dir, c_dir) = (&w.nodes[0], &w.nodes[1], &w.nodes[2]);
    for d in [a_dir, b_dir] {
        write_net_toml(
            d,
            "backoff_base_ms = 50\nbackoff_cap_ms = 300\ngossip_ms = 100\nrelay_interval_ms = 300\n",
        );
    }
    let print1 = w.root.path().join("batch1");
    let print2 = w.root.path().join("batch2");
    assert!(issue(&w.hub_dir, &print1, "2").contains("issued voucher batch 1"));
    assert!(issue(&w.hub_dir, &print2, "1").contains("issued voucher batch 2"));
    let v1 = print1.join("voucher-1-00001.png");
    let (t1, t2, t3) = (
        text_of(&v1),
        text_of(&print1.join("voucher-1-00002.png")),
        text_of(&print2.join("voucher-2-00001.png")),
    );

    // A and B on the LAN with the hub, then the hub goes away.
    let (mut hub, hub_addr) = start_hub(&w.hub_dir, 0);
    let (mut a, a_addr) = start_node_at("A", a_dir, Some(&hub_addr), &[]);
    let mut b = start_node("B", b_dir, Some(&hub_addr), &["--peer", &a_addr]);
    for d in [a_dir, b_dir] {
        wait_until("first sync", Duration::from_secs(60), || caught_up(d));
    }
    {
        let mut c = start_node("C", c_dir, Some(&hub_addr), &[]);
        wait_until("C caught up", Duration::from_secs(60), || caught_up(c_dir));
        c.terminate();
    }
    wait_until("A and B to link", Duration::from_secs(30), || {
        a.stderr().contains("LAN peer connected") && b.stderr().contains("LAN peer connected")
    });
    hub.terminate();

    let (ok, out, err) = run_with_stdin(
        "mykey-node",
        a_dir,
        &["voucher", "redeem", "--image", v1.to_str().unwrap()],
        "",
    );
    assert!(ok && out.contains("taken: voucher 1-00001"), "{out}{err}");
    let serial1 = Serial { batch: 1, index: 1 };
    wait_until("B to hold A's redemption", Duration::from_secs(30), || {
        let n = DataDir::new(b_dir).open().unwrap();
        !n.voucher_known(serial1).unwrap().peers.is_empty()
    });
    let (ok, _, err) = scan(b_dir, &t1);
    assert!(!ok, "B must refuse the copy");
    assert!(err.contains("already taken by LAN peer"), "{err}");
    a.terminate();
    b.terminate();

    // Batch 2's sheet is lost: cancelled. A reaches the hub and pushes its
    // redemption; C syncs and learns the bitmap and the cancellation.
    let out = hub_cli(&w.hub_dir, &["voucher", "cancel", "2"]);
    assert!(out.contains("cancelled voucher batch 2"), "{out}");
    let (mut hub, hub_addr) = start_hub(&w.hub_dir, 0);
    {
        let mut a = start_node("A (back)", a_dir, Some(&hub_addr), &[]);
        wait_until("A delivered", Duration::from_secs(60), || caught_up(a_dir));
        a.terminate();
    }
    {
        let mut c = start_node("C (sync)", c_dir, Some(&hub_addr), &[]);
        wait_until(
            "C to hold the bitmap and the cancellation",
            Duration::from_secs(60),
            || {
                let n = DataDir::new(c_dir).open().unwrap();
                let k1 = n.voucher_known(serial1).unwrap();
                let k2 = n.voucher_known(Serial { batch: 2, index: 1 }).unwrap();
                k1.marked && k2.cancelled
            },
        );
        c.terminate();
    }
    hub.terminate();

    // C offline: the copy and the cancelled batch's voucher are refused.
    let (ok, out, err) = run_with_stdin(
        "mykey-node",
        c_dir,
        &["voucher", "redeem"],
        &format!("{t1}\n{t3}\n{t2}\n"),
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("the hub says voucher 1-00001 was already redeemed"),
        "{err}"
    );
    assert!(
        err.contains("voucher 2-00001's batch was cancelled"),
        "{err}"
    );
    assert!(out.contains("taken: voucher 1-00002"), "{out}");
    assert!(err.contains("2 voucher(s) refused"), "{err}");
}
