//! Settlement outputs written into a directory: per closed period, a Zengin
//! file of merchant payouts and one of the municipality's receipts, the
//! statements as CSV, and the liability report as JSON and CSV.

use crate::economy::calendar::Date;
use crate::economy::settlement::{ClosedPeriod, StatementKind};
use crate::economy::zengin::{self, BankDirectory, Payment, Remitter, ZenginError};
use crate::hub::Hub;
use crate::store::StoreError;
use crate::store::economy::Party;
use mykey_sync_proto::{FacilityId, UnixMillis};
use std::path::{Path, PathBuf};

/// Why outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// No bank account is registered for a party that must be paid or must pay.
    #[error("no bank account registered for {0}; add it with `mykey-hub payee set`")]
    NoBankAccount(String),
    /// A payout file could not be made.
    #[error("cannot make the payout file for {what}")]
    Zengin {
        /// Which file.
        what: String,
        /// Why.
        #[source]
        source: ZenginError,
    },
    /// Writing failed.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Periods could not be closed.
    #[error(transparent)]
    Settle(#[from] crate::economy::settlement::SettleError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a settlement run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementRun {
    /// Held points released and points expired first.
    pub expiry: crate::economy::ExpiryRun,
    /// The periods closed, every municipality.
    pub closed: Vec<ClosedPeriod>,
    /// The files written.
    pub paths: Vec<PathBuf>,
}

/// Days after a period's end on which its transfers are to be made.
pub const PAYMENT_DAYS_AFTER_PERIOD: i64 = 10;

fn write(path: PathBuf, bytes: &[u8], out: &mut Vec<PathBuf>) -> Result<(), OutputError> {
    std::fs::write(&path, bytes).map_err(|source| OutputError::Io {
        path: path.clone(),
        source,
    })?;
    out.push(path);
    Ok(())
}

impl Hub {
    /// A settlement run: releases held points and expires lots, closes every
    /// municipality's ended periods (with `through_now`, the open one too, at
    /// `now`), and writes their payout files, statements and the liability
    /// report into `dir`. The demo's last step.
    pub fn settle(
        &mut self,
        dir: &Path,
        banks: &dyn BankDirectory,
        now: UnixMillis,
        through_now: bool,
    ) -> Result<SettlementRun, OutputError> {
        let expiry = self.run_expiry(now)?;
        let mut closed = vec![];
        let municipalities = self.store.begin_read()?.municipalities()?;
        for m in municipalities {
            closed.extend(if through_now {
                self.close_periods_through_now(m.code, now)?
            } else {
                self.close_periods(m.code, now)?
            });
        }
        let paths = self.write_settlement_outputs(&closed, dir, banks, now)?;
        Ok(SettlementRun {
            expiry,
            closed,
            paths,
        })
    }

    /// Writes the outputs of `closed` periods and the liability report at
    /// `now` into `dir` (created if missing); returns the paths written.
    pub fn write_settlement_outputs(
        &mut self,
        closed: &[ClosedPeriod],
        dir: &Path,
        banks: &dyn BankDirectory,
        now: UnixMillis,
    ) -> Result<Vec<PathBuf>, OutputError> {
        std::fs::create_dir_all(dir).map_err(|source| OutputError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut paths = vec![];
        let mut st = self.store.begin_read()?;
        for c in closed {
            let p = &c.period;
            let m = p.municipality;
            let tag = format!("{m}-{}", Date::of(p.starts_at).compact());
            let pay_day = Date::of(p.ends_at).plus_days(PAYMENT_DAYS_AFTER_PERIOD - 1);
            let mut csv = String::from(
                "municipality,period_start,period_end,kind,party,points,yen,transfers\r\n",
            );
            for s in &c.statements {
                csv += &format!(
                    "{m},{},{},{},{},{},{},{}\r\n",
                    Date::of(p.starts_at),
                    Date::of(UnixMillis(p.ends_at.0 - 1)),
                    s.kind.name(),
                    s.party,
                    s.points,
                    s.yen,
                    s.n_transfers
                );
            }
            write(
                dir.join(format!("statements-{tag}.csv")),
                csv.as_bytes(),
                &mut paths,
            )?;
            let agent = st
                .payee(&Party::Agent)?
                .ok_or_else(|| OutputError::NoBankAccount("the settlement agent".into()))?;
            let remitter = Remitter {
                code: agent.1,
                account: agent.0,
            };
            let mut payouts = vec![];
            for s in c
                .statements
                .iter()
                .filter(|s| s.kind == StatementKind::MerchantPayout && s.yen > 0)
            {
                let f = FacilityId::parse(&s.party)
                    .map_err(|_| OutputError::NoBankAccount(s.party.clone()))?;
                let (to, code) = st
                    .payee(&Party::Merchant(f))?
                    .ok_or_else(|| OutputError::NoBankAccount(format!("merchant {}", s.party)))?;
                payouts.push(Payment {
                    to,
                    amount_yen: s.yen,
                    customer_code: code,
                });
            }
            if !payouts.is_empty() {
                let bytes = zengin::write_transfer_file(
                    &remitter,
                    (pay_day.month, pay_day.day),
                    &payouts,
                    banks,
                )
                .map_err(|source| OutputError::Zengin {
                    what: format!("merchant payouts {tag}"),
                    source,
                })?;
                write(
                    dir.join(format!("payouts-{tag}.zengin")),
                    &bytes,
                    &mut paths,
                )?;
            }
            let receipts: u64 = c
                .statements
                .iter()
                .filter(|s| s.kind == StatementKind::MunicipalityReceipt)
                .map(|s| s.yen)
                .sum();
            if receipts > 0 {
                let (to, code) = st
                    .payee(&Party::Municipality(m))?
                    .ok_or_else(|| OutputError::NoBankAccount(format!("municipality {m}")))?;
                let bytes = zengin::write_transfer_file(
                    &remitter,
                    (pay_day.month, pay_day.day),
                    &[Payment {
                        to,
                        amount_yen: receipts,
                        customer_code: code,
                    }],
                    banks,
                )
                .map_err(|source| OutputError::Zengin {
                    what: format!("municipality receipts {tag}"),
                    source,
                })?;
                write(
                    dir.join(format!("receipts-{tag}.zengin")),
                    &bytes,
                    &mut paths,
                )?;
            }
        }
        drop(st);
        let report = self.liability_report(now)?;
        let stamp = Date::of(now).compact();
        let json = serde_json::to_vec_pretty(&report.to_json()).unwrap_or_default();
        write(
            dir.join(format!("liabilities-{stamp}.json")),
            &json,
            &mut paths,
        )?;
        write(
            dir.join(format!("liabilities-{stamp}.csv")),
            report.to_csv().as_bytes(),
            &mut paths,
        )?;
        Ok(paths)
    }

    /// Registers the bank account of a party (merchant, municipality, the
    /// settlement agent) after checking its codes and name can be written
    /// in a Zengin file.
    pub fn set_payee(
        &mut self,
        party: &Party,
        account: &zengin::BankAccount,
        code: u64,
        banks: &dyn BankDirectory,
    ) -> Result<(), OutputError> {
        let what = party.key();
        let check = zengin::write_transfer_file(
            &Remitter {
                code: 0,
                account: account.clone(),
            },
            (1, 1),
            &[Payment {
                to: account.clone(),
                amount_yen: 0,
                customer_code: code,
            }],
            banks,
        );
        check.map_err(|source| OutputError::Zengin { what, source })?;
        let mut st = self.store.begin()?;
        st.set_payee(party, account, code)?;
        st.commit()?;
        Ok(())
    }
}
