//! `mykey-hub` economy commands end to end: operators, campaigns, expiry
//! policy, payees, settle, statements, liability report, reinstatement.
#![allow(missing_docs)]

mod common;
use common::{fails, ok};

#[test]
fn economy_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub-data");
    ok(&data, &["init"]);
    ok(
        &data,
        &[
            "municipality",
            "add",
            "--code",
            "131059",
            "--name",
            "Bunkyo",
        ],
    );
    ok(
        &data,
        &[
            "municipality",
            "add",
            "--code",
            "131016",
            "--name",
            "Chiyoda",
        ],
    );
    ok(
        &data,
        &[
            "facility",
            "add",
            "--id",
            "shop-1",
            "--municipality",
            "131059",
            "--kind",
            "shop",
            "--name",
            "Shop",
        ],
    );
    ok(
        &data,
        &[
            "account",
            "register",
            "--my-key-id",
            "hanako",
            "--municipality",
            "131059",
            "--card",
            "300b31:0102",
        ],
    );
    ok(
        &data,
        &[
            "program",
            "create",
            "--id",
            "health",
            "--municipality",
            "131059",
            "--budget",
            "10000",
        ],
    );
    ok(
        &data,
        &["expiry-policy", "--program", "health", "--policy", "fy+1"],
    );
    let err = fails(
        &data,
        &["expiry-policy", "--program", "health", "--policy", "soon"],
    );
    assert!(err.contains("fy+N"), "{err}");
    let key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .to_bytes(),
    );
    let out = ok(
        &data,
        &[
            "exchange-operator",
            "add",
            "--id",
            "card-x",
            "--name",
            "Card X",
            "--public-key",
            &key,
            "--rate",
            "1/2",
            "--holding-days",
            "2",
            "--expiry",
            "180d",
        ],
    );
    assert!(out.contains("rate 1/2"), "{out}");
    assert!(ok(&data, &["exchange-operator", "list"]).contains("card-x"));
    ok(
        &data,
        &[
            "campaign",
            "add",
            "--id",
            "fest",
            "--municipality",
            "131059",
            "--percent",
            "10",
            "--from",
            "2026-08-01",
            "--until",
            "2026-08-31",
            "--cap",
            "500",
        ],
    );
    assert!(
        ok(&data, &["campaign", "list", "--municipality", "131059"])
            .contains("2026-08-01..2026-08-31")
    );
    ok(
        &data,
        &[
            "payee",
            "set",
            "--agent",
            "--bank",
            "0009",
            "--branch",
            "001",
            "--number",
            "1234567",
            "--holder",
            "ｾｲｻﾝﾀﾞｲｺｳ",
            "--code",
            "1234567890",
        ],
    );
    ok(
        &data,
        &[
            "payee",
            "set",
            "--merchant",
            "shop-1",
            "--bank",
            "0001",
            "--branch",
            "004",
            "--number",
            "7654321",
            "--holder",
            "ﾌﾞﾝｷﾖｳｼﾖｳﾃﾝ",
            "--code",
            "1",
        ],
    );
    let err = fails(
        &data,
        &[
            "payee",
            "set",
            "--municipality",
            "131059",
            "--bank",
            "0005",
            "--branch",
            "001",
            "--number",
            "1",
            "--holder",
            "文京区",
        ],
    );
    assert!(err.contains("cannot be encoded"), "{err}");
    let err = fails(
        &data,
        &[
            "payee",
            "set",
            "--municipality",
            "131059",
            "--bank",
            "0042",
            "--branch",
            "001",
            "--number",
            "1",
            "--holder",
            "ﾌﾞﾝｷﾖｳｸ",
        ],
    );
    assert!(err.contains("not a known financial institution"), "{err}");
    ok(
        &data,
        &[
            "grant",
            "--my-key-id",
            "hanako",
            "--program",
            "health",
            "--points",
            "300",
        ],
    );
    let err = fails(
        &data,
        &[
            "grant",
            "--my-key-id",
            "hanako",
            "--program",
            "health",
            "--points",
            "20000",
        ],
    );
    assert!(err.contains("budget left"), "{err}");
    assert!(
        ok(
            &data,
            &["lots", "--account", "A1", "--municipality", "131059"]
        )
        .contains("program:health")
    );
    ok(&data, &["exchanges", "--account", "A1"]);
    let out = ok(&data, &["expire"]);
    assert!(out.contains("expired 0 pt"), "{out}");
    let out_dir = dir.path().join("settlement");
    let out = ok(
        &data,
        &[
            "settle",
            "--through-now",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.contains("closed 2 period(s)"), "{out}");
    assert!(
        out.lines().any(|l| l.ends_with(".json")) && out.lines().any(|l| l.ends_with(".csv")),
        "{out}"
    );
    let stmts = ok(&data, &["statements", "--municipality", "131059"]);
    assert!(stmts.contains(".."), "{stmts}");
    let csv = ok(&data, &["report", "liabilities", "--format", "csv"]);
    assert!(
        csv.starts_with("municipality,section,key,detail,points,yen\r\n"),
        "{csv}"
    );
    assert!(
        csv.contains("131059,source,program:health,,300,300\r\n"),
        "{csv}"
    );
    let json = ok(&data, &["report", "liabilities"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["municipalities"][1]["wallets"], 300);
    ok(&data, &["card", "suspend", "--card", "300b31:0102"]);
    let err = fails(
        &data,
        &[
            "card",
            "reinstate",
            "--card",
            "300b31:0102",
            "--municipality",
            "131016",
        ],
    );
    assert!(err.contains("only 131059 can reinstate"), "{err}");
    ok(
        &data,
        &[
            "card",
            "reinstate",
            "--card",
            "300b31:0102",
            "--municipality",
            "131059",
        ],
    );
}

/// `settle` with the settlement agent's account missing closes nothing and
/// says what to add; after `payee set`, it closes the period and writes
/// every file, mode 0600; `--rewrite` makes a period's files again.
#[test]
fn settle_closes_nothing_until_every_account_is_there() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub-data");
    ok(&data, &["init"]);
    for args in [
        &[
            "municipality",
            "add",
            "--code",
            "131059",
            "--name",
            "Bunkyo",
        ][..],
        &[
            "facility",
            "add",
            "--id",
            "shop-1",
            "--municipality",
            "131059",
            "--kind",
            "shop",
            "--name",
            "Shop",
        ],
        &[
            "account",
            "register",
            "--my-key-id",
            "hanako",
            "--municipality",
            "131059",
            "--card",
            "300b31:0102",
        ],
        &[
            "program",
            "create",
            "--id",
            "health",
            "--municipality",
            "131059",
            "--budget",
            "10000",
        ],
        &[
            "grant",
            "--my-key-id",
            "hanako",
            "--program",
            "health",
            "--points",
            "300",
        ],
    ] {
        ok(&data, args);
    }
    // A redeem at the shop: the period owes the merchant a payout.
    let mut hub = mykey_hub::Hub::open(&data).unwrap();
    let shop = common::Chain::new(31);
    let now = mykey_net::unix_now();
    let policy = mykey_hub::NodePolicy {
        valid_until: now.plus_ms(86_400_000),
        ..common::policy(&[mykey_sync_proto::OpKind::Redeem])
    };
    hub.enrol_node(shop.id, &common::fid("shop-1"), policy, now)
        .unwrap();
    let mut shop = shop;
    let account = hub
        .resolve_my_key_id(&mykey_sync_proto::MyKeyId::parse("hanako").unwrap())
        .unwrap();
    let tx = shop.sign(mykey_sync_proto::TxBody::Redeem(mykey_sync_proto::Redeem {
        card: mykey_sync_proto::CardKey::new(vec![0x30, 0x0b, 0x31], vec![0x01, 0x02]).unwrap(),
        account,
        municipality: common::muni(),
        points: common::pts(100),
        merchant: common::fid("shop-1"),
        basis: None,
        card_proof: None,
    }));
    let shop_id = shop.id;
    let r = mykey_sync_proto::session::HubService::ingest(&mut hub, &shop_id, vec![tx], now);
    assert_eq!(r.processed_seq, 1, "{r:?}");
    drop(hub);
    ok(
        &data,
        &[
            "payee",
            "set",
            "--merchant",
            "shop-1",
            "--bank",
            "0001",
            "--branch",
            "004",
            "--number",
            "7654321",
            "--holder",
            "ﾌﾞﾝｷﾖｳｼﾖｳﾃﾝ",
        ],
    );
    let out_dir = dir.path().join("out");
    let out = out_dir.to_str().unwrap();
    let err = fails(&data, &["settle", "--through-now", "--out", out]);
    assert!(
        err.contains("nothing was closed") && err.contains("the settlement agent"),
        "{err}"
    );
    assert!(ok(&data, &["statements", "--municipality", "131059"]).is_empty());
    ok(
        &data,
        &[
            "payee",
            "set",
            "--agent",
            "--bank",
            "0009",
            "--branch",
            "001",
            "--number",
            "1234567",
            "--holder",
            "ｾｲｻﾝﾀﾞｲｺｳ",
            "--code",
            "1234567890",
        ],
    );
    let done = ok(&data, &["settle", "--through-now", "--out", out]);
    assert!(done.contains("settlement run 1 closed"), "{done}");
    let payouts = done
        .lines()
        .find(|l| l.contains("payouts-131059-") && l.ends_with("-p0001.zengin"))
        .unwrap_or_else(|| panic!("no payout file in {done}"))
        .to_owned();
    for line in done.lines().filter(|l| l.starts_with(out)) {
        let mode = std::fs::metadata(line).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{line}");
    }
    let bytes = std::fs::read(&payouts).unwrap();
    std::fs::remove_file(&payouts).unwrap();
    let again = ok(&data, &["settle", "--out", out]);
    assert!(again.contains("closed 0 period(s)"), "{again}");
    assert!(!std::path::Path::new(&payouts).exists());
    let rewrite = ok(&data, &["settle", "--rewrite", "131059:1", "--out", out]);
    assert!(rewrite.contains("(written)"), "{rewrite}");
    assert_eq!(std::fs::read(&payouts).unwrap(), bytes);
    let err = fails(&data, &["settle", "--rewrite", "131059:7", "--out", out]);
    assert!(err.contains("131059:1"), "{err}");
}
