//! The operator dashboard, its JSON API and `/metrics`, served by the hub
//! over HTTP (axum): `mykey-hub serve --http ADDR`.
//!
//! - [`auth`]: operator accounts (argon2id password hashes in the hub
//!   database), login sessions (cookie) and API tokens (bearer); every route
//!   but the login page needs one of them.
//! - [`pages`]: server-rendered HTML in Japanese (English with `?lang=en`),
//!   with a small script that refreshes the live parts when the page's
//!   server-sent event stream ([`pages::live`]) says they changed (every few
//!   seconds without it), and `/help`, what to do about each alert.
//! - [`api`]: the JSON API under `/api/` and its OpenAPI document (the
//!   quarantine's routes live beside it, [`crate::quarantine::http`]).
//! - [`metrics`]: Prometheus text format at `/metrics`.
//! - [`server`]: the HTTP server with its timeouts, connection and request
//!   limits, body limits, panic answers and TLS; [`throttle`]: login and
//!   per-operator rate limits.
//!
//! Who may see and do what is decided in [`crate::access`]: [`auth::require`]
//! puts the request's [`crate::access::Access`] in its extensions and refuses
//! (403) what its role or token scope does not allow; list handlers show a
//! municipality's staff only their municipality.
//!
//! The HTTP side opens its own [`Hub`] on the data directory (its own SQLite
//! connection: WAL readers never block the serving loop's writes) for its
//! reads ([`AppState::with_hub`], on tokio's blocking pool); its writes (an
//! admin's actions only: settlement runs, the expiry job, quarantine
//! decisions, each in one transaction) go to the hub's one writer, the
//! serving loop's storage worker ([`AppState::with_writer`]).
//!
//! Composing: further routers (settlement, operator exchange) go through
//! [`app`], which puts them behind the same login:
//! `http::app(state, Router::new().route("/settlement/run", post(run)))`.
//! Their handlers take `State<AppState>` and use [`AppState::with_hub`] to
//! read and [`AppState::with_writer`] to write.

pub mod api;
pub mod auth;
mod i18n;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub(crate) mod query;
pub(crate) mod scope;
pub mod server;
pub(crate) mod session;
pub(crate) mod state;
pub mod throttle;

use crate::Hub;
use crate::status::assess::Thresholds;
use axum::Router;
use axum::middleware;
use server::{BodyLimit, HttpLimits, TlsFiles};
use std::net::SocketAddr;

pub use state::{AppConfig, AppState, HubAccessError};

/// The loopback address the dashboard uses when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8780";

/// Largest body a dashboard route takes (the login form, settlement options).
pub const MAX_DASHBOARD_BODY: usize = 16 * 1024;

/// How `serve` runs the dashboard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DashboardOptions {
    /// Its address (`None`: [`DEFAULT_ADDR`]).
    pub http: Option<String>,
    /// Alert limits.
    pub thresholds: Thresholds,
    /// Serve HTTPS with these.
    pub tls: Option<TlsFiles>,
    /// Allow plain HTTP on an address other than loopback.
    pub insecure_http: bool,
    /// The server's bounds.
    pub limits: HttpLimits,
    /// The application's settings.
    pub app: AppConfig,
}

/// The dashboard's routes (pages, API, metrics), behind login.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(pages::routes())
        .merge(api::routes())
        .merge(openapi::routes())
        .merge(crate::quarantine::http::routes())
        .merge(metrics::routes())
}

/// The whole application: the login page, and [`routes`] plus `extra`
/// behind authentication, with bodies of at most [`MAX_DASHBOARD_BODY`].
pub fn app(state: AppState, extra: Router<AppState>) -> Router {
    let protected = routes()
        .merge(extra)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    let limit = BodyLimit {
        max_bytes: MAX_DASHBOARD_BODY,
        timeout: state.config().body_timeout,
    };
    server::limit_body(Router::new().merge(auth::routes()).merge(protected), limit)
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
    /// Plain HTTP on an address others can reach.
    #[error(
        "--http {0} is reachable from other machines: serve it over TLS with --tls-cert FILE \
         --tls-key FILE (operator passwords and session cookies would cross the network in \
         clear), or, on a network you trust, add --insecure-http"
    )]
    NeedsTls(SocketAddr),
    /// The certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] server::TlsError),
    /// Binding failed.
    #[error(
        "cannot serve the dashboard on {addr}: {source}; another mykey-hub serve (or another program) holds it: choose another address with --http ADDR (e.g. --http 127.0.0.1:0 for any free port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Whether the dashboard may serve at `addr`: off loopback only over TLS,
/// unless plain HTTP was asked for.
pub fn check_transport(addr: SocketAddr, tls: bool, insecure_http: bool) -> Result<(), BindError> {
    if addr.ip().is_loopback() || tls || insecure_http {
        Ok(())
    } else {
        Err(BindError::NeedsTls(addr))
    }
}

/// The dashboard's listening socket with its TLS and limits, ready to serve.
pub struct Door {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: HttpLimits,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Door({:?}, tls: {})",
            self.listener.local_addr(),
            self.tls.is_some()
        )
    }
}

impl Door {
    /// A door on a bound listener.
    pub fn new(
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        limits: HttpLimits,
    ) -> Door {
        Door {
            listener,
            tls,
            limits,
        }
    }

    /// Binds the dashboard's listener as `opts` say: refuses plain HTTP off
    /// loopback (see [`check_transport`]), loads the TLS files. With no
    /// address given, [`DEFAULT_ADDR`]; an address in use is an error naming
    /// it and `--http`, never another port.
    pub async fn open(opts: &DashboardOptions) -> Result<Door, BindError> {
        let text = opts.http.as_deref().unwrap_or(DEFAULT_ADDR);
        let addr: SocketAddr = text
            .parse()
            .map_err(|_| BindError::Address(text.to_owned()))?;
        check_transport(addr, opts.tls.is_some(), opts.insecure_http)?;
        let tls = opts.tls.as_ref().map(server::tls_acceptor).transpose()?;
        // Never another port in silence: a second hub on the default
        // address must say so, or the operator opens the first one's page.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| BindError::Bind { addr, source })?;
        Ok(Door::new(listener, tls, opts.limits.clone()))
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `app` until the task is dropped; prints `dashboard on
    /// http(s)://ADDR/` first.
    pub async fn serve(self, app: Router) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        println!("dashboard on {scheme}://{addr}/");
        tracing::info!(%addr, scheme, "dashboard serving");
        server::serve(self.listener, app, self.limits, self.tls).await
    }
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
    opts: &DashboardOptions,
) -> Result<(), DashboardError> {
    use tokio::signal::unix::{SignalKind, signal};
    // Opened before the runtime starts: a store's client may block (the
    // PostgreSQL client must not be called on a runtime's thread).
    let hub = Hub::open(data)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let door = Door::open(opts).await?;
        let config = AppConfig {
            tls: door.is_tls(),
            ..opts.app.clone()
        };
        let app = router(AppState::with_config(hub, opts.thresholds.clone(), config));
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        tokio::select! {
            r = door.serve(app) => r?,
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        Ok(())
    })
}
