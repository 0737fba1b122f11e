//! The points economy and settlement (DESIGN §8): operator exchanges with
//! campaign premiums and holding periods, lots and expiry, settlement
//! periods with immutable statements, Zengin payout files and liability
//! reports.
//!
//! Deciding parts are pure and take `now`: [`exchange::quote`],
//! [`lots::consume`], [`settlement::statements`], [`liability::deposit_required`],
//! [`zengin::write_transfer_file`]. The `impl Hub` blocks load what they
//! need from the store ([`crate::store::economy::EconomyTx`]), apply and
//! commit in one storage transaction, like [`crate::admin`].
//!
//! Only the hub's own clock places a transfer in a settlement period: a
//! transaction that arrives late from an offline node is posted now, keeps
//! its node time beside the hub time, and lands in the open period.

pub mod bankdata;
pub mod calendar;
pub mod cli;
pub mod exchange;
pub(crate) mod fold;
pub mod http;
pub mod liability;
pub mod lifecycle;
pub mod lots;
pub mod outputs;
pub mod overdue;
pub mod settlement;
pub mod types;
pub mod zengin;

use crate::facts::emit;
use crate::hub::Hub;
use crate::model::{LedgerAccount, TransferDraft, TransferKind};
use crate::store::StoreError;
use crate::{ledger, wallet};
use fold::{expiry_fact, sync_lots};
use lots::{ExpiryPolicy, Lot};
use mykey_sync_proto::fact::Scope;
use mykey_sync_proto::{AccountId, MunicipalityCode, Points, ProgramId, UnixMillis};
use std::collections::BTreeMap;

pub use fold::earliest_expiry;

/// Yen per regional point (DESIGN §1: 1 point = 1 yen): what settlement
/// statements bill and pay, and what liability reports value unused points at.
pub const YEN_PER_POINT: u64 = 1;

/// Expired lots handled per storage transaction.
const EXPIRY_BATCH: u32 = 1000;

/// What an expiry run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiryRun {
    /// Lots that expired.
    pub n_lots: u64,
    /// Holders whose points expired.
    pub n_holders: u64,
    /// Points moved to expiry income.
    pub points: u64,
}

/// Wallets checked for a changed upcoming expiry per storage transaction.
const EXPIRY_NOTICE_BATCH: u32 = 1000;

impl Hub {
    /// Brings the lots up to date with the ledger.
    pub fn sync_lots(&mut self) -> Result<(), StoreError> {
        let mut st = self.store.begin()?;
        sync_lots(&mut *st)?;
        st.commit()
    }

    /// Sets when a programme's grants expire (from grants posted after this).
    pub fn set_program_expiry(
        &mut self,
        program: &ProgramId,
        policy: ExpiryPolicy,
    ) -> Result<(), crate::ProgramError> {
        let mut st = self.store.begin()?;
        if st.program(program)?.is_none() {
            return Err(crate::ProgramError::UnknownProgram(program.clone()));
        }
        // Lots of earlier grants keep the policy they were credited under.
        sync_lots(&mut *st)?;
        st.set_program_expiry(program, policy)?;
        st.commit()?;
        Ok(())
    }

    /// The expiry job: releases ended holding periods, then moves every
    /// expired lot's points to expiry income (one transfer per holder), and
    /// tells nodes the new balances.
    pub fn run_expiry(&mut self, now: UnixMillis) -> Result<ExpiryRun, StoreError> {
        self.release_held(now)?;
        let mut run = ExpiryRun::default();
        self.expire_batches(None, now, usize::MAX, &mut run)?;
        Ok(run)
    }

    /// A bounded step of the economy's background work for a serving loop:
    /// at most `max_batches` batches each of held exchanges to release and
    /// of expired lots. Returns true if more is due (call again soon).
    pub fn economy_tick(
        &mut self,
        now: UnixMillis,
        max_batches: usize,
    ) -> Result<bool, StoreError> {
        self.economy_tick_in(None, now, max_batches)
    }

    /// [`Hub::economy_tick`] for municipality `m` only (`None`: all): the
    /// step a process runs for each municipality whose lease it holds
    /// (`crate::ticks`). The lots' fold of the ledger, which every
    /// municipality's step needs, is brought up to date first whichever
    /// process runs it.
    pub fn economy_tick_in(
        &mut self,
        m: Option<MunicipalityCode>,
        now: UnixMillis,
        max_batches: usize,
    ) -> Result<bool, StoreError> {
        let (_, more_held) = self.release_batches(m, now, max_batches)?;
        let mut run = ExpiryRun::default();
        let more_expired = self.expire_batches(m, now, max_batches, &mut run)?;
        let more_notices = self.tell_expiries_in(m, now, max_batches)?;
        Ok(more_held || more_expired || more_notices)
    }

    /// Tells nodes the upcoming expiry of wallets whose lots changed since
    /// they were last checked (spends and grants ingested from nodes fold into
    /// the lots here, off the ingest path), at most `max_batches` batches.
    /// Returns true if more wallets are waiting.
    pub fn tell_expiries(
        &mut self,
        now: UnixMillis,
        max_batches: usize,
    ) -> Result<bool, StoreError> {
        self.tell_expiries_in(None, now, max_batches)
    }

    fn tell_expiries_in(
        &mut self,
        m: Option<MunicipalityCode>,
        now: UnixMillis,
        max_batches: usize,
    ) -> Result<bool, StoreError> {
        for _ in 0..max_batches {
            let mut st = self.store.begin()?;
            sync_lots(&mut *st)?;
            let wallets = st.take_expiry_dirty(m, EXPIRY_NOTICE_BATCH)?;
            for (account, m) in &wallets {
                if let Some(body) = expiry_fact(&mut *st, *account, *m)? {
                    emit(&mut *st, &self.key, Scope::Municipality(*m), body, now)?;
                }
            }
            ledger::commit(st)?;
            if wallets.len() < EXPIRY_NOTICE_BATCH as usize {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn expire_batches(
        &mut self,
        m: Option<MunicipalityCode>,
        now: UnixMillis,
        max_batches: usize,
        run: &mut ExpiryRun,
    ) -> Result<bool, StoreError> {
        // One storage transaction per batch of lots, so a large expiry never
        // holds the write lock for long; each batch leaves the ledger whole.
        for _ in 0..max_batches {
            let mut st = self.store.begin()?;
            sync_lots(&mut *st)?;
            let batch = st.expired_lots(m, now, EXPIRY_BATCH)?;
            if batch.is_empty() {
                st.commit()?;
                return Ok(false);
            }
            let mut per_holder: BTreeMap<(AccountId, MunicipalityCode), u64> = BTreeMap::new();
            for lot in lots::expired(&batch, now) {
                *per_holder
                    .entry((lot.account, lot.municipality))
                    .or_default() += lot.remaining;
                run.n_lots += 1;
            }
            for ((account, m), points) in &per_holder {
                let Some(amount) = Points::new(*points).ok().filter(|p| !p.is_zero()) else {
                    continue;
                };
                st.post(
                    &TransferDraft {
                        debit: LedgerAccount::Wallet(*account, *m),
                        credit: LedgerAccount::ExpiryIncome(*m),
                        amount,
                        kind: TransferKind::Expiry,
                        origin_tx: None,
                        node_time: None,
                    },
                    now,
                )?;
                run.points += points;
                run.n_holders += 1;
            }
            // The expiry transfers consume exactly the expired lots: they hold
            // the earliest expiries of each wallet.
            sync_lots(&mut *st)?;
            for (account, m) in per_holder.keys() {
                wallet::credited(&mut *st, &self.key, *account, *m, now)?;
            }
            ledger::commit(st)?;
            tracing::info!(
                municipality = %m.map_or("all".to_owned(), |m| m.to_string()),
                holders = per_holder.len(),
                points = run.points,
                "points expired"
            );
            if batch.len() < EXPIRY_BATCH as usize {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A holder's lots with points left in a municipality, in the order they
    /// are spent (earliest expiry first): what holders and nodes show as
    /// upcoming expiries.
    pub fn lots_of(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<Vec<Lot>, StoreError> {
        let mut st = self.store.begin()?;
        sync_lots(&mut *st)?;
        let lots = st.live_lots(account, m)?;
        st.commit()?;
        Ok(lots)
    }

    /// Points of a holder that expire before `until`, per expiry instant.
    pub fn upcoming_expiries(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        until: UnixMillis,
    ) -> Result<Vec<(UnixMillis, u64)>, StoreError> {
        let mut out: BTreeMap<UnixMillis, u64> = BTreeMap::new();
        for l in self.lots_of(account, m)? {
            if let Some(e) = l.expires_at.filter(|e| *e < until) {
                *out.entry(e).or_default() += l.remaining;
            }
        }
        Ok(out.into_iter().collect())
    }
}
