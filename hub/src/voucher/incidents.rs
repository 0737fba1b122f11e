//! Voucher incidents as operators read them (the dashboard's `/vouchers`):
//! each voucher redeemed again (or of a cancelled batch) with both signed
//! redemptions, the nodes and facilities, and what the hub paid the later
//! one within the node's offline voucher cap.

use crate::Hub;
use crate::store::StoreError;
use crate::store::voucher::{VoucherBatchRow, VoucherRedemptionRow};
use mykey_sync_proto::{MunicipalityCode, Points};

/// Incidents listed at most.
pub const MAX_LISTED: u32 = 500;

/// One voucher incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherIncident {
    /// The voucher's batch.
    pub batch: VoucherBatchRow,
    /// The redemption the hub paid first (none: the batch was cancelled
    /// before any).
    pub first: Option<VoucherRedemptionRow>,
    /// The later redemption, the incident.
    pub again: VoucherRedemptionRow,
}

impl VoucherIncident {
    /// The voucher's face value.
    pub fn points(&self) -> Points {
        self.batch.points
    }

    /// Paid in full, in part (the cap ran out), or not at all.
    pub fn verdict(&self) -> &'static str {
        if self.again.paid.is_zero() {
            "not-paid"
        } else if self.again.paid < self.batch.points {
            "paid-in-part"
        } else {
            "paid"
        }
    }
}

/// The newest voucher incidents (of one municipality, or all).
pub fn incidents(
    hub: &mut Hub,
    municipality: Option<MunicipalityCode>,
) -> Result<Vec<VoucherIncident>, StoreError> {
    let mut st = hub.store.begin_read()?;
    let mut out = vec![];
    for again in st.voucher_incident_rows(MAX_LISTED)? {
        let Some(batch) = st.voucher_batch(again.batch)? else {
            continue;
        };
        if municipality.is_some_and(|m| m != batch.municipality) {
            continue;
        }
        let first = st
            .voucher_redemptions(again.batch, again.index)?
            .into_iter()
            .find(|r| !r.incident);
        out.push(VoucherIncident {
            batch,
            first,
            again,
        });
    }
    Ok(out)
}
