//! The invariants of DESIGN §11, checked against the real cores:
//! conservation and bounded risk after every step that touches the hub, no
//! loss after every node restart and at the end, convergence after healing,
//! and authenticity probes (forged transactions and facts change nothing).

use crate::hub_host::HubCore;
use crate::world::{AtTime, Failure, World, fail};
use ed25519_dalek::{Signer, SigningKey};
use mykey_node::Lookup;
use mykey_sync_proto::CardStatus;
use mykey_sync_proto::fact::FactPayload;
use mykey_sync_proto::tx::TX_DOMAIN;
use mykey_sync_proto::wire::Facts;
use mykey_sync_proto::{
    FacilityId, FactBody, NodeId, Points, Redeem, Scope, SignedFact, SignedTx, TxBody, TxId,
    TxPayload, codec,
};

impl<H: HubCore> World<H> {
    /// Invariants 1 and 4 after a step that may have changed the hub.
    pub(crate) fn check_hub(&mut self) -> Result<(), Failure> {
        let t = self.now;
        if let Err(e) = self.hub.check_conservation().at(t)? {
            return fail(t, format!("invariant 1 (conservation) broken: {e}"));
        }
        let debt = self.hub.total_debt().at(t)?.get();
        if self.plan.strict && debt > 0 {
            return fail(
                t,
                format!("invariant 4: strict mode but the hub holds {debt} pt of debt"),
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
        for n in 0..self.nodes.len() {
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
                        Lookup::Found { .. } => Some(CardStatus::Active),
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
