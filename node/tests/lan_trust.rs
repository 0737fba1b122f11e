//! LAN trust at the node (DESIGN §6): what a stall takes from LAN peers.
//! A right transfer is credited only within the hub-signed grant it carries
//! and what its sender already gave; a credited right is withdrawn when the
//! hub rejects its acceptance; pending spends count only for signers on a
//! roster with this node, that the hub neither revoked nor refused, up to a
//! cap per signer; carrying to the hub is fair across signers and never
//! carries junk. Nodes on real SQLite files; peers that lie are chains
//! signed by hand with their keys; facts are signed by a test hub key.

use ed25519_dalek::SigningKey;
use mykey_node::node::PeerTxsError;
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::wire::{Facts, Outcome, Receipt, Receipts, RejectReason};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, FactBody, LanGroup, MyKeyId, NodeId, NodeLimits, OpKind,
    Redeem, RightTransfer, Roster, Scope, SignedFact, SignedTx, TxBody, TxId, TxPayload,
    UnixMillis,
};

mod common;
use common::*;

const T: UnixMillis = UnixMillis(1000);
const EXPOSURE: u64 = 10_000;

fn card() -> CardKey {
    CardKey::new(vec![0x30, 0x01, 1], vec![1, 1]).unwrap()
}
fn acct() -> AccountId {
    AccountId::new(1).unwrap()
}

/// A stall with limits (exposure 10,000), one holder with `balance`
/// confirmed points, strict mode as asked.
fn stall(dir: &std::path::Path, seed: u8, hub: &mut Hub, balance: u64, strict: bool) -> Node {
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
                per_card_offline_limit: p(EXPOSURE),
                node_exposure_limit: p(EXPOSURE),
                pin_threshold: p(EXPOSURE),
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
                strict,
            },
        ),
        (
            Scope::Municipality(m),
            FactBody::ConfirmedBalance {
                account: acct(),
                municipality: m,
                balance: p(balance),
                debt: p(0),
                ledger_pos: 3,
            },
        ),
    ]);
    node.apply_facts(&f).unwrap();
    node
}

fn roster(hub: &mut Hub, group: &str, members: &[NodeId]) -> Facts {
    hub.facts(vec![(
        Scope::Municipality(muni()),
        FactBody::LanRoster {
            municipality: muni(),
            group: LanGroup::parse(group).unwrap(),
            members: Roster::new(members.to_vec()).unwrap(),
        },
    )])
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

/// A peer's chain signed by hand: it signs whatever it likes.
struct Liar {
    key: SigningKey,
    seq: u64,
    prev: TxId,
}

impl Liar {
    fn new(seed: u8) -> Liar {
        Liar {
            key: SigningKey::from_bytes(&[seed; 32]),
            seq: 0,
            prev: TxId::GENESIS,
        }
    }
    fn id(&self) -> NodeId {
        NodeId::from_bytes(self.key.verifying_key().to_bytes()).unwrap()
    }
    fn sign(&mut self, body: TxBody) -> SignedTx {
        self.seq += 1;
        let tx = SignedTx::sign(
            &TxPayload {
                node: self.id(),
                seq: self.seq,
                prev_hash: self.prev,
                created_at: T,
                body,
            },
            &self.key,
        );
        self.prev = tx.id();
        tx
    }
    fn redeem(&mut self, points: u64) -> SignedTx {
        self.sign(TxBody::Redeem(Redeem {
            card: card(),
            account: acct(),
            municipality: muni(),
            points: p(points),
            merchant: FacilityId::parse("stall-x").unwrap(),
            basis: None,
            card_proof: None,
        }))
    }
    fn give(&mut self, to: NodeId, points: u64, right_id: u64, grant: SignedFact) -> SignedTx {
        self.sign(TxBody::RightTransfer(RightTransfer {
            account: acct(),
            municipality: muni(),
            to,
            points: p(points),
            right_id,
            grant,
        }))
    }
}

fn pending(n: &Node) -> u64 {
    n.balance(acct(), muni()).unwrap().2.get()
}

fn right(n: &Node) -> u64 {
    n.right(acct(), muni()).unwrap().0.get()
}

fn receipt(node: NodeId, tx: &SignedTx, seq: u64, reason: RejectReason) -> Receipts {
    Receipts {
        receipts: vec![Receipt {
            node,
            seq,
            tx: Some(tx.id()),
            outcome: Outcome::Rejected(reason),
        }],
        processed_seq: 0,
    }
}

fn progress(hub: &mut Hub, node: NodeId, through_seq: u64, head: TxId) -> Facts {
    hub.facts(vec![(
        Scope::Municipality(muni()),
        FactBody::NodeProgress {
            node,
            through_seq,
            head,
        },
    )])
}

fn test_hub() -> Hub {
    Hub {
        key: SigningKey::from_bytes(&[42; 32]),
        seq: 0,
    }
}

#[test]
fn a_right_is_credited_only_within_its_hub_grant_less_what_the_sender_already_gave() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = test_hub();
    let mut b = stall(dir.path(), 2, &mut hub, 0, true);
    let mut liar = Liar::new(5);
    let mut other = Liar::new(6);
    b.apply_facts(&roster(&mut hub, "fest", &[b.id(), liar.id(), other.id()]))
        .unwrap();
    // The hub granted the liar 400 (right 1) and the other peer 900 (right 2).
    let g = grant(&mut hub, liar.id(), 1, 400).facts[0].clone();
    let other_grant = grant(&mut hub, other.id(), 2, 900).facts[0].clone();
    let forged = SignedFact::sign(
        &g.verify(&hub.id()).unwrap().payload().clone(),
        &SigningKey::from_bytes(&[5; 32]),
    );
    let to = b.id();
    let txs = vec![
        liar.give(to, 150, 1, g.clone()),            // credited: 150 of 400
        liar.give(to, 300, 1, g.clone()),            // 150 + 300 > 400: refused
        liar.give(to, 1_000_000, 1, forged.clone()), // grant not signed by the hub
        liar.give(to, 500, 2, other_grant.clone()),  // another node's grant
        liar.give(to, 250, 1, g.clone()),            // 150 + 250 = 400: credited
        liar.give(to, 1, 1, g.clone()),              // nothing left of the grant
    ];
    assert_eq!(
        b.accept_peer_txs(&txs, T).unwrap(),
        6,
        "all stored: they are its chain"
    );
    assert_eq!(right(&b), 400);
    // Resent: nothing more.
    assert_eq!(b.accept_peer_txs(&txs, T).unwrap(), 0);
    assert_eq!(right(&b), 400);
    // Exactly two acceptances in B's chain.
    let accepts = b
        .outbox_from(1, 20)
        .unwrap()
        .iter()
        .filter(|tx| matches!(tx.verify().unwrap().payload().body, TxBody::RightAccept(_)))
        .count();
    assert_eq!(accepts, 2);
    // The other peer's own grant still gives its own 900, separately tallied.
    let t = other.give(to, 900, 2, other_grant);
    assert_eq!(b.accept_peer_txs(&[t], T).unwrap(), 1);
    assert_eq!(right(&b), 1300);
}

#[test]
fn a_credited_right_is_withdrawn_when_the_hub_rejects_its_acceptance() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = test_hub();
    let mut b = stall(dir.path(), 2, &mut hub, 0, true);
    let mut liar = Liar::new(5);
    b.apply_facts(&roster(&mut hub, "fest", &[b.id(), liar.id()]))
        .unwrap();
    b.apply_facts(&grant(&mut hub, b.id(), 9, 100)).unwrap();
    let g = grant(&mut hub, liar.id(), 1, 1000).facts[0].clone();
    // The liar gives the same 1000 twice over (here and, say, to another
    // stall): the hub takes only the first acceptance that its escrow covers.
    b.accept_peer_txs(&[liar.give(b.id(), 600, 1, g.clone())], T)
        .unwrap();
    b.accept_peer_txs(&[liar.give(b.id(), 300, 1, g)], T)
        .unwrap();
    assert_eq!(right(&b), 1000);
    let own = b.outbox_from(1, 10).unwrap();
    assert_eq!(own.len(), 2, "two acceptances");
    // The hub rejects the second acceptance: its 300 leave the right.
    let r = receipt(
        b.id(),
        &own[1],
        2,
        RejectReason::NotAllowed("right transfer beyond the sender's escrow".into()),
    );
    b.apply_receipts(&r, T).unwrap();
    assert_eq!(right(&b), 700);
    // Applying the same receipt again withdraws nothing more.
    b.apply_receipts(&r, T).unwrap();
    assert_eq!(right(&b), 700);
    // B spends 650 (the received part goes first), then the first
    // acceptance is rejected too: 600 cannot all leave a right of 50.
    b.redeem(&card(), p(650), None, T).unwrap();
    assert_eq!(right(&b), 50);
    b.apply_receipts(
        &receipt(
            b.id(),
            &own[0],
            1,
            RejectReason::NotAllowed("no escrow".into()),
        ),
        T,
    )
    .unwrap();
    assert_eq!(right(&b), 0, "the right goes to zero");
    let s = b.status().unwrap();
    assert_eq!(s.withdrawn_rights.len(), 2);
    let first = &s.withdrawn_rights[1];
    assert_eq!(first.accept_seq, 1);
    assert_eq!(first.credit.points, p(600));
    assert_eq!(first.shortfall, p(550), "550 of it were already spent");
    assert!(first.reason.contains("no escrow"));
    assert_eq!(s.withdrawn_rights[0].shortfall, p(0));
    // B gives nothing it does not hold: its own grant was spent too.
    assert!(b.transfer_right(acct(), liar.id(), p(1), T).is_err());
}

#[test]
fn only_rostered_unrefused_signers_spends_count_and_each_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = test_hub();
    let mut b = stall(dir.path(), 2, &mut hub, 1_000_000, false);
    let mut peer = Liar::new(5);
    let mut outsider = Liar::new(6);
    let members = [b.id(), peer.id()];
    b.apply_facts(&roster(&mut hub, "fest", &members)).unwrap();

    // A signer on no roster with B: refused whole, nothing stored.
    let junk: Vec<SignedTx> = (0..3).map(|_| outsider.redeem(300_000)).collect();
    let e = b.accept_peer_txs(&junk, T).unwrap_err();
    assert!(
        matches!(e, PeerTxsError::NotOnRoster { signer } if signer == outsider.id()),
        "{e}"
    );
    assert!(e.to_string().contains("mykey-hub lan roster"), "{e}");
    assert_eq!(pending(&b), 0);
    assert_eq!(b.peer_have_through(&outsider.id()).unwrap(), 0);

    // The peer's spends count up to the cap (B's exposure limit, 10,000):
    // the third of 4,000 would pass it, so it and what follows are left out.
    let spends: Vec<SignedTx> = (0..4).map(|_| peer.redeem(4000)).collect();
    assert_eq!(b.accept_peer_txs(&spends, T).unwrap(), 2);
    assert_eq!(pending(&b), 8000);
    assert_eq!(b.peer_have_through(&peer.id()).unwrap(), 2);
    assert_eq!(
        b.peer_txs_undelivered(500, 0).unwrap(),
        spends[..2].to_vec()
    );
    // Once the hub processed the first two, the rest fit.
    b.apply_facts(&progress(&mut hub, peer.id(), 2, spends[1].id()))
        .unwrap();
    assert_eq!(pending(&b), 0);
    assert_eq!(b.accept_peer_txs(&spends[2..], T).unwrap(), 2);
    assert_eq!(pending(&b), 8000);

    // The roster drops the peer: its spends stop counting and are not
    // carried; back on a roster, they count again.
    b.apply_facts(&roster(&mut hub, "fest", &[b.id()])).unwrap();
    assert_eq!(pending(&b), 0);
    assert!(b.peer_txs_undelivered(500, 0).unwrap().is_empty());
    assert!(matches!(
        b.accept_peer_txs(&[peer.redeem(1)], T),
        Err(PeerTxsError::NotOnRoster { .. })
    ));
    b.apply_facts(&roster(&mut hub, "market", &members))
        .unwrap();
    assert_eq!(pending(&b), 8000);

    // A business rejection of a carried spend changes nothing here (the
    // hub's progress will pass it) ...
    b.apply_receipts(
        &receipt(peer.id(), &spends[2], 3, RejectReason::UnknownCard),
        T,
    )
    .unwrap();
    assert_eq!(pending(&b), 8000);
    // ... but a chain-level refusal (the signer is unknown to the hub) does:
    // from that seq on, its spends neither count nor are carried.
    b.apply_receipts(
        &receipt(peer.id(), &spends[2], 3, RejectReason::UnknownNode),
        T,
    )
    .unwrap();
    assert_eq!(pending(&b), 0);
    assert!(b.peer_txs_undelivered(500, 0).unwrap().is_empty());
    // The hub processed the chain past the refusal after all (an operator
    // enrolled it): the refusal is moot, and seq 4 counts again.
    b.apply_facts(&progress(&mut hub, peer.id(), 3, spends[2].id()))
        .unwrap();
    assert_eq!(pending(&b), 4000);
    assert_eq!(
        b.peer_txs_undelivered(500, 0).unwrap(),
        vec![spends[3].clone()]
    );

    // A revoked signer's spends never count.
    b.apply_facts(&hub.facts(vec![(
        Scope::All,
        FactBody::NodeRevoked { node: peer.id() },
    )]))
    .unwrap();
    assert_eq!(pending(&b), 0);
    assert!(b.peer_txs_undelivered(500, 0).unwrap().is_empty());
    assert!(!b.lan_admits(&peer.id()).unwrap());
    // The holder can spend the whole balance at B.
    b.redeem(&card(), p(EXPOSURE), None, T).unwrap();
}

#[test]
fn carrying_is_fair_across_signers_and_takes_no_junk() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = test_hub();
    let mut b = stall(dir.path(), 2, &mut hub, 1_000_000, false);
    let mut busy = Liar::new(5);
    let mut quiet = Liar::new(6);
    let mut third = Liar::new(7);
    b.apply_facts(&roster(
        &mut hub,
        "fest",
        &[b.id(), busy.id(), quiet.id(), third.id()],
    ))
    .unwrap();
    // The busy peer's 600 transactions (grants: no pending, no cap) and two
    // each from the others.
    let grant_body = |seed: u8| {
        TxBody::Grant(mykey_sync_proto::Grant {
            card: card(),
            account: acct(),
            municipality: muni(),
            program: mykey_sync_proto::ProgramId::parse(&format!("p{seed}")).unwrap(),
            points: p(1),
        })
    };
    let many: Vec<SignedTx> = (0..600).map(|_| busy.sign(grant_body(5))).collect();
    for chunk in many.chunks(500) {
        b.accept_peer_txs(chunk, T).unwrap();
    }
    let few: Vec<SignedTx> = (0..2).map(|_| quiet.sign(grant_body(6))).collect();
    b.accept_peer_txs(&few, T).unwrap();
    let more: Vec<SignedTx> = (0..2).map(|_| third.sign(grant_body(7))).collect();
    b.accept_peer_txs(&more, T).unwrap();

    let batch = b.peer_txs_undelivered(500, 0).unwrap();
    assert_eq!(batch.len(), 500);
    let by = |n: NodeId| {
        batch
            .iter()
            .filter(|t| t.verify().unwrap().payload().node == n)
            .count()
    };
    assert_eq!(
        (by(quiet.id()), by(third.id())),
        (2, 2),
        "the quiet ones are not starved"
    );
    assert_eq!(by(busy.id()), 496);
    // Each signer's part starts at the first the hub lacks, in seq order.
    let busy_part: Vec<&SignedTx> = batch
        .iter()
        .filter(|t| t.verify().unwrap().payload().node == busy.id())
        .collect();
    assert_eq!(busy_part[0], &many[0]);
    assert_eq!(busy_part[495], &many[495]);
    // A batch too small for everyone: one each, and the turn rotates who leads.
    let small = b.peer_txs_undelivered(2, 0).unwrap();
    let small_next = b.peer_txs_undelivered(2, 1).unwrap();
    assert_eq!(small.len(), 2);
    assert_ne!(small, small_next);
    let three = b.peer_txs_undelivered(3, 0).unwrap();
    let signers: std::collections::BTreeSet<NodeId> = three
        .iter()
        .map(|t| t.verify().unwrap().payload().node)
        .collect();
    assert_eq!(signers.len(), 3, "a share per signer");
    // Junk never takes a place: a refused signer's transactions are left out.
    b.apply_receipts(
        &receipt(busy.id(), &many[0], 1, RejectReason::UnknownNode),
        T,
    )
    .unwrap();
    let batch = b.peer_txs_undelivered(500, 0).unwrap();
    assert_eq!(batch.len(), 4);
}

#[test]
fn a_peers_pending_donation_counts_against_the_wallet_until_the_hub_passes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = test_hub();
    let mut b = stall(dir.path(), 2, &mut hub, 5000, false);
    let mut kiosk = Liar::new(5);
    b.apply_facts(&roster(&mut hub, "fest", &[b.id(), kiosk.id()]))
        .unwrap();
    // The kiosk next door signed a donation of 4,000 of the 5,000 points.
    let given = kiosk.sign(TxBody::Donate(mykey_sync_proto::Donate {
        card: card(),
        account: acct(),
        municipality: muni(),
        points: p(4000),
        programme: mykey_sync_proto::ProgramId::parse("noto-relief").unwrap(),
        card_proof: mykey_sync_proto::CardSignature::new(vec![1; 256]).unwrap(),
    }));
    assert_eq!(
        b.accept_peer_txs(std::slice::from_ref(&given), T).unwrap(),
        1
    );
    assert_eq!(pending(&b), 4000);
    // This counter offline: a spend beyond what the donation left is refused
    // as any spend beyond the balance is.
    let e = b.redeem(&card(), p(1001), None, T).unwrap_err();
    assert!(
        matches!(
            e,
            mykey_node::node::OpError::Declined(
                mykey_node::rules::Decline::InsufficientBalance { available, .. }
            ) if available == p(1000)
        ),
        "{e}"
    );
    // Once the hub processed it (its balance fact follows), it no longer counts.
    b.apply_facts(&progress(&mut hub, kiosk.id(), 1, given.id()))
        .unwrap();
    assert_eq!(pending(&b), 0);
    b.redeem(&card(), p(1000), None, T).unwrap();
    // A peer's donations share its cap (B's exposure limit, 10,000): one
    // beyond it is not taken, so a peer cannot lock a wallet with them.
    let big = kiosk.sign(TxBody::Donate(mykey_sync_proto::Donate {
        card: card(),
        account: acct(),
        municipality: muni(),
        points: p(EXPOSURE + 1),
        programme: mykey_sync_proto::ProgramId::parse("noto-relief").unwrap(),
        card_proof: mykey_sync_proto::CardSignature::new(vec![1; 256]).unwrap(),
    }));
    assert_eq!(b.accept_peer_txs(&[big], T).unwrap(), 0);
    assert_eq!(pending(&b), 1000);
}
