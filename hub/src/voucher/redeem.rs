//! Reading what the hub's decision on a redeemed voucher needs
//! (`rules::voucher`, pure) inside the ingest transaction: the voucher
//! verified with the hub's key, its batch, its earlier redemptions and what
//! the signing node's earlier incidents were paid.

use crate::rules::voucher::{VoucherContext, read};
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{NodeId, TxBody, VerifiedTx};

/// Reads the context of a `RedeemVoucher` (`None` for other bodies).
pub fn load(
    st: &mut dyn StoreTx,
    v: &VerifiedTx,
    hub: &NodeId,
) -> Result<Option<VoucherContext>, StoreError> {
    let TxBody::RedeemVoucher(r) = &v.payload().body else {
        return Ok(None);
    };
    let voucher = read(r, hub);
    let (batch, earlier) = match &voucher {
        Ok(vv) => {
            let s = vv.body().serial;
            (
                st.voucher_batch(s.batch)?,
                st.voucher_redemptions(s.batch, s.index)?,
            )
        }
        Err(_) => (None, vec![]),
    };
    Ok(Some(VoucherContext {
        voucher,
        batch,
        earlier,
        incident_paid: st.voucher_incident_paid(&v.payload().node)?,
    }))
}
