//! Strict mode at the hub: granting spend rights reserves points, a strict
//! spend draws its node's reservation, a right transfer moves it (once,
//! whichever copy comes first), release returns it, and points are
//! conserved throughout. Real SQLite hub in a temp dir.

mod common;

use common::*;
use mykey_hub::IncidentKind;
use mykey_hub::escrow::EscrowError;
use mykey_sync_proto::fact::FactBody;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::{Outcome, RejectReason};
use mykey_sync_proto::{NodeId, OpKind, RightAccept, RightTransfer, SignedTx, TxBody};

struct Strict {
    f: Fixture,
    a: Chain,
    b: Chain,
}

fn strict() -> Strict {
    let mut f = Fixture::new();
    let a = Chain::new(21);
    let b = Chain::new(22);
    for n in [&a, &b] {
        f.hub
            .enrol_node(n.id, &fid("shop-1"), policy(&[OpKind::Redeem]), T0)
            .unwrap();
    }
    f.hub
        .admin_grant(f.alice, &program(), pts(1001), T0)
        .unwrap();
    f.hub.set_strict_mode(muni(), true, T0).unwrap();
    Strict { f, a, b }
}

fn escrow_of(f: &mut Fixture, node: NodeId) -> u64 {
    f.hub
        .escrow_status(muni())
        .unwrap()
        .into_iter()
        .filter(|l| l.node == node && l.account == f.alice)
        .map(|l| l.points.get())
        .sum()
}

fn wallet(f: &mut Fixture) -> (u64, u64) {
    let b = f.hub.balance(f.alice, muni()).unwrap();
    (b.balance.get(), b.debt.get())
}

/// `BeyondRight` incidents the hub has reported.
fn beyond_right_incidents(f: &mut Fixture) -> usize {
    f.hub
        .incidents(100)
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == IncidentKind::BeyondRight)
        .count()
}

fn debt_created(o: &Outcome) -> u64 {
    match o {
        Outcome::Accepted { debt_created, .. } => debt_created.get(),
        other => panic!("expected acceptance, got {other:?}"),
    }
}

fn transfer(
    f: &mut Fixture,
    from: &mut Chain,
    to: NodeId,
    account: mykey_sync_proto::AccountId,
    p: u64,
) -> SignedTx {
    let (right_id, grant) = grant_of(f, from.id, account);
    from.sign(TxBody::RightTransfer(RightTransfer {
        account,
        municipality: muni(),
        to,
        points: pts(p),
        right_id,
        grant,
    }))
}

/// The hub-signed SpendRight fact that granted `node` its right on `account`.
fn grant_of(
    f: &mut Fixture,
    node: NodeId,
    account: mykey_sync_proto::AccountId,
) -> (u64, mykey_sync_proto::SignedFact) {
    let facts = f.hub.facts_for(&node, 0, 10_000, u64::MAX).unwrap();
    facts
        .facts
        .into_iter()
        .rev()
        .find_map(|sf| {
            let v = sf.verify(&f.hub.hub_id()).ok()?;
            match v.payload().body {
                mykey_sync_proto::FactBody::SpendRight {
                    account: a,
                    node: n,
                    right_id,
                    ..
                } if a == account && n == node => Some((right_id, sf.clone())),
                _ => None,
            }
        })
        .expect("the node holds a spend right on the account")
}

fn conserved(f: &mut Fixture) {
    f.hub.check_conservation().expect("points conserved");
}

#[test]
fn grant_reserves_spend_draws_transfer_moves_release_returns() {
    let Strict {
        mut f,
        mut a,
        mut b,
    } = strict();
    let s = f
        .hub
        .escrow_grant(muni(), &[a.id, b.id], Some(&[f.alice]), T0)
        .unwrap();
    assert_eq!((s.rights, s.points, s.accounts), (2, 1001, 1));
    assert_eq!(
        (escrow_of(&mut f, a.id), escrow_of(&mut f, b.id)),
        (501, 500)
    );
    assert_eq!(
        wallet(&mut f),
        (0, 0),
        "reserved points are not spendable elsewhere"
    );
    conserved(&mut f);
    // Reserved points are still the holder's: same lots, same liability.
    let lots = |f: &mut Fixture| -> Vec<(u64, u64)> {
        f.hub
            .lots_of(f.alice, muni())
            .unwrap()
            .iter()
            .map(|l| (l.amount, l.remaining))
            .collect()
    };
    assert_eq!(lots(&mut f), vec![(1001, 1001)]);
    let liability = |f: &mut Fixture| -> i128 {
        let r = f.hub.liability_report(T0).unwrap();
        r.municipalities
            .iter()
            .find(|l| l.municipality == muni())
            .unwrap()
            .wallets
    };
    assert_eq!(liability(&mut f), 1001);
    // Nothing is left to grant twice.
    let again = f.hub.escrow_grant(muni(), &[a.id], None, T0).unwrap();
    assert_eq!(again.points, 0);
    // Each node learns its own right only.
    let rights_of = |f: &mut Fixture, n: NodeId| -> Vec<(NodeId, u64)> {
        f.hub
            .received_facts(&n, 0, 1000)
            .unwrap()
            .facts
            .iter()
            .filter_map(
                |s| match &s.verify(&f.hub.hub_id()).unwrap().payload().body {
                    FactBody::SpendRight { node, points, .. } => Some((*node, points.get())),
                    _ => None,
                },
            )
            .collect()
    };
    assert_eq!(rights_of(&mut f, a.id), vec![(a.id, 501)]);
    assert_eq!(rights_of(&mut f, b.id), vec![(b.id, 500)]);

    // A spends within its right: drawn from its reservation, no debt.
    let r = f
        .hub
        .ingest(&a.id.clone(), vec![a.sign(redeem(f.alice, 1, 300))], T0);
    assert_eq!(debt_created(&r.receipts[0].outcome), 0);
    assert_eq!(escrow_of(&mut f, a.id), 201);

    // A gives B 100 on the LAN; B accepts it (carrying A's signed transfer in
    // its own chain) and spends 600. B's chain reaches the hub first.
    let alice = f.alice;
    let t = transfer(&mut f, &mut a, b.id, alice, 100);
    let accept = b.sign(TxBody::RightAccept(RightAccept {
        transfer: t.clone(),
    }));
    let spend = b.sign(redeem(f.alice, 1, 600));
    let r = f.hub.ingest(&b.id, vec![accept, spend], T0);
    for rc in &r.receipts {
        assert_eq!(debt_created(&rc.outcome), 0, "{rc:?}");
    }
    assert_eq!((escrow_of(&mut f, a.id), escrow_of(&mut f, b.id)), (101, 0));
    // A's own copy of the transfer arrives later: accepted, moves nothing again.
    let r = f.hub.ingest(&a.id.clone(), vec![t], T0);
    assert_eq!(debt_created(&r.receipts[0].outcome), 0);
    assert_eq!((escrow_of(&mut f, a.id), escrow_of(&mut f, b.id)), (101, 0));
    assert_eq!(f.hub.total_debt().unwrap(), 0);
    conserved(&mut f);
    // Spends from reservations use up lots as wallet spends do.
    assert_eq!(lots(&mut f), vec![(1001, 101)]);
    assert_eq!(liability(&mut f), 101);
    // The base-date replay of the books agrees: reserving and moving are no
    // spend, a spend from a reservation is (30 September, after T0).
    let autumn = f
        .hub
        .liability_report(mykey_sync_proto::UnixMillis(T0.0 + 120 * 86_400_000))
        .unwrap();
    let at_base = &autumn
        .municipalities
        .iter()
        .find(|l| l.municipality == muni())
        .unwrap()
        .base_dates[0];
    assert_eq!(at_base.date.to_string(), "2025-09-30");
    assert_eq!(at_base.unused_points, 101);

    // Release: A's unused 101 return to the wallet; both nodes are told.
    let s = f.hub.escrow_release(muni(), None, T0).unwrap();
    assert_eq!((s.points, s.accounts), (101, 1));
    assert_eq!(wallet(&mut f), (101, 0));
    assert!(f.hub.escrow_status(muni()).unwrap().is_empty());
    assert_eq!(
        lots(&mut f),
        vec![(1001, 101)],
        "the points keep their expiry"
    );
    for n in [a.id, b.id] {
        let released = f
            .hub
            .received_facts(&n, 0, 1000)
            .unwrap()
            .facts
            .iter()
            .any(|s| {
                matches!(
                    s.verify(&f.hub.hub_id()).unwrap().payload().body,
                    FactBody::SpendRightReleased { node, .. } if node == n
                )
            });
        assert!(released, "node told of the release");
    }
    conserved(&mut f);

    // A spend beyond any right (a buggy node): honoured like an offline
    // overdraft, and reported.
    let r = f
        .hub
        .ingest(&a.id.clone(), vec![a.sign(redeem(f.alice, 1, 150))], T0);
    assert_eq!(debt_created(&r.receipts[0].outcome), 49);
    assert_eq!(wallet(&mut f), (0, 49));
    assert_eq!(beyond_right_incidents(&mut f), 1);
    conserved(&mut f);
}

/// The last confirmed balance (wallet, debt) nodes of the municipality
/// were told for alice.
fn told_balance(f: &mut Fixture, node: NodeId) -> (u64, u64) {
    let alice = f.alice;
    f.hub
        .received_facts(&node, 0, 10_000)
        .unwrap()
        .facts
        .iter()
        .rev()
        .find_map(
            |s| match s.verify(&f.hub.hub_id()).unwrap().payload().body {
                FactBody::ConfirmedBalance {
                    account,
                    balance,
                    debt,
                    ..
                } if account == alice => Some((balance.get(), debt.get())),
                _ => None,
            },
        )
        .expect("nodes were told alice's balance")
}

#[test]
fn escrow_release_to_a_holder_in_debt_recovers_the_debt_first() {
    let Strict {
        mut f,
        mut a,
        mut b,
    } = strict();
    // All of alice's 1001 points are reserved for A.
    f.hub
        .escrow_grant(muni(), &[a.id], Some(&[f.alice]), T0)
        .unwrap();
    assert_eq!(escrow_of(&mut f, a.id), 1001);
    assert_eq!(wallet(&mut f), (0, 0));
    // B holds no right: its spend of 150 is honoured as an overdraft.
    let r = f
        .hub
        .ingest(&b.id.clone(), vec![b.sign(redeem(f.alice, 1, 150))], T0);
    assert_eq!(debt_created(&r.receipts[0].outcome), 150);
    assert_eq!(wallet(&mut f), (0, 150));
    // Releasing A's right returns 1001 to the wallet, which pays the debt
    // first, as every other wallet credit does.
    let s = f.hub.escrow_release(muni(), None, T0).unwrap();
    assert_eq!((s.points, s.accounts), (1001, 1));
    assert_eq!(wallet(&mut f), (851, 0), "the debt is recovered first");
    assert_eq!(f.hub.total_debt().unwrap(), 0);
    assert_eq!(told_balance(&mut f, a.id), (851, 0), "nodes learn it");
    // The points spent beyond the right used up the lot; the rest keep it.
    let lots: Vec<(u64, u64)> = f
        .hub
        .lots_of(f.alice, muni())
        .unwrap()
        .iter()
        .map(|l| (l.amount, l.remaining))
        .collect();
    assert_eq!(lots, vec![(1001, 851)]);
    conserved(&mut f);
    // A later spend at A (no right now) draws the wallet, not debt.
    let r = f
        .hub
        .ingest(&a.id.clone(), vec![a.sign(redeem(f.alice, 1, 51))], T0);
    assert_eq!(debt_created(&r.receipts[0].outcome), 0);
    assert_eq!(wallet(&mut f), (800, 0));
    conserved(&mut f);
}

#[test]
fn forged_or_misaddressed_transfers_move_nothing() {
    let Strict {
        mut f,
        mut a,
        mut b,
    } = strict();
    f.hub
        .escrow_grant(muni(), &[a.id, b.id], Some(&[f.alice]), T0)
        .unwrap();
    // A transfer whose signature is not A's, carried by B.
    let alice = f.alice;
    let t = transfer(&mut f, &mut a, b.id, alice, 100);
    let mut sig = t.signature_bytes();
    sig[0] ^= 1;
    let forged = SignedTx::from_raw_parts(t.payload_bytes().to_vec(), sig);
    let r = f.hub.ingest(
        &b.id.clone(),
        vec![b.sign(TxBody::RightAccept(RightAccept { transfer: forged }))],
        T0,
    );
    assert!(
        matches!(
            r.receipts[0].outcome,
            Outcome::Rejected(RejectReason::NotAllowed(_))
        ),
        "{:?}",
        r.receipts[0]
    );
    // A genuine transfer to B, "accepted" by the shop node instead.
    let mut shop = Chain::new(11);
    let r = f.hub.ingest(
        &shop.id.clone(),
        vec![shop.sign(TxBody::RightAccept(RightAccept {
            transfer: t.clone(),
        }))],
        T0,
    );
    assert!(matches!(
        r.receipts[0].outcome,
        Outcome::Rejected(RejectReason::NotAllowed(_))
    ));
    // A transfer beyond the grant it carries, one beyond what the sender
    // still holds at the hub, and one carrying a grant the hub never signed
    // are refused whole (the receiver withdraws what it credited): nothing
    // moves but the genuine 100.
    let alice = f.alice;
    let big = transfer(&mut f, &mut a, b.id, alice, 9000);
    let (right_id, _) = grant_of(&mut f, a.id, alice);
    let forged_grant = mykey_sync_proto::SignedFact::sign(
        &mykey_sync_proto::FactPayload {
            hub_seq: 1,
            issued_at: T0,
            scope: mykey_sync_proto::Scope::Node(a.id),
            body: mykey_sync_proto::FactBody::SpendRight {
                account: alice,
                municipality: muni(),
                node: a.id,
                right_id,
                points: pts(1_000_000),
            },
        },
        &ed25519_dalek::SigningKey::from_bytes(&[77; 32]),
    );
    let minted = a.sign(TxBody::RightTransfer(RightTransfer {
        account: alice,
        municipality: muni(),
        to: b.id,
        points: pts(200),
        right_id,
        grant: forged_grant,
    }));
    let r = f.hub.ingest(&a.id.clone(), vec![t, big, minted], T0);
    assert_eq!(debt_created(&r.receipts[0].outcome), 0);
    for rc in &r.receipts[1..] {
        assert!(
            matches!(&rc.outcome, Outcome::Rejected(RejectReason::NotAllowed(_))),
            "{rc:?}"
        );
    }
    let (held_a, held_b) = (escrow_of(&mut f, a.id), escrow_of(&mut f, b.id));
    assert_eq!(held_a + held_b, 1001);
    let over = transfer(&mut f, &mut a, b.id, alice, held_a.min(500) + 1);
    let r = f.hub.ingest(&a.id.clone(), vec![over], T0);
    assert!(
        matches!(r.receipts[0].outcome, Outcome::Rejected(RejectReason::NotAllowed(ref w)) if w.contains("holds")),
        "{:?}",
        r.receipts[0]
    );
    assert_eq!(escrow_of(&mut f, a.id), held_a);
    assert_eq!(beyond_right_incidents(&mut f), 0);
    conserved(&mut f);
}

#[test]
fn bad_escrow_requests_change_nothing() {
    let Strict { mut f, a, b } = strict();
    f.hub.set_strict_mode(muni(), false, T0).unwrap();
    assert!(matches!(
        f.hub.escrow_grant(muni(), &[a.id], None, T0),
        Err(EscrowError::NotStrict(_))
    ));
    f.hub.set_strict_mode(muni(), true, T0).unwrap();
    assert!(matches!(
        f.hub.escrow_grant(muni(), &[], None, T0),
        Err(EscrowError::NoNodes)
    ));
    assert!(matches!(
        f.hub.escrow_grant(muni(), &[a.id, a.id], None, T0),
        Err(EscrowError::DuplicateNode(_))
    ));
    let stranger = Chain::new(99).id;
    assert!(matches!(
        f.hub.escrow_grant(muni(), &[b.id, stranger], None, T0),
        Err(EscrowError::BadNode { .. })
    ));
    assert!(matches!(
        f.hub.escrow_grant(other_muni(), &[a.id], None, T0),
        Err(EscrowError::BadNode { .. })
    ));
    assert_eq!(wallet(&mut f), (1001, 0));
    assert!(f.hub.escrow_status(muni()).unwrap().is_empty());
}

/// The operator's view over HTTP (`GET /api/escrow`): what `escrow status`
/// shows, behind the login; a missing, malformed or unknown code is refused
/// and says what to give.
#[test]
fn escrow_over_http_behind_login() {
    let Strict { mut f, a, b } = strict();
    f.hub
        .escrow_grant(muni(), &[a.id, b.id], Some(&[f.alice]), T0)
        .unwrap();
    let token = f.api_token();
    let addr = serve(&f);
    let here = "/api/escrow?municipality=131059";

    assert_eq!(request(addr, "GET", here, &[], b"").0, 401);
    let (status, body) = request(addr, "GET", here, &bearer(&token), b"");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["municipality"], "131059");
    assert_eq!(v["strict"], true);
    assert_eq!(v["reserved_points"], 1001);
    let mut lines: Vec<(String, u64)> = v["rights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["account"], f.alice.get());
            (
                l["node"].as_str().unwrap().to_owned(),
                l["points"].as_u64().unwrap(),
            )
        })
        .collect();
    lines.sort();
    let mut want = vec![(a.id.to_string(), 501), (b.id.to_string(), 500)];
    want.sort();
    assert_eq!(lines, want);

    // A municipality in bounded mode: nothing reserved.
    let other = format!("/api/escrow?municipality={}", other_muni());
    let (status, body) = request(addr, "GET", &other, &bearer(&token), b"");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["strict"].clone(), v["reserved_points"].clone()),
        (false.into(), 0.into())
    );
    assert_eq!(v["rights"], serde_json::json!([]));

    // A valid code no one registered, and codes that are not codes.
    let unknown = (0..10)
        .map(|d| format!("27100{d}"))
        .find(|c| mykey_sync_proto::MunicipalityCode::parse(c).is_ok())
        .unwrap();
    let (status, body) = request(
        addr,
        "GET",
        &format!("/api/escrow?municipality={unknown}"),
        &bearer(&token),
        b"",
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not registered"), "{body}");
    for bad in [
        "/api/escrow",
        "/api/escrow?municipality=13105",
        "/api/escrow?municipality=131058",
    ] {
        let (status, body) = request(addr, "GET", bad, &bearer(&token), b"");
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("?municipality=CODE"), "{bad}: {body}");
    }
    // Reading changed nothing.
    assert_eq!(escrow_of(&mut f, a.id) + escrow_of(&mut f, b.id), 1001);
}
