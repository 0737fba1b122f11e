//! [`FactLogTx`] for PostgreSQL: the fact log, its shard placement and fill,
//! shard epochs.

use super::PgTx;
use super::conn::{OptionalExtension, params};
use super::rows::{corrupt, i64_of, i64_sat, millis, stored_fact, u64_of};
use crate::store::{FactLogTx, PlacedFact, ShardEpochRow, StoreError, StoredFact, scope_key};
use mykey_sync_proto::{Scope, UnixMillis};

/// `shard_fill` keeps the low bits of `bucket_hash` that any bucket count
/// (a power of two up to `MAX_BUCKETS`) can mask.
const FILL_HASH_MASK: u16 = mykey_sync_proto::shard::MAX_BUCKETS - 1;

impl FactLogTx for PgTx<'_> {
    fn last_hub_seq(&mut self) -> Result<u64, StoreError> {
        // The counter row, locked in a write transaction: the next hub_seq is
        // this transaction's until it commits.
        if let Some(s) = self.hub_seq {
            return Ok(s);
        }
        let s = self.counter("hub_seq")?;
        self.hub_seq = Some(s);
        Ok(s)
    }

    fn append_fact(
        &mut self,
        scope: &Scope,
        fact: &StoredFact,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let batch = *self.batch.get_or_insert(fact.hub_seq);
        let (item, bucket_hash) = match &fact.item {
            Some((k, h)) => (Some(k.as_str()), Some(i64::from(*h))),
            None => (None, None),
        };
        if let Some((key, hash)) = &fact.item
            && !key.starts_with("st/")
        {
            let scope_text = scope_key(scope);
            let known: bool = self
                .tx
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM facts WHERE scope = $1 AND item = $2)",
                )?
                .query_row(params![scope_text, key], |r| r.get(0))?;
            if !known {
                self.tx
                    .prepare_cached(
                        "INSERT INTO shard_fill (scope, hash, items) VALUES ($1, $2, 1)
                         ON CONFLICT(scope, hash) DO UPDATE SET items = shard_fill.items + 1",
                    )?
                    .execute(params![scope_text, i64::from(*hash & FILL_HASH_MASK)])?;
            }
        }
        self.tx
            .prepare_cached(
                "INSERT INTO facts
                 (hub_seq, scope, priority, signed, issued_at, subject, item, bucket_hash, batch)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?
            .execute(params![
                i64_of(fact.hub_seq),
                scope_key(scope),
                fact.priority,
                fact.signed.to_bytes(),
                i64_of(now.0),
                fact.subject,
                item,
                bucket_hash,
                i64_of(batch),
            ])?;
        self.hub_seq = Some(self.hub_seq.map_or(fact.hub_seq, |s| s.max(fact.hub_seq)));
        self.appended = true;
        Ok(())
    }

    fn placed_facts(
        &mut self,
        scope: &Scope,
        after: u64,
        through: u64,
        limit: u32,
    ) -> Result<Vec<PlacedFact>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT hub_seq, batch, issued_at, item, bucket_hash, signed FROM facts
             WHERE scope = $1 AND hub_seq > $2 AND hub_seq <= $3 AND item IS NOT NULL
             ORDER BY hub_seq LIMIT $4",
        )?;
        let mut rows = stmt.query(params![
            scope_key(scope),
            i64_sat(after),
            i64_sat(through),
            i64::from(limit)
        ])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let hub_seq = u64_of("hub seq", r.get(0)?)?;
            let batch: Option<i64> = r.get(1)?;
            let hash: i64 = r.get(4)?;
            out.push(PlacedFact {
                hub_seq,
                batch: batch.map_or(Ok(hub_seq), |b| u64_of("fact batch", b))?,
                issued_at: millis("fact time", r.get(2)?)?,
                item: r.get(3)?,
                bucket_hash: u16::try_from(hash).map_err(|_| corrupt("bucket hash", hash))?,
                signed: r.get(5)?,
            });
        }
        Ok(out)
    }

    fn shard_epoch(&mut self, scope: &Scope) -> Result<Option<ShardEpochRow>, StoreError> {
        self.tx
            .prepare_cached(
                "SELECT epoch, buckets, base_seq, started_at FROM shard_epochs WHERE scope = $1",
            )?
            .query_row(params![scope_key(scope)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .optional()?
            .map(|(e, b, s, t)| {
                Ok(ShardEpochRow {
                    epoch: u32::try_from(e).map_err(|_| corrupt("shard epoch", e))?,
                    buckets: u16::try_from(b).map_err(|_| corrupt("shard buckets", b))?,
                    base_seq: u64_of("shard base seq", s)?,
                    started_at: millis("shard epoch start", t)?,
                })
            })
            .transpose()
    }

    fn put_shard_epoch(&mut self, scope: &Scope, row: &ShardEpochRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO shard_epochs (scope, epoch, buckets, base_seq, started_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT(scope) DO UPDATE SET epoch = $2, buckets = $3, base_seq = $4,
                 started_at = $5",
            )?
            .execute(params![
                scope_key(scope),
                i64::from(row.epoch),
                i64::from(row.buckets),
                i64_of(row.base_seq),
                i64_of(row.started_at.0),
            ])?;
        Ok(())
    }

    fn shard_fill(&mut self, scope: &Scope) -> Result<Vec<(u16, u64)>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT hash, items FROM shard_fill WHERE scope = $1")?;
        let mut rows = stmt.query(params![scope_key(scope)])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let hash: i64 = r.get(0)?;
            out.push((
                u16::try_from(hash).map_err(|_| corrupt("shard fill hash", hash))?,
                u64_of("shard fill", r.get(1)?)?,
            ));
        }
        Ok(out)
    }

    fn scopes_placed_after(&mut self, after: u64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT DISTINCT scope FROM facts WHERE hub_seq > $1 AND item IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![i64_sat(after)], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn fact_scopes(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT DISTINCT scope FROM facts WHERE item IS NOT NULL")?;
        let rows = stmt.query_map(params![], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn latest_facts_by_subject(&mut self, prefix: &[u8]) -> Result<Vec<StoredFact>, StoreError> {
        // Subjects from `prefix` up to (not including) the prefix with its
        // last byte raised: exactly those starting with it.
        let mut end = prefix.to_vec();
        let last = end.last_mut();
        // Callers pass fixed prefixes ending in '/': another one is a bug.
        assert!(
            last.as_ref().is_some_and(|b| **b < u8::MAX),
            "a subject prefix must end in a byte below 0xff"
        );
        if let Some(b) = last {
            *b += 1;
        }
        // The latest fact of each subject: its row of greatest hub_seq.
        let mut stmt = self.tx.prepare_cached(
            "SELECT DISTINCT ON (subject) hub_seq, priority, signed, subject FROM facts
             WHERE subject >= $1 AND subject < $2 ORDER BY subject, hub_seq DESC",
        )?;
        let mut rows = stmt.query(params![prefix, end])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            out.push(stored_fact(r)?);
        }
        Ok(out)
    }

    fn facts_in_scope(
        &mut self,
        scope: &Scope,
        after: u64,
        limit: u32,
        all: bool,
    ) -> Result<Vec<StoredFact>, StoreError> {
        let mut stmt = self.tx.prepare_cached(if all {
            "SELECT hub_seq, priority, signed, subject FROM facts
             WHERE scope = $1 AND hub_seq > $2
             ORDER BY hub_seq LIMIT $3"
        } else {
            "SELECT hub_seq, priority, signed, subject FROM facts
             WHERE scope = $1 AND hub_seq > $2 AND item IS NULL
             ORDER BY hub_seq LIMIT $3"
        })?;
        let mut rows = stmt.query(params![scope_key(scope), i64_sat(after), i64::from(limit)])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            out.push(stored_fact(r)?);
        }
        Ok(out)
    }
}
