//! Ledger conservation under random operation sequences: grants (node and
//! hub), redeems including overdraft, links, suspensions and replays, with
//! sum of debits = sum of credits and the per-municipality conservation
//! check after every step, and balances matching a simple model.

mod common;

use common::*;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::Outcome;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    HubGrant {
        who: usize,
        points: u64,
    },
    NodeGrant {
        who: usize,
        points: u64,
    },
    Redeem {
        who: usize,
        card_of: usize,
        points: u64,
    },
    Link {
        who: usize,
        number: u8,
    },
    Unlink {
        who: usize,
        number: u8,
    },
    Suspend {
        who: usize,
    },
    Reinstate {
        who: usize,
    },
    ReplayLastPush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 1..2000u64).prop_map(|(who, points)| Op::HubGrant { who, points }),
        (0..2usize, 1..2000u64).prop_map(|(who, points)| Op::NodeGrant { who, points }),
        (0..2usize, 0..2usize, 0..3000u64).prop_map(|(who, card_of, points)| Op::Redeem {
            who,
            card_of,
            points
        }),
        (0..2usize, 0..3u8).prop_map(|(who, number)| Op::Link { who, number }),
        (0..2usize, 0..3u8).prop_map(|(who, number)| Op::Unlink { who, number }),
        (0..2usize).prop_map(|who| Op::Suspend { who }),
        (0..2usize).prop_map(|who| Op::Reinstate { who }),
        Just(Op::ReplayLastPush),
    ]
}

#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct Model {
    wallet: u64,
    debt: u64,
}

impl Model {
    fn credit(&mut self, p: u64) {
        self.wallet += p;
        let r = self.wallet.min(self.debt);
        self.wallet -= r;
        self.debt -= r;
    }
    fn spend(&mut self, p: u64) {
        let x = self.wallet.min(p);
        self.wallet -= x;
        self.debt += p - x;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn ledger_is_conserved_under_random_operations(ops in prop::collection::vec(op(), 1..30)) {
        let mut f = Fixture::new();
        let accounts = [f.alice, f.bob];
        let mut model = [Model::default(); 2];
        let mut last_push: Option<(mykey_sync_proto::NodeId, Vec<mykey_sync_proto::SignedTx>)> = None;
        let mut now = T0;
        for op in ops {
            now = now.plus_ms(1000);
            match op {
                Op::HubGrant { who, points } => {
                    f.hub.admin_grant(accounts[who], &program(), pts(points), now).unwrap();
                    model[who].credit(points);
                }
                Op::NodeGrant { who, points } => {
                    let tx = f.centre.sign(grant(accounts[who], who as u8 + 1, points));
                    let r = f.hub.ingest(&{ f.centre.id }, vec![tx.clone()], now);
                    let ok = matches!(r.receipts[0].outcome, Outcome::Accepted { .. });
                    prop_assert!(ok, "grant rejected: {:?}", r.receipts[0].outcome);
                    model[who].credit(points);
                    last_push = Some((f.centre.id, vec![tx]));
                }
                Op::Redeem { who, card_of, points } => {
                    let tx = f.shop.sign(redeem(accounts[who], card_of as u8 + 1, points));
                    let r = f.hub.ingest(&{ f.shop.id }, vec![tx.clone()], now);
                    prop_assert_eq!(
                        matches!(r.receipts[0].outcome, Outcome::Accepted { .. }),
                        who == card_of
                    );
                    // Beyond the shop's enrolled bounds the hub holds the
                    // spend in quarantine (bounds.rs has its own tests): the
                    // holder pays only what was not held.
                    if let Outcome::Accepted { quarantined, .. } = r.receipts[0].outcome {
                        prop_assert!(quarantined.get() <= points);
                        model[who].spend(points - quarantined.get());
                    }
                    last_push = Some((f.shop.id, vec![tx]));
                }
                Op::Link { who, number } | Op::Unlink { who, number } => {
                    let n = format!("L-{number}");
                    let body = if matches!(op, Op::Link { .. }) {
                        link(accounts[who], "lib-1", &n)
                    } else {
                        unlink(accounts[who], "lib-1", &n)
                    };
                    let tx = f.library.sign(body);
                    f.hub.ingest(&{ f.library.id }, vec![tx.clone()], now);
                    last_push = Some((f.library.id, vec![tx]));
                }
                Op::Suspend { who } => {
                    let _ = f.hub.suspend_card(&card(who as u8 + 1), now);
                }
                Op::Reinstate { who } => {
                    let _ = f.hub.reinstate_card(&card(who as u8 + 1), now);
                }
                Op::ReplayLastPush => {
                    if let Some((carrier, txs)) = &last_push {
                        let before = f.hub.ledger_totals().unwrap();
                        let r = f.hub.ingest(carrier, txs.clone(), now);
                        prop_assert_eq!(r.receipts.len(), txs.len());
                        prop_assert_eq!(f.hub.ledger_totals().unwrap(), before);
                    }
                }
            }
            let totals = f.hub.ledger_totals().unwrap();
            prop_assert_eq!(totals.debits, totals.credits);
            if let Err(e) = f.hub.check_conservation() {
                return Err(TestCaseError::fail(format!("{e}")));
            }
            for (i, a) in accounts.iter().enumerate() {
                let b = f.hub.balance(*a, muni()).unwrap();
                prop_assert_eq!((b.balance.get(), b.debt.get()), (model[i].wallet, model[i].debt));
            }
        }
    }
}
