//! The ledger: where every balance is computed, and the balanced commit.
//!
//! Reads of a holder's points inside a storage transaction ([`wallet_balance`]:
//! wallet and debt, [`escrow_balance`], [`held_balance`]), the balance after a
//! decision's transfers without reading again ([`balance_after`]), the one
//! checked conversion of a ledger sum to [`Points`] ([`points_of`]), the O(1)
//! balance assertion every commit makes ([`commit`]), and the full
//! conservation check (DESIGN §11.1) over totals recomputed from the
//! transfers ([`check_conservation`]).
//!
//! It knows storage and the row types only: no driver, no fact, no clock.

use crate::model::{Balance, LedgerAccount, Posted, TransferDraft};
use crate::store::{LedgerAudit, MunicipalityFlows, StoreError, StoreTx};
use mykey_sync_proto::{AccountId, MunicipalityCode, NodeId, Points};

/// A ledger sum as [`Points`], or `None` below zero or past [`Points::MAX`].
pub fn points_of(v: i128) -> Option<Points> {
    u64::try_from(v).ok().and_then(|v| Points::new(v).ok())
}

/// A ledger sum that must be [`Points`]: out of range is a corrupt ledger
/// (a wallet, debt, escrow or held account never goes below zero: spends
/// beyond the wallet go to debt, recoveries stop at the debt).
fn points_in(
    v: i128,
    what: &'static str,
    whose: &dyn std::fmt::Display,
) -> Result<Points, StoreError> {
    points_of(v).ok_or_else(|| StoreError::Corrupt {
        what,
        detail: format!("{whose} holds {v} pt; restore the hub from its last backup"),
    })
}

/// A holder's wallet and debt in one municipality, read inside a storage
/// transaction.
pub fn wallet_balance(
    st: &mut dyn StoreTx,
    account: AccountId,
    m: MunicipalityCode,
) -> Result<Balance, StoreError> {
    let (w, d) = st.holder_posted(account, m)?;
    let wallet = LedgerAccount::Wallet(account, m);
    let debt = LedgerAccount::Debt(account, m);
    Ok(Balance {
        balance: points_in(wallet.balance(w), "ledger (wallet)", &wallet)?,
        debt: points_in(debt.balance(d), "ledger (debt)", &debt)?,
    })
}

/// A node's reserved points on a holder's account (strict-mode escrow).
pub fn escrow_balance(
    st: &mut dyn StoreTx,
    account: AccountId,
    m: MunicipalityCode,
    node: NodeId,
) -> Result<Points, StoreError> {
    let e = LedgerAccount::Escrow(account, m, node);
    let v = e.balance(st.posted(&e)?);
    points_in(v, "ledger (escrow)", &e)
}

/// A holder's points in `m` reserved for nodes' strict-mode rights, summed
/// over the nodes, with how many nodes hold some (they left the wallet, so
/// a balance alone shows them as gone).
pub fn reserved_balance(
    st: &mut dyn StoreTx,
    account: AccountId,
    m: MunicipalityCode,
) -> Result<(Points, u64), StoreError> {
    let mut sum = 0i128;
    let mut nodes = 0;
    for (a, _, v) in st.escrow_balances(m)? {
        if a == account && v != 0 {
            sum += v;
            nodes += 1;
        }
    }
    Ok((points_in(sum, "ledger (escrow)", &account)?, nodes))
}

/// A holder's exchanged points in a municipality still in holding periods
/// (only exchanges credit a held account and only their releases debit it).
pub fn held_balance(
    st: &mut dyn StoreTx,
    account: AccountId,
    m: MunicipalityCode,
) -> Result<Points, StoreError> {
    let held = LedgerAccount::Held(account, m);
    let v = held.balance(st.posted(&held)?);
    points_in(v, "ledger (held account)", &held)
}

/// A holder's wallet and debt after `transfers`, computed from the balance
/// before them (pure: ingest knows the balance before from its context).
pub fn balance_after(
    before: Balance,
    account: AccountId,
    m: MunicipalityCode,
    transfers: &[TransferDraft],
) -> Result<Balance, StoreError> {
    let wallet = LedgerAccount::Wallet(account, m);
    let debt = LedgerAccount::Debt(account, m);
    let (mut w, mut d) = (
        i128::from(before.balance.get()),
        i128::from(before.debt.get()),
    );
    for t in transfers {
        let a = i128::from(t.amount.get());
        if t.debit == wallet {
            w -= a;
        }
        if t.credit == wallet {
            w += a;
        }
        if t.debit == debt {
            d += a;
        }
        if t.credit == debt {
            d -= a;
        }
    }
    Ok(Balance {
        balance: points_in(w, "ledger (wallet after transfers)", &wallet)?,
        debt: points_in(d, "ledger (debt after transfers)", &debt)?,
    })
}

/// Asserts that the running totals balance. A failure is a bug in the hub,
/// never bad input: it stays on in release and stops the commit.
pub fn assert_balanced(totals: Posted) {
    assert_eq!(
        totals.debits, totals.credits,
        "ledger out of balance: debits {} != credits {}",
        totals.debits, totals.credits
    );
}

/// The balanced commit: asserts debits equal credits, then commits. Every
/// storage transaction that posts transfers ends here.
pub fn commit(mut st: Box<dyn StoreTx + '_>) -> Result<(), StoreError> {
    assert_balanced(st.ledger_totals()?);
    st.commit()
}

/// The outcome of a full check: per municipality, what was credited,
/// redeemed and expired, and what the wallets and debts hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConservationReport {
    /// Number of transfers checked.
    pub n_transfers: u64,
    /// Sum of all transfer amounts (= total debits = total credits).
    pub total: u64,
    /// Per municipality.
    pub municipalities: Vec<MunicipalityFlows>,
}

/// A broken ledger invariant, with the numbers that show it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConservationError {
    /// Running totals, account totals and transfers disagree.
    #[error(
        "ledger totals disagree: running {running:?}, accounts {accounts:?}, transfers {transfers}; \
         stop ingest and restore from backup"
    )]
    Unbalanced {
        /// The running totals.
        running: Posted,
        /// Sum of account totals.
        accounts: Posted,
        /// Sum of transfers.
        transfers: u64,
    },
    /// Some accounts' posted totals differ from their transfers.
    #[error("ledger accounts out of step with their transfers: {0:?}")]
    Accounts(Vec<String>),
    /// Credited − redeemed − expired ≠ wallets − debts in a municipality.
    #[error(
        "points of {municipality} are not conserved: credited {credited} − redeemed {redeemed} \
         − expired {expired} ≠ wallets {wallets} − debts {debts}"
    )]
    NotConserved {
        /// Whose points.
        municipality: MunicipalityCode,
        /// Credited.
        credited: u64,
        /// Redeemed.
        redeemed: u64,
        /// Expired.
        expired: u64,
        /// Sum of wallets.
        wallets: i128,
        /// Sum of debts.
        debts: i128,
    },
    /// A wallet or a debt went negative.
    #[error(
        "{municipality}: {negative_wallets} wallet(s) and {negative_debts} debt account(s) are negative"
    )]
    Negative {
        /// Whose points.
        municipality: MunicipalityCode,
        /// Wallets below zero.
        negative_wallets: u64,
        /// Debts below zero.
        negative_debts: u64,
    },
}

/// Checks an audit: every total agrees, and points are conserved per municipality.
pub fn check_conservation(audit: LedgerAudit) -> Result<ConservationReport, ConservationError> {
    let LedgerAudit {
        running,
        accounts,
        transfers,
        n_transfers,
        mismatched_accounts,
        municipalities,
    } = audit;
    if running.debits != running.credits || accounts != running || accounts.debits != transfers {
        return Err(ConservationError::Unbalanced {
            running,
            accounts,
            transfers,
        });
    }
    if !mismatched_accounts.is_empty() {
        return Err(ConservationError::Accounts(mismatched_accounts));
    }
    for f in &municipalities {
        let Some(municipality) = f.municipality else {
            continue;
        };
        let lhs = i128::from(f.credited) - i128::from(f.redeemed) - i128::from(f.expired);
        if lhs != f.wallets - f.debts {
            return Err(ConservationError::NotConserved {
                municipality,
                credited: f.credited,
                redeemed: f.redeemed,
                expired: f.expired,
                wallets: f.wallets,
                debts: f.debts,
            });
        }
        if f.negative_wallets > 0 || f.negative_debts > 0 {
            return Err(ConservationError::Negative {
                municipality,
                negative_wallets: f.negative_wallets,
                negative_debts: f.negative_debts,
            });
        }
    }
    Ok(ConservationReport {
        n_transfers,
        total: transfers,
        municipalities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_of_refuses_what_is_not_points() {
        assert_eq!(points_of(0), Some(Points::ZERO));
        assert_eq!(points_of(7), Points::new(7).ok());
        assert_eq!(points_of(-1), None);
        assert_eq!(points_of(i128::from(Points::MAX) + 1), None);
        assert_eq!(points_of(i128::MAX), None);
    }
}
