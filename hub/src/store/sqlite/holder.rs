//! [`HolderTx`] for SQLite: one holder's transfers through their ledger
//! accounts (`ledger_accounts.key` is `<account>@<municipality>…` for the
//! wallet, held, debt and escrow kinds, and the donated accounts of donation
//! programmes). No table and no migration of its own.

use super::SqliteTx;
use super::rows::{
    corrupt, i64_of, millis, muni_of, parse_ledger_account, points_of, txid_of, u64_of,
};
use crate::model::{Transfer, TransferKind};
use crate::store::StoreError;
use crate::store::holder::HolderTx;
use mykey_sync_proto::{AccountId, MunicipalityCode};
use rusqlite::params;

/// The holder's own ledger accounts and donated accounts, by the key
/// prefix `<account>@`.
const HOLDER_ACCOUNTS: &str = "SELECT id FROM ledger_accounts
     WHERE kind IN ('wallet', 'held', 'debt', 'escrow', 'donated') AND key LIKE ?1";

fn key_prefix(account: AccountId) -> String {
    format!("{}@%", account.get())
}

impl HolderTx for SqliteTx<'_> {
    fn holder_transfers(
        &mut self,
        account: AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Transfer>, StoreError> {
        // The ledger has no index by account: the newest-first scan stops
        // after `limit` matches (a history page), which is what a kiosk asks.
        let sql = format!(
            "SELECT t.id, d.kind, d.key, d.municipality, c.kind, c.key, c.municipality,
                    t.amount, t.kind, t.origin_tx, t.hub_time, t.node_time
             FROM transfers t JOIN ledger_accounts d ON d.id = t.debit
             JOIN ledger_accounts c ON c.id = t.credit
             WHERE t.id < ?2 AND (t.debit IN ({HOLDER_ACCOUNTS}) OR t.credit IN ({HOLDER_ACCOUNTS}))
             ORDER BY t.id DESC LIMIT ?3"
        );
        let mut stmt = self.tx.prepare_cached(&sql)?;
        let before = before.map_or(i64::MAX, i64_of);
        let mut rows = stmt.query(params![key_prefix(account), before, limit])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let kind: String = r.get(8)?;
            out.push(Transfer {
                pos: u64_of("transfer id", r.get(0)?)?,
                debit: parse_ledger_account(
                    &r.get::<_, String>(1)?,
                    &r.get::<_, String>(2)?,
                    r.get(3)?,
                )?,
                credit: parse_ledger_account(
                    &r.get::<_, String>(4)?,
                    &r.get::<_, String>(5)?,
                    r.get(6)?,
                )?,
                amount: points_of("amount", r.get(7)?)?,
                kind: TransferKind::parse(&kind).ok_or_else(|| corrupt("transfer kind", kind))?,
                origin_tx: r.get::<_, Option<Vec<u8>>>(9)?.map(txid_of).transpose()?,
                hub_time: millis("hub time", r.get(10)?)?,
                node_time: r
                    .get::<_, Option<i64>>(11)?
                    .map(|t| millis("node time", t))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    fn holder_municipalities(
        &mut self,
        account: AccountId,
    ) -> Result<Vec<MunicipalityCode>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT DISTINCT municipality FROM ledger_accounts
             WHERE kind IN ('wallet', 'held', 'debt', 'escrow') AND key LIKE ?1 ORDER BY municipality",
        )?;
        let mut rows = stmt.query(params![key_prefix(account)])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            out.push(muni_of(r.get(0)?)?);
        }
        Ok(out)
    }
}
