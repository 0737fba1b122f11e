//! Ingest of signed transactions against a real SQLite hub in a temp dir.

mod common;

use common::*;
use mykey_hub::{Hub, IncidentKind};
use mykey_sync_proto::fact::{CardStatus, FactBody};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::{BalanceSnapshot, Hello, Outcome, Refusal, RejectReason};
use mykey_sync_proto::{SignedTx, TxId};

fn accepted_balance(o: &Outcome) -> (u64, u64, u64) {
    match o {
        Outcome::Accepted {
            balance: Some(BalanceSnapshot { balance, debt, .. }),
            debt_created,
            ..
        } => (balance.get(), debt.get(), debt_created.get()),
        other => panic!("expected an accepted balance, got {other:?}"),
    }
}

fn hello(node: mykey_sync_proto::NodeId) -> Hello {
    Hello {
        node,
        node_time: T0.plus_ms(1500),
        last_seq: 7,
        fact_cursor: 0,
        software: "test/1".into(),
    }
}

#[test]
fn happy_path_grant_then_redeem_with_facts_in_order() {
    let mut f = Fixture::new();
    let w = f.hub.open(&hello(f.centre.id), T0).unwrap();
    assert_eq!(w.processed_seq, 0);

    let g = f.centre.sign(grant(f.alice, 1, 1000));
    let r = f.hub.ingest(&f.centre.id, vec![g.clone()], T0);
    assert_eq!(r.processed_seq, 1);
    assert_eq!(accepted_balance(&r.receipts[0].outcome), (1000, 0, 0));
    assert_eq!(r.receipts[0].tx, Some(g.id()));

    let txs = vec![
        f.shop.sign(redeem(f.alice, 1, 300)),
        f.shop.sign(redeem(f.alice, 1, 200)),
    ];
    let r = f.hub.ingest(&f.shop.id, txs, T0.plus_ms(10));
    assert_eq!(r.processed_seq, 2);
    assert_eq!(accepted_balance(&r.receipts[0].outcome), (700, 0, 0));
    assert_eq!(accepted_balance(&r.receipts[1].outcome), (500, 0, 0));
    let b = f.hub.balance(f.alice, muni()).unwrap();
    assert_eq!((b.balance.get(), b.debt.get()), (500, 0));

    // The shop node sees the confirmed balance before its own progress.
    let facts = f.hub.received_facts(&f.shop.id, 0, 1000).unwrap();
    assert!(!facts.more);
    let bodies: Vec<FactBody> = facts
        .facts
        .iter()
        .map(|s| s.verify(&f.hub.hub_id()).unwrap().payload().body.clone())
        .collect();
    let bal = bodies
        .iter()
        .rposition(
            |b| matches!(b, FactBody::ConfirmedBalance { balance, .. } if balance.get() == 500),
        )
        .expect("confirmed balance fact");
    let prog = bodies
        .iter()
        .position(|b| matches!(b, FactBody::NodeProgress { node, through_seq: 2, .. } if *node == f.shop.id))
        .expect("progress fact");
    assert!(bal < prog);
    // The shop node received its own certificate but no other node's.
    let certs: Vec<_> = bodies
        .iter()
        .filter_map(|b| match b {
            FactBody::NodeLimits(l) => Some(l.node),
            _ => None,
        })
        .collect();
    assert_eq!(certs, vec![f.shop.id]);

    f.hub.check_conservation().unwrap();
    let statuses = f.hub.node_statuses().unwrap();
    let centre = statuses.iter().find(|s| s.node.id == f.centre.id).unwrap();
    let contact = centre.last_contact.as_ref().unwrap();
    assert_eq!(contact.clock_skew_ms, 1500);
    assert_eq!(contact.software, "test/1");
    assert_eq!(centre.n_unconfirmed(), 6);
}

#[test]
fn replaying_a_push_changes_nothing_and_returns_the_same_receipts() {
    let mut f = Fixture::new();
    f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 1000))],
        T0,
    );
    let push = vec![
        f.shop.sign(redeem(f.alice, 1, 300)),
        f.shop.sign(redeem(f.bob, 1, 5)), // WrongAccount: consumes seq 2
        f.shop.sign(redeem(f.alice, 1, 900)), // overdraft
    ];
    let first = f.hub.ingest(&f.shop.id, push.clone(), T0);
    let nodes = [f.shop.id, f.centre.id];
    let before = snapshot(&mut f.hub, &nodes);
    let second = f.hub.ingest(&f.shop.id, push.clone(), T0.plus_ms(99));
    assert_eq!(first, second);
    // A partial replay followed by new work: the old part is answered, the new applied.
    let mut again = push[1..].to_vec();
    let next = f.shop.sign(redeem(f.alice, 1, 1));
    again.push(next.clone());
    let third = f.hub.ingest(&f.shop.id, again, T0.plus_ms(100));
    assert_eq!(third.receipts[..2], first.receipts[1..]);
    assert_eq!(third.processed_seq, 4);
    assert_eq!(f.hub.tx_applications(&push[0].id()).unwrap(), 1);
    let after = snapshot(&mut f.hub, &nodes);
    assert_ne!(before, after); // the new one did apply
    let again = f.hub.ingest(&f.shop.id, vec![next], T0.plus_ms(101));
    assert_eq!(again.receipts[0], third.receipts[2]);
    assert_eq!(snapshot(&mut f.hub, &nodes), after);
    f.hub.check_conservation().unwrap();
}

#[test]
fn forged_signature_is_rejected_and_changes_nothing() {
    let mut f = Fixture::new();
    let good = f.shop.sign(redeem(f.alice, 1, 10));
    let mut sig = good.signature_bytes();
    sig[5] ^= 0x40;
    let forged = SignedTx::from_raw_parts(good.payload_bytes().to_vec(), sig);
    let nodes = [f.shop.id];
    let before = snapshot(&mut f.hub, &nodes);
    // The forged one stops the signer: the valid seq 2 behind it gets no receipt.
    let seq2 = f.shop.sign(redeem(f.alice, 1, 10));
    let r = f.hub.ingest(&f.shop.id, vec![forged, seq2], T0);
    assert_eq!(r.receipts.len(), 1);
    assert_eq!(
        rejection(&r.receipts[0].outcome),
        Some(&RejectReason::BadSignature)
    );
    assert_eq!((r.receipts[0].node, r.receipts[0].seq), (f.shop.id, 1));
    assert_eq!(r.processed_seq, 0);
    assert_eq!(snapshot(&mut f.hub, &nodes), before);
    let incidents = f.hub.incidents(10).unwrap();
    assert_eq!(incidents.last().unwrap().kind, IncidentKind::ChainRejected);

    // Garbage payload: malformed, attributed to the carrier.
    let junk = SignedTx::from_raw_parts(vec![1, 2, 3], [0; 64]);
    let r = f.hub.ingest(&f.shop.id, vec![junk], T0);
    assert!(matches!(
        rejection(&r.receipts[0].outcome),
        Some(RejectReason::Malformed(_))
    ));
    assert_eq!(snapshot(&mut f.hub, &nodes), before);
}

#[test]
fn a_forgery_in_the_middle_of_a_big_push_is_refused_alone() {
    // Signatures are checked in batches on two threads: the batch holding
    // the forgery fails and is checked one by one, and the answer is the
    // one a single check gives.
    for threads in [1, 2] {
        let mut f = Fixture::new();
        f.unbounded_shop();
        f.hub.set_threads(threads);
        // The shop carries the centre's 300 grants interleaved with its own 300 redeems.
        let mut push = vec![];
        for _ in 0..300 {
            push.push(f.centre.sign(grant(f.alice, 1, 10)));
            push.push(f.shop.sign(redeem(f.alice, 1, 1)));
        }
        let forged_at = 2 * 149 + 1; // the shop's seq 150
        let mut sig = push[forged_at].signature_bytes();
        sig[40] ^= 0x01;
        push[forged_at] = SignedTx::from_raw_parts(push[forged_at].payload_bytes().to_vec(), sig);
        let r = f.hub.ingest(&f.shop.id, push, T0);
        let refused: Vec<_> = r
            .receipts
            .iter()
            .filter_map(|x| rejection(&x.outcome).map(|why| (x.node, x.seq, why.clone())))
            .collect();
        assert_eq!(
            refused,
            vec![(f.shop.id, 150, RejectReason::BadSignature)],
            "{threads} threads"
        );
        // As before: the forgery stops its signer's later transactions, the
        // other signer's all apply.
        assert_eq!(r.receipts.len(), 300 + 150);
        assert_eq!(r.processed_seq, 149);
        assert_eq!(f.hub.chain_head(&f.centre.id).unwrap().processed_seq, 300);
        let b = f.hub.balance(f.alice, muni()).unwrap();
        assert_eq!(b.balance.get(), 300 * 10 - 149);
        f.hub.check_conservation().unwrap();
    }
}

#[test]
fn a_seen_signature_with_a_small_order_point_added_is_refused() {
    // Someone who saw a node's signature adds a small-order point to its R
    // and carries the copy in a batch of 300. The challenge hashes R, so the
    // copy verifies neither singly nor in a batch: it is refused alone, as a
    // forgery, whichever way the hub checks it.
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    for threads in [1, 2] {
        for torsion in &EIGHT_TORSION[1..] {
            let mut f = Fixture::new();
            f.unbounded_shop();
            f.hub.set_threads(threads);
            let mut push: Vec<SignedTx> = (0..300)
                .map(|_| f.centre.sign(grant(f.alice, 1, 10)))
                .collect();
            let at = 120;
            let mut sig = push[at].signature_bytes();
            let r = CompressedEdwardsY(sig[..32].try_into().unwrap())
                .decompress()
                .unwrap();
            sig[..32].copy_from_slice((r + torsion).compress().as_bytes());
            push[at] = SignedTx::from_raw_parts(push[at].payload_bytes().to_vec(), sig);
            let r = f.hub.ingest(&f.shop.id, push, T0);
            let refused: Vec<_> = r
                .receipts
                .iter()
                .filter_map(|x| rejection(&x.outcome).map(|why| (x.node, x.seq, why.clone())))
                .collect();
            assert_eq!(
                refused,
                vec![(f.centre.id, at as u64 + 1, RejectReason::BadSignature)],
                "{threads} threads"
            );
            assert_eq!(
                f.hub.chain_head(&f.centre.id).unwrap().processed_seq,
                at as u64
            );
            f.hub.check_conservation().unwrap();
        }
    }
}

#[test]
fn unenrolled_and_revoked_keys_are_refused() {
    let mut f = Fixture::new();
    let mut stranger = Chain::new(99);
    assert_eq!(
        f.hub.open(&hello(stranger.id), T0),
        Err(Refusal::NotEnrolled)
    );
    let nodes = [f.shop.id, stranger.id];
    let before = snapshot(&mut f.hub, &nodes);
    let tx = stranger.sign(redeem(f.alice, 1, 10));
    let r = f.hub.ingest(&f.shop.id, vec![tx], T0);
    assert_eq!(
        rejection(&r.receipts[0].outcome),
        Some(&RejectReason::UnknownNode)
    );
    assert_eq!(snapshot(&mut f.hub, &nodes), before);

    f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 100))],
        T0,
    );
    f.hub.revoke_node(f.shop.id, T0).unwrap();
    assert_eq!(f.hub.open(&hello(f.shop.id), T0), Err(Refusal::Revoked));
    let nodes = [f.shop.id, f.centre.id];
    let before = snapshot(&mut f.hub, &nodes);
    let r = f
        .hub
        .ingest(&f.centre.id, vec![f.shop.sign(redeem(f.alice, 1, 10))], T0);
    assert_eq!(
        rejection(&r.receipts[0].outcome),
        Some(&RejectReason::RevokedNode)
    );
    assert_eq!(snapshot(&mut f.hub, &nodes), before);
    // Every node learns of the revocation, first in its window.
    let facts = f.hub.received_facts(&f.centre.id, 0, 1000).unwrap();
    let first = facts.facts[0].verify(&f.hub.hub_id()).unwrap();
    assert!(matches!(first.payload().body, FactBody::NodeRevoked { node } if node == f.shop.id));
    assert!(
        f.hub
            .enrol_node(f.shop.id, &fid("shop-1"), policy(&[]), T0)
            .is_err()
    );
}

#[test]
fn gaps_and_forks_are_rejected_and_change_nothing() {
    let mut f = Fixture::new();
    f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 1000))],
        T0,
    );
    let t1 = f.shop.sign(redeem(f.alice, 1, 10));
    f.hub.ingest(&f.shop.id, vec![t1.clone()], T0);
    let nodes = [f.shop.id];
    let before = snapshot(&mut f.hub, &nodes);

    // Gap: seq 3 when 2 is expected; and the signer's later txs get no receipt.
    let t3 = f.shop.sign_at(3, TxId::GENESIS, redeem(f.alice, 1, 10));
    let t4 = f.shop.sign_at(4, t3.id(), redeem(f.alice, 1, 10));
    let r = f.hub.ingest(&f.shop.id, vec![t3, t4], T0);
    assert_eq!(r.receipts.len(), 1);
    assert_eq!(
        rejection(&r.receipts[0].outcome),
        Some(&RejectReason::ChainGap {
            expected: 2,
            got: 3
        })
    );
    // Fork: a different transaction at a processed seq.
    let other1 = f.shop.sign_at(1, TxId::GENESIS, redeem(f.alice, 1, 11));
    let r = f.hub.ingest(&f.shop.id, vec![other1], T0);
    assert_eq!(
        rejection(&r.receipts[0].outcome),
        Some(&RejectReason::ChainFork { seq: 1 })
    );
    // Fork: the next seq, chained to something else.
    let bad_prev = f.shop.sign_at(2, TxId::GENESIS, redeem(f.alice, 1, 10));
    let r = f.hub.ingest(&f.shop.id, vec![bad_prev], T0);
    assert_eq!(
        rejection(&r.receipts[0].outcome),
        Some(&RejectReason::ChainFork { seq: 2 })
    );
    assert_eq!(r.processed_seq, 1);
    assert_eq!(snapshot(&mut f.hub, &nodes), before);
    let n = f
        .hub
        .node_statuses()
        .unwrap()
        .into_iter()
        .find(|s| s.node.id == f.shop.id)
        .unwrap();
    assert_eq!(n.n_incidents, 3);
    // The honest chain continues.
    let r = f.hub.ingest(
        &{ f.shop.id },
        vec![f.shop.sign(redeem(f.alice, 1, 10))],
        T0,
    );
    assert!(rejection(&r.receipts[0].outcome).is_none());
}

#[test]
fn business_rejections_consume_the_seq() {
    let mut f = Fixture::new();
    let txs = vec![
        f.shop.sign(redeem(f.alice, 7, 10)), // unknown card
        f.shop.sign(redeem(f.bob, 1, 10)),   // alice's card, bob's account
        f.shop.sign(grant(f.alice, 1, 10)),  // the shop may not grant
        f.shop.sign(link(f.alice, "shop-1", "P1")),
    ];
    let nodes = [f.shop.id];
    let before = snapshot(&mut f.hub, &nodes);
    let r = f.hub.ingest(&f.shop.id, txs, T0);
    let reasons: Vec<_> = r
        .receipts
        .iter()
        .map(|r| rejection(&r.outcome).cloned())
        .collect();
    assert_eq!(reasons[0], Some(RejectReason::UnknownCard));
    assert_eq!(reasons[1], Some(RejectReason::WrongAccount(f.bob)));
    assert!(matches!(reasons[2], Some(RejectReason::NotAllowed(_))));
    assert!(matches!(reasons[3], Some(RejectReason::NotAllowed(_))));
    assert_eq!(r.processed_seq, 4);
    let after = snapshot(&mut f.hub, &nodes);
    assert_eq!(after.totals, before.totals);
    assert_eq!(after.heads[0].1.processed_seq, 4);
    // The stored reason comes back on a replay.
    let stored = f.hub.processed_tx(&f.shop.id, 1).unwrap().unwrap();
    assert_eq!(stored.outcome, r.receipts[0].outcome);
    let n = f
        .hub
        .node_statuses()
        .unwrap()
        .into_iter()
        .find(|s| s.node.id == f.shop.id)
        .unwrap();
    assert_eq!(n.n_rejected, 4);
}

#[test]
fn offline_overdraft_becomes_debt_and_later_grants_recover_it() {
    let mut f = Fixture::new();
    f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 300))],
        T0,
    );
    // The card was suspended after the node's offline decision: still honoured.
    f.hub.suspend_card(&card(1), T0).unwrap();
    let r = f.hub.ingest(
        &{ f.shop.id },
        vec![f.shop.sign(redeem(f.alice, 1, 500))],
        T0,
    );
    assert_eq!(accepted_balance(&r.receipts[0].outcome), (0, 200, 200));
    let debts = f.hub.debts().unwrap();
    assert_eq!(debts.len(), 1);
    assert_eq!((debts[0].account, debts[0].debt.get()), (f.alice, 200));
    let kinds: Vec<_> = f
        .hub
        .incidents(10)
        .unwrap()
        .iter()
        .map(|i| i.kind)
        .collect();
    assert!(kinds.contains(&IncidentKind::DebtCreated));
    assert!(kinds.contains(&IncidentKind::SpendOnInactiveCard));
    f.hub.check_conservation().unwrap();

    // A grant of 150 pays 150 of the debt; then a hub grant of 100 pays the rest.
    f.hub.reinstate_card(&card(1), T0).unwrap();
    let r = f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 150))],
        T0,
    );
    assert_eq!(accepted_balance(&r.receipts[0].outcome), (0, 50, 0));
    let b = f
        .hub
        .admin_grant(f.alice, &program(), pts(100), T0)
        .unwrap();
    assert_eq!((b.balance.get(), b.debt.get()), (50, 0));
    assert!(f.hub.debts().unwrap().is_empty());
    let report = f.hub.check_conservation().unwrap();
    let m = &report.municipalities[0];
    assert_eq!((m.credited, m.redeemed), (550, 500));
}

#[test]
fn program_overdraw_is_honoured_and_reported() {
    let mut f = Fixture::new();
    let small = mykey_sync_proto::ProgramId::parse("health").unwrap();
    f.hub.create_program(&small, muni(), pts(100), T0).unwrap();
    let g = mykey_sync_proto::TxBody::Grant(mykey_sync_proto::Grant {
        card: card(1),
        account: f.alice,
        municipality: muni(),
        program: small.clone(),
        points: pts(250),
    });
    let r = f.hub.ingest(&{ f.centre.id }, vec![f.centre.sign(g)], T0);
    assert_eq!(accepted_balance(&r.receipts[0].outcome), (250, 0, 0));
    let line = f
        .hub
        .programs()
        .unwrap()
        .into_iter()
        .find(|p| p.program.id == small)
        .unwrap();
    assert_eq!((line.budget.get(), line.overdrawn.get()), (0, 150));
    assert!(
        f.hub
            .incidents(10)
            .unwrap()
            .iter()
            .any(|i| i.kind == IncidentKind::ProgramOverdrawn)
    );
    f.hub.check_conservation().unwrap();
}

#[test]
fn links_are_unique_per_facility_and_only_reach_that_facility() {
    let mut f = Fixture::new();
    let txs = vec![
        f.library.sign(link(f.alice, "lib-1", "L-100")),
        f.library.sign(link(f.bob, "lib-1", "L-100")), // taken
        f.library.sign(unlink(f.bob, "lib-1", "L-100")), // not bob's
        f.library.sign(link(f.bob, "lib-2", "L-200")), // another facility's number
        f.library.sign(link(f.alice, "lib-1", "L-100")), // same again: no change
    ];
    let r = f.hub.ingest(&f.library.id, txs, T0);
    let reasons: Vec<_> = outcomes(&r).iter().map(|o| rejection(o).cloned()).collect();
    assert_eq!(reasons[0], None);
    assert_eq!(reasons[1], Some(RejectReason::NumberTaken));
    assert_eq!(reasons[2], Some(RejectReason::NotLinked));
    assert!(matches!(reasons[3], Some(RejectReason::NotAllowed(_))));
    assert_eq!(reasons[4], None);

    let hub_id = f.hub.hub_id();
    let numbers = |hub: &mut Hub, node| -> Vec<String> {
        hub.received_facts(node, 0, 2000)
            .unwrap()
            .facts
            .iter()
            .filter_map(|s| match &s.verify(&hub_id).unwrap().payload().body {
                FactBody::FacilityCard { number, .. } => Some(number.to_string()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(numbers(&mut f.hub, &f.library.id), vec!["L-100"]);
    assert!(numbers(&mut f.hub, &f.shop.id).is_empty());
    assert!(numbers(&mut f.hub, &f.centre.id).is_empty());

    let r = f.hub.ingest(
        &{ f.library.id },
        vec![f.library.sign(unlink(f.alice, "lib-1", "L-100"))],
        T0,
    );
    assert_eq!(rejection(&r.receipts[0].outcome), None);
    let r = f.hub.ingest(
        &{ f.library.id },
        vec![f.library.sign(link(f.bob, "lib-1", "L-100"))],
        T0,
    );
    assert_eq!(rejection(&r.receipts[0].outcome), None);
}

#[test]
fn priority_facts_come_first_and_the_cursor_pages() {
    let mut f = Fixture::new();
    for i in 0..10u64 {
        f.hub
            .admin_grant(f.alice, &program(), pts(10 + i), T0)
            .unwrap();
    }
    f.hub.suspend_card(&card(2), T0).unwrap();
    let hub_id = f.hub.hub_id();
    let all = f.hub.received_facts(&f.shop.id, 0, 2000).unwrap();
    let first = all.facts[0].verify(&hub_id).unwrap();
    assert!(matches!(
        first.payload().body,
        FactBody::CardStatusChanged {
            status: CardStatus::Suspended,
            ..
        }
    ));
    // The rest keep hub order.
    let seqs: Vec<u64> = all.facts[1..]
        .iter()
        .map(|s| s.verify(&hub_id).unwrap().payload().hub_seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    // Paging: small windows cover the same facts, the cursor moves forward.
    let mut cursor = 0;
    let mut seen = vec![];
    loop {
        let page = f.hub.received_facts(&f.shop.id, cursor, 3).unwrap();
        assert!(page.facts.len() <= 3);
        assert!(page.cursor >= cursor);
        for s in &page.facts {
            seen.push(s.verify(&hub_id).unwrap().payload().hub_seq);
        }
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    seen.sort();
    let mut want: Vec<u64> = all
        .facts
        .iter()
        .map(|s| s.verify(&hub_id).unwrap().payload().hub_seq)
        .collect();
    want.sort();
    assert_eq!(seen, want);
    // A node of another municipality sees only the cards (as visitors'
    // cards: registered elsewhere, and their suspension), no balance.
    let far = Chain::new(40);
    f.hub
        .enrol_node(
            far.id,
            &fid("shop-9"),
            policy(&[mykey_sync_proto::OpKind::Redeem]),
            T0,
        )
        .unwrap();
    let page = f.hub.received_facts(&far.id, 0, 2000).unwrap();
    assert!(!page.more);
    let bodies: Vec<FactBody> = page
        .facts
        .iter()
        .map(|s| s.verify(&hub_id).unwrap().payload().body.clone())
        .collect();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| matches!(b, FactBody::NodeLimits(_)))
            .count(),
        1,
        "its own certificate"
    );
    assert!(
        bodies.iter().all(|b| matches!(
            b,
            FactBody::NodeLimits(_)
                | FactBody::NodeVoucherCap { .. }
                | FactBody::CardRegistered { .. }
                | FactBody::CardStatusChanged { .. }
        )),
        "{bodies:?}"
    );
    assert!(bodies.iter().any(|b| matches!(
        b,
        FactBody::CardStatusChanged {
            status: CardStatus::Suspended,
            ..
        }
    )));
}

#[test]
fn relayed_transactions_are_processed_per_signer() {
    let mut f = Fixture::new();
    f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 1000))],
        T0,
    );
    // The shop carries the library's links and its own redeem; the library's chain
    // breaks (gap) but the shop's continues.
    let l1 = f.library.sign(link(f.alice, "lib-1", "L-1"));
    let l3 = f
        .library
        .sign_at(3, TxId::GENESIS, link(f.bob, "lib-1", "L-3"));
    let s1 = f.shop.sign(redeem(f.alice, 1, 100));
    let r = f.hub.ingest(&f.shop.id, vec![l1, l3, s1], T0);
    assert_eq!(r.receipts.len(), 3);
    assert_eq!(r.processed_seq, 1);
    assert!(matches!(
        rejection(&r.receipts[1].outcome),
        Some(RejectReason::ChainGap { .. })
    ));
    assert_eq!(f.hub.chain_head(&f.library.id).unwrap().processed_seq, 1);
    assert_eq!(f.hub.chain_head(&f.shop.id).unwrap().processed_seq, 1);
}

#[test]
fn hub_reopens_with_the_same_identity_and_state() {
    let mut f = Fixture::new();
    let id = f.hub.hub_id();
    f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 42))],
        T0,
    );
    let path = f.dir.path().join("hub");
    drop(f.hub);
    let mut hub = Hub::open(&path).unwrap();
    assert_eq!(hub.hub_id(), id);
    assert_eq!(hub.balance(f.alice, muni()).unwrap().balance.get(), 42);
    assert!(matches!(
        Hub::init(&path),
        Err(mykey_hub::InitError::AlreadyInitialised(_))
    ));
    let missing = f.dir.path().join("nope");
    let err = Hub::open(&missing).unwrap_err();
    assert!(err.to_string().contains("mykey-hub init"), "{err}");
    f.hub = hub;
}

#[test]
fn transfers_are_immutable_and_corrections_are_new_transfers() {
    let mut f = Fixture::new();
    f.hub
        .admin_grant(f.alice, &program(), pts(100), T0)
        .unwrap();
    let before = f.hub.transfers(0, 1000).unwrap();
    let upd = f.raw_execute("UPDATE transfers SET amount = 1 WHERE id = 1");
    assert!(upd.unwrap_err().contains("immutable"));
    assert!(f.raw_execute("DELETE FROM transfers").is_err());
    assert!(f.raw_execute("DELETE FROM facts").is_err());
    f.hub.check_conservation().unwrap();
    // A correction: funding taken back from the programme, as a new transfer.
    let pos = f
        .hub
        .post_correction(
            mykey_hub::LedgerAccount::ProgramBudget(program(), muni()),
            mykey_hub::LedgerAccount::MunicipalityFunding(muni()),
            pts(1000),
            T0,
        )
        .unwrap();
    let after = f.hub.transfers(0, 1000).unwrap();
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after.last().unwrap().pos, pos);
    f.hub.check_conservation().unwrap();
}

#[test]
fn registry_rules() {
    let mut f = Fixture::new();
    let hub = &mut f.hub;
    use mykey_sync_proto::MyKeyId;
    // Case-insensitive uniqueness.
    let e = hub
        .register_account(&MyKeyId::parse("ALICE01").unwrap(), muni(), &card(9), T0)
        .unwrap_err();
    assert!(matches!(e, mykey_hub::RegisterError::MyKeyIdTaken(_)));
    // The card is already alice's.
    let e = hub
        .register_account(&MyKeyId::parse("Carol").unwrap(), muni(), &card(1), T0)
        .unwrap_err();
    assert!(matches!(e, mykey_hub::RegisterError::CardTaken(_, a) if a == f.alice));
    // Renewal: the new card joins the account, the old one is superseded.
    hub.add_card(f.alice, &card(5), T0).unwrap();
    assert_eq!(
        hub.card(&card(1)).unwrap().unwrap().status,
        CardStatus::Superseded
    );
    assert_eq!(hub.card(&card(5)).unwrap().unwrap().account, f.alice);
    // Alias change: the old alias stays resolvable and reserved.
    hub.change_my_key_id(f.alice, &MyKeyId::parse("Hanako").unwrap(), T0)
        .unwrap();
    assert_eq!(
        hub.resolve_my_key_id(&MyKeyId::parse("alice01").unwrap())
            .unwrap(),
        f.alice
    );
    assert_eq!(hub.account(f.alice).unwrap().my_key_id.as_str(), "Hanako");
    let e = hub
        .change_my_key_id(f.bob, &MyKeyId::parse("Alice01").unwrap(), T0)
        .unwrap_err();
    assert!(matches!(e, mykey_hub::ChangeMyKeyIdError::Taken(_)));
    // Suspend twice is an error that says what state the card is in.
    hub.suspend_card(&card(2), T0).unwrap();
    let e = hub.suspend_card(&card(2), T0).unwrap_err();
    assert!(e.to_string().contains("suspended"), "{e}");
    // Unknown references.
    assert!(
        hub.enrol_node(Chain::new(50).id, &fid("nowhere"), policy(&[]), T0)
            .is_err()
    );
    assert!(
        hub.enrol_node(hub.hub_id(), &fid("shop-1"), policy(&[]), T0)
            .is_err()
    );
}

#[test]
fn the_full_check_finds_an_account_changed_behind_the_ledger() {
    let mut f = Fixture::new();
    f.hub
        .admin_grant(f.alice, &program(), pts(100), T0)
        .unwrap();
    f.hub.check_conservation().unwrap();
    f.raw_execute(
        "UPDATE ledger_accounts SET credits_posted = credits_posted + 5 WHERE kind = 'wallet'",
    )
    .unwrap();
    let e = f.hub.check_conservation().unwrap_err();
    assert!(
        e.to_string().contains("disagree") || e.to_string().contains("out of step"),
        "{e}"
    );
}

#[test]
fn a_priority_fact_never_overtakes_an_earlier_fact_about_the_same_card() {
    let mut f = Fixture::new();
    // Bob: suspend, reinstate, suspend. Alice: suspend only.
    f.hub.suspend_card(&card(2), T0).unwrap();
    f.hub.reinstate_card(&card(2), T0).unwrap();
    f.hub.suspend_card(&card(2), T0).unwrap();
    f.hub.suspend_card(&card(1), T0).unwrap();
    let hub_id = f.hub.hub_id();
    let statuses: Vec<(u8, CardStatus)> = f
        .hub
        .received_facts(&f.shop.id, 0, 2000)
        .unwrap()
        .facts
        .iter()
        .filter_map(
            |s| match s.verify(&hub_id).unwrap().payload().body.clone() {
                FactBody::CardStatusChanged { card: c, status } => {
                    Some((if c == card(1) { 1 } else { 2 }, status))
                }
                _ => None,
            },
        )
        .collect();
    // Applied in this order, the last word on each card is the hub's.
    let last = |n: u8| statuses.iter().rev().find(|(c, _)| *c == n).unwrap().1;
    assert_eq!(last(1), CardStatus::Suspended);
    assert_eq!(last(2), CardStatus::Suspended);
    // Bob's first suspension still goes first; the one after the reinstatement waits its turn.
    assert_eq!(statuses[0], (2, CardStatus::Suspended));
    assert_eq!(statuses[1], (1, CardStatus::Suspended));
}

#[test]
fn a_replay_after_revocation_still_gets_the_stored_receipt() {
    let mut f = Fixture::new();
    f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 100))],
        T0,
    );
    let tx = f.shop.sign(redeem(f.alice, 1, 40));
    let first = f.hub.ingest(&f.shop.id, vec![tx.clone()], T0);
    assert!(rejection(&first.receipts[0].outcome).is_none());
    // The answer was lost; then the node was revoked; then it resends.
    f.hub.revoke_node(f.shop.id, T0).unwrap();
    let again = f.hub.ingest(&f.shop.id, vec![tx], T0);
    assert_eq!(again.receipts, first.receipts);
    // Anything new from it is refused.
    let next = f.shop.sign(redeem(f.alice, 1, 1));
    let r = f.hub.ingest(&f.shop.id, vec![next], T0);
    assert_eq!(
        rejection(&r.receipts[0].outcome),
        Some(&RejectReason::RevokedNode)
    );
}

#[test]
fn absurd_amounts_are_refused_without_harming_the_hub() {
    let mut f = Fixture::new();
    let max = mykey_sync_proto::Points::MAX;
    let txs = vec![
        f.centre.sign(grant(f.alice, 1, max)),
        f.centre.sign(grant(f.alice, 1, 1)), // past the largest balance
    ];
    let r = f.hub.ingest(&f.centre.id, txs, T0);
    assert!(rejection(&r.receipts[0].outcome).is_none());
    assert!(matches!(
        rejection(&r.receipts[1].outcome),
        Some(RejectReason::NotAllowed(_))
    ));
    assert_eq!(r.processed_seq, 2);
    // Within the shop's bounds such a spend is held, not paid.
    let held = f.shop.sign(redeem(f.bob, 2, max));
    let r = f.hub.ingest(&f.shop.id, vec![held], T0);
    assert!(
        matches!(r.receipts[0].outcome, Outcome::Accepted { quarantined, .. } if quarantined.get() == max),
        "{:?}",
        r.receipts[0]
    );
    f.hub.check_conservation().unwrap();
    // Unbounded, the debt itself would overflow.
    f.unbounded_shop();
    let txs = vec![
        f.shop.sign(redeem(f.bob, 2, max)),
        f.shop.sign(redeem(f.bob, 2, 1)), // debt past the largest amount
    ];
    let r = f.hub.ingest(&f.shop.id, txs, T0);
    assert_eq!(accepted_balance(&r.receipts[0].outcome), (0, max, max));
    // Even an unbounded node's period allowance is used up now: the next
    // point is held, never added to a debt past the largest amount.
    assert!(
        matches!(r.receipts[1].outcome, Outcome::Accepted { quarantined, debt_created, .. }
            if quarantined.get() == 1 && debt_created.is_zero()),
        "{:?}",
        r.receipts[1]
    );
    assert!(matches!(
        f.hub.admin_grant(f.alice, &program(), pts(1), T0),
        Err(mykey_hub::GrantError::TooLarge(_))
    ));
    f.hub.check_conservation().unwrap();
}

#[test]
fn numbers_past_sqlite_integers_from_a_peer_do_not_panic_the_hub() {
    let mut f = Fixture::new();
    let big = u64::MAX;
    let w = f
        .hub
        .open(
            &Hello {
                node: f.shop.id,
                node_time: mykey_sync_proto::UnixMillis(big),
                last_seq: big,
                fact_cursor: big,
                software: "x".into(),
            },
            T0,
        )
        .unwrap();
    assert_eq!(w.processed_seq, 0);
    let page = f.hub.received_facts(&f.shop.id, big, 10).unwrap();
    assert!(page.facts.is_empty() && !page.more && page.cursor == big);
    // A gap at the largest seq, and a forgery claiming it.
    let far = f.shop.sign_at(big, TxId::GENESIS, redeem(f.alice, 1, 1));
    let mut sig = far.signature_bytes();
    sig[0] ^= 1;
    let forged = SignedTx::from_raw_parts(far.payload_bytes().to_vec(), sig);
    let r = f.hub.ingest(&f.library.id, vec![far, forged], T0);
    assert!(matches!(
        rejection(&r.receipts[0].outcome),
        Some(RejectReason::ChainGap { .. })
    ));
    // A transaction signed "at the end of time".
    f.hub.ingest(
        &{ f.centre.id },
        vec![f.centre.sign(grant(f.alice, 1, 10))],
        T0,
    );
    let late = SignedTx::sign(
        &mykey_sync_proto::TxPayload {
            node: f.shop.id,
            seq: 1,
            prev_hash: TxId::GENESIS,
            created_at: mykey_sync_proto::UnixMillis(big),
            body: redeem(f.alice, 1, 5),
        },
        &f.shop.key,
    );
    let r = f.hub.ingest(&f.shop.id, vec![late], T0);
    assert!(rejection(&r.receipts[0].outcome).is_none());
    assert!(!f.hub.node_statuses().unwrap().is_empty());
    assert!(!f.hub.transfers(0, 100).unwrap().is_empty());
    assert!(!f.hub.incidents(10).unwrap().is_empty());
    f.hub.check_conservation().unwrap();
}
