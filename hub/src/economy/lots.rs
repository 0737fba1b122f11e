//! Lots and expiry: every credit to a wallet is a lot with an expiry from
//! its programme's or operator's policy; every debit of a wallet (redeem,
//! debt recovery, expiry) consumes the lots with the earliest expiry first.
//!
//! Lots are a fold over the ledger: a credit to a wallet opens a lot, a
//! debit [`consume`]s the holder's live lots in [`consumption_order`]. The driver
//! ([`crate::Hub::sync_lots`]) walks transfers after a stored cursor, so
//! ingest (which knows nothing of lots) never has to change, and the fold
//! is exact: a debit consumes only lots credited before it.

use crate::economy::calendar::Date;
use crate::economy::exchange::OperatorId;
use crate::model::{LedgerAccount, Transfer};
use mykey_sync_proto::{AccountId, MunicipalityCode, ProgramId, UnixMillis};
use std::fmt;

const MS_PER_DAY: u64 = 86_400_000;

/// When credited points expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryPolicy {
    /// Never.
    Never,
    /// At the end (31 March, 24:00 JST) of the fiscal year `years` after the
    /// one the points were credited in (0: the same fiscal year).
    FiscalYearEnd {
        /// Fiscal years on.
        years: u32,
    },
    /// `days` days after the credit.
    Days {
        /// Days.
        days: u32,
    },
}

impl ExpiryPolicy {
    /// When points credited at `credited_at` expire (`None`: never).
    pub fn expires_at(self, credited_at: UnixMillis) -> Option<UnixMillis> {
        match self {
            ExpiryPolicy::Never => None,
            ExpiryPolicy::FiscalYearEnd { years } => {
                Some(Date::of(credited_at).fiscal_year_end(years).end())
            }
            ExpiryPolicy::Days { days } => Some(credited_at.plus_ms(u64::from(days) * MS_PER_DAY)),
        }
    }

    /// Parses `never`, `fy+N` (fiscal year end N years on) or `Nd` (N days).
    pub fn parse(text: &str) -> Option<ExpiryPolicy> {
        if text == "never" {
            return Some(ExpiryPolicy::Never);
        }
        if let Some(n) = text.strip_prefix("fy+") {
            return n
                .parse()
                .ok()
                .map(|years| ExpiryPolicy::FiscalYearEnd { years });
        }
        text.strip_suffix('d')
            .and_then(|n| n.parse().ok())
            .filter(|d| *d > 0)
            .map(|days| ExpiryPolicy::Days { days })
    }
}

impl fmt::Display for ExpiryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpiryPolicy::Never => f.write_str("never"),
            ExpiryPolicy::FiscalYearEnd { years } => write!(f, "fy+{years}"),
            ExpiryPolicy::Days { days } => write!(f, "{days}d"),
        }
    }
}

/// Where a lot's points came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LotSource {
    /// A grant programme.
    Program(ProgramId),
    /// An exchange (with its premium) from an operator.
    Operator(OperatorId),
    /// Anything else (an operator's correction).
    Other,
}

impl LotSource {
    /// Parses the [`fmt::Display`] form.
    pub fn parse(text: &str) -> Option<LotSource> {
        if text == "other" {
            return Some(LotSource::Other);
        }
        if let Some(p) = text.strip_prefix("program:") {
            return ProgramId::parse(p).ok().map(LotSource::Program);
        }
        text.strip_prefix("operator:")
            .and_then(|o| OperatorId::parse(o).ok())
            .map(LotSource::Operator)
    }
}

impl fmt::Display for LotSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LotSource::Program(p) => write!(f, "program:{p}"),
            LotSource::Operator(o) => write!(f, "operator:{o}"),
            LotSource::Other => f.write_str("other"),
        }
    }
}

/// Points credited to a holder's wallet in one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lot {
    /// The ledger position of the crediting transfer (the lot's id).
    pub pos: u64,
    /// The holder.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Where they came from.
    pub source: LotSource,
    /// Points credited.
    pub amount: u64,
    /// Points not yet spent or expired.
    pub remaining: u64,
    /// When credited (hub clock).
    pub credited_at: UnixMillis,
    /// When the rest expires (`None`: never).
    pub expires_at: Option<UnixMillis>,
}

/// A holder's wallet: (account, municipality).
pub type WalletKey = (AccountId, MunicipalityCode);

/// Whose wallet a transfer credits, and whose it debits. Points reserved
/// for strict mode's spend rights (`LedgerAccount::Escrow`) stay in the
/// holder's lots: reserving, moving and returning them changes no lot, and a
/// spend from a reservation uses up lots like a spend from the wallet.
pub fn wallet_side(t: &Transfer) -> (Option<WalletKey>, Option<WalletKey>) {
    let w = |a: &LedgerAccount| match a {
        LedgerAccount::Wallet(acct, m) | LedgerAccount::Escrow(acct, m, _) => Some((*acct, *m)),
        _ => None,
    };
    let (credited, debited) = (w(&t.credit), w(&t.debit));
    if credited.is_some() && credited == debited {
        return (None, None);
    }
    (credited, debited)
}

/// Consumes `amount` from `live` (already in consumption order: earliest
/// expiry first, never-expiring last, then credit order). Returns the new
/// remaining points of each lot touched. Panics if the lots hold less than
/// the amount: a wallet never goes below zero, and every credit is a lot.
pub fn consume<'a>(live: impl IntoIterator<Item = &'a Lot>, amount: u64) -> Vec<(u64, u64)> {
    let mut left = amount;
    let mut out = vec![];
    for lot in live {
        if left == 0 {
            break;
        }
        let take = lot.remaining.min(left);
        left -= take;
        out.push((lot.pos, lot.remaining - take));
    }
    assert_eq!(
        left, 0,
        "wallet debit of {amount} exceeds its lots: the lots are out of step with the ledger"
    );
    out
}

/// The key that orders lots for consumption: earliest expiry first, those
/// that never expire last, then credit order.
pub type ConsumptionKey = (bool, Option<UnixMillis>, u64);

/// A lot's [`ConsumptionKey`].
pub fn consumption_key(l: &Lot) -> ConsumptionKey {
    (l.expires_at.is_none(), l.expires_at, l.pos)
}

/// The order in which lots are consumed.
pub fn consumption_order(lots: &mut [Lot]) {
    lots.sort_by_key(consumption_key);
}

/// Lots expired at `now`: those with points left whose expiry has passed.
pub fn expired(lots: &[Lot], now: UnixMillis) -> impl Iterator<Item = &Lot> {
    lots.iter()
        .filter(move |l| l.remaining > 0 && l.expires_at.is_some_and(|e| e <= now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(pos: u64, remaining: u64, expires: Option<u64>) -> Lot {
        Lot {
            pos,
            account: AccountId::new(1).unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            source: LotSource::Other,
            amount: remaining,
            remaining,
            credited_at: UnixMillis(0),
            expires_at: expires.map(UnixMillis),
        }
    }

    #[test]
    fn earliest_expiry_first_never_last() {
        let mut lots = vec![
            lot(1, 100, None),
            lot(2, 50, Some(900)),
            lot(3, 70, Some(500)),
        ];
        consumption_order(&mut lots);
        assert_eq!(
            lots.iter().map(|l| l.pos).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        assert_eq!(consume(&lots, 100), vec![(3, 0), (2, 20)]);
        assert_eq!(
            expired(&lots, UnixMillis(500))
                .map(|l| l.pos)
                .collect::<Vec<_>>(),
            vec![3]
        );
    }

    #[test]
    fn policies() {
        // Credited 2026-11-24 JST; fy+1 ends 2028-03-31 24:00 JST.
        let t = Date::new(2026, 11, 24).unwrap().start();
        let fy = ExpiryPolicy::parse("fy+1").unwrap();
        assert_eq!(
            fy.expires_at(t),
            Some(Date::new(2028, 4, 1).unwrap().start())
        );
        assert_eq!(
            ExpiryPolicy::parse("180d").unwrap().expires_at(t),
            Some(t.plus_ms(180 * MS_PER_DAY))
        );
        for text in ["never", "fy+0", "fy+2", "30d"] {
            assert_eq!(ExpiryPolicy::parse(text).unwrap().to_string(), text);
        }
        assert!(ExpiryPolicy::parse("0d").is_none());
        assert!(ExpiryPolicy::parse("soon").is_none());
    }
}
