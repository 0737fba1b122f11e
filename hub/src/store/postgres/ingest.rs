//! [`IngestTx`] for PostgreSQL: processed transactions and incidents.

use super::PgTx;
use super::conn::{OptionalExtension, params};
use super::rows::{corrupt, i64_of, i64_sat, millis, node_of, tuple, txid_of, u64_of};
use crate::model::{Incident, IncidentKind};
use crate::store::{IngestTx, ProcessedTx, StoreError};
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{NodeId, TxId, UnixMillis, VerifiedTx, codec};

impl IngestTx for PgTx<'_> {
    fn processed_tx(&mut self, node: &NodeId, seq: u64) -> Result<Option<ProcessedTx>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .tx
            .prepare_cached("SELECT id, outcome FROM txs WHERE node = $1 AND seq = $2")?
            .query_row(params![&node.as_bytes()[..], i64_of(seq)], tuple)
            .optional()?;
        row.map(|(id, outcome)| {
            Ok(ProcessedTx {
                id: txid_of(id)?,
                outcome: codec::decode_canonical("stored outcome", &outcome, 4096)
                    .map_err(|e| corrupt("stored outcome", e))?,
            })
        })
        .transpose()
    }

    fn insert_processed_tx(
        &mut self,
        tx: &VerifiedTx,
        outcome: &Outcome,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let p = tx.payload();
        self.tx
            .prepare_cached(
                "INSERT INTO txs (id, node, seq, signed, outcome, rejected, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )?
            .execute(params![
                &tx.id().as_bytes()[..],
                &p.node.as_bytes()[..],
                i64_of(p.seq),
                tx.signed().to_bytes(),
                codec::encode(outcome),
                matches!(outcome, Outcome::Rejected(_)),
                i64_of(now.0),
            ])?;
        Ok(())
    }

    fn tx_count(&mut self, id: &TxId) -> Result<u64, StoreError> {
        let n: i64 = self
            .tx
            .prepare_cached("SELECT COUNT(*) FROM txs WHERE id = $1")?
            .query_row([&id.as_bytes()[..]], |r| r.get(0))?;
        u64_of("count", n)
    }

    fn record_incident(&mut self, i: &Incident) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO incidents (at, kind, node, seq, tx, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            )?
            .execute(params![
                i64_of(i.at.0),
                i.kind.name(),
                i.node.map(|n| n.as_bytes().to_vec()),
                i.seq.map(i64_sat),
                i.tx.map(|t| t.as_bytes().to_vec()),
                i.detail,
            ])?;
        Ok(())
    }

    fn incidents(&mut self, limit: u32) -> Result<Vec<Incident>, StoreError> {
        Ok(self
            .numbered_incidents(limit, None)?
            .into_iter()
            .map(|(_, i)| i)
            .collect())
    }

    fn numbered_incidents(
        &mut self,
        limit: u32,
        id: Option<u64>,
    ) -> Result<Vec<(u64, Incident)>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, at, kind, node, seq, tx, detail FROM
               (SELECT * FROM incidents WHERE $2::BIGINT IS NULL OR id = $2 ORDER BY id DESC LIMIT $1) AS recent
             ORDER BY id",
        )?;
        let mut rows = stmt.query(params![i64::from(limit), id.map(i64_sat)])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let kind: String = r.get(2)?;
            out.push((
                u64_of("incident id", r.get(0)?)?,
                Incident {
                    at: millis("incident time", r.get(1)?)?,
                    kind: IncidentKind::parse(&kind)
                        .ok_or_else(|| corrupt("incident kind", kind))?,
                    node: r.get::<_, Option<Vec<u8>>>(3)?.map(node_of).transpose()?,
                    seq: r
                        .get::<_, Option<i64>>(4)?
                        .map(|s| u64_of("seq", s))
                        .transpose()?,
                    tx: r.get::<_, Option<Vec<u8>>>(5)?.map(txid_of).transpose()?,
                    detail: r.get(6)?,
                },
            ));
        }
        Ok(out)
    }

    fn incident_counts(&mut self) -> Result<Vec<(IncidentKind, u64)>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT kind, COUNT(*) FROM incidents GROUP BY kind ORDER BY kind")?;
        let mut rows = stmt.query(params![])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let kind: String = r.get(0)?;
            out.push((
                IncidentKind::parse(&kind).ok_or_else(|| corrupt("incident kind", kind))?,
                u64_of("incident count", r.get(1)?)?,
            ));
        }
        Ok(out)
    }
}
