//! `node_peer`: what others can make a real node (`mykey_node::Node`,
//! SQLite) store: a LAN peer's offered transactions and shard sync
//! messages (anyone can join a stall's LAN), and facts that claim to come
//! from the hub. Driven by a sequence of steps (`arbitrary`) between which
//! the counter looks cards up and redeems.
//!
//! The node is a stall of Bunkyo-ku that learnt its limits and two
//! holders from hub-signed facts (built once per thread, copied per
//! input). Transactions are signed by the peer, by a forger, or by the
//! node's own key; facts and shard items by the hub or by a forger; shard
//! messages are also raw bytes.
//!
//! Properties: nothing panics; a card is found at the counter only if the
//! hub registered it (a forged fact or shard item changes nothing: DESIGN
//! §11.5); a voucher is marked redeemed (or its batch cancelled) only if a
//! hub-signed `VoucherMarks` said so, and a mark once made is never undone
//! (the bitmaps merge by OR); offering the same transactions again stores
//! nothing new; the node's own chain stays a chain of its own signed
//! transactions.

use crate::hub_session::{Chains, Place};
use crate::tx::id_of;
use arbitrary::{Arbitrary, Unstructured};
use ed25519_dalek::SigningKey;
use mykey_cache::{ShardDoc, SyncState};
use mykey_node::{Lookup, Node, NodeKey};
use mykey_sync_proto::shard::{ShardId, ShardScope, placement};
use mykey_sync_proto::wire::{Facts, Response};
use mykey_sync_proto::{
    AccountId, CardKey, CardStatus, FacilityId, FactBody, FactPayload, LanGroup, MunicipalityCode,
    MyKeyId, NodeLimits, OpKind, Points, Redeem, RedeemedBits, RightTransfer, Roster, Scope,
    SignedFact, SignedTx, TxBody, TxId, UnixMillis, VOUCHER_MARK_CHUNK,
};
use mykey_voucher::Serial;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

/// Steps per case, at most.
const MAX_OPS: usize = 32;
/// Transactions or facts per step, at most.
const MAX_ITEMS: usize = 16;
const START: UnixMillis = UnixMillis(1_764_000_000_000);
const DAY_MS: u64 = 86_400_000;
/// The facts the template node starts from.
const FIRST_FACTS: u64 = 6;
/// Bytes of a generated voucher-mark chunk, at most (bits 0..512 of it).
const MAX_MARK_BYTES: usize = 64;
/// Set bits taken from each generated voucher-mark fact to check later.
const MARKS_CHECKED_PER_FACT: usize = 4;
/// Vouchers whose marks are checked after each step, at most.
const MAX_WATCHED: usize = 12;

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}
/// The node's key (its secret bytes).
const NODE: u8 = 0x60;
/// The hub.
const HUB: u8 = 0x61;
/// A LAN peer of the same municipality.
const PEER: u8 = 0x62;
/// Someone with a key of their own.
const FORGER: u8 = 0x63;

fn bunkyo() -> MunicipalityCode {
    MunicipalityCode::parse("131059").expect("code")
}
fn stall() -> FacilityId {
    FacilityId::parse("fest-stall-1").expect("facility")
}
fn card(i: u8) -> CardKey {
    CardKey::new(vec![0x30, 0], vec![i % 4 + 1]).expect("card")
}
fn account(i: u8) -> AccountId {
    AccountId::new(u64::from(i % 3) + 1).expect("account")
}
fn points(p: u64) -> Points {
    Points::new(p.min(Points::MAX)).expect("clamped")
}

#[derive(Arbitrary, Debug)]
enum PeerTx {
    Redeem {
        card: u8,
        account: u8,
        points: u64,
    },
    RightTransfer {
        to_node: bool,
        account: u8,
        points: u64,
        right_id: u64,
        /// Whether the hub signed the sender's grant (or a forger).
        grant_by_hub: bool,
        grant_points: u64,
    },
}

#[derive(Arbitrary, Debug)]
enum Fact {
    Registered {
        card: u8,
        account: u8,
    },
    Status {
        card: u8,
        suspended: bool,
    },
    Balance {
        account: u8,
        balance: u64,
        debt: u64,
    },
    Strict(bool),
    Right {
        account: u8,
        points: u64,
        right_id: u64,
    },
    Revoked {
        peer: bool,
    },
    Progress {
        peer: bool,
        through: u64,
    },
    /// A LAN roster of the festival group (or another).
    Roster {
        group: bool,
        node: bool,
        peer: bool,
        forger: bool,
    },
    /// A chunk of a voucher batch's redeemed bitmap (batch 1 or 2).
    Marks {
        second_batch: bool,
        chunk: u8,
        cancelled: bool,
        bits: Vec<u8>,
    },
}

fn mark_batch(second: bool) -> u32 {
    if second { 2 } else { 1 }
}

/// Generated bits as a valid chunk: at most [`MAX_MARK_BYTES`], no
/// trailing zero byte.
fn redeemed_bits(bytes: &[u8]) -> RedeemedBits {
    let mut v = bytes[..bytes.len().min(MAX_MARK_BYTES)].to_vec();
    while v.last() == Some(&0) {
        v.pop();
    }
    RedeemedBits::try_from(v).expect("short and trimmed")
}

/// The vouchers a marks fact names: every set bit (or, for a cancelled
/// batch, none: the batch is the mark), as serials.
fn marked_serials(body: &FactBody) -> Vec<Serial> {
    let FactBody::VoucherMarks {
        batch,
        chunk,
        redeemed,
        ..
    } = body
    else {
        return vec![];
    };
    (0..VOUCHER_MARK_CHUNK.min(MAX_MARK_BYTES as u32 * 8))
        .filter(|bit| redeemed.is_set(*bit))
        .filter_map(|bit| {
            let index = u32::from(*chunk) * VOUCHER_MARK_CHUNK + bit + 1;
            Some(Serial {
                batch: *batch,
                index: u16::try_from(index).ok()?,
            })
        })
        .collect()
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The peer offers transactions (signed by `signer`: 0 peer, 1 forger, 2 this node).
    Offer {
        signer: u8,
        txs: Vec<(Place, PeerTx)>,
    },
    /// The same offer again.
    OfferAgain,
    /// Facts claiming to be the hub's (signed by it or not).
    Facts {
        by_hub: bool,
        facts: Vec<(u32, Fact)>,
    },
    /// A hub answer as bytes.
    RawAnswer(Vec<u8>),
    /// A shard sync message from the peer, as bytes.
    ShardBytes { deny: bool, message: Vec<u8> },
    /// Shard items (under their own keys or not) signed by the hub or not, merged from the peer.
    ShardItems {
        deny: bool,
        by_hub: bool,
        own_keys: bool,
        facts: Vec<(u32, Fact)>,
    },
    /// The counter looks a card up and takes points.
    Redeem { card: u8, points: u16 },
    /// Time passes.
    Tick(u16),
}

#[derive(Arbitrary, Debug)]
struct Case {
    ops: Vec<Op>,
}

fn fact_body(f: &Fact) -> FactBody {
    let m = bunkyo();
    match f {
        Fact::Registered {
            card: c,
            account: a,
        } => FactBody::CardRegistered {
            card: card(*c),
            account: account(*a),
            my_key_id: MyKeyId::parse(&format!("holder{}", a % 3 + 1)).expect("alias"),
            municipality: m,
        },
        Fact::Status { card: c, suspended } => FactBody::CardStatusChanged {
            card: card(*c),
            status: if *suspended {
                CardStatus::Suspended
            } else {
                CardStatus::Active
            },
        },
        Fact::Balance {
            account: a,
            balance,
            debt,
        } => FactBody::ConfirmedBalance {
            account: account(*a),
            municipality: m,
            balance: points(*balance),
            debt: points(*debt),
            ledger_pos: 1,
        },
        Fact::Strict(on) => FactBody::StrictMode {
            municipality: m,
            strict: *on,
        },
        Fact::Right {
            account: a,
            points: p,
            right_id,
        } => FactBody::SpendRight {
            account: account(*a),
            municipality: m,
            node: id_of(&key(NODE)),
            right_id: *right_id,
            points: points(*p),
        },
        Fact::Revoked { peer } => FactBody::NodeRevoked {
            node: id_of(&key(if *peer { PEER } else { FORGER })),
        },
        Fact::Progress { peer, through } => FactBody::NodeProgress {
            node: id_of(&key(if *peer { PEER } else { NODE })),
            through_seq: *through,
            head: TxId::GENESIS,
        },
        Fact::Roster {
            group,
            node,
            peer,
            forger,
        } => {
            let members = [(*node, NODE), (*peer, PEER), (*forger, FORGER)]
                .into_iter()
                .filter(|(on, _)| *on)
                .map(|(_, k)| id_of(&key(k)))
                .collect();
            FactBody::LanRoster {
                municipality: m,
                group: LanGroup::parse(if *group { "festival" } else { "market" }).expect("group"),
                members: Roster::new(members).expect("a small roster"),
            }
        }
        Fact::Marks {
            second_batch,
            chunk,
            cancelled,
            bits,
        } => FactBody::VoucherMarks {
            municipality: m,
            batch: mark_batch(*second_batch),
            chunk: chunk % 8,
            cancelled: *cancelled,
            redeemed: redeemed_bits(bits),
        },
    }
}

fn limits() -> FactBody {
    FactBody::NodeLimits(NodeLimits {
        node: id_of(&key(NODE)),
        facility: stall(),
        municipality: bunkyo(),
        allowed_ops: vec![OpKind::Redeem],
        per_card_offline_limit: points(3000),
        node_exposure_limit: points(20_000),
        pin_threshold: points(2000),
        valid_until: START.plus_ms(365 * DAY_MS),
    })
}

fn scope_of(body: &FactBody) -> Scope {
    match body {
        FactBody::NodeLimits(_) | FactBody::SpendRight { .. } => Scope::Node(id_of(&key(NODE))),
        FactBody::NodeRevoked { .. } => Scope::All,
        _ => Scope::Municipality(bunkyo()),
    }
}

struct Template {
    dir: PathBuf,
    db: Vec<u8>,
}

thread_local! {
    static TEMPLATE: RefCell<Option<Template>> = const { RefCell::new(None) };
}

/// A node that learnt its limits and two holders (cards 1 and 2).
fn fresh_node() -> Node {
    let hub = id_of(&key(HUB));
    let open = |path: &std::path::Path| {
        Node::open(path, NodeKey::from_secret([NODE; 32]), hub).expect("node store opens")
    };
    TEMPLATE.with(|t| {
        let mut t = t.borrow_mut();
        let t = t.get_or_insert_with(|| {
            let dir = crate::hubfile::scratch_dir("mykey-fuzz-node");
            let path = dir.join("template.sqlite");
            let mut node = open(&path);
            let bodies = [
                limits(),
                fact_body(&Fact::Registered {
                    card: 0,
                    account: 0,
                }),
                fact_body(&Fact::Registered {
                    card: 1,
                    account: 1,
                }),
                fact_body(&Fact::Balance {
                    account: 0,
                    balance: 3000,
                    debt: 0,
                }),
                fact_body(&Fact::Balance {
                    account: 1,
                    balance: 500,
                    debt: 0,
                }),
                fact_body(&Fact::Roster {
                    group: true,
                    node: true,
                    peer: true,
                    forger: false,
                }),
            ];
            let facts = signed_facts(HUB, &bodies, 1);
            assert_eq!(facts.facts.len() as u64, FIRST_FACTS);
            node.apply_facts(&facts)
                .expect("the hub's first facts apply");
            drop(node);
            let db = std::fs::read(&path).expect("template bytes");
            Template { dir, db }
        });
        let path = t.dir.join("run.sqlite");
        for ext in ["sqlite-wal", "sqlite-shm"] {
            let _ = std::fs::remove_file(path.with_extension(ext));
        }
        std::fs::write(&path, &t.db).expect("node file");
        open(&path)
    })
}

fn sign_fact(signer: u8, body: FactBody, hub_seq: u64) -> SignedFact {
    let payload = FactPayload {
        hub_seq,
        issued_at: START,
        scope: scope_of(&body),
        body,
    };
    SignedFact::sign(&payload, &key(signer))
}

fn signed_facts(signer: u8, bodies: &[FactBody], first_seq: u64) -> Facts {
    let facts: Vec<SignedFact> = bodies
        .iter()
        .zip(first_seq..)
        .map(|(b, seq)| sign_fact(signer, b.clone(), seq))
        .collect();
    Facts {
        cursor: first_seq + facts.len() as u64,
        facts,
        more: false,
    }
}

struct Run {
    node: Node,
    chains: Chains,
    now: UnixMillis,
    /// Cards the hub registered (an over-approximation: what it signed).
    registered: HashSet<CardKey>,
    last_offer: Vec<SignedTx>,
    /// Vouchers the hub's signed marks named (an over-approximation, as
    /// `registered`), and batches it signed cancelled.
    hub_marked: HashSet<Serial>,
    hub_cancelled: HashSet<u32>,
    /// Vouchers some generated marks fact named (by the hub or a forger),
    /// checked after each step; and those the node showed as marked.
    watched: BTreeSet<Serial>,
    seen_marked: HashSet<Serial>,
    seen_cancelled: HashSet<u32>,
}

impl Run {
    /// Notes what generated marks facts name: all of them are watched,
    /// the hub's also count as marked.
    fn note_marks(&mut self, bodies: &[FactBody], by_hub: bool) {
        for b in bodies {
            let FactBody::VoucherMarks {
                batch, cancelled, ..
            } = b
            else {
                continue;
            };
            let serials = marked_serials(b);
            for s in serials.iter().take(MARKS_CHECKED_PER_FACT) {
                if self.watched.len() < MAX_WATCHED {
                    self.watched.insert(*s);
                }
            }
            if self.watched.len() < MAX_WATCHED {
                self.watched.insert(Serial {
                    batch: *batch,
                    index: 1,
                });
            }
            if by_hub {
                self.hub_marked.extend(serials);
                if *cancelled {
                    self.hub_cancelled.insert(*batch);
                }
            }
        }
    }

    /// What the node knows of each watched voucher: marked only if the
    /// hub signed it, and never unmarked once marked.
    fn check_marks(&mut self) {
        for s in &self.watched {
            let known = self.node.voucher_known(*s).expect("voucher marks read");
            if known.marked {
                assert!(
                    self.hub_marked.contains(s),
                    "voucher {s} is marked redeemed, but the hub never said so"
                );
                self.seen_marked.insert(*s);
            } else {
                assert!(
                    !self.seen_marked.contains(s),
                    "voucher {s} was marked redeemed and is not any more"
                );
            }
            if known.cancelled {
                assert!(
                    self.hub_cancelled.contains(&s.batch),
                    "batch {} is cancelled, but the hub never said so",
                    s.batch
                );
                self.seen_cancelled.insert(s.batch);
            } else {
                assert!(
                    !self.seen_cancelled.contains(&s.batch),
                    "batch {} was cancelled and is not any more",
                    s.batch
                );
            }
        }
    }

    fn note_registrations(&mut self, bodies: &[FactBody]) {
        for b in bodies {
            if let FactBody::CardRegistered { card, .. } = b {
                self.registered.insert(card.clone());
            }
        }
    }

    fn step(&mut self, op: Op) {
        let peer = id_of(&key(PEER));
        match op {
            Op::Offer { signer, txs } => {
                let k = key([PEER, FORGER, NODE][usize::from(signer % 3)]);
                let txs: Vec<SignedTx> = txs
                    .into_iter()
                    .take(MAX_ITEMS)
                    .map(|(place, tx)| {
                        let body = match tx {
                            PeerTx::Redeem {
                                card: c,
                                account: a,
                                points: p,
                            } => TxBody::Redeem(Redeem {
                                card: card(c),
                                account: account(a),
                                municipality: bunkyo(),
                                points: points(p),
                                merchant: FacilityId::parse("fest-stall-2").expect("facility"),
                                basis: None,
                                card_proof: None,
                            }),
                            PeerTx::RightTransfer {
                                to_node,
                                account: a,
                                points: p,
                                right_id,
                                grant_by_hub,
                                grant_points,
                            } => {
                                let sender = id_of(&k);
                                let grant = SignedFact::sign(
                                    &FactPayload {
                                        hub_seq: FIRST_FACTS + 1,
                                        issued_at: START,
                                        scope: Scope::Node(sender),
                                        body: FactBody::SpendRight {
                                            account: account(a),
                                            municipality: bunkyo(),
                                            node: sender,
                                            right_id,
                                            points: points(grant_points),
                                        },
                                    },
                                    &key(if grant_by_hub { HUB } else { FORGER }),
                                );
                                TxBody::RightTransfer(RightTransfer {
                                    account: account(a),
                                    municipality: bunkyo(),
                                    to: if to_node { id_of(&key(NODE)) } else { peer },
                                    points: points(p),
                                    right_id,
                                    grant,
                                })
                            }
                        };
                        self.chains.sign(&k, place, 0, body)
                    })
                    .collect();
                self.offer(txs);
            }
            Op::OfferAgain => {
                let txs = std::mem::take(&mut self.last_offer);
                if let Ok(n) = self.node.accept_peer_txs(&txs, self.now) {
                    assert_eq!(n, 0, "an offer made again stores nothing new");
                }
                self.last_offer = txs;
            }
            Op::Facts { by_hub, facts } => {
                let bodies: Vec<FactBody> = facts
                    .iter()
                    .take(MAX_ITEMS)
                    .map(|(_, f)| fact_body(f))
                    .collect();
                let first = FIRST_FACTS + 1 + u64::from(facts.first().map_or(0, |f| f.0 % 64));
                let signed = signed_facts(if by_hub { HUB } else { FORGER }, &bodies, first);
                self.note_marks(&bodies, by_hub);
                let applied = self.node.apply_facts(&signed);
                assert!(
                    by_hub || bodies.is_empty() || applied.is_err(),
                    "forged facts are refused"
                );
                if applied.is_ok() && by_hub {
                    self.note_registrations(&bodies);
                }
            }
            Op::RawAnswer(bytes) => {
                if let Ok(Response::Facts(f)) = Response::decode(&bytes) {
                    let _ = self.node.apply_facts(&f);
                }
            }
            Op::ShardBytes { deny, message } => {
                let _ = self
                    .node
                    .shard_turn(&peer, &shard(deny), 0, Some(&message), true);
            }
            Op::ShardItems {
                deny,
                by_hub,
                own_keys,
                facts,
            } => {
                let shard = shard(deny);
                let mut doc = ShardDoc::new();
                let mut items = vec![];
                let mut bodies = vec![];
                for (i, (seq, f)) in facts.iter().take(MAX_ITEMS).enumerate() {
                    let body = fact_body(f);
                    self.note_marks(std::slice::from_ref(&body), by_hub);
                    let fact = sign_fact(
                        if by_hub { HUB } else { FORGER },
                        body.clone(),
                        FIRST_FACTS + 1 + u64::from(*seq % 1024),
                    );
                    let payload = fact
                        .verify(&id_of(&key(if by_hub { HUB } else { FORGER })))
                        .expect("a fact verifies against its signer");
                    let placed = placement(payload.payload(), 1);
                    let k = match (&placed, own_keys) {
                        (Some((_, k)), true) => k.as_str().to_owned(),
                        _ => format!("reg/{i:032x}"),
                    };
                    if by_hub
                        && placed
                            .as_ref()
                            .is_some_and(|(s, pk)| *s == shard && pk.as_str() == k)
                    {
                        bodies.push(body);
                    }
                    items.push((k, fact.to_bytes()));
                }
                if items.is_empty() {
                    return;
                }
                doc.put_batch(items.iter().map(|(k, v)| (k.as_str(), v.as_slice())), 1);
                let mut state = SyncState::new();
                let Some(message) = doc.generate(&mut state) else {
                    return;
                };
                // The peer's first message carries no changes; play the exchange.
                let mut reply = self
                    .node
                    .shard_turn(&peer, &shard, 0, Some(&message), true)
                    .ok()
                    .and_then(|(m, _)| m);
                for _ in 0..8 {
                    let Some(r) = reply.take() else { break };
                    if doc.receive(&mut state, &r).is_err() {
                        break;
                    }
                    let Some(m) = doc.generate(&mut state) else {
                        break;
                    };
                    reply = self
                        .node
                        .shard_turn(&peer, &shard, 0, Some(&m), false)
                        .ok()
                        .and_then(|(m, _)| m);
                }
                self.note_registrations(&bodies);
            }
            Op::Redeem { card: c, points: p } => {
                let c = card(c);
                let found = self.node.lookup(&c).expect("lookup");
                if matches!(found, Lookup::Found { .. }) {
                    assert!(
                        self.registered.contains(&c),
                        "card {} is found, but the hub never registered it",
                        c.short()
                    );
                }
                let _ = self.node.redeem(&c, points(u64::from(p)), None, self.now);
            }
            Op::Tick(min) => self.now = self.now.plus_ms(u64::from(min) * 60_000),
        }
    }

    fn offer(&mut self, txs: Vec<SignedTx>) {
        match self.node.accept_peer_txs(&txs, self.now) {
            Ok(n) => {
                assert!(n <= txs.len());
                let _ = self.node.peer_have_through(&id_of(&key(PEER)));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        self.last_offer = txs;
    }

    /// The node's own outbox is a chain of its own signed transactions.
    fn check_own_chain(&self) {
        let me = id_of(&key(NODE));
        let txs = self.node.outbox_from(1, 10_000).expect("outbox");
        let mut prev = TxId::GENESIS;
        for (i, tx) in txs.iter().enumerate() {
            let v = tx.verify().expect("the node's own transactions verify");
            assert_eq!(v.payload().node, me);
            assert_eq!(v.payload().seq, i as u64 + 1);
            assert_eq!(v.payload().prev_hash, prev);
            prev = v.id();
        }
    }
}

fn shard(deny: bool) -> ShardId {
    ShardId {
        scope: if deny {
            ShardScope::Deny(bunkyo())
        } else {
            ShardScope::Municipality(bunkyo())
        },
        bucket: 0,
    }
}

/// A case: the steps.
pub fn run(data: &[u8]) {
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if case.ops.is_empty() {
        return;
    }
    let mut run = Run {
        node: fresh_node(),
        chains: Chains::default(),
        now: START.plus_ms(60_000),
        registered: [card(0), card(1)].into_iter().collect(),
        last_offer: vec![],
        hub_marked: HashSet::new(),
        hub_cancelled: HashSet::new(),
        watched: BTreeSet::new(),
        seen_marked: HashSet::new(),
        seen_cancelled: HashSet::new(),
    };
    for op in case.ops.into_iter().take(MAX_OPS) {
        let may_mark = matches!(
            op,
            Op::Facts { .. } | Op::RawAnswer(_) | Op::ShardBytes { .. } | Op::ShardItems { .. }
        );
        run.step(op);
        if may_mark {
            run.check_marks();
        }
    }
    run.check_own_chain();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Run {
        Run {
            node: fresh_node(),
            chains: Chains::default(),
            now: START.plus_ms(60_000),
            registered: [card(0), card(1)].into_iter().collect(),
            last_offer: vec![],
            hub_marked: HashSet::new(),
            hub_cancelled: HashSet::new(),
            watched: BTreeSet::new(),
            seen_marked: HashSet::new(),
            seen_cancelled: HashSet::new(),
        }
    }

    fn marks(seq: u32, bits: Vec<u8>, cancelled: bool) -> (u32, Fact) {
        (
            seq,
            Fact::Marks {
                second_batch: false,
                chunk: 0,
                cancelled,
                bits,
            },
        )
    }

    fn marked(r: &Run, index: u16) -> bool {
        r.node
            .voucher_known(Serial { batch: 1, index })
            .expect("read")
            .marked
    }

    /// The property's own check: the hub's marks count and stay, a
    /// forger's do not count.
    #[test]
    fn hub_marks_count_and_stay_and_forged_ones_do_not() {
        let mut r = run();
        r.step(Op::Facts {
            by_hub: false,
            facts: vec![marks(0, vec![0b10], true)],
        });
        r.check_marks();
        assert!(!marked(&r, 2), "a forger's mark counts");
        r.step(Op::Facts {
            by_hub: true,
            facts: vec![marks(0, vec![0b1], false)],
        });
        r.check_marks();
        assert!(marked(&r, 1), "the hub's mark of voucher 1 is not seen");
        assert!(r.seen_marked.contains(&Serial { batch: 1, index: 1 }));
        // A later hub chunk without the bit does not clear it (merged by OR).
        r.step(Op::Facts {
            by_hub: true,
            facts: vec![marks(5, vec![0b100], false)],
        });
        r.check_marks();
        assert!(marked(&r, 1) && marked(&r, 3));
    }

    /// A node that forgot a mark fails the check.
    #[test]
    #[should_panic(expected = "was marked redeemed and is not any more")]
    fn a_mark_undone_is_caught() {
        let mut r = run();
        r.step(Op::Facts {
            by_hub: true,
            facts: vec![marks(0, vec![0b1], false)],
        });
        r.check_marks();
        // The same node key on an empty store: the mark is gone.
        let dir = crate::hubfile::scratch_dir("mykey-fuzz-node-test");
        r.node = Node::open(
            &dir.join("empty.sqlite"),
            NodeKey::from_secret([NODE; 32]),
            id_of(&key(HUB)),
        )
        .expect("node store opens");
        r.check_marks();
    }

    /// A mark the hub never signed fails the check.
    #[test]
    #[should_panic(expected = "but the hub never said so")]
    fn a_mark_the_hub_never_made_is_caught() {
        let mut r = run();
        r.step(Op::Facts {
            by_hub: true,
            facts: vec![marks(0, vec![0b1], false)],
        });
        r.hub_marked.clear();
        r.check_marks();
    }
}
