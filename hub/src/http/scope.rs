//! What a request may see of the hub's data: a municipality's staff see
//! their municipality only. The pages, the API and the economy's and
//! quarantine's routes share it; it imports no route module.

use crate::access::Access;
use crate::status::Fleet;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Keeps only what `access` may see: a municipality's staff see its nodes only.
pub(crate) fn restrict_fleet(fleet: &mut Fleet, access: &Access) {
    fleet
        .nodes
        .retain(|r| access.sees(r.status.node.municipality));
    fleet.municipalities.retain(|m| access.sees(m.code));
    fleet.quarantine.retain_municipality(|m| access.sees(m));
}

/// 403 for data of a municipality the operator may not see.
pub(crate) fn not_yours(access: &Access, m: mykey_sync_proto::MunicipalityCode) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"error": format!(
            "operator {} ({}) may not see municipality {m}'s data",
            access.operator, access.role
        )})),
    )
        .into_response()
}
