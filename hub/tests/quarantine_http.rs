//! The quarantine in operators' hands, over real HTTP on 127.0.0.1 against
//! the real server (as `mykey-hub serve` runs it), and in `mykey-hub nodes`:
//! spends a node signed beyond its enrolled bounds are listed (filters like
//! `mykey-hub quarantine list`), flagged on the overview and the node's
//! page, counted in `/metrics` and on the liability report's
//! `quarantine-held` line, and released or rejected only by an admin, once,
//! with who and why.
#![allow(missing_docs)]

mod common;

use common::*;
use mykey_hub::access::{Role, Scope};
use mykey_hub::store::bounds::{QuarantineFilter, QuarantineState};
use mykey_hub::{LedgerAccount, TransferKind};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{MyKeyId, OpKind, Redeem, TxBody};
use serde_json::Value;
use std::net::SocketAddr;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    request(addr, "GET", path, &bearer(token), b"")
}

fn decide(addr: SocketAddr, id: u64, what: &str, token: &str, body: &str) -> (u16, String) {
    request(
        addr,
        "POST",
        &format!("/api/quarantine/{id}/{what}"),
        &bearer(token),
        body.as_bytes(),
    )
}

/// A POST whose body is plain text, not JSON: (status, body).
fn plain_post(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nwhy"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (out[9..12].parse().unwrap(), body)
}

/// Points credited to a facility's payable for redeems: what settlement pays.
fn payable(f: &mut Fixture, facility: &str) -> u64 {
    f.hub
        .transfers(0, 100_000)
        .unwrap()
        .iter()
        .filter(|t| {
            matches!(&t.credit, LedgerAccount::MerchantPayable(x, _) if x.as_str() == facility)
                && matches!(t.kind, TransferKind::Redeem | TransferKind::RedeemOnDebt)
        })
        .map(|t| t.amount.get())
        .sum()
}

/// One metric sample's value, by its full name and labels.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Shop-1 (Bunkyo; PIN threshold 1000) signs 3000 pt on Alice (who has
/// 4000) and 5000 pt on Bob (who has nothing), both without a card proof;
/// shop-9 (Chiyoda) signs 2000 pt on Carol without one. All three are held.
struct Held {
    f: Fixture,
    chiyoda: mykey_sync_proto::NodeId,
}

fn held() -> Held {
    let mut f = Fixture::new();
    let (alice, bob) = (f.alice, f.bob);
    f.hub.admin_grant(alice, &program(), pts(4000), T0).unwrap();
    let shop = f.shop.id;
    let txs = vec![
        f.shop.sign(redeem(alice, 1, 3000)),
        f.shop.sign(redeem(bob, 2, 5000)),
    ];
    let r = f.hub.ingest(&shop, txs, T0);
    for o in outcomes(&r) {
        assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    }
    let mut chiyoda = Chain::new(21);
    f.hub
        .enrol_node(chiyoda.id, &fid("shop-9"), policy(&[OpKind::Redeem]), T0)
        .unwrap();
    let carol = f
        .hub
        .register_account(
            &MyKeyId::parse("Carol03").unwrap(),
            other_muni(),
            &card(3),
            T0,
        )
        .unwrap();
    let tx = chiyoda.sign(TxBody::Redeem(Redeem {
        card: card(3),
        account: carol,
        municipality: other_muni(),
        points: pts(2000),
        merchant: fid("shop-9"),
        basis: None,
        card_proof: None,
    }));
    let id = chiyoda.id;
    let r = f.hub.ingest(&id, vec![tx], T0);
    assert!(
        matches!(outcomes(&r)[..], [Outcome::Accepted { .. }]),
        "{r:?}"
    );
    let n = f
        .hub
        .quarantined(&QuarantineFilter::default())
        .unwrap()
        .len();
    assert_eq!(n, 3, "the fixture's three spends are held");
    Held { f, chiyoda: id }
}

#[test]
fn operators_list_filter_and_inspect_held_spends_within_their_scope() {
    let Held { mut f, chiyoda } = held();
    let admin = f.api_token();
    let prometheus = f.token_for("ops", Role::Admin, Scope::Read);
    let viewer = f.token_for("auditor", Role::Viewer, Scope::Admin);
    let staff = f.token_for("bunkyo", Role::Staff(muni()), Scope::Admin);
    let addr = serve(&f);

    let (s, body) = get(addr, "/api/quarantine", &admin);
    assert_eq!(s, 200, "{body}");
    let all = json(&body);
    let items = all["items"].as_array().unwrap();
    let points: Vec<u64> = items
        .iter()
        .map(|i| i["points"].as_u64().unwrap())
        .collect();
    assert_eq!(points, [3000, 5000, 2000], "oldest first");
    assert!(
        items
            .iter()
            .all(|i| i["state"] == "held" && i["rule"] == "card-proof")
    );
    assert_eq!(all["truncated"], false);

    // Filters as the CLI's.
    let count = |path: &str, token: &str| {
        let (s, body) = get(addr, path, token);
        assert_eq!(s, 200, "{path}: {body}");
        json(&body)["items"].as_array().unwrap().len()
    };
    assert_eq!(
        count(&format!("/api/quarantine?node={}", f.shop.id), &admin),
        2
    );
    assert_eq!(count("/api/quarantine?facility=shop-9", &admin), 1);
    assert_eq!(count("/api/quarantine?municipality=131016", &admin), 1);
    assert_eq!(count("/api/quarantine?state=released", &admin), 0);
    assert_eq!(
        count("/api/quarantine?state=all&municipality=&facility=", &admin),
        3
    );
    for (path, word) in [
        ("/api/quarantine?state=paid", "state"),
        ("/api/quarantine?municipality=131058", "municipality"),
        ("/api/quarantine?node=abc", "node"),
        ("/api/quarantine/x", "is not a quarantined spend"),
    ] {
        let (s, body) = get(addr, path, &admin);
        assert_eq!(s, 400, "{path}: {body}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains(word),
            "{path}: {body}"
        );
    }
    let (s, body) = get(addr, "/api/quarantine/999", &admin);
    assert_eq!(s, 404, "{body}");

    // One spend with its evidence: the signed redeem as the node signed it.
    let id = items[1]["id"].as_u64().unwrap();
    let (s, body) = get(addr, &format!("/api/quarantine/{id}"), &viewer);
    assert_eq!(s, 200, "{body}");
    let one = json(&body);
    assert_eq!(one["points"], 5000);
    let ev = &one["evidence"];
    assert_eq!(ev["signature_valid"], true, "{ev}");
    assert_eq!(ev["redeem_points"], 5000);
    assert_eq!(ev["merchant"], "shop-1");
    assert_eq!(ev["card_proof"], false);
    let signed = hex::decode(ev["signed_hex"].as_str().unwrap()).unwrap();
    let tx = mykey_sync_proto::SignedTx::from_bytes(&signed).unwrap();
    assert_eq!(tx.id().to_string(), one["tx"].as_str().unwrap());

    // A read-only (Prometheus) token sees no spends; a viewer sees all;
    // Bunkyo's staff see Bunkyo's only, and not Chiyoda's by number.
    let (s, _) = get(addr, "/api/quarantine", &prometheus);
    assert_eq!(s, 403);
    assert_eq!(count("/api/quarantine", &viewer), 3);
    let (s, body) = get(addr, "/api/quarantine", &staff);
    assert_eq!(s, 200);
    let mine = json(&body);
    let munis: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["municipality"].as_str().unwrap())
        .collect();
    assert_eq!(munis, ["131059", "131059"]);
    let (s, _) = get(addr, "/api/quarantine?municipality=131016", &staff);
    assert_eq!(s, 403);
    let chiyoda_item = items[2]["id"].as_u64().unwrap();
    let (s, _) = get(addr, &format!("/api/quarantine/{chiyoda_item}"), &staff);
    assert_eq!(s, 404, "another municipality's spend is not shown to staff");

    // The node's flag and alert in the API.
    let (_, body) = get(addr, &format!("/api/nodes/{}", f.shop.id), &viewer);
    let detail = json(&body);
    let node = &detail["node"];
    assert_eq!(node["quarantine_held_items"], 2, "{detail}");
    assert_eq!(node["quarantine_held_points"], 8000);
    let (_, body) = get(addr, "/api/alerts", &prometheus);
    let alerts = json(&body);
    let flagged: Vec<(String, u64)> = alerts["alerts"]
        .as_array()
        .unwrap_or_else(|| panic!("{alerts}"))
        .iter()
        .filter(|a| a["kind"] == "quarantine")
        .map(|a| {
            (
                a["node"].as_str().unwrap().to_owned(),
                a["points"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        flagged.contains(&(f.shop.id.to_string(), 8000)),
        "{flagged:?}"
    );
    assert!(
        flagged.contains(&(chiyoda.to_string(), 2000)),
        "{flagged:?}"
    );

    // The dashboard: the overview's section and column, the node's flag,
    // the quarantine page (filtered for staff as the API is).
    let (s, page) = get(addr, "/?lang=en", &viewer);
    assert_eq!(s, 200);
    assert!(
        page.contains(r#"<section id="quarantine" data-held-items="3">"#),
        "{page}"
    );
    assert!(
        page.contains(r#"data-facility="shop-1" data-municipality="131059" data-held-items="2" data-held-points="8000""#),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"data-node="{}" data-health="alert""#, f.shop.id)),
        "{page}"
    );
    assert!(page.contains(r#"data-quarantine-items="2" data-quarantine-points="8000""#));
    let (_, page) = get(addr, &format!("/nodes/{}?lang=en", f.shop.id), &viewer);
    assert!(
        page.contains(r#"id="quarantine-flag" data-items="2" data-points="8000""#),
        "{page}"
    );
    let (s, page) = get(addr, "/quarantine?lang=en", &staff);
    assert_eq!(s, 200);
    assert!(page.contains(r#"data-count="2""#), "{page}");
    assert!(!page.contains(&chiyoda.to_string()), "{page}");
    let (s, _) = get(addr, "/quarantine?municipality=131016", &staff);
    assert_eq!(s, 403);
    let (s, _) = get(addr, "/quarantine", &prometheus);
    assert_eq!(s, 403);
    let (s, page) = get(addr, "/quarantine?state=nope", &viewer);
    assert_eq!(s, 400, "{page}");

    // /metrics: held per facility.
    let (s, metrics) = get(addr, "/metrics", &prometheus);
    assert_eq!(s, 200);
    for (series, want) in [
        (
            r#"mykey_hub_quarantine_held_items{municipality="131059",facility="shop-1"}"#,
            2,
        ),
        (
            r#"mykey_hub_quarantine_held_points{municipality="131059",facility="shop-1"}"#,
            8000,
        ),
        (
            r#"mykey_hub_quarantine_held_points{municipality="131016",facility="shop-9"}"#,
            2000,
        ),
        (
            r#"mykey_hub_quarantine_decisions_total{outcome="released"}"#,
            0,
        ),
        (r#"mykey_hub_alerts{kind="quarantine"}"#, 2),
    ] {
        assert_eq!(sample(&metrics, series), Some(want), "{series}\n{metrics}");
    }
}

#[test]
fn only_an_admin_releases_or_rejects_once_with_who_and_why() {
    let Held { mut f, .. } = held();
    let admin = f.api_token();
    let others = [
        ("read token", f.token_for("ops", Role::Admin, Scope::Read)),
        (
            "staff-scope token",
            f.token_for("ops", Role::Admin, Scope::Staff),
        ),
        ("viewer", f.token_for("auditor", Role::Viewer, Scope::Admin)),
        (
            "staff",
            f.token_for("bunkyo", Role::Staff(muni()), Scope::Admin),
        ),
    ];
    let admin2 = f.token_for("second-admin", Role::Admin, Scope::Admin);
    let addr = serve(&f);
    let items = f.hub.quarantined(&QuarantineFilter::default()).unwrap();
    let (alice_spend, bob_spend) = (items[0].id, items[1].id);
    let paid_before = payable(&mut f, "shop-1");

    // Nobody but an admin with an admin-scope token or session may decide.
    for (who, t) in &others {
        for what in ["release", "reject"] {
            let (s, body) = decide(addr, alice_spend, what, t, r#"{"why": "looks fine"}"#);
            assert_eq!(s, 403, "{who} {what}: {body}");
            assert!(body.contains("may not"), "{who}: {body}");
        }
    }
    assert_eq!(payable(&mut f, "shop-1"), paid_before, "nothing was paid");
    assert!(
        f.hub
            .quarantined(&QuarantineFilter::default())
            .unwrap()
            .iter()
            .all(|q| q.state == QuarantineState::Held)
    );

    // Bad requests change nothing and say what to send.
    for (body, status) in [
        (r#"{"why": "   "}"#, 422),
        (r#"{}"#, 400),
        (r#"{"why": "ok", "by": "someone-else"}"#, 400),
        ("not json", 400),
    ] {
        let (s, answer) = decide(addr, alice_spend, "release", &admin, body);
        assert_eq!(s, status, "{body}: {answer}");
        assert!(json(&answer)["error"].is_string(), "{answer}");
    }
    let long = format!(r#"{{"why": "{}"}}"#, "x".repeat(1001));
    assert_eq!(decide(addr, alice_spend, "release", &admin, &long).0, 422);
    let (s, answer) = plain_post(
        addr,
        &format!("/api/quarantine/{alice_spend}/release"),
        &admin,
    );
    assert_eq!(s, 415, "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert_eq!(
        decide(addr, 999, "release", &admin, r#"{"why": "x"}"#).0,
        404
    );
    assert_eq!(payable(&mut f, "shop-1"), paid_before, "still nothing paid");

    // Two admins release the same spend at once: it is paid once.
    let why = "holder confirmed the sale by phone";
    let body = format!(r#"{{"why": "{why}"}}"#);
    let racers: Vec<_> = [admin.clone(), admin2.clone()]
        .into_iter()
        .map(|t| {
            let body = body.clone();
            std::thread::spawn(move || decide(addr, alice_spend, "release", &t, &body))
        })
        .collect();
    let mut answers: Vec<(u16, String)> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort();
    assert_eq!(
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        [200, 409],
        "{answers:?}"
    );
    let released = json(&answers[0].1);
    assert_eq!(released["state"], "released");
    assert_eq!(released["why"], why);
    let by = released["decided_by"].as_str().unwrap();
    assert!(
        by == "ops" || by == "second-admin",
        "{by}: the token's operator, never the body"
    );
    assert_eq!(payable(&mut f, "shop-1"), paid_before + 3000, "paid once");

    // Reject Bob's: never paid; decisions are final both ways.
    let (s, body) = decide(
        addr,
        bob_spend,
        "reject",
        &admin,
        r#"{"why": "no such sale"}"#,
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(json(&body)["decided_by"], "ops");
    for what in ["release", "reject"] {
        let (s, body) = decide(
            addr,
            bob_spend,
            what,
            &admin,
            r#"{"why": "changed my mind"}"#,
        );
        assert_eq!(s, 409, "{body}");
        assert!(body.contains("final") || body.contains("already"), "{body}");
    }
    assert_eq!(payable(&mut f, "shop-1"), paid_before + 3000);
    assert_eq!(f.hub.balance(f.bob, muni()).unwrap().debt.get(), 0);
    let rows = f.hub.quarantined(&QuarantineFilter::default()).unwrap();
    let decided: Vec<_> = rows
        .iter()
        .map(|q| (q.state.name(), q.why.as_deref()))
        .collect();
    assert_eq!(
        decided,
        [
            ("released", Some(why)),
            ("rejected", Some("no such sale")),
            ("held", None)
        ]
    );
    f.hub.check_conservation().unwrap();

    // The figures follow: shop-1 no longer flagged, decisions counted.
    let prometheus = &others[0].1;
    let (_, metrics) = get(addr, "/metrics", prometheus);
    for (series, want) in [
        (
            r#"mykey_hub_quarantine_held_items{municipality="131059",facility="shop-1"}"#,
            0,
        ),
        (
            r#"mykey_hub_quarantine_held_points{municipality="131059",facility="shop-1"}"#,
            0,
        ),
        (
            r#"mykey_hub_quarantine_held_points{municipality="131016",facility="shop-9"}"#,
            2000,
        ),
        (
            r#"mykey_hub_quarantine_decisions_total{outcome="released"}"#,
            1,
        ),
        (
            r#"mykey_hub_quarantine_decisions_total{outcome="rejected"}"#,
            1,
        ),
        (r#"mykey_hub_alerts{kind="quarantine"}"#, 1),
    ] {
        assert_eq!(sample(&metrics, series), Some(want), "{series}\n{metrics}");
    }
    let (_, body) = get(addr, &format!("/api/nodes/{}", f.shop.id), &admin);
    assert!(body.contains(r#""quarantine_held_items":0"#), "{body}");
    let (_, page) = get(addr, "/quarantine?state=all&lang=en", &admin);
    assert!(
        page.contains(why) && page.contains("no such sale"),
        "{page}"
    );
}

#[test]
fn the_liability_report_and_mykey_hub_nodes_show_what_is_held() {
    let Held { mut f, chiyoda } = held();
    let admin = f.api_token();
    let addr = serve(&f);

    // JSON: beside the liability, not in it.
    let (s, body) = get(addr, "/api/economy/liabilities", &admin);
    assert_eq!(s, 200, "{body}");
    let report = json(&body);
    let bunkyo = report["municipalities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["municipality"] == "131059")
        .unwrap();
    let q = &bunkyo["quarantine"];
    assert_eq!(
        (q["held_points"].as_u64(), q["held_items"].as_u64()),
        (Some(8000), Some(2)),
        "{q}"
    );
    assert_eq!(q["held_yen"], 8000);
    assert_eq!(q["by_facility"][0]["facility"], "shop-1");
    // CSV: the `quarantine-held` line per municipality and facility.
    let (s, csv) = get(addr, "/api/economy/liabilities?format=csv", &admin);
    assert_eq!(s, 200);
    for line in [
        "131059,quarantine-held,total,,8000,8000",
        "131059,quarantine-held,facility,shop-1,8000,8000",
        "131016,quarantine-held,total,,2000,2000",
    ] {
        assert!(csv.lines().any(|l| l == line), "{line} in\n{csv}");
    }
    // The dashboard's liability table has its own column.
    let (_, body) = get(addr, "/api/liabilities", &admin);
    assert!(body.contains(r#""quarantine_held":8000"#), "{body}");

    // `mykey-hub nodes`: a column per node.
    let out = ok(&f.dir.path().join("hub"), &["nodes"]);
    let header = out.lines().find(|l| l.starts_with("node ")).unwrap();
    assert!(header.contains("quarantine_held"), "{out}");
    let line = |id: &mykey_sync_proto::NodeId| {
        out.lines()
            .find(|l| l.starts_with(&id.short()))
            .unwrap_or_else(|| panic!("{id} in\n{out}"))
            .to_owned()
    };
    assert!(line(&f.shop.id).contains(" 2 (8000 pt) "), "{out}");
    assert!(line(&chiyoda).contains(" 1 (2000 pt) "), "{out}");
    assert!(!line(&f.library.id).contains(" pt)"), "{out}");
}
