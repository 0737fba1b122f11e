//! `mykey-hub donation …`: declare a donation programme with its
//! recipient's bank account, close it, list them with what was donated and
//! paid. `main.rs` nests [`DonationCmd`] and calls [`run`].

use super::{Declaration, DonationError, DonationLine};
use crate::economy::cli::{BankDataArg, CliError as EconomyCliError};
use crate::economy::zengin::{AccountKind, BankAccount, BankCode, BranchCode};
use crate::{Hub, OpenError, StoreError};
use clap::Subcommand;
use mykey_sync_proto::{MunicipalityCode, ProgramId, UnixMillis};
use std::path::Path;

/// Donation subcommands.
#[derive(Subcommand, Debug)]
pub enum DonationCmd {
    /// Declare a donation programme: holders give its municipality's points
    /// to it (at a kiosk, or through an operator's exchange) and settlement
    /// pays the recipient's bank account.
    Declare {
        /// Its id (1-32 of a-z, 0-9, '-'), e.g. noto-relief.
        #[arg(long, alias = "program", value_parser = parse_program)]
        programme: ProgramId,
        /// The municipality whose points it takes (6 digits).
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// Who receives the money, as holders read it (e.g. "能登町 災害義援金").
        #[arg(long)]
        recipient: String,
        /// The recipient's bank code (4 digits).
        #[arg(long)]
        bank: String,
        /// Branch code (3 digits).
        #[arg(long)]
        branch: String,
        /// ordinary, current or savings.
        #[arg(long, default_value = "ordinary")]
        kind: String,
        /// Account number (up to 7 digits).
        #[arg(long)]
        number: u32,
        /// Account holder as the bank has it (katakana).
        #[arg(long)]
        holder: String,
        /// Customer code in payout files, up to 10 digits.
        #[arg(long, default_value_t = 0)]
        code: u64,
        /// Bank data.
        #[command(flatten)]
        banks: BankDataArg,
    },
    /// Close a programme: donations signed after are refused; what was
    /// given is still paid at settlement.
    Close {
        /// The programme.
        #[arg(long, alias = "program", value_parser = parse_program)]
        programme: ProgramId,
    },
    /// List the programmes with what was donated and what settlement paid.
    List,
}

fn parse_program(s: &str) -> Result<ProgramId, String> {
    ProgramId::parse(s).map_err(|e| e.to_string())
}
fn parse_muni(s: &str) -> Result<MunicipalityCode, String> {
    MunicipalityCode::parse(s).map_err(|e| e.to_string())
}

/// Why a donation command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input.
    #[error("{0}")]
    Input(String),
    /// The hub did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bank data could not be read.
    #[error(transparent)]
    BankData(#[from] EconomyCliError),
    /// The programme was not declared or closed.
    #[error(transparent)]
    Donation(#[from] DonationError),
}

/// Runs a donation subcommand on the hub at `data`.
pub fn run(data: &Path, cmd: &DonationCmd, now: UnixMillis) -> Result<(), CliError> {
    match cmd {
        DonationCmd::Declare {
            programme,
            municipality,
            recipient,
            bank,
            branch,
            kind,
            number,
            holder,
            code,
            banks,
        } => {
            let account = BankAccount {
                bank: BankCode::parse(bank).map_err(|e| CliError::Input(e.to_string()))?,
                branch: BranchCode::parse(branch).map_err(|e| CliError::Input(e.to_string()))?,
                kind: AccountKind::parse(kind).ok_or_else(|| {
                    CliError::Input("--kind is ordinary, current or savings".into())
                })?,
                number: *number,
                holder: holder.clone(),
            };
            let banks = banks.load()?;
            let mut hub = Hub::open(data)?;
            let row = hub.declare_donation(
                &Declaration {
                    id: programme.clone(),
                    municipality: *municipality,
                    recipient: recipient.clone(),
                    account,
                    customer_code: *code,
                },
                &*banks,
                now,
            )?;
            println!(
                "donation programme {} declared for {} (points of {}); settlement pays its recipient",
                row.id, row.recipient, row.municipality
            );
        }
        DonationCmd::Close { programme } => {
            let row = Hub::open(data)?.close_donation(programme, now)?;
            println!(
                "donation programme {} closed; what was given is still paid at settlement",
                row.id
            );
        }
        DonationCmd::List => {
            let all = Hub::open(data)?.donation_programs()?;
            if all.is_empty() {
                println!("no donation programmes; declare one with `mykey-hub donation declare`");
            }
            for DonationLine {
                program: p,
                donated,
                paid,
            } in all
            {
                let state = if p.closed_at.is_some() {
                    "closed"
                } else {
                    "open"
                };
                println!(
                    "{:<20} {} {:<6} donated {donated} paid {paid}  {}",
                    p.id, p.municipality, state, p.recipient
                );
            }
        }
    }
    Ok(())
}
