//! The wallet-credit path, in one place: after points are credited to a
//! holder's wallet, debt is recovered first ([`crate::rules::debt_recovery`],
//! the one rule), then nodes are told the confirmed balance and, when the
//! wallet's earliest-expiring lot changed, its upcoming expiry.
//!
//! Escrow returned by a release, exchanges and their held points' release,
//! expiry and quarantine decisions end here; grants post their recovery with
//! their own legs ([`crate::rules::grant_transfers`], the same rule) and then
//! tell the wallet here. Ingest tells balances with the push's own facts and
//! leaves expiries to the economy tick: folding lots on every push cost a
//! third of ingest throughput.

use crate::economy::fold::expiry_fact;
use crate::facts::emit;
use crate::key::HubKey;
use crate::ledger::wallet_balance;
use crate::model::Balance;
use crate::rules::debt_recovery;
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{AccountId, FactBody, MunicipalityCode, Scope, UnixMillis};

/// After a wallet credit posted in `st`: recovers the holder's debt from the
/// wallet, then tells nodes the wallet ([`tell_wallet`]); returns the balance.
pub(crate) fn credited(
    st: &mut dyn StoreTx,
    key: &HubKey,
    account: AccountId,
    m: MunicipalityCode,
    now: UnixMillis,
) -> Result<Balance, StoreError> {
    let b = wallet_balance(st, account, m)?;
    if let Some(t) = debt_recovery(account, m, b.balance, b.debt, None) {
        st.post(&t, now)?;
    }
    tell_wallet(st, key, account, m, now)
}

/// Tells the holder's municipality nodes the wallet's confirmed balance as
/// it stands inside this storage transaction ([`tell_balance`]), then its
/// upcoming expiry if that changed ([`tell_expiry`]); returns the balance.
pub(crate) fn tell_wallet(
    st: &mut dyn StoreTx,
    key: &HubKey,
    account: AccountId,
    m: MunicipalityCode,
    now: UnixMillis,
) -> Result<Balance, StoreError> {
    let b = tell_balance(st, key, account, m, now)?;
    tell_expiry(st, key, account, m, now)?;
    Ok(b)
}

/// Records and emits the wallet's confirmed balance at the ledger head
/// (the basis a node's redeem may state); no lot fold.
pub(crate) fn tell_balance(
    st: &mut dyn StoreTx,
    key: &HubKey,
    account: AccountId,
    m: MunicipalityCode,
    now: UnixMillis,
) -> Result<Balance, StoreError> {
    let b = wallet_balance(st, account, m)?;
    let ledger_pos = st.ledger_head()?;
    st.record_issued_balance(account, m, ledger_pos, b)?;
    emit(
        st,
        key,
        Scope::Municipality(m),
        FactBody::ConfirmedBalance {
            account,
            municipality: m,
            balance: b.balance,
            debt: b.debt,
            ledger_pos,
        },
        now,
    )?;
    Ok(b)
}

/// Folds the ledger into the lots and emits the wallet's `UpcomingExpiry`
/// fact if its earliest-expiring lot changed since it was last told.
pub(crate) fn tell_expiry(
    st: &mut dyn StoreTx,
    key: &HubKey,
    account: AccountId,
    m: MunicipalityCode,
    now: UnixMillis,
) -> Result<(), StoreError> {
    if let Some(e) = expiry_fact(st, account, m)? {
        emit(st, key, Scope::Municipality(m), e, now)?;
    }
    Ok(())
}
