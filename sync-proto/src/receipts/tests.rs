use super::*;
use crate::wire::{MAX_PUSH_TXS, Response, WireError};
use proptest::prelude::*;

fn node(i: u8) -> NodeId {
    let key = ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]);
    NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap()
}

fn snapshot(account: u64, balance: u64) -> BalanceSnapshot {
    BalanceSnapshot {
        account: AccountId::new(account).unwrap(),
        municipality: MunicipalityCode::parse("131059").unwrap(),
        balance: Points::new(balance).unwrap(),
        debt: Points::ZERO,
    }
}

fn accepted(n: u8, seq: u64, pos: u64, balance: Option<BalanceSnapshot>) -> Receipt {
    Receipt {
        node: node(n),
        seq,
        tx: Some(TxId::hash_of(&seq.to_be_bytes())),
        outcome: Outcome::Accepted {
            ledger_pos: pos,
            balance,
            debt_created: Points::ZERO,
            quarantined: Points::ZERO,
        },
    }
}

fn rejected(n: u8, seq: u64, reason: RejectReason) -> Receipt {
    Receipt {
        node: node(n),
        seq,
        tx: Some(TxId::hash_of(&seq.to_be_bytes())),
        outcome: Outcome::Rejected(reason),
    }
}

fn ranges(signers: Vec<SignerRuns>, balances: Vec<BalanceAt>) -> ReceiptRanges {
    ReceiptRanges {
        signers,
        balances,
        processed_seq: 0,
    }
}

fn run(seq: u64, count: u32) -> Run {
    Run::Accepted {
        seq,
        count,
        ledger_pos: 10,
        step: 1,
    }
}

fn group(n: u8, runs: Vec<Run>) -> SignerRuns {
    SignerRuns {
        node: node(n),
        runs,
    }
}

/// What the node gets back: the hub's receipts with ids of acceptances,
/// superseded snapshots and repeated seqs dropped, grouped per signer.
fn expected(r: &Receipts) -> Vec<Receipt> {
    let mut last: HashMap<AccountId, (u64, usize)> = HashMap::new();
    for (i, rc) in r.receipts.iter().enumerate() {
        if let Outcome::Accepted {
            ledger_pos,
            balance: Some(b),
            ..
        } = &rc.outcome
        {
            let e = last.entry(b.account).or_insert((*ledger_pos, i));
            if *ledger_pos >= e.0 {
                *e = (*ledger_pos, i);
            }
        }
    }
    let mut order: Vec<NodeId> = vec![];
    for rc in &r.receipts {
        if !order.contains(&rc.node) {
            order.push(rc.node);
        }
    }
    let mut out = vec![];
    for n in order {
        let mut mine: Vec<(usize, &Receipt)> = r
            .receipts
            .iter()
            .enumerate()
            .filter(|(_, rc)| rc.node == n)
            .collect();
        mine.sort_by_key(|(_, rc)| rc.seq);
        mine.dedup_by_key(|(_, rc)| rc.seq);
        for (i, rc) in mine {
            let mut rc = rc.clone();
            if let Outcome::Accepted { balance, .. } = &mut rc.outcome {
                rc.tx = None;
                if balance
                    .as_ref()
                    .is_some_and(|b| last.get(&b.account).map(|x| x.1) != Some(i))
                {
                    *balance = None;
                }
            }
            out.push(rc);
        }
    }
    out
}

fn through_the_wire(r: &Receipts) -> Receipts {
    let bytes = Response::Receipts(ReceiptRanges::from_receipts(r)).encode();
    match Response::decode(&bytes).unwrap() {
        Response::Receipts(rr) => rr.expand(MAX_PUSH_TXS).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_clean_batch_is_one_run_and_the_last_balance_per_wallet() {
    // 1,000 accepted redeems at consecutive positions over 10 wallets.
    let receipts = Receipts {
        receipts: (1..=1000)
            .map(|s| accepted(0, s, 100 + s, Some(snapshot(1 + s % 10, s))))
            .collect(),
        processed_seq: 1000,
    };
    let rr = ReceiptRanges::from_receipts(&receipts);
    assert_eq!(rr.signers.len(), 1);
    assert_eq!(
        rr.signers[0].runs,
        vec![Run::Accepted {
            seq: 1,
            count: 1000,
            ledger_pos: 101,
            step: 1
        }]
    );
    assert_eq!(rr.balances.len(), 10);
    assert!(
        crate::codec::encode(&rr).len() < 200,
        "{}",
        crate::codec::encode(&rr).len()
    );
    let back = through_the_wire(&receipts);
    assert_eq!(back.receipts, expected(&receipts));
    assert_eq!(back.processed_seq, 1000);
}

#[test]
fn exceptions_are_listed_between_runs() {
    let mut debt = accepted(0, 3, 13, Some(snapshot(1, 0)));
    if let Outcome::Accepted { debt_created, .. } = &mut debt.outcome {
        *debt_created = Points::new(5).unwrap();
    }
    let receipts = Receipts {
        receipts: vec![
            accepted(0, 1, 11, None),
            accepted(0, 2, 12, None),
            debt,
            rejected(0, 4, RejectReason::UnknownCard),
            accepted(1, 7, 14, None), // a carried peer's
            accepted(0, 5, 15, None),
            accepted(0, 6, 15, None), // a link: no new position
            rejected(
                1,
                9,
                RejectReason::ChainGap {
                    expected: 8,
                    got: 9,
                },
            ),
        ],
        processed_seq: 6,
    };
    let rr = ReceiptRanges::from_receipts(&receipts);
    assert_eq!(rr.signers.len(), 2);
    assert_eq!(rr.signers[0].runs.len(), 4, "{:?}", rr.signers[0].runs);
    let back = through_the_wire(&receipts);
    assert_eq!(back.receipts, expected(&receipts));
    // A rejection keeps its transaction id; acceptances do not travel with one.
    assert!(
        back.receipts
            .iter()
            .all(|r| r.tx.is_some() == matches!(r.outcome, Outcome::Rejected(_)))
    );
}

#[test]
fn a_repeated_seq_keeps_the_first_verdict() {
    let receipts = Receipts {
        receipts: vec![
            accepted(0, 1, 11, None),
            rejected(0, 1, RejectReason::BadSignature),
            rejected(0, 0, RejectReason::Malformed("x".into())),
            rejected(0, 0, RejectReason::Malformed("y".into())),
        ],
        processed_seq: 1,
    };
    let back = through_the_wire(&receipts);
    assert_eq!(back.receipts.len(), 2);
    assert!(
        matches!(back.receipts[0].outcome, Outcome::Rejected(RejectReason::Malformed(ref m)) if m == "x")
    );
    assert!(matches!(back.receipts[1].outcome, Outcome::Accepted { .. }));
}

#[test]
fn hostile_ranges_are_refused_with_a_reason() {
    let bal = |index| BalanceAt {
        index,
        balance: snapshot(1, 1),
    };
    let cases: Vec<(&str, ReceiptRanges, &str)> = vec![
        (
            "empty run",
            ranges(vec![group(0, vec![run(1, 0)])], vec![]),
            "empty run",
        ),
        (
            "empty group",
            ranges(vec![group(0, vec![])], vec![]),
            "no receipts",
        ),
        (
            "overlap",
            ranges(vec![group(0, vec![run(1, 5), run(5, 2)])], vec![]),
            "seq 5 does not follow seq 5",
        ),
        (
            "backwards",
            ranges(vec![group(0, vec![run(10, 1), run(3, 1)])], vec![]),
            "out-of-order",
        ),
        (
            "seq overflow",
            ranges(vec![group(0, vec![run(u64::MAX, 2)])], vec![]),
            "overflows",
        ),
        (
            "position overflow",
            ranges(
                vec![group(
                    0,
                    vec![Run::Accepted {
                        seq: 1,
                        count: 3,
                        ledger_pos: u64::MAX - 1,
                        step: 1,
                    }],
                )],
                vec![],
            ),
            "overflows",
        ),
        (
            "too many",
            ranges(vec![group(0, vec![run(1, u32::MAX)])], vec![]),
            "more than 1000",
        ),
        (
            "too many across groups",
            ranges(
                vec![group(0, vec![run(1, 600)]), group(1, vec![run(1, 600)])],
                vec![],
            ),
            "more than 1000",
        ),
        (
            "signer twice",
            ranges(
                vec![group(0, vec![run(1, 2)]), group(0, vec![run(9, 1)])],
                vec![],
            ),
            "two groups",
        ),
        (
            "balance past the end",
            ranges(vec![group(0, vec![run(1, 2)])], vec![bal(2)]),
            "no such receipt",
        ),
        (
            "balances out of order",
            ranges(vec![group(0, vec![run(1, 3)])], vec![bal(1), bal(1)]),
            "not after",
        ),
        (
            "balance on a rejection",
            ranges(
                vec![group(
                    0,
                    vec![
                        run(1, 1),
                        Run::One {
                            seq: 2,
                            said: Said::Rejected {
                                tx: None,
                                reason: RejectReason::UnknownCard,
                            },
                        },
                    ],
                )],
                vec![bal(1)],
            ),
            "rejection",
        ),
    ];
    for (name, rr, why) in cases {
        let e = rr.expand(MAX_PUSH_TXS).unwrap_err();
        assert!(e.to_string().contains(why), "{name}: {e}");
        match Response::decode(&Response::Receipts(rr).encode()) {
            Err(WireError::Receipts(_) | WireError::TooMany { .. }) => {}
            other => panic!("{name}: decoded {other:?}"),
        }
    }
}

fn arb_outcome() -> impl Strategy<Value = (u64, Outcome)> {
    (0u64..4, 0u64..3, 0u64..2, 0u64..3, any::<bool>()).prop_map(
        |(pos_gap, debt, quarantined, account, rejected)| {
            if rejected {
                (
                    pos_gap,
                    Outcome::Rejected(RejectReason::ChainGap {
                        expected: debt,
                        got: quarantined,
                    }),
                )
            } else {
                (
                    pos_gap,
                    Outcome::Accepted {
                        ledger_pos: 0,
                        balance: (account > 0).then(|| snapshot(account, pos_gap)),
                        debt_created: Points::new(if debt == 2 { 7 } else { 0 }).unwrap(),
                        quarantined: Points::new(quarantined).unwrap(),
                    },
                )
            }
        },
    )
}

proptest! {
    #[test]
    fn ranges_expand_to_what_the_hub_said(
        items in proptest::collection::vec((0u8..3, 0u64..3, arb_outcome()), 0..60),
        processed_seq in 0u64..100,
    ) {
        // Seqs mostly consecutive per signer, sometimes skipping or repeating.
        let mut next = [1u64; 3];
        let mut pos = 1u64;
        let receipts = Receipts {
            receipts: items
                .into_iter()
                .map(|(n, jump, (gap, mut outcome))| {
                    let seq = match jump {
                        0 => next[n as usize].saturating_sub(1),
                        _ => next[n as usize] + jump - 1,
                    };
                    next[n as usize] = seq + 1;
                    pos += gap;
                    if let Outcome::Accepted { ledger_pos, .. } = &mut outcome {
                        *ledger_pos = pos;
                    }
                    Receipt { node: node(n), seq, tx: Some(TxId::hash_of(&[n])), outcome }
                })
                .collect(),
            processed_seq,
        };
        let back = through_the_wire(&receipts);
        prop_assert_eq!(back.receipts, expected(&receipts));
        prop_assert_eq!(back.processed_seq, processed_seq);
    }

    #[test]
    fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut framed = crate::wire::PROTOCOL_VERSION.to_be_bytes().to_vec();
        framed.push(1); // Response::Receipts
        framed.extend(bytes);
        if let Ok(Response::Receipts(rr)) = Response::decode(&framed) {
            let n = rr.check(MAX_PUSH_TXS).unwrap();
            prop_assert_eq!(rr.expand(MAX_PUSH_TXS).unwrap().receipts.len(), n);
        }
    }
}
