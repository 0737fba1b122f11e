//! Printed QR point vouchers issued by the hub (a municipality's grant
//! batch, `mykey-hub voucher issue`): the batch is recorded, its points move
//! from the programme's budget to the municipality's voucher float in one
//! balanced transfer, and each voucher is signed with the hub key (nodes
//! verify it offline with the hub id they were enrolled with).
//!
//! A voucher is not stored: its batch row and index say everything it says,
//! and ed25519 signatures are deterministic, so [`batch_vouchers`] signs the
//! same bytes again to print a sheet or one voucher.

pub mod cli;
pub mod incidents;
pub mod issuers;
pub mod kiosk;
pub mod marks;
pub mod redeem;

use crate::ledger;
use crate::model::{LedgerAccount, TransferDraft, TransferKind};
use crate::store::voucher::VoucherBatchRow;
use crate::{Hub, StoreError};
use mykey_sync_proto::{MunicipalityCode, Points, ProgramId, UnixMillis};
use mykey_voucher::{ExpiryDate, Serial, SignedVoucher, VoucherBody};

/// Most vouchers in one batch (the index is two bytes).
pub const MAX_BATCH: u16 = u16::MAX;

/// What an issued batch is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedBatch {
    /// The batch as recorded.
    pub batch: VoucherBatchRow,
    /// Its vouchers, signed, by index.
    pub vouchers: Vec<SignedVoucher>,
}

/// Why a batch was not issued (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The programme does not exist.
    #[error("no programme {0}: create it first (`mykey-hub program create`) or check the name")]
    UnknownProgram(ProgramId),
    /// Zero vouchers or zero points.
    #[error("a batch needs at least one voucher of at least 1 point")]
    Empty,
    /// A voucher's face value is above what a voucher holds.
    #[error("{0} is more than one voucher can carry ({max} pt): issue more vouchers of less", max = u32::MAX)]
    FaceTooLarge(Points),
    /// The total is above what the programme's budget holds.
    #[error(
        "programme {program} has {left} pt left, the batch needs {needed} pt: fund it first (`mykey-hub program fund`) or issue fewer"
    )]
    BudgetExhausted {
        /// The programme.
        program: ProgramId,
        /// What its budget holds.
        left: i128,
        /// count × points.
        needed: u64,
    },
    /// The expiry is not after today.
    #[error("the expiry {0} has already passed: give a date from today on")]
    Expired(ExpiryDate),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues a batch of `count` vouchers of `points` each from `program`,
/// valid through `expires`.
pub fn issue(
    hub: &mut Hub,
    program: &ProgramId,
    count: u16,
    points: Points,
    expires: ExpiryDate,
    now: UnixMillis,
) -> Result<IssuedBatch, IssueError> {
    if count == 0 || points.is_zero() {
        return Err(IssueError::Empty);
    }
    if u32::try_from(points.get()).is_err() {
        return Err(IssueError::FaceTooLarge(points));
    }
    if expires.has_passed(now) {
        return Err(IssueError::Expired(expires));
    }
    let mut st = hub.store.begin()?;
    let p = st
        .program(program)?
        .ok_or_else(|| IssueError::UnknownProgram(program.clone()))?;
    let m = p.municipality;
    let needed = points.get() * u64::from(count);
    let total = Points::new(needed).map_err(|_| IssueError::FaceTooLarge(points))?;
    let budget = LedgerAccount::ProgramBudget(program.clone(), m);
    let left = budget.balance(st.posted(&budget)?);
    if left < i128::from(needed) {
        return Err(IssueError::BudgetExhausted {
            program: program.clone(),
            left: left.max(0),
            needed,
        });
    }
    let batch = VoucherBatchRow {
        id: st.next_voucher_batch()?,
        program: program.clone(),
        municipality: m,
        count,
        points,
        expires_days: expires.days(),
        issued_at: now,
        cancelled_at: None,
        expired_at: None,
    };
    st.insert_voucher_batch(&batch)?;
    st.post(
        &TransferDraft {
            debit: budget,
            credit: LedgerAccount::VoucherFloat(m),
            amount: total,
            kind: TransferKind::VoucherIssue,
            origin_tx: None,
            node_time: None,
        },
        now,
    )?;
    ledger::commit(st)?;
    let vouchers = batch_vouchers(hub, &batch);
    Ok(IssuedBatch { batch, vouchers })
}

/// The signed vouchers of a recorded batch (signed again: the same bytes).
pub fn batch_vouchers(hub: &Hub, b: &VoucherBatchRow) -> Vec<SignedVoucher> {
    // Recorded batches hold a face value that fits (checked at issue).
    let face = u32::try_from(b.points.get()).unwrap_or(u32::MAX);
    (1..=b.count)
        .map(|index| {
            VoucherBody {
                key_hint: 0,
                municipality: b.municipality,
                serial: Serial { batch: b.id, index },
                points: face,
                expires: ExpiryDate::from_days(b.expires_days),
            }
            .sign(hub.key.signing_key())
        })
        .collect()
}

/// A recorded batch by number.
pub fn batch(hub: &mut Hub, id: u32) -> Result<Option<VoucherBatchRow>, StoreError> {
    let mut st = hub.store.begin_read()?;
    st.voucher_batch(id)
}

/// Every batch with what it has paid so far: (batch, points paid, vouchers paid).
pub fn batches(hub: &mut Hub) -> Result<Vec<(VoucherBatchRow, Points, u64)>, StoreError> {
    let mut st = hub.store.begin_read()?;
    let mut out = vec![];
    for b in st.voucher_batches()? {
        let (paid, n) = st.voucher_batch_paid(b.id)?;
        out.push((b, paid, n));
    }
    Ok(out)
}

/// The held redemptions of kiosk vouchers (their issue has not reached the
/// hub), oldest first, at most `limit`: what shops are owed once it comes.
pub fn held(
    hub: &mut Hub,
    limit: u32,
) -> Result<Vec<crate::store::voucher::HeldRedemptionRow>, StoreError> {
    let mut st = hub.store.begin_read()?;
    st.held_redemptions_all(false, limit)
}

/// Why a batch was not cancelled (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No such batch.
    #[error("no voucher batch {0}: `mykey-hub voucher list` shows the batches")]
    Unknown(u32),
    /// Cancelled before.
    #[error("voucher batch {0} was already cancelled; nothing changed")]
    Already(u32),
    /// Expired: its unredeemed points went back already.
    #[error(
        "voucher batch {0} has expired and its unredeemed points went back to its programme already; nothing changed (nodes refuse its vouchers by their date)"
    )]
    Expired(u32),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cancels a batch (a printed sheet was lost): its unredeemed points go
/// back from the voucher float to the programme's budget. A redemption a
/// node already signed offline still reaches the hub; it is then an
/// incident, paid only within that node's offline voucher cap.
pub fn cancel(hub: &mut Hub, id: u32, now: UnixMillis) -> Result<Points, CancelError> {
    let mut st = hub.store.begin()?;
    let b = st.voucher_batch(id)?.ok_or(CancelError::Unknown(id))?;
    if b.cancelled_at.is_some() {
        return Err(CancelError::Already(id));
    }
    if b.expired_at.is_some() {
        return Err(CancelError::Expired(id));
    }
    let (paid, _) = st.voucher_batch_paid(id)?;
    let issued = b.points.get() * u64::from(b.count);
    let back = Points::new(issued.saturating_sub(paid.get())).unwrap_or(Points::ZERO);
    st.cancel_voucher_batch(id, now)?;
    let cancelled = VoucherBatchRow {
        cancelled_at: Some(now),
        ..b.clone()
    };
    marks::emit_cancelled(&mut *st, &hub.key, &cancelled, now)?;
    if !back.is_zero() {
        st.post(
            &TransferDraft {
                debit: LedgerAccount::VoucherFloat(b.municipality),
                credit: LedgerAccount::ProgramBudget(b.program.clone(), b.municipality),
                amount: back,
                kind: TransferKind::VoucherCancel,
                origin_tx: None,
                node_time: None,
            },
            now,
        )?;
    }
    ledger::commit(st)?;
    Ok(back)
}

/// A batch whose unredeemed points went back after its last valid day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredBatch {
    /// The batch (a kiosk batch's number has `mykey_voucher::NODE_BATCH_FLAG` set).
    pub batch: u32,
    /// Points back to its programme's budget (a kiosk batch: to the holder's wallet).
    pub back: Points,
}

/// The vouchers' expiry (issue 17 part 6): every batch past its last valid
/// day (JST) that is neither cancelled nor expired yet returns its
/// unredeemed points from the voucher float to its programme's budget (a
/// grant batch's points are the programme's); a kiosk batch's go back to
/// the wallet of the holder who turned them into vouchers
/// ([`kiosk::expire_due_in`]). A
/// redemption signed on or before the last day that reaches the hub later
/// is still paid, then from the programme (see `rules::voucher`). One
/// storage transaction; returns the batches expired now.
pub fn expire_due(hub: &mut Hub, now: UnixMillis) -> Result<Vec<ExpiredBatch>, StoreError> {
    expire_due_in(hub, None, now)
}

/// [`expire_due`] for the batches of municipality `m` only (`None`: all):
/// the step a process runs for each municipality whose lease it holds
/// (`crate::ticks`).
pub fn expire_due_in(
    hub: &mut Hub,
    m: Option<MunicipalityCode>,
    now: UnixMillis,
) -> Result<Vec<ExpiredBatch>, StoreError> {
    let mut st = hub.store.begin()?;
    let mut out = vec![];
    for b in st.voucher_batches()? {
        if m.is_some_and(|m| m != b.municipality)
            || b.cancelled_at.is_some()
            || b.expired_at.is_some()
            || !ExpiryDate::from_days(b.expires_days).has_passed(now)
        {
            continue;
        }
        let (paid, _) = st.voucher_batch_paid(b.id)?;
        let issued = b.points.get() * u64::from(b.count);
        let back = Points::new(issued.saturating_sub(paid.get())).unwrap_or(Points::ZERO);
        st.expire_voucher_batch(b.id, now)?;
        if !back.is_zero() {
            st.post(
                &TransferDraft {
                    debit: LedgerAccount::VoucherFloat(b.municipality),
                    credit: LedgerAccount::ProgramBudget(b.program.clone(), b.municipality),
                    amount: back,
                    kind: TransferKind::VoucherExpire,
                    origin_tx: None,
                    node_time: None,
                },
                now,
            )?;
        }
        tracing::info!(batch = b.id, %back, "voucher batch expired: its unredeemed points went back to its programme");
        out.push(ExpiredBatch { batch: b.id, back });
    }
    out.extend(kiosk::expire_due_in(&mut *st, m, now)?);
    ledger::commit(st)?;
    Ok(out)
}

/// Points in unredeemed vouchers of a municipality (its voucher float).
pub fn outstanding(
    st: &mut dyn crate::store::StoreTx,
    m: MunicipalityCode,
) -> Result<i128, StoreError> {
    let float = LedgerAccount::VoucherFloat(m);
    Ok(float.balance(st.posted(&float)?))
}
