//! Reconnect delays: exponential with full jitter, bounded, pure. The caller
//! seeds it (from the OS once, in the binary) so tests are deterministic.

use std::time::Duration;

/// Exponential backoff with full jitter ("AWS full jitter"): the n-th delay
/// is uniform in `[base, min(cap, base·2ⁿ)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    cap_ms: u64,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff from `base` up to `cap`, seeded.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        let base_ms = (base.as_millis() as u64).max(1);
        Backoff {
            base_ms,
            cap_ms: (cap.as_millis() as u64).max(base_ms),
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The link came up: start again from the base.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base_ms
            .saturating_mul(1u64 << self.attempt.min(30))
            .min(self.cap_ms);
        self.attempt = self.attempt.saturating_add(1);
        let span = ceiling - self.base_ms + 1;
        Duration::from_millis(self.base_ms + self.next_u64() % span)
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_bounds_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), 42);
        let mut ceilings = vec![];
        for n in 0..20u32 {
            let d = b.next_delay().as_millis() as u64;
            let ceiling = (100u64 << n.min(30)).min(5000);
            assert!((100..=ceiling).contains(&d), "attempt {n}: {d} ms");
            ceilings.push(ceiling);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // Two seeds spread out (jitter), the same seed repeats.
        let draw = |seed| {
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), seed);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
