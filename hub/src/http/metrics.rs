//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Gauges come from the same snapshot the dashboard shows (nodes by state,
//! alerts by kind, unconfirmed transactions, spends held in quarantine);
//! counters and the sync lag histogram from the process's ingest counters
//! (the hub's [`crate::observed::Observed`]),
//! except quarantine decisions, which are counted from the database (a
//! decision is final and its row is never deleted, so the count only grows,
//! and it includes decisions made with the CLI in another process).
//! Incidents and overdue settlement periods are read from the database too
//! ([`Ledgered`]), for the same reason.

use super::state::{AppState, now};
use crate::model::IncidentKind;
use crate::observed::counters::CountersSnapshot;
use crate::status::Fleet;
use crate::status::assess::Health;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mykey_sync_proto::MunicipalityCode;
use std::fmt::Write;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let th = state.thresholds().clone();
    let now = now();
    let read = state
        .with_hub(move |hub| {
            let fleet = hub.fleet(&th, now)?;
            let ledgered = Ledgered {
                incidents: hub.incident_counts()?,
                overdue: hub.settlement_overdue(now)?,
            };
            // In `serve` this hub shares the writer's observations.
            let counters = hub.observed().counters().snapshot();
            Ok((fleet, counters, ledgered))
        })
        .await;
    match read {
        Ok((fleet, counters, ledgered)) => (
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            render(&fleet, &counters, &ledgered),
        )
            .into_response(),
        Err(e) => {
            tracing::error!("metrics: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "hub database unavailable\n",
            )
                .into_response()
        }
    }
}

/// What `/metrics` reads from the database besides the fleet snapshot.
#[derive(Clone, Debug, Default)]
pub struct Ledgered {
    /// Incidents ever recorded, by kind.
    pub incidents: Vec<(IncidentKind, u64)>,
    /// Per municipality, settlement periods ended and not closed.
    pub overdue: Vec<(MunicipalityCode, u32)>,
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Spends held in quarantine per municipality and facility (a sample, 0 once
/// decided, for every facility that ever had one), and decisions by outcome.
fn render_quarantine(o: &mut String, fleet: &Fleet) {
    use crate::store::bounds::QuarantineState;
    let facilities = fleet.quarantine.by_facility();
    family(
        o,
        "mykey_hub_quarantine_held_items",
        "gauge",
        "Spends held in quarantine beyond their node's enrolled bounds, not paid until an operator releases them.",
    );
    for f in &facilities {
        let _ = writeln!(
            o,
            "mykey_hub_quarantine_held_items{{municipality=\"{}\",facility=\"{}\"}} {}",
            f.municipality,
            label(f.facility.as_str()),
            f.held.items
        );
    }
    family(
        o,
        "mykey_hub_quarantine_held_points",
        "gauge",
        "Points of the spends held in quarantine (not owed to holders, not payable to the facility unless released).",
    );
    for f in &facilities {
        let _ = writeln!(
            o,
            "mykey_hub_quarantine_held_points{{municipality=\"{}\",facility=\"{}\"}} {}",
            f.municipality,
            label(f.facility.as_str()),
            f.held.points
        );
    }
    family(
        o,
        "mykey_hub_quarantine_decisions_total",
        "counter",
        "Operators' decisions on quarantined spends, by outcome (released: paid; rejected: never paid).",
    );
    for state in [QuarantineState::Released, QuarantineState::Rejected] {
        let _ = writeln!(
            o,
            "mykey_hub_quarantine_decisions_total{{outcome=\"{}\"}} {}",
            state.name(),
            fleet.quarantine.decided(&state).items
        );
    }
}

/// Renders every metric.
pub fn render(fleet: &Fleet, c: &CountersSnapshot, ledgered: &Ledgered) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "mykey_hub_nodes",
        "gauge",
        "Enrolled nodes by state.",
    );
    for h in Health::ALL {
        let n = fleet
            .nodes
            .iter()
            .filter(|r| r.assessment.health == h)
            .count();
        let _ = writeln!(o, "mykey_hub_nodes{{state=\"{}\"}} {n}", h.name());
    }
    family(
        &mut o,
        "mykey_hub_nodes_connected",
        "gauge",
        "Nodes with a live link to the hub.",
    );
    let connected = fleet
        .nodes
        .iter()
        .filter(|r| r.assessment.connected)
        .count();
    let _ = writeln!(o, "mykey_hub_nodes_connected {connected}");
    family(
        &mut o,
        "mykey_hub_alerts",
        "gauge",
        "Alerts that hold, by kind.",
    );
    for kind in [
        "silent",
        "clock-skew",
        "rejections",
        "replica-behind",
        "shard-epoch-behind",
        "quarantine",
    ] {
        let n: usize = fleet
            .nodes
            .iter()
            .map(|r| {
                r.assessment
                    .alerts
                    .iter()
                    .filter(|a| a.name() == kind)
                    .count()
            })
            .sum();
        let _ = writeln!(o, "mykey_hub_alerts{{kind=\"{kind}\"}} {n}");
    }
    family(
        &mut o,
        "mykey_hub_unconfirmed_transactions",
        "gauge",
        "Transactions nodes reported signed that the hub has not processed.",
    );
    let unconfirmed: u64 = fleet.nodes.iter().map(|r| r.status.n_unconfirmed()).sum();
    let _ = writeln!(o, "mykey_hub_unconfirmed_transactions {unconfirmed}");
    family(
        &mut o,
        "mykey_hub_oldest_unconfirmed_age_seconds",
        "gauge",
        "Age of the oldest unconfirmed work the hub knows of (0: none).",
    );
    let oldest = fleet
        .nodes
        .iter()
        .filter_map(|r| r.status.pending_since)
        .min()
        .map_or(0.0, |t| fleet.at.0.saturating_sub(t.0) as f64 / 1000.0);
    let _ = writeln!(o, "mykey_hub_oldest_unconfirmed_age_seconds {oldest}");

    family(
        &mut o,
        "mykey_hub_node_last_contact_age_seconds",
        "gauge",
        "Seconds since each node was last heard from (0 while connected; absent if never).",
    );
    for r in &fleet.nodes {
        let Some(t) = r.assessment.last_contact else {
            continue;
        };
        let _ = writeln!(
            o,
            "mykey_hub_node_last_contact_age_seconds{{node=\"{}\",facility=\"{}\",municipality=\"{}\",state=\"{}\"}} {}",
            r.status.node.id.short(),
            label(r.status.node.facility.as_str()),
            r.status.node.municipality,
            r.assessment.health.name(),
            fleet.at.0.saturating_sub(t.0) as f64 / 1000.0
        );
    }
    render_quarantine(&mut o, fleet);
    family(
        &mut o,
        "mykey_hub_incidents_total",
        "counter",
        "Incidents the hub recorded (refused or forged transactions, forks, spends beyond a bound, ...), by kind; `mykey-hub incidents` lists them.",
    );
    for kind in IncidentKind::ALL {
        let n = ledgered
            .incidents
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            o,
            "mykey_hub_incidents_total{{kind=\"{}\"}} {n}",
            kind.name()
        );
    }
    family(
        &mut o,
        "mykey_hub_settlement_overdue_periods",
        "gauge",
        "Settlement periods that ended and are not closed yet, per municipality (`mykey-hub settle` closes them).",
    );
    for (m, n) in &ledgered.overdue {
        let _ = writeln!(
            o,
            "mykey_hub_settlement_overdue_periods{{municipality=\"{m}\"}} {n}"
        );
    }
    family(
        &mut o,
        "mykey_hub_transactions_total",
        "counter",
        "Signed transactions processed by this hub process, by outcome (rate() is the ingest rate).",
    );
    let _ = writeln!(
        o,
        "mykey_hub_transactions_total{{outcome=\"accepted\"}} {}",
        c.accepted
    );
    let _ = writeln!(
        o,
        "mykey_hub_transactions_total{{outcome=\"rejected\"}} {}",
        c.rejected
    );
    family(
        &mut o,
        "mykey_hub_pushes_total",
        "counter",
        "Pushes (batches) handled.",
    );
    let _ = writeln!(o, "mykey_hub_pushes_total {}", c.pushes);
    family(
        &mut o,
        "mykey_hub_rejections_total",
        "counter",
        "Transactions refused, by reason.",
    );
    for (reason, n) in &c.refused_by_reason {
        let _ = writeln!(o, "mykey_hub_rejections_total{{reason=\"{reason}\"}} {n}");
    }
    family(
        &mut o,
        "mykey_hub_sync_lag_seconds",
        "histogram",
        "Time from a node signing a transaction to the hub processing it.",
    );
    for (bound, n) in &c.lag_cumulative {
        let _ = writeln!(o, "mykey_hub_sync_lag_seconds_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(
        o,
        "mykey_hub_sync_lag_seconds_bucket{{le=\"+Inf\"}} {}",
        c.lag_count
    );
    let _ = writeln!(o, "mykey_hub_sync_lag_seconds_sum {}", c.lag_sum_s);
    let _ = writeln!(o, "mykey_hub_sync_lag_seconds_count {}", c.lag_count);
    o
}
