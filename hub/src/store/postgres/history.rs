//! [`HistoryTx`] for PostgreSQL: `status_history`, keyed by slot then node, so
//! the dashboard's read of a window, the latest slot and the pruning of old
//! slots are each one range of the key.

use super::PgTx;
use super::conn::params;
use super::rows::{corrupt, i64_of, i64_sat, millis, node_of, u64_of};
use crate::store::StoreError;
use crate::store::history::{HistorySample, HistoryTx};
use mykey_sync_proto::{NodeId, UnixMillis};

impl HistoryTx for PgTx<'_> {
    fn insert_history(&mut self, samples: &[HistorySample]) -> Result<u64, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO status_history (slot, node, span_ms, up_permille, unconfirmed,
                 oldest_unconfirmed_ms, refusals, refusals_total, clock_skew_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT DO NOTHING",
        )?;
        let mut n = 0;
        for s in samples {
            n += stmt.execute(params![
                i64_of(s.slot.0),
                &s.node.as_bytes()[..],
                i64::from(s.span_ms),
                i64::from(s.up_permille),
                i64_sat(s.unconfirmed),
                s.oldest_unconfirmed_ms.map(i64_sat),
                i64_sat(s.refusals),
                i64_sat(s.refusals_total),
                s.clock_skew_ms,
            ])? as u64;
        }
        Ok(n)
    }

    fn latest_history_slot(&mut self) -> Result<Option<UnixMillis>, StoreError> {
        let at: Option<i64> = self
            .tx
            .prepare_cached("SELECT MAX(slot) FROM status_history")?
            .query_row(params![], |r| r.get(0))?;
        at.map(|t| millis("history slot", t)).transpose()
    }

    fn history(
        &mut self,
        node: Option<&NodeId>,
        from: UnixMillis,
        to: UnixMillis,
        limit: u32,
    ) -> Result<Vec<HistorySample>, StoreError> {
        let node = node.map(|n| n.as_bytes().to_vec());
        let mut stmt = self.tx.prepare_cached(
            "SELECT slot, node, span_ms, up_permille, unconfirmed, oldest_unconfirmed_ms,
                    refusals, refusals_total, clock_skew_ms
             FROM status_history
             WHERE slot >= $1 AND slot < $2 AND ($3::BYTEA IS NULL OR node = $3)
             ORDER BY slot DESC, node DESC LIMIT $4",
        )?;
        let mut rows = stmt.query(params![
            i64_of(from.0),
            i64_sat(to.0),
            node,
            i64::from(limit)
        ])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let span: i64 = r.get(2)?;
            let up: i64 = r.get(3)?;
            out.push(HistorySample {
                slot: millis("history slot", r.get(0)?)?,
                node: node_of(r.get(1)?)?,
                span_ms: u32::try_from(span)
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| corrupt("history slot length", span))?,
                up_permille: u16::try_from(up)
                    .ok()
                    .filter(|u| *u <= 1000)
                    .ok_or_else(|| corrupt("history reachability", up))?,
                unconfirmed: u64_of("history unconfirmed", r.get(4)?)?,
                oldest_unconfirmed_ms: r
                    .get::<_, Option<i64>>(5)?
                    .map(|v| u64_of("history oldest unconfirmed", v))
                    .transpose()?,
                refusals: u64_of("history refusals", r.get(6)?)?,
                refusals_total: u64_of("history refusals", r.get(7)?)?,
                clock_skew_ms: r.get(8)?,
            });
        }
        // Newest first under the limit, so a cut drops the oldest.
        out.reverse();
        Ok(out)
    }

    fn prune_history(&mut self, before: UnixMillis) -> Result<u64, StoreError> {
        let n = self
            .tx
            .prepare_cached("DELETE FROM status_history WHERE slot < $1")?
            .execute([i64_of(before.0)])?;
        Ok(n as u64)
    }
}
