//! `mykey-hub voucher …`: issue a printed batch, print it again, list the
//! batches, cancel one. `main.rs` nests [`VoucherCmd`] and calls [`run`].

use super::{CancelError, IssueError};
use crate::{Hub, OpenError, StoreError};
use clap::Subcommand;
use mykey_sync_proto::{Points, ProgramId, UnixMillis};
use mykey_voucher::{ExpiryDate, SignedVoucher};
use std::path::{Path, PathBuf};

/// Pixels a module in the PNG of one voucher: 8 gives a 360-pixel square.
const PNG_PX_PER_MODULE: u32 = 8;

/// Voucher subcommands.
#[derive(Subcommand, Debug)]
pub enum VoucherCmd {
    /// Issue a batch of printed vouchers from a programme's budget and write
    /// its A4 sheets (sheet.pdf, sheet-N.svg) into --out.
    Issue {
        /// The programme paying.
        #[arg(long, alias = "program", value_parser = parse_program)]
        programme: ProgramId,
        /// How many vouchers.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        count: u16,
        /// Points on each.
        #[arg(long, value_parser = parse_points)]
        points: Points,
        /// The last day they can be redeemed (YYYY-MM-DD, in Japan).
        #[arg(long, value_parser = parse_date)]
        expires: ExpiryDate,
        /// Where to write the sheets (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also write each voucher as a PNG (voucher-BATCH-INDEX.png).
        #[arg(long)]
        png: bool,
    },
    /// Write a batch's sheets (and PNGs) again.
    Print {
        /// The batch number.
        batch: u32,
        /// Where to write.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also write each voucher as a PNG.
        #[arg(long)]
        png: bool,
        /// `sheets` (A4 PDF and SVG) or `escpos` (one voucher for a
        /// receipt printer, ESC/POS raster: give --index).
        #[arg(long, value_enum, default_value_t = PrintFormat::Sheets)]
        format: PrintFormat,
        /// The voucher of the batch to print with --format escpos (from 1).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        index: Option<u16>,
    },
    /// List the batches: issued, redeemed (first redemptions, paid from the
    /// float; double redemptions are incidents), cancelled.
    List,
    /// List the redemptions of kiosk vouchers held because the kiosk's
    /// issuing transaction has not reached the hub: each is paid (or found
    /// a copy) when it arrives.
    Held,
    /// Expire now every batch past its last valid day (the serving hub does
    /// it each economy step): unredeemed points return to the programme.
    Expire,
    /// Cancel a batch (a sheet was lost): its unredeemed points return to the programme.
    Cancel {
        /// The batch number.
        batch: u32,
    },
    /// The kiosks the hub vouches for as voucher issuers (their own key
    /// signs a holder's vouchers; shops check it with the hub's statement).
    #[command(subcommand)]
    Issuer(IssuerCmd),
}

/// `mykey-hub voucher issuer …`.
#[derive(Subcommand, Debug)]
pub enum IssuerCmd {
    /// Vouch for an enrolled node as a voucher issuer of its municipality.
    Add {
        /// The node id, or a unique prefix of it (4 or more hex digits).
        #[arg(long)]
        node: String,
    },
    /// Withdraw a node as voucher issuer: its vouchers are refused from now on.
    Withdraw {
        /// The node id, or a unique prefix of it.
        #[arg(long)]
        node: String,
    },
    /// List the voucher issuers: number, node, municipality, state.
    List,
}

/// What `voucher print` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    /// A4 sheets: one PDF, an SVG a page.
    Sheets,
    /// One voucher as ESC/POS bytes for a receipt printer.
    Escpos,
}

fn parse_program(s: &str) -> Result<ProgramId, String> {
    ProgramId::parse(s).map_err(|e| e.to_string())
}
fn parse_points(s: &str) -> Result<Points, String> {
    Points::parse(s).map_err(|e| e.to_string())
}
fn parse_date(s: &str) -> Result<ExpiryDate, String> {
    ExpiryDate::parse(s).map_err(|e| e.to_string())
}

/// Why a voucher command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The hub did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The batch was not issued.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The batch was not cancelled.
    #[error(transparent)]
    Cancel(#[from] CancelError),
    /// The issuer was not vouched for or withdrawn.
    #[error(transparent)]
    Issuer(#[from] super::issuers::IssuerError),
    /// A node name that names no node.
    #[error(transparent)]
    Name(#[from] crate::cli::names::NameError),
    /// No such batch.
    #[error("no voucher batch {0}: `mykey-hub voucher list` shows the batches")]
    Unknown(u32),
    /// `--format escpos` without `--index`.
    #[error("--format escpos prints one voucher: give --index N (from 1)")]
    NoIndex,
    /// `--index` with sheets.
    #[error("--index is for --format escpos; sheets hold the whole batch: leave --index out")]
    IndexWithSheets,
    /// An index past the batch.
    #[error(
        "voucher batch {batch} has {count} vouchers, not {index}: give --index from 1 to {count}"
    )]
    NoSuchVoucher {
        /// The batch.
        batch: u32,
        /// The index asked for.
        index: u16,
        /// Vouchers in it.
        count: u16,
    },
    /// Writing the sheets failed.
    #[error(
        "could not write {path}: {source}; the batch is recorded, write its sheets again with `mykey-hub voucher print BATCH --out DIR`"
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs a voucher subcommand on the hub at `data`.
pub fn run(data: &Path, cmd: &VoucherCmd, now: UnixMillis) -> Result<(), CliError> {
    let mut hub = Hub::open(data)?;
    match cmd {
        VoucherCmd::Issue {
            programme,
            count,
            points,
            expires,
            out,
            png,
        } => {
            let issued = super::issue(&mut hub, programme, *count, *points, *expires, now)?;
            let b = &issued.batch;
            println!(
                "issued voucher batch {}: {} × {} of {} from {}, valid through {}",
                b.id, b.count, b.points, b.municipality, b.program, expires
            );
            write_sheets(out, b.id, &issued.vouchers, *png)?;
        }
        VoucherCmd::Print {
            batch,
            out,
            png,
            format,
            index,
        } => {
            let b = super::batch(&mut hub, *batch)?.ok_or(CliError::Unknown(*batch))?;
            let vouchers = super::batch_vouchers(&hub, &b);
            match (format, index) {
                (PrintFormat::Sheets, None) => write_sheets(out, b.id, &vouchers, *png)?,
                (PrintFormat::Sheets, Some(_)) => return Err(CliError::IndexWithSheets),
                (PrintFormat::Escpos, None) => return Err(CliError::NoIndex),
                (PrintFormat::Escpos, Some(i)) => {
                    let v = vouchers
                        .get(usize::from(*i) - 1)
                        .ok_or(CliError::NoSuchVoucher {
                            batch: b.id,
                            index: *i,
                            count: b.count,
                        })?;
                    std::fs::create_dir_all(out).map_err(|source| CliError::Write {
                        path: out.clone(),
                        source,
                    })?;
                    let path = out.join(format!("voucher-{}-{i:05}.escpos", b.id));
                    let bytes =
                        mykey_voucher::voucher_escpos(v, mykey_voucher::ESCPOS_DOTS_PER_MODULE);
                    std::fs::write(&path, bytes).map_err(|source| CliError::Write {
                        path: path.clone(),
                        source,
                    })?;
                    println!(
                        "wrote {} (send it to the receipt printer as is, e.g. `cat FILE > /dev/usb/lp0`)",
                        path.display()
                    );
                }
            }
        }
        VoucherCmd::List => {
            let all = super::batches(&mut hub)?;
            if all.is_empty() {
                println!("no voucher batches");
            }
            for (b, paid, n) in all {
                let state = match (b.cancelled_at, b.expired_at) {
                    (Some(_), _) => "cancelled",
                    (None, Some(_)) => "expired",
                    (None, None) => "open",
                };
                println!(
                    "batch {:<5} {} {:<16} {:>5} × {:<10} valid through {}  redeemed {n} ({paid})  {state}",
                    b.id,
                    b.municipality,
                    b.program,
                    b.count,
                    b.points.to_string(),
                    ExpiryDate::from_days(b.expires_days)
                );
            }
        }
        VoucherCmd::Held => {
            let all = super::held(&mut hub, 1_000)?;
            if all.is_empty() {
                println!("no held voucher redemptions");
            }
            for h in all {
                let serial = mykey_voucher::Serial {
                    batch: h.batch,
                    index: h.index,
                };
                let reported = if h.reported_at.is_some() {
                    "  reported: its issue did not come by the last day"
                } else {
                    ""
                };
                println!(
                    "voucher {serial} {} redeemed by node {} seq {} (tx {}), held since {}, valid through {}{reported}",
                    h.municipality,
                    h.node.short(),
                    h.seq,
                    h.tx.short(),
                    crate::economy::calendar::iso_jst(h.held_at),
                    ExpiryDate::from_days(h.last_day)
                );
            }
        }
        VoucherCmd::Expire => {
            let done = super::expire_due(&mut hub, now)?;
            if done.is_empty() {
                println!("no voucher batch is past its last valid day and still open");
            }
            for e in done {
                match mykey_voucher::Issuer::of_batch(e.batch) {
                    mykey_voucher::Issuer::Hub => println!(
                        "voucher batch {} expired: {} back to its programme",
                        e.batch, e.back
                    ),
                    mykey_voucher::Issuer::Node { issuer, batch } => println!(
                        "kiosk voucher batch k{issuer}.{batch} expired: {} back to the holder's wallet",
                        e.back
                    ),
                }
            }
        }
        VoucherCmd::Cancel { batch } => {
            let back = super::cancel(&mut hub, *batch, now)?;
            println!("cancelled voucher batch {batch}: {back} back to its programme");
        }
        VoucherCmd::Issuer(IssuerCmd::Add { node }) => {
            let node = crate::cli::names::node(&mut hub, node)?;
            let n = super::issuers::vouch(&mut hub, node, now)?;
            println!(
                "node {} is voucher issuer {n}: its vouchers' serials read k{n}.…; shops of its municipality learn it with their next sync",
                node.short()
            );
        }
        VoucherCmd::Issuer(IssuerCmd::Withdraw { node }) => {
            let node = crate::cli::names::node(&mut hub, node)?;
            let n = super::issuers::withdraw(&mut hub, node, now)?;
            println!(
                "withdrew voucher issuer {n} (node {}): its vouchers are refused from now on",
                node.short()
            );
        }
        VoucherCmd::Issuer(IssuerCmd::List) => {
            let all = super::issuers::list(&mut hub)?;
            if all.is_empty() {
                println!(
                    "no voucher issuers; vouch for a kiosk with `mykey-hub voucher issuer add --node ID`"
                );
            }
            for r in all {
                let state = if r.withdrawn_at.is_some() {
                    "withdrawn"
                } else {
                    "vouched"
                };
                println!(
                    "issuer {:<5} node {} {} {state}",
                    r.issuer, r.node, r.municipality
                );
            }
        }
    }
    Ok(())
}

fn write_sheets(
    dir: &Path,
    batch: u32,
    vouchers: &[SignedVoucher],
    png: bool,
) -> Result<(), CliError> {
    let write = |name: String, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
        Ok::<PathBuf, CliError>(path)
    };
    std::fs::create_dir_all(dir).map_err(|source| CliError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let pdf = write(
        format!("vouchers-{batch}.pdf"),
        &mykey_voucher::sheet_pdf(vouchers),
    )?;
    println!("wrote {}", pdf.display());
    for (i, svg) in mykey_voucher::sheet_svgs(vouchers).iter().enumerate() {
        let p = write(format!("vouchers-{batch}-{}.svg", i + 1), svg.as_bytes())?;
        println!("wrote {}", p.display());
    }
    if png {
        for v in vouchers {
            let s = v.body.serial;
            write(
                format!("voucher-{}-{:05}.png", s.batch, s.index),
                &mykey_voucher::voucher_png(v, PNG_PX_PER_MODULE),
            )?;
        }
        println!("wrote {} PNGs", vouchers.len());
    }
    Ok(())
}
