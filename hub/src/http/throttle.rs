//! Limits on failed logins and on operators' request rates, in memory.
//!
//! Failed logins are counted per login name and per client address in a
//! fixed window. An attempt *takes* its failure before the password is
//! checked ([`LoginThrottle::begin`]), under one lock, so concurrent guesses
//! cannot all slip in before the first failure is recorded; a success gives
//! it back. Names of real operators are tracked apart and never evicted;
//! other names and addresses are tracked up to a bound, evicting the oldest
//! windows first, so a flood of junk names never stops the tracking.
//!
//! [`RateLimiter`] is a token bucket per key (the exchange operators).
//!
//! Nothing here reads the clock: callers pass `now`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits on failed logins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures allowed per login name in a window.
    pub per_name: u32,
    /// Failures allowed per client address in a window.
    pub per_address: u32,
    /// The window, from its first failure.
    pub window: Duration,
    /// Names (other than real operators') and addresses tracked at most, each.
    pub max_tracked: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_name: 5,
            per_address: 20,
            window: Duration::from_secs(60),
            max_tracked: 10_000,
        }
    }
}

/// Failures in one window.
#[derive(Clone, Copy, Debug)]
struct Window {
    count: u32,
    start: Instant,
    /// Which push into the eviction order is this window's.
    generation: u64,
}

/// Time left in a window at `now`, at most the window (`now` may be a
/// moment older than the window's start when attempts race).
fn remaining(w: &Window, now: Instant, span: Duration) -> Duration {
    (w.start + span).saturating_duration_since(now).min(span)
}

/// Failure windows per key: bounded, the oldest window evicted first.
#[derive(Debug)]
struct Windows<K> {
    map: HashMap<K, Window>,
    /// Keys in the order their windows started (stale entries skipped).
    order: VecDeque<(K, u64)>,
    next_generation: u64,
    max: usize,
}

impl<K: Clone + Eq + Hash> Windows<K> {
    fn new(max: usize) -> Self {
        Windows {
            map: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
            max: max.max(1),
        }
    }

    /// The live window of `key` at `now`.
    fn live(&self, key: &K, now: Instant, span: Duration) -> Option<&Window> {
        self.map
            .get(key)
            .filter(|w| now.saturating_duration_since(w.start) < span)
    }

    /// Seconds until `key` may try again, if it is over `limit`.
    fn blocked(&self, key: &K, limit: u32, now: Instant, span: Duration) -> Option<Duration> {
        let w = self.live(key, now, span)?;
        (w.count >= limit).then(|| remaining(w, now, span))
    }

    /// Counts a failure of `key` at `now`.
    fn add(&mut self, key: &K, now: Instant, span: Duration) {
        if let Some(w) = self.map.get_mut(key)
            && now.saturating_duration_since(w.start) < span
        {
            w.count = w.count.saturating_add(1);
            return;
        }
        self.make_room(now, span);
        let generation = self.next_generation;
        self.next_generation += 1;
        self.map.insert(
            key.clone(),
            Window {
                count: 1,
                start: now,
                generation,
            },
        );
        self.order.push_back((key.clone(), generation));
        if self.order.len() > 2 * self.max {
            // Stale entries (windows restarted) pile up: keep the live ones.
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|w| w.generation == *g));
        }
    }

    /// Gives back one failure (the attempt succeeded).
    fn give_back(&mut self, key: &K) {
        if let Some(w) = self.map.get_mut(key) {
            w.count = w.count.saturating_sub(1);
        }
    }

    fn forget(&mut self, key: &K) {
        self.map.remove(key);
    }

    /// Drops ended windows from the front, then the oldest live ones until
    /// there is room for one more.
    fn make_room(&mut self, now: Instant, span: Duration) {
        while let Some((k, g)) = self.order.front() {
            let stale = self.map.get(k).is_none_or(|w| w.generation != *g);
            let ended = self
                .map
                .get(k)
                .is_some_and(|w| now.saturating_duration_since(w.start) >= span);
            if stale || ended || self.map.len() >= self.max {
                if !stale {
                    self.map.remove(k);
                }
                self.order.pop_front();
            } else {
                break;
            }
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// A login attempt that took its failure in advance; give it to
/// [`LoginThrottle::succeeded`] or [`LoginThrottle::failed`].
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    name: String,
    known: bool,
    addr: IpAddr,
}

#[derive(Debug)]
struct Inner {
    /// Names of real operators: never evicted (there are few).
    known: HashMap<String, Window>,
    names: Windows<String>,
    addrs: Windows<IpAddr>,
}

/// Failed-login limits per name and per client address.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: LoginLimits,
    inner: Mutex<Inner>,
}

impl LoginThrottle {
    /// A throttle with these limits.
    pub fn new(limits: LoginLimits) -> Self {
        LoginThrottle {
            inner: Mutex::new(Inner {
                known: HashMap::new(),
                names: Windows::new(limits.max_tracked),
                addrs: Windows::new(limits.max_tracked),
            }),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `addr` must wait, if its failures are at the limit (checked
    /// before the name is even looked up).
    pub fn address_blocked(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let l = &self.limits;
        self.lock()
            .addrs
            .blocked(&addr, l.per_address, now, l.window)
    }

    /// Takes a failure for an attempt on `name` (`known`: a real operator)
    /// from `addr` before its password is checked, or says how long to wait.
    pub fn begin(
        &self,
        name: &str,
        known: bool,
        addr: IpAddr,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let l = &self.limits;
        let mut s = self.lock();
        let span = l.window;
        let name_wait = if known {
            s.known
                .get(name)
                .filter(|w| now.saturating_duration_since(w.start) < span && w.count >= l.per_name)
                .map(|w| remaining(w, now, span))
        } else {
            s.names.blocked(&name.to_owned(), l.per_name, now, span)
        };
        let addr_wait = s.addrs.blocked(&addr, l.per_address, now, span);
        if let Some(wait) = name_wait.into_iter().chain(addr_wait).max() {
            return Err(wait);
        }
        if known {
            let w = s.known.entry(name.to_owned()).or_insert(Window {
                count: 0,
                start: now,
                generation: 0,
            });
            if now.saturating_duration_since(w.start) >= span {
                *w = Window {
                    count: 0,
                    start: now,
                    generation: 0,
                };
            }
            w.count += 1;
        } else {
            s.names.add(&name.to_owned(), now, span);
        }
        s.addrs.add(&addr, now, span);
        Ok(Attempt {
            name: name.to_owned(),
            known,
            addr,
        })
    }

    /// The password was right: the name starts afresh and the address gets
    /// its failure back.
    pub fn succeeded(&self, a: Attempt) {
        let mut s = self.lock();
        if a.known {
            s.known.remove(&a.name);
        } else {
            s.names.forget(&a.name);
        }
        s.addrs.give_back(&a.addr);
    }

    /// The password was wrong: the failure taken stays.
    pub fn failed(&self, a: Attempt) {
        drop(a);
    }

    /// The password was never checked (the hub was busy): the failure
    /// taken is given back to the name and the address.
    pub fn cancel(&self, a: Attempt) {
        let mut s = self.lock();
        if a.known {
            if let Some(w) = s.known.get_mut(&a.name) {
                w.count = w.count.saturating_sub(1);
            }
        } else {
            s.names.give_back(&a.name);
        }
        s.addrs.give_back(&a.addr);
    }

    /// Names and addresses tracked (known operators, other names, addresses).
    pub fn tracked(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (s.known.len(), s.names.len(), s.addrs.len())
    }
}

/// A token bucket per key: `burst` requests at once, refilled at `per_second`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter allowing `per_second` requests a second, `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> Self {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key` at `now`, or says how long until one is free.
    /// Keys are only ever authenticated callers, so the map stays small.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut b = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = b.entry(key.clone()).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

/// Whole seconds for a `Retry-After` header (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn limits() -> LoginLimits {
        LoginLimits {
            per_name: 3,
            per_address: 5,
            window: Duration::from_secs(60),
            max_tracked: 4,
        }
    }
    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn failures_are_taken_before_the_check_so_concurrent_guesses_stop() {
        let t = LoginThrottle::new(limits());
        let now = Instant::now();
        // Three attempts in flight at once: each took its failure.
        let held: Vec<_> = (0..3)
            .map(|_| t.begin("ops", true, A, now).unwrap())
            .collect();
        // The fourth is refused before any of them finished.
        let wait = t.begin("ops", true, B, now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        // An attempt whose clock reading is a moment older than the
        // window's start still waits at most the window.
        let earlier = now.checked_sub(Duration::from_millis(5)).unwrap_or(now);
        assert!(t.begin("ops", true, B, earlier).unwrap_err() <= Duration::from_secs(60));
        held.into_iter().for_each(|a| t.failed(a));
        // After the window, the name may try again.
        assert!(
            t.begin("ops", true, B, now + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn success_resets_the_name_and_gives_the_address_back_its_failure() {
        let t = LoginThrottle::new(limits());
        let now = Instant::now();
        let a = t.begin("ops", true, A, now).unwrap();
        t.failed(a);
        let a = t.begin("ops", true, A, now).unwrap();
        t.succeeded(a);
        for _ in 0..3 {
            let a = t.begin("ops", true, A, now).unwrap();
            t.failed(a);
        }
        assert!(t.begin("ops", true, A, now).is_err());
        // The address has 4 failures (one was given back): one more is allowed.
        let a = t.begin("other", false, A, now).unwrap();
        t.failed(a);
        assert!(t.address_blocked(A, now).is_some());
        assert!(t.begin("third", false, A, now).is_err());
        assert!(t.address_blocked(B, now).is_none());
    }

    #[test]
    fn a_flood_of_junk_names_evicts_the_oldest_and_never_stops_tracking() {
        let t = LoginThrottle::new(LoginLimits {
            per_address: u32::MAX,
            ..limits()
        });
        let now = Instant::now();
        for _ in 0..2 {
            let a = t.begin("ops", true, A, now).unwrap();
            t.failed(a);
        }
        for i in 0..1000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(i));
            let a = t
                .begin(
                    &format!("junk{i}"),
                    false,
                    addr,
                    now + Duration::from_millis(u64::from(i)),
                )
                .unwrap();
            t.failed(a);
        }
        let (known, names, addrs) = t.tracked();
        assert_eq!((known, names), (1, 4));
        assert!(addrs <= 5);
        // The real operator's failures survived the flood.
        let a = t.begin("ops", true, B, now).unwrap();
        t.failed(a);
        assert!(t.begin("ops", true, B, now).is_err());
        // The newest junk names are still tracked: their next failures count.
        for _ in 0..2 {
            let a = t
                .begin("junk999", false, B, now + Duration::from_secs(1))
                .unwrap();
            t.failed(a);
        }
        assert!(
            t.begin("junk999", false, B, now + Duration::from_secs(1))
                .is_err()
        );
    }

    #[test]
    fn an_attempt_never_checked_gives_its_failure_back() {
        let t = LoginThrottle::new(limits());
        let now = Instant::now();
        for _ in 0..10 {
            let a = t.begin("ops", true, A, now).unwrap();
            t.cancel(a);
            let b = t.begin("nobody", false, A, now).unwrap();
            t.cancel(b);
        }
        assert!(t.address_blocked(A, now).is_none());
        assert!(t.begin("ops", true, A, now).is_ok());
    }

    #[test]
    fn buckets_refill() {
        let r = RateLimiter::new(2, 3);
        let now = Instant::now();
        for _ in 0..3 {
            r.take(&"card-x", now).unwrap();
        }
        let wait = r.take(&"card-x", now).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(r.take(&"air-y", now).is_ok());
        assert!(r.take(&"card-x", now + Duration::from_millis(500)).is_ok());
        assert!(r.take(&"card-x", now + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
        assert_eq!(retry_after_secs(Duration::from_millis(60_001)), 61);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
