//! Strict mode (DESIGN §6) as scenario glue: the rights themselves live in
//! the cores.
//!
//! When [`crate::plan::Scripted::Escrow`] fires (the festival's stalls are
//! still online), the hub core splits each holder's balance among the LAN
//! group's stalls (`Hub::escrow_grant`: reserved points in the hub ledger,
//! a `SpendRight` fact to each stall). A stall learns its rights by syncing
//! and spends only within them (the node core declines beyond them). When a
//! visitor asks a stall for more than its right, the stall asks the peers
//! it reaches on the LAN: each gives part of its hub-granted right
//! (`Node::transfer_right`, a signed transaction in its own chain) and the
//! transfer travels over the simulated LAN into the asking stall's core
//! (`Node::accept_peer_txs`, as the node's `/mykey/lan/1` handler does),
//! which credits it once and acknowledges it in its own chain. A transfer
//! lost on the LAN reaches the stall later by gossip. After convergence
//! every stall's right must be covered by the hub's reservation for it,
//! and releasing the escrow must leave zero debt.

use crate::hub_host::HubCore;
use crate::world::{Acked, AtTime, Failure, World, fail};
use mykey_node::OpError;
use mykey_node::net::lan::{self, LanRefusal, LanRequest, LanResponse};
use mykey_sync_proto::{NodeId, Points, SignedTx};

impl<H: HubCore> World<H> {
    /// The hub grants the group's stalls rights to each holder's balance.
    pub(crate) fn grant_escrow(&mut self) -> Result<(), Failure> {
        if !self.plan.strict {
            return Ok(());
        }
        let t = self.now;
        let stalls: Vec<NodeId> = (0..self.nodes.len())
            .filter(|n| self.plan.nodes[*n].lan_group.is_some())
            .map(|n| self.nodes[n].id)
            .collect();
        if stalls.is_empty() {
            return Ok(());
        }
        let now = self.hub_clock.wall(t);
        self.metrics.escrow_reserved += self
            .hub
            .escrow_grant(self.municipality, &stalls, now)
            .at(t)?;
        Ok(())
    }

    /// Before a strict spend of `p` points of holder `h` at node `n`: if the
    /// node's right is short, the peers it reaches give part of theirs.
    pub(crate) fn gather_rights(&mut self, n: usize, h: usize, p: u64) -> Result<(), Failure> {
        let t = self.now;
        let (account, m) = (self.holders[h].account, self.municipality);
        let have = self.core(n)?.right(account, m).at(t)?.0.get();
        if have >= p {
            return Ok(());
        }
        let mut need = p - have;
        let to = self.nodes[n].id;
        // A lying stall gives no one anything.
        let liar = self.liar.as_ref().map(|l| l.node);
        let peers: Vec<usize> = (0..self.nodes.len())
            .filter(|x| {
                *x != n && Some(*x) != liar && self.net.lan_reach(n, *x) && self.nodes[*x].is_up()
            })
            .collect();
        for peer in peers {
            if need == 0 {
                break;
            }
            let give = self.core(peer)?.giveable_right(account, m).at(t)?.get();
            let take = give.min(need);
            if take == 0 {
                continue;
            }
            let wall = self.nodes[peer].clock.wall(t);
            let pts = Points::new(take).at(t)?;
            let done = match self.core_mut(peer)?.transfer_right(account, to, pts, wall) {
                Ok(d) => d,
                Err(OpError::Store(e)) => return fail(t, format!("node {peer} store failed: {e}")),
                // The peer cannot give now (its certificate lapsed on a
                // clock jump, …): ask the next one.
                Err(_) => continue,
            };
            self.metrics.escrow_transfers += 1;
            self.note_signed(peer, done.seq, done.tx)?;
            let tx: Vec<SignedTx> = self.core(peer)?.outbox_from(done.seq, 1).at(t)?;
            // The peer offers it on the LAN, as gossip would.
            let offer = LanRequest::Offer { txs: tx }.encode();
            if self.net.send_lan(peer, n, offer.len(), t).is_empty() {
                // Lost on the LAN: the right left the peer and reaches this
                // stall by gossip later; the visitor does not wait for it.
                continue;
            }
            self.take_lan_request(n, peer, &offer)?;
            need -= take;
        }
        Ok(())
    }

    /// Node `n` takes the bytes of a `/mykey/lan/1` request from its LAN
    /// peer `from` with the node's own handler
    /// (`mykey_node::net::lan::answer_request`, as the run loop does); a
    /// right given to it is acknowledged in its own chain, which its session
    /// then pushes. Returns the answer, `None` when the node is down or has
    /// not admitted the peer yet (it has not synced the roster since it was
    /// issued: the sender's gossip offers again).
    pub(crate) fn take_lan_request(
        &mut self,
        n: usize,
        from: usize,
        request: &[u8],
    ) -> Result<Option<LanResponse>, Failure> {
        let t = self.now;
        if !self.nodes[n].is_up() {
            return Ok(None);
        }
        let wall = self.nodes[n].clock.wall(t);
        let peer = self.nodes[from].id;
        let before = self.core(n)?.sync_position().at(t)?.0;
        let answer = match lan::answer_request(self.core_mut(n)?, &peer, request, wall) {
            Ok(a) => a,
            Err(LanRefusal::NotAdmitted(_)) => return Ok(None),
            // Honest stalls offer only what verifies and is their own.
            Err(LanRefusal::Bad(why)) => {
                return fail(
                    t,
                    format!("node {n} refused LAN peer {from}'s request: {why}"),
                );
            }
        };
        let after = self.core(n)?.sync_position().at(t)?.0;
        if after > before {
            // The acknowledgements it signed, in seq order from `before + 1`.
            let signed = self
                .core(n)?
                .outbox_from(before + 1, (after - before) as usize);
            for (seq, tx) in (before + 1..).zip(signed.at(t)?) {
                self.note_signed(n, seq, tx.id())?;
            }
            let mono = self.nodes[n].clock.mono(t);
            self.nodes[n].session.note_local_seq(after, mono);
            self.pump(n)?;
        }
        Ok(Some(answer))
    }

    /// A transaction node `n` committed (the hub must process it once).
    fn note_signed(
        &mut self,
        n: usize,
        seq: u64,
        tx: mykey_sync_proto::TxId,
    ) -> Result<(), Failure> {
        self.acked.insert(
            tx,
            Acked {
                node: n,
                seq,
                signed_at: self.now,
            },
        );
        if n < self.nodes.len() && self.nodes[n].is_up() && self.nodes[n].conn.is_some() {
            let mono = self.nodes[n].clock.mono(self.now);
            self.nodes[n].session.note_local_seq(seq, mono);
            self.pump(n)?;
        }
        Ok(())
    }

    /// Why a strict spend found no right: the group as a whole has too
    /// little, or the rest sits on stalls this one cannot reach.
    pub(crate) fn no_right_reason(&self, h: usize, p: u64) -> Result<&'static str, Failure> {
        let t = self.now;
        let mut group = 0;
        for node in &self.nodes {
            if let Some(core) = &node.core {
                group += core
                    .right(self.holders[h].account, self.municipality)
                    .at(t)?
                    .0
                    .get();
            }
        }
        Ok(if group >= p {
            "strict: rights on unreachable stalls"
        } else {
            "strict: group rights exhausted"
        })
    }

    /// After convergence: no stall holds a right the hub has not reserved
    /// for it (no overdraft is possible), then the operator ends the escrow
    /// and every reserved point is back in a wallet, with no debt.
    pub(crate) fn check_and_release_escrow(&mut self) -> Result<(), Failure> {
        if !self.plan.strict {
            return Ok(());
        }
        let t = self.now;
        let m = self.municipality;
        let reserved = self.hub.escrows(m).at(t)?;
        let liar = self.liar.as_ref().map(|l| l.node);
        for (n, node) in self.nodes.iter().enumerate() {
            if Some(n) == liar {
                // Its rights table holds what its owner wrote.
                continue;
            }
            let Some(core) = &node.core else { continue };
            for h in &self.holders {
                let right = core.right(h.account, m).at(t)?.0.get();
                let held: u64 = reserved
                    .iter()
                    .filter(|(a, x, _)| *a == h.account && *x == node.id)
                    .map(|(_, _, p)| p.get())
                    .sum();
                if right > held {
                    return fail(
                        t,
                        format!(
                            "strict: node {n} holds a right of {right} pt on {} but the hub reserved {held} pt for it",
                            h.account
                        ),
                    );
                }
            }
        }
        let now = self.hub_clock.wall(t);
        self.metrics.escrow_released += self.hub.escrow_release(m, now).at(t)?;
        self.check_hub()?;
        let left = self.hub.escrows(m).at(t)?;
        if !left.is_empty() {
            return fail(t, format!("strict: escrow left after release: {left:?}"));
        }
        Ok(())
    }
}
