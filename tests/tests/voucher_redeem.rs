//! Printed QR point vouchers redeemed at shop nodes, offline (issue 17
//! parts 4 and 5), with the real binaries: the hub issues a batch and its
//! PNGs; two shop nodes learn their limits from the serving hub, then go
//! offline; shop 0 takes voucher 1 from a photo, shop 1 takes a photocopy
//! of voucher 1 and voucher 2 from a wedge scanner's lines (a trailing CR,
//! full-width digits), and refuses a tampered code and a code it took
//! before; back online, the hub pays shop 0 for voucher 1 from the float,
//! records shop 1's copy as an incident paid within shop 1's offline cap,
//! and pays voucher 2.

mod net_common;

use net_common::{World, caught_up, hub_cli, run_with_stdin, start_hub, start_node, wait_until};
use std::path::Path;
use std::time::Duration;

fn full_width(text: &str) -> String {
    text.chars()
        .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap())
        .collect()
}

/// Runs `mykey-node voucher redeem` with `lines` on stdin.
fn scan(node: &Path, lines: &str) -> (bool, String, String) {
    run_with_stdin("mykey-node", node, &["voucher", "redeem"], lines)
}

/// One `run` of each node until it has pushed everything and knows its limits.
fn sync_nodes(hub_addr: &str, nodes: &[&Path]) {
    for (i, n) in nodes.iter().enumerate() {
        let mut p = start_node(&format!("shop-{i}"), n, Some(hub_addr), &[]);
        wait_until("node caught up", Duration::from_secs(60), || caught_up(n));
        p.terminate();
    }
}

#[test]
fn offline_shops_take_vouchers_and_the_hub_pays_once_per_voucher() {
    let w = World::create(2, 0);
    let (shop0, shop1) = (w.nodes[0].as_path(), w.nodes[1].as_path());
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
    let png1 = print.join("voucher-1-00001.png");
    let text = |i: u16| {
        let png = std::fs::read(print.join(format!("voucher-1-{i:05}.png"))).unwrap();
        mykey_voucher::to_text(&mykey_voucher::decode_png(&png).unwrap()[0])
    };
    let (v1, v2) = (text(1), text(2));

    // Both shops learn their limits, then go offline.
    {
        let (mut hub, addr) = start_hub(&w.hub_dir, 0);
        sync_nodes(&addr, &[shop0, shop1]);
        hub.terminate();
    }

    // Shop 0: voucher 1 from a photo.
    let (ok, out, err) = run_with_stdin(
        "mykey-node",
        shop0,
        &["voucher", "redeem", "--image", png1.to_str().unwrap()],
        "",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("taken: voucher 1-00001 of 131059: 500 pt"),
        "{out}"
    );
    // The same voucher again at shop 0: refused, nothing recorded.
    let (ok, _, err) = scan(shop0, &format!("{v1}\r\n"));
    assert!(!ok && err.contains("already taken here"), "{err}");

    // Shop 1: a photocopy of voucher 1 (trailing CR), voucher 2 in
    // full-width digits, and a tampered code (one digit changed).
    let mut tampered = v2.clone().into_bytes();
    tampered[60] = if tampered[60] == b'9' {
        b'0'
    } else {
        tampered[60] + 1
    };
    let tampered = String::from_utf8(tampered).unwrap();
    let (ok, out, err) = scan(
        shop1,
        &format!("{v1}\r\n{}\r\n{tampered}\r\n", full_width(&v2)),
    );
    assert!(!ok, "the tampered code makes the run fail: {out}");
    assert!(
        out.contains("taken: voucher 1-00001") && out.contains("taken: voucher 1-00002"),
        "{out}"
    );
    assert!(
        err.contains("check digits do not match") && err.contains("1 voucher(s) refused"),
        "{err}"
    );

    // Back online: shop 0 pushes first, then shop 1.
    {
        let (mut hub, addr) = start_hub(&w.hub_dir, 0);
        sync_nodes(&addr, &[shop0, shop1]);
        hub.terminate();
    }

    let incidents: serde_json::Value =
        serde_json::from_str(&hub_cli(&w.hub_dir, &["incidents", "--json"])).unwrap();
    let twice: Vec<String> = incidents
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "voucher-redeemed-twice")
        .map(|i| i.to_string())
        .collect();
    assert_eq!(twice.len(), 1, "{incidents:#}");
    assert!(
        twice[0].contains("voucher 1-00001") && twice[0].contains("paid 500 pt of 500 pt"),
        "{}",
        twice[0]
    );
    // From the float: voucher 1 once (shop 0) and voucher 2 once (shop 1);
    // shop 1's copy of voucher 1 was the incident, paid from the programme.
    let list = hub_cli(&w.hub_dir, &["voucher", "list"]);
    assert!(list.contains("redeemed 2 (1000 pt)"), "{list}");
    let report: serde_json::Value = serde_json::from_str(&hub_cli(
        &w.hub_dir,
        &["report", "liabilities", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(report["municipalities"][0]["vouchers_outstanding"], 0);
    hub_cli(&w.hub_dir, &["ledger", "check"]);
}
