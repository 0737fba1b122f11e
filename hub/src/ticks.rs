//! The hub's timed jobs: each tick (a minute by default, `hub.toml`'s
//! `tick_interval_ms`) the live links are confirmed to the status model,
//! the status history samples a slot that ended (every five minutes,
//! `status::history`), and shards that outgrew their target get a new
//! epoch; the economy's step (held exchanges released, expired lots moved
//! to expiry income, expiry notices, expired voucher batches) runs each
//! tick and again a second later while it has more due, in small batches
//! so the writer is never held long.
//!
//! Several hub processes may serve one database. The live links are each
//! process's own and confirmed by each. Every other job runs in one
//! process per municipality: the one holding its lease (`ticks/<code>`,
//! [`crate::store::leases`]), so the municipalities' expiry, voucher
//! expiry and shard sizes are spread over the processes, each taking at
//! most its share of the leases among the live ones and taking over a
//! municipality whose lease lapsed (its process died). The status history
//! samples every node in one row set per slot, so it is the one job that
//! spans all municipalities: it has a lease of its own (`ticks/all`),
//! shared out like a municipality's. Leases are renewed once half their
//! time is gone, so a tick that changes nothing writes no lease row.
//!
//! One schedule ([`TickSchedule`]) and one call ([`Hub::run_ticks`]) serve
//! both the serving loop (`net::serve`, on its monotonic clock and the wall
//! clock) and the simulation (`mykey-simulations`, on simulated time), so
//! seeds exercise expiry and epoch splits through the code the binary runs.

use crate::hub::Hub;
use crate::shards::EpochStarted;
use crate::store::leases::{TICKS_GROUP, global_lease, town_lease};
use mykey_sync_proto::{MunicipalityCode, NodeId, UnixMillis};

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
    interval_ms: u64,
    more: bool,
}

impl TickSchedule {
    /// A schedule whose first minute's jobs are due a minute after `start_ms`.
    pub fn new(start_ms: u64) -> TickSchedule {
        TickSchedule::every(start_ms, MINUTE_MS)
    }

    /// A schedule whose "minute" is `interval_ms` long (`hub.toml`'s
    /// `tick_interval_ms`).
    pub fn every(start_ms: u64, interval_ms: u64) -> TickSchedule {
        TickSchedule {
            minute_at: start_ms.saturating_add(interval_ms),
            interval_ms,
            more: false,
        }
    }

    /// What is due at `now_ms`; what it returns counts as started.
    pub fn due(&mut self, now_ms: u64) -> Due {
        let minute = now_ms >= self.minute_at;
        if minute {
            self.minute_at = now_ms.saturating_add(self.interval_ms);
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
    /// The municipalities whose jobs this hub ran (it holds their leases;
    /// the others are another process's on the database).
    pub towns: Vec<MunicipalityCode>,
    /// This hub held the lease on the jobs that span every municipality
    /// (the status history) and ran them.
    pub global: bool,
}

/// The leases on the timed jobs a hub holds after one look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldTicks {
    /// The municipalities whose jobs it runs.
    pub towns: Vec<MunicipalityCode>,
    /// Whether it runs the jobs that span every municipality.
    pub global: bool,
}

impl Hub {
    /// Runs the jobs `due` says, with `live` the nodes whose links are up
    /// now, for the municipalities whose leases this hub holds. A failing
    /// job is logged and reported; the others still run, and each leaves
    /// the store whole (its own storage transactions).
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
        let held = match self.hold_tick_leases() {
            Ok(held) => held,
            Err(e) => {
                failed("cannot renew the leases on the timed jobs", &e);
                HeldTicks::default()
            }
        };
        if due.minute {
            // The status history's slot that just ended (once per slot).
            if held.global
                && let Err(e) = self.sample_history(now)
            {
                failed("cannot record the status history", &e);
            }
            // A shard that outgrew its target gets a new epoch before a
            // node's catch-up of it passes the wire bound (logged inside).
            if !held.towns.is_empty() {
                match self.shard_tick_in(Some(&held.towns), now) {
                    Ok(started) => report.epochs = started,
                    Err(e) => failed("cannot check shard sizes", &e),
                }
            }
        }
        if due.economy {
            for &m in &held.towns {
                // Held exchanges become spendable and lots expire.
                match self.economy_tick_in(Some(m), now, ECONOMY_BATCHES) {
                    Ok(more) => report.more |= more,
                    Err(e) => failed(&format!("cannot run the expiry job of {m}"), &e),
                }
                // Printed vouchers past their last day return their points.
                if let Err(e) = crate::voucher::expire_due_in(self, Some(m), now) {
                    failed(&format!("cannot expire voucher batches of {m}"), &e);
                }
            }
        }
        report.towns = held.towns;
        report.global = held.global;
        report
    }

    /// Takes, renews or gives up this hub's leases on the timed jobs (one
    /// per municipality and one for the jobs that span them all), holding
    /// at most its share among the live processes on the database; says
    /// which it holds now. A store one process serves (SQLite) grants all.
    pub fn hold_tick_leases(&mut self) -> Result<HeldTicks, crate::StoreError> {
        let codes = self.municipality_codes()?;
        let mut names = vec![global_lease()];
        names.extend(codes.iter().map(|&m| town_lease(m)));
        let held =
            self.store
                .share_leases(TICKS_GROUP, &names, &self.lease.holder, self.lease.ttl_ms)?;
        let taken: Vec<&String> = held
            .iter()
            .filter(|n| !self.lease.held.contains(n))
            .collect();
        let given: Vec<&String> = self
            .lease
            .held
            .iter()
            .filter(|n| !held.contains(n))
            .collect();
        if !taken.is_empty() || !given.is_empty() {
            tracing::info!(
                holder = %self.lease.holder, taken = ?taken, given_up = ?given, held = held.len(), of = names.len(),
                "leases on the timed jobs changed"
            );
        }
        if !taken.is_empty() {
            // A municipality taken over: its scopes were written while
            // another process watched them, so every scope is looked at again.
            self.shards.grown_checked_through = 0;
        }
        let out = HeldTicks {
            towns: codes
                .into_iter()
                .filter(|&m| held.contains(&town_lease(m)))
                .collect(),
            global: held.contains(&global_lease()),
        };
        self.lease.held = held;
        Ok(out)
    }

    /// Gives this hub's leases on the timed jobs up (a clean stop, so
    /// another process takes them at its next tick).
    pub fn release_tick_leases(&mut self) -> Result<(), crate::StoreError> {
        self.lease.held.clear();
        self.store.release_leases(TICKS_GROUP, &self.lease.holder)
    }

    /// How long this hub's leases on the timed jobs last once taken or
    /// renewed (`hub.toml`'s `tick_lease_ms`; tests shorten it).
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
