//! Strict mode (DESIGN §6), built in the simulation around the node core's
//! own decision: escrow / bounded-counter rights.
//!
//! When [`crate::plan::Scripted::Escrow`] fires (the festival's stalls are
//! still online), the hub's share of each holder's confirmed balance is
//! split among the LAN group's stalls as *rights*; the sum of rights never
//! exceeds the balance the hub reserved. A stall spends only within its own
//! rights (checked before the core's bounded-risk rules, which still apply);
//! when short, it asks LAN peers it can reach for theirs (a bounded-counter
//! transfer). Rights are only ever consumed or moved, never created offline,
//! so no partition can produce an overdraft. The cores do not yet hold
//! rights themselves: this module keeps them, which stands for a durable
//! escrow table in the node store and an escrow fact from the hub.

use crate::hub_host::HubCore;
use crate::world::{AtTime, Failure, World};
use std::collections::HashMap;

/// Rights per (node, holder), in points.
#[derive(Debug, Default)]
pub struct Escrow {
    rights: HashMap<(usize, usize), u64>,
    /// Holders whose rights were granted.
    pub granted: usize,
}

/// Bytes of one rights-transfer exchange on the LAN (request and answer).
const TRANSFER_BYTES: u64 = 160;

impl<H: HubCore> World<H> {
    /// The hub grants the group's stalls rights to each holder's balance.
    pub(crate) fn grant_escrow(&mut self) -> Result<(), Failure> {
        if !self.plan.strict {
            return Ok(());
        }
        let t = self.now;
        let stalls: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.plan.nodes[*n].lan_group.is_some())
            .collect();
        if stalls.is_empty() {
            return Ok(());
        }
        let mut e = Escrow::default();
        for h in 0..self.holders.len() {
            let (b, d) = self
                .hub
                .balance(self.holders[h].account, self.municipality)
                .at(t)?;
            let spendable = b.get().saturating_sub(d.get());
            let k = stalls.len() as u64;
            let start = self.rng.index(stalls.len());
            for (i, s) in stalls.iter().enumerate() {
                // Even split; the remainder goes to one stall chosen by seed.
                let mut share = spendable / k;
                if i == start {
                    share += spendable % k;
                }
                e.rights.insert((*s, h), share);
            }
            e.granted += 1;
        }
        self.escrow = Some(e);
        Ok(())
    }

    /// Whether node `n` holds (or can gather from reachable LAN peers)
    /// rights for `p` points of holder `h`.
    pub(crate) fn escrow_allows(&mut self, n: usize, h: usize, p: u64) -> bool {
        let Some(e) = self.escrow.as_mut() else {
            return true;
        };
        let mine = e.rights.get(&(n, h)).copied().unwrap_or(0);
        if mine >= p {
            return true;
        }
        let mut need = p - mine;
        let peers: Vec<usize> = (0..self.nodes.len())
            .filter(|m| self.net.lan_reach(n, *m) && self.nodes[*m].is_up())
            .collect();
        let mut moved = 0;
        for m in peers {
            if need == 0 {
                break;
            }
            let have = e.rights.get(&(m, h)).copied().unwrap_or(0);
            let take = have.min(need);
            if take > 0 {
                e.rights.insert((m, h), have - take);
                *e.rights.entry((n, h)).or_default() += take;
                need -= take;
                moved += 1;
            }
        }
        self.metrics.escrow_transfers += moved;
        self.metrics.lan_bytes += moved * TRANSFER_BYTES;
        if need > 0 {
            // Why: the group as a whole has too little, or the rest sits on
            // stalls this one cannot reach (LAN cut, stall down).
            let group: u64 = (0..self.nodes.len())
                .map(|m| e.rights.get(&(m, h)).copied().unwrap_or(0))
                .sum();
            let why = if group >= p {
                "strict: rights on unreachable stalls"
            } else {
                "strict: group rights exhausted"
            };
            *self.metrics.declines.entry(why.into()).or_default() += 1;
        }
        need == 0
    }

    /// A spend that the core accepted consumes rights.
    pub(crate) fn escrow_consume(&mut self, n: usize, h: usize, p: u64) {
        if let Some(e) = self.escrow.as_mut() {
            let r = e.rights.entry((n, h)).or_default();
            assert!(*r >= p, "spend beyond escrow rights");
            *r -= p;
        }
    }
}
