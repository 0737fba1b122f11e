//! One turn of a node's request on the storage worker.
//!
//! Every request goes through the peer's [`HubSession`] as before, except a
//! push longer than the turn's budget: its signatures are checked whole at
//! its first turn (ed25519 batches on all the hub's threads,
//! [`Hub::check_push`]), then it is applied `budget` transactions
//! at a time, each slice its own storage transaction (durable before the
//! next), and the peer waits for its next turn between slices, so one
//! node's 1,000-transaction push never holds the writer for long. The
//! receipts of every slice go back in one answer.
//!
//! A slice that leaves a transaction without a receipt (a signer's chain
//! stopped at a forged or out-of-order transaction) ends the push there:
//! the answer carries the receipts so far and the node resends the rest,
//! as after any partial answer (it resumes from its first unreceipted seq).

use crate::Hub;
use crate::ingest::CheckedPush;
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::receipts::ReceiptRanges;
use mykey_sync_proto::session::HubSession;
use mykey_sync_proto::wire::{Receipt, Receipts, Request, Response};

/// The rest of a push cut at a turn's budget.
#[derive(Debug)]
pub struct PartialPush {
    rest: CheckedPush,
    receipts: Vec<Receipt>,
}

/// What a turn did.
#[derive(Debug)]
pub enum Step {
    /// The request is answered.
    Answer(Response),
    /// A push has more to apply at the peer's next turn.
    More(PartialPush),
}

/// What a turn works on.
#[derive(Debug)]
pub enum TurnWork {
    /// A request as it arrived.
    Request(Request),
    /// The rest of a push.
    Continue(PartialPush),
}

impl TurnWork {
    /// Its kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TurnWork::Request(Request::Hello(_)) => "hello",
            TurnWork::Request(Request::Push(_)) | TurnWork::Continue(_) => "push",
            TurnWork::Request(Request::PullFacts(_)) => "pull",
            TurnWork::Request(Request::Shards) => "shards",
            TurnWork::Request(Request::ShardSync(_)) => "shard sync",
            TurnWork::Request(Request::Holder(_)) => "holder",
        }
    }
}

/// Works one turn: answers `work` through `session`, or applies at most
/// `budget` transactions of a push.
pub fn take_turn(
    hub: &mut Hub,
    session: &mut HubSession,
    peer: &mykey_sync_proto::NodeId,
    work: TurnWork,
    now: UnixMillis,
    budget: usize,
) -> Step {
    let budget = budget.max(1);
    let partial = match work {
        // Only an open session's push is applied (the session's own rule).
        TurnWork::Request(Request::Push(p)) if session.is_open() && p.txs.len() > budget => {
            PartialPush {
                rest: hub.check_push(p.txs),
                receipts: vec![],
            }
        }
        TurnWork::Request(req) => return Step::Answer(session.handle_request(req, now, hub)),
        TurnWork::Continue(p) => p,
    };
    let PartialPush {
        mut rest,
        mut receipts,
    } = partial;
    let later = rest.split_off(budget.min(rest.len()));
    let n = rest.len();
    let slice = hub.ingest_checked(peer, rest, now);
    let whole = slice.receipts.len() == n;
    receipts.extend(slice.receipts);
    if whole && !later.is_empty() {
        return Step::More(PartialPush {
            rest: later,
            receipts,
        });
    }
    Step::Answer(Response::Receipts(ReceiptRanges::from_receipts(
        &Receipts {
            receipts,
            processed_seq: slice.processed_seq,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::facility;
    use crate::key::HubKey;
    use crate::{FacilityKind, NodePolicy};
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::wire::{Hello, Push};
    use mykey_sync_proto::{
        FacilityCardLink, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId, NodeId,
        OpKind, Points, SignedTx, TxBody, TxId, TxPayload,
    };

    const T0: UnixMillis = UnixMillis(1_750_000_000_000);

    fn world() -> (Hub, SigningKey, NodeId, mykey_sync_proto::AccountId) {
        let mut hub = Hub::in_memory(HubKey::from_secret_bytes(&[9; 32])).unwrap();
        let m = MunicipalityCode::parse("131059").unwrap();
        hub.add_municipality(m, "Bunkyo", T0).unwrap();
        let f = FacilityId::parse("lib-1").unwrap();
        hub.add_facility(&facility(f.clone(), m, FacilityKind::Library, "lib"), T0)
            .unwrap();
        let key = SigningKey::from_bytes(&[4; 32]);
        let node = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
        let policy = NodePolicy {
            allowed_ops: vec![OpKind::Link],
            per_card_offline_limit: Points::new(1).unwrap(),
            node_exposure_limit: Points::new(1).unwrap(),
            offline_voucher_cap: Points::new(1).unwrap(),
            pin_threshold: Points::new(1).unwrap(),
            valid_until: T0.plus_ms(86_400_000),
        };
        hub.enrol_node(node, &f, policy, T0).unwrap();
        let card = mykey_sync_proto::CardKey::new(vec![1], vec![2]).unwrap();
        let account = hub
            .register_account(&MyKeyId::parse("hanako").unwrap(), m, &card, T0)
            .unwrap();
        (hub, key, node, account)
    }

    fn links(
        key: &SigningKey,
        node: NodeId,
        account: mykey_sync_proto::AccountId,
        n: u64,
    ) -> Vec<SignedTx> {
        let mut prev = TxId::GENESIS;
        (1..=n)
            .map(|seq| {
                let tx = SignedTx::sign(
                    &TxPayload {
                        node,
                        seq,
                        prev_hash: prev,
                        created_at: T0,
                        body: TxBody::LinkFacilityCard(FacilityCardLink {
                            account,
                            facility: FacilityId::parse("lib-1").unwrap(),
                            number: FacilityCardNumber::parse(&format!("L{seq}")).unwrap(),
                        }),
                    },
                    key,
                );
                prev = tx.id();
                tx
            })
            .collect()
    }

    fn open(hub: &mut Hub, node: NodeId) -> HubSession {
        let mut s = HubSession::new(node);
        let hello = Request::Hello(Hello {
            node,
            node_time: T0,
            last_seq: 0,
            fact_cursor: 0,
            software: "test".into(),
        });
        assert!(matches!(
            s.handle_request(hello, T0, hub),
            Response::Welcome(_)
        ));
        s
    }

    #[test]
    fn a_long_push_is_applied_in_slices_and_answered_as_one() {
        let (mut whole_hub, key, node, account) = world();
        let txs = links(&key, node, account, 25);
        let mut s = open(&mut whole_hub, node);
        let whole = s.handle_request(Request::Push(Push { txs: txs.clone() }), T0, &mut whole_hub);

        let (mut hub, _, _, _) = world();
        let mut s = open(&mut hub, node);
        let mut work = TurnWork::Request(Request::Push(Push { txs }));
        let mut turns = 0;
        let sliced = loop {
            turns += 1;
            match take_turn(&mut hub, &mut s, &node, work, T0, 10) {
                Step::Answer(r) => break r,
                Step::More(p) => work = TurnWork::Continue(p),
            }
        };
        assert_eq!(turns, 3, "10 + 10 + 5");
        assert_eq!(sliced, whole);
        match sliced {
            Response::Receipts(r) => assert_eq!((r.len(), r.processed_seq), (25, 25)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_push_before_hello_is_refused_whatever_its_length() {
        let (mut hub, key, node, account) = world();
        let mut s = HubSession::new(node);
        let txs = links(&key, node, account, 30);
        let step = take_turn(
            &mut hub,
            &mut s,
            &node,
            TurnWork::Request(Request::Push(Push { txs })),
            T0,
            10,
        );
        assert!(
            matches!(step, Step::Answer(Response::Refused(_))),
            "{step:?}"
        );
    }

    #[test]
    fn a_slice_that_stops_a_chain_ends_the_push_with_the_receipts_so_far() {
        let (mut hub, key, node, account) = world();
        let mut txs = links(&key, node, account, 30);
        // seq 15 is missing: the chain stops there.
        txs.remove(14);
        let mut s = open(&mut hub, node);
        let mut work = TurnWork::Request(Request::Push(Push { txs }));
        let answer = loop {
            match take_turn(&mut hub, &mut s, &node, work, T0, 10) {
                Step::Answer(r) => break r,
                Step::More(p) => work = TurnWork::Continue(p),
            }
        };
        match answer {
            Response::Receipts(r) => {
                assert_eq!(r.processed_seq, 14);
                assert_eq!(r.len(), 15, "14 applied, then the gap refused");
            }
            other => panic!("{other:?}"),
        }
    }
}
