//! `list` and `show` for every noun of `mykey-hub` (issue 22, item 2):
//! the real binary against a town in a temp data directory; each listing
//! in text and in `--json` (parsed with serde_json), times in JST ISO form
//! and never as epoch milliseconds.

mod net_common;

use mykey_sync_proto::{Points, UnixMillis};
use mykey_tests::world::World;
use net_common::{hub_cli, now, run_with_stdin};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A town: the test world's three facilities and nodes, two programmes,
/// three holders (one with points, one spend on a suspended card: an
/// incident), an operator with a token, payees, an exchange operator, a
/// campaign and a closed settlement period.
struct Town {
    _root: tempfile::TempDir,
    hub: PathBuf,
    token_id: String,
}

fn town() -> Town {
    let root = tempfile::tempdir().unwrap();
    // A minute ago, so the stall's spend (a second later) is in the past
    // when `settle --through-now` cuts: the period holds all four
    // transfers however slowly the test runs (it held three when it ran
    // within the second, four otherwise).
    let mut w = World::create(root.path(), UnixMillis(now().0 - 60_000)).unwrap();
    let hanako = w.holders[0].account;
    let card = w.holders[0].card.clone();
    let health = mykey_tests::world::health();
    w.hub
        .admin_grant(hanako, &health, Points::new(1000).unwrap(), w.now)
        .unwrap();
    w.sync_all().unwrap();
    // The stall spends on a card the hub has just suspended: an incident.
    w.hub.suspend_card(&card, w.now).unwrap();
    w.advance_ms(1000);
    let t = w.now;
    w.sites[2]
        .node
        .redeem(&card, Points::new(100).unwrap(), None, t)
        .unwrap();
    w.sync(2).unwrap();
    drop(w);
    let hub = root.path().join("hub");

    let (ok, _, err) = run_with_stdin(
        "mykey-hub",
        &hub,
        &[
            "operator",
            "add",
            "--name",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run_with_stdin(
        "mykey-hub",
        &hub,
        &["operator", "token", "--name", "alice", "--scope", "read"],
        "",
    );
    assert!(ok, "{err}");
    let token_id = err
        .split_whitespace()
        .nth(1)
        .expect("token id on stderr")
        .to_owned();
    for args in [
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
        ][..],
        &[
            "payee",
            "set",
            "--merchant",
            "fest-stall-1",
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
            "ﾌﾞﾝｷﾖｳｸ",
        ],
    ] {
        hub_cli(&hub, args);
    }
    let key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .to_bytes(),
    );
    hub_cli(
        &hub,
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
        ],
    );
    hub_cli(
        &hub,
        &[
            "exchange-operator",
            "allow",
            "--id",
            "card-x",
            "--municipality",
            "131059",
            "--daily-cap",
            "5000",
        ],
    );
    hub_cli(
        &hub,
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
    let out = root.path().join("settlement");
    hub_cli(
        &hub,
        &["settle", "--through-now", "--out", out.to_str().unwrap()],
    );
    Town {
        _root: root,
        hub,
        token_id,
    }
}

/// Runs a read command; its stdout, checked for raw millisecond times.
fn read(hub: &Path, args: &[&str]) -> String {
    let out = hub_cli(hub, args);
    assert_no_millis(&out, args);
    out
}

/// Runs a read command with `--json`; its parsed output.
fn json(hub: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = read(hub, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{a:?}: {e}: {out}"))
}

/// No epoch-millisecond time (13 digits between non-alphanumerics, in
/// this century's range) in `text`.
fn assert_no_millis(text: &str, args: &[&str]) {
    let low = now().0 - 400 * 86_400_000;
    let high = now().0 + 400 * 86_400_000;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let word = &text[start..i];
        let bounded = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        if bounded && word.len() == 13 && word.bytes().all(|b| b.is_ascii_digit()) {
            let v: u64 = word.parse().unwrap();
            assert!(
                !(low..high).contains(&v),
                "{args:?} printed epoch milliseconds {word}: {text}"
            );
        }
    }
}

/// Whether a JST ISO time, e.g. 2026-12-03T09:15:00+09:00.
fn is_jst_iso(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    s.len() == 25
        && s.ends_with("+09:00")
        && s.as_bytes()[10] == b'T'
        && s[..4].parse::<u32>().is_ok()
}

/// The array `v` is, with the item whose `key` is `want`.
fn item<'a>(v: &'a Value, key: &str, want: &str) -> &'a Value {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .find(|i| i[key] == want)
        .unwrap_or_else(|| panic!("no {key} = {want} in {v}"))
}

#[test]
fn every_noun_lists_and_shows_in_text_and_json() {
    let t = town();
    let h = &t.hub;

    // Municipalities.
    assert!(read(h, &["municipality", "list"]).contains("Bunkyo-ku"));
    let m = json(h, &["municipality", "list"]);
    assert_eq!(item(&m, "code", "131059")["facilities"], 3);
    let one = json(h, &["municipality", "show", "--code", "131059"]);
    assert_eq!(one["name"], "Bunkyo-ku");
    assert_eq!(one["facilities"].as_array().unwrap().len(), 3);
    assert!(read(h, &["municipality", "show", "--code", "131059"]).contains("bunkyo-lib"));

    // Facilities.
    assert!(read(h, &["facility", "list"]).contains("fest-stall-1"));
    let f = json(h, &["facility", "list", "--municipality", "131059"]);
    assert_eq!(item(&f, "id", "fest-stall-1")["payee"], true);
    assert_eq!(item(&f, "id", "bunkyo-lib")["kind"], "library");
    let one = json(h, &["facility", "show", "--id", "bunkyo-cc"]);
    assert_eq!(one["nodes"].as_array().unwrap().len(), 1);

    // Nodes: `nodes` keeps its table; `node list` and `--json` share fields.
    let nodes = json(h, &["nodes"]);
    let stall = item(&nodes, "facility", "fest-stall-1");
    assert!(is_jst_iso(&stall["last_contact"]), "{stall}");
    assert!(is_jst_iso(&stall["valid_until"]), "{stall}");
    assert_eq!(json(h, &["node", "list"]), nodes);
    let short = stall["node"].as_str().unwrap();
    assert!(read(h, &["nodes"]).contains(short));
    let one = json(h, &["node", "show", "--node", short]);
    assert_eq!(one["id"], stall["id"]);
    assert_eq!(one["ops"], serde_json::json!(["redeem"]));
    assert_eq!(one["card_limit"], 3000);
    assert!(is_jst_iso(&one["enrolled_at"]));
    assert!(read(h, &["node", "show", "--node", short]).contains("fest-stall-1"));

    // Operators and tokens.
    assert!(read(h, &["operator", "list"]).contains("alice"));
    let ops = json(h, &["operator", "list"]);
    let alice = item(&ops, "name", "alice");
    assert_eq!(alice["role"], "admin");
    assert_eq!(alice["live_tokens"], 1);
    assert!(is_jst_iso(&alice["created_at"]));
    assert!(
        !ops.to_string().contains("argon2"),
        "a password hash: {ops}"
    );
    let one = json(h, &["operator", "show", "--name", "alice"]);
    assert_eq!(one["tokens"][0]["id"], t.token_id.as_str());
    let tokens = json(h, &["token", "list"]);
    let tk = item(&tokens, "id", &t.token_id);
    assert_eq!(tk["scope"], "read");
    assert!(is_jst_iso(&tk["expires_at"]), "{tk}");
    assert_eq!(json(h, &["operator", "tokens"]), tokens);
    assert!(read(h, &["operator", "tokens"]).contains(&t.token_id));
    assert_eq!(
        json(h, &["token", "show", "--token", &t.token_id[..6]])["operator"],
        "alice"
    );
    assert!(read(h, &["token", "list"]).contains(&t.token_id));

    // Payees.
    let p = json(h, &["payee", "list"]);
    assert_eq!(item(&p, "party", "agent")["code"], 1_234_567_890u64);
    assert_eq!(item(&p, "party", "merchant:fest-stall-1")["bank"], "0001");
    assert!(read(h, &["payee", "list"]).contains("municipality:131059"));
    let one = json(h, &["payee", "show", "--merchant", "fest-stall-1"]);
    assert_eq!(one["number"], 7_654_321);
    assert!(read(h, &["payee", "show", "--agent"]).contains("ｾｲｻﾝﾀﾞｲｺｳ"));

    // Programmes.
    assert!(read(h, &["program", "list"]).contains("volunteer"));
    let p = json(h, &["program", "list"]);
    assert_eq!(item(&p, "id", "health")["budget"], 999_000);
    assert_eq!(
        json(h, &["program", "show", "--id", "volunteer"])["budget"],
        100_000
    );

    // Accounts, balances, debts.
    assert!(read(h, &["account", "list"]).contains("Hanako"));
    let a = json(h, &["account", "list", "--municipality", "131059"]);
    assert_eq!(a.as_array().unwrap().len(), 3);
    let hanako = item(&a, "my_key_id", "Hanako");
    assert_eq!(hanako["account"], "A1");
    assert!(is_jst_iso(&hanako["created_at"]));
    let one = json(h, &["account", "show", "--account", "A1"]);
    assert_eq!(one["cards"][0]["status"], "suspended");
    assert_eq!(one["balances"][0]["balance"], 900);
    let b = json(h, &["balance", "--account", "A1"]);
    assert_eq!(item(&b, "municipality", "131059")["balance"], 900);
    assert_eq!(json(h, &["debts"]), serde_json::json!([]));

    // Exchange operators and campaigns.
    let x = json(h, &["exchange-operator", "list"]);
    assert_eq!(
        item(&x, "id", "card-x")["may_credit"],
        serde_json::json!(["131059"])
    );
    let one = json(h, &["exchange-operator", "show", "--id", "card-x"]);
    assert_eq!(one["allowances"][0]["daily_cap"], 5000);
    assert!(read(h, &["exchange-operator", "show", "--id", "card-x"]).contains("Card X"));
    let c = json(h, &["campaign", "list"]);
    assert_eq!(item(&c, "id", "fest")["last_day"], "2026-08-31");
    assert!(read(h, &["campaign", "list"]).contains("2026-08-01..2026-08-31"));
    assert_eq!(
        json(h, &["campaign", "show", "--id", "fest"])["percent"],
        10
    );

    // Settlement periods and statements.
    let p = json(h, &["period", "list"]);
    let first = item(&p, "period", "131059:1");
    assert!(is_jst_iso(&first["closed_at"]), "{first}");
    assert_eq!(
        first["statements"].as_array().map(Vec::len),
        first["statement_lines"].as_u64().map(|n| n as usize),
        "{first}"
    );
    // Two fundings, the grant and the stall's spend.
    assert_eq!(first["ledger_through"], 4, "{first}");
    assert_eq!(json(h, &["statements", "--municipality", "131059"]), p);
    let text = read(h, &["statements", "--municipality", "131059"]);
    assert!(text.contains("+09:00"), "{text}");
    let one = json(h, &["period", "show", "--period", "131059:1"]);
    assert_eq!(one["number"], 1);
    assert!(read(h, &["period", "list"]).contains("131059:1"));

    // Incidents.
    let i = json(h, &["incidents"]);
    let spend = item(&i, "kind", "spend-on-inactive-card");
    assert!(is_jst_iso(&spend["at"]), "{spend}");
    let text = read(h, &["incidents"]);
    assert!(
        text.contains("spend-on-inactive-card") && text.contains("+09:00"),
        "{text}"
    );

    let i = json(h, &["incident", "list"]);
    let n = item(&i, "kind", "spend-on-inactive-card")["id"]
        .as_u64()
        .unwrap();
    let one = json(h, &["incident", "show", "--id", &n.to_string()]);
    assert_eq!(one["detail"], spend["detail"]);
    assert!(read(h, &["incident", "show", "--id", &n.to_string()]).contains("+09:00"));
    assert!(read(h, &["incident", "list"]).contains("spend-on-inactive-card"));

    // A holder's lots and exchanges, strict mode's reservations.
    let l = json(
        h,
        &["lots", "--account", "Hanako", "--municipality", "131059"],
    );
    assert_eq!(l[0]["remaining"], 900, "{l}");
    assert!(is_jst_iso(&l[0]["credited_at"]), "{l}");
    assert_eq!(
        json(h, &["exchanges", "--account", "A1"]),
        serde_json::json!([])
    );
    let e = json(h, &["escrow", "status", "--municipality", "131059"]);
    assert_eq!(e["strict_mode"], false);
    assert_eq!(e["reservations"], serde_json::json!([]));

    let l = json(h, &["ledger", "check"]);
    assert_eq!(l["balanced"], true);
    assert_eq!(
        item(&l["municipalities"], "municipality", "131059")["wallets"],
        900
    );

    // LAN rosters print their issue time in JST too.
    let stall_id = stall["id"].as_str().unwrap();
    hub_cli(
        h,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "fest",
            "--nodes",
            stall_id,
        ],
    );
    assert!(read(h, &["lan", "rosters"]).contains("+09:00"));
    let r = json(h, &["lan", "rosters"]);
    let fest = item(&r, "group", "fest");
    assert!(is_jst_iso(&fest["issued_at"]), "{fest}");
    assert_eq!(fest["members"][0], stall_id);
}

#[test]
fn shows_of_unknown_things_say_where_the_names_are() {
    let root = tempfile::tempdir().unwrap();
    let hub = root.path().join("hub");
    hub_cli(&hub, &["init"]);
    for (args, want) in [
        (
            &["municipality", "show", "--code", "131059"][..],
            "municipality list",
        ),
        (&["facility", "show", "--id", "nowhere"], "facility list"),
        (&["operator", "show", "--name", "bob"], "operator list"),
        (&["token", "show", "--token", "abcdef"], "token list"),
        (&["payee", "show", "--agent"], "payee set"),
        (&["program", "show", "--id", "health"], "program list"),
        (&["campaign", "show", "--id", "fest"], "campaign list"),
        (&["period", "show", "--period", "131059:1"], "period list"),
        (&["incident", "show", "--id", "9"], "incident list"),
        (
            &["exchange-operator", "show", "--id", "card-x"],
            "exchange-operator list",
        ),
    ] {
        let (ok, out, err) = run_with_stdin("mykey-hub", &hub, args, "");
        assert!(!ok, "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Empty lists say what to do, and JSON is an empty array.
    for noun in [
        "municipality",
        "facility",
        "node",
        "operator",
        "token",
        "payee",
        "account",
        "period",
    ] {
        let out = hub_cli(&hub, &[noun, "list"]);
        assert!(out.contains("mykey-hub"), "{noun}: {out}");
        let v: Value = serde_json::from_str(&hub_cli(&hub, &[noun, "list", "--json"])).unwrap();
        assert_eq!(v, serde_json::json!([]), "{noun}");
    }
}
