//! Storage for a holder's own read of their points (issue 19): the
//! transfers that touched one holder's wallets, held points, debts and
//! strict-mode reservations.
//!
//! A supertrait of [`super::StoreTx`]. Reads only: the history is the
//! ledger the hub already keeps, so there is no table of its own, and the
//! ledger has no column for what was bought (checked by `hub/tests/holder.rs`
//! over the schema). The default methods work over [`LedgerTx::transfers`]
//! on any backend, scanning the ledger; a backend overrides them with a
//! query of its own (SQLite: `store/sqlite/holder.rs`).

use super::{LedgerTx, StoreError};
use crate::model::{LedgerAccount, Transfer};
use mykey_sync_proto::{AccountId, MunicipalityCode};

/// Page size of the default scan.
const SCAN_PAGE: u32 = 10_000;

/// Whether a ledger account is one of `account`'s own: wallet, held, debt,
/// or strict mode's escrow (points reserved for a node are still the
/// holder's, and a strict-mode spend is paid from them).
pub fn is_holders(a: &LedgerAccount, account: AccountId) -> bool {
    matches!(a,
        LedgerAccount::Wallet(x, _)
        | LedgerAccount::Held(x, _)
        | LedgerAccount::Debt(x, _)
        | LedgerAccount::Escrow(x, _, _)
        if *x == account)
}

/// Whether a holder's history shows a transfer through `a`: their own
/// accounts ([`is_holders`]) and what they gave to donation programmes.
pub fn in_history(a: &LedgerAccount, account: AccountId) -> bool {
    is_holders(a, account) || matches!(a, LedgerAccount::Donated(x, _, _) if *x == account)
}

/// A holder's transfers, newest first.
pub trait HolderTx: LedgerTx {
    /// The transfers that debit or credit one of `account`'s own accounts
    /// or donated accounts ([`in_history`]), at ledger positions below `before` (`None`: all),
    /// newest first, at most `limit`.
    fn holder_transfers(
        &mut self,
        account: AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Transfer>, StoreError> {
        let mut found = Vec::new();
        let mut after = 0;
        loop {
            let page = self.transfers(after, SCAN_PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.pos;
            found.extend(page.into_iter().filter(|t| {
                before.is_none_or(|b| t.pos < b)
                    && (in_history(&t.debit, account) || in_history(&t.credit, account))
            }));
        }
        found.reverse();
        found.truncate(limit as usize);
        Ok(found)
    }

    /// The municipalities in which `account` has (or had) a wallet, held
    /// points or a debt, in code order.
    fn holder_municipalities(
        &mut self,
        account: AccountId,
    ) -> Result<Vec<MunicipalityCode>, StoreError> {
        let mut out: Vec<MunicipalityCode> = self
            .holder_transfers(account, None, u32::MAX)?
            .iter()
            .flat_map(|t| [&t.debit, &t.credit])
            .filter(|a| is_holders(a, account))
            .map(LedgerAccount::municipality)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}
