//! The lying node (issue 12, DESIGN §6 "who enforces the bound"): the owner
//! of a facility controls its node machine, its files and its binary, anyone
//! can join a stall LAN, and a node key can leak. The hub is the side that
//! pays, so whatever such a node signs, the hub must pay its facility no
//! more than the bounds the hub itself enrolled; what is beyond them is
//! evidence, not a payout.
//!
//! One extra node of a scenario (a festival stall or a city shop, enrolled
//! like the others) is the liar. Its counter is the owner's: it serves no
//! visitor of the plan, and at scripted times ([`Lie`]) it
//! - sells genuinely above the PIN threshold (the holder's card signs), and
//!   keeps the card's signature to copy later;
//! - edits its own store (limits and a holder's confirmed balance, through
//!   the store's writer as `sqlite3` on the file would) so that its own core
//!   lets it spend far beyond what the hub gave;
//! - in strict mode writes rights the hub never granted into its rights
//!   table and spends them;
//! - mints redeems with its key straight into its outbox (a patched binary)
//!   for holders who never came, below and above the PIN threshold, with no
//!   proof, a forged one (its own card signs the victim's binding) or a
//!   copied one (a genuine signature made for another transaction);
//! - pushes signed bytes it already sent to the hub again;
//! - leaks its key: a second machine with a copy of its store signs its own
//!   chain and pushes it to the hub;
//! - (festival) brings an accomplice onto the LAN whose key is in no roster
//!   and offers the honest stalls huge pending spends on their visitors and,
//!   in strict mode, a spend right backed by a copied hub grant.
//!
//! The liar reaches the hub whenever the hub process is up (the owner can
//! take a machine anywhere), besides its own scheduled link. The checks
//! are in `checks.rs` (`check_liar`): what the hub pays its facility and
//! what honest nodes see.

use crate::cards;
use crate::hub_host::HubCore;
use crate::prng::Prng;
use crate::world::{AtTime, Failure, Watched, World, fail};
use ed25519_dalek::SigningKey;
use mykey_node::net::lan::{self, LanRefusal, LanRequest};
use mykey_node::node::PeerTxsError;
use mykey_node::{Node, NodeKey, OpError};
use mykey_sync_proto::fact::NodeLimits;
use mykey_sync_proto::session::HubSession;
use mykey_sync_proto::wire::{Hello, Push, Request, Response};
use mykey_sync_proto::{
    CardKey, CardSignature, FacilityId, NodeId, OpKind, Points, Redeem, RedeemBinding,
    RightTransfer, SignedTx, TxBody, TxId, TxPayload, UnixMillis, codec,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the lying node's owner does at one scripted time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lie {
    /// A genuine sale above the PIN threshold: the holder's card signs; the
    /// owner keeps the signature.
    Genuine {
        /// Who came.
        holder: usize,
        /// How many points.
        points: u64,
    },
    /// Edit the store (limits, the holder's confirmed balance), then spend
    /// through the node's own core.
    TamperedSpend {
        /// Whose points.
        holder: usize,
        /// How many.
        points: u64,
    },
    /// Strict mode: a right the hub never granted, written into the rights
    /// table, then spent through the core.
    SelfRight {
        /// Whose points.
        holder: usize,
        /// How many.
        points: u64,
    },
    /// A redeem signed by the node key straight into the outbox.
    Mint {
        /// Whose points (the holder never came).
        holder: usize,
        /// How many.
        points: u64,
        /// The card proof it carries.
        proof: MintProof,
    },
    /// Signed bytes pushed to the hub again.
    Replay,
    /// The node key leaks to a second machine (a copy of the store).
    Leak,
    /// The second machine spends (its store edited) and pushes its chain.
    LeakSpend {
        /// Whose points.
        holder: usize,
        /// How many.
        points: u64,
    },
    /// A LAN peer outside the roster offers the honest stalls pending spends
    /// (and in strict mode a right).
    RogueLan {
        /// The visitor whose wallet it would freeze.
        holder: usize,
        /// How many points.
        points: u64,
    },
}

impl Lie {
    /// Short name for the summary.
    pub fn name(self) -> &'static str {
        match self {
            Lie::Genuine { .. } => "genuine sale with PIN",
            Lie::TamperedSpend { .. } => "spend on an edited store",
            Lie::SelfRight { .. } => "spend on a self-made right",
            Lie::Mint {
                proof: MintProof::None,
                ..
            } => "minted, no proof",
            Lie::Mint {
                proof: MintProof::Forged,
                ..
            } => "minted, forged proof",
            Lie::Mint {
                proof: MintProof::Copied,
                ..
            } => "minted, copied proof",
            Lie::Replay => "replayed bytes",
            Lie::Leak => "key leaked",
            Lie::LeakSpend { .. } => "second machine's spend",
            Lie::RogueLan { .. } => "LAN peer outside the roster",
        }
    }
}

/// The card proof a minted redeem carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MintProof {
    /// None.
    None,
    /// The liar's own card signed the victim's binding.
    Forged,
    /// A genuine signature made for another transaction.
    Copied,
}

/// A transaction signed with the lying node's key, as the checks need it.
#[derive(Clone, Debug)]
pub struct LiarTx {
    /// The card it names.
    pub card: CardKey,
    /// Points.
    pub points: u64,
    /// Above the PIN threshold the hub enrolled.
    pub above_threshold: bool,
    /// Its card proof verifies with the card's key for this transaction.
    pub proof_verifies: bool,
    /// Which lie made it.
    pub how: &'static str,
    /// The signed bytes.
    pub signed: SignedTx,
}

/// The second machine that has the leaked key.
struct Second {
    core: Node,
}

/// The accomplice on the LAN: a key in no roster, with its own chain.
struct Rogue {
    key: SigningKey,
    id: NodeId,
    seq: u64,
    prev: TxId,
}

/// The lying node's state in a run.
pub struct Liar {
    /// Its node index.
    pub node: usize,
    /// Everything its key signed (its core, minted, the second machine).
    pub signed: BTreeMap<TxId, LiarTx>,
    /// Lies tried, by name.
    pub tried: BTreeMap<&'static str, u64>,
    /// Points asked by its spends.
    pub points_asked: u64,
    /// Rogue LAN offers made to honest stalls.
    pub rogue_offers: u64,
    /// Of those, refused by the stall as signed by a node on no roster.
    pub rogue_refused: u64,
    kept_proof: Option<CardSignature>,
    second: Option<Second>,
    rogue: Option<Rogue>,
    rng: Prng,
    dir: PathBuf,
}

impl Liar {
    /// The liar at node `node`, drawing from `rng`, keeping files in `dir`.
    pub fn new(node: usize, rng: Prng, dir: PathBuf) -> Liar {
        Liar {
            node,
            signed: BTreeMap::new(),
            tried: BTreeMap::new(),
            points_asked: 0,
            rogue_offers: 0,
            rogue_refused: 0,
            kept_proof: None,
            second: None,
            rogue: None,
            rng,
            dir,
        }
    }
}

/// Limits no one enrolled: what the owner writes into the store.
fn tampered(
    l: Option<NodeLimits>,
    me: NodeId,
    facility: FacilityId,
    m: mykey_sync_proto::MunicipalityCode,
) -> NodeLimits {
    let big = Points::new(Points::MAX / 4).unwrap_or(Points::ZERO);
    let mut l = l.unwrap_or(NodeLimits {
        node: me,
        facility,
        municipality: m,
        allowed_ops: vec![OpKind::Redeem],
        per_card_offline_limit: big,
        node_exposure_limit: big,
        pin_threshold: big,
        valid_until: UnixMillis(u64::MAX / 4),
    });
    l.per_card_offline_limit = big;
    l.node_exposure_limit = big;
    l.pin_threshold = big;
    if !l.allowed_ops.contains(&OpKind::Redeem) {
        l.allowed_ops.push(OpKind::Redeem);
    }
    l
}

/// Edits a node's store as its owner would: limits far above the enrolled
/// ones, the holder's confirmed balance raised (so the core sees cover),
/// and in strict mode a right the hub never granted.
fn edit_store(
    core: &mut Node,
    me: NodeId,
    facility: FacilityId,
    account: mykey_sync_proto::AccountId,
    m: mykey_sync_proto::MunicipalityCode,
    points: Points,
    self_right: bool,
) -> Result<(), mykey_node::store::StoreError> {
    core.store_mut().write(|w| {
        let r = w.read();
        let limits = tampered(r.limits()?, me, facility, m);
        let basis = r.basis(account, m)?;
        w.set_meta("limits", &codec::encode(&limits))?;
        let pos = basis.map_or(0, |b| b.ledger_pos);
        let raised = Points::new(points.get().saturating_mul(2)).unwrap_or(points);
        w.put_balance(account, m, raised, Points::ZERO, pos)?;
        if self_right {
            w.credit_right(account, m, points, 0)?;
        }
        Ok::<_, mykey_node::store::StoreError>(())
    })
}

impl<H: HubCore> World<H> {
    /// Carries out one lie; true when the hub's state may have changed.
    pub(crate) fn on_lie(&mut self, lie: Lie) -> Result<bool, Failure> {
        let Some(n) = self.liar.as_ref().map(|l| l.node) else {
            return Ok(false);
        };
        if let Some(l) = self.liar.as_mut() {
            *l.tried.entry(lie.name()).or_default() += 1;
        }
        match lie {
            Lie::Genuine { holder, points } => self.liar_genuine(n, holder, points).map(|_| false),
            // In strict mode the core spends rights, not balances: the
            // owner writes one as well.
            Lie::TamperedSpend { holder, points } => {
                let strict = self.plan.strict;
                self.liar_core_spend(n, holder, points, strict, lie.name())
                    .map(|_| false)
            }
            Lie::SelfRight { holder, points } => self
                .liar_core_spend(n, holder, points, true, lie.name())
                .map(|_| false),
            Lie::Mint {
                holder,
                points,
                proof,
            } => self.liar_mint(n, holder, points, proof).map(|_| false),
            Lie::Replay => self.liar_replay(n),
            Lie::Leak => self.liar_leak(n).map(|_| false),
            Lie::LeakSpend { holder, points } => self.liar_second_spend(n, holder, points),
            Lie::RogueLan { holder, points } => self.rogue_lan(holder, points).map(|_| false),
        }
    }

    fn note_asked(&mut self, points: u64) {
        if let Some(l) = self.liar.as_mut() {
            l.points_asked += points;
        }
    }

    /// Records a transaction the liar's key signed.
    fn note_liar_tx(
        &mut self,
        holder: usize,
        signed: SignedTx,
        how: &'static str,
    ) -> Result<(), Failure> {
        let t = self.now;
        let Some(n) = self.liar.as_ref().map(|l| l.node) else {
            return Ok(());
        };
        let v = signed.verify().at(t)?;
        let TxBody::Redeem(r) = &v.payload().body else {
            return Ok(());
        };
        let above = r.points > self.limits[n].pin_threshold;
        let proof_verifies = match (&r.card_proof, RedeemBinding::of(v.payload())) {
            (Some(sig), Some(b)) => {
                let kit = cards::kit().at(t)?;
                mykey_jpki::verify_redeem_proof(kit.holder_public_key_der(), &b, sig).is_ok()
            }
            _ => false,
        };
        let tx = LiarTx {
            card: r.card.clone(),
            points: r.points.get(),
            above_threshold: above,
            proof_verifies,
            how,
            signed: signed.clone(),
        };
        self.spent_at[holder].insert(n);
        if let Some(l) = self.liar.as_mut() {
            l.signed.insert(signed.id(), tx);
        }
        Ok(())
    }

    /// The liar's own session learns of a new seq and pushes when linked.
    fn liar_pump(&mut self, n: usize, seq: u64) -> Result<(), Failure> {
        let mono = self.nodes[n].clock.mono(self.now);
        self.nodes[n].session.note_local_seq(seq, mono);
        self.pump(n)
    }

    fn liar_genuine(&mut self, n: usize, h: usize, points: u64) -> Result<(), Failure> {
        let t = self.now;
        if !self.nodes[n].is_up() {
            return Ok(());
        }
        self.note_asked(points);
        let card = self.holders[h].card.clone();
        let wall = self.nodes[n].clock.wall(t);
        let pts = Points::new(points).at(t)?;
        let binding = match self.core(n)?.redeem_binding(&card, pts, wall) {
            Ok(b) => b,
            Err(_) => return Ok(()),
        };
        let Some(proof) = self.card_proof(n, h, binding, false)? else {
            return Ok(());
        };
        let sig = proof.signature().clone();
        let done = match self.core_mut(n)?.redeem(&card, pts, Some(&proof), wall) {
            Ok(d) => d,
            Err(OpError::Store(e)) => return fail(t, format!("liar node {n} store failed: {e}")),
            Err(_) => return Ok(()),
        };
        if let Some(l) = self.liar.as_mut() {
            l.kept_proof = Some(sig);
        }
        let signed = self.core(n)?.outbox_from(done.seq, 1).at(t)?;
        for tx in signed {
            self.note_liar_tx(h, tx, "genuine sale with PIN")?;
        }
        self.liar_pump(n, done.seq)
    }

    fn liar_core_spend(
        &mut self,
        n: usize,
        h: usize,
        points: u64,
        self_right: bool,
        how: &'static str,
    ) -> Result<(), Failure> {
        let t = self.now;
        if !self.nodes[n].is_up() {
            return Ok(());
        }
        self.note_asked(points);
        let (me, facility, m) = (
            self.nodes[n].id,
            self.nodes[n].facility.clone(),
            self.municipality,
        );
        let (card, account) = (self.holders[h].card.clone(), self.holders[h].account);
        let pts = Points::new(points).at(t)?;
        let wall = self.nodes[n].clock.wall(t);
        let core = self.core_mut(n)?;
        edit_store(core, me, facility, account, m, pts, self_right).at(t)?;
        let done = match core.redeem(&card, pts, None, wall) {
            Ok(d) => d,
            Err(OpError::Store(e)) => return fail(t, format!("liar node {n} store failed: {e}")),
            // Its own core still refused (the card is unknown to it, …).
            Err(_) => return Ok(()),
        };
        let signed = self.core(n)?.outbox_from(done.seq, 1).at(t)?;
        for tx in signed {
            self.note_liar_tx(h, tx, how)?;
        }
        self.liar_pump(n, done.seq)
    }

    fn liar_mint(
        &mut self,
        n: usize,
        h: usize,
        points: u64,
        proof: MintProof,
    ) -> Result<(), Failure> {
        let t = self.now;
        if !self.nodes[n].is_up() {
            return Ok(());
        }
        self.note_asked(points);
        let m = self.municipality;
        let (card, account) = (self.holders[h].card.clone(), self.holders[h].account);
        let pts = Points::new(points).at(t)?;
        let wall = self.nodes[n].clock.wall(t);
        let key = NodeKey::from_secret(self.nodes[n].secret());
        let merchant = self.nodes[n].facility.clone();
        let core = self.core_mut(n)?;
        let (last_seq, prev) = core.store_mut().read().last_tx().at(t)?;
        let basis = core.store_mut().read().basis(account, m).at(t)?;
        let mut redeem = Redeem {
            card: card.clone(),
            account,
            municipality: m,
            points: pts,
            merchant,
            basis,
            card_proof: None,
        };
        let binding = RedeemBinding::new(key.id(), last_seq + 1, wall, &redeem);
        redeem.card_proof = match proof {
            MintProof::None => None,
            MintProof::Forged => Some(forge(&binding).at(t)?),
            MintProof::Copied => match self.liar.as_ref().and_then(|l| l.kept_proof.clone()) {
                Some(s) => Some(s),
                None => Some(forge(&binding).at(t)?),
            },
        };
        let payload = TxPayload {
            node: key.id(),
            seq: last_seq + 1,
            prev_hash: prev,
            created_at: wall,
            body: TxBody::Redeem(redeem),
        };
        let tx = SignedTx::sign(&payload, key.signing_key());
        let core = self.core_mut(n)?;
        core.store_mut()
            .write(|w| {
                w.append_outbox(
                    last_seq + 1,
                    &tx,
                    "redeem",
                    wall,
                    Some(&card),
                    Some(account),
                    Some(m),
                    pts,
                )
            })
            .at(t)?;
        let how = Lie::Mint {
            holder: h,
            points,
            proof,
        }
        .name();
        self.note_liar_tx(h, tx, how)?;
        self.liar_pump(n, last_seq + 1)
    }

    /// Pushes `txs` to the hub as `node`, on a connection of its own (the
    /// owner's other machine or network); false when the hub is down.
    fn push_direct(&mut self, node: NodeId, last_seq: u64, txs: Vec<SignedTx>) -> bool {
        if !self.net.hub_up || txs.is_empty() {
            return false;
        }
        let now = self.hub_clock.wall(self.now);
        let mut session = HubSession::new(node);
        let hello = Request::Hello(Hello {
            node,
            node_time: now,
            last_seq,
            fact_cursor: 0,
            software: "mykey-sim-liar".into(),
        });
        if !matches!(
            session.handle_request(hello, now, &mut self.hub),
            Response::Welcome(_)
        ) {
            return false;
        }
        let mut watched = Watched::new(&mut self.hub);
        session.handle_request(Request::Push(Push { txs }), now, &mut watched);
        let decided = watched.decided;
        self.note_hub_receipts(&decided);
        true
    }

    fn liar_replay(&mut self, n: usize) -> Result<bool, Failure> {
        let Some(l) = self.liar.as_mut() else {
            return Ok(false);
        };
        if l.signed.is_empty() {
            return Ok(false);
        }
        let i = l.rng.index(l.signed.len());
        let Some(tx) = l.signed.values().nth(i).map(|x| x.signed.clone()) else {
            return Ok(false);
        };
        let id = self.nodes[n].id;
        // The same bytes twice in one push, as a replaying sender would.
        Ok(self.push_direct(id, 0, vec![tx.clone(), tx]))
    }

    fn liar_leak(&mut self, n: usize) -> Result<(), Failure> {
        let t = self.now;
        let Some(l) = self.liar.as_ref() else {
            return Ok(());
        };
        if l.second.is_some() || !self.nodes[n].is_up() {
            return Ok(());
        }
        let copy = l.dir.join("leaked-node.sqlite");
        let from = self.nodes[n].store_path();
        // The owner copies the store file to a second machine, with the key.
        let conn = rusqlite::Connection::open(from).at(t)?;
        conn.execute("VACUUM INTO ?1", [copy.to_string_lossy().as_ref()])
            .at(t)?;
        drop(conn);
        let key = NodeKey::from_secret(self.nodes[n].secret());
        let core = Node::open(&copy, key, self.hub.hub_id()).at(t)?;
        if let Some(l) = self.liar.as_mut() {
            l.second = Some(Second { core });
        }
        Ok(())
    }

    fn liar_second_spend(&mut self, n: usize, h: usize, points: u64) -> Result<bool, Failure> {
        let t = self.now;
        let (me, facility, m) = (
            self.nodes[n].id,
            self.nodes[n].facility.clone(),
            self.municipality,
        );
        let (card, account) = (self.holders[h].card.clone(), self.holders[h].account);
        let pts = Points::new(points).at(t)?;
        // Its own clock: the owner's other machine, set right.
        let wall = self.hub_clock.wall(t);
        if self.liar.as_ref().is_none_or(|l| l.second.is_none()) {
            return Ok(false);
        }
        self.note_asked(points);
        let Some(second) = self.liar.as_mut().and_then(|l| l.second.as_mut()) else {
            return Ok(false);
        };
        edit_store(&mut second.core, me, facility, account, m, pts, false).at(t)?;
        let done = match second.core.redeem(&card, pts, None, wall) {
            Ok(d) => d,
            Err(OpError::Store(e)) => return fail(t, format!("leaked key's store failed: {e}")),
            Err(_) => return Ok(false),
        };
        // Its whole unreceipted chain: the copied part first (the same
        // bytes the liar signed), then its own.
        let from = second.core.sync_position().at(t)?.1 + 1;
        let own = second.core.outbox_from(from, 500).at(t)?;
        let new = second.core.outbox_from(done.seq, 1).at(t)?;
        for tx in new {
            self.note_liar_tx(h, tx, "second machine's spend")?;
        }
        Ok(self.push_direct(me, done.seq, own))
    }

    /// An accomplice outside the roster offers every honest stall on the
    /// LAN a signed redeem on a visitor's wallet (and in strict mode a right
    /// backed by a hub grant copied from the liar's store); nothing of it
    /// may count at an honest stall.
    fn rogue_lan(&mut self, h: usize, points: u64) -> Result<(), Failure> {
        let t = self.now;
        let Some(liar) = self.liar.as_ref().map(|l| l.node) else {
            return Ok(());
        };
        let Some(group) = self.plan.nodes[liar].lan_group else {
            return Ok(());
        };
        let m = self.municipality;
        let (card, account) = (self.holders[h].card.clone(), self.holders[h].account);
        let wall = self.hub_clock.wall(t);
        // A genuine hub grant, copied from the liar's store.
        let grant = match self.nodes[liar].core.as_mut() {
            Some(core) => {
                let r = core.store_mut().read();
                match r.right(account, m).at(t)?.1 {
                    0 => None,
                    id => r.right_grant(account, m, id).at(t)?.map(|g| (id, g)),
                }
            }
            None => None,
        };
        let honest: Vec<usize> = (0..self.nodes.len())
            .filter(|x| {
                *x != liar
                    && self.plan.nodes[*x].lan_group == Some(group)
                    && self.net.lan_ok[*x]
                    && self.nodes[*x].is_up()
            })
            .collect();
        let Some(l) = self.liar.as_mut() else {
            return Ok(());
        };
        if l.rogue.is_none() {
            let key = SigningKey::from_bytes(&l.rng.bytes32());
            let id = NodeId::from_bytes(key.verifying_key().to_bytes()).at(t)?;
            l.rogue = Some(Rogue {
                key,
                id,
                seq: 0,
                prev: TxId::GENESIS,
            });
        }
        let Some(rogue) = l.rogue.as_mut() else {
            return Ok(());
        };
        let mut bodies = vec![TxBody::Redeem(Redeem {
            card,
            account,
            municipality: m,
            points: Points::new(points).at(t)?,
            merchant: FacilityId::parse("rogue-stall").at(t)?,
            basis: None,
            card_proof: None,
        })];
        if let (true, Some((right_id, grant))) = (self.plan.strict, grant) {
            for x in &honest {
                bodies.push(TxBody::RightTransfer(RightTransfer {
                    account,
                    municipality: m,
                    to: self.nodes[*x].id,
                    points: Points::new(1_000_000).at(t)?,
                    right_id,
                    grant: grant.clone(),
                }));
            }
        }
        let mut txs = Vec::new();
        for body in bodies {
            rogue.seq += 1;
            let payload = TxPayload {
                node: rogue.id,
                seq: rogue.seq,
                prev_hash: rogue.prev,
                created_at: wall,
                body,
            };
            let tx = SignedTx::sign(&payload, &rogue.key);
            rogue.prev = tx.id();
            txs.push(tx);
        }
        let rogue_id = rogue.id;
        l.rogue_offers += honest.len() as u64;
        for x in honest {
            let before = self.honest_view(x, account)?;
            let wall = self.nodes[x].clock.wall(t);
            // The stall admits LAN peers from the hub's rosters only: its
            // LAN handler (the node's own) refuses the offer as from a peer
            // no roster names, and its core would refuse the batch as
            // signed by a node on no roster besides.
            let offer = LanRequest::Offer { txs: txs.clone() }.encode();
            match lan::answer_request(self.core_mut(x)?, &rogue_id, &offer, wall) {
                Err(LanRefusal::NotAdmitted(_)) => {}
                other => {
                    return fail(
                        t,
                        format!(
                            "liar: honest stall {x}'s LAN handler did not refuse a peer outside \
                             the roster: {other:?}"
                        ),
                    );
                }
            }
            match self.core_mut(x)?.accept_peer_txs(&txs, wall) {
                Err(PeerTxsError::NotOnRoster { signer }) if signer == rogue_id => {
                    if let Some(l) = self.liar.as_mut() {
                        l.rogue_refused += 1;
                    }
                }
                other => {
                    return fail(
                        t,
                        format!(
                            "liar: honest stall {x} did not refuse a LAN peer outside the roster \
                             as off-roster: {other:?}"
                        ),
                    );
                }
            }
            let after = self.honest_view(x, account)?;
            if before != after {
                return fail(
                    t,
                    format!(
                        "liar: honest stall {x} counted a LAN peer outside the roster: \
                         (pending, right, last seq) on holder {h} went {before:?} → {after:?}"
                    ),
                );
            }
        }
        Ok(())
    }

    /// What an honest node's decisions on `account` depend on that a LAN
    /// peer could change: pending spends, its right, its own chain.
    fn honest_view(
        &self,
        x: usize,
        account: mykey_sync_proto::AccountId,
    ) -> Result<(Points, Points, u64), Failure> {
        let t = self.now;
        let core = self.core(x)?;
        let (_, _, pending) = core.balance(account, self.municipality).at(t)?;
        let (right, _) = core.right(account, self.municipality).at(t)?;
        Ok((pending, right, core.sync_position().at(t)?.0))
    }
}

/// A proof the liar's own card made over the victim's binding: a genuine
/// card, the wrong one.
fn forge(binding: &RedeemBinding) -> anyhow::Result<CardSignature> {
    use sha2::Digest;
    let kit = cards::kit().map_err(anyhow::Error::msg)?;
    let hash: [u8; 32] = sha2::Sha256::digest(binding.signed_message()).into();
    let info = mykey_jpki::DigestInfo::sha256(&hash);
    let sig = kit
        .liar_card_key()
        .sign(rsa::Pkcs1v15Sign::new_unprefixed(), info.as_bytes())?;
    Ok(CardSignature::new(sig)?)
}
