//! The quarantine: spends a node signed beyond the bounds the hub enrolled
//! ([`crate::bounds`]), held as signed evidence that settlement never pays.
//!
//! Ingest posts a held spend from `QuarantineClaims(m)` to
//! `Quarantined(facility, m)` (kind `quarantine`): no holder is charged and
//! no merchant is owed. An operator decides each item:
//! - **release**: the claim is reversed (kind `quarantine-decided`) and the
//!   spend is paid as a redeem at the time of the decision (the holder's
//!   wallet first, then debt), landing in the open settlement period;
//! - **reject**: the claim is reversed and nothing is paid.
//!
//! Each decision records who and why, is logged, and cannot be changed.
//!
//! Drivers: [`cli`] (`mykey-hub quarantine …`) and [`http`] (`/api/quarantine…`);
//! the dashboard, `/metrics`, `mykey-hub nodes` and the liability report read
//! [`Hub::quarantine_summary`].

use crate::hub::Hub;
use crate::model::{Incident, IncidentKind, LedgerAccount, TransferDraft, TransferKind};
use crate::rules::redeem_transfers;
use crate::store::StoreError;
use crate::store::bounds::{QuarantineFilter, QuarantineRow, QuarantineState};
use crate::{ledger, wallet};
use mykey_sync_proto::{Redeem, TxBody, UnixMillis};

pub use summary::{FacilityQuarantine, QuarantineSummary, Sum};

/// Most items one listing returns.
pub const MAX_LISTED: u32 = 10_000;

/// Longest reason a decision takes, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// Why a quarantine decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such item.
    #[error("no quarantined spend #{0}: list them with `mykey-hub quarantine list`")]
    Unknown(u64),
    /// Already decided.
    #[error("quarantined spend #{id} was already {state} by {by}: a decision is final")]
    AlreadyDecided {
        /// The item.
        id: u64,
        /// What was decided.
        state: &'static str,
        /// Who decided.
        by: String,
    },
    /// The decision names no operator or gives no reason.
    #[error("a quarantine decision needs the operator's name and a reason (--by, --why)")]
    Unexplained,
    /// The reason is longer than [`MAX_REASON_CHARS`].
    #[error("the reason is too long: say why in at most {MAX_REASON_CHARS} characters")]
    LongReason,
    /// The stored evidence does not decode: the database was changed.
    #[error(
        "the signed redeem of quarantined spend #{0} is missing or damaged: restore the database"
    )]
    Evidence(u64),
    /// Storage failed: nothing was decided.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Hub {
    /// Quarantined spends matching `filter`, oldest first.
    pub fn quarantined(
        &mut self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineRow>, StoreError> {
        let mut st = self.store.begin_read()?;
        st.quarantine_items(filter, MAX_LISTED)
    }

    /// One quarantined spend.
    pub fn quarantine_item(&mut self, id: u64) -> Result<Option<QuarantineRow>, StoreError> {
        self.store.begin_read()?.quarantine_item(id)
    }

    /// One quarantined spend with the signed redeem behind it (`None`
    /// inside only if the database lost it), from one read.
    pub fn quarantined_with_evidence(
        &mut self,
        id: u64,
    ) -> Result<Option<(QuarantineRow, Option<mykey_sync_proto::SignedTx>)>, StoreError> {
        let mut st = self.store.begin_read()?;
        let Some(q) = st.quarantine_item(id)? else {
            return Ok(None);
        };
        let signed = st.processed_signed(&q.tx)?;
        Ok(Some((q, signed)))
    }

    /// The latest balance of a wallet the hub told any node (a receipt or a
    /// `ConfirmedBalance` fact), as a redeem states it for its basis.
    pub fn latest_basis(
        &mut self,
        account: mykey_sync_proto::AccountId,
        m: mykey_sync_proto::MunicipalityCode,
    ) -> Result<Option<mykey_sync_proto::Basis>, StoreError> {
        let mut st = self.store.begin_read()?;
        Ok(st
            .latest_issued_balance(account, m)?
            .map(|(ledger_pos, b)| mykey_sync_proto::Basis {
                ledger_pos,
                balance: b.balance,
                debt: b.debt,
            }))
    }

    /// The signed transaction the hub processed under this id: the evidence
    /// behind a quarantined spend (and any transfer's origin).
    pub fn processed_signed(
        &mut self,
        id: &mykey_sync_proto::TxId,
    ) -> Result<Option<mykey_sync_proto::SignedTx>, StoreError> {
        self.store.begin_read()?.processed_signed(id)
    }

    /// Every quarantined spend summed per municipality, facility, node and
    /// state: the dashboard's flags, `/metrics`, `mykey-hub nodes`.
    pub fn quarantine_summary(&mut self) -> Result<QuarantineSummary, StoreError> {
        Ok(QuarantineSummary::new(
            self.store.begin_read()?.quarantine_totals()?,
        ))
    }

    /// Held spends per node: (node, items, points), for the dashboard and metrics.
    pub fn quarantine_by_node(
        &mut self,
    ) -> Result<Vec<(mykey_sync_proto::NodeId, u64, mykey_sync_proto::Points)>, StoreError> {
        self.store.begin_read()?.quarantine_held_by_node()
    }

    /// Releases a held spend: it is paid now, as a redeem from the holder's
    /// wallet (then debt), in the open settlement period.
    pub fn release_quarantined(
        &mut self,
        id: u64,
        by: &str,
        why: &str,
        now: UnixMillis,
    ) -> Result<QuarantineRow, DecideError> {
        self.decide_quarantined(id, QuarantineState::Released, by, why, now)
    }

    /// Rejects a held spend: it is never paid.
    pub fn reject_quarantined(
        &mut self,
        id: u64,
        by: &str,
        why: &str,
        now: UnixMillis,
    ) -> Result<QuarantineRow, DecideError> {
        self.decide_quarantined(id, QuarantineState::Rejected, by, why, now)
    }

    fn decide_quarantined(
        &mut self,
        id: u64,
        state: QuarantineState,
        by: &str,
        why: &str,
        now: UnixMillis,
    ) -> Result<QuarantineRow, DecideError> {
        let (by, why) = (by.trim(), why.trim());
        if by.is_empty() || why.is_empty() {
            return Err(DecideError::Unexplained);
        }
        if why.chars().count() > MAX_REASON_CHARS || by.chars().count() > MAX_REASON_CHARS {
            return Err(DecideError::LongReason);
        }
        let mut st = self.store.begin()?;
        let item = st.quarantine_item(id)?.ok_or(DecideError::Unknown(id))?;
        if item.state != QuarantineState::Held {
            return Err(DecideError::AlreadyDecided {
                id,
                state: item.state.name(),
                by: item.decided_by.unwrap_or_default(),
            });
        }
        let m = item.municipality;
        st.post(
            &TransferDraft {
                debit: LedgerAccount::Quarantined(item.facility.clone(), m),
                credit: LedgerAccount::QuarantineClaims(m),
                amount: item.points,
                kind: TransferKind::QuarantineDecided,
                origin_tx: Some(item.tx),
                node_time: None,
            },
            now,
        )?;
        if state == QuarantineState::Released {
            let evidence = st
                .processed_signed(&item.tx)?
                .and_then(|s| s.verify().ok())
                .ok_or(DecideError::Evidence(id))?;
            let TxBody::Redeem(r) = &evidence.payload().body else {
                return Err(DecideError::Evidence(id));
            };
            let before = ledger::wallet_balance(&mut *st, item.account, m)?;
            let held = Redeem {
                points: item.points,
                ..r.clone()
            };
            for t in redeem_transfers(
                &held,
                before.balance,
                item.tx,
                evidence.payload().created_at,
            ) {
                st.post(&t, now)?;
            }
            wallet::tell_wallet(&mut *st, &self.key, item.account, m, now)?;
        }
        st.decide_quarantine(id, &state, by, why, now)?;
        st.record_incident(&Incident {
            at: now,
            kind: IncidentKind::Quarantined,
            node: Some(item.node),
            seq: Some(item.seq),
            tx: Some(item.tx),
            detail: format!(
                "quarantined spend #{id} of {} at {} {} by {by}: {why}",
                item.points,
                item.facility,
                state.name()
            ),
        })?;
        let decided = st.quarantine_item(id)?.ok_or(DecideError::Unknown(id))?;
        ledger::commit(st)?;
        tracing::warn!(
            id,
            node = %item.node.short(),
            seq = item.seq,
            tx = %item.tx.short(),
            points = %item.points,
            facility = %item.facility,
            decision = state.name(),
            by,
            why,
            "quarantine decision"
        );
        Ok(decided)
    }
}

pub mod cli;
pub mod http;
pub mod query;
pub mod summary;
