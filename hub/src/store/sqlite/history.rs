//! [`HistoryTx`] for SQLite: `status_history`, keyed by slot then node, so
//! the dashboard's read of a window, the latest slot and the pruning of old
//! slots are each one range of the key.

use super::SqliteTx;
use super::rows::{corrupt, i64_of, i64_sat, millis, node_of, u64_of};
use crate::store::StoreError;
use crate::store::history::{HistorySample, HistoryTx};
use mykey_sync_proto::{NodeId, UnixMillis};
use rusqlite::params;

/// The status history (`store::history`): one row per slot and node.
pub(super) const MIGRATION: &str = r#"
-- The status history the dashboard charts: one sample per node per slot
-- (five minutes by default), written by the serving hub, kept a week.
CREATE TABLE status_history (
    slot INTEGER NOT NULL,
    node BLOB NOT NULL,
    span_ms INTEGER NOT NULL,
    up_permille INTEGER NOT NULL,
    unconfirmed INTEGER NOT NULL,
    oldest_unconfirmed_ms INTEGER,
    refusals INTEGER NOT NULL,
    refusals_total INTEGER NOT NULL,
    clock_skew_ms INTEGER,
    PRIMARY KEY (slot, node)
) WITHOUT ROWID;
"#;

impl HistoryTx for SqliteTx<'_> {
    fn insert_history(&mut self, samples: &[HistorySample]) -> Result<u64, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO status_history (slot, node, span_ms, up_permille, unconfirmed,
                 oldest_unconfirmed_ms, refusals, refusals_total, clock_skew_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut n = 0;
        for s in samples {
            n += stmt.execute(params![
                i64_of(s.slot.0),
                &s.node.as_bytes()[..],
                s.span_ms,
                s.up_permille,
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
            .query_row([], |r| r.get(0))?;
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
             WHERE slot >= ?1 AND slot < ?2 AND (?3 IS NULL OR node = ?3)
             ORDER BY slot DESC, node DESC LIMIT ?4",
        )?;
        let mut rows = stmt.query(params![i64_of(from.0), i64_sat(to.0), node, limit])?;
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
            .prepare_cached("DELETE FROM status_history WHERE slot < ?1")?
            .execute([i64_of(before.0)])?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LedgerStore;
    use crate::store::sqlite::SqliteStore;

    const SLOT: u64 = 300_000;

    fn node(b: u8) -> NodeId {
        NodeId::from_bytes(
            ed25519_dalek::SigningKey::from_bytes(&[b; 32])
                .verifying_key()
                .to_bytes(),
        )
        .unwrap()
    }

    fn sample(n: u8, k: u64) -> HistorySample {
        HistorySample {
            node: node(n),
            slot: UnixMillis(1_800_000_000_000 + k * SLOT),
            span_ms: SLOT as u32,
            up_permille: (k % 1001) as u16,
            unconfirmed: k % 300,
            oldest_unconfirmed_ms: k.is_multiple_of(3).then_some(k * 1000),
            refusals: k % 2,
            refusals_total: k,
            clock_skew_ms: Some(-(k as i64)),
        }
    }

    #[test]
    fn samples_survive_reopening_once_each_and_are_pruned_by_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let mut written: Vec<HistorySample> =
            (0..10).flat_map(|k| [sample(1, k), sample(2, k)]).collect();
        // Read back in key order: slot, then node.
        written.sort_by_key(|s| (s.slot, *s.node.as_bytes()));
        {
            let mut store = SqliteStore::open(&path).unwrap();
            let mut tx = store.begin().unwrap();
            assert_eq!(tx.latest_history_slot().unwrap(), None);
            assert_eq!(tx.insert_history(&written).unwrap(), 20);
            tx.commit().unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let mut tx = store.begin().unwrap();
        // A sample written again (a restart within its slot) changes nothing.
        let mut again = sample(1, 9);
        again.unconfirmed = 999;
        assert_eq!(tx.insert_history(&[again]).unwrap(), 0);
        let all = tx
            .history(None, UnixMillis(0), UnixMillis(u64::MAX), 1000)
            .unwrap();
        assert_eq!(all, written);
        assert_eq!(tx.latest_history_slot().unwrap(), Some(sample(1, 9).slot));
        let one = tx
            .history(Some(&node(2)), sample(2, 3).slot, sample(2, 5).slot, 1000)
            .unwrap();
        assert_eq!(one, [sample(2, 3), sample(2, 4)]);
        // Past the limit, the oldest are left out.
        let newest = tx
            .history(Some(&node(2)), UnixMillis(0), UnixMillis(u64::MAX), 2)
            .unwrap();
        assert_eq!(newest, [sample(2, 8), sample(2, 9)]);
        assert_eq!(tx.prune_history(sample(1, 4).slot).unwrap(), 8);
        tx.commit().unwrap();
        let mut tx = store.begin_read().unwrap();
        let left = tx
            .history(None, UnixMillis(0), UnixMillis(u64::MAX), 1000)
            .unwrap();
        assert_eq!(left, written[8..]);
        assert_eq!(left[0].slot, sample(1, 4).slot);
    }

    /// The size ARCHITECTURE.md and `store::history` state: a week of
    /// five-minute samples per node, measured in pages.
    #[test]
    fn history_size_per_node_per_week() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
        let pages = |s: &SqliteStore| -> i64 {
            let c = s.connection();
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
            let n: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
            n * size
        };
        // One commit per slot as the hub writes them; no fsync (the size is the same).
        store
            .connection()
            .execute_batch("PRAGMA synchronous=OFF")
            .unwrap();
        let before = pages(&store);
        const NODES: u8 = 20;
        let week = 7 * 24 * 12;
        for k in 0..week {
            let mut tx = store.begin().unwrap();
            let slot: Vec<HistorySample> = (0..NODES).map(|n| sample(n + 1, k)).collect();
            tx.insert_history(&slot).unwrap();
            tx.commit().unwrap();
        }
        let per_node = (pages(&store) - before) / i64::from(NODES);
        eprintln!("status history: {per_node} bytes per node per week");
        assert!(per_node < 160 * 1024, "{per_node} bytes per node per week");
    }
}
