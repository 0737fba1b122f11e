//! The economy's row shapes (columns, tuples, conversions), read alike by
//! both backends.

use super::{account_of, corrupt, millis, muni_of, points_of, txid_of, u64_of};
use crate::economy::types::{
    ExchangeOperator, ExchangeRecord, ExpiryPolicy, Lot, LotSource, OperatorId, Rate,
    RecordedOutput,
};
use crate::store::StoreError;

pub(in crate::store) fn operator_id(v: String) -> Result<OperatorId, StoreError> {
    OperatorId::parse(&v).map_err(|e| corrupt("operator id", e))
}

pub(in crate::store) fn policy_of(v: &str) -> Result<ExpiryPolicy, StoreError> {
    ExpiryPolicy::parse(v).ok_or_else(|| corrupt("expiry policy", v))
}

pub(in crate::store) const OUTPUT_COLS: &str =
    "name, run, municipality, starts_at, sha256, bytes, made_at, written_at";
pub(in crate::store) type OutputRow = (
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Vec<u8>,
    Vec<u8>,
    i64,
    Option<i64>,
);
pub(in crate::store) fn output_of(
    (name, run, m, starts_at, sha256, bytes, made_at, written_at): OutputRow,
) -> Result<RecordedOutput, StoreError> {
    let period = match (m, starts_at) {
        (Some(m), Some(s)) => Some((muni_of(m)?, millis("output period", s)?)),
        (None, None) => None,
        _ => return Err(corrupt("settlement output period", &name)),
    };
    Ok(RecordedOutput {
        run: u64_of("settlement run", run)?,
        period,
        sha256: sha256
            .try_into()
            .map_err(|_| corrupt("output sha256", "not 32 bytes"))?,
        bytes,
        made_at: millis("output made", made_at)?,
        written_at: written_at
            .map(|w| millis("output written", w))
            .transpose()?,
        name,
    })
}

pub(in crate::store) const OP_COLS: &str =
    "id, name, public_key, rate_num, rate_den, holding_days, expiry";
pub(in crate::store) type OpRow = (String, String, Vec<u8>, i64, i64, i64, String);
pub(in crate::store) fn op_of(row: OpRow) -> Result<ExchangeOperator, StoreError> {
    let (id, name, key, num, den, holding, expiry) = row;
    Ok(ExchangeOperator {
        id: operator_id(id)?,
        name,
        public_key: key
            .try_into()
            .map_err(|_| corrupt("operator key", "not 32 bytes"))?,
        rate: Rate::new(u64_of("rate", num)?, u64_of("rate", den)?)
            .ok_or_else(|| corrupt("rate", "zero"))?,
        holding_days: u32::try_from(holding).map_err(|e| corrupt("holding days", e))?,
        expiry: policy_of(&expiry)?,
    })
}

pub(in crate::store) const EX_COLS: &str = "operator, request_id, request_sha256, account, municipality, operator_points, \
    regional_points, premium_points, campaign, requested_at, received_at, available_at, released_at, \
    origin_tx, release_tx, expiry";
pub(in crate::store) type ExRow = (
    String,
    String,
    Vec<u8>,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
    Vec<u8>,
    Vec<u8>,
    String,
);
pub(in crate::store) fn ex_of(row: ExRow) -> Result<ExchangeRecord, StoreError> {
    let (op, req, sha, acct, m, opp, reg, prem, camp, rq, rc, av, rel, origin, release, expiry) =
        row;
    Ok(ExchangeRecord {
        operator: operator_id(op)?,
        request_id: req,
        request_sha256: sha
            .try_into()
            .map_err(|_| corrupt("request hash", "not 32 bytes"))?,
        account: account_of(acct)?,
        municipality: muni_of(m)?,
        operator_points: u64_of("operator points", opp)?,
        regional: points_of("regional points", reg)?,
        premium: points_of("premium points", prem)?,
        campaign: camp,
        requested_at: millis("requested at", rq)?,
        received_at: millis("received at", rc)?,
        available_at: millis("available at", av)?,
        released_at: rel.map(|v| millis("released at", v)).transpose()?,
        origin: txid_of(origin)?,
        release_origin: txid_of(release)?,
        expiry: policy_of(&expiry)?,
    })
}

pub(in crate::store) const LOT_COLS: &str =
    "pos, account, municipality, source, amount, remaining, credited_at, expires_at";
pub(in crate::store) type LotRow = (i64, i64, i64, String, i64, i64, i64, Option<i64>);
pub(in crate::store) fn lot_of(row: LotRow) -> Result<Lot, StoreError> {
    let (pos, acct, m, source, amount, remaining, credited, expires) = row;
    Ok(Lot {
        pos: u64_of("lot", pos)?,
        account: account_of(acct)?,
        municipality: muni_of(m)?,
        source: LotSource::parse(&source).ok_or_else(|| corrupt("lot source", &source))?,
        amount: u64_of("lot amount", amount)?,
        remaining: u64_of("lot remaining", remaining)?,
        credited_at: millis("credited at", credited)?,
        expires_at: expires.map(|v| millis("expires at", v)).transpose()?,
    })
}
