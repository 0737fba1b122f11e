//! The hub's timed jobs: once a minute the live links are confirmed to the
//! status model, the status history samples a slot that ended (every five
//! minutes, `status::history`), and shards that outgrew their target get a new epoch; the
//! economy's step (held exchanges released, expired lots moved to expiry
//! income, expiry notices) runs each minute and again a second later while
//! it has more due, in small batches so the writer is never held long.
//!
//! Several hub processes may serve one database: the live links are each
//! process's own and confirmed by each, but the shared jobs (history,
//! shard sizes, the economy step) run only in the process holding the
//! `ticks` lease ([`crate::store::TickLease`]); another takes it over once it expires.
//!
//! One schedule ([`TickSchedule`]) and one call ([`Hub::run_ticks`]) serve
//! both the serving loop (`net::serve`, on its monotonic clock and the wall
//! clock) and the simulation (`mykey-simulations`, on simulated time), so
//! seeds exercise expiry and epoch splits through the code the binary runs.

use crate::hub::Hub;
use crate::shards::EpochStarted;
use mykey_sync_proto::{NodeId, UnixMillis};

/// How often the minute's jobs run, in milliseconds.
pub const MINUTE_MS: u64 = 60_000;
/// How soon the economy step runs again while it has more due (the serving
/// loop's sweep interval), in milliseconds.
pub const AGAIN_MS: u64 = 1_000;
/// Batches of each kind one economy step handles at most.
pub const ECONOMY_BATCHES: usize = 1;

/// What is due at one look at the clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// The minute's jobs: live links, shard sizes (and the economy step).
    pub minute: bool,
    /// The economy step.
    pub economy: bool,
}

impl Due {
    /// Anything at all.
    pub fn any(self) -> bool {
        self.minute || self.economy
    }
}

/// When the timed jobs are due, on a monotonic clock in milliseconds.
#[derive(Clone, Debug)]
pub struct TickSchedule {
    minute_at: u64,
    more: bool,
}

impl TickSchedule {
    /// A schedule whose first minute's jobs are due a minute after `start_ms`.
    pub fn new(start_ms: u64) -> TickSchedule {
        TickSchedule {
            minute_at: start_ms.saturating_add(MINUTE_MS),
            more: false,
        }
    }

    /// What is due at `now_ms`; what it returns counts as started.
    pub fn due(&mut self, now_ms: u64) -> Due {
        let minute = now_ms >= self.minute_at;
        if minute {
            self.minute_at = now_ms.saturating_add(MINUTE_MS);
        }
        let economy = minute || std::mem::take(&mut self.more);
        Due { minute, economy }
    }

    /// The economy step reported more due: it runs again at the next look.
    pub fn economy_more(&mut self, more: bool) {
        self.more |= more;
    }

    /// When to look next (a caller with its own timer, like the simulation).
    pub fn next_at(&self, now_ms: u64) -> u64 {
        if self.more {
            now_ms.saturating_add(AGAIN_MS).min(self.minute_at)
        } else {
            self.minute_at
        }
    }
}

/// The lease on the shared timed jobs.
pub const TICKS_LEASE: &str = "ticks";
/// What one run of the timed jobs did.
#[derive(Clone, Debug, Default)]
pub struct TickReport {
    /// Shard epochs started because a shard outgrew its target.
    pub epochs: Vec<EpochStarted>,
    /// The economy step has more due (feed to [`TickSchedule::economy_more`]).
    pub more: bool,
    /// Jobs that failed, as log lines (each is also logged at warn); the
    /// others ran.
    pub failed: Vec<String>,
    /// This hub held the `ticks` lease and ran the shared jobs (`false`:
    /// another process on the database runs them).
    pub leader: bool,
}

impl Hub {
    /// Runs the jobs `due` says, with `live` the nodes whose links are up
    /// now. A failing job is logged and reported; the others still run, and
    /// each leaves the store whole (its own storage transactions).
    pub fn run_ticks(&mut self, due: Due, live: &[NodeId], now: UnixMillis) -> TickReport {
        let mut report = TickReport::default();
        let mut failed = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!("{what}: {e}");
            report.failed.push(format!("{what}: {e}"));
        };
        if due.minute
            && let Err(e) = self.note_links_alive(live, now)
        {
            failed("cannot record live links", &e);
        }
        report.leader = match self.hold_ticks_lease() {
            Ok(held) => held,
            Err(e) => {
                failed("cannot renew the lease on the timed jobs", &e);
                false
            }
        };
        if !report.leader {
            return report;
        }
        if due.minute {
            // The status history's slot that just ended (once per slot).
            if let Err(e) = self.sample_history(now) {
                failed("cannot record the status history", &e);
            }
            // A shard that outgrew its target gets a new epoch before a
            // node's catch-up of it passes the wire bound (logged inside).
            match self.shard_tick(now) {
                Ok(started) => report.epochs = started,
                Err(e) => failed("cannot check shard sizes", &e),
            }
        }
        if due.economy {
            // Held exchanges become spendable and lots expire.
            match self.economy_tick(now, ECONOMY_BATCHES) {
                Ok(more) => report.more = more,
                Err(e) => failed("cannot run the expiry job", &e),
            }
            // Printed vouchers past their last day return their points.
            if let Err(e) = crate::voucher::expire_due(self, now) {
                failed("cannot expire voucher batches", &e);
            }
        }
        report
    }

    /// Takes or renews this hub's lease on the shared timed jobs.
    pub fn hold_ticks_lease(&mut self) -> Result<bool, crate::StoreError> {
        let held = self
            .store
            .hold_lease(TICKS_LEASE, &self.lease.holder, self.lease.ttl_ms)?;
        if held != self.lease.held {
            tracing::info!(holder = %self.lease.holder, held, "lease on the timed jobs");
        }
        self.lease.held = held;
        Ok(held)
    }

    /// Gives the lease on the timed jobs up (a clean stop).
    pub fn release_ticks_lease(&mut self) -> Result<(), crate::StoreError> {
        self.lease.held = false;
        self.store.release_lease(TICKS_LEASE, &self.lease.holder)
    }

    /// How long this hub's lease on the timed jobs lasts once taken or
    /// renewed (tests shorten it).
    pub fn set_lease_ms(&mut self, ttl_ms: u64) {
        self.lease.ttl_ms = ttl_ms.max(1);
    }

    /// Names this hub's process, as a lease holder and as the holder of
    /// the links it opens (tests that play several processes in one).
    pub fn set_lease_holder(&mut self, holder: &str) {
        self.lease.holder = holder.to_owned();
        self.store.set_process_name(holder);
    }

    /// This hub's name as a lease holder.
    pub fn lease_holder(&self) -> &str {
        &self.lease.holder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_jobs_each_minute_economy_again_while_more() {
        let mut s = TickSchedule::new(0);
        assert!(!s.due(59_999).any());
        assert_eq!(
            s.due(60_000),
            Due {
                minute: true,
                economy: true
            }
        );
        assert!(!s.due(61_000).any());
        s.economy_more(true);
        assert_eq!(s.next_at(61_000), 62_000);
        assert_eq!(
            s.due(62_000),
            Due {
                minute: false,
                economy: true
            }
        );
        assert!(!s.due(63_000).any());
        assert_eq!(s.next_at(63_000), 120_000);
        assert!(s.due(120_000).minute);
    }
}
