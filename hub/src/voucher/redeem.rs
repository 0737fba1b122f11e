//! Reading what the hub's decision on a redeemed voucher needs
//! (`rules::voucher`, pure) inside the ingest transaction: the voucher
//! verified with the hub's key (or its kiosk issuer's), its batch (or the
//! kiosk batch its issuing transaction recorded, with the holder's wallet),
//! its earlier redemptions, what
//! the signing node's earlier incidents were paid, and its links to the hub
//! since the first redemption.

use crate::rules::voucher::{KioskBacking, VoucherContext, read};
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{NodeId, TxBody, UnixMillis, VerifiedTx};

/// Link spans read at most: a node that connected more often than this since
/// the first redemption was online anyway.
const MAX_LINKS: u32 = 1_000;

/// Reads the context of a `RedeemVoucher` (`None` for other bodies).
pub fn load(
    st: &mut dyn StoreTx,
    v: &VerifiedTx,
    hub: &NodeId,
    now: UnixMillis,
) -> Result<Option<VoucherContext>, StoreError> {
    let TxBody::RedeemVoucher(r) = &v.payload().body else {
        return Ok(None);
    };
    let signed = mykey_voucher::SignedVoucher::from_bytes(
        r.voucher
            .as_slice()
            .try_into()
            .unwrap_or(&[0; mykey_voucher::VOUCHER_BYTES]),
    );
    let issuer = match signed.as_ref().map(|v| (v.issuer(), v.body.serial.batch)) {
        Ok((mykey_voucher::Issuer::Node { issuer, .. }, batch)) => {
            match super::issuers::vouched(st, issuer)? {
                // A batch the hub recorded before the kiosk was withdrawn
                // (or its node revoked) is backed by the holder's points:
                // its vouchers are still paid (a withdrawn issuer records
                // no new batch; `rules::voucher::backs` still checks each).
                Some(v) if v.withdrawn && st.kiosk_batch(batch)?.is_some() => {
                    Some(mykey_voucher::VouchedIssuer {
                        withdrawn: false,
                        ..v
                    })
                }
                other => other,
            }
        }
        _ => None,
    };
    let voucher = read(r, hub, issuer);
    let (batch, kiosk, earlier) = match &voucher {
        Ok(vv) => {
            let s = vv.body().serial;
            let (batch, kiosk) = match mykey_voucher::Issuer::of_batch(s.batch) {
                mykey_voucher::Issuer::Hub => (st.voucher_batch(s.batch)?, None),
                mykey_voucher::Issuer::Node { .. } => {
                    let kiosk = match st.kiosk_batch(s.batch)? {
                        Some(row) => Some(KioskBacking {
                            wallet: crate::ledger::wallet_balance(
                                st,
                                row.account,
                                row.municipality,
                            )?,
                            row,
                        }),
                        None => None,
                    };
                    (None, kiosk)
                }
            };
            (batch, kiosk, st.voucher_redemptions(s.batch, s.index)?)
        }
        Err(_) => (None, None, vec![]),
    };
    let node = v.payload().node;
    // When the hub had the first redemption, or cancelled the batch.
    let since = earlier
        .first()
        .map(|f| f.at)
        .or(batch.as_ref().and_then(|b| b.cancelled_at));
    let links = match since {
        Some(since) => st.links_since(Some(&node), since, MAX_LINKS)?,
        None => vec![],
    };
    Ok(Some(VoucherContext {
        voucher,
        batch,
        kiosk,
        earlier,
        incident_paid: st.voucher_incident_paid(&node)?,
        links,
        received_at: now,
    }))
}
