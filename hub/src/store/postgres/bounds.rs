//! [`BoundsTx`] for PostgreSQL: issued balances, spends, card keys, quarantine.

use super::PgTx;
use super::conn::{OptionalExtension, Row, params};
use super::rows::{
    corrupt, facility_of, i64_of, i64_sat, muni_of, muni_sql, node_of, points_of, tuple, u64_of,
};
use crate::model::Balance;
use crate::store::StoreError;
use crate::store::bounds::{
    BoundsTx, QuarantineFilter, QuarantineRow, QuarantineState, QuarantineTotal, SpendRow,
};
use crate::store::convert::bounds::RawQuarantine;
use mykey_sync_proto::{AccountId, CardKey, MunicipalityCode, NodeId, Points, UnixMillis};

const QUARANTINE_COLUMNS: &str = "id, tx, node, seq, facility, municipality, account, card_issuer, card_serial, points, rule, detail, held_at, state, decided_by, why, decided_at";

fn quarantine_row(r: &Row) -> Result<RawQuarantine, super::conn::Error> {
    Ok(RawQuarantine {
        id: r.get(0)?,
        tx: r.get(1)?,
        node: r.get(2)?,
        seq: r.get(3)?,
        facility: r.get(4)?,
        municipality: r.get(5)?,
        account: r.get(6)?,
        issuer: r.get(7)?,
        serial: r.get(8)?,
        points: r.get(9)?,
        rule: r.get(10)?,
        detail: r.get(11)?,
        held_at: r.get(12)?,
        state: r.get(13)?,
        decided_by: r.get(14)?,
        why: r.get(15)?,
        decided_at: r.get(16)?,
    })
}

impl BoundsTx for PgTx<'_> {
    fn record_issued_balance(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        ledger_pos: u64,
        balance: Balance,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO issued_balances (account, municipality, ledger_pos, balance, debt)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (account, municipality, ledger_pos)
                 DO UPDATE SET balance = excluded.balance, debt = excluded.debt",
            )?
            .execute(params![
                i64_of(account.get()),
                muni_sql(m),
                i64_of(ledger_pos),
                i64_of(balance.balance.get()),
                i64_of(balance.debt.get())
            ])?;
        Ok(())
    }

    fn issued_balance(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        ledger_pos: u64,
    ) -> Result<Option<Balance>, StoreError> {
        let row: Option<(i64, i64)> = self
            .tx
            .prepare_cached(
                "SELECT balance, debt FROM issued_balances
                 WHERE account = $1 AND municipality = $2 AND ledger_pos = $3",
            )?
            .query_row(
                params![i64_sat(account.get()), muni_sql(m), i64_sat(ledger_pos)],
                tuple,
            )
            .optional()?;
        row.map(|(b, d)| {
            Ok(Balance {
                balance: points_of("issued balance", b)?,
                debt: points_of("issued debt", d)?,
            })
        })
        .transpose()
    }

    fn latest_issued_balance(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<Option<(u64, Balance)>, StoreError> {
        let row: Option<(i64, i64, i64)> = self
            .tx
            .prepare_cached(
                "SELECT ledger_pos, balance, debt FROM issued_balances
                 WHERE account = $1 AND municipality = $2 ORDER BY ledger_pos DESC LIMIT 1",
            )?
            .query_row(params![i64_sat(account.get()), muni_sql(m)], tuple)
            .optional()?;
        row.map(|(pos, b, d)| {
            Ok((
                u64_of("ledger position", pos)?,
                Balance {
                    balance: points_of("issued balance", b)?,
                    debt: points_of("issued debt", d)?,
                },
            ))
        })
        .transpose()
    }

    fn record_spend(&mut self, s: &SpendRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO spends (node, seq, account, municipality, card_issuer, card_serial,
                   points, ledger_pos, period_start, at_risk, cum_points)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                   $7 + COALESCE((SELECT cum_points FROM spends
                                     WHERE node = $1 AND account = $3 AND municipality = $4
                                     ORDER BY ledger_pos DESC, seq DESC LIMIT 1), 0))",
            )?
            .execute(params![
                &s.node.as_bytes()[..],
                i64_of(s.seq),
                i64_of(s.account.get()),
                muni_sql(s.municipality),
                s.card.issuer_der(),
                s.card.serial(),
                i64_of(s.points.get()),
                i64_of(s.ledger_pos),
                i64_of(s.period_start.0),
                i64_of(s.at_risk.get())
            ])?;
        if s.at_risk > Points::ZERO {
            let mut add = self.tx.prepare_cached(
                "INSERT INTO at_risk_totals (node, period_start, card_issuer, card_serial, at_risk)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (node, period_start, card_issuer, card_serial)
                 DO UPDATE SET at_risk = at_risk_totals.at_risk + excluded.at_risk",
            )?;
            let (node, period, points) = (
                &s.node.as_bytes()[..],
                i64_of(s.period_start.0),
                i64_of(s.at_risk.get()),
            );
            add.execute(params![
                node,
                period,
                s.card.issuer_der(),
                s.card.serial(),
                points
            ])?;
            add.execute(params![node, period, &[] as &[u8], &[] as &[u8], points])?;
        }
        Ok(())
    }

    fn spent_since(
        &mut self,
        node: &NodeId,
        account: AccountId,
        m: MunicipalityCode,
        ledger_pos: u64,
    ) -> Result<Points, StoreError> {
        let sum: i64 = self
            .tx
            .prepare_cached(
                // The running sum now less the running sum at the basis
                // (rows are added in ledger order: see the spends migration).
                "SELECT COALESCE((SELECT cum_points FROM spends
                                  WHERE node = $1 AND account = $2 AND municipality = $3
                                  ORDER BY ledger_pos DESC, seq DESC LIMIT 1), 0)
                      - COALESCE((SELECT cum_points FROM spends
                                  WHERE node = $1 AND account = $2 AND municipality = $3
                                    AND ledger_pos <= $4
                                  ORDER BY ledger_pos DESC, seq DESC LIMIT 1), 0)",
            )?
            .query_row(
                params![
                    &node.as_bytes()[..],
                    i64_sat(account.get()),
                    muni_sql(m),
                    i64_sat(ledger_pos)
                ],
                |r| r.get(0),
            )?;
        // A sum past the largest balance only makes the basis cover nothing.
        Ok(Points::new(u64_of("spent since", sum)?.min(Points::MAX)).unwrap_or(Points::ZERO))
    }

    fn at_risk_used(
        &mut self,
        node: &NodeId,
        card: &CardKey,
        period_start: UnixMillis,
    ) -> Result<(Points, Points), StoreError> {
        let mut total = self.tx.prepare_cached(
            "SELECT at_risk FROM at_risk_totals
             WHERE node = $1 AND period_start = $2 AND card_issuer = $3 AND card_serial = $4",
        )?;
        let (node, period) = (&node.as_bytes()[..], i64_of(period_start.0));
        let mut read = |issuer: &[u8], serial: &[u8]| -> Result<i64, StoreError> {
            Ok(total
                .query_row(params![node, period, issuer, serial], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        };
        let all = read(&[], &[])?;
        let on_card = read(card.issuer_der(), card.serial())?;
        Ok((
            points_of("at risk", all)?,
            points_of("at risk on card", on_card)?,
        ))
    }

    fn card_public_key(&mut self, card: &CardKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT public_key FROM card_public_keys WHERE issuer = $1 AND serial = $2",
            )?
            .query_row(params![card.issuer_der(), card.serial()], |r| r.get(0))
            .optional()?)
    }

    fn set_card_public_key(
        &mut self,
        card: &CardKey,
        public_key_der: &[u8],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO card_public_keys (issuer, serial, public_key, set_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (issuer, serial)
                 DO UPDATE SET public_key = excluded.public_key, set_at = excluded.set_at",
            )?
            .execute(params![
                card.issuer_der(),
                card.serial(),
                public_key_der,
                i64_of(now.0)
            ])?;
        Ok(())
    }

    fn insert_quarantine(&mut self, q: &QuarantineRow) -> Result<u64, StoreError> {
        let id: i64 = self
            .tx
            .prepare_cached(
                "INSERT INTO quarantine (tx, node, seq, facility, municipality, account,
                   card_issuer, card_serial, points, rule, detail, held_at, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'held')
                 RETURNING id",
            )?
            .query_row(
                params![
                    &q.tx.as_bytes()[..],
                    &q.node.as_bytes()[..],
                    i64_of(q.seq),
                    q.facility.as_str(),
                    muni_sql(q.municipality),
                    i64_of(q.account.get()),
                    q.card.issuer_der(),
                    q.card.serial(),
                    i64_of(q.points.get()),
                    q.rule,
                    q.detail,
                    i64_of(q.held_at.0)
                ],
                |r| r.get(0),
            )?;
        u64_of("quarantine id", id)
    }

    fn quarantine_item(&mut self, id: u64) -> Result<Option<QuarantineRow>, StoreError> {
        let sql = format!("SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = $1");
        let raw = self
            .tx
            .prepare_cached(&sql)?
            .query_row([i64_sat(id)], quarantine_row)
            .optional()?;
        raw.map(RawQuarantine::into_row).transpose()
    }

    fn quarantine_items(
        &mut self,
        f: &QuarantineFilter,
        limit: u32,
    ) -> Result<Vec<QuarantineRow>, StoreError> {
        let sql = format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine
             WHERE ($1::BIGINT IS NULL OR municipality = $1) AND ($2::TEXT IS NULL OR facility = $2)
               AND ($3::BYTEA IS NULL OR node = $3) AND ($4::TEXT IS NULL OR state = $4)
             ORDER BY id LIMIT $5"
        );
        let mut stmt = self.tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                f.municipality.map(muni_sql),
                f.facility.as_ref().map(|x| x.as_str().to_owned()),
                f.node.map(|n| n.as_bytes().to_vec()),
                f.state.as_ref().map(|s| s.name()),
                i64::from(limit)
            ],
            quarantine_row,
        )?;
        let mut out = vec![];
        for r in rows {
            out.push(r?.into_row()?);
        }
        Ok(out)
    }

    fn decide_quarantine(
        &mut self,
        id: u64,
        state: &QuarantineState,
        by: &str,
        why: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE quarantine SET state = $2, decided_by = $3, why = $4, decided_at = $5
                 WHERE id = $1 AND state = 'held'",
            )?
            .execute(params![i64_sat(id), state.name(), by, why, i64_of(now.0)])?;
        Ok(())
    }

    fn processed_signed(
        &mut self,
        tx: &mykey_sync_proto::TxId,
    ) -> Result<Option<mykey_sync_proto::SignedTx>, StoreError> {
        let bytes: Option<Vec<u8>> = self
            .tx
            .prepare_cached("SELECT signed FROM txs WHERE id = $1")?
            .query_row([&tx.as_bytes()[..]], |r| r.get(0))
            .optional()?;
        bytes
            .map(|b| {
                mykey_sync_proto::SignedTx::from_bytes(&b).map_err(|e| corrupt("signed tx", e))
            })
            .transpose()
    }

    fn quarantine_held_by_node(&mut self) -> Result<Vec<(NodeId, u64, Points)>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT node, COUNT(*), CAST(SUM(points) AS BIGINT) FROM quarantine WHERE state = 'held'
             GROUP BY node ORDER BY node",
        )?;
        let rows = stmt.query_map(params![], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = vec![];
        for r in rows {
            let (n, c, p) = r?;
            out.push((
                node_of(n)?,
                u64_of("count", c)?,
                points_of("held points", p)?,
            ));
        }
        Ok(out)
    }

    fn quarantine_totals(&mut self) -> Result<Vec<QuarantineTotal>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT municipality, facility, node, state, COUNT(*), CAST(SUM(points) AS BIGINT) FROM quarantine
             GROUP BY municipality, facility, node, state
             ORDER BY municipality, facility, node, state",
        )?;
        let rows = stmt.query_map(params![], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = vec![];
        for r in rows {
            let (m, f, n, state, items, points) = r?;
            out.push(QuarantineTotal {
                municipality: muni_of(m)?,
                facility: facility_of(f)?,
                node: node_of(n)?,
                state: QuarantineState::parse(&state)
                    .ok_or_else(|| corrupt("quarantine state", &state))?,
                items: u64_of("count", items)?,
                points: u64_of("quarantined points", points)?,
            });
        }
        Ok(out)
    }
}
