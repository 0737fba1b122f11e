//! The nodes the hub vouches for as voucher issuers (issue 17 part 1(a)):
//! a kiosk where holders turn points into vouchers signs them with its own
//! key, under an issuer number the hub gives it here, which its vouchers'
//! serials carry (`mykey_voucher::Issuer`). Each statement is a
//! `FactBody::VoucherIssuer` fact for the node's municipality, kept in its
//! shards under `vi/<issuer>`, so a shop verifies a kiosk's voucher offline
//! with what it holds; withdrawing the issuer (or revoking the node) is
//! another statement of the same number, which replaces the first.

use crate::facts::emit;
use crate::ledger;
use crate::store::voucher::VoucherIssuerRow;
use crate::{Hub, StoreError};
use mykey_sync_proto::{FactBody, NodeId, Scope, UnixMillis};
use mykey_voucher::{MAX_ISSUER, VouchedIssuer};

/// Why a node was not vouched for or withdrawn (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// Not an enrolled node.
    #[error("node {0} is not enrolled: enrol it first (`mykey-hub node enrol`)")]
    NotEnrolled(NodeId),
    /// A revoked node.
    #[error("node {0} is revoked: a revoked key issues nothing")]
    Revoked(NodeId),
    /// Vouched for before.
    #[error("node {node} is voucher issuer {issuer} already; nothing changed")]
    Already {
        /// The node.
        node: NodeId,
        /// Its number.
        issuer: u16,
    },
    /// Withdrawn before: a withdrawal is not undone, so that a voucher
    /// refused once is refused everywhere.
    #[error(
        "node {node} was voucher issuer {issuer} and was withdrawn; a withdrawal stands, so the node issues no vouchers again"
    )]
    WasWithdrawn {
        /// The node.
        node: NodeId,
        /// Its number.
        issuer: u16,
    },
    /// Never vouched for, or withdrawn before.
    #[error(
        "node {0} is not a voucher issuer (or was withdrawn already): `mykey-hub voucher issuer list` shows them"
    )]
    NotIssuer(NodeId),
    /// Every number is taken.
    #[error("the hub has given out all {MAX_ISSUER} voucher issuer numbers")]
    Full,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Vouches for `node` as a voucher issuer of its municipality under the
/// next free number, and says so to the municipality's nodes.
pub fn vouch(hub: &mut Hub, node: NodeId, now: UnixMillis) -> Result<u16, IssuerError> {
    let mut st = hub.store.begin()?;
    let record = st.node(&node)?.ok_or(IssuerError::NotEnrolled(node))?;
    if record.is_revoked() {
        return Err(IssuerError::Revoked(node));
    }
    let all = st.voucher_issuers()?;
    if let Some(r) = all.iter().find(|r| r.node == node) {
        return Err(match r.withdrawn_at {
            None => IssuerError::Already {
                node,
                issuer: r.issuer,
            },
            Some(_) => IssuerError::WasWithdrawn {
                node,
                issuer: r.issuer,
            },
        });
    }
    let issuer = all
        .iter()
        .map(|r| r.issuer)
        .max()
        .unwrap_or(0)
        .checked_add(1)
        .filter(|n| *n <= MAX_ISSUER)
        .ok_or(IssuerError::Full)?;
    let row = VoucherIssuerRow {
        issuer,
        node,
        municipality: record.municipality,
        vouched_at: now,
        withdrawn_at: None,
    };
    st.insert_voucher_issuer(&row)?;
    emit(
        &mut *st,
        &hub.key,
        Scope::Municipality(record.municipality),
        statement(&row, false),
        now,
    )?;
    ledger::commit(st)?;
    tracing::info!(node = %node.short(), issuer, "vouched for a voucher issuer");
    Ok(issuer)
}

/// Withdraws `node` as a voucher issuer: its vouchers not yet redeemed are
/// refused from now on, by the hub and by every node that has the statement.
pub fn withdraw(hub: &mut Hub, node: NodeId, now: UnixMillis) -> Result<u16, IssuerError> {
    let mut st = hub.store.begin()?;
    let row = st
        .voucher_issuers()?
        .into_iter()
        .find(|r| r.node == node && r.withdrawn_at.is_none())
        .ok_or(IssuerError::NotIssuer(node))?;
    st.withdraw_voucher_issuer(row.issuer, now)?;
    emit(
        &mut *st,
        &hub.key,
        Scope::Municipality(row.municipality),
        statement(&row, true),
        now,
    )?;
    ledger::commit(st)?;
    Ok(row.issuer)
}

/// Every voucher issuer, by number.
pub fn list(hub: &mut Hub) -> Result<Vec<VoucherIssuerRow>, StoreError> {
    let mut st = hub.store.begin_read()?;
    st.voucher_issuers()
}

/// What a verifier at the hub holds of issuer `issuer`: its key, withdrawn
/// if the hub withdrew it or revoked its node; `None` if never vouched for.
pub fn vouched(
    st: &mut dyn crate::store::StoreTx,
    issuer: u16,
) -> Result<Option<VouchedIssuer>, StoreError> {
    let Some(row) = st
        .voucher_issuers()?
        .into_iter()
        .find(|r| r.issuer == issuer)
    else {
        return Ok(None);
    };
    let revoked = st.node(&row.node)?.is_none_or(|n| n.is_revoked());
    let Ok(key) = row.node.verifying_key() else {
        return Ok(None);
    };
    Ok(Some(VouchedIssuer {
        key,
        withdrawn: row.withdrawn_at.is_some() || revoked,
    }))
}

fn statement(row: &VoucherIssuerRow, withdrawn: bool) -> FactBody {
    FactBody::VoucherIssuer {
        municipality: row.municipality,
        issuer: row.issuer,
        node: row.node,
        withdrawn,
    }
}
