//! [`EconomyTx`] for PostgreSQL.

use super::PgTx;
use super::conn::{OptionalExtension, params};
use super::rows::{
    account_of, corrupt, i64_of, i64_sat, millis, muni_of, muni_sql, points_of, tuple, u64_of,
};
use crate::economy::types::{
    AccountKind, BankAccount, BankCode, BranchCode, Campaign, Cycle, ExchangeOperator,
    ExchangeRecord, ExpiryPolicy, Lot, OperatorId, Period, RecordedOutput, Statement,
    StatementKind,
};
use crate::store::StoreError;
use crate::store::convert::economy::{
    EX_COLS, ExRow, LOT_COLS, LotRow, OP_COLS, OUTPUT_COLS, OpRow, OutputRow, ex_of, lot_of, op_of,
    operator_id, output_of, policy_of,
};
use crate::store::economy::{EconomyTx, Party, WalletStep};
use mykey_sync_proto::{AccountId, MunicipalityCode, Points, ProgramId, TxId, UnixMillis};

impl EconomyTx for PgTx<'_> {
    fn upsert_exchange_operator(
        &mut self,
        op: &ExchangeOperator,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO exchange_operators (id, name, public_key, rate_num, rate_den, holding_days, expiry, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT(id) DO UPDATE SET name = $2, public_key = $3, rate_num = $4, rate_den = $5,
                     holding_days = $6, expiry = $7, updated_at = $8",
            )?
            .execute(params![
                op.id.as_str(),
                op.name,
                &op.public_key[..],
                i64_of(op.rate.num),
                i64_of(op.rate.den),
                i64::from(op.holding_days),
                op.expiry.to_string(),
                i64_of(now.0)
            ])?;
        Ok(())
    }

    fn exchange_operator(
        &mut self,
        id: &OperatorId,
    ) -> Result<Option<ExchangeOperator>, StoreError> {
        self.tx
            .prepare_cached(&format!(
                "SELECT {OP_COLS} FROM exchange_operators WHERE id = $1"
            ))?
            .query_row([id.as_str()], tuple::<OpRow>)
            .optional()?
            .map(op_of)
            .transpose()
    }

    fn exchange_operators(&mut self) -> Result<Vec<ExchangeOperator>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {OP_COLS} FROM exchange_operators ORDER BY id"
        ))?;
        let rows = stmt
            .query_map(params![], tuple::<OpRow>)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(op_of).collect()
    }

    fn allow_exchange(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
        daily_cap: Points,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO exchange_allowances (operator, municipality, daily_cap, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (operator, municipality) DO UPDATE SET daily_cap = $3, updated_at = $4",
            )?
            .execute(params![
                op.as_str(),
                muni_sql(m),
                i64_of(daily_cap.get()),
                i64_of(now.0)
            ])?;
        Ok(())
    }

    fn disallow_exchange(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
    ) -> Result<bool, StoreError> {
        let n = self
            .tx
            .prepare_cached(
                "DELETE FROM exchange_allowances WHERE operator = $1 AND municipality = $2",
            )?
            .execute(params![op.as_str(), muni_sql(m)])?;
        Ok(n > 0)
    }

    fn exchange_cap(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
    ) -> Result<Option<Points>, StoreError> {
        self.tx
            .prepare_cached(
                "SELECT daily_cap FROM exchange_allowances WHERE operator = $1 AND municipality = $2",
            )?
            .query_row(params![op.as_str(), muni_sql(m)], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|v| points_of("daily cap", v))
            .transpose()
    }

    fn exchange_caps(
        &mut self,
        op: &OperatorId,
    ) -> Result<Vec<(MunicipalityCode, Points)>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT municipality, daily_cap FROM exchange_allowances WHERE operator = $1
             ORDER BY municipality",
        )?;
        let rows = stmt
            .query_map([op.as_str()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(m, cap)| Ok((muni_of(m)?, points_of("daily cap", cap)?)))
            .collect()
    }

    fn exchange_volume(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
        day_start: UnixMillis,
    ) -> Result<u64, StoreError> {
        let v: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT points FROM exchange_volume
                 WHERE operator = $1 AND municipality = $2 AND day_start = $3",
            )?
            .query_row(
                params![op.as_str(), muni_sql(m), i64_of(day_start.0)],
                |r| r.get(0),
            )
            .optional()?;
        v.map_or(Ok(0), |v| u64_of("exchange volume", v))
    }

    fn add_exchange_volume(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
        day_start: UnixMillis,
        points: u64,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO exchange_volume (operator, municipality, day_start, points)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (operator, municipality, day_start) DO UPDATE SET points = exchange_volume.points + $4",
            )?
            .execute(params![
                op.as_str(),
                muni_sql(m),
                i64_of(day_start.0),
                i64_of(points)
            ])?;
        Ok(())
    }

    fn insert_campaign(&mut self, c: &Campaign, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO campaigns (id, municipality, operator, percent, starts_at, ends_at, cap_per_account, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )?
            .execute(params![
                c.id,
                muni_sql(c.municipality),
                c.operator.as_ref().map(|o| o.as_str().to_owned()),
                i64::from(c.percent),
                i64_of(c.starts_at.0),
                i64_of(c.ends_at.0),
                i64_of(c.cap_per_account.get()),
                i64_of(now.0)
            ])?;
        Ok(())
    }

    fn campaigns(&mut self, m: MunicipalityCode) -> Result<Vec<Campaign>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, operator, percent, starts_at, ends_at, cap_per_account FROM campaigns
             WHERE municipality = $1 ORDER BY starts_at, id",
        )?;
        let rows = stmt
            .query_map([muni_sql(m)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, op, pct, s, e, cap)| {
                Ok(Campaign {
                    id,
                    municipality: m,
                    operator: op.map(operator_id).transpose()?,
                    percent: u32::try_from(pct).map_err(|e| corrupt("campaign percent", e))?,
                    starts_at: millis("campaign start", s)?,
                    ends_at: millis("campaign end", e)?,
                    cap_per_account: points_of("campaign cap", cap)?,
                })
            })
            .collect()
    }

    fn premium_received(&mut self, campaign: &str, account: AccountId) -> Result<u64, StoreError> {
        let v: i64 = self
            .tx
            .prepare_cached(
                "SELECT COALESCE(CAST(SUM(premium_points) AS BIGINT), 0) FROM exchanges WHERE campaign = $1 AND account = $2",
            )?
            .query_row(params![campaign, i64_of(account.get())], |r| r.get(0))?;
        u64_of("premium received", v)
    }

    fn exchange(
        &mut self,
        op: &OperatorId,
        request_id: &str,
    ) -> Result<Option<ExchangeRecord>, StoreError> {
        self.tx
            .prepare_cached(&format!(
                "SELECT {EX_COLS} FROM exchanges WHERE operator = $1 AND request_id = $2"
            ))?
            .query_row(params![op.as_str(), request_id], tuple::<ExRow>)
            .optional()?
            .map(ex_of)
            .transpose()
    }

    fn exchange_by_origin(&mut self, origin: &TxId) -> Result<Option<ExchangeRecord>, StoreError> {
        let o = &origin.as_bytes()[..];
        self.tx
            .prepare_cached(&format!(
                "SELECT {EX_COLS} FROM exchanges WHERE origin_tx = $1 OR release_tx = $1"
            ))?
            .query_row([o], tuple::<ExRow>)
            .optional()?
            .map(ex_of)
            .transpose()
    }

    fn insert_exchange(&mut self, e: &ExchangeRecord) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO exchanges ({EX_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            ))?
            .execute(params![
                e.operator.as_str(),
                e.request_id,
                &e.request_sha256[..],
                i64_of(e.account.get()),
                muni_sql(e.municipality),
                i64_of(e.operator_points),
                i64_of(e.regional.get()),
                i64_of(e.premium.get()),
                e.campaign,
                i64_of(e.requested_at.0),
                i64_of(e.received_at.0),
                i64_of(e.available_at.0),
                e.released_at.map(|t| i64_of(t.0)),
                &e.origin.as_bytes()[..],
                &e.release_origin.as_bytes()[..],
                e.expiry.to_string(),
            ])?;
        Ok(())
    }

    fn exchanges_due(
        &mut self,
        m: Option<MunicipalityCode>,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<ExchangeRecord>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {EX_COLS} FROM exchanges WHERE released_at IS NULL AND available_at <= $1 AND available_at > received_at
             AND ($3::bigint IS NULL OR municipality = $3)
             ORDER BY available_at, received_at LIMIT $2"
        ))?;
        let rows = stmt
            .query_map(
                params![i64_of(now.0), i64::from(limit), m.map(muni_sql)],
                tuple::<ExRow>,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(ex_of).collect()
    }

    fn mark_released(&mut self, e: &ExchangeRecord, now: UnixMillis) -> Result<(), StoreError> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE exchanges SET released_at = $3 WHERE operator = $1 AND request_id = $2 AND released_at IS NULL",
            )?
            .execute(params![e.operator.as_str(), e.request_id, i64_of(now.0)])?;
        assert_eq!(n, 1, "a held exchange is released once");
        Ok(())
    }

    fn exchanges_of(
        &mut self,
        account: AccountId,
        limit: u32,
    ) -> Result<Vec<ExchangeRecord>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {EX_COLS} FROM exchanges WHERE account = $1 ORDER BY received_at DESC LIMIT $2"
        ))?;
        let rows = stmt
            .query_map(
                params![i64_of(account.get()), i64::from(limit)],
                tuple::<ExRow>,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(ex_of).collect()
    }

    fn set_program_expiry(
        &mut self,
        program: &ProgramId,
        p: ExpiryPolicy,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO program_expiry (program, policy) VALUES ($1, $2)
                 ON CONFLICT(program) DO UPDATE SET policy = $2",
            )?
            .execute(params![program.as_str(), p.to_string()])?;
        Ok(())
    }

    fn program_expiry(&mut self, program: &ProgramId) -> Result<Option<ExpiryPolicy>, StoreError> {
        let v: Option<String> = self
            .tx
            .prepare_cached("SELECT policy FROM program_expiry WHERE program = $1")?
            .query_row([program.as_str()], |r| r.get(0))
            .optional()?;
        v.map(|v| policy_of(&v)).transpose()
    }

    fn lot_cursor(&mut self) -> Result<u64, StoreError> {
        let v: i64 = self
            .tx
            .prepare_cached("SELECT pos FROM lot_cursor WHERE id = 1")?
            .query_row(params![], |r| r.get(0))?;
        u64_of("lot cursor", v)
    }

    fn set_lot_cursor(&mut self, pos: u64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE lot_cursor SET pos = $1 WHERE id = 1")?
            .execute([i64_of(pos)])?;
        Ok(())
    }

    fn insert_lot(&mut self, lot: &Lot) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO lots ({LOT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))?
            .execute(params![
                i64_of(lot.pos),
                i64_of(lot.account.get()),
                muni_sql(lot.municipality),
                lot.source.to_string(),
                i64_of(lot.amount),
                i64_of(lot.remaining),
                i64_of(lot.credited_at.0),
                lot.expires_at.map(|t| i64_of(t.0)),
            ])?;
        Ok(())
    }

    fn set_lot_remaining(&mut self, pos: u64, remaining: u64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE lots SET remaining = $2 WHERE pos = $1")?
            .execute(params![i64_of(pos), i64_of(remaining)])?;
        Ok(())
    }

    fn live_lots(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<Vec<Lot>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {LOT_COLS} FROM lots WHERE account = $1 AND municipality = $2 AND remaining > 0
             ORDER BY expires_at IS NULL, expires_at, pos"
        ))?;
        let rows = stmt
            .query_map(params![i64_of(account.get()), muni_sql(m)], tuple::<LotRow>)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(lot_of).collect()
    }

    fn expiry_notice(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<Option<(u64, UnixMillis)>, StoreError> {
        let row: Option<(i64, i64)> = self
            .tx
            .prepare_cached(
                "SELECT points, expires_at FROM expiry_notices WHERE account = $1 AND municipality = $2",
            )?
            .query_row(params![i64_of(account.get()), muni_sql(m)], tuple)
            .optional()?;
        row.map(|(p, e)| {
            Ok((
                u64_of("expiry_notices.points", p)?,
                UnixMillis(u64_of("expiry_notices.expires_at", e)?),
            ))
        })
        .transpose()
    }

    fn mark_expiry_dirty(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO expiry_dirty (account, municipality) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![i64_of(account.get()), muni_sql(m)])?;
        Ok(())
    }

    fn take_expiry_dirty(
        &mut self,
        m: Option<MunicipalityCode>,
        limit: u32,
    ) -> Result<Vec<(AccountId, MunicipalityCode)>, StoreError> {
        let rows: Vec<(i64, i64)> = self
            .tx
            .prepare_cached(
                "SELECT account, municipality FROM expiry_dirty
                 WHERE ($2::bigint IS NULL OR municipality = $2)
                 ORDER BY account, municipality LIMIT $1",
            )?
            .query_map(params![i64::from(limit), m.map(muni_sql)], tuple)?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (a, m) in rows {
            self.tx
                .prepare_cached(
                    "DELETE FROM expiry_dirty WHERE account = $1 AND municipality = $2",
                )?
                .execute(params![a, m])?;
            out.push((account_of(a)?, muni_of(m)?));
        }
        Ok(out)
    }

    fn set_expiry_notice(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        (points, expires_at): (u64, UnixMillis),
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO expiry_notices (account, municipality, points, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account, municipality)
                 DO UPDATE SET points = excluded.points, expires_at = excluded.expires_at",
            )?
            .execute(params![
                i64_of(account.get()),
                muni_sql(m),
                i64_of(points),
                i64_of(expires_at.0)
            ])?;
        Ok(())
    }

    fn expired_lots(
        &mut self,
        m: Option<MunicipalityCode>,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<Lot>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {LOT_COLS} FROM lots WHERE remaining > 0 AND expires_at <= $1
             AND ($3::bigint IS NULL OR municipality = $3)
             ORDER BY expires_at, pos LIMIT $2"
        ))?;
        let rows = stmt
            .query_map(
                params![i64_of(now.0), i64::from(limit), m.map(muni_sql)],
                tuple::<LotRow>,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(lot_of).collect()
    }

    fn lot_schedule(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Vec<(String, Option<i64>, u64)>, StoreError> {
        // An expiry at 00:00 JST ends the day before: shift by 1 ms, then to JST days.
        let mut stmt = self.tx.prepare_cached(
            "SELECT source, (expires_at - 1 + 32400000) / 86400000 AS day, CAST(SUM(remaining) AS BIGINT)
             FROM lots WHERE municipality = $1 AND remaining > 0
             GROUP BY source, day ORDER BY source, day",
        )?;
        let rows = stmt
            .query_map([muni_sql(m)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(s, d, p)| Ok((s, d, u64_of("lot points", p)?)))
            .collect()
    }

    fn all_live_lots(&mut self, limit: u32) -> Result<Vec<Lot>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {LOT_COLS} FROM lots WHERE remaining > 0 ORDER BY expires_at IS NULL, expires_at, pos LIMIT $1"
        ))?;
        let rows = stmt
            .query_map([i64::from(limit)], tuple::<LotRow>)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(lot_of).collect()
    }

    fn settlement_cycle(&mut self, m: MunicipalityCode) -> Result<Option<Cycle>, StoreError> {
        let v: Option<String> = self
            .tx
            .prepare_cached("SELECT cycle FROM settlement_cycles WHERE municipality = $1")?
            .query_row([muni_sql(m)], |r| r.get(0))
            .optional()?;
        v.map(|v| Cycle::parse(&v).ok_or_else(|| corrupt("settlement cycle", v)))
            .transpose()
    }

    fn set_settlement_cycle(&mut self, m: MunicipalityCode, c: Cycle) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO settlement_cycles (municipality, cycle) VALUES ($1, $2)
                 ON CONFLICT(municipality) DO UPDATE SET cycle = $2",
            )?
            .execute(params![muni_sql(m), c.name()])?;
        Ok(())
    }

    fn set_payee(&mut self, party: &Party, a: &BankAccount, code: u64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO payees (party, bank, branch, kind, number, holder, code) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT(party) DO UPDATE SET bank = $2, branch = $3, kind = $4, number = $5, holder = $6, code = $7",
            )?
            .execute(params![
                party.key(),
                a.bank.to_string(),
                a.branch.to_string(),
                a.kind.name(),
                i64::from(a.number),
                a.holder,
                i64_of(code)
            ])?;
        Ok(())
    }

    fn payee(&mut self, party: &Party) -> Result<Option<(BankAccount, u64)>, StoreError> {
        let row: Option<PayeeRow> = self
            .tx
            .prepare_cached(
                "SELECT party, bank, branch, kind, number, holder, code FROM payees WHERE party = $1",
            )?
            .query_row([party.key()], tuple)
            .optional()?;
        row.map(payee_of)
            .transpose()
            .map(|p| p.map(|(_, a, c)| (a, c)))
    }

    fn payees(&mut self) -> Result<Vec<(Party, BankAccount, u64)>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT party, bank, branch, kind, number, holder, code FROM payees ORDER BY party",
        )?;
        let rows = stmt
            .query_map(params![], tuple::<PayeeRow>)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(payee_of).collect()
    }

    fn periods(&mut self, m: MunicipalityCode) -> Result<Vec<Period>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT starts_at, ends_at, closed_at, ledger_pos FROM periods WHERE municipality = $1 ORDER BY starts_at",
        )?;
        let rows = stmt
            .query_map([muni_sql(m)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(s, e, c, p)| {
                Ok(Period {
                    municipality: m,
                    starts_at: millis("period start", s)?,
                    ends_at: millis("period end", e)?,
                    closed_at: millis("period closed", c)?,
                    ledger_pos: u64_of("period ledger position", p)?,
                })
            })
            .collect()
    }

    fn insert_period(&mut self, p: &Period, statements: &[Statement]) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO periods (municipality, starts_at, ends_at, closed_at, ledger_pos) VALUES ($1, $2, $3, $4, $5)",
            )?
            .execute(params![
                muni_sql(p.municipality),
                i64_of(p.starts_at.0),
                i64_of(p.ends_at.0),
                i64_of(p.closed_at.0),
                i64_of(p.ledger_pos)
            ])?;
        for s in statements {
            self.tx
                .prepare_cached(
                    "INSERT INTO statements (municipality, starts_at, kind, party, points, yen, n_transfers)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )?
                .execute(params![
                    muni_sql(p.municipality),
                    i64_of(p.starts_at.0),
                    s.kind.name(),
                    s.party,
                    i64_of(s.points),
                    i64_of(s.yen),
                    i64_of(s.n_transfers)
                ])?;
        }
        Ok(())
    }

    fn insert_output(&mut self, o: &RecordedOutput) -> Result<(), StoreError> {
        let (m, starts_at) = match o.period {
            Some((m, s)) => (Some(muni_sql(m)), Some(i64_of(s.0))),
            None => (None, None),
        };
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO settlement_outputs ({OUTPUT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))?
            .execute(params![
                o.name,
                i64_of(o.run),
                m,
                starts_at,
                o.sha256.as_slice(),
                o.bytes,
                i64_of(o.made_at.0),
                o.written_at.map(|w| i64_of(w.0)),
            ])?;
        Ok(())
    }

    fn outputs_unwritten(&mut self) -> Result<Vec<RecordedOutput>, StoreError> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {OUTPUT_COLS} FROM settlement_outputs WHERE written_at IS NULL ORDER BY run, name"
            ))?
            .query_map(params![], tuple::<OutputRow>)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(output_of).collect()
    }

    fn outputs_of_period(
        &mut self,
        m: MunicipalityCode,
        starts_at: UnixMillis,
    ) -> Result<Vec<RecordedOutput>, StoreError> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {OUTPUT_COLS} FROM settlement_outputs
                  WHERE municipality = $1 AND starts_at = $2 ORDER BY name"
            ))?
            .query_map(
                params![muni_sql(m), i64_of(starts_at.0)],
                tuple::<OutputRow>,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(output_of).collect()
    }

    fn mark_output_written(&mut self, name: &str, at: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE settlement_outputs SET written_at = $2 WHERE name = $1 AND written_at IS NULL",
            )?
            .execute(params![name, i64_of(at.0)])?;
        Ok(())
    }

    fn last_settlement_run(&mut self) -> Result<u64, StoreError> {
        let run: Option<i64> = self
            .tx
            .prepare_cached("SELECT MAX(run) FROM settlement_outputs")?
            .query_row(params![], |r| r.get(0))?;
        run.map_or(Ok(0), |r| u64_of("settlement run", r))
    }

    fn statements(
        &mut self,
        m: MunicipalityCode,
        starts_at: UnixMillis,
    ) -> Result<Vec<Statement>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT kind, party, points, yen, n_transfers FROM statements
             WHERE municipality = $1 AND starts_at = $2 ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![muni_sql(m), i64_of(starts_at.0)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(k, party, p, y, n)| {
                Ok(Statement {
                    kind: StatementKind::parse(&k).ok_or_else(|| corrupt("statement kind", &k))?,
                    party,
                    points: u64_of("statement points", p)?,
                    yen: u64_of("statement yen", y)?,
                    n_transfers: u64_of("statement count", n)?,
                })
            })
            .collect()
    }

    fn last_pos_before(&mut self, after: u64, before: UnixMillis) -> Result<u64, StoreError> {
        let v: i64 = self
            .tx
            .prepare_cached(
                "SELECT COALESCE(MAX(id), $1) FROM transfers WHERE id > $1 AND hub_time < $2",
            )?
            .query_row(params![i64_of(after), i64_of(before.0)], |r| r.get(0))?;
        u64_of("ledger position", v)
    }

    fn holder_totals_through(
        &mut self,
        m: MunicipalityCode,
        through: u64,
    ) -> Result<Vec<(String, i128)>, StoreError> {
        let mut out = vec![];
        // Points reserved for strict mode's spend rights are still the
        // holders': they count with the wallets.
        for kind in ["wallet", "held", "debt"] {
            let (c, d): (i64, i64) = self
                .tx
                .prepare_cached(
                    "SELECT
                       (SELECT COALESCE(CAST(SUM(t.amount) AS BIGINT), 0) FROM transfers t JOIN ledger_accounts a ON a.id = t.credit
                          WHERE (a.kind = $1 OR ($1 = 'wallet' AND a.kind = 'escrow'))
                            AND a.municipality = $2 AND t.id <= $3),
                       (SELECT COALESCE(CAST(SUM(t.amount) AS BIGINT), 0) FROM transfers t JOIN ledger_accounts a ON a.id = t.debit
                          WHERE (a.kind = $1 OR ($1 = 'wallet' AND a.kind = 'escrow'))
                            AND a.municipality = $2 AND t.id <= $3)",
                )?
                .query_row(params![kind, muni_sql(m), i64_sat(through)], tuple)?;
            let natural = if kind == "debt" {
                i128::from(d) - i128::from(c)
            } else {
                i128::from(c) - i128::from(d)
            };
            out.push((kind.to_owned(), natural));
        }
        Ok(out)
    }

    fn wallet_steps_through(
        &mut self,
        m: MunicipalityCode,
        through: u64,
        visit: &mut dyn FnMut(WalletStep),
    ) -> Result<(), StoreError> {
        // A wallet's ledger key is "<account>@<municipality>" and an escrow's
        // "<account>@<municipality>@<node>" (LedgerAccount::key). Points
        // reserved for spend rights stay in the holder's lots
        // (lots::wallet_side): a debit of the wallet or an escrow uses up
        // lots, a move between the holder's own wallet and escrows does not.
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {LOT_COLS}, CAST(0 AS BIGINT) AS step FROM lots WHERE municipality = $1 AND pos <= $2
             UNION ALL
             SELECT t.id, CAST(split_part(a.key, '@', 1) AS BIGINT), a.municipality,
                    NULL, t.amount, t.amount, t.hub_time, NULL, 1 AS step
               FROM transfers t
               JOIN ledger_accounts a ON a.id = t.debit
               JOIN ledger_accounts c ON c.id = t.credit
              WHERE a.kind IN ('wallet', 'escrow') AND a.municipality = $1 AND t.id <= $2
                AND NOT (c.kind IN ('wallet', 'escrow') AND c.municipality = a.municipality
                         AND split_part(c.key, '@', 1) = split_part(a.key, '@', 1))
             ORDER BY 2, 1, 9"
        ))?;
        let mut rows = stmt.query(params![muni_sql(m), i64_sat(through)])?;
        while let Some(r) = rows.next()? {
            let step: i64 = r.get(8)?;
            if step == 0 {
                visit(WalletStep::Credit(lot_of(tuple::<LotRow>(r)?)?));
            } else {
                visit(WalletStep::Debit {
                    account: account_of(r.get(1)?)?,
                    pos: u64_of("ledger position", r.get(0)?)?,
                    points: u64_of("transfer amount", r.get(4)?)?,
                });
            }
        }
        Ok(())
    }

    fn held_exchanges_through(
        &mut self,
        m: MunicipalityCode,
        through: u64,
        visit: &mut dyn FnMut(ExchangeRecord, u64),
    ) -> Result<(), StoreError> {
        // Exchange and premium transfers carry the exchange's origin, its
        // release the release origin: both are unique columns of exchanges.
        let cols = EX_COLS
            .split(", ")
            .map(|c| format!("e.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self.tx.prepare_cached(&format!(
            "WITH held AS (
               SELECT COALESCE(e1.origin_tx, e2.origin_tx) AS origin,
                      CAST(SUM(CASE WHEN c.kind = 'held' AND c.municipality = $1 THEN t.amount ELSE 0 END) AS BIGINT)
                    - CAST(SUM(CASE WHEN d.kind = 'held' AND d.municipality = $1 THEN t.amount ELSE 0 END) AS BIGINT) AS points
                 FROM transfers t
                 JOIN ledger_accounts c ON c.id = t.credit
                 JOIN ledger_accounts d ON d.id = t.debit
                 LEFT JOIN exchanges e1 ON e1.origin_tx = t.origin_tx
                 LEFT JOIN exchanges e2 ON e2.release_tx = t.origin_tx
                WHERE t.id <= $2
                  AND ((c.kind = 'held' AND c.municipality = $1) OR (d.kind = 'held' AND d.municipality = $1))
                GROUP BY 1)
             SELECT {cols}, held.origin IS NULL, held.points
               FROM held LEFT JOIN exchanges e ON e.origin_tx = held.origin
              WHERE held.points <> 0"
        ))?;
        let mut rows = stmt.query(params![muni_sql(m), i64_sat(through)])?;
        while let Some(r) = rows.next()? {
            let (unnamed, points): (bool, i64) = (r.get(16)?, r.get(17)?);
            if unnamed {
                return Err(corrupt(
                    "ledger (held account)",
                    format!("{points} pt held in {m} by transfers that name no exchange"),
                ));
            }
            let points = u64_of("held points", points)?;
            visit(ex_of(tuple::<ExRow>(r)?)?, points);
        }
        Ok(())
    }
}

type PayeeRow = (String, String, String, String, i64, String, i64);

fn payee_of(row: PayeeRow) -> Result<(Party, BankAccount, u64), StoreError> {
    let (party, bank, branch, kind, number, holder, code) = row;
    Ok((
        Party::from_key(&party).ok_or_else(|| corrupt("payee party", &party))?,
        BankAccount {
            bank: BankCode::parse(&bank).map_err(|e| corrupt("bank code", e))?,
            branch: BranchCode::parse(&branch).map_err(|e| corrupt("branch code", e))?,
            kind: AccountKind::parse(&kind).ok_or_else(|| corrupt("account kind", &kind))?,
            number: u32::try_from(number).map_err(|e| corrupt("account number", e))?,
            holder,
        },
        u64_of("payee code", code)?,
    ))
}
