//! Holders and nodes see upcoming expiries (issue 6): whenever a wallet's
//! earliest-expiring lot changes, the hub tells its municipality's nodes in
//! an `UpcomingExpiry` fact, once per change.
#![allow(missing_docs)]

mod common;

use common::*;
use mykey_hub::Hub;
use mykey_hub::economy::calendar::Date;
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::{AccountId, FactBody, NodeId, Scope, UnixMillis};

const DAY: u64 = 86_400_000;

/// The UpcomingExpiry facts about `account` that `node` receives, in order:
/// (points, expires_at).
fn expiries(hub: &mut Hub, node: &NodeId, account: AccountId) -> Vec<(u64, UnixMillis)> {
    let id = hub.hub_id();
    let f = hub.received_facts(node, 0, 2000).unwrap();
    assert!(!f.more);
    let mut v: Vec<_> = f
        .facts
        .iter()
        .map(|s| s.verify(&id).unwrap().payload().clone())
        .filter_map(|p| match p.body {
            FactBody::UpcomingExpiry {
                account: a,
                municipality,
                points,
                expires_at,
            } if a == account => {
                assert_eq!(p.scope, Scope::Municipality(muni()));
                assert_eq!(municipality, muni());
                assert!(!p.body.is_priority());
                Some((p.hub_seq, (points.get(), expires_at)))
            }
            _ => None,
        })
        .collect();
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}

#[test]
fn nodes_learn_each_change_of_the_earliest_expiry_once() {
    let mut f = Fixture::new();
    let shop = f.shop.id;
    let (alice, bob) = (f.alice, f.bob);
    let thirty_days = T0.plus_ms(30 * DAY);
    f.hub
        .set_program_expiry(&program(), ExpiryPolicy::Days { days: 30 })
        .unwrap();
    f.hub.admin_grant(alice, &program(), pts(400), T0).unwrap();
    assert_eq!(expiries(&mut f.hub, &shop, alice), vec![(400, thirty_days)]);

    // A later-expiring grant (from a node) leaves the earliest expiry alone:
    // no new fact.
    f.hub
        .set_program_expiry(&program(), ExpiryPolicy::FiscalYearEnd { years: 0 })
        .unwrap();
    let tx = f.centre.sign(grant(alice, 1, 300));
    f.hub.ingest(&{ f.centre.id }, vec![tx], T0.plus_ms(1));
    assert_eq!(f.hub.balance(alice, muni()).unwrap().balance.get(), 700);
    // Ingested changes reach the lots, and nodes, at the economy tick.
    assert!(!f.hub.economy_tick(T0.plus_ms(1), 4).unwrap());
    assert_eq!(expiries(&mut f.hub, &shop, alice), vec![(400, thirty_days)]);

    // Spending takes the oldest lot first, so its rest is what expires next.
    let tx = f.shop.sign(redeem(alice, 1, 150));
    f.hub.ingest(&shop, vec![tx], T0.plus_ms(2));
    assert_eq!(
        expiries(&mut f.hub, &shop, alice),
        vec![(400, thirty_days)],
        "not before the tick: ingest does not fold lots"
    );
    f.hub.tell_expiries(T0.plus_ms(2), 4).unwrap();
    let tx = f.shop.sign(redeem(alice, 1, 250));
    f.hub.ingest(&shop, vec![tx], T0.plus_ms(3));
    f.hub.tell_expiries(T0.plus_ms(3), 4).unwrap();
    // The grant expires at the end of fiscal year 2025 (31 March 2026 JST).
    let fy_end = Date::new(2026, 3, 31).unwrap().end();
    assert_eq!(
        expiries(&mut f.hub, &shop, alice),
        vec![(400, thirty_days), (250, thirty_days), (300, fy_end)]
    );

    // The expiry run empties the wallet: nothing expires any more.
    f.hub.run_expiry(fy_end).unwrap();
    assert_eq!(f.hub.balance(alice, muni()).unwrap().balance.get(), 0);
    assert_eq!(
        expiries(&mut f.hub, &shop, alice).last(),
        Some(&(0, UnixMillis(0)))
    );
    // A holder whose points never expire gets no expiry fact at all.
    f.hub
        .set_program_expiry(&program(), ExpiryPolicy::Never)
        .unwrap();
    f.hub
        .admin_grant(bob, &program(), pts(50), fy_end.plus_ms(1))
        .unwrap();
    assert_eq!(expiries(&mut f.hub, &shop, bob), vec![]);
}
