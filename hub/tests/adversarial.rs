//! Whatever peers send, the hub does not panic, and its ledger stays
//! balanced and conserved: arbitrary transactions (any seq, clock, amount,
//! account, card, merchant, programme), signed by enrolled, unknown or
//! revoked keys, or garbled, in arbitrary pushes and replays.

mod common;

use common::*;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::Hello;
use mykey_sync_proto::{
    AccountId, FacilityCardLink, FacilityCardNumber, Grant, Points, ProgramId, Redeem, SignedTx,
    TxBody, TxId, TxPayload, UnixMillis,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Spec {
    signer: usize,
    seq_mode: u8,
    raw_seq: u64,
    created_at: u64,
    kind: u8,
    account: u64,
    card: u8,
    points: u64,
    place: u8,
    garble: Option<(usize, u8)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..5usize,
        0..4u8,
        any::<u64>(),
        prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
        0..4u8,
        prop_oneof![1..4u64, Just(u64::MAX), 1..u64::MAX],
        0..4u8,
        prop_oneof![0..3000u64, Just(Points::MAX), 0..=Points::MAX],
        0..6u8,
        prop::option::weighted(0.15, (any::<usize>(), 1..=255u8)),
    )
        .prop_map(
            |(
                signer,
                seq_mode,
                raw_seq,
                created_at,
                kind,
                account,
                card,
                points,
                place,
                garble,
            )| {
                Spec {
                    signer,
                    seq_mode,
                    raw_seq,
                    created_at,
                    kind,
                    account,
                    card,
                    points,
                    place,
                    garble,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_pushes_never_panic_and_keep_the_ledger(
        pushes in prop::collection::vec(prop::collection::vec(spec(), 1..12), 1..10),
        revoke_at in 0..10usize,
    ) {
        let mut f = Fixture::new();
        f.hub.admin_grant(f.alice, &program(), pts(1000), T0).unwrap();
        let stranger = Chain::new(77);
        let mut chains = [f.shop, f.library, f.centre, stranger, Chain::new(78)];
        let places = ["shop-1", "lib-1", "cc-1", "lib-2", "shop-9", "nowhere"];
        let mut sent: Vec<SignedTx> = vec![];
        for (i, push) in pushes.into_iter().enumerate() {
            if i == revoke_at {
                f.hub.revoke_node(chains[1].id, T0).unwrap();
            }
            let mut txs = vec![];
            for s in push {
                let c = &mut chains[s.signer];
                let seq = match s.seq_mode {
                    0 | 1 => c.seq + 1,
                    2 => c.seq.saturating_sub(1).max(1),
                    _ => s.raw_seq,
                };
                let account = AccountId::new(s.account).unwrap();
                let place = mykey_sync_proto::FacilityId::parse(places[s.place as usize]).unwrap();
                let body = match s.kind {
                    0 => TxBody::Redeem(Redeem {
                        card: card(s.card),
                        account,
                        municipality: if s.place == 4 { other_muni() } else { muni() },
                        points: Points::new(s.points).unwrap(),
                        merchant: place,
                        basis: None,
                        card_proof: None,
                    }),
                    1 => TxBody::Grant(Grant {
                        card: card(s.card),
                        account,
                        municipality: muni(),
                        program: if s.place == 5 {
                            ProgramId::parse("nope").unwrap()
                        } else {
                            program()
                        },
                        points: Points::new(s.points).unwrap(),
                    }),
                    k => {
                        let l = FacilityCardLink {
                            account,
                            facility: place,
                            number: FacilityCardNumber::parse(&format!("N{}", s.card)).unwrap(),
                        };
                        if k == 2 { TxBody::LinkFacilityCard(l) } else { TxBody::UnlinkFacilityCard(l) }
                    }
                };
                let tx = SignedTx::sign(
                    &TxPayload {
                        node: c.id,
                        seq,
                        prev_hash: c.prev,
                        created_at: UnixMillis(s.created_at),
                        body,
                    },
                    &c.key,
                );
                if seq == c.seq + 1 {
                    c.seq = seq;
                    c.prev = tx.id();
                }
                let tx = match s.garble {
                    None => tx,
                    Some((at, flip)) => {
                        let mut payload = tx.payload_bytes().to_vec();
                        let mut sig = tx.signature_bytes();
                        let n = payload.len() + 64;
                        let at = at % n;
                        if at < payload.len() { payload[at] ^= flip } else { sig[at - payload.len()] ^= flip }
                        SignedTx::from_raw_parts(payload, sig)
                    }
                };
                txs.push(tx);
            }
            // Replay part of what was sent before, too.
            txs.extend(sent.iter().rev().take(i % 3).cloned());
            sent.extend(txs.iter().cloned());
            let carrier = chains[i % 3].id;
            let _ = f.hub.open(
                &Hello { node: carrier, node_time: T0, last_seq: u64::MAX, fact_cursor: u64::MAX, software: String::new() },
                T0,
            );
            let r = f.hub.ingest(&carrier, txs.clone(), T0.plus_ms(i as u64));
            prop_assert!(r.receipts.len() <= txs.len());
            let totals = f.hub.ledger_totals().unwrap();
            prop_assert_eq!(totals.debits, totals.credits);
            let _ = f.hub.received_facts(&carrier, 0, 50).unwrap();
        }
        if let Err(e) = f.hub.check_conservation() {
            return Err(TestCaseError::fail(e.to_string()));
        }
        for c in &chains {
            let head = f.hub.chain_head(&c.id).unwrap();
            prop_assert!(head.processed_seq <= c.seq);
        }
        let _ = TxId::GENESIS;
    }
}
