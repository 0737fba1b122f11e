//! Settlement periods: monthly by default, or twice a month (1st-15th,
//! 16th-end) per municipality, in JST. Closing a period turns its transfers
//! into immutable statements: each operator's invoice (points exchanged, yen
//! owed), the municipality's receipts and the premium it funded, each
//! merchant's payout for points redeemed at it.
//!
//! A period is a range of ledger positions: from the end of the previous
//! closed period to the last transfer the hub posted (by its own clock)
//! before the period's end. A transfer posted later, however old its node
//! time, belongs to a later period, so a closed period never changes.

use crate::economy::calendar::Date;
use crate::hub::Hub;
use crate::model::{LedgerAccount, Transfer, TransferKind};
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{MunicipalityCode, UnixMillis};
use std::collections::BTreeMap;

pub use super::types::{Cycle, Period, Statement, StatementKind};

/// Most periods one call closes (a hub left alone for years catches up in steps).
pub const MAX_PERIODS_PER_CLOSE: usize = 48;
const PAGE: u32 = 1000;

/// A closed period with its statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedPeriod {
    /// Its number among the municipality's periods (1: the first), as
    /// `settle`, `statements` and the output file names show it.
    pub number: u32,
    /// The period.
    pub period: Period,
    /// Its statements.
    pub statements: Vec<Statement>,
}

/// Accumulates a period's statements from its transfers (pure).
#[derive(Debug, Default)]
pub struct Statements {
    lines: BTreeMap<(StatementKind, String), (u64, u64)>,
}

impl Statements {
    /// Adds a transfer of the period if it concerns `m`.
    pub fn add(&mut self, m: MunicipalityCode, t: &Transfer) {
        let mut line = |k: StatementKind, party: String| {
            let e = self.lines.entry((k, party)).or_default();
            e.0 += t.amount.get();
            e.1 += 1;
        };
        match (&t.debit, &t.credit, t.kind) {
            (LedgerAccount::OperatorReceivable(op, om), _, TransferKind::Exchange) if *om == m => {
                line(StatementKind::OperatorInvoice, op.clone());
                line(StatementKind::MunicipalityReceipt, m.to_string());
            }
            (LedgerAccount::MunicipalityFunding(fm), _, TransferKind::Premium) if *fm == m => {
                line(StatementKind::PremiumFunded, m.to_string());
            }
            (
                _,
                LedgerAccount::MerchantPayable(f, fm),
                TransferKind::Redeem | TransferKind::RedeemOnDebt | TransferKind::VoucherRedeem,
            ) if *fm == m => {
                line(StatementKind::MerchantPayout, f.as_str().to_owned());
            }
            (_, LedgerAccount::ExpiryIncome(em), TransferKind::Expiry) if *em == m => {
                line(StatementKind::Expired, m.to_string());
            }
            (_, LedgerAccount::Quarantined(f, qm), TransferKind::Quarantine) if *qm == m => {
                line(StatementKind::Quarantined, f.as_str().to_owned());
            }
            _ => {}
        }
        // An exchange straight into a donation programme is both the
        // operator's invoice (above) and the recipient's payout.
        if let (LedgerAccount::Donated(_, p, dm), TransferKind::Donation | TransferKind::Exchange) =
            (&t.credit, t.kind)
            && *dm == m
        {
            line(StatementKind::DonationPayout, p.as_str().to_owned());
        }
    }

    /// The lines, in kind then party order.
    pub fn finish(self) -> Vec<Statement> {
        self.lines
            .into_iter()
            .map(|((kind, party), (points, n))| Statement {
                kind,
                party,
                points,
                yen: points.saturating_mul(crate::economy::YEN_PER_POINT),
                n_transfers: n,
            })
            .collect()
    }
}

/// Statements of `m` over `transfers` (pure).
pub fn statements<'a>(
    m: MunicipalityCode,
    transfers: impl IntoIterator<Item = &'a Transfer>,
) -> Vec<Statement> {
    let mut s = Statements::default();
    for t in transfers {
        s.add(m, t);
    }
    s.finish()
}

/// Why periods could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// The municipality is not registered.
    #[error("municipality {0} is not registered")]
    UnknownMunicipality(MunicipalityCode),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where `m`'s first unclosed period starts, as every settlement run and
/// the overdue count cut it.
pub(crate) struct OpenPeriod {
    /// The municipality's cycle.
    pub cycle: Cycle,
    /// Its start: the end of the last closed period, or the start of the
    /// period holding the ledger's first transfer.
    pub starts_at: UnixMillis,
    /// The ledger position it follows.
    pub after: u64,
    /// How many periods of `m` are closed.
    pub n_closed: usize,
}

/// `m`'s first unclosed period (`None`: the ledger holds nothing yet).
pub(crate) fn open_period(
    st: &mut dyn StoreTx,
    m: MunicipalityCode,
) -> Result<Option<OpenPeriod>, StoreError> {
    let cycle = st.settlement_cycle(m)?.unwrap_or_default();
    let mut closed = st.periods(m)?;
    let n_closed = closed.len();
    let (starts_at, after) = match closed.pop() {
        Some(p) => (p.ends_at, p.ledger_pos),
        None => match st.transfers(0, 1)?.first() {
            Some(t) => (cycle.period_of(t.hub_time).0.start(), 0),
            None => return Ok(None),
        },
    };
    Ok(Some(OpenPeriod {
        cycle,
        starts_at,
        after,
        n_closed,
    }))
}

/// The periods of `m` that would close at `now` (at most
/// [`MAX_PERIODS_PER_CLOSE`], oldest first; with `through_now`, the open one
/// too, through `now` inclusive) with their statements, read inside the
/// caller's transaction; nothing is written.
pub(crate) fn plan_periods(
    st: &mut dyn StoreTx,
    m: MunicipalityCode,
    now: UnixMillis,
    through_now: bool,
) -> Result<Vec<ClosedPeriod>, StoreError> {
    let Some(OpenPeriod {
        cycle,
        starts_at: mut start,
        mut after,
        n_closed,
    }) = open_period(st, m)?
    else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    while out.len() < MAX_PERIODS_PER_CLOSE {
        let (_, end_day) = cycle.period_of(start);
        let mut end = end_day.start();
        if end > now {
            if !through_now || start > now {
                break;
            }
            // Through `now` inclusive: what the hub posted at `now` is in.
            end = now.plus_ms(1);
        }
        let through = st.last_pos_before(after, end)?;
        let mut acc = Statements::default();
        let mut cursor = after;
        while cursor < through {
            let page = st.transfers(cursor, PAGE)?;
            let Some(last) = page.last().map(|t| t.pos) else {
                break;
            };
            for t in page.iter().filter(|t| t.pos <= through) {
                acc.add(m, t);
            }
            cursor = last;
        }
        out.push(ClosedPeriod {
            number: u32::try_from(n_closed + out.len() + 1).unwrap_or(u32::MAX),
            period: Period {
                municipality: m,
                starts_at: start,
                ends_at: end,
                closed_at: now,
                ledger_pos: through,
            },
            statements: acc.finish(),
        });
        start = end;
        after = through;
    }
    Ok(out)
}

impl Hub {
    /// Sets a municipality's settlement cycle (for periods not yet closed).
    pub fn set_settlement_cycle(
        &mut self,
        m: MunicipalityCode,
        c: Cycle,
    ) -> Result<(), SettleError> {
        let mut st = self.store.begin()?;
        if st.municipality(m)?.is_none() {
            return Err(SettleError::UnknownMunicipality(m));
        }
        st.set_settlement_cycle(m, c)?;
        st.commit()?;
        Ok(())
    }

    /// Closes every period of `m` that ended at or before `now` (at most
    /// [`MAX_PERIODS_PER_CLOSE`]), oldest first, and returns them. The first
    /// period is the one holding the ledger's first transfer.
    ///
    /// Statements only: this checks no payee and records no output file.
    /// A settlement run (`mykey-hub settle`, `POST /api/economy/settle`) is
    /// [`Hub::settle`], which closes periods only together with their files.
    pub fn close_periods(
        &mut self,
        m: MunicipalityCode,
        now: UnixMillis,
    ) -> Result<Vec<ClosedPeriod>, SettleError> {
        self.close(m, now, false)
    }

    /// Like [`Hub::close_periods`], then also closes the open period early,
    /// through `now` inclusive (a settlement run on demand: the demo, an
    /// operator's final run). The next period starts just after `now` and
    /// ends at the cycle's next boundary.
    pub fn close_periods_through_now(
        &mut self,
        m: MunicipalityCode,
        now: UnixMillis,
    ) -> Result<Vec<ClosedPeriod>, SettleError> {
        self.close(m, now, true)
    }

    fn close(
        &mut self,
        m: MunicipalityCode,
        now: UnixMillis,
        through_now: bool,
    ) -> Result<Vec<ClosedPeriod>, SettleError> {
        let mut st = self.store.begin()?;
        if st.municipality(m)?.is_none() {
            return Err(SettleError::UnknownMunicipality(m));
        }
        let out = plan_periods(&mut *st, m, now, through_now)?;
        for c in &out {
            st.insert_period(&c.period, &c.statements)?;
        }
        st.commit()?;
        self.after_close(&out, now);
        Ok(out)
    }

    /// Logs the periods just closed and starts a new shard epoch for each
    /// municipality among them (DESIGN §7); the settlement stands whether or
    /// not that works.
    pub(crate) fn after_close(&mut self, closed: &[ClosedPeriod], now: UnixMillis) {
        let mut municipalities: Vec<MunicipalityCode> = vec![];
        for c in closed {
            let m = c.period.municipality;
            tracing::info!(municipality = %m, from = %Date::of(c.period.starts_at), lines = c.statements.len(), "settlement period closed");
            if !municipalities.contains(&m) {
                municipalities.push(m);
            }
        }
        for m in municipalities {
            if let Err(e) =
                self.compact_shards_of(Some(&mykey_sync_proto::Scope::Municipality(m)), now)
            {
                tracing::warn!(municipality = %m, error = %e, "could not start a new shard epoch after settlement");
            }
        }
    }

    /// The codes of every municipality the hub serves.
    pub fn municipality_codes(&mut self) -> Result<Vec<MunicipalityCode>, StoreError> {
        Ok(self
            .store
            .begin_read()?
            .municipalities()?
            .into_iter()
            .map(|m| m.code)
            .collect())
    }

    /// The closed periods of `m` with their statements.
    pub fn closed_periods(&mut self, m: MunicipalityCode) -> Result<Vec<ClosedPeriod>, StoreError> {
        let mut st = self.store.begin_read()?;
        let mut out = vec![];
        for (i, period) in st.periods(m)?.into_iter().enumerate() {
            let statements = st.statements(m, period.starts_at)?;
            out.push(ClosedPeriod {
                number: u32::try_from(i + 1).unwrap_or(u32::MAX),
                period,
                statements,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles() {
        let t = Date::new(2026, 2, 20).unwrap().start().plus_ms(5);
        let d = |y, m, d| Date::new(y, m, d).unwrap();
        assert_eq!(Cycle::Monthly.period_of(t), (d(2026, 2, 1), d(2026, 3, 1)));
        assert_eq!(
            Cycle::TwiceMonthly.period_of(t),
            (d(2026, 2, 16), d(2026, 3, 1))
        );
        let t = d(2026, 12, 3).start();
        assert_eq!(
            Cycle::TwiceMonthly.period_of(t),
            (d(2026, 12, 1), d(2026, 12, 16))
        );
        assert_eq!(Cycle::Monthly.period_of(t).1, d(2027, 1, 1));
    }

    /// A shop is paid for the printed vouchers it took, as for card redeems:
    /// from the voucher float (first redemption) or the programme (an
    /// incident paid within its cap).
    #[test]
    fn voucher_redemptions_are_merchant_payouts() {
        let m = MunicipalityCode::parse("131059").unwrap();
        let shop = mykey_sync_proto::FacilityId::parse("shop-1").unwrap();
        let program = mykey_sync_proto::ProgramId::parse("health").unwrap();
        let t = |pos, debit| Transfer {
            pos,
            debit,
            credit: LedgerAccount::MerchantPayable(shop.clone(), m),
            amount: mykey_sync_proto::Points::new(500).unwrap(),
            kind: TransferKind::VoucherRedeem,
            origin_tx: None,
            hub_time: UnixMillis(1),
            node_time: None,
        };
        let s = statements(
            m,
            &[
                t(1, LedgerAccount::VoucherFloat(m)),
                t(2, LedgerAccount::ProgramBudget(program, m)),
            ],
        );
        assert_eq!(s.len(), 1);
        assert_eq!(
            (
                s[0].kind,
                s[0].party.as_str(),
                s[0].points,
                s[0].n_transfers
            ),
            (StatementKind::MerchantPayout, "shop-1", 1000, 2)
        );
    }
}
