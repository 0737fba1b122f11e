//! LAN rosters (DESIGN §6): which nodes may trust each other on a LAN.
//!
//! Anyone can join a stall's LAN, so nodes admit LAN peers only from a
//! hub-signed roster: a `LanRoster` fact, scoped to the municipality, that
//! names a group's nodes (for example a festival's stalls), each an
//! enrolled, unrevoked node of that municipality. A later roster of the
//! group replaces the earlier one; an empty one ends the group. The fact log
//! is the only record: the latest roster of each group is read back by the
//! fact's subject (`lan/<municipality>/<group>`, see `facts::subject_of`).
//! Revoking a node re-issues every roster of its municipality that named
//! it, without it, in the same storage transaction.

use crate::facts::roster_subject;
use crate::hub::Hub;
use crate::ledger;
use crate::rosters::{emit_roster, municipality_prefix, rosters_under};
use crate::store::StoreError;

pub use crate::rosters::LanRosterLine;
use mykey_sync_proto::{LanGroup, MunicipalityCode, NodeId, Roster, UnixMillis, fact::RosterError};

/// Why a roster was not issued.
#[derive(Debug, thiserror::Error)]
pub enum LanRosterError {
    /// The municipality is unknown.
    #[error("municipality {0} is not registered; add it first with `mykey-hub municipality add`")]
    UnknownMunicipality(MunicipalityCode),
    /// No node named.
    #[error(
        "no node given: name the group's nodes with --nodes ID,ID,… or end the group with --clear"
    )]
    NoNodes,
    /// Too many nodes, or otherwise not a valid roster.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// A node is not enrolled.
    #[error(
        "node {0} is not enrolled; enrol it first with `mykey-hub node enrol` (`mykey-hub nodes` lists the enrolled ones); nothing was issued"
    )]
    UnknownNode(NodeId),
    /// A node is revoked.
    #[error(
        "node {0} is revoked: a revoked key cannot be on a LAN roster; remove it from --nodes; nothing was issued"
    )]
    Revoked(NodeId),
    /// A node belongs to another municipality.
    #[error(
        "node {node} is a node of municipality {its}, not {municipality}: a roster names nodes of one municipality; nothing was issued"
    )]
    OtherMunicipality {
        /// The node.
        node: NodeId,
        /// Its municipality.
        its: MunicipalityCode,
        /// The roster's.
        municipality: MunicipalityCode,
    },
    /// `--clear` of a group that has no roster.
    #[error(
        "municipality {municipality} has no LAN group {group} to end; `mykey-hub lan rosters --municipality {municipality}` lists the groups"
    )]
    NoSuchGroup {
        /// The municipality.
        municipality: MunicipalityCode,
        /// The group.
        group: LanGroup,
    },
    /// Storage failed: nothing was issued.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Hub {
    /// Issues the roster of a LAN group of municipality `m`: the nodes that
    /// may trust each other on that LAN (each an enrolled, unrevoked node of
    /// `m`). It replaces the group's earlier roster; nodes learn it with
    /// their next fact pull, and a change takes effect without a restart.
    pub fn set_lan_roster(
        &mut self,
        m: MunicipalityCode,
        group: &LanGroup,
        nodes: &[NodeId],
        now: UnixMillis,
    ) -> Result<LanRosterLine, LanRosterError> {
        if nodes.is_empty() {
            return Err(LanRosterError::NoNodes);
        }
        let roster = Roster::new(nodes.to_vec())?;
        let mut st = self.store.begin()?;
        if st.municipality(m)?.is_none() {
            return Err(LanRosterError::UnknownMunicipality(m));
        }
        for n in roster.members() {
            let record = st.node(n)?.ok_or(LanRosterError::UnknownNode(*n))?;
            if record.is_revoked() {
                return Err(LanRosterError::Revoked(*n));
            }
            if record.municipality != m {
                return Err(LanRosterError::OtherMunicipality {
                    node: *n,
                    its: record.municipality,
                    municipality: m,
                });
            }
        }
        let members = roster.members().to_vec();
        let hub_seq = emit_roster(&mut *st, &self.key, m, group, roster, now)?;
        ledger::commit(st)?;
        tracing::info!(municipality = %m, %group, members = members.len(), "issued LAN roster");
        Ok(LanRosterLine {
            municipality: m,
            group: group.clone(),
            members,
            hub_seq,
            issued_at: now,
        })
    }

    /// Ends a LAN group: an empty roster, after which its nodes no longer
    /// admit each other (unless another group names them both).
    pub fn clear_lan_roster(
        &mut self,
        m: MunicipalityCode,
        group: &LanGroup,
        now: UnixMillis,
    ) -> Result<u64, LanRosterError> {
        let mut st = self.store.begin()?;
        if st.municipality(m)?.is_none() {
            return Err(LanRosterError::UnknownMunicipality(m));
        }
        let live = rosters_under(&mut *st, &self.key.id(), &roster_subject(m, group))?
            .into_iter()
            .any(|l| l.group == *group && !l.members.is_empty());
        if !live {
            return Err(LanRosterError::NoSuchGroup {
                municipality: m,
                group: group.clone(),
            });
        }
        let hub_seq = emit_roster(&mut *st, &self.key, m, group, Roster::new(vec![])?, now)?;
        ledger::commit(st)?;
        tracing::info!(municipality = %m, %group, "ended LAN group");
        Ok(hub_seq)
    }

    /// The rosters in force (groups not ended), of one municipality or of
    /// all, by municipality and group.
    pub fn lan_rosters(
        &mut self,
        m: Option<MunicipalityCode>,
    ) -> Result<Vec<LanRosterLine>, StoreError> {
        let prefix = match m {
            Some(m) => municipality_prefix(m),
            None => b"lan/".to_vec(),
        };
        let hub = self.key.id();
        let mut st = self.store.begin_read()?;
        let mut lines = rosters_under(&mut *st, &hub, &prefix)?;
        lines.retain(|l| !l.members.is_empty());
        lines.sort_by(|a, b| (a.municipality, &a.group).cmp(&(b.municipality, &b.group)));
        Ok(lines)
    }
}
