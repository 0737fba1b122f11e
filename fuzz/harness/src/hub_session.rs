//! `hub_session`: what a node (or someone holding a node key) can make the
//! real hub do: a `HubSession` in front of a real `Hub` (in-memory SQLite)
//! driven by a sequence of requests (`arbitrary`), interleaved with
//! operator actions.
//!
//! The hub knows Bunkyo-ku and Sapporo, a stall (the session's peer, which
//! may redeem, grant, link and unlink), a library node of the same
//! municipality, a shop node of Sapporo, two holders and a programme. The
//! harness signs the transactions it is told to make with the peer's, the
//! library's, the shop's or an unenrolled key, chaining them (or not:
//! replays, forks, gaps, wild seqs), so requests reach the hub's rules with
//! good signatures; raw transactions and raw requests come too.
//!
//! Properties: nothing panics; after every step the ledger balances and
//! conservation holds per municipality (DESIGN §11.1); a transaction the
//! hub decided (applied or refused for business) gets the same outcome
//! every time it comes again, and is applied at most once; each receipt
//! names the transaction it answers; the receipt ranges on the wire expand
//! to the hub's verdicts (one per signer and seq, rejections with their id); the peer receives only facts and
//! shards of its own scopes (never another facility's card numbers).

use crate::tx::id_of;
use arbitrary::{Arbitrary, Unstructured};
use ed25519_dalek::SigningKey;
use mykey_hub::{Facility, FacilityKind, Hub, NodePolicy};
use mykey_sync_proto::fact::Scope;
use mykey_sync_proto::holder::{HolderRequest, HolderResponse};
use mykey_sync_proto::receipts::ReceiptRanges;
use mykey_sync_proto::session::{HubService, HubSession};
use mykey_sync_proto::shard::{ShardId, ShardScope};
use mykey_sync_proto::wire::{
    Facts, Hello, MAX_PUSH_TXS, Outcome, PullFacts, Push, Receipt, Receipts, Refusal, Request,
    Response, ShardList, ShardSync, Welcome,
};
use mykey_sync_proto::{
    AccountId, Basis, CardKey, CardSignature, FacilityCardLink, FacilityCardNumber, FacilityId,
    FactBody, FactPayload, Grant, MunicipalityCode, MyKeyId, NodeId, OpKind, Points, ProgramId,
    Redeem, RightAccept, RightTransfer, SignedFact, SignedTx, TxBody, TxId, TxPayload, UnixMillis,
};
use std::collections::HashMap;

/// Steps per case, at most.
const MAX_OPS: usize = 48;
/// Transactions per push, at most.
const MAX_TXS: usize = 16;
const START: UnixMillis = UnixMillis(1_764_000_000_000);
const DAY_MS: u64 = 86_400_000;

/// Who signs (or whom a transfer goes to).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Who {
    /// The session's peer: the stall.
    Peer,
    /// The library of the same municipality.
    Library,
    /// The shop of Sapporo.
    Shop,
    /// A key the hub never enrolled.
    Stranger,
}

/// Where in its signer's chain a transaction goes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum Place {
    /// The next seq, chained to the last one.
    Next,
    /// The last transaction again, unchanged.
    Again,
    /// The last seq again, other content.
    Fork,
    /// Past the next seq.
    Gap(u8),
    /// Any seq, any previous hash.
    Wild(u64, [u8; 2]),
}

#[derive(Arbitrary, Debug, Clone)]
enum Body {
    Redeem {
        card: u8,
        account: u8,
        municipality: u8,
        points: u64,
        merchant: u8,
        basis: BasisSpec,
        /// The card's signature (garbage: the fixture's cards have no kept key).
        card_proof: Option<Vec<u8>>,
    },
    Grant {
        card: u8,
        account: u8,
        municipality: u8,
        program: u8,
        points: u64,
    },
    Link {
        account: u8,
        facility: u8,
        number: u8,
    },
    Unlink {
        account: u8,
        facility: u8,
        number: u8,
    },
    RightTransfer {
        account: u8,
        municipality: u8,
        to: Who,
        points: u64,
        right_id: u64,
        grant: GrantSpec,
    },
    /// A transfer signed by `from` (next in its chain) to the signer, accepted.
    RightAccept {
        from: Who,
        account: u8,
        points: u64,
        right_id: u64,
        grant: GrantSpec,
    },
}

/// The balance a redeem states it decided on.
#[derive(Arbitrary, Debug, Clone)]
enum BasisSpec {
    /// It held none.
    None,
    /// One the hub answered in a receipt (if any came yet).
    Seen(u8),
    /// Anything.
    Wild {
        ledger_pos: u64,
        balance: u64,
        debt: u64,
    },
}

/// The hub-signed right a transfer carries.
#[derive(Arbitrary, Debug, Clone)]
enum GrantSpec {
    /// A `SpendRight` fact the peer pulled from the hub (if any came yet).
    Seen(u8),
    /// A `SpendRight` for the sender, signed by someone other than the hub.
    Forged { right_id: u64, points: u64 },
    /// A fact as bytes.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone)]
struct TxSpec {
    signer: Who,
    place: Place,
    created_at: u32,
    body: Body,
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Hello {
        as_peer: bool,
        last_seq: u64,
        fact_cursor: u64,
    },
    Push(Vec<TxSpec>),
    /// Transactions as bytes (`SignedTx::from_bytes`).
    RawPush(Vec<Vec<u8>>),
    Pull {
        after: u64,
        max: u32,
        upto: u64,
    },
    Shards,
    ShardSync {
        shard: u8,
        epoch: u32,
        message: Option<Vec<u8>>,
        start: bool,
    },
    /// A request as bytes (`Request::decode`).
    Raw(Vec<u8>),
    /// An earlier request again.
    Replay(u8),
    /// A new connection.
    Reconnect,
    /// Time passes (minutes).
    Tick(u16),
    /// The operator suspends (or reinstates) a holder's card.
    Suspend {
        card: u8,
        reinstate: bool,
    },
    /// The operator grants points.
    AdminGrant {
        account: u8,
        points: u32,
    },
    /// Strict mode on (with rights for the stall and the library) or off (rights released).
    Strict(bool),
    /// The operator revokes the library node.
    RevokeLibrary,
    /// Lots expire, held points are released.
    Expiry(u16),
    /// A new shard epoch.
    Compact,
}

#[derive(Arbitrary, Debug)]
struct Case {
    ops: Vec<Op>,
}

fn pick<T: Clone>(table: &[T], i: u8) -> T {
    table[usize::from(i) % table.len()].clone()
}

fn points(p: u64) -> Points {
    Points::new(p.min(Points::MAX)).expect("clamped points")
}

/// The fixed parts of the world.
struct Fixture {
    keys: [SigningKey; 4],
    munis: [MunicipalityCode; 3],
    facilities: [FacilityId; 4],
    cards: [CardKey; 3],
    accounts: [AccountId; 3],
    programs: [ProgramId; 2],
    numbers: [FacilityCardNumber; 2],
}

impl Fixture {
    fn new() -> Fixture {
        let m = |c: &str| MunicipalityCode::parse(c).expect("code");
        let f = |c: &str| FacilityId::parse(c).expect("facility");
        let card = |n: u8| CardKey::new(vec![0x30, 0], vec![n]).expect("card");
        Fixture {
            keys: [0x50, 0x51, 0x52, 0x53].map(|b| SigningKey::from_bytes(&[b; 32])),
            munis: [m("131059"), m("011002"), m("271004")],
            facilities: [
                f("fest-stall-1"),
                f("bunkyo-lib"),
                f("sap-shop"),
                f("nowhere"),
            ],
            cards: [card(1), card(2), card(3)],
            accounts: [1, 2, 999].map(|a| AccountId::new(a).expect("account")),
            programs: [
                ProgramId::parse("health").expect("program"),
                ProgramId::parse("none").expect("program"),
            ],
            numbers: [
                FacilityCardNumber::parse("LIB-0001").expect("number"),
                FacilityCardNumber::parse("SHOP-7").expect("number"),
            ],
        }
    }

    fn key(&self, who: Who) -> &SigningKey {
        &self.keys[who as usize]
    }

    fn id(&self, who: Who) -> NodeId {
        id_of(self.key(who))
    }

    /// The hub with the fixed world in it (built once per thread, copied per input).
    fn hub(&self) -> Hub {
        crate::hubfile::hub(|hub| Fixture::new().build(hub))
    }

    fn build(&self, hub: &mut Hub) {
        let [bunkyo, sapporo, _] = self.munis;
        hub.add_municipality(bunkyo, "Bunkyo-ku", START)
            .expect("municipality");
        hub.add_municipality(sapporo, "Sapporo", START)
            .expect("municipality");
        let policy = |ops: Vec<OpKind>| NodePolicy {
            allowed_ops: ops,
            per_card_offline_limit: points(3000),
            node_exposure_limit: points(20_000),
            offline_voucher_cap: points(20_000),
            pin_threshold: points(2000),
            valid_until: START.plus_ms(365 * DAY_MS),
        };
        let sites = [
            (
                Who::Peer,
                0,
                bunkyo,
                FacilityKind::Stall,
                OpKind::ALL.to_vec(),
            ),
            (
                Who::Library,
                1,
                bunkyo,
                FacilityKind::Library,
                vec![OpKind::Link, OpKind::Unlink],
            ),
            (
                Who::Shop,
                2,
                sapporo,
                FacilityKind::Shop,
                vec![OpKind::Redeem],
            ),
        ];
        for (who, f, m, kind, ops) in sites {
            let facility = self.facilities[f].clone();
            hub.add_facility(
                &Facility {
                    id: facility.clone(),
                    municipality: m,
                    kind,
                    name: facility.to_string(),
                },
                START,
            )
            .expect("facility");
            hub.enrol_node(self.id(who), &facility, policy(ops), START)
                .expect("enrol");
        }
        hub.create_program(&self.programs[0], bunkyo, points(1_000_000), START)
            .expect("programme");
        for (i, alias) in ["hanako", "taro"].into_iter().enumerate() {
            let a = hub
                .register_account(
                    &MyKeyId::parse(alias).expect("alias"),
                    bunkyo,
                    &self.cards[i],
                    START,
                )
                .expect("holder");
            assert_eq!(a, self.accounts[i], "accounts are numbered from 1");
        }
        hub.admin_grant(self.accounts[0], &self.programs[0], points(3000), START)
            .expect("grant");
    }
}

/// The harness's view of each signer's chain.
#[derive(Default)]
pub(crate) struct Chains(HashMap<NodeId, Vec<SignedTx>>);

impl Chains {
    pub(crate) fn sign(
        &mut self,
        key: &SigningKey,
        place: Place,
        created_at: u64,
        body: TxBody,
    ) -> SignedTx {
        let node = id_of(key);
        let chain = self.0.entry(node).or_default();
        let last = chain.last().cloned();
        let next = chain.len() as u64 + 1;
        let head = last.as_ref().map_or(TxId::GENESIS, SignedTx::id);
        let prev_of = |chain: &[SignedTx], seq: u64| {
            seq.checked_sub(2)
                .and_then(|i| chain.get(i as usize))
                .map_or(TxId::GENESIS, SignedTx::id)
        };
        let (seq, prev_hash) = match place {
            Place::Next => (next, head),
            Place::Again => {
                if let Some(tx) = last {
                    return tx;
                }
                (next, head)
            }
            Place::Fork => {
                let seq = next.saturating_sub(1).max(1);
                (seq, prev_of(chain, seq))
            }
            Place::Gap(n) => (next + 1 + u64::from(n % 8), head),
            Place::Wild(seq, prev) => {
                let mut h = [0u8; 32];
                h[..2].copy_from_slice(&prev);
                (seq, TxId::from_bytes(h))
            }
        };
        let tx = SignedTx::sign(
            &TxPayload {
                node,
                seq,
                prev_hash,
                created_at: START.plus_ms(created_at),
                body,
            },
            key,
        );
        if matches!(place, Place::Next) {
            chain.push(tx.clone());
        }
        tx
    }
}

struct Run {
    fx: Fixture,
    hub: Hub,
    session: HubSession,
    chains: Chains,
    now: UnixMillis,
    history: Vec<Request>,
    /// What the hub decided for each transaction (chain-level refusals aside).
    decided: HashMap<TxId, Outcome>,
    /// Balances the hub confirmed in receipts (bases for later redeems).
    bases: Vec<Basis>,
    /// `SpendRight` facts the peer pulled (grants for later transfers).
    grants: Vec<SignedFact>,
}

impl Run {
    /// The grant a transfer by `sender` carries.
    fn grant(&self, sender: Who, account: AccountId, spec: &GrantSpec) -> SignedFact {
        let forged = |right_id: u64, p: u64| {
            let node = self.fx.id(sender);
            SignedFact::sign(
                &FactPayload {
                    hub_seq: 1,
                    issued_at: START,
                    scope: Scope::Node(node),
                    body: FactBody::SpendRight {
                        account,
                        municipality: self.fx.munis[0],
                        node,
                        right_id,
                        points: points(p),
                    },
                },
                self.fx.key(Who::Stranger),
            )
        };
        match spec {
            GrantSpec::Seen(i) if !self.grants.is_empty() => pick(&self.grants, *i),
            GrantSpec::Seen(i) => forged(u64::from(*i), 100),
            GrantSpec::Forged { right_id, points } => forged(*right_id, *points),
            GrantSpec::Raw(b) => SignedFact::from_bytes(b).unwrap_or_else(|_| forged(0, 1)),
        }
    }

    fn body(&mut self, signer: Who, body: &Body) -> TxBody {
        let fx = &self.fx;
        match body {
            Body::Redeem {
                card,
                account,
                municipality,
                points: p,
                merchant,
                basis,
                card_proof,
            } => TxBody::Redeem(Redeem {
                card: pick(&fx.cards, *card),
                account: pick(&fx.accounts, *account),
                municipality: pick(&fx.munis, *municipality),
                points: points(*p),
                merchant: pick(&fx.facilities, *merchant),
                basis: match basis {
                    BasisSpec::None => None,
                    BasisSpec::Seen(i) => (!self.bases.is_empty()).then(|| pick(&self.bases, *i)),
                    BasisSpec::Wild {
                        ledger_pos,
                        balance,
                        debt,
                    } => Some(Basis {
                        ledger_pos: *ledger_pos,
                        balance: points(*balance),
                        debt: points(*debt),
                    }),
                },
                card_proof: card_proof.clone().and_then(|b| CardSignature::new(b).ok()),
            }),
            Body::Grant {
                card,
                account,
                municipality,
                program,
                points: p,
            } => TxBody::Grant(Grant {
                card: pick(&fx.cards, *card),
                account: pick(&fx.accounts, *account),
                municipality: pick(&fx.munis, *municipality),
                program: pick(&fx.programs, *program),
                points: points(*p),
            }),
            Body::Link {
                account,
                facility,
                number,
            } => TxBody::LinkFacilityCard(FacilityCardLink {
                account: pick(&fx.accounts, *account),
                facility: pick(&fx.facilities, *facility),
                number: pick(&fx.numbers, *number),
            }),
            Body::Unlink {
                account,
                facility,
                number,
            } => TxBody::UnlinkFacilityCard(FacilityCardLink {
                account: pick(&fx.accounts, *account),
                facility: pick(&fx.facilities, *facility),
                number: pick(&fx.numbers, *number),
            }),
            Body::RightTransfer {
                account,
                municipality,
                to,
                points: p,
                right_id,
                grant,
            } => TxBody::RightTransfer(RightTransfer {
                account: pick(&fx.accounts, *account),
                municipality: pick(&fx.munis, *municipality),
                to: fx.id(*to),
                points: points(*p),
                right_id: *right_id,
                grant: self.grant(signer, pick(&fx.accounts, *account), grant),
            }),
            Body::RightAccept {
                from,
                account,
                points: p,
                right_id,
                grant,
            } => {
                let transfer = TxBody::RightTransfer(RightTransfer {
                    account: pick(&fx.accounts, *account),
                    municipality: fx.munis[0],
                    to: fx.id(signer),
                    points: points(*p),
                    right_id: *right_id,
                    grant: self.grant(*from, pick(&fx.accounts, *account), grant),
                });
                let key = fx.key(*from).clone();
                let transfer = self.chains.sign(&key, Place::Next, 0, transfer);
                TxBody::RightAccept(RightAccept { transfer })
            }
        }
    }

    fn request(&mut self, req: Request) {
        if self.history.len() < 32 {
            self.history.push(req.clone());
        }
        let pushed: Vec<SignedTx> = match &req {
            Request::Push(p) => p.txs.clone(),
            _ => vec![],
        };
        let asked = req.clone();
        let mut recorded = Recorded {
            hub: &mut self.hub,
            decided: None,
        };
        let resp = self.session.handle_request(req, self.now, &mut recorded);
        let decided = recorded.decided;
        let bytes = resp.encode();
        assert_eq!(
            Response::decode(&bytes).as_ref(),
            Ok(&resp),
            "the hub's answer crosses the wire"
        );
        self.check_answer(&asked, &pushed, resp, decided);
    }

    fn check_answer(
        &mut self,
        req: &Request,
        pushed: &[SignedTx],
        resp: Response,
        decided: Option<Receipts>,
    ) {
        let peer = self.fx.id(Who::Peer);
        match resp {
            Response::Receipts(rr) => {
                let r = decided.expect("a push's receipts come from the hub's ingest");
                ranges_say_what_the_hub_decided(&rr, &r);
                assert!(
                    r.receipts.len() <= pushed.len(),
                    "a receipt per transaction at most"
                );
                let ids: HashMap<TxId, &SignedTx> = pushed.iter().map(|t| (t.id(), t)).collect();
                for rc in r.receipts {
                    let tx = rc.tx.expect("the hub's ingest names every transaction");
                    if let Some(v) = ids.get(&tx).and_then(|t| t.verify().ok()) {
                        assert_eq!((rc.node, rc.seq), (v.payload().node, v.payload().seq));
                    }
                    if let Outcome::Accepted {
                        ledger_pos,
                        balance: Some(b),
                        ..
                    } = &rc.outcome
                        && self.bases.len() < 16
                    {
                        self.bases.push(Basis {
                            ledger_pos: *ledger_pos,
                            balance: b.balance,
                            debt: b.debt,
                        });
                    }
                    let chain_level =
                        matches!(&rc.outcome, Outcome::Rejected(x) if x.is_chain_level());
                    if chain_level {
                        continue;
                    }
                    match self.decided.get(&tx) {
                        Some(first) => assert_eq!(
                            first,
                            &rc.outcome,
                            "transaction {} decided again differently",
                            tx.short()
                        ),
                        None => {
                            self.decided.insert(tx, rc.outcome.clone());
                        }
                    }
                    assert!(self.hub.tx_applications(&tx).expect("read") <= 1);
                }
            }
            Response::Facts(f) => {
                if let Request::PullFacts(p) = req {
                    assert!(f.facts.len() <= p.max.clamp(1, 2000) as usize);
                }
                let hub = self.hub.hub_id();
                for fact in &f.facts {
                    let v = fact.verify(&hub).expect("the hub's facts verify");
                    let ok = match &v.payload().scope {
                        Scope::All => true,
                        Scope::Municipality(m) => *m == self.fx.munis[0],
                        Scope::Facility(x) => *x == self.fx.facilities[0],
                        Scope::Node(n) => *n == peer,
                    };
                    assert!(
                        ok,
                        "the peer receives only its own scopes: {:?}",
                        v.payload().scope
                    );
                    if matches!(v.payload().body, FactBody::SpendRight { .. })
                        && self.grants.len() < 16
                    {
                        self.grants.push(fact.clone());
                    }
                }
            }
            Response::Shards(list) => {
                for h in &list.shards {
                    let ok = match &h.shard.scope {
                        ShardScope::Deny(m) | ShardScope::Municipality(m) => *m == self.fx.munis[0],
                        ShardScope::Facility(x) => *x == self.fx.facilities[0],
                    };
                    assert!(ok, "the peer is listed only its own shards: {}", h.shard);
                }
            }
            Response::ShardSync(s) => {
                if let Request::ShardSync(asked) = req {
                    assert_eq!(s.shard, asked.shard);
                }
            }
            Response::Refused(r) => assert!(!r.to_string().is_empty()),
            Response::Welcome(_) => {}
            // No history leaves the hub without the card's own signature,
            // which no fuzzed input can make.
            Response::Holder(h) => assert!(
                !matches!(*h, mykey_sync_proto::holder::HolderResponse::History(_)),
                "a holder history without a card proof"
            ),
        }
    }

    fn step(&mut self, op: Op) {
        let fx_peer = self.fx.id(Who::Peer);
        let bunkyo = self.fx.munis[0];
        match op {
            Op::Hello {
                as_peer,
                last_seq,
                fact_cursor,
            } => {
                let node = if as_peer {
                    fx_peer
                } else {
                    self.fx.id(Who::Library)
                };
                self.request(Request::Hello(Hello {
                    node,
                    node_time: self.now,
                    last_seq,
                    fact_cursor,
                    software: "fuzz".into(),
                }));
            }
            Op::Push(specs) => {
                let mut txs = vec![];
                for s in specs.into_iter().take(MAX_TXS) {
                    let body = self.body(s.signer, &s.body);
                    let key = self.fx.key(s.signer).clone();
                    txs.push(
                        self.chains
                            .sign(&key, s.place, u64::from(s.created_at), body),
                    );
                }
                self.request(Request::Push(Push { txs }));
            }
            Op::RawPush(raw) => {
                let txs = raw
                    .iter()
                    .take(MAX_TXS)
                    .filter_map(|b| SignedTx::from_bytes(b).ok())
                    .collect();
                self.request(Request::Push(Push { txs }));
            }
            Op::Pull { after, max, upto } => {
                self.request(Request::PullFacts(PullFacts { after, max, upto }));
            }
            Op::Shards => self.request(Request::Shards),
            Op::ShardSync {
                shard,
                epoch,
                message,
                start,
            } => {
                let scopes = [
                    ShardScope::Deny(bunkyo),
                    ShardScope::Municipality(bunkyo),
                    ShardScope::Facility(self.fx.facilities[0].clone()),
                    ShardScope::Facility(self.fx.facilities[1].clone()),
                    ShardScope::Municipality(self.fx.munis[1]),
                ];
                let scope = pick(&scopes, shard);
                self.request(Request::ShardSync(ShardSync {
                    shard: ShardId {
                        scope,
                        bucket: u16::from(shard >> 4),
                    },
                    epoch,
                    message,
                    start,
                }));
            }
            Op::Raw(bytes) => {
                if let Ok(req) = Request::decode(&bytes) {
                    self.request(req);
                }
            }
            Op::Replay(i) => {
                if !self.history.is_empty() {
                    let req = pick(&self.history, i);
                    self.request(req);
                }
            }
            Op::Reconnect => self.session = HubSession::new(fx_peer),
            Op::Tick(min) => self.now = self.now.plus_ms(u64::from(min) * 60_000),
            Op::Suspend { card, reinstate } => {
                let card = pick(&self.fx.cards, card);
                let _ = if reinstate {
                    self.hub.reinstate_card(&card, self.now).map(|_| ())
                } else {
                    self.hub.suspend_card(&card, self.now)
                };
            }
            Op::AdminGrant { account, points: p } => {
                let a = pick(&self.fx.accounts, account);
                let _ =
                    self.hub
                        .admin_grant(a, &self.fx.programs[0], points(u64::from(p)), self.now);
            }
            Op::Strict(on) => {
                self.hub
                    .set_strict_mode(bunkyo, on, self.now)
                    .expect("strict switch");
                let nodes = [fx_peer, self.fx.id(Who::Library)];
                if on {
                    let _ = self.hub.escrow_grant(bunkyo, &nodes, None, self.now);
                } else {
                    let _ = self.hub.escrow_release(bunkyo, None, self.now);
                }
            }
            Op::RevokeLibrary => {
                let _ = self.hub.revoke_node(self.fx.id(Who::Library), self.now);
            }
            Op::Expiry(days) => {
                self.now = self.now.plus_ms(u64::from(days) * DAY_MS);
                self.hub.run_expiry(self.now).expect("expiry");
            }
            Op::Compact => {
                self.hub.compact_shards(self.now).expect("compaction");
            }
        }
        self.hub
            .check_conservation()
            .expect("the ledger balances and conservation holds");
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
    let fx = Fixture::new();
    let hub = fx.hub();
    let peer = fx.id(Who::Peer);
    let mut run = Run {
        fx,
        hub,
        session: HubSession::new(peer),
        chains: Chains::default(),
        now: START.plus_ms(60_000),
        history: vec![],
        decided: HashMap::new(),
        bases: vec![],
        grants: vec![],
    };
    for op in case.ops.into_iter().take(MAX_OPS) {
        run.step(op);
    }
}

/// The hub as its session sees it, keeping what `ingest` decided: the wire
/// leaves the ids of acceptances out, the properties above follow them.
struct Recorded<'a> {
    hub: &'a mut Hub,
    decided: Option<Receipts>,
}

impl HubService for Recorded<'_> {
    fn open(&mut self, hello: &Hello, now: UnixMillis) -> Result<Welcome, Refusal> {
        self.hub.open(hello, now)
    }
    fn ingest(&mut self, carrier: &NodeId, txs: Vec<SignedTx>, now: UnixMillis) -> Receipts {
        let r = self.hub.ingest(carrier, txs, now);
        self.decided = Some(r.clone());
        r
    }
    fn facts(&mut self, node: &NodeId, after: u64, max: u32, upto: u64) -> Facts {
        self.hub.facts(node, after, max, upto)
    }
    fn shards(&mut self, node: &NodeId) -> Result<ShardList, Refusal> {
        self.hub.shards(node)
    }
    fn shard_sync(
        &mut self,
        node: &NodeId,
        sync: ShardSync,
        now: UnixMillis,
    ) -> Result<ShardSync, Refusal> {
        self.hub.shard_sync(node, sync, now)
    }
    fn holder(&mut self, node: &NodeId, req: HolderRequest, now: UnixMillis) -> HolderResponse {
        self.hub.holder(node, req, now)
    }
}

/// The compact receipts expand to the hub's verdicts: one per (signer, seq)
/// it answered, the first it gave for that seq, a rejection with its id,
/// each balance snapshot the one the hub gave with that receipt.
fn ranges_say_what_the_hub_decided(rr: &ReceiptRanges, decided: &Receipts) {
    let wire = rr
        .expand(MAX_PUSH_TXS)
        .expect("the hub's ranges hold together");
    assert_eq!(wire.processed_seq, decided.processed_seq);
    let mut first: HashMap<(NodeId, u64), &Receipt> = HashMap::new();
    for rc in &decided.receipts {
        first.entry((rc.node, rc.seq)).or_insert(rc);
    }
    assert_eq!(
        wire.receipts.len(),
        first.len(),
        "one receipt per (signer, seq)"
    );
    for w in &wire.receipts {
        let h = first
            .get(&(w.node, w.seq))
            .expect("every receipt on the wire is one the hub gave");
        match (&w.outcome, &h.outcome) {
            (
                Outcome::Accepted {
                    ledger_pos,
                    balance,
                    debt_created,
                    quarantined,
                },
                Outcome::Accepted {
                    ledger_pos: p,
                    balance: b,
                    debt_created: d,
                    quarantined: q,
                },
            ) => {
                assert_eq!((ledger_pos, debt_created, quarantined), (p, d, q));
                assert!(balance.is_none() || balance == b, "a snapshot is the hub's");
                assert_eq!(w.tx, None);
            }
            (Outcome::Rejected(a), Outcome::Rejected(b)) => {
                assert_eq!(a, b);
                assert_eq!(w.tx, h.tx);
            }
            (a, b) => panic!("the wire says {a:?}, the hub said {b:?}"),
        }
    }
}
