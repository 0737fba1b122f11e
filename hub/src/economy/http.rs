//! The operator exchange API over HTTP (axum), beside the dashboard:
//!
//! `POST /operator/v1/exchange` with the JSON request body
//! ([`crate::economy::exchange::ExchangeRequest`]), header `X-MyKey-Operator: <operator id>` and
//! header `X-MyKey-Signature: <hex ed25519 signature of the exact body bytes>`.
//! Answers `200` with the applied exchange (or the stored one for a replay
//! of the same request id and bytes), `401` for an unknown operator or a
//! bad signature, `403` for a municipality the operator is not allowed to
//! credit, `409` for a request id reused with other bytes, `413` for a body
//! over [`MAX_REQUEST_BYTES`], `422` for a request that cannot be applied
//! (a number out of range, `requested_at` outside the window of the hub's
//! clock, an unknown holder), `429` with `Retry-After` past the operator's
//! request rate or its daily cap in the municipality. There is no route
//! back: regional points never return to an operator.
//!
//! Only a correctly signed request counts against its operator's rate, so
//! nobody else can use it up.
//!
//! These routes authenticate by signature, not by dashboard login, so they
//! are merged beside [`crate::http::app`], not inside it.
//!
//! [`admin_routes`] are for municipalities and the hub operator, behind the
//! dashboard's login (cookie or bearer token): the liability report (JSON or
//! `?format=csv`), closed periods with their statements, a settlement run
//! (the same run and files as `mykey-hub settle`, written into `hub.toml`'s
//! `settlement_dir`, by default `settlement` in the data directory) and the
//! expiry job. Their POSTs take a JSON body, which a cross-site form
//! cannot send.

use crate::access::Access;
use crate::economy::exchange::{
    ExchangeError, ExchangeReceipt, MAX_REQUEST_BYTES, OperatorId, SignedExchange, verify,
};
use crate::economy::outputs::OutputError;
use crate::economy::zengin::BankDirectory;
use crate::http::scope::not_yours;
use crate::http::server::{BodyLimit, limit_body};
use crate::http::state::AppState;
use crate::http::throttle::retry_after_secs;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mykey_sync_proto::{AccountId, MunicipalityCode};
use serde_json::json;

/// Header naming the operator.
pub const OPERATOR_HEADER: &str = "x-mykey-operator";
/// Header carrying the hex signature.
pub const SIGNATURE_HEADER: &str = "x-mykey-signature";

/// The operator API's routes.
pub fn router(state: AppState) -> Router {
    let limit = BodyLimit {
        max_bytes: MAX_REQUEST_BYTES,
        timeout: state.config().body_timeout,
    };
    limit_body(
        Router::new().route("/operator/v1/exchange", post(exchange)),
        limit,
    )
    .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
    .with_state(state)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn retry_later(status: StatusCode, wait: std::time::Duration, message: String) -> Response {
    let mut resp = error(status, message);
    if let Ok(v) = retry_after_secs(wait).to_string().parse() {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    resp
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!("operator API: {e}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the hub's database is unavailable; try again shortly".into(),
    )
}

/// The JSON answer to an applied exchange: transfer data only. `balance` is
/// the holder's spendable balance, which leaves out points in holding
/// periods; `held_balance` shows those beside it.
pub fn receipt_json(r: &ExchangeReceipt) -> serde_json::Value {
    let e = &r.record;
    json!({
        "request_id": e.request_id,
        "operator": e.operator.as_str(),
        "account": e.account.to_string(),
        "municipality": e.municipality.to_string(),
        "operator_points": e.operator_points,
        "regional_points": e.regional.get(),
        "premium_points": e.premium.get(),
        "campaign": e.campaign,
        "requested_at": e.requested_at.0,
        "received_at": e.received_at.0,
        "available_at": e.available_at.0,
        "replayed": r.replayed,
        "balance": r.balance.balance.get(),
        "held_balance": r.held.get(),
        "donated_to": r.donated_to.as_ref().map(|p| p.as_str()),
    })
}

async fn exchange(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = match signed_exchange(
        header(OPERATOR_HEADER),
        header(SIGNATURE_HEADER),
        body.to_vec(),
    ) {
        Ok(s) => s,
        Err(message) => return error(StatusCode::UNAUTHORIZED, message),
    };
    // The signature is checked before the request counts against the
    // operator's rate, so a forger cannot use up a real operator's rate.
    let op = match state
        .with_hub({
            let operator = signed.operator.clone();
            move |hub| hub.exchange_operator(&operator)
        })
        .await
    {
        Ok(Some(op)) => op,
        Ok(None) => {
            return error(
                StatusCode::UNAUTHORIZED,
                ExchangeError::UnknownOperator(signed.operator).to_string(),
            );
        }
        Err(e) => return unavailable(e),
    };
    if let Err(e @ ExchangeError::BadSignature(_)) = verify(&op, &signed) {
        return error(StatusCode::UNAUTHORIZED, e.to_string());
    }
    if let Err(wait) = state
        .exchange_rate()
        .take(&op.id, std::time::Instant::now())
    {
        tracing::warn!(operator = %op.id, "exchange request over the operator's rate");
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            wait,
            format!(
                "operator {} sends more than {} requests a second; slow down",
                op.id,
                state.config().exchange_per_second
            ),
        );
    }
    let now = crate::net::unix_now();
    let policy = state.config().exchange;
    match state
        .with_writer_unseen(move |hub| Ok(hub.exchange_with(&signed, now, &policy)))
        .await
    {
        Ok(Ok(r)) => (StatusCode::OK, axum::Json(receipt_json(&r))).into_response(),
        Ok(Err(ExchangeError::Store(e))) => unavailable(e),
        Ok(Err(e @ ExchangeError::DailyCap { resets_at, .. })) => {
            let wait = std::time::Duration::from_millis(resets_at.since(now));
            retry_later(StatusCode::TOO_MANY_REQUESTS, wait, e.to_string())
        }
        Ok(Err(e)) => error(status_of(&e), e.to_string()),
        Err(e) => unavailable(e),
    }
}

/// The request an operator sent, from its `X-MyKey-Operator` and
/// `X-MyKey-Signature` header values and the body bytes; or why it cannot
/// be one (answered with 401). Pure, so the fuzz target `exchange_body`
/// reads headers exactly as the route does.
pub fn signed_exchange(
    operator: Option<&str>,
    signature: Option<&str>,
    body: Vec<u8>,
) -> Result<SignedExchange, String> {
    let op = operator.ok_or_else(|| format!("missing {OPERATOR_HEADER} header"))?;
    let operator = OperatorId::parse(op).map_err(|e| e.to_string())?;
    let signature = signature
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or_else(|| {
            format!("{SIGNATURE_HEADER} must be the 128-hex-digit ed25519 signature of the body")
        })?;
    Ok(SignedExchange {
        operator,
        body,
        signature,
    })
}

/// The HTTP status a refused exchange is answered with.
pub fn status_of(e: &ExchangeError) -> StatusCode {
    match e {
        ExchangeError::UnknownOperator(_)
        | ExchangeError::BadSignature(_)
        | ExchangeError::BadOperatorId(_) => StatusCode::UNAUTHORIZED,
        ExchangeError::NotAllowed(..) => StatusCode::FORBIDDEN,
        ExchangeError::Conflict(_) => StatusCode::CONFLICT,
        ExchangeError::DailyCap { .. } => StatusCode::TOO_MANY_REQUESTS,
        ExchangeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// Routes for municipalities and the hub operator, to put behind the
/// dashboard's login: `crate::http::app(state, admin_routes())`.
pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/api/economy/liabilities", get(liabilities))
        .route("/api/economy/periods", get(periods))
        .route("/api/economy/lots", get(lots))
        .route("/api/economy/settle", post(settle))
        .route("/api/economy/expire", post(expire))
}

/// The OpenAPI 3.1 paths of [`admin_routes`] and the schemas they refer to
/// (`#/components/schemas/…`), for [`crate::http::openapi::openapi_document`].
/// `ok` builds a path's responses from a description and a schema.
pub fn openapi(
    ok: impl Fn(&str, serde_json::Value) -> serde_json::Value,
) -> (serde_json::Value, serde_json::Value) {
    // These routes also refuse a malformed query or body.
    let ok = |desc: &str, schema: serde_json::Value| {
        let mut v = ok(desc, schema);
        v["400"] = json!({"description": "a query parameter or the body is malformed (the error says what to send)"});
        v
    };
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let int = |d: &str| json!({"type": "integer", "description": d});
    let text = |d: &str| json!({"type": "string", "description": d});
    let points_of = |d: &str| {
        json!({"type": "array", "description": d, "items": {"type": "object", "properties": {
            "source": text("`program:<id>`, `operator:<id>` or `other`"), "points": int("points")}}})
    };
    let municipality_param = json!({"name": "municipality", "in": "query", "required": true,
        "schema": {"type": "string", "pattern": "^[0-9]{6}$"}, "description": "6-digit local government code"});
    let mut schemas = json!({
        "LiabilityReport": {"type": "object", "properties": {
            "generated_at": text("JST day the report was made (YYYY-MM-DD)"),
            "generated_at_ms": int("when it was made"),
            "yen_per_point": int("yen per regional point"),
            "municipalities": {"type": "array", "items": r("MunicipalityLiability")}}},
        "MunicipalityLiability": {"type": "object", "properties": {
            "municipality": text("6-digit code"),
            "wallets": int("spendable points in holders' wallets"),
            "held": int("exchanged points still in their holding period"),
            "debts": int("holders' offline-overdraft debt (owed to the municipality)"),
            "outstanding": int("wallets + held"),
            "vouchers_outstanding": int("points in printed vouchers not yet redeemed (the voucher float; not in outstanding)"),
            "kiosk_vouchers_outstanding": int("of vouchers_outstanding, points in vouchers holders made of their points at a kiosk, not yet redeemed nor returned to their wallets at expiry"),
            "donations_unpaid": int("points holders gave to donation programmes that no closed settlement period has paid to the recipients yet (not in outstanding)"),
            "by_source": {"type": "array", "description": "outstanding points per source: its lots plus its held points (the sources add up to outstanding)",
                "items": {"type": "object", "properties": {
                    "source": text("`program:<id>`, `operator:<id>` or `other`"), "points": int("points, held included"),
                    "held_points": int("of which still in a holding period")}}},
            "expiry_schedule": {"type": "array", "description": "points left per month they expire in, per source; held points at the expiry they will have (counted from the end of their holding period)",
                "items": {"type": "object", "properties": {"month": text("YYYY-MM"),
                    "source": text("`program:<id>`, `operator:<id>` or `other`"), "points": int("points")}}},
            "never_expiring": points_of("points that never expire, per source"),
            "base_dates": {"type": "array", "description": "the last two legal base dates (31 March, 30 September), newest first",
                "items": r("BaseDateLiability")},
            "quarantine": {"type": "object", "description": "spends held in quarantine beyond nodes' bounds, on their own line: not a liability to holders (in no figure above) and not payable to the facility until an operator releases them (CSV section `quarantine-held`)",
                "properties": {"held_points": int("points held"), "held_yen": int("held_points in yen"),
                    "held_items": int("spends held"),
                    "by_facility": {"type": "array", "items": {"type": "object", "properties": {
                        "facility": text("the facility that would be paid"), "held_points": int("points held"), "held_items": int("spends held")}}}}}}},
        "BaseDateLiability": {"type": "object", "description": "the books at the end of the base date (00:00 JST of the next day); nothing posted later changes them", "properties": {
            "date": text("the base date (YYYY-MM-DD)"),
            "as_of_ms": int("the end of the base date"),
            "ledger_pos": int("the last ledger position posted before as_of_ms (0: none)"),
            "unused_points": int("unused points, all sources: spendable and not expired, plus held"),
            "unused_yen": int("unused_points in yen"),
            "held_points": int("of which still in a holding period at the end of the base date (judged by the holding period's end, not by when the release was posted)"),
            "expired_not_posted_points": int("points past their expiry whose expiry was posted later (not unused)"),
            "debts_points": int("holders' debt (shown, not deducted)"),
            "deposit_threshold_yen": int("unused balance above which a deposit is required"),
            "deposit_required_yen": int("the deposit the prepaid-instrument rules would require: half the unused yen above the threshold, rounded up"),
            "by_source": {"type": "array", "description": "per source, in source order", "items": r("SourceLiability")}}},
        "SourceLiability": {"type": "object", "properties": {
            "source": text("`program:<id>`, `operator:<id>` or `other`"),
            "unused_points": int("this source's unused points"),
            "unused_yen": int("unused_points in yen"),
            "held_points": int("of which still in a holding period"),
            "expired_not_posted_points": int("past their expiry, expiry posted later"),
            "unused_share_percent": {"type": "number", "description": "share of the municipality's unused points, to 0.01 %"},
            "deposit_share_yen": int("share of the municipality's deposit (pro rata; the shares add up to it)")}},
        "Period": {"type": "object", "properties": {
            "municipality": text("6-digit code"),
            "number": int("the period's number in its municipality (1: the first), as in its file names and `settle --rewrite CODE:N`"),
            "starts_at": int("first instant (Unix ms)"), "ends_at": int("end, exclusive (Unix ms)"),
            "first_day": text("JST day it starts (YYYY-MM-DD)"), "closed_at": int("when it was closed (Unix ms)"),
            "ledger_pos": int("the last ledger position in it"),
            "statements": {"type": "array", "items": {"type": "object", "properties": {
                "kind": {"enum": ["operator-invoice", "municipality-receipt", "premium-funded", "merchant-payout", "expired", "quarantined"]},
                "party": text("operator id (invoice), facility id (payout) or municipality code"),
                "points": int("points"), "yen": int("yen"), "transfers": int("transfers summed")}}}}}
    });
    let settle_responses = |mut v: serde_json::Value| {
        v["422"] = json!({"description": "a party to pay or be paid has no usable bank account: nothing was closed (the error names every one)"});
        v["500"] = json!({"description": "the settlement directory cannot be written: nothing was closed; or a recorded file could not be written (the next run writes it)"});
        v
    };
    let paths = json!({
        "/api/economy/liabilities": {"get": {"summary": "The liability report: outstanding points, expiry schedule and the last two base dates' unused balance and deposit, per municipality",
            "parameters": [{"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]},
                "description": "`csv`: text/csv with columns municipality,section,key,detail,points,yen"}],
            "responses": ok("the report", r("LiabilityReport"))}},
        "/api/economy/periods": {"get": {"summary": "A municipality's closed settlement periods with their statements",
            "parameters": [municipality_param.clone()],
            "responses": ok("closed periods", json!({"type": "object", "properties": {"periods": {"type": "array", "items": r("Period")}}}))}},
        "/api/economy/lots": {"get": {"summary": "A holder's lots with points left, in the order they are spent",
            "parameters": [municipality_param,
                {"name": "account", "in": "query", "required": true, "schema": {"type": "string"}, "description": "account id (`A42` or `42`)"}],
            "responses": ok("lots", json!({"type": "object", "properties": {"lots": {"type": "array", "items": {"type": "object", "properties": {
                "points": int("points left"), "credited": int("points credited"), "source": text("`program:<id>`, `operator:<id>` or `other`"),
                "credited_at": int("Unix ms"), "expires_at": {"type": ["integer", "null"], "description": "Unix ms (null: never)"}}}}}}))}},
        "/api/economy/settle": {"post": {"summary": "A settlement run, as `mykey-hub settle`: expires lots, closes every ended period all or nothing with its files recorded, and writes the files (statements, Zengin payouts and receipts, liability report; mode 0600) and any an earlier run could not write into hub.toml's `settlement_dir` (default: `settlement` in the data directory)",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                "properties": {"through_now": {"type": "boolean", "description": "also close the open period at the current time"}}}}}},
            "responses": settle_responses(ok("the run", json!({"type": "object", "properties": {
                "run": {"type": ["integer", "null"], "description": "the run's number (null: no period was due)"},
                "dir": text("the directory the files were written into"),
                "expired_points": int("points the expiry job moved to expiry income first"),
                "closed": {"type": "array", "items": r("Period")},
                "files": {"type": "array", "items": {"type": "object", "properties": {
                    "name": text("file name (never reused)"), "run": int("the run that recorded it"),
                    "sha256": text("SHA-256 of its bytes, hex"),
                    "status": {"enum": ["written", "already-there"], "description": "`already-there`: a file with exactly the recorded bytes was found"}}}}}})))}},
        "/api/economy/expire": {"post": {"summary": "Runs the expiry job now",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": ok("what expired", json!({"type": "object", "properties": {
                "lots": int("lots expired"), "holders": int("holders whose points expired"), "points": int("points moved to expiry income")}}))}}
    });
    // The POSTs (admin only) read a small JSON body.
    let mut paths = paths;
    for p in ["/api/economy/settle", "/api/economy/expire"] {
        paths[p]["post"]["responses"]["408"] =
            json!({"description": "the body did not arrive in time"});
        paths[p]["post"]["responses"]["413"] = json!({"description": "the body is over 16 KiB (a declared Content-Length is refused before it is read)"});
    }
    // The operators' exchange route is served beside these, on the same address.
    let (exchange_paths, exchange_schemas) = exchange_openapi();
    for (into, more) in [
        (&mut paths, exchange_paths),
        (&mut schemas, exchange_schemas),
    ] {
        if let (Some(into), serde_json::Value::Object(more)) = (into.as_object_mut(), more) {
            into.extend(more);
        }
    }
    (paths, schemas)
}

/// The OpenAPI path of the operators' exchange [`router`] (signed, no
/// login) and its schemas.
fn exchange_openapi() -> (serde_json::Value, serde_json::Value) {
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let int = |d: &str| json!({"type": "integer", "description": d});
    let text = |d: &str| json!({"type": "string", "description": d});
    let error = |d: &str| {
        json!({"description": d, "content": {"application/json": {"schema": {"type": "object",
            "properties": {"error": text("what was wrong and what to do")}}}}})
    };
    let schemas = json!({
        "ExchangeRequest": {"type": "object", "additionalProperties": false,
            "required": ["request_id", "my_key_id", "operator_points", "requested_at"], "properties": {
            "request_id": text("the operator's id for this request (1-64 printable ASCII); repeat it to retry"),
            "my_key_id": text("the holder's My Key ID (current or former)"),
            "operator_points": int("operator points to exchange"),
            "municipality": text("6-digit code of the municipality whose points (default: the holder's base municipality)"),
            "requested_at": int("the operator's clock (Unix ms)"),
            "donate_to": text("a donation programme's id: the regional points go to it at once, not to the holder (no premium, no holding period; municipality defaults to the programme's)")}},
        "ExchangeReceipt": {"type": "object", "properties": {
            "request_id": text("the operator's request id"),
            "operator": text("the operator id"),
            "account": text("the holder's account id"),
            "municipality": text("6-digit code"),
            "operator_points": int("operator points given up"),
            "regional_points": int("regional points at the operator's rate"),
            "premium_points": int("campaign premium"),
            "campaign": {"type": ["string", "null"], "description": "the campaign that paid the premium"},
            "requested_at": int("the operator's clock (Unix ms)"),
            "received_at": int("the hub's clock when it applied the exchange (Unix ms)"),
            "available_at": int("when the points become spendable: the end of the holding period (Unix ms); their expiry is counted from it"),
            "replayed": {"type": "boolean", "description": "true: the stored answer to an earlier request with this id and these bytes"},
            "balance": int("the holder's spendable balance in the municipality now: points still in a holding period (this exchange's included) are not in it"),
            "held_balance": int("the holder's points in the municipality still in a holding period, beside balance"),
            "donated_to": {"type": ["string", "null"], "description": "the donation programme the points went to, if the request named one"}}}
    });
    let paths = json!({
        "/operator/v1/exchange": {"post": {
            "summary": "A national point operator exchanges a holder's operator points into regional points (signed by the operator, idempotent by request_id; there is no route back)",
            "security": [],
            "parameters": [
                {"name": "X-MyKey-Operator", "in": "header", "required": true, "schema": {"type": "string"}, "description": "the enrolled operator id"},
                {"name": "X-MyKey-Signature", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{128}$"},
                    "description": "ed25519 signature of the exact body bytes with the operator's enrolled key, in hex"}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": r("ExchangeRequest")}}},
            "responses": {
                "200": {"description": "the applied exchange, or the stored one for a replay of the same request_id and bytes",
                    "content": {"application/json": {"schema": r("ExchangeReceipt")}}},
                "401": error("unknown operator, or a missing or bad signature"),
                "403": error("the operator is not allowed to credit that municipality"),
                "409": error("the request_id was used for other bytes"),
                "413": error("the body is over 4 KiB"),
                "422": error("the request cannot be applied (malformed, unknown holder or municipality, too few points, operator_points outside 1..=10^12, requested_at too far from the hub's clock)"),
                "429": error("over the operator's rate or its daily cap in the municipality; see Retry-After"),
                "503": error("the hub's database is unavailable")}}}
    });
    (paths, schemas)
}

/// `?format=csv` for CSV.
#[derive(Debug, serde::Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
}

async fn liabilities(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(q): Query<FormatQuery>,
) -> Response {
    let now = crate::net::unix_now();
    // The report folds the ledger into the lots first: a write, but one
    // that changes no figure a page shows, so the pages' cache stays.
    let report = state
        .with_writer_unseen(move |hub| hub.liability_report(now))
        .await;
    let report = report.map(|mut r| {
        r.municipalities.retain(|m| access.sees(m.municipality));
        r
    });
    match report {
        Ok(r) if q.format.as_deref() == Some("csv") => (
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            r.to_csv(),
        )
            .into_response(),
        Ok(r) => axum::Json(r.to_json()).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `?municipality=131059`.
#[derive(Debug, serde::Deserialize)]
pub struct MunicipalityQuery {
    municipality: String,
    account: Option<String>,
}

fn periods_json(closed: &[crate::economy::settlement::ClosedPeriod]) -> serde_json::Value {
    use crate::economy::calendar::Date;
    json!(closed.iter().map(|c| json!({
        "municipality": c.period.municipality.to_string(),
        "number": c.number,
        "starts_at": c.period.starts_at.0,
        "ends_at": c.period.ends_at.0,
        "first_day": Date::of(c.period.starts_at).to_string(),
        "closed_at": c.period.closed_at.0,
        "ledger_pos": c.period.ledger_pos,
        "statements": c.statements.iter().map(|s| json!({
            "kind": s.kind.name(), "party": s.party, "points": s.points, "yen": s.yen, "transfers": s.n_transfers,
        })).collect::<Vec<_>>(),
    })).collect::<Vec<_>>())
}

async fn periods(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(q): Query<MunicipalityQuery>,
) -> Response {
    let Ok(m) = MunicipalityCode::parse(&q.municipality) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "municipality {:?} is not a local government code",
                q.municipality
            ),
        );
    };
    if !access.sees(m) {
        return not_yours(&access, m);
    }
    match state.with_hub(move |hub| hub.closed_periods(m)).await {
        Ok(c) => axum::Json(json!({ "periods": periods_json(&c) })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn lots(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(q): Query<MunicipalityQuery>,
) -> Response {
    let m = MunicipalityCode::parse(&q.municipality);
    let a = q
        .account
        .as_deref()
        .map(|a| AccountId::parse(a.strip_prefix(['A', 'a']).unwrap_or(a)));
    let (Ok(m), Some(Ok(a))) = (m, a) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give ?municipality=CODE&account=ID".into(),
        );
    };
    if !access.sees(m) {
        return not_yours(&access, m);
    }
    // Folds the ledger into the lots (a write no page shows), then reads.
    match state.with_writer_unseen(move |hub| hub.lots_of(a, m)).await {
        Ok(lots) => axum::Json(json!({ "lots": lots.iter().map(|l| json!({
            "points": l.remaining, "credited": l.amount, "source": l.source.to_string(),
            "credited_at": l.credited_at.0, "expires_at": l.expires_at.map(|e| e.0),
        })).collect::<Vec<_>>() }))
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// A settlement run's options.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleBody {
    /// Also close the open period at the current time.
    #[serde(default)]
    through_now: bool,
}

/// Why the serving hub could not run settlement for the API.
#[derive(Debug, thiserror::Error)]
enum SettleSetupError {
    /// The hub has no data directory (in memory).
    #[error("this hub has no data directory to hold settlement files")]
    NoDataDir,
    /// `hub.toml` is unusable.
    #[error(transparent)]
    Config(#[from] crate::net::config::HubNetConfigError),
    /// The bank data could not be read.
    #[error(transparent)]
    Banks(#[from] crate::economy::bankdata::BankDataError),
}

/// The settlement output directory and bank data of the serving hub:
/// `hub.toml`'s `settlement_dir` (default `settlement` in the data
/// directory) and `bank_data` (else `MYKEY_BANK_DATA`, else the built-in
/// excerpt).
fn settle_setup(
    hub: &crate::Hub,
) -> Result<(std::path::PathBuf, Box<dyn BankDirectory>), SettleSetupError> {
    let data = hub.data_path().ok_or(SettleSetupError::NoDataDir)?;
    let config = crate::net::config::HubNetConfig::load_or_create(data)?;
    let dir = config.settlement_dir_of(data);
    let bank_data = config
        .bank_data
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("MYKEY_BANK_DATA").map(Into::into));
    let banks: Box<dyn BankDirectory> = match bank_data {
        Some(d) => Box::new(crate::economy::bankdata::JsonBankDirectory::load(&d)?),
        None => Box::new(crate::economy::zengin::BuiltinBanks),
    };
    Ok((dir, banks))
}

async fn settle(
    State(state): State<AppState>,
    axum::Json(body): axum::Json<SettleBody>,
) -> Response {
    let now = crate::net::unix_now();
    let through_now = body.through_now;
    let run = state
        .with_writer(move |hub| {
            let (dir, banks) = match settle_setup(hub) {
                Ok(s) => s,
                Err(e) => return Ok(Err(e.to_string())),
            };
            Ok(Ok((
                dir.clone(),
                hub.settle(&dir, &*banks, now, through_now),
            )))
        })
        .await;
    let (dir, run) = match run {
        Ok(Ok(r)) => r,
        Ok(Err(setup)) => return error(StatusCode::INTERNAL_SERVER_ERROR, setup),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match run {
        Ok(run) => axum::Json(json!({
            "run": run.run,
            "dir": dir.display().to_string(),
            "expired_points": run.expiry.points,
            "closed": periods_json(&run.closed),
            "files": run.files.iter().map(|f| json!({
                "name": f.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "run": f.run,
                "sha256": hex::encode(f.sha256),
                "status": f.how.name(),
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => {
            let status = match &e {
                OutputError::NoBankAccount(_) | OutputError::Zengin { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                OutputError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.chain())
        }
    }
}

async fn expire(
    State(state): State<AppState>,
    axum::Json(_): axum::Json<serde_json::Value>,
) -> Response {
    let now = crate::net::unix_now();
    match state.with_writer(move |hub| hub.run_expiry(now)).await {
        Ok(r) => {
            axum::Json(json!({ "lots": r.n_lots, "holders": r.n_holders, "points": r.points }))
                .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
