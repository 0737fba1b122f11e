//! The operations view of the hub: every node's sync status, alerts and the
//! liability figures, as the dashboard, its JSON API and `/metrics` show them.
//!
//! - [`assess`]: the deciding part (pure, takes `now`): health, alerts, link
//!   quality from what was recorded.
//! - [`history`]: the status history in the store (a sample per node every
//!   five minutes, kept a week) and the charts' series.
//! - here: [`Hub`] methods that read one consistent snapshot from the store
//!   ([`Hub::fleet`], [`Hub::node_detail`], [`Hub::liabilities`]) and the
//!   link bookkeeping the serving loop calls ([`Hub::note_link_closed`],
//!   [`Hub::note_links_alive`], [`Hub::close_stale_links`]); a link opens at
//!   each Hello ([`Hub::try_open`]) and is seen at each push.
//!
//! What the serving process saw of its nodes without a durable write (fact
//! pulls, shard epochs) and the ingest counters live in [`crate::observed`].

pub mod assess;
pub mod history;

use crate::hub::{Hub, scopes_of};
use crate::model::{Facility, Incident, IncidentKind, Municipality, NodeStatus};
use crate::observed::counters;
use crate::quarantine::summary::{QuarantineSummary, Sum};
use crate::store::StoreError;
use crate::store::status::{LinkSpan, RejectionRow};
use assess::{Assessment, NodeFacts, ShardEpochHeld, Thresholds, WINDOW_MS};
use mykey_sync_proto::{MunicipalityCode, NodeId, UnixMillis};
use std::collections::HashMap;

/// How long closed links are kept.
const LINK_HISTORY_MS: u64 = 30 * 24 * 3_600_000;
/// Links read per snapshot at most (a day of sessions of every node).
const MAX_LINKS: u32 = 200_000;
/// Rejections read per snapshot at most.
const MAX_REJECTIONS: u32 = 20_000;
/// Incidents read per snapshot at most.
const MAX_INCIDENTS: u32 = 5_000;

/// One node as the dashboard lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    /// What the registry and the last Hello say.
    pub status: NodeStatus,
    /// Its facility (`None` only if the registry lost it).
    pub facility: Option<Facility>,
    /// Its municipality's name.
    pub municipality_name: String,
    /// Refusals of its transactions in the last day (business and chain level).
    pub refusals_in_window: u64,
    /// Its latest refusal, of any age.
    pub last_refusal: Option<LastRefusal>,
    /// Issue time of the oldest fact it lacked when last heard of (its cursor
    /// at Hello, or at its latest pull to this process).
    pub oldest_missing_fact: Option<UnixMillis>,
    /// The shard epochs it last synced, beside the hub's current ones.
    pub shard_epochs: Vec<ShardEpochHeld>,
    /// Its spends held in quarantine now (the node's flag).
    pub quarantine_held: Sum,
    /// Health, alerts, link quality.
    pub assessment: Assessment,
}

/// The latest refusal of a node's transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastRefusal {
    /// When the hub refused it.
    pub at: UnixMillis,
    /// The reason's label ([`counters::reason_label`]), or `chain` for a
    /// chain-level refusal (detail says which).
    pub label: &'static str,
    /// The reason in words (English, from the protocol).
    pub detail: String,
}

/// Every node at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    /// The instant.
    pub at: UnixMillis,
    /// The nodes, by municipality, facility, key.
    pub nodes: Vec<NodeRow>,
    /// Every municipality.
    pub municipalities: Vec<Municipality>,
    /// The hub's fact log head.
    pub last_hub_seq: u64,
    /// Every quarantined spend, summed (same snapshot).
    pub quarantine: QuarantineSummary,
}

/// One node in depth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDetail {
    /// Its row.
    pub row: NodeRow,
    /// Its latest sessions (newest first).
    pub sessions: Vec<LinkSpan>,
    /// Its latest business rejections (newest first).
    pub rejections: Vec<RejectionRow>,
    /// Its latest incidents (newest first).
    pub incidents: Vec<Incident>,
}

/// What a municipality's points stand at, from posted ledger totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Liability {
    /// Whose points.
    pub municipality: Option<Municipality>,
    /// Points held in holders' wallets (outstanding liability).
    pub wallets: i128,
    /// Debt from offline overdraft, owed by holders.
    pub debts: i128,
    /// Remaining programme budgets (negative: overdrawn).
    pub budgets: i128,
    /// Points merchants accepted and are owed for.
    pub merchant_payables: i128,
    /// Points expired (released from liability).
    pub expired: i128,
    /// Spends held in quarantine: not owed to holders, not payable to
    /// merchants unless an operator releases them.
    pub quarantine_held: i128,
}

/// Where a municipality's settlement stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementLine {
    /// Whose.
    pub municipality: Municipality,
    /// How many periods are closed.
    pub periods_closed: usize,
    /// The latest closed period, if any.
    pub latest: Option<LatestPeriod>,
}

/// The latest closed settlement period of a municipality, summed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatestPeriod {
    /// First instant.
    pub starts_at: UnixMillis,
    /// End (exclusive).
    pub ends_at: UnixMillis,
    /// When it was closed.
    pub closed_at: UnixMillis,
    /// Statement lines.
    pub n_statements: usize,
    /// Yen over its statement lines (invoices, receipts, payouts together).
    pub yen: u64,
}

impl Hub {
    /// Each municipality's settlement: periods closed and the latest one
    /// (read through the settlement module's [`Hub::closed_periods`]).
    pub fn settlement_status(&mut self) -> Result<Vec<SettlementLine>, StoreError> {
        let municipalities = self.store.begin_read()?.municipalities()?;
        let mut out = vec![];
        for m in municipalities {
            let periods = self.closed_periods(m.code)?;
            let latest = periods
                .iter()
                .max_by_key(|p| p.period.starts_at)
                .map(|p| LatestPeriod {
                    starts_at: p.period.starts_at,
                    ends_at: p.period.ends_at,
                    closed_at: p.period.closed_at,
                    n_statements: p.statements.len(),
                    yen: p.statements.iter().map(|s| s.yen).sum(),
                });
            out.push(SettlementLine {
                municipality: m,
                periods_closed: periods.len(),
                latest,
            });
        }
        Ok(out)
    }

    /// Every node with its assessment at `now`, from one read snapshot.
    pub fn fleet(&mut self, th: &Thresholds, now: UnixMillis) -> Result<Fleet, StoreError> {
        let from = UnixMillis(now.0.saturating_sub(WINDOW_MS));
        let mut st = self.store.begin_read()?;
        let statuses = st.node_statuses()?;
        let registry = st.facilities()?;
        let mut links: HashMap<NodeId, Vec<LinkSpan>> = HashMap::new();
        for l in st.links_since(None, from, MAX_LINKS)? {
            links.entry(l.node).or_default().push(l);
        }
        let mut refusals: HashMap<NodeId, u64> = HashMap::new();
        let mut latest: HashMap<NodeId, LastRefusal> = HashMap::new();
        let mut note_latest = |node: NodeId, r: LastRefusal| {
            let e = latest.entry(node).or_insert_with(|| r.clone());
            if r.at > e.at {
                *e = r;
            }
        };
        for r in st.rejections(None, MAX_REJECTIONS)? {
            if r.at >= from {
                *refusals.entry(r.node).or_default() += 1;
            }
            note_latest(
                r.node,
                LastRefusal {
                    at: r.at,
                    label: counters::reason_label(&r.reason),
                    detail: r.reason.to_string(),
                },
            );
        }
        for i in st.incidents(MAX_INCIDENTS)? {
            if let (IncidentKind::ChainRejected, Some(n)) = (i.kind, i.node) {
                if i.at >= from {
                    *refusals.entry(n).or_default() += 1;
                }
                note_latest(
                    n,
                    LastRefusal {
                        at: i.at,
                        label: "chain",
                        detail: i.detail.clone(),
                    },
                );
            }
        }
        let mut missing: HashMap<NodeId, Option<UnixMillis>> = HashMap::new();
        for s in &statuses {
            let Some(c) = &s.last_contact else { continue };
            let cursor = c
                .fact_cursor
                .max(self.observed.pulled(&s.node.id).unwrap_or(0));
            let mut oldest: Option<(u64, UnixMillis)> = None;
            for scope in scopes_of(&s.node) {
                if let Some((seq, issued)) = st.first_fact_after(&scope, cursor)?
                    && oldest.is_none_or(|(s, _)| seq < s)
                {
                    oldest = Some((seq, issued));
                }
            }
            missing.insert(s.node.id, oldest.map(|(_, t)| t));
        }
        let mut epochs: HashMap<NodeId, Vec<ShardEpochHeld>> = HashMap::new();
        let mut current: HashMap<mykey_sync_proto::Scope, u32> = HashMap::new();
        for s in &statuses {
            for (shard, held) in self.observed.shard_epochs_of(&s.node.id) {
                let scope = shard.scope.fact_scope();
                let cur = match current.get(&scope) {
                    Some(c) => *c,
                    None => {
                        let c = st.shard_epoch(&scope)?.map_or(0, |r| r.epoch);
                        current.insert(scope, c);
                        c
                    }
                };
                epochs.entry(s.node.id).or_default().push(ShardEpochHeld {
                    shard: shard.to_string(),
                    held,
                    current: cur,
                });
            }
        }
        let last_hub_seq = st.last_hub_seq()?;
        let quarantine = QuarantineSummary::new(st.quarantine_totals()?);
        drop(st);

        let facility_of = |id: &mykey_sync_proto::FacilityId| {
            registry
                .iter()
                .flat_map(|(_, fs)| fs)
                .find(|f| &f.id == id)
                .cloned()
        };
        let municipality_name = |m: MunicipalityCode| {
            registry
                .iter()
                .find(|(mu, _)| mu.code == m)
                .map_or_else(|| m.to_string(), |(mu, _)| mu.name.clone())
        };
        let no_links: Vec<LinkSpan> = vec![];
        let nodes = statuses
            .into_iter()
            .map(|status| {
                let facility = facility_of(&status.node.facility);
                let id = status.node.id;
                let refusals_in_window = refusals.get(&id).copied().unwrap_or(0);
                let last_refusal = latest.get(&id).cloned();
                let oldest_missing_fact = missing.get(&id).copied().flatten();
                let shard_epochs = epochs.remove(&id).unwrap_or_default();
                let quarantine_held = quarantine.held_by_node(&id);
                let assessment = assess::assess(
                    &NodeFacts {
                        status: &status,
                        kind: facility.as_ref().map(|f| f.kind),
                        links: links.get(&id).unwrap_or(&no_links),
                        refusals_in_window,
                        oldest_missing_fact,
                        shard_epochs: &shard_epochs,
                        quarantine_held,
                    },
                    th,
                    now,
                );
                NodeRow {
                    municipality_name: municipality_name(status.node.municipality),
                    status,
                    facility,
                    refusals_in_window,
                    last_refusal,
                    oldest_missing_fact,
                    shard_epochs,
                    quarantine_held,
                    assessment,
                }
            })
            .collect();
        Ok(Fleet {
            at: now,
            nodes,
            municipalities: registry.into_iter().map(|(m, _)| m).collect(),
            last_hub_seq,
            quarantine,
        })
    }

    /// One node's row, latest sessions, rejections and incidents.
    pub fn node_detail(
        &mut self,
        node: &NodeId,
        th: &Thresholds,
        now: UnixMillis,
    ) -> Result<Option<NodeDetail>, StoreError> {
        const RECENT: usize = 20;
        let fleet = self.fleet(th, now)?;
        let Some(row) = fleet.nodes.into_iter().find(|r| r.status.node.id == *node) else {
            return Ok(None);
        };
        let mut st = self.store.begin_read()?;
        let mut sessions = st.links_since(Some(node), UnixMillis(0), MAX_LINKS)?;
        sessions.reverse();
        sessions.truncate(RECENT);
        let rejections = st.rejections(Some(node), RECENT as u32)?;
        let mut incidents: Vec<Incident> = st
            .incidents(MAX_INCIDENTS)?
            .into_iter()
            .filter(|i| i.node.as_ref() == Some(node))
            .collect();
        incidents.reverse();
        incidents.truncate(RECENT);
        Ok(Some(NodeDetail {
            row,
            sessions,
            rejections,
            incidents,
        }))
    }

    /// Liability figures per municipality from posted ledger totals (cheap:
    /// one grouped read, no recomputation from transfers).
    pub fn liabilities(&mut self) -> Result<Vec<Liability>, StoreError> {
        let mut st = self.store.begin_read()?;
        let municipalities = st.municipalities()?;
        let totals = st.ledger_kind_totals()?;
        drop(st);
        let mut out: Vec<Liability> = municipalities
            .into_iter()
            .map(|m| Liability {
                municipality: Some(m),
                ..Liability::default()
            })
            .collect();
        for (m, kind, posted) in totals {
            let Some(l) = out
                .iter_mut()
                .find(|l| l.municipality.as_ref().is_some_and(|x| x.code == m))
            else {
                continue;
            };
            let (d, c) = (i128::from(posted.debits), i128::from(posted.credits));
            // Natural balances as in `LedgerAccount::balance`, by `LedgerAccount::kind`.
            match kind.as_str() {
                // Strict mode's reserved points are still the holders'.
                "wallet" | "escrow" => l.wallets += c - d,
                "debt" => l.debts += d - c,
                "budget" => l.budgets += c - d,
                "payable" => l.merchant_payables += c - d,
                "expiry" => l.expired += c - d,
                "quarantined" => l.quarantine_held += c - d,
                _ => {}
            }
        }
        Ok(out)
    }

    /// Business rejections, newest first (all nodes, or one).
    pub fn rejections(
        &mut self,
        node: Option<&NodeId>,
        limit: u32,
    ) -> Result<Vec<RejectionRow>, StoreError> {
        self.store.begin_read()?.rejections(node, limit)
    }

    /// The serving loop saw the node's connection close at `at` (the time
    /// it saw it, not the time this runs: the job may wait behind others
    /// while the node reconnects, and its new link must stay open).
    pub fn note_link_closed(&mut self, node: &NodeId, at: UnixMillis) -> Result<(), StoreError> {
        let mut st = self.store.begin()?;
        st.close_link(node, at)?;
        st.commit()
    }

    /// The serving loop holds live connections to these nodes (called about
    /// once a minute; an open link not confirmed within
    /// [`Thresholds::link_alive_ms`] counts as down). Also forgets closed
    /// links older than 30 days.
    pub fn note_links_alive(
        &mut self,
        nodes: &[NodeId],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut st = self.store.begin()?;
        for n in nodes {
            st.link_seen(n, now)?;
        }
        // Keep the link log bounded: the dashboard looks back one day, the
        // node pages show the latest sessions.
        st.prune_links(UnixMillis(now.0.saturating_sub(LINK_HISTORY_MS)))?;
        st.commit()
    }

    /// A serving process starts: links a previous one left open end at their
    /// last sighting (on a database several processes share, those no
    /// process confirmed within [`assess::LINK_ALIVE_MS`]). Returns how
    /// many were closed.
    pub fn close_stale_links(&mut self) -> Result<u64, StoreError> {
        let mut st = self.store.begin()?;
        let n = st.close_stale_links(assess::LINK_ALIVE_MS)?;
        st.commit()?;
        Ok(n)
    }
}
