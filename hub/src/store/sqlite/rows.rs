//! Reading SQLite rows into the hub's types (the conversions themselves are
//! backend-neutral, in `store/convert/`).

pub(super) use crate::store::convert::*;
use crate::store::{StoreError, StoredFact};
use mykey_sync_proto::SignedFact;
use rusqlite::Row;

/// Reads a row into a tuple of its columns in order (`SELECT a, b, c` into
/// `(A, B, C)`): the one shape every `*_ROW` type of this backend is read by.
pub(super) fn tuple<T>(r: &Row<'_>) -> rusqlite::Result<T>
where
    T: for<'a> TryFrom<&'a Row<'a>, Error = rusqlite::Error>,
{
    T::try_from(r)
}

/// A fact read back as `hub_seq, priority, signed, subject` (its item is not
/// read: log readers do not need it).
pub(super) fn stored_fact(r: &Row<'_>) -> Result<StoredFact, StoreError> {
    let bytes: Vec<u8> = r.get(2)?;
    Ok(StoredFact {
        hub_seq: u64_of("hub seq", r.get(0)?)?,
        priority: r.get(1)?,
        subject: r.get(3)?,
        item: None,
        signed: SignedFact::from_bytes(&bytes).map_err(|e| corrupt("stored fact", e))?,
    })
}
