//! The hub-signed redeemed bitmap of a voucher batch (issue 17 part 4): one
//! `FactBody::VoucherMarks` per chunk of 8,192 indices, placed in the
//! municipality's shards (`vr/<batch>/<chunk>`), so nodes receive it from
//! the hub and from each other on the LAN, and refuse a voucher the hub
//! has had redeemed, or any voucher of a cancelled batch, while offline.
//!
//! A chunk's fact is emitted again, whole, after each first redemption in
//! it (read back from the redemptions, so it only ever gains bits), and for
//! every chunk of a batch when the batch is cancelled.

use crate::facts::emit;
use crate::key::HubKey;
use crate::store::voucher::VoucherBatchRow;
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{
    FactBody, MunicipalityCode, RedeemedBits, Scope, UnixMillis, VOUCHER_MARK_CHUNK,
    voucher_mark_chunk,
};

/// What a batch's bitmap says of it: a hub batch's or a kiosk batch's.
#[derive(Clone, Copy, Debug)]
pub struct Marked {
    /// The vouchers' batch number.
    pub batch: u32,
    /// Whose vouchers.
    pub municipality: MunicipalityCode,
    /// Vouchers in it.
    pub count: u16,
    /// Cancelled (hub batches only).
    pub cancelled: bool,
}

impl From<&VoucherBatchRow> for Marked {
    fn from(b: &VoucherBatchRow) -> Self {
        Marked {
            batch: b.id,
            municipality: b.municipality,
            count: b.count,
            cancelled: b.cancelled_at.is_some(),
        }
    }
}

/// The chunk's fact as the redemptions stored now make it.
pub fn chunk_fact(st: &mut dyn StoreTx, b: Marked, chunk: u8) -> Result<FactBody, StoreError> {
    let first = u32::from(chunk) * VOUCHER_MARK_CHUNK + 1;
    let last = (first + VOUCHER_MARK_CHUNK - 1).min(u32::from(b.count));
    let mut redeemed = RedeemedBits::default();
    if let (Ok(first), Ok(last)) = (u16::try_from(first), u16::try_from(last)) {
        for i in st.voucher_redeemed_indices(b.batch, first, last)? {
            redeemed.set(voucher_mark_chunk(i).1);
        }
    }
    Ok(FactBody::VoucherMarks {
        municipality: b.municipality,
        batch: b.batch,
        chunk,
        cancelled: b.cancelled,
        redeemed,
    })
}

/// Tells the batch's nodes the chunk of `index` after a redemption.
pub fn emit_redeemed(
    st: &mut dyn StoreTx,
    key: &HubKey,
    batch: u32,
    index: u16,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let b = match st.voucher_batch(batch)? {
        Some(b) => Marked::from(&b),
        None => match st.kiosk_batch(batch)? {
            // At most MAX_KIOSK_VOUCHERS: fits.
            Some(k) => Marked {
                batch,
                municipality: k.municipality,
                count: u16::try_from(k.denominations.len()).unwrap_or(u16::MAX),
                cancelled: false,
            },
            None => return Ok(()),
        },
    };
    let body = chunk_fact(st, b, voucher_mark_chunk(index).0)?;
    emit(st, key, Scope::Municipality(b.municipality), body, now)?;
    Ok(())
}

/// Tells the batch's nodes every chunk, after a cancellation (`b` as
/// cancelled).
pub fn emit_cancelled(
    st: &mut dyn StoreTx,
    key: &HubKey,
    b: &VoucherBatchRow,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let chunks = voucher_mark_chunk(b.count.max(1)).0;
    for chunk in 0..=chunks {
        let body = chunk_fact(st, Marked::from(b), chunk)?;
        emit(st, key, Scope::Municipality(b.municipality), body, now)?;
    }
    Ok(())
}
