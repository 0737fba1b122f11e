//! The invariants of DESIGN §11, checked against the real cores:
//! conservation and bounded risk after every step that touches the hub, no
//! loss after every node restart and at the end, convergence after healing,
//! and authenticity probes (forged transactions and facts change nothing);
//! and, with a lying node, what the hub pays (`check_payouts`).

use crate::hub_host::HubCore;
use crate::world::{AtTime, Failure, World, fail};
use ed25519_dalek::{Signer, SigningKey};
use mykey_node::Lookup;
use mykey_sync_proto::CardStatus;
use mykey_sync_proto::fact::FactPayload;
use mykey_sync_proto::tx::TX_DOMAIN;
use mykey_sync_proto::wire::Facts;
use mykey_sync_proto::{
    CardKey, FacilityId, FactBody, NodeId, Points, Redeem, Scope, SignedFact, SignedTx, TxBody,
    TxId, TxPayload, codec,
};
use std::collections::BTreeMap;

impl<H: HubCore> World<H> {
    /// Invariants 1 and 4 after a step that may have changed the hub.
    pub(crate) fn check_hub(&mut self) -> Result<(), Failure> {
        let t = self.now;
        if let Err(e) = self.hub.check_conservation().at(t)? {
            return fail(t, format!("invariant 1 (conservation) broken: {e}"));
        }
        self.check_payouts()?;
        let debt = self.hub.total_debt().at(t)?.get();
        // In strict mode only a liar's spends beyond its right can be debt.
        let liar_debt = self.liar_payouts().1;
        if self.plan.strict && debt > liar_debt {
            return fail(
                t,
                format!(
                    "invariant 4: strict mode but the hub holds {debt} pt of debt ({liar_debt} pt from the lying node's spends)"
                ),
            );
        }
        let bound: u64 = self
            .limits
            .iter()
            .map(|l| l.node_exposure_limit.get())
            .sum();
        if debt > bound {
            return fail(
                t,
                format!(
                    "invariant 4: outstanding debt {debt} pt exceeds the sum of node exposure limits {bound} pt"
                ),
            );
        }
        Ok(())
    }

    /// Follows the hub's ledger (new transfers since the last call) and
    /// adds each transfer to its origin transaction's payout: what the
    /// merchant payables received from it, and the debt-funded part.
    fn follow_ledger(&mut self) -> Result<(), Failure> {
        let t = self.now;
        loop {
            let batch = self.hub.transfers_after(self.ledger_seen, 1000).at(t)?;
            let n = batch.len();
            for tr in batch {
                self.ledger_seen = tr.pos;
                if tr.expiry {
                    self.metrics.expired_points += tr.amount;
                }
                let Some(origin) = tr.origin else { continue };
                let paid = self.paid.entry(origin).or_default();
                let sign: i64 = match (&tr.to_payable, &tr.from_payable) {
                    (Some(_), None) => 1,
                    (None, Some(_)) => -1,
                    _ => 0,
                };
                paid.payable += sign * tr.amount as i64;
                if tr.on_debt {
                    paid.on_debt += sign * tr.amount as i64;
                }
            }
            if n < 1000 {
                return Ok(());
            }
        }
    }

    /// The lying-node invariant, after every step that touches the hub:
    /// - the hub's payout to the liar's facility for spends its holders'
    ///   balances did not cover (`RedeemOnDebt`) stays within the bounds the
    ///   hub enrolled: its node exposure limit in total (the run is one
    ///   settlement period) and its per-card offline limit per card;
    /// - nothing its key signed above the enrolled PIN threshold without a
    ///   card proof that verifies (with the card's key, for that very
    ///   transaction) is paid;
    /// - honest outcomes do not change: every honest redeem the hub accepted
    ///   is paid to its facility in full (none is quarantined), and in
    ///   strict mode none of it is debt.
    pub(crate) fn check_payouts(&mut self) -> Result<(), Failure> {
        let t = self.now;
        self.follow_ledger()?;
        for tx in std::mem::take(&mut self.honest_to_check) {
            let Some((n, want)) = self.honest_redeems.get(&tx).copied() else {
                continue;
            };
            let got = self.paid.get(&tx).copied().unwrap_or_default();
            if got.payable != want as i64 {
                return fail(
                    t,
                    format!(
                        "honest outcome changed: node {n}'s redeem {} of {want} pt was accepted but its facility is paid {} pt (quarantined or cut{})",
                        tx.short(),
                        got.payable,
                        if self.liar.is_some() {
                            " while a liar is present"
                        } else {
                            ""
                        }
                    ),
                );
            }
            self.metrics.liar.honest_paid_in_full += 1;
            if self.plan.strict && got.on_debt != 0 {
                return fail(
                    t,
                    format!(
                        "invariant 4: strict mode, yet node {n}'s redeem {} is paid {} pt from debt",
                        tx.short(),
                        got.on_debt
                    ),
                );
            }
        }
        // No honest node's transaction is held in the hub's quarantine.
        let liar_id = self.liar.as_ref().map(|l| self.nodes[l.node].id);
        let (mut held_items, mut held_points) = (0, 0);
        for (tx, node, points, rule) in self.hub.quarantined().at(t)? {
            if Some(node) != liar_id {
                let who = self.nodes.iter().position(|x| x.id == node);
                return fail(
                    t,
                    format!(
                        "honest outcome changed: the hub quarantined {points} of node {who:?}'s transaction {} (bound: {rule}){}",
                        tx.short(),
                        if liar_id.is_some() {
                            " while a liar is present"
                        } else {
                            ""
                        }
                    ),
                );
            }
            held_items += 1;
            held_points += points.get();
        }
        self.metrics.liar.quarantined_items = held_items;
        self.metrics.liar.quarantined = held_points;
        let Some(liar) = &self.liar else {
            return Ok(());
        };
        let n = liar.node;
        let limits = &self.limits[n];
        let facility = &self.nodes[n].facility;
        let mut at_risk = 0i64;
        let mut per_card: BTreeMap<&CardKey, i64> = BTreeMap::new();
        for (id, x) in &liar.signed {
            let paid = self.paid.get(id).copied().unwrap_or_default();
            at_risk += paid.on_debt;
            *per_card.entry(&x.card).or_default() += paid.on_debt;
            if x.above_threshold && !x.proof_verifies && paid.payable > 0 {
                return fail(
                    t,
                    format!(
                        "liar: the hub pays {facility} {} pt for {} ({} pt, above the PIN threshold of {}) whose card proof does not verify: tx {}",
                        paid.payable,
                        x.how,
                        x.points,
                        limits.pin_threshold,
                        id.short()
                    ),
                );
            }
        }
        let exposure = limits.node_exposure_limit.get() as i64;
        if at_risk > exposure {
            return fail(
                t,
                format!(
                    "liar: the hub pays {facility} {at_risk} pt of debt-funded spends, above its enrolled node exposure limit of {exposure} pt (settlement period)"
                ),
            );
        }
        let card_limit = limits.per_card_offline_limit.get() as i64;
        if let Some((card, over)) = per_card.iter().find(|(_, p)| **p > card_limit) {
            return fail(
                t,
                format!(
                    "liar: the hub pays {facility} {over} pt of debt-funded spends on card {}, above its enrolled per-card offline limit of {card_limit} pt",
                    card.short()
                ),
            );
        }
        Ok(())
    }

    /// The lying node's payouts so far: (paid, debt-funded, worst card's
    /// debt-funded, paid for unproven spends above the threshold).
    pub(crate) fn liar_payouts(&self) -> (u64, u64, u64, u64) {
        let Some(liar) = &self.liar else {
            return (0, 0, 0, 0);
        };
        let (mut paid, mut at_risk, mut unproven) = (0i64, 0i64, 0i64);
        let mut per_card: BTreeMap<&CardKey, i64> = BTreeMap::new();
        for (id, x) in &liar.signed {
            let p = self.paid.get(id).copied().unwrap_or_default();
            paid += p.payable;
            at_risk += p.on_debt;
            *per_card.entry(&x.card).or_default() += p.on_debt;
            if x.above_threshold && !x.proof_verifies {
                unproven += p.payable;
            }
        }
        let worst = per_card.values().copied().max().unwrap_or(0);
        let u = |v: i64| v.max(0) as u64;
        (u(paid), u(at_risk), u(worst), u(unproven))
    }

    /// The offline-limit bound of one holder: the per-card limits of the
    /// nodes where they spent.
    pub(crate) fn holder_bound(&self, h: usize) -> u64 {
        self.spent_at[h]
            .iter()
            .map(|n| self.limits[*n].per_card_offline_limit.get())
            .sum()
    }

    /// Invariant 4 per holder (outstanding debt), at samples and the end.
    pub(crate) fn check_holder_debts(&mut self) -> Result<(), Failure> {
        let t = self.now;
        for h in 0..self.holders.len() {
            let (_, debt) = self
                .hub
                .balance(self.holders[h].account, self.municipality)
                .at(t)?;
            let bound = self.holder_bound(h);
            if debt.get() > bound {
                return fail(
                    t,
                    format!(
                        "invariant 4: holder {h} owes {} pt, above the {bound} pt of offline limits at the nodes where they spent ({:?})",
                        debt.get(),
                        self.spent_at[h]
                    ),
                );
            }
        }
        Ok(())
    }

    /// Invariant 2 at a restart: every transaction acknowledged at the
    /// counter is still in the node's store.
    pub(crate) fn check_no_loss_after_restart(&mut self, n: usize) -> Result<(), Failure> {
        let t = self.now;
        let mine: Vec<(u64, TxId)> = self
            .acked
            .iter()
            .filter(|(_, a)| a.node == n)
            .map(|(id, a)| (a.seq, *id))
            .collect();
        let core = self.core(n)?;
        for (seq, id) in mine {
            let got = core.outbox_from(seq, 1).at(t)?;
            if got.first().map(|tx| tx.id()) != Some(id) {
                return fail(
                    t,
                    format!("invariant 2: node {n} lost acknowledged seq {seq} across a crash"),
                );
            }
        }
        Ok(())
    }

    /// Invariant 3: `None` when every node's replica equals the hub's view
    /// and every node's outbox is fully receipted; otherwise what differs.
    pub(crate) fn divergence(&mut self) -> Result<Option<String>, Failure> {
        let t = self.now;
        let liar = self.liar.as_ref().map(|l| l.node);
        for n in 0..self.nodes.len() {
            if Some(n) == liar {
                // Its store says what its owner wrote; the hub is what counts.
                continue;
            }
            let Some(core) = &self.nodes[n].core else {
                return Ok(Some(format!("node {n} is down")));
            };
            let (last, receipted, _) = core.sync_position().at(t)?;
            if receipted < last {
                return Ok(Some(format!(
                    "node {n} has receipts through seq {receipted} of {last}"
                )));
            }
        }
        // Every shard replica equals the hub's document (same heads, same epoch).
        for n in 0..self.nodes.len() {
            if Some(n) == liar {
                continue;
            }
            let id = self.nodes[n].id;
            let hub_view = self.hub.shard_heads(&id).at(t)?;
            let Some(core) = self.nodes[n].core.as_mut() else {
                continue;
            };
            let held: std::collections::HashMap<_, _> =
                core.held_shards().at(t)?.into_iter().collect();
            for (head, hub_heads) in hub_view {
                if hub_heads.is_empty() {
                    continue;
                }
                let epoch = held.get(&head.shard).map(|h| h.epoch);
                if epoch != Some(head.epoch) {
                    return Ok(Some(format!(
                        "node {n} holds shard {} at epoch {epoch:?}; hub: {}",
                        head.shard, head.epoch
                    )));
                }
                let node_heads = core.shard_heads(&head.shard, head.epoch).at(t)?;
                if node_heads != hub_heads {
                    let held_seq = held.get(&head.shard).map(|h| h.last_seq);
                    return Ok(Some(format!(
                        "node {n}'s shard {} differs from the hub's ({} heads, synced through \
                         hub_seq {held_seq:?}; hub: {} heads, last write {})",
                        head.shard,
                        node_heads.len(),
                        hub_heads.len(),
                        head.last_seq
                    )));
                }
            }
        }
        for h in 0..self.holders.len() {
            let a = self.holders[h].account;
            let (hb, hd) = self.hub.balance(a, self.municipality).at(t)?;
            let mut cards = self.holders[h].old_cards.clone();
            cards.push(self.holders[h].card.clone());
            let mut hub_status = Vec::new();
            for c in &cards {
                hub_status.push(self.hub.card_status(c).at(t)?);
            }
            for n in 0..self.nodes.len() {
                if Some(n) == liar {
                    continue;
                }
                let Some(core) = &self.nodes[n].core else {
                    continue;
                };
                let (b, d, pending) = core.balance(a, self.municipality).at(t)?;
                if (b, d, pending) != (hb, hd, Points::ZERO) {
                    return Ok(Some(format!(
                        "node {n} holds holder {h} at balance {b}, debt {d}, pending {pending}; hub: {hb}, {hd}"
                    )));
                }
                // Facility card numbers: this node's facility's, as the hub holds them.
                if let Lookup::Found { numbers, .. } = core.lookup(&self.holders[h].card).at(t)? {
                    let facility = self.nodes[n].facility.clone();
                    let hub_numbers = self.hub.facility_numbers(&facility, a).at(t)?;
                    let mine: Vec<_> = numbers.iter().map(|r| r.number.clone()).collect();
                    if mine != hub_numbers || numbers.iter().any(|r| !r.confirmed) {
                        return Ok(Some(format!(
                            "node {n} holds {} card numbers {numbers:?} of holder {h}; hub: {hub_numbers:?}",
                            facility
                        )));
                    }
                }
                for (c, hs) in cards.iter().zip(&hub_status) {
                    let l = core.lookup(c).at(t)?;
                    let seen = match l {
                        Lookup::Found { .. } | Lookup::Visitor { .. } => Some(CardStatus::Active),
                        Lookup::Suspended => Some(CardStatus::Suspended),
                        Lookup::Superseded => Some(CardStatus::Superseded),
                        Lookup::NotRegistered => None,
                    };
                    if seen != *hs {
                        return Ok(Some(format!(
                            "node {n} sees a card of holder {h} as {seen:?}; hub: {hs:?}"
                        )));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Invariant 2 at the end, and 4 in total.
    pub(crate) fn final_checks(&mut self) -> Result<(), Failure> {
        let t = self.now;
        let mut acked: Vec<(TxId, usize, u64)> = self
            .acked
            .iter()
            .map(|(id, a)| (*id, a.node, a.seq))
            .collect();
        acked.sort_by_key(|x| (x.1, x.2));
        for (id, n, seq) in acked {
            let node = self.nodes[n].id;
            match self.hub.processed(&node, seq).at(t)? {
                Some(got) if got == id => {}
                other => {
                    return fail(
                        t,
                        format!(
                            "invariant 2: node {n} seq {seq} acknowledged at the counter but the hub holds {other:?}"
                        ),
                    );
                }
            }
            let apps = self.hub.applications(&id).at(t)?;
            if apps > 1 {
                return fail(
                    t,
                    format!("invariant 2: node {n} seq {seq} applied {apps} times"),
                );
            }
        }
        self.check_holder_debts()?;
        self.check_payouts()?;
        self.check_economy_seen()?;
        self.liar_final()?;
        self.check_and_release_escrow()?;
        let bound: u64 = (0..self.holders.len()).map(|h| self.holder_bound(h)).sum();
        self.metrics.debt_bound = bound;
        if self.plan.strict && self.metrics.debt_created > 0 {
            return fail(
                t,
                format!(
                    "invariant 4: strict mode created {} pt of debt",
                    self.metrics.debt_created
                ),
            );
        }
        Ok(())
    }

    /// At the end: every transaction of the liar's key is applied at most
    /// once (replayed bytes changed nothing), and what it tried and what the
    /// hub pays its facility go into the metrics.
    fn liar_final(&mut self) -> Result<(), Failure> {
        let t = self.now;
        let Some(liar) = &self.liar else {
            return Ok(());
        };
        let ids: Vec<TxId> = liar.signed.keys().copied().collect();
        for id in &ids {
            let apps = self.hub.applications(id).at(t)?;
            if apps > 1 {
                return fail(
                    t,
                    format!(
                        "liar: transaction {} applied {apps} times (replayed bytes paid again)",
                        id.short()
                    ),
                );
            }
        }
        let (paid, at_risk, worst, unproven) = self.liar_payouts();
        let Some(liar) = &self.liar else {
            return Ok(());
        };
        let limits = &self.limits[liar.node];
        let m = &mut self.metrics.liar;
        m.runs = 1;
        m.lies = liar.tried.clone();
        m.points_asked = liar.points_asked;
        m.signed = liar.signed.len() as u64;
        m.unproven_signed = liar
            .signed
            .values()
            .filter(|x| x.above_threshold && !x.proof_verifies)
            .count() as u64;
        m.paid = paid;
        m.paid_at_risk = at_risk;
        m.worst_card_at_risk = worst;
        m.unproven_paid = unproven;
        m.exposure_bound = limits.node_exposure_limit.get();
        m.card_bound = limits.per_card_offline_limit.get();
        m.rogue_offers = liar.rogue_offers;
        m.rogue_refused = liar.rogue_refused;
        Ok(())
    }

    /// Invariant 5: transactions from an unknown key, and a transaction
    /// naming an enrolled node but signed by another key, change nothing.
    pub(crate) fn probe_forged_tx(&mut self) -> Result<(), Failure> {
        let t = self.now;
        let rogue = SigningKey::from_bytes(&self.rng.bytes32());
        let rogue_id = NodeId::from_bytes(rogue.verifying_key().to_bytes()).at(t)?;
        let h = self.rng.index(self.holders.len());
        let holder = self.holders[h].clone();
        let victim = self.rng.index(self.nodes.len());
        let body = TxBody::Redeem(Redeem {
            card: holder.card.clone(),
            account: holder.account,
            municipality: self.municipality,
            points: Points::new(1000).at(t)?,
            merchant: FacilityId::parse("rogue-shop").at(t)?,
            basis: None,
            card_proof: None,
        });
        let own = SignedTx::sign(
            &TxPayload {
                node: rogue_id,
                seq: 1,
                prev_hash: TxId::GENESIS,
                created_at: self.hub_clock.wall(t),
                body: body.clone(),
            },
            &rogue,
        );
        let hub_seq = self.hub.processed_seq(&self.nodes[victim].id).at(t)?;
        let payload = codec::encode(&TxPayload {
            node: self.nodes[victim].id,
            seq: hub_seq + 1,
            prev_hash: TxId::GENESIS,
            created_at: self.hub_clock.wall(t),
            body,
        });
        let mut input = TX_DOMAIN.to_vec();
        input.extend_from_slice(&payload);
        let impostor = SignedTx::from_raw_parts(payload, rogue.sign(&input).to_bytes());
        let before = self.hub.balance(holder.account, self.municipality).at(t)?;
        let carrier = self.nodes[victim].id;
        let now = self.hub_clock.wall(t);
        let receipts = self.hub.ingest(&carrier, vec![own, impostor], now);
        let after = self.hub.balance(holder.account, self.municipality).at(t)?;
        let victim_seq = self.hub.processed_seq(&self.nodes[victim].id).at(t)?;
        if before != after || victim_seq != hub_seq {
            return fail(
                t,
                format!(
                    "invariant 5: forged transactions changed the hub (balance {before:?} → {after:?}, victim chain {hub_seq} → {victim_seq}); receipts {receipts:?}"
                ),
            );
        }
        Ok(())
    }

    /// Invariant 5 on a node: a fact not signed by the hub changes nothing.
    pub(crate) fn probe_forged_fact(&mut self, n: usize) -> Result<(), Failure> {
        let t = self.now;
        if !self.nodes[n].is_up() {
            return Ok(());
        }
        let rogue = SigningKey::from_bytes(&self.rng.bytes32());
        let h = self.rng.index(self.holders.len());
        let a = self.holders[h].account;
        let f = SignedFact::sign(
            &FactPayload {
                hub_seq: 1_000_000_000,
                issued_at: self.hub_clock.wall(t),
                scope: Scope::Municipality(self.municipality),
                body: FactBody::ConfirmedBalance {
                    account: a,
                    municipality: self.municipality,
                    balance: Points::new(9_999_999).at(t)?,
                    debt: Points::ZERO,
                    ledger_pos: u64::MAX / 2,
                },
            },
            &rogue,
        );
        let m = self.municipality;
        let core = self.core_mut(n)?;
        let before = (core.balance(a, m).at(t)?, core.sync_position().at(t)?);
        let r = core.apply_facts(&Facts {
            facts: vec![f],
            cursor: 1_000_000_000,
            more: false,
        });
        let after = (core.balance(a, m).at(t)?, core.sync_position().at(t)?);
        if r.is_ok() || before != after {
            return fail(
                t,
                format!("invariant 5: node {n} accepted a fact signed by an unknown key"),
            );
        }
        Ok(())
    }
}
