//! The JSON API under the dashboard (`/api/…`), and its part of the OpenAPI
//! document ([`openapi`]), written here beside the handlers it describes;
//! [`crate::http::openapi`] gathers the parts and serves the document.
//!
//! Bodies are their own types (`*Json`), not the hub's records. Times are
//! Unix milliseconds; node ids are 64 hex digits.

use super::query::{OverviewQuery, select};
use super::scope::{not_yours, restrict_fleet};
use super::state::{AppState, HubAccessError, now};
use crate::access::Access;
use crate::observed::counters::reason_label;
use crate::status::assess::Alert;
use crate::status::history::Window;
use crate::status::{Liability, NodeDetail, NodeRow};
use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mykey_sync_proto::NodeId;
use serde::Serialize;
use serde_json::{Value, json};

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/{id}", get(node))
        .route("/api/nodes/{id}/history", get(node_history))
        .route("/api/alerts", get(alerts))
        .route("/api/liabilities", get(liabilities))
        .route("/api/settlement", get(settlement))
        .route("/api/escrow", get(escrow))
}

/// An alert.
#[derive(Debug, Serialize)]
pub struct AlertJson {
    /// `silent`, `clock-skew`, `rejections`, `replica-behind`, `shard-epoch-behind` or `quarantine`.
    pub kind: &'static str,
    /// The node.
    pub node: String,
    /// Silent: since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Silent or clock skew: the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_ms: Option<u64>,
    /// Clock skew: node minus hub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skew_ms: Option<i64>,
    /// Rejections: how many in the last day; quarantine: spends held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Quarantine: points held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<u64>,
    /// Replica behind: issue time of the oldest fact missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_missing_ms: Option<u64>,
    /// Shard epoch behind: the shard, the epoch held and the hub's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Shard epoch behind: the epoch the node holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_epoch: Option<u32>,
    /// Shard epoch behind: the hub's current epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u32>,
}

fn alert_json(node: &NodeId, a: &Alert) -> AlertJson {
    let mut j = AlertJson {
        kind: a.name(),
        node: node.to_string(),
        since_ms: None,
        threshold_ms: None,
        skew_ms: None,
        count: None,
        points: None,
        oldest_missing_ms: None,
        shard: None,
        held_epoch: None,
        current_epoch: None,
    };
    match a {
        Alert::Silent {
            since,
            threshold_ms,
        } => {
            j.since_ms = Some(since.0);
            j.threshold_ms = Some(*threshold_ms);
        }
        Alert::ClockSkew { skew_ms, limit_ms } => {
            j.skew_ms = Some(*skew_ms);
            j.threshold_ms = Some(*limit_ms);
        }
        Alert::Rejections { n } => j.count = Some(*n),
        Alert::ReplicaBehind { oldest_missing } => j.oldest_missing_ms = Some(oldest_missing.0),
        Alert::ShardEpochBehind {
            shard,
            held,
            current,
        } => {
            j.shard = Some(shard.clone());
            j.held_epoch = Some(*held);
            j.current_epoch = Some(*current);
        }
        Alert::Quarantine { items, points } => {
            j.count = Some(*items);
            j.points = Some(*points);
        }
    }
    j
}

/// One node's status.
#[derive(Debug, Serialize)]
pub struct NodeJson {
    /// Node key (hex).
    pub id: String,
    /// Facility id.
    pub facility: String,
    /// Facility name.
    pub facility_name: Option<String>,
    /// Facility kind.
    pub facility_kind: Option<&'static str>,
    /// Municipality code.
    pub municipality: String,
    /// Municipality name.
    pub municipality_name: String,
    /// `alert`, `never-seen`, `revoked` or `healthy`.
    pub health: &'static str,
    /// A link is up now.
    pub connected: bool,
    /// Last time the hub heard from it.
    pub last_contact_ms: Option<u64>,
    /// Share of the last 24 hours its link was up, permille.
    pub reachable_permille_24h: u32,
    /// Sessions opened in the last 24 hours.
    pub sessions_24h: u32,
    /// Transactions it signed that the hub has not processed (as of its last Hello).
    pub unconfirmed: u64,
    /// When the hub first learnt of the oldest unconfirmed ones.
    pub unconfirmed_since_ms: Option<u64>,
    /// Highest seq processed.
    pub processed_seq: u64,
    /// Business rejections ever.
    pub rejected_total: u64,
    /// Chain-level refusals ever.
    pub chain_refusals_total: u64,
    /// Refusals of both kinds in the last 24 hours.
    pub refusals_24h: u64,
    /// The latest refusal's reason label (`chain` for a chain-level refusal).
    pub last_refusal_reason: Option<&'static str>,
    /// The latest refusal in words.
    pub last_refusal_detail: Option<String>,
    /// When it happened.
    pub last_refusal_ms: Option<u64>,
    /// Node clock minus hub clock at its last Hello.
    pub clock_skew_ms: Option<i64>,
    /// Its software version.
    pub software: Option<String>,
    /// Its log fact cursor at its last Hello (shard epochs: the alerts and the node page).
    pub fact_cursor: Option<u64>,
    /// Issue time of the oldest fact it lacked.
    pub oldest_missing_fact_ms: Option<u64>,
    /// Its spends held in quarantine now (the node's flag).
    pub quarantine_held_items: u64,
    /// Their points.
    pub quarantine_held_points: u64,
    /// Its alerts.
    pub alerts: Vec<AlertJson>,
}

fn node_json(r: &NodeRow) -> NodeJson {
    let s = &r.status;
    let a = &r.assessment;
    let c = s.last_contact.as_ref();
    NodeJson {
        id: s.node.id.to_string(),
        facility: s.node.facility.as_str().to_owned(),
        facility_name: r.facility.as_ref().map(|f| f.name.clone()),
        facility_kind: r.facility.as_ref().map(|f| f.kind.name()),
        municipality: s.node.municipality.to_string(),
        municipality_name: r.municipality_name.clone(),
        health: a.health.name(),
        connected: a.connected,
        last_contact_ms: a.last_contact.map(|t| t.0),
        reachable_permille_24h: a.reachable_permille,
        sessions_24h: a.sessions_in_window,
        unconfirmed: s.n_unconfirmed(),
        unconfirmed_since_ms: s.pending_since.map(|t| t.0),
        processed_seq: s.chain.processed_seq,
        rejected_total: s.n_rejected,
        chain_refusals_total: s.n_incidents,
        refusals_24h: r.refusals_in_window,
        last_refusal_reason: r.last_refusal.as_ref().map(|x| x.label),
        last_refusal_detail: r.last_refusal.as_ref().map(|x| x.detail.clone()),
        last_refusal_ms: r.last_refusal.as_ref().map(|x| x.at.0),
        clock_skew_ms: c.map(|c| c.clock_skew_ms),
        software: c.map(|c| c.software.clone()),
        fact_cursor: c.map(|c| c.fact_cursor),
        oldest_missing_fact_ms: r.oldest_missing_fact.map(|t| t.0),
        quarantine_held_items: r.quarantine_held.items,
        quarantine_held_points: r.quarantine_held.points,
        alerts: a.alerts.iter().map(|x| alert_json(&s.node.id, x)).collect(),
    }
}

/// The node list.
#[derive(Debug, Serialize)]
pub struct NodesJson {
    /// When it was computed.
    pub at_ms: u64,
    /// Nodes matching the filters, sorted.
    pub nodes: Vec<NodeJson>,
}

fn unavailable(e: HubAccessError) -> Response {
    tracing::error!("api: {e}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the hub's database is unavailable; try again shortly"})),
    )
        .into_response()
}

async fn nodes(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(q): Query<OverviewQuery>,
) -> Response {
    match state.fleet(now()).await {
        Ok(mut fleet) => Json(NodesJson {
            at_ms: fleet.at.0,
            nodes: {
                restrict_fleet(&mut fleet, &access);
                select(&fleet, &q).into_iter().map(node_json).collect()
            },
        })
        .into_response(),
        Err(e) => unavailable(e),
    }
}

/// A session (link) of a node.
#[derive(Debug, Serialize)]
pub struct SessionJson {
    /// Hello.
    pub opened_ms: u64,
    /// Last confirmed up.
    pub seen_ms: u64,
    /// Closed (absent while open).
    pub closed_ms: Option<u64>,
}

/// A business rejection.
#[derive(Debug, Serialize)]
pub struct RejectionJson {
    /// Seq.
    pub seq: u64,
    /// Transaction id (hex).
    pub tx: String,
    /// Reason label.
    pub reason: &'static str,
    /// Reason text.
    pub detail: String,
    /// When processed.
    pub at_ms: u64,
}

/// An incident.
#[derive(Debug, Serialize)]
pub struct IncidentJson {
    /// Kind.
    pub kind: &'static str,
    /// Seq, where known.
    pub seq: Option<u64>,
    /// Details.
    pub detail: String,
    /// When.
    pub at_ms: u64,
}

/// One node in depth.
#[derive(Debug, Serialize)]
pub struct NodeDetailJson {
    /// Its status.
    pub node: NodeJson,
    /// Latest sessions, newest first.
    pub sessions: Vec<SessionJson>,
    /// Latest business rejections, newest first.
    pub rejections: Vec<RejectionJson>,
    /// Latest incidents, newest first.
    pub incidents: Vec<IncidentJson>,
}

fn detail_json(d: &NodeDetail) -> NodeDetailJson {
    NodeDetailJson {
        node: node_json(&d.row),
        sessions: d
            .sessions
            .iter()
            .map(|s| SessionJson {
                opened_ms: s.opened_at.0,
                seen_ms: s.seen_at.0,
                closed_ms: s.closed_at.map(|t| t.0),
            })
            .collect(),
        rejections: d
            .rejections
            .iter()
            .map(|r| RejectionJson {
                seq: r.seq,
                tx: r.tx.to_string(),
                reason: reason_label(&r.reason),
                detail: r.reason.to_string(),
                at_ms: r.at.0,
            })
            .collect(),
        incidents: d
            .incidents
            .iter()
            .map(|i| IncidentJson {
                kind: i.kind.name(),
                seq: i.seq,
                detail: i.detail.clone(),
                at_ms: i.at.0,
            })
            .collect(),
    }
}

async fn node(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Response {
    let Ok(node) = NodeId::parse(&id) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "a node id is 64 hex digits"})),
        )
            .into_response();
    };
    let th = state.thresholds().clone();
    let now = now();
    match state
        .with_hub(move |hub| hub.node_detail(&node, &th, now))
        .await
    {
        Ok(Some(d)) if access.sees(d.row.status.node.municipality) => {
            Json(detail_json(&d)).into_response()
        }
        Ok(_) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such node is enrolled"})),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

/// `?window=24h|7d` of `/api/nodes/{id}/history`.
#[derive(Debug, serde::Deserialize)]
pub struct HistoryQuery {
    /// `24h` (default) or `7d`.
    pub window: Option<String>,
}

/// One node's status history over a window.
#[derive(Debug, Serialize)]
pub struct HistoryJson {
    /// The node (hex).
    pub node: String,
    /// `24h` or `7d`.
    pub window: &'static str,
    /// The window's first instant.
    pub from_ms: u64,
    /// Its end (exclusive).
    pub to_ms: u64,
    /// The samples, oldest first; a slot without one had no hub running.
    pub samples: Vec<HistorySampleJson>,
}

/// What the hub knew of the node over one slot.
#[derive(Debug, Serialize)]
pub struct HistorySampleJson {
    /// The slot's first instant.
    pub at_ms: u64,
    /// The slot's length.
    pub span_ms: u32,
    /// Share of the slot its link was up, permille.
    pub up_permille: u16,
    /// Transactions signed that the hub had not processed (as last reported).
    pub unconfirmed: u64,
    /// How long the oldest of them had waited.
    pub oldest_unconfirmed_ms: Option<u64>,
    /// Refusals of its transactions since the previous sample.
    pub refusals: u64,
    /// Node clock minus hub clock at its last Hello.
    pub clock_skew_ms: Option<i64>,
}

async fn node_history(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let Ok(node) = NodeId::parse(&id) else {
        return bad("a node id is 64 hex digits".into());
    };
    let window = match q.window.as_deref().map_or(Ok(Window::Day), Window::parse) {
        Ok(w) => w,
        Err(e) => return bad(e),
    };
    let (from, to) = window.range(now());
    match state
        .with_hub(move |hub| {
            let Some(record) = hub.node(&node)? else {
                return Ok(None);
            };
            let samples = hub.status_history(Some(&node), from, to)?;
            Ok(Some((record, samples)))
        })
        .await
    {
        Ok(Some((record, samples))) if access.sees(record.municipality) => Json(HistoryJson {
            node: node.to_string(),
            window: window.name(),
            from_ms: from.0,
            to_ms: to.0,
            samples: samples
                .into_iter()
                .map(|s| HistorySampleJson {
                    at_ms: s.slot.0,
                    span_ms: s.span_ms,
                    up_permille: s.up_permille,
                    unconfirmed: s.unconfirmed,
                    oldest_unconfirmed_ms: s.oldest_unconfirmed_ms,
                    refusals: s.refusals,
                    clock_skew_ms: s.clock_skew_ms,
                })
                .collect(),
        })
        .into_response(),
        Ok(_) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such node is enrolled"})),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn alerts(State(state): State<AppState>, Extension(access): Extension<Access>) -> Response {
    match state.fleet(now()).await {
        Ok(mut fleet) => {
            restrict_fleet(&mut fleet, &access);
            let alerts: Vec<AlertJson> = fleet
                .nodes
                .iter()
                .flat_map(|r| {
                    r.assessment
                        .alerts
                        .iter()
                        .map(|a| alert_json(&r.status.node.id, a))
                })
                .collect();
            Json(json!({ "at_ms": fleet.at.0, "alerts": alerts })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// A municipality's liability figures, in points.
#[derive(Debug, Serialize)]
pub struct LiabilityJson {
    /// Code.
    pub municipality: String,
    /// Name.
    pub name: String,
    /// Points in holders' wallets.
    pub wallets: i64,
    /// Offline-overdraft debt owed by holders.
    pub debts: i64,
    /// Programme budgets left (negative: overdrawn).
    pub budgets: i64,
    /// Owed to merchants.
    pub merchant_payables: i64,
    /// Expired.
    pub expired: i64,
    /// Held in quarantine: not owed to holders, not payable unless released.
    pub quarantine_held: i64,
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn liability_json(l: &Liability) -> Option<LiabilityJson> {
    let m = l.municipality.as_ref()?;
    Some(LiabilityJson {
        municipality: m.code.to_string(),
        name: m.name.clone(),
        wallets: clamp(l.wallets),
        debts: clamp(l.debts),
        budgets: clamp(l.budgets),
        merchant_payables: clamp(l.merchant_payables),
        expired: clamp(l.expired),
        quarantine_held: clamp(l.quarantine_held),
    })
}

async fn liabilities(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Response {
    match state.with_hub(|hub| hub.liabilities()).await {
        Ok(ls) => Json(json!({
            "liabilities": ls.iter()
                .filter(|l| match &l.municipality {
                    Some(m) => access.sees(m.code),
                    None => access.municipality().is_none(),
                })
                .filter_map(liability_json).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => unavailable(e),
    }
}

/// `?municipality=CODE` of `/api/escrow`.
#[derive(Debug, serde::Deserialize)]
pub struct EscrowQuery {
    /// The municipality code (six digits with the check digit).
    pub municipality: Option<String>,
}

/// Strict mode in a municipality: the switch and the points reserved at the
/// hub for each node's spend rights.
#[derive(Debug, Serialize)]
pub struct EscrowJson {
    /// Code.
    pub municipality: String,
    /// Strict mode on.
    pub strict: bool,
    /// Points reserved in all.
    pub reserved_points: u64,
    /// One line per (holder, node) with points reserved.
    pub rights: Vec<EscrowLineJson>,
}

/// Points reserved for one node's right on one holder's wallet.
#[derive(Debug, Serialize)]
pub struct EscrowLineJson {
    /// The holder's account id.
    pub account: u64,
    /// The node, 64 hex digits.
    pub node: String,
    /// Points reserved.
    pub points: u64,
}

async fn escrow(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(q): Query<EscrowQuery>,
) -> Response {
    let Some(Ok(m)) = q
        .municipality
        .as_deref()
        .map(mykey_sync_proto::MunicipalityCode::parse)
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "give ?municipality=CODE (six digits with the check digit)"})),
        )
            .into_response();
    };
    if !access.sees(m) {
        return not_yours(&access, m);
    }
    match state.with_hub(move |hub| hub.escrow_view(m)).await {
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("municipality {m} is not registered")})),
        )
            .into_response(),
        Ok(Some((strict, lines))) => Json(EscrowJson {
            municipality: m.to_string(),
            strict,
            reserved_points: lines.iter().map(|l| l.points.get()).sum(),
            rights: lines
                .iter()
                .map(|l| EscrowLineJson {
                    account: l.account.get(),
                    node: l.node.to_string(),
                    points: l.points.get(),
                })
                .collect(),
        })
        .into_response(),
        Err(e) => unavailable(e),
    }
}

/// A municipality's settlement.
#[derive(Debug, Serialize)]
pub struct SettlementJson {
    /// Code.
    pub municipality: String,
    /// Name.
    pub name: String,
    /// Periods closed.
    pub periods_closed: usize,
    /// The latest closed period (absent: none closed yet).
    pub latest: Option<PeriodJson>,
}

/// A closed settlement period, summed.
#[derive(Debug, Serialize)]
pub struct PeriodJson {
    /// First instant.
    pub starts_ms: u64,
    /// End (exclusive).
    pub ends_ms: u64,
    /// When it was closed.
    pub closed_ms: u64,
    /// Statement lines.
    pub statements: usize,
    /// Yen over its statement lines.
    pub yen: u64,
}

async fn settlement(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Response {
    match state.with_hub(|hub| hub.settlement_status()).await {
        Ok(lines) => {
            let v: Vec<SettlementJson> = lines
                .into_iter()
                .filter(|s| access.sees(s.municipality.code))
                .map(|s| SettlementJson {
                    municipality: s.municipality.code.to_string(),
                    name: s.municipality.name,
                    periods_closed: s.periods_closed,
                    latest: s.latest.map(|p| PeriodJson {
                        starts_ms: p.starts_at.0,
                        ends_ms: p.ends_at.0,
                        closed_ms: p.closed_at.0,
                        statements: p.n_statements,
                        yen: p.yen,
                    }),
                })
                .collect();
            Json(json!({ "settlement": v })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// The OpenAPI 3.1 paths of [`routes`] and the schemas they refer to, for
/// [`crate::http::openapi::openapi_document`]; `ok` builds a path's responses
/// from a description and a schema.
pub fn openapi(ok: impl Fn(&str, Value) -> Value) -> (Value, Value) {
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let filters = json!([
        {"name": "municipality", "in": "query", "schema": {"type": "string"}, "description": "6-digit municipality code"},
        {"name": "status", "in": "query", "schema": {"enum": ["alert", "never-seen", "revoked", "healthy"]}},
        {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "text in the facility name or id, or a node id prefix"},
        {"name": "sort", "in": "query", "schema": {"enum": ["status", "facility", "municipality", "last_contact", "reachable", "sessions", "unconfirmed", "oldest", "rejected", "quarantine", "skew", "version"]}},
        {"name": "dir", "in": "query", "schema": {"enum": ["asc", "desc"]}}
    ]);
    let alert = json!({"type": "object", "required": ["kind", "node"], "properties": {
        "kind": {"enum": ["silent", "clock-skew", "rejections", "replica-behind", "shard-epoch-behind", "quarantine"]},
        "node": {"type": "string"}, "since_ms": {"type": "integer"}, "threshold_ms": {"type": "integer"},
        "skew_ms": {"type": "integer"}, "count": {"type": "integer", "description": "rejections: refusals in the last day; quarantine: spends held"},
        "points": {"type": "integer", "description": "quarantine: points held"}, "oldest_missing_ms": {"type": "integer"},
        "shard": {"type": "string"}, "held_epoch": {"type": "integer"}, "current_epoch": {"type": "integer"}}});
    let node = json!({"type": "object", "properties": {
        "id": {"type": "string"}, "facility": {"type": "string"}, "facility_name": {"type": ["string", "null"]},
        "facility_kind": {"type": ["string", "null"]}, "municipality": {"type": "string"}, "municipality_name": {"type": "string"},
        "health": {"enum": ["alert", "never-seen", "revoked", "healthy"]}, "connected": {"type": "boolean"},
        "last_contact_ms": {"type": ["integer", "null"]}, "reachable_permille_24h": {"type": "integer"},
        "sessions_24h": {"type": "integer"}, "unconfirmed": {"type": "integer"},
        "unconfirmed_since_ms": {"type": ["integer", "null"]}, "processed_seq": {"type": "integer"},
        "rejected_total": {"type": "integer"}, "chain_refusals_total": {"type": "integer"},
        "refusals_24h": {"type": "integer"}, "last_refusal_reason": {"type": ["string", "null"]},
        "last_refusal_detail": {"type": ["string", "null"]}, "last_refusal_ms": {"type": ["integer", "null"]}, "clock_skew_ms": {"type": ["integer", "null"]},
        "software": {"type": ["string", "null"]}, "fact_cursor": {"type": ["integer", "null"]},
        "oldest_missing_fact_ms": {"type": ["integer", "null"]},
        "quarantine_held_items": {"type": "integer", "description": "its spends held in quarantine now (GET /api/quarantine?node=ID)"},
        "quarantine_held_points": {"type": "integer", "description": "their points"},
        "alerts": {"type": "array", "items": r("Alert")}}});
    let paths = json!({
        "/api/nodes": {"get": {"summary": "Every node's sync status, filtered and sorted", "parameters": filters,
            "responses": ok("nodes", json!({"type": "object", "properties": {"at_ms": {"type": "integer"}, "nodes": {"type": "array", "items": r("Node")}}}))}},
        "/api/nodes/{id}": {"get": {"summary": "One node: status, recent sessions, rejections, incidents",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
            "responses": ok("the node", r("NodeDetail"))}},
        "/api/nodes/{id}/history": {"get": {"summary": "One node's status history: a sample per five-minute slot (kept a week), as the dashboard's charts show it",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                {"name": "window", "in": "query", "schema": {"enum": ["24h", "7d"]}, "description": "the last 24 hours (default) or 7 days"}],
            "responses": {
                "200": {"description": "the history", "content": {"application/json": {"schema": r("NodeHistory")}}},
                "400": {"description": "not a node id, or a window other than 24h or 7d"},
                "401": {"description": "not logged in: send the session cookie or Authorization: Bearer <token>"},
                "404": {"description": "no such node is enrolled (or it is another municipality's)"},
                "503": {"description": "the hub's database is unavailable"}}}},
        "/api/alerts": {"get": {"summary": "Alerts that hold now",
            "responses": ok("alerts", json!({"type": "object", "properties": {"at_ms": {"type": "integer"}, "alerts": {"type": "array", "items": r("Alert")}}}))}},
        "/api/liabilities": {"get": {"summary": "Points outstanding per municipality",
            "responses": ok("liabilities", json!({"type": "object", "properties": {"liabilities": {"type": "array", "items": r("Liability")}}}))}},
        "/api/settlement": {"get": {"summary": "Per municipality: settlement periods closed and the latest one",
            "responses": ok("settlement status", json!({"type": "object", "properties": {"settlement": {"type": "array", "items": {"type": "object", "properties": {
                "municipality": {"type": "string"}, "name": {"type": "string"}, "periods_closed": {"type": "integer"},
                "latest": {"type": ["object", "null"], "properties": {"starts_ms": {"type": "integer"}, "ends_ms": {"type": "integer"},
                    "closed_ms": {"type": "integer"}, "statements": {"type": "integer"}, "yen": {"type": "integer"}}}}}}}}))}},
        "/api/escrow": {"get": {"summary": "Strict mode in a municipality: the switch and the points reserved at the hub for each node's spend rights (`mykey-hub escrow status`)",
            "parameters": [{"name": "municipality", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[0-9]{6}$"}}],
            "responses": {
                "200": {"description": "the escrow", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "municipality": {"type": "string"}, "strict": {"type": "boolean"}, "reserved_points": {"type": "integer"},
                    "rights": {"type": "array", "items": {"type": "object", "properties": {
                        "account": {"type": "integer"}, "node": {"type": "string"}, "points": {"type": "integer"}}}}}}}}},
                "400": {"description": "no municipality code, or not a valid one"},
                "401": {"description": "not logged in: send the session cookie or Authorization: Bearer <token>"},
                "403": {"description": "the token's scope does not allow reports, or the municipality is not the staff operator's"},
                "404": {"description": "the municipality is not registered"},
                "503": {"description": "the hub's database is unavailable"}}}}
    });
    let schemas = json!({
        "Alert": alert,
        "Node": node,
        "NodeDetail": {"type": "object", "properties": {
            "node": r("Node"),
            "sessions": {"type": "array", "items": {"type": "object", "properties": {
                "opened_ms": {"type": "integer"}, "seen_ms": {"type": "integer"}, "closed_ms": {"type": ["integer", "null"]}}}},
            "rejections": {"type": "array", "items": {"type": "object", "properties": {
                "seq": {"type": "integer"}, "tx": {"type": "string"}, "reason": {"type": "string"},
                "detail": {"type": "string"}, "at_ms": {"type": "integer"}}}},
            "incidents": {"type": "array", "items": {"type": "object", "properties": {
                "kind": {"type": "string"}, "seq": {"type": ["integer", "null"]},
                "detail": {"type": "string"}, "at_ms": {"type": "integer"}}}}}},
        "NodeHistory": {"type": "object", "properties": {
            "node": {"type": "string"}, "window": {"enum": ["24h", "7d"]},
            "from_ms": {"type": "integer"}, "to_ms": {"type": "integer", "description": "exclusive"},
            "samples": {"type": "array", "description": "oldest first; a slot without a sample had no hub running", "items": {"type": "object", "properties": {
                "at_ms": {"type": "integer", "description": "the slot's first instant"},
                "span_ms": {"type": "integer", "description": "the slot's length"},
                "up_permille": {"type": "integer", "description": "share of the slot the node's link was up (0: down)"},
                "unconfirmed": {"type": "integer", "description": "transactions signed that the hub had not processed, as last reported"},
                "oldest_unconfirmed_ms": {"type": ["integer", "null"], "description": "how long the oldest of them had waited"},
                "refusals": {"type": "integer", "description": "refusals of its transactions since the previous sample"},
                "clock_skew_ms": {"type": ["integer", "null"], "description": "node clock minus hub clock at its last Hello"}}}}}},
        "Liability": {"type": "object", "properties": {
            "municipality": {"type": "string"}, "name": {"type": "string"}, "wallets": {"type": "integer"},
            "debts": {"type": "integer"}, "budgets": {"type": "integer"},
            "merchant_payables": {"type": "integer"}, "expired": {"type": "integer"},
            "quarantine_held": {"type": "integer", "description": "points of spends held in quarantine: not owed to holders and not payable to merchants unless an operator releases them"}}}
    });
    (paths, schemas)
}
