//! [`StatusTx`] for PostgreSQL: links, rejections, facilities, operators.

use super::PgTx;
use super::conn::{OptionalExtension, params};
use super::rows::{
    corrupt, facility_of, i64_of, i64_sat, millis, muni_of, muni_sql, node_of, tuple, txid_of,
    u64_of,
};
use crate::access::{Role, Scope, TokenInfo};
use crate::model::{Facility, FacilityKind, Municipality, Posted};
use crate::store::StoreError;
use crate::store::status::{LinkSpan, OperatorRow, RejectionRow, StatusTx};
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{MunicipalityCode, NodeId, UnixMillis, codec};

impl StatusTx for PgTx<'_> {
    fn facilities(&mut self) -> Result<Vec<(Municipality, Vec<Facility>)>, StoreError> {
        let mut out: Vec<(Municipality, Vec<Facility>)> = vec![];
        let mut stmt = self
            .tx
            .prepare_cached("SELECT code, name FROM municipalities ORDER BY code")?;
        let rows = stmt.query_map(params![], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (code, name) = row?;
            let code = muni_of(code)?;
            out.push((Municipality { code, name }, vec![]));
        }
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, municipality, kind, name FROM facilities ORDER BY municipality, id",
        )?;
        let rows = stmt.query_map(params![], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        for row in rows {
            let (id, m, kind, name) = row?;
            let f = Facility {
                id: facility_of(id)?,
                municipality: muni_of(m)?,
                kind: FacilityKind::parse(&kind).ok_or_else(|| corrupt("facility kind", kind))?,
                name,
            };
            match out.iter_mut().find(|(mu, _)| mu.code == f.municipality) {
                Some((_, fs)) => fs.push(f),
                None => return Err(corrupt("facility", "its municipality is missing")),
            }
        }
        Ok(out)
    }

    fn open_link(
        &mut self,
        node: &NodeId,
        hello_last_seq: u64,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let id = &node.as_bytes()[..];
        self.tx
            .prepare_cached(
                "UPDATE node_links SET closed_at = seen_at WHERE node = $1 AND closed_at IS NULL",
            )?
            .execute([id])?;
        self.tx
            .prepare_cached(
                "INSERT INTO node_links (node, opened_at, seen_at, holder, hello_last_seq)
                 VALUES ($1, $2, $2, $3, $4)",
            )?
            .execute(params![
                id,
                i64_of(now.0),
                self.process,
                i64_sat(hello_last_seq)
            ])?;
        Ok(())
    }

    fn link_seen(&mut self, node: &NodeId, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE node_links SET seen_at = GREATEST(seen_at, $2)
                 WHERE node = $1 AND closed_at IS NULL",
            )?
            .execute(params![&node.as_bytes()[..], i64_of(now.0)])?;
        Ok(())
    }

    fn close_link(&mut self, node: &NodeId, at: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE node_links SET seen_at = GREATEST(seen_at, $2), closed_at = GREATEST(seen_at, $2)
                 WHERE node = $1 AND closed_at IS NULL AND opened_at <= $2
                   AND (holder IS NULL OR holder = $3)",
            )?
            .execute(params![&node.as_bytes()[..], i64_of(at.0), self.process])?;
        Ok(())
    }

    fn close_stale_links(&mut self) -> Result<u64, StoreError> {
        // Other hub processes on this database may hold some of the open
        // links, and confirm them each minute: only links no process saw
        // within the alive window (3 minutes, `Thresholds::link_alive_ms`'s
        // default, on the server's clock) were left by a stopped process.
        let n = self
            .tx
            .prepare_cached(
                "UPDATE node_links SET closed_at = seen_at
                 WHERE closed_at IS NULL
                   AND seen_at < (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 180000",
            )?
            .execute(params![])?;
        Ok(n as u64)
    }

    fn first_fact_after(
        &mut self,
        scope: &mykey_sync_proto::Scope,
        after: u64,
    ) -> Result<Option<(u64, UnixMillis)>, StoreError> {
        let row: Option<(i64, i64)> = self
            .tx
            .prepare_cached(
                "SELECT hub_seq, issued_at FROM facts WHERE scope = $1 AND hub_seq > $2
                 ORDER BY hub_seq LIMIT 1",
            )?
            .query_row(
                params![crate::store::scope_key(scope), i64_of(after)],
                tuple,
            )
            .optional()?;
        row.map(|(seq, at)| Ok((u64_of("hub seq", seq)?, millis("fact issued", at)?)))
            .transpose()
    }

    fn prune_links(&mut self, before: UnixMillis) -> Result<u64, StoreError> {
        let n = self
            .tx
            .prepare_cached("DELETE FROM node_links WHERE seen_at < $1 AND closed_at IS NOT NULL")?
            .execute([i64_of(before.0)])?;
        Ok(n as u64)
    }

    fn links_since(
        &mut self,
        node: Option<&NodeId>,
        since: UnixMillis,
        limit: u32,
    ) -> Result<Vec<LinkSpan>, StoreError> {
        let node = node.map(|n| n.as_bytes().to_vec());
        let mut stmt = self.tx.prepare_cached(
            "SELECT node, opened_at, seen_at, closed_at, hello_last_seq FROM node_links
             WHERE seen_at >= $1 AND ($2::BYTEA IS NULL OR node = $2)
             ORDER BY opened_at LIMIT $3",
        )?;
        let rows = stmt.query_map(params![i64_of(since.0), node, i64::from(limit)], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = vec![];
        for row in rows {
            let (n, opened, seen, closed, last_seq) = row?;
            out.push(LinkSpan {
                node: node_of(n)?,
                opened_at: millis("link opened", opened)?,
                seen_at: millis("link seen", seen)?,
                closed_at: closed.map(|c| millis("link closed", c)).transpose()?,
                hello_last_seq: u64::try_from(last_seq)
                    .map_err(|_| corrupt("link", "a negative seq"))?,
            });
        }
        Ok(out)
    }

    fn ledger_kind_totals(
        &mut self,
    ) -> Result<Vec<(MunicipalityCode, String, Posted)>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT municipality, kind, CAST(SUM(debits_posted) AS BIGINT), CAST(SUM(credits_posted) AS BIGINT)
             FROM ledger_accounts GROUP BY municipality, kind ORDER BY municipality, kind",
        )?;
        let rows = stmt.query_map(params![], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = vec![];
        for row in rows {
            let (m, kind, d, c) = row?;
            out.push((
                muni_of(m)?,
                kind,
                Posted {
                    debits: u64_of("debits", d)?,
                    credits: u64_of("credits", c)?,
                },
            ));
        }
        Ok(out)
    }

    fn rejections(
        &mut self,
        node: Option<&NodeId>,
        limit: u32,
    ) -> Result<Vec<RejectionRow>, StoreError> {
        let node = node.map(|n| n.as_bytes().to_vec());
        let mut stmt = self.tx.prepare_cached(
            "SELECT node, seq, id, outcome, received_at FROM txs
             WHERE rejected AND ($1::BYTEA IS NULL OR node = $1)
             ORDER BY received_at DESC, seq DESC LIMIT $2",
        )?;
        let rows = stmt.query_map(params![node, i64::from(limit)], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = vec![];
        for row in rows {
            let (n, seq, id, outcome, at) = row?;
            let outcome: Outcome = codec::decode_canonical("stored outcome", &outcome, 4096)
                .map_err(|e| corrupt("outcome", e))?;
            let Outcome::Rejected(reason) = outcome else {
                return Err(corrupt("outcome", "marked rejected but accepted"));
            };
            out.push(RejectionRow {
                node: node_of(n)?,
                seq: u64_of("seq", seq)?,
                tx: txid_of(id)?,
                reason,
                at: millis("received at", at)?,
            });
        }
        Ok(out)
    }

    fn upsert_operator(&mut self, op: &OperatorRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO operators (name, password_hash, created_at, role, municipality)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,
                     role = excluded.role, municipality = excluded.municipality",
            )?
            .execute(params![
                op.name,
                op.password_hash,
                i64_of(op.created_at.0),
                op.role.name(),
                op.role.municipality().map(muni_sql),
            ])?;
        Ok(())
    }

    fn operator(&mut self, name: &str) -> Result<Option<OperatorRow>, StoreError> {
        let row: Option<(String, i64, String, Option<i64>)> = self
            .tx
            .prepare_cached(
                "SELECT password_hash, created_at, role, municipality FROM operators WHERE name = $1",
            )?
            .query_row([name], tuple)
            .optional()?;
        row.map(|(password_hash, at, role, m)| {
            let m = m.map(muni_of).transpose()?;
            Ok(OperatorRow {
                name: name.to_owned(),
                password_hash,
                role: Role::parse(&role, m).map_err(|e| corrupt("operator role", e))?,
                created_at: millis("operator created", at)?,
            })
        })
        .transpose()
    }

    fn operators(&mut self) -> Result<Vec<OperatorRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT name, password_hash, created_at, role, municipality FROM operators ORDER BY name",
        )?;
        let rows = stmt
            .query_map(
                params![],
                tuple::<(String, String, i64, String, Option<i64>)>,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(name, password_hash, at, role, m)| {
                let m = m.map(muni_of).transpose()?;
                Ok(OperatorRow {
                    name,
                    password_hash,
                    role: Role::parse(&role, m).map_err(|e| corrupt("operator role", e))?,
                    created_at: millis("operator created", at)?,
                })
            })
            .collect()
    }

    fn remove_operator(&mut self, name: &str) -> Result<bool, StoreError> {
        self.tx
            .prepare_cached("DELETE FROM api_tokens WHERE operator = $1")?
            .execute([name])?;
        let n = self
            .tx
            .prepare_cached("DELETE FROM operators WHERE name = $1")?
            .execute([name])?;
        Ok(n > 0)
    }

    fn n_operators(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .tx
            .prepare_cached("SELECT COUNT(*) FROM operators")?
            .query_row(params![], |r| r.get(0))?;
        u64_of("count", n)
    }

    fn insert_api_token(
        &mut self,
        token_sha256: &[u8; 32],
        t: &TokenInfo,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO api_tokens (token_sha256, operator, created_at, id, scope, expires_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )?
            .execute(params![
                &token_sha256[..],
                t.operator,
                i64_of(t.created_at.0),
                t.id,
                t.scope.name(),
                t.expires_at.map(|e| i64_of(e.0)),
                t.revoked_at.map(|e| i64_of(e.0)),
            ])?;
        Ok(())
    }

    fn api_token(&mut self, token_sha256: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError> {
        self.tx
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_sha256 = $1"
            ))?
            .query_row([&token_sha256[..]], tuple::<TokenRow>)
            .optional()?
            .map(token_of)
            .transpose()
    }

    fn api_tokens(&mut self, operator: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE $1::TEXT IS NULL OR operator = $1
             ORDER BY created_at, id"
        ))?;
        let rows = stmt
            .query_map([operator], tuple::<TokenRow>)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(token_of).collect()
    }

    fn revoke_api_token(&mut self, id: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )?
            .execute(params![id, i64_of(now.0)])?;
        Ok(n > 0)
    }
}

const TOKEN_COLS: &str = "id, operator, scope, created_at, expires_at, revoked_at";
type TokenRow = (String, String, String, i64, Option<i64>, Option<i64>);

fn token_of(row: TokenRow) -> Result<TokenInfo, StoreError> {
    let (id, operator, scope, created, expires, revoked) = row;
    Ok(TokenInfo {
        id,
        operator,
        scope: Scope::parse(&scope).map_err(|e| corrupt("token scope", e))?,
        created_at: millis("token created", created)?,
        expires_at: expires.map(|v| millis("token expiry", v)).transpose()?,
        revoked_at: revoked.map(|v| millis("token revoked", v)).transpose()?,
    })
}
