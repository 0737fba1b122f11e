//! [`LinkRequestTx`] for PostgreSQL (the same rows as SQLite's): `facility_kiosk_links`, `link_requests`.

use super::PgTx;
use super::conn::{OptionalExtension, params, tuple};
use super::rows::{i64_of, u64_of};
use crate::store::StoreError;
use crate::store::link_request::{
    COLUMNS, KioskLinkPolicy, LinkRequestRow, LinkRequestSql, LinkRequestState, LinkRequestTx,
    policy_of, row_of,
};
use mykey_sync_proto::{AccountId, FacilityId, NodeId, UnixMillis};

impl LinkRequestTx for PgTx<'_> {
    fn kiosk_link_policy(
        &mut self,
        facility: &FacilityId,
    ) -> Result<Option<KioskLinkPolicy>, StoreError> {
        let p: Option<String> = self
            .tx
            .prepare_cached("SELECT policy FROM facility_kiosk_links WHERE facility = $1")?
            .query_row(params![facility.as_str()], |r| r.get(0))
            .optional()?;
        p.map(policy_of).transpose()
    }

    fn set_kiosk_link_policy(
        &mut self,
        facility: &FacilityId,
        policy: KioskLinkPolicy,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO facility_kiosk_links (facility, policy, set_at) VALUES ($1, $2, $3)
                 ON CONFLICT (facility) DO UPDATE SET policy = excluded.policy, set_at = excluded.set_at",
            )?
            .execute(params![facility.as_str(), policy.name(), i64_of(now.0)])?;
        Ok(())
    }

    fn insert_link_request(&mut self, r: &LinkRequestRow) -> Result<u64, StoreError> {
        let id: i64 = self
            .tx
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM link_requests")?
            .query_row(params![], |r| r.get(0))?;
        self.tx
            .prepare_cached(
                "INSERT INTO link_requests (id, facility, number, account, card, requested_at, state)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
            )?
            .execute(params![
                id,
                r.facility.as_str(),
                r.number.as_str(),
                i64_of(r.account.get()),
                r.card.to_string(),
                i64_of(r.requested_at.0),
            ])?;
        u64_of("link request id", id)
    }

    fn link_request(&mut self, id: u64) -> Result<Option<LinkRequestRow>, StoreError> {
        let r = self
            .tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM link_requests WHERE id = $1"
            ))?
            .query_row(params![i64_of(id)], tuple::<LinkRequestSql>)
            .optional()?;
        r.map(row_of).transpose()
    }

    fn pending_link_requests(
        &mut self,
        facility: &FacilityId,
        since: UnixMillis,
        limit: u32,
    ) -> Result<Vec<LinkRequestRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM link_requests
             WHERE facility = $1 AND state = 'pending' AND requested_at >= $2
             ORDER BY requested_at, id LIMIT $3"
        ))?;
        let rows: Vec<LinkRequestSql> = stmt
            .query_map(
                params![facility.as_str(), i64_of(since.0), i64::from(limit)],
                tuple::<LinkRequestSql>,
            )?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(row_of).collect()
    }

    fn pending_link_requests_of(
        &mut self,
        account: AccountId,
        since: UnixMillis,
        limit: u32,
    ) -> Result<Vec<LinkRequestRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM link_requests
             WHERE account = $1 AND state = 'pending' AND requested_at >= $2
             ORDER BY requested_at, id LIMIT $3"
        ))?;
        let rows: Vec<LinkRequestSql> = stmt
            .query_map(
                params![i64_of(account.get()), i64_of(since.0), i64::from(limit)],
                tuple::<LinkRequestSql>,
            )?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(row_of).collect()
    }

    fn answer_link_request(
        &mut self,
        id: u64,
        state: LinkRequestState,
        at: UnixMillis,
        by: &NodeId,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE link_requests SET state = $2, answered_at = $3, answered_by = $4
                 WHERE id = $1 AND state = 'pending'",
            )?
            .execute(params![
                i64_of(id),
                state.name(),
                i64_of(at.0),
                &by.as_bytes()[..]
            ])?;
        Ok(())
    }
}
