//! One way to name each thing on `mykey-hub`'s command line (issue 22,
//! item 1): accounts as `A2`, `2` or the My Key ID; nodes and cards by any
//! unique prefix of what listings print (an ambiguous prefix lists the
//! candidates, none says where the names are); a card serial written as
//! openssl prints it names the same card. The real binary against a temp
//! data directory; a refused command changes nothing.

mod net_common;

use mykey_sync_proto::CardKey;
use net_common::{hub_cli, run_with_stdin};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A DER issuer name as JPKI cards carry (C=JP, O=JPKI, OU=…), hex.
const ISSUER: &str = "3050310b3009060355040613024a50310d300b060355040a0c044a504b49312f302d060355040b0c264a504b4920666f7220757365722061757468656e7469636174696f6e";

/// Runs a command that must fail; its stderr.
fn fails(hub: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run_with_stdin("mykey-hub", hub, args, "");
    assert!(!ok, "{args:?} succeeded: {out}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

fn json(hub: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&hub_cli(hub, &a)).unwrap()
}

/// A hub with Bunkyo-ku, a shop and a health programme.
fn hub() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let hub = root.path().join("hub");
    hub_cli(&hub, &["init"]);
    hub_cli(
        &hub,
        &[
            "municipality",
            "add",
            "--code",
            "131059",
            "--name",
            "Bunkyo-ku",
        ],
    );
    hub_cli(
        &hub,
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
    hub_cli(
        &hub,
        &[
            "program",
            "create",
            "--id",
            "health",
            "--municipality",
            "131059",
            "--budget",
            "100000",
        ],
    );
    (root, hub)
}

fn register(hub: &Path, my_key_id: &str, card: &str) -> (bool, String, String) {
    run_with_stdin(
        "mykey-hub",
        hub,
        &[
            "account",
            "register",
            "--my-key-id",
            my_key_id,
            "--municipality",
            "131059",
            "--card",
            card,
        ],
        "",
    )
}

/// Two node ids (64 hex) that share their first four digits, and a third that does not.
fn node_ids() -> (String, String, String) {
    let mut by_prefix: HashMap<String, String> = HashMap::new();
    let id = |i: u32| {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .to_bytes(),
        )
    };
    for i in 0..100_000 {
        let n = id(i);
        if let Some(other) = by_prefix.insert(n[..4].to_owned(), n.clone()) {
            let third = (i + 1..).map(id).find(|t| t[..4] != n[..4]).unwrap();
            return (other, n, third);
        }
    }
    panic!("no two keys share four hex digits");
}

fn enrol(hub: &Path, node: &str) {
    hub_cli(
        hub,
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
            "1000",
            "--exposure-limit",
            "10000",
            "--pin-threshold",
            "2000",
        ],
    );
}

#[test]
fn nodes_are_named_by_any_unique_prefix() {
    let (_root, hub) = hub();
    let (a, b, c) = node_ids();
    for n in [&a, &b, &c] {
        enrol(&hub, n);
    }
    let before = json(&hub, &["node", "list"]);

    // What `nodes` prints (8 digits) and any longer or shorter unique
    // prefix, in either case.
    let c5 = c[..5].to_uppercase();
    for (prefix, want) in [
        (&a[..8], &a),
        (&a[..12], &a),
        (&a[..], &a),
        (&c[..4], &c),
        (&c5[..], &c),
    ] {
        let shown = json(&hub, &["node", "show", "--node", prefix]);
        assert_eq!(shown["id"], want.as_str(), "{prefix}");
    }

    // Ambiguous: both candidates listed; nothing revoked.
    let shared = &a[..4];
    let err = fails(&hub, &["node", "revoke", "--node", shared]);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains(&a[..12]) && err.contains(&b[..12]), "{err}");
    assert!(!err.contains(&c[..12]), "{err}");
    // None: says where the names are.
    let none = ["ffff", "eeee", "dddd"]
        .into_iter()
        .find(|p| ![&a, &b, &c].iter().any(|n| n.starts_with(p)))
        .unwrap();
    let err = fails(&hub, &["node", "revoke", "--node", none]);
    assert!(
        err.contains("no node") && err.contains("mykey-hub nodes"),
        "{err}"
    );
    // Not a prefix at all, or too short to be safe.
    for bad in ["zz12", &a[..3], "A2"] {
        let err = fails(&hub, &["node", "revoke", "--node", bad]);
        assert!(err.contains("4 or more"), "{bad}: {err}");
    }
    assert_eq!(
        json(&hub, &["node", "list"]),
        before,
        "a refused command changed nodes"
    );

    // Every command that takes a node takes a prefix.
    let out = hub_cli(
        &hub,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "fest",
            "--nodes",
            &format!("{},{}", &b[..8], &c[..8]),
        ],
    );
    assert!(out.contains(&b) && out.contains(&c), "{out}");
    let out = hub_cli(&hub, &["quarantine", "list", "--node", &c[..8]]);
    assert!(out.contains("no quarantined spends"), "{out}");
    hub_cli(&hub, &["node", "revoke", "--node", &a[..8]]);
    let after = json(&hub, &["node", "list"]);
    for n in after.as_array().unwrap() {
        let want = if n["id"] == a.as_str() {
            "revoked"
        } else {
            "active"
        };
        assert_eq!(n["state"], want, "{n}");
    }
}

#[test]
fn an_account_is_a2_or_2_or_its_my_key_id() {
    let (_root, hub) = hub();
    let (ok, out, err) = register(&hub, "Hanako", &format!("{ISSUER}:0102"));
    assert!(ok && out.contains("account A1"), "{out}{err}");
    let (ok, out, err) = register(&hub, "Taro", &format!("{ISSUER}:0103"));
    assert!(ok && out.contains("account A2"), "{out}{err}");
    hub_cli(
        &hub,
        &[
            "grant",
            "--account",
            "Taro",
            "--program",
            "health",
            "--points",
            "300",
        ],
    );

    let want = json(&hub, &["account", "show", "--account", "A2"]);
    assert_eq!(want["my_key_id"], "Taro");
    assert_eq!(want["balances"][0]["balance"], 300);
    for name in ["A2", "a2", "2", "Taro"] {
        assert_eq!(
            json(&hub, &["account", "show", "--account", name]),
            want,
            "{name}"
        );
        let b = json(&hub, &["balance", "--account", name]);
        assert_eq!(b[0]["balance"], 300, "{name}");
    }
    assert_eq!(
        json(&hub, &["account", "show", "--my-key-id", "Taro"]),
        want
    );
    // The listing prints the form the commands take.
    let list = json(&hub, &["account", "list"]);
    assert_eq!(list[1]["account"], "A2");

    // Other commands that take an account.
    hub_cli(
        &hub,
        &[
            "account",
            "rename",
            "--account",
            "Taro",
            "--my-key-id",
            "TaroY",
        ],
    );
    // The former My Key ID still names the account.
    assert_eq!(
        json(&hub, &["account", "show", "--account", "Taro"])["my_key_id"],
        "TaroY"
    );
    hub_cli(
        &hub,
        &["lots", "--account", "TaroY", "--municipality", "131059"],
    );
    hub_cli(&hub, &["exchanges", "--account", "2"]);

    let before = json(&hub, &["account", "list"]);
    for (name, want) in [
        ("A9", "no account is named"),
        ("Nobody", "no account is named"),
        ("not an id!", "give its id as A2 or 2"),
    ] {
        let err = fails(
            &hub,
            &[
                "grant",
                "--account",
                name,
                "--program",
                "health",
                "--points",
                "5",
            ],
        );
        assert!(err.contains(want), "{name}: {err}");
        assert!(err.contains("nothing was changed"), "{name}: {err}");
    }
    assert_eq!(json(&hub, &["account", "list"]), before);
    assert_eq!(
        json(&hub, &["balance", "--account", "A2"])[0]["balance"],
        300
    );
}

/// Two card serials whose 8-hex card hashes share their first four digits.
fn colliding_serials() -> (String, String, String) {
    let mut seen: HashMap<String, String> = HashMap::new();
    for i in 0x1000u32..0x20_0000 {
        let serial = hex::encode(&i.to_be_bytes()[1..]);
        // Registered as the certificate would hold it.
        let key = CardKey::parse(&format!("{ISSUER}:{serial}")).unwrap();
        let short = key.canonical().short();
        if let Some(other) = seen.insert(short[..4].to_owned(), serial.clone()) {
            return (other, serial, short[..4].to_owned());
        }
    }
    panic!("no collision");
}

#[test]
fn a_serial_as_openssl_prints_it_is_the_same_card() {
    let (_root, hub) = hub();
    // As a certificate holds the serial: a zero byte before a high first byte.
    let (ok, out, err) = register(&hub, "Hanako", &format!("{ISSUER}:00a1b2c3d4"));
    assert!(ok, "{out}{err}");
    let before = json(&hub, &["account", "list"]);
    // As `openssl x509 -serial` prints it (no zero byte, upper case), and as
    // `openssl x509 -text` does (colons): the same card, refused.
    for spelling in ["A1B2C3D4", "a1:b2:c3:d4", "00:A1:B2:C3:D4", "0000a1b2c3d4"] {
        let (ok, out, err) = register(&hub, "Taro", &format!("{ISSUER}:{spelling}"));
        assert!(!ok, "{spelling}: registered a second account: {out}");
        assert!(
            err.contains("already registered to account A1"),
            "{spelling}: {err}"
        );
        let (ok, out, err) = run_with_stdin(
            "mykey-hub",
            &hub,
            &[
                "card",
                "add",
                "--account",
                "A1",
                "--card",
                &format!("{ISSUER}:{spelling}"),
            ],
            "",
        );
        assert!(!ok && err.contains("already registered"), "{out}{err}");
    }
    assert_eq!(json(&hub, &["account", "list"]), before);
    let err = fails(&hub, &["account", "show", "--account", "Taro"]);
    assert!(err.contains("no account is named"), "{err}");

    // Typed the openssl way first, it is kept as the certificate holds it,
    // so the card's own spelling is refused as the same card.
    let (ok, out, err) = register(&hub, "Jiro", &format!("{ISSUER}:B1:B2:B3"));
    assert!(ok, "{out}{err}");
    let jiro = json(&hub, &["account", "show", "--account", "Jiro"]);
    let key = jiro["cards"][0]["key"].as_str().unwrap();
    assert!(key.ends_with(":00b1b2b3"), "{key}");
    let (ok, _, err) = register(&hub, "Saburo", key);
    assert!(
        !ok && err.contains("already registered to account A2"),
        "{err}"
    );

    // Suspend and reinstate take the card by any spelling of its key or a
    // prefix of its hash, as `account show` prints it.
    let short = jiro["cards"][0]["card"].as_str().unwrap();
    let out = hub_cli(&hub, &["card", "suspend", "--card", &short[..6]]);
    assert!(out.contains(short), "{out}");
    assert_eq!(
        json(&hub, &["account", "show", "--account", "A2"])["cards"][0]["status"],
        "suspended"
    );
    let out = hub_cli(
        &hub,
        &[
            "card",
            "reinstate",
            "--card",
            &format!("{ISSUER}:b1b2b3"),
            "--municipality",
            "131059",
        ],
    );
    assert!(out.contains(short), "{out}");
    assert_eq!(
        json(&hub, &["account", "show", "--account", "A2"])["cards"][0]["status"],
        "active"
    );
}

#[test]
fn a_card_hash_prefix_must_fit_one_card() {
    let (_root, hub) = hub();
    let (s1, s2, prefix) = colliding_serials();
    assert!(register(&hub, "Hanako", &format!("{ISSUER}:{s1}")).0);
    assert!(register(&hub, "Taro", &format!("{ISSUER}:{s2}")).0);
    let before = json(&hub, &["account", "list"]);
    let err = fails(&hub, &["card", "suspend", "--card", &prefix]);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains("A1") && err.contains("A2"), "{err}");
    let err = fails(&hub, &["card", "suspend", "--card", "0000:"]);
    assert!(err.contains("ISSUER_HEX:SERIAL_HEX"), "{err}");
    let err = fails(
        &hub,
        &["card", "suspend", "--card", &format!("{ISSUER}:0bad")],
    );
    assert!(
        err.contains("no card") && err.contains("account show"),
        "{err}"
    );
    let err = fails(&hub, &["card", "suspend", "--card", "12"]);
    assert!(err.contains("4 or more"), "{err}");
    for a in ["A1", "A2"] {
        let shown = json(&hub, &["account", "show", "--account", a]);
        assert_eq!(shown["cards"][0]["status"], "active", "{a}");
    }
    assert_eq!(json(&hub, &["account", "list"]), before);
}

#[test]
fn a_card_kept_as_openssl_printed_it_is_still_one_card() {
    // Before serials were normalised, the CLI kept a key as it was typed:
    // a row without the certificate's zero byte, as an older hub has it.
    let (_root, hub) = hub();
    let typed = CardKey::parse(&format!("{ISSUER}:a1b2c3d4")).unwrap();
    let mut h = mykey_hub::Hub::open(&hub).unwrap();
    let m = mykey_sync_proto::MunicipalityCode::parse("131059").unwrap();
    let old = mykey_sync_proto::MyKeyId::parse("Hanako").unwrap();
    h.register_account(&old, m, &typed, net_common::now())
        .unwrap();
    drop(h);
    let before = json(&hub, &["account", "list"]);
    // The card's own spelling (as `mykey-node card read` prints it).
    let (ok, out, err) = register(&hub, "Taro", &format!("{ISSUER}:00a1b2c3d4"));
    assert!(!ok, "registered the card a second time: {out}");
    assert!(err.contains("already registered to account A1"), "{err}");
    assert_eq!(json(&hub, &["account", "list"]), before);
    // And the card is found by it.
    let out = hub_cli(
        &hub,
        &[
            "card",
            "suspend",
            "--card",
            &format!("{ISSUER}:00:A1:B2:C3:D4"),
        ],
    );
    assert!(out.contains(&typed.short()), "{out}");
}

#[test]
fn a_node_names_its_hub_by_a_prefix_with_its_address() {
    let root = tempfile::tempdir().unwrap();
    let hub = root.path().join("hub");
    let out = hub_cli(&hub, &["init"]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("hub id: "))
        .unwrap()
        .to_owned();
    let peer = mykey_net::identity::peer_id_of(&mykey_sync_proto::NodeId::parse(&id).unwrap());
    let addr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}");
    let toml = |dir: &Path| std::fs::read_to_string(dir.join("node.toml")).unwrap();
    let node = |name: &str, args: &[&str]| {
        let dir = root.path().join(name);
        let r = run_with_stdin("mykey-node", &dir, &[&["init"], args].concat(), "");
        (dir, r)
    };

    // A prefix with the address; the address alone; the whole id alone.
    for (name, args) in [
        ("a", vec!["--hub-key", &id[..8], "--hub-addr", &addr]),
        ("b", vec!["--hub-addr", &addr]),
        ("c", vec!["--hub-key", &id]),
    ] {
        let (dir, (ok, out, err)) = node(name, &args);
        assert!(ok, "{args:?}: {out}{err}");
        assert!(toml(&dir).contains(&id), "{args:?}: {}", toml(&dir));
    }

    // A prefix alone, or one of another hub: refused, no directory made.
    let other = "0000000000000000000000000000000000000000000000000000000000000000";
    let wrong = if id.starts_with("abcd") {
        "dcba"
    } else {
        "abcd"
    };
    for (name, args, want) in [
        ("d", vec!["--hub-key", &id[..8]], "is a prefix"),
        (
            "e",
            vec!["--hub-key", wrong, "--hub-addr", &addr],
            "is not the key of the hub",
        ),
        (
            "f",
            vec!["--hub-key", other, "--hub-addr", &addr],
            "is not the key of the hub",
        ),
        (
            "g",
            vec!["--hub-key", &id[..3], "--hub-addr", &addr],
            "4 or more",
        ),
    ] {
        let (dir, (ok, out, err)) = node(name, &args);
        assert!(!ok, "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!dir.exists(), "{args:?} made {}", dir.display());
    }
}

#[test]
fn strict_mode_takes_node_prefixes_and_account_names() {
    let (_root, hub) = hub();
    let (a, b, _) = node_ids();
    enrol(&hub, &a);
    enrol(&hub, &b);
    assert!(register(&hub, "Hanako", &format!("{ISSUER}:0102")).0);
    assert!(register(&hub, "Taro", &format!("{ISSUER}:0103")).0);
    for who in ["Hanako", "A2"] {
        hub_cli(
            &hub,
            &[
                "grant",
                "--account",
                who,
                "--program",
                "health",
                "--points",
                "400",
            ],
        );
    }
    hub_cli(
        &hub,
        &["municipality", "strict", "--code", "131059", "--on"],
    );
    // An ambiguous node prefix grants nothing.
    let err = fails(
        &hub,
        &[
            "escrow",
            "grant",
            "--municipality",
            "131059",
            "--nodes",
            &a[..4],
            "--accounts",
            "A1",
        ],
    );
    assert!(err.contains("ambiguous"), "{err}");
    let e = json(&hub, &["escrow", "status", "--municipality", "131059"]);
    assert_eq!(e["reservations"], serde_json::json!([]));

    let out = hub_cli(
        &hub,
        &[
            "escrow",
            "grant",
            "--municipality",
            "131059",
            "--nodes",
            &format!("{},{}", &a[..8], &b[..8]),
            "--accounts",
            "Hanako,2",
        ],
    );
    assert!(out.contains("over 2 accounts"), "{out}");
    let e = json(&hub, &["escrow", "status", "--municipality", "131059"]);
    let rows = e["reservations"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{e}");
    assert!(
        rows.iter()
            .any(|r| r["account"] == "A1" && r["node"] == a[..8])
    );
    assert!(
        rows.iter()
            .any(|r| r["account"] == "A2" && r["node_id"] == b.as_str())
    );
    hub_cli(
        &hub,
        &[
            "escrow",
            "release",
            "--municipality",
            "131059",
            "--nodes",
            &b[..6],
        ],
    );
    let e = json(&hub, &["escrow", "status", "--municipality", "131059"]);
    let left: Vec<&Value> = e["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reserved"].as_u64() > Some(0))
        .collect();
    assert!(left.iter().all(|r| r["node_id"] == a.as_str()), "{e}");
}

/// The node's side: `--card` takes the card key in any spelling of its
/// serial, or a unique prefix of the card hash listings print; a name that
/// fits no card, or is no card name, is said and nothing is signed.
#[test]
fn a_node_names_a_card_by_its_hash_prefix_or_any_serial_spelling() {
    use net_common::{World, caught_up, node_cli, start_hub, start_node, wait_until};
    let w = World::create(1, 3);
    let dir = &w.nodes[0];
    let (_hub, addr) = start_hub(&w.hub_dir, 0);
    let mut run = start_node("run", dir, Some(&addr), &[]);
    wait_until("first sync", std::time::Duration::from_secs(30), || {
        caught_up(dir)
    });
    run.terminate();
    let (card, account) = &w.holders[0];
    let short = card.short();
    let registered = |name: &str| {
        let out = node_cli(dir, &["lookup", "--card", name]);
        assert!(
            out.starts_with("registered") && out.contains(&account.to_string()),
            "{name}: {out}"
        );
    };
    registered(&card.to_string());
    registered(&short);
    registered(&short[..6]);
    registered(&short.to_uppercase());
    // The serial with a leading zero byte more, in capitals with colons, as
    // openssl prints serials.
    let text = card.to_string();
    let (issuer, serial) = text.split_once(':').unwrap();
    let colons = format!("00{serial}")
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    registered(&format!("{issuer}:{colons}"));

    // A hash prefix that fits none of the holders' cards, and no name at all.
    let unknown = (0..=0xffff_u32)
        .map(|i| format!("{i:08x}"))
        .find(|p| w.holders.iter().all(|(c, _)| !c.short().starts_with(p)))
        .unwrap();
    let last_seq = || {
        let v: Value = serde_json::from_str(&node_cli(dir, &["status", "--json"])).unwrap();
        v["last_seq"].as_u64()
    };
    let before = last_seq();
    let (ok, _, err) = run_with_stdin(
        "mykey-node",
        dir,
        &["redeem", "--card", &unknown, "--points", "1"],
        "",
    );
    assert!(!ok && err.contains("no card this node knows"), "{err}");
    let (ok, _, err) = run_with_stdin("mykey-node", dir, &["lookup", "--card", "zz"], "");
    assert!(!ok && err.contains("is not a card"), "{err}");
    assert_eq!(last_seq(), before, "nothing signed");
}
