//! Fact delivery as a property: whatever the operations and window sizes,
//! paging through a node's facts delivers exactly the facts of its scopes,
//! each once, with the cursor only moving forward, and never another
//! facility's card numbers.

mod common;

use common::*;
use mykey_hub::Hub;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::{FactBody, MyKeyId, NodeId, OpKind, Scope};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
enum Op {
    Register(u8),
    Suspend(u8),
    Reinstate(u8),
    Grant(u8, u64),
    Link(u8, u8),
    Unlink(u8, u8),
    Redeem(u8, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (10..20u8).prop_map(Op::Register),
        (1..3u8).prop_map(Op::Suspend),
        (1..3u8).prop_map(Op::Reinstate),
        (1..3u8, 1..500u64).prop_map(|(w, p)| Op::Grant(w, p)),
        (1..3u8, 0..4u8).prop_map(|(w, n)| Op::Link(w, n)),
        (1..3u8, 0..4u8).prop_map(|(w, n)| Op::Unlink(w, n)),
        (1..3u8, 1..500u64).prop_map(|(w, p)| Op::Redeem(w, p)),
    ]
}

/// Every fact `node` should receive, by hub_seq, read with one big window.
fn all_for(hub: &mut Hub, node: &NodeId) -> Vec<(u64, Scope, FactBody)> {
    let id = hub.hub_id();
    let f = hub.received_facts(node, 0, 2000).unwrap();
    assert!(!f.more);
    let mut v: Vec<_> = f
        .facts
        .iter()
        .map(|s| {
            let p = s.verify(&id).unwrap().payload().clone();
            (p.hub_seq, p.scope, p.body)
        })
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn paging_delivers_exactly_the_nodes_scoped_facts(
        ops in prop::collection::vec(op(), 1..25),
        windows in prop::collection::vec(1u32..7, 1..8),
    ) {
        let mut f = Fixture::new();
        // A second library node, in the same municipality, at another facility.
        let other_library = Chain::new(21);
        f.hub.enrol_node(other_library.id, &fid("lib-2"), policy(&[OpKind::Link]), T0).unwrap();
        let accounts = [f.alice, f.bob];
        let mut now = T0;
        for op in ops {
            now = now.plus_ms(1);
            match op {
                Op::Register(n) => {
                    let alias = MyKeyId::parse(&format!("user{n}")).unwrap();
                    let _ = f.hub.register_account(&alias, muni(), &card(n), now);
                }
                Op::Suspend(w) => { let _ = f.hub.suspend_card(&card(w), now); }
                Op::Reinstate(w) => { let _ = f.hub.reinstate_card(&card(w), now); }
                Op::Grant(w, p) => {
                    let tx = f.centre.sign(grant(accounts[w as usize - 1], w, p));
                    f.hub.ingest(&{ f.centre.id }, vec![tx], now);
                }
                Op::Link(w, n) | Op::Unlink(w, n) => {
                    let number = format!("L-{n}");
                    let a = accounts[w as usize - 1];
                    let body = if matches!(op, Op::Link(..)) {
                        link(a, "lib-1", &number)
                    } else {
                        unlink(a, "lib-1", &number)
                    };
                    let tx = f.library.sign(body);
                    f.hub.ingest(&{ f.library.id }, vec![tx], now);
                }
                Op::Redeem(w, p) => {
                    let tx = f.shop.sign(redeem(accounts[w as usize - 1], w, p));
                    f.hub.ingest(&{ f.shop.id }, vec![tx], now);
                }
            }
        }
        let hub_id = f.hub.hub_id();
        for node in [f.shop.id, f.library.id, f.centre.id, other_library.id] {
            let record = f.hub.node(&node).unwrap().unwrap();
            let scopes = mykey_hub::scopes_of(&record);
            let everything = all_for(&mut f.hub, &node);
            for (_, scope, body) in &everything {
                prop_assert!(scopes.contains(scope), "{scope:?} is not a scope of the node");
                if let FactBody::FacilityCard { facility, .. } = body {
                    prop_assert_eq!(facility, &record.facility);
                }
            }
            // Page through with changing window sizes.
            let mut cursor = 0;
            let mut seen = vec![];
            for round in 0.. {
                prop_assert!(round < 1000, "paging does not end");
                let max = windows[round % windows.len()];
                let page = f.hub.received_facts(&node, cursor, max).unwrap();
                prop_assert!(page.facts.len() <= max as usize);
                prop_assert!(page.cursor >= cursor);
                for s in &page.facts {
                    let seq = s.verify(&hub_id).unwrap().payload().hub_seq;
                    prop_assert!(seq > cursor && seq <= page.cursor);
                    seen.push(seq);
                }
                cursor = page.cursor;
                if !page.more {
                    break;
                }
            }
            let unique: BTreeSet<u64> = seen.iter().copied().collect();
            prop_assert_eq!(unique.len(), seen.len(), "a fact was delivered twice");
            let want: BTreeSet<u64> = everything.iter().map(|x| x.0).collect();
            prop_assert_eq!(unique, want);
        }
    }
}
