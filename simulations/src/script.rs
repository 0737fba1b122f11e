//! Scripted events (link schedules and cuts, crashes and restarts, clock
//! jumps, operator actions, attacks, healing) and the periodic sample that
//! feeds the chart and, after healing, the convergence check.

use crate::hub_host::HubCore;
use crate::metrics::{Sample, quantile};
use crate::plan::Scripted;
use crate::world::{AtTime, Failure, Kind, World};
use mykey_sync_proto::Points;

impl<H: HubCore> World<H> {
    pub(crate) fn after_link_change(&mut self) {
        for n in 0..self.nodes.len() {
            if let Some(c) = self.nodes[n].conn
                && !self.net.can_connect(n)
            {
                let d = self.rng.range(2_000, 40_000);
                self.push(self.now + d, Kind::Detect(n, c));
            }
            if self.nodes[n].conn.is_none() && self.net.can_connect(n) {
                self.schedule_reconnect(n);
            }
        }
    }

    pub(crate) fn on_script(&mut self, s: Scripted) -> Result<bool, Failure> {
        let t = self.now;
        let hub_now = self.hub_clock.wall(t);
        match s {
            Scripted::Wan { node, up, down } => {
                let range = match node {
                    Some(n) => n..n + 1,
                    None => 0..self.nodes.len(),
                };
                for n in range {
                    self.net.wan[n].sched_up = up;
                    self.net.wan[n].sched_down = down;
                }
                self.after_link_change();
            }
            Scripted::Cut { node, up, down } => {
                if self.healed_at.is_none() {
                    self.net.wan[node].cut_up = up;
                    self.net.wan[node].cut_down = down;
                    self.after_link_change();
                }
            }
            Scripted::Lan { node, ok } => self.net.lan_ok[node] = ok,
            Scripted::HubDown(true) => {
                if self.healed_at.is_none() {
                    self.net.hub_up = false;
                    self.hub_sessions.clear();
                    self.hub.crash_restart().at(t)?;
                    self.after_link_change();
                    return Ok(true);
                }
            }
            Scripted::HubDown(false) => {
                if !self.net.hub_up {
                    self.hub_started();
                }
                self.net.hub_up = true;
                self.after_link_change();
            }
            Scripted::Crash(n) => {
                if self.healed_at.is_none() && self.nodes[n].is_up() {
                    if let Some(c) = self.nodes[n].conn {
                        self.hub_sessions.remove(&(n, c));
                    }
                    self.nodes[n].crash();
                }
            }
            Scripted::Restart(n) => self.restart(n)?,
            Scripted::Jump(n, d) => self.nodes[n].clock.jump(d),
            Scripted::Suspend(h) => {
                let card = self.holders[h].card.clone();
                self.hub.suspend(&card, hub_now).at(t)?;
                if !self.holders[h].suspended {
                    let n = self.nodes.len();
                    self.suspensions.push((h, t, vec![false; n]));
                }
                self.holders[h].suspended = true;
                return Ok(true);
            }
            Scripted::Reinstate(h) => {
                let card = self.holders[h].card.clone();
                self.hub.reinstate(&card, hub_now).at(t)?;
                self.holders[h].suspended = false;
                return Ok(true);
            }
            Scripted::Renew(h) => {
                let g = self.holders[h].old_cards.len() + 1;
                let card = crate::world::holder_card(h, g).at(t)?;
                let cert = crate::cards::kit().at(t)?.trusted_cert(h, g).at(t)?;
                let account = self.holders[h].account;
                self.hub.renew(account, &cert, hub_now).at(t)?;
                let old = std::mem::replace(&mut self.holders[h].card, card);
                self.holders[h].old_cards.push(old);
                self.holders[h].suspended = false;
                self.holders[h].pin_tries_left = 3;
                return Ok(true);
            }
            Scripted::Credit(h, pts) => {
                let a = self.holders[h].account;
                let p = Points::new(pts).at(t)?;
                let (m, prog) = (self.municipality, self.program.clone());
                self.hub.credit(a, m, &prog, p, hub_now).at(t)?;
                return Ok(true);
            }
            Scripted::ForgeTx => return self.probe_forged_tx().map(|_| true),
            Scripted::ForgeFact(n) => self.probe_forged_fact(n)?,
            Scripted::Escrow => self.grant_escrow()?,
            Scripted::Settle => return self.settle_now(),
            Scripted::Lie(lie) => return self.on_lie(lie),
            Scripted::Heal => {
                self.healed_at = Some(t);
                if !self.net.hub_up {
                    self.hub_started();
                }
                self.net.hub_up = true;
                for n in 0..self.nodes.len() {
                    let l = &mut self.net.wan[n];
                    (l.sched_up, l.sched_down, l.cut_up, l.cut_down) = (true, true, false, false);
                    self.net.lan_ok[n] = true;
                    self.restart(n)?;
                    self.nodes[n].backoff_ms = 1000;
                }
                self.after_link_change();
            }
        }
        Ok(false)
    }

    pub(crate) fn restart(&mut self, n: usize) -> Result<(), Failure> {
        if self.nodes[n].is_up() {
            return Ok(());
        }
        self.nodes[n].restart().at(self.now)?;
        self.check_no_loss_after_restart(n)?;
        self.schedule_reconnect(n);
        Ok(())
    }

    pub(crate) fn on_sample(&mut self) -> Result<(), Failure> {
        let t = self.now;
        let mut s = Sample {
            t,
            lag_p50_ms: quantile(&self.lag_window, 0.5),
            ..Default::default()
        };
        self.lag_window.clear();
        for h in 0..self.holders.len() {
            let a = self.holders[h].account;
            let (b, d) = self.hub.balance(a, self.municipality).at(t)?;
            s.hub_balances += b.get();
            s.hub_debt += d.get();
            let bound = self.holder_bound(h);
            if d.get() > bound {
                return Err(Failure {
                    at: t,
                    what: format!(
                        "invariant 4: holder {h} owes {d}, above the {bound} pt of offline limits at the nodes where they spent ({:?})",
                        self.spent_at[h]
                    ),
                });
            }
        }
        if self.plan.strict {
            let escrows = self.hub.escrows(self.municipality).at(t)?;
            s.hub_reserved = escrows.iter().map(|(_, _, p)| p.get()).sum();
        }
        for n in 0..self.nodes.len() {
            if let Some(core) = &self.nodes[n].core {
                let (last, receipted, _) = core.sync_position().at(t)?;
                s.pending += last - receipted;
            }
            s.nodes_linked += u64::from(self.net.can_connect(n));
        }
        self.metrics.series.push(s);
        if self.healed_at.is_some() && self.divergence()?.is_none() {
            self.converged_at = Some(t);
            let since = t - self.healed_at.unwrap_or(t);
            self.metrics.converge_ms.push(since);
        }
        let next = if self.healed_at.is_some() {
            (self.plan.sample_ms / 10).max(1_000)
        } else {
            self.plan.sample_ms
        };
        self.push(t + next, Kind::Sample);
        Ok(())
    }
}
