//! Settlement runs and their output files: per closed period, the
//! statements as CSV, a Zengin file of merchant payouts, one of donation
//! programmes' recipients and one of the
//! municipality's receipts; per run, the liability report as JSON and CSV.
//!
//! A run is all or nothing. Inside one storage transaction it plans every
//! municipality's periods, makes every file in memory (which checks that the
//! settlement agent, every merchant paid and every municipality receiving
//! money has a bank account that can be written in a Zengin file), and only
//! then records the periods, their statements and the files' bytes
//! (`settlement_outputs`) and commits. A missing account closes nothing and
//! names every party to fix at once.
//!
//! Files are written after the commit, each to a temporary name and renamed,
//! mode 0600 (they carry bank data) in a directory created 0700. A file that
//! could not be written (a full disk, a crash) stays marked unwritten, and
//! the next run writes it from the recorded bytes, so it is byte-identical
//! to what the first run would have written. A file written once is not
//! written again by a later run (a payout file must not be sent twice);
//! `settle --rewrite PERIOD` ([`Hub::rewrite_period`]) makes a period's files
//! again on request.
//!
//! Names never collide: a period's files carry its municipality, first day
//! and number (`statements-131059-20260301-p0003.csv`), a run's report its
//! day and run number (`liabilities-20260315-r0002.json`).

use crate::economy::calendar::Date;
use crate::economy::settlement::{ClosedPeriod, StatementKind, plan_periods};
use crate::economy::zengin::{self, BankDirectory, Payment, Remitter, ZenginError};
use crate::hub::Hub;
use crate::store::economy::Party;
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{FacilityId, MunicipalityCode, ProgramId, UnixMillis};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use super::types::RecordedOutput;

/// Mode of every settlement output (statements and payout files carry
/// amounts per merchant and bank accounts).
pub const OUTPUT_MODE: u32 = 0o600;
/// Mode of an output directory settlement creates.
pub const OUTPUT_DIR_MODE: u32 = 0o700;

/// Why a settlement run or a rewrite did not do everything.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Parties that must pay or be paid have no bank account: nothing closed.
    #[error(
        "nothing was closed: no bank account registered for {}; add each with \
         `mykey-hub payee set` (--agent, --merchant ID, --municipality CODE or --donation PROGRAMME), then run settle again",
        .0.join(", ")
    )]
    NoBankAccount(Vec<String>),
    /// A payout file could not be made: nothing closed.
    #[error("nothing was closed: cannot make the payout file for {what}")]
    Zengin {
        /// Which file.
        what: String,
        /// Why.
        #[source]
        source: ZenginError,
    },
    /// A bank account cannot be used in a Zengin file (`payee set`).
    #[error("the bank account of {what} cannot be used in a payout file")]
    Payee {
        /// Whose.
        what: String,
        /// Why.
        #[source]
        source: ZenginError,
    },
    /// The output directory is not usable: nothing closed.
    #[error(
        "nothing was closed: cannot write settlement files into {dir} (fix the directory or \
         choose another with --out)"
    )]
    Unwritable {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A recorded file could not be written (its periods stay closed).
    #[error(
        "{path} could not be written; its periods are closed and the file is recorded: \
         run settle again (nothing closes twice) to write it"
    )]
    NotWritten {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file of that name exists with other bytes than recorded.
    #[error(
        "{0} exists and differs from the recorded settlement output of that name; move it \
         away and run settle again, or `settle --rewrite PERIOD` to replace it"
    )]
    Differs(PathBuf),
    /// `--rewrite` named no closed period.
    #[error("{0}")]
    UnknownPeriod(String),
    /// The period was closed before outputs were recorded.
    #[error(
        "period {0} was closed before settlement outputs were recorded (an older hub): \
         there is nothing to rewrite"
    )]
    NothingRecorded(String),
    /// Periods could not be closed.
    #[error(transparent)]
    Settle(#[from] crate::economy::settlement::SettleError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OutputError {
    /// The message with its causes, on one line (for API answers).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text += &format!(": {c}");
            cause = c.source();
        }
        text
    }
}

/// How a recorded file reached the output directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Written now.
    New,
    /// A file with exactly the recorded bytes was already there.
    AlreadyThere,
    /// A file with other bytes was there and was replaced (`--rewrite` only).
    Replaced,
}

impl Written {
    /// Lower-case name (CLI and API).
    pub fn name(self) -> &'static str {
        match self {
            Written::New => "written",
            Written::AlreadyThere => "already-there",
            Written::Replaced => "replaced",
        }
    }
}

/// A recorded output in the output directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    /// Where.
    pub path: PathBuf,
    /// The run that made it.
    pub run: u64,
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
    /// How it got there.
    pub how: Written,
}

/// What a settlement run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementRun {
    /// Held points released and points expired first.
    pub expiry: crate::economy::ExpiryRun,
    /// The run's number, if it closed periods (`None`: nothing to close).
    pub run: Option<u64>,
    /// The periods closed, every municipality.
    pub closed: Vec<ClosedPeriod>,
    /// The files written: this run's, and any an earlier run recorded but
    /// could not write.
    pub files: Vec<WrittenFile>,
}

/// Days after a period's end on which its transfers are to be made.
pub const PAYMENT_DAYS_AFTER_PERIOD: i64 = 10;

impl Hub {
    /// A settlement run: releases held points and expires lots, then, all or
    /// nothing, closes every municipality's ended periods (with
    /// `through_now`, the open one too, at `now`) with their files recorded,
    /// and writes into `dir` every recorded file not written yet.
    pub fn settle(
        &mut self,
        dir: &Path,
        banks: &dyn BankDirectory,
        now: UnixMillis,
        through_now: bool,
    ) -> Result<SettlementRun, OutputError> {
        prepare_dir(dir)?;
        let expiry = self.run_expiry(now)?;
        let (run, closed) = self.record_settlement(banks, now, through_now)?;
        let files = self.write_unwritten(dir, now)?;
        Ok(SettlementRun {
            expiry,
            run,
            closed,
            files,
        })
    }

    /// The recording half of [`Hub::settle`]: in one storage transaction,
    /// plans every municipality's periods to close, makes their files and
    /// the liability report, and records them with the periods, or changes
    /// nothing if any party lacks a usable bank account. Returns the run's
    /// number (`None` if nothing was due) and the periods closed.
    pub fn record_settlement(
        &mut self,
        banks: &dyn BankDirectory,
        now: UnixMillis,
        through_now: bool,
    ) -> Result<(Option<u64>, Vec<ClosedPeriod>), OutputError> {
        let mut st = self.store.begin()?;
        let mut closed = vec![];
        for m in st.municipalities()? {
            closed.extend(plan_periods(&mut *st, m.code, now, through_now)?);
        }
        if closed.is_empty() {
            return Ok((None, closed));
        }
        let mut files = vec![];
        let mut missing = vec![];
        for c in &closed {
            files.extend(
                period_files(&mut *st, c, banks, &mut missing)?
                    .into_iter()
                    .map(|(name, bytes)| (name, Some(c), bytes)),
            );
        }
        if !missing.is_empty() {
            // Dropping the transaction closes nothing.
            return Err(OutputError::NoBankAccount(missing));
        }
        let run = st.last_settlement_run()? + 1;
        let report = crate::economy::liability::liability_report_in(&mut *st, now)?;
        let stamp = format!("{}-r{run:04}", Date::of(now).compact());
        let json = serde_json::to_vec_pretty(&report.to_json()).unwrap_or_default();
        files.push((format!("liabilities-{stamp}.json"), None, json));
        files.push((
            format!("liabilities-{stamp}.csv"),
            None,
            report.to_csv().into_bytes(),
        ));
        for c in &closed {
            st.insert_period(&c.period, &c.statements)?;
        }
        for (name, period, bytes) in files {
            st.insert_output(&RecordedOutput {
                name,
                run,
                period: period.map(|c| (c.period.municipality, c.period.starts_at)),
                sha256: Sha256::digest(&bytes).into(),
                bytes,
                made_at: now,
                written_at: None,
            })?;
        }
        st.commit()?;
        tracing::info!(run, periods = closed.len(), "settlement run recorded");
        self.after_close(&closed, now);
        Ok((Some(run), closed))
    }

    /// Writes into `dir` every recorded output no run has written yet, and
    /// notes each as written.
    pub fn write_unwritten(
        &mut self,
        dir: &Path,
        now: UnixMillis,
    ) -> Result<Vec<WrittenFile>, OutputError> {
        let pending = self.store.begin_read()?.outputs_unwritten()?;
        if pending.is_empty() {
            return Ok(vec![]);
        }
        prepare_dir(dir)?;
        let mut files = vec![];
        let mut result = Ok(());
        for o in &pending {
            match write_output(dir, o, false) {
                Ok(how) => files.push(WrittenFile {
                    path: dir.join(&o.name),
                    run: o.run,
                    sha256: o.sha256,
                    how,
                }),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Note what reached the disk even if a later file failed.
        let mut st = self.store.begin()?;
        for f in &files {
            if let Some(name) = f.path.file_name().and_then(|n| n.to_str()) {
                st.mark_output_written(name, now)?;
            }
        }
        st.commit()?;
        result.map(|()| files)
    }

    /// Writes the recorded files of `municipality`'s period `which` (its
    /// number, or its first day as `YYYY-MM-DD`) into `dir` again, replacing
    /// a file of the same name that differs from the record.
    pub fn rewrite_period(
        &mut self,
        municipality: MunicipalityCode,
        which: &str,
        dir: &Path,
        now: UnixMillis,
    ) -> Result<(ClosedPeriod, Vec<WrittenFile>), OutputError> {
        let periods = self.closed_periods(municipality)?;
        let period = find_period(&periods, municipality, which)?.clone();
        let outputs = self
            .store
            .begin_read()?
            .outputs_of_period(municipality, period.period.starts_at)?;
        if outputs.is_empty() {
            return Err(OutputError::NothingRecorded(format!(
                "{municipality}:{}",
                period.number
            )));
        }
        prepare_dir(dir)?;
        let mut files = vec![];
        for o in &outputs {
            let how = write_output(dir, o, true)?;
            files.push(WrittenFile {
                path: dir.join(&o.name),
                run: o.run,
                sha256: o.sha256,
                how,
            });
        }
        let mut st = self.store.begin()?;
        for o in &outputs {
            st.mark_output_written(&o.name, now)?;
        }
        st.commit()?;
        Ok((period, files))
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
        check.map_err(|source| OutputError::Payee { what, source })?;
        let mut st = self.store.begin()?;
        st.set_payee(party, account, code)?;
        st.commit()?;
        Ok(())
    }
}

/// The period `which` names among `periods` of `m`: its number (`3`) or
/// its first day (`2026-03-01`, which must name one period).
fn find_period<'a>(
    periods: &'a [ClosedPeriod],
    m: MunicipalityCode,
    which: &str,
) -> Result<&'a ClosedPeriod, OutputError> {
    let listing = || {
        periods
            .iter()
            .map(|c| format!("{m}:{} ({})", c.number, Date::of(c.period.starts_at)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found: Vec<&ClosedPeriod> = match which.parse::<u32>() {
        Ok(n) => periods.iter().filter(|c| c.number == n).collect(),
        Err(_) => periods
            .iter()
            .filter(|c| Date::of(c.period.starts_at).to_string() == which)
            .collect(),
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] if periods.is_empty() => Err(OutputError::UnknownPeriod(format!(
            "{m} has no closed period yet"
        ))),
        [] => Err(OutputError::UnknownPeriod(format!(
            "{m} has no closed period {which:?}; its periods are {}",
            listing()
        ))),
        _ => Err(OutputError::UnknownPeriod(format!(
            "{which} starts more than one period of {m}; name one by number: {}",
            listing()
        ))),
    }
}

/// Creates `dir` (0700) if missing and checks a file can be created in it.
fn prepare_dir(dir: &Path) -> Result<(), OutputError> {
    let unwritable = |source| OutputError::Unwritable {
        dir: dir.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(OUTPUT_DIR_MODE)
        .create(dir)
        .map_err(unwritable)?;
    let probe = dir.join(format!(".settle-probe-{}", std::process::id()));
    let _ = std::fs::remove_file(&probe);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(OUTPUT_MODE)
        .open(&probe)
        .map_err(unwritable)?;
    std::fs::remove_file(&probe).map_err(unwritable)
}

/// Writes one recorded output into `dir` (temporary name, fsync, rename),
/// mode 0600. An identical file is left as it is; a different one is an
/// error unless `replace`.
fn write_output(dir: &Path, o: &RecordedOutput, replace: bool) -> Result<Written, OutputError> {
    let path = dir.join(&o.name);
    let failed = |source| OutputError::NotWritten {
        path: path.clone(),
        source,
    };
    let mut how = Written::New;
    match std::fs::read(&path) {
        Ok(existing) if existing == o.bytes => {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(OUTPUT_MODE))
                .map_err(failed)?;
            return Ok(Written::AlreadyThere);
        }
        Ok(_) if replace => how = Written::Replaced,
        Ok(_) => return Err(OutputError::Differs(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let tmp = dir.join(format!(".{}.part", o.name));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(OUTPUT_MODE)
            .open(&tmp)?;
        f.write_all(&o.bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })?;
    Ok(how)
}

/// The statements CSV of a closed period.
fn statements_csv(c: &ClosedPeriod) -> String {
    let p = &c.period;
    let m = p.municipality;
    let mut csv =
        String::from("municipality,period_start,period_end,kind,party,points,yen,transfers\r\n");
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
    csv
}

/// The files of one closed period, made in memory: (name, bytes). A party
/// without a bank account is added to `missing` (its file is not made); a
/// payout file that cannot be encoded is an error.
fn period_files(
    st: &mut dyn StoreTx,
    c: &ClosedPeriod,
    banks: &dyn BankDirectory,
    missing: &mut Vec<String>,
) -> Result<Vec<(String, Vec<u8>)>, OutputError> {
    let p = &c.period;
    let m = p.municipality;
    let tag = format!("{m}-{}-p{:04}", Date::of(p.starts_at).compact(), c.number);
    let pay_day = Date::of(p.ends_at).plus_days(PAYMENT_DAYS_AFTER_PERIOD - 1);
    let mut lack = |who: String| {
        if !missing.contains(&who) {
            missing.push(who);
        }
    };
    let mut files = vec![(
        format!("statements-{tag}.csv"),
        statements_csv(c).into_bytes(),
    )];
    let mut payouts = vec![];
    for s in c
        .statements
        .iter()
        .filter(|s| s.kind == StatementKind::MerchantPayout && s.yen > 0)
    {
        let payee = match FacilityId::parse(&s.party) {
            Ok(f) => st.payee(&Party::Merchant(f))?,
            Err(_) => None,
        };
        match payee {
            Some((to, code)) => payouts.push(Payment {
                to,
                amount_yen: s.yen,
                customer_code: code,
            }),
            None => lack(format!("merchant {}", s.party)),
        }
    }
    let mut donations = vec![];
    for s in c
        .statements
        .iter()
        .filter(|s| s.kind == StatementKind::DonationPayout && s.yen > 0)
    {
        let payee = match ProgramId::parse(&s.party) {
            Ok(p) => st.payee(&Party::Donation(p))?,
            Err(_) => None,
        };
        match payee {
            Some((to, code)) => donations.push(Payment {
                to,
                amount_yen: s.yen,
                customer_code: code,
            }),
            None => lack(format!("donation programme {}", s.party)),
        }
    }
    let receipts: u64 = c
        .statements
        .iter()
        .filter(|s| s.kind == StatementKind::MunicipalityReceipt)
        .map(|s| s.yen)
        .sum();
    let receiver = if receipts > 0 {
        let r = st.payee(&Party::Municipality(m))?;
        if r.is_none() {
            lack(format!("municipality {m}"));
        }
        r
    } else {
        None
    };
    if payouts.is_empty() && donations.is_empty() && receiver.is_none() {
        return Ok(files);
    }
    let Some((account, code)) = st.payee(&Party::Agent)? else {
        lack("the settlement agent".into());
        return Ok(files);
    };
    let remitter = Remitter { code, account };
    let transfer_file = |kind: &str, what: &str, payments: &[Payment]| {
        zengin::write_transfer_file(&remitter, (pay_day.month, pay_day.day), payments, banks)
            .map(|bytes| (format!("{kind}-{tag}.zengin"), bytes))
            .map_err(|source| OutputError::Zengin {
                what: format!("{what} {tag}"),
                source,
            })
    };
    if !payouts.is_empty() {
        files.push(transfer_file("payouts", "merchant payouts", &payouts)?);
    }
    if !donations.is_empty() {
        files.push(transfer_file("donations", "donation payouts", &donations)?);
    }
    if let Some((to, code)) = receiver {
        files.push(transfer_file(
            "receipts",
            "municipality receipts",
            &[Payment {
                to,
                amount_yen: receipts,
                customer_code: code,
            }],
        )?);
    }
    Ok(files)
}
