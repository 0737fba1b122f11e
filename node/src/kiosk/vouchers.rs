//! The reader loop's side of vouchers a holder makes of their points at
//! the kiosk (issue 17 part 1(a)): the screen's
//! [`Effect::IssueVouchers`](super::screen::Effect::IssueVouchers) after
//! the PIN. The card signs this very issue
//! ([`mykey_sync_proto::VoucherIssueBinding`]), the node signs it into its
//! outbox (where it counts against the wallet until the hub answers) and
//! only then the vouchers, which the receipt shows as QR codes and the
//! receipt printer gets as ESC/POS raster (appended to `--printer`, a
//! device such as `/dev/usb/lp0` or a file). `mykey-node run` carries the
//! issue to the hub, which decides it from what it verifies.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use mykey_sync_proto::CardKey;

use super::screen::{Outcome, VoucherOrder, VoucherReceipt, VoucherRefusal};
use crate::card::apdu::Pin;
use crate::card::cert::CardCert;
use crate::card::jpki::prove_voucher_issue;
use crate::card::reader::Session;
use crate::node::{Node, OpError};

/// How long kiosk vouchers are valid unless `--voucher-days` says.
pub const DEFAULT_VOUCHER_DAYS: u16 = 180;

/// Where and how the kiosk's vouchers go out.
#[derive(Clone, Debug)]
pub struct VoucherSetup {
    /// Days from today through the vouchers' last valid day.
    pub valid_days: u16,
    /// The receipt printer (a device or a file, appended to); none: the
    /// screen's QR codes only.
    pub printer: Option<PathBuf>,
}

/// Whether the menu offers vouchers: the hub vouched for this node.
pub(super) fn offered(node: &Node) -> bool {
    match node.own_voucher_issuer() {
        Ok(issuer) => issuer.is_some(),
        Err(e) => {
            tracing::warn!("node store: {e}; no vouchers offered");
            false
        }
    }
}

/// The vouchers the screen asked for: the card signs exactly this issue
/// after its PIN (its certificate checked against `trusted_ca`, DER), then
/// the node signs it and the vouchers, which go to the printer.
#[allow(clippy::too_many_arguments)]
pub(super) fn issue(
    node: &mut Node,
    trusted_ca: &[Vec<u8>],
    setup: &VoucherSetup,
    session: &mut Session,
    cert: &CardCert,
    card: &CardKey,
    pin: Pin,
    order: &VoucherOrder,
) -> Outcome {
    let now = crate::net::unix_now();
    let trusted = match super::proof::trusted_now(cert, trusted_ca) {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let expires = last_day(now, setup.valid_days);
    let binding = match node.voucher_issue_binding(card, order.denominations.clone(), expires, now)
    {
        Ok(b) => b,
        Err(e) => return not_made(e),
    };
    let proof = match prove_voucher_issue(session, &trusted, pin, binding) {
        Ok(p) => p,
        Err(e) => return super::proof::failed(e),
    };
    let place = match node.limits() {
        Ok(Some(l)) => l.facility,
        Ok(None) => return Outcome::NotIssued(VoucherRefusal::NotHere),
        Err(e) => {
            tracing::warn!("node store: {e}");
            return Outcome::NotIssued(VoucherRefusal::NotHere);
        }
    };
    match node.issue_vouchers(&proof, now) {
        Ok((done, vouchers)) => {
            tracing::info!(seq = done.seq, n = vouchers.len(), "kiosk vouchers signed");
            let printed = match &setup.printer {
                Some(p) => match print(p, &vouchers) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(printer = %p.display(), "receipt printer: {e}; the vouchers are on the screen");
                        false
                    }
                },
                None => false,
            };
            Outcome::VouchersIssued(VoucherReceipt {
                vouchers,
                place,
                seq: done.seq,
                at: now,
                printed,
            })
        }
        Err(e) => not_made(e),
    }
}

/// The last valid day `days` after today (JST).
pub fn last_day(now: mykey_sync_proto::UnixMillis, days: u16) -> mykey_voucher::ExpiryDate {
    const JST_MS: u64 = 9 * 3_600_000;
    let today = (now.0 + JST_MS) / 86_400_000;
    let day = today
        .saturating_add(u64::from(days))
        .min(u64::from(u16::MAX));
    mykey_voucher::ExpiryDate::from_days(u16::try_from(day).unwrap_or(u16::MAX))
}

/// Appends each voucher's ESC/POS raster to the printer (a device or a file).
pub fn print(path: &Path, vouchers: &[mykey_voucher::SignedVoucher]) -> std::io::Result<()> {
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    for v in vouchers {
        out.write_all(&mykey_voucher::voucher_escpos(
            v,
            mykey_voucher::ESCPOS_MAX_DOTS,
        ))?;
    }
    out.flush()
}

fn not_made(e: OpError) -> Outcome {
    match e {
        OpError::NotRegistered => Outcome::NotRegistered,
        OpError::VouchersBeyondBalance { available, .. } => {
            Outcome::NotIssued(VoucherRefusal::BeyondBalance { available })
        }
        e => {
            tracing::warn!("vouchers not made: {e}");
            Outcome::NotIssued(VoucherRefusal::NotHere)
        }
    }
}
