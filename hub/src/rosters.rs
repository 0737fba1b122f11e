//! LAN roster facts, below the drivers: a group's roster read back from the
//! fact log by subject, a roster issued, and every roster that named a
//! revoked node re-issued without it (the LAN driver, [`crate::lan`], and
//! node revocation, [`crate::admin`], both use them).

use crate::facts::emit;
use crate::key::HubKey;
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{FactBody, LanGroup, MunicipalityCode, NodeId, Roster, Scope, UnixMillis};

/// A group's roster in force, as the fact log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanRosterLine {
    /// The municipality.
    pub municipality: MunicipalityCode,
    /// The group.
    pub group: LanGroup,
    /// Its members (empty: the group was ended).
    pub members: Vec<NodeId>,
    /// The roster fact's position in the log.
    pub hub_seq: u64,
    /// When it was issued.
    pub issued_at: UnixMillis,
}

/// The latest roster of every group under a subject prefix, empty ones
/// (ended groups) included.
pub(crate) fn rosters_under(
    st: &mut dyn StoreTx,
    hub: &NodeId,
    prefix: &[u8],
) -> Result<Vec<LanRosterLine>, StoreError> {
    let mut out = vec![];
    for f in st.latest_facts_by_subject(prefix)? {
        let v = f.signed.verify(hub).map_err(|e| StoreError::Corrupt {
            what: "LAN roster fact",
            detail: e.to_string(),
        })?;
        let p = v.payload();
        if let FactBody::LanRoster {
            municipality,
            group,
            members,
        } = &p.body
        {
            out.push(LanRosterLine {
                municipality: *municipality,
                group: group.clone(),
                members: members.members().to_vec(),
                hub_seq: p.hub_seq,
                issued_at: p.issued_at,
            });
        }
    }
    Ok(out)
}

/// The subject prefix of every roster of `m`.
pub(crate) fn municipality_prefix(m: MunicipalityCode) -> Vec<u8> {
    format!("lan/{m}/").into_bytes()
}

/// Emits a group's roster fact; returns its hub_seq.
pub(crate) fn emit_roster(
    st: &mut dyn StoreTx,
    key: &HubKey,
    m: MunicipalityCode,
    group: &LanGroup,
    members: Roster,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    let hub_seq = st.last_hub_seq()? + 1;
    emit(
        st,
        key,
        Scope::Municipality(m),
        FactBody::LanRoster {
            municipality: m,
            group: group.clone(),
            members,
        },
        now,
    )?;
    Ok(hub_seq)
}

/// Re-issues every roster of `m` that names `node`, without it (inside the
/// caller's transaction, which revokes the node). Returns the groups.
pub(crate) fn drop_from_rosters(
    st: &mut dyn StoreTx,
    key: &HubKey,
    node: NodeId,
    m: MunicipalityCode,
    now: UnixMillis,
) -> Result<Vec<LanGroup>, StoreError> {
    let mut groups = vec![];
    for line in rosters_under(st, &key.id(), &municipality_prefix(m))? {
        if !line.members.contains(&node) {
            continue;
        }
        let rest: Vec<NodeId> = line.members.into_iter().filter(|n| *n != node).collect();
        // Fewer members than a valid roster held: still valid.
        let roster = Roster::new(rest).map_err(|e| StoreError::Corrupt {
            what: "LAN roster",
            detail: e.to_string(),
        })?;
        emit_roster(st, key, m, &line.group, roster, now)?;
        tracing::info!(node = %node.short(), group = %line.group, "revoked node dropped from its LAN roster");
        groups.push(line.group);
    }
    Ok(groups)
}
