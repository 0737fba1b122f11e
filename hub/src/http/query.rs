//! The node table's query (filters, sorting, language) and the rows it
//! selects from the fleet: the overview page and `GET /api/nodes` share it.

use crate::status::assess::Health;
use crate::status::{Fleet, NodeRow};
use mykey_sync_proto::MunicipalityCode;
use serde::Deserialize;

/// Query of the overview: filters, sorting, language.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    /// Municipality code, or empty for all.
    pub municipality: Option<String>,
    /// Health name, or empty for all.
    pub status: Option<String>,
    /// Text in the facility name, id or node key.
    pub q: Option<String>,
    /// Column key.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub dir: Option<String>,
    /// `ja` or `en`.
    pub lang: Option<String>,
}

/// The node table's sort keys.
const SORT_KEYS: [&str; 12] = [
    "status",
    "facility",
    "municipality",
    "last_contact",
    "reachable",
    "sessions",
    "unconfirmed",
    "oldest",
    "rejected",
    "quarantine",
    "skew",
    "version",
];

fn sort_rows(rows: &mut [&NodeRow], key: &str, desc: bool) {
    rows.sort_by(|a, b| {
        let (aa, ba) = (&a.assessment, &b.assessment);
        let name = |r: &NodeRow| {
            r.facility
                .as_ref()
                .map_or_else(String::new, |f| f.name.clone())
        };
        let ord = match key {
            "facility" => name(a).cmp(&name(b)),
            "municipality" => a
                .status
                .node
                .municipality
                .get()
                .cmp(&b.status.node.municipality.get()),
            "last_contact" => aa.last_contact.cmp(&ba.last_contact),
            "reachable" => aa.reachable_permille.cmp(&ba.reachable_permille),
            "sessions" => aa.sessions_in_window.cmp(&ba.sessions_in_window),
            "unconfirmed" => a.status.n_unconfirmed().cmp(&b.status.n_unconfirmed()),
            // Ascending: the longest-waiting unconfirmed work first, none last.
            "oldest" => {
                let k = |r: &NodeRow| r.status.pending_since.map_or(u64::MAX, |t| t.0);
                k(a).cmp(&k(b))
            }
            "rejected" => a
                .refusals_in_window
                .cmp(&b.refusals_in_window)
                .then(a.status.n_rejected.cmp(&b.status.n_rejected)),
            "quarantine" => a
                .quarantine_held
                .points
                .cmp(&b.quarantine_held.points)
                .then(a.quarantine_held.items.cmp(&b.quarantine_held.items)),
            "skew" => skew(a).cmp(&skew(b)),
            "version" => version(a).cmp(version(b)),
            // Worst first, then the longest silent.
            _ => aa
                .health
                .cmp(&ba.health)
                .then(aa.last_contact.cmp(&ba.last_contact)),
        };
        let ord = ord.then_with(|| a.status.node.id.as_bytes().cmp(b.status.node.id.as_bytes()));
        if desc { ord.reverse() } else { ord }
    });
}

fn skew(r: &NodeRow) -> u64 {
    r.status
        .last_contact
        .as_ref()
        .map_or(0, |c| c.clock_skew_ms.unsigned_abs())
}

pub(crate) fn version(r: &NodeRow) -> &str {
    r.status
        .last_contact
        .as_ref()
        .map_or("", |c| c.software.as_str())
}

/// Filters and sorts the fleet's rows as the query asks.
pub(crate) fn select<'a>(fleet: &'a Fleet, q: &OverviewQuery) -> Vec<&'a NodeRow> {
    let muni = q
        .municipality
        .as_deref()
        .filter(|m| !m.is_empty())
        .and_then(|m| MunicipalityCode::parse(m).ok());
    let health = q.status.as_deref().and_then(Health::parse);
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase);
    let mut rows: Vec<&NodeRow> = fleet
        .nodes
        .iter()
        .filter(|r| muni.is_none_or(|m| r.status.node.municipality == m))
        .filter(|r| health.is_none_or(|h| r.assessment.health == h))
        .filter(|r| {
            text.as_ref().is_none_or(|t| {
                let f = r
                    .facility
                    .as_ref()
                    .map_or("", |f| f.name.as_str())
                    .to_lowercase();
                f.contains(t.as_str())
                    || r.status
                        .node
                        .facility
                        .as_str()
                        .to_lowercase()
                        .contains(t.as_str())
                    || r.status.node.id.to_string().starts_with(t.as_str())
            })
        })
        .collect();
    let key = q
        .sort
        .as_deref()
        .filter(|k| SORT_KEYS.contains(k))
        .unwrap_or("status");
    sort_rows(&mut rows, key, q.dir.as_deref() == Some("desc"));
    rows
}
