//! Ingest counters for `/metrics`: transactions processed by outcome,
//! refusals by reason, and the sync lag histogram.
//!
//! A process keeps one set in its [`super::Observed`]; they start
//! at zero with it, as Prometheus counters do (`rate()` handles restarts).
//! They are atomics: ingest adds after its commit, the metrics page reads,
//! neither waits for the other. Gauges that the database can answer (nodes
//! by state) are read there instead.

use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::wire::{Outcome, Receipt, RejectReason};
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the sync lag histogram, in seconds: from a counter on a
/// good link (sub-second) to a festival stall that syncs days later.
pub const LAG_BUCKETS_S: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0, 259200.0,
];

/// Every refusal reason label, in a fixed order.
pub const REASONS: [&str; 17] = [
    "malformed",
    "bad-signature",
    "unknown-node",
    "revoked-node",
    "chain-gap",
    "chain-fork",
    "not-allowed",
    "unknown-card",
    "wrong-account",
    "card-suspended",
    "unknown-program",
    "unknown-facility",
    "wrong-municipality",
    "number-taken",
    "not-linked",
    "certificate-expired",
    "other",
];

/// The label of a refusal reason (metrics, API, the dashboard's keys).
pub fn reason_label(r: &RejectReason) -> &'static str {
    match r {
        RejectReason::Malformed(_) => "malformed",
        RejectReason::BadSignature => "bad-signature",
        RejectReason::UnknownNode => "unknown-node",
        RejectReason::RevokedNode => "revoked-node",
        RejectReason::ChainGap { .. } => "chain-gap",
        RejectReason::ChainFork { .. } => "chain-fork",
        RejectReason::NotAllowed(_) => "not-allowed",
        RejectReason::UnknownCard => "unknown-card",
        RejectReason::WrongAccount(_) => "wrong-account",
        RejectReason::CardSuspended => "card-suspended",
        RejectReason::UnknownProgram(_) => "unknown-program",
        RejectReason::UnknownFacility(_) => "unknown-facility",
        RejectReason::WrongMunicipality(_) => "wrong-municipality",
        RejectReason::NumberTaken => "number-taken",
        RejectReason::NotLinked => "not-linked",
        RejectReason::CertificateExpired => "certificate-expired",
    }
}

/// A process's counters (in its [`super::Observed`]).
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    pushes: AtomicU64,
    refused_by_reason: [AtomicU64; REASONS.len()],
    lag_buckets: [AtomicU64; LAG_BUCKETS_S.len()],
    lag_count: AtomicU64,
    lag_sum_ms: AtomicU64,
}

/// A consistent-enough copy for rendering (each value read once).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CountersSnapshot {
    /// Transactions applied to the ledger.
    pub accepted: u64,
    /// Transactions refused (business and chain level).
    pub rejected: u64,
    /// Pushes handled.
    pub pushes: u64,
    /// Refusals per [`REASONS`] label.
    pub refused_by_reason: Vec<(&'static str, u64)>,
    /// Cumulative counts per [`LAG_BUCKETS_S`] bound.
    pub lag_cumulative: Vec<(f64, u64)>,
    /// Observations.
    pub lag_count: u64,
    /// Sum of observed lags in seconds.
    pub lag_sum_s: f64,
}

/// The refusal label of an outcome (`None`: accepted).
pub fn refusal_label(o: &Outcome) -> Option<&'static str> {
    match o {
        Outcome::Accepted { .. } => None,
        Outcome::Rejected(r) => Some(reason_label(r)),
    }
}

impl Counters {
    /// Counts one committed push: `observed` holds (signed at, refusal label) of
    /// each newly processed transaction; chain-level refusals come from
    /// `receipts` (a replayed receipt is never chain level, so nothing counts twice).
    pub fn observe_push(
        &self,
        receipts: &[Receipt],
        observed: &[(UnixMillis, Option<&'static str>)],
        now: UnixMillis,
    ) {
        self.push_handled();
        for (created_at, refusal) in observed {
            match refusal {
                None => self.accepted(*created_at, now),
                Some(label) => self.refused(label, Some(*created_at), now),
            }
        }
        for r in receipts {
            if let Outcome::Rejected(reason) = &r.outcome
                && reason.is_chain_level()
            {
                self.refused(reason_label(reason), None, now);
            }
        }
    }

    /// A push was handled.
    pub fn push_handled(&self) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
    }

    /// A transaction signed at `created_at` was applied at `now`.
    pub fn accepted(&self, created_at: UnixMillis, now: UnixMillis) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.observe_lag(now.0.saturating_sub(created_at.0));
    }

    /// A transaction was refused (label from [`reason_label`]); `created_at`
    /// when its payload was readable.
    pub fn refused(&self, label: &str, created_at: Option<UnixMillis>, now: UnixMillis) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let i = REASONS
            .iter()
            .position(|r| *r == label)
            .unwrap_or(REASONS.len() - 1);
        self.refused_by_reason[i].fetch_add(1, Ordering::Relaxed);
        if let Some(c) = created_at {
            self.observe_lag(now.0.saturating_sub(c.0));
        }
    }

    fn observe_lag(&self, lag_ms: u64) {
        for (i, bound) in LAG_BUCKETS_S.iter().enumerate() {
            if lag_ms as f64 <= bound * 1000.0 {
                self.lag_buckets[i].fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        self.lag_count.fetch_add(1, Ordering::Relaxed);
        self.lag_sum_ms.fetch_add(lag_ms, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CountersSnapshot {
        let mut cumulative = 0;
        let lag_cumulative = LAG_BUCKETS_S
            .iter()
            .zip(&self.lag_buckets)
            .map(|(b, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (*b, cumulative)
            })
            .collect();
        CountersSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            pushes: self.pushes.load(Ordering::Relaxed),
            refused_by_reason: REASONS
                .iter()
                .zip(&self.refused_by_reason)
                .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
                .collect(),
            lag_cumulative,
            // Read last: never smaller than a bucket read before it.
            lag_count: self.lag_count.load(Ordering::Relaxed).max(cumulative),
            lag_sum_s: self.lag_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_label() {
        assert_eq!(reason_label(&RejectReason::CardSuspended), "card-suspended");
        assert_eq!(
            reason_label(&RejectReason::ChainGap {
                expected: 2,
                got: 5
            }),
            "chain-gap"
        );
        for l in REASONS {
            assert_eq!(REASONS.iter().filter(|r| **r == l).count(), 1, "{l}");
        }
    }

    #[test]
    fn lag_lands_in_the_first_bucket_that_holds_it_and_buckets_are_cumulative() {
        let c = Counters::default();
        let now = UnixMillis(1_000_000_000);
        c.accepted(UnixMillis(now.0 - 50), now);
        c.accepted(UnixMillis(now.0 - 2_000), now);
        c.refused("unknown-card", Some(UnixMillis(now.0 - 4_000_000)), now);
        // A lag beyond the last bound counts only in +Inf (lag_count).
        c.accepted(UnixMillis(0), now);
        let s = c.snapshot();
        assert_eq!((s.accepted, s.rejected), (3, 1));
        assert_eq!(s.lag_cumulative[0], (0.1, 1));
        assert_eq!(s.lag_cumulative[3], (5.0, 2));
        assert_eq!(s.lag_cumulative[9], (21600.0, 3));
        assert_eq!(s.lag_cumulative.last().map(|x| x.1), Some(3));
        assert_eq!(s.lag_count, 4);
        let unknown = s
            .refused_by_reason
            .iter()
            .find(|(r, _)| *r == "unknown-card");
        assert_eq!(unknown, Some(&("unknown-card", 1)));
    }
}
