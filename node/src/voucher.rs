//! Printed QR point vouchers taken at this node (issue 17 part 4): the
//! offline checks, pure. The node verifies the hub's signature with the hub
//! id it was enrolled with (no network), then refuses a voucher that has
//! expired, that it has taken before, or that would take its vouchers not
//! yet receipted by the hub past its offline voucher cap (its enrolled
//! exposure limit). The hub pays the first redemption of a voucher anywhere;
//! a later one is an incident it pays only within the node's cap.

use mykey_sync_proto::fact::NodeLimits;
use mykey_sync_proto::{MunicipalityCode, NodeId, OpKind, Points, SignedTx, TxBody, UnixMillis};
use mykey_voucher::{
    ExpiryDate, Serial, SignedVoucher, VOUCHER_BYTES, VerifiedVoucher, VerifyError,
};

/// Why this node refused a voucher (nothing was recorded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoucherDecline {
    /// The node has no limits from the hub yet.
    #[error(
        "this node has no limits from its hub yet: connect it to the hub once (`mykey-node run`) before taking vouchers"
    )]
    NoLimits,
    /// The node is not allowed to take points.
    #[error("this node's facility is not allowed to take points, so it cannot take vouchers")]
    NotAllowed,
    /// The signature does not hold.
    #[error("{0}")]
    Signature(VerifyError),
    /// Another municipality's voucher.
    #[error("voucher {serial} is {municipality}'s, this node takes {here}'s only: refuse it")]
    OtherMunicipality {
        /// Its serial.
        serial: Serial,
        /// Whose.
        municipality: MunicipalityCode,
        /// This node's.
        here: MunicipalityCode,
    },
    /// Past its date.
    #[error("voucher {serial} expired on {expires}: refuse it")]
    Expired {
        /// Its serial.
        serial: Serial,
        /// Its last valid day.
        expires: ExpiryDate,
    },
    /// Taken here before.
    #[error("voucher {serial} was already taken here (seq {seq}): refuse it, it is a copy")]
    AlreadyTaken {
        /// Its serial.
        serial: Serial,
        /// The seq that took it.
        seq: u64,
    },
    /// Past the offline voucher cap.
    #[error(
        "taking voucher {serial} ({points}) would put {pending} + {points} of vouchers the hub has not confirmed past this node's cap of {cap}: let the node reach the hub (`mykey-node run`), then scan it again"
    )]
    OverCap {
        /// Its serial.
        serial: Serial,
        /// Its value.
        points: Points,
        /// Voucher points not yet receipted.
        pending: Points,
        /// The cap.
        cap: Points,
    },
}

/// The serial and seq of each voucher in `taken` (this node's own
/// `RedeemVoucher` transactions).
pub fn serials_taken(taken: &[SignedTx]) -> Vec<(Serial, u64)> {
    taken
        .iter()
        .filter_map(|t| {
            // The node's own transactions: they verify with its key.
            let v = t.verify().ok()?;
            let p = v.payload();
            let TxBody::RedeemVoucher(r) = &p.body else {
                return None;
            };
            let bytes: &[u8; VOUCHER_BYTES] = r.voucher.as_slice().try_into().ok()?;
            let v = SignedVoucher::from_bytes(bytes).ok()?;
            Some((v.body.serial, p.seq))
        })
        .collect()
}

/// The offline checks on one voucher.
pub fn decide(
    v: &SignedVoucher,
    hub: &NodeId,
    limits: Option<&NodeLimits>,
    taken: &[(Serial, u64)],
    pending: Points,
    now: UnixMillis,
) -> Result<VerifiedVoucher, VoucherDecline> {
    let limits = limits.ok_or(VoucherDecline::NoLimits)?;
    if !limits.allowed_ops.contains(&OpKind::Redeem) {
        return Err(VoucherDecline::NotAllowed);
    }
    let key = hub
        .verifying_key()
        .map_err(|_| VoucherDecline::Signature(VerifyError::OtherIssuer))?;
    let verified = v.verify(&key).map_err(VoucherDecline::Signature)?;
    let b = verified.body();
    let serial = b.serial;
    if b.municipality != limits.municipality {
        return Err(VoucherDecline::OtherMunicipality {
            serial,
            municipality: b.municipality,
            here: limits.municipality,
        });
    }
    if b.expires.has_passed(now) {
        return Err(VoucherDecline::Expired {
            serial,
            expires: b.expires,
        });
    }
    if let Some((_, seq)) = taken.iter().find(|(s, _)| *s == serial) {
        return Err(VoucherDecline::AlreadyTaken { serial, seq: *seq });
    }
    let points = b.points();
    let cap = limits.node_exposure_limit;
    if pending.checked_add(points).is_none_or(|sum| sum > cap) {
        return Err(VoucherDecline::OverCap {
            serial,
            points,
            pending,
            cap,
        });
    }
    Ok(verified)
}
