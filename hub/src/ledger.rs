//! Ledger checks: the O(1) balance assertion every commit makes, and the
//! full conservation check (DESIGN §11.1) over totals recomputed from the
//! transfers.

use crate::model::Posted;
use crate::store::{LedgerAudit, MunicipalityFlows};
use mykey_sync_proto::MunicipalityCode;

/// Asserts that the running totals balance. A failure is a bug in the hub,
/// never bad input: it stays on in release and stops the commit.
pub fn assert_balanced(totals: Posted) {
    assert_eq!(
        totals.debits, totals.credits,
        "ledger out of balance: debits {} != credits {}",
        totals.debits, totals.credits
    );
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
