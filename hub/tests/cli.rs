//! The `mykey-hub` binary end to end on a temp data directory.

mod common;
use common::{fails, ok};

#[test]
fn operator_workflow_with_helpful_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub-data");
    let err = fails(&data, &["nodes"]);
    assert!(err.contains("mykey-hub init"), "{err}");

    let out = ok(&data, &["init"]);
    let hub_id = out
        .lines()
        .find_map(|l| l.strip_prefix("hub id: "))
        .unwrap();
    assert_eq!(ok(&data, &["id"]).trim(), hub_id);
    // The key never reaches stdout or stderr.
    let key = std::fs::read_to_string(data.join("hub.key")).unwrap();
    assert!(!out.contains(key.trim()));

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
            "facility",
            "add",
            "--id",
            "shop-1",
            "--municipality",
            "131059",
            "--kind",
            "shop",
            "--name",
            "Sweets",
        ],
    );
    let node = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    ok(
        &data,
        &[
            "node",
            "enrol",
            "--node",
            node,
            "--facility",
            "shop-1",
            "--ops",
            "redeem",
            "--card-limit",
            "3000",
            "--exposure-limit",
            "50000",
            "--pin-threshold",
            "1000",
            "--valid-days",
            "30",
        ],
    );
    let err = fails(
        &data,
        &[
            "node",
            "enrol",
            "--node",
            node,
            "--facility",
            "nowhere",
            "--ops",
            "redeem",
            "--card-limit",
            "1",
            "--exposure-limit",
            "1",
            "--pin-threshold",
            "1",
        ],
    );
    assert!(err.contains("facility add"), "{err}");
    let out = ok(
        &data,
        &[
            "account",
            "register",
            "--my-key-id",
            "Hanako",
            "--municipality",
            "131059",
            "--card",
            "300b31:0102",
        ],
    );
    assert!(out.contains("account A1"), "{out}");
    ok(
        &data,
        &[
            "program",
            "create",
            "--id",
            "volunteer",
            "--municipality",
            "131059",
            "--budget",
            "1000",
        ],
    );
    ok(
        &data,
        &[
            "grant",
            "--my-key-id",
            "hanako",
            "--program",
            "volunteer",
            "--points",
            "300",
        ],
    );
    let out = ok(&data, &["balance", "--account", "A1"]);
    assert!(out.contains("balance 300 pt, debt 0 pt"), "{out}");
    ok(&data, &["card", "suspend", "--card", "300b31:0102"]);
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
    // Strict mode: rights only once the municipality is strict; grant
    // reserves the balance, release returns it.
    let escrow = |verb: &str| -> Vec<String> {
        let mut a = vec!["escrow".to_owned(), verb.to_owned()];
        a.extend(["--municipality", "131059"].map(str::to_owned));
        a
    };
    let args = |v: &[String], more: &[&str]| -> Vec<String> {
        v.iter()
            .cloned()
            .chain(more.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    let grant_args = args(&escrow("grant"), &["--nodes", node, "--all"]);
    let grant_args: Vec<&str> = grant_args.iter().map(String::as_str).collect();
    let err = fails(&data, &grant_args);
    assert!(
        err.contains("municipality strict --code 131059 --on"),
        "{err}"
    );
    let out = ok(
        &data,
        &["municipality", "strict", "--code", "131059", "--on"],
    );
    assert!(out.contains("strict mode on"), "{out}");
    let out = ok(&data, &grant_args);
    assert!(out.contains("300 pt reserved among 1 nodes"), "{out}");
    let out = ok(&data, &["balance", "--account", "A1"]);
    assert!(out.contains("balance 0 pt"), "{out}");
    let status = escrow("status");
    let status: Vec<&str> = status.iter().map(String::as_str).collect();
    let out = ok(&data, &status);
    assert!(
        out.contains("strict mode on") && out.contains("300"),
        "{out}"
    );
    let release = escrow("release");
    let release: Vec<&str> = release.iter().map(String::as_str).collect();
    let out = ok(&data, &release);
    assert!(out.contains("300 pt back to 1 wallets"), "{out}");
    let out = ok(&data, &["balance", "--account", "A1"]);
    assert!(out.contains("balance 300 pt, debt 0 pt"), "{out}");
    let out = ok(&data, &["nodes"]);
    assert!(out.contains("d75a9801") && out.contains("shop-1"), "{out}");
    let out = ok(&data, &["ledger", "check"]);
    assert!(out.contains("ledger balanced"), "{out}");
    ok(&data, &["node", "revoke", "--node", node]);
    let err = fails(&data, &["node", "revoke", "--node", node]);
    assert!(err.contains("already revoked"), "{err}");
    let err = fails(&data, &["balance", "--my-key-id", "Nobody"]);
    assert!(err.contains("no account has My Key ID"), "{err}");
}
