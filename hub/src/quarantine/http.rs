//! The quarantine over HTTP, behind the dashboard's login
//! ([`crate::http::routes`] merges [`routes`]):
//!
//! - `GET /api/quarantine?state=held|released|rejected|all&municipality=&facility=&node=`:
//!   the spends held beyond nodes' bounds (held ones by default), oldest
//!   first; a municipality's staff see their municipality's only.
//! - `GET /api/quarantine/{id}`: one spend with its evidence, the signed
//!   redeem's bytes in hex as the node signed them.
//! - `POST /api/quarantine/{id}/release` and `…/reject` with the JSON body
//!   `{"why": "…"}`: an admin's decision. Who decided is the operator of the
//!   session or token, never a field of the body. `404` for an unknown
//!   spend, `409` for one already decided (a decision is final), `422` for
//!   an empty or overlong reason, `415` for a body that is not JSON.
//!
//! Reading needs the reports capability and deciding the act capability
//! ([`crate::access`]): [`crate::http::auth::require`] refuses the rest (403).

use super::cli::item_json;
pub use super::query::ListQuery;
use super::{DecideError, MAX_LISTED, MAX_REASON_CHARS};
use crate::access::Access;
use crate::http::scope::not_yours;
use crate::http::state::{AppState, HubAccessError, now};
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mykey_sync_proto::{SignedTx, TxBody};
use serde_json::{Value, json};

/// The quarantine's API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/quarantine", get(list))
        .route("/api/quarantine/{id}", get(one))
        .route("/api/quarantine/{id}/release", post(release))
        .route("/api/quarantine/{id}/reject", post(reject))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn unavailable(e: HubAccessError) -> Response {
    tracing::error!("quarantine api: {e}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the hub's database is unavailable; try again shortly",
    )
}

async fn list(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(q): Query<ListQuery>,
) -> Response {
    let mut filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // A municipality's staff see their municipality only.
    if let Some(mine) = access.municipality() {
        match filter.municipality {
            Some(m) if m != mine => return not_yours(&access, m),
            _ => filter.municipality = Some(mine),
        }
    }
    match state.with_hub(move |hub| hub.quarantined(&filter)).await {
        Ok(items) => Json(json!({
            "truncated": items.len() >= MAX_LISTED as usize,
            "items": items.iter().map(item_json).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => unavailable(e),
    }
}

/// The signed redeem behind a quarantined spend, as JSON: its bytes in hex
/// and what the hub reads in them.
pub fn evidence_json(signed: &SignedTx) -> Value {
    let mut v = json!({
        "signed_hex": hex::encode(signed.to_bytes()),
        "signature_valid": false,
    });
    if let Ok(verified) = signed.verify() {
        let p = verified.payload();
        v["signature_valid"] = json!(true);
        v["created_at_ms"] = json!(p.created_at.0);
        if let TxBody::Redeem(r) = &p.body {
            v["redeem_points"] = json!(r.points.get());
            v["merchant"] = json!(r.merchant.as_str());
            v["basis"] = r.basis.map_or(Value::Null, |b| {
                json!({"ledger_pos": b.ledger_pos, "balance": b.balance.get(), "debt": b.debt.get()})
            });
            v["card_proof"] = json!(r.card_proof.is_some());
        }
    }
    v
}

/// A spend's number from the path, or the 400 that says what it should be.
fn parse_id(id: &str) -> Result<u64, Box<Response>> {
    id.parse().map_err(|_| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a quarantined spend's number (see GET /api/quarantine)"),
        ))
    })
}

fn unknown(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no quarantined spend #{id}: list them with GET /api/quarantine?state=all"),
    )
}

async fn one(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match state
        .with_hub(move |hub| hub.quarantined_with_evidence(id))
        .await
    {
        // Another municipality's spend is not shown to its staff, as a node is not.
        Ok(Some((q, signed))) if access.sees(q.municipality) => {
            let mut v = item_json(&q);
            v["evidence"] = signed.as_ref().map_or(Value::Null, evidence_json);
            Json(v).into_response()
        }
        Ok(_) => unknown(id),
        Err(e) => unavailable(e),
    }
}

/// The body of a decision.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    /// Why, in the operator's words (recorded, logged, shown).
    pub why: String,
}

#[derive(Clone, Copy, Debug)]
enum Decision {
    Release,
    Reject,
}

async fn release(
    state: State<AppState>,
    access: Extension<Access>,
    id: Path<String>,
    body: Result<Json<DecideBody>, JsonRejection>,
) -> Response {
    decide(state, access, id, body, Decision::Release).await
}

async fn reject(
    state: State<AppState>,
    access: Extension<Access>,
    id: Path<String>,
    body: Result<Json<DecideBody>, JsonRejection>,
) -> Response {
    decide(state, access, id, body, Decision::Reject).await
}

async fn decide(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    body: Result<Json<DecideBody>, JsonRejection>,
    decision: Decision,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let why = match body {
        Ok(Json(b)) => b.why,
        Err(JsonRejection::MissingJsonContentType(_)) => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                r#"send the decision as JSON (Content-Type: application/json): {"why": "…"}"#,
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(r#"send the decision as the JSON object {{"why": "…"}}: {e}"#),
            );
        }
    };
    if why.trim().is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"a decision needs a reason: {"why": "…"} (recorded and logged with your name)"#,
        );
    }
    if why.chars().count() > MAX_REASON_CHARS {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the reason is too long: say why in at most {MAX_REASON_CHARS} characters"),
        );
    }
    let now = now();
    let by = access.operator.clone();
    // A decision writes the ledger: through the hub's one writer.
    let decided = state
        .with_writer(move |hub| {
            // Only what the operator may see can be decided (today only
            // admins act, and they see everything).
            match hub.quarantine_item(id)? {
                Some(q) if access.sees(q.municipality) => {}
                _ => return Ok(Err(DecideError::Unknown(id))),
            }
            Ok(match decision {
                Decision::Release => hub.release_quarantined(id, &by, &why, now),
                Decision::Reject => hub.reject_quarantined(id, &by, &why, now),
            })
        })
        .await;
    match decided {
        Ok(Ok(q)) => Json(item_json(&q)).into_response(),
        Ok(Err(e)) => decide_error(e),
        Err(e) => unavailable(e),
    }
}

fn decide_error(e: DecideError) -> Response {
    let status = match &e {
        DecideError::Unknown(id) => return unknown(*id),
        DecideError::AlreadyDecided { .. } => StatusCode::CONFLICT,
        DecideError::Unexplained | DecideError::LongReason => StatusCode::UNPROCESSABLE_ENTITY,
        DecideError::Evidence(_) => {
            tracing::error!("quarantine decision: {e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        DecideError::Store(s) => {
            tracing::error!("quarantine decision: {s}");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub's database is unavailable; nothing was decided: try again shortly",
            );
        }
    };
    error(status, e.to_string())
}

/// The OpenAPI 3.1 paths of [`routes`] and the schemas they refer to, for
/// [`crate::http::openapi::openapi_document`]; `ok` builds a path's responses
/// from a description and a schema.
pub fn openapi(ok: impl Fn(&str, Value) -> Value) -> (Value, Value) {
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let int = |d: &str| json!({"type": "integer", "description": d});
    let text = |d: &str| json!({"type": "string", "description": d});
    let id_param = json!({"name": "id", "in": "path", "required": true,
        "schema": {"type": "integer", "minimum": 1}, "description": "the spend's number (`id` in the list)"});
    let item_props = json!({
        "id": int("the spend's number"),
        "state": {"enum": ["held", "released", "rejected"], "description": "held: settlement does not pay it; released: paid as a redeem when released; rejected: never paid"},
        "points": int("points held (the part of the spend beyond the bound)"),
        "municipality": text("6-digit code"),
        "facility": text("the facility that would be paid"),
        "node": text("the node that signed it (64 hex digits)"),
        "seq": int("its seq in the node's chain"),
        "tx": text("the signed transaction's id (hex)"),
        "account": int("the holder's account id"),
        "card": text("the card's short hash"),
        "rule": {"enum": ["card-proof", "card-limit", "exposure-limit"], "description": "the bound it went beyond"},
        "detail": text("the bound in words, with its figures"),
        "held_at": int("when the hub held it (Unix ms)"),
        "decided_by": {"type": ["string", "null"], "description": "the operator who decided"},
        "why": {"type": ["string", "null"], "description": "their reason"},
        "decided_at": {"type": ["integer", "null"], "description": "when (Unix ms)"}
    });
    let mut detail_props = item_props.clone();
    detail_props["evidence"] = json!({"type": ["object", "null"],
        "description": "the signed redeem as the hub processed it (null only if the database lost it)",
        "properties": {
            "signed_hex": text("the signed transaction's canonical bytes (payload and ed25519 signature), hex"),
            "signature_valid": {"type": "boolean", "description": "the node's signature verifies"},
            "created_at_ms": int("the node's clock when it signed"),
            "redeem_points": int("points the node asked for in all (paid and held)"),
            "merchant": text("the facility named in the redeem"),
            "basis": {"type": ["object", "null"], "description": "the hub-issued balance the node said it decided on",
                "properties": {"ledger_pos": int("ledger position"), "balance": int("balance"), "debt": int("debt")}},
            "card_proof": {"type": "boolean", "description": "a card proof (PIN signature) came with it"}}});
    let schemas = json!({
        "QuarantineItem": {"type": "object", "properties": item_props},
        "QuarantineDetail": {"type": "object", "properties": detail_props}
    });
    let decide = |what: &str| {
        let mut responses = ok(&format!("the spend, {what}"), r("QuarantineItem"));
        responses["400"] = json!({"description": "the number or the body is malformed (the error says what to send)"});
        responses["404"] = json!({"description": "no such quarantined spend"});
        responses["409"] =
            json!({"description": "already released or rejected: a decision is final"});
        responses["415"] =
            json!({"description": "the body is not JSON (Content-Type: application/json)"});
        responses["422"] = json!({"description": "no reason, or one over 1000 characters"});
        json!({
            "parameters": [id_param],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["why"], "additionalProperties": false,
                "properties": {"why": {"type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS,
                    "description": "why, in the operator's words; who decided is the session's or token's operator"}}}}}},
            "responses": responses
        })
    };
    let mut list = ok(
        "quarantined spends, oldest first",
        json!({"type": "object", "properties": {
            "items": {"type": "array", "items": r("QuarantineItem")},
            "truncated": {"type": "boolean", "description": format!("more than {MAX_LISTED} matched: narrow the filters")}}}),
    );
    list["400"] = json!({"description": "a filter is malformed (the error says which)"});
    let mut one = ok("the spend with its evidence", r("QuarantineDetail"));
    one["400"] = json!({"description": "the number is malformed"});
    one["404"] = json!({"description": "no such quarantined spend (or another municipality's, for its staff)"});
    let mut release = decide("released");
    release["summary"] = json!(
        "Release (pay) a held spend: it is posted as a redeem now (the holder's wallet, then debt) and paid in the open settlement period (admin; `mykey-hub quarantine release`)"
    );
    let mut reject = decide("rejected");
    reject["summary"] = json!(
        "Reject a held spend for good: it is never paid (admin; `mykey-hub quarantine reject`)"
    );
    let paths = json!({
        "/api/quarantine": {"get": {
            "summary": "Spends held beyond nodes' enrolled bounds (`mykey-hub quarantine list`); a municipality's staff see theirs only",
            "parameters": [
                {"name": "state", "in": "query", "schema": {"enum": ["held", "released", "rejected", "all"]}, "description": "default held"},
                {"name": "municipality", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{6}$"}},
                {"name": "facility", "in": "query", "schema": {"type": "string"}},
                {"name": "node", "in": "query", "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
            "responses": list}},
        "/api/quarantine/{id}": {"get": {
            "summary": "One quarantined spend with its evidence: the signed redeem's bytes",
            "parameters": [id_param],
            "responses": one}},
        "/api/quarantine/{id}/release": {"post": release},
        "/api/quarantine/{id}/reject": {"post": reject}
    });
    (paths, schemas)
}
