//! Strict mode (DESIGN §6): escrow / bounded-counter spend rights.
//!
//! A municipality in strict mode has its nodes spend only within rights the
//! hub granted them. Granting a right reserves points: a `Reserve` transfer
//! moves them from the holder's wallet to an escrow ledger account of that
//! node (`LedgerAccount::Escrow`), so the same points can neither be granted
//! twice nor spent elsewhere, and the node learns its right from a
//! `SpendRight` fact addressed to it. A node's redeem draws its escrow first
//! ([`crate::rules`]); a right transfer between nodes moves escrow from one
//! to the other; releasing returns what is left to the wallet and tells the
//! node (`SpendRightReleased`). Rights are never created offline, so no
//! partition can produce an overdraft from honest nodes.

use crate::facts::emit;
use crate::hub::Hub;
use crate::model::{LedgerAccount, TransferDraft, TransferKind};
use crate::store::{SpendRightRow, StoreError, StoreTx};
use crate::{ledger, wallet};
use mykey_sync_proto::{
    AccountId, FactBody, MunicipalityCode, NodeId, OpKind, Points, Scope, UnixMillis,
};
use std::collections::BTreeSet;

/// Why an escrow action did nothing.
#[derive(Debug, thiserror::Error)]
pub enum EscrowError {
    /// The municipality is unknown.
    #[error("municipality {0} is not registered; add it first with `mykey-hub municipality add`")]
    UnknownMunicipality(MunicipalityCode),
    /// Rights are granted only in strict mode.
    #[error(
        "municipality {0} is not in strict mode; turn it on first with `mykey-hub municipality strict --code {0} --on`"
    )]
    NotStrict(MunicipalityCode),
    /// No node given.
    #[error("no node given: name the nodes that share the rights with --nodes")]
    NoNodes,
    /// A node is named twice.
    #[error("node {0} is named twice")]
    DuplicateNode(NodeId),
    /// A node is unknown, revoked or of another municipality.
    #[error(
        "node {node} cannot hold rights in {municipality}: it must be an enrolled, unrevoked node of that municipality"
    )]
    BadNode {
        /// The node.
        node: NodeId,
        /// The municipality.
        municipality: MunicipalityCode,
    },
    /// A node whose policy does not allow redeems: a right it cannot spend
    /// would only lock the holder's points away.
    #[error(
        "node {node} (facility {facility}) may not redeem, so it cannot spend a right: name only nodes enrolled with the redeem operation (`mykey-hub node enrol --ops redeem,…`); nothing was reserved"
    )]
    CannotRedeem {
        /// The node.
        node: NodeId,
        /// Its facility.
        facility: mykey_sync_proto::FacilityId,
    },
    /// Turning strict mode on while nodes still hold transactions the hub
    /// has not received: their bounded-mode spends would arrive under
    /// strict rules and be recorded as beyond-right incidents.
    #[error(
        "strict mode stays off for {municipality}: {} nodes hold transactions the hub has not received yet ({}); let each node reach the hub (`mykey-node run`) and deliver them, then try again, or add --force to turn it on now (their spends then arrive under strict rules and are recorded as beyond-right incidents)",
        .undelivered.len(),
        .undelivered.iter().map(|u| format!("node {} {}: {} transactions, as it reported at its last contact", u.node.short(), u.facility, u.n)).collect::<Vec<_>>().join("; ")
    )]
    Undelivered {
        /// The municipality.
        municipality: MunicipalityCode,
        /// What remains, per node.
        undelivered: Vec<Undelivered>,
    },
    /// An account is unknown.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// Storage failed: nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A node's transactions the hub has not received, as the node last told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered {
    /// The node.
    pub node: NodeId,
    /// Its facility.
    pub facility: mykey_sync_proto::FacilityId,
    /// Transactions it signed that the hub has not processed.
    pub n: u64,
}

/// What a grant or a release did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EscrowSummary {
    /// Rights granted or released.
    pub rights: u64,
    /// Points reserved or returned.
    pub points: u64,
    /// Accounts touched.
    pub accounts: u64,
}

/// A node's reserved points on an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowLine {
    /// The holder.
    pub account: AccountId,
    /// The node.
    pub node: NodeId,
    /// Points reserved for it now.
    pub points: Points,
}

impl Hub {
    /// Turns strict mode on or off for a municipality and tells its nodes,
    /// without looking for undelivered transactions (as `--force` does);
    /// the operator's command goes through [`Hub::switch_strict_mode`].
    pub fn set_strict_mode(
        &mut self,
        m: MunicipalityCode,
        on: bool,
        now: UnixMillis,
    ) -> Result<(), EscrowError> {
        self.switch_strict_mode(m, on, true, now)
    }

    /// [`Hub::set_strict_mode`] for an operator: turning strict mode on is
    /// refused while a node of `m` reported transactions the hub has not
    /// received (listed in the error), unless `force`.
    pub fn switch_strict_mode(
        &mut self,
        m: MunicipalityCode,
        on: bool,
        force: bool,
        now: UnixMillis,
    ) -> Result<(), EscrowError> {
        let mut st = self.store.begin()?;
        if st.municipality(m)?.is_none() {
            return Err(EscrowError::UnknownMunicipality(m));
        }
        if on && !force && !st.strict_mode(m)? {
            let undelivered: Vec<Undelivered> = st
                .node_statuses()?
                .into_iter()
                .filter(|s| s.node.municipality == m && !s.node.is_revoked())
                .filter(|s| s.n_unconfirmed() > 0)
                .map(|s| Undelivered {
                    n: s.n_unconfirmed(),
                    node: s.node.id,
                    facility: s.node.facility.clone(),
                })
                .collect();
            if !undelivered.is_empty() {
                return Err(EscrowError::Undelivered {
                    municipality: m,
                    undelivered,
                });
            }
        }
        st.set_strict_mode(m, on, now)?;
        emit(
            &mut *st,
            &self.key,
            Scope::Municipality(m),
            FactBody::StrictMode {
                municipality: m,
                strict: on,
            },
            now,
        )?;
        ledger::commit(st)?;
        Ok(())
    }

    /// Whether strict mode is on for a municipality.
    pub fn strict_mode(&mut self, m: MunicipalityCode) -> Result<bool, StoreError> {
        self.store.begin_read()?.strict_mode(m)
    }

    /// A municipality's strict-mode switch and what is reserved for each
    /// node's rights, as one read; `None` if the municipality is unknown.
    pub fn escrow_view(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Option<(bool, Vec<EscrowLine>)>, StoreError> {
        let strict = {
            let mut st = self.store.begin_read()?;
            if st.municipality(m)?.is_none() {
                return Ok(None);
            }
            st.strict_mode(m)?
        };
        Ok(Some((strict, self.escrow_status(m)?)))
    }

    /// Splits each account's spendable balance in `m` among `nodes` as spend
    /// rights (evenly; the remainder goes one point each to the first
    /// nodes): reserves the points, records the rights and tells each node
    /// its own. `accounts: None` takes every account with points in `m`.
    pub fn escrow_grant(
        &mut self,
        m: MunicipalityCode,
        nodes: &[NodeId],
        accounts: Option<&[AccountId]>,
        now: UnixMillis,
    ) -> Result<EscrowSummary, EscrowError> {
        let mut st = self.store.begin()?;
        check_group(&mut *st, m, nodes)?;
        if !st.strict_mode(m)? {
            return Err(EscrowError::NotStrict(m));
        }
        let accounts = accounts_of(&mut *st, m, accounts)?;
        let mut sum = EscrowSummary::default();
        let k = nodes.len() as u64;
        for account in accounts {
            let wallet = ledger::wallet_balance(&mut *st, account, m)?.balance.get();
            if wallet == 0 {
                continue;
            }
            for (i, node) in nodes.iter().enumerate() {
                let share = wallet / k + u64::from((i as u64) < wallet % k);
                let Some(points) = Points::new(share).ok().filter(|p| !p.is_zero()) else {
                    continue;
                };
                st.post(
                    &TransferDraft {
                        debit: LedgerAccount::Wallet(account, m),
                        credit: LedgerAccount::Escrow(account, m, *node),
                        amount: points,
                        kind: TransferKind::Reserve,
                        origin_tx: None,
                        node_time: None,
                    },
                    now,
                )?;
                let right_id = st.insert_spend_right(&SpendRightRow {
                    account,
                    municipality: m,
                    node: *node,
                    points,
                    granted_at: now,
                })?;
                emit(
                    &mut *st,
                    &self.key,
                    Scope::Node(*node),
                    FactBody::SpendRight {
                        account,
                        municipality: m,
                        node: *node,
                        right_id,
                        points,
                    },
                    now,
                )?;
                sum.rights += 1;
                sum.points += share;
            }
            sum.accounts += 1;
            wallet::tell_wallet(&mut *st, &self.key, account, m, now)?;
        }
        ledger::commit(st)?;
        tracing::info!(municipality = %m, rights = sum.rights, points = sum.points, "escrow granted");
        Ok(sum)
    }

    /// Ends rights in `m` (of `nodes`, or all): each node's unused reserved
    /// points return to the wallet (recovering the holder's debt first, like
    /// any wallet credit), and the node is told to drop its rights.
    /// A spend the node made offline before it learns of the release then
    /// finds no right and is honoured like an offline overdraft: release
    /// after the nodes have delivered their transactions (`escrow status`).
    pub fn escrow_release(
        &mut self,
        m: MunicipalityCode,
        nodes: Option<&[NodeId]>,
        now: UnixMillis,
    ) -> Result<EscrowSummary, EscrowError> {
        let mut st = self.store.begin()?;
        if st.municipality(m)?.is_none() {
            return Err(EscrowError::UnknownMunicipality(m));
        }
        let wanted = |n: &NodeId| nodes.is_none_or(|ns| ns.contains(n));
        let mut pairs: BTreeSet<(AccountId, NodeId)> = st
            .live_spend_rights(m)?
            .into_iter()
            .filter(|(_, n)| wanted(n))
            .collect();
        for (a, n, bal) in st.escrow_balances(m)? {
            if bal > 0 && wanted(&n) {
                pairs.insert((a, n));
            }
        }
        let mut sum = EscrowSummary::default();
        let mut touched = BTreeSet::new();
        for (account, node) in pairs {
            let left = ledger::escrow_balance(&mut *st, account, m, node)?;
            if !left.is_zero() {
                st.post(
                    &TransferDraft {
                        debit: LedgerAccount::Escrow(account, m, node),
                        credit: LedgerAccount::Wallet(account, m),
                        amount: left,
                        kind: TransferKind::Unreserve,
                        origin_tx: None,
                        node_time: None,
                    },
                    now,
                )?;
                touched.insert(account);
            }
            st.release_spend_rights(account, m, &node, now)?;
            emit(
                &mut *st,
                &self.key,
                Scope::Node(node),
                FactBody::SpendRightReleased {
                    account,
                    municipality: m,
                    node,
                },
                now,
            )?;
            sum.rights += 1;
            sum.points += left.get();
        }
        // Returned escrow is a wallet credit: debt is recovered first.
        for account in &touched {
            wallet::credited(&mut *st, &self.key, *account, m, now)?;
        }
        sum.accounts = touched.len() as u64;
        ledger::commit(st)?;
        tracing::info!(municipality = %m, rights = sum.rights, points = sum.points, "escrow released");
        Ok(sum)
    }

    /// Every node's reserved points in `m` (non-zero only).
    pub fn escrow_status(&mut self, m: MunicipalityCode) -> Result<Vec<EscrowLine>, StoreError> {
        let mut st = self.store.begin_read()?;
        let mut out = vec![];
        for (account, node, bal) in st.escrow_balances(m)? {
            assert!(bal >= 0, "negative escrow of {account} at {node}");
            if let Some(points) = ledger::points_of(bal).filter(|p| !p.is_zero()) {
                out.push(EscrowLine {
                    account,
                    node,
                    points,
                });
            }
        }
        Ok(out)
    }
}

fn check_group(
    st: &mut dyn StoreTx,
    m: MunicipalityCode,
    nodes: &[NodeId],
) -> Result<(), EscrowError> {
    if st.municipality(m)?.is_none() {
        return Err(EscrowError::UnknownMunicipality(m));
    }
    if nodes.is_empty() {
        return Err(EscrowError::NoNodes);
    }
    let mut seen = BTreeSet::new();
    for n in nodes {
        if !seen.insert(*n) {
            return Err(EscrowError::DuplicateNode(*n));
        }
        let rec = st
            .node(n)?
            .filter(|r| !r.is_revoked() && r.municipality == m)
            .ok_or(EscrowError::BadNode {
                node: *n,
                municipality: m,
            })?;
        if !rec.policy.allows(OpKind::Redeem) {
            return Err(EscrowError::CannotRedeem {
                node: *n,
                facility: rec.facility,
            });
        }
    }
    Ok(())
}

fn accounts_of(
    st: &mut dyn StoreTx,
    m: MunicipalityCode,
    accounts: Option<&[AccountId]>,
) -> Result<Vec<AccountId>, EscrowError> {
    match accounts {
        Some(list) => {
            for a in list {
                if st.account(*a)?.is_none() {
                    return Err(EscrowError::UnknownAccount(*a));
                }
            }
            let set: BTreeSet<AccountId> = list.iter().copied().collect();
            Ok(set.into_iter().collect())
        }
        None => Ok(st.wallets_with_points(m)?),
    }
}
