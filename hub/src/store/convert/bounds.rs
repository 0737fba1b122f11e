//! The quarantine's row shape, read alike by both backends.

use super::{account_of, corrupt, facility_of, muni_of, node_of, points_of, txid_of, u64_of};
use crate::store::StoreError;
use crate::store::bounds::{QuarantineRow, QuarantineState};
use mykey_sync_proto::{CardKey, UnixMillis};

/// A quarantine row as stored, before its values are checked.
pub(in crate::store) struct RawQuarantine {
    pub(in crate::store) id: i64,
    pub(in crate::store) tx: Vec<u8>,
    pub(in crate::store) node: Vec<u8>,
    pub(in crate::store) seq: i64,
    pub(in crate::store) facility: String,
    pub(in crate::store) municipality: i64,
    pub(in crate::store) account: i64,
    pub(in crate::store) issuer: Vec<u8>,
    pub(in crate::store) serial: Vec<u8>,
    pub(in crate::store) points: i64,
    pub(in crate::store) rule: String,
    pub(in crate::store) detail: String,
    pub(in crate::store) held_at: i64,
    pub(in crate::store) state: String,
    pub(in crate::store) decided_by: Option<String>,
    pub(in crate::store) why: Option<String>,
    pub(in crate::store) decided_at: Option<i64>,
}

impl RawQuarantine {
    pub(in crate::store) fn into_row(self) -> Result<QuarantineRow, StoreError> {
        Ok(QuarantineRow {
            id: u64_of("quarantine id", self.id)?,
            tx: txid_of(self.tx)?,
            node: node_of(self.node)?,
            seq: u64_of("seq", self.seq)?,
            facility: facility_of(self.facility)?,
            municipality: muni_of(self.municipality)?,
            account: account_of(self.account)?,
            card: CardKey::new(self.issuer, self.serial).map_err(|e| corrupt("card key", e))?,
            points: points_of("quarantined points", self.points)?,
            rule: self.rule,
            detail: self.detail,
            held_at: UnixMillis(u64_of("held at", self.held_at)?),
            state: QuarantineState::parse(&self.state)
                .ok_or_else(|| corrupt("quarantine state", &self.state))?,
            decided_by: self.decided_by,
            why: self.why,
            decided_at: self
                .decided_at
                .map(|t| u64_of("decided at", t).map(UnixMillis))
                .transpose()?,
        })
    }
}
