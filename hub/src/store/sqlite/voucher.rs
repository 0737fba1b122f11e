//! [`VoucherTx`] for SQLite: `voucher_batches` and `voucher_redemptions`
//! (keyed by voucher then hub order, so a voucher's history is one range).

use super::SqliteTx;
use super::rows::{
    corrupt, facility_of, i64_of, millis, muni_of, muni_sql, node_of, points_of, tuple, txid_of,
    u64_of,
};
use crate::store::StoreError;
use crate::store::voucher::{
    HELD_COLUMNS, HeldRedemptionRow, HeldSql, KIOSK_BATCH_COLUMNS, KioskBatchRow, KioskBatchSql,
    VoucherBatchRow, VoucherIssuerRow, VoucherRedemptionRow, VoucherTx, denominations_sql,
    held_row, kiosk_batch_row,
};
use mykey_sync_proto::{NodeId, Points, ProgramId, TxId, UnixMillis};
use rusqlite::{OptionalExtension, params};

/// The voucher tables (`store::voucher`).
pub(super) const MIGRATION: &str = r#"
-- Printed QR point vouchers: batches the hub issued, redemptions nodes signed.
CREATE TABLE voucher_batches (
    id INTEGER PRIMARY KEY,
    program TEXT NOT NULL REFERENCES programs(id),
    municipality INTEGER NOT NULL,
    count INTEGER NOT NULL CHECK (count > 0),
    points INTEGER NOT NULL CHECK (points > 0),
    expires_days INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    cancelled_at INTEGER
);
CREATE TABLE voucher_redemptions (
    batch INTEGER NOT NULL REFERENCES voucher_batches(id),
    idx INTEGER NOT NULL,
    hub_order INTEGER NOT NULL,
    node BLOB NOT NULL,
    seq INTEGER NOT NULL,
    tx BLOB NOT NULL UNIQUE,
    facility TEXT NOT NULL,
    paid INTEGER NOT NULL CHECK (paid >= 0),
    incident INTEGER NOT NULL CHECK (incident IN (0, 1)),
    node_time INTEGER NOT NULL,
    at INTEGER NOT NULL,
    signed BLOB NOT NULL,
    PRIMARY KEY (batch, idx, hub_order)
);
CREATE INDEX voucher_redemptions_node ON voucher_redemptions (node);
"#;

type BatchSql = (
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

fn batch_row(r: BatchSql) -> Result<VoucherBatchRow, StoreError> {
    let (id, program, m, count, points, expires, issued, cancelled, expired) = r;
    Ok(VoucherBatchRow {
        id: u32::try_from(id).map_err(|e| corrupt("voucher batch id", e))?,
        program: ProgramId::parse(&program).map_err(|e| corrupt("voucher batch programme", e))?,
        municipality: muni_of(m)?,
        count: u16::try_from(count).map_err(|e| corrupt("voucher batch count", e))?,
        points: points_of("voucher batch points", points)?,
        expires_days: u16::try_from(expires).map_err(|e| corrupt("voucher batch expiry", e))?,
        issued_at: millis("voucher batch issued_at", issued)?,
        cancelled_at: cancelled
            .map(|c| millis("voucher batch cancelled_at", c))
            .transpose()?,
        expired_at: expired
            .map(|c| millis("voucher batch expired_at", c))
            .transpose()?,
    })
}

const BATCH_COLUMNS: &str =
    "id, program, municipality, count, points, expires_days, issued_at, cancelled_at, expired_at";

impl VoucherTx for SqliteTx<'_> {
    fn insert_kiosk_batch(&mut self, b: &KioskBatchRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO kiosk_voucher_batches ({KIOSK_BATCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                i64::from(b.batch),
                i64::from(b.issuer),
                &b.node.as_bytes()[..],
                &b.tx.as_bytes()[..],
                i64_of(b.account.get()),
                muni_sql(b.municipality),
                i64_of(b.points.get()),
                denominations_sql(&b.denominations),
                i64::from(b.expires_days),
                i64_of(b.issued_at.0),
                b.expired_at.map(|c| i64_of(c.0)),
            ])?;
        Ok(())
    }

    fn kiosk_batch(&mut self, batch: u32) -> Result<Option<KioskBatchRow>, StoreError> {
        let r: Option<KioskBatchSql> = self
            .tx
            .prepare_cached(&format!(
                "SELECT {KIOSK_BATCH_COLUMNS} FROM kiosk_voucher_batches WHERE batch = ?1"
            ))?
            .query_row(params![i64::from(batch)], tuple)
            .optional()?;
        r.map(kiosk_batch_row).transpose()
    }

    fn kiosk_batches_unexpired(&mut self) -> Result<Vec<KioskBatchRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {KIOSK_BATCH_COLUMNS} FROM kiosk_voucher_batches
             WHERE expired_at IS NULL ORDER BY batch"
        ))?;
        let rows: Vec<KioskBatchSql> = stmt.query_map([], tuple)?.collect::<Result<_, _>>()?;
        rows.into_iter().map(kiosk_batch_row).collect()
    }

    fn expire_kiosk_batch(&mut self, batch: u32, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE kiosk_voucher_batches SET expired_at = ?2 WHERE batch = ?1 AND expired_at IS NULL",
            )?
            .execute(params![i64::from(batch), i64_of(now.0)])?;
        Ok(())
    }

    fn insert_held_redemption(&mut self, r: &HeldRedemptionRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO voucher_redemptions_held ({HELD_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?
            .execute(params![
                r.tx.as_bytes().as_slice(),
                i64::from(r.batch),
                i64::from(r.index),
                r.node.as_bytes().as_slice(),
                i64_of(r.seq),
                muni_sql(r.municipality),
                i64::from(r.last_day),
                i64_of(r.held_at.0),
                r.reported_at.map(|t| i64_of(t.0)),
                r.signed,
            ])?;
        Ok(())
    }

    fn held_redemptions(&mut self, batch: u32) -> Result<Vec<HeldRedemptionRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {HELD_COLUMNS} FROM voucher_redemptions_held WHERE batch = ?1 ORDER BY id"
        ))?;
        let rows: Vec<HeldSql> = stmt
            .query_map(params![i64::from(batch)], tuple)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(held_row).collect()
    }

    fn held_redemptions_all(
        &mut self,
        unreported: bool,
        limit: u32,
    ) -> Result<Vec<HeldRedemptionRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {HELD_COLUMNS} FROM voucher_redemptions_held
             WHERE reported_at IS NULL OR NOT ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows: Vec<HeldSql> = stmt
            .query_map(params![unreported, i64::from(limit)], tuple)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(held_row).collect()
    }

    fn delete_held_redemption(&mut self, tx: &TxId) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("DELETE FROM voucher_redemptions_held WHERE tx = ?1")?
            .execute(params![tx.as_bytes().as_slice()])?;
        Ok(())
    }

    fn mark_held_reported(&mut self, tx: &TxId, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE voucher_redemptions_held SET reported_at = ?2 WHERE tx = ?1 AND reported_at IS NULL",
            )?
            .execute(params![tx.as_bytes().as_slice(), i64_of(now.0)])?;
        Ok(())
    }

    fn voucher_issuers(&mut self) -> Result<Vec<VoucherIssuerRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT issuer, node, municipality, vouched_at, withdrawn_at
             FROM voucher_issuers ORDER BY issuer",
        )?;
        type Row = (i64, Vec<u8>, i64, i64, Option<i64>);
        let rows: Vec<Row> = stmt
            .query_map(params![], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(issuer, node, m, at, withdrawn)| {
                Ok(VoucherIssuerRow {
                    issuer: u16::try_from(issuer).map_err(|_| StoreError::Corrupt {
                        what: "voucher_issuers.issuer",
                        detail: format!("{issuer} is not an issuer number"),
                    })?,
                    node: node_of(node)?,
                    municipality: muni_of(m)?,
                    vouched_at: millis("vouched at", at)?,
                    withdrawn_at: withdrawn.map(|t| millis("withdrawn at", t)).transpose()?,
                })
            })
            .collect()
    }

    fn insert_voucher_issuer(&mut self, r: &VoucherIssuerRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO voucher_issuers (issuer, node, municipality, vouched_at, withdrawn_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                i64::from(r.issuer),
                &r.node.as_bytes()[..],
                muni_sql(r.municipality),
                i64_of(r.vouched_at.0),
                r.withdrawn_at.map(|t| i64_of(t.0)),
            ])?;
        Ok(())
    }

    fn withdraw_voucher_issuer(&mut self, issuer: u16, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE voucher_issuers SET withdrawn_at = ?2 WHERE issuer = ?1 AND withdrawn_at IS NULL",
            )?
            .execute(params![i64::from(issuer), i64_of(now.0)])?;
        Ok(())
    }

    fn next_voucher_batch(&mut self) -> Result<u32, StoreError> {
        let max: i64 = self
            .tx
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM voucher_batches")?
            .query_row([], |r| r.get(0))?;
        u32::try_from(max + 1).map_err(|e| corrupt("voucher batch id", e))
    }

    fn insert_voucher_batch(&mut self, b: &VoucherBatchRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO voucher_batches ({BATCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                i64::from(b.id),
                b.program.as_str(),
                muni_sql(b.municipality),
                i64::from(b.count),
                i64_of(b.points.get()),
                i64::from(b.expires_days),
                i64_of(b.issued_at.0),
                b.cancelled_at.map(|c| i64_of(c.0)),
                b.expired_at.map(|c| i64_of(c.0)),
            ])?;
        Ok(())
    }

    fn voucher_batch(&mut self, id: u32) -> Result<Option<VoucherBatchRow>, StoreError> {
        let r: Option<BatchSql> = self
            .tx
            .prepare_cached(&format!(
                "SELECT {BATCH_COLUMNS} FROM voucher_batches WHERE id = ?1"
            ))?
            .query_row([i64::from(id)], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .optional()?;
        r.map(batch_row).transpose()
    }

    fn voucher_batches(&mut self) -> Result<Vec<VoucherBatchRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM voucher_batches ORDER BY id"
        ))?;
        let rows: Vec<BatchSql> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(batch_row).collect()
    }

    fn cancel_voucher_batch(&mut self, id: u32, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE voucher_batches SET cancelled_at = ?2 WHERE id = ?1 AND cancelled_at IS NULL",
            )?
            .execute(params![i64::from(id), i64_of(now.0)])?;
        Ok(())
    }

    fn voucher_redemptions(
        &mut self,
        batch: u32,
        index: u16,
    ) -> Result<Vec<VoucherRedemptionRow>, StoreError> {
        type Sql = (Vec<u8>, i64, Vec<u8>, String, i64, bool, i64, i64, Vec<u8>);
        let mut stmt = self.tx.prepare_cached(
            "SELECT node, seq, tx, facility, paid, incident, node_time, at, signed FROM voucher_redemptions
             WHERE batch = ?1 AND idx = ?2 ORDER BY hub_order",
        )?;
        let rows: Vec<Sql> = stmt
            .query_map(params![i64::from(batch), i64::from(index)], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(
                |(node, seq, tx, facility, paid, incident, node_time, at, signed)| {
                    Ok(VoucherRedemptionRow {
                        batch,
                        index,
                        node: node_of(node)?,
                        seq: u64_of("voucher redemption seq", seq)?,
                        tx: txid_of(tx)?,
                        facility: facility_of(facility)?,
                        paid: points_of("voucher redemption paid", paid)?,
                        incident,
                        node_time: millis("voucher redemption node_time", node_time)?,
                        at: millis("voucher redemption at", at)?,
                        signed,
                    })
                },
            )
            .collect()
    }

    fn voucher_incident_rows(
        &mut self,
        limit: u32,
    ) -> Result<Vec<VoucherRedemptionRow>, StoreError> {
        type Sql = (
            Vec<u8>,
            i64,
            Vec<u8>,
            String,
            i64,
            bool,
            i64,
            i64,
            Vec<u8>,
            i64,
            i64,
        );
        let mut stmt = self.tx.prepare_cached(
            "SELECT node, seq, tx, facility, paid, incident, node_time, at, signed, batch, idx FROM voucher_redemptions
             WHERE incident = 1 ORDER BY at DESC, hub_order DESC LIMIT ?1",
        )?;
        let rows: Vec<Sql> = stmt
            .query_map(params![i64::from(limit)], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(
                |(node, seq, tx, facility, paid, incident, node_time, at, signed, batch, index)| {
                    Ok(VoucherRedemptionRow {
                        batch: u32::try_from(batch)
                            .map_err(|e| corrupt("voucher redemption batch", e))?,
                        index: u16::try_from(index)
                            .map_err(|e| corrupt("voucher redemption index", e))?,
                        node: node_of(node)?,
                        seq: u64_of("voucher redemption seq", seq)?,
                        tx: txid_of(tx)?,
                        facility: facility_of(facility)?,
                        paid: points_of("voucher redemption paid", paid)?,
                        incident,
                        node_time: millis("voucher redemption node_time", node_time)?,
                        at: millis("voucher redemption at", at)?,
                        signed,
                    })
                },
            )
            .collect()
    }

    fn insert_voucher_redemption(&mut self, r: &VoucherRedemptionRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO voucher_redemptions
                   (batch, idx, hub_order, node, seq, tx, facility, paid, incident, node_time, at, signed)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(hub_order), 0) + 1 FROM voucher_redemptions
                                  WHERE batch = ?1 AND idx = ?2),
                         ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                i64::from(r.batch),
                i64::from(r.index),
                r.node.as_bytes().as_slice(),
                i64_of(r.seq),
                r.tx.as_bytes().as_slice(),
                r.facility.as_str(),
                i64_of(r.paid.get()),
                r.incident,
                i64_of(r.node_time.0),
                i64_of(r.at.0),
                r.signed,
            ])?;
        Ok(())
    }

    fn voucher_batch_paid(&mut self, batch: u32) -> Result<(Points, u64), StoreError> {
        let (points, n): (i64, i64) = self
            .tx
            .prepare_cached(
                "SELECT COALESCE(SUM(paid), 0), COUNT(*) FROM voucher_redemptions
                 WHERE batch = ?1 AND paid > 0 AND incident = 0",
            )?
            .query_row([i64::from(batch)], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((
            points_of("voucher batch paid", points)?,
            u64_of("voucher batch paid count", n)?,
        ))
    }

    fn voucher_incident_paid(&mut self, node: &NodeId) -> Result<Points, StoreError> {
        let points: i64 = self
            .tx
            .prepare_cached(
                "SELECT COALESCE(SUM(r.paid), 0) FROM voucher_redemptions r
                 WHERE r.node = ?1 AND r.incident = 1",
            )?
            .query_row([node.as_bytes().as_slice()], |r| r.get(0))?;
        points_of("voucher incident paid", points)
    }

    fn voucher_redeemed_indices(
        &mut self,
        batch: u32,
        first: u16,
        last: u16,
    ) -> Result<Vec<u16>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT DISTINCT idx FROM voucher_redemptions
             WHERE batch = ?1 AND idx >= ?2 AND idx <= ?3 ORDER BY idx",
        )?;
        let rows: Vec<i64> = stmt
            .query_map(
                params![i64::from(batch), i64::from(first), i64::from(last)],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|i| {
                u16::try_from(i).map_err(|_| StoreError::Corrupt {
                    what: "voucher_redemptions.idx",
                    detail: format!("{i} is not a voucher index"),
                })
            })
            .collect()
    }

    fn expire_voucher_batch(&mut self, id: u32, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE voucher_batches SET expired_at = ?2 WHERE id = ?1 AND expired_at IS NULL",
            )?
            .execute(params![i64::from(id), i64_of(now.0)])?;
        Ok(())
    }
}
