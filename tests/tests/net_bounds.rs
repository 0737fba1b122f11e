//! The merchant's attack of issue 12 with the real binaries: a shop owner
//! edits the node's own store (limits and balances), redeems 5,000,000 and
//! 7,000,000 pt with `mykey-node redeem`, and a stream of small spends on a
//! holder who has nothing; `mykey-node run` delivers them; `mykey-hub
//! settle` pays that facility at most its enrolled bound and lists the rest
//! in quarantine, while an honest shop's spends in the same run are paid in
//! full.

mod net_common;

use mykey_sync_proto::{MyKeyId, NodeLimits, Points, codec};
use net_common::*;
use std::path::Path;
use std::time::Duration;

/// What the owner of a node can do to its files: raise the limits the hub
/// gave it and the balances it holds.
fn tamper(node_dir: &Path, also: mykey_sync_proto::AccountId) {
    let db = rusqlite::Connection::open(node_dir.join("node.sqlite")).unwrap();
    let bytes: Vec<u8> = db
        .query_row("SELECT v FROM meta WHERE k = 'limits'", [], |r| r.get(0))
        .unwrap();
    let mut limits: NodeLimits = codec::decode_canonical("limits", &bytes, 4096).unwrap();
    let max = Points::new(Points::MAX).unwrap();
    limits.per_card_offline_limit = max;
    limits.node_exposure_limit = max;
    limits.pin_threshold = max;
    db.execute(
        "UPDATE meta SET v = ?1 WHERE k = 'limits'",
        [codec::encode(&limits)],
    )
    .unwrap();
    db.execute("UPDATE balances SET balance = 900000000000, debt = 0", [])
        .unwrap();
    // A wallet the hub never confirmed: the owner makes one up.
    db.execute(
        "INSERT OR REPLACE INTO balances(account, municipality, balance, debt, ledger_pos)
         VALUES (?1, 131059, 900000000000, 0, 1)",
        [also.get() as i64],
    )
    .unwrap();
}

fn statement_points(statements: &str, kind: &str, party: &str) -> u64 {
    statements
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == kind && w.next()? == party)
                .then(|| w.next()?.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

fn payee(hub: &Path, who: &[&str], bank: &str, number: &str, holder: &str) {
    let mut args = vec!["payee", "set"];
    args.extend_from_slice(who);
    args.extend_from_slice(&[
        "--bank", bank, "--branch", "001", "--number", number, "--holder", holder,
    ]);
    if who == ["--agent"] {
        args.extend_from_slice(&["--code", "1234567890"]);
    }
    hub_cli(hub, &args);
}

#[test]
fn an_edited_node_store_is_paid_at_most_the_enrolled_bound() {
    let w = World::create(2, 1);
    let (liar, honest) = (&w.nodes[0], &w.nodes[1]);
    // The bounds of the issue: card 3000, exposure 20000, PIN above 2000.
    for (i, id) in w.node_ids.iter().enumerate() {
        hub_cli(
            &w.hub_dir,
            &[
                "node",
                "enrol",
                "--node",
                &id.to_string(),
                "--facility",
                &format!("shop-{i}"),
                "--ops",
                "redeem",
                "--card-limit",
                "3000",
                "--exposure-limit",
                "20000",
                "--pin-threshold",
                "2000",
            ],
        );
    }
    // A holder with no points at all.
    let poor_card = card(0x7777);
    let poor_account = w
        .open_hub()
        .register_account(
            &MyKeyId::parse("poor").unwrap(),
            bunkyo(),
            &poor_card,
            now(),
        )
        .unwrap();
    let rich = card_arg(&w.holders[0].0);
    let poor = card_arg(&poor_card);

    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    for dir in [liar, honest] {
        let mut n = start_node("node", dir, Some(&addr), &[]);
        wait_until("first sync", Duration::from_secs(30), || {
            caught_up(dir) && node_cli(dir, &["lookup", "--card", &poor]).contains("registered")
        });
        n.terminate();
    }

    // The attack: the store edited, then the node's own CLI agrees to anything.
    tamper(liar, poor_account);
    assert!(
        node_cli(liar, &["redeem", "--card", &rich, "--points", "5000000"]).contains("redeemed")
    );
    assert!(
        node_cli(liar, &["redeem", "--card", &rich, "--points", "7000000"]).contains("redeemed")
    );
    for _ in 0..10 {
        assert!(
            node_cli(liar, &["redeem", "--card", &poor, "--points", "2000"]).contains("redeemed")
        );
    }
    // The honest shop, same period.
    assert!(
        node_cli(honest, &["redeem", "--card", &rich, "--points", "1500"]).contains("redeemed")
    );

    let _l = start_node("liar", liar, Some(&addr), &[]);
    let _h = start_node("honest", honest, Some(&addr), &[]);
    wait_until("both nodes to deliver", Duration::from_secs(60), || {
        caught_up(liar) && caught_up(honest)
    });
    // The liar's node is told what was held (its troubled list).
    let st = status(liar);
    assert!(st.to_string().contains("quarantine"), "{st}");
    hub.terminate();

    payee(&w.hub_dir, &["--agent"], "0009", "1234567", "ｾｲｻﾝﾀﾞｲｺｳ");
    payee(
        &w.hub_dir,
        &["--merchant", "shop-0"],
        "0001",
        "7654321",
        "ﾐｾｾﾞﾛ",
    );
    payee(
        &w.hub_dir,
        &["--merchant", "shop-1"],
        "0001",
        "7654322",
        "ﾐｾｲﾁ",
    );
    payee(
        &w.hub_dir,
        &["--municipality", "131059"],
        "0005",
        "1",
        "ﾌﾞﾝｷﾖｳｸ",
    );
    let out_dir = w.root.path().join("settlement");
    let out = hub_cli(
        &w.hub_dir,
        &[
            "settle",
            "--through-now",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.contains("closed"), "{out}");
    let stmts = hub_cli(&w.hub_dir, &["statements", "--municipality", "131059"]);
    let paid_liar = statement_points(&stmts, "merchant-payout", "shop-0");
    let held_liar = statement_points(&stmts, "quarantined", "shop-0");
    // The 12,000,000 without a PIN proof pay nothing; of the 20,000 on a
    // holder with nothing, the per-card bound (3,000) is paid.
    assert_eq!(paid_liar, 3000, "{stmts}");
    assert!(paid_liar <= 20_000);
    assert_eq!(held_liar, 12_000_000 + 17_000, "{stmts}");
    assert_eq!(
        statement_points(&stmts, "merchant-payout", "shop-1"),
        1500,
        "{stmts}"
    );
    assert_eq!(
        statement_points(&stmts, "quarantined", "shop-1"),
        0,
        "{stmts}"
    );
    let held = hub_cli(
        &w.hub_dir,
        &["quarantine", "list", "--facility", "shop-0", "--json"],
    );
    assert_eq!(held.lines().count(), 2 + 9, "{held}");
    assert!(held.contains("\"rule\":\"card-proof\""), "{held}");
    assert!(held.contains("\"rule\":\"card-limit\""), "{held}");
    // The Zengin payout file pays shop-0 3,000 yen and no more.
    let zengin: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("zengin"))
        .collect();
    assert!(!zengin.is_empty(), "no payout file in {out_dir:?}");
    w.open_hub().check_conservation().unwrap();
}
