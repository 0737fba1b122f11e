//! Simulated time. One global clock (`SimTime`, ms since the run's start)
//! drives the event queue; each host reads its own clocks from it:
//!
//! - a *wall* clock with skew, drift and jumps (NTP steps, a laptop's battery
//!   dying), which the node core gets as `now` for what it signs and for its
//!   certificate's validity;
//! - a *monotonic* clock with the same drift but no jumps, which the session
//!   gets for its timeouts, as a real driver would use `Instant`.

use crate::prng::Prng;
use mykey_sync_proto::UnixMillis;

/// Milliseconds since the simulation started (global, true time).
pub type SimTime = u64;

/// The Unix time at which every simulation starts: 2026-04-01 09:00 JST.
pub const EPOCH_MS: u64 = 1_775_001_600_000;

/// One host's clocks.
#[derive(Clone, Debug)]
pub struct HostClock {
    /// Constant offset of the wall clock from true time, ms.
    pub skew_ms: i64,
    /// Rate error in parts per million (positive: runs fast).
    pub drift_ppm: i64,
    /// Sum of the jumps applied so far, ms.
    pub jumped_ms: i64,
}

impl HostClock {
    /// A perfect clock (the hub's: it runs NTP against a good source).
    pub fn perfect() -> HostClock {
        HostClock {
            skew_ms: 0,
            drift_ppm: 0,
            jumped_ms: 0,
        }
    }

    /// A node clock: skew up to ± `max_skew_ms`, drift up to ± 200 ppm
    /// (a cheap laptop's crystal without NTP).
    pub fn random(rng: &mut Prng, max_skew_ms: u64) -> HostClock {
        let skew = rng.range(0, 2 * max_skew_ms) as i64 - max_skew_ms as i64;
        let drift = rng.range(0, 400) as i64 - 200;
        HostClock {
            skew_ms: skew,
            drift_ppm: drift,
            jumped_ms: 0,
        }
    }

    /// Applies a jump of the wall clock (forward or back).
    pub fn jump(&mut self, delta_ms: i64) {
        self.jumped_ms += delta_ms;
    }

    fn drifted(&self, t: SimTime) -> i64 {
        t as i64 + (t as i64 / 1000) * self.drift_ppm / 1000
    }

    /// The wall clock as the host reads it.
    pub fn wall(&self, t: SimTime) -> UnixMillis {
        let v = EPOCH_MS as i64 + self.drifted(t) + self.skew_ms + self.jumped_ms;
        UnixMillis(v.max(0) as u64)
    }

    /// The monotonic clock as the host reads it (never goes back).
    pub fn mono(&self, t: SimTime) -> UnixMillis {
        UnixMillis(EPOCH_MS + self.drifted(t).max(0) as u64)
    }

    /// The true time at which this host's monotonic clock reads `m` (for
    /// scheduling the host's timers in global time).
    pub fn true_time_of_mono(&self, m: UnixMillis) -> SimTime {
        let local = m.0.saturating_sub(EPOCH_MS) as i128;
        // local = t + t * ppm / 1e6  =>  t = local * 1e6 / (1e6 + ppm)
        let t = local * 1_000_000 / (1_000_000 + i128::from(self.drift_ppm));
        // Round up so the timer has really expired when it fires.
        (t.max(0) as u64).saturating_add(1)
    }
}

/// Formats a simulated time as `d.hh:mm:ss`.
pub fn fmt_time(t: SimTime) -> String {
    let s = t / 1000;
    format!(
        "{}.{:02}:{:02}:{:02}",
        s / 86_400,
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_timer_lands_after_deadline() {
        for ppm in [-200, -1, 0, 3, 200] {
            let c = HostClock {
                skew_ms: 5000,
                drift_ppm: ppm,
                jumped_ms: -3_600_000,
            };
            for t in [0u64, 999, 1000, 123_456_789] {
                let deadline = c.mono(t).plus_ms(15_000);
                let fire = c.true_time_of_mono(deadline);
                assert!(c.mono(fire) >= deadline, "ppm {ppm} t {t}");
                assert!(fire <= t + 15_100);
            }
        }
    }

    #[test]
    fn wall_jumps_but_mono_does_not() {
        let mut c = HostClock::perfect();
        let before = (c.wall(10), c.mono(10));
        c.jump(-60_000);
        assert_eq!(c.wall(10).0 + 60_000, before.0.0);
        assert_eq!(c.mono(10), before.1);
    }
}
