//! The operator exchange API over HTTP (axum), beside the dashboard:
//!
//! `POST /operator/v1/exchange` with the JSON request body
//! ([`ExchangeRequest`]), header `X-MyKey-Operator: <operator id>` and
//! header `X-MyKey-Signature: <hex ed25519 signature of the exact body bytes>`.
//! Answers `200` with the applied exchange (or the stored one for a replay
//! of the same request id and bytes), `401` for an unknown operator or a
//! bad signature, `409` for a request id reused with other bytes, `422`
//! for a request that cannot be applied. There is no route back: regional
//! points never return to an operator.
//!
//! These routes authenticate by signature, not by dashboard login, so they
//! are merged beside [`crate::http::app`], not inside it.

use crate::economy::exchange::{
    ExchangeError, ExchangeReceipt, MAX_REQUEST_BYTES, OperatorId, SignedExchange,
};
use crate::http::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

/// Header naming the operator.
pub const OPERATOR_HEADER: &str = "x-mykey-operator";
/// Header carrying the hex signature.
pub const SIGNATURE_HEADER: &str = "x-mykey-signature";

/// The operator API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/operator/v1/exchange", post(exchange))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The JSON answer to an applied exchange: transfer data only.
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
    })
}

async fn exchange(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(op) = header(OPERATOR_HEADER) else {
        return error(
            StatusCode::UNAUTHORIZED,
            format!("missing {OPERATOR_HEADER} header"),
        );
    };
    let operator = match OperatorId::parse(&op) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    let sig = header(SIGNATURE_HEADER)
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 64]>::try_from(b).ok());
    let Some(signature) = sig else {
        return error(
            StatusCode::UNAUTHORIZED,
            format!("{SIGNATURE_HEADER} must be the 128-hex-digit ed25519 signature of the body"),
        );
    };
    let signed = SignedExchange {
        operator,
        body: body.to_vec(),
        signature,
    };
    let now = crate::net::unix_now();
    match state
        .with_hub(move |hub| Ok(hub.exchange(&signed, now)))
        .await
    {
        Ok(Ok(r)) => (StatusCode::OK, axum::Json(receipt_json(&r))).into_response(),
        Ok(Err(e)) => {
            let status = match &e {
                ExchangeError::UnknownOperator(_)
                | ExchangeError::BadSignature(_)
                | ExchangeError::BadOperatorId(_) => StatusCode::UNAUTHORIZED,
                ExchangeError::Conflict(_) => StatusCode::CONFLICT,
                ExchangeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            error(status, e.to_string())
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
