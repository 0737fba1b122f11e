//! Server-rendered pages: the overview (alerts, the quarantine per
//! facility, the node table with its filters and sorting, liabilities,
//! settlement), a node's detail page, and the quarantined spends.
//!
//! Every value is HTML-escaped where it is written. The live part of a page
//! (`#live`) is refreshed by a small script that fetches the same URL and
//! swaps that element, so filters typed in the form outside it are kept: on
//! each `changed` event of the page's server-sent event stream ([`live`]),
//! or every few seconds where the browser has no `EventSource` or the hub
//! refused the stream. `/help` says what to do about each kind of alert.

use super::i18n::lang_of;
use super::query::OverviewQuery;
use super::scope::restrict_fleet;
use super::session::Operator;
use super::state::{AppState, now};
use crate::access::Access;
use crate::status::history::Window;
use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use mykey_sync_proto::NodeId;
use serde::Deserialize;

mod charts;
mod format;
mod help;
pub(crate) mod layout;
pub mod live;
mod node;
mod overview;
mod quarantine;
mod vouchers;

use charts::{ChartQuery, Charts};
pub use format::{fmt_duration, fmt_time, grouped};
pub use layout::esc;
use layout::{page, with_lang_cookie};
use node::render_node;
use overview::render_overview;

/// The page routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/nodes/{id}", get(node_page))
        .route("/quarantine", get(quarantine_page))
        .route("/vouchers", get(vouchers_page))
        .route("/help", get(help_page))
        .route("/events", get(live::overview_events))
        .route("/events/nodes/{id}", get(live::node_events))
}

/// Query of the help page.
#[derive(Debug, Default, Deserialize)]
pub struct HelpQuery {
    /// `ja` or `en`.
    pub lang: Option<String>,
}

async fn help_page(
    Extension(op): Extension<Operator>,
    headers: HeaderMap,
    Query(q): Query<HelpQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    with_lang_cookie(
        lang,
        q.lang.is_some(),
        Html(help::render_help(lang, &op.0)).into_response(),
    )
}

/// Query of the quarantine page: the API's filters and the language.
#[derive(Debug, Default, Deserialize)]
pub struct QuarantinePageQuery {
    /// `held` (default), `released`, `rejected` or `all`.
    pub state: Option<String>,
    /// Municipality code.
    pub municipality: Option<String>,
    /// Facility id.
    pub facility: Option<String>,
    /// Node id.
    pub node: Option<String>,
    /// `ja` or `en`.
    pub lang: Option<String>,
}

async fn quarantine_page(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    Query(q): Query<QuarantinePageQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let l = lang.labels();
    let list = crate::quarantine::query::ListQuery {
        state: q.state,
        municipality: q.municipality,
        facility: q.facility,
        node: q.node,
    };
    let mut filter = match list.filter() {
        Ok(f) => f,
        Err(e) => {
            return with_lang_cookie(
                lang,
                q.lang.is_some(),
                (
                    StatusCode::BAD_REQUEST,
                    Html(page(lang, &op.0, l.quarantine, &esc(&e))),
                )
                    .into_response(),
            );
        }
    };
    // A municipality's staff see their municipality only.
    if let Some(mine) = access.municipality() {
        match filter.municipality {
            Some(m) if m != mine => {
                let msg = format!(
                    "operator {} ({}) may not see municipality {m}'s data",
                    access.operator, access.role
                );
                return (
                    StatusCode::FORBIDDEN,
                    Html(page(lang, &op.0, l.quarantine, &esc(&msg))),
                )
                    .into_response();
            }
            _ => filter.municipality = Some(mine),
        }
    }
    let now = now();
    let resp = match state.with_hub(move |hub| hub.quarantined(&filter)).await {
        Ok(items) => {
            let truncated = items.len() >= crate::quarantine::MAX_LISTED as usize;
            Html(quarantine::render_quarantine(
                lang, &op.0, &items, truncated, &list, now,
            ))
            .into_response()
        }
        Err(e) => {
            tracing::error!("quarantine page: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(esc(l.hub_unavailable)),
            )
                .into_response()
        }
    };
    with_lang_cookie(lang, q.lang.is_some(), resp)
}

/// Query of the voucher incidents page.
#[derive(Debug, Default, Deserialize)]
pub struct LangOnly {
    /// `ja` or `en`.
    pub lang: Option<String>,
}

async fn vouchers_page(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    Query(q): Query<LangOnly>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let l = lang.labels();
    // A municipality's staff see their municipality's vouchers only.
    let mine = access.municipality();
    let resp = match state
        .with_hub(move |hub| crate::voucher::incidents::incidents(hub, mine))
        .await
    {
        Ok(items) => Html(vouchers::render_vouchers(lang, &op.0, &items)).into_response(),
        Err(e) => {
            tracing::error!("vouchers page: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(esc(l.hub_unavailable)),
            )
                .into_response()
        }
    };
    with_lang_cookie(lang, q.lang.is_some(), resp)
}

/// 400 for a chart window that is not `24h` or `7d`, saying so.
fn bad_window(lang: crate::http::i18n::Lang, op: &Operator, e: &str) -> Response {
    let l = lang.labels();
    (
        StatusCode::BAD_REQUEST,
        Html(page(
            lang,
            &op.0,
            l.title,
            &format!("<p class=\"error\">{}</p>", esc(e)),
        )),
    )
        .into_response()
}

async fn overview(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
    uri: Uri,
) -> Response {
    let (cq, raw) = ChartQuery::of(&uri);
    let lang = lang_of(&headers, q.lang.as_deref());
    let window = match cq.window() {
        Ok(w) => w,
        Err(e) => return bad_window(lang, &op, &e),
    };
    let data = match state.fleet(now()).await {
        Ok(fleet) => state
            .liabilities_and_settlement()
            .await
            .map(|(l, s)| (fleet, l, s)),
        Err(e) => Err(e),
    };
    let data = match data {
        Ok((fleet, l, s)) => {
            // The charts' history: the window shown and the sparklines' day.
            let (from, to) = window.range(fleet.at);
            let from = from.min(Window::Day.range(fleet.at).0);
            state.history(from, to).await.map(|h| (fleet, l, s, h))
        }
        Err(e) => Err(e),
    };
    let resp = match data {
        Ok((mut fleet, mut liabilities, mut settlement, history)) => {
            // A municipality's staff see their municipality only.
            restrict_fleet(&mut fleet, &access);
            liabilities.retain(|l| match &l.municipality {
                Some(m) => access.sees(m.code),
                None => access.municipality().is_none(),
            });
            settlement.retain(|s| access.sees(s.municipality.code));
            // The municipality filter narrows the charts too.
            let only = q.municipality.as_deref().filter(|m| !m.is_empty());
            let municipalities: Vec<_> = fleet
                .municipalities
                .iter()
                .filter(|m| only.is_none_or(|c| c == m.code.to_string()))
                .map(|m| (m.code, m.name.clone()))
                .collect();
            let charts = Charts::overview(
                lang,
                &fleet.nodes,
                &municipalities,
                &history,
                window,
                fleet.at,
                raw,
            );
            Html(render_overview(
                lang,
                &op.0,
                &fleet,
                &liabilities,
                &settlement,
                &q,
                &charts,
            ))
            .into_response()
        }
        Err(e) => {
            tracing::error!("dashboard: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(esc(lang.labels().hub_unavailable)),
            )
                .into_response()
        }
    };
    with_lang_cookie(lang, q.lang.is_some(), resp)
}

async fn node_page(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<OverviewQuery>,
    uri: Uri,
) -> Response {
    let (cq, raw) = ChartQuery::of(&uri);
    let lang = lang_of(&headers, q.lang.as_deref());
    let l = lang.labels();
    let window = match cq.window() {
        Ok(w) => w,
        Err(e) => return bad_window(lang, &op, &e),
    };
    let Ok(node) = NodeId::parse(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Html(page(lang, &op.0, l.not_found, &esc(l.not_found))),
        )
            .into_response();
    };
    let th = state.thresholds().clone();
    let now = now();
    let (from, to) = window.range(now);
    let resp = match state
        .with_hub(move |hub| {
            let d = hub.node_detail(&node, &th, now)?;
            let h = hub.status_history(Some(&node), from, to)?;
            Ok(d.map(|d| (d, h)))
        })
        .await
    {
        Ok(Some((d, history))) if access.sees(d.row.status.node.municipality) => {
            let charts = charts::node_section(lang, &node, &history, window, now, raw);
            Html(render_node(lang, &op.0, &d, now, &charts)).into_response()
        }
        Ok(_) => (
            StatusCode::NOT_FOUND,
            Html(page(lang, &op.0, l.not_found, &esc(l.not_found))),
        )
            .into_response(),
        Err(e) => {
            tracing::error!("node page: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(esc(l.hub_unavailable)),
            )
                .into_response()
        }
    };
    with_lang_cookie(lang, q.lang.is_some(), resp)
}
