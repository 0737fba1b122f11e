//! Reading PostgreSQL rows into the hub's types (the conversions themselves
//! are backend-neutral, in `store/convert/`).

use super::conn::Row;
pub(super) use super::conn::tuple;
pub(super) use crate::store::convert::*;
use crate::store::{StoreError, StoredFact};
use mykey_sync_proto::SignedFact;

/// A fact read back as `hub_seq, priority, signed, subject` (its item is not
/// read: log readers do not need it).
pub(super) fn stored_fact(r: &Row) -> Result<StoredFact, StoreError> {
    let bytes: Vec<u8> = r.get(2)?;
    Ok(StoredFact {
        hub_seq: u64_of("hub seq", r.get(0)?)?,
        priority: r.get(1)?,
        subject: r.get(3)?,
        item: None,
        signed: SignedFact::from_bytes(&bytes).map_err(|e| corrupt("stored fact", e))?,
    })
}
