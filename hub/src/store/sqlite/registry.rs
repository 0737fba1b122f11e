//! [`RegistryTx`] for SQLite: municipalities, facilities, nodes and their
//! chains, accounts, cards, programmes, facility cards.

use super::SqliteTx;
use super::rows::{
    NODE_COLS, NodeRow, account_of, corrupt, i64_of, i64_sat, millis, muni_of, muni_sql,
    node_record, ops_sql, status_of, tuple, txid_of, u64_of,
};
use crate::model::{
    Account, CardRecord, ChainHead, Facility, FacilityKind, Municipality, NodeContact, NodeRecord,
    NodeStatus, Program,
};
use crate::store::{RegistryTx, StoreError};
use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId, NodeId,
    ProgramId, TxId, UnixMillis,
};
use rusqlite::{OptionalExtension, params};

impl RegistryTx for SqliteTx<'_> {
    fn municipality(&mut self, code: MunicipalityCode) -> Result<Option<Municipality>, StoreError> {
        let name: Option<String> = self
            .tx
            .prepare_cached("SELECT name FROM municipalities WHERE code = ?1")?
            .query_row([muni_sql(code)], |r| r.get(0))
            .optional()?;
        Ok(name.map(|name| Municipality { code, name }))
    }

    fn insert_municipality(&mut self, m: &Municipality, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO municipalities (code, name, created_at) VALUES (?1, ?2, ?3)",
            params![muni_sql(m.code), m.name, i64_of(now.0)],
        )?;
        Ok(())
    }

    fn municipalities(&mut self) -> Result<Vec<Municipality>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT code, name FROM municipalities ORDER BY code")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = vec![];
        for row in rows {
            let (code, name) = row?;
            out.push(Municipality {
                code: muni_of(code)?,
                name,
            });
        }
        Ok(out)
    }

    fn facility(&mut self, id: &FacilityId) -> Result<Option<Facility>, StoreError> {
        let row: Option<(i64, String, String)> = self
            .tx
            .prepare_cached("SELECT municipality, kind, name FROM facilities WHERE id = ?1")?
            .query_row([id.as_str()], tuple)
            .optional()?;
        row.map(|(m, kind, name)| {
            Ok(Facility {
                id: id.clone(),
                municipality: muni_of(m)?,
                kind: FacilityKind::parse(&kind).ok_or_else(|| corrupt("facility kind", kind))?,
                name,
            })
        })
        .transpose()
    }

    fn insert_facility(&mut self, f: &Facility, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO facilities (id, municipality, kind, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![f.id.as_str(), muni_sql(f.municipality), f.kind.name(), f.name, i64_of(now.0)],
        )?;
        Ok(())
    }

    fn node(&mut self, id: &NodeId) -> Result<Option<NodeRecord>, StoreError> {
        let sql = format!(
            "SELECT {NODE_COLS} FROM nodes n JOIN facilities f ON f.id = n.facility WHERE n.id = ?1"
        );
        let row = self
            .tx
            .prepare_cached(&sql)?
            .query_row([&id.as_bytes()[..]], tuple::<NodeRow>)
            .optional()?;
        row.map(node_record).transpose()
    }

    fn upsert_node(&mut self, n: &NodeRecord) -> Result<(), StoreError> {
        let p = &n.policy;
        self.tx.execute(
            "INSERT INTO nodes (id, facility, allowed_ops, per_card_offline_limit, node_exposure_limit,
                 pin_threshold, valid_until, enrolled_at, revoked_at, head, offline_voucher_cap)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (id) DO UPDATE SET facility = excluded.facility,
                 allowed_ops = excluded.allowed_ops,
                 per_card_offline_limit = excluded.per_card_offline_limit,
                 node_exposure_limit = excluded.node_exposure_limit,
                 pin_threshold = excluded.pin_threshold, valid_until = excluded.valid_until,
                 enrolled_at = excluded.enrolled_at, revoked_at = excluded.revoked_at,
                 offline_voucher_cap = excluded.offline_voucher_cap",
            params![
                &n.id.as_bytes()[..],
                n.facility.as_str(),
                ops_sql(&p.allowed_ops),
                i64_of(p.per_card_offline_limit.get()),
                i64_of(p.node_exposure_limit.get()),
                i64_of(p.pin_threshold.get()),
                i64_of(p.valid_until.0),
                i64_of(n.enrolled_at.0),
                n.revoked_at.map(|t| i64_of(t.0)),
                &TxId::GENESIS.as_bytes()[..],
                i64_of(p.offline_voucher_cap.get()),
            ],
        )?;
        Ok(())
    }

    fn revoke_node(&mut self, id: &NodeId, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE nodes SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![&id.as_bytes()[..], i64_of(now.0)],
        )?;
        Ok(())
    }

    fn chain_head(&mut self, id: &NodeId) -> Result<ChainHead, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self
            .tx
            .prepare_cached("SELECT processed_seq, head FROM nodes WHERE id = ?1")?
            .query_row([&id.as_bytes()[..]], tuple)
            .optional()?;
        match row {
            None => Ok(ChainHead::EMPTY),
            Some((seq, head)) => Ok(ChainHead {
                processed_seq: u64_of("processed seq", seq)?,
                head: txid_of(head)?,
            }),
        }
    }

    fn set_chain_head(&mut self, id: &NodeId, head: ChainHead) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE nodes SET processed_seq = ?2, head = ?3 WHERE id = ?1")?
            .execute(params![
                &id.as_bytes()[..],
                i64_of(head.processed_seq),
                &head.head.as_bytes()[..]
            ])?;
        self.tx
            .prepare_cached(
                "UPDATE node_status SET pending_since = NULL
                 WHERE node = ?1 AND reported_last_seq <= ?2 AND pending_since IS NOT NULL",
            )?
            .execute(params![&id.as_bytes()[..], i64_of(head.processed_seq)])?;
        Ok(())
    }

    fn record_contact(&mut self, id: &NodeId, c: &NodeContact) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO node_status (node, last_contact, clock_skew_ms, software,
                     reported_last_seq, fact_cursor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (node) DO UPDATE SET last_contact = excluded.last_contact,
                     clock_skew_ms = excluded.clock_skew_ms, software = excluded.software,
                     reported_last_seq = excluded.reported_last_seq,
                     fact_cursor = excluded.fact_cursor",
            )?
            .execute(params![
                &id.as_bytes()[..],
                i64_of(c.at.0),
                c.clock_skew_ms,
                c.software,
                i64_sat(c.reported_last_seq),
                i64_sat(c.fact_cursor),
            ])?;
        // When the node first reported work the hub has not processed: kept
        // while some stays unprocessed, cleared once the chain catches up.
        self.tx
            .prepare_cached(
                "UPDATE node_status SET pending_since = CASE
                     WHEN reported_last_seq > (SELECT processed_seq FROM nodes WHERE id = ?1)
                     THEN COALESCE(pending_since, ?2) ELSE NULL END
                 WHERE node = ?1",
            )?
            .execute(params![&id.as_bytes()[..], i64_of(c.at.0)])?;
        Ok(())
    }

    fn node_statuses(&mut self) -> Result<Vec<NodeStatus>, StoreError> {
        let sql = format!(
            "SELECT {NODE_COLS}, n.processed_seq, n.head,
                 s.last_contact, s.clock_skew_ms, s.software, s.reported_last_seq, s.fact_cursor,
                 (SELECT COUNT(*) FROM txs t WHERE t.node = n.id AND t.rejected = 1),
                 (SELECT COUNT(*) FROM incidents i WHERE i.node = n.id AND i.kind = 'chain-rejected'),
                 s.pending_since
             FROM nodes n JOIN facilities f ON f.id = n.facility
             LEFT JOIN node_status s ON s.node = n.id
             ORDER BY f.municipality, n.facility, n.id"
        );
        let mut stmt = self.tx.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let node = node_record(tuple(r)?)?;
            let chain = ChainHead {
                processed_seq: u64_of("processed seq", r.get(11)?)?,
                head: txid_of(r.get(12)?)?,
            };
            let at: Option<i64> = r.get(13)?;
            let last_contact = match at {
                None => None,
                Some(at) => Some(NodeContact {
                    at: millis("last contact", at)?,
                    clock_skew_ms: r.get(14)?,
                    software: r.get(15)?,
                    reported_last_seq: u64_of("reported seq", r.get(16)?)?,
                    fact_cursor: u64_of("fact cursor", r.get(17)?)?,
                }),
            };
            out.push(NodeStatus {
                node,
                chain,
                last_contact,
                n_rejected: u64_of("count", r.get(18)?)?,
                n_incidents: u64_of("count", r.get(19)?)?,
                pending_since: r
                    .get::<_, Option<i64>>(20)?
                    .map(|t| millis("pending since", t))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    fn account(&mut self, id: AccountId) -> Result<Option<Account>, StoreError> {
        // Ids come from peers too; one past SQLite's range names no account.
        let Ok(raw) = i64::try_from(id.get()) else {
            return Ok(None);
        };
        let row: Option<(String, i64, i64)> = self
            .tx
            .prepare_cached(
                "SELECT my_key_id, municipality, created_at FROM accounts WHERE id = ?1",
            )?
            .query_row([raw], tuple)
            .optional()?;
        row.map(|(alias, m, at)| {
            Ok(Account {
                id,
                my_key_id: MyKeyId::parse(&alias).map_err(|e| corrupt("My Key ID", e))?,
                municipality: muni_of(m)?,
                created_at: millis("created at", at)?,
            })
        })
        .transpose()
    }

    fn account_by_my_key_id(&mut self, id: &MyKeyId) -> Result<Option<AccountId>, StoreError> {
        let row: Option<i64> = self
            .tx
            .prepare_cached("SELECT account FROM my_key_ids WHERE normalized = ?1")?
            .query_row([id.normalized()], |r| r.get(0))
            .optional()?;
        row.map(account_of).transpose()
    }

    fn insert_account(
        &mut self,
        my_key_id: &MyKeyId,
        municipality: MunicipalityCode,
        now: UnixMillis,
    ) -> Result<AccountId, StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO accounts (my_key_id, municipality, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                my_key_id.as_str(),
                muni_sql(municipality),
                i64_of(now.0)
            ])?;
        let id = self.tx.last_insert_rowid();
        self.tx
            .prepare_cached(
                "INSERT INTO my_key_ids (normalized, display, account, assigned_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![my_key_id.normalized(), my_key_id.as_str(), id, i64_of(now.0)])?;
        account_of(id)
    }

    fn set_my_key_id(
        &mut self,
        account: AccountId,
        new: &MyKeyId,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let a = i64_of(account.get());
        self.tx.execute(
            "UPDATE my_key_ids SET retired_at = ?2 WHERE account = ?1 AND retired_at IS NULL",
            params![a, i64_of(now.0)],
        )?;
        // The same alias may come back to the account that held it.
        self.tx.execute(
            "INSERT INTO my_key_ids (normalized, display, account, assigned_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (normalized) DO UPDATE SET display = excluded.display,
                 assigned_at = excluded.assigned_at, retired_at = NULL",
            params![new.normalized(), new.as_str(), a, i64_of(now.0)],
        )?;
        self.tx.execute(
            "UPDATE accounts SET my_key_id = ?2 WHERE id = ?1",
            params![a, new.as_str()],
        )?;
        Ok(())
    }

    fn card(&mut self, card: &CardKey) -> Result<Option<CardRecord>, StoreError> {
        let row: Option<(i64, String)> = self
            .tx
            .prepare_cached("SELECT account, status FROM cards WHERE issuer = ?1 AND serial = ?2")?
            .query_row(params![card.issuer_der(), card.serial()], tuple)
            .optional()?;
        row.map(|(a, s)| {
            Ok(CardRecord {
                card: card.clone(),
                account: account_of(a)?,
                status: status_of(&s)?,
            })
        })
        .transpose()
    }

    fn insert_card(&mut self, rec: &CardRecord, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO cards (issuer, serial, account, status, registered_at, changed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![
                rec.card.issuer_der(),
                rec.card.serial(),
                i64_of(rec.account.get()),
                rec.status.name(),
                i64_of(now.0)
            ])?;
        Ok(())
    }

    fn set_card_status(
        &mut self,
        card: &CardKey,
        status: CardStatus,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE cards SET status = ?3, changed_at = ?4 WHERE issuer = ?1 AND serial = ?2",
            params![
                card.issuer_der(),
                card.serial(),
                status.name(),
                i64_of(now.0)
            ],
        )?;
        Ok(())
    }

    fn cards_of(&mut self, account: AccountId) -> Result<Vec<CardRecord>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT issuer, serial, status FROM cards WHERE account = ?1 ORDER BY registered_at, issuer, serial",
        )?;
        let rows = stmt.query_map([i64_sat(account.get())], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = vec![];
        for row in rows {
            let (issuer, serial, status) = row?;
            out.push(CardRecord {
                card: CardKey::new(issuer, serial).map_err(|e| corrupt("card key", e))?,
                account,
                status: status_of(&status)?,
            });
        }
        Ok(out)
    }

    fn accounts(&mut self, m: Option<MunicipalityCode>) -> Result<Vec<Account>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, my_key_id, municipality, created_at FROM accounts
             WHERE ?1 IS NULL OR municipality = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([m.map(muni_sql)], tuple::<(i64, String, i64, i64)>)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, alias, m, at)| {
                Ok(Account {
                    id: account_of(id)?,
                    my_key_id: MyKeyId::parse(&alias).map_err(|e| corrupt("My Key ID", e))?,
                    municipality: muni_of(m)?,
                    created_at: millis("created at", at)?,
                })
            })
            .collect()
    }

    fn cards(&mut self) -> Result<Vec<CardRecord>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT issuer, serial, account, status FROM cards ORDER BY issuer, serial",
        )?;
        let rows = stmt
            .query_map([], tuple::<(Vec<u8>, Vec<u8>, i64, String)>)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(issuer, serial, a, status)| {
                Ok(CardRecord {
                    card: CardKey::new(issuer, serial).map_err(|e| corrupt("card key", e))?,
                    account: account_of(a)?,
                    status: status_of(&status)?,
                })
            })
            .collect()
    }

    fn program(&mut self, id: &ProgramId) -> Result<Option<Program>, StoreError> {
        let m: Option<i64> = self
            .tx
            .prepare_cached("SELECT municipality FROM programs WHERE id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?;
        m.map(|m| {
            Ok(Program {
                id: id.clone(),
                municipality: muni_of(m)?,
            })
        })
        .transpose()
    }

    fn insert_program(&mut self, p: &Program, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO programs (id, municipality, created_at) VALUES (?1, ?2, ?3)",
            params![p.id.as_str(), muni_sql(p.municipality), i64_of(now.0)],
        )?;
        Ok(())
    }

    fn programs(&mut self) -> Result<Vec<Program>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id, municipality FROM programs ORDER BY municipality, id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = vec![];
        for row in rows {
            let (id, m) = row?;
            out.push(Program {
                id: ProgramId::parse(&id).map_err(|e| corrupt("programme id", e))?,
                municipality: muni_of(m)?,
            });
        }
        Ok(out)
    }

    fn facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
    ) -> Result<Option<AccountId>, StoreError> {
        let a: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT account FROM facility_cards WHERE facility = ?1 AND number = ?2",
            )?
            .query_row([facility.as_str(), number.as_str()], |r| r.get(0))
            .optional()?;
        a.map(account_of).transpose()
    }

    fn facility_cards_of(
        &mut self,
        facility: &FacilityId,
        account: AccountId,
    ) -> Result<Vec<FacilityCardNumber>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT number FROM facility_cards WHERE facility = ?1 AND account = ?2 ORDER BY number",
        )?;
        let rows = st.query_map(params![facility.as_str(), i64_of(account.get())], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = vec![];
        for n in rows {
            out.push(
                FacilityCardNumber::parse(&n?).map_err(|e| corrupt("facility card number", e))?,
            );
        }
        Ok(out)
    }

    fn link_facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
        account: AccountId,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO facility_cards (facility, number, account, linked_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                facility.as_str(),
                number.as_str(),
                i64_of(account.get()),
                i64_of(now.0)
            ])?;
        Ok(())
    }

    fn unlink_facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("DELETE FROM facility_cards WHERE facility = ?1 AND number = ?2")?
            .execute([facility.as_str(), number.as_str()])?;
        Ok(())
    }

    fn claim_holder_order(
        &mut self,
        challenge: &[u8; 32],
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let added = self
            .tx
            .prepare_cached(
                "INSERT INTO holder_orders_done (challenge, done_at) VALUES (?1, ?2)
                 ON CONFLICT (challenge) DO NOTHING",
            )?
            .execute(params![&challenge[..], i64_of(now.0)])?;
        Ok(added == 1)
    }
}
