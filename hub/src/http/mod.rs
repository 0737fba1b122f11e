//! The operator dashboard, its JSON API and `/metrics`, served by the hub
//! over HTTP (axum): `mykey-hub serve --http ADDR`.
//!
//! - [`auth`]: operator accounts (argon2id password hashes in the hub
//!   database), login sessions (cookie) and API tokens (bearer); every route
//!   but the login page needs one of them.
//! - [`pages`]: server-rendered HTML in Japanese (English with `?lang=en`),
//!   with a small script that refreshes the live parts every few seconds.
//! - [`api`]: the JSON API under `/api/` and its OpenAPI document.
//! - [`metrics`]: Prometheus text format at `/metrics`.
//!
//! The HTTP side opens its own [`Hub`] on the data directory (its own SQLite
//! connection: WAL readers never block the serving loop's writes) for its
//! reads ([`AppState::with_hub`], on tokio's blocking pool); its writes go to
//! the hub's one writer, the serving loop's storage worker
//! ([`AppState::with_writer`]).
//!
//! Composing: further routers (settlement, operator exchange) go through
//! [`app`], which puts them behind the same login:
//! `http::app(state, Router::new().route("/settlement/run", post(run)))`.
//! Their handlers take `State<AppState>` and use [`AppState::with_hub`].

pub mod api;
pub mod auth;
mod i18n;
pub mod metrics;
pub mod pages;

use crate::Hub;
use crate::status::assess::Thresholds;
use axum::Router;
use axum::middleware;
use mykey_sync_proto::UnixMillis;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The loopback address the dashboard uses when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8780";

/// How `serve` runs the dashboard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DashboardOptions {
    /// Its address (`None`: [`DEFAULT_ADDR`], or a free loopback port if taken).
    pub http: Option<String>,
    /// Alert limits.
    pub thresholds: Thresholds,
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
    sessions: auth::Sessions,
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
    /// The blocking task died (a panic in the handler's database work).
    #[error("the hub's database task failed: {0}")]
    Task(String),
    /// The writer's queue is full.
    #[error(transparent)]
    Busy(#[from] crate::net::worker::Busy),
}

impl AppState {
    /// State over a hub opened for the HTTP side.
    pub fn new(hub: Hub, thresholds: Thresholds) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                hub: Mutex::new(hub),
                thresholds,
                sessions: auth::Sessions::default(),
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
        match &self.writer {
            Some(w) => w
                .run(crate::net::worker::Lane::Api, f)
                .await?
                .map_err(HubAccessError::Store),
            None => self.with_hub(f).await,
        }
    }

    /// The alert limits in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.inner.thresholds
    }

    /// Runs `f` on the hub on the blocking pool (SQLite calls block).
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
        .map_err(|e| HubAccessError::Task(e.to_string()))?
        .map_err(HubAccessError::Store)
    }

    pub(crate) fn sessions(&self) -> &auth::Sessions {
        &self.inner.sessions
    }
}

/// The dashboard's routes (pages, API, metrics), behind login.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(pages::routes())
        .merge(api::routes())
        .merge(metrics::routes())
}

/// The whole application: the login page, and [`routes`] plus `extra`
/// behind authentication.
pub fn app(state: AppState, extra: Router<AppState>) -> Router {
    let protected = routes()
        .merge(extra)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    Router::new()
        .merge(auth::routes())
        .merge(protected)
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// Pages are never framed, cached or sniffed, and leak no referrer.
async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = resp.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    resp
}

/// [`app`] with nothing extra.
pub fn router(state: AppState) -> Router {
    app(state, Router::new())
}

/// Why the HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The address does not parse.
    #[error("--http {0:?} is not an address like 127.0.0.1:8780")]
    Address(String),
    /// Binding failed.
    #[error("cannot listen for HTTP on {addr}: {source}; choose another with --http")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds the dashboard's listener. With no address given, tries
/// [`DEFAULT_ADDR`] and, if another hub holds it, any free loopback port
/// (the printed `dashboard on …` line says which).
pub async fn bind(addr: Option<&str>) -> Result<tokio::net::TcpListener, BindError> {
    let explicit = addr.is_some();
    let text = addr.unwrap_or(DEFAULT_ADDR);
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| BindError::Address(text.to_owned()))?;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(addr.ip(), 0);
            tracing::warn!(%addr, "dashboard port in use; using a free loopback port instead");
            tokio::net::TcpListener::bind(any)
                .await
                .map_err(|source| BindError::Bind { addr: any, source })
        }
        Err(source) => Err(BindError::Bind { addr, source }),
    }
}

/// Serves `app` on `listener` until the task is dropped; prints
/// `dashboard on http://ADDR/` first.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    println!("dashboard on http://{addr}/");
    tracing::info!(%addr, "dashboard serving");
    axum::serve(listener, app).await
}

/// Why the dashboard alone could not be served.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The hub could not be opened.
    #[error(transparent)]
    Open(#[from] crate::OpenError),
    /// The listener could not start.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The runtime, the signal handlers or the server failed.
    #[error("the dashboard failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves only the dashboard of the hub at `data` (no nodes) until SIGINT or
/// SIGTERM, on a runtime of its own: for the demo, and for looking at a
/// hub's data while no `serve` runs.
pub fn serve_dashboard_blocking(
    data: &std::path::Path,
    addr: Option<&str>,
) -> Result<(), DashboardError> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = router(AppState::new(Hub::open(data)?, Thresholds::default()));
        let listener = bind(addr).await?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        tokio::select! {
            r = serve(listener, app) => r?,
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        Ok(())
    })
}

/// Milliseconds since the epoch (the HTTP side is a driver: it reads the clock).
pub(crate) fn now() -> UnixMillis {
    crate::net::unix_now()
}
