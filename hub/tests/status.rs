//! The operations status model against the real SQLite store: links opened
//! at Hello and closed by the serving loop, rejections with reasons, clock
//! skew, pending-since, liabilities and operator accounts.
#![allow(clippy::unwrap_used)]

mod common;

use mykey_hub::access::{Role, Scope};

use common::*;
use mykey_hub::status::assess::{Alert, Health, Thresholds};
use mykey_sync_proto::wire::{Hello, RejectReason};
use mykey_sync_proto::{NodeId, UnixMillis};

const MIN: u64 = 60_000;

/// A Hello; `fact_cursor` past every fact when `caught_up`.
fn hello(node: NodeId, node_time: UnixMillis, last_seq: u64, caught_up: bool) -> Hello {
    Hello {
        node,
        node_time,
        last_seq,
        fact_cursor: if caught_up { 1_000_000 } else { 0 },
        software: "mykey-node/0.1.0".into(),
    }
}

#[test]
fn fleet_shows_skew_rejections_links_and_never_seen_nodes() {
    let mut f = Fixture::new();
    let t1 = T0.plus_ms(60 * MIN);
    // The shop's clock runs five minutes fast; it spends on an unknown account.
    f.hub
        .try_open(&hello(f.shop.id, t1.plus_ms(5 * MIN), 1, false), t1)
        .unwrap()
        .unwrap();
    let bogus = mykey_sync_proto::AccountId::new(999).unwrap();
    let tx = f.shop.sign(redeem(bogus, 9, 10));
    let r = f.hub.try_ingest(&f.shop.id, vec![tx], t1).unwrap();
    assert!(matches!(
        rejection(&outcomes(&r)[0]),
        Some(RejectReason::UnknownCard)
    ));
    // The library says Hello with 3 unconfirmed transactions, then leaves.
    f.hub
        .try_open(&hello(f.library.id, t1, 3, true), t1)
        .unwrap()
        .unwrap();
    f.hub
        .note_link_closed(&f.library.id, t1.plus_ms(10 * MIN))
        .unwrap();

    let now = T0.plus_ms(120 * MIN);
    let fleet = f.hub.fleet(&Thresholds::default(), now).unwrap();
    let row = |id: NodeId| fleet.nodes.iter().find(|r| r.status.node.id == id).unwrap();

    let shop = row(f.shop.id);
    assert!(
        !shop.assessment.connected,
        "its link was last confirmed an hour ago"
    );
    assert_eq!(shop.assessment.last_contact, Some(t1));
    assert_eq!(
        shop.assessment.alerts,
        vec![
            Alert::ClockSkew {
                skew_ms: 5 * MIN as i64,
                limit_ms: 120_000
            },
            Alert::Rejections { n: 1 },
            // It never pulled the facts issued at setup, an hour before.
            Alert::ReplicaBehind { oldest_missing: T0 },
        ]
    );
    assert_eq!(shop.status.n_rejected, 1);
    assert_eq!(shop.last_refusal.as_ref().unwrap().label, "unknown-card");
    assert_eq!(shop.facility.as_ref().unwrap().name, "shop-1");

    let lib = row(f.library.id);
    assert_eq!(lib.assessment.health, Health::Healthy);
    assert_eq!(lib.assessment.last_contact, Some(t1.plus_ms(10 * MIN)));
    assert_eq!(lib.assessment.sessions_in_window, 1);
    // Ten minutes of the two hours since it was enrolled.
    assert_eq!(lib.assessment.reachable_permille, 83);
    assert_eq!(lib.status.n_unconfirmed(), 3);
    assert_eq!(lib.status.pending_since, Some(t1));

    let centre = row(f.centre.id);
    assert_eq!(centre.assessment.health, Health::NeverSeen);
    // A community centre may stay silent a day; after that it alerts.
    let later = f
        .hub
        .fleet(&Thresholds::default(), T0.plus_ms(25 * 60 * MIN))
        .unwrap();
    let c = later
        .nodes
        .iter()
        .find(|r| r.status.node.id == f.centre.id)
        .unwrap();
    assert!(matches!(c.assessment.alerts[..], [Alert::Silent { since, .. }] if since == T0));

    let d = f
        .hub
        .node_detail(&f.shop.id, &Thresholds::default(), now)
        .unwrap()
        .unwrap();
    assert_eq!(d.rejections.len(), 1);
    assert_eq!(d.rejections[0].reason, RejectReason::UnknownCard);
    assert_eq!(d.sessions.len(), 1);
    assert_eq!(d.sessions[0].closed_at, None);

    // A new serving process closes what the last one left open, at its last sighting.
    assert_eq!(f.hub.close_stale_links().unwrap(), 1);
    let d = f
        .hub
        .node_detail(&f.shop.id, &Thresholds::default(), now)
        .unwrap()
        .unwrap();
    assert_eq!(d.sessions[0].closed_at, Some(t1));
}

#[test]
fn a_node_whose_chain_catches_up_has_nothing_pending() {
    let mut f = Fixture::new();
    f.hub
        .try_open(&hello(f.centre.id, T0, 1, true), T0)
        .unwrap()
        .unwrap();
    let before = f.hub.fleet(&Thresholds::default(), T0).unwrap();
    let c = before
        .nodes
        .iter()
        .find(|r| r.status.node.id == f.centre.id)
        .unwrap();
    assert_eq!(c.status.pending_since, Some(T0));
    let tx = f.centre.sign(grant(f.alice, 1, 50));
    f.hub
        .try_ingest(&f.centre.id, vec![tx], T0.plus_ms(1000))
        .unwrap();
    let after = f
        .hub
        .fleet(&Thresholds::default(), T0.plus_ms(2000))
        .unwrap();
    let c = after
        .nodes
        .iter()
        .find(|r| r.status.node.id == f.centre.id)
        .unwrap();
    assert_eq!(c.status.pending_since, None);
    assert_eq!(c.status.n_unconfirmed(), 0);

    let l = f.hub.liabilities().unwrap();
    let bunkyo = l
        .iter()
        .find(|x| x.municipality.as_ref().unwrap().code == muni())
        .unwrap();
    assert_eq!((bunkyo.wallets, bunkyo.budgets), (50, 100_000 - 50));
}

#[test]
fn operators_log_in_with_their_password_and_tokens_resolve() {
    let mut f = Fixture::new();
    assert_eq!(f.hub.n_operators().unwrap(), 0);
    assert!(f.hub.set_operator("ops", "short", Role::Admin, T0).is_err());
    assert!(
        f.hub
            .set_operator("bad name", "long enough password", Role::Admin, T0)
            .is_err()
    );
    f.hub
        .set_operator("ops", "long enough password", Role::Admin, T0)
        .unwrap();
    assert!(f.hub.check_operator("ops", "long enough password").unwrap());
    assert!(!f.hub.check_operator("ops", "long enough passworD").unwrap());
    assert!(
        !f.hub
            .check_operator("nobody", "long enough password")
            .unwrap()
    );
    let made = f.hub.new_api_token("ops", Scope::Read, None, T0).unwrap();
    let access = f.hub.token_access(&made.token, T0).unwrap().unwrap();
    assert_eq!(
        (access.operator.as_str(), access.role, access.scope),
        ("ops", Role::Admin, Scope::Read)
    );
    assert_eq!(f.hub.token_access("mkh_forged", T0).unwrap(), None);
    assert!(
        f.hub
            .new_api_token("nobody", Scope::Read, None, T0)
            .is_err()
    );
    // The database holds a hash, not the password.
    let stored = f.raw_text("SELECT password_hash FROM operators");
    assert!(stored.starts_with("$argon2id$") && !stored.contains("long enough"));
}

/// The serving loop records a closed connection on its storage worker,
/// where the job can wait behind others while the node reconnects: the
/// close of the old connection then reaches the store after the new
/// connection's Hello. It used to end whatever link was open, so a node
/// that was connected and pushing read "not connected", reachable 0.0%
/// beside a last contact of seconds ago, and turned silent hours later.
#[test]
fn a_late_close_of_the_old_connection_leaves_the_new_link_open() {
    let mut f = Fixture::new();
    let day = 24 * 60 * MIN;
    // Connected a day and a half ago for an hour, then away.
    let t1 = T0.plus_ms(10 * MIN);
    f.hub
        .try_open(&hello(f.library.id, t1, 0, true), t1)
        .unwrap()
        .unwrap();
    let dropped = t1.plus_ms(60 * MIN);
    f.hub.note_link_closed(&f.library.id, dropped).unwrap();
    // It comes back after more than a day on connection A; A breaks two
    // seconds later and the node dials again at once (connection B).
    let back = dropped.plus_ms(day + 30 * MIN);
    f.hub
        .try_open(&hello(f.library.id, back, 0, true), back)
        .unwrap()
        .unwrap();
    let a_closed = back.plus_ms(2_000);
    let b_hello = a_closed.plus_ms(1_000);
    // B's Hello is stored first (it ends A's link at A's last sighting),
    // the close of A after it.
    f.hub
        .try_open(&hello(f.library.id, b_hello, 0, true), b_hello)
        .unwrap()
        .unwrap();
    f.hub.note_link_closed(&f.library.id, a_closed).unwrap();
    // B carries on: the minute's confirmations of live links.
    let later = b_hello.plus_ms(5 * MIN);
    f.hub.note_links_alive(&[f.library.id], later).unwrap();

    let now = later.plus_ms(30_000);
    let fleet = f.hub.fleet(&Thresholds::default(), now).unwrap();
    let lib = fleet
        .nodes
        .iter()
        .find(|r| r.status.node.id == f.library.id)
        .unwrap();
    let a = &lib.assessment;
    assert!(a.connected, "B is up: {a:?}");
    assert_eq!(a.last_contact, Some(now));
    assert!(a.alerts.is_empty(), "{a:?}");
    // B's five and a half minutes of the last day.
    assert_eq!(a.reachable_permille, 3, "{a:?}");
    let d = f
        .hub
        .node_detail(&f.library.id, &Thresholds::default(), now)
        .unwrap()
        .unwrap();
    assert_eq!(d.sessions[0].opened_at, b_hello);
    assert_eq!(d.sessions[0].closed_at, None);
    assert_eq!(d.sessions[1].closed_at, Some(back));
}
