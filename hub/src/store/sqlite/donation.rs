//! [`DonationTx`] for SQLite: `donation_programs`.

use super::SqliteTx;
use super::rows::{corrupt, i64_of, millis, muni_of, muni_sql, u64_of};
use crate::store::StoreError;
use crate::store::donation::{DonationProgramRow, DonationTx};
use mykey_sync_proto::{ProgramId, UnixMillis};
use rusqlite::{OptionalExtension, params};

/// The donation programme table (`store::donation`).
pub(super) const MIGRATION: &str = r#"
-- Donation programmes a municipality declared (issue 19): the recipient
-- named for holders; its bank account is a payee ('donation:<id>').
CREATE TABLE donation_programs (
    id TEXT PRIMARY KEY,
    municipality INTEGER NOT NULL REFERENCES municipalities(code),
    recipient TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER
) WITHOUT ROWID;
"#;

type Sql = (String, i64, String, i64, Option<i64>);

fn row(r: Sql) -> Result<DonationProgramRow, StoreError> {
    let (id, m, recipient, opened, closed) = r;
    Ok(DonationProgramRow {
        id: ProgramId::parse(&id).map_err(|e| corrupt("donation programme id", e))?,
        municipality: muni_of(m)?,
        recipient,
        opened_at: millis("donation programme opened_at", opened)?,
        closed_at: closed
            .map(|c| millis("donation programme closed_at", c))
            .transpose()?,
    })
}

const COLUMNS: &str = "id, municipality, recipient, opened_at, closed_at";

impl DonationTx for SqliteTx<'_> {
    fn insert_donation_program(&mut self, p: &DonationProgramRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO donation_programs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?
            .execute(params![
                p.id.as_str(),
                muni_sql(p.municipality),
                p.recipient,
                i64_of(p.opened_at.0),
                p.closed_at.map(|c| i64_of(c.0)),
            ])?;
        Ok(())
    }

    fn donation_program(
        &mut self,
        id: &ProgramId,
    ) -> Result<Option<DonationProgramRow>, StoreError> {
        let r: Option<Sql> = self
            .tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM donation_programs WHERE id = ?1"
            ))?
            .query_row([id.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        r.map(row).transpose()
    }

    fn donation_programs(&mut self) -> Result<Vec<DonationProgramRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM donation_programs ORDER BY id"
        ))?;
        let rows: Vec<Sql> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(row).collect()
    }

    fn close_donation_program(&mut self, id: &ProgramId, at: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE donation_programs SET closed_at = ?2 WHERE id = ?1 AND closed_at IS NULL",
            )?
            .execute(params![id.as_str(), i64_of(at.0)])?;
        Ok(())
    }

    fn donated_total(&mut self, program: &ProgramId) -> Result<u64, StoreError> {
        let sum: i64 = self
            .tx
            .prepare_cached(
                "SELECT COALESCE(SUM(credits_posted - debits_posted), 0) FROM ledger_accounts
                 WHERE kind = 'donated' AND key LIKE '%@' || ?1",
            )?
            .query_row([program.as_str()], |r| r.get(0))?;
        u64_of("donated total", sum)
    }
}
