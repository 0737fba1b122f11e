//! [`EscrowTx`] for PostgreSQL: strict mode and escrow rights.

use super::PgTx;
use super::conn::{OptionalExtension, params};
use super::rows::{corrupt, i64_of, parse_ledger_account, u64_of};
use crate::model::LedgerAccount;
use crate::store::{EscrowTx, SpendRightRow, StoreError};
use mykey_sync_proto::{AccountId, MunicipalityCode, NodeId, TxId, UnixMillis};

impl EscrowTx for PgTx<'_> {
    fn strict_mode(&mut self, m: MunicipalityCode) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM strict_municipalities WHERE code = $1")?
            .query_row([i64::from(m.get())], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn set_strict_mode(
        &mut self,
        m: MunicipalityCode,
        on: bool,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        if on {
            self.tx.execute(
                "INSERT INTO strict_municipalities(code, since) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                params![i64::from(m.get()), i64_of(now.0)],
            )?;
        } else {
            self.tx.execute(
                "DELETE FROM strict_municipalities WHERE code = $1",
                [i64::from(m.get())],
            )?;
        }
        Ok(())
    }

    fn insert_spend_right(&mut self, r: &SpendRightRow) -> Result<u64, StoreError> {
        let id: i64 = self
            .tx
            .prepare_cached(
                "INSERT INTO spend_rights(account, municipality, node, points, granted_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )?
            .query_row(
                params![
                    i64_of(r.account.get()),
                    i64::from(r.municipality.get()),
                    &r.node.as_bytes()[..],
                    i64_of(r.points.get()),
                    i64_of(r.granted_at.0)
                ],
                |r| r.get(0),
            )?;
        u64_of("right id", id)
    }

    fn release_spend_rights(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        node: &NodeId,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE spend_rights SET released_at = $4
             WHERE account = $1 AND municipality = $2 AND node = $3 AND released_at IS NULL",
            params![
                i64_of(account.get()),
                i64::from(m.get()),
                &node.as_bytes()[..],
                i64_of(now.0)
            ],
        )?;
        Ok(())
    }

    fn live_spend_rights(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Vec<(AccountId, NodeId)>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT DISTINCT account, node FROM spend_rights
             WHERE municipality = $1 AND released_at IS NULL ORDER BY account, node",
        )?;
        let rows = st.query_map([i64::from(m.get())], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = vec![];
        for row in rows {
            let (a, n) = row?;
            let account = AccountId::new(u64_of("account", a)?)
                .map_err(|e| corrupt("spend right account", e))?;
            let node = NodeId::from_bytes(
                n.try_into()
                    .map_err(|_| corrupt("spend right node", "not 32 bytes"))?,
            )
            .map_err(|e| corrupt("spend right node", e))?;
            out.push((account, node));
        }
        Ok(out)
    }

    fn escrow_balances(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Vec<(AccountId, NodeId, i128)>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT key, credits_posted - debits_posted FROM ledger_accounts
             WHERE kind = 'escrow' AND municipality = $1 ORDER BY key",
        )?;
        let rows = st.query_map([i64::from(m.get())], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = vec![];
        for row in rows {
            let (key, bal) = row?;
            match parse_ledger_account("escrow", &key, i64::from(m.get()))? {
                LedgerAccount::Escrow(a, _, n) => out.push((a, n, i128::from(bal))),
                _ => return Err(corrupt("ledger account key", key)),
            }
        }
        Ok(out)
    }

    fn wallets_with_points(&mut self, m: MunicipalityCode) -> Result<Vec<AccountId>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT key FROM ledger_accounts
             WHERE kind = 'wallet' AND municipality = $1 AND credits_posted > debits_posted",
        )?;
        let rows = st.query_map([i64::from(m.get())], |r| r.get::<_, String>(0))?;
        let mut out = vec![];
        for key in rows {
            let key = key?;
            match parse_ledger_account("wallet", &key, i64::from(m.get()))? {
                LedgerAccount::Wallet(a, _) => out.push(a),
                _ => return Err(corrupt("ledger account key", key)),
            }
        }
        out.sort();
        Ok(out)
    }

    fn right_transfer_applied(&mut self, tx: &TxId) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM right_transfers WHERE tx_id = $1")?
            .query_row([&tx.as_bytes()[..]], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn mark_right_transfer(&mut self, tx: &TxId, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO right_transfers(tx_id, applied_at) VALUES ($1, $2)",
            params![&tx.as_bytes()[..], i64_of(now.0)],
        )?;
        Ok(())
    }
}
