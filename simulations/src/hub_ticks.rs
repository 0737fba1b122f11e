//! The hub's timed jobs on simulated time: the schedule and the call the
//! serving loop makes (`mykey_hub::ticks::TickSchedule`, `Hub::run_ticks`),
//! so each minute the live links are noted and shards that outgrew their
//! target start a new epoch, and the economy step releases held exchanges
//! and expires lots. They run only while the hub process is up, and a
//! restarted process starts its schedule afresh, as `serve` does.
//!
//! With an [`crate::plan::EconomyPlan`] the run must see them find work: an
//! expiry, an epoch split and a settlement run's closed period
//! (`check_economy_seen`), with conservation and the payout checks holding
//! after each step.

use crate::hub_host::HubCore;
use crate::world::{AtTime, Failure, Kind, World, fail};
use mykey_hub::ticks::TickSchedule;
use mykey_sync_proto::NodeId;

impl<H: HubCore> World<H> {
    /// The hub process (re)started at the current time: its timed jobs
    /// start their schedule afresh.
    pub(crate) fn hub_started(&mut self) {
        self.ticks = TickSchedule::new(self.now);
    }

    /// One look at the hub's clock: runs what is due and schedules the next
    /// look. True when the hub's state may have changed.
    pub(crate) fn on_hub_tick(&mut self) -> Result<bool, Failure> {
        let t = self.now;
        if !self.net.hub_up {
            self.push(t + mykey_hub::ticks::MINUTE_MS, Kind::HubTick);
            return Ok(false);
        }
        let due = self.ticks.due(t);
        let mut touched = false;
        if due.any() {
            let live: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|n| n.is_up() && n.conn.is_some())
                .map(|n| n.id)
                .collect();
            let now = self.hub_clock.wall(t);
            let report = self.hub.run_ticks(due, &live, now);
            if let Some(e) = report.failed.first() {
                return fail(t, format!("a timed job of the hub failed: {e}"));
            }
            self.ticks.economy_more(report.more);
            self.metrics.epochs_split += report.epochs.len() as u64;
            touched = due.economy || !report.epochs.is_empty();
        }
        let next = self.ticks.next_at(t);
        self.push(next.max(t + 1), Kind::HubTick);
        Ok(touched)
    }

    /// The operator's settlement run on demand.
    pub(crate) fn settle_now(&mut self) -> Result<bool, Failure> {
        let t = self.now;
        if !self.net.hub_up {
            return Ok(false);
        }
        let now = self.hub_clock.wall(t);
        let closed = self.hub.settle_now(self.municipality, now).at(t)?;
        self.metrics.periods_closed += closed as u64;
        Ok(closed > 0)
    }

    /// With an economy plan: the run saw an expiry, an epoch split and a
    /// closed settlement period.
    pub(crate) fn check_economy_seen(&self) -> Result<(), Failure> {
        if self.plan.economy.is_none() {
            return Ok(());
        }
        let m = &self.metrics;
        let mut missing = vec![];
        if m.expired_points == 0 {
            missing.push("no lot expired");
        }
        if m.epochs_split == 0 {
            missing.push("no shard epoch split");
        }
        if m.periods_closed == 0 {
            missing.push("no settlement period closed");
        }
        if missing.is_empty() {
            return Ok(());
        }
        fail(
            self.now,
            format!(
                "the hub's timed jobs and settlement found no work: {}",
                missing.join(", ")
            ),
        )
    }
}
