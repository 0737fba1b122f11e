//! [`LedgerTx`] for PostgreSQL: ledger accounts (row ids cached once
//! committed), transfers with their running totals, the audit.

use super::PgTx;
use super::conn::{OptionalExtension, params};
use super::rows::{
    corrupt, i64_of, i64_sat, millis, muni_of, muni_sql, parse_ledger_account, points_of, tuple,
    txid_of, u64_of,
};
use crate::model::{DebtLine, LedgerAccount, Posted, Transfer, TransferDraft, TransferKind};
use crate::store::{LedgerAudit, LedgerTx, MunicipalityFlows, StoreError};
use mykey_sync_proto::{AccountId, MunicipalityCode, UnixMillis};
use std::collections::HashMap;

impl PgTx<'_> {
    /// The row id of a ledger account, created on first use.
    fn ledger_account_id(&mut self, a: &LedgerAccount) -> Result<i64, StoreError> {
        if let Some(id) = self.committed_ids.get(a).or_else(|| self.new_ids.get(a)) {
            return Ok(*id);
        }
        let (id, created) = self.find_or_create_ledger_account(a)?;
        if created {
            self.new_ids.insert(a.clone(), id);
        } else {
            self.committed_ids.insert(a.clone(), id);
        }
        Ok(id)
    }

    fn find_or_create_ledger_account(
        &mut self,
        a: &LedgerAccount,
    ) -> Result<(i64, bool), StoreError> {
        let key = a.key();
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT id FROM ledger_accounts WHERE kind = $1 AND key = $2")?
            .query_row(params![a.kind(), key], |r| r.get(0))
            .optional()?;
        if let Some(id) = found {
            return Ok((id, false));
        }
        let id: i64 = self
            .tx
            .prepare_cached(
                "INSERT INTO ledger_accounts (kind, key, municipality) VALUES ($1, $2, $3)
                 RETURNING id",
            )?
            .query_row(params![a.kind(), key, muni_sql(a.municipality())], |r| {
                r.get(0)
            })?;
        Ok((id, true))
    }
}

impl LedgerTx for PgTx<'_> {
    fn posted(&mut self, account: &LedgerAccount) -> Result<Posted, StoreError> {
        let id = match self
            .committed_ids
            .get(account)
            .or_else(|| self.new_ids.get(account))
        {
            Some(id) => Some(*id),
            None => self
                .tx
                .prepare_cached("SELECT id FROM ledger_accounts WHERE kind = $1 AND key = $2")?
                .query_row(params![account.kind(), account.key()], |r| r.get(0))
                .optional()?,
        };
        let Some(id) = id else {
            return Ok(Posted::default());
        };
        let (d, c): (i64, i64) = self
            .tx
            .prepare_cached(
                "SELECT debits_posted, credits_posted FROM ledger_accounts WHERE id = $1",
            )?
            .query_row([id], tuple)?;
        Ok(Posted {
            debits: u64_of("debits posted", d)?,
            credits: u64_of("credits posted", c)?,
        })
    }

    fn holder_posted(
        &mut self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<(Posted, Posted), StoreError> {
        // Both accounts share the key; one index range read finds them.
        let key = LedgerAccount::Wallet(account, municipality).key();
        let mut stmt = self.tx.prepare_cached(
            "SELECT kind, debits_posted, credits_posted FROM ledger_accounts
             WHERE kind IN ('wallet', 'debt') AND key = $1",
        )?;
        let mut rows = stmt.query([key])?;
        let (mut wallet, mut debt) = (Posted::default(), Posted::default());
        while let Some(r) = rows.next()? {
            let kind: String = r.get(0)?;
            let posted = Posted {
                debits: u64_of("debits posted", r.get(1)?)?,
                credits: u64_of("credits posted", r.get(2)?)?,
            };
            match kind.as_str() {
                "wallet" => wallet = posted,
                _ => debt = posted,
            }
        }
        Ok((wallet, debt))
    }

    fn post(&mut self, t: &TransferDraft, now: UnixMillis) -> Result<u64, StoreError> {
        assert!(!t.amount.is_zero(), "a transfer moves a positive amount");
        assert_ne!(t.debit, t.credit, "a transfer moves between two accounts");
        let debit = self.ledger_account_id(&t.debit)?;
        let credit = self.ledger_account_id(&t.credit)?;
        let amount = i64_of(t.amount.get());
        // The leg numbers a transaction's transfers in order, for audit.
        let leg: i64 = match t.origin_tx {
            None => 0,
            Some(origin) => {
                let n = self.legs.entry(origin).or_insert(0);
                *n += 1;
                *n - 1
            }
        };
        // The position comes from the ledger's counter row, locked by the
        // first post of this transaction and written back at commit.
        let pos = match self.ledger_pos {
            Some(p) => p + 1,
            None => self.counter("ledger")? + 1,
        };
        self.ledger_pos = Some(pos);
        self.tx
            .prepare_cached(
                "INSERT INTO transfers (id, debit, credit, amount, kind, origin_tx, leg, hub_time, node_time)
                 VALUES ($9, $1, $2, $3, $4, $5, $6, $7, $8)",
            )?
            .execute(params![
                debit,
                credit,
                amount,
                t.kind.name(),
                t.origin_tx.map(|o| o.as_bytes().to_vec()),
                leg,
                i64_of(now.0),
                t.node_time.map(|n| i64_sat(n.0)),
                i64_of(pos),
            ])?;
        let changed = self
            .tx
            .prepare_cached(
                "UPDATE ledger_accounts SET
                     debits_posted = debits_posted + CASE WHEN id = $1 THEN $3::BIGINT ELSE 0 END,
                     credits_posted = credits_posted + CASE WHEN id = $2 THEN $3::BIGINT ELSE 0 END
                 WHERE id IN ($1, $2)",
            )?
            .execute(params![debit, credit, amount])?;
        assert_eq!(changed, 2, "both sides of a transfer exist");
        self.delta.debits += t.amount.get();
        self.delta.credits += t.amount.get();
        Ok(pos)
    }

    fn ledger_head(&mut self) -> Result<u64, StoreError> {
        let pos: i64 = self
            .tx
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM transfers")?
            .query_row(params![], |r| r.get(0))?;
        u64_of("ledger head", pos)
    }

    fn ledger_totals(&mut self) -> Result<Posted, StoreError> {
        let (d, c): (i64, i64) = self
            .tx
            .prepare_cached("SELECT debits, credits FROM ledger_totals WHERE id = 1")?
            .query_row(params![], tuple)?;
        Ok(Posted {
            debits: u64_of("total debits", d)? + self.delta.debits,
            credits: u64_of("total credits", c)? + self.delta.credits,
        })
    }

    fn transfers(&mut self, after: u64, limit: u32) -> Result<Vec<Transfer>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT t.id, d.kind, d.key, d.municipality, c.kind, c.key, c.municipality,
                    t.amount, t.kind, t.origin_tx, t.hub_time, t.node_time
             FROM transfers t JOIN ledger_accounts d ON d.id = t.debit
             JOIN ledger_accounts c ON c.id = t.credit
             WHERE t.id > $1 ORDER BY t.id LIMIT $2",
        )?;
        let mut rows = stmt.query(params![i64_of(after), i64::from(limit)])?;
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

    fn debts(&mut self) -> Result<Vec<DebtLine>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT key, municipality, debits_posted - credits_posted FROM ledger_accounts
             WHERE kind = 'debt' AND debits_posted <> credits_posted ORDER BY municipality, key",
        )?;
        let mut rows = stmt.query(params![])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let m: i64 = r.get(1)?;
            let LedgerAccount::Debt(account, municipality) = parse_ledger_account("debt", &key, m)?
            else {
                return Err(corrupt("debt account", key));
            };
            out.push(DebtLine {
                account,
                municipality,
                debt: points_of("debt", r.get(2)?)?,
            });
        }
        Ok(out)
    }

    fn ledger_audit(&mut self) -> Result<LedgerAudit, StoreError> {
        let running = self.ledger_totals()?;
        let (ad, ac): (i64, i64) = self.tx.query_row(
            "SELECT COALESCE(CAST(SUM(debits_posted) AS BIGINT), 0), COALESCE(CAST(SUM(credits_posted) AS BIGINT), 0) FROM ledger_accounts",
            params![],
            tuple,
        )?;
        let (sum, n): (i64, i64) = self.tx.query_row(
            "SELECT COALESCE(CAST(SUM(amount) AS BIGINT), 0), COUNT(*) FROM transfers",
            params![],
            tuple,
        )?;
        // Recompute every account's totals from the transfers in two passes
        // (no correlated subqueries: this runs over the whole ledger).
        let mut recomputed: HashMap<i64, (i64, i64)> = HashMap::new();
        {
            let mut stmt = self.tx.prepare(
                "SELECT debit, CAST(SUM(amount) AS BIGINT) FROM transfers GROUP BY debit",
            )?;
            let mut rows = stmt.query(params![])?;
            while let Some(r) = rows.next()? {
                recomputed.entry(r.get(0)?).or_default().0 = r.get(1)?;
            }
            let mut stmt = self.tx.prepare(
                "SELECT credit, CAST(SUM(amount) AS BIGINT) FROM transfers GROUP BY credit",
            )?;
            let mut rows = stmt.query(params![])?;
            while let Some(r) = rows.next()? {
                recomputed.entry(r.get(0)?).or_default().1 = r.get(1)?;
            }
        }
        let mut mismatched_accounts = vec![];
        {
            let mut stmt = self.tx.prepare(
                "SELECT id, kind || ':' || key, debits_posted, credits_posted FROM ledger_accounts",
            )?;
            let mut rows = stmt.query(params![])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let posted: (i64, i64) = (r.get(2)?, r.get(3)?);
                if recomputed.get(&id).copied().unwrap_or_default() != posted {
                    mismatched_accounts.push(r.get::<_, String>(1)?);
                }
            }
        }
        let mut municipalities = vec![];
        {
            let mut stmt = self.tx.prepare(
                "SELECT m.municipality,
                   (SELECT COALESCE(CAST(SUM(t.amount) AS BIGINT), 0) FROM transfers t JOIN ledger_accounts c ON c.id = t.credit
                      WHERE c.municipality = m.municipality AND (t.kind = 'grant'
                        OR (t.kind IN ('exchange', 'premium', 'release', 'kiosk-voucher-return') AND c.kind = 'wallet'))),
                   (SELECT COALESCE(CAST(SUM(t.amount) AS BIGINT), 0) FROM transfers t JOIN ledger_accounts c ON c.id = t.credit
                      WHERE c.municipality = m.municipality AND t.kind IN ('redeem', 'redeem-on-debt', 'donation', 'kiosk-voucher-issue')),
                   (SELECT COALESCE(CAST(SUM(t.amount) AS BIGINT), 0) FROM transfers t JOIN ledger_accounts c ON c.id = t.credit
                      WHERE c.municipality = m.municipality AND t.kind = 'expiry'),
                   (SELECT COALESCE(CAST(SUM(credits_posted - debits_posted) AS BIGINT), 0) FROM ledger_accounts
                      WHERE kind IN ('wallet', 'escrow') AND municipality = m.municipality),
                   (SELECT COALESCE(CAST(SUM(debits_posted - credits_posted) AS BIGINT), 0) FROM ledger_accounts
                      WHERE kind = 'debt' AND municipality = m.municipality),
                   (SELECT COUNT(*) FROM ledger_accounts WHERE kind IN ('wallet', 'escrow')
                      AND municipality = m.municipality AND credits_posted < debits_posted),
                   (SELECT COUNT(*) FROM ledger_accounts WHERE kind = 'debt'
                      AND municipality = m.municipality AND debits_posted < credits_posted)
                 FROM (SELECT DISTINCT municipality FROM ledger_accounts) m ORDER BY m.municipality",
            )?;
            let mut rows = stmt.query(params![])?;
            while let Some(r) = rows.next()? {
                municipalities.push(MunicipalityFlows {
                    municipality: Some(muni_of(r.get(0)?)?),
                    credited: u64_of("credited", r.get(1)?)?,
                    redeemed: u64_of("redeemed", r.get(2)?)?,
                    expired: u64_of("expired", r.get(3)?)?,
                    wallets: i128::from(r.get::<_, i64>(4)?),
                    debts: i128::from(r.get::<_, i64>(5)?),
                    negative_wallets: u64_of("count", r.get(6)?)?,
                    negative_debts: u64_of("count", r.get(7)?)?,
                });
            }
        }
        Ok(LedgerAudit {
            running,
            accounts: Posted {
                debits: u64_of("sum of debits", ad)?,
                credits: u64_of("sum of credits", ac)?,
            },
            transfers: u64_of("sum of transfers", sum)?,
            n_transfers: u64_of("count", n)?,
            mismatched_accounts,
            municipalities,
        })
    }
}
