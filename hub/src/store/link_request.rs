//! Storage for kiosk link requests (issue 19 part 3): each facility's
//! policy for links asked at a kiosk, and the requests that wait for the
//! facility's node to confirm or refuse them (`crate::link_request`).
//!
//! A supertrait of [`super::StoreTx`] with the same transaction contract.
//! A request is never deleted: it stays `pending` until a node of its
//! facility answers it (`confirmed`, `refused`), and one past
//! [`mykey_sync_proto::link_request::LINK_REQUEST_TTL_MS`] is expired by
//! its age alone, so no timed job has to sweep the table.

use super::StoreError;
use mykey_sync_proto::{AccountId, CardKey, FacilityCardNumber, FacilityId, NodeId, UnixMillis};

/// A facility's policy for card links asked at a kiosk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KioskLinkPolicy {
    /// The hub links at once.
    Auto,
    /// The facility's node confirms each request (the default).
    Confirm,
}

impl KioskLinkPolicy {
    /// Its stored and typed name.
    pub fn name(self) -> &'static str {
        match self {
            KioskLinkPolicy::Auto => "auto",
            KioskLinkPolicy::Confirm => "confirm",
        }
    }

    /// From its name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(KioskLinkPolicy::Auto),
            "confirm" => Some(KioskLinkPolicy::Confirm),
            _ => None,
        }
    }
}

/// Where a link request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRequestState {
    /// Waiting for the facility.
    Pending,
    /// A node of the facility confirmed it: the number was linked.
    Confirmed,
    /// A node of the facility refused it: nothing was linked.
    Refused,
}

impl LinkRequestState {
    /// Its stored name.
    pub fn name(self) -> &'static str {
        match self {
            LinkRequestState::Pending => "pending",
            LinkRequestState::Confirmed => "confirmed",
            LinkRequestState::Refused => "refused",
        }
    }

    /// From its stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(LinkRequestState::Pending),
            "confirmed" => Some(LinkRequestState::Confirmed),
            "refused" => Some(LinkRequestState::Refused),
            _ => None,
        }
    }
}

/// A link request as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRequestRow {
    /// Its id (1, 2, …).
    pub id: u64,
    /// The facility asked.
    pub facility: FacilityId,
    /// The number the holder gave.
    pub number: FacilityCardNumber,
    /// The holder's account.
    pub account: AccountId,
    /// The card that signed the order.
    pub card: CardKey,
    /// When the hub received it.
    pub requested_at: UnixMillis,
    /// Where it stands.
    pub state: LinkRequestState,
    /// When and by which node it was answered.
    pub answered: Option<(UnixMillis, NodeId)>,
}

/// Link request storage; see the module docs.
pub trait LinkRequestTx {
    /// The facility's stored policy (`None`: never set, which means confirm).
    fn kiosk_link_policy(
        &mut self,
        facility: &FacilityId,
    ) -> Result<Option<KioskLinkPolicy>, StoreError>;
    /// Sets the facility's policy.
    fn set_kiosk_link_policy(
        &mut self,
        facility: &FacilityId,
        policy: KioskLinkPolicy,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Adds a pending request (its `id`, `state` and `answered` are
    /// ignored) and returns its id.
    fn insert_link_request(&mut self, r: &LinkRequestRow) -> Result<u64, StoreError>;
    /// A request by id.
    fn link_request(&mut self, id: u64) -> Result<Option<LinkRequestRow>, StoreError>;
    /// The facility's pending requests received at or after `since`,
    /// oldest first, at most `limit`.
    fn pending_link_requests(
        &mut self,
        facility: &FacilityId,
        since: UnixMillis,
        limit: u32,
    ) -> Result<Vec<LinkRequestRow>, StoreError>;
    /// The account's pending requests received at or after `since`, oldest
    /// first, at most `limit`.
    fn pending_link_requests_of(
        &mut self,
        account: AccountId,
        since: UnixMillis,
        limit: u32,
    ) -> Result<Vec<LinkRequestRow>, StoreError>;
    /// Answers a pending request (no-op if answered already).
    fn answer_link_request(
        &mut self,
        id: u64,
        state: LinkRequestState,
        at: UnixMillis,
        by: &NodeId,
    ) -> Result<(), StoreError>;
}

/// The columns both backends read, in this order.
pub(in crate::store) const COLUMNS: &str =
    "id, facility, number, account, card, requested_at, state, answered_at, answered_by";

/// A row as both backends read it ([`COLUMNS`]).
pub(in crate::store) type LinkRequestSql = (
    i64,
    String,
    String,
    i64,
    String,
    i64,
    String,
    Option<i64>,
    Option<Vec<u8>>,
);

/// A stored row into a [`LinkRequestRow`].
pub(in crate::store) fn row_of(r: LinkRequestSql) -> Result<LinkRequestRow, StoreError> {
    use super::convert::{account_of, corrupt, facility_of, millis, node_of, u64_of};
    let (id, facility, number, account, card, at, state, answered_at, answered_by) = r;
    let answered = match (answered_at, answered_by) {
        (Some(at), Some(by)) => Some((millis("link request answered_at", at)?, node_of(by)?)),
        (None, None) => None,
        _ => return Err(corrupt("link request", "answered_at without answered_by")),
    };
    Ok(LinkRequestRow {
        id: u64_of("link request id", id)?,
        facility: facility_of(facility)?,
        number: FacilityCardNumber::parse(&number)
            .map_err(|e| corrupt("link request number", e))?,
        account: account_of(account)?,
        card: CardKey::parse(&card).map_err(|e| corrupt("link request card", e))?,
        requested_at: millis("link request requested_at", at)?,
        state: LinkRequestState::parse(&state)
            .ok_or_else(|| corrupt("link request state", state))?,
        answered,
    })
}

/// A stored policy name into a [`KioskLinkPolicy`].
pub(in crate::store) fn policy_of(text: String) -> Result<KioskLinkPolicy, StoreError> {
    KioskLinkPolicy::parse(&text).ok_or_else(|| super::convert::corrupt("kiosk link policy", text))
}
