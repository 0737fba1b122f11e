//! The node on its own: facts signed by a test hub key, real SQLite files.

use ed25519_dalek::SigningKey;
use mykey_node::node::{FactsError, Lookup, OpError};
use mykey_node::rules::Decline;
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::wire::{BalanceSnapshot, Outcome, Receipt, Receipts, RejectReason};
use mykey_sync_proto::{
    AccountId, CardKey, CardStatus, FacilityCardNumber, FacilityId, FactBody, MyKeyId, NodeLimits,
    OpKind, ProgramId, Scope, SignedTx, UnixMillis,
};

mod common;
use common::*;

fn card(n: u8) -> CardKey {
    CardKey::new(vec![0x30, 0x01, n], vec![n, n]).unwrap()
}
fn acct(n: u64) -> AccountId {
    AccountId::new(n).unwrap()
}

fn setup(dir: &std::path::Path) -> (Node, Hub) {
    let mut hub = Hub {
        key: SigningKey::from_bytes(&[42; 32]),
        seq: 0,
    };
    let key = NodeKey::from_secret([1; 32]);
    let me = key.id();
    let mut node = Node::open(&dir.join("node.sqlite"), key, hub.id()).unwrap();
    let m = muni();
    let f = hub.facts(vec![
        (
            Scope::Node(me),
            FactBody::NodeLimits(NodeLimits {
                node: me,
                facility: FacilityId::parse("stall-1").unwrap(),
                municipality: m,
                allowed_ops: OpKind::ALL.to_vec(),
                per_card_offline_limit: p(3000),
                node_exposure_limit: p(5000),
                pin_threshold: p(1000),
                valid_until: UnixMillis(1_000_000),
            }),
        ),
        (
            Scope::Municipality(m),
            FactBody::CardRegistered {
                card: card(1),
                account: acct(1),
                my_key_id: MyKeyId::parse("hanako").unwrap(),
                municipality: m,
            },
        ),
        (
            Scope::Municipality(m),
            FactBody::CardRegistered {
                card: card(2),
                account: acct(2),
                my_key_id: MyKeyId::parse("taro").unwrap(),
                municipality: m,
            },
        ),
        (
            Scope::Municipality(m),
            FactBody::ConfirmedBalance {
                account: acct(1),
                municipality: m,
                balance: p(4000),
                debt: p(0),
                ledger_pos: 10,
            },
        ),
        (
            Scope::Facility(FacilityId::parse("stall-1").unwrap()),
            FactBody::FacilityCard {
                account: acct(1),
                facility: FacilityId::parse("stall-1").unwrap(),
                number: FacilityCardNumber::parse("PT-0001").unwrap(),
                linked: true,
            },
        ),
    ]);
    assert_eq!(node.apply_facts(&f).unwrap(), 5);
    (node, hub)
}

#[test]
fn offline_rules_hold_with_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, _hub) = setup(dir.path());
    let now = UnixMillis(100);
    match node.lookup(&card(1)).unwrap() {
        Lookup::Found {
            my_key_id, numbers, ..
        } => {
            assert_eq!(my_key_id.as_str(), "hanako");
            assert_eq!(numbers.len(), 1);
            assert!(numbers[0].confirmed);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(node.lookup(&card(9)).unwrap(), Lookup::NotRegistered);
    // Within every limit.
    node.redeem(&card(1), p(900), None, now).unwrap();
    // PIN needed above 1000.
    let e = node.redeem(&card(1), p(1500), None, now).unwrap_err();
    assert!(
        matches!(e, OpError::Declined(Decline::PinRequired { .. })),
        "{e}"
    );
    // (Above the threshold with a real card proof: tests/tests/card_proof.rs.)
    node.redeem(&card(1), p(750), None, now).unwrap();
    node.redeem(&card(1), p(750), None, now).unwrap();
    // 4000 - 2400 pending = 1600 available, card limit 3000 - 2400 = 600 left.
    let e = node.redeem(&card(1), p(700), None, now).unwrap_err();
    assert!(
        matches!(e, OpError::Declined(Decline::CardOfflineLimit { .. })),
        "{e}"
    );
    // Account 2 has no confirmed balance.
    let e = node.redeem(&card(2), p(1), None, now).unwrap_err();
    match e {
        OpError::Declined(Decline::InsufficientBalance {
            available, asked, ..
        }) => {
            assert_eq!((available, asked), (p(0), p(1)));
        }
        other => panic!("{other}"),
    }
    let s = node.status().unwrap();
    assert_eq!((s.last_seq, s.outbox.pending), (3, 3));
    assert_eq!(s.exposure, p(2400));
}

#[test]
fn suspension_is_refused_and_forged_facts_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, mut hub) = setup(dir.path());
    // A fact signed by someone else: the whole batch is dropped.
    let mut evil = Hub {
        key: SigningKey::from_bytes(&[66; 32]),
        seq: hub.seq,
    };
    let forged = evil.facts(vec![(
        Scope::Municipality(muni()),
        FactBody::ConfirmedBalance {
            account: acct(2),
            municipality: muni(),
            balance: p(1_000_000),
            debt: p(0),
            ledger_pos: 99,
        },
    )]);
    let before = node.status().unwrap().fact_cursor;
    assert!(matches!(
        node.apply_facts(&forged),
        Err(FactsError::NotAuthentic { index: 0, .. })
    ));
    assert_eq!(node.balance(acct(2), muni()).unwrap().0, p(0));
    assert_eq!(node.status().unwrap().fact_cursor, before);
    // A real suspension.
    let f = hub.facts(vec![(
        Scope::Municipality(muni()),
        FactBody::CardStatusChanged {
            card: card(1),
            status: CardStatus::Suspended,
        },
    )]);
    node.apply_facts(&f).unwrap();
    assert_eq!(node.lookup(&card(1)).unwrap(), Lookup::Suspended);
    let e = node
        .redeem(&card(1), p(1), None, UnixMillis(5))
        .unwrap_err();
    assert!(
        matches!(e, OpError::Declined(Decline::CardSuspended)),
        "{e}"
    );
    assert_eq!(node.status().unwrap().last_seq, 0, "nothing was signed");
}

#[test]
fn crash_after_done_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hub_id;
    let done;
    {
        let (mut node, hub) = setup(dir.path());
        hub_id = hub.id();
        node.link(
            &card(2),
            FacilityCardNumber::parse("PT-0002").unwrap(),
            UnixMillis(7),
        )
        .unwrap();
        done = node.redeem(&card(1), p(300), None, UnixMillis(8)).unwrap();
        // Dropped right after the operation was reported done: no shutdown.
        std::mem::forget(node);
    }
    let node = Node::open(
        &dir.path().join("node.sqlite"),
        NodeKey::from_secret([1; 32]),
        hub_id,
    )
    .unwrap();
    let txs = node.outbox_from(1, 10).unwrap();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[1].id(), done.tx);
    let v = txs[1].verify().unwrap();
    assert_eq!(v.payload().prev_hash, txs[0].id(), "chain intact");
    // The pending link is visible at once, marked unconfirmed.
    match node.lookup(&card(2)).unwrap() {
        Lookup::Found { numbers, .. } => assert!(!numbers[0].confirmed),
        other => panic!("{other:?}"),
    }
}

#[test]
fn receipts_settle_outbox_and_rejections_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, _hub) = setup(dir.path());
    let a = node.redeem(&card(1), p(100), None, UnixMillis(1)).unwrap();
    let b = node
        .link(
            &card(1),
            FacilityCardNumber::parse("PT-0009").unwrap(),
            UnixMillis(2),
        )
        .unwrap();
    let me = node.id();
    let receipts = Receipts {
        receipts: vec![
            Receipt {
                node: me,
                seq: a.seq,
                tx: None, // as receipts of acceptances arrive: matched by seq
                outcome: Outcome::Accepted {
                    ledger_pos: 20,
                    balance: Some(BalanceSnapshot {
                        account: acct(1),
                        municipality: muni(),
                        balance: p(3900),
                        debt: p(0),
                    }),
                    debt_created: p(0),
                    quarantined: p(0),
                },
            },
            Receipt {
                node: me,
                seq: b.seq,
                tx: Some(b.tx),
                outcome: Outcome::Rejected(RejectReason::NumberTaken),
            },
        ],
        processed_seq: 2,
    };
    node.apply_receipts(&receipts, UnixMillis(3)).unwrap();
    let s = node.status().unwrap();
    assert_eq!(
        (s.outbox.accepted, s.outbox.rejected, s.outbox.pending),
        (1, 1, 0)
    );
    assert_eq!(s.receipted_seq, 2);
    assert!(
        s.troubled[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("linked to another")
    );
    assert_eq!(
        node.balance(acct(1), muni()).unwrap(),
        (p(3900), p(0), p(0))
    );
    // The rejected link was rolled back locally.
    match node.lookup(&card(1)).unwrap() {
        Lookup::Found { numbers, .. } => assert_eq!(numbers.len(), 1),
        other => panic!("{other:?}"),
    }
    // A grant is accepted offline but not spendable.
    node.grant(
        &card(2),
        ProgramId::parse("volunteer").unwrap(),
        p(500),
        UnixMillis(4),
    )
    .unwrap();
    assert!(node.redeem(&card(2), p(1), None, UnixMillis(5)).is_err());
    let _ = SignedTx::from_bytes(&node.outbox_from(3, 1).unwrap()[0].to_bytes()).unwrap();
}

#[test]
fn upcoming_expiry_is_stored_shown_and_forgeries_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, mut hub) = setup(dir.path());
    assert_eq!(node.upcoming_expiry(acct(1), muni()).unwrap(), None);
    // 2026-03-31T15:00:00Z is 2026-04-01 00:00 JST: usable through 31 March.
    let fy_end = UnixMillis(1_774_969_200_000);
    let expiry = |points: u64, expires_at: UnixMillis| {
        (
            Scope::Municipality(muni()),
            FactBody::UpcomingExpiry {
                account: acct(1),
                municipality: muni(),
                points: p(points),
                expires_at,
            },
        )
    };
    node.apply_facts(&hub.facts(vec![expiry(300, fy_end)]))
        .unwrap();
    let (points, at) = node.upcoming_expiry(acct(1), muni()).unwrap().unwrap();
    assert_eq!((points, at), (p(300), fy_end));
    assert_eq!(
        mykey_node::expiry::line(points, at),
        "300 pt expire on 2026-03-31"
    );
    // A forged one changes nothing.
    let mut evil = Hub {
        key: SigningKey::from_bytes(&[66; 32]),
        seq: hub.seq,
    };
    let forged = evil.facts(vec![expiry(1, UnixMillis(5))]);
    assert!(matches!(
        node.apply_facts(&forged),
        Err(FactsError::NotAuthentic { index: 0, .. })
    ));
    assert_eq!(
        node.upcoming_expiry(acct(1), muni()).unwrap(),
        Some((p(300), fy_end))
    );
    // The hub's later word wins; zero points means nothing expires.
    node.apply_facts(&hub.facts(vec![expiry(0, UnixMillis(0))]))
        .unwrap();
    assert_eq!(node.upcoming_expiry(acct(1), muni()).unwrap(), None);
}

#[test]
fn donation_programmes_follow_the_hubs_latest_word_and_only_this_towns_open_ones_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, mut hub) = setup(dir.path());
    let m = muni();
    let other = mykey_sync_proto::MunicipalityCode::parse("011002").unwrap();
    let fact = |id: &str, muni, open| {
        (
            Scope::Municipality(muni),
            FactBody::DonationProgramme {
                municipality: muni,
                programme: ProgramId::parse(id).unwrap(),
                recipient: mykey_sync_proto::DonationRecipient::parse("能登町 災害義援金").unwrap(),
                open,
            },
        )
    };
    let declared = hub.facts(vec![
        fact("noto-relief", m, true),
        fact("flood-aid", m, true),
        fact("sapporo-aid", other, true),
    ]);
    node.apply_facts(&declared).unwrap();
    let ids = |n: &Node| {
        n.donation_programmes()
            .unwrap()
            .into_iter()
            .map(|(p, _)| p.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&node), ["flood-aid", "noto-relief"]);
    let closed = hub.facts(vec![fact("noto-relief", m, false)]);
    node.apply_facts(&closed).unwrap();
    assert_eq!(ids(&node), ["flood-aid"]);
    // The older "open" fact again (a replay) does not reopen it.
    node.apply_facts(&declared).unwrap();
    assert_eq!(ids(&node), ["flood-aid"]);
    // A forged fact changes nothing.
    let mut forger = Hub {
        key: SigningKey::from_bytes(&[9; 32]),
        seq: 100,
    };
    let forged = forger.facts(vec![fact("noto-relief", m, true)]);
    assert!(node.apply_facts(&forged).is_err());
    assert_eq!(ids(&node), ["flood-aid"]);
}
