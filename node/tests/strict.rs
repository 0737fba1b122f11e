//! Strict mode at the node: rights from hub facts, spends only within them,
//! a right transfer from a LAN peer counted exactly once (and acknowledged
//! in the receiver's chain), forged transfers refused, release drops the
//! right. Two nodes on real SQLite files, facts signed by a test hub key.

use ed25519_dalek::SigningKey;
use mykey_node::node::OpError;
use mykey_node::rules::Decline;
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::wire::Facts;
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, FactBody, MyKeyId, NodeId, NodeLimits, OpKind, Scope, SignedTx,
    TxBody, UnixMillis,
};

const T: UnixMillis = UnixMillis(1000);

mod common;
use common::*;

fn card() -> CardKey {
    CardKey::new(vec![0x30, 0x01, 1], vec![1, 1]).unwrap()
}
fn acct() -> AccountId {
    AccountId::new(1).unwrap()
}

fn stall(dir: &std::path::Path, seed: u8, hub: &mut Hub) -> Node {
    let key = NodeKey::from_secret([seed; 32]);
    let me = key.id();
    let mut node = Node::open(&dir.join(format!("node-{seed}.sqlite")), key, hub.id()).unwrap();
    let m = muni();
    let f = hub.facts(vec![
        (
            Scope::Node(me),
            FactBody::NodeLimits(NodeLimits {
                node: me,
                facility: FacilityId::parse(&format!("stall-{seed}")).unwrap(),
                municipality: m,
                allowed_ops: vec![OpKind::Redeem],
                per_card_offline_limit: p(3000),
                node_exposure_limit: p(5000),
                pin_threshold: p(1000),
                valid_until: UnixMillis(1_000_000),
            }),
        ),
        (
            Scope::Municipality(m),
            FactBody::CardRegistered {
                card: card(),
                account: acct(),
                my_key_id: MyKeyId::parse("hanako").unwrap(),
                municipality: m,
            },
        ),
        (
            Scope::Municipality(m),
            FactBody::StrictMode {
                municipality: m,
                strict: true,
            },
        ),
        // The hub reserved the whole balance for rights: nothing left to spend
        // outside them.
        (
            Scope::Municipality(m),
            FactBody::ConfirmedBalance {
                account: acct(),
                municipality: m,
                balance: p(0),
                debt: p(0),
                ledger_pos: 3,
            },
        ),
    ]);
    node.apply_facts(&f).unwrap();
    node
}

fn grant(hub: &mut Hub, node: NodeId, right_id: u64, points: u64) -> Facts {
    hub.facts(vec![(
        Scope::Node(node),
        FactBody::SpendRight {
            account: acct(),
            municipality: muni(),
            node,
            right_id,
            points: p(points),
        },
    )])
}

fn declined(r: Result<mykey_node::Done, OpError>) -> Decline {
    match r {
        Err(OpError::Declined(d)) => d,
        other => panic!("expected a decline, got {other:?}"),
    }
}

#[test]
fn spends_only_within_rights_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub {
        key: SigningKey::from_bytes(&[42; 32]),
        seq: 0,
    };
    let mut a = stall(dir.path(), 1, &mut hub);
    // No right yet: a strict node declines with its reason.
    assert_eq!(
        declined(a.redeem(&card(), p(10), None, T)),
        Decline::NoRight {
            right: p(0),
            asked: p(10)
        }
    );
    let g = grant(&mut hub, a.id(), 7, 500);
    a.apply_facts(&g).unwrap();
    // The same grant again (a resent batch) adds nothing.
    a.apply_facts(&g).unwrap();
    assert_eq!(a.right(acct(), muni()).unwrap(), (p(500), true));
    // A right addressed to another node is not ours.
    let other = NodeKey::from_secret([9; 32]).id();
    a.apply_facts(&grant(&mut hub, other, 8, 900)).unwrap();
    assert_eq!(a.right(acct(), muni()).unwrap().0, p(500));
    a.redeem(&card(), p(300), None, T).unwrap();
    assert_eq!(a.right(acct(), muni()).unwrap().0, p(200));
    assert_eq!(
        declined(a.redeem(&card(), p(201), None, T)),
        Decline::NoRight {
            right: p(200),
            asked: p(201)
        }
    );
    // The store keeps the right across a restart.
    let key = NodeKey::from_secret([1; 32]);
    drop(a);
    let mut a = Node::open(&dir.path().join("node-1.sqlite"), key, hub.id()).unwrap();
    assert_eq!(a.right(acct(), muni()).unwrap().0, p(200));
    // Release: the right is gone.
    let rel = hub.facts(vec![(
        Scope::Node(a.id()),
        FactBody::SpendRightReleased {
            account: acct(),
            municipality: muni(),
            node: a.id(),
        },
    )]);
    a.apply_facts(&rel).unwrap();
    assert_eq!(a.right(acct(), muni()).unwrap().0, p(0));
    assert!(matches!(
        declined(a.redeem(&card(), p(1), None, T)),
        Decline::NoRight { .. }
    ));
}

#[test]
fn a_lan_transfer_is_taken_once_and_acknowledged_and_forgeries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub {
        key: SigningKey::from_bytes(&[42; 32]),
        seq: 0,
    };
    let mut a = stall(dir.path(), 1, &mut hub);
    let mut b = stall(dir.path(), 2, &mut hub);
    let mut c = stall(dir.path(), 3, &mut hub);
    // The stalls trust each other on the LAN: a hub roster names them.
    let roster = hub.facts(vec![(
        Scope::Municipality(muni()),
        FactBody::LanRoster {
            municipality: muni(),
            group: mykey_sync_proto::LanGroup::parse("festival").unwrap(),
            members: mykey_sync_proto::Roster::new(vec![a.id(), b.id(), c.id()]).unwrap(),
        },
    )]);
    for n in [&mut a, &mut b, &mut c] {
        n.apply_facts(&roster).unwrap();
    }
    a.apply_facts(&grant(&mut hub, a.id(), 1, 400)).unwrap();
    b.apply_facts(&grant(&mut hub, b.id(), 2, 100)).unwrap();
    // More than A holds: declined, nothing signed.
    assert!(matches!(
        declined(a.transfer_right(acct(), b.id(), p(401), T)),
        Decline::NoRight { .. }
    ));
    assert!(matches!(
        a.transfer_right(acct(), a.id(), p(1), T),
        Err(OpError::TransferToSelf)
    ));
    let done = a.transfer_right(acct(), b.id(), p(150), T).unwrap();
    assert_eq!(a.right(acct(), muni()).unwrap().0, p(250));
    let offer = a.outbox_from(done.seq, 10).unwrap();
    // A forged copy (one bit of the signature flipped) is refused whole.
    let t = &offer[0];
    let mut sig = t.signature_bytes();
    sig[5] ^= 0x40;
    let forged = SignedTx::from_raw_parts(t.payload_bytes().to_vec(), sig);
    assert!(b.accept_peer_txs(&[forged], T).is_err());
    assert_eq!(b.right(acct(), muni()).unwrap().0, p(100));
    // The genuine one: credited once, however often it arrives.
    assert_eq!(b.accept_peer_txs(&offer, T).unwrap(), 1);
    assert_eq!(b.accept_peer_txs(&offer, T).unwrap(), 0);
    assert_eq!(b.right(acct(), muni()).unwrap().0, p(250));
    // B acknowledged it in its own chain, carrying A's signed transfer.
    let (last, _, _) = b.sync_position().unwrap();
    let own = b.outbox_from(1, 10).unwrap();
    assert_eq!(own.len() as u64, last);
    let accepts: Vec<_> = own
        .iter()
        .filter_map(|tx| match tx.verify().unwrap().payload().body.clone() {
            TxBody::RightAccept(r) => Some(r.transfer),
            _ => None,
        })
        .collect();
    assert_eq!(accepts, vec![t.clone()]);
    // B may spend what it was given but not pass it on (only hub-granted
    // points move, so the hub always holds them, whatever the order).
    assert!(matches!(
        declined(b.transfer_right(acct(), a.id(), p(101), T)),
        Decline::NoRight { .. }
    ));
    // B spends what it was given; its pending spend is a redeem, the
    // transfer never counts as one on A.
    b.redeem(&card(), p(250), None, T).unwrap();
    assert_eq!(b.right(acct(), muni()).unwrap().0, p(0));
    assert_eq!(a.status().unwrap().exposure, p(0));
    // A transfer addressed to someone else is stored (to carry) but not credited.
    assert_eq!(c.accept_peer_txs(&offer, T).unwrap(), 1);
    assert_eq!(c.right(acct(), muni()).unwrap().0, p(0));
}
