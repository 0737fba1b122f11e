//! The state every handler shares ([`AppState`]): the HTTP side's own hub,
//! the writer it sends writes to, the application's settings, the login
//! sessions and the throttles. It imports no route module, so every route
//! module may import it.

use super::server::HttpLimits;
use super::session::Sessions;
use super::throttle::{LoginLimits, LoginThrottle, RateLimiter};
use crate::Hub;
use crate::economy::exchange::{ExchangePolicy, OperatorId};
use crate::status::assess::Thresholds;
use crate::status::{Fleet, Liability, SettlementLine};
use crate::store::history::HistorySample;
use mykey_sync_proto::UnixMillis;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings of the application behind the doors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppConfig {
    /// Served over TLS: the session cookie is `__Host-mykey_session`, `Secure`.
    pub tls: bool,
    /// Failed-login limits.
    pub login: LoginLimits,
    /// Password checks (argon2) at once, on the blocking pool, outside the hub lock.
    pub password_checks: usize,
    /// Terms for operator exchange requests.
    pub exchange: ExchangePolicy,
    /// Exchange requests per second per operator.
    pub exchange_per_second: u32,
    /// Exchange requests an operator may send at once beyond the rate.
    pub exchange_burst: u32,
    /// A request body must arrive within this.
    pub body_timeout: Duration,
    /// The dashboard's reads (every node's status, liabilities, settlement
    /// status) are served from memory while no older than this, one
    /// computation at a time however many clients poll; a write through
    /// this state clears them. Zero: computed for every request.
    pub dashboard_cache: Duration,
    /// Live views (server-sent event streams of the overview and node
    /// pages) open at once; one more is answered 503 and its page falls
    /// back to refreshing every few seconds.
    pub max_live_streams: usize,
    /// How often a live view looks for a change (through the dashboard
    /// cache, so however many views are open the hub reads once).
    pub live_check: Duration,
    /// A live view's stream ends after this and the browser opens a new
    /// one, so the login is checked again (a revoked operator stops
    /// receiving within this).
    pub live_stream_max_age: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            tls: false,
            login: LoginLimits::default(),
            password_checks: 1,
            exchange: ExchangePolicy::default(),
            exchange_per_second: 20,
            exchange_burst: 40,
            body_timeout: HttpLimits::default().body_timeout,
            dashboard_cache: Duration::from_secs(1),
            max_live_streams: 32,
            live_check: Duration::from_secs(2),
            live_stream_max_age: Duration::from_secs(600),
        }
    }
}

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    /// The hub's writer, when `serve` runs one.
    writer: Option<crate::net::worker::WorkerHandle>,
}

struct Inner {
    hub: Mutex<Hub>,
    thresholds: Thresholds,
    config: AppConfig,
    sessions: Sessions,
    logins: LoginThrottle,
    password_checks: tokio::sync::Semaphore,
    checks_waiting: std::sync::atomic::AtomicUsize,
    exchange_rate: RateLimiter<OperatorId>,
    /// Writes made through this state, so a cached read made before one is
    /// not served after it.
    writes: AtomicU64,
    fleet: ReadCache<Fleet>,
    board: ReadCache<(Vec<Liability>, Vec<SettlementLine>)>,
    /// One permit per open live view ([`AppConfig::max_live_streams`]).
    live_streams: Arc<tokio::sync::Semaphore>,
    history: ReadCache<HistoryRead>,
}

/// Every node's status history over `[from, to)` (the overview's charts).
type HistoryRead = ((UnixMillis, UnixMillis), Arc<Vec<HistorySample>>);

/// One dashboard read kept in memory ([`AppConfig::dashboard_cache`]). The
/// lock is held while the value is computed, so concurrent pollers wait
/// for that one computation instead of each taking the hub's lock in turn
/// (which made the operator exchange API wait behind 50 of them).
type ReadCache<T> = tokio::sync::Mutex<Option<CachedRead<T>>>;

struct CachedRead<T> {
    at: Instant,
    writes: u64,
    value: T,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppState(..)")
    }
}

/// Why a request's database work failed.
#[derive(Debug, thiserror::Error)]
pub enum HubAccessError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// The blocking task was cancelled (the runtime is shutting down).
    #[error("the hub is shutting down; try again when it is back")]
    Cancelled,
    /// As many password checks wait as may: try again in a moment.
    #[error("too many password checks are waiting; try again in a moment")]
    Busy,
    /// The writer's queue is full (or it stopped).
    #[error(transparent)]
    WriterBusy(#[from] crate::net::worker::Busy),
}

/// Password checks that may wait for the pool at once; more are refused at
/// once, so a flood of logins cannot take every request slot.
const MAX_WAITING_CHECKS: usize = 16;

impl AppState {
    /// State over a hub opened for the HTTP side, with default settings.
    pub fn new(hub: Hub, thresholds: Thresholds) -> AppState {
        AppState::with_config(hub, thresholds, AppConfig::default())
    }

    /// State over a hub opened for the HTTP side.
    pub fn with_config(hub: Hub, thresholds: Thresholds, config: AppConfig) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                hub: Mutex::new(hub),
                thresholds,
                sessions: Sessions::default(),
                logins: LoginThrottle::new(config.login.clone()),
                password_checks: tokio::sync::Semaphore::new(config.password_checks.max(1)),
                checks_waiting: std::sync::atomic::AtomicUsize::new(0),
                exchange_rate: RateLimiter::new(config.exchange_per_second, config.exchange_burst),
                live_streams: Arc::new(tokio::sync::Semaphore::new(config.max_live_streams)),
                config,
                writes: AtomicU64::new(0),
                fleet: ReadCache::default(),
                board: ReadCache::default(),
                history: ReadCache::default(),
            }),
            writer: None,
        }
    }

    /// This state with its writes sent to `writer` (the serving loop's
    /// storage worker, which owns the hub's writing connection).
    pub fn writing_to(mut self, writer: crate::net::worker::WorkerHandle) -> AppState {
        self.writer = Some(writer);
        self
    }

    /// Runs `f`, which writes, on the hub's one writer: the storage worker
    /// when `serve` runs (queued in its API lane, 503 when full), else
    /// this state's hub, as [`AppState::with_hub`].
    pub async fn with_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Hub) -> Result<T, crate::StoreError> + Send + 'static,
    ) -> Result<T, HubAccessError> {
        let r = self.with_writer_unseen(f).await;
        self.inner.writes.fetch_add(1, Ordering::AcqRel);
        r
    }

    /// [`AppState::with_writer`] for a machine client's write that no page
    /// is waiting to show (an operator's exchange): the dashboard's read
    /// cache is kept, so a change shows within
    /// [`AppConfig::dashboard_cache`], as a node's push does. Clearing it
    /// on every exchange made each of 50 pollers read the whole fleet again
    /// while the exchange API waited for the hub's lock behind them.
    pub async fn with_writer_unseen<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Hub) -> Result<T, crate::StoreError> + Send + 'static,
    ) -> Result<T, HubAccessError> {
        match &self.writer {
            Some(w) => w
                .run(crate::net::worker::Lane::Api, f)
                .await?
                .map_err(HubAccessError::Store),
            None => self.with_hub(f).await,
        }
    }

    /// Every node's status at `now`, from memory when a computation no
    /// older than [`AppConfig::dashboard_cache`] and no write ago is there.
    pub async fn fleet(&self, now: UnixMillis) -> Result<Fleet, HubAccessError> {
        let th = self.thresholds().clone();
        self.cached(&self.inner.fleet, |_| true, move |hub| hub.fleet(&th, now))
            .await
    }

    /// Every node's status history over `[from, to)`, cached as
    /// [`AppState::fleet`] is (for the same range).
    pub async fn history(
        &self,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Arc<Vec<HistorySample>>, HubAccessError> {
        let read = self
            .cached(
                &self.inner.history,
                |(range, _)| *range == (from, to),
                move |hub| Ok(((from, to), Arc::new(hub.status_history(None, from, to)?))),
            )
            .await?;
        Ok(read.1)
    }

    /// The overview's liabilities and settlement status, cached as
    /// [`AppState::fleet`] is.
    pub async fn liabilities_and_settlement(
        &self,
    ) -> Result<(Vec<Liability>, Vec<SettlementLine>), HubAccessError> {
        self.cached(
            &self.inner.board,
            |_| true,
            |hub| Ok((hub.liabilities()?, hub.settlement_status()?)),
        )
        .await
    }

    async fn cached<T: Clone + Send + 'static>(
        &self,
        cache: &ReadCache<T>,
        fits: impl Fn(&T) -> bool,
        f: impl FnOnce(&mut Hub) -> Result<T, crate::StoreError> + Send + 'static,
    ) -> Result<T, HubAccessError> {
        let max_age = self.inner.config.dashboard_cache;
        let mut slot = cache.lock().await;
        let writes = self.inner.writes.load(Ordering::Acquire);
        if let Some(c) = slot.as_ref()
            && c.writes == writes
            && c.at.elapsed() < max_age
            && fits(&c.value)
        {
            return Ok(c.value.clone());
        }
        let value = self.with_hub(f).await?;
        *slot = (!max_age.is_zero()).then(|| CachedRead {
            at: Instant::now(),
            writes,
            value: value.clone(),
        });
        Ok(value)
    }

    /// The alert limits in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.inner.thresholds
    }

    /// The application's settings.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    /// Runs `f` on the hub on the blocking pool (SQLite calls block). A
    /// panic in `f` panics the caller too, where the server's panic guard
    /// answers a generic 500 (never the panic text).
    pub async fn with_hub<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Hub) -> Result<T, crate::StoreError> + Send + 'static,
    ) -> Result<T, HubAccessError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the hub usable: every
            // store operation is its own transaction, rolled back on drop.
            let mut hub = state
                .inner
                .hub
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut hub)
        })
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => HubAccessError::Cancelled,
        })?
        .map_err(HubAccessError::Store)
    }

    /// Runs `f` on the blocking pool without the hub: CPU work such as a
    /// password check, at most [`AppConfig::password_checks`] at once and
    /// [`MAX_WAITING_CHECKS`] waiting ([`HubAccessError::Busy`] beyond).
    pub(crate) async fn password_check<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HubAccessError> {
        use std::sync::atomic::Ordering;
        let waiting = &self.inner.checks_waiting;
        if waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_CHECKS {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(HubAccessError::Busy);
        }
        let permit = self.inner.password_checks.acquire().await;
        waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| HubAccessError::Cancelled)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => HubAccessError::Cancelled,
            })
    }

    /// A live view's place, held while its stream is open; `None` when
    /// [`AppConfig::max_live_streams`] are open already.
    pub(crate) fn live_stream_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.inner.live_streams.clone().try_acquire_owned().ok()
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub(crate) fn logins(&self) -> &LoginThrottle {
        &self.inner.logins
    }

    pub(crate) fn exchange_rate(&self) -> &RateLimiter<OperatorId> {
        &self.inner.exchange_rate
    }
}

/// Milliseconds since the epoch (the HTTP side is a driver: it reads the clock).
pub(crate) fn now() -> UnixMillis {
    crate::net::unix_now()
}
