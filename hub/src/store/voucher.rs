//! Storage for printed QR point vouchers (`crate::voucher`): the batches
//! the hub issued (and cancelled) and every redemption a node signed, in
//! hub order, paid or not.
//!
//! A supertrait of [`super::StoreTx`] with the same transaction contract.
//! A voucher itself is not stored: it is its batch row and its index, and
//! the hub signs it again, identically (ed25519 is deterministic), to print it.

use super::StoreError;
use mykey_sync_proto::{
    AccountId, FacilityId, MunicipalityCode, NodeId, Points, ProgramId, TxId, UnixMillis,
};

/// A batch of printed vouchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherBatchRow {
    /// Its number, printed in each serial (1, 2, …).
    pub id: u32,
    /// The programme whose budget pays it.
    pub program: ProgramId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Vouchers in it (indices 1..=count).
    pub count: u16,
    /// Face value of each.
    pub points: Points,
    /// The last valid day, in days since 1970-01-01.
    pub expires_days: u16,
    /// When the hub issued it.
    pub issued_at: UnixMillis,
    /// When an operator cancelled it, if so.
    pub cancelled_at: Option<UnixMillis>,
    /// When its unredeemed points went back after its last valid day, if so.
    pub expired_at: Option<UnixMillis>,
}

/// One redemption of a voucher, as a node signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherRedemptionRow {
    /// The voucher's batch.
    pub batch: u32,
    /// Its index.
    pub index: u16,
    /// The signing node.
    pub node: NodeId,
    /// Its seq.
    pub seq: u64,
    /// The transaction.
    pub tx: TxId,
    /// The facility paid (or that would be).
    pub facility: FacilityId,
    /// Points paid to the facility by this redemption (0: not paid).
    pub paid: Points,
    /// A later redemption (or one of a cancelled batch): an incident, paid
    /// (if at all) from the programme, not from the voucher float.
    pub incident: bool,
    /// The node's clock when it signed.
    pub node_time: UnixMillis,
    /// The hub's clock when applied.
    pub at: UnixMillis,
    /// The signed transaction's bytes, kept as evidence.
    pub signed: Vec<u8>,
}

/// A node the hub vouched for as a voucher issuer (a kiosk where holders
/// turn points into vouchers, issue 17 part 1(a)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherIssuerRow {
    /// The number its vouchers' serials carry (`mykey_voucher::Issuer`).
    pub issuer: u16,
    /// The node whose key signs them.
    pub node: NodeId,
    /// Whose vouchers.
    pub municipality: MunicipalityCode,
    /// When the hub vouched for it.
    pub vouched_at: UnixMillis,
    /// When the hub withdrew it, if so.
    pub withdrawn_at: Option<UnixMillis>,
}

/// A batch of vouchers a holder turned their points into at a kiosk
/// (issue 17 part 1(a)): recorded once, from the kiosk's issuing
/// transaction, so a redemption of one of its vouchers is paid from the
/// float its points went to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KioskBatchRow {
    /// The vouchers' batch number as their serials carry it (the node batch
    /// flag, the issuer number, the kiosk's own batch).
    pub batch: u32,
    /// The issuer number.
    pub issuer: u16,
    /// The kiosk node that signed the vouchers.
    pub node: NodeId,
    /// The issuing transaction.
    pub tx: TxId,
    /// The holder whose wallet paid (and gets the unredeemed points back at expiry).
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Points taken in all.
    pub points: Points,
    /// Each voucher's points, by index (voucher 1 first).
    pub denominations: Vec<u32>,
    /// The last valid day, in days since 1970-01-01.
    pub expires_days: u16,
    /// When the hub recorded it.
    pub issued_at: UnixMillis,
    /// When its unredeemed points went back to the wallet, if so.
    pub expired_at: Option<UnixMillis>,
}

/// A redemption of a kiosk voucher whose issuing transaction had not
/// reached the hub when the redemption did (the kiosk still offline): held,
/// paying nothing, until the issue arrives and decides it in hub order
/// (`voucher::kiosk::decide_held`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldRedemptionRow {
    /// The redemption transaction.
    pub tx: TxId,
    /// The voucher's batch (a kiosk batch number).
    pub batch: u32,
    /// Its index.
    pub index: u16,
    /// The signing node.
    pub node: NodeId,
    /// Its seq.
    pub seq: u64,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// The voucher's last valid day, in days since 1970-01-01.
    pub last_day: u16,
    /// The hub's clock when it was held (its place in hub order).
    pub held_at: UnixMillis,
    /// When an incident told the operators the issue had not come, if so.
    pub reported_at: Option<UnixMillis>,
    /// The signed transaction's bytes, decided from when the issue arrives.
    pub signed: Vec<u8>,
}

/// The columns of `voucher_redemptions_held`, in [`HeldSql`]'s order.
pub(in crate::store) const HELD_COLUMNS: &str =
    "tx, batch, idx, node, seq, municipality, last_day, held_at, reported_at, signed";

/// A `voucher_redemptions_held` row as both backends read it.
pub(in crate::store) type HeldSql = (
    Vec<u8>,
    i64,
    i64,
    Vec<u8>,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Vec<u8>,
);

/// Reads a stored held redemption back.
pub(in crate::store) fn held_row(r: HeldSql) -> Result<HeldRedemptionRow, StoreError> {
    use super::convert::{corrupt, millis, muni_of, node_of, txid_of};
    let (tx, batch, index, node, seq, m, last_day, held_at, reported_at, signed) = r;
    Ok(HeldRedemptionRow {
        tx: txid_of(tx)?,
        batch: u32::try_from(batch).map_err(|e| corrupt("held voucher batch", e))?,
        index: u16::try_from(index).map_err(|e| corrupt("held voucher index", e))?,
        node: node_of(node)?,
        seq: u64::try_from(seq).map_err(|e| corrupt("held voucher seq", e))?,
        municipality: muni_of(m)?,
        last_day: u16::try_from(last_day).map_err(|e| corrupt("held voucher last day", e))?,
        held_at: millis("held voucher held_at", held_at)?,
        reported_at: reported_at
            .map(|t| millis("held voucher reported_at", t))
            .transpose()?,
        signed,
    })
}

/// The columns of `kiosk_voucher_batches`, in [`KioskBatchSql`]'s order.
pub(in crate::store) const KIOSK_BATCH_COLUMNS: &str = "batch, issuer, node, tx, account, municipality, points, denominations, expires_days, issued_at, expired_at";

/// A `kiosk_voucher_batches` row as both backends read it.
pub(in crate::store) type KioskBatchSql = (
    i64,
    i64,
    Vec<u8>,
    Vec<u8>,
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
);

/// A kiosk batch's denominations as stored: decimal points, comma-separated.
pub(in crate::store) fn denominations_sql(d: &[u32]) -> String {
    d.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Reads a stored kiosk batch back.
pub(in crate::store) fn kiosk_batch_row(r: KioskBatchSql) -> Result<KioskBatchRow, StoreError> {
    use super::convert::{account_of, corrupt, millis, muni_of, node_of, points_of, txid_of};
    let (batch, issuer, node, tx, account, m, points, denominations, expires, issued, expired) = r;
    Ok(KioskBatchRow {
        batch: u32::try_from(batch).map_err(|e| corrupt("kiosk voucher batch", e))?,
        issuer: u16::try_from(issuer).map_err(|e| corrupt("kiosk voucher issuer", e))?,
        node: node_of(node)?,
        tx: txid_of(tx)?,
        account: account_of(account)?,
        municipality: muni_of(m)?,
        points: points_of("kiosk voucher batch points", points)?,
        denominations: denominations
            .split(',')
            .map(|d| d.parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt("kiosk voucher denominations", e))?,
        expires_days: u16::try_from(expires).map_err(|e| corrupt("kiosk voucher expiry", e))?,
        issued_at: millis("kiosk voucher batch issued_at", issued)?,
        expired_at: expired
            .map(|c| millis("kiosk voucher batch expired_at", c))
            .transpose()?,
    })
}

/// Voucher batches and redemptions.
pub trait VoucherTx {
    /// Records a kiosk batch (its batch number not used before).
    fn insert_kiosk_batch(&mut self, b: &KioskBatchRow) -> Result<(), StoreError>;
    /// A kiosk batch by its vouchers' batch number.
    fn kiosk_batch(&mut self, batch: u32) -> Result<Option<KioskBatchRow>, StoreError>;
    /// The kiosk batches whose points have not gone back yet, by batch number.
    fn kiosk_batches_unexpired(&mut self) -> Result<Vec<KioskBatchRow>, StoreError>;
    /// Marks a kiosk batch expired (its unredeemed points returned).
    fn expire_kiosk_batch(&mut self, batch: u32, now: UnixMillis) -> Result<(), StoreError>;
    /// Holds a redemption of a kiosk voucher whose issue has not arrived.
    fn insert_held_redemption(&mut self, r: &HeldRedemptionRow) -> Result<(), StoreError>;
    /// The held redemptions of vouchers of `batch`, in hub order.
    fn held_redemptions(&mut self, batch: u32) -> Result<Vec<HeldRedemptionRow>, StoreError>;
    /// Every held redemption (only those not yet reported, if
    /// `unreported`), in hub order, at most `limit`.
    fn held_redemptions_all(
        &mut self,
        unreported: bool,
        limit: u32,
    ) -> Result<Vec<HeldRedemptionRow>, StoreError>;
    /// Removes a held redemption once decided.
    fn delete_held_redemption(&mut self, tx: &TxId) -> Result<(), StoreError>;
    /// Marks a held redemption reported to the operators.
    fn mark_held_reported(&mut self, tx: &TxId, now: UnixMillis) -> Result<(), StoreError>;
    /// Every voucher issuer the hub vouched for, by number.
    fn voucher_issuers(&mut self) -> Result<Vec<VoucherIssuerRow>, StoreError>;
    /// Records a voucher issuer (its number not used before).
    fn insert_voucher_issuer(&mut self, r: &VoucherIssuerRow) -> Result<(), StoreError>;
    /// Marks a voucher issuer withdrawn.
    fn withdraw_voucher_issuer(&mut self, issuer: u16, now: UnixMillis) -> Result<(), StoreError>;
    /// The number the next batch gets.
    fn next_voucher_batch(&mut self) -> Result<u32, StoreError>;
    /// Records a batch.
    fn insert_voucher_batch(&mut self, b: &VoucherBatchRow) -> Result<(), StoreError>;
    /// A batch by number.
    fn voucher_batch(&mut self, id: u32) -> Result<Option<VoucherBatchRow>, StoreError>;
    /// Every batch, by number.
    fn voucher_batches(&mut self) -> Result<Vec<VoucherBatchRow>, StoreError>;
    /// Marks a batch cancelled.
    fn cancel_voucher_batch(&mut self, id: u32, now: UnixMillis) -> Result<(), StoreError>;
    /// Redemptions that were incidents (a voucher redeemed again, or one of
    /// a cancelled batch), newest first, at most `limit`.
    fn voucher_incident_rows(
        &mut self,
        limit: u32,
    ) -> Result<Vec<VoucherRedemptionRow>, StoreError>;
    /// Marks a batch expired (its unredeemed points returned).
    fn expire_voucher_batch(&mut self, id: u32, now: UnixMillis) -> Result<(), StoreError>;
    /// Every redemption of one voucher, in hub order.
    fn voucher_redemptions(
        &mut self,
        batch: u32,
        index: u16,
    ) -> Result<Vec<VoucherRedemptionRow>, StoreError>;
    /// Records a redemption (after any earlier one of the same voucher).
    fn insert_voucher_redemption(&mut self, r: &VoucherRedemptionRow) -> Result<(), StoreError>;
    /// Points and vouchers of a batch paid from the voucher float so far
    /// (first redemptions; incidents are paid from the programme).
    fn voucher_batch_paid(&mut self, batch: u32) -> Result<(Points, u64), StoreError>;
    /// Points paid for a node's incident redemptions (what its offline
    /// voucher cap has used).
    fn voucher_incident_paid(&mut self, node: &NodeId) -> Result<Points, StoreError>;
    /// The indices from `first` through `last` of `batch` redeemed at least
    /// once, ascending (the redeemed bitmap's chunk).
    fn voucher_redeemed_indices(
        &mut self,
        batch: u32,
        first: u16,
        last: u16,
    ) -> Result<Vec<u16>, StoreError>;
}
