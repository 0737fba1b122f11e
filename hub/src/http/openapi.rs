//! The OpenAPI document at `/api/openapi.json`: it gathers the parts that
//! stand beside the handlers they describe ([`super::api::openapi`],
//! [`crate::economy::http::openapi`], [`crate::quarantine::http::openapi`]).
//! Like [`super::routes`] it sits above the route modules; none imports it.
//! `hub/tests/openapi.rs` holds the document to every `/api/…` route in the
//! sources and to the fields each one answers with.

use super::session::SESSION_COOKIE;
use super::state::AppState;
use axum::Json;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// The document's route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi))
}

async fn openapi() -> Response {
    Json(openapi_document()).into_response()
}

/// The OpenAPI 3.1 document of this API.
pub fn openapi_document() -> serde_json::Value {
    let ok = |desc: &str, schema: serde_json::Value| {
        json!({
            "200": {"description": desc, "content": {"application/json": {"schema": schema}}},
            "401": {"description": "not logged in: send the session cookie or Authorization: Bearer <token> (a live one: tokens expire and can be revoked)"},
            "403": {"description": "the operator's role or the token's scope does not allow this (see the API description), or the data is another municipality's"},
            "503": {"description": "the hub's database is unavailable, or the hub is serving as many requests as it takes at once (Retry-After)"}
        })
    };
    let (api_paths, api_schemas) = super::api::openapi(ok);
    let (economy_paths, economy_schemas) = crate::economy::http::openapi(ok);
    let (quarantine_paths, quarantine_schemas) = crate::quarantine::http::openapi(ok);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "MyKey Edge hub operations API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Node sync status, alerts, liabilities, settlement, lots, and spends held in quarantine beyond nodes' bounds (admins release or reject them). Log in at /login (cookie: `mykey_session`, over TLS `__Host-mykey_session`) or send a bearer token from `mykey-hub operator token --scope read|staff|admin`. Prometheus metrics are at /metrics (text format). A `read` token may GET /metrics, /api/nodes, /api/nodes/{id}, /api/alerts, /api/settlement and this document; a `staff` token may GET everything; only an `admin` token or session of an admin operator may POST. A viewer operator reads everything and changes nothing; a municipality's staff operator reads its own municipality's data only (lists are filtered; another municipality's code is 403; /metrics is 403). Bodies over the route's limit are answered 413 before they are read."},
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "token": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {}
        },
        "security": [{"session": []}, {"token": []}],
        "paths": {
            "/api/openapi.json": {"get": {"summary": "This document", "responses": ok("OpenAPI 3.1", json!({"type": "object"}))}}
        }
    });
    // Each part is documented beside its handlers.
    extend(&mut doc["paths"], api_paths);
    extend(&mut doc["components"]["schemas"], api_schemas);
    extend(&mut doc["paths"], economy_paths);
    extend(&mut doc["components"]["schemas"], economy_schemas);
    extend(&mut doc["paths"], quarantine_paths);
    extend(&mut doc["components"]["schemas"], quarantine_schemas);
    doc
}

fn extend(into: &mut serde_json::Value, more: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(more)) = (into.as_object_mut(), more) {
        into.extend(more);
    }
}
