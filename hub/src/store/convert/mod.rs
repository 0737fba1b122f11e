//! Conversions between the hub's types and the values both SQL backends
//! store (`BIGINT`/`INTEGER`, text, bytes), and the row shapes more than one
//! area reads. Backend-neutral: each backend reads its rows into these.

pub(in crate::store) mod bounds;
pub(in crate::store) mod economy;

use crate::model::{LedgerAccount, NodePolicy, NodeRecord};
use crate::store::StoreError;
use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::{
    AccountId, FacilityId, MunicipalityCode, NodeId, OpKind, Points, ProgramId, TxId, UnixMillis,
};

/// A stored time (never negative).
pub(in crate::store) fn millis(what: &'static str, v: i64) -> Result<UnixMillis, StoreError> {
    Ok(UnixMillis(u64_of(what, v)?))
}

pub(in crate::store) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

pub(in crate::store) fn i64_of(v: u64) -> i64 {
    // Every number we store is a Points (≤ 10^12), a seq or a time: all far
    // below i64::MAX. Past it is a broken invariant, not bad input.
    i64::try_from(v).unwrap_or_else(|_| panic!("value {v} does not fit a 64-bit integer column"))
}

/// For numbers a peer chose (a claimed seq, a node's clock, a cursor): never
/// a panic; past `i64::MAX` they are stored as `i64::MAX` (far beyond any
/// real seq, time or cursor, so nothing that matters changes).
pub(in crate::store) fn i64_sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(in crate::store) fn u64_of(what: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(what, format!("negative value {v}")))
}

pub(in crate::store) fn points_of(what: &'static str, v: i64) -> Result<Points, StoreError> {
    Points::new(u64_of(what, v)?).map_err(|e| corrupt(what, e))
}

pub(in crate::store) fn muni_of(v: i64) -> Result<MunicipalityCode, StoreError> {
    u32::try_from(v)
        .map_err(|_| corrupt("municipality code", v))
        .and_then(|c| MunicipalityCode::try_from(c).map_err(|e| corrupt("municipality code", e)))
}

pub(in crate::store) fn muni_sql(m: MunicipalityCode) -> i64 {
    i64::from(m.get())
}

pub(in crate::store) fn node_of(v: Vec<u8>) -> Result<NodeId, StoreError> {
    let bytes: [u8; 32] = v
        .try_into()
        .map_err(|_| corrupt("node id", "not 32 bytes"))?;
    NodeId::from_bytes(bytes).map_err(|e| corrupt("node id", e))
}

pub(in crate::store) fn txid_of(v: Vec<u8>) -> Result<TxId, StoreError> {
    let bytes: [u8; 32] = v
        .try_into()
        .map_err(|_| corrupt("transaction id", "not 32 bytes"))?;
    Ok(TxId::from_bytes(bytes))
}

pub(in crate::store) fn account_of(v: i64) -> Result<AccountId, StoreError> {
    AccountId::new(u64_of("account id", v)?).map_err(|e| corrupt("account id", e))
}

pub(in crate::store) fn facility_of(v: String) -> Result<FacilityId, StoreError> {
    FacilityId::parse(&v).map_err(|e| corrupt("facility id", e))
}

pub(in crate::store) fn ops_sql(ops: &[OpKind]) -> String {
    ops.iter().map(|o| o.name()).collect::<Vec<_>>().join(",")
}

pub(in crate::store) fn ops_of(v: &str) -> Result<Vec<OpKind>, StoreError> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| OpKind::parse(s).ok_or_else(|| corrupt("operation kind", s)))
        .collect()
}

pub(in crate::store) fn status_of(v: &str) -> Result<CardStatus, StoreError> {
    CardStatus::parse(v).ok_or_else(|| corrupt("card status", v))
}

pub(in crate::store) type NodeRow = (
    Vec<u8>,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
    i64,
);

pub(in crate::store) const NODE_COLS: &str = "n.id, n.facility, n.allowed_ops, n.per_card_offline_limit, \
     n.node_exposure_limit, n.pin_threshold, n.valid_until, n.enrolled_at, n.revoked_at, \
     f.municipality, n.offline_voucher_cap";

pub(in crate::store) fn node_record(row: NodeRow) -> Result<NodeRecord, StoreError> {
    let (
        id,
        facility,
        ops,
        card_limit,
        exposure,
        pin,
        valid_until,
        enrolled_at,
        revoked_at,
        m,
        voucher_cap,
    ) = row;
    Ok(NodeRecord {
        id: node_of(id)?,
        facility: facility_of(facility)?,
        municipality: muni_of(m)?,
        policy: NodePolicy {
            allowed_ops: ops_of(&ops)?,
            per_card_offline_limit: points_of("offline limit", card_limit)?,
            node_exposure_limit: points_of("exposure limit", exposure)?,
            pin_threshold: points_of("PIN threshold", pin)?,
            valid_until: millis("valid until", valid_until)?,
            offline_voucher_cap: points_of("offline voucher cap", voucher_cap)?,
        },
        enrolled_at: millis("enrolled at", enrolled_at)?,
        revoked_at: revoked_at.map(|t| millis("revoked at", t)).transpose()?,
    })
}

pub(in crate::store) fn parse_ledger_account(
    kind: &str,
    key: &str,
    m: i64,
) -> Result<LedgerAccount, StoreError> {
    let m = muni_of(m)?;
    let holder = |key: &str| -> Result<AccountId, StoreError> {
        let (a, _) = key
            .split_once('@')
            .ok_or_else(|| corrupt("ledger account key", key))?;
        AccountId::parse(a).map_err(|e| corrupt("ledger account key", e))
    };
    Ok(match kind {
        "wallet" => LedgerAccount::Wallet(holder(key)?, m),
        "debt" => LedgerAccount::Debt(holder(key)?, m),
        "budget" => LedgerAccount::ProgramBudget(
            ProgramId::parse(key).map_err(|e| corrupt("ledger account key", e))?,
            m,
        ),
        "funding" => LedgerAccount::MunicipalityFunding(m),
        "payable" => LedgerAccount::MerchantPayable(facility_of(key.to_owned())?, m),
        "receivable" => LedgerAccount::OperatorReceivable(
            key.split_once('@').map_or(key, |(o, _)| o).to_owned(),
            m,
        ),
        "expiry" => LedgerAccount::ExpiryIncome(m),
        "held" => LedgerAccount::Held(holder(key)?, m),
        "escrow" => {
            let node = key
                .rsplit_once('@')
                .and_then(|(_, n)| NodeId::parse(n).ok())
                .ok_or_else(|| corrupt("ledger account key", key))?;
            LedgerAccount::Escrow(holder(key)?, m, node)
        }
        "quarantined" => LedgerAccount::Quarantined(facility_of(key.to_owned())?, m),
        "quarantine-claims" => LedgerAccount::QuarantineClaims(m),
        "voucher-float" => LedgerAccount::VoucherFloat(m),
        "donated" => {
            let program = key
                .rsplit_once('@')
                .and_then(|(_, p)| ProgramId::parse(p).ok())
                .ok_or_else(|| corrupt("ledger account key", key))?;
            LedgerAccount::Donated(holder(key)?, program, m)
        }
        other => return Err(corrupt("ledger account kind", other)),
    })
}
