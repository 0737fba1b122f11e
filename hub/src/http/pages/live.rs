//! The live part of the overview and the node pages, over server-sent
//! events: `GET /events` (the overview) and `GET /events/nodes/{id}` (a
//! node's page), behind the same login and capability as the page.
//!
//! A stream sends no page content. Every [`AppConfig::live_check`] it reads
//! the dashboard's cached reads ([`AppState::fleet`],
//! [`AppState::liabilities_and_settlement`], so however many views are
//! open the hub computes them once), narrowed to what the operator may see
//! and to the node for a node's page, and sends a `changed` event when that
//! differs from what it last saw (or when nothing changed for
//! [`QUIET_REFRESH`], so the ages a page shows stay right); the page then
//! fetches itself once and swaps its `#live` element, exactly as the
//! polling fallback does. A comment every [`KEEP_ALIVE`] keeps proxies from
//! closing an idle stream, and the first message sets the browser's
//! reconnect delay ([`RETRY`]).
//!
//! At most [`AppConfig::max_live_streams`] streams are open at once: one
//! more is answered 503 (the page then polls and tries again later). A
//! stream ends after [`AppConfig::live_stream_max_age`]; the browser opens
//! another, and the login is checked again.
//!
//! [`AppConfig::live_check`]: crate::http::AppConfig::live_check
//! [`AppConfig::max_live_streams`]: crate::http::AppConfig::max_live_streams
//! [`AppConfig::live_stream_max_age`]: crate::http::AppConfig::live_stream_max_age

use crate::access::Access;
use crate::http::scope::restrict_fleet;
use crate::http::state::{AppState, HubAccessError, now};
use crate::status::NodeRow;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use mykey_sync_proto::NodeId;
use std::convert::Infallible;
use std::hash::{DefaultHasher, Hasher};
use std::time::{Duration, Instant};

/// The browser waits this long before opening a dropped stream again.
pub const RETRY: Duration = Duration::from_secs(2);
/// A comment this often while nothing changes.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A `changed` event at least this often, so "N min ago" stays right.
pub const QUIET_REFRESH: Duration = Duration::from_secs(30);

/// What a stream watches.
#[derive(Clone, Copy, Debug)]
enum Watch {
    /// The overview: every node the operator sees, liabilities, settlement.
    Overview,
    /// One node's row.
    Node(NodeId),
}

/// `GET /events`: the overview's changes.
pub(super) async fn overview_events(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Response {
    open(state, access, Watch::Overview).await
}

/// `GET /events/nodes/{id}`: one node's changes.
pub(super) async fn node_events(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Response {
    match NodeId::parse(&id) {
        Ok(node) => open(state, access, Watch::Node(node)).await,
        Err(_) => not_found(),
    }
}

async fn open(state: AppState, access: Access, watch: Watch) -> Response {
    let Some(permit) = state.live_stream_permit() else {
        let max = state.config().max_live_streams;
        tracing::warn!(max, operator = %access.operator, "live view refused: as many streams are open as the hub allows");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "30")],
            axum::Json(serde_json::json!({
                "error": format!(
                    "this hub already serves {max} live dashboard views, the most it keeps open at once; \
                     the page refreshes every few seconds instead and tries again later; close dashboard \
                     tabs you do not need, or start `mykey-hub serve` with a larger --max-live-streams"
                )
            })),
        )
            .into_response();
    };
    let first = match fingerprint(&state, &access, watch).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!("live view: {e}");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                axum::Json(serde_json::json!({
                    "error": "the hub's database is unavailable; the page tries again shortly"
                })),
            )
                .into_response();
        }
    };
    let started = Instant::now();
    let watcher = Watcher {
        check: state.config().live_check,
        max_age: state.config().live_stream_max_age,
        state,
        access,
        watch,
        _permit: permit,
        last: first,
        last_sent: started,
        started,
        greeted: false,
    };
    let stream = futures::stream::unfold(watcher, |mut w| async move {
        let ev = w.next_event().await?;
        Some((Ok::<Event, Infallible>(ev), w))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "error": "no such node, or not yours to see" })),
    )
        .into_response()
}

/// One open stream's state; its permit goes back when the stream is dropped
/// (the browser left, or the stream ended).
struct Watcher {
    state: AppState,
    access: Access,
    watch: Watch,
    check: Duration,
    max_age: Duration,
    _permit: tokio::sync::OwnedSemaphorePermit,
    last: u64,
    last_sent: Instant,
    started: Instant,
    greeted: bool,
}

impl Watcher {
    /// The next event to send; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        if !self.greeted {
            self.greeted = true;
            return Some(Event::default().retry(RETRY).comment("live"));
        }
        loop {
            let left = self.max_age.checked_sub(self.started.elapsed())?;
            if left.is_zero() {
                return None;
            }
            tokio::time::sleep(self.check.min(left)).await;
            match fingerprint(&self.state, &self.access, self.watch).await {
                Ok(Some(f)) if f != self.last || self.last_sent.elapsed() >= QUIET_REFRESH => {
                    self.last = f;
                    self.last_sent = Instant::now();
                    return Some(Event::default().event("changed").data(format!("{f:016x}")));
                }
                Ok(Some(_)) => {}
                // The node went (or left this operator's sight): the page
                // fetches itself once more, shows why, and the stream ends.
                Ok(None) => {
                    self.max_age = Duration::ZERO;
                    return Some(Event::default().event("changed").data("gone"));
                }
                Err(e) => tracing::warn!("live view: cannot read the fleet: {e}"),
            }
        }
    }
}

/// A digest of what the watched page shows, leaving out what moves with the
/// clock alone (the instant of the read, a connected node's last contact,
/// which is always "now"); `None` when the watched node is not visible.
async fn fingerprint(
    state: &AppState,
    access: &Access,
    watch: Watch,
) -> Result<Option<u64>, HubAccessError> {
    let mut fleet = state.fleet(now()).await?;
    restrict_fleet(&mut fleet, access);
    let mut h = DefaultHasher::new();
    match watch {
        Watch::Node(id) => {
            let Some(row) = fleet.nodes.iter().find(|r| r.status.node.id == id) else {
                return Ok(None);
            };
            hash_row(&mut h, row);
        }
        Watch::Overview => {
            for row in &fleet.nodes {
                hash_row(&mut h, row);
            }
            hash_debug(&mut h, &fleet.municipalities);
            hash_debug(&mut h, &fleet.quarantine);
            let (mut liabilities, mut settlement) = state.liabilities_and_settlement().await?;
            liabilities.retain(|l| match &l.municipality {
                Some(m) => access.sees(m.code),
                None => access.municipality().is_none(),
            });
            settlement.retain(|s| access.sees(s.municipality.code));
            hash_debug(&mut h, &liabilities);
            hash_debug(&mut h, &settlement);
        }
    }
    Ok(Some(h.finish()))
}

fn hash_row(h: &mut DefaultHasher, row: &NodeRow) {
    let mut row = row.clone();
    if row.assessment.connected {
        row.assessment.last_contact = None;
    }
    hash_debug(h, &row);
}

/// Feeds `v`'s `Debug` text to the hasher without building the string.
fn hash_debug(h: &mut DefaultHasher, v: &impl std::fmt::Debug) {
    struct Feed<'a>(&'a mut DefaultHasher);
    impl std::fmt::Write for Feed<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let _ = std::fmt::write(&mut Feed(h), format_args!("{v:?}"));
}
