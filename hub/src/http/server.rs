//! The hub's HTTP server (the dashboard, its API and the operator exchange
//! API): hyper HTTP/1.1 with every wait bounded, optionally over TLS.
//!
//! - A connection must send a request's headers within
//!   [`HttpLimits::header_read_timeout`] (and, over TLS, finish its handshake
//!   in the same time), or it is closed.
//! - At most [`HttpLimits::max_connections`] connections are open; one more
//!   is closed as soon as it is accepted.
//! - At most [`HttpLimits::max_in_flight`] requests are handled at once; one
//!   more is answered `503` with `Retry-After` at once.
//! - A handler gets [`HttpLimits::request_timeout`], then `503`.
//! - A body is read only by [`limit_body`], within its route's size and the
//!   body timeout: a declared `Content-Length` above the limit is answered
//!   `413` before a byte of the body is read.
//! - A handler that panics answers a generic `500` with an incident id; the
//!   log line with that id carries the panic message, the answer never does.
//!
//! Each request carries its client's address as
//! `ConnectInfo<SocketAddr>` (the login limits count per address).

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::{FutureExt, StreamExt};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Bounds on the HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers (and the TLS handshake) must arrive within this.
    pub header_read_timeout: Duration,
    /// A request must be answered within this (body read included).
    pub request_timeout: Duration,
    /// A body must arrive whole within this.
    pub body_timeout: Duration,
    /// Connections open at most.
    pub max_connections: usize,
    /// Requests handled at once at most.
    pub max_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_in_flight: 64,
        }
    }
}

/// The certificate chain and key `serve` uses for HTTPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file did not read or parse.
    #[error(
        "{path}: {detail}; give a PEM file with --tls-cert (certificate chain) and --tls-key (private key)"
    )]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The certificate has no certificates in it.
    #[error("{0}: no certificate found; give the PEM certificate chain with --tls-cert")]
    NoCertificate(PathBuf),
    /// The key does not fit the certificate, or is of an unsupported kind.
    #[error(
        "the TLS certificate and key cannot be used together: {0}; check that --tls-key belongs to --tls-cert"
    )]
    Config(#[from] rustls::Error),
}

/// A TLS acceptor for `files` (rustls with ring; TLS 1.3, the only version built in).
pub fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_error = |path: &Path, e: &dyn std::fmt::Display| TlsError::File {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, &e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    warn_if_readable(&files.key);
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn warn_if_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(key = %path.display(), "the TLS key is readable by group or others; run `chmod 600` on it");
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) within `limits`, until
/// the task is dropped.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    let app = guarded(app, &limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    let http = Arc::new(http);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather
                // than spin; the connections being served carry on.
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many HTTP connections: closing a new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        let http = http.clone();
        let tls = tls.clone();
        let handshake = limits.header_read_timeout;
        tokio::spawn(async move {
            connection(stream, peer, app, &http, tls, handshake).await;
            drop(permit);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    http: &hyper::server::conn::http1::Builder,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handshake: Duration,
) {
    let service = TowerToHyperService::new(app);
    let result = match tls {
        None => http.serve_connection(TokioIo::new(stream), service).await,
        Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
            Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), service).await,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "HTTP connection ended: {e}");
    }
}

#[derive(Clone)]
struct Guard {
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
}

/// `app` behind the in-flight limit, the request timeout and the panic catcher.
fn guarded(app: Router, limits: &HttpLimits) -> Router {
    let g = Guard {
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        request_timeout: limits.request_timeout,
    };
    app.layer(middleware::from_fn_with_state(g, guard))
}

async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let Ok(_permit) = g.in_flight.clone().try_acquire_owned() else {
        return busy("the hub is serving as many requests as it takes at once; retry in a second");
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let run = std::panic::AssertUnwindSafe(next.run(req)).catch_unwind();
    match tokio::time::timeout(g.request_timeout, run).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(panic)) => {
            let id = incident_id();
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(incident = %id, %method, %path, panic = %msg, "a request handler panicked");
            let mut resp = (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({
                    "error": format!("the hub hit an internal error (incident {id}); nothing was changed by it; tell the hub operator the incident id"),
                    "incident": id,
                })),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        Err(_) => {
            tracing::warn!(%method, %path, timeout_ms = g.request_timeout.as_millis() as u64, "request timed out");
            busy("the request took too long and was abandoned; retry shortly")
        }
    }
}

/// An id for a log line, random so it says nothing about the hub.
fn incident_id() -> String {
    let mut raw = [0u8; 6];
    if getrandom::fill(&mut raw).is_err() {
        let t = crate::net::unix_now().0.to_be_bytes();
        raw.copy_from_slice(&t[2..]);
    }
    hex::encode(raw)
}

fn busy(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// How a route's body is read: at most `max_bytes`, within `timeout`.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    /// Largest body the route takes.
    pub max_bytes: usize,
    /// The body must arrive whole within this.
    pub timeout: Duration,
}

/// `router` with its request bodies read by [`BodyLimit`]: a declared
/// `Content-Length` above the limit is answered `413` at once, unread; a
/// longer chunked body `413` once past it; a slow one `408`.
pub fn limit_body<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limit: BodyLimit,
) -> Router<S> {
    router.layer(middleware::from_fn_with_state(limit, read_body))
}

async fn read_body(State(limit): State<BodyLimit>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.max_bytes as u64) {
        return too_large(limit.max_bytes);
    }
    let (parts, body) = req.into_parts();
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
            if buf.len() + chunk.len() > limit.max_bytes {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    match tokio::time::timeout(limit.timeout, read).await {
        Ok(Ok(buf)) => next.run(Request::from_parts(parts, Body::from(buf))).await,
        Ok(Err(StatusCode::PAYLOAD_TOO_LARGE)) => too_large(limit.max_bytes),
        Ok(Err(_)) => closing(
            StatusCode::BAD_REQUEST,
            "the request body broke off; send it again".to_owned(),
        ),
        Err(_) => closing(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s; send it whole",
                limit.timeout.as_secs()
            ),
        ),
    }
}

fn too_large(max: usize) -> Response {
    closing(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("this route takes bodies of at most {max} bytes"),
    )
}

/// An error answer after which the connection closes (its body may be unread).
fn closing(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONNECTION, "close")],
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}
